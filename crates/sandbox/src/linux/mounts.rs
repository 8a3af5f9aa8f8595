//! The sandbox's root filesystem, built as a plan before cloning and applied in the child.
//!
//! Guarantees: the command's `/` is a fresh tmpfs, remounted read-only, holding only
//! read-only binds of `/usr` (and `/bin`, `/sbin`, `/lib*` as symlinks or read-only binds),
//! a reduced `/etc` (generated `passwd`, `group`, `hosts`, `hostname` plus read-only binds of
//! the few files programs need, never `shadow`), a fresh `/proc` of the sandbox's pid
//! namespace (global knobs such as `/proc/sys` read-only, kernel memory and keys masked), a minimal read-only `/dev` (null, zero, full, random, urandom, tty, a tmpfs
//! `/dev/shm`), a size-capped tmpfs `/tmp`, the workspace at `/workspace` (or, with
//! workspace access `none`, an empty read-only tmpfs there), and each of the profile's
//! read-only binds at `/skills/NAME` (read-only all the way down, nosuid, nodev). The host's
//! root is detached, so nothing else (`/home`, `/root`, `/var`, `/sys`, the state dir,
//! sockets) is reachable, and a symlink in a bound tree resolves inside this root. Writable
//! places: `/workspace` (if the profile allows), `/tmp`, `/dev/shm`. Mounts are private:
//! nothing propagates back to the host.
//!
//! Does not guarantee anything about the content of `/usr` (host binaries are visible,
//! read-only), nor limit disk use of the workspace.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr;

use crate::overlay::ResolvedOverlay;
use crate::ro_bind::ResolvedBind;
use crate::{Layer, SandboxError, WORKSPACE_MOUNT, WorkspaceAccess};

use super::overlay::{self, Slot};
use super::report::errno;

/// Where the scratch root is mounted before the first `pivot_root`. Any directory works:
/// after the pivot the host root (with its original `/tmp`) is reached under `/oldroot`.
const SCRATCH: &str = "/tmp";

/// `/etc` entries bound read-only into the sandbox when present on the host.
const ETC_BINDS: &[&str] = &[
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "ssl",
    "ca-certificates",
    "alternatives",
    "nsswitch.conf",
    "localtime",
    "mime.types",
    "bash.bashrc",
    "profile",
    "inputrc",
    "terminfo",
];

/// Top-level system directories besides `/usr`; symlinks are recreated, directories bound.
const SYSTEM_DIRS: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Entries of the sandbox's `/proc` made read-only (global kernel settings).
const PROC_READ_ONLY: &[&str] = &["sys", "sysrq-trigger", "irq", "bus", "fs", "driver"];

/// Entries of the sandbox's `/proc` hidden (kernel memory, keys, timing side channels).
const PROC_MASKED: &[&str] = &[
    "kcore",
    "keys",
    "key-users",
    "kallsyms",
    "timer_list",
    "sched_debug",
    "latency_stats",
    "acpi",
    "scsi",
    "asound",
];

/// Device nodes bound from the host's `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

const PASSWD: &str = "root:x:0:0:root:/root:/usr/sbin/nologin\n\
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
cordon:x:1000:1000:cordon:/workspace:/bin/sh\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\ncordon:x:1000:\n";
const HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

/// One filesystem operation of the plan.
#[derive(Debug)]
enum Op {
    /// `mount --make-rprivate /`.
    MakePrivate,
    Tmpfs {
        target: CString,
        flags: libc::c_ulong,
        data: CString,
    },
    Chdir(CString),
    Mkdir(CString),
    /// Create an empty file to bind a file onto.
    Touch(CString),
    /// Write to an existing file (a sysctl).
    Sysctl {
        path: CString,
        value: Vec<u8>,
    },
    WriteFile {
        path: CString,
        contents: Vec<u8>,
    },
    Symlink {
        target: CString,
        link: CString,
    },
    /// Recursive bind, then a remount adding `extra` (if any) to the flags it must keep.
    Bind {
        src: CString,
        dst: CString,
        extra: Option<libc::c_ulong>,
    },
    /// Bind-remount an existing mount point adding `extra` to the flags it must keep.
    Remount {
        target: CString,
        extra: libc::c_ulong,
    },
    Proc(CString),
    /// Keep an `O_PATH` descriptor on a layer of the workspace overlay (see `overlay`).
    HoldLayer {
        path: CString,
        slot: Slot,
    },
    PivotRoot {
        new_root: CString,
        put_old: CString,
    },
    Detach(CString),
}

#[derive(Debug)]
struct Step {
    op: Op,
    layer: Layer,
    what: String,
}

/// The whole filesystem setup, prepared once per profile.
#[derive(Debug)]
pub(crate) struct MountPlan {
    steps: Vec<Step>,
    workspace_writable: bool,
    /// Set when `/workspace` is an overlay mounted per command: (workspace, upper) on the
    /// host, for `explain`.
    overlay: Option<(PathBuf, PathBuf)>,
}

fn cstr(s: impl AsRef<[u8]>) -> Result<CString, SandboxError> {
    CString::new(s.as_ref().to_vec())
        .map_err(|_| SandboxError::Invalid("a sandbox path contains a NUL byte".to_owned()))
}

