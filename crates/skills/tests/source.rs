//! SOURCE parsing and pinned downloads, against a real HTTPS server on 127.0.0.1 with
//! its own certificate authority.

use std::io::Write;
use std::sync::Arc;

use cordon_skills::source::{self, MAX_DOWNLOAD, Source};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PIN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn a_pinned_https_url_parses_with_the_pin_lowercased() {
    let upper = PIN.to_ascii_uppercase();
    let s = Source::parse(&format!("https://example.com/w.tar.gz#sha256={upper}")).unwrap();
    assert_eq!(
        s,
        Source::Url {
            url: "https://example.com/w.tar.gz".into(),
            sha256: PIN.into()
        }
    );
    assert_eq!(
        s.display(),
        format!("https://example.com/w.tar.gz#sha256={PIN}")
    );
    assert_eq!(s.archive_name().as_deref(), Some("w.tar.gz"));
}

#[test]
fn plain_http_is_refused() {
    let e = Source::parse(&format!("http://example.com/w.zip#sha256={PIN}")).unwrap_err();
    assert!(e.contains("plain http:// is refused"), "{e}");
    assert!(e.contains("https://"), "{e}");
}

#[test]
fn an_unpinned_url_is_refused_saying_how_to_pin_it() {
    let e = Source::parse("https://example.com/w.zip").unwrap_err();
    assert!(e.contains("must be pinned"), "{e}");
    assert!(
        e.contains("https://example.com/w.zip#sha256=<64 hex digits>"),
        "{e}"
    );
    let e = Source::parse("https://example.com/w.zip#sha256=abc").unwrap_err();
    assert!(e.contains("`abc` is not a SHA-256"), "{e}");
    let e = Source::parse("https://example.com/w.zip#md5=abc").unwrap_err();
    assert!(e.contains("is not a pin"), "{e}");
}

#[test]
fn other_schemes_are_refused() {
    let e = Source::parse("ftp://example.com/w.zip").unwrap_err();
    assert!(e.contains("only https://"), "{e}");
    let e = Source::parse("file:///tmp/w.zip").unwrap_err();
    assert!(e.contains("only https://"), "{e}");
}

#[test]
fn local_folders_and_archives_are_recognised() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        Source::parse(dir.path().to_str().unwrap()).unwrap(),
        Source::Dir(dir.path().to_path_buf())
    );
    let archive = dir.path().join("w.TGZ");
    std::fs::write(&archive, b"x").unwrap();
    let s = Source::parse(archive.to_str().unwrap()).unwrap();
    assert_eq!(s, Source::Archive(archive.clone()));
    assert_eq!(s.archive_name().as_deref(), Some("w.TGZ"));
    let other = dir.path().join("notes.txt");
    std::fs::write(&other, b"x").unwrap();
    let e = Source::parse(other.to_str().unwrap()).unwrap_err();
    assert!(e.contains("not a folder or a .zip"), "{e}");
    let e = Source::parse(dir.path().join("absent").to_str().unwrap()).unwrap_err();
    assert!(e.contains("no such folder or archive"), "{e}");
}

// ---- fetch ----------------------------------------------------------------------------

/// An HTTPS server on 127.0.0.1: `/skill.tar.gz` serves `body`, `/huge` declares more
/// than the download cap, `/endless` streams past it without a length, `/to-http`
/// redirects to plain http, anything else is 404.
struct Server {
    port: u16,
    ca_pem: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(body: Vec<u8>) -> Server {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "skills test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(leaf.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let body = Arc::new(body);
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut chunk = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let zeros = vec![0u8; 64 * 1024];
                match path.as_str() {
                    "/skill.tar.gz" => {
                        let h = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = tls.write_all(h.as_bytes()).await;
                        let _ = tls.write_all(&body).await;
                    }
                    "/huge" => {
                        let h = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            MAX_DOWNLOAD + 1
                        );
                        let _ = tls.write_all(h.as_bytes()).await;
                        let _ = tls.write_all(&zeros).await;
                    }
                    "/endless" => {
                        let h = "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n";
                        let _ = tls.write_all(h.as_bytes()).await;
                        // Until the client hangs up (it must, at the cap).
                        while tls.write_all(&zeros).await.is_ok() {}
                    }
                    "/to-http" => {
                        let h = format!(
                            "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{port}/skill.tar.gz\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        );
                        let _ = tls.write_all(h.as_bytes()).await;
                    }
                    _ => {
                        let h = "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                        let _ = tls.write_all(h.as_bytes()).await;
                    }
                }
                let _ = tls.shutdown().await;
            });
        }
    });
    Server {
        port,
        ca_pem: ca_cert.pem(),
        task,
    }
}

