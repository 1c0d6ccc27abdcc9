//! Root key backups: the key file formats, passphrase wrapping, and writing key files.
//!
//! Contract:
//! - Two text formats, told apart by their first line. **Plain** is exactly what `root.key`
//!   holds: `gateway-root-key v1`, then the key as 64 hex digits. **Wrapped** (version 1):
//!
//!   ```text
//!   gateway-root-key-wrapped v1
//!   argon2id m=65536 t=3 p=1
//!   salt <16 bytes, hex>
//!   nonce <24 bytes, hex>
//!   sealed <48 bytes, hex>
//!   ```
//!
//!   The wrapping key is Argon2id (version 0x13) of the passphrase's UTF-8 bytes, exactly as
//!   given, with the salt and the recorded memory (KiB), passes and lanes; 32 bytes.
//!   `sealed` is XChaCha20-Poly1305 under that key and the nonce of the 32-byte root key,
//!   with the tag, and with the first three lines (each ending in `\n`, hex in lower case)
//!   as associated data: the header, the parameters and the salt cannot be changed without
//!   failing authentication. Every export draws a fresh salt and nonce.
//! - [`load_key_file`] (and [`parse_key_text`]) return a key only after every check passed:
//!   known header and version, every line present, in order and well formed, Argon2
//!   parameters within [`KdfParams::MAX_MEMORY_KIB`] and friends (a crafted file cannot make
//!   us allocate without bound), and the AEAD tag. A wrong passphrase and an altered file are
//!   the same failure ([`FormatError::WrongPassphrase`]); an AEAD cannot tell them apart.
//! - Unknown versions are refused, never guessed at; a passphrase given for a plain file is
//!   ignored, a wrapped file without one is [`FormatError::PassphraseRequired`].
//! - Key files are only ever written new ([`write_new_private`]: create-new, mode 0600,
//!   fsynced with their directory); [`install`] never replaces a different key.
//! - Key material and passphrases are never formatted into errors or `Debug` output.

use std::io::Write;
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use super::keys::KEY_FILE_HEADER;
use super::{decode_hex, encode_hex, random_bytes, CryptoError, RootKey};

/// First line of the passphrase-wrapped format.
pub const WRAPPED_HEADER: &str = "gateway-root-key-wrapped v1";
/// The environment variable the command line reads a passphrase from.
pub const PASSPHRASE_ENV: &str = "GATEWAY_KEY_PASSPHRASE";

const PLAIN_PREFIX: &str = "gateway-root-key v";
const WRAPPED_PREFIX: &str = "gateway-root-key-wrapped v";
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const SEALED_LEN: usize = 32 + 16;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    // The causes are part of the message (and not also `source()`), so an error chain
    // printed whole says each thing once.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: {error}", path.display())]
    Format { path: PathBuf, error: FormatError },
    #[error("{} already exists: refusing to overwrite it", path.display())]
    Exists { path: PathBuf },
    #[error(
        "{} holds a different root key: refusing to replace it (objects stored under it would become unreadable); move it away first if you really mean to",
        path.display()
    )]
    DifferentKey { path: PathBuf },
    #[error("cannot wrap the key: {0}")]
    Wrap(FormatError),
    #[error("passphrase file {}: {reason}", path.display())]
    Passphrase { path: PathBuf, reason: String },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// What is wrong with a key file's contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("not a gateway root key file (the first line is neither `{KEY_FILE_HEADER}` nor `{WRAPPED_HEADER}`)")]
    Unknown,
    #[error("unsupported key file version `{0}` (this gateway reads `{KEY_FILE_HEADER}` and `{WRAPPED_HEADER}`)")]
    UnsupportedVersion(String),
    #[error("truncated or malformed: {0}")]
    Malformed(String),
    #[error("Argon2 parameters {0} are out of the accepted range (m 8..=4194304 KiB, t 1..=64, p 1..=16)")]
    Params(String),
    #[error("the key is wrapped with a passphrase, and none was given (--passphrase-file FILE or {PASSPHRASE_ENV})")]
    PassphraseRequired,
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    #[error("wrong passphrase, or the file was altered (authentication failed)")]
    WrongPassphrase,
    #[error("key derivation failed: {0}")]
    Kdf(String),
}

