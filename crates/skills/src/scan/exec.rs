//! Running code the reviewer cannot see: download-and-run (pipes into a shell, decoded
//! blobs run by a shell, "paste this into Terminal", running a downloaded file,
//! password-protected archives), `eval`/`exec` of dynamic input, reverse shells and
//! fork bombs.
//!
//! These are how the skills that flooded a public registry in early 2026 delivered
//! their stealers: the skill itself looks harmless and its "Prerequisites" fetch and
//! run the payload. So they are critical in prose as much as in scripts.

use regex::Captures;

use super::rules::{Hit, Level, Rule, marked};
use super::source::{Lang, Source};
use super::{Findings, Severity};

use Severity::{Critical, High};

const WHY_PIPE: &str = "downloads code and runs it at once: what runs is whatever the server sends that day, never what was reviewed";
const WHY_DECODED: &str =
    "decodes a hidden blob and runs it: the code that runs cannot be read in the skill";
const WHY_PASTE: &str = "asks a human to paste a command into a terminal, outside every sandbox: the classic way malicious skills install stealers";
const WHY_RUN_DOWNLOADED: &str =
    "downloads a file and makes it executable: runs a program nobody reviewed";
const WHY_PASSWORD: &str =
    "a password-protected archive hides its contents from scanners: the usual wrapper of malware";
const WHY_EVAL: &str = "evaluates text built at run time as code: what runs depends on input, not on what was reviewed";
const WHY_REVERSE: &str = "opens a reverse shell: hands a remote attacker an interactive shell with the agent's authority";
const WHY_FORK: &str = "a fork bomb: spawns processes until the machine stops responding";

