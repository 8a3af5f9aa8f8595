//! `cordon`: parses the command line, wires the crates together, prints. Thin by design:
//! every decision lives in the library crates.

mod cli;
mod commands;
mod setup;
mod terminal;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CORDON_LOG")
                // rmcp logs at `error` each failure Cordon reports itself, with the
                // server's name: once is enough.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rmcp=off")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person reading a terminal, never in a file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // One command in one sandbox (`sandbox exec`) waits on that sandbox from a blocking
    // thread while this one serves its egress listener: worker threads would only be
    // started and stopped again.
    let one_command = matches!(
        &cli.command,
        cli::Command::Sandbox {
            command: cli::SandboxCommand::Exec { .. },
        }
    );
    let mut builder = if one_command {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(commands::dispatch(cli.command));
    if one_command {
        // Its one blocking task (the sandbox's run) ended before the result was recorded
        // and returned: nothing is left to wait for, so exit without waking the idle
        // blocking thread only to join it.
        rt.shutdown_background();
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
