//! The HTTP client a channel talks to its platform with: the gateway's own outbound
//! connections, held to an allowlist with the SSRF guard, as tools' connections are.
//!
//! Guarantees: a request goes only to the configured API's host or a host below it (Slack
//! sends files from `files.slack.com` under `slack.com`); a name that resolves to a
//! loopback, private, link-local (cloud metadata), or otherwise non-public address is
//! refused (`egress::address::refusal`) unless it is the configured API host itself (a
//! self-hosted homeserver on the LAN is the operator's choice, a redirect or a URL from a
//! platform's message is not); redirects are not followed; requests time out.
//!
//! Does not: cover a URL with an IP literal, which needs no name resolution; the platform
//! clients refuse URLs from platform data whose host is not under the API host (see
//! `slack.rs`, `telegram.rs`, `matrix.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

/// A client for a channel whose API is at `api`.
pub fn client_for(api: &Url) -> Result<reqwest::Client, reqwest::Error> {
    let host = api.host_str().unwrap_or_default().to_ascii_lowercase();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        // Long polls wait up to ~30 s; nothing else should take longer than this.
        .timeout(Duration::from_secs(90))
        .dns_resolver(Arc::new(Guarded { api_host: host }))
        .build()
}

struct Guarded {
    api_host: String,
}

/// Whether `host` is the API host or below it.
fn allowed_host(api_host: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == api_host || host.ends_with(&format!(".{api_host}"))
}

impl Resolve for Guarded {
    fn resolve(&self, name: Name) -> Resolving {
        let api_host = self.api_host.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            if !allowed_host(&api_host, &host) {
                return Err(format!(
                    "`{host}` is not the channel's API host `{api_host}` or below it; refused"
                )
                .into());
            }
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let exact = host.trim_end_matches('.').eq_ignore_ascii_case(&api_host);
            let usable: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| exact || egress::address::refusal(a.ip()).is_none())
                .collect();
            if usable.is_empty() {
                let why = addrs
                    .first()
                    .and_then(|a| egress::address::refusal(a.ip()))
                    .unwrap_or("no address");
                return Err(format!("`{host}` resolves to {why}; refused").into());
            }
            let addrs: Addrs = Box::new(usable.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_api_host_and_below() {
        assert!(allowed_host("slack.com", "slack.com"));
        assert!(allowed_host("slack.com", "files.slack.com"));
        assert!(!allowed_host("slack.com", "evilslack.com"));
        assert!(!allowed_host("api.telegram.org", "telegram.org"));
        assert!(!allowed_host("api.telegram.org", "169.254.169.254"));
    }

    #[tokio::test]
    async fn a_name_below_the_api_that_points_inside_is_refused() {
        // `localhost` below nothing: not the API host.
        let client = client_for(&Url::parse("https://api.telegram.org/").unwrap()).unwrap();
        let err = client.get("http://localhost:9/").send().await.unwrap_err();
        assert!(
            format!("{err:?}").contains("not the channel's API host"),
            "{err:?}"
        );
        // The API host itself may be loopback (the operator chose it).
        let client = client_for(&Url::parse("http://localhost:9/").unwrap()).unwrap();
        let err = client.get("http://localhost:9/").send().await.unwrap_err();
        assert!(err.is_connect(), "{err:?}");
    }
}
