//! The container backend: the same [`Profile`] applied through the Docker or Podman CLI.
//!
//! Guarantees: [`Sandbox::start`] creates ONE long-lived container per task with the flags
//! of [`run_args`] (non-root uid 1000, read-only image root, every capability dropped,
//! `no-new-privileges`, `--network none`, cgroup and rlimit limits, a tmpfs `/tmp`, the
//! workspace bound at [`WORKSPACE_MOUNT`] (read-only unless writable; an empty read-only
//! tmpfs there with workspace access `none`), each [`RoBind`](crate::RoBind) bound
//! read-only at its `/skills/NAME`, nothing published, no other volume — never the
//! engine socket); each [`Instance::exec`] is one `exec` into it ([`exec_args`]); dropping
//! the instance runs `rm -f`. At a deadline the container is removed (that kills every
//! process in it) and the next `exec` creates a fresh one (the workspace persists, `/tmp`
//! does not). Every user-controlled value (workspace path, bind sources and targets, image,
//! env) is validated so it cannot be read as a flag or change the meaning of `--mount`.
//!
//! Not guaranteed: the engine's own security (the Docker daemon runs as root); the seccomp
//! profile is the engine's default (Cordon passes no `--security-opt seccomp=`); no
//! Landlock; `RLIMIT_DATA` is not set (the cgroup `--memory` limit bounds memory); the image's
//! `ENV` stays visible unless the profile overrides the same names (`exec` cannot clear
//! it); uid 1000 inside is host uid 1000 unless the engine remaps users; a mount *inside* a
//! read-only bound directory stays as the engine leaves it (read-only only where the engine
//! makes `readonly` binds recursive). Because the container lives for the whole task, a
//! process an `exec` leaves in the background keeps running until the deadline of a later
//! `exec` or the instance's drop removes the container.
//!
//! [`Sandbox::spawn`] creates a container of its own for one long-running process and runs
//! it with one `exec --interactive` ([`spawn_args`], no terminal); the container is removed
//! when that process exits, is killed, or is dropped.
//!
//! Podman: no `--userns keep-id`. Rootless Podman already maps container uid 1000 to a
//! subordinate (unprivileged) host uid; `keep-id` would instead make the command run as
//! the calling host user (more reach, not less), and for rootful Podman it does not apply.

use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::host::{resolve_workspace, supervise};
use crate::stderr_tail::StderrTail;
use crate::{
    Access, ExecOutput, ExecRequest, ExitStatus, Explanation, Instance, Layer, LayerStatus,
    MountView, Process, Profile, RoBind, Sandbox, SandboxError, SpawnRequest, WORKSPACE_MOUNT,
    WorkspaceAccess,
};

/// Hostname inside the container.
const HOSTNAME: &str = "cordon-sandbox";
/// uid:gid of every command.
const USER: &str = "1000:1000";
/// Label on every container Cordon creates (to find leftovers: `docker ps -af label=…`).
const LABEL: &str = "cordon.sandbox=1";
/// Time allowed for `run` (it may pull the image).
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// Time allowed for `rm -f` and `version`.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);

/// A container engine with a Docker-compatible CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Docker,
    Podman,
}

impl Engine {
    /// The CLI program looked up in `PATH`.
    pub fn program(self) -> &'static str {
        match self {
            Engine::Docker => "docker",
            Engine::Podman => "podman",
        }
    }

    fn install_hint(self) -> &'static str {
        match self {
            Engine::Docker => {
                "install Docker Engine (https://docs.docker.com/engine/install/) and start \
                 its daemon, or choose another sandbox backend"
            }
            Engine::Podman => {
                "install Podman (`apt-get install podman`), or choose another sandbox backend"
            }
        }
    }
}

/// The container backend. `program` overrides the engine CLI's path (default: `docker` /
/// `podman` found in `PATH`).
#[derive(Debug, Clone)]
pub struct ContainerSandbox {
    pub engine: Engine,
    /// Image the container runs. It must provide `sleep` and the tools commands need.
    pub image: String,
    pub program: Option<PathBuf>,
}

impl ContainerSandbox {
    pub fn new(engine: Engine, image: impl Into<String>) -> ContainerSandbox {
        ContainerSandbox {
            engine,
            image: image.into(),
            program: None,
        }
    }