impl MountPlan {
    /// Build the plan for a workspace (already canonical and a directory), read-only
    /// binds (already checked and resolved) and a workspace overlay (already checked; used
    /// only with write access).
    pub(crate) fn build(
        workspace: &Path,
        access: WorkspaceAccess,
        tmp_size: u64,
        etc_files: &[(String, Vec<u8>)],
        ro_binds: &[ResolvedBind],
        overlay: Option<&ResolvedOverlay>,
    ) -> Result<MountPlan, SandboxError> {
        let overlay = overlay.filter(|_| access.writable());
        let mut p = Builder { steps: Vec::new() };
        let rfs = Layer::RootFilesystem;
        p.push(
            Op::MakePrivate,
            Layer::MountNamespace,
            "making all mounts private".into(),
        );
        let scratch_flags = libc::MS_NOSUID | libc::MS_NODEV;
        p.push(
            Op::Tmpfs {
                target: cstr(SCRATCH)?,
                flags: scratch_flags,
                data: cstr("mode=0755")?,
            },
            rfs,
            format!("mounting the scratch tmpfs on {SCRATCH}"),
        );
        p.push(
            Op::Chdir(cstr(SCRATCH)?),
            rfs,
            format!("entering {SCRATCH}"),
        );
        p.mkdir("newroot")?;
        p.mkdir("oldroot")?;
        p.push(
            Op::PivotRoot {
                new_root: cstr(".")?,
                put_old: cstr("oldroot")?,
            },
            rfs,
            "pivoting into the scratch tmpfs".into(),
        );
        p.push(Op::Chdir(cstr("/")?), rfs, "entering /".into());
        p.push(
            Op::Tmpfs {
                target: cstr("/newroot")?,
                flags: scratch_flags,
                data: cstr("mode=0755")?,
            },
            rfs,
            "mounting the new root tmpfs".into(),
        );

        // System directories.
        let ro = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
        p.bind_dir("/usr", "/newroot/usr", Some(ro))?;
        for dir in SYSTEM_DIRS {
            let host = Path::new("/").join(dir);
            let inside = format!("/newroot/{dir}");
            match std::fs::symlink_metadata(&host) {
                Ok(m) if m.file_type().is_symlink() => {
                    let target = std::fs::read_link(&host).map_err(|e| SandboxError::Setup {
                        layer: rfs,
                        detail: format!("reading the host symlink {}: {e}", host.display()),
                    })?;
                    p.push(
                        Op::Symlink {
                            target: cstr(target.as_os_str().as_bytes())?,
                            link: cstr(&inside)?,
                        },
                        rfs,
                        format!("creating the symlink /{dir} -> {}", target.display()),
                    );
                }
                Ok(m) if m.is_dir() => p.bind_dir(&host.to_string_lossy(), &inside, Some(ro))?,
                _ => {}
            }
        }

        // /etc: generated identity files plus a few read-only binds.
        p.mkdir("/newroot/etc")?;
        let generated = [
            ("passwd", PASSWD.to_owned().into_bytes()),
            ("group", GROUP.to_owned().into_bytes()),
            ("hosts", HOSTS.to_owned().into_bytes()),
            ("hostname", format!("{}\n", super::HOSTNAME).into_bytes()),
        ];
        for (name, _) in etc_files {
            let plain = !name.is_empty()
                && name != "."
                && name != ".."
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
            let taken =
                generated.iter().any(|(g, _)| g == name) || ETC_BINDS.contains(&name.as_str());
            if !plain || taken {
                return Err(SandboxError::Invalid(format!(
                    "extra /etc file `{name}` must be one plain file name not used by the sandbox itself"
                )));
            }
        }
        let extra = etc_files.iter().map(|(n, c)| (n.as_str(), c.clone()));
        for (name, contents) in generated.iter().map(|(n, c)| (*n, c.clone())).chain(extra) {
            p.push(
                Op::WriteFile {
                    path: cstr(format!("/newroot/etc/{name}"))?,
                    contents,
                },
                rfs,
                format!("writing /etc/{name}"),
            );
        }
        for name in ETC_BINDS {
            let host = format!("/etc/{name}");
            match std::fs::metadata(&host) {
                Ok(m) if m.is_dir() => {
                    p.bind_dir(&host, &format!("/newroot/etc/{name}"), Some(ro))?
                }
                Ok(_) => p.bind_file(&host, &format!("/newroot/etc/{name}"), Some(ro))?,
                Err(_) => {}
            }
        }

        // /dev: a tmpfs with a few host device nodes, made read-only below.
        p.mkdir("/newroot/dev")?;
        p.push(
            Op::Tmpfs {
                target: cstr("/newroot/dev")?,
                flags: libc::MS_NOSUID | libc::MS_NOEXEC,
                data: cstr("mode=0755")?,
            },
            rfs,
            "mounting the /dev tmpfs".into(),
        );
        for dev in DEVICES {
            let host = format!("/dev/{dev}");
            if std::fs::metadata(&host).is_ok() {
                // Read-only mount (the device still reads and writes): as host root the
                // command's uid owns these inodes and could chmod/chown the host's nodes.
                let dev_ro = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NOEXEC;
                p.bind_file(&host, &format!("/newroot/dev/{dev}"), Some(dev_ro))?;
            }
        }
        for (link, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            p.push(
                Op::Symlink {
                    target: cstr(target)?,
                    link: cstr(format!("/newroot/dev/{link}"))?,
                },
                rfs,
                format!("creating the symlink /dev/{link}"),
            );
        }
        let size_data = cstr(format!("mode=1777,size={tmp_size}"))?;
        p.mkdir("/newroot/dev/shm")?;
        p.push(
            Op::Tmpfs {
                target: cstr("/newroot/dev/shm")?,
                flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                data: size_data.clone(),
            },
            rfs,
            "mounting the /dev/shm tmpfs".into(),
        );
        p.push(
            Op::Remount {
                target: cstr("/newroot/dev")?,
                extra: libc::MS_RDONLY,
            },
            rfs,
            "making /dev read-only".into(),
        );

        // Writable scratch and the workspace.
        p.mkdir("/newroot/tmp")?;
        p.push(
            Op::Tmpfs {
                target: cstr("/newroot/tmp")?,
                flags: libc::MS_NOSUID | libc::MS_NODEV,
                data: size_data,
            },
            rfs,
            format!("mounting the /tmp tmpfs (size={tmp_size})"),
        );
        let ws_inside = format!("/newroot{WORKSPACE_MOUNT}");
        p.mkdir(&ws_inside)?;
        let nosuid_nodev = libc::MS_NOSUID | libc::MS_NODEV;
        match (access, overlay) {
            (WorkspaceAccess::None, _) => p.push(
                // Empty and read-only, but present: the default working directory.
                Op::Tmpfs {
                    target: cstr(&ws_inside)?,
                    flags: nosuid_nodev | libc::MS_NOEXEC | libc::MS_RDONLY,
                    data: cstr("mode=0555,size=4k")?,
                },
                rfs,
                format!("mounting an empty read-only tmpfs at {WORKSPACE_MOUNT} (no workspace)"),
            ),
            (WorkspaceAccess::Write, Some(o)) => p.overlay_layers(workspace, o, &ws_inside)?,
            (WorkspaceAccess::Read | WorkspaceAccess::Write, _) => {
                let ws_flags = nosuid_nodev
                    | match access {
                        WorkspaceAccess::Write => 0,
                        _ => libc::MS_RDONLY,
                    };
                let mut ws_src = b"/oldroot".to_vec();
                ws_src.extend_from_slice(workspace.as_os_str().as_bytes());
                p.push(
                    Op::Bind {
                        src: cstr(ws_src)?,
                        dst: cstr(&ws_inside)?,
                        extra: Some(ws_flags),
                    },
                    rfs,
                    format!(
                        "binding the workspace {} at {WORKSPACE_MOUNT}",
                        workspace.display()
                    ),
                );
            }
        }

        // Skill trees: read-only (all the way down), nosuid, nodev; executable.
        if !ro_binds.is_empty() {
            p.mkdir(format!("/newroot{}", crate::SKILLS_MOUNT))?;
        }
        for bind in ro_binds {
            let inside = format!("/newroot{}", bind.target);
            p.mkdir(&inside)?;
            let mut src = b"/oldroot".to_vec();
            src.extend_from_slice(bind.source.as_os_str().as_bytes());
            p.push(
                Op::Bind {
                    src: cstr(src)?,
                    dst: cstr(&inside)?,
                    extra: Some(libc::MS_RDONLY | nosuid_nodev),
                },
                rfs,
                format!(
                    "binding {} read-only at {}",
                    bind.source.display(),
                    bind.target
                ),
            );
        }

        // /proc of the new pid namespace (needs the host /proc still attached).
        p.mkdir("/newroot/proc")?;
        p.push(
            Op::Proc(cstr("/newroot/proc")?),
            Layer::PidNamespace,
            "mounting /proc".into(),
        );
        // No nested user namespaces: they would hand the command a full capability set over
        // new namespaces (a large kernel attack surface, and with a host-root caller a way
        // around the /proc protections below). This limit is per user namespace: ours.
        p.push(
            Op::Sysctl {
                path: cstr("/newroot/proc/sys/user/max_user_namespaces")?,
                value: b"0\n".to_vec(),
            },
            Layer::UserNamespace,
            "forbidding nested user namespaces (user.max_user_namespaces = 0)".into(),
        );
        // Kernel-global knobs in /proc check only the file owner. When the caller is host
        // root, inner 1000 *is* kuid 0 and would own them (core_pattern, modprobe,
        // sysrq-trigger: a host escape), so they are made read-only or masked, as container
        // runtimes do. Harmless for an unprivileged caller.
        let ro_proc = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        for name in PROC_READ_ONLY {
            if Path::new("/proc").join(name).exists() {
                let inside = cstr(format!("/newroot/proc/{name}"))?;
                p.push(
                    Op::Bind {
                        src: inside.clone(),
                        dst: inside,
                        extra: Some(ro_proc),
                    },
                    rfs,
                    format!("making /proc/{name} read-only"),
                );
            }
        }
        for name in PROC_MASKED {
            let host = Path::new("/proc").join(name);
            let inside = cstr(format!("/newroot/proc/{name}"))?;
            let op = if host.is_dir() {
                Op::Tmpfs {
                    target: inside,
                    flags: ro_proc,
                    data: cstr("mode=0555")?,
                }
            } else if host.exists() {
                Op::Bind {
                    src: cstr("/newroot/dev/null")?,
                    dst: inside,
                    extra: None,
                }
            } else {
                continue;
            };
            p.push(op, rfs, format!("masking /proc/{name}"));
        }

        // Leave the host root behind for good: it hangs beneath the scratch root at
        // /oldroot, and the one lazy unmount of the scratch root below takes it along.
        // Not detached on its own first: each unmount waits for an RCU grace period
        // (measured 1-13 ms per unmount on a loaded 2-core host), paid on every start.
        p.push(
            Op::Chdir(cstr("/newroot")?),
            rfs,
            "entering the new root".into(),
        );
        p.push(
            Op::PivotRoot {
                new_root: cstr(".")?,
                put_old: cstr(".")?,
            },
            rfs,
            "pivoting into the new root".into(),
        );
        p.push(
            Op::Detach(cstr(".")?),
            rfs,
            "detaching the scratch root and the host root beneath it".into(),
        );
        p.push(Op::Chdir(cstr("/")?), rfs, "entering /".into());
        p.push(
            Op::Remount {
                target: cstr("/")?,
                extra: libc::MS_RDONLY,
            },
            rfs,
            "making / read-only".into(),
        );
        Ok(MountPlan {
            steps: p.steps,
            workspace_writable: access.writable(),
            overlay: overlay.map(|o| (workspace.to_path_buf(), o.upper.clone())),
        })
    }

