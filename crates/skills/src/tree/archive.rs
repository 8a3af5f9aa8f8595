//! Archives read in memory. Limits are enforced while extracting, on what each entry
//! declares and on what actually comes out of the decompressor, so a bomb is refused
//! after at most [`MAX_BYTES`] (plus headers) of output, never inflated whole.

use std::io::{self, Read};

use super::{MAX_BYTES, MAX_FILES, TreeFile, check_path, refused, too_big};
use crate::tree::TreeError;

/// Room for tar headers and padding, or zip directory entries, around the contents.
const MAX_ENTRIES: usize = MAX_FILES * 4;

/// A path as written in an archive: UTF-8, `./` prefixes and a directory's trailing `/`
/// dropped, then checked like every tree path. `None` for the root folder itself.
fn entry_path(archive: &str, raw: &[u8]) -> Result<Option<String>, TreeError> {
    let Ok(path) = std::str::from_utf8(raw) else {
        return Err(refused(
            &format!("{archive}: {}", String::from_utf8_lossy(raw)),
            "entry name is not valid UTF-8".into(),
        ));
    };
    let mut p = path;
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    let p = p.strip_suffix('/').unwrap_or(p);
    if p.is_empty() || p == "." {
        return Ok(None);
    }
    check_path(p).map_err(|e| match e {
        TreeError::Refused { reason, .. } => refused(&format!("{archive}: {path}"), reason),
        other => other,
    })?;
    Ok(Some(p.to_string()))
}

fn entry_refused(archive: &str, path: &str, reason: &str) -> TreeError {
    refused(&format!("{archive}: {path}"), reason.to_string())
}

fn too_many(archive: &str) -> TreeError {
    refused(
        archive,
        format!("more than the {MAX_FILES} files a skill may have"),
    )
}

/// Read at most `budget` bytes of `reader`; more is refused without reading it all.
fn read_capped(
    archive: &str,
    path: &str,
    reader: impl Read,
    declared: u64,
    budget: u64,
) -> Result<Vec<u8>, TreeError> {
    let mut contents = Vec::with_capacity(declared.min(budget) as usize);
    reader
        .take(budget + 1)
        .read_to_end(&mut contents)
        .map_err(|e| entry_refused(archive, path, &format!("cannot be extracted: {e}")))?;
    if contents.len() as u64 > budget {
        return Err(too_big(&format!("{archive}: {path}")));
    }
    if contents.len() as u64 != declared {
        return Err(entry_refused(
            archive,
            path,
            &format!(
                "declares {declared} bytes but holds {}: a damaged or crafted archive",
                contents.len()
            ),
        ));
    }
    Ok(contents)
}