fn archive() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let md = b"---\nname: weather\ndescription: Weather.\n---\n";
    let mut h = tar::Header::new_gnu();
    h.set_path("weather/SKILL.md").unwrap();
    h.set_size(md.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &md[..]).unwrap();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&b.into_inner().unwrap()).unwrap();
    e.finish().unwrap()
}

fn sha(bytes: &[u8]) -> String {
    hex_lower(&Sha256::digest(bytes))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_download_matching_its_pin_is_returned_and_reads_as_a_tree() {
    let body = archive();
    let server = serve(body.clone()).await;
    let raw = format!(
        "https://127.0.0.1:{}/skill.tar.gz#sha256={}",
        server.port,
        sha(&body)
    );
    let Source::Url { url, sha256 } = Source::parse(&raw).unwrap() else {
        panic!("not a URL source");
    };
    let got = source::fetch(&url, &sha256, Some(server.ca_pem.as_bytes()))
        .await
        .unwrap();
    assert_eq!(got, body);
    let name = Source::parse(&raw).unwrap().archive_name().unwrap();
    let tree = cordon_skills::Tree::read_archive(&name, &got).unwrap();
    assert!(tree.get("SKILL.md").is_some());
}

#[tokio::test]
async fn a_download_not_matching_its_pin_is_refused_showing_both_hashes() {
    let body = archive();
    let server = serve(body.clone()).await;
    let url = format!("https://127.0.0.1:{}/skill.tar.gz", server.port);
    let e = source::fetch(&url, PIN, Some(server.ca_pem.as_bytes()))
        .await
        .unwrap_err();
    assert!(e.contains("does not match its pin"), "{e}");
    assert!(e.contains(PIN), "{e}");
    assert!(e.contains(&sha(&body)), "{e}");
}

#[tokio::test]
async fn a_server_with_an_unknown_certificate_is_refused() {
    let body = archive();
    let server = serve(body.clone()).await;
    let url = format!("https://127.0.0.1:{}/skill.tar.gz", server.port);
    let e = source::fetch(&url, &sha(&body), None).await.unwrap_err();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
}

#[tokio::test]
async fn http_urls_and_redirects_to_http_are_refused() {
    let body = archive();
    let server = serve(body.clone()).await;
    let ca = Some(server.ca_pem.as_bytes());
    let e = source::fetch(
        &format!("http://127.0.0.1:{}/skill.tar.gz", server.port),
        &sha(&body),
        ca,
    )
    .await
    .unwrap_err();
    assert!(e.contains("only https://"), "{e}");
    let e = source::fetch(
        &format!("https://127.0.0.1:{}/to-http", server.port),
        &sha(&body),
        ca,
    )
    .await
    .unwrap_err();
    assert!(e.contains("/to-http"), "{e}");
}

#[tokio::test]
async fn oversized_downloads_are_cut_off() {
    let server = serve(Vec::new()).await;
    let ca = Some(server.ca_pem.as_bytes());
    for path in ["/huge", "/endless"] {
        let url = format!("https://127.0.0.1:{}{path}", server.port);
        let e = source::fetch(&url, PIN, ca).await.unwrap_err();
        assert!(e.contains("larger than"), "{path}: {e}");
    }
}

#[tokio::test]
async fn an_error_status_is_refused() {
    let server = serve(Vec::new()).await;
    let url = format!("https://127.0.0.1:{}/nope.zip", server.port);
    let e = source::fetch(&url, PIN, Some(server.ca_pem.as_bytes()))
        .await
        .unwrap_err();
    assert!(e.contains("404"), "{e}");
}
