//! SQLite backend of the metadata store (rusqlite, bundled SQLite).
//!
//! Guarantees, beyond those of the parent module:
//! - The database runs in WAL mode with `synchronous=FULL` and `foreign_keys=ON`: a call that
//!   returned `Ok` from a mutation is durable across a crash or power loss.
//! - One writer connection behind a mutex; every mutation is a single `BEGIN IMMEDIATE`
//!   transaction, so preconditions and "does this upload still exist" are checked against the
//!   state the mutation commits on: of two racing conditional writers at most one succeeds.
//!   Reads use a pool of [`READERS`] query-only connections, each call inside one read
//!   transaction, so reads run concurrently with each other and with the writer and always
//!   see a single committed state.
//! - `PRAGMA user_version` holds the schema version (see [`schema`]).
//! - Keys are stored and bound as BLOBs, so every comparison is memcmp on UTF-8 bytes.
//! - A listing page costs O(log n) per returned entry plus one row (see [`list`]).
//! - Object, tag, upload and listing calls fail with [`MetaError::NoSuchBucket`] when the
//!   bucket is missing, as S3 does.
//! - Streams are reference-counted by query, not by a counter: when a mutation removes
//!   references, it checks (through the `stream_id` indexes of `object_parts` and
//!   `upload_parts`) whether each affected stream is still referenced and marks it garbage
//!   if not (see [`streams`]).
//! - [`SqliteMeta::storage_totals`] is one aggregate statement (see [`totals`]).
//! - DeleteBucket refuses a bucket holding objects (`BucketNotEmpty`) but aborts its
//!   in-progress multipart uploads, as S3 does for general-purpose buckets.

mod audit;
mod health;
mod list;
mod node_pieces;
mod objects;
mod replication;
mod schema;
mod streams;
mod totals;
mod uploads;

#[cfg(test)]
mod tests;

pub use health::{HealthCounts, PieceFinding, RepairSource, SegmentHealth};
pub use replication::{ReplicationState, SnapshotTaken};
pub use uploads::COMPLETED_UPLOAD_RETENTION_MS;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::log::Change;
use super::{BucketInfo, Garbage, MetaError, PieceRecord, StreamId};
use streams::StreamState;

/// Reader connections in the pool.
pub const READERS: usize = 4;

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Prepared statements kept per connection; above the number of distinct statements we run.
const STATEMENT_CACHE: usize = 64;

/// The synchronous SQLite metadata store. `Send + Sync`; share it behind an `Arc`.
pub struct SqliteMeta {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// The newest committed change's sequence number (see [`SqliteMeta::commit`]).
    commits: tokio::sync::watch::Sender<u64>,
}

