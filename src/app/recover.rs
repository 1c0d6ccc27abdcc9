//! `gateway recover`: rebuild a data directory's metadata from the nodes.
//!
//! Needs a configuration naming the nodes (the data directory's `config.toml` or `--config`)
//! and the root key (the configured key file, or `--key-file` in either export format). Takes
//! the data directory's lock like `gateway run`, refuses to replace an existing metadata store
//! unless it is empty or `force` is given (either way it is moved aside, never deleted), never initialises a node, and
//! installs the root key given with `--key-file` when the configured key file is missing.
//! Everything else is [`crate::replication::recover`]'s.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::lock::DataDirLock;
use super::{open_transfers, AppError};
use crate::config::{Config, ConfigError, CONFIG_FILE};
use crate::crypto::RootKey;
use crate::progress::Progress;
use crate::replication::recover::{recover, RecoverySummary};
use crate::replication::ReplicationError;

pub struct RecoverOptions {
    pub data_dir: PathBuf,
    pub config: Option<PathBuf>,
    /// A root key file (plain or passphrase-wrapped export); default: the configured key.
    pub key_file: Option<PathBuf>,
    pub passphrase: Option<String>,
    /// Move an existing metadata store aside instead of refusing.
    pub force: bool,
    /// Draw progress on stderr.
    pub progress: bool,
}

pub struct Recovered {
    pub summary: RecoverySummary,
    pub metadata_file: PathBuf,
    /// Where an existing store was moved (with `force`).
    pub moved_aside: Option<PathBuf>,
    /// Whether `--key-file`'s key was installed as the configured key file.
    pub installed_key: Option<PathBuf>,
    pub elapsed: std::time::Duration,
}

pub async fn run_recover(opts: &RecoverOptions) -> Result<Recovered, AppError> {
    let started = Instant::now();
    let config_path = opts
        .config
        .clone()
        .unwrap_or_else(|| opts.data_dir.join(CONFIG_FILE));
    let text = std::fs::read_to_string(&config_path).map_err(|e| {
        AppError::Config(ConfigError::new(
            "--config",
            format!(
                "{}: {e} (recovery needs the configuration that names the nodes)",
                config_path.display()
            ),
        ))
    })?;
    let cfg = Config::parse(&text, &opts.data_dir)?;
    let root = match &opts.key_file {
        Some(path) => crate::crypto::backup::load_key_file(path, opts.passphrase.as_deref())
            .map_err(|e| AppError::Config(ConfigError::new("--key-file", e.to_string())))?,
        None => RootKey::load(&cfg.key_file)?,
    };
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| AppError::Io {
        path: cfg.data_dir.clone(),
        source,
    })?;
    let _lock = DataDirLock::acquire(&cfg.data_dir)?;
    // Checked up front (read-only); the store is moved aside only once the new one is
    // complete, so a failed recovery leaves it where it was.
    let replace = cfg.metadata_file.exists();
    if replace && !opts.force && !crate::meta::SqliteMeta::holds_nothing(&cfg.metadata_file)? {
        return Err(ReplicationError::Recover(format!(
            "{} exists: refusing to replace a metadata store (--force moves it aside first)",
            cfg.metadata_file.display()
        ))
        .into());
    }
    let transfers = open_transfers(&cfg, &root, None).await?;
    let progress = Progress::stderr(opts.progress);
    let (summary, moved_aside) = recover(
        &transfers,
        &root,
        &cfg.storage.scheme,
        &cfg.metadata_file,
        replace,
        &progress,
    )
    .await?;
    let installed_key = install_key(&root, &cfg.key_file, opts.key_file.is_some())?;
    Ok(Recovered {
        summary,
        metadata_file: cfg.metadata_file.clone(),
        moved_aside,
        installed_key,
        elapsed: started.elapsed(),
    })
}

fn install_key(root: &RootKey, key_file: &Path, given: bool) -> Result<Option<PathBuf>, AppError> {
    if !given || key_file.exists() {
        return Ok(None);
    }
    root.save_new(key_file)?;
    Ok(Some(key_file.to_path_buf()))
}

/// The summary `gateway recover` prints.
pub fn render(r: &Recovered) -> String {
    let s = &r.summary;
    let mut out = format!(
        "recovered {} in {:.1} s\n  buckets: {}\n  objects: {} ({} bytes)\n  multipart uploads in progress: {}\n",
        r.metadata_file.display(),
        r.elapsed.as_secs_f64(),
        s.buckets,
        s.objects,
        s.bytes,
        s.uploads_in_progress,
    );
    match s.snapshot {
        Some(n) => out.push_str(&format!(
            "  from snapshot {n}{} and {} log batch(es) ({} changes)\n",
            if s.used_previous_snapshot {
                " (the newest was unreadable: used the previous one)"
            } else {
                ""
            },
            s.batches,
            s.changes_replayed
        )),
        None => out.push_str(&format!(
            "  from the log alone: {} batch(es), {} changes\n",
            s.batches, s.changes_replayed
        )),
    }
    out.push_str(&format!(
        "  newest change included: #{} at {}\n",
        s.last_seq,
        format_ms(s.newest_change_ms)
    ));
    if s.rejected_pieces > 0 {
        out.push_str(&format!(
            "  pieces rejected (damaged, foreign or stale; not used): {}\n",
            s.rejected_pieces
        ));
    }
    if let Some(p) = &r.moved_aside {
        out.push_str(&format!(
            "  the previous store was moved to {}\n",
            p.display()
        ));
    }
    if let Some(p) = &r.installed_key {
        out.push_str(&format!("  root key installed as {}\n", p.display()));
    }
    out
}

fn format_ms(ms: i64) -> String {
    if ms <= 0 {
        return "unknown".into();
    }
    crate::timestamp::format_iso8601_millis(ms)
}