    /// The engine CLI, or a setup error naming it and what to install.
    fn locate(&self) -> Result<PathBuf, SandboxError> {
        if let Some(p) = &self.program {
            return Ok(p.clone());
        }
        let name = self.engine.program();
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| is_executable(p))
            .ok_or_else(|| SandboxError::Setup {
                layer: Layer::Exec,
                detail: format!(
                    "container engine `{name}` not found in PATH; {}",
                    self.engine.install_hint()
                ),
            })
    }

    /// Whether `<engine> version` succeeds now (client found and daemon reachable).
    pub fn probe(&self) -> Result<(), String> {
        let program = self.locate().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&program);
        cmd.arg("version");
        let out = control(cmd, CONTROL_TIMEOUT).map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`{} version` failed ({}): {}",
                self.engine.program(),
                out.status,
                excerpt(&out.stderr)
            ))
        }
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Names and engine of one container: everything [`run_args`] needs besides the profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerConfig {
    pub engine: Engine,
    pub image: String,
    /// Container name (`--name`), unique per container.
    pub name: String,
}

fn invalid(what: &str, value: &str, why: &str) -> SandboxError {
    SandboxError::Invalid(format!("{what} {value:?} {why}"))
}

/// A value that lands in its own argument (image, container name): not a flag, not empty,
/// no whitespace or control characters.
fn check_word(what: &str, value: &str) -> Result<(), SandboxError> {
    if value.is_empty() {
        return Err(invalid(what, value, "is empty; set it"));
    }
    if value.starts_with('-') {
        return Err(invalid(
            what,
            value,
            "starts with `-` and would be read as an engine flag; use a real name",
        ));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            what,
            value,
            "contains whitespace or control characters; remove them",
        ));
    }
    Ok(())
}

/// A host directory (`what`: `workspace`, `ro_binds[0].source`) as a `--mount` source:
/// absolute UTF-8, nothing `--mount`'s CSV parser would split or unquote.
fn mount_source<'a>(what: &str, dir: &'a Path) -> Result<&'a str, SandboxError> {
    let s = dir.to_str().ok_or_else(|| {
        SandboxError::Invalid(format!(
            "{what} {} is not valid UTF-8; the container engine cannot mount it, rename it",
            dir.display()
        ))
    })?;
    if !dir.is_absolute() {
        return Err(invalid(what, s, "is not an absolute path; use one"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| matches!(c, ',' | '=' | '"') || c.is_control())
    {
        return Err(invalid(
            what,
            s,
            &format!(
                "contains {c:?}, which would change the meaning of the engine's --mount \
                 option; rename the directory or use another backend"
            ),
        ));
    }
    Ok(s)
}

fn env_args(profile: &Profile, out: &mut Vec<String>) -> Result<(), SandboxError> {
    for (k, v) in &profile.env {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(invalid(
                "environment variable name",
                k,
                "is empty or contains `=`/NUL; fix the profile's env",
            ));
        }
        if v.contains('\0') {
            return Err(invalid("value of environment variable", k, "contains NUL"));
        }
        // Always `--env=K=V`: a bare `--env K` would copy the engine client's variable.
        out.push(format!("--env={k}={v}"));
    }
    Ok(())
}

