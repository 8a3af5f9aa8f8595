//! The command to run: argv, environment, working directory and program lookup, all
//! converted to C strings before cloning.
//!
//! Guarantees: the environment is exactly the profile's; a program name without `/` is
//! tried in each directory of the profile's `PATH` (default `/usr/bin:/bin`), as `execvpe`
//! would, inside the sandbox's root. Not found is reported as [`SandboxError::Exec`], never
//! as a run. Does not run scripts without a `#!` line through `/bin/sh` (execvpe does).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::{ExecRequest, SandboxError, WORKSPACE_MOUNT};

/// `PATH` used for lookup when the profile's environment has none.
const DEFAULT_PATH: &str = "/usr/bin:/bin";

/// The `PATH` programs are looked up in: the profile's last `PATH`, else [`DEFAULT_PATH`].
pub(crate) fn search_path(env: &[(String, String)]) -> &str {
    env.iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str())
}

/// The command, validated and converted to C strings, ready to be sent to init.
pub(crate) struct CommandPlan {
    pub program: String,
    /// Full paths to try with `execve`, in order.
    pub candidates: Vec<CString>,
    pub cwd: CString,
    _argv: Vec<CString>,
    _env: Vec<CString>,
}

fn c(s: &str, what: &str) -> Result<CString, SandboxError> {
    CString::new(s).map_err(|_| SandboxError::Invalid(format!("{what} contains a NUL byte: {s:?}")))
}

impl CommandPlan {
    pub(crate) fn new(req: &ExecRequest, env: &[(String, String)]) -> Result<Self, SandboxError> {
        CommandPlan::from_parts(&req.argv, req.cwd.as_deref(), env)
    }

    /// `argv` in `cwd` (relative to, or under, the workspace mount) with exactly `env`.
    pub(crate) fn from_parts(
        argv: &[String],
        cwd: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Self, SandboxError> {
        let program = match argv.first() {
            Some(p) if !p.is_empty() => p.clone(),
            _ => {
                return Err(SandboxError::Invalid(
                    "argv is empty: give at least the program to run".to_owned(),
                ));
            }
        };
        let argv = argv
            .iter()
            .map(|a| c(a, "an argument"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut envs = Vec::with_capacity(env.len());
        for (k, v) in env {
            if k.is_empty() || k.contains('=') {
                return Err(SandboxError::Invalid(format!(
                    "environment variable name {k:?} is empty or contains '='; fix the \
                     profile's env"
                )));
            }
            envs.push(c(&format!("{k}={v}"), "an environment variable")?);
        }
        let path = search_path(env);
        let candidates = if program.contains('/') {
            vec![c(&program, "the program")?]
        } else {
            path.split(':')
                .map(|dir| if dir.is_empty() { "." } else { dir })
                .map(|dir| {
                    c(
                        &format!("{}/{program}", dir.trim_end_matches('/')),
                        "the program",
                    )
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        let cwd = match cwd {
            Some(dir) => Path::new(WORKSPACE_MOUNT).join(dir),
            None => Path::new(WORKSPACE_MOUNT).to_path_buf(),
        };
        let cwd = CString::new(cwd.as_os_str().as_bytes()).map_err(|_| {
            SandboxError::Invalid(format!(
                "working directory {} contains a NUL byte",
                cwd.display()
            ))
        })?;
        Ok(CommandPlan {
            program,
            candidates,
            cwd,
            _argv: argv,
            _env: envs,
        })
    }

    /// The arguments, for serializing to a live sandbox's init.
    pub(crate) fn argv(&self) -> &[CString] {
        &self._argv
    }

    /// The `KEY=value` environment, for serializing to a live sandbox's init.
    pub(crate) fn env(&self) -> &[CString] {
        &self._env
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn request(argv: &[&str]) -> ExecRequest {
        ExecRequest {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            cwd: None,
            stdin: Vec::new(),
            timeout: Duration::from_secs(1),
            output_limit: 1,
        }
    }

    fn candidates(plan: &CommandPlan) -> Vec<String> {
        plan.candidates
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn program_is_looked_up_in_the_profile_path() {
        let env = [("PATH".to_owned(), "/a:/b/".to_owned())];
        let plan = CommandPlan::new(&request(&["ls", "-l"]), &env).unwrap();
        assert_eq!(candidates(&plan), ["/a/ls", "/b/ls"]);
        let plan = CommandPlan::new(&request(&["ls"]), &[]).unwrap();
        assert_eq!(candidates(&plan), ["/usr/bin/ls", "/bin/ls"]);
        let plan = CommandPlan::new(&request(&["./x"]), &env).unwrap();
        assert_eq!(candidates(&plan), ["./x"]);
        assert_eq!(plan.cwd.as_bytes(), b"/workspace");
    }

    #[test]
    fn bad_requests_are_invalid() {
        for (argv, env) in [
            (vec![], vec![]),
            (vec![""], vec![]),
            (vec!["a\0b"], vec![]),
            (vec!["ls"], vec![("A=B".to_owned(), "x".to_owned())]),
            (vec!["ls"], vec![("".to_owned(), "x".to_owned())]),
            (vec!["ls"], vec![("A".to_owned(), "x\0".to_owned())]),
        ] {
            let err = CommandPlan::new(&request(&argv), &env).err();
            assert!(
                matches!(err, Some(SandboxError::Invalid(_))),
                "{argv:?} {env:?}: {err:?}"
            );
        }
    }
}
