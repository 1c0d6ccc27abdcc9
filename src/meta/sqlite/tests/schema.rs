//! Schema versions: a new database is created at version 3; a version-1 database (built here
//! from the exact version-1 schema) is migrated in place on open through versions 2 and 3,
//! all or nothing.

use super::*;
use crate::meta::StorageTotals;

/// The version-1 schema exactly as version-1 builds created it.
const SCHEMA_V1: &str = "
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

/// A database as a version-1 build leaves it: the v1 schema, `user_version = 1`, bucket "b".
fn v1_database(path: &std::path::Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch(SCHEMA_V1).unwrap();
    conn.pragma_update(None, "user_version", 1).unwrap();
    conn.execute("INSERT INTO buckets (name, created_ms) VALUES ('b', 1)", [])
        .unwrap();
    conn
}

/// Writes `rec` (a single-part object) with the statements a version-1 build ran.
fn insert_v1_object(conn: &Connection, rec: &ObjectRecord) {
    let [part] = rec.parts.as_slice() else {
        panic!("one part expected");
    };
    let s = &part.stream;
    conn.execute(
        "INSERT INTO streams (stream_id, cipher, block_size, segment_size) VALUES (?1, ?2, ?3, ?4)",
        params![s.stream_id.0, s.cipher, s.block_size, s.segment_size],
    )
    .unwrap();
    for seg in &s.segments {
        let (inline, k, n, chunk, pieces) = match &seg.placement {
            Placement::Inline(data) => (Some(data.clone()), None, None, None, &[][..]),
            Placement::Pieces {
                k,
                n,
                chunk_size,
                pieces,
            } => (
                None,
                Some(*k),
                Some(*n),
                Some(*chunk_size),
                pieces.as_slice(),
            ),
        };
        conn.execute(
            "INSERT INTO segments (stream_id, idx, plain_size, wrapped_key, inline_data, k, n,
                 chunk_size)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                s.stream_id.0,
                seg.index,
                seg.plain_size,
                seg.wrapped_key,
                inline,
                k,
                n,
                chunk
            ],
        )
        .unwrap();
        for piece in pieces {
            conn.execute(
                "INSERT INTO pieces (stream_id, segment_idx, number, node) VALUES (?1, ?2, ?3, ?4)",
                params![s.stream_id.0, seg.index, piece.number, piece.node],
            )
            .unwrap();
        }
    }
    conn.execute(
        "INSERT INTO objects (bucket, key, version_id, format, size, etag, last_modified_ms,
             content_type, system_meta, user_meta, tags)
         VALUES (?1, ?2, NULL, ?3, ?4, ?5, ?6, NULL, '[]', '[]', '[]')",
        params![
            rec.bucket,
            rec.key.as_bytes(),
            rec.format,
            rec.size,
            rec.etag,
            rec.last_modified_ms
        ],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO object_parts (bucket, key, idx, number, stream_id, size, etag)
         VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6)",
        params![
            rec.bucket,
            rec.key.as_bytes(),
            part.number,
            s.stream_id.0,
            part.size,
            part.etag
        ],
    )
    .unwrap();
}

fn user_version(conn: &Connection) -> u32 {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap()
}

/// Every table's and index's columns as `(table, cid, name, type, notnull, default, pk)`,
/// plus the index names: what must agree between a migrated and a new database.
fn shape(conn: &Connection) -> Vec<String> {
    let names: Vec<(String, String)> = conn
        .prepare("SELECT type, name FROM sqlite_master ORDER BY name")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut out = Vec::new();
    for (kind, name) in names {
        out.push(format!("{kind} {name}"));
        let pragma = if kind == "table" {
            "table_xinfo"
        } else {
            "index_xinfo"
        };
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM pragma_{pragma}(?1)"))
            .unwrap();
        let columns = stmt.column_count();
        let rows = stmt
            .query_map(params![name], |row| {
                (0..columns)
                    .map(|i| {
                        row.get::<_, rusqlite::types::Value>(i)
                            .map(|v| format!("{v:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        out.extend(rows.into_iter().map(|r| format!("  {}", r.join(" "))));
    }
    out
}

fn stream_columns(conn: &Connection) -> Vec<String> {
    conn.prepare("SELECT name FROM pragma_table_info('streams') ORDER BY cid")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn new_database_is_created_at_version_4() {
    assert_eq!(SCHEMA_VERSION, 4);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    drop(SqliteMeta::open(&path).unwrap());
    let raw = Connection::open(&path).unwrap();
    assert_eq!(user_version(&raw), 4);
    let columns = stream_columns(&raw);
    assert_eq!(
        columns[columns.len() - 3..],
        ["encoded_bytes", "uploaded_bytes", "long_tail_bytes"]
    );
}

#[test]
fn version_1_database_is_migrated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let mut old = rec(
        "b",
        "k",
        1,
        vec![
            segment(0, pieces(6, &["n1", "n2"])),
            segment(1, Placement::Inline(vec![9; 3])),
        ],
    );
    old.parts[0].stream.accounting = StreamAccounting::default();
    let raw = v1_database(&path);
    insert_v1_object(&raw, &old);
    drop(raw);

    let meta = SqliteMeta::open(&path).unwrap();
    // Read back whole, with zero accounting.
    assert_eq!(meta.get_object("b", "k").unwrap(), Some(old.clone()));
    assert_eq!(user_version(&meta.writer()), 4);
    // Version 4: every migrated piece counts as healthy.
    assert_eq!(meta.health_counts().unwrap().by_healthy, vec![(2, 1)]);
    assert_eq!(
        meta.storage_totals().unwrap(),
        StorageTotals {
            objects: 1,
            plain_bytes: old.size,
            streams: 1,
            segments: 2,
            pieces: 2,
            ..StorageTotals::default()
        }
    );
    // New writes record accounting in the migrated table.
    let new = rec("b", "n", 2, vec![segment(0, pieces(6, &["n3"]))]);
    assert_ne!(new.parts[0].stream.accounting, StreamAccounting::default());
    meta.put_object(&new, &NONE).unwrap();
    assert_eq!(meta.get_object("b", "n").unwrap(), Some(new));
    drop(meta);

    // The migrated database has exactly the shape of a new one, and reopens as is.
    let fresh_path = dir.path().join("fresh.db");
    drop(SqliteMeta::open(&fresh_path).unwrap());
    let migrated = shape(&Connection::open(&path).unwrap());
    assert_eq!(migrated, shape(&Connection::open(&fresh_path).unwrap()));
    let meta = SqliteMeta::open(&path).unwrap();
    assert_eq!(meta.get_object("b", "k").unwrap(), Some(old));
}

#[test]
fn failed_migration_leaves_version_1_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let raw = v1_database(&path);
    insert_v1_object(&raw, &small("b", "k", 1));
    // The third ALTER of the migration will collide with this column after the first two
    // succeeded: the whole migration must roll back.
    raw.execute_batch("ALTER TABLE streams ADD COLUMN long_tail_bytes TEXT")
        .unwrap();
    let before = shape(&raw);
    drop(raw);

    assert!(matches!(SqliteMeta::open(&path), Err(MetaError::Sqlite(_))));
    let raw = Connection::open(&path).unwrap();
    assert_eq!(user_version(&raw), 1);
    assert_eq!(shape(&raw), before);
    assert!(!stream_columns(&raw).contains(&"encoded_bytes".to_string()));
    let objects: i64 = raw
        .query_row("SELECT count(*) FROM objects", [], |row| row.get(0))
        .unwrap();
    assert_eq!(objects, 1);
}
