//! Checks of the running host: what really listens, who we run as, file modes, `.env`
//! files an agent could read, and the cloud metadata address.
//!
//! Guarantees: listening addresses come from the kernel (`/proc/net/tcp`, `tcp6`), not
//! from the config; a mode finding names the file, its mode and the mode it should have,
//! and [`fix_modes`] changes only modes (never owners or contents) and reports each
//! change; credential-looking values in `.env` files are reported by kind and line,
//! never quoted.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Finding, MetadataTarget, Severity};

/// TCP sockets in LISTEN state, from `/proc/net/tcp` and `/proc/net/tcp6` (or the files
/// in `dir`, for tests).
pub fn listening(dir: &Path) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for (file, v6) in [("tcp", false), ("tcp6", true)] {
        let Ok(text) = std::fs::read_to_string(dir.join(file)) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st …; 0A is LISTEN.
            if cols.len() < 4 || cols[3] != "0A" {
                continue;
            }
            if let Some(addr) = parse_proc_addr(cols[1], v6) {
                out.push(addr);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `0100007F:1E61` (little-endian words) -> 127.0.0.1:7777.
fn parse_proc_addr(s: &str, v6: bool) -> Option<SocketAddr> {
    let (ip_hex, port_hex) = s.split_once(':')?;
    let port = u16::from_str_radix(port_hex, 16).ok()?;
    let ip = if v6 {
        if ip_hex.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; 16];
        for word in 0..4 {
            let w = u32::from_str_radix(&ip_hex[word * 8..word * 8 + 8], 16).ok()?;
            bytes[word * 4..word * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        IpAddr::V6(Ipv6Addr::from(bytes))
    } else {
        let w = u32::from_str_radix(ip_hex, 16).ok()?;
        IpAddr::V4(Ipv4Addr::from(w.to_le_bytes()))
    };
    Some(SocketAddr::new(ip, port))
}

/// Where `port` listens, and a finding when that is beyond loopback.
pub fn gateway_exposure(port: u16, tls: bool, proc_net: &Path) -> (Vec<SocketAddr>, Vec<Finding>) {
    let addrs: Vec<SocketAddr> = listening(proc_net)
        .into_iter()
        .filter(|a| a.port() == port)
        .collect();
    let mut out = Vec::new();
    let public: Vec<String> = addrs
        .iter()
        .filter(|a| !a.ip().to_canonical().is_loopback())
        .map(SocketAddr::to_string)
        .collect();
    if !public.is_empty() {
        out.push(Finding::new(
            if tls {
                "host.gateway_listens_public"
            } else {
                "host.gateway_listens_public_without_tls"
            },
            if tls {
                Severity::Info
            } else {
                Severity::Critical
            },
            format!("port {port} is reachable from the network"),
            format!("listening on {} (from /proc/net/tcp*)", public.join(", ")),
            "if that is not intended, bind 127.0.0.1 and reach it over SSH or a reverse \
             proxy; keep TLS and scoped, short-lived tokens if it is",
        ));
    }
    (addrs, out)
}

/// A finding when this process runs as root.
pub fn running_as_root(euid: u32) -> Option<Finding> {
    (euid == 0).then(|| {
        Finding::new(
            "host.running_as_root",
            Severity::Warn,
            "Cordon runs as root",
            "effective uid 0",
            "run it as an unprivileged user (the sandbox does not need root; see \
             `cordon deploy systemd`)",
        )
    })
}

/// A file or directory and the most open mode it may have.
#[derive(Debug, Clone)]
pub struct Guarded {
    pub path: PathBuf,
    /// Permission bits that must be clear (e.g. `0o077`: nothing for group or others).
    pub forbidden: u32,
    pub id: &'static str,
    pub severity: Severity,
    pub what: &'static str,
}

/// The files whose modes matter, for a state directory and config file.
pub fn guarded_files(config_file: &Path, state_dir: &Path) -> Vec<Guarded> {
    let g = |path: PathBuf, forbidden, id, severity, what| Guarded {
        path,
        forbidden,
        id,
        severity,
        what,
    };
    vec![
        g(
            config_file.to_path_buf(),
            0o022,
            "files.config_writable",
            Severity::Critical,
            "the config file (whoever writes it decides what agents may do)",
        ),
        g(
            state_dir.to_path_buf(),
            0o077,
            "files.state_dir_open",
            Severity::Critical,
            "the state directory (sessions, approvals, tokens, vault)",
        ),
        g(
            state_dir.join("vault"),
            0o077,
            "files.vault_readable",
            Severity::Critical,
            "the vault directory",
        ),
        g(
            state_dir.join("vault").join("secrets.enc"),
            0o077,
            "files.vault_readable",
            Severity::Critical,
            "the encrypted vault",
        ),
        g(
            state_dir.join("vault").join("key"),
            0o077,
            "files.vault_readable",
            Severity::Critical,
            "the vault key",
        ),
        g(
            state_dir.join("cordon.db"),
            0o077,
            "files.store_readable",
            Severity::Critical,
            "the session store (conversations, token hashes)",
        ),
        g(
            state_dir.join("audit"),
            0o022,
            "files.audit_writable",
            Severity::Critical,
            "the audit log directory",
        ),
    ]
}

/// Findings for guarded files whose mode is too open (missing files are skipped; one
/// whose mode cannot be read is reported as not checked).
pub fn check_modes(files: &[Guarded]) -> Vec<Finding> {
    let mut out = Vec::new();
    for f in files {
        let meta = match std::fs::symlink_metadata(&f.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                out.push(Finding::not_checked(
                    format!("the mode of {}", f.what),
                    format!("{}: {e}", f.path.display()),
                    "run `cordon audit` as the user Cordon runs as",
                ));
                continue;
            }
        };
        let mode = meta.mode() & 0o7777;
        if mode & f.forbidden != 0 {
            out.push(Finding::new(
                f.id,
                f.severity,
                format!("{} is open to other users", f.what),
                format!("{} has mode {mode:04o}", f.path.display()),
                format!(
                    "chmod {:04o} {} (or `cordon audit --fix`)",
                    mode & !f.forbidden,
                    f.path.display()
                ),
            ));
        }
    }
    out
}

/// Tighten the modes of guarded files; returns one line per change.
pub fn fix_modes(files: &[Guarded]) -> Vec<String> {
    let mut done = Vec::new();
    for f in files {
        let Ok(meta) = std::fs::symlink_metadata(&f.path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.mode() & 0o7777;
        if mode & f.forbidden == 0 {
            continue;
        }
        let new = mode & !f.forbidden;
        match std::fs::set_permissions(&f.path, std::fs::Permissions::from_mode(new)) {
            Ok(()) => done.push(format!(
                "fixed {}: mode {mode:04o} -> {new:04o}",
                f.path.display()
            )),
            Err(e) => done.push(format!(
                "could not fix {} (mode {mode:04o}): {e}",
                f.path.display()
            )),
        }
    }
    done
}

/// A workspace is mounted read-write into every sandbox of its agent: it must not be `/`,
/// the home directory, or a directory holding Cordon's own state, its config, or the
/// user's credentials (`~/.ssh`, `~/.aws`, …).
pub fn workspace_scope(
    agent: &str,
    workspace: &Path,
    home: &Path,
    protected: &[&Path],
) -> Option<Finding> {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let ws = canon(workspace);
    let home = canon(home);
    let mut inside: Vec<String> = Vec::new();
    if ws == Path::new("/") {
        inside.push("the whole file system".into());
    }
    if ws == home {
        inside.push(format!("the home directory {}", home.display()));
    }
    for name in [
        ".ssh", ".aws", ".gnupg", ".kube", ".docker", ".config", ".netrc",
    ] {
        let p = home.join(name);
        if p.exists() && canon(&p).starts_with(&ws) {
            inside.push(p.display().to_string());
        }
    }
    for p in protected {
        if p.exists() && canon(p).starts_with(&ws) {
            inside.push(p.display().to_string());
        }
    }
    if inside.is_empty() {
        return None;
    }
    inside.dedup();
    Some(Finding::new(
        "workspace.too_broad",
        Severity::Critical,
        format!(
            "agent `{agent}`'s workspace (read-write in its sandbox) contains {}",
            inside.join(", ")
        ),
        format!("agents.{agent}.workspace = \"{}\"", workspace.display()),
        "give the agent a directory of its own (e.g. ~/cordon/workspaces/NAME) holding only \
         what it works on",
    ))
}

/// Files an agent can read whose names say they hold secrets.
fn is_env_file(name: &str) -> bool {
    name == ".env" || name.starts_with(".env.") || name.ends_with(".env")
}

/// Credential-looking values in `.env` files under `workspace` (depth-limited, symlinks
/// not followed). A directory that cannot be listed, or an `.env` file that cannot be
/// read or is too large to scan, is reported as not checked (a missing workspace is not:
/// there is nothing in it to read).
pub fn env_files(agent: &str, workspace: &Path) -> Vec<Finding> {
    const MAX_DEPTH: usize = 4;
    const MAX_BYTES: u64 = 256 * 1024;
    let mut out = Vec::new();
    let not_checked = |path: &Path, why: String| {
        Finding::not_checked(
            format!("agent `{agent}`'s workspace for secrets in `.env` files"),
            format!("{}: {why}", path.display()),
            "run `cordon audit` as the user Cordon runs as, or look at the file yourself",
        )
    };
    let mut stack = vec![(workspace.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if depth == 0 && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                out.push(not_checked(&dir, e.to_string()));
                continue;
            }
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let path = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if ft.is_dir() && depth < MAX_DEPTH && name != ".git" && name != "node_modules" {
                stack.push((path, depth + 1));
            } else if ft.is_file() && is_env_file(&name) {
                let text = match e.metadata() {
                    Ok(m) if m.len() > MAX_BYTES => Err(format!(
                        "{} bytes, more than the {MAX_BYTES} scanned",
                        m.len()
                    )),
                    Ok(_) => std::fs::read_to_string(&path).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                let text = match text {
                    Ok(text) => text,
                    Err(why) => {
                        out.push(not_checked(&path, why));
                        continue;
                    }
                };
                let secretish = text.lines().enumerate().filter(|(_, l)| {
                    let l = l.trim();
                    let Some((k, v)) = l.split_once('=') else {
                        return false;
                    };
                    let k = k.trim().to_ascii_uppercase();
                    let v = v.trim().trim_matches(['"', '\'']);
                    !l.starts_with('#')
                        && v.len() >= 8
                        && ["KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL"]
                            .iter()
                            .any(|w| k.contains(w))
                });
                let mut lines: Vec<String> = secretish.map(|(i, _)| (i + 1).to_string()).collect();
                for f in secrets::detect_credentials(&text) {
                    let line = text[..f.range.start].matches('\n').count() + 1;
                    lines.push(format!("{line} ({})", f.kind));
                }
                lines.sort();
                lines.dedup();
                if !lines.is_empty() {
                    out.push(Finding::new(
                        "workspace.env_secret",
                        Severity::Critical,
                        format!(
                            "agent `{agent}` can read secrets in a file of its workspace \
                             (`cat .env` is one tool call away)"
                        ),
                        format!("{} lines {}", path.display(), lines.join(", ")),
                        "move the values into the vault (`cordon secrets set NAME --hosts \
                         HOST`) and delete the file; the agent then uses a placeholder that \
                         only works at the bound host",
                    ));
                }
            }
        }
    }
    out
}

/// Whether `addr` accepts a TCP connection within `timeout`.
pub fn reachable(addr: SocketAddr, timeout: Duration) -> bool {
    TcpStream::connect_timeout(&addr, timeout).is_ok()
}

/// A finding when the metadata address (`target`) answers from this host.
pub fn metadata_from_host(target: MetadataTarget, answers: bool) -> Option<Finding> {
    answers.then(|| {
        Finding::new(
            "host.metadata_reachable",
            Severity::Warn,
            "the cloud metadata service answers from this host",
            format!("TCP connect to {} succeeded", target.addr()),
            "Cordon's egress proxy refuses it for agents, but any other process on the host \
             can read instance credentials: add the firewall rules from `cordon deploy \
             firewall` (and IMDSv2 / hop limit 1 on AWS)",
        )
    })
}

/// The cloud provider this machine runs on, from its DMI strings (files in `dmi`, normally
/// `/sys/class/dmi/id`), or `None`.
pub fn cloud_vendor(dmi: &Path) -> Option<&'static str> {
    let read = |f: &str| std::fs::read_to_string(dmi.join(f)).unwrap_or_default();
    let text = format!(
        "{} {} {} {}",
        read("sys_vendor"),
        read("product_name"),
        read("bios_vendor"),
        read("chassis_asset_tag")
    )
    .to_ascii_lowercase();
    [
        ("amazon", "AWS"),
        ("google", "Google Cloud"),
        ("7783-7084-3265-9085-8269-3286-77", "Azure"),
        ("microsoft corporation", "Azure"),
        ("digitalocean", "DigitalOcean"),
        ("hetzner", "Hetzner"),
        ("openstack", "OpenStack"),
        ("alibaba", "Alibaba Cloud"),
        ("oraclecloud", "Oracle Cloud"),
        ("scaleway", "Scaleway"),
    ]
    .into_iter()
    .find(|(needle, _)| text.contains(needle))
    .map(|(_, name)| name)
}

/// Whether a firewall ruleset (the text of `nft list ruleset` or `iptables-save`) drops
/// or rejects traffic to the metadata address.
pub fn blocks_metadata(ruleset: &str) -> bool {
    ruleset.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.contains("169.254.169.254") && (l.contains("drop") || l.contains("reject"))
    })
}

