//! Schedules inside `cordon serve`: each `[[schedules]]` entry starts its task at the times
//! of its cron expression (read in its time zone), and the heartbeat every `every_mins`;
//! each run is a new session, recorded (`trigger`, `source: schedule`), its answer sent to
//! `reply_to` if set (the heartbeat's only when it is not `HEARTBEAT_OK`).
//!
//! The task's words are the configured task (trusted: whoever wrote the config); no person
//! is present, so its approvals go to approvers (the `reply_to` conversation, CLI, web) or
//! expire as denials.
//!
//! Does not: catch up on runs missed while the gateway was stopped, or start a run while
//! the previous run of the same schedule is still going (that time is skipped and logged).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use agent::TurnInput;
use audit::event::{ScheduleRun, TriggerEvent};
use config::schedule::CronSchedule;

use crate::chat::Chats;
use crate::hub::Hub;
use crate::server::AppState;

/// The heartbeat's answer when nothing needs attention; not delivered.
pub const HEARTBEAT_OK: &str = "HEARTBEAT_OK";

/// What a run starts.
#[derive(Clone)]
pub struct Task {
    pub name: String,
    pub agent: String,
    pub text: String,
    pub reply_to: Option<String>,
}

/// Start every schedule's loop and the heartbeat's.
pub(crate) fn start(state: &Arc<AppState>) {
    for s in &state.config.schedules {
        let cron = match CronSchedule::new(&s.cron, &s.timezone) {
            Ok(c) => c,
            Err(e) => {
                // Checked when the config loaded; kept as a guard.
                tracing::error!("schedule `{}`: {e}; not started", s.name);
                continue;
            }
        };
        let task = Task {
            name: s.name.clone(),
            agent: s.agent.clone(),
            text: s.task.clone(),
            reply_to: s.reply_to.clone(),
        };
        let st = state.clone();
        tokio::spawn(async move {
            let busy = Arc::new(AtomicBool::new(false));
            let mut last = None;
            loop {
                let now = chrono::Utc::now();
                let Some(next) = next_fire(&cron, now, last) else {
                    tracing::warn!("schedule `{}` has no next time; stopped", task.name);
                    return;
                };
                let wait = (next - now).to_std().unwrap_or(Duration::ZERO);
                tokio::time::sleep(wait).await;
                fire(&st, &task, &busy);
                last = Some(next);
            }
        });
    }
    if let Some(h) = &state.config.heartbeat {
        let task = Task {
            name: "heartbeat".into(),
            agent: h.agent.clone(),
            text: h.task.clone(),
            reply_to: h.reply_to.clone(),
        };
        let every = Duration::from_secs(h.every_mins * 60);
        let st = state.clone();
        tokio::spawn(async move {
            let busy = Arc::new(AtomicBool::new(false));
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tick.tick().await;
                fire(&st, &task, &busy);
            }
        });
    }
}

/// When a schedule fires next: strictly after now and after the time it fired last. The
/// sleep runs on the monotonic clock and the expression on the wall clock, so a wall clock
/// set back (by NTP or by hand) after a run would otherwise find that same time again and
/// run the task twice.
fn next_fire(
    cron: &CronSchedule,
    now: chrono::DateTime<chrono::Utc>,
    last: Option<chrono::DateTime<chrono::Utc>>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    cron.next_after(last.map_or(now, |l| l.max(now)))
}

fn fire(state: &Arc<AppState>, task: &Task, busy: &Arc<AtomicBool>) {
    if busy.swap(true, Ordering::SeqCst) {
        tracing::warn!(
            "schedule `{}`: the previous run is still going; this time is skipped",
            task.name
        );
        return;
    }
    let (st, task, busy) = (state.clone(), task.clone(), busy.clone());
    tokio::spawn(async move {
        if let Err(e) = run(
            &st.hub,
            st.chats.get().map(|c| &**c),
            &st.audit,
            &task,
            "schedule",
        )
        .await
        {
            tracing::warn!("schedule `{}`: {e}", task.name);
        }
        busy.store(false, Ordering::SeqCst);
    });
}

fn record(audit: &audit::Log, run: ScheduleRun) {
    let session = run.session.clone();
    if let Err(e) = audit.record_event(session.as_deref(), TriggerEvent::Schedule(run)) {
        tracing::error!("schedule: cannot write its audit record: {e}");
    }
}

/// Run `task` once to its end (started `by` the schedule or a person), delivering its
/// answer through `chats` when it has a `reply_to`; its session id and answer.
pub async fn run(
    hub: &Hub,
    chats: Option<&Chats>,
    audit: &audit::Log,
    task: &Task,
    by: &str,
) -> Result<(String, Option<String>), String> {
    let mut rec = ScheduleRun {
        name: task.name.clone(),
        agent: task.agent.clone(),
        by: by.into(),
        session: None,
        reply_to: task.reply_to.clone(),
        error: None,
    };
    let started = async {
        let session = hub.create_session(&task.agent).await?;
        if let Some(reply_to) = &task.reply_to
            && let Some(chats) = chats
        {
            chats.watch(reply_to, &session.id)?;
        }
        let input = TurnInput {
            text: task.text.clone(),
            from: format!("schedule:{}", task.name),
            untrusted: None,
        };
        let ev = hub
            .start_turn_with(&session, input)
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((session.id, ev.seq))
    }
    .await;
    let (session, seq) = match started {
        Ok(s) => s,
        Err(e) => {
            rec.error = Some(e.clone());
            record(audit, rec);
            return Err(e);
        }
    };
    rec.session = Some(session.clone());
    record(audit, rec);
    let answer = crate::chat::wait_for_answer(hub, &session, seq).await;
    let failed = answer.as_ref().err().cloned();
    let text = match answer {
        Ok(Some(a)) if task.name == "heartbeat" && a.trim() == HEARTBEAT_OK => {
            return Ok((session, Some(a)));
        }
        Ok(Some(a)) => a,
        Ok(None) => return Ok((session, None)),
        Err(e) => format!("The scheduled task `{}` failed: {e}", task.name),
    };
    if let Some(reply_to) = &task.reply_to
        && let Some(chats) = chats
    {
        chats.deliver(reply_to, &session, &text).await;
    }
    match failed {
        Some(e) => Err(format!("the turn of session {session} failed: {e}")),
        None => Ok((session, Some(text))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_wall_clock_set_back_after_a_run_does_not_run_that_time_again() {
        let cron = CronSchedule::new("0 8 * * *", "UTC").unwrap();
        let fired = chrono::Utc.with_ymd_and_hms(2026, 7, 1, 8, 0, 0).unwrap();
        let tomorrow = chrono::Utc.with_ymd_and_hms(2026, 7, 2, 8, 0, 0).unwrap();
        // Right after the 08:00 run the clock is stepped back 30 s (to 07:59:30).
        let now = fired - chrono::Duration::seconds(30);
        assert_eq!(next_fire(&cron, now, Some(fired)), Some(tomorrow));
        // The first time, and after a clock set forward, the time comes from now.
        assert_eq!(next_fire(&cron, now, None), Some(fired));
        let later = tomorrow + chrono::Duration::hours(1);
        assert_eq!(
            next_fire(&cron, later, Some(fired)),
            Some(chrono::Utc.with_ymd_and_hms(2026, 7, 3, 8, 0, 0).unwrap())
        );
    }
}
