//! The connections a channel opens to its platform — HTTP requests and Slack's Socket
//! Mode WebSocket — held to an allowlist with the SSRF guard, as tools' connections are.
//!
//! Guarantees: a connection goes only to the configured API's host or a host below it
//! (Slack sends files from `files.slack.com` and opens sockets on `wss-primary.slack.com`,
//! both under `slack.com`); a name that resolves to a loopback, private, link-local (cloud
//! metadata), or otherwise non-public address is refused (`egress::address::refusal`)
//! unless it is the configured API host itself (a self-hosted homeserver on the LAN is the
//! operator's choice, a redirect or a URL from a platform's answer is not); redirects are
//! not followed; connections and requests time out. One [`ApiHost`] decides for both
//! kinds of connection: the HTTP client's resolver asks it, and [`websocket`] resolves
//! through it and dials only the addresses it admitted.
//!
//! Does not: cover an HTTP request to a URL with an IP literal, which reqwest dials
//! without asking the resolver (the platform clients refuse URLs from platform data whose
//! host is not under the API host, see `slack.rs`, `telegram.rs`, `matrix.rs`; a
//! WebSocket URL's IP literal is judged like a name).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// How long dialling one address, and then the TLS and WebSocket handshakes, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client for a channel whose API is at `api`.
pub fn client_for(api: &Url) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        // Long polls wait up to ~30 s; nothing else should take longer than this.
        .timeout(Duration::from_secs(90))
        .dns_resolver(Arc::new(ApiHost::of(api)))
        .build()
}

/// Why a connection to the platform was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The host is neither the API host nor below it.
    #[error("`{host}` is not the channel's API host `{api_host}` or below it; refused")]
    OtherHost { host: String, api_host: String },
    /// Every address the host has is one the SSRF guard refuses.
    #[error("`{host}` resolves to {why}; refused")]
    NonPublic { host: String, why: &'static str },
    /// The URL's scheme is not one the connection may use.
    #[error("scheme `{scheme}` is not allowed here (wanted {wanted}); refused")]
    Scheme {
        scheme: String,
        wanted: &'static str,
    },
}

/// The configured API's host: the one host, with those below it, that a channel's own
/// connections may reach.
#[derive(Debug, Clone)]
pub struct ApiHost {
    host: String,
}

impl ApiHost {
    /// The host of `api` (lower case).
    pub fn of(api: &Url) -> ApiHost {
        ApiHost {
            host: api.host_str().unwrap_or_default().to_ascii_lowercase(),
        }
    }

    /// Whether `host` is the API host itself (whose addresses are the operator's choice).
    fn is_exact(&self, host: &str) -> bool {
        normalise(host) == self.host
    }

    /// Whether `host` is the API host or below it.
    pub fn admits_name(&self, host: &str) -> bool {
        let host = normalise(host);
        host == self.host || host.ends_with(&format!(".{}", self.host))
    }

    /// The addresses of `host` that may be dialled, from those it resolved to: all of
    /// them for the API host itself, only public ones for a host below it.
    fn admit(&self, host: &str, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, Refusal> {
        if !self.admits_name(host) {
            return Err(self.other_host(host));
        }
        let exact = self.is_exact(host);
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
            return Err(Refusal::NonPublic {
                host: normalise(host),
                why,
            });
        }
        Ok(usable)
    }

    fn other_host(&self, host: &str) -> Refusal {
        Refusal::OtherHost {
            host: normalise(host),
            api_host: self.host.clone(),
        }
    }

    /// Resolve `host` (a name or an IP literal, `[…]` for IPv6) and keep the addresses
    /// that may be dialled on `port`. A name outside the API host is not even looked up.
    pub async fn addresses(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
        if !self.admits_name(host) {
            return Err(self.other_host(host).into());
        }
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        let addrs: Vec<SocketAddr> = match literal {
            Some(ip) => vec![SocketAddr::new(ip, port)],
            None => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| ResolveError::Lookup {
                    host: normalise(host),
                    detail: e.to_string(),
                })?
                .collect(),
        };
        Ok(self.admit(host, addrs)?)
    }
}