/// Argon2id cost parameters, recorded in every wrapped file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub passes: u32,
    /// Lanes.
    pub lanes: u32,
}

impl KdfParams {
    /// The most memory a file may ask for: 4 GiB.
    pub const MAX_MEMORY_KIB: u32 = 4 << 20;
    pub const MAX_PASSES: u32 = 64;
    pub const MAX_LANES: u32 = 16;

    fn check(&self) -> Result<Params, FormatError> {
        let bad = || FormatError::Params(self.render());
        if self.memory_kib > Self::MAX_MEMORY_KIB
            || !(1..=Self::MAX_PASSES).contains(&self.passes)
            || !(1..=Self::MAX_LANES).contains(&self.lanes)
        {
            return Err(bad());
        }
        Params::new(self.memory_kib, self.passes, self.lanes, Some(32)).map_err(|_| bad())
    }

    fn render(&self) -> String {
        format!(
            "argon2id m={} t={} p={}",
            self.memory_kib, self.passes, self.lanes
        )
    }

    fn parse(line: &str) -> Result<KdfParams, FormatError> {
        let bad =
            || FormatError::Malformed(format!("expected `argon2id m=N t=N p=N`, got `{line}`"));
        let mut words = line.split(' ');
        if words.next() != Some("argon2id") {
            return Err(bad());
        }
        let mut field = |name: &str| -> Result<u32, FormatError> {
            words
                .next()
                .and_then(|w| w.strip_prefix(name))
                .and_then(|v| v.parse().ok())
                .ok_or_else(bad)
        };
        let p = KdfParams {
            memory_kib: field("m=")?,
            passes: field("t=")?,
            lanes: field("p=")?,
        };
        if words.next().is_some() {
            return Err(bad());
        }
        Ok(p)
    }
}

impl Default for KdfParams {
    /// m = 64 MiB, t = 3, p = 1: about a fifth of a second on a current core.
    fn default() -> Self {
        KdfParams {
            memory_kib: 64 << 10,
            passes: 3,
            lanes: 1,
        }
    }
}

/// The backup text of `key`: plain without a passphrase, wrapped (default parameters) with one.
pub fn export_text(key: &RootKey, passphrase: Option<&str>) -> Result<String, BackupError> {
    match passphrase {
        None => Ok(key.key_file_text()),
        Some(p) => wrap(key, p, KdfParams::default()),
    }
}

/// The wrapped form of `key` under `passphrase`, with a fresh salt and nonce.
pub fn wrap(key: &RootKey, passphrase: &str, params: KdfParams) -> Result<String, BackupError> {
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    random_bytes(&mut salt)?;
    random_bytes(&mut nonce)?;
    let kek = derive(passphrase, &salt, params).map_err(BackupError::Wrap)?;
    let aad = wrapped_aad(params, &salt);
    let sealed = XChaCha20Poly1305::new((&kek).into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: key.bytes(),
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| CryptoError::Authentication)?;
    Ok(format!(
        "{aad}nonce {}\nsealed {}\n",
        encode_hex(&nonce),
        encode_hex(&sealed)
    ))
}

