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
        }) || mutates_outside_scratch(cmd, scratch)
    })
}

/// Programs that create, change or delete the files named by their operands.
const FILE_MUTATORS: [&str; 20] = [
    "rm", "rmdir", "unlink", "shred", "truncate", "touch", "mkdir", "mv", "cp", "ln", "install",
    "chmod", "chown", "chgrp", "tee", "dd", "rsync", "mktemp", "split", "csplit",
];

/// Programs that write files where they run (the workspace) whatever their operands.
const TREE_WRITERS: [&str; 8] = [
    "tar", "unzip", "cpio", "patch", "7z", "ar", "gunzip", "bunzip2",
];

/// `git` subcommands that change or delete working-tree files.
const GIT_WRITERS: [&str; 12] = [
    "clean", "reset", "checkout", "restore", "rm", "mv", "stash", "apply", "am", "switch", "merge",
    "rebase",
];

/// Whether `cmd` changes files outside the scratch area through its operands: a file
/// mutator (`rm`, `mv`, `cp`, `tee`, `dd of=` …) with an operand outside scratch (a glob
/// or expansion counts as outside: its real value is unknown), an in-place editor
/// (`sed -i`, `perl -i`), `find -delete/-exec`, an archive extractor, or a `git`
/// subcommand that rewrites the working tree.
fn mutates_outside_scratch(cmd: &crate::canonical::SimpleCommand, scratch: &[String]) -> bool {
    let Some(program) = cmd.argv.first() else {
        return false;
    };
    let name = command_name(program).unwrap_or(program.as_str());
    let operands = || {
        let mut after_dashdash = false;
        cmd.argv[1..].iter().enumerate().filter_map(move |(i, a)| {
            if after_dashdash {
                return Some((i + 1, a.as_str()));
            }
            if a == "--" {
                after_dashdash = true;
                return None;
            }
            (!a.starts_with('-') || a == "-").then_some((i + 1, a.as_str()))
        })
    };
    let outside = |i: usize, a: &str| {
        cmd.globs.contains(&i)
            || cmd.expansions.iter().any(|e| a.contains(e.as_str()))
            || !in_scratch(a, scratch)
    };
    if FILE_MUTATORS.contains(&name) {
        if name == "dd" {
            return cmd.argv[1..]
                .iter()
                .enumerate()
                .filter_map(|(i, a)| a.strip_prefix("of=").map(|t| (i + 1, t)))
                .any(|(i, t)| outside(i, t));
        }
        // Copying programs write only their destination: the last operand, or the
        // directory of `-t DIR` / `--target-directory=DIR`.
        if matches!(name, "cp" | "ln" | "install" | "rsync") {
            let args = &cmd.argv[1..];
            if let Some(k) = args.iter().position(|a| a == "-t") {
                return args.get(k + 1).is_none_or(|d| outside(k + 2, d));
            }
            if let Some(d) = args
                .iter()
                .find_map(|a| a.strip_prefix("--target-directory="))
            {
                return outside(usize::MAX, d);
            }
            let all: Vec<(usize, &str)> = operands().collect();
            return all.last().is_some_and(|&(i, a)| outside(i, a));
        }
        return operands().any(|(i, a)| outside(i, a));
    }
    if TREE_WRITERS.contains(&name) {
        return true;
    }
    match name {
        "sed" | "perl" | "ruby" => cmd.argv[1..].iter().any(|a| {
            a == "-i"
                || a.starts_with("--in-place")
                || (a.starts_with('-') && !a.starts_with("--") && a.contains('i'))
        }),
        "find" => cmd.argv[1..].iter().any(|a| {
            matches!(
                a.as_str(),
                "-delete" | "-exec" | "-execdir" | "-ok" | "-okdir"
            )
        }),
        "git" => cmd.argv[1..]
            .iter()
            .find(|a| !a.starts_with('-'))
            .is_some_and(|sub| GIT_WRITERS.contains(&sub.as_str())),
        _ => false,
    }
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
        // File mutators with operands outside scratch, however they are wrapped.
        for c in [
            "rm -rf /workspace/*",
            "env bash -lc 'rm -rf /workspace/*'",
            "rm -f src/main.rs",
            "mv scratch/a src/a",
            "cp scratch/a ../a",
            "tee notes.txt",
            "dd if=scratch/x of=src/x",
            "sed -i s/a/b/ src/lib.rs",
            "find . -name '*.rs' -delete",
            "tar -xf scratch/a.tar",
            "git checkout -- src",
            "rm -rf scratch/$X",
            "rm scratch/../src/x",
        ] {
            assert!(facts(c, false).writes_outside_scratch, "{c}");
        }
        for c in [
            "rm -rf scratch/build",
            "mkdir -p scratch/out",
            "cp README.md scratch/readme.txt",
            "touch /workspace/scratch/t",
            "sed s/a/b/ src/lib.rs",
            "find . -name x",
            "git status",
            "git log -1",
            "ls *.rs",
        ] {
            assert!(!facts(c, false).writes_outside_scratch, "{c}");
        }
        assert!(in_scratch("./scratch", &["scratch/".to_string()]));
    }
}
