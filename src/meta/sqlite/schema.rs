//! The SQLite schema (version [`SCHEMA_VERSION`]), its migrations, and the checks made when a
//! database is opened.
//!
//! On open, in one `BEGIN IMMEDIATE` transaction:
//! - a new, empty database gets [`SCHEMA`] and `PRAGMA user_version = SCHEMA_VERSION`;
//! - a database at `SCHEMA_VERSION` is used as is;
//! - a database at an older version is migrated in place, step by step up to
//!   `SCHEMA_VERSION` (see [`migration`]), and its `user_version` set; if any step fails the
//!   transaction rolls back and the database stays at its old version, untouched;
//! - a newer version is refused with [`MetaError::SchemaTooNew`]; a non-empty database without
//!   a version, or with a version no migration starts from, is refused with
//!   [`MetaError::Corrupt`]. Refused databases are left untouched.
//!
//! History: version 1 is the schema without stream accounting; version 2 adds the three
//! accounting columns to `streams` (rows of version 1 read as zero accounting); version 3
//! adds the change log and replication state (`meta_log`, `replication`, see
//! `meta::log`) and the record of completed multipart uploads (`completed_uploads`); version
//! 4 adds segment health (`pieces.state`, `segments.healthy`, `piece_faults`).

use rusqlite::{Connection, TransactionBehavior};

use super::super::{MetaError, SCHEMA_VERSION};

/// Version 3, as created in a new database. Reference model: a stream (stored body) is
/// referenced by object parts and upload parts; it is marked garbage in the transaction that
/// removes its last reference, and its rows stay until garbage collection has deleted its
/// pieces. Every table that references a stream has an index on `stream_id`, so "is anything
/// still referencing it" and the foreign-key check of `garbage_done` are index lookups.
pub(super) const SCHEMA: &str = "
CREATE TABLE buckets (
    name TEXT NOT NULL PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    -- JSON array of [key, value]; NULL = no tag set (distinct from an empty one).
    tags TEXT
) WITHOUT ROWID;

CREATE TABLE streams (
    stream_id BLOB NOT NULL PRIMARY KEY CHECK (length(stream_id) = 16),
    cipher INTEGER NOT NULL,
    block_size INTEGER NOT NULL,
    segment_size INTEGER NOT NULL,
    garbage INTEGER NOT NULL DEFAULT 0 CHECK (garbage IN (0, 1)),
    garbage_since_ms INTEGER,
    -- StreamAccounting (version 2). Last, in the order the v1 -> v2 migration adds them, so a
    -- migrated table is identical to a new one.
    encoded_bytes INTEGER NOT NULL DEFAULT 0,
    uploaded_bytes INTEGER NOT NULL DEFAULT 0,
    long_tail_bytes INTEGER NOT NULL DEFAULT 0
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
    tags TEXT NOT NULL,
    checksum_algorithm INTEGER,
    checksum_kind INTEGER,
    checksum TEXT,
    PRIMARY KEY (bucket, key),
    CHECK ((checksum IS NULL) = (checksum_algorithm IS NULL)
        AND (checksum IS NULL) = (checksum_kind IS NULL))
) WITHOUT ROWID;

