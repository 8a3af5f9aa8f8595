//! The seccomp filter of the sandboxed command.
//!
//! Guarantees: the command's process is installed, as the last step before `execve` (after
//! `no_new_privs` and Landlock), with filters that make the calls below fail with `EPERM`
//! (not a kill, so programs see an ordinary error): mount and the new mount API, namespace
//! changes (`unshare`, `setns`, `clone` with any `CLONE_NEW*` flag), `ptrace` and
//! `process_vm_*`, `bpf`, `perf_event_open`, keyrings, module and kexec loading, reboot,
//! swap, accounting, quotas, `userfaultfd`, file handles, clock setting, port I/O,
//! `lookup_dcookie`, `syslog`, `vhangup`, io_uring (whose ring operations would bypass this
//! filter), `personality` with a non-default persona, the `TIOCSTI`/`TIOCLINUX` ioctls,
//! and sockets other than `AF_UNIX`/`AF_INET`/`AF_INET6`/
//! `AF_NETLINK` (netlink: `NETLINK_ROUTE` only; inet: no `SOCK_RAW`/`SOCK_PACKET`).
//! `clone3` fails with `ENOSYS`, so libc falls back to `clone`, whose flags are inspected.
//! A call from another architecture's ABI (i386 `int 0x80`) kills the process; x32 calls
//! (numbers with bit 30 set) fail with `ENOSYS`.
//!
//! The filter is inherited by everything the command starts and cannot be removed. Init
//! (pid 1) is not filtered: it needs `mount` and friends during setup and afterwards only
//! forks and waits. Does not restrict `ioctl` otherwise, nor file or network access (the
//! mounts, Landlock and the network namespace do that).
//!
//! The BPF programs are compiled once per process in the parent ([`prepare`]); the child
//! only hands the prebuilt programs to the kernel ([`install`]), without allocating.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

use super::report::errno;

/// The compiled filters, installed in order in the child.
pub(crate) struct Filters {
    programs: Vec<BpfProgram>,
    /// `programs[0]` without the `mount` and `umount2` rules: init's filter when it mounts
    /// the workspace overlay per command ([`install_for_commands`]).
    eperm_but_mount: BpfProgram,
    /// Denies exactly `mount` and `umount2` (EPERM): what each command adds on top of
    /// `eperm_but_mount`, so that it ends up under the whole filter.
    mount_guard: BpfProgram,
    /// Syscalls that are denied outright or for some arguments.
    denied: usize,
}

impl Filters {
    /// Number of syscalls denied (outright or for some arguments), `clone3` included.
    pub(crate) fn denied(&self) -> usize {
        self.denied
    }
}

static FILTERS: OnceLock<Result<Filters, String>> = OnceLock::new();

/// Syscalls denied whatever their arguments.
const DENIED: &[(libc::c_long, &str)] = &[
    (libc::SYS_mount, "mount"),
    (libc::SYS_umount2, "umount2"),
    (libc::SYS_pivot_root, "pivot_root"),
    (libc::SYS_unshare, "unshare"),
    (libc::SYS_setns, "setns"),
    (libc::SYS_ptrace, "ptrace"),
    (libc::SYS_process_vm_readv, "process_vm_readv"),
    (libc::SYS_process_vm_writev, "process_vm_writev"),
    (libc::SYS_bpf, "bpf"),
    (libc::SYS_perf_event_open, "perf_event_open"),
    (libc::SYS_keyctl, "keyctl"),
    (libc::SYS_add_key, "add_key"),
    (libc::SYS_request_key, "request_key"),
    (libc::SYS_kexec_load, "kexec_load"),
    (libc::SYS_kexec_file_load, "kexec_file_load"),
    (libc::SYS_init_module, "init_module"),
    (libc::SYS_finit_module, "finit_module"),
    (libc::SYS_delete_module, "delete_module"),
    (libc::SYS_reboot, "reboot"),
    (libc::SYS_swapon, "swapon"),
    (libc::SYS_swapoff, "swapoff"),
    (libc::SYS_acct, "acct"),
    (libc::SYS_quotactl, "quotactl"),
    (libc::SYS_quotactl_fd, "quotactl_fd"),
    (libc::SYS_userfaultfd, "userfaultfd"),
    (libc::SYS_open_by_handle_at, "open_by_handle_at"),
    (libc::SYS_name_to_handle_at, "name_to_handle_at"),
    (libc::SYS_clock_settime, "clock_settime"),
    (libc::SYS_clock_adjtime, "clock_adjtime"),
    (libc::SYS_adjtimex, "adjtimex"),
    (libc::SYS_settimeofday, "settimeofday"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_iopl, "iopl"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_ioperm, "ioperm"),
    (libc::SYS_fsopen, "fsopen"),
    (libc::SYS_fsmount, "fsmount"),
    (libc::SYS_fsconfig, "fsconfig"),
    (libc::SYS_move_mount, "move_mount"),
    (libc::SYS_open_tree, "open_tree"),
    (libc::SYS_mount_setattr, "mount_setattr"),
    (libc::SYS_lookup_dcookie, "lookup_dcookie"),
    (libc::SYS_syslog, "syslog"),
    (libc::SYS_vhangup, "vhangup"),
    // io_uring runs socket(), openat() and others as ring operations that this filter
    // never sees: without these, the socket family rules below could be bypassed.
    (libc::SYS_io_uring_setup, "io_uring_setup"),
    (libc::SYS_io_uring_enter, "io_uring_enter"),
    (libc::SYS_io_uring_register, "io_uring_register"),
];

