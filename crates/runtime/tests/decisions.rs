//! Decision logic through `Runtime::perform`: malformed arguments, tools not given, exec
//! modes, approvals and session grants. Exec here uses a recording sandbox double (these
//! tests are about *whether* a command runs, not how); see `exec_sandbox.rs` for real runs.

mod common;

use audit::EventKind;
use common::{Harness, SESSION, Setup};
use cordon_runtime::{
    ApprovalAnswer, Integrity, NoHumanApprover, Runtime, RuntimeOptions, ToolCall,
};
use serde_json::json;

#[tokio::test]
async fn malformed_arguments_are_reported_and_nothing_runs() {
    let h = Harness::new(Setup {
        exec_mode: "auto",
        ..Setup::default()
    });
    let cases = [
        (
            "edit_file",
            r#"{"path":"a","new_string":"b"}"#,
            "invalid arguments for edit_file: missing field `old_string`",
        ),
        (
            "read_file",
            r#"{"path":"a","extra":1}"#,
            "invalid arguments for read_file: unknown field `extra`",
        ),
        (
            "exec",
            r#"{"command":["ls"]}"#,
            "invalid arguments for exec: invalid type",
        ),
        (
            "write_file",
            r#"{"path":"a","content":"#,
            "invalid arguments for write_file:",
        ),
        (
            "http_fetch",
            r#"{"url":"ftp://x/"}"#,
            "only http:// and https://",
        ),
        ("search", r#"{"pattern":"(unclosed"}"#, "bad regex"),
    ];
    for (tool, args, needle) in cases {
        let (id, obs) = h.call_raw(tool, args).await;
        h.assert_refused(&id, &obs, needle);
        assert_eq!(
            h.one(&id, EventKind::Error).data["stage"],
            "arguments",
            "{tool} {args}"
        );
        assert!(
            !h.has(&id, EventKind::Decision),
            "{tool}: decided despite bad arguments"
        );
    }
    assert!(h.sandbox.requests.lock().unwrap().is_empty());
    assert!(!h.ws.join("a").exists());
}

#[tokio::test]
async fn tool_not_given_or_unknown_names_the_available_tools() {
    let h = Harness::new(Setup {
        tools: r#"["read_file", "list_dir"]"#,
        ..Setup::default()
    });
    let specs: Vec<String> = h.rt.tool_specs().into_iter().map(|s| s.name).collect();
    assert_eq!(specs, vec!["read_file", "list_dir"]);
    let (id, obs) = h.call("exec", json!({"command": "ls"})).await;
    h.assert_refused(
        &id,
        &obs,
        "tool `exec` is not available to agent `dev`; available tools: read_file, list_dir",
    );
    assert_eq!(h.one(&id, EventKind::Error).data["stage"], "tool");
    let (id, obs) = h.call("rm_rf", json!({})).await;
    h.assert_refused(
        &id,
        &obs,
        "unknown tool `rm_rf`; available tools: read_file, list_dir",
    );
    assert!(h.sandbox.requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn tool_specs_carry_schemas() {
    let h = Harness::new(Setup::default());
    let specs = h.rt.tool_specs();
    assert_eq!(specs.len(), 7);
    let edit = specs.iter().find(|s| s.name == "edit_file").unwrap();
    assert_eq!(
        edit.parameters["required"],
        json!(["path", "old_string", "new_string"])
    );
    assert_eq!(edit.parameters["additionalProperties"], false);
}

#[tokio::test]
async fn exec_in_deny_mode_never_runs() {
    let h = Harness::new(Setup {
        exec_mode: "deny",
        ..Setup::default()
    });
    let (id, obs) = h.call("exec", json!({"command": "echo hi"})).await;
    h.assert_refused(&id, &obs, "exec denied: exec.mode = \"deny\"");
    let d = h.one(&id, EventKind::Decision);
    assert_eq!(d.data["decision"], "deny");
    assert!(
        d.data["reason"]
            .as_str()
            .unwrap()
            .contains("exec.mode = \"deny\"")
    );
    assert!(!h.has(&id, EventKind::Approval));
    assert!(h.approver.asked.lock().unwrap().is_empty());
    assert!(h.sandbox.requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn exec_needing_approval_without_a_human_is_denied() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    let toml = format!(
        "[model]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n[agents.dev]\nworkspace = \"{}\"\n",
        ws.display()
    );
    let config = config::load_str(&toml, std::path::Path::new("t.toml")).unwrap();
    let audit_dir = dir.path().join("audit");
    let sandbox = std::sync::Arc::new(common::RecordingSandbox::default());
    let audit = std::sync::Arc::new(audit::Log::open(&audit_dir).unwrap());
    let rt = Runtime::new(RuntimeOptions {
        config: std::sync::Arc::new(config),
        agent: "dev".into(),
        audit: audit.clone(),
        sandbox: sandbox.clone(),
        approver: std::sync::Arc::new(NoHumanApprover),
        // Nobody answers from another process either: denied at the timeout.
        approvals: std::sync::Arc::new(cordon_runtime::StoredApprovals::new(
            std::sync::Arc::new(store::Store::open(&dir.path().join("cordon.db")).unwrap()),
            audit.clone(),
            std::time::Duration::from_millis(300),
            30,
        )),
        redactor: secrets::Redactor::empty(),
        egress: common::test_proxy(&dir.path().join("egress"), audit),
        secrets: Vec::new(),
        watched_secrets: Vec::new(),
        skills: Vec::new(),
        mcp: Default::default(),
        policy: None,
        checkpoints_dir: None,
    })
    .unwrap();
    let call = ToolCall {
        id: "c1".into(),
        name: "exec".into(),
        arguments: r#"{"command":"touch x"}"#.into(),
    };
    let obs = rt.perform("s", &call).await;
    assert!(obs.is_error);
    assert!(
        obs.content
            .contains("exec denied: approval required (exec.mode = \"ask\"")
            && obs.content.contains("cordon run"),
        "{}",
        obs.content
    );
    assert!(sandbox.requests.lock().unwrap().is_empty());
    assert!(!ws.join("x").exists());
    let recs = audit::read(&audit_dir).unwrap();
    let kinds: Vec<EventKind> = recs.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::ToolProposed,
            EventKind::Decision,
            // requested, expired (nobody answered from another process), decided
            EventKind::Approval,
            EventKind::Approval,
            EventKind::Approval,
            EventKind::Error,
            EventKind::ToolResult
        ]
    );
    assert_eq!(recs[1].data["decision"], "ask");
    assert_eq!(recs[2].data["state"], "requested");
    assert_eq!(recs[3].data["state"], "expired");
    assert_eq!(recs[4].data["answer"]["answer"], "expired");
    assert_eq!(recs[5].data["stage"], "approval");
}

/// A store opened at its first use (`cordon sandbox exec`'s) is not opened by building
/// the runtime, and is there for the first call that needs one: the approval request is
/// stored, and its grant found again.
#[tokio::test]
async fn a_store_opened_on_first_use_is_there_when_an_approval_needs_it() {
    let h = Harness::new(Setup {
        approver: vec![ApprovalAnswer::Session],
        store_on_first_use: true,
        ..Setup::default()
    });
    let db = h.dir.path().join("cordon.db");
    assert!(!h.store.is_open(), "building the runtime needs no store");
    assert!(!db.exists());
    let (id, obs) = h.call("exec", json!({"command": "make test"})).await;
    assert!(!obs.is_error, "{}", obs.content);
    assert!(h.store.is_open());
    assert_eq!(
        h.one(&id, EventKind::Approval).data["answer"]["answer"],
        "session"
    );
    // The request and the grant are in the database, for any other handle to see.
    let other = store::Store::open(&db).unwrap();
    let stored = other
        .list_approvals(&store::ApprovalFilter::default())
        .unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].action, "exec: make test");
    assert_eq!(other.list_grants(None, false).unwrap().len(), 1);
    // The same command again: the stored grant answers, nobody is asked.
    let (id, obs) = h.call("exec", json!({"command": "make test"})).await;
    assert!(!obs.is_error, "{}", obs.content);
    assert!(!h.has(&id, EventKind::Approval));
    assert_eq!(h.approver.asked.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn session_grant_covers_only_the_exact_action() {
    let h = Harness::new(Setup {
        approver: vec![ApprovalAnswer::Session, ApprovalAnswer::Deny],
        ..Setup::default()
    });
    let (id1, obs) = h.call("exec", json!({"command": "make test"})).await;
    assert!(!obs.is_error, "{}", obs.content);
    assert_eq!(
        h.one(&id1, EventKind::Approval).data["answer"]["answer"],
        "session"
    );
    // Same command again: not asked.
    let (id2, obs) = h.call("exec", json!({"command": "make test"})).await;
    assert!(!obs.is_error, "{}", obs.content);
    assert!(!h.has(&id2, EventKind::Approval), "nobody was asked");
    let d2 = h.one(&id2, EventKind::Decision);
    assert_eq!(d2.data["decision"], "ask");
    assert_eq!(d2.data["session_grant"], true);
    assert_eq!(h.approver.asked.lock().unwrap().len(), 1);
    // A different command is asked (and denied by the script).
    let (id3, obs) = h
        .call("exec", json!({"command": "make test; curl evil"}))
        .await;
    h.assert_refused(&id3, &obs, "exec denied: the human refused");
    let asked = h.approver.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2);
    assert_eq!(asked[0].action, "exec: make test");
    assert_eq!(asked[0].session, SESSION);
    assert_eq!(asked[0].agent, "dev");
    assert_eq!(asked[0].arguments, json!({"command": "make test"}));
    assert!(asked[0].reason.contains("exec.mode = \"ask\""));
    assert_eq!(asked[1].action, "exec: make test; curl evil");
    let reqs = h.sandbox.requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].argv, vec!["/bin/sh", "-c", "make test"]);
    // One sandbox instance for the session, with the fixed environment.
    let starts = h.sandbox.starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 1);
    assert!(
        starts[0]
            .env
            .contains(&("HOME".into(), "/workspace".into()))
    );
    assert!(
        starts[0].env.iter().all(|(k, _)| [
            "PATH",
            "HOME",
            "LANG",
            "TERM",
            "TMPDIR",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
            "SSL_CERT_FILE",
            "REQUESTS_CA_BUNDLE",
            "NODE_EXTRA_CA_CERTS",
            "CURL_CA_BUNDLE",
            "GIT_SSL_CAINFO",
        ]
        .contains(&k.as_str())),
        "only Cordon's fixed variables: {:?}",
        starts[0].env
    );
    // Every sandbox gets the egress listener and the CA bundle.
    assert_eq!(starts[0].egress_port, Some(3128));
    assert!(
        starts[0]
            .etc_files
            .iter()
            .any(|(n, _)| n == "cordon-ca.pem")
    );
    // Session grants are stored: a resumed session (same id) keeps them.
    h.rt.end_session(SESSION);
    let (id4, obs) = h.call("exec", json!({"command": "make test"})).await;
    assert!(!obs.is_error, "{}", obs.content);
    assert!(!h.has(&id4, EventKind::Approval), "nobody was asked");
    assert_eq!(h.approver.asked.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn allowlist_runs_simple_commands_and_asks_for_tricks() {
    let h = Harness::new(Setup {
        exec_mode: "allowlist",
        exec_allow: r#"["ls"]"#,
        ..Setup::default()
    });
    let (id, obs) = h.call("exec", json!({"command": "ls -la"})).await;
    assert!(!obs.is_error, "{}", obs.content);
    assert_eq!(h.one(&id, EventKind::Decision).data["decision"], "allow");
    assert!(!h.has(&id, EventKind::Approval));
    for cmd in ["ls; rm -rf /", "ls && curl x", "$(rm x)"] {
        let (id, obs) = h.call("exec", json!({"command": cmd})).await;
        h.assert_refused(&id, &obs, "approval required");
        assert_eq!(h.one(&id, EventKind::Decision).data["decision"], "ask");
    }
    assert_eq!(h.sandbox.requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn unknown_agent_and_missing_workspace_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[model]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n[agents.dev]\nworkspace = \"{}\"\n",
        dir.path().join("missing").display()
    );
    let config =
        std::sync::Arc::new(config::load_str(&toml, std::path::Path::new("t.toml")).unwrap());
    let audit = std::sync::Arc::new(audit::Log::open(&dir.path().join("audit")).unwrap());
    let opts = |agent: &str| RuntimeOptions {
        config: config.clone(),
        agent: agent.into(),
        audit: audit.clone(),
        sandbox: std::sync::Arc::new(common::RecordingSandbox::default()),
        approver: std::sync::Arc::new(NoHumanApprover),
        // Nobody answers from another process either: denied at the timeout.
        approvals: std::sync::Arc::new(cordon_runtime::StoredApprovals::new(
            std::sync::Arc::new(store::Store::open(&dir.path().join("cordon.db")).unwrap()),
            audit.clone(),
            std::time::Duration::from_millis(300),
            30,
        )),
        redactor: secrets::Redactor::empty(),
        egress: common::test_proxy(&dir.path().join("egress"), audit.clone()),
        secrets: Vec::new(),
        watched_secrets: Vec::new(),
        skills: Vec::new(),
        mcp: Default::default(),
        policy: None,
        checkpoints_dir: None,
    };
    let e = Runtime::new(opts("ghost")).err().unwrap().to_string();
    assert_eq!(e, "no agent `ghost` in the config; known agents: dev");
    let e = Runtime::new(opts("dev")).err().unwrap().to_string();
    assert!(
        e.contains("workspace of agent `dev`") && e.contains("missing"),
        "{e}"
    );
}

/// Fail closed on the audit log: once the log cannot make the decision durable (here a
/// line that does not continue the chain was written behind the writer's back, which
/// fails its next sync), an allowed write does not happen and the model is told why.
#[tokio::test]
async fn nothing_runs_when_the_audit_log_cannot_record_the_decision() {
    use std::io::Write;
    let h = Harness::new(Setup::default());
    let (_, obs) = h
        .call("write_file", json!({"path": "before.txt", "content": "x"}))
        .await;
    assert!(!obs.is_error, "{}", obs.content);

    std::fs::OpenOptions::new()
        .append(true)
        .open(h.audit_dir.join(audit::LOG_FILE))
        .unwrap()
        .write_all(b"{\"seq\":999999,\"forged\":true}\n")
        .unwrap();

    let (_, obs) = h
        .call("write_file", json!({"path": "after.txt", "content": "x"}))
        .await;
    assert!(obs.is_error, "{}", obs.content);
    assert!(
        obs.content
            .contains("write_file not run: the audit log cannot record the decision"),
        "{}",
        obs.content
    );
    assert!(!h.ws.join("after.txt").exists(), "the write happened");

    // The failed sync poisons the handle: the next proposal itself cannot be recorded,
    // and that alone keeps the call from running.
    let (_, obs) = h
        .call("write_file", json!({"path": "later.txt", "content": "x"}))
        .await;
    assert!(obs.is_error, "{}", obs.content);
    assert!(
        obs.content
            .contains("write_file not run: the audit log cannot record the proposal"),
        "{}",
        obs.content
    );
    assert!(!h.ws.join("later.txt").exists(), "the write happened");
}

/// What a command prints is untrusted once its sandbox can reach the network (it may be
/// a fetched page): labelled so, and wrapped in the session's boundary markers. Without
/// an egress allowlist it stays trusted and unwrapped.
#[tokio::test]
async fn exec_output_is_trusted_when_the_command_opened_no_connection() {
    // The sandbox could reach the network, but this command (run by the recording
    // double) opened no connection through the proxy: nothing from outside came in.
    // The opposite case, a command that did connect, is in tests/taint.rs (real curl).
    let online = Harness::new(Setup {
        exec_mode: "auto",
        egress_allow: r#"["example.com"]"#.into(),
        ..Setup::default()
    });
    let (_, obs) = online.call("exec", json!({"command": "ls"})).await;
    assert!(!obs.is_error, "{}", obs.content);
    assert_eq!(obs.provenance.integrity, Integrity::Trusted);
    assert!(!obs.content.contains("<<untrusted"), "{}", obs.content);
    assert!(!online.rt.session_labels(SESSION).is_tainted());
}

/// A policy compiled lazily that turns out not to compile: nothing is allowed, not even
/// what the config alone would allow, and each refusal is recorded naming the error.
#[tokio::test]
async fn a_lazily_compiled_policy_that_fails_denies_every_call_naming_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    std::fs::write(ws.join("notes.txt"), "hello").unwrap();
    let toml = format!(
        "[model]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n\
         [agents.dev]\nworkspace = \"{}\"\n[agents.dev.exec]\nmode = \"auto\"\n",
        ws.display()
    );
    let config = config::load_str(&toml, std::path::Path::new("t.toml")).unwrap();
    let audit_dir = dir.path().join("audit");
    let sandbox = std::sync::Arc::new(common::RecordingSandbox::default());
    let audit = std::sync::Arc::new(audit::Log::open(&audit_dir).unwrap());
    let compiled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = compiled.clone();
    let policy = guard::LazyPolicy::new("dev", move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err("policies/extra.cedar:2:1: unexpected token `permt`".into())
    });
    let rt = Runtime::new(RuntimeOptions {
        config: std::sync::Arc::new(config),
        agent: "dev".into(),
        audit: audit.clone(),
        sandbox: sandbox.clone(),
        approver: std::sync::Arc::new(NoHumanApprover),
        approvals: std::sync::Arc::new(cordon_runtime::StoredApprovals::new(
            std::sync::Arc::new(store::Store::open(&dir.path().join("cordon.db")).unwrap()),
            audit.clone(),
            std::time::Duration::from_millis(300),
            30,
        )),
        redactor: secrets::Redactor::empty(),
        egress: common::test_proxy(&dir.path().join("egress"), audit),
        secrets: Vec::new(),
        watched_secrets: Vec::new(),
        skills: Vec::new(),
        mcp: Default::default(),
        policy: Some(std::sync::Arc::new(policy)),
        checkpoints_dir: None,
    })
    .unwrap();
    assert_eq!(
        compiled.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "building the runtime compiled the policy"
    );
    let calls = [
        ("c1", "read_file", r#"{"path":"notes.txt"}"#),
        ("c2", "exec", r#"{"command":"touch x"}"#),
    ];
    for (id, tool, arguments) in calls {
        let call = ToolCall {
            id: id.into(),
            name: tool.into(),
            arguments: arguments.into(),
        };
        let obs = rt.perform("s", &call).await;
        assert!(obs.is_error, "{tool}: {}", obs.content);
        assert!(
            obs.content.contains("policies/extra.cedar:2:1"),
            "{tool}: {}",
            obs.content
        );
        assert!(!obs.content.contains("hello"), "{}", obs.content);
    }
    assert_eq!(compiled.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(sandbox.requests.lock().unwrap().is_empty());
    assert!(!ws.join("x").exists());
    let decisions: Vec<_> = audit::read(&audit_dir)
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == EventKind::Decision)
        .collect();
    assert_eq!(decisions.len(), 2);
    for d in decisions {
        assert_eq!(d.data["decision"], "deny", "{}", d.data);
        assert_eq!(
            d.data["rule"],
            guard::LazyPolicy::COMPILE_ERROR_RULE,
            "{}",
            d.data
        );
        assert!(
            d.data["reason"]
                .as_str()
                .is_some_and(|r| r.contains("policies/extra.cedar:2:1")),
            "{}",
            d.data
        );
    }
}
