//! `gateway recover`: rebuild the metadata store from the nodes with the root key alone.
//!
//! Contract:
//! - The newest snapshot the head names is fetched part by part, each part authenticated and
//!   checked against the head's BLAKE3; if it cannot be read, the previous snapshot (which the
//!   head also names, with its log) is used. Then the log batches after it are replayed in
//!   order until the first batch that is absent (enough nodes answered "not found"); a batch
//!   that exists but cannot be read (too few intact pieces, too many nodes unreachable) is an
//!   error, since skipping it would silently lose changes after it.
//! - Everything is built in a temporary file beside the destination and renamed into place
//!   only when complete and fsynced: a failed recovery writes nothing.
//! - Multipart uploads in progress are part of the metadata: they are recovered with their
//!   parts, and can be completed or aborted afterwards.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::blob::{open_blob, BlobName};
use super::head::{read_head, HeadRead, SnapshotRef};
use super::io::{fetch, Fetched};
use super::{MetaScheme, ReplicationError};
use crate::crypto::RootKey;
use crate::erasure::Scheme;
use crate::meta::log::{decode_batch, Batch};
use crate::meta::{ReplicationState, SqliteMeta};
use crate::progress::Progress;
use crate::transfer::Transfers;

/// What a recovery rebuilt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoverySummary {
    pub buckets: u64,
    pub objects: u64,
    /// Plaintext bytes of the objects.
    pub bytes: u64,
    pub uploads_in_progress: u64,
    /// The snapshot used (`None`: the log from its start).
    pub snapshot: Option<u64>,
    /// Whether the newest snapshot was unreadable and the previous one was used.
    pub used_previous_snapshot: bool,
    pub batches: u64,
    pub changes_replayed: u64,
    /// The last change included, and when it was committed (unix ms; 0 if unknown).
    pub last_seq: u64,
    pub newest_change_ms: i64,
    /// Pieces found that were damaged, foreign or stale and therefore not used.
    pub rejected_pieces: usize,
}

fn unreadable(name: &BlobName, f: &Fetched, scheme: &MetaScheme) -> String {
    format!(
        "{name} cannot be read: {} piece(s) found (any {} intact ones are needed), {} node(s) \
         answered \"not found\", {} unreachable{}",
        f.pieces.len(),
        scheme.k,
        f.not_found,
        f.causes.len(),
        if f.causes.is_empty() {
            String::new()
        } else {
            format!(" ({})", f.causes.join("; "))
        }
    )
}

/// Rebuilds the metadata store at `dest` from the nodes. An existing store at `dest` is
/// refused unless `replace`; then it is moved aside (see [`move_aside`]) only once the new one
/// is complete, just before it is renamed into place. Returns where the old one went.
pub async fn recover(
    transfers: &Arc<Transfers>,
    root: &RootKey,
    data_scheme: &Scheme,
    dest: &Path,
    replace: bool,
    progress: &Progress,
) -> Result<(RecoverySummary, Option<PathBuf>), ReplicationError> {
    if dest.exists() && !replace {
        return Err(ReplicationError::Recover(format!(
            "{} exists: refusing to replace a metadata store",
            dest.display()
        )));
    }
    let scheme = MetaScheme::for_nodes(data_scheme, transfers.node_count());
    let tmp = with_suffix(dest, ".recovering");
    remove_db_files(&tmp);
    let result = rebuild(transfers, root, &scheme, &tmp, progress).await;
    progress.finish();
    match result {
        Ok(summary) => {
            let moved = if dest.exists() {
                Some(move_aside(dest)?)
            } else {
                None
            };
            install(&tmp, dest)?;
            Ok((summary, moved))
        }
        Err(e) => {
            remove_db_files(&tmp);
            Err(e)
        }
    }
}

