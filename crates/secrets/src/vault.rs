//! The encrypted vault: `state_dir/vault/secrets.enc`.
//!
//! Guarantees:
//! - Secret values are written to disk only inside `secrets.enc`, encrypted with
//!   XChaCha20-Poly1305 under a fresh random 24-byte nonce on every write. The file header
//!   (format, key source, KDF parameters and salt) is authenticated as associated data, so
//!   changing any byte of the file makes it fail to open.
//! - Writes are atomic: a temporary file in the same directory (mode 0600) is written,
//!   fsynced and renamed over `secrets.enc`, then the directory is fsynced. A crash leaves
//!   either the old or the new vault, never a mix.
//! - A wrong key or passphrase, or a modified file, gives [`VaultError::Decrypt`] and the
//!   file is left as it was.
//! - At open, `vault/` (0700), `vault/key` and `vault/secrets.enc` (0600) must belong to
//!   the user running Cordon and must not be accessible to group or others; symlinks are
//!   refused. The error names the `chmod`/`chown` to run.
//!
//! Key source, in order:
//! 1. `CORDON_VAULT_PASSPHRASE`: Argon2id, with the parameters and a random 16-byte salt
//!    stored in the vault header. Defaults ([`KdfParams::default`]) are the OWASP
//!    recommendation: 19 MiB of memory, 2 iterations, 1 lane. Parameters read back from a
//!    file are capped so a modified header cannot make opening exhaust memory.
//! 2. OS keyring: not used. The Linux kernel keyring does not survive a reboot, so it
//!    could only cache a key that has to live somewhere else anyway; desktop keyrings need
//!    a D-Bus session a server does not have. Use the passphrase on machines where the
//!    key file is not acceptable.
//! 3. `vault/key`: 32 random bytes, mode 0600, created on first use.
//!
//! - Every change is a read-modify-write under an exclusive `flock` on `vault/lock`,
//!   starting from the file on disk, so two processes (the gateway and a `cordon secrets`
//!   command) changing the same vault do not lose each other's changes. Reads
//!   ([`Vault::get`], [`Vault::list`]) use the copy loaded at open or at the last change
//!   or [`Vault::reload`].
//!
//! Not guaranteed: protection against someone who runs as the same user (they can read
//! the key file or the process memory); detection of an older `secrets.enc` put back in
//! place (a rollback to a previous valid version decrypts fine); wiping copies of values made inside the JSON and
//! AEAD libraries while a file is being (de)serialized.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use config::HostPattern;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::secret::Secret;

/// Environment variable holding the vault passphrase.
pub const PASSPHRASE_ENV: &str = "CORDON_VAULT_PASSPHRASE";

const MAGIC: &[u8; 8] = b"CORDONV1";
const KDF_KEY_FILE: u8 = 1;
const KDF_ARGON2ID: u8 = 2;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;
/// Upper bounds for KDF parameters read from a file (2 GiB, 64 passes, 16 lanes).
const MAX_M_COST_KIB: u32 = 2 * 1024 * 1024;
const MAX_T_COST: u32 = 64;
const MAX_P_COST: u32 = 16;
/// `mark_used` persists at most this often per secret, so a busy proxy does not rewrite
/// the vault on every request.
const LAST_USED_RESOLUTION: Duration = Duration::from_secs(60);

/// Argon2id parameters for a passphrase-protected vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Number of passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// OWASP's recommended Argon2id setting: m = 19 MiB, t = 2, p = 1.
    fn default() -> KdfParams {
        KdfParams {
            m_cost_kib: 19 * 1024,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

/// Where the vault key comes from.
pub enum KeySource {
    /// Derive the key from a passphrase with Argon2id. `params` apply when the vault is
    /// created; an existing vault uses the parameters stored in its header.
    Passphrase {
        passphrase: Secret,
        params: KdfParams,
    },
    /// The 32-byte key file `vault/key`, created on first use.
    KeyFile,
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Passphrase { params, .. } => f
                .debug_struct("Passphrase")
                .field("passphrase", &"***")
                .field("params", params)
                .finish(),
            KeySource::KeyFile => f.write_str("KeyFile"),
        }
    }
}

