//! Multipart uploads: lifecycle, part replacement, completion, abort, races, DeleteBucket.

use std::sync::Barrier;

use super::*;
use crate::meta::{PartRecord, PartSummary, UploadRecord, MAX_PART_NUMBER};

pub(super) fn upload(bucket: &str, key: &str, upload_id: &str) -> UploadRecord {
    UploadRecord {
        upload_id: upload_id.into(),
        bucket: bucket.into(),
        key: key.into(),
        initiated_ms: 1_700_000_000_000,
        content_type: None,
        system_meta: vec![],
        user_meta: vec![],
        tags: vec![],
        checksum_algorithm: None,
        checksum_kind: None,
    }
}

/// Part `number` on stream `n`, with one segment of pieces on node "n1".
pub(super) fn upload_part(number: u32, n: u128) -> PartRecord {
    let p = part(number, stream(n, vec![segment(0, pieces(6, &["n1"]))]));
    PartRecord {
        number,
        size: p.size,
        etag: p.etag,
        checksum: Some(format!("sum-{n}")),
        last_modified_ms: 1_700_000_000_000 + n as i64,
        stream: p.stream,
    }
}

fn summary(p: &PartRecord) -> PartSummary {
    PartSummary {
        number: p.number,
        size: p.size,
        etag: p.etag.clone(),
        checksum: p.checksum.clone(),
        last_modified_ms: p.last_modified_ms,
    }
}

/// The object a complete of `parts` produces (what the object layer builds from get_parts).
pub(super) fn completed(bucket: &str, key: &str, parts: &[&PartRecord]) -> ObjectRecord {
    object(
        bucket,
        key,
        parts
            .iter()
            .map(|p| ObjectPart {
                number: p.number,
                size: p.size,
                etag: p.etag.clone(),
                checksum: p.checksum.clone(),
                stream: p.stream.clone(),
            })
            .collect(),
    )
}

#[test]
fn multipart_lifecycle() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    meta.create_bucket("other", 0).unwrap();
    let mut u = upload("b", "dir/ü k", "u1");
    u.content_type = Some("video/mp4".into());
    u.system_meta = vec![("cache-control".into(), "no-store".into())];
    u.user_meta = vec![("owner".into(), "me".into())];
    u.tags = vec![("t".into(), "v".into())];
    u.checksum_algorithm = Some(3);
    u.checksum_kind = Some(1);
    assert!(matches!(
        meta.create_upload(&upload("nope", "k", "u0")),
        Err(MetaError::NoSuchBucket(_))
    ));
    meta.create_upload(&u).unwrap();
    assert!(matches!(
        meta.create_upload(&upload("other", "x", "u1")),
        Err(MetaError::InvalidRecord(_))
    ));
    assert_eq!(meta.get_upload("b", &u.key, "u1").unwrap(), Some(u.clone()));
    // An upload is addressed by bucket, key and id together.
    assert_eq!(meta.get_upload("b", "dir/ü", "u1").unwrap(), None);
    assert_eq!(meta.get_upload("other", &u.key, "u1").unwrap(), None);
    assert_eq!(meta.get_upload("b", &u.key, "u2").unwrap(), None);
    assert!(matches!(
        meta.get_upload("nope", &u.key, "u1"),
        Err(MetaError::NoSuchBucket(_))
    ));

    let (p1, p2, p3) = (upload_part(1, 11), upload_part(2, 12), upload_part(3, 13));
    for p in [&p3, &p1, &p2] {
        meta.put_part("b", &u.key, "u1", p).unwrap();
    }
    assert!(matches!(
        meta.put_part("b", "wrong", "u1", &upload_part(4, 14)),
        Err(MetaError::NoSuchUpload(id)) if id == "u1"
    ));
    for number in [0, MAX_PART_NUMBER + 1] {
        assert!(matches!(
            meta.put_part("b", &u.key, "u1", &upload_part(number, 15)),
            Err(MetaError::InvalidRecord(_))
        ));
    }
    assert_eq!(state(&meta, &id(14)), StreamState::Unknown);
    assert_eq!(state(&meta, &id(15)), StreamState::Unknown);
    // Part pieces are live pieces of their node.
    assert_eq!(meta.pieces_on_node("n1", 10).unwrap().len(), 3);

    // Uploading part 2 again replaces it; the old body becomes garbage.
    let p2b = upload_part(2, 22);
    meta.put_part("b", &u.key, "u1", &p2b).unwrap();
    assert_eq!(garbage_ids(&meta), [id(12)]);
    assert_eq!(
        meta.get_parts("b", &u.key, "u1").unwrap(),
        vec![p1.clone(), p2b.clone(), p3.clone()]
    );

    let list = |after, max| meta.list_parts("b", &u.key, "u1", after, max).unwrap();
    assert_eq!(list(0, 2), (vec![summary(&p1), summary(&p2b)], true));
    assert_eq!(list(2, 2), (vec![summary(&p3)], false));
    assert_eq!(
        list(0, 3),
        (vec![summary(&p1), summary(&p2b), summary(&p3)], false)
    );
    assert_eq!(list(3, 5), (vec![], false));
    assert_eq!(list(0, 0), (vec![], false));
    assert!(matches!(
        meta.list_parts("b", "wrong", "u1", 0, 10),
        Err(MetaError::NoSuchUpload(_))
    ));

    // Complete with parts 1 and 3 only: part 2's body is not used and becomes garbage.
    let mut rec = completed("b", &u.key, &[&p1, &p3]);
    rec.tags = u.tags.clone();
    meta.complete_upload("u1", &rec, &Precondition::IfNoneMatchStar)
        .unwrap();
    assert_eq!(meta.get_object("b", &u.key).unwrap(), Some(rec.clone()));
    assert_eq!(garbage_ids(&meta), [id(12), id(22)]);
    assert_eq!(state(&meta, &id(11)), StreamState::Live);
    assert_eq!(state(&meta, &id(13)), StreamState::Live);
    assert_eq!(meta.get_upload("b", &u.key, "u1").unwrap(), None);
    for result in [
        meta.complete_upload("u1", &rec, &NONE),
        meta.abort_upload("b", &u.key, "u1"),
        meta.put_part("b", &u.key, "u1", &upload_part(5, 16)),
        meta.get_parts("b", &u.key, "u1").map(drop),
    ] {
        assert!(
            matches!(result, Err(MetaError::NoSuchUpload(_))),
            "{result:?}"
        );
    }
    assert_eq!(meta.get_object("b", &u.key).unwrap(), Some(rec));
    assert!(matches!(
        meta.get_parts("nope", &u.key, "u1"),
        Err(MetaError::NoSuchBucket(_))
    ));
}