/// The exact `run` argument vector (without the program) that creates the task's
/// container. Fails on a workspace, image, name or env that could not be passed safely.
pub fn run_args(profile: &Profile, config: &ContainerConfig) -> Result<Vec<String>, SandboxError> {
    check_word("container image", &config.image)?;
    check_word("container name", &config.name)?;
    crate::ro_bind::check_targets(&profile.ro_binds)?;
    let l = &profile.limits;
    if l.cgroup_pids == 0 || l.cgroup_memory == 0 || l.cgroup_cpu_percent == 0 {
        return Err(SandboxError::Invalid(
            "cgroup_pids, cgroup_memory and cgroup_cpu_percent must be > 0 for the container \
             backend (0 means unlimited to the engine); set positive limits"
                .into(),
        ));
    }
    let workspace = match profile.workspace_access {
        // Empty and read-only, but present: the default working directory.
        WorkspaceAccess::None => [
            "--tmpfs".to_owned(),
            format!("{WORKSPACE_MOUNT}:ro,nosuid,nodev,noexec,size=4k,mode=0555"),
        ],
        access => {
            let src = mount_source("workspace", &profile.workspace)?;
            let mut mount = format!("type=bind,src={src},dst={WORKSPACE_MOUNT}");
            if !access.writable() {
                mount.push_str(",readonly");
            }
            ["--mount".to_owned(), mount]
        }
    };
    let cpus = format!(
        "{}.{:02}",
        l.cgroup_cpu_percent / 100,
        l.cgroup_cpu_percent % 100
    );
    let mut a: Vec<String> = [
        "run",
        "--detach",
        "--name",
        &config.name,
        "--user",
        USER,
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--network",
        "none",
        "--pids-limit",
        &l.cgroup_pids.to_string(),
        "--memory",
        &l.cgroup_memory.to_string(),
        "--memory-swap",
        &l.cgroup_memory.to_string(),
        "--cpus",
        &cpus,
        "--ulimit",
        &format!("nofile={0}:{0}", l.max_open_files),
        "--ulimit",
        &format!("nproc={0}:{0}", l.max_processes),
        "--ulimit",
        &format!("fsize={0}:{0}", l.max_file_size),
        "--ulimit",
        &format!("cpu={0}:{0}", l.max_cpu_secs),
        "--ulimit",
        "core=0:0",
        "--tmpfs",
        &format!("/tmp:rw,nosuid,nodev,size={}", l.tmp_size),
        &workspace[0],
        &workspace[1],
        "--workdir",
        WORKSPACE_MOUNT,
        "--hostname",
        HOSTNAME,
        "--label",
        LABEL,
        "--rm",
        "--init",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (i, bind) in profile.ro_binds.iter().enumerate() {
        let src = mount_source(&format!("ro_binds[{i}].source"), &bind.source)?;
        a.push("--mount".into());
        a.push(format!("type=bind,src={src},dst={},readonly", bind.target));
    }
    if config.engine == Engine::Podman {
        // Podman's --read-only otherwise adds writable tmpfs at /run, /var/tmp and /tmp.
        a.push("--read-only-tmpfs=false".into());
    }
    env_args(profile, &mut a)?;
    a.extend(["--entrypoint", "sleep", &config.image, "infinity"].map(String::from));
    Ok(a)
}

/// The exact `exec` argument vector (without the program) that runs `req` in the
/// container named in `config`. `argv` follows the container name, so it is never read
/// as engine flags.
pub fn exec_args(
    profile: &Profile,
    config: &ContainerConfig,
    req: &ExecRequest,
) -> Result<Vec<String>, SandboxError> {
    exec_vector(
        profile,
        config,
        &req.argv,
        req.cwd.as_deref(),
        !req.stdin.is_empty(),
    )
}

/// The exact `exec` argument vector (without the program) that starts the long-running
/// process `req` in the container named in `config`: always `--interactive` (stdin stays
/// open), never a terminal. `argv` follows the container name.
pub fn spawn_args(
    profile: &Profile,
    config: &ContainerConfig,
    req: &SpawnRequest,
) -> Result<Vec<String>, SandboxError> {
    exec_vector(profile, config, &req.argv, req.cwd.as_deref(), true)
}

fn exec_vector(
    profile: &Profile,
    config: &ContainerConfig,
    argv: &[String],
    cwd: Option<&Path>,
    interactive: bool,
) -> Result<Vec<String>, SandboxError> {
    check_word("container name", &config.name)?;
    if argv.first().is_none_or(String::is_empty) {
        return Err(SandboxError::Invalid(
            "empty argv: give at least the program to run".into(),
        ));
    }
    let cwd = match cwd {
        None => PathBuf::from(WORKSPACE_MOUNT),
        Some(c) if c.is_relative() => Path::new(WORKSPACE_MOUNT).join(c),
        Some(c) => c.to_path_buf(),
    };
    let cwd = cwd.to_str().ok_or_else(|| {
        SandboxError::Invalid(format!("working directory {} is not UTF-8", cwd.display()))
    })?;
    let mut a = vec!["exec".to_owned()];
    if interactive {
        a.push("--interactive".into());
    }
    a.extend(["--user", USER].map(String::from));
    a.push(format!("--workdir={cwd}"));
    env_args(profile, &mut a)?;
    a.push(config.name.clone());
    a.extend(argv.iter().cloned());
    Ok(a)
}

/// Runs an engine control command (run, rm, version) with a timeout.
fn control(cmd: Command, timeout: Duration) -> Result<ExecOutput, SandboxError> {
    supervise::run(cmd, &[], timeout, 64 * 1024)?.map_err(|f| SandboxError::Setup {
        layer: Layer::Exec,
        detail: format!("could not run the container engine: {}", f.error),
    })
}

fn excerpt(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let s = s.trim();
    s.chars().take(500).collect()
}

static NEXT: AtomicU64 = AtomicU64::new(0);

fn fresh_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "cordon-{}-{}-{nanos:08x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl Sandbox for ContainerSandbox {
    fn backend(&self) -> &'static str {
        self.engine.program()
    }

    fn isolation(&self) -> crate::Isolation {
        crate::Isolation::Isolated
    }

    fn start(&self, profile: &Profile) -> Result<Box<dyn Instance>, SandboxError> {
        Ok(Box::new(self.instance(profile)?))
    }

    /// A container of its own (created as by [`Sandbox::start`]) and one `exec
    /// --interactive` into it ([`spawn_args`]) whose stdin and stdout are the process's.
    /// A program missing in the image is only seen when the engine's `exec` ends (exit
    /// 126/127, its message in [`Process::stderr_tail`]).
    fn spawn(
        &self,
        profile: &Profile,
        req: &SpawnRequest,
    ) -> Result<Box<dyn Process>, SandboxError> {
        let inst = self.instance(profile)?;
        let Some(config) = inst.running.clone() else {
            return Err(SandboxError::Invalid(
                "the container was not created".into(),
            ));
        };
        let args = spawn_args(&inst.profile, &config, req)?;
        let mut cmd = Command::new(&inst.program);
        cmd.args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Dropping `inst` on an error below removes the container.
        let mut child = cmd.spawn().map_err(|e| SandboxError::Setup {
            layer: Layer::Exec,
            detail: format!("could not run the container engine: {e}"),
        })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SandboxError::Io(std::io::Error::other(
                "the engine's pipes were not created",
            )));
        };
        let stderr = match StderrTail::start(stderr.into(), req.stderr_limit) {
            Ok(t) => t,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e.into());
            }
        };
        Ok(Box::new(ContainerProcess {
            instance: inst,
            child,
            stdin: Some(stdin.into()),
            stdout: Some(stdout.into()),
            stderr,
            status: None,
        }))
    }

    fn explain(&self, profile: &Profile) -> Explanation {
        explain(self, profile)
    }
}