    /// Layer and description of step `index`, for error messages.
    pub(crate) fn describe(&self, index: u32) -> (Layer, String) {
        match self.steps.get(index as usize) {
            Some(s) => (s.layer, s.what.clone()),
            None => (Layer::RootFilesystem, format!("unknown mount step {index}")),
        }
    }

    /// Whether `/workspace` is mounted writable (Landlock mirrors it).
    pub(crate) fn workspace_writable(&self) -> bool {
        self.workspace_writable
    }

    /// Whether init mounts an overlay at `/workspace` for each command.
    pub(crate) fn overlay(&self) -> bool {
        self.overlay.is_some()
    }

    /// Every path the plan makes visible inside, in plan order: (path, read-only by mount
    /// flags, source). Derived from the steps themselves, for `explain`.
    pub(crate) fn views(&self) -> Vec<(String, bool, String)> {
        let inside = |c: &CStr| {
            let s = c.to_string_lossy();
            match s.strip_prefix("/newroot") {
                Some("") => Some("/".to_owned()),
                Some(rest) if rest.starts_with('/') => Some(rest.to_owned()),
                _ => None,
            }
        };
        let mut out: Vec<(String, bool, String)> = Vec::new();
        fn set(out: &mut Vec<(String, bool, String)>, path: String, ro: bool, source: String) {
            match out.iter_mut().find(|(p, _, _)| *p == path) {
                Some(v) => *v = (path, ro, source),
                None => out.push((path, ro, source)),
            }
        }
        for step in &self.steps {
            match &step.op {
                Op::Tmpfs {
                    target,
                    flags,
                    data,
                } => {
                    if let Some(p) = inside(target) {
                        let data = data.to_string_lossy();
                        let size = data
                            .split(',')
                            .find_map(|o| o.strip_prefix("size="))
                            .map_or(String::new(), |s| format!(" size={s}"));
                        let src = if p.starts_with("/proc/") {
                            "masked (empty tmpfs)".to_owned()
                        } else if p == WORKSPACE_MOUNT {
                            "empty tmpfs (workspace access none)".to_owned()
                        } else {
                            format!("tmpfs{size}")
                        };
                        set(&mut out, p, flags & libc::MS_RDONLY != 0, src);
                    }
                }
                Op::WriteFile { path, .. } => {
                    if let Some(p) = inside(path) {
                        set(&mut out, p, false, "generated".into());
                    }
                }
                Op::Symlink { target, link } => {
                    if let Some(p) = inside(link) {
                        set(
                            &mut out,
                            p,
                            true,
                            format!("symlink -> {}", target.to_string_lossy()),
                        );
                    }
                }
                Op::Bind { src, dst, extra } => {
                    if let Some(p) = inside(dst) {
                        let src = src.to_string_lossy();
                        let source = if let Some(host) = src.strip_prefix("/oldroot") {
                            format!("host:{host}")
                        } else if src == "/newroot/dev/null" {
                            "masked (/dev/null)".to_owned()
                        } else {
                            "proc (read-only)".to_owned()
                        };
                        // A read-only mount does not stop writes to a device node (it
                        // stops chmod/chown of it): /dev/null stays writable.
                        let device = src.starts_with("/oldroot/dev/") || src == "/newroot/dev/null";
                        let ro = !device && extra.is_none_or(|f| f & libc::MS_RDONLY != 0);
                        set(&mut out, p, ro, source);
                    }
                }
                Op::Proc(target) => {
                    if let Some(p) = inside(target) {
                        set(&mut out, p, false, "proc (sandbox pids only)".into());
                    }
                }
                Op::Remount { target, extra } => {
                    let p =
                        inside(target).or_else(|| (target.to_bytes() == b"/").then(|| "/".into()));
                    if let Some(p) = p
                        && let Some(v) = out.iter_mut().find(|(q, _, _)| *q == p)
                    {
                        v.1 |= extra & libc::MS_RDONLY != 0;
                    }
                }
                _ => {}
            }
        }
        // The overlay, mounted per command, is what commands see at /workspace.
        if let Some((ws, upper)) = &self.overlay
            && let Some(v) = out.iter_mut().find(|(p, _, _)| p == WORKSPACE_MOUNT)
        {
            v.1 = false;
            v.2 = format!(
                "overlay: lower host:{} (never written), changes to upper host:{} \
                 (a new overlay per command)",
                ws.display(),
                upper.display()
            );
        }
        // Everything in the root tmpfs (generated files, symlinks) is read-only once `/` is.
        let root_ro = out.iter().any(|(p, ro, _)| p == "/" && *ro);
        if root_ro {
            for v in out.iter_mut() {
                if v.2 == "generated" || v.2.starts_with("symlink") {
                    v.1 = true;
                }
            }
        }
        out
    }