impl KeySource {
    /// A passphrase with the default [`KdfParams`].
    pub fn passphrase(passphrase: Secret) -> KeySource {
        KeySource::Passphrase {
            passphrase,
            params: KdfParams::default(),
        }
    }

    /// The passphrase from `CORDON_VAULT_PASSPHRASE` if set, else the key file.
    pub fn from_env() -> Result<KeySource, VaultError> {
        KeySource::from_env_value(std::env::var_os(PASSPHRASE_ENV))
    }

    /// [`KeySource::from_env`] given the variable's value (testable without touching the
    /// process environment).
    pub fn from_env_value(value: Option<std::ffi::OsString>) -> Result<KeySource, VaultError> {
        let Some(value) = value else {
            return Ok(KeySource::KeyFile);
        };
        let value = value
            .into_string()
            .map_err(|_| VaultError::BadPassphraseEnv {
                reason: "it is not valid UTF-8",
            })?;
        if value.is_empty() {
            return Err(VaultError::BadPassphraseEnv {
                reason: "it is empty; unset it to use the key file, or set a passphrase",
            });
        }
        Ok(KeySource::passphrase(Secret::new(value)))
    }
}

/// What went wrong with the vault. Messages say what, where and what to do.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "{} has mode {mode:o}: it is accessible to group or others; run `{fix}`",
        path.display()
    )]
    InsecurePermissions {
        path: PathBuf,
        mode: u32,
        fix: String,
    },
    #[error(
        "{} is owned by uid {owner}, but Cordon runs as uid {me}; run `chown {me} {}` \
         or use a state directory of your own",
        path.display(), path.display()
    )]
    ForeignOwner { path: PathBuf, owner: u32, me: u32 },
    #[error("{} is {what}; replace it with a regular {expected} owned by you", path.display())]
    NotRegular {
        path: PathBuf,
        what: &'static str,
        expected: &'static str,
    },
    #[error(
        "cannot decrypt {}: wrong passphrase or key, or the file was modified. \
         The file was left untouched; check {PASSPHRASE_ENV} or restore vault/key \
         and secrets.enc from the same backup",
        path.display()
    )]
    Decrypt { path: PathBuf },
    #[error("{} is not a readable Cordon vault: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{} is protected by a passphrase; set {PASSPHRASE_ENV} to open it",
        path.display()
    )]
    PassphraseRequired { path: PathBuf },
    #[error(
        "{} is protected by the key file vault/key, not a passphrase; unset \
         {PASSPHRASE_ENV} to open it",
        path.display()
    )]
    KeyFileRequired { path: PathBuf },
    #[error("{PASSPHRASE_ENV} cannot be used: {reason}")]
    BadPassphraseEnv { reason: &'static str },
    #[error("{} must hold exactly 32 bytes but holds {len}; restore it from backup", path.display())]
    BadKeyFile { path: PathBuf, len: u64 },
    #[error("cannot derive the vault key from the passphrase: {reason}")]
    Kdf { reason: String },
    #[error("the operating system's random number generator failed: {reason}")]
    Random { reason: String },
    #[error(
        "secret name `{name}` is invalid: use 1-64 characters A-Z, 0-9 and `_`, \
         starting with a letter (e.g. GITHUB_TOKEN)"
    )]
    InvalidName { name: String },
    #[error("secret `{name}` has an empty value; give it a value")]
    EmptyValue { name: String },
    #[error("no secret named `{name}` in the vault; `cordon secrets list` shows the names")]
    UnknownSecret { name: String },
    #[error("cannot encrypt the vault: {reason}")]
    Encrypt { reason: String },
}

/// What [`Vault::list`] shows about a secret: never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretInfo {
    pub name: String,
    pub hosts: Vec<HostPattern>,
    pub created: SystemTime,
    pub last_used: Option<SystemTime>,
}

#[derive(Clone)]
struct Entry {
    secret: Secret,
    hosts: Vec<HostPattern>,
    created: SystemTime,
    last_used: Option<SystemTime>,
}