fn normalise(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Why a host could not be resolved to an address that may be dialled.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("cannot resolve `{host}`: {detail}")]
    Lookup { host: String, detail: String },
}

impl Resolve for ApiHost {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.clone();
        Box::pin(async move {
            let addrs = guard.addresses(name.as_str(), 0).await?;
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// A WebSocket to a platform, over TCP, with TLS for `wss`.
pub type WebSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Why [`websocket`] did not give a socket.
#[derive(Debug, thiserror::Error)]
pub enum WebSocketError {
    /// The URL may not be connected to; nothing was dialled.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The host could not be resolved or reached, or a handshake failed or timed out.
    #[error("{0}")]
    Unreachable(String),
    /// The server answered the upgrade with an HTTP status instead of a WebSocket.
    #[error("handshake answered HTTP {0}")]
    Status(u16),
}

/// Open a WebSocket to `url`, a URL a platform's API at `api` handed out: `wss`, or `ws`
/// only when the API itself is plain `http` (a local test server); on the API host or
/// below it; dialled only at the addresses [`ApiHost`] admits, with a timeout, then TLS
/// (rustls, the web's roots) and the WebSocket handshake over that connection.
pub async fn websocket(api: &Url, url: &Url) -> Result<WebSocket, WebSocketError> {
    let wanted = if api.scheme() == "http" {
        "wss or ws"
    } else {
        "wss"
    };
    if !(url.scheme() == "wss" || (url.scheme() == "ws" && api.scheme() == "http")) {
        return Err(Refusal::Scheme {
            scheme: url.scheme().to_string(),
            wanted,
        }
        .into());
    }
    let (host, port) = match (url.host(), url.port_or_known_default()) {
        (Some(Host::Domain(d)), Some(p)) => (d.to_string(), p),
        (Some(Host::Ipv4(ip)), Some(p)) => (ip.to_string(), p),
        (Some(Host::Ipv6(ip)), Some(p)) => (format!("[{ip}]"), p),
        _ => return Err(WebSocketError::Unreachable("the URL has no host".into())),
    };
    let addrs = ApiHost::of(api)
        .addresses(&host, port)
        .await
        .map_err(|e| match e {
            ResolveError::Refused(r) => WebSocketError::Refused(r),
            other => WebSocketError::Unreachable(other.to_string()),
        })?;
    let mut last = String::from("no address");
    let mut tcp = None;
    for addr in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                tcp = Some(stream);
                break;
            }
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: timed out after {CONNECT_TIMEOUT:?}"),
        }
    }
    let tcp = tcp.ok_or(WebSocketError::Unreachable(last))?;
    let _ = tcp.set_nodelay(true);
    let handshake = tokio_tungstenite::client_async_tls_with_config(url.as_str(), tcp, None, None);
    match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
            Err(WebSocketError::Status(resp.status().as_u16()))
        }
        Ok(Err(e)) => Err(WebSocketError::Unreachable(e.to_string())),
        Err(_) => Err(WebSocketError::Unreachable(format!(
            "handshake timed out after {CONNECT_TIMEOUT:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(url: &str) -> ApiHost {
        ApiHost::of(&Url::parse(url).unwrap())
    }

    fn at(ip: &str) -> Vec<SocketAddr> {
        vec![SocketAddr::new(ip.parse().unwrap(), 443)]
    }

    #[test]
    fn only_the_api_host_and_below() {
        let slack = api("https://slack.com/api/");
        assert!(slack.admits_name("slack.com"));
        assert!(slack.admits_name("files.slack.com"));
        assert!(slack.admits_name("WSS-Primary.Slack.com."));
        assert!(!slack.admits_name("evilslack.com"));
        assert!(!slack.admits_name("slack.com.evil.example"));
        let telegram = api("https://api.telegram.org/");
        assert!(!telegram.admits_name("telegram.org"));
        assert!(!telegram.admits_name("169.254.169.254"));
    }

    #[test]
    fn a_name_below_the_api_host_that_points_inside_is_refused() {
        let slack = api("https://slack.com/api/");
        for inside in [
            "10.1.2.3",
            "169.254.169.254",
            "127.0.0.1",
            "192.168.1.1",
            "::1",
        ] {
            let err = slack
                .admit("wss-primary.slack.com", at(inside))
                .unwrap_err();
            assert!(
                matches!(&err, Refusal::NonPublic { host, .. } if host == "wss-primary.slack.com"),
                "{inside}: {err}"
            );
        }
        // A public address among private ones: only the public one is dialled.
        let mut mixed = at("10.0.0.7");
        mixed.extend(at("34.1.2.3"));
        assert_eq!(
            slack.admit("wss-primary.slack.com", mixed).unwrap(),
            at("34.1.2.3")
        );
        // The API host itself may be anywhere: the operator chose it.
        let lan = api("http://matrix.lan:8008/");
        assert_eq!(
            lan.admit("matrix.lan", at("10.0.0.7")).unwrap(),
            at("10.0.0.7")
        );
        assert!(lan.admit("media.matrix.lan", at("10.0.0.7")).is_err());
    }

    #[tokio::test]
    async fn an_ip_literal_is_judged_like_a_name() {
        let slack = api("https://slack.com/api/");
        let err = slack.addresses("169.254.169.254", 443).await.unwrap_err();
        assert!(
            matches!(err, ResolveError::Refused(Refusal::OtherHost { .. })),
            "{err}"
        );
        let local = api("http://127.0.0.1:9/api/");
        assert_eq!(
            local.addresses("127.0.0.1", 9).await.unwrap(),
            vec!["127.0.0.1:9".parse().unwrap()]
        );
        assert!(local.addresses("127.0.0.2", 9).await.is_err());
        let v6 = api("http://[::1]:9/api/");
        assert_eq!(
            v6.addresses("[::1]", 9).await.unwrap(),
            vec!["[::1]:9".parse().unwrap()]
        );
    }

    #[tokio::test]
    async fn a_websocket_url_must_be_wss_on_the_api_host() {
        let https = Url::parse("https://slack.com/api/").unwrap();
        for (url, refused) in [
            ("ws://wss-primary.slack.com/link/", "scheme"),
            ("https://wss-primary.slack.com/link/", "scheme"),
            (
                "wss://wss-primary.evil.example/link/",
                "not the channel's API host",
            ),
            (
                "wss://169.254.169.254/latest/",
                "not the channel's API host",
            ),
        ] {
            let err = websocket(&https, &Url::parse(url).unwrap())
                .await
                .unwrap_err();
            assert!(matches!(err, WebSocketError::Refused(_)), "{url}: {err}");
            assert!(err.to_string().contains(refused), "{url}: {err}");
        }
    }

    #[tokio::test]
    async fn an_http_request_below_the_api_that_points_inside_is_refused() {
        // `localhost` below nothing: not the API host.
        let client = client_for(&Url::parse("https://api.telegram.org/").unwrap()).unwrap();
        let err = client.get("http://localhost:9/").send().await.unwrap_err();
        let mut chain = Vec::new();
        let mut source: Option<&dyn std::error::Error> = Some(&err);
        while let Some(e) = source {
            chain.push(e.to_string());
            source = e.source();
        }
        assert!(
            chain
                .iter()
                .any(|e| e.contains("not the channel's API host")),
            "{chain:?}"
        );
        // The API host itself may be loopback (the operator chose it).
        let client = client_for(&Url::parse("http://localhost:9/").unwrap()).unwrap();
        let err = client.get("http://localhost:9/").send().await.unwrap_err();
        assert!(err.is_connect(), "{err:?}");
    }
}