async fn rebuild(
    transfers: &Arc<Transfers>,
    root: &RootKey,
    scheme: &MetaScheme,
    tmp: &Path,
    progress: &Progress,
) -> Result<RecoverySummary, ReplicationError> {
    let mut summary = RecoverySummary::default();
    let head = match read_head(transfers, root, scheme).await? {
        HeadRead::Found(h) => Some(h),
        HeadRead::Absent => None,
        HeadRead::Foreign { nodes } => {
            return Err(ReplicationError::ForeignHead {
                nodes: nodes.join(", "),
            })
        }
        HeadRead::Unknown { answered, causes } => {
            return Err(ReplicationError::Recover(format!(
                "cannot read the metadata head record: only {answered} node(s) answered ({causes})"
            )))
        }
    };
    let mut state = ReplicationState {
        next_batch: 1,
        snapshot_batch: 1,
        prev_snapshot_batch: 1,
        ..ReplicationState::default()
    };
    if let Some(head) = &head {
        let mut used = None;
        let mut failures = Vec::new();
        for (snap, is_previous) in [(Some(&head.current), false), (head.previous.as_ref(), true)] {
            let Some(snap) = snap else { continue };
            match fetch_snapshot(transfers, root, scheme, snap, tmp, progress, &mut summary).await {
                Ok(()) => {
                    used = Some(snap.clone());
                    summary.used_previous_snapshot = is_previous;
                    break;
                }
                Err(e) => {
                    tracing::warn!(snapshot = snap.number, error = %e, "snapshot unusable");
                    failures.push(format!("snapshot {}: {e}", snap.number));
                    remove_db_files(tmp);
                }
            }
        }
        let snap = used.ok_or_else(|| ReplicationError::Recover(failures.join("; ")))?;
        summary.snapshot = Some(snap.number);
        summary.newest_change_ms = snap.taken_ms;
        state.snapshot = snap.number;
        state.snapshot_seq = snap.seq;
        state.snapshot_batch = snap.first_batch;
        state.snapshot_ms = snap.taken_ms;
        state.last_seq = snap.seq;
        state.next_batch = snap.first_batch;
        if !summary.used_previous_snapshot {
            if let Some(prev) = &head.previous {
                state.prev_snapshot = prev.number;
                state.prev_snapshot_batch = prev.first_batch;
            }
        }
    }
    let store = {
        let tmp = tmp.to_path_buf();
        tokio::task::spawn_blocking(move || SqliteMeta::open(&tmp))
            .await
            .map_err(|e| ReplicationError::Io(e.to_string()))??
    };
    let store = Arc::new(store);
    if let Some(check) = store.key_check()? {
        if check != root.key_check() {
            return Err(ReplicationError::ForeignStore);
        }
    }
    store.set_bulk(true)?;
    replay(
        transfers,
        root,
        scheme,
        &store,
        &mut state,
        progress,
        &mut summary,
    )
    .await?;
    if head.is_none() && summary.batches == 0 {
        return Err(ReplicationError::Recover(
            "the nodes hold no metadata of this root key (no head record, no log)".into(),
        ));
    }
    store.finish_recovery(&state)?;
    store.set_key_check(&root.key_check())?;
    store.set_bulk(false)?;
    let totals = store.storage_totals()?;
    summary.objects = totals.objects;
    summary.bytes = totals.plain_bytes;
    summary.buckets = store.list_buckets()?.len() as u64;
    summary.uploads_in_progress = store.count_uploads()?;
    summary.last_seq = state.last_seq;
    drop(store);
    Ok(summary)
}

async fn fetch_snapshot(
    transfers: &Arc<Transfers>,
    root: &RootKey,
    scheme: &MetaScheme,
    snap: &SnapshotRef,
    tmp: &Path,
    progress: &Progress,
    summary: &mut RecoverySummary,
) -> Result<(), ReplicationError> {
    let io = |e: std::io::Error| ReplicationError::Io(format!("{}: {e}", tmp.display()));
    let mut file = std::fs::File::create(tmp).map_err(io)?;
    let meta_key = root.metadata_key();
    let total = snap.parts.len() as u64;
    let mut written = 0u64;
    for (i, expected) in snap.parts.iter().enumerate() {
        progress.update("snapshot parts", i as u64, Some(total), "");
        let name = BlobName::snapshot(snap.number, i as u32);
        let found = fetch(transfers, root, &name).await;
        let pieces = found.pieces;
        let name_c = name;
        let (report, found_pieces) = tokio::task::spawn_blocking(move || {
            let r = open_blob(&meta_key, &name_c, &pieces);
            (r, pieces.len())
        })
        .await
        .map_err(|e| ReplicationError::Io(e.to_string()))?;
        summary.rejected_pieces += report.rejected;
        let part = report
            .opened
            .into_iter()
            .find(|o| blake3::hash(&o.plain).to_hex().as_str() == expected)
            .ok_or_else(|| {
                ReplicationError::Recover(format!(
                    "{name}: no intact copy matches the head ({found_pieces} piece(s) found, any {} \
                     intact ones are needed)",
                    scheme.k
                ))
            })?;
        file.write_all(&part.plain).map_err(io)?;
        written += part.plain.len() as u64;
    }
    progress.update("snapshot parts", total, Some(total), "");
    if written != snap.bytes {
        return Err(ReplicationError::Recover(format!(
            "snapshot {} has {written} bytes where the head says {}",
            snap.number, snap.bytes
        )));
    }
    file.sync_all().map_err(io)?;
    Ok(())
}

