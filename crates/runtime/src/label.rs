//! Labelling a result: its integrity (where it came from) and its confidentiality (what
//! it shows), and the cleaning of untrusted content before it reaches the model.
//!
//! Guarantees: a result from a third party ([`Origin::Response`], [`Origin::Remote`]),
//! and a failure that may quote one, is untrusted; untrusted content is cleaned and
//! wrapped in the session's boundary markers by [`crate::hygiene`] (an HTTP response with
//! its status and URL lines outside, anything else whole; without a boundary it is
//! withheld); a result from which a vault value or credential was redacted, or that
//! carries one of the session's placeholders, is `secret` (with the names); one that
//! shows a private workspace file (as its tool judges,
//! [`crate::tools::Tool::shows_private`]) is `private`. The label joins the session's
//! label in the pipeline.
//!
//! A file written by a labelled session keeps that label for its later readers:
//! [`crate::provenance`].

use guard::{Confidentiality, Integrity, Labels};

use crate::Runtime;
use crate::pipeline::Stage;
use crate::tools::{Executed, Origin, ToolOutput};

/// The integrity of a failure's message: Cordon's own words before anything was sent
/// are trusted; a failure of a remote exchange may quote what the server answered.
pub(crate) fn failure_integrity(origin: Origin, stage: Stage) -> Integrity {
    if origin != Origin::Local && !stage.is_refusal() {
        Integrity::Untrusted
    } else {
        Integrity::Trusted
    }
}

impl Runtime {
    /// Untrusted content is cleaned and wrapped in the session's boundary (see
    /// [`crate::hygiene`]) before redaction; without a boundary it is withheld.
    /// `response`: the content is a remote tool's response (status and URL lines first).
    pub(crate) fn hygiene(
        &self,
        session: &str,
        source: &str,
        response: bool,
        output: &mut ToolOutput,
    ) {
        match self.boundary(session) {
            Ok(b) if response => {
                output.content = crate::hygiene::http_response(&b, source, &output.content);
            }
            Ok(b) => output.content = crate::hygiene::untrusted_text(&b, source, &output.content),
            Err(e) => {
                output.content = e.to_string();
                output.is_error = true;
            }
        }
    }

    /// The label of one result: its integrity and source; `secret` (with the names) when
    /// a vault value or credential was redacted from it or it carries a secret's
    /// placeholder; otherwise `private` when its tool found it shows a private file.
    pub(crate) fn result_labels(
        &self,
        session: &str,
        done: &Executed,
        redacted: &secrets::Redacted,
    ) -> Labels {
        let mut labels = if done.integrity == Integrity::Untrusted {
            Labels::untrusted(&done.source)
        } else {
            Labels::trusted()
        };
        let mut secrets: Vec<String> = redacted.hits.clone();
        if !redacted.credentials.is_empty() {
            secrets.push("*".into());
        }
        for (name, placeholder) in self.made_placeholders(session) {
            if done.output.content.contains(placeholder.as_str()) && !secrets.contains(&name) {
                secrets.push(name);
            }
        }
        if !secrets.is_empty() {
            labels.confidentiality = Confidentiality::Secret;
            labels.secrets = secrets;
        } else if done.private {
            labels.confidentiality = Confidentiality::Private;
        }
        labels
    }
}
