//! The conversation as the agent holds it: every item carries its provenance, so later
//! layers (labels, containment) can reason about where each piece of context came from.

use runtime::{Labels, Provenance};
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
            provenance: Provenance::trusted("user"),
        }
    }

    /// Model output carries the label of everything the model had read (the session's
    /// label when it answered).
    pub fn model(message: Message, labels: &Labels) -> ContextItem {
        ContextItem {
            message,
            provenance: Provenance {
                source: "model".into(),
                integrity: labels.integrity,
                confidentiality: labels.confidentiality,
                secrets: labels.secrets.clone(),
            },
        }
    }

    /// Cordon telling the model something about its own output (a call it cut, say): a
    /// user message from `cordon` that carries the session's label, as it quotes the
    /// model's words.
    pub fn notice(text: String, labels: &Labels) -> ContextItem {
        ContextItem {
            message: Message::User { content: text },
            provenance: Provenance {
                source: "cordon".into(),
                integrity: labels.integrity,
                confidentiality: labels.confidentiality,
                secrets: labels.secrets.clone(),
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

/// The join of the labels of `items` (a stored session's label).
pub fn session_labels(items: &[ContextItem]) -> Labels {
    let mut labels = Labels::trusted();
    for i in items {
        labels.join(&i.provenance.labels());
    }
    labels
}
