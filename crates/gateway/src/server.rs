//! [`Gateway`]: checks the exposure rules, binds, and serves the API with its layers.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use config::Config;
use store::Store;
use tokio::net::TcpListener;
use tower_http::timeout::TimeoutLayer;

use crate::bind::{Exposure, check_exposure};
use crate::client::TrustedProxies;
use crate::error::GatewayError;
use crate::hub::{AgentFactory, Hub};
use crate::layers::{ApiError, envelope, guard_origin};
use crate::login_limit::LoginLimiter;
use crate::session::Sessions;

/// Largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Longest time to produce a response.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A token's `last_used_at` is written at most this often.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// What the gateway serves, and where.
pub struct GatewayOptions {
    pub config: Arc<Config>,
    pub store: Arc<Store>,
    pub audit: Arc<audit::Log>,
    /// Overrides `[gateway] bind`.
    pub bind: Option<SocketAddr>,
    /// The state directory (agents' memory and installed skills live under it).
    pub state_dir: std::path::PathBuf,
    /// `skills.lock`, beside the config file.
    pub skills_lock: std::path::PathBuf,
    /// Builds the agents sessions talk to; `None` serves no sessions (`503`).
    pub agents: Option<Arc<dyn AgentFactory>>,
    /// The configured chat channels' platform clients (started by [`Gateway::serve`]).
    pub channels: Vec<crate::chat::ChatChannel>,
    /// Webhook secrets from the vault, by hook name.
    pub hook_secrets: crate::hooks::HookSecrets,
}

/// Shared by every request.
pub struct AppState {
    pub(crate) config: Arc<Config>,
    pub(crate) store: Arc<Store>,
    pub(crate) audit: Arc<audit::Log>,
    pub(crate) sessions: Sessions,
    pub(crate) hub: Arc<Hub>,
    pub(crate) state_dir: std::path::PathBuf,
    pub(crate) skills_lock: std::path::PathBuf,
    pub(crate) limiter: LoginLimiter,
    pub(crate) proxies: TrustedProxies,
    pub(crate) allowed_origins: Vec<String>,
    pub(crate) cookie_name: String,
    pub(crate) tls: bool,
    pub(crate) loopback: bool,
    pub(crate) started: Instant,
    pub(crate) hook_secrets: crate::hooks::HookSecrets,
    /// The running chat channels (set when serving starts).
    pub(crate) chats: std::sync::OnceLock<Arc<crate::chat::Chats>>,
    touched: Mutex<HashMap<String, Instant>>,
}

impl AppState {
    /// Record (at most every [`TOUCH_EVERY`]) that token `id` was used.
    pub(crate) fn note_use(&self, id: &str) {
        let now = Instant::now();
        {
            let mut t = self
                .touched
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if t.get(id)
                .is_some_and(|at| now.duration_since(*at) < TOUCH_EVERY)
            {
                return;
            }
            t.insert(id.to_string(), now);
        }
        let store = self.store.clone();
        let id = id.to_string();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.touch_token(&id, time::OffsetDateTime::now_utc()) {
                tracing::warn!("gateway: cannot record use of token {id}: {e}");
            }
        });
    }
}

enum Bound {
    Plain(TcpListener),
    Tls(crate::tls::TlsListener),
}

/// A gateway bound to its address, not yet serving.
pub struct Gateway {
    bound: Bound,
    local: SocketAddr,
    state: Arc<AppState>,
    exposure: Exposure,
    channels: Vec<crate::chat::ChatChannel>,
}