impl ContainerSandbox {
    /// The task's container, created.
    fn instance(&self, profile: &Profile) -> Result<ContainerInstance, SandboxError> {
        crate::overlay::refuse(self.backend(), profile)?;
        let mut profile = profile.clone();
        profile.workspace = resolve_workspace(&profile)?;
        profile.ro_binds = crate::ro_bind::resolve(&profile.ro_binds)?
            .into_iter()
            .map(|b| RoBind {
                source: b.source,
                target: b.target,
            })
            .collect();
        let program = self.locate()?;
        let mut inst = ContainerInstance {
            program,
            engine: self.engine,
            image: self.image.clone(),
            profile,
            running: None,
        };
        inst.create()?;
        Ok(inst)
    }
}

struct ContainerInstance {
    program: PathBuf,
    engine: Engine,
    image: String,
    profile: Profile,
    /// The live container, or `None` after a deadline removed it.
    running: Option<ContainerConfig>,
}

impl ContainerInstance {
    /// Create the task's container and record it as running.
    fn create(&mut self) -> Result<ContainerConfig, SandboxError> {
        let config = ContainerConfig {
            engine: self.engine,
            image: self.image.clone(),
            name: fresh_name(),
        };
        let args = run_args(&self.profile, &config)?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&args);
        let out = control(cmd, RUN_TIMEOUT)?;
        if !out.status.success() {
            // A half-created container must not linger.
            self.remove(&config.name);
            return Err(SandboxError::Setup {
                layer: Layer::Exec,
                detail: format!(
                    "`{} run` of image {} failed ({}): {}; check that the engine is running \
                     (`{} version`) and the image exists",
                    self.engine.program(),
                    self.image,
                    out.status,
                    excerpt(&out.stderr),
                    self.engine.program()
                ),
            });
        }
        self.running = Some(config.clone());
        Ok(config)
    }

    fn remove(&self, name: &str) {
        let mut cmd = Command::new(&self.program);
        cmd.args(["rm", "-f", name]).stdin(Stdio::null());
        // Best effort: nothing more can be done if the engine is gone.
        let _ = control(cmd, CONTROL_TIMEOUT);
    }
}

