//! `cordon-seccomp.json`: the container engine's seccomp profile for the gateway
//! container, in the engines' JSON format (Docker, Podman, and Kubernetes `Localhost`).
//!
//! Why not the engine default: Docker's and containerd's default profiles refuse
//! `clone`/`unshare` with namespace flags and `mount`/`pivot_root` to any process without
//! `CAP_SYS_ADMIN`, and the native sandbox is built from exactly those calls, made
//! unprivileged inside a new user namespace. This profile therefore allows by default and
//! refuses, with `EPERM`, the calls that are kernel attack surface and that neither the
//! gateway nor the sandbox's setup use. It is weaker than the engine default for the
//! gateway process itself (a syscall added to a future kernel is allowed); every process a
//! tool runs is additionally under Cordon's own filter, which also refuses mount,
//! namespace creation, ptrace and the rest (`cordon sandbox explain`).

use serde_json::json;

/// Refused for the gateway and everything under it.
const DENIED: &[(&str, &[&str])] = &[
    (
        "kernel modules, kexec and reboot",
        &[
            "init_module",
            "finit_module",
            "delete_module",
            "create_module",
            "query_module",
            "get_kernel_syms",
            "kexec_load",
            "kexec_file_load",
            "reboot",
        ],
    ),
    (
        "eBPF, perf and io_uring (large kernel attack surface; io_uring ring operations also bypass seccomp)",
        &[
            "bpf",
            "perf_event_open",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "userfaultfd",
        ],
    ),
    (
        "other processes' memory and file descriptors",
        &[
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "pidfd_getfd",
            "kcmp",
        ],
    ),
    ("keyrings", &["add_key", "request_key", "keyctl"]),
    (
        "joining or unsharing namespaces after the fact (the sandbox creates its namespaces with clone, which stays allowed)",
        &["setns", "unshare"],
    ),
    (
        "the new mount API (the sandbox uses mount, umount2, pivot_root and mount_setattr, which stay allowed and only work inside its own user namespace)",
        &[
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "open_tree",
            "move_mount",
        ],
    ),
    (
        "host-wide state: clock, swap, accounting, quotas, kernel log, I/O ports, file handles",
        &[
            "clock_settime",
            "clock_adjtime",
            "adjtimex",
            "settimeofday",
            "swapon",
            "swapoff",
            "acct",
            "quotactl",
            "quotactl_fd",
            "syslog",
            "iopl",
            "ioperm",
            "open_by_handle_at",
            "name_to_handle_at",
            "lookup_dcookie",
            "vhangup",
            "nfsservctl",
            "uselib",
            "ustat",
            "sysfs",
            "_sysctl",
        ],
    ),
];

/// The profile's JSON text.
pub fn profile() -> String {
    let syscalls: Vec<_> = DENIED
        .iter()
        .map(|(why, names)| {
            json!({
                "names": names,
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 1,
                "comment": format!("cordon: refused ({why})"),
            })
        })
        .collect();
    let doc = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        // The same architecture map as the engines' default profile: the rules apply to
        // the native ABI and its compat ABIs alike.
        "archMap": [
            { "architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"] },
            { "architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"] },
        ],
        "syscalls": syscalls,
    });
    // Never fall back to an empty file: that is no profile at all.
    let mut text =
        serde_json::to_string_pretty(&doc).expect("a serde_json::Value always serialises");
    text.push('\n');
    text
}

/// Every refused syscall name (for the comments of the files that use the profile).
pub fn denied_count() -> usize {
    DENIED.iter().map(|(_, n)| n.len()).sum()
}
