//! `testkit-llm --script FILE.json [--port N]`: serve a scripted LLM on 127.0.0.1 for
//! manual and CLI tests. Prints its base URL on stdout, then serves until killed.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use cordon_testkit::{MockLlm, Script};

const USAGE: &str = "usage: testkit-llm --script FILE.json [--port N]\n\
    FILE.json is a JSON array of replies, e.g. [{\"text\": \"hello\"}, \
    {\"tool_calls\": [{\"name\": \"read_file\", \"arguments\": {\"path\": \"a.txt\"}}]}]";

fn parse_args() -> Result<(PathBuf, u16), String> {
    let mut script = None;
    let mut port = 0u16;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--script" => script = args.next().map(PathBuf::from),
            "--port" => {
                let value = args.next().ok_or("--port needs a number")?;
                port = value
                    .parse()
                    .map_err(|_| format!("--port `{value}` is not a port number (0-65535)"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    let script = script.ok_or_else(|| format!("--script FILE is required\n{USAGE}"))?;
    Ok((script, port))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let (path, port) = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("testkit-llm: {e}");
            return ExitCode::from(2);
        }
    };
    let script = match Script::from_json_file(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("testkit-llm: {e}");
            return ExitCode::from(2);
        }
    };
    let llm = match MockLlm::start_on_port(script, port).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("testkit-llm: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::from(1);
        }
    };
    let mut out = std::io::stdout();
    if writeln!(out, "{}", llm.base_url())
        .and_then(|_| out.flush())
        .is_err()
    {
        return ExitCode::from(1);
    }
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}
