//! What one sandbox may reach, and which credentials are injected for which hosts.
//!
//! An [`EgressPolicy`] is bound to a listener (or a connection) by the caller, never
//! taken from anything the client sends. Clones of a policy share its usage counters
//! (connections open, bytes moved), so limits hold across all of a sandbox's
//! connections.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};

use config::HostPattern;
use secrets::Secret;

/// A credential the proxy may inject: tools only ever see `placeholder`; `value` is
/// written into requests to `hosts` and nowhere else.
pub struct BoundCredential {
    pub name: String,
    pub placeholder: String,
    /// UTF-8 (so the leak scanner looks for exactly these bytes), zeroed when dropped.
    pub value: Secret,
    pub hosts: Vec<HostPattern>,
}

impl BoundCredential {
    pub fn new(
        name: impl Into<String>,
        placeholder: impl Into<String>,
        value: Secret,
        hosts: Vec<HostPattern>,
    ) -> BoundCredential {
        BoundCredential {
            name: name.into(),
            placeholder: placeholder.into(),
            value,
            hosts,
        }
    }

    /// Whether the real value may be sent to `host:port`.
    pub fn bound_to(&self, host: &str, port: u16) -> bool {
        self.hosts.iter().any(|p| p.matches(host, port))
    }
}

impl fmt::Debug for BoundCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundCredential")
            .field("name", &self.name)
            .field("placeholder", &self.placeholder)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

/// Where credentials come from (the vault, in production; a list, in tests).
pub trait CredentialSource {
    fn credentials(&self) -> Vec<BoundCredential>;
}

impl CredentialSource for Vec<(String, String, Secret, Vec<HostPattern>)> {
    fn credentials(&self) -> Vec<BoundCredential> {
        self.iter()
            .map(|(n, p, v, h)| BoundCredential::new(n.clone(), p.clone(), v.clone(), h.clone()))
            .collect()
    }
}

/// The vault's placeholders of a session, as the proxy needs them.
impl CredentialSource for secrets::PlaceholderSet {
    fn credentials(&self) -> Vec<BoundCredential> {
        self.entries()
            .iter()
            .map(|e| {
                BoundCredential::new(
                    e.name.clone(),
                    e.placeholder.as_str(),
                    e.secret.clone(),
                    e.hosts.clone(),
                )
            })
            .collect()
    }
}

/// A check a session applies on top of the allowlist: the runtime's information-flow
/// rules (a session that has read untrusted content may not open a connection to a host
/// it has not contacted yet; private or secret data may not leave for an unbound host).
pub trait ConnectGate: Send + Sync {
    /// Called after the allowlist matched and before resolving. `Err(reason)` refuses
    /// the connection with that reason (audited like any other refusal). `kind` is
    /// `http` (absolute-form request) or `connect` (a CONNECT tunnel).
    fn admit(&self, host: &str, port: u16, kind: &str) -> Result<(), String>;
    /// The connection to `host` was allowed (it is now a contacted host).
    fn contacted(&self, host: &str);
}

/// What one sandbox (agent, session) may reach.
pub struct EgressPolicy {
    pub agent: String,
    pub session: String,
    pub allow: Vec<HostPattern>,
    credentials: Vec<BoundCredential>,
    /// Detects real credential values (and encodings) in outbound traffic.
    leak_scanner: secrets::Redactor,
    gate: Option<Arc<dyn ConnectGate>>,
    pub(crate) usage: Arc<Usage>,
}

/// Shared counters of one policy.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    pub(crate) connections: AtomicUsize,
    pub(crate) bytes: AtomicU64,
}

impl fmt::Debug for EgressPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EgressPolicy")
            .field("agent", &self.agent)
            .field("session", &self.session)
            .field("allow", &self.allow)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl EgressPolicy {
    pub fn new(
        agent: impl Into<String>,
        session: impl Into<String>,
        allow: Vec<HostPattern>,
    ) -> EgressPolicy {
        EgressPolicy {
            agent: agent.into(),
            session: session.into(),
            allow,
            credentials: Vec::new(),
            leak_scanner: secrets::Redactor::empty(),
            gate: None,
            usage: Arc::new(Usage::default()),
        }
    }

    /// Add the credentials of `source` (injected for their hosts, blocked elsewhere).
    pub fn with_credentials(mut self, source: &dyn CredentialSource) -> EgressPolicy {
        let added = source.credentials();
        let pairs = added
            .iter()
            .map(|c| (c.name.clone(), c.value.expose().to_string()))
            .collect();
        self.leak_scanner = self.leak_scanner.with_secrets(pairs);
        self.credentials.extend(added);
        self
    }

    /// Also block outbound traffic carrying these `(name, value)` secrets (e.g. every
    /// vault secret, including ones this agent was not given).
    pub fn with_watched_secrets(mut self, pairs: Vec<(String, String)>) -> EgressPolicy {
        self.leak_scanner = self.leak_scanner.with_secrets(pairs);
        self
    }

    /// Consult `gate` for every connection the allowlist allows.
    pub fn with_gate(mut self, gate: Arc<dyn ConnectGate>) -> EgressPolicy {
        self.gate = Some(gate);
        self
    }

    pub(crate) fn gate(&self) -> Option<&dyn ConnectGate> {
        self.gate.as_deref()
    }

    /// Whether requests must be buffered and scanned (credentials or watched secrets).
    pub(crate) fn inspects(&self) -> bool {
        !self.credentials.is_empty() || !self.leak_scanner.is_empty()
    }

    pub fn credentials(&self) -> &[BoundCredential] {
        &self.credentials
    }

    /// Whether `host:port` is on the allowlist.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        self.allow.iter().any(|p| p.matches(host, port))
    }

    /// Whether any credential is bound to `host:port` (HTTPS to it is then terminated
    /// so the placeholder can be replaced).
    pub fn injects_for(&self, host: &str, port: u16) -> bool {
        self.credentials.iter().any(|c| c.bound_to(host, port))
    }

    /// Names of real credential values found in `data` (any encoding the redactor
    /// knows).
    pub(crate) fn leaked(&self, data: &[u8]) -> Vec<String> {
        if self.leak_scanner.is_empty() {
            return Vec::new();
        }
        self.leak_scanner.scan(data)
    }
}
