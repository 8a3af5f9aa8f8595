//! Running agent sessions for the gateway: building agents on first use, running turns in
//! the background, and each session's event log (persisted, then broadcast to whoever
//! follows the session).
//!
//! Guarantees: sessions run concurrently (each turn is its own task; a slow model or
//! tool holds up only its own session); one turn per session at a time (a second message
//! while a turn runs is refused, so a session's tool calls never overlap and an approval
//! covers exactly the command it was given for); every event is stored before it is
//! broadcast, under the session's lock, so `seq` order is broadcast order and a follower
//! that subscribes, then replays the store, then forwards live events with a higher
//! `seq`, sees each event exactly once and in order; a client that disconnects loses
//! nothing (the turn goes on, and its events wait in the store).
//!
//! A sub-agent's approval request is shown in the stream of the top-level session it
//! descends from (its `session` field names the sub-agent's session).
//!
//! Does not: persist a running turn across a gateway restart (the turn's finished items
//! are stored; an interrupted turn simply has no `turn_finished` event).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use agent::{Agent, AgentEvent, TurnInput};
use async_trait::async_trait;
use runtime::{ApprovalAnswer, ApprovalRequest, Approver};
use serde_json::Value;
use store::{EventRecord, SessionRecord, Store};

use crate::events::SessionEvent;
use tokio::sync::{OnceCell, broadcast};

/// Builds the agents a gateway runs. The `cordon` binary implements it with the same
/// wiring as `cordon chat` (sandbox, egress proxy, vault, policy).
pub trait AgentFactory: Send + Sync {
    /// The configured agents' names.
    fn names(&self) -> Vec<String>;
    /// Build agent `name`, asking humans through `approver`.
    fn build(&self, name: &str, approver: Arc<dyn Approver>) -> Result<Agent, String>;
}

/// Live events buffered per follower before it counts as lagging (it then catches up
/// from the store).
const CHANNEL_CAPACITY: usize = 256;

struct Channel {
    tx: broadcast::Sender<Arc<EventRecord>>,
}

fn new_channel() -> Arc<Mutex<Channel>> {
    Arc::new(Mutex::new(Channel {
        tx: broadcast::channel(CHANNEL_CAPACITY).0,
    }))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why a turn could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("a turn of session {0} is running; wait for its turn_finished event")]
    Busy(String),
    #[error("{0}")]
    Agent(String),
    #[error("{0}")]
    Store(#[from] store::StoreError),
}

pub struct Hub {
    store: Arc<Store>,
    factory: Option<Arc<dyn AgentFactory>>,
    agents: Mutex<HashMap<String, Arc<OnceCell<Arc<Agent>>>>>,
    channels: Mutex<HashMap<String, Arc<Mutex<Channel>>>>,
    running: Mutex<HashSet<String>>,
    /// Sessions whose runtime state is live: agent name and last activity.
    active: Mutex<HashMap<String, (String, Instant)>>,
    /// Every approval request and settlement, for fronts that show them outside a
    /// session's stream (chat channels).
    approvals: broadcast::Sender<ApprovalNotice>,
    /// What every agent's `send_message` sends through.
    messenger: Arc<crate::messenger::ChatMessenger>,
    me: Weak<Hub>,
}

/// An approval request shown, or settled, for fronts beyond the session stream.
#[derive(Debug, Clone)]
pub enum ApprovalNotice {
    Requested(Arc<ApprovalRequest>),
    Settled {
        id: String,
        /// The top-level session the request is shown in.
        shown_in: String,
        answer: Value,
        by: String,
    },
}

/// A session idle this long has its runtime state (sandbox, placeholders, contacted
/// hosts) released; its label comes back from its stored items when it is used again.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);

impl Hub {
    pub fn new(store: Arc<Store>, factory: Option<Arc<dyn AgentFactory>>) -> Arc<Hub> {
        Arc::new_cyclic(|me| Hub {
            store,
            factory,
            agents: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
            running: Mutex::new(HashSet::new()),
            active: Mutex::new(HashMap::new()),
            approvals: broadcast::channel(CHANNEL_CAPACITY).0,
            messenger: Arc::default(),
            me: me.clone(),
        })
    }

