//! Prompt injection: text in a skill addressed to the model rather than describing a
//! job — overriding its instructions, hiding actions from the user — and HTML comments
//! in Markdown, which the model reads but a rendered page does not show.
//!
//! A skill's instructions enter the model's context; phrasing that tells the model to
//! disregard its system prompt or act behind the user's back has no place in them.

use super::rules::{Level, Rule};
use super::source::{Lang, Source, shorten};
use super::{Finding, Findings, Severity};

const WHY_OVERRIDE: &str = "tells the model to override its instructions or to act behind the user's back: a skill describes a job, it does not give orders to the agent";
const WHY_HIDDEN: &str = "an HTML comment with instructions: the model reads it, a human viewing the rendered page does not see it";
const WHY_COMMENT: &str =
    "an HTML comment: text the model reads that a human viewing the rendered page does not see";

pub(crate) static RULES: &[Rule] = &[Rule::new(
    "inject.override",
    Level::Fixed(Severity::High),
    WHY_OVERRIDE,
    &[
        "ignore",
        "disregard",
        "forget",
        "override",
        "bypass",
        "you are now",
        "do not",
        "don't",
        "dont",
        "never",
        "without",
        "silently",
        "system prompt",
        "<system",
        "</system",
    ],
    Some(concat!(
        r"(?i)\b(?:ignore|disregard|forget|override|bypass)\s+(?:(?:all|any|the|of|your|my)\s+)*(?:previous|prior|above|earlier|preceding|original|former)\s+(?:\w+\s+)?(?:instructions|prompts?|rules|guidelines|directives|messages|context)\b",
        r"|(?i)\b(?:ignore|disregard|forget|override|bypass)\s+(?:all\s+)?(?:your|the)\s+(?:system\s+prompt|(?:system|safety|security|original)\s+(?:instructions|rules|guidelines|policies)|instructions|guidelines|guardrails)\b",
        r"|(?i)\byou\s+are\s+now\s+(?:an?\s+|DAN\b|no\s+longer\b|free\b|unrestricted\b|jailbroken\b|in\s+\w+\s+mode\b)",
        r"|(?i)\b(?:do\s+not|don't|dont|never)\s+(?:tell|inform|notify|alert|warn)\s+(?:the\s+|your\s+)?(?:user|human|operator|owner)\b",
        r"|(?i)\b(?:do\s+not|don't|dont|never)\s+(?:mention|reveal|disclose)\s+(?:this|these|that|it|anything)\b",
        r"|(?i)\bwithout\s+(?:asking|telling|informing|notifying|alerting|consulting|confirming\s+with|the\s+knowledge\s+of)\s+(?:the\s+|your\s+)?(?:user|human|operator|owner)\b",
        r"|(?i)\bsilently\s+(?:run|execute|send|upload|install|download|copy|read|post|forward|exfiltrate|collect|include|append|add|modify|write|delete|fetch|call|submit|transmit|share)\b",
        r"|(?i)\b(?:run|execute|send|upload|install|do|perform|post)\s+(?:this|it|them|everything)\s+silently\b",
        r"|(?i)\b(?:new|updated|real|actual|hidden)\s+system\s+prompt\s*:|<\s*/?\s*system\s*>",
    )),
)];

/// Words that make a hidden comment an instruction to the model.
const INSTRUCTION_WORDS: &[&str] = &[
    "ignore",
    "disregard",
    "instruction",
    "assistant",
    "system prompt",
    "you must",
    "you should",
    "you are",
    "you will",
    "the user",
    "curl",
    "wget",
    "execute",
    "send ",
    "upload",
    "secret",
    "token",
    "password",
    "credential",
    ".ssh",
    "api key",
    "exfil",
    "base64",
    "silently",
    "without asking",
    "claude",
    "gpt",
    "llm",
    "agent",
    "model",
    "do not tell",
    "don't tell",
];

/// Fewer characters than this in a comment without instruction words: a note, not hidden text.
const NOTE_CHARS: usize = 60;

/// HTML comments in Markdown files.
pub(crate) fn check(src: &Source<'_>, out: &mut Findings) {
    if src.lang != Lang::Markdown {
        return;
    }
    let text = src.text;
    let mut from = 0;
    while let Some(open) = text[from..].find("<!--").map(|i| from + i) {
        let body_start = open + 4;
        let close = text[body_start..]
            .find("-->")
            .map_or(text.len(), |i| body_start + i);
        let body = &text[body_start..close];
        from = (close + 3).min(text.len());
        if src.fence(src.line_of(open)).is_some() {
            continue; // an example inside a code block is shown, not hidden
        }
        let lower = body.to_lowercase();
        let (id, severity, why) = if INSTRUCTION_WORDS.iter().any(|w| lower.contains(w)) {
            ("inject.hidden_comment", Severity::Critical, WHY_HIDDEN)
        } else if body.trim().chars().count() >= NOTE_CHARS {
            ("inject.html_comment", Severity::Low, WHY_COMMENT)
        } else {
            continue;
        };
        // Evidence: the whole comment on one line (it may span many).
        let flat = body.split_whitespace().collect::<Vec<_>>().join(" ");
        let shown = format!("<!-- {flat} -->");
        out.push_raw(Finding {
            id,
            severity,
            file: src.path.to_string(),
            line: src.line_of(open),
            evidence: shorten(&shown, 0, 0),
            why,
        });
    }
}
