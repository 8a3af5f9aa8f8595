//! Per-sandbox cgroup (parent side): memory, task count and CPU bandwidth of the whole tree.
//!
//! Guarantees: when a cgroup hierarchy with the `memory`, `pids` and `cpu` controllers is
//! writable by the caller, every run gets its own cgroup under `cordon/` (v2: in
//! `/sys/fs/cgroup`; v1: in each controller's mount), with `memory.max` /
//! `memory.limit_in_bytes` (+ `memory.memsw.limit_in_bytes` when present), `pids.max` and
//! `cpu.max` / `cpu.cfs_quota_us` from [`Limits`], and the sandbox's init is in it before it
//! is released to set up and start the command (on v1 it is usually forked inside it by the
//! worker's armed thread, see `worker`; otherwise moved in by pid); everything it starts
//! inherits it. Each cgroup is created for one sandbox (`sandbox-<owner pid>-<n>`, never
//! reused; possibly ahead of time by the worker's pool). This bounds a fork bomb even when the caller is host root (which the kernel exempts
//! from RLIMIT_NPROC). When the run ends the cgroup's remaining tasks (never our own process) are
//! killed and the cgroup removed. Once a writable hierarchy was found, any failure to create, limit or join
//! the cgroup stops the run (fail closed).
//!
//! Does not apply when no hierarchy is writable (an unprivileged caller, a read-only
//! `/sys/fs/cgroup`): the layer is then reported as not applied, with the reason, by
//! `explain`, and only the rlimits bound the command.

use std::ffi::CString;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::Pooling;
use crate::Limits;

const ROOT: &str = "/sys/fs/cgroup";
/// Subdirectory holding Cordon's cgroups in each hierarchy.
const BASE: &str = "cordon";
const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];
const CPU_PERIOD_US: u64 = 100_000;

/// Which cgroup hierarchy the sandboxes go in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hierarchy {
    /// Unified hierarchy mounted at this path with the three controllers available.
    V2(PathBuf),
    /// One mount per controller: memory, pids, cpu.
    V1 {
        memory: PathBuf,
        pids: PathBuf,
        cpu: PathBuf,
    },
}

impl Hierarchy {
    pub(crate) fn describe(&self) -> String {
        match self {
            Hierarchy::V2(p) => format!("v2 ({}): memory, pids, cpu", p.display()),
            Hierarchy::V1 { .. } => "v1: memory, pids, cpu".to_owned(),
        }
    }
}

/// The cgroup setup of a profile: where, and with which limits. Prepared in `start`.
#[derive(Debug, Clone)]
pub(crate) struct CgroupPlan {
    /// `Err`: why no cgroup is applied.
    pub(crate) hierarchy: Result<Hierarchy, String>,
    memory: u64,
    pids: u64,
    cpu_percent: u32,
}

fn writable(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access(2) on a NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

// `f_type` and the magic constants have arch-dependent integer types: cast all to i64.
#[allow(clippy::unnecessary_cast)]
fn fs_type(path: &Path) -> Option<i64> {
    rustix::fs::statfs(path).ok().map(|s| s.f_type as i64)
}

/// Find a writable hierarchy with memory, pids and cpu, or say why there is none.
#[allow(clippy::unnecessary_cast)] // see `fs_type`
pub(crate) fn probe() -> Result<Hierarchy, String> {
    let root = Path::new(ROOT);
    let cgroup2 = libc::CGROUP2_SUPER_MAGIC as i64;
    let cgroup1 = libc::CGROUP_SUPER_MAGIC as i64;
    if fs_type(root) == Some(cgroup2) {
        let path = root.join("cgroup.subtree_control");
        let enabled = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let missing: Vec<&str> = CONTROLLERS
            .into_iter()
            .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "cgroup v2 at {ROOT} does not delegate {} to its children \
                 (cgroup.subtree_control)",
                missing.join(", ")
            ));
        }
        let dir = root.join(BASE);
        let target = if dir.is_dir() {
            dir
        } else {
            root.to_path_buf()
        };
        if !writable(&target) {
            return Err(format!("{} is not writable by this user", target.display()));
        }
        return Ok(Hierarchy::V2(root.to_path_buf()));
    }
    let mut mounts = Vec::new();
    for c in CONTROLLERS {
        let mount = root.join(c);
        if fs_type(&mount) != Some(cgroup1) {
            return Err(format!(
                "no cgroup v2 at {ROOT} and no cgroup v1 {c} controller at {}",
                mount.display()
            ));
        }
        let dir = mount.join(BASE);
        let target = if dir.is_dir() { dir } else { mount.clone() };
        if !writable(&target) {
            return Err(format!(
                "{} is not writable by this user (uid {})",
                target.display(),
                rustix::process::geteuid().as_raw()
            ));
        }
        mounts.push(mount);
    }
    match <[PathBuf; 3]>::try_from(mounts) {
        Ok([memory, pids, cpu]) => Ok(Hierarchy::V1 { memory, pids, cpu }),
        Err(_) => Err("cgroup v1 controllers missing".to_owned()),
    }
}