/// `CLONE_NEW*` flags that `clone` may not carry (`CLONE_NEWTIME` shares its bit with the
/// exit signal in `clone` and is only accepted by `clone3`/`unshare`, both denied).
const CLONE_NEW: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];

/// Socket families allowed at all.
const FAMILIES: &[u64] = &[
    libc::AF_UNIX as u64,
    libc::AF_INET as u64,
    libc::AF_INET6 as u64,
    libc::AF_NETLINK as u64,
];

/// Obsolete packet socket type (libc deprecates the constant; the kernel still has it).
const SOCK_PACKET: u64 = 10;
const PERSONA_DEFAULT: u64 = 0; // PER_LINUX
const PERSONA_QUERY: u64 = 0xffff_ffff;
/// x32 system call numbers have this bit set (`__X32_SYSCALL_BIT`).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn cond(arg: u8, op: Op, value: u64) -> Result<SeccompCondition, String> {
    SeccompCondition::new(arg, Len::Dword, op, value).map_err(|e| e.to_string())
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, String> {
    SeccompRule::new(conditions).map_err(|e| e.to_string())
}

/// The EPERM filter: syscall number -> rules (empty: always denied; else any rule matches).
fn eperm_rules() -> Result<BTreeMap<i64, Vec<SeccompRule>>, String> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (nr, _) in DENIED {
        rules.insert(*nr, Vec::new());
    }
    rules.insert(
        libc::SYS_personality,
        vec![rule(vec![
            cond(0, Op::Ne, PERSONA_DEFAULT)?,
            cond(0, Op::Ne, PERSONA_QUERY)?,
        ])?],
    );
    rules.insert(
        libc::SYS_ioctl,
        vec![
            rule(vec![cond(1, Op::Eq, libc::TIOCSTI)?])?,
            rule(vec![cond(1, Op::Eq, libc::TIOCLINUX)?])?,
        ],
    );
    let clone = CLONE_NEW
        .iter()
        .map(|flag| rule(vec![cond(0, Op::MaskedEq(*flag), *flag)?]))
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_clone, clone);

    // Type without SOCK_NONBLOCK/SOCK_CLOEXEC.
    let raw = libc::SOCK_RAW as u64;
    let packet = SOCK_PACKET;
    let mut socket = vec![rule(
        FAMILIES
            .iter()
            .map(|f| cond(0, Op::Ne, *f))
            .collect::<Result<Vec<_>, _>>()?,
    )?];
    socket.push(rule(vec![
        cond(0, Op::Eq, libc::AF_NETLINK as u64)?,
        cond(2, Op::Ne, libc::NETLINK_ROUTE as u64)?,
    ])?);
    // glibc's getifaddrs opens AF_NETLINK/SOCK_RAW, so raw is refused for inet families only
    // (the other families are refused whatever the type).
    for family in [libc::AF_INET as u64, libc::AF_INET6 as u64] {
        for ty in [raw, packet] {
            socket.push(rule(vec![
                cond(0, Op::Eq, family)?,
                cond(1, Op::MaskedEq(0xf), ty)?,
            ])?);
        }
    }
    rules.insert(libc::SYS_socket, socket);
    Ok(rules)
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    errno: i32,
    arch: TargetArch,
) -> Result<BpfProgram, String> {
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())
}

/// A hand-written filter refusing x32 system calls, which share the x86_64 audit
/// architecture (seccompiler's architecture check does not catch them).
#[cfg(target_arch = "x86_64")]
fn x32_guard() -> BpfProgram {
    const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const BPF_JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let stmt = |code: u16, k: u32| seccompiler::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    vec![
        stmt(BPF_LD_W_ABS, 0), // seccomp_data.nr
        seccompiler::sock_filter {
            code: BPF_JGE_K,
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        },
        stmt(
            BPF_RET_K,
            libc::SECCOMP_RET_ERRNO | (libc::ENOSYS as u32 & libc::SECCOMP_RET_DATA),
        ),
        stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW),
    ]
}

/// Calls init itself still makes after setup when it mounts the workspace overlay.
const INIT_MOUNT_CALLS: [libc::c_long; 2] = [libc::SYS_mount, libc::SYS_umount2];

