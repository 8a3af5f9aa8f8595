//! `cordon approvals list|approve|deny|grants|revoke`: answering requests that a
//! `cordon run` or `cordon chat` in another process is waiting on, and the memory changes
//! that sessions which read untrusted content asked to write (kind `memory_write`;
//! approving one appends it to the agent's memory in the same store transaction, denying
//! discards it), and managing the grants answers created. Writes go through the store's
//! atomic answer, so an answer here and one at the chat terminal never both win; each is
//! audited.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use runtime::memory::PendingChange;
use store::{
    Answer, ApprovalFilter, ApprovalKind, ApprovalRecord, ApprovalStatus, GrantRecord, GrantScope,
};
use time::OffsetDateTime;

use crate::cli::ApprovalsCommand;
use crate::setup::{State, open_state};
use crate::terminal::describe_labels;

/// Who answered, in the store and the audit log.
const BY: &str = "cli";

/// Default lifetime of an `--agent` grant, in days (capped by `grant_max_days`).
const DEFAULT_DAYS: u64 = 30;

/// Characters of a memory change's text shown by `list`.
const PREVIEW_CHARS: usize = 100;

pub fn approvals(command: ApprovalsCommand) -> Result<ExitCode> {
    let state = open_state()?;
    expire_overdue(&state)?;
    if let ApprovalsCommand::Approve { id, .. } | ApprovalsCommand::Deny { id } = &command {
        refuse_unless_local_answers(&state, id)?;
    }
    match command {
        ApprovalsCommand::List { all, json } => list(&state, all, json),
        ApprovalsCommand::Approve {
            id,
            session,
            agent,
            days,
            prefix,
            host,
        } => {
            if get(&state, &id)?.kind == ApprovalKind::MemoryWrite {
                if session || agent || days.is_some() || prefix.is_some() || host {
                    bail!(
                        "approval `{id}` is a memory change: it is approved once, on its own; \
                         --session, --agent, --days, --prefix and --host grant later actions \
                         and do not apply. Run `cordon approvals approve {id}`"
                    );
                }
                return answer_memory(&state, &id, true);
            }
            let answer = if agent {
                let max = state.config.approvals.grant_max_days;
                let days = days.unwrap_or(DEFAULT_DAYS.min(max));
                if days == 0 || days > max {
                    bail!(
                        "--days {days}: an agent grant lasts 1 to {max} days \
                         (approvals.grant_max_days in the config)"
                    );
                }
                let scope = match (prefix, host) {
                    (Some(p), _) => {
                        let words: Vec<String> = p.split_whitespace().map(str::to_string).collect();
                        if words.is_empty() {
                            bail!("--prefix is empty: give the leading words, e.g. \"git push\"");
                        }
                        GrantScope::Prefix(words)
                    }
                    (None, true) => {
                        let record = get(&state, &id)?;
                        let Some(h) = record.host else {
                            bail!(
                                "approval `{id}` ({}) has no host; --host only applies to \
                                 connections",
                                record.action
                            );
                        };
                        GrantScope::Host(h)
                    }
                    (None, false) => GrantScope::Exact,
                };
                Answer::Agent { days, scope }
            } else if session {
                Answer::Session
            } else {
                Answer::Once
            };
            answer_it(&state, &id, &answer)
        }
        ApprovalsCommand::Deny { id } => {
            if get(&state, &id)?.kind == ApprovalKind::MemoryWrite {
                return answer_memory(&state, &id, false);
            }
            answer_it(&state, &id, &Answer::Deny)
        }
        ApprovalsCommand::Grants { all, json } => grants(&state, all, json),
        ApprovalsCommand::Revoke { id } => {
            let grant = runtime::approval::revoke_grant(&state.store, &state.audit, &id, Some(BY))?;
            println!(
                "revoked grant {id} ({}: {})",
                scope_text(&grant),
                grant.action
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// With `approvals.answered_by = "approvers"`, nothing on this machine answers: the
/// request waits for an approver token through the gateway.
pub fn refuse_unless_local_answers(state: &State, id: &str) -> Result<()> {
    if state.config.approvals.answered_by == config::AnsweredBy::Approvers {
        bail!("{}", crate::terminal::approvers_only_hint(id));
    }
    Ok(())
}

/// Answer the memory change `id`: approving appends it to its agent's memory with the
/// writer's labels (if that fails, it stays pending and the error says why), denying
/// discards it. The answer is audited like any other, naming the entry written.
pub fn answer_memory(state: &State, id: &str, approve: bool) -> Result<ExitCode> {
    let done = runtime::approval::answer_memory_change(
        &state.store,
        &state.audit,
        &state.state_dir,
        id,
        approve,
        BY,
    );
    let done = match done {
        Err(runtime::approval::AnswerError::Audit(e)) => return Err(e.into()),
        other => other.with_context(|| {
            if approve {
                format!("memory change `{id}` not applied")
            } else {
                format!("memory change `{id}` not denied")
            }
        })?,
    };
    let a = &done.approval;
    match &done.entry {
        Some(entry) => println!(
            "approved {id}: entry {entry} added to {} of agent `{}` with label {} {}",
            done.change.file,
            a.agent,
            done.change.labels.integrity.as_str(),
            done.change.labels.confidentiality.as_str()
        ),
        None => println!(
            "denied {id}: memory change to {} of agent `{}` discarded",
            done.change.file, a.agent
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn get(state: &State, id: &str) -> Result<ApprovalRecord> {
    state.store.get_approval(id)?.with_context(|| {
        format!("no approval `{id}`; list pending ones with `cordon approvals list`")
    })
}

/// Requests whose waiting process is gone are expired here (and audited), so nothing
/// stays answerable past its deadline.
pub fn expire_overdue(state: &State) -> Result<()> {
    runtime::approval::expire_overdue(&state.store, &state.audit)?;
    Ok(())
}

fn answer_it(state: &State, id: &str, answer: &Answer) -> Result<ExitCode> {
    let done = runtime::approval::answer_request(&state.store, &state.audit, id, answer, BY)?;
    let a = &done.approval;
    let verb = match a.status {
        ApprovalStatus::Denied => "denied",
        _ => "approved",
    };
    println!("{verb} {id}: {}", a.action);
    if let Some(g) = &done.grant {
        println!(
            "grant {}: {} for {}{}",
            g.id,
            scope_text(g),
            g.session
                .as_deref()
                .map(|s| format!("session {s}"))
                .unwrap_or_else(|| format!("every session of agent `{}`", g.agent)),
            g.expires_at
                .as_deref()
                .map(|e| format!(", until {e}"))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn list(state: &State, all: bool, json: bool) -> Result<ExitCode> {
    list_where(state, all, json, None, None)
}

/// `list`, optionally only the requests of one kind and agent.
pub fn list_where(
    state: &State,
    all: bool,
    json: bool,
    kind: Option<ApprovalKind>,
    agent: Option<&str>,
) -> Result<ExitCode> {
    let filter = ApprovalFilter {
        status: (!all).then_some(ApprovalStatus::Pending),
        agent: agent.map(str::to_string),
        ..Default::default()
    };
    let mut records = state.store.list_approvals(&filter)?;
    if let Some(k) = kind {
        records.retain(|r| r.kind == k);
    }
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&records)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if records.is_empty() {
        writeln!(
            out,
            "no {}{}",
            if all { "" } else { "pending " },
            match kind {
                Some(ApprovalKind::MemoryWrite) => "memory changes",
                _ => "approval requests",
            }
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let now = OffsetDateTime::now_utc();
    for r in &records {
        let mut head = format!(
            "{}  {} ago  {}  agent `{}`  session {}",
            r.id,
            age(&r.created_at, now),
            r.status.as_str(),
            r.agent,
            r.session
        );
        if let Some(a) = r.answer {
            head.push_str(&format!(" ({})", a.as_str()));
        }
        if let Some(by) = &r.answered_by {
            head.push_str(&format!(" by {by}"));
        }
        writeln!(out, "{head}")?;
        writeln!(out, "  kind:      {}", r.kind.as_str())?;
        writeln!(out, "  action:    {}", r.action)?;
        if r.kind == ApprovalKind::MemoryWrite {
            match PendingChange::of(r) {
                Ok(c) => writeln!(out, "  text:      {}", c.preview(PREVIEW_CHARS))?,
                Err(e) => writeln!(out, "  text:      (unreadable: {e})")?,
            }
        }
        writeln!(out, "  why:       {} [{}]", r.reason, r.rule)?;
        if !r.labels.is_null() {
            writeln!(out, "  labels:    {}", describe_labels(&r.labels))?;
        }
        if !r.untrusted_sources.is_empty() {
            writeln!(out, "  untrusted: {}", r.untrusted_sources.join(", "))?;
        }
        if r.status == ApprovalStatus::Pending {
            if r.kind == ApprovalKind::MemoryWrite {
                writeln!(
                    out,
                    "  waits:     for `cordon approvals approve|deny {}` (until {})",
                    r.id, r.expires_at
                )?;
            } else {
                writeln!(out, "  expires:   {}", r.expires_at)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn grants(state: &State, all: bool, json: bool) -> Result<ExitCode> {
    let grants = state.store.list_grants(None, all)?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&grants)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if grants.is_empty() {
        writeln!(out, "no {}grants", if all { "" } else { "active " })?;
        return Ok(ExitCode::SUCCESS);
    }
    for g in &grants {
        let state = match (&g.revoked_at, &g.expires_at) {
            (Some(at), _) => format!("revoked {at}"),
            (None, Some(e)) => format!("until {e}"),
            (None, None) => "until the session ends".into(),
        };
        writeln!(
            out,
            "{}  agent `{}`  {}  {}  {}",
            g.id,
            g.agent,
            g.session
                .as_deref()
                .map(|s| format!("session {s}"))
                .unwrap_or_else(|| "all sessions".into()),
            scope_text(g),
            state
        )?;
        writeln!(out, "  from:      {} (approval {})", g.action, g.source)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn scope_text(g: &GrantRecord) -> String {
    match &g.scope {
        GrantScope::Exact => format!("exact {}", g.tool),
        GrantScope::Prefix(p) => format!("{} starting with `{}`", g.tool, p.join(" ")),
        GrantScope::Host(h) => format!("{} to host {h}", g.tool),
    }
}

fn age(created_at: &str, now: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    let Ok(t) = time::PrimitiveDateTime::parse(created_at, fmt) else {
        return "?".into();
    };
    let secs = (now - t.assume_utc()).whole_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}