pub(crate) static RULES: &[Rule] = &[
    Rule::new(
        "exec.pipe_to_shell",
        Level::Fixed(Critical),
        WHY_PIPE,
        &[
            "curl",
            "wget",
            "iwr",
            "irm",
            "invoke-webrequest",
            "invoke-restmethod",
            "lwp-request",
            "fetch",
        ],
        Some(
            r"(?i)\b(?:curl|wget|iwr|irm|invoke-webrequest|invoke-restmethod|lwp-request|fetch)\b[^\n]*\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:env\s+)?(?:\S*/)?(?:(?:ba|z|da|k|c|tc|fi|a)?sh|python[0-9.]*|perl|ruby|node|php|iex|invoke-expression|source)(?:\s|$|[;&|)])",
        ),
    ),
    Rule::new(
        "exec.run_remote",
        Level::Fixed(Critical),
        WHY_PIPE,
        &[
            "$(curl",
            "$(wget",
            "<(curl",
            "<(wget",
            "`curl",
            "`wget",
            "iex",
            "invoke-expression",
            "downloadstring",
            "urlopen",
            "requests.get",
        ],
        Some(
            r#"(?i)(?:\b(?:ba|z|da|k)?sh|\bpython[0-9.]*|\bperl|\bruby|\bnode|\bsource|\beval|(?:^|\s)\.)\s+(?:-[ce]\s+)?["']?(?:\$\(|<\(|`)\s*(?:curl|wget)\b|\b(?:iex|invoke-expression)\b[^\n]*\b(?:iwr|irm|invoke-webrequest|invoke-restmethod|downloadstring|net\.webclient)\b|\bdownloadstring\b[^\n]*\|\s*(?:iex|invoke-expression)\b|\b(?:exec|eval)\s*\(\s*(?:urllib\.request\.)?(?:urlopen|requests\.get)\s*\("#,
        ),
    ),
    Rule::new(
        "exec.decoded_blob",
        Level::Fixed(Critical),
        WHY_DECODED,
        &[
            "base64",
            "b64decode",
            "atob",
            "frombase64string",
            "xxd",
            "openssl",
            "powershell",
            "pwsh",
            "codecs.decode",
            "zlib.decompress",
        ],
        Some(
            r#"(?i)(?:\bbase64\s+(?:-\w+\s+)*(?:-d|--decode|-D)\b|\bxxd\s+(?:-\w+\s+)*-r|\bopenssl\s+(?:enc\s+)?(?:base64\s+)?(?:-\w+\s+)*-d\b)[^\n]*\|\s*(?:sudo\s+)?(?:\S*/)?(?:(?:ba|z|da|k|a)?sh|python[0-9.]*|perl|ruby|node|php)(?:\s|$|[;&|)])|\b(?:exec|eval)\s*\(\s*(?:base64\.b64decode|codecs\.decode|zlib\.decompress|atob|Buffer\.from|bytes\.fromhex)|\b(?:ba|z)?sh\s+-c\s+["']?\$\([^\n]*\bbase64\s+(?:-d|--decode)|\b(?:powershell|pwsh)(?:\.exe)?\b[^\n]*\s-(?:e|ec|en|enc|enco|encodedcommand)\s+[A-Za-z0-9+/=]{16,}|\b(?:iex|invoke-expression)\b[^\n]*frombase64string|frombase64string[^\n]*\|\s*(?:iex|invoke-expression)\b"#,
        ),
    ),
    Rule::new(
        "exec.paste_terminal",
        Level::Fixed(Critical),
        WHY_PASTE,
        &["paste"],
        Some(
            r"(?i)\bpaste\b[^\n]{0,80}?\b(?:in|into|to)\s+(?:a\s+|an\s+|the\s+|your\s+)?(?:new\s+)?(?:mac(?:os)?\s+)?(?:terminal|command\s+prompt|command\s+line|powershell|shell|console|cmd|run\s+dialog|bash)\b",
        ),
    ),
    Rule::new(
        "exec.password_archive",
        Level::Fixed(Critical),
        WHY_PASSWORD,
        &["unzip", "7z", "unrar", "zip "],
        Some(
            r"(?i)\bunzip\b[^\n]*\s-P\s*\S+|\b7za?\b[^\n]*\s-p\S+|\bunrar\b[^\n]*\s-p\S+|\bzip\b[^\n]*\s(?:-P|--password)\s*\S+",
        ),
    ),
    Rule::new(
        "exec.run_downloaded",
        Level::Fixed(Critical),
        WHY_RUN_DOWNLOADED,
        &["curl", "wget"],
        Some(
            r"(?i)\b(?:curl|wget)\b[^\n]*(?:>\s*|\s-o\s*|\s-O\s*|--output[ =]|--output-document[ =])\S+[^\n]*(?:&&|;|\|\|)\s*(?:sudo\s+(?:-\S+\s+)*)?(?:(?:(?:ba|z|da|k)?sh|python[0-9.]*|perl|ruby|node|source|\.)\s+\S|\./\S|/tmp/\S)",
        ),
    ),
    // Markers for the multi-line rules below.
    Rule::new(
        "mark.password",
        Level::Mark,
        "",
        &["password", "passcode", "passphrase", "pass:", "pwd"],
        Some(
            r"(?i)\b(?:archive\s+)?(?:password|passcode|passphrase|pass|pwd)\b\s*(?:is\s*)?[:=]\s*\S+",
        ),
    ),
    Rule::new(
        "mark.archive",
        Level::Mark,
        "",
        &[".zip", ".rar", ".7z", ".tgz", ".tar.gz", "archive"],
        Some(r"(?i)\.(?:zip|rar|7z|tgz|tar\.gz)\b|\barchive\b"),
    ),
    Rule::new(
        "mark.download",
        Level::Mark,
        "",
        &[
            "curl",
            "wget",
            "-outfile",
            "urlretrieve",
            "certutil",
            "download",
        ],
        Some(
            r"(?i)\bcurl\b[^\n]*\s(?:-[a-zA-Z]*[oO]|--output|--remote-name)\b|\bwget\b|-outfile\b|\burlretrieve\s*\(|\bcertutil\b[^\n]*-urlcache|\bdownload_file\s*\(|\bstart-bitstransfer\b",
        ),
    ),
    Rule::new(
        "mark.make_executable",
        Level::Mark,
        "",
        &["chmod", "start-process"],
        Some(
            r"(?i)\bchmod\s+(?:-\w+\s+)*(?:[ugoa]*\+[rw]*x|[0-7]?[0-7]?[1357][0-7]?[0-7]?)\b|\bos\.chmod\s*\([^\n]*0o?[0-7]*[1357][0-7]*\)|\bstart-process\b",
        ),
    ),
    Rule::new(
        "exec.dynamic_eval",
        Level::Fixed(High),
        WHY_EVAL,
        &[
            "eval",
            "exec",
            "new function",
            "os.system",
            "os.popen",
            "shell=",
            "shell =",
            "system(",
            "system (",
            "invoke-expression",
            "iex",
        ],
        Some(concat!(
            // shell: eval of a variable or a substitution
            r#"(?:^|[;&|({\s])eval\s+["']?\$\{?\w"#,
            // python / js / ruby / perl: eval or exec of something not a literal
            r#"|(?:^|[^.\w$])(?:eval|exec)\s*\(\s*[^"'\s)`]"#,
            r"|\bnew\s+Function\s*\(",
            // js child_process.exec with concatenation or a template
            r"|\bexec(?:Sync)?\s*\(\s*(?:`[^`\n]*\$\{|[^,)\n]*\+)",
            // python: a shell command built from variables
            r#"|\bos\.(?:system|popen)\s*\(\s*(?:f["']|[A-Za-z_]|["'][^"'\n]*["']\s*(?:\+|%|\.format))"#,
            r"|\bsubprocess\.\w+\s*\([^\n]*\bshell\s*=\s*True",
            // ruby / perl: system with interpolation
            r#"|\bsystem\s*\(?\s*"[^"\n]*(?:#\{|\$\w)"#,
            r"|(?i:\b(?:invoke-expression|iex)\s*\(?\s*\$)",
        )),
    ),
    Rule::new(
        "shell.reverse",
        Level::Fixed(Critical),
        WHY_REVERSE,
        &[
            "/dev/tcp/",
            "/dev/udp/",
            "nc ",
            "ncat",
            "netcat",
            "socat",
            "mkfifo",
            "mknod",
            "telnet",
        ],
        Some(
            r"(?i)/dev/(?:tcp|udp)/[^\s/]+/\d+|\b(?:nc|ncat|netcat)\b[^\n]*\s-(?:e|c)\s|\bncat\b[^\n]*--(?:exec|sh-exec)\b|\bsocat\b[^\n]*\b(?:exec|system):|\bmkfifo\b[^\n]*\|\s*(?:nc|ncat|netcat|telnet|openssl)\b|\bmknod\b[^\n]*\bp\b[^\n]*\b(?:nc|ncat|telnet)\b|\btelnet\b[^\n]*\|\s*(?:/bin/)?(?:ba)?sh\b[^\n]*\|\s*telnet\b",
        ),
    ),
    Rule::new("mark.pty_spawn", Level::Mark, "", &["pty.spawn"], None),
    Rule::new(
        "mark.dup2",
        Level::Mark,
        "",
        &["dup2"],
        Some(r"\bdup2\s*\(\s*\w+\.fileno\(\)"),
    ),
    Rule::new(
        "mark.socket",
        Level::Mark,
        "",
        &["socket"],
        Some(
            r"\bsocket\.(?:socket|create_connection)\b|\bTCPSocket\b|\bIO::Socket|\bnet\.(?:connect|Socket|createConnection)\b",
        ),
    ),
    Rule::new(
        "dos.fork_bomb",
        Level::Fixed(Critical),
        WHY_FORK,
        &["(){", "() {", "( ) {"],
        Some(r"([\w:.-]+)\s*\(\s*\)\s*\{\s*([\w:.-]+)\s*\|\s*([\w:.-]+)\s*&"),
    )
    .confirm(same_name_thrice),
    Rule::new(
        "dos.fork_bomb",
        Level::Fixed(Critical),
        WHY_FORK,
        &["while", "for", "fork", "%0"],
        Some(
            r"(?i)\bwhile\s+(?:true|:|1|\[\s*1\s*\])\s*;?\s*do\b[^\n]*&\s*(?:;\s*)?done\b|\bfor\s*\(\(\s*;\s*;\s*\)\)\s*;?\s*do\b[^\n]*&\s*(?:;\s*)?done\b|\bfork\s+while\s+(?:fork|1)\b|\bwhile\s*\(\s*(?:1|true)\s*\)\s*\{?\s*fork\b|%0\s*\|\s*%0",
        ),
    ),
    Rule::new(
        "mark.fork",
        Level::Mark,
        "",
        &["fork("],
        Some(r"\b(?:os\.)?fork\(\)"),
    ),
    Rule::new(
        "mark.loop_forever",
        Level::Mark,
        "",
        &["while"],
        Some(r"\bwhile\s*\(?\s*(?:True|1|true)\s*\)?\s*[:{]"),
    )
    .langs(&[
        Lang::Python,
        Lang::Js,
        Lang::Perl,
        Lang::Ruby,
        Lang::Markdown,
        Lang::Other,
    ]),
];