impl CgroupPlan {
    pub(crate) fn new(limits: &Limits) -> CgroupPlan {
        CgroupPlan {
            hierarchy: probe(),
            memory: limits.cgroup_memory,
            pids: limits.cgroup_pids,
            cpu_percent: limits.cgroup_cpu_percent,
        }
    }

    /// The limits as written to the controller files, for `explain`.
    pub(crate) fn limits(&self) -> Vec<(String, String)> {
        vec![
            ("cgroup memory".into(), format!("{} bytes", self.memory)),
            ("cgroup pids".into(), self.pids.to_string()),
            (
                "cgroup cpu".into(),
                format!("{}% of one CPU", self.cpu_percent),
            ),
        ]
    }

    /// The pool key of this plan: its hierarchy and limits. `None` without a hierarchy.
    pub(crate) fn key(&self) -> Option<PoolKey> {
        let hierarchy = self.hierarchy.as_ref().ok()?.clone();
        Some(PoolKey {
            hierarchy,
            memory: self.memory,
            pids: self.pids,
            cpu_percent: self.cpu_percent,
        })
    }

    /// Parent side: take a pre-created cgroup with these limits from the pool (or create
    /// one; always with [`Pooling::Off`]) and move `pid` into it. `Ok(None)` when no
    /// hierarchy is usable (reported by `explain`).
    pub(crate) fn attach(
        &self,
        pid: libc::pid_t,
        pooling: Pooling,
    ) -> Result<Option<Cgroup>, String> {
        let Some(key) = self.key() else {
            return Ok(None);
        };
        let cg = match super::worker::take_cgroup(&key, pooling) {
            Some(cg) => cg,
            None => create(&key)?,
        };
        for dir in &cg.dirs {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(Some(cg))
    }
}

/// What a cgroup is made for: where and with which limits (the pool is keyed by it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PoolKey {
    hierarchy: Hierarchy,
    memory: u64,
    pids: u64,
    cpu_percent: u32,
}

impl PoolKey {
    /// Whether a single thread can move itself in (v1 `tasks`), so that an init forked
    /// from it starts inside without a `cgroup.procs` write.
    pub(crate) fn per_thread(&self) -> bool {
        matches!(self.hierarchy, Hierarchy::V1 { .. })
    }
}

/// Prefix of every per-sandbox cgroup: `sandbox-<owner pid>-<n>`.
const PREFIX: &str = "sandbox-";

/// Create a new, empty cgroup with `key`'s limits, named after this process and a
/// per-process counter (unique: never reused while this process lives).
pub(crate) fn create(key: &PoolKey) -> Result<Cgroup, String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = format!("{PREFIX}{}-{n}", std::process::id());
    let quota = u64::from(key.cpu_percent) * CPU_PERIOD_US / 100;
    // Dropped on any error below: removes what was created.
    let mut cg = Cgroup { dirs: Vec::new() };
    match &key.hierarchy {
        Hierarchy::V2(root) => {
            let base = root.join(BASE);
            make_dir(&base)?;
            write(&base.join("cgroup.subtree_control"), "+memory +pids +cpu")?;
            let dir = base.join(&name);
            make_dir(&dir)?;
            cg.dirs.push(dir.clone());
            write(&dir.join("memory.max"), &key.memory.to_string())?;
            // Absent when the kernel does not account swap: then there is none to cap.
            let swap = dir.join("memory.swap.max");
            if swap.exists() {
                write(&swap, "0")?;
            }
            write(&dir.join("pids.max"), &key.pids.to_string())?;
            let cpu = if quota == 0 {
                format!("max {CPU_PERIOD_US}")
            } else {
                format!("{quota} {CPU_PERIOD_US}")
            };
            write(&dir.join("cpu.max"), &cpu)?;
        }
        Hierarchy::V1 { memory, pids, cpu } => {
            let dir = join_v1(memory, &name, &mut cg)?;
            write(&dir.join("memory.limit_in_bytes"), &key.memory.to_string())?;
            let memsw = dir.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                write(&memsw, &key.memory.to_string())?;
            }
            let dir = join_v1(pids, &name, &mut cg)?;
            write(&dir.join("pids.max"), &key.pids.to_string())?;
            let dir = join_v1(cpu, &name, &mut cg)?;
            write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
            let quota = if quota == 0 {
                "-1".to_owned()
            } else {
                quota.to_string()
            };
            write(&dir.join("cpu.cfs_quota_us"), &quota)?;
        }
    }
    Ok(cg)
}

