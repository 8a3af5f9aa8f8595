//! Secret values: the encrypted vault, placeholders, and redaction / leak detection.
//!
//! The model and tools never see secret values. The [`Vault`] keeps them encrypted in
//! `state_dir/vault/`; a session hands tools [`Placeholder`]s from a [`PlaceholderSet`];
//! the egress proxy swaps a placeholder for the real [`Secret`] only for the hosts the
//! secret is bound to. Everything flowing back towards the model goes through a
//! [`Redactor`] (or a [`StreamRedactor`] for streams), which also catches values that
//! leaked in common encodings and, optionally, credentials of well-known formats
//! ([`detect_credentials`]).
//!
//! Each module states what it guarantees and what it does not.

pub mod credentials;
pub mod placeholder;
mod redactor;
pub mod secret;
pub mod stream;
pub mod vault;

pub use credentials::{CredentialKind, Finding, detect_credentials};
pub use placeholder::{
    PLACEHOLDER_PREFIX, Placeholder, PlaceholderEntry, PlaceholderError, PlaceholderSet,
};
pub use redactor::{MIN_SECRET_LEN, Redacted, Redactor};
pub use secret::Secret;
pub use stream::StreamRedactor;
pub use vault::{KdfParams, KeySource, PASSPHRASE_ENV, SecretInfo, Vault, VaultError};
