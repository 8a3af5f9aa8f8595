//! Test doubles for the outside world.
//!
//! [`MockLlm`] is a scripted language-model server: real HTTP on `127.0.0.1` (random port)
//! that speaks both OpenAI Chat Completions (`POST /v1/chat/completions`) and Anthropic
//! Messages (`POST /v1/messages`), streaming (server-sent events) and not. Each request is
//! answered by the next [`Reply`] of a [`Script`], or by a closure that looks at the
//! [`Conversation`] so far (for models that react to what a tool returned).
//!
//! What it guarantees: every request body is recorded in order ([`MockLlm::requests`]);
//! streamed replies are cut into several deltas and several network writes (text in small
//! pieces, tool-call arguments in fragments, lines split mid-way, mixed `\n`/`\r\n`, SSE
//! comments) so that client parsers are exercised; dropping the [`MockLlm`] stops it.
//!
//! [`recordings`] are real model servers' answers (the project's reconstructions), one
//! per quirk, for [`MockLlm`] to serve byte for byte.
//!
//! [`PgCluster`] is a throwaway PostgreSQL server on a Unix socket, for the store's
//! PostgreSQL backend.
//!
//! [`FakeTelegram`] is a Telegram Bot API server (long polling, messages, inline buttons,
//! files) with controls to push updates, take it down and rate-limit it.
//! [`FakeSlack`] is Slack's Web API and Socket Mode (see [`slack`]).
//! [`Synapse`] is a throwaway real Matrix homeserver (PyPI `matrix-synapse`) on loopback,
//! for the Matrix channel.
//!
//! [`generated_doc::assert_current`] keeps a document generated from code current.
//!
//! What it does not do: it checks no API key and validates requests only as far as it
//! needs to read them; a request it cannot read is still recorded and answered.

pub mod compromised;
mod conversation;
pub mod generated_doc;
mod https;
pub mod pg;
pub mod recordings;
mod render;
mod script;
mod server;
pub mod slack;
pub mod synapse;
pub mod telegram;

pub use compromised::{CompromisedModel, INSTRUCTION_MARKER, MadeCall};
pub use conversation::{Conversation, Protocol, ToolResult, Turn};
pub use https::HttpsServer;
pub use pg::PgCluster;
pub use recordings::{RECORDINGS, Recording, recording};
pub use script::{EXHAUSTED, Reply, Script, ScriptError, ScriptedCall};
pub use server::MockLlm;
pub use slack::{FakeSlack, Pushed, SentMessage};
pub use synapse::{MatrixUser, Synapse};
pub use telegram::FakeTelegram;