impl Instance for ContainerInstance {
    fn exec(&mut self, req: &ExecRequest) -> Result<ExecOutput, SandboxError> {
        let config = match &self.running {
            Some(c) => c.clone(),
            None => self.create()?,
        };
        let args = exec_args(&self.profile, &config, req)?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&args);
        let out = supervise::run(cmd, &req.stdin, req.timeout, req.output_limit)?.map_err(|f| {
            SandboxError::Setup {
                layer: Layer::Exec,
                detail: format!("could not run the container engine: {}", f.error),
            }
        })?;
        if out.status == ExitStatus::TimedOut {
            // Removing the container kills everything in it; the next exec recreates it.
            self.remove(&config.name);
            self.running = None;
            return Ok(out);
        }
        if let ExitStatus::Exited(code @ 125..=127) = out.status {
            let msg = excerpt(&out.stderr);
            // The engine's own failures (not the command's output) start like this.
            let engine_failed = ["OCI runtime", "Error response from daemon", "Error: "]
                .iter()
                .any(|m| msg.starts_with(m))
                || msg.contains("OCI runtime exec failed");
            if engine_failed {
                if code == 125 {
                    // The container itself is unusable: recreate it next time.
                    self.remove(&config.name);
                    self.running = None;
                    return Err(SandboxError::Setup {
                        layer: Layer::Exec,
                        detail: format!("`{} exec` failed: {msg}", self.engine.program()),
                    });
                }
                return Err(SandboxError::Exec {
                    program: req.argv.first().cloned().unwrap_or_default(),
                    detail: msg,
                });
            }
        }
        Ok(out)
    }
}

/// A long-running `exec` into a container of its own.
struct ContainerProcess {
    /// Removed (which kills every process in it) at exit, kill and drop.
    instance: ContainerInstance,
    /// The engine client running `exec --interactive`.
    child: Child,
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: StderrTail,
    status: Option<ExitStatus>,
}

/// How often [`ContainerProcess::wait`] checks the engine client.
const WAIT_POLL: Duration = Duration::from_millis(5);

impl ContainerProcess {
    /// Remove the container: whatever the process left running in it goes too.
    fn remove_container(&mut self) {
        if let Some(c) = self.instance.running.take() {
            self.instance.remove(&c.name);
        }
    }
}

impl Process for ContainerProcess {
    fn stdin(&mut self) -> Option<OwnedFd> {
        self.stdin.take()
    }

    fn stdout(&mut self) -> Option<OwnedFd> {
        self.stdout.take()
    }

    fn stderr_tail(&self) -> Vec<u8> {
        self.stderr.bytes()
    }

    fn stderr_dropped(&self) -> u64 {
        self.stderr.dropped()
    }

    fn wait(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, SandboxError> {
        let deadline = std::time::Instant::now().checked_add(timeout);
        loop {
            if let Some(status) = self.status {
                return Ok(Some(status));
            }
            if let Some(s) = self.child.try_wait()? {
                self.status = Some(match (s.code(), s.signal()) {
                    (Some(code), _) => ExitStatus::Exited(code),
                    (None, Some(sig)) => ExitStatus::Signaled(sig),
                    (None, None) => ExitStatus::Exited(-1),
                });
                self.remove_container();
                continue;
            }
            let now = std::time::Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(None);
            }
            let left = deadline.map_or(WAIT_POLL, |d| d - now);
            std::thread::sleep(left.min(WAIT_POLL));
        }
    }

    fn kill(&mut self) -> Result<(), SandboxError> {
        if self.status.is_none() {
            self.remove_container();
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.status = Some(ExitStatus::Signaled(libc::SIGKILL));
        }
        self.remove_container();
        Ok(())
    }
}

impl Drop for ContainerProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

impl Drop for ContainerInstance {
    fn drop(&mut self) {
        if let Some(c) = self.running.take() {
            self.remove(&c.name);
        }
    }
}

