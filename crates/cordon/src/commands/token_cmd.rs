//! `cordon token create|list|revoke`: the gateway's API tokens. A token is printed once,
//! at creation, on stdout alone (details go to stderr); the store keeps only its hash.
//! Creation and revocation are audited.

use std::process::ExitCode;

use anyhow::{Result, bail};
use store::{Revoked, TokenScope};

use crate::cli::{TokenCommand, TokenScopeArg};
use crate::setup::open_state;

/// Who created or revoked a token, in the audit log.
const BY: &str = "cli";

impl From<TokenScopeArg> for TokenScope {
    fn from(s: TokenScopeArg) -> TokenScope {
        match s {
            TokenScopeArg::Read => TokenScope::Read,
            TokenScopeArg::Approver => TokenScope::Approver,
            TokenScopeArg::Operator => TokenScope::Operator,
            TokenScopeArg::Admin => TokenScope::Admin,
        }
    }
}

pub fn token(command: TokenCommand) -> Result<ExitCode> {
    let state = open_state()?;
    match command {
        TokenCommand::Create { scope, ttl, name } => {
            let ttl = gateway::token::parse_ttl(&ttl)?;
            let issued =
                gateway::token::create(&state.store, &state.audit, &name, scope.into(), ttl, BY)?;
            let r = &issued.record;
            eprintln!(
                "created token {} (name `{}`, scope {}, expires {})",
                r.id, r.name, r.scope, r.expires_at
            );
            println!("{}", issued.token.expose());
            eprintln!(
                "This is the only time the token is shown: keep it in a password manager. \
                 Revoke it with `cordon token revoke {}`.",
                r.id
            );
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::List { all, json } => {
            let tokens = state.store.list_tokens(all)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
                return Ok(ExitCode::SUCCESS);
            }
            if tokens.is_empty() {
                println!(
                    "no {}tokens; create one with `cordon token create --scope operator`",
                    if all { "" } else { "usable " }
                );
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<26}  {:<16}  {:<8}  {:<20}  {:<20}  {:<20}  STATE",
                "ID", "NAME", "SCOPE", "CREATED", "EXPIRES", "LAST USED"
            );
            let now = store_now();
            for t in tokens {
                let state = match (&t.revoked_at, t.expires_at <= now) {
                    (Some(_), _) => "revoked",
                    (None, true) => "expired",
                    (None, false) => "active",
                };
                println!(
                    "{:<26}  {:<16}  {:<8}  {:<20}  {:<20}  {:<20}  {state}",
                    t.id,
                    t.name,
                    t.scope.as_str(),
                    short(&t.created_at),
                    short(&t.expires_at),
                    t.last_used_at.as_deref().map_or("never", short),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Revoke { id } => {
            match gateway::token::revoke(&state.store, &state.audit, &id, BY)? {
                Revoked::Now(r) => {
                    println!("revoked token {} (`{}`, {})", r.id, r.name, r.scope);
                    Ok(ExitCode::SUCCESS)
                }
                Revoked::AlreadyRevoked(r) => bail!(
                    "token {} was already revoked at {}; nothing changed",
                    r.id,
                    r.revoked_at.unwrap_or_default()
                ),
                Revoked::NotFound => {
                    bail!("no token `{id}`; list them with `cordon token list --all`")
                }
            }
        }
    }
}

/// A store timestamp to the second (`2026-01-02T03:04:05`).
fn short(ts: &str) -> &str {
    ts.get(..19).unwrap_or(ts)
}

/// Now, in the store's fixed-width form (so it compares as text).
fn store_now() -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(fmt)
        .unwrap_or_default()
}
