//! The shipper: the background task that puts committed changes and snapshots on the nodes,
//! and what makes sync mode wait for it ([`Replicator`]).
//!
//! One task does everything, in order: ship every unshipped change as the next log batch;
//! when none is left and a snapshot is due, take one, write its parts, then the head record
//! naming it, then prune what the new head no longer needs. Failures are retried with
//! backoff (up to 5 s); nothing is ever skipped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::blob::BlobName;
use super::head::{read_head, write_head, Head, HeadRead, SnapshotRef, HEAD_FORMAT};
use super::io::{piece_ids, put_blob};
use super::{MetaScheme, ReplicationError};
use crate::config::{MetadataConfig, ReplicationMode};
use crate::crypto::{encode_hex, RootKey};
use crate::erasure::Scheme;
use crate::meta::log::encode_batch;
use crate::meta::{Meta, ReplicationState};
use crate::transfer::Transfers;

/// Most change JSON per log batch.
const BATCH_MAX_BYTES: usize = 4 << 20;
/// Snapshot part size (plaintext).
pub(super) const SNAPSHOT_PART: usize = 4 << 20;
/// A snapshot is due once this much log was shipped since the last one (or as much as the
/// last snapshot's size, if that is more): recovery then replays at most about that much.
const SNAPSHOT_MIN_LOG: u64 = 16 << 20;

/// The running shipper.
pub struct Replicator {
    durable: watch::Receiver<u64>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    cfg: MetadataConfig,
}

struct Shipper {
    meta: Meta,
    transfers: Arc<Transfers>,
    root: RootKey,
    scheme: MetaScheme,
    cfg: MetadataConfig,
    work_dir: PathBuf,
    durable: watch::Sender<u64>,
    /// The head the nodes hold (None: none yet).
    head: Option<Head>,
    /// The nodes lost what the store says they hold: write a snapshot now.
    force_snapshot: bool,
}

impl Replicator {
    /// Checks this store against the nodes' head record (see the module contract), then
    /// starts shipping. `work_dir` holds snapshot files while they are written.
    pub async fn start(
        meta: Meta,
        transfers: Arc<Transfers>,
        root: &RootKey,
        data_scheme: &Scheme,
        cfg: MetadataConfig,
        work_dir: PathBuf,
    ) -> Result<Replicator, ReplicationError> {
        let scheme = MetaScheme::for_nodes(data_scheme, transfers.node_count());
        let state = meta.replication_state().await?;
        let fresh = state.last_seq == 0 && meta.list_buckets().await?.is_empty();
        let mut head = None;
        let mut force_snapshot = false;
        // With replication off the nodes hold no metadata of this store: nothing to compare.
        let read = if cfg.replication == ReplicationMode::Off {
            HeadRead::Absent
        } else {
            read_head(&transfers, root, &scheme).await?
        };
        match read {
            HeadRead::Found(h) => {
                // A fresh store over nodes whose log goes on after the head's snapshot (or
                // whose snapshot holds changes) is behind them: recovering is the way on.
                let behind = h.current.seq > state.last_seq
                    || (fresh
                        && blob_exists(&transfers, root, &BlobName::log(h.current.first_batch))
                            .await);
                if behind {
                    return Err(ReplicationError::NodesAhead {
                        snapshot: h.current.number,
                        seq: h.current.seq,
                    });
                }
                if h.current.number != state.snapshot {
                    // The nodes' head is not the one this store wrote last (an older data
                    // directory, or a head rewrite that failed): write a fresh snapshot.
                    force_snapshot = true;
                }
                head = Some(h);
            }
            HeadRead::Foreign { nodes } => {
                return Err(ReplicationError::ForeignHead {
                    nodes: nodes.join(", "),
                })
            }
            HeadRead::Absent => {
                if state.snapshot > 0 {
                    tracing::warn!(
                        snapshot = state.snapshot,
                        "the nodes hold no metadata head although this store wrote one (nodes replaced or wiped?): writing a new snapshot"
                    );
                    force_snapshot = true;
                }
            }
            HeadRead::Unknown { answered, causes } => tracing::warn!(
                answered,
                causes = %causes,
                "cannot read the metadata head from enough nodes; replication starts anyway and retries"
            ),
        }
        if cfg.replication != ReplicationMode::Off {
            check_log_tail(&transfers, root, &state).await?;
        }
        let (durable_tx, durable) = watch::channel(state.shipped_seq);
        let (stop, stop_rx) = watch::channel(false);
        let shipper = Shipper {
            meta,
            transfers,
            root: root.clone(),
            scheme,
            cfg: cfg.clone(),
            work_dir,
            durable: durable_tx,
            head,
            force_snapshot,
        };
        let task =
            (cfg.replication != ReplicationMode::Off).then(|| tokio::spawn(shipper.run(stop_rx)));
        Ok(Replicator {
            durable,
            stop,
            task,
            cfg,
        })
    }

    /// Every change up to the watched sequence number is durable on the nodes; sync mode's
    /// writes wait on it (`Meta::with_durability`).
    pub fn durable_watch(&self) -> watch::Receiver<u64> {
        self.durable.clone()
    }

