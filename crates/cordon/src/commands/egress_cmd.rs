//! `cordon egress test`: would the egress proxy let this agent reach a URL, and why.
//!
//! Guarantees: the answer comes from the same decision the proxy makes for a real
//! request (`egress::Proxy::check`: allowlist, IP-literal rule, one resolution, SSRF
//! guard, `[egress] resolve` and `allow_ranges`), for the agent's own allowlist. The
//! target's name is resolved, but no connection is ever opened to it.
//!
//! Not guaranteed: that a later request gets the same answer (DNS answers change), or
//! anything about what an allowed host does.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::EgressCommand;
use crate::setup::{agent_config, egress_proxy, open_state};

/// Session name given to the policy of a test (no real session exists).
const TEST_SESSION: &str = "egress-test";

pub async fn egress(command: EgressCommand) -> Result<ExitCode> {
    match command {
        EgressCommand::Test { agent, url } => test(&agent, &url).await,
    }
}

async fn test(agent: &str, url: &str) -> Result<ExitCode> {
    let state = open_state()?;
    let agent_cfg = agent_config(&state.config, agent)?;
    let proxy = egress_proxy(&state)?;
    let policy = egress::EgressPolicy::new(agent, TEST_SESSION, agent_cfg.egress.allow.clone());
    let verdict = proxy.check(&policy, url).await;
    let addresses = if verdict.addresses.is_empty() {
        "-".to_string()
    } else {
        verdict
            .addresses
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("agent:     {agent}");
    println!("host:      {}", verdict.host);
    println!("port:      {}", verdict.port);
    println!("addresses: {addresses}");
    println!(
        "decision:  {}",
        if verdict.allowed { "allow" } else { "deny" }
    );
    println!("reason:    {}", verdict.reason);
    Ok(if verdict.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
