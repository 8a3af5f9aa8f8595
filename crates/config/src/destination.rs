//! Where a configured URL really leads.
//!
//! A URL is judged by the parser of the client that will use it, never by splitting text:
//! HTTP(S) URLs by the WHATWG URL Standard (the `url` crate, which `reqwest` sends
//! requests with), PostgreSQL URLs by the `postgres` client's own connection-string
//! parser. Hand-written splitting disagrees with those parsers on backslashes, userinfo,
//! percent-encoding and numeric host forms: `http://evil.example\@127.0.0.1/` looks like
//! loopback to a split on `@`, but WHATWG treats `\` as `/` and the client connects to
//! `evil.example`. Judging with the same parser closes that gap by construction.
//!
//! Not covered: what a host *name* resolves to. `localhost` is taken as this machine
//! (the resolver maps it to loopback); any other name is off-host, whatever DNS says.

use std::net::IpAddr;
use std::str::FromStr;

use url::{Host, Url};

/// Parse an `http://` or `https://` URL as the HTTP client will, refusing anything the
/// client would send elsewhere than it appears to name (no host, another scheme) and
/// whitespace (which WHATWG silently strips).
pub fn http_url(raw: &str) -> Result<Url, String> {
    if raw.chars().any(char::is_whitespace) {
        return Err(format!("`{raw}` contains whitespace"));
    }
    let url = Url::parse(raw).map_err(|e| match e {
        url::ParseError::EmptyHost => {
            format!("`{raw}` has no host; e.g. `http://127.0.0.1:11434/v1`")
        }
        url::ParseError::RelativeUrlWithoutBase => {
            format!("`{raw}` must start with `http://` or `https://`")
        }
        other => format!("`{raw}` is not a valid URL: {other}"),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{raw}` must start with `http://` or `https://`"));
    }
    // WHATWG skips any number of slashes after `http:` (`https:///v1` is host `v1`): a
    // typo the user should hear about rather than a host they did not mean.
    let after_scheme = &raw[url.scheme().len() + 1..];
    if !after_scheme.starts_with("//") || after_scheme[2..].starts_with(['/', '\\']) {
        return Err(format!(
            "`{raw}` has no host; e.g. `http://127.0.0.1:11434/v1`"
        ));
    }
    if url.host().is_none() {
        return Err(format!(
            "`{raw}` has no host; e.g. `http://127.0.0.1:11434/v1`"
        ));
    }
    Ok(url)
}

/// Whether `host` (a host name, an IP address, an IPv6 address with or without brackets,
/// as a `Host` header or a socket address gives it) is this machine: `localhost` or a
/// loopback address, IPv4-mapped forms included.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Whether a parsed URL's host is this machine.
pub fn is_loopback_url(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).to_canonical().is_loopback(),
        None => false,
    }
}

/// Whether what is sent to `url` could cross the network in clear text: anything but
/// `https://`, unless it is plain `http://` (in any spelling) to this machine. A URL that
/// does not parse, or has another scheme, counts as clear text off the host: what cannot
/// be judged is not let through.
pub fn is_cleartext_off_host(url: &str) -> bool {
    match Url::parse(url) {
        Ok(u) if u.scheme() == "https" => false,
        Ok(u) if u.scheme() == "http" => !is_loopback_url(&u),
        _ => true,
    }
}

