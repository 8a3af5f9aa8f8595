//! The agent: LLM providers and the agent loop. It talks to the world only through
//! `runtime`: it opens no file, socket or process itself.

pub mod provider;
