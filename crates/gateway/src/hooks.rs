//! `POST /hooks/NAME`: an inbound webhook starts its configured task, with the request body
//! as untrusted content, in a session of its own. No token: the delivery is authenticated
//! by its HMAC-SHA256 signature (see [`channels::webhook`]) under the hook's vault secret.
//!
//! Refused, each with a `trigger` audit record naming why: an unknown hook (404), a hook
//! without a secret (403: every delivery, until one is configured), a body over
//! `max_body_bytes` (413, also when it says so in `Content-Length` before it is read), a
//! missing or bad signature or a timestamp outside `window_secs` (401), a signature seen
//! before (409, a replay: the store keeps each for twice the window, across restarts).
//!
//! A task started by a webhook cannot answer its own approvals: they are shown where its
//! `reply_to` points and in the session stream, and answered by approvers (chat, CLI, web)
//! or expire as denials.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agent::TurnInput;
use audit::event::{TriggerEvent, WebhookDelivery};
use axum::Json;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::routing::post;
use serde_json::{Value, json};

use crate::client::PeerAddr;
use crate::layers::ApiError;
use crate::server::AppState;

/// A webhook's HMAC key, from the vault. No `Debug`: the value is never printed.
pub struct HookSecret(pub Vec<u8>);

/// Every hook's secret, by hook name (only hooks whose secret is in the vault).
pub type HookSecrets = HashMap<String, HookSecret>;

pub(crate) fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new().route("/hooks/{name}", post(deliver))
}

fn record(state: &AppState, d: WebhookDelivery) {
    let session = d.session.clone();
    if let Err(e) = state
        .audit
        .record_event(session.as_deref(), TriggerEvent::Webhook(d))
    {
        tracing::error!("webhook: cannot write its audit record: {e}");
    }
}

async fn deliver(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(name): Path<String>,
    request: Request,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (parts, body) = request.into_parts();
    let client = state.proxies.client(peer.0, &parts.headers).to_string();
    let header = |h: &str| {
        parts
            .headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let announced: u64 = header(header::CONTENT_LENGTH.as_str())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut delivery = WebhookDelivery {
        hook: name.chars().take(64).collect(),
        bytes: announced,
        accepted: false,
        reason: None,
        session: None,
        client,
    };
    let refuse = |state: &AppState, mut d: WebhookDelivery, status: StatusCode, why: String| {
        d.reason = Some(why.clone());
        record(state, d);
        ApiError::new(status, why)
    };
    let Some(hook) = state.config.webhooks.get(&name).cloned() else {
        return Err(refuse(
            &state,
            delivery,
            StatusCode::NOT_FOUND,
            format!("no webhook `{}`", name.chars().take(64).collect::<String>()),
        ));
    };
    let Some(secret) = state.hook_secrets.get(&name) else {
        let why = match &hook.secret {
            None => format!(
                "webhook `{name}` has no secret (webhooks.{name}.secret); every delivery is refused"
            ),
            Some(s) => format!("webhook `{name}`'s secret `{s}` is not in the vault"),
        };
        return Err(refuse(&state, delivery, StatusCode::FORBIDDEN, why));
    };
    if announced > hook.max_body_bytes {
        return Err(refuse(
            &state,
            delivery,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is over webhooks.{name}.max_body_bytes ({})",
                hook.max_body_bytes
            ),
        ));
    }
    let (ts, sig) = (header("x-cordon-timestamp"), header("x-cordon-signature"));
    let limit = usize::try_from(hook.max_body_bytes).unwrap_or(usize::MAX);
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return Err(refuse(
                &state,
                delivery,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is over webhooks.{name}.max_body_bytes ({}), or was cut off",
                    hook.max_body_bytes
                ),
            ));
        }
    };
    delivery.bytes = body.len() as u64;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = match channels::webhook::verify(
        &secret.0,
        ts.as_deref(),
        sig.as_deref(),
        &body,
        now,
        hook.window_secs,
    ) {
        Ok(s) => s,
        Err(e) => {
            return Err(refuse(
                &state,
                delivery,
                StatusCode::UNAUTHORIZED,
                e.to_string(),
            ));
        }
    };
    let st = state.clone();
    let (hook_name, sig2) = (name.clone(), signature.clone());
    let keep = Duration::from_secs(hook.window_secs * 2);
    let fresh =
        crate::layers::blocking(move || st.store.note_webhook_delivery(&hook_name, &sig2, keep))
            .await?;
    if !fresh {
        return Err(refuse(
            &state,
            delivery,
            StatusCode::CONFLICT,
            "this delivery was received before (a replay)".into(),
        ));
    }
    let session = match state.hub.create_session(&hook.agent).await {
        Ok(s) => s,
        Err(e) => {
            return Err(refuse(
                &state,
                delivery,
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot start the task: {e}"),
            ));
        }
    };
    if let Some(reply_to) = &hook.reply_to
        && let Some(chats) = state.chats.get()
        && let Err(e) = chats.watch(reply_to, &session.id)
    {
        tracing::warn!("webhook `{name}`: its answer cannot go to {reply_to}: {e}");
    }
    let input = TurnInput::untrusted(
        &format!("webhook:{name}"),
        &hook.task,
        &format!("webhook {name}"),
        &String::from_utf8_lossy(&body),
    );
    let started = match state.hub.start_turn_with(&session, input) {
        Ok(e) => e,
        Err(e) => {
            return Err(refuse(
                &state,
                delivery,
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot start the task: {e}"),
            ));
        }
    };
    delivery.accepted = true;
    delivery.session = Some(session.id.clone());
    record(&state, delivery);
    if let Some(reply_to) = hook.reply_to.clone() {
        deliver_answer(&state, reply_to, session.id.clone(), started.seq);
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "session": session.id, "hook": name })),
    ))
}

/// Send the task's answer to `reply_to` when the turn ends (in the background).
pub(crate) fn deliver_answer(state: &Arc<AppState>, reply_to: String, session: String, seq: u64) {
    let st = state.clone();
    tokio::spawn(async move {
        let answer = crate::chat::wait_for_answer(&st.hub, &session, seq).await;
        let Some(chats) = st.chats.get() else { return };
        let text = match answer {
            Ok(Some(a)) => a,
            Ok(None) => return,
            Err(e) => format!("The task failed: {e}"),
        };
        chats.deliver(&reply_to, &session, &text).await;
    });
}