impl Gateway {
    /// Check the exposure rules, load TLS, bind. Nothing listens if this fails.
    pub async fn bind(opts: GatewayOptions) -> Result<Gateway, GatewayError> {
        let g = &opts.config.gateway;
        let addr = match opts.bind {
            Some(a) => a,
            None => g
                .bind
                .parse()
                .map_err(|e: std::net::AddrParseError| GatewayError::Config {
                    key: "bind",
                    value: g.bind.clone(),
                    reason: e.to_string(),
                })?,
        };
        let tls = match (&g.tls_cert, &g.tls_key) {
            (Some(c), Some(k)) => Some(crate::tls::server_config(c, k)?),
            _ => None,
        };
        let usable = opts.store.active_tokens()?.len();
        let exposure = check_exposure(addr, tls.is_some(), usable)?;
        let proxies =
            TrustedProxies::parse(&g.trusted_proxies).map_err(|reason| GatewayError::Config {
                key: "trusted_proxies",
                value: g.trusted_proxies.join(", "),
                reason,
            })?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| GatewayError::Listen { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| GatewayError::Listen { addr, source })?;
        let state = Arc::new(AppState {
            hub: Hub::new(opts.store.clone(), opts.agents),
            state_dir: opts.state_dir,
            skills_lock: opts.skills_lock,
            sessions: Sessions::new(
                Duration::from_secs(g.session_idle_secs),
                Duration::from_secs(g.session_max_secs),
            ),
            limiter: LoginLimiter::new(
                g.login_max_failures,
                Duration::from_secs(g.login_lockout_secs),
            ),
            proxies,
            allowed_origins: g
                .allowed_origins
                .iter()
                .map(|o| o.to_ascii_lowercase())
                .collect(),
            cookie_name: if tls.is_some() {
                "__Host-cordon_session".into()
            } else {
                "cordon_session".into()
            },
            tls: tls.is_some(),
            loopback: exposure == Exposure::Loopback,
            started: Instant::now(),
            hook_secrets: opts.hook_secrets,
            chats: std::sync::OnceLock::new(),
            touched: Mutex::new(HashMap::new()),
            config: opts.config,
            store: opts.store,
            audit: opts.audit,
        });
        let bound = match tls {
            Some(cfg) => Bound::Tls(
                crate::tls::TlsListener::new(listener, cfg)
                    .map_err(|source| GatewayError::Listen { addr, source })?,
            ),
            None => Bound::Plain(listener),
        };
        Ok(Gateway {
            bound,
            local,
            state,
            exposure,
            channels: opts.channels,
        })
    }

    /// The address actually bound (the port is real even if 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn exposure(&self) -> Exposure {
        self.exposure
    }

    /// The URL to open (a wildcard bind is shown as `localhost`).
    pub fn url(&self) -> String {
        let scheme = if self.state.tls { "https" } else { "http" };
        let host = match self.local.ip() {
            ip if ip.is_unspecified() => "localhost".to_string(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            ip => ip.to_string(),
        };
        format!("{scheme}://{host}:{}", self.local.port())
    }

    /// Serve until `shutdown` completes, then finish in-flight requests.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), GatewayError> {
        let app = app(&self.state);
        let chats = crate::chat::Chats::start(
            self.channels,
            self.state.config.clone(),
            self.state.hub.clone(),
            self.state.store.clone(),
            self.state.audit.clone(),
        )
        .map_err(|reason| GatewayError::Config {
            key: "channels",
            value: String::new(),
            reason,
        })?;
        let chats = Arc::new(chats);
        self.state.hub.set_chats(chats.clone());
        let _ = self.state.chats.set(chats);
        crate::schedules::start(&self.state);
        // Release the runtime state of sessions nobody used for a while.
        let hub = Arc::downgrade(&self.state.hub);
        let reaper = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                let Some(hub) = hub.upgrade() else { return };
                let n = hub.reap_idle(crate::hub::SESSION_IDLE);
                if n > 0 {
                    tracing::debug!("released the runtime state of {n} idle sessions");
                }
            }
        });
        match self.bound {
            Bound::Plain(l) => crate::conn::run(l, app, shutdown).await,
            Bound::Tls(l) => crate::conn::run(l, app, shutdown).await,
        }
        reaper.abort();
        Ok(())
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
}

/// The whole application: API routes under the layers, outermost last.
fn app(state: &Arc<AppState>) -> Router {
    crate::api::router(state)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(from_fn_with_state(state.clone(), guard_origin))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(from_fn_with_state(state.clone(), envelope))
        .with_state(state.clone())
}