    /// Child side: run every step in order; on failure the step index and errno.
    /// No allocation happens here.
    pub(crate) fn apply(&self) -> Result<(), (u32, i32)> {
        for (i, step) in self.steps.iter().enumerate() {
            apply_op(&step.op).map_err(|e| (i as u32, e))?;
        }
        Ok(())
    }
}

struct Builder {
    steps: Vec<Step>,
}

impl Builder {
    fn push(&mut self, op: Op, layer: Layer, what: String) {
        self.steps.push(Step { op, layer, what });
    }

    fn mkdir(&mut self, path: impl AsRef<str>) -> Result<(), SandboxError> {
        let path = path.as_ref();
        self.push(
            Op::Mkdir(cstr(path)?),
            Layer::RootFilesystem,
            format!("creating {path}"),
        );
        Ok(())
    }

    /// The overlay's layers stacked at `ws_inside` (see `overlay`): the directory holding
    /// upper and work (held), covered by the workspace bound read-only (held as lower).
    /// Commands see neither: init mounts the overlay over both before each command.
    fn overlay_layers(
        &mut self,
        workspace: &Path,
        o: &ResolvedOverlay,
        ws_inside: &str,
    ) -> Result<(), SandboxError> {
        let layer = Layer::WorkspaceOverlay;
        let nosuid_nodev = libc::MS_NOSUID | libc::MS_NODEV;
        let host = |p: &Path| {
            let mut v = b"/oldroot".to_vec();
            v.extend_from_slice(p.as_os_str().as_bytes());
            cstr(v)
        };
        self.push(
            Op::Bind {
                src: host(&o.parent)?,
                dst: cstr(ws_inside)?,
                extra: Some(nosuid_nodev),
            },
            layer,
            format!(
                "binding the overlay's directory {} (hidden beneath {WORKSPACE_MOUNT})",
                o.parent.display()
            ),
        );
        for (slot, name, shown) in [
            (Slot::Upper, &o.upper_name, &o.upper),
            (Slot::Work, &o.work_name, &o.work),
        ] {
            let mut path = format!("{ws_inside}/").into_bytes();
            path.extend_from_slice(name.as_bytes());
            self.push(
                Op::HoldLayer {
                    path: cstr(path)?,
                    slot,
                },
                layer,
                format!(
                    "opening the overlay's {slot:?} directory {}",
                    shown.display()
                ),
            );
        }
        self.push(
            Op::Bind {
                src: host(workspace)?,
                dst: cstr(ws_inside)?,
                extra: Some(libc::MS_RDONLY | nosuid_nodev),
            },
            layer,
            format!(
                "binding the workspace {} read-only at {WORKSPACE_MOUNT} (the overlay's lower \
                 layer)",
                workspace.display()
            ),
        );
        self.push(
            Op::HoldLayer {
                path: cstr(ws_inside)?,
                slot: Slot::Lower,
            },
            layer,
            format!(
                "opening the workspace {} as the overlay's lower layer",
                workspace.display()
            ),
        );
        Ok(())
    }