#[test]
fn abort_makes_every_part_garbage() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    meta.create_upload(&upload("b", "k", "u1")).unwrap();
    meta.create_upload(&upload("b", "k", "u2")).unwrap();
    for (number, n) in [(1, 1), (2, 2)] {
        meta.put_part("b", "k", "u1", &upload_part(number, n))
            .unwrap();
    }
    meta.put_part("b", "k", "u2", &upload_part(1, 3)).unwrap();
    assert!(matches!(
        meta.abort_upload("b", "other", "u1"),
        Err(MetaError::NoSuchUpload(_))
    ));
    meta.abort_upload("b", "k", "u1").unwrap();
    assert_eq!(garbage_ids(&meta), [id(1), id(2)]);
    assert_eq!(meta.get_upload("b", "k", "u1").unwrap(), None);
    assert_eq!(count(&meta, "upload_parts", &id(1)), 0);
    assert_eq!(
        meta.get_parts("b", "k", "u2").unwrap(),
        vec![upload_part(1, 3)]
    );
    assert!(matches!(
        meta.abort_upload("b", "k", "u1"),
        Err(MetaError::NoSuchUpload(_))
    ));
}

#[test]
fn complete_replaces_the_object_and_checks_preconditions() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    meta.put_object(&small("b", "k", 1), &NONE).unwrap();
    meta.create_upload(&upload("b", "k", "u")).unwrap();
    let p1 = upload_part(1, 2);
    meta.put_part("b", "k", "u", &p1).unwrap();
    let rec = completed("b", "k", &[&p1]);

    for pre in [
        Precondition::IfNoneMatchStar,
        Precondition::IfMatch("etag-9".into()),
    ] {
        assert!(matches!(
            meta.complete_upload("u", &rec, &pre),
            Err(MetaError::PreconditionFailed)
        ));
    }
    // A failed complete changes nothing; the upload can still be completed.
    assert_eq!(meta.get_parts("b", "k", "u").unwrap(), vec![p1.clone()]);
    assert!(meta.garbage(10).unwrap().is_empty());
    // The record's bucket and key must be the upload's.
    assert!(matches!(
        meta.complete_upload("u", &completed("b", "other", &[&p1]), &NONE),
        Err(MetaError::NoSuchUpload(_))
    ));

    meta.complete_upload("u", &rec, &Precondition::IfMatch("etag-1".into()))
        .unwrap();
    assert_eq!(garbage_ids(&meta), [id(1)]);
    assert_eq!(meta.get_object("b", "k").unwrap(), Some(rec));
}