/// `[store] url`: a PostgreSQL URL without password whose hosts are Unix socket
/// directories or loopback (the connection has no TLS, so nothing else is accepted).
/// Judged by the `postgres` client's parser, the one that connects.
pub(crate) fn check_store_url(url: &str) -> Result<(), String> {
    let password_env = "must not contain a password; put it in the environment variable \
                        named by `password_env`";
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        return Err(
            "must start with `postgres://`, e.g. `postgres://cordon@127.0.0.1/cordon` or \
             `postgres://cordon@/cordon?host=/run/postgresql`"
                .to_string(),
        );
    };
    if url.chars().any(char::is_whitespace) {
        return Err("must not contain whitespace".into());
    }
    // Only the parameters Cordon's connection honours: TLS settings and the like would be
    // accepted by the client and then not mean what they say.
    if let Some((_, query)) = rest.split_once('?') {
        for (key, _) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "host" | "hostaddr" | "port" | "user" | "dbname" | "application_name"
                | "connect_timeout" => {}
                "password" => return Err(password_env.into()),
                other => {
                    return Err(format!(
                        "`{url}`: parameter `{other}` is not supported here (use host, port, \
                         user, dbname, application_name or connect_timeout)"
                    ));
                }
            }
        }
    }
    let cfg = postgres::Config::from_str(url).map_err(|e| format!("`{url}`: {e}"))?;
    if cfg.get_password().is_some() {
        return Err(password_env.into());
    }
    if cfg.get_dbname().is_none_or(str::is_empty) {
        return Err(format!(
            "`{url}` names no database; add `/DB` after the host"
        ));
    }
    if cfg.get_hosts().is_empty() && cfg.get_hostaddrs().is_empty() {
        return Err(format!(
            "`{url}` names no host; use a loopback host (`postgres://cordon@127.0.0.1/cordon`) \
             or a Unix socket directory (`postgres://cordon@/cordon?host=/run/postgresql`)"
        ));
    }
    let not_loopback = |host: &str| {
        format!(
            "host `{host}` is not loopback; TLS to PostgreSQL is not implemented, so only a \
             Unix socket directory or localhost/127.0.0.1/::1 is accepted (the store holds \
             conversation content and token hashes)"
        )
    };
    for host in cfg.get_hosts() {
        if let postgres::config::Host::Tcp(name) = host
            && !is_loopback_host(name)
        {
            return Err(not_loopback(name));
        }
    }
    for addr in cfg.get_hostaddrs() {
        if !addr.to_canonical().is_loopback() {
            return Err(not_loopback(&addr.to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls_parse_or_say_why() {
        assert!(http_url("http://127.0.0.1:11434/v1").is_ok());
        assert!(http_url("https://api.anthropic.com/v1").is_ok());
        for (bad, says) in [
            ("ftp://x", "http://"),
            ("http://", "no host"),
            ("https:///v1", "no host"),
            ("127.0.0.1", "http://"),
            ("http://a b", "whitespace"),
            ("http://a\tb/", "whitespace"),
            ("http://[::1/", "not a valid URL"),
        ] {
            let e = http_url(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    /// Every spelling is judged by the host the HTTP client will actually connect to.
    #[test]
    fn cleartext_is_judged_by_the_whatwg_host() {
        for off in [
            "http://hooks.example.com/x",
            "http://10.0.0.1:8080/in",
            // userinfo: the host is after the last `@`
            "http://127.0.0.1@evil.example/in",
            "http://127.0.0.1:80@evil.example/in",
            // backslash is a path separator for http: the host is evil.example
            "http://evil.example\\@127.0.0.1:9000/",
            "http://evil.example\\\\@127.0.0.1/",
            // a fragment or query holding a loopback-looking authority changes nothing
            "http://evil.example#@127.0.0.1/",
            "http://evil.example?@127.0.0.1/",
            "http://localhost.evil.example/in",
            "HTTP://EVIL.example/in",
            "http://[fe80::1]/in",
            "http://[::ffff:10.0.0.1]/in",
            // percent-encoded host that decodes to a public name
            "http://%65vil.example/",
            // not parseable, or another scheme: refused rather than guessed
            "http://[::1/",
            "ws://evil.example/",
            "ftp://127.0.0.1/",
        ] {
            assert!(is_cleartext_off_host(off), "{off} must count as off-host");
        }
        for on in [
            "https://hooks.example.com/x",
            "http://127.0.0.1:8080/in",
            "http://127.9.9.9/in",
            "http://[::1]:9/in",
            "http://[::1]/in",
            "http://[::ffff:127.0.0.1]/in",
            "http://localhost/in",
            "HTTP://LOCALHOST:80/in",
            // WHATWG reads these as 127.0.0.1, and so does the client
            "http://127.1/in",
            "http://0x7f.0.0.1/in",
            "http://%31%32%37.0.0.1/in",
            "http://evil.example@127.0.0.1/in",
        ] {
            assert!(!is_cleartext_off_host(on), "{on} is this machine");
        }
    }

    #[test]
    fn loopback_hosts() {
        for on in [
            "localhost",
            "LocalHost",
            "127.0.0.1",
            "::1",
            "[::1]",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_loopback_host(on), "{on}");
        }
        for off in [
            "10.0.0.1",
            "localhost.",
            "x.localhost",
            "[fe80::1]",
            "0.0.0.0",
        ] {
            assert!(!is_loopback_host(off), "{off}");
        }
    }

    #[test]
    fn store_urls_stay_on_this_host() {
        for ok in [
            "postgres://cordon@127.0.0.1/cordon",
            "postgres://cordon@localhost:5433/cordon",
            "postgres://cordon@[::1]:5432/cordon",
            "postgresql://cordon@/cordon?host=/run/postgresql",
            "postgres:///cordon?host=%2Frun%2Fpostgresql&user=cordon",
        ] {
            assert!(
                check_store_url(ok).is_ok(),
                "{ok}: {:?}",
                check_store_url(ok)
            );
        }
        for (bad, says) in [
            ("postgres://cordon@db.example.com/cordon", "not loopback"),
            ("postgres://cordon@10.0.0.5/cordon", "TLS"),
            (
                "postgres://cordon@127.0.0.1,db.internal/cordon",
                "db.internal",
            ),
            ("postgres:///cordon?host=db.internal", "not loopback"),
            ("postgres:///cordon?host=%64b.internal", "db.internal"),
            (
                "postgres://cordon@localhost/cordon?hostaddr=192.0.2.1",
                "192.0.2.1",
            ),
            ("postgres://cordon:pw@127.0.0.1/cordon", "password_env"),
            (
                "postgres://cordon@127.0.0.1/cordon?password=pw",
                "password_env",
            ),
            (
                "postgres://cordon@127.0.0.1/cordon?pass%77ord=pw",
                "password_env",
            ),
            (
                "postgres://cordon@127.0.0.1/cordon?sslmode=disable",
                "sslmode",
            ),
            ("postgres://cordon@127.0.0.1", "no database"),
            ("postgres:///cordon", "no host"),
            ("mysql://cordon@127.0.0.1/cordon", "postgres://"),
        ] {
            let e = check_store_url(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