-- The body of an object: its parts in order (idx = position), each on one stream.
CREATE TABLE object_parts (
    bucket TEXT NOT NULL,
    key BLOB NOT NULL,
    idx INTEGER NOT NULL,
    number INTEGER NOT NULL,
    stream_id BLOB NOT NULL REFERENCES streams (stream_id),
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    checksum TEXT,
    PRIMARY KEY (bucket, key, idx),
    FOREIGN KEY (bucket, key) REFERENCES objects (bucket, key) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX object_parts_by_stream ON object_parts (stream_id);

CREATE TABLE uploads (
    upload_id TEXT NOT NULL PRIMARY KEY,
    bucket TEXT NOT NULL REFERENCES buckets (name),
    key BLOB NOT NULL,
    initiated_ms INTEGER NOT NULL,
    content_type TEXT,
    system_meta TEXT NOT NULL,
    user_meta TEXT NOT NULL,
    tags TEXT NOT NULL,
    checksum_algorithm INTEGER,
    checksum_kind INTEGER
) WITHOUT ROWID;
CREATE INDEX uploads_by_key ON uploads (bucket, key, upload_id);

CREATE TABLE upload_parts (
    upload_id TEXT NOT NULL REFERENCES uploads (upload_id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    stream_id BLOB NOT NULL REFERENCES streams (stream_id),
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    checksum TEXT,
    last_modified_ms INTEGER NOT NULL,
    PRIMARY KEY (upload_id, number)
) WITHOUT ROWID;
CREATE INDEX upload_parts_by_stream ON upload_parts (stream_id);

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

/// Version 3 additions, shared by a new database and the 2 -> 3 migration.
///
/// `meta_log` holds every committed change not yet durable on the nodes, in commit order
/// (`seq` from AUTOINCREMENT, so a sequence number is never reused even after the rows are
/// pruned). `replication` is one row: what the nodes hold (see `meta::log`).
/// `completed_uploads` remembers completed multipart uploads so a retried
/// CompleteMultipartUpload can be answered as AWS does.
const SCHEMA_V3: &str = "
CREATE TABLE meta_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    change BLOB NOT NULL
);

CREATE TABLE replication (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    -- Keyed hash identifying the root key this database belongs to (NULL until first set).
    key_check BLOB,
    -- Every change with seq <= shipped_seq is durable on the nodes.
    shipped_seq INTEGER NOT NULL DEFAULT 0,
    -- Number of the next log batch written to the nodes.
    next_batch INTEGER NOT NULL DEFAULT 1,
    -- Newest snapshot durable on the nodes and referenced by their head record (0 = none),
    -- the last change it contains, the first log batch to replay after it, when it was taken.
    snapshot INTEGER NOT NULL DEFAULT 0,
    snapshot_seq INTEGER NOT NULL DEFAULT 0,
    snapshot_batch INTEGER NOT NULL DEFAULT 1,
    snapshot_ms INTEGER NOT NULL DEFAULT 0,
    -- The snapshot before it, kept (with its log) as a fallback, and its parts.
    prev_snapshot INTEGER NOT NULL DEFAULT 0,
    prev_snapshot_batch INTEGER NOT NULL DEFAULT 1,
    -- Log bytes shipped since the newest snapshot (what the next snapshot saves replaying).
    log_bytes_since_snapshot INTEGER NOT NULL DEFAULT 0
);
INSERT INTO replication (id) VALUES (1);

CREATE TABLE completed_uploads (
    upload_id TEXT NOT NULL PRIMARY KEY,
    bucket TEXT NOT NULL,
    key BLOB NOT NULL,
    etag TEXT NOT NULL,
    -- JSON array of [part number, etag] as completed.
    parts TEXT NOT NULL,
    completed_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- Every completion prunes the rows past retention through this index.
CREATE INDEX completed_uploads_by_time ON completed_uploads (completed_ms);
";

/// Version 4 additions (segment health), shared by a new database and the 3 -> 4 migration.
///
/// `pieces.state` is a `PieceState` code (0 ok, 1 missing, 2 corrupt, 3 lost);
/// `segments.healthy` counts the segment's pieces in state 0 (NULL for inline segments) and is
/// kept in step by every statement that adds pieces or changes their state, so "segments at or
/// below the repair threshold, most degraded first" is an index range. `piece_faults` is the
/// record of findings (reads, audits, node replacement) for operators; it is pruned to the
/// newest rows.
const SCHEMA_V4: &str = "
ALTER TABLE pieces ADD COLUMN state INTEGER NOT NULL DEFAULT 0 CHECK (state BETWEEN 0 AND 3);
ALTER TABLE segments ADD COLUMN healthy INTEGER;
UPDATE segments SET healthy = (
    SELECT count(*) FROM pieces AS p
    WHERE p.stream_id = segments.stream_id AND p.segment_idx = segments.idx
) WHERE inline_data IS NULL;
CREATE INDEX segments_by_health ON segments (healthy, stream_id, idx) WHERE healthy IS NOT NULL;
CREATE INDEX pieces_not_ok ON pieces (stream_id, segment_idx) WHERE state != 0;

CREATE TABLE piece_faults (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    node TEXT NOT NULL,
    stream_id BLOB NOT NULL,
    segment_idx INTEGER NOT NULL,
    number INTEGER NOT NULL,
    -- 'missing', 'corrupt' or 'lost' (PieceState)
    kind TEXT NOT NULL,
    -- 'read', 'audit', 'listing', 'node replaced', ...
    found_by TEXT NOT NULL
);
CREATE INDEX piece_faults_by_node ON piece_faults (node, kind);
";

/// Version 1 -> 2: stream accounting. Existing streams get zeros.
const MIGRATE_V1_TO_V2: &str = "
ALTER TABLE streams ADD COLUMN encoded_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE streams ADD COLUMN uploaded_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE streams ADD COLUMN long_tail_bytes INTEGER NOT NULL DEFAULT 0;
";

/// The SQL that takes a database from version `from` to `from + 1`, if there is one.
fn migration(from: u32) -> Option<&'static str> {
    match from {
        1 => Some(MIGRATE_V1_TO_V2),
        2 => Some(SCHEMA_V3),
        3 => Some(SCHEMA_V4),
        _ => None,
    }
}

/// Creates the schema in an empty database, migrates an older one, or checks the version of
/// an existing one; all in one transaction.
pub(super) fn init_schema(conn: &mut Connection) -> Result<(), MetaError> {
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
            tx.execute_batch(SCHEMA_V3)?;
            tx.execute_batch(SCHEMA_V4)?;
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
            for from in found..SCHEMA_VERSION {
                let sql = migration(from).ok_or_else(|| {
                    MetaError::Corrupt(format!(
                        "unknown schema version {found} (this build knows {SCHEMA_VERSION})"
                    ))
                })?;
                tx.execute_batch(sql)?;
            }
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
    }
    tx.commit()?;
    Ok(())
}
