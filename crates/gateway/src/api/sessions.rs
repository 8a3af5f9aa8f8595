//! Agents and their sessions: list agents (read), list / read sessions and their event
//! logs (read), follow a session over a WebSocket (read), create sessions and send
//! messages (operator).
//!
//! Guarantees: a message starts a turn in the background and is answered `202` with the
//! `turn_started` event's `seq` (the client follows from `seq - 1` and misses nothing);
//! a second message while a turn runs is `409`; the WebSocket upgrade needs credentials
//! (the scope layer) *and* an `Origin` that is the gateway's own or an allowed one — a
//! missing Origin is refused too, so a page on another site can never attach to a
//! session even with the user's cookie; a follower gets each event once, in order, from
//! the `seq` it asked for (see [`crate::hub::Follower`]).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use store::{SessionRecord, TokenScope};
use utoipa::ToSchema;

use crate::hub::{Follower, StartError};
use crate::layers::{ApiError, Https, RequestHost, blocking, check_origin};
use crate::server::AppState;

/// Longest accepted user message, in bytes.
pub const MAX_MESSAGE: usize = 32 * 1024;
/// Most events one `GET …/events` returns.
const MAX_EVENTS: usize = 1000;
/// How often the server pings a WebSocket follower.
const PING_EVERY: Duration = Duration::from_secs(20);

pub(crate) fn router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    super::scoped(
        state,
        TokenScope::Read,
        Router::new()
            .route("/api/agents", get(agents))
            .route("/api/sessions", get(list))
            .route("/api/sessions/{id}", get(read))
            .route("/api/sessions/{id}/events", get(events))
            .route("/api/sessions/{id}/stream", get(stream)),
    )
    .merge(super::scoped(
        state,
        TokenScope::Operator,
        Router::new()
            .route("/api/sessions", post(create))
            .route("/api/sessions/{id}/messages", post(send)),
    ))
}

async fn session_record(state: &Arc<AppState>, id: &str) -> Result<SessionRecord, ApiError> {
    let st = state.clone();
    let key = id.to_string();
    blocking(move || st.store.get_session(&key))
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no session `{id}`")))
}

fn session_json(state: &AppState, s: &SessionRecord, labels: Value) -> Value {
    json!({
        "id": s.id,
        "agent": s.agent,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "items": s.items,
        "running": state.hub.is_running(&s.id),
        "labels": labels,
    })
}

/// Configured agents: name, tools, exec mode and egress allowlist.
#[utoipa::path(get, path = "/api/agents", tag = "sessions",
    responses((status = 200, description = "`{agents: [{name, tools, exec_mode, egress_allow}]}`")))]
pub(crate) async fn agents(State(state): State<Arc<AppState>>) -> Json<Value> {
    let agents: Vec<Value> = state
        .config
        .agents
        .iter()
        .map(|(name, a)| {
            json!({
                "name": name,
                "tools": a.tools,
                "exec_mode": a.exec.mode,
                "egress_allow": a.egress.allow,
            })
        })
        .collect();
    Json(json!({ "agents": agents }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only this agent's sessions.
    agent: Option<String>,
}

/// Sessions, most recently used first (`labels` is `null` here; read one session for it).
#[utoipa::path(get, path = "/api/sessions", tag = "sessions",
    params(("agent" = Option<String>, Query, description = "only this agent's sessions")),
    responses((status = 200, description = "`{sessions: [Session]}`")))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let st = state.clone();
    let records = blocking(move || st.store.list_sessions(q.agent.as_deref())).await?;
    let sessions: Vec<Value> = records
        .iter()
        .map(|s| session_json(&state, s, Value::Null))
        .collect();
    Ok(Json(json!({ "sessions": sessions })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateSession {
    /// The agent to talk to (a name from `GET /api/agents`).
    agent: String,
}

/// Start a session with an agent (its memory is loaded, `session_start` is audited).
#[utoipa::path(post, path = "/api/sessions", tag = "sessions", request_body = CreateSession,
    responses((status = 201, description = "the new `Session`"),
              (status = 404, description = "no such agent")))]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    Json(body): Json<CreateSession>,
) -> Result<Response, ApiError> {
    if !state.config.agents.contains_key(&body.agent) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no agent `{}`; configured agents: {}",
                body.agent,
                state
                    .config
                    .agents
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let record = state
        .hub
        .create_session(&body.agent)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e))?;
    let labels = state.hub.labels(&record).await.unwrap_or(Value::Null);
    Ok((
        StatusCode::CREATED,
        Json(session_json(&state, &record, labels)),
    )
        .into_response())
}

/// One stored context item, as the UI shows it.
fn item_json(item: &agent::ContextItem) -> Value {
    use agent::provider::Message;
    let p = &item.provenance;
    let mut v = match &item.message {
        Message::System { content } => json!({ "role": "system", "text": content }),
        Message::User { content } => json!({ "role": "user", "text": content }),
        Message::Assistant {
            content,
            tool_calls,
        } => json!({
            "role": "assistant",
            "text": content.clone().unwrap_or_default(),
            "tool_calls": tool_calls
                .iter()
                .map(|c| json!({ "id": c.id, "name": c.name, "arguments": c.arguments }))
                .collect::<Vec<_>>(),
        }),
        Message::Tool {
            call_id,
            name,
            content,
            is_error,
        } => json!({
            "role": "tool",
            "text": content,
            "name": name,
            "call_id": call_id,
            "is_error": is_error,
        }),
    };
    v["source"] = json!(p.source);
    v["integrity"] = json!(p.integrity);
    v["confidentiality"] = json!(p.confidentiality);
    v
}

