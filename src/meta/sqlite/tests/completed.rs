//! Completed uploads: what `completed_upload` remembers of a completion, for whom, and for
//! how long (retention counted from completion times, never the wall clock).

use super::uploads::{completed, upload, upload_part};
use super::*;
use crate::meta::{CompletedUpload, COMPLETED_UPLOAD_RETENTION_MS};

/// Creates upload `id` of `bucket/key` with parts 1 and 2 (streams `n`, `n + 1`) and completes
/// it with both at `at_ms`; returns the object.
fn complete_at(
    meta: &SqliteMeta,
    bucket: &str,
    key: &str,
    id: &str,
    n: u128,
    at_ms: i64,
) -> ObjectRecord {
    meta.create_upload(&upload(bucket, key, id)).unwrap();
    let (p1, p2) = (upload_part(1, n), upload_part(2, n + 1));
    meta.put_part(bucket, key, id, &p1).unwrap();
    meta.put_part(bucket, key, id, &p2).unwrap();
    let mut rec = completed(bucket, key, &[&p1, &p2]);
    rec.last_modified_ms = at_ms;
    meta.complete_upload(id, &rec, &NONE).unwrap();
    rec
}

fn remembered(meta: &SqliteMeta, bucket: &str, key: &str, id: &str) -> bool {
    meta.completed_upload(bucket, key, id).unwrap().is_some()
}

#[test]
fn a_completion_is_remembered_as_completed_for_its_bucket_and_key_only() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    meta.create_bucket("other", 0).unwrap();
    meta.create_upload(&upload("b", "dir/ü k", "u1")).unwrap();
    let (p1, p2, p3) = (upload_part(1, 1), upload_part(2, 2), upload_part(3, 3));
    for p in [&p1, &p2, &p3] {
        meta.put_part("b", "dir/ü k", "u1", p).unwrap();
    }
    // In progress: nothing completed yet.
    assert_eq!(meta.completed_upload("b", "dir/ü k", "u1").unwrap(), None);

    // Parts 1 and 3 only: the record lists what was completed, not what was uploaded.
    let mut rec = completed("b", "dir/ü k", &[&p1, &p3]);
    rec.etag = "abc-2".into();
    rec.last_modified_ms = 1_700_000_123_456;
    meta.complete_upload("u1", &rec, &NONE).unwrap();
    assert_eq!(
        meta.completed_upload("b", "dir/ü k", "u1").unwrap(),
        Some(CompletedUpload {
            upload_id: "u1".into(),
            bucket: "b".into(),
            key: "dir/ü k".into(),
            etag: "abc-2".into(),
            parts: vec![(1, p1.etag.clone()), (3, p3.etag.clone())],
            completed_ms: 1_700_000_123_456,
        })
    );
    // Addressed by bucket, key and id together, as uploads are.
    assert_eq!(meta.completed_upload("b", "dir/ü", "u1").unwrap(), None);
    assert_eq!(
        meta.completed_upload("other", "dir/ü k", "u1").unwrap(),
        None
    );
    assert_eq!(meta.completed_upload("b", "dir/ü k", "u2").unwrap(), None);
    assert!(matches!(
        meta.completed_upload("nope", "dir/ü k", "u1"),
        Err(MetaError::NoSuchBucket(_))
    ));
    // Reading it changes nothing; the upload stays gone for every other call.
    assert_eq!(meta.get_upload("b", "dir/ü k", "u1").unwrap(), None);
    assert!(matches!(
        meta.complete_upload("u1", &rec, &NONE),
        Err(MetaError::NoSuchUpload(_))
    ));
    assert_eq!(meta.get_object("b", "dir/ü k").unwrap(), Some(rec));
}

#[test]
fn aborted_and_failed_completions_are_not_remembered() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();

    meta.create_upload(&upload("b", "k", "aborted")).unwrap();
    meta.put_part("b", "k", "aborted", &upload_part(1, 1))
        .unwrap();
    meta.abort_upload("b", "k", "aborted").unwrap();
    assert!(!remembered(&meta, "b", "k", "aborted"));

    // A completion refused by its precondition, or naming a part the upload does not have,
    // commits nothing: no record either.
    meta.put_object(&small("b", "k", 2), &NONE).unwrap();
    meta.create_upload(&upload("b", "k", "u")).unwrap();
    let p1 = upload_part(1, 3);
    meta.put_part("b", "k", "u", &p1).unwrap();
    let rec = completed("b", "k", &[&p1]);
    assert!(matches!(
        meta.complete_upload("u", &rec, &Precondition::IfNoneMatchStar),
        Err(MetaError::PreconditionFailed)
    ));
    assert!(matches!(
        meta.complete_upload("u", &completed("b", "k", &[&upload_part(1, 4)]), &NONE),
        Err(MetaError::StreamGone(_))
    ));
    assert!(!remembered(&meta, "b", "k", "u"));
    meta.complete_upload("u", &rec, &NONE).unwrap();
    assert!(remembered(&meta, "b", "k", "u"));
}

#[test]
fn completions_are_forgotten_after_the_retention_counted_from_later_completions() {
    let (dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    // Times far in the past: were the wall clock used, every row would go at once.
    let (t0, keep) = (1_600_000_000_000, COMPLETED_UPLOAD_RETENTION_MS);
    complete_at(&meta, "b", "k", "u1", 10, t0);
    complete_at(&meta, "b", "k2", "u2", 20, t0 + 1);
    // Exactly the retention later: u1 is not older than it yet.
    complete_at(&meta, "b", "k", "u3", 30, t0 + keep);
    for id in ["u1", "u2", "u3"] {
        let key = if id == "u2" { "k2" } else { "k" };
        assert!(remembered(&meta, "b", key, id), "{id}");
    }
    // One millisecond more: u1 goes, u2 (a millisecond younger) stays.
    complete_at(&meta, "b", "k", "u4", 40, t0 + keep + 1);
    assert!(!remembered(&meta, "b", "k", "u1"));
    assert!(remembered(&meta, "b", "k2", "u2"));

    // A completion stamped earlier than the rows present (clock stepped back) prunes nothing
    // younger than its own cutoff, and is itself remembered.
    complete_at(&meta, "b", "k3", "u5", 50, t0);
    assert!(remembered(&meta, "b", "k2", "u2"));
    assert!(remembered(&meta, "b", "k3", "u5"));

    // Remembered across a restart.
    drop(meta);
    let meta = SqliteMeta::open(&dir.path().join("meta.db")).unwrap();
    for (key, id) in [("k2", "u2"), ("k", "u3"), ("k", "u4"), ("k3", "u5")] {
        assert!(remembered(&meta, "b", key, id), "{id} after reopen");
    }
    assert!(!remembered(&meta, "b", "k", "u1"));
}

#[test]
fn pruning_uses_the_completion_time_index() {
    let (_dir, meta) = store();
    let plan = plan(
        &meta,
        "SELECT upload_id FROM completed_uploads WHERE completed_ms < ?1",
    );
    assert!(plan.contains("completed_uploads_by_time"), "{plan}");
}
