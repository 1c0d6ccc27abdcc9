//! `gateway key export` / `gateway key import`, and the first-start warning that points at
//! them.
//!
//! Contract:
//! - The key file of a data directory is found the way `gateway run` finds it (the config's
//!   `key_file`, default `DATA_DIR/root.key`), but nothing is ever created by looking: a
//!   data directory without a config file simply has its key at `DATA_DIR/root.key`.
//! - Export reads the key file and never changes anything in the data directory. Import
//!   writes only the key file, and only when there is none or it already holds the same key
//!   (formats and checks: [`crate::crypto::backup`]).
//! - A passphrase comes from `--passphrase-file` (one trailing newline dropped), else from
//!   [`PASSPHRASE_ENV`] when set and not empty; never from the command line itself, where
//!   every user of the machine could read it.

use std::path::{Path, PathBuf};

use super::{create_private_dir, io_err, AppError};
use crate::config::{Config, CONFIG_FILE, KEY_FILE};
use crate::crypto::backup::{self, BackupError, Installed, PASSPHRASE_ENV};

/// Where the root key of `data_dir` lives, per its configuration (read, never created).
pub fn key_file_for(data_dir: &Path, config_file: Option<&Path>) -> Result<PathBuf, AppError> {
    let (path, explicit) = match config_file {
        Some(p) => (p.to_path_buf(), true),
        None => (data_dir.join(CONFIG_FILE), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Config::parse(&text, data_dir)?.key_file),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            Ok(data_dir.join(KEY_FILE))
        }
        Err(e) => Err(io_err(&path)(e)),
    }
}

/// The passphrase: from `file` when given, else from [`PASSPHRASE_ENV`], else none.
pub fn passphrase(file: Option<&Path>) -> Result<Option<String>, BackupError> {
    if let Some(f) = file {
        return backup::read_passphrase_file(f).map(Some);
    }
    Ok(std::env::var(PASSPHRASE_ENV).ok().filter(|p| !p.is_empty()))
}

/// A backup ready to be written out.
pub struct Exported {
    /// The key file it was read from.
    pub key_file: PathBuf,
    /// The backup's text (plain or wrapped).
    pub text: String,
    pub wrapped: bool,
}

/// Reads the data directory's root key and renders its backup.
pub fn export(
    data_dir: &Path,
    config_file: Option<&Path>,
    passphrase: Option<&str>,
) -> Result<Exported, AppError> {
    let key_file = key_file_for(data_dir, config_file)?;
    let key = backup::load_key_file(&key_file, None)?;
    Ok(Exported {
        text: backup::export_text(&key, passphrase)?,
        wrapped: passphrase.is_some(),
        key_file,
    })
}

/// Installs the key of the backup `file` (either format) as the data directory's root key,
/// creating the data directory (mode 0700) if needed. Returns the key file and what was done.
pub fn import(
    file: &Path,
    data_dir: &Path,
    config_file: Option<&Path>,
    passphrase: Option<&str>,
) -> Result<(PathBuf, Installed), AppError> {
    // The backup is checked (and unwrapped) before anything is created.
    let key = backup::load_key_file(file, passphrase)?;
    let key_file = key_file_for(data_dir, config_file)?;
    if let Some(dir) = key_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let done = backup::install(&key, &key_file)?;
    Ok((key_file, done))
}

/// The lines `gateway run` prints on stderr when it has just generated a root key.
pub fn new_key_warning(key_file: &Path, data_dir: &Path, config_file: Option<&Path>) -> String {
    let mut export = format!("gateway key export --data-dir {}", shell_word(data_dir));
    if let Some(c) = config_file {
        export.push_str(&format!(" --config {}", shell_word(c)));
    }
    export.push_str(" --out gateway-root-key.backup");
    format!(
        "WARNING: created a new root key: {}\n\
         WARNING: every object is encrypted under it. If this key is lost, every object is lost;\n\
         WARNING: the nodes and the metadata cannot bring it back. Back it up now, off this machine:\n\
         WARNING:   {export}\n\
         WARNING: (add --passphrase-file FILE to wrap the copy with a passphrase; `gateway key import` restores it)\n",
        key_file.display()
    )
}

/// A path as one shell word: as is when it is plain, else single-quoted.
fn shell_word(p: &Path) -> String {
    let s = p.display().to_string();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c));
    if plain {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::RootKey;

    #[test]
    fn the_key_file_follows_the_config_without_creating_anything() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        assert_eq!(key_file_for(&data, None).unwrap(), data.join("root.key"));
        assert!(!data.exists());
        std::fs::create_dir(&data).unwrap();
        let text = Config::embedded_default_text()
            .replace("key_file = \"root.key\"", "key_file = \"keys/k\"");
        std::fs::write(data.join("config.toml"), text).unwrap();
        assert_eq!(key_file_for(&data, None).unwrap(), data.join("keys/k"));
        let missing = dir.path().join("nope.toml");
        assert!(key_file_for(&data, Some(&missing)).is_err());
    }

    #[test]
    fn export_then_import_into_a_fresh_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let p = super::super::prepare(&a, None).unwrap();
        assert!(p.created_key);
        let exported = export(&a, None, None).unwrap();
        assert!(!exported.wrapped);
        assert_eq!(
            exported.text,
            std::fs::read_to_string(&p.config.key_file).unwrap()
        );
        let file = dir.path().join("backup");
        backup::write_new_private(&file, &exported.text).unwrap();

        let b = dir.path().join("b");
        let (key_file, done) = import(&file, &b, None, None).unwrap();
        assert_eq!(done, Installed::Written);
        assert_eq!(
            std::fs::read(&key_file).unwrap(),
            std::fs::read(&p.config.key_file).unwrap()
        );
        assert_eq!(
            import(&file, &b, None, None).unwrap().1,
            Installed::AlreadyPresent
        );
        // The imported key is used, not replaced, by the next start.
        assert!(!super::super::prepare(&b, None).unwrap().created_key);

        let c = dir.path().join("c");
        RootKey::generate()
            .unwrap()
            .save_new(&{
                std::fs::create_dir(&c).unwrap();
                c.join("root.key")
            })
            .unwrap();
        assert!(matches!(
            import(&file, &c, None, None),
            Err(AppError::Backup(BackupError::DifferentKey { .. }))
        ));
    }

    #[test]
    fn the_warning_names_the_key_and_a_working_command() {
        let w = new_key_warning(
            Path::new("/d/it's here/root.key"),
            Path::new("/d/it's here"),
            Some(Path::new("/etc/gw.toml")),
        );
        assert!(w.contains("/d/it's here/root.key"), "{w}");
        assert!(
            w.contains(
                r"gateway key export --data-dir '/d/it'\''s here' --config /etc/gw.toml --out"
            ),
            "{w}"
        );
        assert!(w.lines().all(|l| l.starts_with("WARNING: ")), "{w}");
    }
}