/// Reads a key file in either format (the `gateway recover --key-file` and
/// `gateway key import` entry point).
pub fn load_key_file(path: &Path, passphrase: Option<&str>) -> Result<RootKey, BackupError> {
    let text = std::fs::read_to_string(path).map_err(|error| BackupError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    parse_key_text(&text, passphrase).map_err(|error| BackupError::Format {
        path: path.to_path_buf(),
        error,
    })
}

/// Parses a key file's text in either format.
pub fn parse_key_text(text: &str, passphrase: Option<&str>) -> Result<RootKey, FormatError> {
    let first = text.lines().next().unwrap_or("").trim_end();
    if first == KEY_FILE_HEADER {
        return RootKey::from_key_file_text(text).map_err(|e| FormatError::Malformed(e.into()));
    }
    if first == WRAPPED_HEADER {
        return unwrap(text, passphrase);
    }
    if first.starts_with(WRAPPED_PREFIX) || first.starts_with(PLAIN_PREFIX) {
        return Err(FormatError::UnsupportedVersion(first.to_string()));
    }
    Err(FormatError::Unknown)
}

fn unwrap(text: &str, passphrase: Option<&str>) -> Result<RootKey, FormatError> {
    let mut lines = text.lines().skip(1).map(str::trim_end);
    let mut next = |what: &str| {
        lines
            .next()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| FormatError::Malformed(format!("the {what} line is missing")))
    };
    let params = KdfParams::parse(next("argon2id")?)?;
    let salt: [u8; SALT_LEN] = hex_field(next("salt")?, "salt")?;
    let nonce: [u8; NONCE_LEN] = hex_field(next("nonce")?, "nonce")?;
    let sealed: [u8; SEALED_LEN] = hex_field(next("sealed")?, "sealed")?;
    if lines.any(|l| !l.is_empty()) {
        return Err(FormatError::Malformed(
            "unexpected text after the sealed line".into(),
        ));
    }
    params.check()?;
    let passphrase = passphrase.ok_or(FormatError::PassphraseRequired)?;
    let kek = derive(passphrase, &salt, params)?;
    let aad = wrapped_aad(params, &salt);
    let plain = XChaCha20Poly1305::new((&kek).into())
        .decrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &sealed,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| FormatError::WrongPassphrase)?;
    let bytes: [u8; 32] = plain
        .as_slice()
        .try_into()
        .map_err(|_| FormatError::WrongPassphrase)?;
    Ok(RootKey::from_bytes(bytes))
}

/// `name <hex>` with exactly `N` bytes.
fn hex_field<const N: usize>(line: &str, name: &str) -> Result<[u8; N], FormatError> {
    line.strip_prefix(name)
        .and_then(|r| r.strip_prefix(' '))
        .and_then(decode_hex)
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| FormatError::Malformed(format!("expected `{name} <{} hex digits>`", 2 * N)))
}

/// The authenticated header: the first three lines, canonical spelling.
fn wrapped_aad(params: KdfParams, salt: &[u8; SALT_LEN]) -> String {
    format!(
        "{WRAPPED_HEADER}\n{}\nsalt {}\n",
        params.render(),
        encode_hex(salt)
    )
}

fn derive(passphrase: &str, salt: &[u8], params: KdfParams) -> Result<[u8; 32], FormatError> {
    if passphrase.is_empty() {
        return Err(FormatError::EmptyPassphrase);
    }
    let p = params.check()?;
    // Our own block buffer: the crate's allocating helper would pull in its password-hash
    // feature, which we do not need.
    let mut blocks = vec![Block::default(); p.block_count()];
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, p)
        .hash_password_into_with_memory(passphrase.as_bytes(), salt, &mut out, &mut blocks)
        .map_err(|e| FormatError::Kdf(e.to_string()))?;
    Ok(out)
}

