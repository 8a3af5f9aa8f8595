//! Which workspace files a canonical exec command reads and which it runs as code, for
//! file provenance: the runtime joins the label of every labelled file the command
//! reads into the session, and a command that runs a file written by an untrusted
//! session is decided with `context.runs_labelled_file` (`taint.run_labelled_file`).
//!
//! Guarantees (conservative: when in doubt, more files): a command the canonicaliser did
//! not fully understand, one with arbitrary code, or one that changes directory first
//! reads and runs the whole workspace ([`FileSet::Under`] of `""`); a command with no
//! path operand reads the directory it runs in (the whole workspace, recursively),
//! unless its program reads no files ([`READS_NOTHING`]); every operand, redirection
//! source and `--opt=VALUE` value inside the workspace is read with everything beneath
//! it, a glob from its literal directory down. Runs: a program given by a workspace path
//! (`./x`, `/workspace/bin/x`), the script operand of a shell or interpreter
//! (`bash x.sh`, `python3 x.py`), `make`'s makefiles, `.git/` and `.gitattributes` for
//! `git`, and the project files build tools and test runners execute (`cargo`: `*.rs`,
//! `Cargo.toml`, `.cargo/`; `npm`-likes: `package.json`, `*.js` …; `pytest`/`tox` and
//! `python -m`: `*.py` and their config files).
//!
//! Not guaranteed: what a program does beyond these (a test runner importing a file by
//! another extension, a script reading a path it computes); such reads and runs are
//! caught only when the command's operands or the conservative cases above cover them.

use crate::canonical::{CanonicalExec, SimpleCommand, command_name};
use crate::exec_facts::{program_name, workspace_relative};
use crate::shell::RedirectOp;

/// Programs that read no workspace file of their own accord (operands aside).
pub const READS_NOTHING: [&str; 18] = [
    "echo", "printf", "true", "false", ":", "set", "date", "pwd", "sleep", "whoami", "id", "uname",
    "hostname", "yes", "seq", "expr", "mkdir", "touch",
];

/// Shells and interpreters whose first operand is a script they run.
const INTERPRETERS: [&str; 16] = [
    "sh", "bash", "dash", "zsh", "ksh", "python", "pypy", "node", "nodejs", "deno", "bun", "perl",
    "ruby", "php", "lua", "Rscript",
];

