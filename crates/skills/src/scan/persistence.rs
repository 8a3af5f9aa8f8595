//! Persistence: a skill that makes something run again later, outside any agent turn —
//! cron, shell start-up files, services, launch agents, SSH `authorized_keys`, Windows
//! run keys and scheduled tasks. Nothing a skill does needs to outlive its call.

use super::Severity::High;
use super::rules::{Level, Rule};

const WHY_CRON: &str =
    "edits cron: schedules commands to run later, outside the agent and its sandbox";
const WHY_RC: &str =
    "writes to a shell start-up file: runs its commands in every new shell of the user";
const WHY_SERVICE: &str = "installs or enables a service: runs its program at every boot";
const WHY_LAUNCHD: &str =
    "installs a macOS launch agent or login item: runs its program at every login";
const WHY_KEYS: &str = "touches SSH authorized_keys: grants someone a permanent way in";
const WHY_WINDOWS: &str =
    "adds a Windows run key, scheduled task or startup entry: runs its program at every login";

pub(crate) static RULES: &[Rule] = &[
    Rule::new(
        "persist.cron",
        Level::Fixed(High),
        WHY_CRON,
        &["crontab", "/etc/cron", "/var/spool/cron", "cron.d/"],
        Some(
            r"\bcrontab(?:\s+-[eri]\b|\s+-\s*$|\s+-\s|\s+[^-\s]|\s*$)|/etc/cron|/var/spool/cron|cron\.d/",
        ),
    ),
    Rule::new(
        "persist.shell_rc",
        Level::Fixed(High),
        WHY_RC,
        &[
            ".bashrc",
            ".bash_profile",
            ".bash_login",
            ".zshrc",
            ".zprofile",
            ".zshenv",
            ".zlogin",
            ".profile",
            ".kshrc",
            ".cshrc",
            "config.fish",
            "/etc/profile",
        ],
        Some(
            r#"(?i)(?:>>|\btee\b|\bappend\w*|\bwrite\w*|\badd-content\b|\bset-content\b|\bout-file\b|\bopen\s*\(|\bsed\s+-i)[^\n]*(?:\.(?:bashrc|bash_profile|bash_login|zshrc|zprofile|zshenv|zlogin|profile|kshrc|cshrc)\b|config\.fish|/etc/profile)|(?:\.(?:bashrc|bash_profile|zshrc|zprofile|zshenv|profile)|config\.fish)\b[^\n]*(?:,\s*["']a\+?["']|\bappend|>>)"#,
        ),
    ),
    Rule::new(
        "persist.service",
        Level::Fixed(High),
        WHY_SERVICE,
        &[
            "systemctl",
            "systemd/",
            "/etc/init.d",
            "rc.local",
            "update-rc.d",
            "chkconfig",
        ],
        Some(
            r"\bsystemctl\s+(?:--user\s+)?(?:--now\s+)?(?:enable|link|preset|daemon-reload)\b|\.config/systemd/|/etc/systemd/system|/lib/systemd/system|/etc/init\.d/|/etc/rc\.local|\bupdate-rc\.d\b|\bchkconfig\b[^\n]*\bon\b",
        ),
    ),
    Rule::new(
        "persist.launchd",
        Level::Fixed(High),
        WHY_LAUNCHD,
        &[
            "launchagents",
            "launchdaemons",
            "launchctl",
            "login items",
            "loginitems",
        ],
        Some(
            r"(?i)Library/Launch(?:Agents|Daemons)|\blaunchctl\s+(?:load|bootstrap|submit|enable)\b|\blogin\s*items\b",
        ),
    ),
    Rule::new(
        "persist.authorized_keys",
        Level::Fixed(High),
        WHY_KEYS,
        &["authorized_keys"],
        None,
    ),
    Rule::new(
        "persist.windows",
        Level::Fixed(High),
        WHY_WINDOWS,
        &[
            "schtasks",
            "currentversion\\run",
            "currentversion\\\\run",
            "register-scheduledtask",
            "programs\\startup",
            "new-scheduledtask",
        ],
        Some(
            r"(?i)\bschtasks(?:\.exe)?\s+/create\b|currentversion\\+run(?:once)?\b|\b(?:register|new)-scheduledtask\b|programs\\+startup\b",
        ),
    ),
];