/// Reads a passphrase file: its text without one trailing newline. Empty is refused.
pub fn read_passphrase_file(path: &Path) -> Result<String, BackupError> {
    let bad = |reason: String| BackupError::Passphrase {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let p = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if p.is_empty() {
        return Err(bad("empty".into()));
    }
    Ok(p.to_string())
}

/// Writes `text` to a new file, mode 0600, fsynced with its directory. An existing file is
/// [`BackupError::Exists`] and left alone.
pub fn write_new_private(path: &Path, text: &str) -> Result<(), BackupError> {
    let io = |error: std::io::Error| {
        if error.kind() == std::io::ErrorKind::AlreadyExists {
            BackupError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            BackupError::Io {
                path: path.to_path_buf(),
                error,
            }
        }
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = std::fs::File::open(dir) {
        d.sync_all().map_err(io)?;
    }
    Ok(())
}

/// What [`install`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// The key file was written.
    Written,
    /// The key file already held this very key; nothing was written.
    AlreadyPresent,
}

/// Makes `key_file` hold `key` (plain format, mode 0600). An existing key file is never
/// replaced: the same key is [`Installed::AlreadyPresent`], another key (or a file that is
/// not a plain key file) is an error.
pub fn install(key: &RootKey, key_file: &Path) -> Result<Installed, BackupError> {
    match std::fs::read_to_string(key_file) {
        Ok(text) => match RootKey::from_key_file_text(&text) {
            Ok(existing) if existing.bytes() == key.bytes() => Ok(Installed::AlreadyPresent),
            Ok(_) => Err(BackupError::DifferentKey {
                path: key_file.to_path_buf(),
            }),
            Err(reason) => Err(BackupError::Format {
                path: key_file.to_path_buf(),
                error: FormatError::Malformed(format!("{reason}; refusing to replace it")),
            }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_new_private(key_file, &key.key_file_text())?;
            Ok(Installed::Written)
        }
        Err(error) => Err(BackupError::Io {
            path: key_file.to_path_buf(),
            error,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small parameters keep the tests fast; the defaults are exercised once.
    const FAST: KdfParams = KdfParams {
        memory_kib: 64,
        passes: 1,
        lanes: 1,
    };

    fn key() -> RootKey {
        RootKey::from_bytes([0x5a; 32])
    }

    #[test]
    fn plain_is_the_root_key_file_format() {
        let dir = tempfile::tempdir().unwrap();
        let saved = dir.path().join("root.key");
        key().save_new(&saved).unwrap();
        let text = export_text(&key(), None).unwrap();
        assert_eq!(text, std::fs::read_to_string(&saved).unwrap());
        let back = parse_key_text(&text, Some("ignored for plain files")).unwrap();
        assert_eq!(back.bytes(), key().bytes());
    }

    #[test]
    fn wrapped_round_trip_with_default_parameters() {
        let text = export_text(&key(), Some("correct horse")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(lines[0], WRAPPED_HEADER);
        assert_eq!(lines[1], "argon2id m=65536 t=3 p=1");
        assert!(lines[2].starts_with("salt ") && lines[2].len() == 5 + 32);
        assert!(lines[3].starts_with("nonce ") && lines[3].len() == 6 + 48);
        assert!(lines[4].starts_with("sealed ") && lines[4].len() == 7 + 96);
        assert!(!text.contains(&encode_hex(key().bytes())));
        let back = parse_key_text(&text, Some("correct horse")).unwrap();
        assert_eq!(back.bytes(), key().bytes());
    }

    #[test]
    fn two_exports_differ_and_both_open() {
        let a = wrap(&key(), "pw", FAST).unwrap();
        let b = wrap(&key(), "pw", FAST).unwrap();
        assert_ne!(a, b);
        for t in [a, b] {
            assert_eq!(
                parse_key_text(&t, Some("pw")).unwrap().bytes(),
                key().bytes()
            );
        }
    }

    #[test]
    fn wrong_or_missing_passphrase_fails_clearly() {
        let text = wrap(&key(), "right", FAST).unwrap();
        let err = parse_key_text(&text, Some("wrong")).unwrap_err();
        assert_eq!(err, FormatError::WrongPassphrase);
        assert!(err.to_string().contains("wrong passphrase"), "{err}");
        assert_eq!(
            parse_key_text(&text, None).unwrap_err(),
            FormatError::PassphraseRequired
        );
        assert_eq!(
            parse_key_text(&text, Some("")).unwrap_err(),
            FormatError::EmptyPassphrase
        );
    }

    #[test]
    fn any_tampering_fails() {
        let text = wrap(&key(), "pw", FAST).unwrap();
        // Flip one hex digit in each of salt, nonce and sealed.
        for prefix in ["salt ", "nonce ", "sealed "] {
            let at = text.find(prefix).unwrap() + prefix.len() + 3;
            let mut bad = text.clone().into_bytes();
            bad[at] = if bad[at] == b'0' { b'1' } else { b'0' };
            let bad = String::from_utf8(bad).unwrap();
            assert_eq!(
                parse_key_text(&bad, Some("pw")).unwrap_err(),
                FormatError::WrongPassphrase,
                "{prefix}"
            );
        }
        // Other (valid) parameters are part of the authenticated header.
        let bad = text.replace("argon2id m=64 t=1", "argon2id m=64 t=2");
        assert_eq!(
            parse_key_text(&bad, Some("pw")).unwrap_err(),
            FormatError::WrongPassphrase
        );
        let extra = format!("{text}sealed 00\n");
        assert!(matches!(
            parse_key_text(&extra, Some("pw")),
            Err(FormatError::Malformed(_))
        ));
    }

    #[test]
    fn truncated_files_fail() {
        let text = wrap(&key(), "pw", FAST).unwrap();
        // Every cut short of the whole text (bar a missing final newline) is refused.
        for cut in 0..text.len() - 1 {
            let r = parse_key_text(&text[..cut], Some("pw"));
            assert!(r.is_err(), "cut at {cut} accepted");
        }
        let plain = export_text(&key(), None).unwrap();
        assert!(matches!(
            parse_key_text(&plain[..40], None),
            Err(FormatError::Malformed(_))
        ));
        assert_eq!(parse_key_text("", None).unwrap_err(), FormatError::Unknown);
    }

    #[test]
    fn unknown_versions_and_formats_are_refused() {
        let text = wrap(&key(), "pw", FAST).unwrap();
        let v2 = text.replace(WRAPPED_HEADER, "gateway-root-key-wrapped v2");
        assert_eq!(
            parse_key_text(&v2, Some("pw")).unwrap_err(),
            FormatError::UnsupportedVersion("gateway-root-key-wrapped v2".into())
        );
        let plain_v2 = export_text(&key(), None)
            .unwrap()
            .replace(KEY_FILE_HEADER, "gateway-root-key v2");
        assert!(matches!(
            parse_key_text(&plain_v2, None),
            Err(FormatError::UnsupportedVersion(_))
        ));
        assert_eq!(
            parse_key_text("-----BEGIN PRIVATE KEY-----\n", None).unwrap_err(),
            FormatError::Unknown
        );
        let scrypt = text.replace("argon2id m=64", "scrypt m=64");
        assert!(matches!(
            parse_key_text(&scrypt, Some("pw")),
            Err(FormatError::Malformed(_))
        ));
    }

    #[test]
    fn out_of_range_parameters_are_refused_before_deriving() {
        let text = wrap(&key(), "pw", FAST).unwrap();
        for params in ["m=4294967295 t=1 p=1", "m=64 t=1000 p=1", "m=64 t=1 p=0"] {
            let bad = text.replace("m=64 t=1 p=1", params);
            assert!(
                matches!(
                    parse_key_text(&bad, Some("pw")),
                    Err(FormatError::Params(_))
                ),
                "{params}"
            );
        }
    }

    #[test]
    fn files_are_written_new_private_and_installed_without_replacing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("backup.txt");
        write_new_private(&out, "x").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&out).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            write_new_private(&out, "y"),
            Err(BackupError::Exists { .. })
        ));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "x");

        let key_file = dir.path().join("root.key");
        assert_eq!(install(&key(), &key_file).unwrap(), Installed::Written);
        assert_eq!(
            install(&key(), &key_file).unwrap(),
            Installed::AlreadyPresent
        );
        let other = RootKey::from_bytes([1; 32]);
        assert!(matches!(
            install(&other, &key_file),
            Err(BackupError::DifferentKey { .. })
        ));
        assert_eq!(
            load_key_file(&key_file, None).unwrap().bytes(),
            key().bytes()
        );
    }

    #[test]
    fn passphrase_files_lose_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pass");
        for (text, want) in [
            ("pw\n", "pw"),
            ("pw\r\n", "pw"),
            ("pw", "pw"),
            (" pw \n\n", " pw \n"),
        ] {
            std::fs::write(&p, text).unwrap();
            assert_eq!(read_passphrase_file(&p).unwrap(), want);
        }
        std::fs::write(&p, "\n").unwrap();
        assert!(read_passphrase_file(&p).is_err());
    }

    #[test]
    fn errors_never_show_key_material() {
        let text = wrap(&key(), "secret-pass", FAST).unwrap();
        let err = parse_key_text(&text, Some("nope")).unwrap_err();
        let dbg = format!("{err:?} {err}");
        assert!(
            !dbg.contains("secret-pass") && !dbg.contains("5a5a"),
            "{dbg}"
        );
    }
}