#[test]
fn complete_refuses_parts_that_are_not_the_uploads() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    meta.create_upload(&upload("b", "k", "u")).unwrap();
    let (p1, old2) = (upload_part(1, 1), upload_part(2, 2));
    meta.put_part("b", "k", "u", &p1).unwrap();
    meta.put_part("b", "k", "u", &old2).unwrap();
    // Part 2 is uploaded again between the caller's get_parts and its complete.
    meta.put_part("b", "k", "u", &upload_part(2, 3)).unwrap();
    let stale = completed("b", "k", &[&p1, &old2]);
    assert!(matches!(
        meta.complete_upload("u", &stale, &NONE),
        Err(MetaError::StreamGone(s)) if s == id(2)
    ));
    // A part number the upload does not have, or another upload's stream.
    meta.create_upload(&upload("b", "k", "v")).unwrap();
    let foreign = upload_part(1, 4);
    meta.put_part("b", "k", "v", &foreign).unwrap();
    for parts in [vec![&p1, &upload_part(9, 1)], vec![&foreign]] {
        assert!(matches!(
            meta.complete_upload("u", &completed("b", "k", &parts), &NONE),
            Err(MetaError::StreamGone(_))
        ));
    }
    assert_eq!(meta.get_object("b", "k").unwrap(), None);
    assert_eq!(meta.get_parts("b", "k", "u").unwrap().len(), 2);
    assert_eq!(garbage_ids(&meta), [id(2)]);
}

#[test]
fn racing_completes_have_one_winner() {
    let (_dir, meta) = store();
    no_sync(&meta);
    meta.create_bucket("b", 0).unwrap();
    for round in 0..10u128 {
        let upload_id = format!("u{round}");
        meta.create_upload(&upload("b", "k", &upload_id)).unwrap();
        let p = upload_part(1, round + 1);
        meta.put_part("b", "k", &upload_id, &p).unwrap();
        let rec = completed("b", "k", &[&p]);
        let barrier = Barrier::new(2);
        let results: Vec<Result<(), MetaError>> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..2)
                .map(|_| {
                    let (meta, barrier, rec, upload_id) = (&meta, &barrier, &rec, &upload_id);
                    scope.spawn(move || {
                        barrier.wait();
                        meta.complete_upload(upload_id, rec, &NONE)
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        assert!(results
            .iter()
            .any(|r| matches!(r, Err(MetaError::NoSuchUpload(_)))));
        assert_eq!(meta.get_object("b", "k").unwrap(), Some(rec));
        // The previous round's object was replaced: its stream, and only it, is garbage.
        let expected: Vec<StreamId> = (1..=round).map(id).collect();
        assert_eq!(garbage_ids(&meta), expected);
    }
}

#[test]
fn parts_may_share_live_streams_but_not_garbage() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    let source = rec("b", "src", 1, vec![segment(0, pieces(6, &["n1"]))]);
    meta.put_object(&source, &NONE).unwrap();
    meta.create_upload(&upload("b", "k", "u")).unwrap();
    // UploadPartCopy of a whole single-part object may share its stream.
    let shared = PartRecord {
        number: 1,
        size: source.size,
        etag: source.etag.clone(),
        checksum: None,
        last_modified_ms: 5,
        stream: source.parts[0].stream.clone(),
    };
    meta.put_part("b", "k", "u", &shared).unwrap();
    assert!(meta.delete_object("b", "src").unwrap());
    assert_eq!(state(&meta, &id(1)), StreamState::Live, "the part holds it");
    meta.abort_upload("b", "k", "u").unwrap();
    assert_eq!(garbage_ids(&meta), [id(1)]);

    meta.create_upload(&upload("b", "k", "v")).unwrap();
    assert!(matches!(
        meta.put_part("b", "k", "v", &shared),
        Err(MetaError::StreamGone(s)) if s == id(1)
    ));
    assert!(meta.get_parts("b", "k", "v").unwrap().is_empty());
}

#[test]
fn delete_bucket_aborts_uploads_but_not_objects() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    meta.create_bucket("keep", 0).unwrap();
    meta.create_upload(&upload("b", "k", "u")).unwrap();
    meta.put_part("b", "k", "u", &upload_part(1, 1)).unwrap();
    meta.create_upload(&upload("keep", "k", "w")).unwrap();
    meta.put_part("keep", "k", "w", &upload_part(1, 2)).unwrap();
    meta.put_object(&small("b", "obj", 3), &NONE).unwrap();

    // Objects keep the bucket, and then its uploads stay untouched.
    assert!(matches!(
        meta.delete_bucket("b"),
        Err(MetaError::BucketNotEmpty(_))
    ));
    assert!(meta.get_upload("b", "k", "u").unwrap().is_some());
    assert!(meta.garbage(10).unwrap().is_empty());

    assert!(meta.delete_object("b", "obj").unwrap());
    meta.delete_bucket("b").unwrap();
    assert_eq!(garbage_ids(&meta), [id(1), id(3)]);
    assert_eq!(meta.get_bucket("b").unwrap(), None);
    assert_eq!(
        meta.get_parts("keep", "k", "w").unwrap(),
        vec![upload_part(1, 2)]
    );
    // A bucket created again under the name starts without the old uploads.
    meta.create_bucket("b", 1).unwrap();
    assert_eq!(meta.get_upload("b", "k", "u").unwrap(), None);
}
