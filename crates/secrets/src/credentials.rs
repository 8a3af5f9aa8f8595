//! Detection of well-known credential formats in text, whether or not they are in the
//! vault: a key the model or a tool printed is still a key.
//!
//! Each format is matched exactly (prefix, length and alphabet) and bounded so it does
//! not fire inside longer identifiers. Documented example values are skipped: anything
//! whose match contains `example` (any case) or `xxxx` (any case), except private key
//! blocks, which are always reported.
//!
//! Not guaranteed: credentials in formats not listed in [`CredentialKind`], generic
//! high-entropy strings, or keys split, encoded or reformatted (e.g. a private key with
//! its BEGIN line removed).

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

/// A kind of credential [`detect_credentials`] recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    AwsAccessKeyId,
    AwsSecretAccessKey,
    GithubToken,
    OpenaiApiKey,
    AnthropicApiKey,
    SlackToken,
    StripeSecretKey,
    GoogleApiKey,
    PrivateKey,
}

impl CredentialKind {
    /// The snake_case name used in `[REDACTED:…]` markers and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::AwsAccessKeyId => "aws_access_key_id",
            CredentialKind::AwsSecretAccessKey => "aws_secret_access_key",
            CredentialKind::GithubToken => "github_token",
            CredentialKind::OpenaiApiKey => "openai_api_key",
            CredentialKind::AnthropicApiKey => "anthropic_api_key",
            CredentialKind::SlackToken => "slack_token",
            CredentialKind::StripeSecretKey => "stripe_secret_key",
            CredentialKind::GoogleApiKey => "google_api_key",
            CredentialKind::PrivateKey => "private_key",
        }
    }
}

impl std::fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A credential found in text: its kind and byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: CredentialKind,
    pub range: Range<usize>,
}

/// Bytes that must not directly follow a match (the `regex` crate has no look-ahead, and
/// `\b` is wrong for alphabets containing `-`, `/` or `+`).
type Tail = fn(u8) -> bool;

/// A format: the regex, whose capture group 1 is the credential, and its [`Tail`].
struct Format {
    kind: CredentialKind,
    re: Regex,
    tail: Tail,
}

fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}
fn alnum_us(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}
fn alnum_us_dash(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}
fn base64ish(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'/' || b == b'+'
}
fn nothing(_: u8) -> bool {
    false
}

/// What every match of a format contains, so that text holding no format's needle is
/// known clean without compiling or running a regex: most text is, and compiling the
/// patterns costs about 3 ms, paid by every short-lived `cordon` process that redacts
/// anything (an empty output included). It stands in the format's own row of [`TABLE`],
/// so no format can be added without one; the unit tests run each format's samples
/// through [`detect_credentials`], which fails them if the needle is wrong.
enum Needle {
    /// One of these, case-sensitively.
    Any(&'static [&'static str]),
    /// This, in any ASCII case. For a name matched case-insensitively: with Unicode case
    /// folding `s` also matches `ſ` and `k` the Kelvin sign, so the needle must be made
    /// of letters that fold to nothing outside ASCII (`acce` for `…access…`).
    AsciiCaseless(&'static str),
}

impl Needle {
    fn in_text(&self, text: &str) -> bool {
        match self {
            Needle::Any(needles) => needles.iter().any(|n| text.contains(n)),
            Needle::AsciiCaseless(n) => text
                .as_bytes()
                .windows(n.len())
                .any(|w| w.eq_ignore_ascii_case(n.as_bytes())),
        }
    }
}

