//! A throwaway PostgreSQL server for tests: a fresh cluster in a temporary directory,
//! listening on a Unix socket only (no TCP), with one database `cordon` owned by the
//! role `cordon` (trust authentication: the socket directory is private to the test).
//! Dropping the [`PgCluster`] stops the server (also when the test panicked) and removes
//! the directory.
//!
//! The server binaries come from `/usr/lib/postgresql/*/bin` (the highest version) or
//! `$CORDON_PG_BIN`. When they are missing, [`PgCluster::start`] panics naming the
//! `postgresql` package: tests of the PostgreSQL backend fail instead of skipping.
//! `initdb` refuses to run as root, so as root the server runs as the `postgres` user
//! (or uid 65534) through `setpriv`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A running throwaway cluster; see the module docs.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// uid and gid to run the server as, when the test runs as root.
    run_as: Option<(u32, u32)>,
}

fn server_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CORDON_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb and no \
             $CORDON_PG_BIN): install the `postgresql` package (apt-get install postgresql; \
             .ci/run does) to run the PostgreSQL store tests"
        ),
    }
}

/// uid/gid of `postgres` from /etc/passwd, else nobody/nogroup.
fn unprivileged_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() > 3 && f[0] == "postgres")
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
        })
        .unwrap_or((65534, 65534))
}

impl PgCluster {
    /// initdb, start, and create the database `cordon`. Panics with the server's output
    /// when any step fails.
    pub fn start() -> PgCluster {
        let bin = server_bin_dir();
        // Short path: the socket path must fit in 107 bytes.
        let dir = tempfile::Builder::new()
            .prefix("cordon-pg")
            .tempdir_in("/tmp")
            .expect("create a temporary directory for PostgreSQL");
        let euid = std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(1);
        let run_as = (euid == 0).then(unprivileged_user);
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("hand the cluster directory to the postgres user");
        }
        let cluster = PgCluster { dir, bin, run_as };
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "cordon".as_ref(),
                "--auth=trust".as_ref(),
                "--no-sync".as_ref(),
                "--no-instructions".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
            ],
        );
        let options = format!(
            "-k {} -h '' -F -c max_connections=40 -c shared_buffers=16MB",
            cluster.socket_dir().display()
        );
        let log = cluster.dir.path().join("server.log");
        cluster.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "start".as_ref(),
            ],
        );
        let sock = cluster.socket_dir();
        cluster.run(
            "createdb",
            &[
                "-h".as_ref(),
                sock.as_os_str(),
                "-U".as_ref(),
                "cordon".as_ref(),
                "cordon".as_ref(),
            ],
        );
        cluster
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `[store] url` of the database `cordon`.
    pub fn url(&self) -> String {
        self.url_of("cordon")
    }

    /// The URL of another database of this cluster (create it with [`PgCluster::createdb`]).
    pub fn url_of(&self, db: &str) -> String {
        format!(
            "postgres://cordon@/{db}?host={}",
            self.socket_dir().display()
        )
    }

    /// Create another database.
    pub fn createdb(&self, name: &str) {
        let sock = self.socket_dir();
        self.run(
            "createdb",
            &[
                "-h".as_ref(),
                sock.as_os_str(),
                "-U".as_ref(),
                "cordon".as_ref(),
                name.as_ref(),
            ],
        );
    }

    /// Run SQL with `psql` on database `db` (for tests that damage or age rows behind
    /// the store's back); returns psql's stdout.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let sock = self.socket_dir();
        self.run(
            "psql",
            &[
                "-X".as_ref(),
                "-q".as_ref(),
                "-t".as_ref(),
                "-A".as_ref(),
                "-v".as_ref(),
                "ON_ERROR_STOP=1".as_ref(),
                "-h".as_ref(),
                sock.as_os_str(),
                "-U".as_ref(),
                "cordon".as_ref(),
                "-d".as_ref(),
                db.as_ref(),
                "-c".as_ref(),
                sql.as_ref(),
            ],
        )
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        match self.run_as {
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> String {
        let out = self
            .command(program)
            .args(args)
            .env("LC_ALL", "C")
            .env("PGTZ", "UTC")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run PostgreSQL's {program}: {e}"));
        if !out.status.success() {
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            panic!(
                "PostgreSQL {program} failed ({}):\n{}\n{}\nserver log:\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "stop"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