/// On a cloud VM, a finding when no firewall rule blocks the metadata address.
/// `rulesets` are the texts the firewall tools printed (empty when none answered).
pub fn metadata_firewall(vendor: Option<&str>, rulesets: &[String]) -> Option<Finding> {
    let vendor = vendor?;
    if rulesets.iter().any(|r| blocks_metadata(r)) {
        return None;
    }
    Some(Finding::new(
        "host.metadata_not_firewalled",
        Severity::Warn,
        format!("this {vendor} VM has no firewall rule blocking the metadata address"),
        if rulesets.is_empty() {
            "neither `nft list ruleset` nor `iptables-save` answered".to_string()
        } else {
            "no rule mentioning 169.254.169.254 with drop/reject".to_string()
        },
        "apply `cordon deploy firewall` (it covers containers through DOCKER-USER too)",
    ))
}

/// `docker.port_published_public`: containers that publish `port` on every interface, from
/// the text of `docker ps --format '{{.Names}}\t{{.Ports}}'`.
pub fn docker_published(ps: &str, port: u16) -> Vec<Finding> {
    let mut found = Vec::new();
    for line in ps.lines() {
        let (name, ports) = line.split_once('\t').unwrap_or((line, ""));
        for p in ports.split(", ") {
            let public =
                p.starts_with("0.0.0.0:") || p.starts_with("[::]:") || p.starts_with(":::");
            if public && p.contains(&format!(":{port}->")) {
                found.push(Finding::new(
                    "docker.port_published_public",
                    Severity::Critical,
                    format!("container `{name}` publishes Cordon's port on every interface"),
                    format!("docker ps: {p}"),
                    format!("publish it as 127.0.0.1:{port}:{port} (see `cordon deploy compose`)"),
                ));
            }
        }
    }
    found
}

