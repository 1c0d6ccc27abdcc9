//! Tests of the SQLite store: fixtures and the object, bucket and garbage tests here; sharing
//! and preconditions, listings, multipart uploads, schema migration and accounting in the
//! submodules.

#![allow(clippy::unwrap_used)]

mod accounting;
mod audit;
mod completed;
mod list;
mod node_pieces;
mod replication;
mod schema;
mod sharing;
mod upload_list;
mod uploads;

use std::sync::atomic::AtomicBool;

use list::{keys, list};

use super::*;
use crate::meta::{
    DeleteCondition, ListPage, ListQuery, ObjectPart, ObjectRecord, Placement, Precondition,
    SegmentRecord, StreamAccounting, StreamRecord, OBJECT_FORMAT, SCHEMA_VERSION,
};

const NONE: Precondition = Precondition::None;

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
            .map(|(i, node)| PieceRecord::new(u16::try_from(i * 2).unwrap(), node.to_string()))
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

/// A stream with the accounting [`accounting`] gives it.
fn stream(n: u128, segments: Vec<SegmentRecord>) -> StreamRecord {
    StreamRecord {
        stream_id: id(n),
        cipher: 1,
        block_size: 65536,
        segment_size: 64 << 20,
        accounting: accounting(n, &segments),
        segments,
    }
}

/// Zero for a body without pieces (as the object layer records inline bodies); otherwise
/// distinct per stream, so a stream read back with another's accounting shows.
fn accounting(n: u128, segments: &[SegmentRecord]) -> StreamAccounting {
    let has_pieces = segments
        .iter()
        .any(|s| matches!(s.placement, Placement::Pieces { .. }));
    if !has_pieces {
        return StreamAccounting::default();
    }
    let n = u64::try_from(n).unwrap();
    StreamAccounting {
        encoded_bytes: 3_000_000 + n,
        uploaded_bytes: 5_000_000 + 2 * n,
        long_tail_bytes: 1_000_000 + 3 * n,
    }
}

/// A part whose size is its segments' and whose ETag names its stream.
fn part(number: u32, stream: StreamRecord) -> ObjectPart {
    ObjectPart {
        number,
        size: stream.segments.iter().map(|s| s.plain_size).sum(),
        etag: format!("etag-{}", u128::from_be_bytes(stream.stream_id.0)),
        checksum: None,
        stream,
    }
}

/// An object of the given parts (size and ETag derived from them).
fn object(bucket: &str, key: &str, parts: Vec<ObjectPart>) -> ObjectRecord {
    let etag = match parts.as_slice() {
        [only] => only.etag.clone(),
        _ => format!("multi-{}", parts.len()),
    };
    ObjectRecord {
        bucket: bucket.into(),
        key: key.into(),
        version_id: None,
        format: OBJECT_FORMAT,
        size: parts.iter().map(|p| p.size).sum(),
        etag,
        last_modified_ms: 1_700_000_000_000,
        content_type: None,
        system_meta: vec![],
        user_meta: vec![],
        tags: vec![],
        checksum: None,
        parts,
    }
}

/// A single-PUT object (part 0) on a new stream.
fn rec(bucket: &str, key: &str, n: u128, segments: Vec<SegmentRecord>) -> ObjectRecord {
    object(bucket, key, vec![part(0, stream(n, segments))])
}