    /// Agent `name`, built on first use (and again after a failed build).
    pub async fn agent(&self, name: &str) -> Result<Arc<Agent>, String> {
        let Some(factory) = self.factory.clone() else {
            return Err("this gateway runs no agents".into());
        };
        if !factory.names().iter().any(|n| n == name) {
            return Err(format!(
                "no agent `{name}`; configured agents: {}",
                factory.names().join(", ")
            ));
        }
        let cell = lock(&self.agents)
            .entry(name.to_string())
            .or_default()
            .clone();
        let approver: Arc<dyn Approver> = Arc::new(HubApprover {
            hub: self.me.clone(),
        });
        let name = name.to_string();
        let messenger = self.messenger.clone();
        cell.get_or_try_init(|| async move {
            let agent =
                tokio::task::spawn_blocking(move || factory.build(&name, approver).map(Arc::new))
                    .await
                    .map_err(|e| format!("building the agent failed: {e}"))??;
            agent.runtime().set_messenger(messenger);
            Ok(agent)
        })
        .await
        .cloned()
    }

    /// The chat channels `send_message` sends through (every agent's, built or not);
    /// `false` when already set.
    pub fn set_chats(&self, chats: Arc<crate::chat::Chats>) -> bool {
        self.messenger.attach(chats)
    }

    fn channel(&self, session: &str) -> Arc<Mutex<Channel>> {
        lock(&self.channels)
            .entry(session.to_string())
            .or_insert_with(new_channel)
            .clone()
    }

    /// Store an event of `session`, then broadcast it to its followers.
    pub fn emit(&self, session: &str, event: &SessionEvent) -> Result<EventRecord, String> {
        let (kind, data) = event.to_parts();
        let channel = self.channel(session);
        let ch = lock(&channel);
        let event = self
            .store
            .append_event(session, &kind, data)
            .map_err(|e| format!("cannot store event `{kind}` of session {session}: {e}"))?;
        // No follower is not an error.
        let _ = ch.tx.send(Arc::new(event.clone()));
        Ok(event)
    }

    /// Follow `session`: subscribe first, then replay the store, so nothing falls
    /// between the two (see [`Follower`]).
    pub fn follow(&self, session: &str, after: u64) -> Follower {
        // Subscribed under the map's lock, so `release_channel` cannot drop the channel
        // between finding it and subscribing.
        let rx = {
            let mut channels = lock(&self.channels);
            let ch = channels
                .entry(session.to_string())
                .or_insert_with(new_channel)
                .clone();
            lock(&ch).tx.subscribe()
        };
        Follower {
            store: self.store.clone(),
            session: session.to_string(),
            last: after,
            backlog: std::collections::VecDeque::new(),
            rx,
            replayed: false,
        }
    }

    /// Follow every approval request and settlement of every session.
    pub fn approvals(&self) -> broadcast::Receiver<ApprovalNotice> {
        self.approvals.subscribe()
    }

    pub fn is_running(&self, session: &str) -> bool {
        lock(&self.running).contains(session)
    }

    /// Create a session of agent `name` (its memory loaded, `session_start` audited).
    pub async fn create_session(&self, name: &str) -> Result<SessionRecord, String> {
        let agent = self.agent(name).await?;
        let session = agent.new_session().map_err(|e| e.to_string())?;
        agent.end_session(&session);
        self.store
            .get_session(&session.id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("session {} vanished", session.id))
    }

    /// Start a turn of `session` with the user's `text`; returns the `turn_started`
    /// event. The turn runs in its own task; its events go to the session's log.
    pub fn start_turn(
        &self,
        session: &SessionRecord,
        text: &str,
    ) -> Result<EventRecord, StartError> {
        self.start_turn_with(session, TurnInput::user(text))
    }