/// `sandbox.layer_unavailable` for each sandbox layer (name, why) this host does not
/// apply.
pub fn sandbox_layers_unavailable<'a>(
    inactive: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<Finding> {
    inactive
        .into_iter()
        .map(|(layer, detail)| {
            Finding::new(
                "sandbox.layer_unavailable",
                Severity::Warn,
                format!("sandbox layer {layer} is not applied on this host"),
                detail,
                "see `cordon sandbox explain`; a newer kernel or enabling the feature restores it",
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_listening_sockets_are_parsed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("tcp"),
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
             0: 0100007F:1E61 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n\
             1: 00000000:1E62 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2\n\
             2: 0100007F:1E63 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 3\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("tcp6"),
            "  sl  local_address                         remote_address                        st\n\
             0: 00000000000000000000000001000000:1E61 00000000000000000000000000000000:0000 0A\n",
        )
        .unwrap();
        let l = listening(dir.path());
        let shown: Vec<String> = l.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["0.0.0.0:7778", "127.0.0.1:7777", "[::1]:7777"]);
        let (addrs, findings) = gateway_exposure(7778, false, dir.path());
        assert_eq!(addrs.len(), 1);
        assert_eq!(findings[0].id, "host.gateway_listens_public_without_tls");
        assert!(gateway_exposure(7777, false, dir.path()).1.is_empty());
    }

    #[test]
    fn open_modes_are_found_and_fixed() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(state.join("vault")).unwrap();
        std::fs::write(state.join("vault/secrets.enc"), "x").unwrap();
        std::fs::set_permissions(&state, PermissionsExt::from_mode(0o700)).unwrap();
        std::fs::set_permissions(state.join("vault"), PermissionsExt::from_mode(0o700)).unwrap();
        std::fs::set_permissions(
            state.join("vault/secrets.enc"),
            PermissionsExt::from_mode(0o644),
        )
        .unwrap();
        let cfg = dir.path().join("cordon.toml");
        std::fs::write(&cfg, "").unwrap();
        std::fs::set_permissions(&cfg, PermissionsExt::from_mode(0o666)).unwrap();
        let files = guarded_files(&cfg, &state);
        let found = check_modes(&files);
        let ids: Vec<_> = found.iter().map(|f| f.id).collect();
        assert_eq!(ids, ["files.config_writable", "files.vault_readable"]);
        assert!(
            found[1].evidence.ends_with("mode 0644"),
            "{}",
            found[1].evidence
        );
        let fixed = fix_modes(&files);
        assert_eq!(fixed.len(), 2, "{fixed:?}");
        assert!(check_modes(&files).is_empty());
        let mode = std::fs::metadata(state.join("vault/secrets.enc"))
            .unwrap()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn cloud_vms_without_a_metadata_rule_are_flagged() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(cloud_vendor(dir.path()), None);
        assert!(metadata_firewall(None, &[]).is_none());
        std::fs::write(dir.path().join("sys_vendor"), "Amazon EC2\n").unwrap();
        assert_eq!(cloud_vendor(dir.path()), Some("AWS"));
        let open = metadata_firewall(Some("AWS"), &["table inet filter {}".into()]).unwrap();
        assert_eq!(open.id, "host.metadata_not_firewalled");
        let nft = "table inet cordon {\n chain out {\n  ip daddr 169.254.169.254 drop\n }\n}";
        assert!(metadata_firewall(Some("AWS"), &[nft.into()]).is_none());
        let ipt = "-A DOCKER-USER -d 169.254.169.254/32 -j REJECT";
        assert!(metadata_firewall(Some("AWS"), &[String::new(), ipt.into()]).is_none());
    }

    #[test]
    fn a_workspace_holding_home_credentials_or_state_is_critical() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::create_dir_all(home.join("work/project")).unwrap();
        let state = home.join("work/state");
        std::fs::create_dir_all(&state).unwrap();
        let ok = home.join("work/project");
        assert!(workspace_scope("a", &ok, &home, &[&state]).is_none());
        let f = workspace_scope("a", &home, &home, &[&state]).unwrap();
        assert_eq!(f.id, "workspace.too_broad");
        assert!(
            f.title.contains(".ssh") && f.title.contains("home directory"),
            "{}",
            f.title
        );
        let f = workspace_scope("a", &home.join("work"), &home, &[&state]).unwrap();
        assert!(f.title.contains("state"), "{}", f.title);
        assert!(workspace_scope("a", Path::new("/"), &home, &[]).is_some());
    }

    #[test]
    fn env_files_with_secrets_are_named_without_their_values() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("app")).unwrap();
        std::fs::write(
            dir.path().join("app/.env"),
            "DEBUG=1\nSTRIPE_SECRET_KEY=sk_live_abcdefghijklmnop1234\n# TOKEN=commented-out\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "API_TOKEN=abcdefghijkl\n").unwrap();
        let found = env_files("a", dir.path());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].evidence.contains("app/.env lines 2"),
            "{}",
            found[0].evidence
        );
        assert!(!found[0].evidence.contains("sk_live"));
    }

    #[test]
    fn env_files_that_cannot_be_scanned_are_reported_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let big = format!("API_TOKEN=abcdefghijkl\n{}", "#\n".repeat(200 * 1024));
        std::fs::write(dir.path().join(".env"), big).unwrap();
        let found = env_files("a", dir.path());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].id, "audit.not_checked");
        assert!(found[0].evidence.contains(".env"), "{}", found[0].evidence);
        // A workspace that does not exist yet holds nothing to read.
        assert!(env_files("a", &dir.path().join("missing")).is_empty());
    }

    #[test]
    fn only_a_container_publishing_the_port_on_every_interface_is_flagged() {
        let ps = "public\t0.0.0.0:7777->7777/tcp, [::]:7777->7777/tcp\n\
                  local\t127.0.0.1:7777->7777/tcp\n\
                  other\t0.0.0.0:8080->8080/tcp\n";
        let found = docker_published(ps, 7777);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found.iter().all(|f| f.title.contains("`public`")),
            "{found:?}"
        );
    }
}