fn explain(sb: &ContainerSandbox, profile: &Profile) -> Explanation {
    let engine = sb.engine.program();
    let l = &profile.limits;
    let layer = |name: &str, active: bool, detail: String| LayerStatus {
        layer: name.to_owned(),
        active,
        detail,
    };
    let mut warnings = vec![
        "seccomp is the engine's default profile; Cordon passes no --security-opt seccomp=".into(),
        "the image's ENV variables are visible to commands unless the profile sets the same \
         names (exec cannot clear them)"
            .into(),
        "uid 1000 in the container is host uid 1000 unless the engine remaps users \
         (rootless Podman, userns-remap); the workspace must be writable by it"
            .into(),
        "RLIMIT_DATA (max_memory) is not set; the cgroup --memory limit bounds memory".into(),
        "no Landlock".into(),
        "background processes started by one exec keep running in the task's container until \
         a deadline or the end of the task removes it"
            .into(),
        "RLIMIT_NPROC counts every process of the container's uid on the host kernel, \
         including other containers and host processes running as uid 1000"
            .into(),
    ];
    if sb.engine == Engine::Docker {
        warnings
            .push("the Docker daemon runs as root: an engine escape is a host-root escape".into());
    }
    if let Some(port) = profile.egress_port {
        warnings.push(format!(
            "egress_port {port} is not provided by the container backend: with --network none \
             commands have no way out at all (egress_listener() returns None)"
        ));
    }
    if let Err(why) = sb.probe() {
        warnings.push(format!("{why}: starting a sandbox will fail now"));
    }
    let workspace = match profile.workspace_access {
        WorkspaceAccess::None => MountView {
            path: WORKSPACE_MOUNT.into(),
            access: Access::ReadOnly,
            source: "empty tmpfs (workspace access none)".into(),
        },
        access => MountView {
            path: WORKSPACE_MOUNT.into(),
            access: if access.writable() {
                Access::ReadWrite
            } else {
                Access::ReadOnly
            },
            source: format!("host:{}", profile.workspace.display()),
        },
    };
    if let Err(e) = crate::ro_bind::check_targets(&profile.ro_binds)
        .and_then(|()| crate::overlay::refuse(engine, profile))
    {
        warnings.push(format!("this profile cannot start: {e}"));
    }
    let binds = profile.ro_binds.iter().map(|b| MountView {
        path: b.target.clone(),
        access: Access::ReadOnly,
        source: format!("host:{} (readonly bind)", b.source.display()),
    });
    Explanation {
        backend: engine.into(),
        layers: vec![
            layer(
                "engine namespaces",
                true,
                format!("{engine} creates mount, pid, net, ipc and uts namespaces"),
            ),
            layer("--cap-drop ALL", true, "no capabilities".into()),
            layer(
                "no-new-privileges",
                true,
                "--security-opt no-new-privileges: setuid binaries gain nothing".into(),
            ),
            layer("--network none", true, "loopback only".into()),
            layer(
                "engine default seccomp",
                true,
                format!("{engine}'s default seccomp profile"),
            ),
            layer(
                "read-only root",
                true,
                "--read-only: the image root cannot be written".into(),
            ),
            layer(
                "cgroup limits",
                true,
                "--memory, --memory-swap, --pids-limit, --cpus".into(),
            ),
            layer(
                "rlimits",
                true,
                "--ulimit nofile, nproc, fsize, cpu, core".into(),
            ),
            layer(
                "landlock",
                false,
                "not applied by the container backend".into(),
            ),
        ],
        mounts: vec![
            MountView {
                path: "/".into(),
                access: Access::ReadOnly,
                source: format!("image {} (--read-only)", sb.image),
            },
            workspace,
            MountView {
                path: "/tmp".into(),
                access: Access::ReadWrite,
                source: format!("tmpfs {} MiB (nosuid, nodev)", l.tmp_size >> 20),
            },
            MountView {
                path: "/dev/shm".into(),
                access: Access::ReadWrite,
                source: "tmpfs (engine default size)".into(),
            },
            MountView {
                path: "/dev".into(),
                access: Access::ReadOnly,
                source: "engine-generated minimal /dev (root-owned)".into(),
            },
            MountView {
                path: "/proc".into(),
                access: Access::ReadOnly,
                source: "proc (container pids only; engine masks kernel knobs)".into(),
            },
            MountView {
                path: "/sys".into(),
                access: Access::ReadOnly,
                source: "sysfs, read-only (engine default)".into(),
            },
            MountView {
                path: "/etc/hosts, /etc/hostname, /etc/resolv.conf".into(),
                access: Access::ReadOnly,
                source: "generated by the engine (root-owned)".into(),
            },
        ]
        .into_iter()
        .chain(binds)
        .collect(),
        uid: 1000,
        gid: 1000,
        limits: vec![
            ("pids (cgroup)".into(), l.cgroup_pids.to_string()),
            (
                "memory (cgroup, no swap)".into(),
                l.cgroup_memory.to_string(),
            ),
            ("cpus".into(), format!("{}%", l.cgroup_cpu_percent)),
            ("RLIMIT_NOFILE".into(), l.max_open_files.to_string()),
            ("RLIMIT_NPROC".into(), l.max_processes.to_string()),
            ("RLIMIT_FSIZE".into(), l.max_file_size.to_string()),
            ("RLIMIT_CPU".into(), l.max_cpu_secs.to_string()),
            ("RLIMIT_CORE".into(), "0".into()),
            ("/tmp".into(), l.tmp_size.to_string()),
        ],
        network: "loopback only (--network none); nothing published".into(),
        warnings,
    }
}
