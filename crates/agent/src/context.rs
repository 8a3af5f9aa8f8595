//! The conversation as the agent holds it: every item carries its provenance, so later
//! layers (labels, containment) can reason about where each piece of context came from.

use runtime::{Integrity, Provenance};
use serde::{Deserialize, Serialize};

use crate::provider::Message;

/// One entry of a session's context, persisted in the store as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContextItem {
    pub message: Message,
    pub provenance: Provenance,
}

impl ContextItem {
    pub fn user(text: &str) -> ContextItem {
        ContextItem {
            message: Message::User {
                content: text.to_string(),
            },
            provenance: Provenance {
                source: "user".into(),
                integrity: Integrity::Trusted,
            },
        }
    }

    /// Model output is as trustworthy as the least trusted thing the model had read.
    pub fn model(message: Message, integrity: Integrity) -> ContextItem {
        ContextItem {
            message,
            provenance: Provenance {
                source: "model".into(),
                integrity,
            },
        }
    }

    pub fn tool(message: Message, provenance: Provenance) -> ContextItem {
        ContextItem {
            message,
            provenance,
        }
    }
}

/// The least trusted integrity among `items` (the session's integrity label).
pub fn session_integrity(items: &[ContextItem]) -> Integrity {
    items
        .iter()
        .map(|i| i.provenance.integrity)
        .max()
        .unwrap_or(Integrity::Trusted)
}
