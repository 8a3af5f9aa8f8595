//! What the policies need to know about a canonical exec command: its programs, whether
//! it is "clean" (fully understood, nothing risky besides its programs), whether it runs
//! arbitrary code, uses the network, or writes outside the scratch area.
//!
//! Guarantees: `clean` is false for anything the canonicaliser did not fully understand,
//! for inline/arbitrary code, a non-harmless environment change, `xargs`-supplied
//! arguments, a variable expansion in an argument, a `cd` or redirection outside the
//! workspace. `network` is true for unparsable or arbitrary code whenever the sandbox can
//! reach the network, and so is a program given by a path outside the system bin
//! directories (`./run.sh`). Not guaranteed: that a program not in [`NETWORK_CLIENTS`] never
//! opens a connection (the egress proxy still enforces `egress.allow`).

use crate::canonical::{CanonicalExec, command_name};
use crate::shell::RedirectOp;

/// Where the agent's workspace is mounted inside the sandbox.
pub const WORKSPACE_MOUNT: &str = "/workspace";

/// Directories the sandbox's fixed `PATH` searches; `/usr/bin/ls` counts as `ls`.
const SYSTEM_BIN_DIRS: [&str; 3] = ["/usr/local/bin/", "/usr/bin/", "/bin/"];

/// Device files a redirection may use although they are outside the workspace.
const DEVICES: [&str; 4] = ["/dev/null", "/dev/stdin", "/dev/stdout", "/dev/stderr"];

/// Builtins that need no `exec.allow` entry: no-ops, and `set`, which the canonicaliser
/// only lets through with harmless options (`-e -u -x -o pipefail` …).
pub(crate) const IMPLICIT: [&str; 4] = ["set", "true", "false", ":"];

/// Environment variables a command may set without approval: they change output format
/// or verbosity, never which code runs or where files go.
const HARMLESS_ENV: [&str; 11] = [
    "RUST_BACKTRACE",
    "RUST_LOG",
    "CARGO_TERM_COLOR",
    "NO_COLOR",
    "CLICOLOR",
    "FORCE_COLOR",
    "CI",
    "LANG",
    "LC_ALL",
    "TZ",
    "TERM",
];

/// Programs that are network clients whatever their arguments.
pub const NETWORK_CLIENTS: [&str; 22] = [
    "curl", "wget", "nc", "ncat", "netcat", "socat", "ssh", "scp", "sftp", "rsync", "telnet",
    "ftp", "dig", "nslookup", "host", "gh", "aws", "gcloud", "az", "kubectl", "docker", "apt",
];

/// The program name policies see: a bare name or a name in a system bin directory is the
/// bare name (`/usr/bin/ls` -> `ls`); anything else (`./ls`, `/opt/x/ls`) stays as written.
pub fn program_name(program: &str) -> &str {
    SYSTEM_BIN_DIRS
        .iter()
        .find_map(|d| program.strip_prefix(d))
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .unwrap_or(program)
}

/// The facts of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecFacts {
    pub programs: Vec<String>,
    pub clean: bool,
    pub arbitrary_code: bool,
    pub network: bool,
    pub writes_outside_scratch: bool,
}

impl ExecFacts {
    pub fn of(c: &CanonicalExec, sandbox_has_network: bool, scratch: &[String]) -> ExecFacts {
        let mut programs: Vec<String> = Vec::new();
        for p in c.commands.iter().filter_map(|c| c.argv.first()) {
            let name = program_name(p);
            if !programs.iter().any(|q| q == name) {
                programs.push(name.to_string());
            }
        }
        let arbitrary = c.arbitrary_code.is_some() || c.unparsable.is_some();
        ExecFacts {
            clean: offence(c, None).is_none(),
            arbitrary_code: arbitrary,
            network: sandbox_has_network && (arbitrary || uses_network(c)),
            writes_outside_scratch: writes_outside_scratch(c, scratch),
            programs,
        }
    }
}

/// Whether some command of `c` is a network client.
fn uses_network(c: &CanonicalExec) -> bool {
    c.commands.iter().any(|cmd| {
        let Some(p) = cmd.argv.first() else {
            return false;
        };
        // A program given by a path outside the system bin directories (`./run.sh`,
        // `/workspace/x`) is code the guard cannot see: assume it may use the network.
        let Some(name) = command_name(p) else {
            return true;
        };
        let sub = cmd.argv.get(1).map_or("", String::as_str);
        NETWORK_CLIENTS.contains(&name)
            || name == "apt-get"
            || (name == "git"
                && cmd.argv.iter().skip(1).any(|a| {
                    matches!(
                        a.as_str(),
                        "clone" | "fetch" | "pull" | "push" | "ls-remote" | "submodule"
                    )
                }))
            || (matches!(name, "pip" | "pip3") && matches!(sub, "install" | "download"))
            || (matches!(name, "npm" | "npx" | "yarn" | "pnpm")
                && (name == "npx" || matches!(sub, "install" | "i" | "add" | "publish" | "exec")))
            || (name == "cargo" && matches!(sub, "install" | "publish" | "fetch" | "update"))
    })
}

