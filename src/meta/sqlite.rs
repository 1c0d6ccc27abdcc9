//! SQLite backend of the metadata store (rusqlite, bundled SQLite).
//!
//! Guarantees, beyond those of the parent module:
//! - The database runs in WAL mode with `synchronous=FULL` and `foreign_keys=ON`: a call that
//!   returned `Ok` from a mutation is durable across a crash or power loss.
//! - One writer connection behind a mutex; every mutation is a single `BEGIN IMMEDIATE`
//!   transaction. Reads use a pool of [`READERS`] query-only connections, each call inside one
//!   read transaction, so reads run concurrently with each other and with the writer and always
//!   see a single committed state.
//! - `PRAGMA user_version` holds the schema version. A new database gets [`SCHEMA_VERSION`];
//!   opening a newer one fails with [`MetaError::SchemaTooNew`], a non-empty database without a
//!   version fails with [`MetaError::Corrupt`] (it is not ours, and we do not touch it).
//! - Keys are stored and bound as BLOBs, so every comparison is memcmp on UTF-8 bytes.
//! - A listing page costs O(log n) per returned entry plus one row: after a common prefix it
//!   seeks past every key of that prefix instead of stepping over them.
//! - `get_object` and `delete_object` fail with [`MetaError::NoSuchBucket`] when the bucket is
//!   missing, as S3 does; `put_object` too.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{
    params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};

use super::{
    common_prefix, successor, BucketInfo, Garbage, ListPage, ListQuery, MetaError, ObjectRecord,
    ObjectSummary, PieceRecord, Placement, SegmentRecord, StreamId, StreamRecord, SCHEMA_VERSION,
};

