//! `cordon deploy`: every generated file is parsed and checked by structure — each
//! hardening item by its key, not by a substring — and handed to its real validator when
//! the machine has it (`systemd-analyze verify`, `nft -c`, `iptables-restore --test`,
//! `docker compose config`); each deployed cordon.toml must pass `cordon config check`.
//! Hostile config values must not add or change anything outside their own string.

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use serde_yaml_ng::Value;

/// An installation whose agent may reach a name from `[egress] resolve`, a wildcard, a
/// name inside `allow_ranges`, a private literal, a name that never resolves, and
/// loopback — one of each kind of NetworkPolicy destination.
fn install(tier: &str) -> Install {
    let inst = Install::new(
        "https://203.0.113.7:8443/v1",
        AgentSetup {
            egress_allow: r#"["api.example.com", "*.pypi.org", "mirror.internal:8443", "10.1.2.3", "nothing.invalid", "localhost"]"#,
            extra_model: "api_key_env = \"OPENAI_API_KEY\"",
            ..AgentSetup::default()
        },
    );
    let text = read(&inst.config);
    std::fs::write(
        &inst.config,
        format!(
            "tier = \"{tier}\"\n{text}\n[egress]\n\
             resolve = {{ \"api.example.com\" = \"93.184.216.34\", \"mirror.internal\" = \"10.0.0.5\" }}\n\
             allow_ranges = [\"10.0.0.0/24\"]\n"
        ),
    )
    .unwrap();
    inst
}

fn append(inst: &Install, extra: &str) {
    let text = read(&inst.config);
    std::fs::write(&inst.config, format!("{text}\n{extra}\n")).unwrap();
}

async fn deploy_out(inst: &Install, target: &str) -> PathBuf {
    let out = inst.dir.path().join(format!("out-{target}"));
    let res = inst
        .cordon(&["deploy", target, "--out", out.to_str().unwrap()])
        .await;
    assert_ok(&res);
    out
}

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "should have failed; stdout:\n{}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