// (kind, needle, pattern, forbidden next byte). A non-capturing `(?:^|[^…])` prefix stands
// in for a look-behind; the credential itself is capture group 1.
const TABLE: [(CredentialKind, Needle, &str, Tail); 11] = {
    use CredentialKind::*;
    [
        (
            AwsAccessKeyId,
            Needle::Any(&["AKIA", "ASIA"]),
            r"(?:^|[^A-Za-z0-9])((?:AKIA|ASIA)[A-Z0-9]{16})",
            alnum,
        ),
        (
            AwsSecretAccessKey,
            Needle::AsciiCaseless("acce"),
            r#"(?i:aws_?secret_?access_?key)["']?\s*[:=]\s*["']?([A-Za-z0-9/+]{40})"#,
            base64ish,
        ),
        (
            GithubToken,
            Needle::Any(&["gh"]),
            r"(?:^|[^A-Za-z0-9_])((?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36})",
            alnum_us,
        ),
        (
            GithubToken,
            Needle::Any(&["github_pat_"]),
            r"(?:^|[^A-Za-z0-9_])(github_pat_[A-Za-z0-9_]{82})",
            alnum_us,
        ),
        (
            AnthropicApiKey,
            Needle::Any(&["sk-ant-"]),
            r"(?:^|[^A-Za-z0-9_-])(sk-ant-[A-Za-z0-9_-]{32,200})",
            alnum_us_dash,
        ),
        (
            OpenaiApiKey,
            Needle::Any(&["sk-"]),
            r"(?:^|[^A-Za-z0-9_-])(sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,200})",
            alnum_us_dash,
        ),
        (
            OpenaiApiKey,
            Needle::Any(&["sk-"]),
            r"(?:^|[^A-Za-z0-9_-])(sk-[A-Za-z0-9]{48})",
            alnum_us_dash,
        ),
        (
            SlackToken,
            Needle::Any(&["xox"]),
            r"(?:^|[^A-Za-z0-9_-])(xox[abprs]-[0-9]{6,}-[A-Za-z0-9-]{8,})",
            alnum_us_dash,
        ),
        (
            StripeSecretKey,
            Needle::Any(&["_live_"]),
            r"(?:^|[^A-Za-z0-9_])((?:sk|rk)_live_[A-Za-z0-9]{24,99})",
            alnum_us,
        ),
        (
            GoogleApiKey,
            Needle::Any(&["AIza"]),
            r"(?:^|[^A-Za-z0-9_-])(AIza[0-9A-Za-z_-]{35})",
            alnum_us_dash,
        ),
        (
            PrivateKey,
            Needle::Any(&["PRIVATE KEY-----"]),
            // Up to the END line, or to the end of the text when it was cut off.
            r"(?s)(-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|.*))",
            nothing,
        ),
    ]
};

static FORMATS: LazyLock<Vec<Format>> = LazyLock::new(|| {
    TABLE
        .iter()
        .map(|(kind, _, pattern, tail)| Format {
            kind: *kind,
            // The patterns are constants; the unit tests compile and exercise each one.
            re: Regex::new(pattern).expect("credential pattern compiles"),
            tail: *tail,
        })
        .collect()
});

fn is_example(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    lower.contains("example") || lower.contains("xxxx")
}

/// Whether `text` may hold a credential of a known format: false only when it holds no
/// format's [`Needle`].
fn may_hold_credential(text: &str) -> bool {
    TABLE.iter().any(|(_, needle, _, _)| needle.in_text(text))
}