impl fmt::Debug for SqliteMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteMeta")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteMeta {
    /// Opens the database at `path`, creating it (and its schema) if it does not exist.
    pub fn open(path: &Path) -> Result<SqliteMeta, MetaError> {
        private_file(path)?;
        let mut writer = Connection::open(path)?;
        configure(&writer)?;
        let mode: String =
            writer.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(MetaError::NoWal {
                path: path.to_path_buf(),
                mode,
            });
        }
        writer.pragma_update(None, "synchronous", "FULL")?;
        schema::init_schema(&mut writer)?;

        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let reader = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            configure(&reader)?;
            reader.pragma_update(None, "query_only", true)?;
            readers.push(Mutex::new(reader));
        }
        let last = replication::last_seq(&writer)?;
        Ok(SqliteMeta {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            commits: tokio::sync::watch::Sender::new(last),
        })
    }

    /// Fails with `BucketExists` if a bucket of that name exists.
    pub fn create_bucket(&self, name: &str, created_ms: i64) -> Result<(), MetaError> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if bucket_exists(&tx, name)? {
            return Err(MetaError::BucketExists(name.to_owned()));
        }
        tx.execute(
            "INSERT INTO buckets (name, created_ms) VALUES (?1, ?2)",
            params![name, created_ms],
        )?;
        self.commit(
            tx,
            Change::CreateBucket {
                name: name.to_owned(),
                created_ms,
            },
        )
    }

    /// Fails with `NoSuchBucket`, or `BucketNotEmpty` while it holds any object. In-progress
    /// multipart uploads do not keep it: they are aborted in the same transaction (their
    /// parts' streams become garbage), as S3 does for general-purpose buckets.
    pub fn delete_bucket(&self, name: &str) -> Result<(), MetaError> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        require_bucket(&tx, name)?;
        let has_object = tx
            .prepare_cached("SELECT 1 FROM objects WHERE bucket = ?1 LIMIT 1")?
            .exists(params![name])?;
        if has_object {
            return Err(MetaError::BucketNotEmpty(name.to_owned()));
        }
        uploads::abort_bucket_uploads(&tx, name)?;
        tx.execute("DELETE FROM buckets WHERE name = ?1", params![name])?;
        self.commit(
            tx,
            Change::DeleteBucket {
                name: name.to_owned(),
            },
        )
    }

    pub fn get_bucket(&self, name: &str) -> Result<Option<BucketInfo>, MetaError> {
        let conn = self.reader();
        let bucket = conn
            .prepare_cached("SELECT name, created_ms FROM buckets WHERE name = ?1")?
            .query_row(params![name], |row| {
                Ok(BucketInfo {
                    name: row.get(0)?,
                    created_ms: row.get(1)?,
                })
            })
            .optional()?;
        Ok(bucket)
    }

    /// All buckets, ordered by name (bytewise).
    pub fn list_buckets(&self) -> Result<Vec<BucketInfo>, MetaError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached("SELECT name, created_ms FROM buckets ORDER BY name")?;
        let buckets = stmt
            .query_map([], |row| {
                Ok(BucketInfo {
                    name: row.get(0)?,
                    created_ms: row.get(1)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(buckets)
    }

    /// Replaces the bucket's tag set; `None` deletes it (then [`SqliteMeta::get_bucket_tags`]
    /// answers `None`, which is not the same as an empty set). `NoSuchBucket`.
    pub fn set_bucket_tags(
        &self,
        bucket: &str,
        tags: Option<&[(String, String)]>,
    ) -> Result<(), MetaError> {
        let change = Change::SetBucketTags {
            bucket: bucket.to_owned(),
            tags: tags.map(<[_]>::to_vec),
        };
        let tags = tags.map(to_json).transpose()?;
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let updated = tx
            .prepare_cached("UPDATE buckets SET tags = ?2 WHERE name = ?1")?
            .execute(params![bucket, tags])?;
        if updated == 0 {
            return Err(MetaError::NoSuchBucket(bucket.to_owned()));
        }
        self.commit(tx, change)
    }

    /// The bucket's tag set, `None` if it has none. `NoSuchBucket`.
    pub fn get_bucket_tags(
        &self,
        bucket: &str,
    ) -> Result<Option<Vec<(String, String)>>, MetaError> {
        let conn = self.reader();
        let tags = conn
            .prepare_cached("SELECT tags FROM buckets WHERE name = ?1")?
            .query_row(params![bucket], |row| row.get::<_, Option<String>>(0))
            .optional()?
            .ok_or_else(|| MetaError::NoSuchBucket(bucket.to_owned()))?;
        tags.map(|t| from_json(&t, "buckets.tags")).transpose()
    }

    /// Up to `limit` garbage bodies, oldest first, each with all its pieces.
    pub fn garbage(&self, limit: usize) -> Result<Vec<Garbage>, MetaError> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        let ids = tx
            .prepare_cached(
                "SELECT stream_id, garbage_since_ms FROM streams WHERE garbage = 1
                 ORDER BY garbage_since_ms, stream_id LIMIT ?1",
            )?
            .query_map(params![sql_limit(limit)], |row| {
                Ok((
                    row.get::<_, [u8; 16]>(0)?,
                    row.get::<_, Option<i64>>(1)?.unwrap_or(0),
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = tx.prepare_cached(
            "SELECT segment_idx, number, node FROM pieces WHERE stream_id = ?1
             ORDER BY segment_idx, number",
        )?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, since_ms) in ids {
            let pieces = stmt
                .query_map(params![id], |row| {
                    Ok((
                        row.get::<_, u32>(0)?,
                        PieceRecord::new(row.get(1)?, row.get::<_, String>(2)?),
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            out.push(Garbage {
                stream_id: StreamId(id),
                since_ms,
                pieces,
            });
        }
        Ok(out)
    }

    /// Forgets a garbage body (its stream, segment and piece rows); call once its pieces are
    /// deleted from the nodes. Unknown ids are ignored (idempotent); a live body is refused
    /// with `StreamLive`.
    pub fn garbage_done(&self, stream_id: &StreamId) -> Result<(), MetaError> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        match streams::stream_state(&tx, stream_id)? {
            StreamState::Unknown => return Ok(()),
            StreamState::Live => return Err(MetaError::StreamLive(*stream_id)),
            StreamState::Garbage => {}
        }
        // Segments and pieces go with it (ON DELETE CASCADE).
        tx.prepare_cached("DELETE FROM streams WHERE stream_id = ?1")?
            .execute(params![stream_id.0])?;
        self.commit(
            tx,
            Change::GarbageDone {
                stream_id: *stream_id,
            },
        )
    }

    /// Up to `limit` pieces of live (referenced) bodies stored on `node`, as `(stream,
    /// segment, piece number)`, ordered by stream id, segment, number. Pieces of garbage
    /// bodies are left out: they are reported by [`SqliteMeta::garbage`].
    pub fn pieces_on_node(
        &self,
        node: &str,
        limit: usize,
    ) -> Result<Vec<(StreamId, u32, u16)>, MetaError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(PIECES_ON_NODE)?;
        let pieces = stmt
            .query_map(params![node, sql_limit(limit)], |row| {
                Ok((
                    StreamId(row.get::<_, [u8; 16]>(0)?),
                    row.get::<_, u32>(1)?,
                    row.get::<_, u16>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(pieces)
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock dropped its open Transaction, which rolled back, so
        // the connection is consistent and the poison flag can be ignored.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        for reader in &self.readers {
            match reader.try_lock() {
                Ok(conn) => return conn,
                Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        // All busy: queue on one of them, spreading waiters round-robin.
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        self.readers[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

// The garbage flag is maintained in the transaction that removes a stream's last reference,
// so `garbage = 0` is exactly "referenced by an object part or an upload part".
const PIECES_ON_NODE: &str = "SELECT p.stream_id, p.segment_idx, p.number
     FROM pieces AS p JOIN streams AS s ON s.stream_id = p.stream_id
     WHERE p.node = ?1 AND s.garbage = 0
     ORDER BY p.stream_id, p.segment_idx, p.number LIMIT ?2";

/// Names, user metadata and tags are in the database: it is created (and kept) readable by
/// its owner only. SQLite gives its `-wal` and `-shm` files the database file's mode.
pub(crate) fn private_file(path: &Path) -> Result<(), MetaError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |source| MetaError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    // An existing database (and its -wal and -shm, which keep their mode once created) from
    // before this rule, or copied in with a loose umask.
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let p = PathBuf::from(p);
        let mode = match std::fs::metadata(&p) {
            Ok(m) => m.permissions().mode(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(e)),
        };
        if mode & 0o077 != 0 {
            tracing::info!(path = %p.display(), "metadata file was readable by others: mode set to 0600");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & 0o700))
                .map_err(io)?;
        }
    }
    Ok(())
}

fn configure(conn: &Connection) -> Result<(), MetaError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

fn bucket_exists(conn: &Connection, name: &str) -> Result<bool, MetaError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM buckets WHERE name = ?1")?
        .exists(params![name])?)
}

fn require_bucket(conn: &Connection, name: &str) -> Result<(), MetaError> {
    if bucket_exists(conn, name)? {
        Ok(())
    } else {
        Err(MetaError::NoSuchBucket(name.to_owned()))
    }
}

pub(crate) fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Name/value pairs as a JSON array of `[name, value]` arrays, order preserved.
fn to_json(pairs: &[(String, String)]) -> Result<String, MetaError> {
    serde_json::to_string(pairs).map_err(|e| MetaError::InvalidRecord(e.to_string()))
}

fn from_json(text: &str, column: &str) -> Result<Vec<(String, String)>, MetaError> {
    serde_json::from_str(text).map_err(|e| MetaError::Corrupt(format!("{column}: {e}")))
}