/// The encrypted secret store of one state directory. See the module docs.
pub struct Vault {
    dir: PathBuf,
    key: Zeroizing<[u8; KEY_LEN]>,
    /// Bytes before the nonce: magic, key source, KDF parameters and salt. Authenticated.
    header: Vec<u8>,
    entries: BTreeMap<String, Entry>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("dir", &self.dir)
            .field("secrets", &self.entries.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Whether `name` is a valid secret name: `^[A-Z][A-Z0-9_]{0,63}$`.
pub fn is_valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_uppercase()
        && b.iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
}

impl Vault {
    /// Open (or create) the vault of `state_dir`, with the key source from the
    /// environment ([`KeySource::from_env`]).
    pub fn open(state_dir: &Path) -> Result<Vault, VaultError> {
        Vault::open_with(state_dir, KeySource::from_env()?)
    }

    /// Open (or create) the vault of `state_dir` with an explicit key source.
    pub fn open_with(state_dir: &Path, source: KeySource) -> Result<Vault, VaultError> {
        let dir = state_dir.join("vault");
        ensure_dir(&dir)?;
        let file = dir.join("secrets.enc");
        let existing = read_private_file(&file)?;
        let (key, header, body) = match (&existing, source) {
            (None, KeySource::KeyFile) => {
                let key = load_or_create_key_file(&dir.join("key"))?;
                (key, key_file_header(), None)
            }
            (None, KeySource::Passphrase { passphrase, params }) => {
                let mut salt = [0u8; SALT_LEN];
                fill_random(&mut salt)?;
                let key = derive_key(&passphrase, &salt, params)?;
                (key, argon_header(params, &salt), None)
            }
            (Some(bytes), source) => {
                let parsed = parse_header(&file, bytes)?;
                let key = match (parsed.kdf, source) {
                    (Kdf::KeyFile, KeySource::KeyFile) => load_existing_key_file(&dir.join("key"))?,
                    (Kdf::KeyFile, KeySource::Passphrase { .. }) => {
                        return Err(VaultError::KeyFileRequired { path: file });
                    }
                    (Kdf::Argon2id { .. }, KeySource::KeyFile) => {
                        return Err(VaultError::PassphraseRequired { path: file });
                    }
                    (Kdf::Argon2id { params, salt }, KeySource::Passphrase { passphrase, .. }) => {
                        derive_key(&passphrase, &salt, params)?
                    }
                };
                (key, parsed.header.to_vec(), Some(parsed.body))
            }
        };
        let mut vault = Vault {
            dir,
            key,
            header,
            entries: BTreeMap::new(),
        };
        if let (Some(bytes), Some(body_at)) = (&existing, body) {
            vault.entries = vault.decrypt(&file, &bytes[body_at..])?;
        }
        Ok(vault)
    }

    /// The directory holding the vault files (`state_dir/vault`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Store (or replace) a secret bound to `hosts`, and write the vault.
    pub fn set(
        &mut self,
        name: &str,
        secret: Secret,
        hosts: Vec<HostPattern>,
    ) -> Result<(), VaultError> {
        if !is_valid_name(name) {
            return Err(VaultError::InvalidName {
                name: name.to_string(),
            });
        }
        if secret.is_empty() {
            return Err(VaultError::EmptyValue {
                name: name.to_string(),
            });
        }
        self.update(|entries| {
            entries.insert(
                name.to_string(),
                Entry {
                    secret,
                    hosts,
                    created: SystemTime::now(),
                    last_used: None,
                },
            );
        })
    }

    /// Delete a secret and write the vault. `Ok(false)` when there was none by that name.
    pub fn remove(&mut self, name: &str) -> Result<bool, VaultError> {
        self.update(|entries| entries.remove(name).is_some())
    }

    /// Re-read the vault file, to see changes made by another process.
    pub fn reload(&mut self) -> Result<(), VaultError> {
        let _lock = self.lock()?;
        self.entries = self.read_entries()?;
        Ok(())
    }

    /// Names, hosts and times of all secrets, sorted by name. Never values.
    pub fn list(&self) -> Vec<SecretInfo> {
        self.entries
            .iter()
            .map(|(name, e)| SecretInfo {
                name: name.clone(),
                hosts: e.hosts.clone(),
                created: e.created,
                last_used: e.last_used,
            })
            .collect()
    }

    /// The value and hosts of a secret.
    pub fn get(&self, name: &str) -> Option<(Secret, Vec<HostPattern>)> {
        self.entries
            .get(name)
            .map(|e| (e.secret.clone(), e.hosts.clone()))
    }