fn small(bucket: &str, key: &str, n: u128) -> ObjectRecord {
    rec(
        bucket,
        key,
        n,
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

fn state(meta: &SqliteMeta, stream: &StreamId) -> StreamState {
    streams::stream_state(&meta.writer(), stream).unwrap()
}

/// Ids of all garbage streams, sorted.
fn garbage_ids(meta: &SqliteMeta) -> Vec<StreamId> {
    let mut ids: Vec<StreamId> = meta
        .garbage(10_000)
        .unwrap()
        .into_iter()
        .map(|g| g.stream_id)
        .collect();
    ids.sort();
    ids
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

/// xorshift64: reproducible pseudo-random test data.
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
fn conditional_deletes_check_the_current_object_in_the_transaction() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 1).unwrap();
    let obj = small("b", "k", 1);
    meta.put_object(&obj, &NONE).unwrap();
    let (etag, secs, size) = (obj.etag.clone(), obj.last_modified_ms / 1000, obj.size);
    let cond = |if_match: Option<&str>, secs: Option<i64>, size: Option<u64>| DeleteCondition {
        if_match: if_match.map(str::to_owned),
        last_modified_secs: secs,
        size,
    };
    // Every failing condition, alone or beside ones that hold, leaves the object in place.
    for failing in [
        cond(Some("other"), None, None),
        cond(Some(&etag), Some(secs + 1), None),
        cond(None, Some(secs - 1), Some(size)),
        cond(Some("*"), None, Some(size + 1)),
        cond(None, None, Some(0)),
    ] {
        assert!(
            matches!(
                meta.delete_object_if("b", "k", &failing),
                Err(MetaError::PreconditionFailed)
            ),
            "{failing:?}"
        );
        assert_eq!(meta.get_object("b", "k").unwrap(), Some(obj.clone()));
    }
    assert!(garbage_ids(&meta).is_empty());
    // All of them holding: deleted, and the body becomes garbage.
    assert!(meta
        .delete_object_if("b", "k", &cond(Some(&etag), Some(secs), Some(size)))
        .unwrap());
    assert_eq!(meta.get_object("b", "k").unwrap(), None);
    assert_eq!(garbage_ids(&meta), vec![id(1)]);
    // A missing key: If-Match (an ETag or `*`) is NoSuchKey; size or time alone is a no-op.
    for if_match in [etag.as_str(), "*"] {
        assert!(matches!(
            meta.delete_object_if("b", "k", &cond(Some(if_match), None, None)),
            Err(MetaError::NoSuchKey)
        ));
    }
    assert!(!meta
        .delete_object_if("b", "k", &cond(None, Some(secs), Some(size)))
        .unwrap());
    // `*` deletes whatever is there.
    meta.put_object(&small("b", "k", 2), &NONE).unwrap();
    assert!(meta
        .delete_object_if("b", "k", &cond(Some("*"), None, None))
        .unwrap());
    assert!(matches!(
        meta.delete_object_if("nope", "k", &cond(Some("*"), None, None)),
        Err(MetaError::NoSuchBucket(_))
    ));
}

#[test]
fn reopen_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let object = small("b", "k", 1);
    {
        let meta = SqliteMeta::open(&path).unwrap();
        meta.create_bucket("b", 42).unwrap();
        meta.put_object(&object, &NONE).unwrap();
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
        meta.put_object(&small("nope", "k", 1), &NONE),
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

    meta.put_object(&small("zeta", "k", 1), &NONE).unwrap();
    assert!(matches!(meta.delete_bucket("zeta"), Err(MetaError::BucketNotEmpty(n)) if n == "zeta"));
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
    meta.put_object(&object, &NONE).unwrap();
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
        meta.put_object(&gap, &NONE),
        Err(MetaError::InvalidRecord(_))
    ));
    let mut unsorted = rec("b", "k", 2, vec![segment(0, pieces(6, &["a", "b"]))]);
    if let Placement::Pieces { pieces, .. } = &mut unsorted.parts[0].stream.segments[0].placement {
        pieces.reverse();
    }
    assert!(matches!(
        meta.put_object(&unsorted, &NONE),
        Err(MetaError::InvalidRecord(_))
    ));
    let too_many = rec("b", "k", 3, vec![segment(0, pieces(3, &["a", "b", "c"]))]);
    assert!(matches!(
        meta.put_object(&too_many, &NONE),
        Err(MetaError::InvalidRecord(_))
    ));
    let mut wrong_size = small("b", "k", 4);
    wrong_size.size += 1;
    assert!(matches!(
        meta.put_object(&wrong_size, &NONE),
        Err(MetaError::InvalidRecord(_))
    ));
    let parts = |numbers: [u32; 2]| {
        numbers
            .iter()
            .map(|&n| part(n, stream(u128::from(n) + 10, vec![])))
            .collect()
    };
    for numbers in [[2, 1], [3, 3]] {
        assert!(matches!(
            meta.put_object(&object("b", "k", parts(numbers)), &NONE),
            Err(MetaError::InvalidRecord(_))
        ));
    }
    assert_eq!(meta.get_object("b", "k").unwrap(), None);
    // Nothing was recorded for any refused record.
    for n in [1, 2, 3, 4, 11, 12, 13] {
        assert_eq!(state(&meta, &id(n)), StreamState::Unknown);
    }
    meta.put_object(&object("b", "k", parts([1, 2])), &NONE)
        .unwrap();
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
    meta.put_object(&first, &NONE).unwrap();
    assert!(meta.garbage(10).unwrap().is_empty());

    let second = small("b", "k", 2);
    meta.put_object(&second, &NONE).unwrap();
    assert_eq!(meta.get_object("b", "k").unwrap(), Some(second.clone()));
    let piece = |number: u16, node: &str| PieceRecord::new(number, node);
    let found = meta.garbage(10).unwrap();
    assert!(found.iter().all(|g| g.since_ms > 0));
    assert_eq!(
        found,
        vec![Garbage {
            stream_id: id(1),
            since_ms: found[0].since_ms,
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
    meta.put_object(&first, &NONE).unwrap();
    assert!(matches!(meta.garbage_done(&id(1)), Err(MetaError::StreamLive(s)) if s == id(1)));
    assert_eq!(meta.get_object("b", "k").unwrap(), Some(first));
    assert_eq!(count(&meta, "segments", &id(1)), 1);
    assert!(meta.garbage(10).unwrap().is_empty());
}

#[test]
fn pieces_on_node_lists_live_pieces_through_its_index() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    meta.put_object(
        &rec(
            "b",
            "x",
            2,
            vec![segment(0, pieces(6, &["n1", "n2", "n1"]))],
        ),
        &NONE,
    )
    .unwrap();
    meta.put_object(
        &rec(
            "b",
            "y",
            1,
            vec![
                segment(0, pieces(6, &["n2"])),
                segment(1, pieces(6, &["n1"])),
            ],
        ),
        &NONE,
    )
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
    meta.put_object(&hot(0), &NONE).unwrap();
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
                        let version = u128::from_be_bytes(object.parts[0].stream.stream_id.0);
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
            meta.put_object(&hot(i), &NONE).unwrap();
            // Forgetting the replaced body at once: a reader still holding its id must
            // not see it half gone.
            meta.garbage_done(&id(i - 1)).unwrap();
            meta.put_object(&small("b", &format!("k{i:04}"), 1000 + i), &NONE)
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

#[test]
fn database_files_are_private_and_loose_ones_are_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.sqlite");
    let mode = |suffix: &str| {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        std::fs::metadata(std::path::PathBuf::from(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    let meta = SqliteMeta::open(&path).unwrap();
    meta.create_bucket("b", 1).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        assert_eq!(mode(suffix), 0o600, "meta.sqlite{suffix}");
    }
    drop(meta);
    // A database copied in with a loose mode is tightened when opened.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let meta = SqliteMeta::open(&path).unwrap();
    assert_eq!(mode(""), 0o600);
    assert!(meta.get_bucket("b").unwrap().is_some());
}
