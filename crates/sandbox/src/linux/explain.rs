//! `Sandbox::explain` for the native backend: what a command would see and be held to.
//!
//! Guarantees: the report is derived from the same plan and probes the real setup uses —
//! the [`MountPlan`] built from the profile, the namespace flags passed to `clone`, the
//! compiled seccomp filter, the Landlock ABI probe and rule table, the cgroup probe, the
//! rlimit table — not from a hand-written list, so `tests/explain.rs` can check every claim
//! inside a real sandbox. Does not run anything: a layer that would fail at run time (e.g.
//! a kernel refusing the Landlock ruleset) is still reported as it is planned.

use crate::{Access, Explanation, LayerStatus, MountView, Profile};

use super::cgroup::CgroupPlan;
use super::landlock;
use super::mounts::MountPlan;
use super::namespaces::NAMESPACES;
use super::rlimits::Rlimits;
use super::{SANDBOX_GID, SANDBOX_UID, seccomp};

fn layer(name: &str, active: bool, detail: impl Into<String>) -> LayerStatus {
    LayerStatus {
        layer: name.to_owned(),
        active,
        detail: detail.into(),
    }
}

/// The Landlock rule that governs `path` inside (the longest matching rule path).
fn landlock_rule(path: &str) -> Option<landlock::Grant> {
    landlock::RULES
        .iter()
        .filter(|(p, _)| {
            let p = p.to_str().unwrap_or("\0");
            path == p
                || path
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|(p, _)| p.to_bytes().len())
        .map(|(_, g)| *g)
}

/// The explanation for `profile` on this machine now.
pub(crate) fn explain(profile: &Profile) -> Explanation {
    let mut warnings = Vec::new();
    let mut layers = Vec::new();
    let euid = rustix::process::geteuid().as_raw();
    let egid = rustix::process::getegid().as_raw();

    for (flag, name) in [
        (libc::CLONE_NEWUSER, "user namespace"),
        (libc::CLONE_NEWNS, "mount namespace"),
        (libc::CLONE_NEWPID, "pid namespace"),
        (libc::CLONE_NEWNET, "network namespace"),
        (libc::CLONE_NEWIPC, "ipc namespace"),
        (libc::CLONE_NEWUTS, "uts namespace"),
        (libc::CLONE_NEWCGROUP, "cgroup namespace"),
    ] {
        layers.push(layer(
            name,
            NAMESPACES & flag != 0,
            "new, private to this sandbox",
        ));
    }
    layers.push(layer(
        "uid/gid mapping",
        true,
        format!(
            "inside {SANDBOX_UID}:{SANDBOX_GID} -> host {euid}:{egid}; no other id mapped; \
             setgroups denied"
        ),
    ));
    layers.push(layer(
        "capabilities",
        true,
        "none: bounding, ambient, effective, permitted and inheritable sets empty",
    ));
    layers.push(layer("no_new_privs", true, "set before exec"));
    match seccomp::prepare() {
        Ok(f) => layers.push(layer(
            "seccomp",
            true,
            format!(
                "{} syscalls denied (EPERM; clone3 ENOSYS); other architectures killed",
                f.denied()
            ),
        )),
        Err(e) => layers.push(layer("seccomp", false, format!("cannot be built: {e}"))),
    }
    let abi = landlock::abi();
    match abi {
        Some(v) => layers.push(layer(
            "landlock",
            true,
            format!("ABI {v}: filesystem rules matching the mounts; no network rules"),
        )),
        None => layers.push(layer("landlock", false, "unavailable in this kernel")),
    }
    let cgroup = CgroupPlan::new(&profile.limits);
    match &cgroup.hierarchy {
        Ok(h) => layers.push(layer("cgroup", true, h.describe())),
        Err(why) => {
            layers.push(layer("cgroup", false, format!("not applied: {why}")));
            if euid == 0 {
                warnings.push(
                    "RLIMIT_NPROC is not enforced for host root and no cgroup pids limit \
                     applies"
                        .to_owned(),
                );
            }
        }
    }
    layers.extend(overlay_layer(profile, &mut warnings));
    let rlimits = Rlimits::new(&profile.limits);
    layers.push(layer(
        "rlimits",
        true,
        rlimits
            .entries()
            .map(|(name, v)| format!("{name}={v}"))
            .collect::<Vec<_>>()
            .join(", "),
    ));

    let mut limits: Vec<(String, String)> = rlimits
        .entries()
        .map(|(name, v)| (name.to_owned(), v.to_string()))
        .collect();
    limits.push((
        "/tmp and /dev/shm size".into(),
        format!("{} bytes each", profile.limits.tmp_size),
    ));
    if cgroup.hierarchy.is_ok() {
        limits.extend(cgroup.limits());
    }

    let mounts = match plan(profile) {
        Ok(plan) => plan
            .views()
            .into_iter()
            .map(|(path, read_only, source)| {
                // A file masked by binding /dev/null is that device node: same rule.
                let rule_path = if source == "masked (/dev/null)" {
                    "/dev/null"
                } else {
                    &path
                };
                let writable_by_landlock = match (abi, landlock_rule(rule_path)) {
                    (None, _) => true,
                    (Some(_), None) => false,
                    (Some(_), Some(g)) => {
                        landlock::grants_write(g, profile.workspace_access.writable())
                    }
                };
                let access = if read_only || !writable_by_landlock {
                    Access::ReadOnly
                } else {
                    Access::ReadWrite
                };
                MountView {
                    path,
                    access,
                    source,
                }
            })
            .collect(),
        Err(e) => {
            warnings.push(format!("this profile cannot start: {e}"));
            Vec::new()
        }
    };
    if euid == 0 {
        warnings.push(
            "caller is host root: inner uid 1000 maps to host root (kuid 0); /proc and /dev \
             are protected by read-only mounts and masks"
                .to_owned(),
        );
    }
    Explanation {
        backend: "native".into(),
        layers,
        mounts,
        uid: SANDBOX_UID,
        gid: SANDBOX_GID,
        limits,
        network: if NAMESPACES & libc::CLONE_NEWNET != 0 {
            "loopback only (no route out): a new network namespace with only lo".into()
        } else {
            "the host's network (no network namespace)".into()
        },
        warnings,
    }
}

fn plan(profile: &Profile) -> Result<MountPlan, crate::SandboxError> {
    // The same check as `start`, so the warning is the error `start` would give.
    let workspace = crate::host::resolve_workspace(profile)?;
    let ro_binds = crate::ro_bind::resolve(&profile.ro_binds)?;
    let overlay = match &profile.workspace_overlay {
        Some(o) if profile.workspace_access.writable() => {
            Some(crate::overlay::resolve(o, &workspace)?)
        }
        _ => None,
    };
    MountPlan::build(
        &workspace,
        profile.workspace_access,
        profile.limits.tmp_size,
        &profile.etc_files,
        &ro_binds,
        overlay.as_ref(),
    )
}

/// The workspace overlay's layer line, when the profile asks for one.
fn overlay_layer(profile: &Profile, warnings: &mut Vec<String>) -> Option<LayerStatus> {
    let o = profile.workspace_overlay.as_ref()?;
    if !profile.workspace_access.writable() {
        return Some(layer(
            "workspace overlay",
            false,
            format!(
                "not used: workspace access is {} (nothing can change)",
                profile.workspace_access
            ),
        ));
    }
    if let Err(why) = super::overlay::kernel_support() {
        warnings.push(format!(
            "this profile cannot start: workspace overlay: {why}"
        ));
        return Some(layer("workspace overlay", false, why));
    }
    Some(layer(
        "workspace overlay",
        true,
        format!(
            "each command sees {ws} as a new overlayfs (userxattr) over {real}, mounted \
             before it and unmounted once all its processes are gone: its changes land in \
             {upper} (work {work}), deletions as whiteouts (char 0:0), replaced directories \
             opaque (user.overlay.opaque); {real} itself is never written and no path inside \
             reaches it, {upper} or {work}",
            ws = crate::WORKSPACE_MOUNT,
            real = profile.workspace.display(),
            upper = o.upper.display(),
            work = o.work.display(),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landlock_rule_is_the_longest_matching_path() {
        assert_eq!(landlock_rule("/dev/shm"), Some(landlock::Grant::ReadWrite));
        assert_eq!(landlock_rule("/dev/null"), Some(landlock::Grant::Device));
        assert_eq!(landlock_rule("/dev/fd"), Some(landlock::Grant::Read));
        assert_eq!(
            landlock_rule("/usr/bin"),
            Some(landlock::Grant::ReadExecute)
        );
        assert_eq!(landlock_rule("/usrx"), None);
        assert_eq!(
            landlock_rule("/skills/weather"),
            Some(landlock::Grant::ReadExecute)
        );
        assert_eq!(landlock_rule("/"), None);
    }
}