/// Applies the log batches after the snapshot, in order, until the first absent one.
async fn replay(
    transfers: &Arc<Transfers>,
    root: &RootKey,
    scheme: &MetaScheme,
    store: &Arc<SqliteMeta>,
    state: &mut ReplicationState,
    progress: &Progress,
    summary: &mut RecoverySummary,
) -> Result<(), ReplicationError> {
    let meta_key = root.metadata_key();
    loop {
        progress.update("log batches", summary.batches, None, "");
        let name = BlobName::log(state.next_batch);
        let found = fetch(transfers, root, &name).await;
        let have = state.last_seq;
        let pieces = found.pieces.clone();
        let (report, batches) = tokio::task::spawn_blocking(move || {
            let report = open_blob(&meta_key, &name, &pieces);
            let batches: Vec<(Batch, u64)> = report
                .opened
                .iter()
                .filter_map(|o| {
                    decode_batch(&o.plain)
                        .ok()
                        .map(|b| (b, o.plain.len() as u64))
                })
                .collect();
            (report, batches)
        })
        .await
        .map_err(|e| ReplicationError::Io(e.to_string()))?;
        summary.rejected_pieces += report.rejected;
        // Of several writes of one batch (rewritten after a crash), the one reaching furthest.
        let best = batches
            .into_iter()
            .filter(|(b, _)| b.first_seq <= have + 1)
            .max_by_key(|(b, _)| b.last_seq);
        let Some((batch, bytes)) = best else {
            if report.opened.is_empty() && found.not_found >= scheme.absent_quorum() {
                // The end of the log, unless a later batch exists: then this one was durable
                // once and its pieces are lost beyond the scheme's tolerance.
                let after = fetch(transfers, root, &BlobName::log(state.next_batch + 1)).await;
                if !after.pieces.is_empty() {
                    return Err(ReplicationError::Recover(format!(
                        "{name} is missing but log batch {} exists: changes are lost beyond the \
                         metadata's redundancy",
                        state.next_batch + 1
                    )));
                }
                return Ok(());
            }
            if report.opened.is_empty() {
                return Err(ReplicationError::Recover(unreadable(&name, &found, scheme)));
            }
            // It authenticates but does not continue the log (a newer format, or a gap):
            // stopping here would silently drop every change after it.
            return Err(ReplicationError::Recover(format!(
                "{name} authenticates but does not continue the log after change {have} (a newer \
                 log format, or changes missing before it)"
            )));
        };
        let entries: Vec<_> = batch.entries.into_iter().filter(|e| e.seq > have).collect();
        let count = entries.len() as u64;
        let last = entries.last().map(|e| (e.seq, e.at_ms));
        let s = Arc::clone(store);
        tokio::task::spawn_blocking(move || {
            for e in &entries {
                s.apply(&e.change).map_err(|err| {
                    ReplicationError::Recover(format!("replaying change {}: {err}", e.seq))
                })?;
            }
            Ok::<_, ReplicationError>(())
        })
        .await
        .map_err(|e| ReplicationError::Io(e.to_string()))??;
        if let Some((seq, at_ms)) = last {
            state.last_seq = seq;
            summary.newest_change_ms = at_ms;
        }
        summary.changes_replayed += count;
        summary.batches += 1;
        state.log_bytes_since_snapshot += bytes;
        state.next_batch += 1;
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

fn remove_db_files(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(with_suffix(path, suffix));
    }
}

/// Moves the finished store into place, durably.
fn install(tmp: &Path, dest: &Path) -> Result<(), ReplicationError> {
    let io = |e: std::io::Error| ReplicationError::Io(format!("{}: {e}", dest.display()));
    std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(with_suffix(dest, suffix));
    }
    std::fs::rename(tmp, dest).map_err(io)?;
    if let Some(dir) = dest.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

/// Moves an existing store (and its WAL) aside as `<dest>.replaced-<unix ms>`; returns the
/// new name.
pub fn move_aside(dest: &Path) -> Result<PathBuf, ReplicationError> {
    let aside = with_suffix(dest, &format!(".replaced-{}", crate::meta::now_ms()));
    for suffix in ["-wal", "-shm"] {
        let from = with_suffix(dest, suffix);
        if from.exists() {
            std::fs::rename(&from, with_suffix(&aside, suffix))
                .map_err(|e| ReplicationError::Io(format!("{}: {e}", from.display())))?;
        }
    }
    std::fs::rename(dest, &aside)
        .map_err(|e| ReplicationError::Io(format!("{}: {e}", dest.display())))?;
    Ok(aside)
}
