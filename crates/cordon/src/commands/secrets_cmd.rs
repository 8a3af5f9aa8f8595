//! `cordon secrets set|list|rm`: the vault from the command line.
//!
//! Guarantees: a value is read only from the terminal (without echo) or from stdin, is
//! never printed, never put in an argument, an error message or the audit log — only
//! the vault stores it (encrypted, see `secrets::vault`). Every change (`set`, `rm`) is
//! recorded in the audit log with the secret's name and bound hosts. Names are checked
//! before the vault is touched; an invalid name or host pattern changes nothing.
//!
//! Not guaranteed: that the value cannot be seen by someone watching the terminal or
//! the process feeding stdin; that the value is wiped from every buffer it passed
//! through (the terminal driver's and the pipe's are outside this process).

use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use audit::event::{SecretChange, SecretRemoved, SecretSet};
use config::HostPattern;
use secrets::{Secret, SecretInfo, VaultError};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::cli::SecretsCommand;
use crate::setup::{open_state, open_vault};

/// Longest value accepted from stdin (a credential, not a file).
const MAX_VALUE_BYTES: usize = 64 * 1024;

pub fn secrets(command: SecretsCommand) -> Result<ExitCode> {
    match command {
        SecretsCommand::Set { name, hosts } => set(&name, hosts),
        SecretsCommand::List { json } => list(json),
        SecretsCommand::Rm { name } => remove(&name),
    }
}

fn check_name(name: &str) -> Result<()> {
    if !secrets::vault::is_valid_name(name) {
        return Err(VaultError::InvalidName {
            name: name.to_string(),
        }
        .into());
    }
    Ok(())
}

fn host_strings(hosts: &[HostPattern]) -> Vec<String> {
    hosts.iter().map(ToString::to_string).collect()
}

fn set(name: &str, hosts: Vec<HostPattern>) -> Result<ExitCode> {
    check_name(name)?;
    if hosts.is_empty() {
        bail!("--hosts is empty: name at least one host the secret may be sent to");
    }
    let state = open_state()?;
    let mut vault = open_vault(&state)?;
    let value = read_value(name)?;
    let replaced = vault.get(name).is_some();
    vault
        .set(name, value, hosts.clone())
        .with_context(|| format!("secret `{name}` was not stored"))?;
    state.audit.record_event(
        None,
        SecretChange::SecretSet(SecretSet {
            name: name.to_string(),
            hosts: host_strings(&hosts),
            replaced,
            by: "cli".into(),
        }),
    )?;
    let verb = if replaced { "replaced" } else { "stored" };
    eprintln!(
        "secret `{name}` {verb}; it will be sent only to {}",
        host_strings(&hosts).join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// The value from the terminal without echo, or one line from stdin.
fn read_value(name: &str) -> Result<Secret> {
    let value = if std::io::stdin().is_terminal() {
        crate::terminal::read_hidden(&format!("value of {name} (not shown): "))
            // Moved, not copied: the buffer read into is zeroed when dropped.
            .map(|mut v| Secret::new(std::mem::take(&mut *v)))
            .context("cannot read the value from the terminal")?
    } else {
        read_stdin_line()?
    };
    if value.is_empty() {
        bail!(
            "the value of `{name}` is empty; type it at the prompt or pipe it on stdin \
             (one line)"
        );
    }
    Ok(value)
}

/// All of stdin: one line, with its trailing newline (`\n` or `\r\n`) removed.
fn read_stdin_line() -> Result<Secret> {
    // Sized up front so reading never reallocates and leaves unzeroed copies behind.
    let mut raw = Zeroizing::new(Vec::with_capacity(MAX_VALUE_BYTES + 1));
    std::io::stdin()
        .lock()
        .take(MAX_VALUE_BYTES as u64 + 1)
        .read_to_end(&mut raw)
        .context("cannot read the value from stdin")?;
    if raw.len() > MAX_VALUE_BYTES {
        bail!("the value on stdin is longer than {MAX_VALUE_BYTES} bytes; a secret is one line");
    }
    if raw.ends_with(b"\n") {
        raw.pop();
        if raw.ends_with(b"\r") {
            raw.pop();
        }
    }
    if raw.contains(&b'\n') {
        bail!("stdin holds more than one line; a secret value is exactly one line");
    }
    // Move the bytes into the secret without leaving an unzeroed copy behind.
    let bytes = std::mem::take(&mut *raw);
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Secret::new(text)),
        Err(e) => {
            drop(Zeroizing::new(e.into_bytes()));
            bail!("the value on stdin is not valid UTF-8")
        }
    }
}

fn timestamp(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "?".to_string())
}

fn info_json(info: &SecretInfo) -> Value {
    json!({
        "name": info.name,
        "hosts": host_strings(&info.hosts),
        "created": timestamp(info.created),
        "last_used": info.last_used.map(timestamp),
    })
}

fn list(as_json: bool) -> Result<ExitCode> {
    let state = open_state()?;
    let vault = open_vault(&state)?;
    let infos = vault.list();
    if as_json {
        let all: Vec<Value> = infos.iter().map(info_json).collect();
        println!("{}", Value::Array(all));
        return Ok(ExitCode::SUCCESS);
    }
    if infos.is_empty() {
        eprintln!("the vault is empty; add a secret with `cordon secrets set NAME --hosts HOST`");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 4]> = infos
        .iter()
        .map(|i| {
            [
                i.name.clone(),
                host_strings(&i.hosts).join(","),
                timestamp(i.created),
                i.last_used.map_or_else(|| "never".to_string(), timestamp),
            ]
        })
        .collect();
    let header = [
        "NAME".to_string(),
        "HOSTS".to_string(),
        "CREATED".to_string(),
        "LAST USED".to_string(),
    ];
    let mut widths = [0usize; 4];
    for row in std::iter::once(&header).chain(rows.iter()) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(rows.iter()) {
        println!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn remove(name: &str) -> Result<ExitCode> {
    check_name(name)?;
    let state = open_state()?;
    let mut vault = open_vault(&state)?;
    let hosts = vault.get(name).map(|(_, hosts)| host_strings(&hosts));
    if !vault
        .remove(name)
        .with_context(|| format!("secret `{name}` was not removed"))?
    {
        return Err(VaultError::UnknownSecret {
            name: name.to_string(),
        }
        .into());
    }
    state.audit.record_event(
        None,
        SecretChange::SecretRemoved(SecretRemoved {
            name: name.to_string(),
            hosts,
            by: "cli".into(),
        }),
    )?;
    eprintln!("secret `{name}` removed");
    Ok(ExitCode::SUCCESS)
}