    fn bind_dir(
        &mut self,
        host: &str,
        inside: &str,
        extra: Option<libc::c_ulong>,
    ) -> Result<(), SandboxError> {
        self.mkdir(inside)?;
        self.bind(host, inside, extra)
    }

    fn bind_file(
        &mut self,
        host: &str,
        inside: &str,
        extra: Option<libc::c_ulong>,
    ) -> Result<(), SandboxError> {
        self.push(
            Op::Touch(cstr(inside)?),
            Layer::RootFilesystem,
            format!("creating {inside}"),
        );
        self.bind(host, inside, extra)
    }

    fn bind(
        &mut self,
        host: &str,
        inside: &str,
        extra: Option<libc::c_ulong>,
    ) -> Result<(), SandboxError> {
        let shown = inside.strip_prefix("/newroot").unwrap_or(inside);
        // Resolve symlinks now: under /oldroot an absolute link would point into the scratch
        // root (e.g. /etc/localtime -> /usr/share/zoneinfo/...).
        let real = std::fs::canonicalize(host).map_err(|e| SandboxError::Setup {
            layer: Layer::RootFilesystem,
            detail: format!("resolving {host} on the host to bind it at {shown}: {e}"),
        })?;
        let mut src = b"/oldroot".to_vec();
        src.extend_from_slice(real.as_os_str().as_bytes());
        self.push(
            Op::Bind {
                src: cstr(src)?,
                dst: cstr(inside)?,
                extra,
            },
            Layer::RootFilesystem,
            format!("binding {host} at {shown}"),
        );
        Ok(())
    }
}

fn check(rc: libc::c_int) -> Result<(), i32> {
    if rc != 0 { Err(errno()) } else { Ok(()) }
}

