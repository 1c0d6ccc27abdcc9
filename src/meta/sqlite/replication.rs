//! The SQLite side of replication: appending changes to `meta_log` inside each mutation's
//! transaction, handing unshipped changes to the shipper, recording what the nodes hold, and
//! online snapshots.
//!
//! Guarantees:
//! - [`SqliteMeta::commit`] writes the change and commits in one transaction, then publishes
//!   the change's sequence number ([`SqliteMeta::subscribe_commits`]).
//! - [`SqliteMeta::mark_shipped`] advances the shipped position and prunes the shipped rows
//!   in one transaction, so a crash between shipping and recording re-ships (never skips).
//! - [`SqliteMeta::snapshot_into`] writes a consistent copy (`VACUUM INTO` from its own read
//!   transaction; writers are not blocked) whose `meta_log` is empty and which knows the last
//!   change it contains.

use std::path::Path;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction};

use super::super::log::{Change, RawEntry};
use super::super::MetaError;
use super::{now_ms, SqliteMeta};

/// What the nodes hold of this store, as recorded after each durable write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplicationState {
    /// Every change up to this one is durable on the nodes.
    pub shipped_seq: u64,
    /// The last committed change (0 = none yet).
    pub last_seq: u64,
    /// Number of the next log batch.
    pub next_batch: u64,
    /// Newest durable snapshot (0 = none), its last change, the first batch after it, when.
    pub snapshot: u64,
    pub snapshot_seq: u64,
    pub snapshot_batch: u64,
    pub snapshot_ms: i64,
    /// The snapshot kept before it (0 = none) and the first batch after that one.
    pub prev_snapshot: u64,
    pub prev_snapshot_batch: u64,
    /// Log bytes shipped since the newest snapshot.
    pub log_bytes_since_snapshot: u64,
}

/// A snapshot written by [`SqliteMeta::snapshot_into`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotTaken {
    /// The last change the copy contains.
    pub seq: u64,
}

impl SqliteMeta {
    /// Logs `change` and commits `tx`; the change's sequence number is then published.
    pub(super) fn commit(&self, tx: Transaction<'_>, change: Change) -> Result<(), MetaError> {
        let json = change.to_json()?;
        tx.prepare_cached("INSERT INTO meta_log (at_ms, change) VALUES (?1, ?2)")?
            .execute(params![now_ms(), json])?;
        let seq = u64::try_from(tx.last_insert_rowid()).unwrap_or(0);
        tx.commit()?;
        self.commits.send_replace(seq);
        Ok(())
    }