/// Remove the per-sandbox cgroups left by Cordon processes that no longer exist (killed
/// before their exit handler ran). Best effort: a directory still holding tasks, or whose
/// owner pid was reused by another live process, is left alone.
pub(crate) fn sweep_dead_owners(key: &PoolKey) {
    let bases: Vec<PathBuf> = match &key.hierarchy {
        Hierarchy::V2(root) => vec![root.join(BASE)],
        Hierarchy::V1 { memory, pids, cpu } => {
            [memory, pids, cpu].iter().map(|m| m.join(BASE)).collect()
        }
    };
    let me = std::process::id();
    for base in bases {
        let Ok(entries) = fs::read_dir(&base) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(owner) = name
                .to_str()
                .and_then(|n| n.strip_prefix(PREFIX))
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if owner != me && !Path::new(&format!("/proc/{owner}")).exists() {
                // Fails (EBUSY) while tasks remain: then left for a later sweep.
                let _ = fs::remove_dir(entry.path());
            }
        }
    }
}

fn join_v1(mount: &Path, name: &str, cg: &mut Cgroup) -> Result<PathBuf, String> {
    let base = mount.join(BASE);
    make_dir(&base)?;
    let dir = base.join(name);
    make_dir(&dir)?;
    cg.dirs.push(dir.clone());
    Ok(dir)
}

fn make_dir(dir: &Path) -> Result<(), String> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("creating the cgroup {}: {e}", dir.display())),
    }
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    fs::write(path, value).map_err(|e| format!("writing {value:?} to {}: {e}", path.display()))
}

/// A run's cgroup; dropping it kills what is left inside and removes it.
#[derive(Debug)]
pub(crate) struct Cgroup {
    dirs: Vec<PathBuf>,
}

impl Cgroup {
    /// The cgroup directories (one per v1 controller, or the v2 one).
    pub(crate) fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for dir in &self.dirs {
            for _ in 0..200 {
                if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
                    let me = std::process::id() as i32;
                    // Our own pid is listed while one of our threads (the armed thread
                    // that forked this sandbox's init) is still exiting: never kill it.
                    let members = procs.lines().filter_map(|l| l.trim().parse::<i32>().ok());
                    for pid in members.filter(|p| *p != me) {
                        // SAFETY: kill with integer arguments; the pid is a member of this
                        // run's cgroup, i.e. part of the sandbox being torn down.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == ErrorKind::NotFound => break,
                    // EBUSY while killed tasks are still exiting.
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_root_a_cgroup_is_created_limited_and_removed() {
        let plan = CgroupPlan::new(&Limits {
            cgroup_pids: 7,
            ..Limits::default()
        });
        let Ok(Hierarchy::V1 { .. }) = &plan.hierarchy else {
            eprintln!("skipped: {:?}", plan.hierarchy);
            return;
        };
        // A real child process to move in.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let pid = child.id() as libc::pid_t;
        let cg = plan
            .attach(pid, Pooling::Refill)
            .expect("attach")
            .expect("a cgroup");
        let dirs = cg.dirs().to_vec();
        let pids_dir = dirs
            .iter()
            .find(|d| d.starts_with("/sys/fs/cgroup/pids"))
            .expect("pids dir");
        assert_eq!(
            fs::read_to_string(pids_dir.join("pids.max"))
                .unwrap()
                .trim(),
            "7"
        );
        let procs = fs::read_to_string(pids_dir.join("cgroup.procs")).unwrap();
        assert!(procs.lines().any(|l| l.trim() == pid.to_string()));
        drop(cg);
        // The member was killed and every directory removed.
        let status = child.wait().unwrap();
        assert!(!status.success());
        for d in dirs {
            assert!(!d.exists(), "{} still exists", d.display());
        }
    }
}