    /// Record that a secret was used now. The vault file is rewritten only when the
    /// stored time is more than a minute old, so heavy use does not mean heavy writes.
    pub fn mark_used(&mut self, name: &str) -> Result<(), VaultError> {
        let now = SystemTime::now();
        let Some(entry) = self.entries.get(name) else {
            return Err(VaultError::UnknownSecret {
                name: name.to_string(),
            });
        };
        let stale = match entry.last_used {
            None => true,
            Some(t) => now.duration_since(t).unwrap_or_default() >= LAST_USED_RESOLUTION,
        };
        if !stale {
            return Ok(());
        }
        self.update(|entries| {
            if let Some(e) = entries.get_mut(name) {
                e.last_used = Some(now);
            }
        })
    }

    /// Read-modify-write under the vault lock, starting from the file on disk so changes
    /// made by another process since we opened are kept, not overwritten.
    fn update<R>(
        &mut self,
        change: impl FnOnce(&mut BTreeMap<String, Entry>) -> R,
    ) -> Result<R, VaultError> {
        let _lock = self.lock()?;
        let mut next = self.read_entries()?;
        let result = change(&mut next);
        self.save(&next)?;
        self.entries = next;
        Ok(result)
    }

    /// An exclusive `flock` on `vault/lock`, released when the file is dropped.
    fn lock(&self) -> Result<File, VaultError> {
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
            .map_err(io_err("open the lock file", &path))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_err("lock", &path)(e.into()))?;
        Ok(file)
    }

    /// The entries currently on disk (empty when there is no vault file yet).
    fn read_entries(&self) -> Result<BTreeMap<String, Entry>, VaultError> {
        let file = self.dir.join("secrets.enc");
        let Some(bytes) = read_private_file(&file)? else {
            return Ok(BTreeMap::new());
        };
        let parsed = parse_header(&file, &bytes)?;
        if parsed.header != self.header.as_slice() {
            return Err(VaultError::Corrupt {
                path: file,
                reason: "it was re-created with another key since it was opened; open it \
                         again"
                    .into(),
            });
        }
        self.decrypt(&file, &bytes[parsed.body..])
    }

    fn decrypt(&self, path: &Path, body: &[u8]) -> Result<BTreeMap<String, Entry>, VaultError> {
        let (nonce, ciphertext) = body.split_at(NONCE_LEN.min(body.len()));
        if nonce.len() != NONCE_LEN {
            return Err(VaultError::Corrupt {
                path: path.to_path_buf(),
                reason: "the file is truncated".into(),
            });
        }
        let cipher = XChaCha20Poly1305::new(self.key.as_ref().into());
        let plain = Zeroizing::new(
            cipher
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: ciphertext,
                        aad: &self.header,
                    },
                )
                .map_err(|_| VaultError::Decrypt {
                    path: path.to_path_buf(),
                })?,
        );
        let stored: StoredIn = serde_json::from_slice(&plain).map_err(|e| VaultError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("decrypted contents are malformed ({e})"),
        })?;
        let mut entries = BTreeMap::new();
        for (name, rec) in stored.secrets {
            if !is_valid_name(&name) {
                return Err(VaultError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!("invalid secret name `{name}`"),
                });
            }
            let mut hosts = Vec::with_capacity(rec.hosts.len());
            for h in &rec.hosts {
                hosts.push(HostPattern::parse(h).map_err(|e| VaultError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!("secret `{name}`: {e}"),
                })?);
            }
            entries.insert(
                name,
                Entry {
                    secret: rec.value,
                    hosts,
                    created: from_unix(rec.created),
                    last_used: rec.last_used.map(from_unix),
                },
            );
        }
        Ok(entries)
    }

    /// Encrypt `entries` and atomically replace `secrets.enc`.
    fn save(&self, entries: &BTreeMap<String, Entry>) -> Result<(), VaultError> {
        let path = self.dir.join("secrets.enc");
        let out = StoredOut {
            version: 1,
            secrets: entries
                .iter()
                .map(|(name, e)| {
                    (
                        name.as_str(),
                        RecordOut {
                            value: e.secret.expose(),
                            hosts: e.hosts.iter().map(|h| h.to_string()).collect(),
                            created: to_unix(e.created),
                            last_used: e.last_used.map(to_unix),
                        },
                    )
                })
                .collect(),
        };
        // Sized up front so serialization does not reallocate and leave unwiped copies.
        let estimate: usize = entries
            .iter()
            .map(|(n, e)| n.len() + e.secret.len() * 6 + 64 * (e.hosts.len() + 2))
            .sum::<usize>()
            + 64;
        let mut plain = Zeroizing::new(Vec::with_capacity(estimate));
        serde_json::to_writer(&mut *plain, &out).map_err(|e| VaultError::Encrypt {
            reason: e.to_string(),
        })?;
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let cipher = XChaCha20Poly1305::new(self.key.as_ref().into());
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &self.header,
                },
            )
            .map_err(|_| VaultError::Encrypt {
                reason: "the cipher refused the input".into(),
            })?;
        let mut bytes = Vec::with_capacity(self.header.len() + NONCE_LEN + ciphertext.len());
        bytes.extend_from_slice(&self.header);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ciphertext);
        write_atomic(&path, &bytes)
    }
}