    /// Start a turn of `session` from `input` (the user's words, or a task with untrusted
    /// content from a chat group, a webhook…); as [`Hub::start_turn`].
    pub fn start_turn_with(
        &self,
        session: &SessionRecord,
        input: TurnInput,
    ) -> Result<EventRecord, StartError> {
        if !lock(&self.running).insert(session.id.clone()) {
            return Err(StartError::Busy(session.id.clone()));
        }
        let started = match self.emit(
            &session.id,
            &SessionEvent::TurnStarted {
                text: input.text.clone(),
                source: input.untrusted.as_ref().map(|(s, _)| s.clone()),
            },
        ) {
            Ok(e) => e,
            Err(e) => {
                lock(&self.running).remove(&session.id);
                return Err(StartError::Agent(e));
            }
        };
        let Some(hub) = self.me.upgrade() else {
            lock(&self.running).remove(&session.id);
            return Err(StartError::Agent("the gateway is shutting down".into()));
        };
        let id = session.id.clone();
        let agent_name = session.agent.clone();
        self.touch(&id, &agent_name);
        tokio::spawn(async move {
            let outcome = hub.run_turn(&id, &agent_name, &input).await;
            let event = match outcome {
                Ok(finished) => finished,
                Err(error) => SessionEvent::TurnFailed { error },
            };
            if let Err(e) = hub.emit(&id, &event) {
                tracing::warn!("{e}");
            }
            hub.touch(&id, &agent_name);
            lock(&hub.running).remove(&id);
            hub.release_channel(&id);
        });
        Ok(started)
    }

    fn touch(&self, session: &str, agent: &str) {
        lock(&self.active).insert(session.to_string(), (agent.to_string(), Instant::now()));
    }

    /// Drop `session`'s broadcast channel when nobody follows it and no turn runs.
    pub fn release_channel(&self, session: &str) {
        if self.is_running(session) {
            return;
        }
        let mut channels = lock(&self.channels);
        if channels
            .get(session)
            .is_some_and(|c| lock(c).tx.receiver_count() == 0)
        {
            channels.remove(session);
        }
    }

    /// Release the runtime state of sessions idle for `idle` (not running); returns how
    /// many were released.
    pub fn reap_idle(&self, idle: Duration) -> usize {
        let now = Instant::now();
        let due: Vec<(String, String)> = {
            let mut active = lock(&self.active);
            let due: Vec<(String, String)> = active
                .iter()
                .filter(|(id, (_, at))| now.duration_since(*at) >= idle && !self.is_running(id))
                .map(|(id, (agent, _))| (id.clone(), agent.clone()))
                .collect();
            for (id, _) in &due {
                active.remove(id);
            }
            due
        };
        for (id, agent) in &due {
            let cell = lock(&self.agents).get(agent).cloned();
            if let Some(a) = cell.and_then(|c| c.get().cloned()) {
                a.runtime().end_session(id);
            }
            self.release_channel(id);
        }
        due.len()
    }

