//! What is attached to a [`Runtime`] after it is built: the agent's memory, the
//! quarantined reader and the sub-agent runner (the last two are implemented by the agent
//! crate, which owns the model), the chat channels `send_message` sends through (the
//! gateway's), plus the bookkeeping of memory and sub-agents per
//! session. Each is set once (`OnceLock`); a tool whose part is missing fails with an
//! error that says so, it never runs without it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::memory::{Memory, MemoryError, MemoryStore};
use crate::quarantine::Quarantine;
use crate::subagent::SubagentRunner;
use crate::{Labels, Runtime};

#[derive(Default)]
pub(crate) struct Extensions {
    pub(crate) memory: OnceLock<MemoryStore>,
    pub(crate) quarantine: OnceLock<Arc<dyn Quarantine>>,
    pub(crate) subagents: OnceLock<Arc<dyn SubagentRunner>>,
    pub(crate) messenger: OnceLock<Arc<dyn crate::messenger::Messenger>>,
    /// 0 for a top-level runtime, 1 for a child's, …
    pub(crate) depth: u32,
    /// Children started per session.
    children: Mutex<HashMap<String, u32>>,
}

impl Extensions {
    pub(crate) fn child(&self, depth: u32) -> Extensions {
        let ext = Extensions {
            depth,
            ..Extensions::default()
        };
        if let Some(m) = self.memory.get() {
            let _ = ext.memory.set(m.clone());
        }
        if let Some(q) = self.quarantine.get() {
            let _ = ext.quarantine.set(q.clone());
        }
        if let Some(r) = self.subagents.get() {
            let _ = ext.subagents.set(r.clone());
        }
        if let Some(m) = self.messenger.get() {
            let _ = ext.messenger.set(m.clone());
        }
        ext
    }

    /// Count one more child of `session`; `false` (and no change) once `max` are started.
    pub(crate) fn take_child_slot(&self, session: &str, max: u32) -> bool {
        let mut c = self.children.lock().unwrap_or_else(|p| p.into_inner());
        let n = c.entry(session.to_string()).or_insert(0);
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    /// Forget `session`'s counters (the session ended).
    pub(crate) fn forget(&self, session: &str) {
        let mut c = self.children.lock().unwrap_or_else(|p| p.into_inner());
        c.remove(session);
    }
}

/// Memory as it enters a session's context.
#[derive(Debug, Clone)]
pub struct MemoryContext {
    /// The text for the model.
    pub text: String,
    /// The join of the entries' labels (`memory:FILE#ID` for every untrusted entry).
    pub labels: Labels,
    /// What could not be read as written (reported, loaded as untrusted).
    pub problems: Vec<String>,
}

impl Runtime {
    /// Attach the agent's memory (`STATE/agents/NAME/memory`). Returns `false` when one
    /// was already attached (the first stays).
    pub fn set_memory(&self, store: MemoryStore) -> bool {
        self.ext.memory.set(store).is_ok()
    }

    pub fn memory(&self) -> Option<&MemoryStore> {
        self.ext.memory.get()
    }

    /// Attach the quarantined reader used by `http_fetch` with `extract`.
    pub fn set_quarantine(&self, q: Arc<dyn Quarantine>) -> bool {
        self.ext.quarantine.set(q).is_ok()
    }

    /// Attach what runs `spawn_agent` children.
    pub fn set_subagent_runner(&self, r: Arc<dyn SubagentRunner>) -> bool {
        self.ext.subagents.set(r).is_ok()
    }

    /// 0 for a top-level agent, 1 for its children, …
    pub fn depth(&self) -> u32 {
        self.ext.depth
    }

    /// Load memory for the start of `session`: the one context item's text and labels.
    /// The labels join the session's label here, so the runtime decides the session's
    /// later actions knowing what it read. `None` when memory is empty or not
    /// attached.
    pub fn load_memory(&self, session: &str) -> Result<Option<MemoryContext>, MemoryError> {
        let Some(store) = self.ext.memory.get() else {
            return Ok(None);
        };
        let memory: Memory = store.load()?;
        let Some(text) = memory.context_text() else {
            return Ok(None);
        };
        let labels = memory.labels();
        self.join_labels(session, &labels);
        crate::record::memory_load(
            self.audit_log(),
            session,
            memory.entries.len(),
            &labels,
            &memory.problems,
        );
        Ok(Some(MemoryContext {
            text: self.redact(&text),
            labels,
            problems: memory.problems,
        }))
    }
}