pub(super) fn read_zip(archive: &str, bytes: &[u8]) -> Result<Vec<TreeFile>, TreeError> {
    let mut zip = zip::ZipArchive::new(io::Cursor::new(bytes))
        .map_err(|e| refused(archive, format!("not a readable zip archive: {e}")))?;
    if zip.len() > MAX_ENTRIES {
        return Err(too_many(archive));
    }
    // First pass, on the central directory only: names, kinds and declared sizes.
    let mut wanted = Vec::new();
    let mut declared_total = 0u64;
    for i in 0..zip.len() {
        let entry = zip
            .by_index_raw(i)
            .map_err(|e| refused(archive, format!("entry {i} cannot be read: {e}")))?;
        let raw_name = entry.name_raw().to_vec();
        let Some(path) = entry_path(archive, &raw_name)? else {
            continue;
        };
        if let Some(mode) = entry.unix_mode() {
            let kind = mode & libc::S_IFMT;
            if kind == libc::S_IFLNK {
                return Err(entry_refused(
                    archive,
                    &path,
                    "is a symlink (a skill has only regular files and folders)",
                ));
            }
            if kind != 0 && kind != libc::S_IFREG && kind != libc::S_IFDIR {
                return Err(entry_refused(
                    archive,
                    &path,
                    "is a device, FIFO or socket (a skill has only regular files and folders)",
                ));
            }
        }
        if entry.is_dir() {
            continue;
        }
        if entry.encrypted() {
            return Err(entry_refused(
                archive,
                &path,
                "is password-protected: Cordon reads only what it can scan",
            ));
        }
        if wanted.len() == MAX_FILES {
            return Err(too_many(archive));
        }
        declared_total = declared_total.saturating_add(entry.size());
        if declared_total > MAX_BYTES {
            return Err(too_big(&format!("{archive}: {path}")));
        }
        let executable = entry.unix_mode().is_some_and(|m| m & 0o111 != 0);
        wanted.push((i, path, executable, entry.size()));
    }
    // Second pass: inflate, never past the declared size (itself within the limit).
    let mut files = Vec::with_capacity(wanted.len());
    for (i, path, executable, declared) in wanted {
        let entry = zip
            .by_index(i)
            .map_err(|e| entry_refused(archive, &path, &format!("cannot be extracted: {e}")))?;
        let contents = read_capped(archive, &path, entry, declared, declared)?;
        files.push(TreeFile {
            path,
            executable,
            contents,
        });
    }
    Ok(files)
}

/// Counts what comes out of the decompressor and fails past `limit`: the tar reader
/// skips over data it does not return, and that must not be unbounded either.
struct Capped<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(io::Error::other(format!(
                "decompresses to more than {} bytes",
                self.limit
            )));
        }
        Ok(n)
    }
}

pub(super) fn read_tar_gz(archive: &str, bytes: &[u8]) -> Result<Vec<TreeFile>, TreeError> {
    let limit = MAX_BYTES + (MAX_ENTRIES as u64) * 1024 + 1024 * 1024;
    let stream = Capped {
        inner: flate2::read::GzDecoder::new(bytes),
        read: 0,
        limit,
    };
    let mut tar = tar::Archive::new(stream);
    let bad = |e: io::Error| refused(archive, format!("not a readable .tar.gz archive: {e}"));
    let mut files = Vec::new();
    let mut total = 0u64;
    let mut entries_seen = 0usize;
    for entry in tar.entries().map_err(bad)? {
        let entry = entry.map_err(bad)?;
        entries_seen += 1;
        if entries_seen > MAX_ENTRIES {
            return Err(too_many(archive));
        }
        let raw_name = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue;
        }
        let Some(path) = entry_path(archive, &raw_name)? else {
            continue;
        };
        use tar::EntryType as T;
        match kind {
            T::Directory => continue,
            T::Regular | T::Continuous => {}
            T::Symlink => {
                return Err(entry_refused(
                    archive,
                    &path,
                    "is a symlink (a skill has only regular files and folders)",
                ));
            }
            T::Link => {
                return Err(entry_refused(
                    archive,
                    &path,
                    "is a hard link (a skill has only regular files and folders)",
                ));
            }
            T::Char | T::Block | T::Fifo => {
                return Err(entry_refused(
                    archive,
                    &path,
                    "is a device or FIFO (a skill has only regular files and folders)",
                ));
            }
            other => {
                return Err(entry_refused(
                    archive,
                    &path,
                    &format!("has an unsupported entry type ({other:?})"),
                ));
            }
        }
        if files.len() == MAX_FILES {
            return Err(too_many(archive));
        }
        let declared = entry.header().size().map_err(bad)?;
        if declared > MAX_BYTES - total {
            return Err(too_big(&format!("{archive}: {path}")));
        }
        let executable = entry.header().mode().is_ok_and(|m| m & 0o111 != 0);
        let contents = read_capped(archive, &path, entry, declared, MAX_BYTES - total)?;
        total += contents.len() as u64;
        files.push(TreeFile {
            path,
            executable,
            contents,
        });
    }
    Ok(files)
}