#[derive(Serialize)]
struct StoredOut<'a> {
    version: u32,
    secrets: BTreeMap<&'a str, RecordOut<'a>>,
}

#[derive(Serialize)]
struct RecordOut<'a> {
    value: &'a str,
    hosts: Vec<String>,
    created: u64,
    last_used: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredIn {
    #[allow(dead_code)]
    version: u32,
    secrets: BTreeMap<String, RecordIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordIn {
    #[serde(deserialize_with = "secret_from_string")]
    value: Secret,
    hosts: Vec<String>,
    created: u64,
    last_used: Option<u64>,
}

fn secret_from_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
    String::deserialize(d).map(Secret::new)
}

fn to_unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn from_unix(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

enum Kdf {
    KeyFile,
    Argon2id {
        params: KdfParams,
        salt: [u8; SALT_LEN],
    },
}

struct ParsedHeader<'a> {
    kdf: Kdf,
    header: &'a [u8],
    /// Offset of the nonce.
    body: usize,
}

fn key_file_header() -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.push(KDF_KEY_FILE);
    h
}

fn argon_header(params: KdfParams, salt: &[u8; SALT_LEN]) -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.push(KDF_ARGON2ID);
    h.extend_from_slice(&params.m_cost_kib.to_le_bytes());
    h.extend_from_slice(&params.t_cost.to_le_bytes());
    h.extend_from_slice(&params.p_cost.to_le_bytes());
    h.extend_from_slice(salt);
    h
}

fn parse_header<'a>(path: &Path, bytes: &'a [u8]) -> Result<ParsedHeader<'a>, VaultError> {
    let corrupt = |reason: &str| VaultError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if bytes.len() < MAGIC.len() + 1 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt("it does not start with the vault signature"));
    }
    let at = MAGIC.len() + 1;
    match bytes[MAGIC.len()] {
        KDF_KEY_FILE => Ok(ParsedHeader {
            kdf: Kdf::KeyFile,
            header: &bytes[..at],
            body: at,
        }),
        KDF_ARGON2ID => {
            let end = at + 12 + SALT_LEN;
            let Some(fields) = bytes.get(at..end) else {
                return Err(corrupt("the header is truncated"));
            };
            let word = |i: usize| {
                let mut w = [0u8; 4];
                w.copy_from_slice(&fields[i * 4..i * 4 + 4]);
                u32::from_le_bytes(w)
            };
            let params = KdfParams {
                m_cost_kib: word(0),
                t_cost: word(1),
                p_cost: word(2),
            };
            if params.m_cost_kib > MAX_M_COST_KIB
                || params.t_cost > MAX_T_COST
                || params.p_cost > MAX_P_COST
            {
                return Err(corrupt("the key derivation parameters are out of range"));
            }
            let mut salt = [0u8; SALT_LEN];
            salt.copy_from_slice(&fields[12..]);
            Ok(ParsedHeader {
                kdf: Kdf::Argon2id { params, salt },
                header: &bytes[..end],
                body: end,
            })
        }
        _ => Err(corrupt("unknown key source in the header")),
    }
}