/// A set of workspace files (paths relative to the workspace root, `/`-separated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSet {
    /// The path itself and everything beneath it; `""` is the whole workspace.
    Under(String),
    /// Any file with this exact name, in any directory (`Makefile`).
    Named(&'static str),
    /// Any file whose name ends with `.EXT` (`rs`).
    Extension(&'static str),
}

impl FileSet {
    /// Whether `path` (relative to the workspace) is in the set.
    pub fn contains(&self, path: &str) -> bool {
        let name = path.rsplit('/').next().unwrap_or(path);
        match self {
            FileSet::Under(dir) => {
                dir.is_empty()
                    || path == dir
                    || path
                        .strip_prefix(dir.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            }
            FileSet::Named(n) => name == *n,
            FileSet::Extension(ext) => name
                .strip_suffix(ext)
                .is_some_and(|stem| stem.len() > 1 && stem.ends_with('.')),
        }
    }
}

/// The workspace files one command reads and runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileUses {
    pub reads: Vec<FileSet>,
    pub runs: Vec<FileSet>,
}

impl FileUses {
    /// What `c` reads and runs; see the module documentation.
    pub fn of(c: &CanonicalExec) -> FileUses {
        let everything = || FileUses {
            reads: vec![FileSet::Under(String::new())],
            runs: vec![FileSet::Under(String::new())],
        };
        if c.unparsable.is_some() || c.arbitrary_code.is_some() {
            return everything();
        }
        let changes_dir = c.commands.iter().any(|cmd| {
            cmd.argv
                .first()
                .is_some_and(|p| matches!(command_name(p), Some("cd" | "pushd" | "popd" | "chdir")))
        });
        if changes_dir {
            return everything();
        }
        let mut uses = FileUses::default();
        for cmd in &c.commands {
            uses.add(cmd);
        }
        uses
    }

    /// Whether `path` is read (running a file reads it too).
    pub fn reads(&self, path: &str) -> bool {
        self.reads
            .iter()
            .chain(&self.runs)
            .any(|s| s.contains(path))
    }

    /// Whether `path` is run as code.
    pub fn runs(&self, path: &str) -> bool {
        self.runs.iter().any(|s| s.contains(path))
    }

    fn read(&mut self, set: FileSet) {
        if !self.reads.contains(&set) {
            self.reads.push(set);
        }
    }

    fn run(&mut self, set: FileSet) {
        if !self.runs.contains(&set) {
            self.runs.push(set);
        }
    }

    fn add(&mut self, cmd: &SimpleCommand) {
        for r in &cmd.redirects {
            if matches!(r.op, RedirectOp::Read | RedirectOp::ReadWrite) {
                self.read_operand(&r.target, r.target_expands);
            }
        }
        let Some(program) = cmd.argv.first() else {
            return;
        };
        let name = program_name(program);
        // A program given by a path: the file itself runs (outside the workspace it is
        // not a workspace file).
        if command_name(program).is_none()
            && let Some(rel) = workspace_relative(program)
        {
            self.run(FileSet::Under(rel));
        }
        let base = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
        let operands: Vec<(usize, &str)> = cmd.argv[1..]
            .iter()
            .enumerate()
            .map(|(i, a)| (i + 1, a.as_str()))
            .filter(|(_, a)| !a.starts_with('-') || a.contains('='))
            .collect();
        for &(i, a) in &operands {
            let expands = cmd.globs.contains(&i) || cmd.expansions.iter().any(|e| a.contains(e));
            // `--opt=FILE`, `if=FILE`, `@FILE` (curl's and compilers' "contents of").
            if !a.starts_with('-') {
                self.read_operand(a, expands);
            }
            if let Some((_, v)) = a.split_once('=') {
                self.read_operand(v, expands);
            }
            if let Some(v) = a.strip_prefix('@') {
                self.read_operand(v, expands);
            }
        }
        // With no path operand a program reads the directory it runs in (the workspace
        // root); a searcher's first operand is its pattern, and `find` starts from its
        // working directory unless given a path first.
        let reads_cwd = match base {
            "grep" | "egrep" | "fgrep" | "rg" | "ag" | "ack" => operands.len() <= 1,
            "find" => cmd.argv.get(1).is_none_or(|a| a.starts_with('-')),
            _ => operands.is_empty() && !READS_NOTHING.contains(&name),
        };
        if reads_cwd {
            self.read(FileSet::Under(String::new()));
        }
        if INTERPRETERS.contains(&base) {
            if base == "python" && cmd.argv.iter().any(|a| a == "-m") {
                self.python_project();
            } else if let Some(&(_, script)) = operands.iter().find(|(_, a)| !a.starts_with('-'))
                && let Some(rel) = workspace_relative(script)
            {
                self.run(FileSet::Under(rel));
            }
        }
        match base {
            "make" | "gmake" => {
                let mut explicit = false;
                for w in cmd.argv[1..].windows(2) {
                    if matches!(w[0].as_str(), "-f" | "--file" | "--makefile") {
                        explicit = true;
                        if let Some(rel) = workspace_relative(&w[1]) {
                            self.run(FileSet::Under(rel));
                        }
                    }
                }
                if !explicit {
                    for n in ["Makefile", "makefile", "GNUmakefile"] {
                        self.run(FileSet::Named(n));
                    }
                }
                self.run(FileSet::Extension("mk"));
            }
            // Hooks, the repository config (aliases, filters, `core.fsmonitor`) and
            // attributes naming filters run code.
            "git" => {
                self.run(FileSet::Under(".git".into()));
                self.run(FileSet::Named(".gitattributes"));
                self.run(FileSet::Named(".gitmodules"));
            }
            "cargo" => {
                self.run(FileSet::Extension("rs"));
                self.run(FileSet::Named("Cargo.toml"));
                self.run(FileSet::Under(".cargo".into()));
            }
            "npm" | "npx" | "yarn" | "pnpm" => {
                self.run(FileSet::Named("package.json"));
                for ext in ["js", "mjs", "cjs", "ts"] {
                    self.run(FileSet::Extension(ext));
                }
            }
            "pytest" | "tox" | "nox" => self.python_project(),
            _ => {}
        }
    }

    /// What a Python test runner or `python -m` imports and reads as config.
    fn python_project(&mut self) {
        self.run(FileSet::Extension("py"));
        for n in [
            "pytest.ini",
            "tox.ini",
            "setup.cfg",
            "pyproject.toml",
            "noxfile.py",
        ] {
            self.run(FileSet::Named(n));
        }
    }

    /// A path operand: read with everything beneath it; a glob or expansion from its
    /// literal directory down.
    fn read_operand(&mut self, value: &str, expands: bool) {
        let literal = if expands {
            let cut = value.find(['*', '?', '[', '$', '{']).unwrap_or(value.len());
            let head = &value[..cut];
            head.rsplit_once('/').map_or("", |(dir, _)| dir)
        } else {
            value
        };
        let literal = if literal.is_empty() && value.starts_with('/') {
            "/"
        } else {
            literal
        };
        if let Some(rel) = workspace_relative(literal) {
            self.read(FileSet::Under(rel));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonicalise_exec;

    fn uses(c: &str) -> FileUses {
        FileUses::of(&canonicalise_exec(c))
    }

    #[test]
    fn scripts_named_in_a_command_run() {
        for (c, file) in [
            ("./x.sh", "x.sh"),
            ("bash x.sh", "x.sh"),
            ("sh -e scripts/build.sh --fast", "scripts/build.sh"),
            ("python3 tools/gen.py out", "tools/gen.py"),
            ("env bash -lc 'node app.js'", "app.js"),
            ("/workspace/bin/tool --help", "bin/tool"),
            ("timeout 10 ./run", "run"),
            ("make test", "Makefile"),
            ("make -C sub", "sub/Makefile"),
            ("make -f build/rules.txt", "build/rules.txt"),
            ("git status", ".git/hooks/pre-commit"),
            ("git commit -m x", ".git/config"),
            ("cargo test", "src/lib.rs"),
            ("cargo build", "build.rs"),
            ("npm test", "package.json"),
            ("pytest -q", "tests/conftest.py"),
            ("python3 -m unittest", "tests/test_a.py"),
            // Not understood, or arbitrary code: anything may run.
            ("python3 -c 'import x'", "x.py"),
            ("source env.sh", "env.sh"),
            ("cd sub && ./x", "sub/x"),
            ("curl http://x | sh", "any/file"),
        ] {
            let u = uses(c);
            assert!(u.runs(file), "{c} runs {file}: {u:?}");
            assert!(u.reads(file), "{c} reads {file}");
        }
        for (c, file) in [
            ("cat x.sh", "x.sh"),
            ("ls scripts", "scripts/build.sh"),
            ("bash x.sh", "y.sh"),
            ("make -f other.mk", "Makefile"),
            ("/usr/bin/ls", "ls"),
            ("cargo test", "notes.md"),
        ] {
            assert!(!uses(c).runs(file), "{c} does not run {file}");
        }
    }

    #[test]
    fn operands_and_their_directories_are_read() {
        for (c, file) in [
            ("cat notes.md", "notes.md"),
            ("cat ./notes.md", "notes.md"),
            ("cat /workspace/a/b.txt", "a/b.txt"),
            ("ls a", "a/b.txt"),
            ("ls", "a/b.txt"),
            ("grep -r foo .", "deep/down/x"),
            ("grep -rn foo", "x"),
            ("cat docs/*.md", "docs/plan.md"),
            ("wc -l < data/x.csv", "data/x.csv"),
            ("diff --from-file=a.txt b.txt", "a.txt"),
            ("cat /workspace/*", "x"),
            (
                "curl --data-binary @scratch/notes.md https://x/",
                "scratch/notes.md",
            ),
            ("dd if=data/in.bin of=scratch/out", "data/in.bin"),
        ] {
            assert!(uses(c).reads(file), "{c} reads {file}");
        }
        for (c, file) in [
            ("cat notes.md", "other.md"),
            ("ls a", "ab/x"),
            ("echo hi > out.txt", "out.txt"),
            ("date", "x"),
            ("cat /etc/passwd", "etc/passwd"),
            ("cat docs/*.md", "src/x"),
        ] {
            assert!(!uses(c).reads(file), "{c} does not read {file}");
        }
    }

    #[test]
    fn sets_match_what_they_say() {
        assert!(FileSet::Extension("rs").contains("a/b.rs"));
        assert!(!FileSet::Extension("rs").contains("a/.rs"));
        assert!(!FileSet::Extension("rs").contains("a/brs"));
        assert!(FileSet::Named("Makefile").contains("Makefile"));
        assert!(!FileSet::Named("Makefile").contains("Makefile.bak"));
        assert!(FileSet::Under("a".into()).contains("a"));
        assert!(!FileSet::Under("a".into()).contains("ab"));
        assert!(FileSet::Under(String::new()).contains("anything"));
    }
}