fn build() -> Result<Filters, String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| e.to_string())?;
    let eperm = eperm_rules()?;
    let mut denied = eperm.len();
    let mut but_mount = eperm.clone();
    let mut guard = BTreeMap::new();
    for nr in INIT_MOUNT_CALLS {
        guard.insert(nr, but_mount.remove(&nr).unwrap_or_default());
    }
    let eperm_but_mount = compile(but_mount, libc::EPERM, arch)?;
    let mount_guard = compile(guard, libc::EPERM, arch)?;
    let mut programs = vec![compile(eperm, libc::EPERM, arch)?];
    let enosys: BTreeMap<i64, Vec<SeccompRule>> = [(libc::SYS_clone3, Vec::new())].into();
    denied += enosys.len();
    programs.push(compile(enosys, libc::ENOSYS, arch)?);
    #[cfg(target_arch = "x86_64")]
    programs.push(x32_guard());
    for p in programs.iter().chain([&eperm_but_mount, &mount_guard]) {
        if p.len() > u16::MAX as usize {
            return Err(format!("a seccomp program has {} instructions", p.len()));
        }
    }
    Ok(Filters {
        programs,
        eperm_but_mount,
        mount_guard,
        denied,
    })
}

/// Parent side: compile the filters (once per process) and return them.
pub(crate) fn prepare() -> Result<&'static Filters, String> {
    FILTERS
        .get_or_init(build)
        .as_ref()
        .map_err(|e| format!("compiling the seccomp filter: {e}"))
}

/// What init installed on itself, which its commands inherit (they share its memory
/// until `execve`, so they read init's value).
static INHERITED: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(NOTHING);
const NOTHING: u8 = 0;
/// Every filter.
const EVERYTHING: u8 = 1;
/// Every filter but the `mount`/`umount2` rules: a command adds [`Filters::mount_guard`].
const ALL_BUT_MOUNT: u8 = 2;

/// Init side, after setup and before the first command: filter init itself, so every
/// command it starts inherits the filters (installed once per sandbox, not per call).
/// Init needs none of the denied calls any more (it only forks, waits, signals and talks
/// to the parent), except `mount` and `umount2` when it mounts the workspace overlay for
/// each command (`keep_mount`): then its commands add a filter denying those two.
pub(crate) fn install_for_commands(keep_mount: bool) -> Result<(), i32> {
    let Some(Ok(filters)) = FILTERS.get() else {
        return Err(libc::EINVAL); // not prepared: refuse to run unfiltered
    };
    let (first, inherited) = if keep_mount {
        (&filters.eperm_but_mount, ALL_BUT_MOUNT)
    } else {
        (&filters.programs[0], EVERYTHING)
    };
    load(first)?;
    for program in filters.programs.iter().skip(1) {
        load(program)?;
    }
    INHERITED.store(inherited, std::sync::atomic::Ordering::SeqCst);
    Ok(())
}

/// Child side: make sure the calling process runs under every filter prepared by
/// [`prepare`]: nothing to do if it inherited them all from init, the mount guard if it
/// inherited all but that, else all. Needs `no_new_privs` (or CAP_SYS_ADMIN). No
/// allocation: the programs were built before `clone`.
pub(crate) fn install() -> Result<(), i32> {
    // `get` is a plain atomic load once initialised: no lock is taken.
    let Some(Ok(filters)) = FILTERS.get() else {
        return Err(libc::EINVAL); // not prepared: refuse to run unfiltered
    };
    match INHERITED.load(std::sync::atomic::Ordering::SeqCst) {
        // A second copy of the same filters would only double their cost on every syscall.
        EVERYTHING => Ok(()),
        ALL_BUT_MOUNT => load(&filters.mount_guard),
        _ => filters.programs.iter().try_for_each(load),
    }
}

/// Install one program on the calling thread.
fn load(program: &BpfProgram) -> Result<(), i32> {
    let fprog = libc::sock_fprog {
        len: program.len() as u16, // checked in `build`
        // Same #[repr(C)] layout as the kernel's (and libc's) `struct sock_filter`.
        filter: program.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    };
    // SAFETY: `fprog` points at a live, fully initialised BPF program of `len`
    // instructions; the kernel copies it and keeps no reference.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0 as libc::c_ulong,
            &fprog as *const libc::sock_fprog,
        )
    };
    if rc != 0 { Err(errno()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_and_counts_every_denied_syscall() {
        let f = prepare().expect("filter compiles");
        // The outright list, personality, ioctl, clone, socket and clone3.
        assert_eq!(f.denied(), DENIED.len() + 5);
        assert!(f.programs.iter().all(|p| !p.is_empty()));
    }

    #[test]
    fn the_mount_guard_and_init_filter_split_the_first_program() {
        let f = prepare().unwrap();
        let mut rules = eperm_rules().unwrap();
        for nr in INIT_MOUNT_CALLS {
            assert!(rules.remove(&nr).is_some(), "{nr} is denied to commands");
        }
        let arch = TargetArch::try_from(std::env::consts::ARCH).unwrap();
        assert_eq!(
            f.eperm_but_mount,
            compile(rules, libc::EPERM, arch).unwrap()
        );
        let guard: BTreeMap<i64, Vec<SeccompRule>> = INIT_MOUNT_CALLS
            .iter()
            .map(|nr| (*nr, Vec::new()))
            .collect();
        assert_eq!(f.mount_guard, compile(guard, libc::EPERM, arch).unwrap());
    }
}