fn mount(
    src: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> Result<(), i32> {
    let opt = |s: Option<&CStr>| s.map_or(ptr::null(), CStr::as_ptr);
    // SAFETY: every pointer is either null (allowed by mount(2) for these arguments) or a
    // NUL-terminated string borrowed for the duration of the call.
    check(unsafe {
        libc::mount(
            opt(src),
            target.as_ptr(),
            opt(fstype),
            flags,
            opt(data).cast(),
        )
    })
}

/// Bind-remount `target` with `extra` plus the flags the kernel will not let a user
/// namespace clear (read-only, nosuid, nodev, noexec, atime mode of the underlying mount).
fn remount(target: &CStr, extra: libc::c_ulong) -> Result<(), i32> {
    // SAFETY: statvfs is plain old data; all-zero is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `target` is NUL-terminated and `st` is a valid statvfs for libc to fill. On
    // Linux >= 2.6.36 glibc takes the flags from statfs(2) directly (no allocation).
    check(unsafe { libc::statvfs(target.as_ptr(), &mut st) })?;
    let f = st.f_flag;
    let mut keep = 0;
    for (st_flag, ms_flag) in [
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if f & st_flag != 0 {
            keep |= ms_flag;
        }
    }
    if keep & (libc::MS_NOATIME | libc::MS_RELATIME) == 0 {
        keep |= libc::MS_STRICTATIME;
    }
    mount(
        None,
        target,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | keep | extra,
        None,
    )
}

fn apply_op(op: &Op) -> Result<(), i32> {
    match op {
        Op::MakePrivate => mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None),
        Op::Tmpfs {
            target,
            flags,
            data,
        } => mount(Some(c"tmpfs"), target, Some(c"tmpfs"), *flags, Some(data)),
        // SAFETY: `path` is NUL-terminated and borrowed for the call.
        Op::Chdir(path) => check(unsafe { libc::chdir(path.as_ptr()) }),
        // SAFETY: as above.
        Op::Mkdir(path) => check(unsafe { libc::mkdir(path.as_ptr(), 0o755) }),
        Op::Touch(path) => write_file(path, &[], true),
        Op::WriteFile { path, contents } => write_file(path, contents, true),
        Op::Sysctl { path, value } => write_file(path, value, false),
        Op::Symlink { target, link } => {
            // SAFETY: both strings are NUL-terminated and borrowed for the call.
            check(unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) })
        }
        Op::Bind { src, dst, extra } => {
            mount(Some(src), dst, None, libc::MS_BIND | libc::MS_REC, None)?;
            match extra {
                Some(extra) => match set_recursively(dst, *extra) {
                    // Before Linux 5.12: the top mount only (submounts keep their flags).
                    Err(libc::ENOSYS) => remount(dst, *extra),
                    done => done,
                },
                None => Ok(()),
            }
        }
        Op::Remount { target, extra } => remount(target, *extra),
        Op::HoldLayer { path, slot } => overlay::hold(*slot, path),
        Op::Proc(target) => mount(
            Some(c"proc"),
            target,
            Some(c"proc"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            None,
        ),
        Op::PivotRoot { new_root, put_old } => {
            // SAFETY: pivot_root takes two NUL-terminated paths borrowed for the call.
            let rc =
                unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
            if rc != 0 { Err(errno()) } else { Ok(()) }
        }
        // SAFETY: `target` is NUL-terminated and borrowed for the call.
        Op::Detach(target) => check(unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) }),
    }
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `MOUNT_ATTR_*` of mount_setattr(2) for the `MS_*` flags a bind is given.
const MOUNT_ATTRS: [(libc::c_ulong, u64); 4] = [
    (libc::MS_RDONLY, 0x1),
    (libc::MS_NOSUID, 0x2),
    (libc::MS_NODEV, 0x4),
    (libc::MS_NOEXEC, 0x8),
];

/// Set `extra` (read-only, nosuid, nodev, noexec) on the bind at `target` and on every
/// mount below it (a recursive bind brings submounts along with their own flags), in one
/// call: nothing is cleared, so the flags a user namespace may not clear stay as they
/// are. `ENOSYS` on kernels before 5.12, which lack mount_setattr; `EINVAL` for a flag it
/// cannot set (none of the binds here has one).
fn set_recursively(target: &CStr, extra: libc::c_ulong) -> Result<(), i32> {
    let mut attr_set = 0;
    let mut left = extra;
    for (ms, attr) in MOUNT_ATTRS {
        if extra & ms != 0 {
            attr_set |= attr;
            left &= !ms;
        }
    }
    if left != 0 {
        return Err(libc::EINVAL);
    }
    let attr = MountAttr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `target` is NUL-terminated and `attr` is a valid mount_attr of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &attr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == 0 { Ok(()) } else { Err(errno()) }
}

