//! Files that are not text (not UTF-8, or with NUL bytes): nobody can review them, so
//! each gets a finding of its own, graded by what its first bytes say it is. A shipped
//! executable is high, an archive medium (it hides files from the scan; an encrypted
//! zip is critical, the classic malware wrapper), an image or font information only.

use super::{Finding, Findings, Severity};
use crate::tree::TreeFile;

const WHY_EXECUTABLE: &str =
    "a compiled program: it cannot be reviewed, and runs with whatever authority it is given";
const WHY_ARCHIVE: &str = "an archive inside the skill: its contents are not scanned";
const WHY_ENCRYPTED: &str =
    "a password-protected archive hides its contents from scanners: the usual wrapper of malware";
const WHY_MEDIA: &str = "a binary media file (image, font, document): not reviewable as text";
const WHY_UNKNOWN: &str = "a file that is not text and of no known kind: it cannot be reviewed";

/// What the first bytes of a file say it is.
enum Kind {
    Executable(&'static str),
    Archive(&'static str),
    EncryptedZip,
    Media(&'static str),
    Unknown,
}

fn sniff(b: &[u8]) -> Kind {
    let starts = |m: &[u8]| b.starts_with(m);
    if starts(b"\x7fELF") {
        Kind::Executable("ELF executable")
    } else if starts(b"MZ") {
        Kind::Executable("Windows (PE) executable")
    } else if starts(&[0xfe, 0xed, 0xfa, 0xce])
        || starts(&[0xfe, 0xed, 0xfa, 0xcf])
        || starts(&[0xce, 0xfa, 0xed, 0xfe])
        || starts(&[0xcf, 0xfa, 0xed, 0xfe])
        || starts(&[0xca, 0xfe, 0xba, 0xbe])
    {
        Kind::Executable("Mach-O executable or Java class")
    } else if starts(b"\0asm") {
        Kind::Executable("WebAssembly module")
    } else if starts(b"PK\x03\x04") {
        // General-purpose flag bit 0 of the first local header: encrypted.
        if b.len() > 6 && b[6] & 1 == 1 {
            Kind::EncryptedZip
        } else {
            Kind::Archive("zip archive")
        }
    } else if starts(&[0x1f, 0x8b]) {
        Kind::Archive("gzip archive")
    } else if starts(b"7z\xbc\xaf\x27\x1c") {
        Kind::Archive("7z archive")
    } else if starts(b"Rar!") {
        Kind::Archive("RAR archive")
    } else if starts(&[0xfd, b'7', b'z', b'X', b'Z']) {
        Kind::Archive("xz archive")
    } else if starts(b"BZh") {
        Kind::Archive("bzip2 archive")
    } else if b.len() > 262 && &b[257..262] == b"ustar" {
        Kind::Archive("tar archive")
    } else if starts(b"\x89PNG") {
        Kind::Media("PNG image")
    } else if starts(&[0xff, 0xd8, 0xff]) {
        Kind::Media("JPEG image")
    } else if starts(b"GIF8") {
        Kind::Media("GIF image")
    } else if starts(b"RIFF") && b.len() > 12 && &b[8..12] == b"WEBP" {
        Kind::Media("WebP image")
    } else if starts(b"%PDF") {
        Kind::Media("PDF document")
    } else if starts(b"wOFF") || starts(b"wOF2") || starts(&[0, 1, 0, 0]) || starts(b"OTTO") {
        Kind::Media("font")
    } else if starts(b"\0\0\x01\0") {
        Kind::Media("icon")
    } else {
        Kind::Unknown
    }
}

pub(crate) fn check(file: &TreeFile, out: &mut Findings) {
    let (id, severity, what, why) = match sniff(&file.contents) {
        Kind::Executable(what) => ("file.executable", Severity::High, what, WHY_EXECUTABLE),
        Kind::EncryptedZip => (
            "exec.password_archive",
            Severity::Critical,
            "encrypted zip archive",
            WHY_ENCRYPTED,
        ),
        Kind::Archive(what) => ("file.archive", Severity::Medium, what, WHY_ARCHIVE),
        // An image marked executable is not what it claims.
        Kind::Media(what) if file.executable => ("file.binary", Severity::High, what, WHY_UNKNOWN),
        Kind::Media(what) => ("file.binary", Severity::Info, what, WHY_MEDIA),
        Kind::Unknown if file.executable => (
            "file.executable",
            Severity::High,
            "executable file, not text",
            WHY_EXECUTABLE,
        ),
        Kind::Unknown => ("file.binary", Severity::Medium, "not text", WHY_UNKNOWN),
    };
    out.push_raw(Finding {
        id,
        severity,
        file: file.path.clone(),
        line: 1,
        evidence: format!("{what}, {} bytes", file.contents.len()),
        why,
    });
}