/// A session with its stored items and its label.
#[utoipa::path(get, path = "/api/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, description = "session id")),
    responses((status = 200, description = "`{session: Session, items: [Item]}`"),
              (status = 404, description = "no such session")))]
pub(crate) async fn read(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = session_record(&state, &id).await?;
    let st = state.clone();
    let key = id.clone();
    let raw = blocking(move || st.store.load_items(&key)).await?;
    let mut items = Vec::with_capacity(raw.len());
    for (index, value) in raw.into_iter().enumerate() {
        let item: agent::ContextItem = serde_json::from_value(value)
            .map_err(|e| ApiError::internal(format!("session {id} item #{}: {e}", index + 1)))?;
        items.push(item_json(&item));
    }
    let labels = state
        .hub
        .labels(&record)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({
        "session": session_json(&state, &record, labels),
        "items": items,
    })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendMessage {
    /// What the user says (at most 32 KiB).
    text: String,
}

/// Send a message: starts a turn in the background. Follow it with the event stream.
#[utoipa::path(post, path = "/api/sessions/{id}/messages", tag = "sessions",
    params(("id" = String, Path, description = "session id")), request_body = SendMessage,
    responses((status = 202, description = "`{session, seq}`: `seq` of the `turn_started` event"),
              (status = 404, description = "no such session"),
              (status = 409, description = "a turn of this session is running"),
              (status = 422, description = "empty or too long")))]
pub(crate) async fn send(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Json(body): Json<SendMessage>,
) -> Result<Response, ApiError> {
    let text = body.text.trim();
    if text.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "`text` is empty",
        ));
    }
    if text.len() > MAX_MESSAGE {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "`text` is {} bytes; a message may have at most {MAX_MESSAGE}",
                text.len()
            ),
        ));
    }
    let record = session_record(&state, &id).await?;
    if !state.config.agents.contains_key(&record.agent) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "session {id} belongs to agent `{}`, which is no longer configured",
                record.agent
            ),
        ));
    }
    let started = state.hub.start_turn(&record, text).map_err(|e| match e {
        StartError::Busy(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        other => ApiError::internal(other),
    })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "session": id, "seq": started.seq })),
    )
        .into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    /// Only events with a higher `seq` (default 0: all).
    after: Option<u64>,
    /// At most this many (default and maximum 1000).
    limit: Option<usize>,
}

/// A session's persisted events after a `seq`.
#[utoipa::path(get, path = "/api/sessions/{id}/events", tag = "sessions",
    params(("id" = String, Path, description = "session id"),
           ("after" = Option<u64>, Query, description = "only events with a higher seq"),
           ("limit" = Option<usize>, Query, description = "at most this many (≤ 1000)")),
    responses((status = 200, description = "`{events: [Event], last_seq}`"),
              (status = 404, description = "no such session")))]
pub(crate) async fn events(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    session_record(&state, &id).await?;
    let after = q.after.unwrap_or(0);
    let limit = q.limit.unwrap_or(MAX_EVENTS).clamp(1, MAX_EVENTS);
    let st = state.clone();
    let events = blocking(move || st.store.events_after(&id, after, limit)).await?;
    let last = events.last().map_or(after, |e| e.seq);
    Ok(Json(json!({ "events": events, "last_seq": last })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamQuery {
    /// Send events with a higher `seq` (default 0: from the start).
    after: Option<u64>,
}

/// Follow a session over a WebSocket: each event (`seq > after`) is one JSON text
/// message, persisted ones first, then live ones. Needs an `Origin` of this gateway.
#[utoipa::path(get, path = "/api/sessions/{id}/stream", tag = "sessions",
    params(("id" = String, Path, description = "session id"),
           ("after" = Option<u64>, Query, description = "send events with a higher seq")),
    responses((status = 101, description = "WebSocket of `Event` messages"),
              (status = 401, description = "no credentials"),
              (status = 403, description = "missing or foreign Origin"),
              (status = 404, description = "no such session")))]
pub(crate) async fn stream(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<StreamQuery>,
    headers: HeaderMap,
    Extension(Https(https)): Extension<Https>,
    Extension(RequestHost(host)): Extension<RequestHost>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Err(ApiError::forbidden(
            "a WebSocket upgrade must send an Origin header naming this gateway",
        ));
    };
    check_origin(&state.allowed_origins, https, &host, origin)?;
    session_record(&state, &id).await?;
    let follower = state.hub.follow(&id, q.after.unwrap_or(0));
    let hub = state.hub.clone();
    Ok(ws.on_upgrade(move |socket| async move {
        pump(socket, follower).await;
        hub.release_channel(&id);
    }))
}

/// Send the follower's events until the client goes away.
async fn pump(mut socket: WebSocket, mut follower: Follower) {
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            event = follower.next() => match event {
                Ok(Some(e)) => {
                    let text = match serde_json::to_string(&e) {
                        Ok(t) => t,
                        Err(err) => {
                            tracing::warn!("event {} unencodable: {err}", e.seq);
                            continue;
                        }
                    };
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(err) => {
                    tracing::warn!("event stream: {err}");
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