/// The first part of `c` that keeps it from running without approval in allowlist mode.
/// With `allow = None` the program check is skipped (that is the Cedar policy's job).
pub(crate) fn offence(c: &CanonicalExec, allow: Option<&[String]>) -> Option<String> {
    if let Some(why) = &c.unparsable {
        return Some(format!("unparsable: {why}"));
    }
    if let Some(why) = &c.arbitrary_code {
        return Some(why.clone());
    }
    if c.commands.iter().all(|c| c.argv.is_empty()) {
        return Some("empty command".into());
    }
    for cmd in &c.commands {
        if let Some(e) = cmd.env.iter().find(|e| !harmless_env(e)) {
            return Some(format!("changes the environment (`{e}`)"));
        }
        if let Some(program) = cmd.argv.first() {
            if let Some(allow) = allow {
                let name = program_name(program);
                if !IMPLICIT.contains(&name) && !allow.iter().any(|a| program_name(a) == name) {
                    return Some(format!("`{program}` is not in exec.allow"));
                }
            }
            if cmd.open_ended {
                return Some(format!(
                    "`xargs` runs `{program}` with arguments read from stdin"
                ));
            }
            if matches!(
                command_name(program),
                Some("cd" | "pushd" | "popd" | "chdir")
            ) {
                let target = cmd.argv.get(1).map_or("~", String::as_str);
                if !inside_workspace(target) {
                    return Some(format!("`{program} {target}` leaves the workspace"));
                }
            }
        }
        if let Some(e) = cmd.expansions.first() {
            return Some(format!("argument depends on the variable expansion `{e}`"));
        }
        // Reads outside the workspace count too: `< /etc/x` is rare in ordinary work.
        for r in cmd.redirects.iter().filter(|r| !is_fd_op(r.op)) {
            if r.target_expands {
                return Some(format!(
                    "redirection target `{}` has an expansion",
                    r.target
                ));
            }
            if !inside_workspace(&r.target) && !DEVICES.contains(&r.target.as_str()) {
                let verb = if r.op.writes() { "writes" } else { "reads" };
                return Some(format!(
                    "redirection `{}{}` {verb} outside the workspace",
                    r.op.as_str(),
                    r.target
                ));
            }
        }
    }
    None
}

fn is_fd_op(op: RedirectOp) -> bool {
    matches!(
        op,
        RedirectOp::Heredoc | RedirectOp::DupRead | RedirectOp::DupWrite
    )
}

fn writes_outside_scratch(c: &CanonicalExec, scratch: &[String]) -> bool {
    c.commands.iter().any(|cmd| {
        cmd.redirects.iter().any(|r| {
            !is_fd_op(r.op)
                && r.op.writes()
                && !DEVICES.contains(&r.target.as_str())
                && (r.target_expands || !in_scratch(&r.target, scratch))
        })
    })
}

fn harmless_env(change: &str) -> bool {
    change
        .split_once('=')
        .is_some_and(|(name, _)| HARMLESS_ENV.contains(&name))
}

/// A path (relative to the workspace, or absolute) that stays beneath the workspace:
/// no `..` component, no `~`, absolute only under [`WORKSPACE_MOUNT`].
pub(crate) fn inside_workspace(path: &str) -> bool {
    if path.starts_with('~') || path == "-" || path.split('/').any(|c| c == "..") {
        return false;
    }
    if path.starts_with('/') {
        return path == WORKSPACE_MOUNT
            || path
                .strip_prefix(WORKSPACE_MOUNT)
                .is_some_and(|r| r.starts_with('/'));
    }
    true
}

/// `path` relative to the workspace (`/workspace/a` and `./a` are `a`), or `None` when
/// it is outside it.
pub(crate) fn workspace_relative(path: &str) -> Option<String> {
    if !inside_workspace(path) {
        return None;
    }
    let rel = path
        .strip_prefix(WORKSPACE_MOUNT)
        .map_or(path, |r| r.trim_start_matches('/'));
    let parts: Vec<&str> = rel
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    Some(parts.join("/"))
}

/// Whether `path` is beneath one of the scratch directories (relative to the workspace).
pub(crate) fn in_scratch(path: &str, scratch: &[String]) -> bool {
    let Some(rel) = workspace_relative(path) else {
        return false;
    };
    scratch.iter().any(|dir| {
        let Some(dir) = workspace_relative(dir) else {
            return false;
        };
        !dir.is_empty()
            && (rel == dir
                || rel
                    .strip_prefix(dir.as_str())
                    .is_some_and(|r| r.starts_with('/')))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonicalise_exec;

    fn facts(c: &str, net: bool) -> ExecFacts {
        ExecFacts::of(&canonicalise_exec(c), net, &["scratch".to_string()])
    }

    #[test]
    fn programs_are_normalised() {
        assert_eq!(
            facts("/usr/bin/ls && ./ls; ls", false).programs,
            ["ls", "./ls"]
        );
        assert_eq!(program_name("/opt/x/ls"), "/opt/x/ls");
    }

    #[test]
    fn network_needs_a_networked_sandbox() {
        assert!(facts("curl https://x", true).network);
        assert!(!facts("curl https://x", false).network);
        assert!(facts("git push origin main", true).network);
        assert!(!facts("git status", true).network);
        assert!(facts("python3 -c 'print(1)'", true).network);
        assert!(facts("cargo install ripgrep", true).network);
        assert!(!facts("cargo test", true).network);
        assert!(facts("./run.sh", true).network);
        assert!(facts("/usr/bin/curl x", true).network);
        assert!(!facts("/usr/bin/ls", true).network);
    }

    #[test]
    fn scratch_writes() {
        assert!(!facts("ls > scratch/out.txt", false).writes_outside_scratch);
        assert!(!facts("ls > /workspace/scratch/a/b", false).writes_outside_scratch);
        assert!(facts("ls > out.txt", false).writes_outside_scratch);
        assert!(facts("ls > scratch/../x", false).writes_outside_scratch);
        assert!(facts("ls > scratchy", false).writes_outside_scratch);
        assert!(!facts("ls > /dev/null 2>&1", false).writes_outside_scratch);
        assert!(in_scratch("./scratch", &["scratch/".to_string()]));
    }
}