/// `f(){ f|f& }`: the function pipes itself into itself.
fn same_name_thrice(c: &Captures<'_>) -> bool {
    let name = |i| c.get(i).map(|m| m.as_str());
    name(1) == name(2) && name(2) == name(3)
}

/// The rules that need more than one line.
pub(crate) fn correlate(src: &Source<'_>, hits: &[Hit], out: &mut Findings) {
    // A download and a `chmod +x` (or Start-Process) in the same file.
    if marked(hits, "mark.download").next().is_some() {
        for h in marked(hits, "mark.make_executable") {
            out.push_at(
                src,
                "exec.run_downloaded",
                Critical,
                h.start,
                h.end,
                WHY_RUN_DOWNLOADED,
            );
        }
    }
    // "password: …" within three lines of an archive name.
    let archives: Vec<usize> = marked(hits, "mark.archive").map(|h| h.line).collect();
    for h in marked(hits, "mark.password") {
        if archives.iter().any(|&l| l.abs_diff(h.line) <= 3) {
            out.push_at(
                src,
                "exec.password_archive",
                Critical,
                h.start,
                h.end,
                WHY_PASSWORD,
            );
        }
    }
    // pty.spawn or dup2 of a socket's descriptor, with a socket in the same file.
    if marked(hits, "mark.socket").next().is_some() {
        for h in marked(hits, "mark.pty_spawn").chain(marked(hits, "mark.dup2")) {
            out.push_at(src, "shell.reverse", Critical, h.start, h.end, WHY_REVERSE);
        }
    }
    // fork() within three lines after an endless loop.
    let loops: Vec<usize> = marked(hits, "mark.loop_forever").map(|h| h.line).collect();
    for h in marked(hits, "mark.fork") {
        if loops.iter().any(|&l| l <= h.line && h.line - l <= 3) {
            out.push_at(src, "dos.fork_bomb", Critical, h.start, h.end, WHY_FORK);
        }
    }
}