    /// The sequence number of the newest committed change, published after each commit.
    pub fn subscribe_commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commits.subscribe()
    }

    pub fn replication_state(&self) -> Result<ReplicationState, MetaError> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        let mut state = tx
            .prepare_cached(
                "SELECT shipped_seq, next_batch, snapshot, snapshot_seq, snapshot_batch,
                        snapshot_ms, prev_snapshot, prev_snapshot_batch, log_bytes_since_snapshot
                 FROM replication WHERE id = 1",
            )?
            .query_row([], |r| {
                Ok(ReplicationState {
                    shipped_seq: r.get(0)?,
                    last_seq: 0,
                    next_batch: r.get(1)?,
                    snapshot: r.get(2)?,
                    snapshot_seq: r.get(3)?,
                    snapshot_batch: r.get(4)?,
                    snapshot_ms: r.get(5)?,
                    prev_snapshot: r.get(6)?,
                    prev_snapshot_batch: r.get(7)?,
                    log_bytes_since_snapshot: r.get(8)?,
                })
            })?;
        state.last_seq = last_seq(&tx)?.max(state.shipped_seq);
        Ok(state)
    }

    /// Unshipped changes after `after`, in order, up to about `max_bytes` of JSON (at least
    /// one change when there is one).
    pub fn pending_changes(
        &self,
        after: u64,
        max_bytes: usize,
    ) -> Result<Vec<RawEntry>, MetaError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT seq, at_ms, change FROM meta_log WHERE seq > ?1 ORDER BY seq LIMIT 100000",
        )?;
        let mut rows = stmt.query(params![after])?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while let Some(row) = rows.next()? {
            let change: Vec<u8> = row.get(2)?;
            if !out.is_empty() && bytes + change.len() > max_bytes {
                break;
            }
            bytes += change.len();
            out.push(RawEntry {
                seq: row.get(0)?,
                at_ms: row.get(1)?,
                change,
            });
        }
        Ok(out)
    }

    /// Records that batch `batch` (changes up to `last_seq`, `bytes` long) is durable on the
    /// nodes and prunes those changes from the local log.
    pub fn mark_shipped(&self, batch: u64, last_seq: u64, bytes: u64) -> Result<(), MetaError> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.prepare_cached(
            "UPDATE replication SET shipped_seq = max(shipped_seq, ?1), next_batch = ?2 + 1,
                 log_bytes_since_snapshot = log_bytes_since_snapshot + ?3 WHERE id = 1",
        )?
        .execute(params![last_seq, batch, bytes])?;
        tx.prepare_cached("DELETE FROM meta_log WHERE seq <= ?1")?
            .execute(params![last_seq])?;
        tx.commit()?;
        Ok(())
    }

    /// Records that snapshot `number` (changes up to `seq`, log replay from `batch`) is
    /// durable and named by the nodes' head record; the previous one becomes the fallback.
    pub fn mark_snapshot(
        &self,
        number: u64,
        seq: u64,
        batch: u64,
        at_ms: i64,
    ) -> Result<(), MetaError> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.prepare_cached(
            "UPDATE replication SET prev_snapshot = snapshot, prev_snapshot_batch = snapshot_batch,
                 snapshot = ?1, snapshot_seq = ?2, snapshot_batch = ?3, snapshot_ms = ?4,
                 log_bytes_since_snapshot = 0 WHERE id = 1",
        )?
        .execute(params![number, seq, batch, at_ms])?;
        tx.commit()?;
        Ok(())
    }

    /// Whether the database at `path` holds nothing a recovery could lose (no bucket, no
    /// change ever): opened read-only, never migrated.
    pub fn holds_nothing(path: &Path) -> Result<bool, MetaError> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let has_buckets = conn
            .query_row("SELECT count(*) FROM buckets", [], |r| r.get::<_, i64>(0))
            .optional()
            .unwrap_or(None)
            .unwrap_or(0)
            > 0;
        let changes = last_seq(&conn).unwrap_or(0);
        Ok(!has_buckets && changes == 0)
    }

    /// Bulk mode for rebuilding a store that is not in use yet (recovery): commits are not
    /// fsynced (`synchronous=OFF`) until switched back, which fsyncs.
    pub fn set_bulk(&self, on: bool) -> Result<(), MetaError> {
        let conn = self.writer();
        conn.pragma_update(None, "synchronous", if on { "OFF" } else { "FULL" })?;
        if !on {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(())
    }

    /// Multipart uploads in progress, in all buckets.
    pub fn count_uploads(&self) -> Result<u64, MetaError> {
        let conn = self.reader();
        let n: i64 = conn.query_row("SELECT count(*) FROM uploads", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The root-key check recorded in this store, if any.
    pub fn key_check(&self) -> Result<Option<Vec<u8>>, MetaError> {
        let conn = self.reader();
        let check = conn
            .prepare_cached("SELECT key_check FROM replication WHERE id = 1")?
            .query_row([], |r| r.get::<_, Option<Vec<u8>>>(0))
            .optional()?
            .flatten();
        Ok(check)
    }

    /// Records the root-key check (once; it never changes afterwards).
    pub fn set_key_check(&self, check: &[u8]) -> Result<(), MetaError> {
        let conn = self.writer();
        conn.prepare_cached(
            "UPDATE replication SET key_check = ?1 WHERE id = 1 AND key_check IS NULL",
        )?
        .execute(params![check])?;
        Ok(())
    }

    /// Writes a consistent copy of the store to `dest` (which must not exist) with an empty
    /// change log, and returns the last change it contains.
    pub fn snapshot_into(&self, dest: &Path) -> Result<SnapshotTaken, MetaError> {
        let src = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        src.busy_timeout(super::BUSY_TIMEOUT)?;
        // An empty file is a valid destination for VACUUM INTO; this one is private.
        super::private_file(dest)?;
        let dest_str = dest.to_str().ok_or_else(|| {
            MetaError::InvalidRecord(format!("{}: path is not UTF-8", dest.display()))
        })?;
        src.execute("VACUUM INTO ?1", params![dest_str])?;
        drop(src);
        let copy = Connection::open(dest)?;
        let seq = last_seq(&copy)?;
        copy.execute("DELETE FROM meta_log", [])?;
        Ok(SnapshotTaken { seq })
    }

    /// Ends a recovery: the store holds every change up to `last_seq`, which the nodes hold
    /// too; the local log is emptied, numbering continues after `last_seq`, and the
    /// replication state is the one the nodes' head and log describe.
    pub fn finish_recovery(&self, state: &ReplicationState) -> Result<(), MetaError> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM meta_log", [])?;
        let updated = tx.execute(
            "UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'meta_log'",
            params![state.last_seq],
        )?;
        if updated == 0 {
            tx.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES ('meta_log', ?1)",
                params![state.last_seq],
            )?;
        }
        tx.execute(
            "UPDATE replication SET shipped_seq = ?1, next_batch = ?2, snapshot = ?3,
                 snapshot_seq = ?4, snapshot_batch = ?5, snapshot_ms = ?6, prev_snapshot = ?7,
                 prev_snapshot_batch = ?8, log_bytes_since_snapshot = ?9 WHERE id = 1",
            params![
                state.last_seq,
                state.next_batch,
                state.snapshot,
                state.snapshot_seq,
                state.snapshot_batch,
                state.snapshot_ms,
                state.prev_snapshot,
                state.prev_snapshot_batch,
                state.log_bytes_since_snapshot,
            ],
        )?;
        tx.commit()?;
        Ok(())
    }
}

/// The highest sequence number ever given to a change in this database.
pub(super) fn last_seq(conn: &Connection) -> Result<u64, MetaError> {
    let seq: Option<i64> = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'meta_log'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
}