/// Every credential of a known format in `text`, sorted by position, non-overlapping
/// (where two overlap, the earlier, then longer, one is kept).
pub fn detect_credentials(text: &str) -> Vec<Finding> {
    if !may_hold_credential(text) {
        return Vec::new();
    }
    let mut found: Vec<Finding> = Vec::new();
    for f in FORMATS.iter() {
        for caps in f.re.captures_iter(text) {
            let Some(m) = caps.get(1) else { continue };
            if text.as_bytes().get(m.end()).is_some_and(|&b| (f.tail)(b)) {
                continue;
            }
            // Not for key blocks: their base64 body holds `xxxx` in about 1 real RSA key
            // in 600, and a cut-off block runs to the end of the text, prose included.
            if f.kind != CredentialKind::PrivateKey && is_example(m.as_str()) {
                continue;
            }
            found.push(Finding {
                kind: f.kind,
                range: m.range(),
            });
        }
    }
    found.sort_by(|a, b| {
        a.range
            .start
            .cmp(&b.range.start)
            .then(b.range.end.cmp(&a.range.end))
    });
    let mut kept: Vec<Finding> = Vec::with_capacity(found.len());
    for f in found {
        if kept.last().is_some_and(|k| f.range.start < k.range.end) {
            continue;
        }
        kept.push(f);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_without_a_needle_is_not_scanned_but_every_format_still_is() {
        assert!(!may_hold_credential(""));
        assert!(!may_hold_credential("total 0\nno keys here, just words"));
        // Each format's needle, the AWS name's in any case and with Unicode folding.
        for text in [
            "AKIA",
            "ASIA",
            "ghp_",
            "github_pat_",
            "sk-",
            "xoxb-",
            "sk_live_",
            "AIza",
            "-----BEGIN PRIVATE KEY-----",
            "AWS_SECRET_ACCESS_KEY",
            "aws_ſecret_acceſs_Key",
        ] {
            assert!(may_hold_credential(text), "{text}");
        }
        // The AWS name in mixed case is still found.
        let value = "Zx8Kq2Lm4Np6Rs8Tv0Wx2Yz4Ab6Cd8Ef0Gh2Ij4K".to_string();
        let text = format!("Aws_Secret_ACCESS_key = {value}");
        assert_eq!(
            kinds(&text),
            vec![(CredentialKind::AwsSecretAccessKey, value.clone())]
        );
    }

    fn kinds(text: &str) -> Vec<(CredentialKind, String)> {
        detect_credentials(text)
            .into_iter()
            .map(|f| (f.kind, text[f.range].to_string()))
            .collect()
    }

    fn one(text: &str, kind: CredentialKind, value: &str) {
        assert_eq!(kinds(text), vec![(kind, value.to_string())], "in {text:?}");
    }

    fn none(text: &str) {
        assert_eq!(kinds(text), vec![], "in {text:?}");
    }

    const A36: &str = "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5";

    #[test]
    fn aws() {
        use CredentialKind::*;
        one(
            "id=AKIA2OGYBAH6STMMNXNN;",
            AwsAccessKeyId,
            "AKIA2OGYBAH6STMMNXNN",
        );
        one(
            "ASIAY34FZKBOKMUTVV7A",
            AwsAccessKeyId,
            "ASIAY34FZKBOKMUTVV7A",
        );
        let secret = "Zx8Kq2Lm4Np6Rs8Tv0Wx2Yz4Ab6Cd8Ef0Gh2Ij4K";
        one(
            &format!("aws_secret_access_key = {secret}\n"),
            AwsSecretAccessKey,
            secret,
        );
        one(
            &format!("AWS_SECRET_ACCESS_KEY=\"{secret}\""),
            AwsSecretAccessKey,
            secret,
        );
        // False positives: documented examples, wrong length, lower case, no context.
        none("AKIAIOSFODNN7EXAMPLE");
        none("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        none("AKIA2OGYBAH6STMMNXN"); // 19 chars
        none("AKIA2OGYBAH6STMMNXNNX"); // 21 chars
        none("XAKIA2OGYBAH6STMMNXNN"); // inside a longer word
        none("akia2ogybah6stmmnxnn");
        none(secret); // 40 chars without the context is just text
        none(&format!("aws_secret_access_key = {secret}Q"));
    }

    #[test]
    fn github() {
        use CredentialKind::GithubToken;
        for p in ["ghp", "gho", "ghu", "ghs", "ghr"] {
            let t = format!("{p}_{A36}");
            one(&format!("token: {t}\n"), GithubToken, &t);
        }
        let pat = format!("github_pat_11{}", "A1b2C3d4E5".repeat(8));
        assert_eq!(pat.len(), 11 + 82);
        one(&format!("GH={pat}"), GithubToken, &pat);
        none(&format!("ghp_{}", &A36[..35]));
        none(&format!("ghp_{A36}Z"));
        none(&format!("ghx_{A36}"));
        none("ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        none(&format!("github_pat_11{}", "A1b2C3d4E5".repeat(7)));
    }

    #[test]
    fn openai_anthropic() {
        use CredentialKind::*;
        let legacy = format!("sk-{}", "Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8".repeat(2));
        one(&format!("OPENAI_API_KEY={legacy}"), OpenaiApiKey, &legacy);
        let proj = format!("sk-proj-{}", "Ab1_Cd2-Ef3Gh4Ij5Kl6".repeat(4));
        one(&format!("key: {proj} "), OpenaiApiKey, &proj);
        let ant = format!("sk-ant-api03-{}", "Zy9Xw8Vu7Ts6_Rq5-Po4".repeat(4));
        one(&format!("x-api-key: {ant}"), AnthropicApiKey, &ant);
        none("sk-1234"); // too short
        none("sk-proj-short");
        none("sk-ant-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        none("risk-assessment-and-other-long-hyphenated-words-in-prose");
        none(&format!("{legacy}0")); // 49 chars is not the format
        none("sk-proj-your-api-key-example-goes-here-0000000000000000");
    }

    #[test]
    fn slack_stripe_google() {
        use CredentialKind::*;
        let slack = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx";
        one(&format!("SLACK={slack}"), SlackToken, slack);
        let stripe = "sk_live_51HbYkLs2eZvKYlo2C0aB1c2D3e4F";
        one(&format!("stripe: {stripe}"), StripeSecretKey, stripe);
        let rk = "rk_live_51HbYkLs2eZvKYlo2C0aB1c2D3e4F";
        one(rk, StripeSecretKey, rk);
        let g = "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q";
        assert_eq!(g.len(), 39);
        one(&format!("?key={g}&x=1"), GoogleApiKey, g);
        none("xoxb-not-a-token");
        none("sk_test_51HbYkLs2eZvKYlo2C0aB1c2D3e4F");
        none("sk_live_short");
        none(&format!("{g}X"));
        none("AIzaSyXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX");
    }

    #[test]
    fn private_keys() {
        let block = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n\
                     -----END OPENSSH PRIVATE KEY-----";
        let text = format!("cat id\n{block}\nok");
        one(&text, CredentialKind::PrivateKey, block);
        let rsa = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----";
        one(rsa, CredentialKind::PrivateKey, rsa);
        let pk8 = "-----BEGIN PRIVATE KEY-----\nMIIEv\n-----END PRIVATE KEY-----";
        one(pk8, CredentialKind::PrivateKey, pk8);
        // Cut off: everything from BEGIN on.
        let cut = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE";
        one(&format!("out: {cut}"), CredentialKind::PrivateKey, cut);
        // `example` / `xxxx` never exempt a key block (base64 bodies contain them by
        // chance; a cut-off block runs into whatever prose follows).
        let xs = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBxXxXADANBg\n-----END PRIVATE KEY-----";
        one(xs, CredentialKind::PrivateKey, xs);
        let cut_prose = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n(see the example above)";
        one(cut_prose, CredentialKind::PrivateKey, cut_prose);
        none("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----");
        none("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----");
    }

    #[test]
    fn several_in_order_without_overlap() {
        let gh = format!("ghp_{A36}");
        let text = format!("a AKIA2OGYBAH6STMMNXNN b {gh} c");
        let found = detect_credentials(&text);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].kind, CredentialKind::AwsAccessKeyId);
        assert_eq!(found[1].kind, CredentialKind::GithubToken);
        assert!(found[0].range.end <= found[1].range.start);
    }

    #[test]
    fn prose_has_no_findings() {
        none(
            "The quick brown fox jumps over the lazy dog. Use AKIA keys and ghp_ tokens \
             carefully; see https://docs.aws.amazon.com/ for sk- prefixed values.",
        );
    }
}