fn write_file(path: &CStr, contents: &[u8], create: bool) -> Result<(), i32> {
    let create = if create {
        libc::O_CREAT | libc::O_EXCL
    } else {
        0
    };
    let flags = libc::O_WRONLY | create | libc::O_CLOEXEC;
    // SAFETY: `path` is NUL-terminated; the mode argument is what O_CREAT requires.
    let fd = unsafe { libc::open(path.as_ptr(), flags, 0o644 as libc::c_uint) };
    if fd < 0 {
        return Err(errno());
    }
    let mut rest = contents;
    let mut result = Ok(());
    while !rest.is_empty() {
        // SAFETY: `rest` is a live slice; write reads at most `rest.len()` bytes from it.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            result = Err(errno());
            break;
        }
        rest = rest.get(n as usize..).unwrap_or(&[]);
    }
    // SAFETY: `fd` was opened above and is not used afterwards.
    unsafe { libc::close(fd) };
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_with(
        access: WorkspaceAccess,
        binds: &[ResolvedBind],
    ) -> (MountPlan, tempfile::TempDir) {
        let ws = tempfile::tempdir().unwrap();
        let ws_path = ws.path().canonicalize().unwrap();
        (
            MountPlan::build(&ws_path, access, 1 << 20, &[], binds, None).unwrap(),
            ws,
        )
    }

    fn plan(writable: bool) -> (MountPlan, tempfile::TempDir) {
        let access = if writable {
            WorkspaceAccess::Write
        } else {
            WorkspaceAccess::Read
        };
        plan_with(access, &[])
    }

    fn bind_at<'a>(p: &'a MountPlan, inside: &[u8]) -> Option<(&'a CStr, Option<libc::c_ulong>)> {
        p.steps.iter().find_map(|s| match &s.op {
            Op::Bind { src, dst, extra } if dst.as_bytes() == inside => {
                Some((src.as_c_str(), *extra))
            }
            _ => None,
        })
    }

    fn sources(p: &MountPlan) -> Vec<String> {
        p.steps
            .iter()
            .filter_map(|s| match &s.op {
                Op::Bind { src, .. } => Some(src.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn only_allowed_host_paths_are_bound() {
        let (p, ws) = plan(true);
        let ws = ws.path().canonicalize().unwrap();
        let ws = format!("/oldroot{}", ws.display());
        for src in sources(&p) {
            let host = src.strip_prefix("/oldroot").unwrap_or(&src);
            let allowed = src == ws
                || src.starts_with("/newroot/")
                || host.starts_with("/usr")
                || host.starts_with("/dev/")
                || ETC_BINDS
                    .iter()
                    .any(|e| host.starts_with(&format!("/etc/{e}")))
                || SYSTEM_DIRS.iter().any(|d| host == format!("/{d}"));
            assert!(allowed, "unexpected bind source {src}");
            assert!(!src.contains("shadow"), "{src}");
        }
    }

    #[test]
    fn workspace_is_read_only_unless_writable() {
        for writable in [false, true] {
            let (p, _ws) = plan(writable);
            let extra = p
                .steps
                .iter()
                .find_map(|s| match &s.op {
                    Op::Bind { dst, extra, .. } if dst.as_bytes() == b"/newroot/workspace" => {
                        *extra
                    }
                    _ => None,
                })
                .expect("a workspace bind");
            assert_eq!(extra & libc::MS_RDONLY != 0, !writable);
            assert!(extra & libc::MS_NOSUID != 0 && extra & libc::MS_NODEV != 0);
        }
    }

    #[test]
    fn no_workspace_is_an_empty_read_only_tmpfs_and_binds_nothing() {
        let (p, ws) = plan_with(WorkspaceAccess::None, &[]);
        assert!(bind_at(&p, b"/newroot/workspace").is_none());
        let ws = ws.path().canonicalize().unwrap();
        assert!(
            !sources(&p)
                .iter()
                .any(|s| s.contains(&*ws.to_string_lossy()))
        );
        let tmpfs = p.steps.iter().find_map(|s| match &s.op {
            Op::Tmpfs { target, flags, .. } if target.as_bytes() == b"/newroot/workspace" => {
                Some(*flags)
            }
            _ => None,
        });
        let flags = tmpfs.expect("a tmpfs at /workspace");
        assert!(flags & libc::MS_RDONLY != 0 && flags & libc::MS_NOSUID != 0);
        assert!(!p.workspace_writable());
        let view = p.views().into_iter().find(|v| v.0 == "/workspace").unwrap();
        assert!(view.1 && view.2.starts_with("empty tmpfs"), "{view:?}");
    }

    #[test]
    fn ro_binds_are_read_only_nosuid_nodev_at_their_target() {
        let skill = tempfile::tempdir().unwrap();
        let source = skill.path().canonicalize().unwrap();
        let binds = [ResolvedBind {
            source: source.clone(),
            target: "/skills/weather".into(),
        }];
        let (p, _ws) = plan_with(WorkspaceAccess::Write, &binds);
        let (src, extra) = bind_at(&p, b"/newroot/skills/weather").expect("a skill bind");
        assert_eq!(
            src.to_bytes(),
            format!("/oldroot{}", source.display()).as_bytes()
        );
        let extra = extra.expect("remount flags");
        for flag in [libc::MS_RDONLY, libc::MS_NOSUID, libc::MS_NODEV] {
            assert!(extra & flag != 0, "{extra:#x} lacks {flag:#x}");
        }
        assert_eq!(
            extra & libc::MS_NOEXEC,
            0,
            "scripts run from the skill tree"
        );
        let view = p
            .views()
            .into_iter()
            .find(|v| v.0 == "/skills/weather")
            .unwrap();
        assert!(view.1, "{view:?}");
        assert_eq!(view.2, format!("host:{}", source.display()));
        // Bound before the root is left: the host path is reachable only then.
        let at = |pred: &dyn Fn(&Op) -> bool| p.steps.iter().position(|s| pred(&s.op)).unwrap();
        let bound = at(
            &|o| matches!(o, Op::Bind { dst, .. } if dst.as_bytes() == b"/newroot/skills/weather"),
        );
        let detached = at(&|o| matches!(o, Op::Detach(_)));
        assert!(bound < detached);
    }

    #[test]
    fn an_overlay_plan_hides_its_layers_beneath_the_read_only_workspace() {
        let root = tempfile::tempdir().unwrap();
        let ws = root.path().join("ws");
        let state = root.path().join("state");
        for d in [&ws, &state.join("upper"), &state.join("work")] {
            std::fs::create_dir_all(d).unwrap();
        }
        let ws = ws.canonicalize().unwrap();
        let state = state.canonicalize().unwrap();
        let o = crate::overlay::resolve(
            &crate::WorkspaceOverlay {
                upper: state.join("upper"),
                work: state.join("work"),
            },
            &ws,
        )
        .unwrap();
        let p = MountPlan::build(&ws, WorkspaceAccess::Write, 1 << 20, &[], &[], Some(&o)).unwrap();
        assert!(p.overlay() && p.workspace_writable());
        let ws_ops: Vec<&Op> = p
            .steps
            .iter()
            .map(|s| &s.op)
            .filter(|op| match op {
                Op::Bind { dst, .. } => dst.as_bytes() == b"/newroot/workspace",
                Op::HoldLayer { .. } => true,
                _ => false,
            })
            .collect();
        let host = |p: &Path| format!("/oldroot{}", p.display()).into_bytes();
        let ro = libc::MS_RDONLY;
        match ws_ops.as_slice() {
            [
                Op::Bind {
                    src: parent,
                    extra: Some(parent_flags),
                    ..
                },
                Op::HoldLayer {
                    path: upper,
                    slot: Slot::Upper,
                },
                Op::HoldLayer {
                    path: work,
                    slot: Slot::Work,
                },
                Op::Bind {
                    src: lower,
                    extra: Some(lower_flags),
                    ..
                },
                Op::HoldLayer {
                    path: held_lower,
                    slot: Slot::Lower,
                },
            ] => {
                assert_eq!(parent.as_bytes(), host(&state));
                assert_eq!(upper.as_bytes(), b"/newroot/workspace/upper");
                assert_eq!(work.as_bytes(), b"/newroot/workspace/work");
                assert_eq!(lower.as_bytes(), host(&ws));
                assert_eq!(held_lower.as_bytes(), b"/newroot/workspace");
                // The workspace is never writable through its own bind; the directory
                // beneath it is, for the overlay's sake, and both are nosuid and nodev.
                assert_eq!(parent_flags & ro, 0);
                assert_ne!(lower_flags & ro, 0);
                for f in [parent_flags, lower_flags] {
                    assert_ne!(f & libc::MS_NOSUID, 0);
                    assert_ne!(f & libc::MS_NODEV, 0);
                }
            }
            other => panic!("unexpected workspace steps: {other:#?}"),
        }
        // Everything reaches for the host before the host root is detached.
        let detach = p
            .steps
            .iter()
            .position(|s| matches!(s.op, Op::Detach(_)))
            .unwrap();
        let last_hold = p
            .steps
            .iter()
            .rposition(|s| matches!(s.op, Op::HoldLayer { .. }))
            .unwrap();
        assert!(last_hold < detach);
        let view = p.views().into_iter().find(|v| v.0 == "/workspace").unwrap();
        assert!(!view.1, "{view:?}");
        assert!(view.2.starts_with("overlay: lower host:"), "{view:?}");
        // The hidden directory is no view of its own.
        assert!(
            !p.views()
                .iter()
                .any(|v| v.2 == format!("host:{}", state.display())),
        );

        // Read-only access: nothing can change, so no overlay.
        let p = MountPlan::build(&ws, WorkspaceAccess::Read, 1 << 20, &[], &[], Some(&o)).unwrap();
        assert!(!p.overlay());
        assert!(!p.steps.iter().any(|s| matches!(s.op, Op::HoldLayer { .. })));
        assert!(!sources(&p).iter().any(|s| s.contains("state")));
    }

    #[test]
    fn the_plan_ends_read_only_in_the_new_root() {
        let (p, _ws) = plan(true);
        let last = p.steps.last().expect("steps");
        assert!(matches!(&last.op, Op::Remount { target, extra }
                if target.as_bytes() == b"/" && extra & libc::MS_RDONLY != 0));
        // One lazy unmount, of the scratch root stacked on the new root by the second
        // pivot (the host root hangs beneath it), and nothing reaches for the host after.
        let detaches: Vec<usize> = p
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s.op, Op::Detach(_)))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(detaches.len(), 1, "{:#?}", p.steps);
        let detach = detaches[0];
        assert!(matches!(&p.steps[detach].op, Op::Detach(t) if t.as_bytes() == b"."));
        assert!(
            matches!(&p.steps[detach - 1].op, Op::PivotRoot { new_root, put_old }
                if new_root.as_bytes() == b"." && put_old.as_bytes() == b".")
        );
        assert!(matches!(&p.steps[detach - 2].op, Op::Chdir(d) if d.as_bytes() == b"/newroot"));
        let mentions_host = |o: &Op| format!("{o:?}").contains("oldroot");
        assert!(
            !p.steps[detach..].iter().any(|s| mentions_host(&s.op)),
            "{:#?}",
            &p.steps[detach..]
        );
    }
}