    async fn run_turn(
        &self,
        id: &str,
        agent_name: &str,
        input: &TurnInput,
    ) -> Result<SessionEvent, String> {
        let agent = self.agent(agent_name).await?;
        let mut session = agent.load_session(id).map_err(|e| e.to_string())?;
        let mut names: HashMap<String, String> = HashMap::new();
        // Streamed text (and reasoning) is stored and sent in pieces of at most DELTA_EVERY
        // (or DELTA_MAX_BYTES), not one event per token: each event is a store transaction.
        // `pending` holds one kind at a time, so the order of text and reasoning is kept.
        let mut pending = String::new();
        let mut pending_reasoning = false;
        let mut last_flush = Instant::now();
        let flush = |pending: &mut String, reasoning: bool, last_flush: &mut Instant| {
            if !pending.is_empty() {
                let text = std::mem::take(pending);
                let event = if reasoning {
                    SessionEvent::ReasoningDelta { text }
                } else {
                    SessionEvent::TextDelta { text }
                };
                if let Err(e) = self.emit(id, &event) {
                    tracing::warn!("{e}");
                }
            }
            *last_flush = Instant::now();
        };
        let mut on_event = |event: AgentEvent| {
            let (reasoning, piece) = match &event {
                AgentEvent::TextDelta(t) => (false, Some(t)),
                AgentEvent::ReasoningDelta(t) => (true, Some(t)),
                _ => (false, None),
            };
            if let Some(t) = piece {
                if reasoning != pending_reasoning {
                    flush(&mut pending, pending_reasoning, &mut last_flush);
                    pending_reasoning = reasoning;
                }
                pending.push_str(t);
                if pending.len() >= DELTA_MAX_BYTES || last_flush.elapsed() >= DELTA_EVERY {
                    flush(&mut pending, pending_reasoning, &mut last_flush);
                }
                return;
            }
            let event = match event {
                AgentEvent::TextDelta(_) | AgentEvent::ReasoningDelta(_) => return,
                AgentEvent::ToolCall(c) => {
                    names.insert(c.id.clone(), c.name.clone());
                    SessionEvent::ToolCall {
                        id: c.id,
                        name: c.name,
                        arguments: c.arguments,
                    }
                }
                AgentEvent::ToolResult(o) => SessionEvent::ToolResult {
                    name: names.get(&o.call_id).cloned(),
                    call_id: o.call_id,
                    content: o.content,
                    is_error: o.is_error,
                },
            };
            flush(&mut pending, pending_reasoning, &mut last_flush);
            if let Err(e) = self.emit(id, &event) {
                tracing::warn!("{e}");
            }
        };
        let result = agent
            .run_turn_with(&mut session, input, &mut on_event)
            .await;
        flush(&mut pending, pending_reasoning, &mut last_flush);
        let labels = agent.labels(&session);
        match result {
            Ok(outcome) => Ok(SessionEvent::TurnFinished {
                answer: outcome.answer,
                steps: u64::from(outcome.steps),
                labels: serde_json::to_value(labels).unwrap_or(Value::Null),
            }),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Labels of a stored session: its items' join, plus what the running agent knows.
    pub async fn labels(&self, session: &SessionRecord) -> Result<Value, String> {
        let items = self
            .store
            .load_items(&session.id)
            .map_err(|e| e.to_string())?;
        let items: Vec<agent::ContextItem> = items
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect();
        let mut labels = agent::session_labels(&items);
        let cell = lock(&self.agents).get(&session.agent).cloned();
        if let Some(agent) = cell.and_then(|c| c.get().cloned()) {
            labels.join(&agent.runtime().session_labels(&session.id));
        }
        serde_json::to_value(labels).map_err(|e| e.to_string())
    }
}

/// One follower of a session's events: yields each event with `seq` above the starting
/// point exactly once, in order, replaying the store first and catching up from it again
/// whenever the live channel lags or skips.
pub struct Follower {
    store: Arc<Store>,
    session: String,
    last: u64,
    backlog: std::collections::VecDeque<EventRecord>,
    rx: broadcast::Receiver<Arc<EventRecord>>,
    replayed: bool,
}

/// Streamed text waits at most this long before it is stored and sent (while more
/// arrives; what remains is sent with the next event or at the end of the turn).
const DELTA_EVERY: Duration = Duration::from_millis(30);
/// ... or until this many bytes are waiting.
const DELTA_MAX_BYTES: usize = 1024;

/// Events read from the store at a time.
const REPLAY_BATCH: usize = 500;

impl Follower {
    fn refill(&mut self) -> Result<bool, String> {
        let batch = self
            .store
            .events_after(&self.session, self.last, REPLAY_BATCH)
            .map_err(|e| e.to_string())?;
        let more = batch.len() == REPLAY_BATCH;
        self.backlog.extend(batch);
        Ok(more)
    }

    /// The next event; `Ok(None)` when the hub is gone.
    pub async fn next(&mut self) -> Result<Option<EventRecord>, String> {
        loop {
            if let Some(e) = self.backlog.pop_front() {
                if e.seq <= self.last {
                    continue;
                }
                self.last = e.seq;
                return Ok(Some(e));
            }
            if !self.replayed {
                if !self.refill()? {
                    self.replayed = true;
                }
                continue;
            }
            match self.rx.recv().await {
                Ok(e) if e.seq <= self.last => {}
                Ok(e) if e.seq == self.last + 1 => {
                    self.last = e.seq;
                    return Ok(Some((*e).clone()));
                }
                // A gap or lag: the store has everything.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.replayed = false;
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(None),
            }
        }
    }
}

/// The gateway's approval front: a request is shown in its session's event stream
/// (`approval_requested`) and answered through `POST /api/approvals/{id}` by whoever
/// holds an `approver` token; the answer (or the timeout) is shown as
/// `approval_settled`. It never answers by itself.
struct HubApprover {
    hub: Weak<Hub>,
}

#[async_trait]
impl Approver for HubApprover {
    async fn ask(&self, req: &ApprovalRequest) -> ApprovalAnswer {
        if let Some(hub) = self.hub.upgrade() {
            let event = SessionEvent::ApprovalRequested {
                id: req.id.clone(),
                session: req.session.clone(),
                action: req.action.clone(),
                tool: req.tool.clone(),
                reason: req.reason.clone(),
                rule: req.rule.clone(),
                labels: req.labels.clone(),
                untrusted_sources: req.untrusted_sources.clone(),
            };
            // A sub-agent's request is shown in the top-level session's stream.
            let shown_in = req.root_session.as_deref().unwrap_or(&req.session);
            if let Err(e) = hub.emit(shown_in, &event) {
                tracing::warn!("{e}");
            }
            let _ = hub
                .approvals
                .send(ApprovalNotice::Requested(Arc::new(req.clone())));
        }
        // Answered through the store by the API (or expired): StoredApprovals notices.
        std::future::pending().await
    }

    fn settled_elsewhere(&self, req: &ApprovalRequest, answer: &ApprovalAnswer, by: &str) {
        if let Some(hub) = self.hub.upgrade() {
            let answer = serde_json::to_value(answer).unwrap_or(Value::Null);
            let event = SessionEvent::ApprovalSettled {
                id: req.id.clone(),
                session: req.session.clone(),
                answer: answer.clone(),
                by: Some(by.to_string()),
            };
            let shown_in = req.root_session.as_deref().unwrap_or(&req.session);
            if let Err(e) = hub.emit(shown_in, &event) {
                tracing::warn!("{e}");
            }
            let _ = hub.approvals.send(ApprovalNotice::Settled {
                id: req.id.clone().unwrap_or_default(),
                shown_in: shown_in.to_string(),
                answer,
                by: by.to_string(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_follower_gets_every_event_once_in_order_across_replay_and_live() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
        let s = store.create_session("a").unwrap().id;
        let hub = Hub::new(store, None);
        for i in 0..3 {
            hub.emit(
                &s,
                &SessionEvent::TextDelta {
                    text: i.to_string(),
                },
            )
            .unwrap();
        }
        let mut f = hub.follow(&s, 1);
        let writer = {
            let hub = hub.clone();
            let s = s.clone();
            tokio::spawn(async move {
                for i in 3..600 {
                    hub.emit(
                        &s,
                        &SessionEvent::TextDelta {
                            text: i.to_string(),
                        },
                    )
                    .unwrap();
                    if i % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        };
        let mut seen = Vec::new();
        while seen.len() < 599 {
            let e = tokio::time::timeout(Duration::from_secs(10), f.next())
                .await
                .expect("follower stalled")
                .unwrap()
                .unwrap();
            seen.push(e.seq);
        }
        writer.await.unwrap();
        // More than the channel holds was sent while the follower read: it caught up
        // from the store without a gap or a repeat.
        assert_eq!(seen, (2..=600).collect::<Vec<u64>>());

        // Released only when nobody follows.
        hub.release_channel(&s);
        assert!(lock(&hub.channels).contains_key(&s));
        drop(f);
        hub.release_channel(&s);
        assert!(!lock(&hub.channels).contains_key(&s));
        assert_eq!(hub.reap_idle(Duration::ZERO), 0);
    }
}
