//! The client `@modelcontextprotocol/conformance` drives (`conformance client --command
//! mcp-conformance-client --scenario NAME`): it starts a test server for the scenario,
//! runs this program with the server's URL as the last argument and the scenario's name
//! in `MCP_CONFORMANCE_SCENARIO`, and judges what the server saw.
//!
//! Built only on [`cordon_mcp::Session`]'s public API over streamable HTTP, doing what
//! Cordon's runtime does with a server: initialize, list the tools, call one. Scenarios
//! that need what Cordon does not offer servers on purpose are refused with the reason
//! (exit code 2) rather than faked: OAuth (`auth/*`; Cordon's egress proxy injects an
//! HTTP server's credentials instead) and elicitation (a server may not ask the user
//! anything; the session declines). `elicitation-sep1034-client-defaults` is still run,
//! to show the decline: the client calls the tool and reports what came back.
//!
//! Exit codes: 0 done, 1 the server or the session failed, 2 scenario not supported,
//! 64 bad usage.

use std::process::ExitCode;
use std::time::Duration;

use cordon_mcp::{Limits, Session};
use serde_json::{Value, json};

/// Per call; the conformance tool has its own deadline for the whole client (`--timeout`).
const CALL: Duration = Duration::from_secs(20);

/// What the client does for one scenario.
enum Plan {
    /// Initialize and list the tools.
    Initialize,
    /// Initialize, list, call `tool` with `args`; the result must contain `expect`.
    Call {
        tool: &'static str,
        args: Value,
        expect: &'static str,
    },
    /// Initialize, list, call `tool` and report whatever came back (the scenario asks
    /// for something the session refuses on purpose).
    CallAndReport { tool: &'static str },
}

/// The plan for `scenario`, or why it is not supported.
fn plan(scenario: &str) -> Result<Plan, &'static str> {
    Ok(match scenario {
        "initialize" => Plan::Initialize,
        "tools_call" => Plan::Call {
            tool: "add_numbers",
            args: json!({"a": 5, "b": 3}),
            expect: "8",
        },
        // The server answers the call on a GET stream the client must reopen after the
        // POST's stream ends (SEP-1699).
        "sse-retry" => Plan::Call {
            tool: "test_reconnection",
            args: json!({}),
            expect: "Reconnection test completed successfully",
        },
        "elicitation-sep1034-client-defaults" => Plan::CallAndReport {
            tool: "test_client_elicitation_defaults",
        },
        s if s.starts_with("auth/") => {
            return Err(
                "OAuth is not offered: Cordon's egress proxy injects an HTTP \
                 server's credentials for its bound host",
            );
        }
        _ => return Err("this client does not know the scenario"),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(url) = std::env::args()
        .nth(1)
        .filter(|_| std::env::args().len() == 2)
    else {
        eprintln!("usage: mcp-conformance-client URL (with MCP_CONFORMANCE_SCENARIO set)");
        return ExitCode::from(64);
    };
    let Ok(scenario) = std::env::var("MCP_CONFORMANCE_SCENARIO") else {
        eprintln!("MCP_CONFORMANCE_SCENARIO is not set (the conformance tool sets it)");
        return ExitCode::from(64);
    };
    let plan = match plan(&scenario) {
        Ok(p) => p,
        Err(why) => {
            eprintln!("unsupported scenario `{scenario}`: {why}");
            return ExitCode::from(2);
        }
    };
    match run(&url, plan).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scenario `{scenario}` failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(url: &str, plan: Plan) -> Result<(), String> {
    // reqwest 0.13 without a crypto provider of its own (the servers are plain HTTP on
    // loopback, but building a client needs one installed).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = cordon_mcp::reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    let session = Session::connect_http("conformance", url, client, Limits::default())
        .await
        .map_err(|e| e.to_string())?;
    let info = session.info();
    println!(
        "initialized: server `{}` {} (protocol {})",
        info.name, info.version, info.protocol_version
    );
    let tools = session.list_tools().await.map_err(|e| e.to_string())?;
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    println!("tools: {}", names.join(", "));
    let result = match plan {
        Plan::Initialize => Ok(()),
        Plan::Call { tool, args, expect } => {
            let out = session
                .call_tool(tool, args, CALL)
                .await
                .map_err(|e| e.to_string())?;
            println!("{tool}: {}", out.text);
            if out.is_error {
                Err(format!("tool `{tool}` failed: {}", out.text))
            } else if !out.text.contains(expect) {
                Err(format!(
                    "tool `{tool}` answered `{}`, without `{expect}`",
                    out.text
                ))
            } else {
                Ok(())
            }
        }
        Plan::CallAndReport { tool } => {
            match session.call_tool(tool, json!({}), CALL).await {
                Ok(out) if out.is_error => println!("{tool} (error): {}", out.text),
                Ok(out) => println!("{tool}: {}", out.text),
                Err(e) => println!("{tool}: {e}"),
            }
            Ok(())
        }
    };
    session.close().await;
    result
}