/// Reader connections in the pool.
pub const READERS: usize = 4;

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE buckets (
    name TEXT NOT NULL PRIMARY KEY,
    created_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- One stored body. Rows stay (with their segments and pieces) after the body becomes garbage,
-- until garbage collection has deleted its pieces from the nodes.
CREATE TABLE streams (
    stream_id BLOB NOT NULL PRIMARY KEY CHECK (length(stream_id) = 16),
    cipher INTEGER NOT NULL,
    block_size INTEGER NOT NULL,
    segment_size INTEGER NOT NULL,
    garbage INTEGER NOT NULL DEFAULT 0 CHECK (garbage IN (0, 1)),
    garbage_since_ms INTEGER
) WITHOUT ROWID;
CREATE INDEX streams_garbage ON streams (garbage_since_ms, stream_id) WHERE garbage = 1;

CREATE TABLE objects (
    bucket TEXT NOT NULL REFERENCES buckets (name),
    key BLOB NOT NULL,
    version_id TEXT,
    format INTEGER NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    last_modified_ms INTEGER NOT NULL,
    content_type TEXT,
    system_meta TEXT NOT NULL,
    user_meta TEXT NOT NULL,
    -- UNIQUE: a body belongs to one object, and the index keeps the foreign-key check cheap
    -- when garbage_done deletes a stream.
    stream_id BLOB NOT NULL UNIQUE REFERENCES streams (stream_id),
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;

CREATE TABLE segments (
    stream_id BLOB NOT NULL REFERENCES streams (stream_id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    plain_size INTEGER NOT NULL,
    wrapped_key BLOB NOT NULL,
    inline_data BLOB,
    k INTEGER,
    n INTEGER,
    chunk_size INTEGER,
    PRIMARY KEY (stream_id, idx),
    CHECK ((inline_data IS NOT NULL AND k IS NULL AND n IS NULL AND chunk_size IS NULL)
        OR (inline_data IS NULL AND k IS NOT NULL AND n IS NOT NULL AND chunk_size IS NOT NULL))
) WITHOUT ROWID;

CREATE TABLE pieces (
    stream_id BLOB NOT NULL,
    segment_idx INTEGER NOT NULL,
    number INTEGER NOT NULL,
    node TEXT NOT NULL,
    PRIMARY KEY (stream_id, segment_idx, number),
    FOREIGN KEY (stream_id, segment_idx) REFERENCES segments (stream_id, idx) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX pieces_by_node ON pieces (node, stream_id);
";

/// The synchronous SQLite metadata store. `Send + Sync`; share it behind an `Arc`.
pub struct SqliteMeta {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
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
        init_schema(&mut writer)?;

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
        Ok(SqliteMeta {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
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
        tx.commit()?;
        Ok(())
    }

    /// Fails with `NoSuchBucket`, or `BucketNotEmpty` while it holds any object.
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
        tx.execute("DELETE FROM buckets WHERE name = ?1", params![name])?;
        tx.commit()?;
        Ok(())
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

    /// Insert or replace (same bucket+key) atomically; the replaced body (if any) becomes garbage
    /// in the same transaction. Fails with `NoSuchBucket` if the bucket is missing,
    /// `StreamExists` if the record's stream id is already recorded, `InvalidRecord` if segment
    /// indices are not `0..len` or a segment's pieces are not strictly increasing and `< n`.
    pub fn put_object(&self, rec: &ObjectRecord) -> Result<(), MetaError> {
        validate(rec)?;
        let system_meta = to_json(&rec.system_meta)?;
        let user_meta = to_json(&rec.user_meta)?;
        let stream_id = rec.stream.stream_id;

        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        require_bucket(&tx, &rec.bucket)?;
        let known = tx
            .prepare_cached("SELECT 1 FROM streams WHERE stream_id = ?1")?
            .exists(params![stream_id.0])?;
        if known {
            return Err(MetaError::StreamExists(stream_id));
        }
        let replaced = object_stream(&tx, &rec.bucket, &rec.key)?;
        insert_stream(&tx, &rec.stream)?;
        tx.prepare_cached(
            "INSERT INTO objects (bucket, key, version_id, format, size, etag, last_modified_ms,
                 content_type, system_meta, user_meta, stream_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (bucket, key) DO UPDATE SET
                 version_id = excluded.version_id, format = excluded.format,
                 size = excluded.size, etag = excluded.etag,
                 last_modified_ms = excluded.last_modified_ms,
                 content_type = excluded.content_type, system_meta = excluded.system_meta,
                 user_meta = excluded.user_meta, stream_id = excluded.stream_id",
        )?
        .execute(params![
            rec.bucket,
            rec.key.as_bytes(),
            rec.version_id,
            rec.format,
            rec.size,
            rec.etag,
            rec.last_modified_ms,
            rec.content_type,
            system_meta,
            user_meta,
            stream_id.0,
        ])?;
        if let Some(old) = replaced {
            mark_garbage(&tx, &old)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// `Ok(None)` if the bucket exists but the key does not.
    pub fn get_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>, MetaError> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        let row = tx
            .prepare_cached(
                "SELECT version_id, format, size, etag, last_modified_ms, content_type,
                        system_meta, user_meta, stream_id
                 FROM objects WHERE bucket = ?1 AND key = ?2",
            )?
            .query_row(params![bucket, key.as_bytes()], |row| {
                Ok((
                    row.get::<_, Option<String>>(0)?,
                    row.get::<_, u32>(1)?,
                    row.get::<_, u64>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, Option<String>>(5)?,
                    row.get::<_, String>(6)?,
                    row.get::<_, String>(7)?,
                    row.get::<_, [u8; 16]>(8)?,
                ))
            })
            .optional()?;
        let Some((version_id, format, size, etag, last_modified_ms, content_type, sys, user, id)) =
            row
        else {
            require_bucket(&tx, bucket)?;
            return Ok(None);
        };
        Ok(Some(ObjectRecord {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id,
            format,
            size,
            etag,
            last_modified_ms,
            content_type,
            system_meta: from_json(&sys, "system_meta")?,
            user_meta: from_json(&user, "user_meta")?,
            stream: read_stream(&tx, StreamId(id))?,
        }))
    }

    /// Removes the object (if present; returns whether it existed); its body becomes garbage.
    pub fn delete_object(&self, bucket: &str, key: &str) -> Result<bool, MetaError> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        require_bucket(&tx, bucket)?;
        let Some(old) = object_stream(&tx, bucket, key)? else {
            return Ok(false);
        };
        tx.prepare_cached("DELETE FROM objects WHERE bucket = ?1 AND key = ?2")?
            .execute(params![bucket, key.as_bytes()])?;
        mark_garbage(&tx, &old)?;
        tx.commit()?;
        Ok(true)
    }

    /// One page of an S3 listing; see [`ListQuery`]. `NoSuchBucket` if the bucket is missing.
    pub fn list_objects(&self, q: &ListQuery) -> Result<ListPage, MetaError> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        require_bucket(&tx, q.bucket)?;
        Ok(list_page(&tx, q)?.0)
    }

    /// Up to `limit` garbage bodies, oldest first, each with all its pieces.
    pub fn garbage(&self, limit: usize) -> Result<Vec<Garbage>, MetaError> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        let ids = tx
            .prepare_cached(
                "SELECT stream_id FROM streams WHERE garbage = 1
                 ORDER BY garbage_since_ms, stream_id LIMIT ?1",
            )?
            .query_map(params![sql_limit(limit)], |row| row.get::<_, [u8; 16]>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = tx.prepare_cached(
            "SELECT segment_idx, number, node FROM pieces WHERE stream_id = ?1
             ORDER BY segment_idx, number",
        )?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let pieces = stmt
                .query_map(params![id], |row| {
                    Ok((
                        row.get::<_, u32>(0)?,
                        PieceRecord {
                            number: row.get(1)?,
                            node: row.get(2)?,
                        },
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            out.push(Garbage {
                stream_id: StreamId(id),
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
        let garbage = tx
            .prepare_cached("SELECT garbage FROM streams WHERE stream_id = ?1")?
            .query_row(params![stream_id.0], |row| row.get::<_, bool>(0))
            .optional()?;
        match garbage {
            None => return Ok(()),
            Some(false) => return Err(MetaError::StreamLive(*stream_id)),
            Some(true) => {}
        }
        // Segments and pieces go with it (ON DELETE CASCADE).
        tx.prepare_cached("DELETE FROM streams WHERE stream_id = ?1")?
            .execute(params![stream_id.0])?;
        tx.commit()?;
        Ok(())
    }

    /// Up to `limit` pieces of live bodies stored on `node`, as `(stream, segment, piece
    /// number)`, ordered by stream id, segment, number. Pieces of garbage bodies are left out:
    /// they are reported by [`SqliteMeta::garbage`].
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

const PIECES_ON_NODE: &str = "SELECT p.stream_id, p.segment_idx, p.number
     FROM pieces AS p JOIN streams AS s ON s.stream_id = p.stream_id
     WHERE p.node = ?1 AND s.garbage = 0
     ORDER BY p.stream_id, p.segment_idx, p.number LIMIT ?2";

fn configure(conn: &Connection) -> Result<(), MetaError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}

fn init_schema(conn: &mut Connection) -> Result<(), MetaError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: u32 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    match found {
        0 => {
            let objects: i64 =
                tx.query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))?;
            if objects > 0 {
                return Err(MetaError::Corrupt(
                    "database has tables but no schema version; not a gateway metadata database"
                        .into(),
                ));
            }
            tx.execute_batch(SCHEMA)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        SCHEMA_VERSION => {}
        found if found > SCHEMA_VERSION => {
            return Err(MetaError::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            })
        }
        found => {
            return Err(MetaError::Corrupt(format!(
                "unknown schema version {found} (this build knows {SCHEMA_VERSION})"
            )))
        }
    }
    tx.commit()?;
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

fn object_stream(
    conn: &Connection,
    bucket: &str,
    key: &str,
) -> Result<Option<StreamId>, MetaError> {
    let id = conn
        .prepare_cached("SELECT stream_id FROM objects WHERE bucket = ?1 AND key = ?2")?
        .query_row(params![bucket, key.as_bytes()], |row| {
            row.get::<_, [u8; 16]>(0)
        })
        .optional()?;
    Ok(id.map(StreamId))
}

fn mark_garbage(tx: &Transaction, id: &StreamId) -> Result<(), MetaError> {
    tx.prepare_cached(
        "UPDATE streams SET garbage = 1, garbage_since_ms = ?2 WHERE stream_id = ?1",
    )?
    .execute(params![id.0, now_ms()])?;
    Ok(())
}

fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn validate(rec: &ObjectRecord) -> Result<(), MetaError> {
    let invalid =
        |what: String| MetaError::InvalidRecord(format!("{}/{}: {what}", rec.bucket, rec.key));
    for (position, segment) in rec.stream.segments.iter().enumerate() {
        if usize::try_from(segment.index).ok() != Some(position) {
            return Err(invalid(format!(
                "segment at position {position} has index {}",
                segment.index
            )));
        }
        if let Placement::Pieces { n, pieces, .. } = &segment.placement {
            let mut previous: Option<u16> = None;
            for piece in pieces {
                if piece.number >= *n || previous.is_some_and(|p| p >= piece.number) {
                    return Err(invalid(format!(
                        "segment {position}: piece numbers must increase strictly and stay below n = {n}"
                    )));
                }
                previous = Some(piece.number);
            }
        }
    }
    Ok(())
}

fn to_json(pairs: &[(String, String)]) -> Result<String, MetaError> {
    serde_json::to_string(pairs).map_err(|e| MetaError::InvalidRecord(e.to_string()))
}

fn from_json(text: &str, column: &str) -> Result<Vec<(String, String)>, MetaError> {
    serde_json::from_str(text).map_err(|e| MetaError::Corrupt(format!("objects.{column}: {e}")))
}

fn insert_stream(tx: &Transaction, stream: &StreamRecord) -> Result<(), MetaError> {
    let id = stream.stream_id.0;
    tx.prepare_cached(
        "INSERT INTO streams (stream_id, cipher, block_size, segment_size) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        id,
        stream.cipher,
        stream.block_size,
        stream.segment_size
    ])?;
    let mut insert_segment = tx.prepare_cached(
        "INSERT INTO segments (stream_id, idx, plain_size, wrapped_key, inline_data, k, n,
             chunk_size)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut insert_piece = tx.prepare_cached(
        "INSERT INTO pieces (stream_id, segment_idx, number, node) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for segment in &stream.segments {
        match &segment.placement {
            Placement::Inline(data) => {
                insert_segment.execute(params![
                    id,
                    segment.index,
                    segment.plain_size,
                    segment.wrapped_key,
                    data,
                    None::<u16>,
                    None::<u16>,
                    None::<u32>,
                ])?;
            }
            Placement::Pieces {
                k,
                n,
                chunk_size,
                pieces,
            } => {
                insert_segment.execute(params![
                    id,
                    segment.index,
                    segment.plain_size,
                    segment.wrapped_key,
                    None::<Vec<u8>>,
                    k,
                    n,
                    chunk_size,
                ])?;
                for piece in pieces {
                    insert_piece.execute(params![id, segment.index, piece.number, piece.node])?;
                }
            }
        }
    }
    Ok(())
}

type SegmentRow = (
    u32,
    u64,
    Vec<u8>,
    Option<Vec<u8>>,
    Option<u16>,
    Option<u16>,
    Option<u32>,
);

fn read_stream(tx: &Connection, id: StreamId) -> Result<StreamRecord, MetaError> {
    let (cipher, block_size, segment_size) = tx
        .prepare_cached(
            "SELECT cipher, block_size, segment_size FROM streams WHERE stream_id = ?1",
        )?
        .query_row(params![id.0], |row| {
            Ok((
                row.get::<_, u8>(0)?,
                row.get::<_, u32>(1)?,
                row.get::<_, u64>(2)?,
            ))
        })
        .optional()?
        .ok_or_else(|| MetaError::Corrupt(format!("object refers to missing stream {id:?}")))?;

    let rows: Vec<SegmentRow> = tx
        .prepare_cached(
            "SELECT idx, plain_size, wrapped_key, inline_data, k, n, chunk_size
             FROM segments WHERE stream_id = ?1 ORDER BY idx",
        )?
        .query_map(params![id.0], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut segments = Vec::with_capacity(rows.len());
    for (position, (index, plain_size, wrapped_key, inline, k, n, chunk_size)) in
        rows.into_iter().enumerate()
    {
        if usize::try_from(index).ok() != Some(position) {
            return Err(MetaError::Corrupt(format!(
                "stream {id:?}: segment {index} found at position {position}"
            )));
        }
        let placement = match (inline, k, n, chunk_size) {
            (Some(data), None, None, None) => Placement::Inline(data),
            (None, Some(k), Some(n), Some(chunk_size)) => Placement::Pieces {
                k,
                n,
                chunk_size,
                pieces: Vec::new(),
            },
            _ => {
                return Err(MetaError::Corrupt(format!(
                    "stream {id:?}: segment {index} is neither inline nor pieces"
                )))
            }
        };
        segments.push(SegmentRecord {
            index,
            plain_size,
            wrapped_key,
            placement,
        });
    }

    let mut stmt = tx.prepare_cached(
        "SELECT segment_idx, number, node FROM pieces WHERE stream_id = ?1
         ORDER BY segment_idx, number",
    )?;
    let mut rows = stmt.query(params![id.0])?;
    while let Some(row) = rows.next()? {
        let index: u32 = row.get(0)?;
        let piece = PieceRecord {
            number: row.get(1)?,
            node: row.get(2)?,
        };
        let segment = usize::try_from(index)
            .ok()
            .and_then(|i| segments.get_mut(i));
        match segment.map(|s| &mut s.placement) {
            Some(Placement::Pieces { pieces, .. }) => pieces.push(piece),
            _ => {
                return Err(MetaError::Corrupt(format!(
                    "stream {id:?}: piece {} belongs to no erasure-coded segment {index}",
                    piece.number
                )))
            }
        }
    }
    Ok(StreamRecord {
        stream_id: id,
        cipher,
        block_size,
        segment_size,
        segments,
    })
}

/// Where the next range scan of a listing starts.
enum Lower {
    Inclusive(Vec<u8>),
    Exclusive(Vec<u8>),
}

/// Keys of bucket `?1` from bound `?2` (`op` is `>` or `>=`), below `?3` if `upper`, in order.
fn range_sql(op: &str, upper: bool) -> String {
    let upper = if upper { " AND key < ?3" } else { "" };
    format!(
        "SELECT key, size, etag, last_modified_ms FROM objects
         WHERE bucket = ?1 AND key {op} ?2{upper} ORDER BY key"
    )
}

/// Builds one listing page; also returns how many rows were read from SQLite, which the
/// tests use to check that common prefixes are skipped by seeking, not by scanning.
fn list_page(conn: &Connection, q: &ListQuery) -> Result<(ListPage, usize), MetaError> {
    let delimiter = q.delimiter.filter(|d| !d.is_empty());
    let prefix = q.prefix.as_bytes();
    // Keys starting with the prefix are exactly those in [prefix, successor(prefix)).
    let upper = successor(prefix);
    let mut page = ListPage::default();
    let mut rows_read = 0;
    if q.max_keys == 0 {
        // S3 answers max-keys=0 with an empty page that is not truncated (there is nothing
        // to continue from), whatever the bucket holds.
        return Ok((page, rows_read));
    }

    let mut lower = match q.start_after {
        Some(after) if after.as_bytes() >= prefix => {
            match delimiter.and_then(|d| common_prefix(q.prefix, after, d)) {
                // start_after is a common prefix or inside one: that prefix was already
                // returned, so resume after all of its keys.
                Some(group) => match successor(group.as_bytes()) {
                    Some(next) => Lower::Inclusive(next),
                    None => return Ok((page, rows_read)),
                },
                None => Lower::Exclusive(after.as_bytes().to_vec()),
            }
        }
        _ => Lower::Inclusive(prefix.to_vec()),
    };

    'seek: loop {
        let (op, bound) = match &lower {
            Lower::Inclusive(b) => (">=", b),
            Lower::Exclusive(b) => (">", b),
        };
        let mut stmt = conn.prepare_cached(&range_sql(op, upper.is_some()))?;
        let mut rows = match &upper {
            Some(upper) => stmt.query(params![q.bucket, bound, upper])?,
            None => stmt.query(params![q.bucket, bound])?,
        };
        while let Some(row) = rows.next()? {
            rows_read += 1;
            if page.objects.len() + page.common_prefixes.len() >= q.max_keys {
                // Any key left in range yields another object or a new common prefix.
                page.is_truncated = true;
                break 'seek;
            }
            let key = String::from_utf8(row.get::<_, Vec<u8>>(0)?)
                .map_err(|e| MetaError::Corrupt(format!("object key is not UTF-8: {e}")))?;
            if let Some(group) = delimiter.and_then(|d| common_prefix(q.prefix, &key, d)) {
                let group = group.to_owned();
                let Some(next) = successor(group.as_bytes()) else {
                    page.next_marker = Some(group.clone());
                    page.common_prefixes.push(group);
                    break 'seek;
                };
                lower = Lower::Inclusive(next);
                page.next_marker = Some(group.clone());
                page.common_prefixes.push(group);
                continue 'seek;
            }
            page.next_marker = Some(key.clone());
            page.objects.push(ObjectSummary {
                key,
                size: row.get(1)?,
                etag: row.get(2)?,
                last_modified_ms: row.get(3)?,
            });
        }
        break;
    }
    Ok((page, rows_read))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::meta::OBJECT_FORMAT;
    use std::collections::BTreeSet;
    use std::sync::atomic::AtomicBool;

    fn store() -> (tempfile::TempDir, SqliteMeta) {
        let dir = tempfile::tempdir().unwrap();
        let meta = SqliteMeta::open(&dir.path().join("meta.db")).unwrap();
        (dir, meta)
    }

    /// Durability is not under test here; skip fsyncs so bulk inserts stay fast.
    fn no_sync(meta: &SqliteMeta) {
        meta.writer()
            .pragma_update(None, "synchronous", "OFF")
            .unwrap();
    }

    fn id(n: u128) -> StreamId {
        StreamId(n.to_be_bytes())
    }

    fn pieces(n: u16, nodes: &[&str]) -> Placement {
        Placement::Pieces {
            k: 2,
            n,
            chunk_size: 4096,
            pieces: nodes
                .iter()
                .enumerate()
                .map(|(i, node)| PieceRecord {
                    number: u16::try_from(i * 2).unwrap(),
                    node: node.to_string(),
                })
                .collect(),
        }
    }

    fn segment(index: u32, placement: Placement) -> SegmentRecord {
        SegmentRecord {
            index,
            plain_size: 1000 + u64::from(index),
            wrapped_key: vec![index as u8; 40],
            placement,
        }
    }

    fn rec(bucket: &str, key: &str, stream: u128, segments: Vec<SegmentRecord>) -> ObjectRecord {
        ObjectRecord {
            bucket: bucket.into(),
            key: key.into(),
            version_id: None,
            format: OBJECT_FORMAT,
            size: segments.iter().map(|s| s.plain_size).sum(),
            etag: format!("etag-{stream}"),
            last_modified_ms: 1_700_000_000_000,
            content_type: None,
            system_meta: vec![],
            user_meta: vec![],
            stream: StreamRecord {
                stream_id: id(stream),
                cipher: 1,
                block_size: 65536,
                segment_size: 64 << 20,
                segments,
            },
        }
    }

    fn small(bucket: &str, key: &str, stream: u128) -> ObjectRecord {
        rec(
            bucket,
            key,
            stream,
            vec![segment(0, Placement::Inline(vec![7; 5]))],
        )
    }

    fn count(meta: &SqliteMeta, table: &str, stream: &StreamId) -> i64 {
        meta.writer()
            .query_row(
                &format!("SELECT count(*) FROM {table} WHERE stream_id = ?1"),
                params![stream.0],
                |row| row.get(0),
            )
            .unwrap()
    }

    fn plan(meta: &SqliteMeta, sql: &str) -> String {
        let conn = meta.reader();
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
        let details = stmt
            .query_map(rusqlite::params_from_iter(nulls), |row| {
                row.get::<_, String>(3)
            })
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        details.join("; ")
    }

    #[test]
    fn reopen_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        let object = small("b", "k", 1);
        {
            let meta = SqliteMeta::open(&path).unwrap();
            meta.create_bucket("b", 42).unwrap();
            meta.put_object(&object).unwrap();
        }
        let meta = SqliteMeta::open(&path).unwrap();
        assert_eq!(
            meta.list_buckets().unwrap(),
            vec![BucketInfo {
                name: "b".into(),
                created_ms: 42
            }]
        );
        assert_eq!(meta.get_object("b", "k").unwrap(), Some(object));
        let mode: String = meta
            .reader()
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = meta
            .writer()
            .query_row("PRAGMA synchronous", [], |row| row.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
        let fk: bool = meta
            .reader()
            .query_row("PRAGMA foreign_keys", [], |row| row.get(0))
            .unwrap();
        assert!(fk);
    }

    #[test]
    fn schema_version_is_written_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        drop(SqliteMeta::open(&path).unwrap());
        let raw = Connection::open(&path).unwrap();
        let version: u32 = raw
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        raw.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(raw);
        match SqliteMeta::open(&path) {
            Err(MetaError::SchemaTooNew { found, supported }) => {
                assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }

    #[test]
    fn foreign_database_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        let raw = Connection::open(&path).unwrap();
        raw.execute_batch("CREATE TABLE notes (body TEXT)").unwrap();
        drop(raw);
        assert!(matches!(
            SqliteMeta::open(&path),
            Err(MetaError::Corrupt(_))
        ));
        let raw = Connection::open(&path).unwrap();
        let tables: i64 = raw
            .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
            .unwrap();
        assert_eq!(tables, 1);
    }

    #[test]
    fn bucket_errors() {
        let (_dir, meta) = store();
        meta.create_bucket("zeta", 2).unwrap();
        meta.create_bucket("alpha", 1).unwrap();
        assert!(
            matches!(meta.create_bucket("zeta", 3), Err(MetaError::BucketExists(n)) if n == "zeta")
        );
        let names: Vec<_> = meta
            .list_buckets()
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .collect();
        assert_eq!(names, ["alpha", "zeta"]);
        assert_eq!(meta.get_bucket("zeta").unwrap().unwrap().created_ms, 2);
        assert_eq!(meta.get_bucket("nope").unwrap(), None);
        assert!(matches!(
            meta.delete_bucket("nope"),
            Err(MetaError::NoSuchBucket(_))
        ));
        assert!(matches!(
            meta.put_object(&small("nope", "k", 1)),
            Err(MetaError::NoSuchBucket(_))
        ));
        assert!(matches!(
            meta.get_object("nope", "k"),
            Err(MetaError::NoSuchBucket(_))
        ));
        assert!(matches!(
            meta.delete_object("nope", "k"),
            Err(MetaError::NoSuchBucket(_))
        ));
        let q = ListQuery {
            bucket: "nope",
            prefix: "",
            delimiter: None,
            start_after: None,
            max_keys: 10,
        };
        assert!(matches!(
            meta.list_objects(&q),
            Err(MetaError::NoSuchBucket(_))
        ));

        meta.put_object(&small("zeta", "k", 1)).unwrap();
        assert!(
            matches!(meta.delete_bucket("zeta"), Err(MetaError::BucketNotEmpty(n)) if n == "zeta")
        );
        assert!(meta.delete_object("zeta", "k").unwrap());
        meta.delete_bucket("zeta").unwrap();
        assert_eq!(meta.get_bucket("zeta").unwrap(), None);
        assert_eq!(meta.get_object("alpha", "k").unwrap(), None);
    }

    #[test]
    fn inline_and_pieces_placements_round_trip_exactly() {
        let (_dir, meta) = store();
        meta.create_bucket("b", 0).unwrap();
        let mut object = rec(
            "b",
            "dir/ünï cödé %+ \u{1}",
            9,
            vec![
                segment(0, pieces(6, &["n1", "n2", "n3"])),
                segment(1, Placement::Inline(vec![0, 255, 1, 2])),
                segment(2, Placement::Inline(Vec::new())),
                segment(3, pieces(4, &[])),
            ],
        );
        object.version_id = Some("v1".into());
        object.content_type = Some("text/plain; charset=utf-8".into());
        object.system_meta = vec![
            ("cache-control".into(), "no-cache".into()),
            (
                "content-disposition".into(),
                "attachment; filename=\"ä.txt\"".into(),
            ),
        ];
        object.user_meta = vec![("zeta".into(), "1".into()), ("alpha".into(), "日本".into())];
        meta.put_object(&object).unwrap();
        assert_eq!(
            meta.get_object("b", &object.key).unwrap(),
            Some(object.clone())
        );
        assert_eq!(meta.get_object("b", "dir/").unwrap(), None);
    }

    #[test]
    fn invalid_records_are_refused() {
        let (_dir, meta) = store();
        meta.create_bucket("b", 0).unwrap();
        let gap = rec("b", "k", 1, vec![segment(1, Placement::Inline(vec![]))]);
        assert!(matches!(
            meta.put_object(&gap),
            Err(MetaError::InvalidRecord(_))
        ));
        let mut unsorted = rec("b", "k", 2, vec![segment(0, pieces(6, &["a", "b"]))]);
        if let Placement::Pieces { pieces, .. } = &mut unsorted.stream.segments[0].placement {
            pieces.reverse();
        }
        assert!(matches!(
            meta.put_object(&unsorted),
            Err(MetaError::InvalidRecord(_))
        ));
        let too_many = rec("b", "k", 3, vec![segment(0, pieces(3, &["a", "b", "c"]))]);
        assert!(matches!(
            meta.put_object(&too_many),
            Err(MetaError::InvalidRecord(_))
        ));
        assert_eq!(meta.get_object("b", "k").unwrap(), None);
    }

    #[test]
    fn replaced_and_deleted_bodies_become_garbage_until_done() {
        let (_dir, meta) = store();
        meta.create_bucket("b", 0).unwrap();
        let first = rec(
            "b",
            "k",
            1,
            vec![
                segment(0, pieces(6, &["n1", "n2"])),
                segment(1, pieces(6, &["n3"])),
            ],
        );
        meta.put_object(&first).unwrap();
        assert!(meta.garbage(10).unwrap().is_empty());

        let second = small("b", "k", 2);
        meta.put_object(&second).unwrap();
        assert_eq!(meta.get_object("b", "k").unwrap(), Some(second.clone()));
        let piece = |number: u16, node: &str| PieceRecord {
            number,
            node: node.into(),
        };
        assert_eq!(
            meta.garbage(10).unwrap(),
            vec![Garbage {
                stream_id: id(1),
                pieces: vec![
                    (0, piece(0, "n1")),
                    (0, piece(2, "n2")),
                    (1, piece(0, "n3"))
                ],
            }]
        );
        // Garbage pieces are reported by garbage(), not as live pieces on the node.
        assert!(meta.pieces_on_node("n1", 10).unwrap().is_empty());

        assert!(meta.delete_object("b", "k").unwrap());
        assert!(!meta.delete_object("b", "k").unwrap());
        assert_eq!(meta.get_object("b", "k").unwrap(), None);
        let garbage = meta.garbage(10).unwrap();
        assert_eq!(garbage.len(), 2);
        assert_eq!(garbage[1].stream_id, id(2));
        assert!(garbage[1].pieces.is_empty());
        assert_eq!(meta.garbage(1).unwrap().len(), 1);

        meta.garbage_done(&id(1)).unwrap();
        for table in ["streams", "segments", "pieces"] {
            assert_eq!(count(&meta, table, &id(1)), 0, "{table}");
        }
        assert_eq!(count(&meta, "segments", &id(2)), 1);
        assert_eq!(meta.garbage(10).unwrap().len(), 1);
        meta.garbage_done(&id(1)).unwrap();
        meta.garbage_done(&id(2)).unwrap();
        assert!(meta.garbage(10).unwrap().is_empty());
        // The bucket is empty of objects and garbage alike.
        meta.delete_bucket("b").unwrap();
    }

    #[test]
    fn live_streams_are_protected() {
        let (_dir, meta) = store();
        meta.create_bucket("b", 0).unwrap();
        let first = small("b", "k", 1);
        meta.put_object(&first).unwrap();
        assert!(matches!(meta.garbage_done(&id(1)), Err(MetaError::StreamLive(s)) if s == id(1)));
        assert_eq!(meta.get_object("b", "k").unwrap(), Some(first.clone()));
        // Re-putting under a known stream id fails and changes nothing.
        assert!(matches!(
            meta.put_object(&small("b", "other", 1)),
            Err(MetaError::StreamExists(_))
        ));
        assert!(matches!(
            meta.put_object(&small("b", "k", 1)),
            Err(MetaError::StreamExists(_))
        ));
        assert_eq!(meta.get_object("b", "k").unwrap(), Some(first));
        assert_eq!(meta.get_object("b", "other").unwrap(), None);
        assert!(meta.garbage(10).unwrap().is_empty());
    }

    #[test]
    fn pieces_on_node_lists_live_pieces_through_its_index() {
        let (_dir, meta) = store();
        meta.create_bucket("b", 0).unwrap();
        meta.put_object(&rec(
            "b",
            "x",
            2,
            vec![segment(0, pieces(6, &["n1", "n2", "n1"]))],
        ))
        .unwrap();
        meta.put_object(&rec(
            "b",
            "y",
            1,
            vec![
                segment(0, pieces(6, &["n2"])),
                segment(1, pieces(6, &["n1"])),
            ],
        ))
        .unwrap();
        assert_eq!(
            meta.pieces_on_node("n1", 10).unwrap(),
            vec![(id(1), 1, 0), (id(2), 0, 0), (id(2), 0, 4)]
        );
        assert_eq!(meta.pieces_on_node("n1", 2).unwrap().len(), 2);
        assert!(meta.pieces_on_node("n9", 10).unwrap().is_empty());
        let plan = plan(&meta, PIECES_ON_NODE);
        assert!(plan.contains("pieces_by_node"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }

    fn list(
        meta: &SqliteMeta,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> ListPage {
        meta.list_objects(&ListQuery {
            bucket: "b",
            prefix,
            delimiter,
            start_after,
            max_keys,
        })
        .unwrap()
    }

    fn keys(page: &ListPage) -> Vec<&str> {
        page.objects.iter().map(|o| o.key.as_str()).collect()
    }

    fn with_keys(keys: &[&str]) -> (tempfile::TempDir, SqliteMeta) {
        let (dir, meta) = store();
        no_sync(&meta);
        meta.create_bucket("b", 0).unwrap();
        for (i, key) in keys.iter().enumerate() {
            meta.put_object(&small("b", key, i as u128)).unwrap();
        }
        (dir, meta)
    }

    #[test]
    fn listing_orders_by_utf8_bytes() {
        // UTF-16 order would put the emoji (a surrogate pair) before U+FFFD.
        let all = [
            "😀", "\u{FFFD}", "é", "z", "Z", "a b", "a%", "a+", "\u{1}", "a\u{0}b", "~",
        ];
        let (_dir, meta) = with_keys(&all);
        let page = list(&meta, "", None, None, 100);
        let mut expected: Vec<&str> = all.to_vec();
        expected.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        assert_eq!(keys(&page), expected);
        assert_eq!(expected.last(), Some(&"😀"));
        assert!(!page.is_truncated);
        assert_eq!(page.next_marker.as_deref(), Some("😀"));
        let summary = &page.objects[0];
        assert_eq!((summary.size, summary.etag.as_str()), (1000, "etag-8"));
        assert_eq!(
            keys(&list(&meta, "a", None, None, 100)),
            ["a\u{0}b", "a b", "a%", "a+"]
        );
        assert_eq!(
            keys(&list(&meta, "", None, Some("z"), 100)),
            ["~", "é", "\u{FFFD}", "😀"]
        );
    }

    #[test]
    fn listing_groups_by_delimiter() {
        let (_dir, meta) = with_keys(&[
            "a/1", "a/2/x", "a/2/y", "a+b", "a/", "b", "c/d", "c--e--f", "c--g", "c-h", "日/本",
            "日本",
        ]);
        let page = list(&meta, "", Some("/"), None, 100);
        assert_eq!(keys(&page), ["a+b", "b", "c--e--f", "c--g", "c-h", "日本"]);
        assert_eq!(page.common_prefixes, ["a/", "c/", "日/"]);
        assert_eq!(page.next_marker.as_deref(), Some("日本"));

        let page = list(&meta, "a/", Some("/"), None, 100);
        assert_eq!(keys(&page), ["a/", "a/1"]);
        assert_eq!(page.common_prefixes, ["a/2/"]);

        let page = list(&meta, "c", Some("--"), None, 100);
        assert_eq!(keys(&page), ["c-h", "c/d"]);
        assert_eq!(page.common_prefixes, ["c--"]);
        let page = list(&meta, "c--", Some("--"), None, 100);
        assert_eq!(keys(&page), ["c--g"]);
        assert_eq!(page.common_prefixes, ["c--e--"]);

        let page = list(&meta, "", Some("日"), None, 100);
        assert_eq!(page.common_prefixes, ["日"]);
        assert_eq!(page.objects.len(), 10);

        // An empty delimiter means no grouping.
        assert_eq!(list(&meta, "a/", Some(""), None, 100).objects.len(), 4);
    }

    #[test]
    fn listing_resumes_after_common_prefixes() {
        let (_dir, meta) = with_keys(&["a/1", "a/2", "a/3", "b", "c/1", "d"]);
        // start_after inside a common prefix skips the rest of it.
        let page = list(&meta, "", Some("/"), Some("a/1"), 100);
        assert_eq!(keys(&page), ["b", "d"]);
        assert_eq!(page.common_prefixes, ["c/"]);
        // start_after equal to a common prefix, as a continuation from a previous page.
        let page = list(&meta, "", Some("/"), Some("a/"), 100);
        assert_eq!(page.common_prefixes, ["c/"]);
        // start_after before the prefix group still returns it.
        let page = list(&meta, "", Some("/"), Some("a"), 100);
        assert_eq!(page.common_prefixes, ["a/", "c/"]);
        // Without a delimiter the same marker is just a key position.
        assert_eq!(
            keys(&list(&meta, "", None, Some("a/1"), 100)),
            ["a/2", "a/3", "b", "c/1", "d"]
        );
        // start_after below or above the prefix range.
        assert_eq!(
            keys(&list(&meta, "a/", None, Some("0"), 100)),
            ["a/1", "a/2", "a/3"]
        );
        assert!(keys(&list(&meta, "a/", None, Some("b"), 100)).is_empty());

        let page = list(&meta, "", Some("/"), None, 2);
        assert_eq!(keys(&page), ["b"]);
        assert_eq!(page.common_prefixes, ["a/"]);
        assert!(page.is_truncated);
        assert_eq!(page.next_marker.as_deref(), Some("b"));
        let page = list(&meta, "", Some("/"), Some("b"), 2);
        assert_eq!(keys(&page), ["d"]);
        assert_eq!(page.common_prefixes, ["c/"]);
        assert!(!page.is_truncated, "nothing follows the last entry");
    }

    #[test]
    fn max_keys_zero_is_an_empty_untruncated_page() {
        let (_dir, meta) = with_keys(&["a/1", "b"]);
        let page = list(&meta, "", Some("/"), None, 0);
        assert_eq!(page, ListPage::default());
        assert!(!list(&meta, "a", None, None, 0).is_truncated);
        assert!(!list(&meta, "c", None, None, 0).is_truncated);
        assert!(!list(&meta, "", None, Some("b"), 0).is_truncated);
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Entry {
        Key(String),
        Prefix(String),
    }

    impl Entry {
        fn name(&self) -> &str {
            match self {
                Entry::Key(s) | Entry::Prefix(s) => s,
            }
        }
    }

    /// Brute-force S3 listing over all keys.
    fn reference(
        all: &BTreeSet<String>,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<&str>,
    ) -> Vec<Entry> {
        let mut out: Vec<Entry> = Vec::new();
        for key in all.iter().filter(|k| k.starts_with(prefix)) {
            let rest = &key[prefix.len()..];
            let entry = match delimiter.filter(|d| !d.is_empty()).and_then(|d| {
                rest.find(d)
                    .map(|at| Entry::Prefix(key[..prefix.len() + at + d.len()].to_string()))
            }) {
                Some(group) => group,
                None => Entry::Key(key.clone()),
            };
            if out.last() != Some(&entry) {
                out.push(entry);
            }
        }
        out.retain(|e| start_after.is_none_or(|s| e.name() > s));
        out
    }

    fn entries(page: &ListPage) -> Vec<Entry> {
        let mut out: Vec<Entry> = page
            .objects
            .iter()
            .map(|o| Entry::Key(o.key.clone()))
            .chain(page.common_prefixes.iter().cloned().map(Entry::Prefix))
            .collect();
        out.sort_by(|a, b| a.name().cmp(b.name()));
        out
    }

    fn walk(
        meta: &SqliteMeta,
        prefix: &str,
        delimiter: Option<&str>,
        max_keys: usize,
    ) -> Vec<Entry> {
        let mut out: Vec<Entry> = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..10_000 {
            let page = list(meta, prefix, delimiter, marker.as_deref(), max_keys);
            let got = entries(&page);
            assert!(got.len() <= max_keys);
            assert_eq!(page.next_marker.as_deref(), got.last().map(Entry::name));
            out.extend(got.iter().cloned());
            if !page.is_truncated {
                return out;
            }
            assert_eq!(got.len(), max_keys, "a truncated page is full");
            marker = page.next_marker;
        }
        panic!("listing did not terminate");
    }

    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    #[test]
    fn pagination_matches_brute_force_reference() {
        let tokens = [
            "a", "b", "z", "A", "/", "/", "é", "日", "😀", "-", "%", "+", " ", "\u{1}", "~", "ab",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut all = BTreeSet::new();
        while all.len() < 300 {
            let len = 1 + rng.below(6);
            let key: String = (0..len).map(|_| tokens[rng.below(tokens.len())]).collect();
            all.insert(key);
        }
        let (_dir, meta) = store();
        no_sync(&meta);
        meta.create_bucket("b", 0).unwrap();
        for (i, key) in all.iter().enumerate() {
            meta.put_object(&small("b", key, i as u128)).unwrap();
        }
        let sample: Vec<&String> = all.iter().step_by(11).collect();

        for prefix in ["", "a", "a/", "日", "é/", "/", "q"] {
            for delimiter in [
                None,
                Some("/"),
                Some("-"),
                Some("a/"),
                Some("日"),
                Some("😀"),
            ] {
                let full = reference(&all, prefix, delimiter, None);
                for max_keys in [1, 2, 3, 1000] {
                    assert_eq!(
                        walk(&meta, prefix, delimiter, max_keys),
                        full,
                        "prefix {prefix:?} delimiter {delimiter:?} max_keys {max_keys}"
                    );
                }
                let empty = list(&meta, prefix, delimiter, None, 0);
                assert_eq!(empty, ListPage::default());
                for key in &sample {
                    for after in [
                        key.to_string(),
                        format!("{key}/"),
                        key[..key.len() - key.chars().last().unwrap().len_utf8()].to_string(),
                    ] {
                        let page = list(&meta, prefix, delimiter, Some(&after), 1000);
                        assert_eq!(
                            entries(&page),
                            reference(&all, prefix, delimiter, Some(&after)),
                            "prefix {prefix:?} delimiter {delimiter:?} after {after:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn common_prefixes_are_skipped_by_seeking() {
        let (_dir, meta) = store();
        no_sync(&meta);
        meta.create_bucket("b", 0).unwrap();
        meta.put_object(&small("b", "a", 0)).unwrap();
        for i in 0..3000 {
            meta.put_object(&small("b", &format!("big/{i:05}"), i + 1))
                .unwrap();
        }
        meta.put_object(&small("b", "c", 9999)).unwrap();

        let run = |start_after: Option<&str>, max_keys: usize| {
            let conn = meta.reader();
            list_page(
                &conn,
                &ListQuery {
                    bucket: "b",
                    prefix: "",
                    delimiter: Some("/"),
                    start_after,
                    max_keys,
                },
            )
            .unwrap()
        };
        let (page, rows) = run(None, 1000);
        assert_eq!(keys(&page), ["a", "c"]);
        assert_eq!(page.common_prefixes, ["big/"]);
        assert_eq!(rows, 3);
        let (page, rows) = run(Some("a"), 1);
        assert_eq!(page.common_prefixes, ["big/"]);
        assert!(page.is_truncated);
        assert_eq!(rows, 2);
        let (page, rows) = run(Some("big/01234"), 1);
        assert_eq!(keys(&page), ["c"]);
        assert!(!page.is_truncated);
        assert_eq!(rows, 1);

        for sql in [range_sql(">", true), range_sql(">=", false)] {
            let plan = plan(&meta, &sql);
            assert!(
                plan.contains("SEARCH") && plan.contains("PRIMARY KEY"),
                "{plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }

    #[test]
    fn readers_see_whole_objects_while_writing() {
        let (_dir, meta) = store();
        no_sync(&meta);
        meta.create_bucket("b", 0).unwrap();
        // Version i of "hot" has i % 5 + 1 segments, all on node "n{i}".
        let hot = |i: u128| {
            let node = format!("n{i}");
            let segments = (0..(i % 5 + 1) as u32)
                .map(|s| segment(s, pieces(6, &[node.as_str(), node.as_str()])))
                .collect();
            rec("b", "hot", i, segments)
        };
        meta.put_object(&hot(0)).unwrap();
        let rounds = 150u128;
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let readers: Vec<_> = (0..3)
                .map(|_| {
                    scope.spawn(|| {
                        let mut reads = 0;
                        let mut listed = 0;
                        while !done.load(Ordering::Acquire) || reads == 0 {
                            let object = meta.get_object("b", "hot").unwrap().unwrap();
                            let version = u128::from_be_bytes(object.stream.stream_id.0);
                            assert_eq!(object, hot(version));
                            let page = list(&meta, "k", None, None, 10_000);
                            assert!(page.objects.len() >= listed);
                            listed = page.objects.len();
                            let expected: Vec<String> =
                                (1..=listed).map(|i| format!("k{i:04}")).collect();
                            assert_eq!(keys(&page), expected);
                            reads += 1;
                        }
                        reads
                    })
                })
                .collect();
            for i in 1..=rounds {
                meta.put_object(&hot(i)).unwrap();
                // Forgetting the replaced body at once: a reader still holding its id must
                // not see it half gone.
                meta.garbage_done(&id(i - 1)).unwrap();
                meta.put_object(&small("b", &format!("k{i:04}"), 1000 + i))
                    .unwrap();
            }
            done.store(true, Ordering::Release);
            for reader in readers {
                assert!(reader.join().unwrap() > 0);
            }
        });
        assert_eq!(meta.get_object("b", "hot").unwrap(), Some(hot(rounds)));
        assert!(meta.garbage(1000).unwrap().is_empty());
    }
}
