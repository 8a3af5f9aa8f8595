//! The per-install certificate authority that signs the leaf certificates the proxy
//! presents when it terminates HTTPS to inject a credential.
//!
//! Guarantees: the key is created with mode 0600 and never leaves `dir`; leaf
//! certificates are issued only for hosts the proxy terminates (hosts with bound
//! credentials) and cached per host. Does not guarantee: anything about clients that do
//! not trust `ca.pem` (their TLS simply fails, which is the safe outcome).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::EgressError;

const CERT_FILE: &str = "ca.pem";
const KEY_FILE: &str = "ca-key.pem";

pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    leaves: Mutex<HashMap<String, Arc<ServerConfig>>>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .finish_non_exhaustive()
    }
}

/// The CA's parameters. Deterministic, so the issuer can be rebuilt from the stored key
/// alone: its name and key identifier then match the stored certificate.
fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, "Cordon egress CA (this install only)");
    p.distinguished_name
        .push(DnType::OrganizationName, "Cordon");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

impl CertificateAuthority {
    /// Load `dir/ca.pem` + `dir/ca-key.pem`, or create both (key mode 0600).
    pub fn load_or_create(dir: &Path) -> Result<CertificateAuthority, EgressError> {
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        let io = |path: &Path, action, source| EgressError::CaIo {
            path: path.to_path_buf(),
            action,
            source,
        };
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => {
                let key_pem =
                    fs::read_to_string(&key_path).map_err(|e| io(&key_path, "read key", e))?;
                let ca_pem =
                    fs::read_to_string(&cert_path).map_err(|e| io(&cert_path, "read", e))?;
                let key = KeyPair::from_pem(&key_pem).map_err(|e| invalid(&key_path, e))?;
                let ca_der = CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|e| {
                    EgressError::CaInvalid {
                        path: cert_path.clone(),
                        reason: format!("no PEM certificate in the file ({e})"),
                    }
                })?;
                Ok(CertificateAuthority::from_parts(key, ca_pem, ca_der))
            }
            (false, false) => {
                fs::create_dir_all(dir).map_err(|e| io(dir, "create directory", e))?;
                let key = KeyPair::generate().map_err(|e| invalid(&key_path, e))?;
                let cert = ca_params()
                    .self_signed(&key)
                    .map_err(|e| invalid(&cert_path, e))?;
                write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)
                    .map_err(|e| io(&key_path, "create key", e))?;
                write_new(&cert_path, cert.pem().as_bytes(), 0o644)
                    .map_err(|e| io(&cert_path, "create", e))?;
                Ok(CertificateAuthority::from_parts(
                    key,
                    cert.pem(),
                    cert.der().clone(),
                ))
            }
            _ => Err(EgressError::CaIncomplete {
                dir: dir.to_path_buf(),
            }),
        }
    }

    fn from_parts(key: KeyPair, ca_pem: String, ca_der: CertificateDer<'static>) -> Self {
        CertificateAuthority {
            issuer: Issuer::new(ca_params(), key),
            ca_pem,
            ca_der,
            leaves: Mutex::new(HashMap::new()),
        }
    }

    /// The CA certificate clients must trust, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// A TLS server configuration presenting a leaf for `host` (cached).
    pub fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>, EgressError> {
        if let Ok(cache) = self.leaves.lock()
            && let Some(cfg) = cache.get(host)
        {
            return Ok(cfg.clone());
        }
        let fail = |reason: String| EgressError::Issue {
            host: host.to_string(),
            reason,
        };
        let mut params =
            CertificateParams::new(vec![host.to_string()]).map_err(|e| fail(e.to_string()))?;
        params.distinguished_name.push(DnType::CommonName, host);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(|e| fail(e.to_string()))?;
        let leaf = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| fail(e.to_string()))?;
        let chain = vec![leaf.der().clone(), self.ca_der.clone()];
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut cfg =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| fail(e.to_string()))?
                .with_no_client_auth()
                .with_single_cert(chain, key_der)
                .map_err(|e| fail(e.to_string()))?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let cfg = Arc::new(cfg);
        if let Ok(mut cache) = self.leaves.lock() {
            cache.insert(host.to_string(), cfg.clone());
        }
        Ok(cfg)
    }
}

fn invalid(path: &Path, e: rcgen::Error) -> EgressError {
    EgressError::CaInvalid {
        path: PathBuf::from(path),
        reason: e.to_string(),
    }
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}