fn derive_key(
    passphrase: &Secret,
    salt: &[u8; SALT_LEN],
    params: KdfParams,
) -> Result<Zeroizing<[u8; KEY_LEN]>, VaultError> {
    let kdf_err = |e: argon2::Error| VaultError::Kdf {
        reason: e.to_string(),
    };
    let p = argon2::Params::new(
        params.m_cost_kib,
        params.t_cost,
        params.p_cost,
        Some(KEY_LEN),
    )
    .map_err(kdf_err)?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    argon
        .hash_password_into(passphrase.expose_bytes(), salt, key.as_mut())
        .map_err(kdf_err)?;
    Ok(key)
}

fn fill_random(buf: &mut [u8]) -> Result<(), VaultError> {
    getrandom::fill(buf).map_err(|e| VaultError::Random {
        reason: e.to_string(),
    })
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> VaultError {
    let path = path.to_path_buf();
    move |source| VaultError::Io {
        action,
        path,
        source,
    }
}

/// Refuse foreign owners and any group/other permission bits.
fn check_private(path: &Path, meta: &fs::Metadata, is_dir: bool) -> Result<(), VaultError> {
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(VaultError::ForeignOwner {
            path: path.to_path_buf(),
            owner: meta.uid(),
            me,
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        let want = if is_dir { "700" } else { "600" };
        return Err(VaultError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
            fix: format!("chmod {want} {}", path.display()),
        });
    }
    Ok(())
}

/// Create `dir` (and missing parents) as 0700, or check the existing one.
fn ensure_dir(dir: &Path) -> Result<(), VaultError> {
    match fs::symlink_metadata(dir) {
        Ok(meta) => {
            if !meta.is_dir() {
                return Err(VaultError::NotRegular {
                    path: dir.to_path_buf(),
                    what: if meta.file_type().is_symlink() {
                        "a symbolic link"
                    } else {
                        "not a directory"
                    },
                    expected: "directory",
                });
            }
            check_private(dir, &meta, true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err("create the vault directory", dir)),
        Err(e) => Err(io_err("inspect", dir)(e)),
    }
}

/// Open without following symlinks and check the opened file itself.
fn open_private(path: &Path) -> Result<Option<File>, VaultError> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(VaultError::NotRegular {
                    path: path.to_path_buf(),
                    what: "a symbolic link",
                    expected: "file",
                });
            }
            return Err(io_err("open", path)(e));
        }
    };
    let meta = file.metadata().map_err(io_err("inspect", path))?;
    if !meta.is_file() {
        return Err(VaultError::NotRegular {
            path: path.to_path_buf(),
            what: "not a regular file",
            expected: "file",
        });
    }
    check_private(path, &meta, false)?;
    Ok(Some(file))
}

fn read_private_file(path: &Path) -> Result<Option<Vec<u8>>, VaultError> {
    let Some(mut file) = open_private(path)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io_err("read", path))?;
    Ok(Some(bytes))
}

fn load_existing_key_file(path: &Path) -> Result<Zeroizing<[u8; KEY_LEN]>, VaultError> {
    let Some(mut file) = open_private(path)? else {
        return Err(VaultError::Io {
            action: "open the key file of the existing vault",
            path: path.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::NotFound,
                "it is missing; restore it from backup (without it the vault cannot be read)",
            ),
        });
    };
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    let len = file.metadata().map_err(io_err("inspect", path))?.len();
    if len != KEY_LEN as u64 {
        return Err(VaultError::BadKeyFile {
            path: path.to_path_buf(),
            len,
        });
    }
    file.read_exact(key.as_mut())
        .map_err(io_err("read", path))?;
    Ok(key)
}

fn load_or_create_key_file(path: &Path) -> Result<Zeroizing<[u8; KEY_LEN]>, VaultError> {
    if fs::symlink_metadata(path).is_ok() {
        return load_existing_key_file(path);
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    fill_random(key.as_mut())?;
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    let mut file = match created {
        Ok(f) => f,
        // Another process created it first: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return load_existing_key_file(path);
        }
        Err(e) => return Err(io_err("create the key file", path)(e)),
    };
    let written = file.write_all(key.as_ref()).and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(path);
        return Err(io_err("write the key file", path)(e));
    }
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(key)
}

fn sync_dir(dir: &Path) -> Result<(), VaultError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync", dir))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
    config::atomic_write(path, bytes, 0o600).map_err(|e| VaultError::Io {
        action: e.step,
        path: e.path,
        source: e.source,
    })
}