/// An executable in PATH.
fn tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn yaml(path: &Path) -> Value {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml_docs(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` is not a string in {v:?}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {v:?}"))
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

/// Every string anywhere in `v`.
fn all_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Sequence(xs) => xs.iter().for_each(|x| all_strings(x, out)),
        Value::Mapping(m) => m.iter().for_each(|(k, x)| {
            all_strings(k, out);
            all_strings(x, out);
        }),
        Value::Tagged(t) => all_strings(&t.value, out),
        _ => {}
    }
}

fn toml_file(path: &Path) -> toml::Table {
    read(path)
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `cordon config check FILE` must accept a deployed config.
async fn config_checks(inst: &Install, file: &Path) {
    let out = inst
        .cordon(&["config", "check", file.to_str().unwrap()])
        .await;
    assert_ok(&out);
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

// ---------------------------------------------------------------------------------------
// compose

#[tokio::test(flavor = "multi_thread")]
async fn compose_has_every_hardening_item() {
    let inst = install("personal");
    let out = deploy_out(&inst, "compose").await;
    let names: BTreeSet<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Dockerfile",
            "compose.yaml",
            "cordon-seccomp.json",
            "cordon.toml"
        ]
        .map(String::from)
        .into()
    );
    let doc = yaml(&out.join("compose.yaml"));
    let services = doc["services"].as_mapping().unwrap();
    assert_eq!(services.len(), 1, "one service");
    let svc = &doc["services"]["cordon"];

    // Identity, filesystem, capabilities, privileges.
    assert_eq!(s(svc, "user"), "1000:1000");
    assert_eq!(svc["read_only"], Value::Bool(true));
    assert_eq!(strings(&svc["cap_drop"]), ["ALL"]);
    for forbidden in [
        "privileged",
        "cap_add",
        "devices",
        "network_mode",
        "pid",
        "ipc",
        "userns_mode",
    ] {
        assert!(svc.get(forbidden).is_none(), "{forbidden} must not be set");
    }
    let opts = strings(&svc["security_opt"]);
    assert!(
        opts.contains(&"no-new-privileges:true".to_string()),
        "{opts:?}"
    );
    // The relaxations the native sandbox needs, each with the one value that is needed.
    let seccomp: Vec<&String> = opts.iter().filter(|o| o.starts_with("seccomp")).collect();
    assert_eq!(seccomp, ["seccomp=./cordon-seccomp.json"]);
    check_seccomp_profile(&out.join("cordon-seccomp.json"));

    // Published on loopback only, on the configured port.
    let ports = svc["ports"].as_sequence().unwrap();
    assert!(!ports.is_empty());
    for p in ports {
        assert_eq!(s(p, "host_ip"), "127.0.0.1", "{p:?}");
        assert_eq!(p["target"].as_u64(), Some(7777));
    }

    // Limits.
    let mem = s(svc, "mem_limit");
    assert!(mem.ends_with('m') && mem.trim_end_matches('m').parse::<u64>().unwrap() >= 512);
    assert_eq!(
        s(svc, "memswap_limit"),
        mem,
        "no swap beyond the memory limit"
    );
    assert!(s(svc, "cpus").parse::<f64>().unwrap() >= 1.0);
    assert!(svc["pids_limit"].as_u64().unwrap() > 0);
    assert_eq!(svc["ulimits"]["core"].as_u64(), Some(0));

    // One named volume, for state; no host path, no engine socket anywhere.
    let vols = svc["volumes"].as_sequence().unwrap();
    assert_eq!(vols.len(), 1);
    assert_eq!(s(&vols[0], "type"), "volume");
    assert_eq!(s(&vols[0], "target"), "/var/lib/cordon");
    let top: Vec<&str> = doc["volumes"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(top, [s(&vols[0], "source")]);
    let tmpfs = strings(&svc["tmpfs"]);
    for t in &tmpfs {
        let (path, opts) = t.split_once(':').unwrap_or((t, ""));
        assert_eq!(path, "/tmp", "{tmpfs:?}");
        let opts: BTreeSet<&str> = opts.split(',').collect();
        for must in ["nosuid", "nodev", "noexec"] {
            assert!(opts.contains(must), "/tmp without {must}: {t}");
        }
        assert!(
            opts.iter().any(|o| o.starts_with("size=")),
            "/tmp unbounded: {t}"
        );
    }
    let mut every = Vec::new();
    all_strings(&doc, &mut every);
    assert!(
        !every
            .iter()
            .any(|s| s.contains("docker.sock") || s.contains("podman.sock")),
        "engine socket in compose.yaml"
    );

    // Health check on /readyz, through the container's own loopback.
    let test = strings(&svc["healthcheck"]["test"]);
    assert_eq!(test[0], "CMD");
    assert!(
        test.contains(&"https://127.0.0.1:7777/readyz".to_string()),
        "{test:?}"
    );

    // The config it runs: mounted where CORDON_CONFIG says, valid, bound on every
    // interface inside the container with TLS from the compose secrets.
    let env = strings(&svc["environment"]);
    assert!(env.contains(&"CORDON_CONFIG=/etc/cordon/cordon.toml".to_string()));
    assert!(env.contains(&"CORDON_STATE_DIR=/var/lib/cordon/state".to_string()));
    assert!(
        env.contains(&"OPENAI_API_KEY".to_string()),
        "key passed through by name"
    );
    let configs = svc["configs"].as_sequence().unwrap();
    assert_eq!(s(&configs[0], "target"), "/etc/cordon/cordon.toml");
    let source = s(&configs[0], "source");
    assert_eq!(s(&doc["configs"][source], "file"), "./cordon.toml");
    config_checks(&inst, &out.join("cordon.toml")).await;
    let cfg = toml_file(&out.join("cordon.toml"));
    assert_eq!(cfg["gateway"]["bind"].as_str(), Some("0.0.0.0:7777"));
    let secrets = strings(&svc["secrets"]);
    for (key, secret) in [("tls_cert", &secrets[0]), ("tls_key", &secrets[1])] {
        assert!(doc["secrets"][secret.as_str()]["file"].is_string());
        assert_eq!(
            cfg["gateway"][key].as_str().unwrap(),
            format!("/run/secrets/{secret}")
        );
    }
    assert_eq!(
        cfg["agents"]["default"]["workspace"].as_str(),
        Some("/var/lib/cordon/workspaces/default")
    );
    // Everything else is the loaded config.
    assert_eq!(
        cfg["agents"]["default"]["egress"]["allow"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
    assert_eq!(cfg["tier"].as_str(), Some("personal"));

    check_dockerfile(&out.join("Dockerfile"), &["default"]);

    if let Some(docker) = tool("docker") {
        let has_compose = std::process::Command::new(&docker)
            .args(["compose", "version"])
            .output()
            .is_ok_and(|o| o.status.success());
        if has_compose {
            std::fs::create_dir_all(out.join("tls")).unwrap();
            std::fs::write(out.join("tls/cert.pem"), "x").unwrap();
            std::fs::write(out.join("tls/key.pem"), "x").unwrap();
            let v = std::process::Command::new(&docker)
                .args(["compose", "-f", "compose.yaml", "config", "--quiet"])
                .current_dir(&out)
                .output()
                .unwrap();
            assert_ok(&v);
        } else {
            eprintln!("skipped `docker compose config`: no compose plugin here");
        }
    } else {
        eprintln!("skipped `docker compose config`: no docker here");
    }
}

/// The profile must refuse the attack-surface calls and must not refuse any call the
/// native sandbox's setup makes inside its own user namespace.
fn check_seccomp_profile(path: &Path) {
    let doc: serde_json::Value = serde_json::from_str(&read(path)).unwrap();
    assert_eq!(doc["defaultAction"], "SCMP_ACT_ALLOW");
    let mut denied = BTreeSet::new();
    for rule in doc["syscalls"].as_array().unwrap() {
        assert_eq!(rule["action"], "SCMP_ACT_ERRNO", "{rule}");
        assert!(
            rule.get("args").is_none(),
            "unconditional rules only: {rule}"
        );
        for n in rule["names"].as_array().unwrap() {
            denied.insert(n.as_str().unwrap().to_string());
        }
    }
    for must in [
        "bpf",
        "io_uring_setup",
        "ptrace",
        "process_vm_writev",
        "keyctl",
        "kexec_load",
        "init_module",
        "finit_module",
        "open_by_handle_at",
        "userfaultfd",
        "perf_event_open",
        "setns",
    ] {
        assert!(denied.contains(must), "{must} is not refused");
    }
    for needed in [
        "clone",
        "mount",
        "umount2",
        "pivot_root",
        "mount_setattr",
        "sethostname",
        "seccomp",
        "prctl",
        "landlock_create_ruleset",
        "landlock_add_rule",
        "landlock_restrict_self",
        "setresuid",
        "setresgid",
        "capset",
        "socket",
        "ioctl",
    ] {
        assert!(
            !denied.contains(needed),
            "{needed} is needed by the sandbox"
        );
    }
    let arches: Vec<&str> = doc["archMap"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["architecture"].as_str().unwrap())
        .collect();
    assert!(arches.contains(&"SCMP_ARCH_X86_64") && arches.contains(&"SCMP_ARCH_AARCH64"));
}

/// Instructions in order, continuation lines joined, comments dropped.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if cur.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if let Some(body) = t.strip_suffix('\\') {
            cur.push_str(body);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        let (op, rest) = cur.split_once(' ').unwrap();
        out.push((op.to_uppercase(), rest.trim().to_string()));
        cur.clear();
    }
    assert!(cur.is_empty(), "dangling continuation");
    out
}

fn check_dockerfile(path: &Path, agents: &[&str]) {
    let ins = dockerfile_instructions(&read(path));
    assert_eq!(ins[0].0, "FROM");
    let known = [
        "FROM",
        "RUN",
        "COPY",
        "USER",
        "WORKDIR",
        "ENTRYPOINT",
        "CMD",
        "ENV",
    ];
    for (op, _) in &ins {
        assert!(known.contains(&op.as_str()), "unexpected {op}");
    }
    let users: Vec<&str> = ins
        .iter()
        .filter(|(op, _)| op == "USER")
        .map(|(_, a)| a.as_str())
        .collect();
    assert_eq!(users, ["1000:1000"]);
    // The last instructions run as that user: nothing after USER switches back.
    let entry = &ins.iter().find(|(op, _)| op == "ENTRYPOINT").unwrap().1;
    let argv: Vec<String> = serde_json::from_str(entry).unwrap();
    assert_eq!(argv, ["/usr/local/bin/cordon"]);
    let cmd: Vec<String> =
        serde_json::from_str(&ins.iter().find(|(op, _)| op == "CMD").unwrap().1).unwrap();
    assert_eq!(cmd, ["serve"]);
    let run = ins
        .iter()
        .filter(|(op, _)| op == "RUN")
        .map(|(_, a)| a.clone())
        .collect::<Vec<_>>()
        .join(" ");
    let words: Vec<&str> = run.split_whitespace().collect();
    for a in agents {
        assert!(words.contains(&format!("/var/lib/cordon/workspaces/{a}").as_str()));
    }
    assert!(words.contains(&"/var/lib/cordon/state"));
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_follow_the_tier() {
    let mut mem = Vec::new();
    for tier in ["personal", "team", "enterprise"] {
        let inst = install(tier);
        // The same sandbox limits for every tier: only the tier's headroom differs.
        append(
            &inst,
            "[sandbox]\ncgroup_memory_mb = 1024\ncgroup_pids = 256",
        );
        let out = deploy_out(&inst, "compose").await;
        let doc = yaml(&out.join("compose.yaml"));
        let m: u64 = s(&doc["services"]["cordon"], "mem_limit")
            .trim_end_matches('m')
            .parse()
            .unwrap();
        assert_eq!(
            toml_file(&out.join("cordon.toml"))["tier"].as_str(),
            Some(tier)
        );
        mem.push(m);
    }
    assert!(mem[0] < mem[1] && mem[1] < mem[2], "{mem:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn container_targets_refuse_an_engine_backend() {
    let inst = install("personal");
    append(&inst, "[sandbox]\nbackend = \"docker\"");
    for target in ["compose", "kubernetes"] {
        let err = failed(&inst.cordon(&["deploy", target]).await);
        assert!(
            err.contains("sandbox.backend") && err.contains("socket"),
            "{target}: {err}"
        );
    }
    // A host service may use it.
    assert_ok(&inst.cordon(&["deploy", "systemd"]).await);
}

// ---------------------------------------------------------------------------------------
// systemd

/// `[Section]` -> every `Key=value`, in order (keys may repeat).
type Unit = Vec<(String, Vec<(String, String)>)>;

fn parse_unit(text: &str) -> Unit {
    let mut unit: Unit = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(!raw.ends_with('\\'), "line {}: continuation", n + 1);
        if let Some(name) = line.strip_prefix('[') {
            let name = name.strip_suffix(']').expect("section header");
            unit.push((name.to_string(), Vec::new()));
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not Key=value: {line}", n + 1));
        let (_, entries) = unit.last_mut().expect("a key before any section");
        assert!(
            k.trim().chars().all(|c| c.is_ascii_alphanumeric()),
            "line {}: bad key {k}",
            n + 1
        );
        entries.push((k.trim().to_string(), v.trim().to_string()));
    }
    unit
}

fn values<'a>(unit: &'a Unit, section: &str, key: &str) -> Vec<&'a str> {
    unit.iter()
        .filter(|(s, _)| s == section)
        .flat_map(|(_, e)| e.iter())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn one<'a>(unit: &'a Unit, key: &str) -> &'a str {
    let v = values(unit, "Service", key);
    assert_eq!(v.len(), 1, "{key}: {v:?}");
    v[0]
}

fn check_unit(unit: &Unit) {
    let sections: Vec<&str> = unit.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(sections, ["Unit", "Service", "Install"]);
    let user = one(unit, "User");
    assert!(!user.is_empty() && user != "root" && user != "0");
    assert!(one(unit, "ExecStart").ends_with(" serve"));
    for (key, want) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("RestrictSUIDSGID", "yes"),
        ("RestrictRealtime", "yes"),
        ("LockPersonality", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectProc", "invisible"),
        ("KeyringMode", "private"),
        ("RemoveIPC", "yes"),
        ("SystemCallArchitectures", "native"),
        ("UMask", "0077"),
        ("StateDirectoryMode", "0700"),
        ("MemorySwapMax", "0"),
        ("LimitCORE", "0"),
    ] {
        assert_eq!(one(unit, key), want, "{key}");
    }
    let families: BTreeSet<&str> = one(unit, "RestrictAddressFamilies")
        .split_whitespace()
        .collect();
    assert!(!families.iter().any(|f| f.starts_with('~')), "an allowlist");
    assert!(
        families.is_subset(&["AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"].into()),
        "{families:?}"
    );
    let filter = values(unit, "Service", "SystemCallFilter");
    assert!(
        !filter[0].starts_with('~'),
        "the first filter is an allowlist"
    );
    let allowed: Vec<&str> = filter[0].split_whitespace().collect();
    assert!(allowed.contains(&"@system-service"));
    // What the sandbox's setup calls must stay allowed, and no later `~` line may take
    // it away.
    for needed in ["@mount", "sethostname", "landlock_restrict_self", "seccomp"] {
        assert!(allowed.contains(&needed), "{needed}");
    }
    for later in &filter[1..] {
        assert!(!later.contains("@privileged") && !later.contains("@mount"));
    }
    // User namespaces (and the others the sandbox creates) stay allowed.
    let ns = one(unit, "RestrictNamespaces");
    let listed: BTreeSet<&str> = ns.trim_start_matches('~').split_whitespace().collect();
    for kind in ["user", "mnt", "pid", "net", "ipc", "uts", "cgroup"] {
        if ns.starts_with('~') {
            assert!(!listed.contains(kind), "{kind} forbidden: {ns}");
        } else {
            assert!(listed.contains(kind), "{kind} not allowed: {ns}");
        }
    }
    // Directives that would break the sandbox's /proc or hostname are absent.
    for absent in [
        "ProtectKernelTunables",
        "ProtectKernelLogs",
        "ProtectHostname",
        "ProcSubset",
        "MemoryDenyWriteExecute",
        "PrivateUsers",
    ] {
        assert!(
            values(unit, "Service", absent).is_empty(),
            "{absent} is set"
        );
    }
    let denied: BTreeSet<&str> = one(unit, "IPAddressDeny").split_whitespace().collect();
    for metadata in ["169.254.169.254", "fd00:ec2::254"] {
        assert!(
            denied.contains(metadata),
            "{metadata} not denied: {denied:?}"
        );
    }
    let env = values(unit, "Service", "Environment");
    assert!(env.contains(&"CORDON_CONFIG=/etc/cordon/cordon.toml"));
    assert!(env.contains(&"CORDON_STATE_DIR=/var/lib/cordon/state"));
    let dirs: Vec<&str> = one(unit, "StateDirectory").split_whitespace().collect();
    assert!(dirs.contains(&"cordon/state") && dirs.contains(&"cordon/workspaces/default"));
    for key in ["MemoryMax", "TasksMax", "CPUQuota"] {
        assert!(!one(unit, key).is_empty(), "{key}");
    }
    assert_eq!(values(unit, "Install", "WantedBy"), ["multi-user.target"]);
}

/// `systemd-analyze verify` on a copy whose ExecStart program is this build's binary
/// (the unit names the install path, which does not exist here). Any complaint about
/// the unit (unknown key, bad value: systemd only warns and ignores those) fails.
fn systemd_analyze(unit_path: &Path, dir: &Path) {
    let Some(analyze) = tool("systemd-analyze") else {
        eprintln!("skipped `systemd-analyze verify`: not installed; structural checks ran");
        return;
    };
    let text = read(unit_path);
    let unit = parse_unit(&text);
    let exec = one(&unit, "ExecStart");
    let copy_dir = dir.join("verify");
    std::fs::create_dir_all(&copy_dir).unwrap();
    let copy = copy_dir.join("cordon.service");
    let program = exec.split_whitespace().next().unwrap();
    std::fs::write(
        &copy,
        text.replace(
            &format!("ExecStart={program} "),
            &format!("ExecStart={} ", env!("CARGO_BIN_EXE_cordon")),
        ),
    )
    .unwrap();
    let out = std::process::Command::new(analyze)
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let err = text_of(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{err}"
    );
    let complaints: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("cordon.service") || l.contains("ignoring"))
        .collect();
    assert!(complaints.is_empty(), "systemd-analyze: {complaints:#?}");
}

fn text_of(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn systemd_unit_is_sandboxed_and_verifies() {
    let inst = install("team");
    let out = deploy_out(&inst, "systemd").await;
    let unit_path = out.join("cordon.service");
    let unit = parse_unit(&read(&unit_path));
    check_unit(&unit);
    // Loopback bind: no TLS needed, none invented.
    assert!(values(&unit, "Service", "LoadCredential").is_empty());
    assert_eq!(one(&unit, "EnvironmentFile"), "/etc/cordon/cordon.env");
    systemd_analyze(&unit_path, inst.dir.path());
    config_checks(&inst, &out.join("cordon.toml")).await;
    let cfg = toml_file(&out.join("cordon.toml"));
    assert_eq!(cfg["gateway"]["bind"].as_str(), Some("127.0.0.1:7777"));
    assert!(cfg["gateway"].get("tls_cert").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn files_the_config_names_travel_with_every_deployment() {
    let inst = install("enterprise");
    let dir = inst.config.parent().unwrap().to_path_buf();
    std::fs::create_dir_all(dir.join("policy")).unwrap();
    let cedar = "@reason(\"no pushes\")\nforbid (principal, action, resource) when { false };\n---\nkind: Pod\n";
    std::fs::write(dir.join("policy/extra rules.cedar"), cedar).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["mirror.internal".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
    std::fs::create_dir_all(dir.join("tls")).unwrap();
    std::fs::write(dir.join("tls/cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("tls/key.pem"), key.serialize_pem()).unwrap();
    let text =
        read(&inst.config).replace("[egress]\n", "[egress]\nupstream_ca_files = [\"ca.pem\"]\n");
    std::fs::write(
        &inst.config,
        format!(
            "{text}\n[policy]\nfiles = [\"policy/extra rules.cedar\"]\n\n[gateway]\n\
             bind = \"0.0.0.0:7443\"\ntls_cert = \"tls/cert.pem\"\ntls_key = \"tls/key.pem\"\n"
        ),
    )
    .unwrap();
    let policy_src = dir.join("policy/extra rules.cedar");

    // systemd: every file is a credential, read by systemd as root and handed over.
    let out = deploy_out(&inst, "systemd").await;
    let unit = parse_unit(&read(&out.join("cordon.service")));
    check_unit(&unit);
    let creds: Vec<(String, String)> = values(&unit, "Service", "LoadCredential")
        .into_iter()
        .map(|v| {
            let (id, path) = v.split_once(':').unwrap();
            (id.to_string(), path.to_string())
        })
        .collect();
    let find = |id: &str| {
        creds
            .iter()
            .find(|(i, _)| i == id)
            .unwrap_or_else(|| panic!("no credential {id}: {creds:?}"))
            .1
            .clone()
    };
    assert_eq!(
        find("tls-cert"),
        dir.join("tls/cert.pem").display().to_string()
    );
    assert_eq!(
        find("tls-key"),
        dir.join("tls/key.pem").display().to_string()
    );
    assert_eq!(
        find("policy-0-extra_rules.cedar"),
        policy_src.display().to_string()
    );
    assert_eq!(
        find("ca-0-ca.pem"),
        dir.join("ca.pem").display().to_string()
    );
    let cfg = toml_file(&out.join("cordon.toml"));
    let run = "/run/credentials/cordon.service";
    assert_eq!(cfg["gateway"]["bind"].as_str(), Some("0.0.0.0:7443"));
    assert_eq!(
        cfg["gateway"]["tls_key"].as_str().unwrap(),
        format!("{run}/tls-key")
    );
    assert_eq!(
        cfg["policy"]["files"][0].as_str().unwrap(),
        format!("{run}/policy-0-extra_rules.cedar")
    );
    assert_eq!(
        cfg["egress"]["upstream_ca_files"][0].as_str().unwrap(),
        format!("{run}/ca-0-ca.pem")
    );
    systemd_analyze(&out.join("cordon.service"), inst.dir.path());

    // compose: configs from the host files, TLS from the configured pair.
    let out = deploy_out(&inst, "compose").await;
    let doc = yaml(&out.join("compose.yaml"));
    let svc = &doc["services"]["cordon"];
    let targets: Vec<(String, String)> = svc["configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| (s(c, "source").to_string(), s(c, "target").to_string()))
        .collect();
    let (src, _) = targets
        .iter()
        .find(|(_, t)| t == "/etc/cordon/policy/0-extra_rules.cedar")
        .expect("policy file mounted");
    assert_eq!(
        s(&doc["configs"][src.as_str()], "file"),
        policy_src.display().to_string()
    );
    assert_eq!(
        s(&doc["secrets"]["cordon_tls_key"], "file"),
        dir.join("tls/key.pem").display().to_string()
    );
    assert_eq!(
        svc["ports"][0]["published"].as_str(),
        Some("7443"),
        "the configured port"
    );
    let cfg = toml_file(&out.join("cordon.toml"));
    assert_eq!(
        cfg["policy"]["files"][0].as_str(),
        Some("/etc/cordon/policy/0-extra_rules.cedar")
    );

    // kubernetes: contents in the ConfigMap, byte for byte, mapped to the same paths.
    let out = deploy_out(&inst, "kubernetes").await;
    let docs = yaml_docs(&read(&out.join("cordon-k8s.yaml")));
    let kinds: Vec<&str> = docs.iter().map(|d| s(d, "kind")).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ServiceAccount",
            "ConfigMap",
            "PersistentVolumeClaim",
            "Deployment",
            "Service",
            "NetworkPolicy"
        ],
        "the policy file's `---` stayed inside its string"
    );
    let cm = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    assert_eq!(s(&cm["data"], "policy-0-extra_rules.cedar"), cedar);
    assert_eq!(s(&cm["data"], "ca-0-ca.pem"), cert.pem());
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let items = deployment["spec"]["template"]["spec"]["volumes"][0]["configMap"]["items"]
        .as_sequence()
        .unwrap();
    assert!(
        items
            .iter()
            .any(|i| s(i, "key") == "policy-0-extra_rules.cedar"
                && s(i, "path") == "policy/0-extra_rules.cedar")
    );
    let cfg: toml::Table = s(&cm["data"], "cordon.toml").parse().unwrap();
    assert_eq!(
        cfg["policy"]["files"][0].as_str(),
        Some("/etc/cordon/policy/0-extra_rules.cedar")
    );

    // A named file that is missing fails before anything is generated.
    std::fs::remove_file(&policy_src).unwrap();
    let err = failed(&inst.cordon(&["deploy", "compose"]).await);
    assert!(
        err.contains("policy.files[0]") && err.contains("no such file"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_network_bind_without_tls_gets_credential_placeholders() {
    let inst = install("team");
    append(&inst, "[gateway]\nbind = \"0.0.0.0:7777\"");
    let out = deploy_out(&inst, "systemd").await;
    let unit = parse_unit(&read(&out.join("cordon.service")));
    let creds = values(&unit, "Service", "LoadCredential");
    assert!(
        creds.contains(&"tls-cert:/etc/cordon/tls/cert.pem"),
        "{creds:?}"
    );
    assert!(
        creds.contains(&"tls-key:/etc/cordon/tls/key.pem"),
        "{creds:?}"
    );
    config_checks(&inst, &out.join("cordon.toml")).await;
    let cfg = toml_file(&out.join("cordon.toml"));
    assert_eq!(
        cfg["gateway"]["tls_cert"].as_str(),
        Some("/run/credentials/cordon.service/tls-cert")
    );
}

// ---------------------------------------------------------------------------------------
// kubernetes

fn container_is_hardened(c: &Value) {
    let name = s(c, "name");
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], Value::Bool(true), "{name}");
    assert_eq!(sc["readOnlyRootFilesystem"], Value::Bool(true), "{name}");
    assert_eq!(sc["allowPrivilegeEscalation"], Value::Bool(false), "{name}");
    assert_eq!(sc["privileged"], Value::Bool(false), "{name}");
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"], "{name}");
    assert!(sc["capabilities"].get("add").is_none(), "{name}");
    assert_eq!(s(&sc["seccompProfile"], "type"), "RuntimeDefault", "{name}");
    assert_ne!(sc["runAsUser"].as_u64(), Some(0), "{name}");
    assert!(c["resources"]["limits"]["cpu"].is_string(), "{name}");
    assert!(c["resources"]["limits"]["memory"].is_string(), "{name}");
}

fn cidr_contains(cidr: &str, ip: IpAddr) -> bool {
    let (net, prefix) = cidr.split_once('/').unwrap();
    let net: IpAddr = net.parse().unwrap();
    let prefix: u32 = prefix.parse().unwrap();
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kubernetes_manifests_have_every_hardening_item_and_a_closed_network_policy() {
    let inst = install("personal");
    let out = deploy_out(&inst, "kubernetes").await;
    let raw = read(&out.join("cordon-k8s.yaml"));
    let docs = yaml_docs(&raw);
    let by_kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"] == k)
            .unwrap_or_else(|| panic!("no {k}"))
    };
    for d in &docs {
        assert!(d["apiVersion"].is_string() && d["metadata"]["name"].is_string());
        if d["kind"] != "Namespace" {
            assert_eq!(s(&d["metadata"], "namespace"), "cordon");
        }
    }
    assert_eq!(
        s(
            &by_kind("Namespace")["metadata"]["labels"],
            "pod-security.kubernetes.io/enforce"
        ),
        "restricted"
    );
    assert_eq!(
        by_kind("ServiceAccount")["automountServiceAccountToken"],
        Value::Bool(false)
    );

    let dep = by_kind("Deployment");
    assert_eq!(dep["spec"]["replicas"].as_u64(), Some(1));
    let pod = &dep["spec"]["template"]["spec"];
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"], Value::Bool(true));
    assert_eq!(s(&psc["seccompProfile"], "type"), "RuntimeDefault");
    assert_eq!(pod["automountServiceAccountToken"], Value::Bool(false));
    assert_eq!(pod["enableServiceLinks"], Value::Bool(false));
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert!(pod.get(host).is_none(), "{host}");
    }
    let containers = pod["containers"].as_sequence().unwrap();
    let inits = pod["initContainers"].as_sequence().unwrap();
    for c in containers.iter().chain(inits) {
        container_is_hardened(c);
    }
    let main = &containers[0];
    assert_eq!(strings(&main["args"]), ["serve"]);
    let port = &main["ports"][0];
    assert_eq!(port["containerPort"].as_u64(), Some(7777));
    let probe = &main["readinessProbe"]["httpGet"];
    assert_eq!(s(probe, "path"), "/readyz");
    assert_eq!(s(probe, "scheme"), "HTTPS");
    assert_eq!(s(probe, "port"), s(port, "name"));
    let volume_kinds: BTreeSet<String> = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|v| {
            v.as_mapping()
                .unwrap()
                .keys()
                .map(|k| k.as_str().unwrap().to_string())
                .filter(|k| k != "name")
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        volume_kinds.is_subset(
            &["configMap", "secret", "persistentVolumeClaim", "emptyDir"]
                .map(String::from)
                .into()
        ),
        "{volume_kinds:?}"
    );
    let volume = |name: &str| {
        pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
    };
    // The TLS key: readable by the pod's group (fsGroup) at most, never by others.
    let tls_mode = volume("tls")["secret"]["defaultMode"].as_u64().unwrap();
    assert_eq!(tls_mode & 0o027, 0, "TLS secret mode {tls_mode:o}");
    assert_eq!(psc["fsGroup"].as_u64(), Some(1000));
    // /tmp is memory, bounded: nothing in it outlives the pod or fills the node's disk.
    let tmp = &volume("tmp")["emptyDir"];
    assert_eq!(s(tmp, "medium"), "Memory");
    assert!(tmp["sizeLimit"].is_string());
    // The API key comes from a Secret by reference, never as a value.
    let env = main["env"].as_sequence().unwrap();
    let key = env.iter().find(|e| e["name"] == "OPENAI_API_KEY").unwrap();
    assert!(key.get("value").is_none());
    assert_eq!(s(&key["valueFrom"]["secretKeyRef"], "name"), "cordon-model");

    // The config it runs is valid, binds the pod's interfaces with TLS from the Secret.
    let cm = by_kind("ConfigMap");
    let cfg_path = inst.dir.path().join("k8s-cordon.toml");
    std::fs::write(&cfg_path, s(&cm["data"], "cordon.toml")).unwrap();
    config_checks(&inst, &cfg_path).await;
    let cfg = toml_file(&cfg_path);
    assert_eq!(cfg["gateway"]["bind"].as_str(), Some("0.0.0.0:7777"));
    let tls_mount = main["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "tls")
        .unwrap();
    assert_eq!(
        cfg["gateway"]["tls_cert"].as_str().unwrap(),
        format!("{}/tls.crt", s(tls_mount, "mountPath"))
    );
    assert_eq!(
        s(&by_kind("Service")["spec"]["ports"][0], "targetPort"),
        s(port, "name")
    );

    // NetworkPolicy: both directions closed but for what is listed.
    let np = &by_kind("NetworkPolicy")["spec"];
    assert_eq!(strings(&np["policyTypes"]), ["Ingress", "Egress"]);
    let mut allowed: Vec<(String, BTreeSet<u64>)> = Vec::new();
    let mut dns = false;
    for rule in np["egress"].as_sequence().unwrap() {
        let to = rule["to"]
            .as_sequence()
            .expect("every egress rule has `to`");
        assert!(!to.is_empty(), "an empty `to` allows everything");
        let ports: BTreeSet<u64> = rule["ports"]
            .as_sequence()
            .expect("every egress rule has ports")
            .iter()
            .map(|p| p["port"].as_u64().unwrap())
            .collect();
        for peer in to {
            if let Some(block) = peer.get("ipBlock") {
                let cidr = s(block, "cidr");
                assert!(!cidr.ends_with("/0"), "{cidr}");
                assert!(
                    !cidr_contains(cidr, "169.254.169.254".parse().unwrap()),
                    "{cidr} reaches the metadata service"
                );
                assert!(block.get("except").is_none());
                allowed.push((cidr.to_string(), ports.clone()));
            } else {
                assert_eq!(
                    s(&peer["podSelector"]["matchLabels"], "k8s-app"),
                    "kube-dns"
                );
                assert_eq!(ports, [53].into());
                dns = true;
            }
        }
    }
    assert!(dns, "DNS is allowed");
    let want: Vec<(String, BTreeSet<u64>)> = vec![
        // model endpoint
        ("203.0.113.7/32".into(), [8443].into()),
        // api.example.com from egress.resolve, default ports
        ("93.184.216.34/32".into(), [80, 443].into()),
        // mirror.internal: private, but inside allow_ranges
        ("10.0.0.5/32".into(), [8443].into()),
    ];
    assert_eq!(allowed, want, "exactly the expressible destinations");
    // What could not be expressed is said, not widened.
    let said = raw
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('#'))
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ");
    for (host, why) in [
        ("*.pypi.org", "wildcard"),
        ("nothing.invalid", "does not resolve"),
        ("10.1.2.3", "private"),
        ("localhost", "loopback"),
    ] {
        assert!(
            said.contains(&format!("{host} ")) && said.contains(why),
            "{host}: no comment saying {why}"
        );
    }
    let ingress = np["ingress"].as_sequence().unwrap();
    assert_eq!(ingress.len(), 1);
    assert_eq!(ingress[0]["ports"][0]["port"].as_u64(), Some(7777));
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_config_values_stay_inside_their_strings() {
    let inst = install("personal");
    let text = read(&inst.config).replace(
        "[agents.default]\n",
        "[agents.default]\ninstructions = \"\"\"\n---\napiVersion: v1\nkind: Pod\n  x: |\n\\\"#$HOME ${X} \\u0085\\u007f\"\"\"\n",
    );
    std::fs::write(&inst.config, text).unwrap();
    let out = deploy_out(&inst, "kubernetes").await;
    let docs = yaml_docs(&read(&out.join("cordon-k8s.yaml")));
    assert_eq!(docs.len(), 7);
    assert!(!docs.iter().any(|d| d["kind"] == "Pod"));
    let cm = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let cfg: toml::Table = s(&cm["data"], "cordon.toml").parse().unwrap();
    let original: toml::Table = read(&inst.config).parse().unwrap();
    assert_eq!(
        cfg["agents"]["default"]["instructions"],
        original["agents"]["default"]["instructions"]
    );
    let out = deploy_out(&inst, "compose").await;
    let doc = yaml(&out.join("compose.yaml"));
    assert_eq!(doc["services"].as_mapping().unwrap().len(), 1);
    let cfg = toml_file(&out.join("cordon.toml"));
    assert_eq!(
        cfg["agents"]["default"]["instructions"],
        original["agents"]["default"]["instructions"]
    );
}

// ---------------------------------------------------------------------------------------
// firewall

/// Tokens of an nftables file: words, `{`, `}`, `;`, `,`; comments and newlines as `;`.
fn nft_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap();
        let mut word = String::new();
        for c in line.chars() {
            if c.is_whitespace() || "{};,".contains(c) {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                if !c.is_whitespace() {
                    out.push(c.to_string());
                }
            } else {
                word.push(c);
            }
        }
        if !word.is_empty() {
            out.push(word);
        }
        out.push(";".into());
    }
    out
}

/// A block: `head { statements and blocks }`.
#[derive(Debug)]
struct Block {
    head: Vec<String>,
    statements: Vec<Vec<String>>,
    blocks: Vec<Block>,
}

fn nft_parse(tokens: &[String], i: &mut usize, head: Vec<String>) -> Block {
    let mut b = Block {
        head,
        statements: Vec::new(),
        blocks: Vec::new(),
    };
    let mut cur: Vec<String> = Vec::new();
    while *i < tokens.len() {
        let t = tokens[*i].clone();
        *i += 1;
        match t.as_str() {
            "{" => {
                let inner = nft_parse(tokens, i, std::mem::take(&mut cur));
                // `elements = { ... }` is a value, not a block.
                if inner.head.last().map(String::as_str) == Some("=") {
                    let mut st = inner.head.clone();
                    st.extend(inner.statements.into_iter().flatten());
                    b.statements.push(st);
                } else {
                    b.blocks.push(inner);
                }
            }
            "}" => {
                if !cur.is_empty() {
                    b.statements.push(cur);
                }
                return b;
            }
            ";" => {
                if !cur.is_empty() {
                    b.statements.push(std::mem::take(&mut cur));
                }
            }
            "," => {}
            _ => cur.push(t),
        }
    }
    assert!(b.head.is_empty(), "unclosed block {:?}", b.head);
    if !cur.is_empty() {
        b.statements.push(cur);
    }
    b
}

fn check_nft(path: &Path) {
    let text = read(path);
    let tokens = nft_tokens(&text);
    let mut i = 0;
    let top = nft_parse(&tokens, &mut i, Vec::new());
    assert_eq!(top.blocks.len(), 1, "one table");
    let table = &top.blocks[0];
    assert_eq!(table.head, ["table", "inet", "cordon_metadata"]);
    // Reloading replaces only this table.
    assert_eq!(
        top.statements,
        [
            vec!["table", "inet", "cordon_metadata"],
            vec!["delete", "table", "inet", "cordon_metadata"]
        ]
    );
    let set = |name: &str| {
        table
            .blocks
            .iter()
            .find(|b| b.head == ["set", name])
            .unwrap_or_else(|| panic!("set {name}"))
    };
    let elements = |name: &str| -> Vec<String> {
        set(name)
            .statements
            .iter()
            .find(|st| st[0] == "elements")
            .unwrap()[2..]
            .to_vec()
    };
    assert_eq!(elements("metadata_v4"), ["169.254.169.254"]);
    assert_eq!(elements("metadata_v6"), ["fd00:ec2::254"]);
    for hook in ["output", "forward"] {
        let chain = table
            .blocks
            .iter()
            .find(|b| b.head == ["chain", hook])
            .unwrap_or_else(|| panic!("chain {hook}"));
        let st = &chain.statements;
        assert_eq!(
            st[0],
            ["type", "filter", "hook", hook, "priority", "filter"],
            "{hook}: a base chain on its hook"
        );
        assert_eq!(st[1], ["policy", "accept"]);
        for (family, set) in [("ip", "@metadata_v4"), ("ip6", "@metadata_v6")] {
            assert!(
                st.iter()
                    .any(|r| r.first().map(String::as_str) == Some(family)
                        && r[1] == "daddr"
                        && r[2] == set
                        && r.last().map(String::as_str) == Some("drop")),
                "{hook}: no drop for {set}"
            );
        }
        if hook == "forward" {
            assert!(
                !st.iter()
                    .any(|r| r.contains(&"accept".to_string()) && r[0] != "policy"),
                "no exemption for routed traffic"
            );
        }
    }
}

/// Rules of iptables-restore input: per table, chain declarations and argv of rules.
fn parse_restore(text: &str) -> Vec<(String, Vec<String>, Vec<Vec<String>>)> {
    let mut tables = Vec::new();
    let mut cur: Option<(String, Vec<String>, Vec<Vec<String>>)> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(t) = line.strip_prefix('*') {
            assert!(cur.is_none(), "table inside a table");
            cur = Some((t.to_string(), Vec::new(), Vec::new()));
        } else if line == "COMMIT" {
            tables.push(cur.take().expect("COMMIT without a table"));
        } else if let Some(decl) = line.strip_prefix(':') {
            let (_, chains, _) = cur.as_mut().expect("chain outside a table");
            chains.push(decl.split_whitespace().next().unwrap().to_string());
        } else {
            let (_, _, rules) = cur.as_mut().expect("rule outside a table");
            let argv: Vec<String> = line.split_whitespace().map(String::from).collect();
            assert!(
                ["-A", "-I"].contains(&argv[0].as_str()),
                "only appends and inserts: {line}"
            );
            rules.push(argv);
        }
    }
    assert!(cur.is_none(), "missing COMMIT");
    tables
}

fn has_rule(rules: &[Vec<String>], want: &[&str]) -> bool {
    rules.iter().any(|r| r == want)
}

fn restore_test(program: &str, file: &Path) {
    let Some(bin) = tool(program) else {
        eprintln!("skipped `{program} --test`: not installed; structural checks ran");
        return;
    };
    let out = std::process::Command::new(bin)
        .args(["--test", "--noflush"])
        .stdin(std::fs::File::open(file).unwrap())
        .output()
        .unwrap();
    let err = text_of(&out.stderr);
    if !out.status.success()
        && (err.contains("Permission denied") || err.contains("can't initialize"))
    {
        eprintln!("skipped `{program} --test`: needs CAP_NET_ADMIN here ({err})");
        return;
    }
    assert!(
        out.status.success(),
        "{program} --test {}: {err}",
        file.display()
    );
}

fn nft_check(file: &Path) {
    let Some(nft) = tool("nft") else {
        eprintln!("skipped `nft -c -f`: not installed; structural checks ran");
        return;
    };
    let out = std::process::Command::new(nft)
        .arg("-c")
        .arg("-f")
        .arg(file)
        .output()
        .unwrap();
    let err = text_of(&out.stderr);
    if !out.status.success() && err.contains("Operation not permitted") {
        eprintln!("skipped `nft -c`: needs CAP_NET_ADMIN here");
        return;
    }
    assert!(out.status.success(), "nft -c: {err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn firewall_rules_drop_the_metadata_service() {
    let inst = install("personal");
    let out = deploy_out(&inst, "firewall").await;
    check_nft(&out.join("cordon-metadata.nft"));
    nft_check(&out.join("cordon-metadata.nft"));

    for (file, program, addr) in [
        (
            "cordon-metadata.iptables",
            "iptables-restore",
            "169.254.169.254/32",
        ),
        (
            "cordon-metadata.ip6tables",
            "ip6tables-restore",
            "fd00:ec2::254/128",
        ),
    ] {
        let path = out.join(file);
        let tables = parse_restore(&read(&path));
        assert_eq!(tables.len(), 1);
        let (name, chains, rules) = &tables[0];
        assert_eq!(name, "filter");
        assert_eq!(chains, &["CORDON-METADATA"], "declares only its own chain");
        assert!(has_rule(
            rules,
            &["-A", "CORDON-METADATA", "-d", addr, "-j", "DROP"]
        ));
        assert!(has_rule(
            rules,
            &["-I", "FORWARD", "1", "-j", "CORDON-METADATA"]
        ));
        assert!(has_rule(
            rules,
            &[
                "-I",
                "OUTPUT",
                "1",
                "-m",
                "owner",
                "!",
                "--uid-owner",
                "0",
                "-j",
                "CORDON-METADATA"
            ]
        ));
        restore_test(program, &path);
    }

    // Docker's own FORWARD rules, for both address families.
    for (file, program, addr) in [
        (
            "cordon-docker-user.iptables",
            "iptables-restore",
            "169.254.169.254/32",
        ),
        (
            "cordon-docker-user.ip6tables",
            "ip6tables-restore",
            "fd00:ec2::254/128",
        ),
    ] {
        let path = out.join(file);
        let tables = parse_restore(&read(&path));
        let (name, chains, rules) = &tables[0];
        assert_eq!(name, "filter");
        // Declaring DOCKER-USER would empty it, and it may hold the admin's own rules.
        assert!(chains.is_empty(), "{file}: {chains:?}");
        assert_eq!(
            rules,
            &[["-I", "DOCKER-USER", "1", "-d", addr, "-j", "DROP"].map(String::from)],
            "{file}"
        );
        // --test needs the chain to exist; a copy declares it (nothing is applied).
        let copy = inst.dir.path().join(format!("test-{file}"));
        std::fs::write(
            &copy,
            read(&path).replace("*filter\n", "*filter\n:DOCKER-USER - [0:0]\n"),
        )
        .unwrap();
        restore_test(program, &copy);
    }
}

// ---------------------------------------------------------------------------------------
// output

#[tokio::test(flavor = "multi_thread")]
async fn out_writes_0644_files_refuses_changes_without_force() {
    let inst = install("personal");
    let out = inst.dir.path().join("deep/er/dir");
    let args = ["deploy", "compose", "--out", out.to_str().unwrap()];
    let first = inst.command().args(args).output().await.unwrap();
    assert_ok(&first);
    assert_eq!(mode(&out), 0o755);
    let printed: Vec<String> = text(&first.stdout).lines().map(String::from).collect();
    assert_eq!(printed.len(), 4, "{printed:?}");
    for line in &printed {
        let path = Path::new(line.strip_prefix("wrote ").unwrap());
        assert!(path.starts_with(&out));
        assert_eq!(mode(path), 0o644, "{}", path.display());
    }

    // Same again: nothing to do.
    let again = inst.cordon(&args).await;
    assert_ok(&again);
    assert!(
        text(&again.stdout)
            .lines()
            .all(|l| l.starts_with("unchanged "))
    );

    // A file edited by hand is not overwritten, and nothing else is touched either.
    let compose = out.join("compose.yaml");
    let edited = read(&compose).replace("read_only: true", "read_only: false");
    std::fs::write(&compose, &edited).unwrap();
    std::fs::remove_file(out.join("Dockerfile")).unwrap();
    let err = failed(&inst.cordon(&args).await);
    assert!(
        err.contains("compose.yaml") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(read(&compose), edited);
    assert!(
        !out.join("Dockerfile").exists(),
        "nothing written after a refusal"
    );

    let forced = inst
        .cordon(&[
            "deploy",
            "compose",
            "--out",
            out.to_str().unwrap(),
            "--force",
        ])
        .await;
    assert_ok(&forced);
    let said = text(&forced.stdout);
    assert!(
        said.contains(&format!("replaced {}", compose.display())),
        "{said}"
    );
    assert!(said.contains(&format!("wrote {}", out.join("Dockerfile").display())));
    assert!(read(&compose).contains("read_only: true"));
    assert_eq!(mode(&compose), 0o644);
}

#[tokio::test(flavor = "multi_thread")]
async fn stdout_without_out_matches_the_files() {
    let inst = install("personal");
    let out = deploy_out(&inst, "kubernetes").await;
    let printed = inst.cordon(&["deploy", "kubernetes"]).await;
    assert_ok(&printed);
    assert_eq!(text(&printed.stdout), read(&out.join("cordon-k8s.yaml")));

    // Several files: each under a header naming it.
    let out = deploy_out(&inst, "systemd").await;
    let printed = inst.cordon(&["deploy", "systemd"]).await;
    assert_ok(&printed);
    let stdout = text(&printed.stdout);
    assert_eq!(
        stdout,
        format!(
            "# ==> cordon.service <==\n{}\n# ==> cordon.toml <==\n{}",
            read(&out.join("cordon.service")),
            read(&out.join("cordon.toml"))
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_clear_errors() {
    let inst = install("personal");
    // Unknown target: clap names the valid ones.
    let out = inst.cordon(&["deploy", "helm"]).await;
    let err = failed(&out);
    assert_eq!(out.status.code(), Some(2));
    for t in ["compose", "systemd", "kubernetes", "firewall"] {
        assert!(err.contains(t), "{err}");
    }
    // --out naming a file.
    let file = inst.dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let err = failed(
        &inst
            .cordon(&["deploy", "firewall", "--out", file.to_str().unwrap()])
            .await,
    );
    assert!(
        err.contains("a-file") && err.contains("not a directory"),
        "{err}"
    );
    assert_eq!(read(&file), "x");
    // A directory where a file would go.
    let dir = inst.dir.path().join("fw");
    std::fs::create_dir_all(dir.join("cordon-metadata.nft")).unwrap();
    let err = failed(
        &inst
            .cordon(&["deploy", "firewall", "--out", dir.to_str().unwrap()])
            .await,
    );
    assert!(
        err.contains("cordon-metadata.nft") && err.contains("is a directory"),
        "{err}"
    );
    // --force alone.
    let out = inst.cordon(&["deploy", "firewall", "--force"]).await;
    assert!(failed(&out).contains("--out"));
    // Targets that need the config say so when there is none; the firewall does not.
    std::fs::remove_file(&inst.config).unwrap();
    let err = failed(&inst.cordon(&["deploy", "compose"]).await);
    assert!(err.contains("no config"), "{err}");
    assert_ok(&inst.cordon(&["deploy", "firewall"]).await);
}
