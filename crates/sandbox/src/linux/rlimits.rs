//! Resource limits of the sandboxed command.
//!
//! Guarantees: before `execve` the command's soft and hard RLIMIT_NPROC, NOFILE, FSIZE,
//! CPU and DATA are set to the profile's [`Limits`] (or to the host's hard limit when that
//! is lower: never looser than asked), and RLIMIT_CORE to 0; the command cannot raise a
//! hard limit back (no capabilities).
//!
//! Memory per process is RLIMIT_DATA (private writable memory: heap, anonymous and
//! written private mappings), not RLIMIT_AS: runtimes reserve far more address space
//! than they use — V8 reserves about 10 GiB inaccessible per WebAssembly memory, so
//! under a 4 GiB RLIMIT_AS Node's own `fetch` (llhttp is WebAssembly) failed with "Out of
//! memory" in every sandbox. A reservation costs nothing until it is made writable,
//! and then it counts. As host root, the kernel does not enforce RLIMIT_NPROC
//! (real uid root is exempt; the sandbox's cgroup `pids.max` covers that case, see
//! `cgroup`). Does not cap total memory of the tree (the cgroup memory limit does; shared
//! mappings do not count towards RLIMIT_DATA) or
//! wall-clock time (the deadline does that), nor disk use of the workspace.

use crate::Limits;

type Resource = libc::__rlimit_resource_t;

/// The limits to apply, in order, prepared before cloning.
#[derive(Debug, Clone)]
pub(crate) struct Rlimits {
    entries: [(Resource, &'static str, u64); 6],
}

impl Rlimits {
    pub(crate) fn new(limits: &Limits) -> Rlimits {
        Rlimits {
            entries: [
                (libc::RLIMIT_NPROC, "RLIMIT_NPROC", limits.max_processes),
                (libc::RLIMIT_NOFILE, "RLIMIT_NOFILE", limits.max_open_files),
                (libc::RLIMIT_FSIZE, "RLIMIT_FSIZE", limits.max_file_size),
                (libc::RLIMIT_CPU, "RLIMIT_CPU", limits.max_cpu_secs),
                (libc::RLIMIT_DATA, "RLIMIT_DATA", limits.max_memory),
                (libc::RLIMIT_CORE, "RLIMIT_CORE", 0),
            ],
        }
    }

    /// Each limit's name and value as asked (the host's hard limit may be lower).
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.entries.iter().map(|(_, name, v)| (*name, *v))
    }

    /// Description of entry `index` for error messages.
    pub(crate) fn describe(&self, index: u32) -> String {
        match self.entries.get(index as usize) {
            Some((_, name, value)) => format!("setting {name} to {value}"),
            None => "setting a resource limit".to_owned(),
        }
    }

    /// Child side: apply every limit; on failure the index of the limit and errno.
    pub(crate) fn apply(&self) -> Result<(), (u32, i32)> {
        for (i, (resource, _, value)) in self.entries.iter().enumerate() {
            // Raising a hard limit needs CAP_SYS_RESOURCE in the initial namespace, which
            // the sandbox never has: a host hard limit below the profile's wins (stricter).
            let mut current = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: `current` is a valid out-pointer for the duration of the call.
            if unsafe { libc::getrlimit(*resource, &mut current) } != 0 {
                return Err((i as u32, super::report::errno()));
            }
            let value = (*value).min(current.rlim_max);
            let rl = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            // SAFETY: `rl` is a valid rlimit on the stack for the duration of the call.
            if unsafe { libc::setrlimit(*resource, &rl) } != 0 {
                return Err((i as u32, super::report::errno()));
            }
        }
        Ok(())
    }
}