    pub fn mode(&self) -> ReplicationMode {
        self.cfg.replication
    }

    /// Every change up to this one is durable on the nodes.
    pub fn durable_seq(&self) -> u64 {
        *self.durable.borrow()
    }

    /// Ships what is left (for up to `deadline`) and stops.
    pub async fn stop(mut self, deadline: Duration) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(deadline, task).await.is_err() {
                abort.abort();
                tracing::warn!("metadata replication did not finish shipping before shutdown; the rest is shipped at the next start");
            }
        }
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

enum Step {
    Worked,
    Idle,
}

impl Shipper {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut commits = self.meta.subscribe_commits();
        let mut backoff = Duration::from_millis(100);
        let gather = self.cfg.max_delay / 4;
        loop {
            let stopping = *stop.borrow();
            match self.step(stopping).await {
                Ok(Step::Worked) => {
                    backoff = Duration::from_millis(100);
                    continue;
                }
                Ok(Step::Idle) if stopping => return,
                Ok(Step::Idle) => {}
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "metadata replication failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
            tokio::select! {
                changed = commits.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if self.cfg.replication == ReplicationMode::Async && !gather.is_zero() {
                        // Let concurrent commits join this batch (group commit); the
                        // recovery point stays within max_delay.
                        tokio::select! {
                            _ = tokio::time::sleep(gather) => {}
                            _ = stop.changed() => {}
                        }
                    }
                }
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn step(&mut self, stopping: bool) -> Result<Step, ReplicationError> {
        let state = self.meta.replication_state().await?;
        if state.last_seq > state.shipped_seq {
            self.ship_batch(&state).await?;
            // Under a steady stream of writes there is always a batch to ship: snapshots
            // must not wait for a quiet moment, or the log (and recovery time) grows without
            // bound. A snapshot keeps shipping batches between its parts.
            if !stopping && self.snapshot_due(&state) {
                let state = self.meta.replication_state().await?;
                self.snapshot(&state).await?;
            }
            return Ok(Step::Worked);
        }
        self.durable.send_if_modified(|d| {
            let changed = *d < state.shipped_seq;
            *d = (*d).max(state.shipped_seq);
            changed
        });
        if !stopping && self.snapshot_due(&state) {
            self.snapshot(&state).await?;
            return Ok(Step::Worked);
        }
        Ok(Step::Idle)
    }

    async fn ship_batch(&mut self, state: &ReplicationState) -> Result<(), ReplicationError> {
        let pending = self
            .meta
            .pending_changes(state.shipped_seq, BATCH_MAX_BYTES)
            .await?;
        let (Some(first), Some(last)) = (pending.first(), pending.last()) else {
            return Ok(());
        };
        if first.seq != state.shipped_seq + 1 {
            return Err(ReplicationError::Recover(format!(
                "the local change log starts at {} but {} is the next to ship",
                first.seq,
                state.shipped_seq + 1
            )));
        }
        let last_seq = last.seq;
        let batch = state.next_batch;
        let plain = encode_batch(&pending);
        let bytes = plain.len() as u64;
        put_blob(
            &self.transfers,
            &self.root,
            &self.scheme,
            BlobName::log(batch),
            &plain,
            self.scheme.k,
        )
        .await?;
        self.meta.mark_shipped(batch, last_seq, bytes).await?;
        self.durable.send_replace(last_seq);
        tracing::debug!(
            batch,
            first = first.seq,
            last = last_seq,
            bytes,
            "metadata log batch durable on the nodes"
        );
        Ok(())
    }

    fn snapshot_due(&self, state: &ReplicationState) -> bool {
        if self.force_snapshot || state.snapshot == 0 {
            return true;
        }
        let last_bytes = self.head.as_ref().map_or(0, |h| h.current.bytes);
        if state.log_bytes_since_snapshot >= SNAPSHOT_MIN_LOG.max(last_bytes) {
            return true;
        }
        let age_ms = crate::meta::now_ms().saturating_sub(state.snapshot_ms);
        state.log_bytes_since_snapshot > 0
            && u128::try_from(age_ms).unwrap_or(0) >= self.cfg.snapshot_interval.as_millis()
    }

    async fn snapshot(&mut self, state: &ReplicationState) -> Result<(), ReplicationError> {
        let number = state
            .snapshot
            .max(self.head.as_ref().map_or(0, |h| h.generation))
            + 1;
        // Every batch before this one was shipped before the copy is taken, so it holds them.
        let first_batch = state.next_batch;
        let path = self.work_dir.join(format!("snapshot-{number}.tmp"));
        let _ = std::fs::remove_file(&path);
        let taken_ms = crate::meta::now_ms();
        let result = self
            .write_snapshot(number, first_batch, taken_ms, &path)
            .await;
        let _ = std::fs::remove_file(&path);
        let current = result?;
        let previous = self.head.as_ref().map(|h| h.current.clone());
        let head = Head {
            format: HEAD_FORMAT,
            generation: number,
            key_check: encode_hex(&self.root.key_check()),
            current: current.clone(),
            previous: previous.clone(),
            written_ms: crate::meta::now_ms(),
        };
        write_head(&self.transfers, &self.root, &self.scheme, &head).await?;
        self.meta
            .mark_snapshot(number, current.seq, first_batch, taken_ms)
            .await?;
        let old = self.head.replace(head);
        self.force_snapshot = false;
        tracing::info!(
            snapshot = number,
            seq = current.seq,
            bytes = current.bytes,
            parts = current.parts.len(),
            "metadata snapshot durable on the nodes"
        );
        // What the new head no longer names: the old head's previous snapshot and the log
        // batches before the (kept) previous snapshot.
        if let (Some(old), Some(prev)) = (old, previous) {
            if let Some(dropped) = old.previous {
                self.prune(&dropped, prev.first_batch).await;
            }
        }
        Ok(())
    }

    async fn write_snapshot(
        &mut self,
        number: u64,
        first_batch: u64,
        taken_ms: i64,
        path: &std::path::Path,
    ) -> Result<SnapshotRef, ReplicationError> {
        let taken = self.meta.snapshot_into(path).await?;
        let file = std::fs::File::open(path)
            .map_err(|e| ReplicationError::Io(format!("{}: {e}", path.display())))?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut reader = std::io::BufReader::new(file);
        let mut parts = Vec::new();
        let mut part = 0u32;
        loop {
            let (buf, r) = tokio::task::spawn_blocking(move || {
                let mut buf = Vec::with_capacity(SNAPSHOT_PART);
                let r = std::io::Read::read_to_end(
                    &mut std::io::Read::take(&mut reader, SNAPSHOT_PART as u64),
                    &mut buf,
                );
                (buf, r.map(|_| reader))
            })
            .await
            .map_err(|e| ReplicationError::Io(e.to_string()))?;
            reader = r.map_err(|e| ReplicationError::Io(format!("{}: {e}", path.display())))?;
            if buf.is_empty() && part > 0 {
                break;
            }
            parts.push(blake3::hash(&buf).to_hex().to_string());
            put_blob(
                &self.transfers,
                &self.root,
                &self.scheme,
                BlobName::snapshot(number, part),
                &buf,
                self.scheme.k,
            )
            .await?;
            part += 1;
            // A large snapshot takes a while: keep shipping the log meanwhile, so the recovery
            // point (and sync mode's writes) do not wait for it.
            let state = self.meta.replication_state().await?;
            if state.last_seq > state.shipped_seq {
                self.ship_batch(&state).await?;
            }
            if buf.len() < SNAPSHOT_PART {
                break;
            }
        }
        Ok(SnapshotRef {
            number,
            seq: taken.seq,
            first_batch,
            taken_ms,
            bytes,
            parts,
        })
    }

    /// Deletes snapshot `dropped` and the log batches from its first one up to `keep_from`.
    async fn prune(&self, dropped: &SnapshotRef, keep_from: u64) {
        let mut failed = 0;
        let mut names: Vec<BlobName> = (0..dropped.parts.len() as u32)
            .map(|p| BlobName::snapshot(dropped.number, p))
            .collect();
        names.extend((dropped.first_batch..keep_from).map(BlobName::log));
        for name in &names {
            failed += self
                .transfers
                .delete_pieces_everywhere(piece_ids(&self.transfers, &self.root, name))
                .await;
        }
        tracing::info!(
            snapshot = dropped.number,
            blobs = names.len(),
            failed_deletes = failed,
            "pruned metadata the head no longer names"
        );
    }
}

/// Refuses to go on writing the log where the nodes already hold a newer history: the next
/// batch this store would write must not exist, except as this store's own batch whose
/// shipping was not recorded before a crash (it starts right after the shipped position and
/// ends at or before the newest local change); a partial write that does not decode is
/// overwritten. The batch after it must not exist at all.
async fn check_log_tail(
    transfers: &Arc<Transfers>,
    root: &RootKey,
    state: &ReplicationState,
) -> Result<(), ReplicationError> {
    let ahead = || ReplicationError::NodesAhead {
        snapshot: state.snapshot,
        seq: state.last_seq,
    };
    if blob_exists(transfers, root, &BlobName::log(state.next_batch + 1)).await {
        return Err(ahead());
    }
    let name = BlobName::log(state.next_batch);
    let found = super::io::fetch(transfers, root, &name).await.pieces;
    if found.is_empty() {
        return Ok(());
    }
    let key = root.metadata_key();
    let report = tokio::task::spawn_blocking(move || super::blob::open_blob(&key, &name, &found))
        .await
        .map_err(|e| ReplicationError::Io(e.to_string()))?;
    for opened in &report.opened {
        match crate::meta::log::decode_batch(&opened.plain) {
            Ok(b) if b.first_seq == state.shipped_seq + 1 && b.last_seq <= state.last_seq => {}
            _ => return Err(ahead()),
        }
    }
    Ok(())
}

/// Whether any node holds a piece of blob `name`.
async fn blob_exists(transfers: &Arc<Transfers>, root: &RootKey, name: &BlobName) -> bool {
    transfers
        .get_pieces_everywhere(piece_ids(transfers, root, name), 4, |_| None)
        .await
        .iter()
        .any(Result::is_ok)
}
