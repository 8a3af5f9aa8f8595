//! Why a completion failed, worded for the person who has to fix it.

/// A failed completion. Every message names the URL, what went wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error(
        "cannot reach the model at {url}: {detail}; check that the server is running and \
         that model.base_url is right"
    )]
    Unreachable { url: String, detail: String },

    #[error(
        "the model's answer from {url} was cut off: {detail}; try again, and check the \
         server's logs if it keeps happening"
    )]
    Interrupted { url: String, detail: String },

    #[error(
        "the model at {url} did not answer within {secs}s; check the server or raise \
         model.timeout_secs"
    )]
    Timeout { url: String, secs: u64 },

    #[error("refusing to send to the model: {detail}; check model.base_url")]
    Refused { detail: String },

    #[error("the model at {url} rejected the request (HTTP {status}: {excerpt}); {what_to_do}")]
    Unauthorized {
        url: String,
        status: u16,
        excerpt: String,
        what_to_do: String,
    },

    #[error(
        "the model at {url} was not found (HTTP 404: {excerpt}); check model.base_url and \
         model.model"
    )]
    NotFound { url: String, excerpt: String },

    #[error("the model at {url} answered HTTP {status} ({excerpt}); {what_to_do}")]
    Http {
        url: String,
        status: u16,
        excerpt: String,
        what_to_do: &'static str,
    },

    #[error(
        "the model at {url} sent a malformed response: {what} (got: {excerpt}); check that \
         model.provider matches the server's protocol"
    )]
    Malformed {
        url: String,
        what: String,
        excerpt: String,
    },

    #[error("the model at {url} reported an error ({kind}): {message}")]
    Api {
        url: String,
        kind: String,
        message: String,
    },

    #[error("gave up on the model at {url} after {attempts} attempts; last error: {last}")]
    GaveUp {
        url: String,
        attempts: u32,
        last: Box<ProviderError>,
    },
}

impl ProviderError {
    /// The HTTP status behind this error, if it was one (looking through retries).
    pub fn status(&self) -> Option<u16> {
        match self {
            ProviderError::Unauthorized { status, .. } | ProviderError::Http { status, .. } => {
                Some(*status)
            }
            ProviderError::NotFound { .. } => Some(404),
            ProviderError::GaveUp { last, .. } => last.status(),
            _ => None,
        }
    }

    /// A few words on what went wrong, for a status line or a message that names the
    /// server itself: `Connection refused`, `HTTP 503`, `no answer within 120s`.
    pub fn brief(&self) -> String {
        match self {
            ProviderError::Unreachable { detail, .. } => {
                // The transport's detail is a chain of causes, the most specific last.
                let last = detail.rsplit(": ").next().unwrap_or(detail);
                let words = match last.find(" (os error") {
                    Some(i) => &last[..i],
                    None => last,
                };
                words.trim().to_string()
            }
            ProviderError::Interrupted { .. } => "the answer broke off".to_string(),
            ProviderError::Timeout { secs, .. } => format!("no answer within {secs}s"),
            ProviderError::Refused { .. } => "refused to send there".to_string(),
            ProviderError::Unauthorized { status, .. } | ProviderError::Http { status, .. } => {
                format!("HTTP {status}")
            }
            ProviderError::NotFound { .. } => "HTTP 404".to_string(),
            ProviderError::Malformed { .. } => "a malformed answer".to_string(),
            ProviderError::Api { kind, .. } => kind.clone(),
            ProviderError::GaveUp { last, .. } => last.brief(),
        }
    }

    /// Whether this is a response that did not follow the protocol.
    pub fn is_malformed(&self) -> bool {
        match self {
            ProviderError::Malformed { .. } => true,
            ProviderError::GaveUp { last, .. } => last.is_malformed(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brief_is_the_most_specific_cause_in_a_few_words() {
        let e = ProviderError::Unreachable {
            url: "http://127.0.0.1:11434/v1/models".into(),
            detail: "error sending request for url (http://127.0.0.1:11434/v1/models): client \
                     error (Connect): tcp connect error: Connection refused (os error 111)"
                .into(),
        };
        assert_eq!(e.brief(), "Connection refused");
        let gave_up = ProviderError::GaveUp {
            url: "u".into(),
            attempts: 4,
            last: Box::new(ProviderError::Timeout {
                url: "u".into(),
                secs: 5,
            }),
        };
        assert_eq!(gave_up.brief(), "no answer within 5s");
    }
}
