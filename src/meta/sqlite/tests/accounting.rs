//! Stream accounting: recorded with the stream, shared with it, read back by every read; and
//! the storage totals over objects.

use super::uploads::{completed, upload, upload_part};
use super::*;
use crate::meta::{PartRecord, StorageTotals};

fn totals(meta: &SqliteMeta) -> StorageTotals {
    meta.storage_totals().unwrap()
}

/// The accounting the fixtures give stream `n` when it has pieces.
fn acc(n: u128) -> StreamAccounting {
    accounting(n, &[segment(0, pieces(6, &[]))])
}

/// Totals of the given live streams' accounting (plus the counts given).
fn with_accounting(counts: StorageTotals, streams: &[u128]) -> StorageTotals {
    streams.iter().fold(counts, |mut t, &n| {
        let a = acc(n);
        t.encoded_bytes += a.encoded_bytes;
        t.uploaded_bytes += a.uploaded_bytes;
        t.long_tail_bytes += a.long_tail_bytes;
        t
    })
}

#[test]
fn accounting_round_trips_through_put_and_get() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    let mut big = rec("b", "big", 1, vec![segment(0, pieces(6, &["n1", "n2"]))]);
    let recorded = StreamAccounting {
        encoded_bytes: 7 << 40,
        uploaded_bytes: i64::MAX as u64,
        long_tail_bytes: (i64::MAX as u64) - (7 << 40),
    };
    big.parts[0].stream.accounting = recorded;
    meta.put_object(&big, &NONE).unwrap();
    let read = meta.get_object("b", "big").unwrap().unwrap();
    assert_eq!(read.parts[0].stream.accounting, recorded);
    assert_eq!(read, big);

    let inline = small("b", "small", 2);
    meta.put_object(&inline, &NONE).unwrap();
    let read = meta.get_object("b", "small").unwrap().unwrap();
    assert_eq!(read.parts[0].stream.accounting, StreamAccounting::default());

    // SQLite integers are signed: a value beyond i64::MAX is refused, nothing is recorded.
    let mut huge = rec("b", "huge", 3, vec![segment(0, pieces(6, &["n1"]))]);
    huge.parts[0].stream.accounting.uploaded_bytes = u64::MAX;
    assert!(matches!(
        meta.put_object(&huge, &NONE),
        Err(MetaError::Sqlite(_))
    ));
    assert_eq!(meta.get_object("b", "huge").unwrap(), None);
    assert_eq!(state(&meta, &id(3)), StreamState::Unknown);
}

#[test]
fn a_copy_shares_the_stored_accounting() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    let source = rec("b", "a", 1, vec![segment(0, pieces(6, &["n1"]))]);
    meta.put_object(&source, &NONE).unwrap();
    let mut copy = source.clone();
    copy.key = "c".into();
    copy.parts[0].stream.accounting = StreamAccounting {
        encoded_bytes: 1,
        uploaded_bytes: 2,
        long_tail_bytes: 3,
    };
    meta.put_object(&copy, &NONE).unwrap();
    meta.put_object_sharing(
        &ObjectRecord {
            key: "d".into(),
            ..copy
        },
        &NONE,
    )
    .unwrap();
    for key in ["a", "c", "d"] {
        let read = meta.get_object("b", key).unwrap().unwrap();
        assert_eq!(read.parts[0].stream.accounting, acc(1), "{key}");
    }
}

#[test]
fn multipart_parts_keep_their_accounting() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    meta.create_upload(&upload("b", "k", "u")).unwrap();
    let (one, two) = (upload_part(1, 11), upload_part(2, 12));
    meta.put_part("b", "k", "u", &one).unwrap();
    meta.put_part("b", "k", "u", &two).unwrap();
    let parts = meta.get_parts("b", "k", "u").unwrap();
    let read: Vec<StreamAccounting> = parts.iter().map(|p| p.stream.accounting).collect();
    assert_eq!(read, [acc(11), acc(12)]);

    // Completing references the parts' streams as stored: accounting the completing record
    // carries is not what counts.
    let mut rec = completed("b", "k", &[&one, &two]);
    for part in &mut rec.parts {
        part.stream.accounting = StreamAccounting::default();
    }
    meta.complete_upload("u", &rec, &NONE).unwrap();
    let object = meta.get_object("b", "k").unwrap().unwrap();
    let read: Vec<StreamAccounting> = object.parts.iter().map(|p| p.stream.accounting).collect();
    assert_eq!(read, [acc(11), acc(12)]);
    assert_eq!(object, completed("b", "k", &[&one, &two]));
}

#[test]
fn totals_of_an_empty_store_are_zero() {
    let (_dir, meta) = store();
    assert_eq!(totals(&meta), StorageTotals::default());
    meta.create_bucket("b", 0).unwrap();
    meta.create_upload(&upload("b", "k", "u")).unwrap();
    meta.put_part("b", "k", "u", &upload_part(1, 1)).unwrap();
    meta.put_object(&small("b", "gone", 2), &NONE).unwrap();
    meta.delete_object("b", "gone").unwrap();
    assert_eq!(totals(&meta), StorageTotals::default());
}

#[test]
fn totals_count_shared_streams_once_and_objects_in_full() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    meta.create_bucket("b2", 0).unwrap();
    let a = rec(
        "b",
        "a",
        1,
        vec![
            segment(0, pieces(6, &["n1", "n2"])),
            segment(1, pieces(6, &["n3"])),
        ],
    );
    meta.put_object(&a, &NONE).unwrap();
    for (bucket, key) in [("b", "c"), ("b2", "x")] {
        let copy = ObjectRecord {
            bucket: bucket.into(),
            key: key.into(),
            ..a.clone()
        };
        meta.put_object_sharing(&copy, &NONE).unwrap();
    }
    meta.put_object(&small("b", "d", 2), &NONE).unwrap();
    // Segment i holds 1000 + i plaintext bytes (the fixture), inline or not.
    assert_eq!(a.size, 2001);
    let expected = StorageTotals {
        objects: 4,
        plain_bytes: 3 * 2001 + 1000,
        streams: 2,
        segments: 3,
        pieces: 3,
        ..StorageTotals::default()
    };
    assert_eq!(totals(&meta), with_accounting(expected, &[1]));
}

#[test]
fn totals_leave_out_garbage() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    let a = rec("b", "a", 1, vec![segment(0, pieces(6, &["n1", "n2"]))]);
    meta.put_object(&a, &NONE).unwrap();
    let c = ObjectRecord {
        key: "c".into(),
        ..a.clone()
    };
    meta.put_object_sharing(&c, &NONE).unwrap();
    meta.put_object(&small("b", "d", 2), &NONE).unwrap();

    // Stream 1 stays counted while a copy references it.
    meta.delete_object("b", "a").unwrap();
    let one_copy = StorageTotals {
        objects: 2,
        plain_bytes: 1000 + 1000,
        streams: 2,
        segments: 2,
        pieces: 2,
        ..StorageTotals::default()
    };
    assert_eq!(totals(&meta), with_accounting(one_copy, &[1]));

    meta.delete_object("b", "c").unwrap();
    assert_eq!(garbage_ids(&meta), [id(1)]);
    let only_d = StorageTotals {
        objects: 1,
        plain_bytes: 1000,
        streams: 1,
        segments: 1,
        ..StorageTotals::default()
    };
    assert_eq!(totals(&meta), only_d);

    // Replacing "d" makes its inline stream garbage too.
    meta.put_object(
        &rec("b", "d", 3, vec![segment(0, pieces(6, &["n1"]))]),
        &NONE,
    )
    .unwrap();
    let replaced = StorageTotals {
        objects: 1,
        plain_bytes: 1000,
        streams: 1,
        segments: 1,
        pieces: 1,
        ..StorageTotals::default()
    };
    assert_eq!(totals(&meta), with_accounting(replaced, &[3]));
    meta.garbage_done(&id(1)).unwrap();
    meta.garbage_done(&id(2)).unwrap();
    assert_eq!(totals(&meta), with_accounting(replaced, &[3]));
}

#[test]
fn totals_leave_out_in_progress_uploads() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    let k = rec("b", "k", 1, vec![segment(0, pieces(6, &["n1", "n2"]))]);
    meta.put_object(&k, &NONE).unwrap();
    let only_k = with_accounting(
        StorageTotals {
            objects: 1,
            plain_bytes: 1000,
            streams: 1,
            segments: 1,
            pieces: 2,
            ..StorageTotals::default()
        },
        &[1],
    );

    meta.create_upload(&upload("b", "m", "u")).unwrap();
    let fresh = upload_part(1, 10);
    // UploadPartCopy: part 2 shares the stream of "k".
    let shared = PartRecord {
        number: 2,
        stream: k.parts[0].stream.clone(),
        ..upload_part(2, 1)
    };
    meta.put_part("b", "m", "u", &fresh).unwrap();
    meta.put_part("b", "m", "u", &shared).unwrap();
    assert_eq!(totals(&meta), only_k);

    meta.complete_upload("u", &completed("b", "m", &[&fresh, &shared]), &NONE)
        .unwrap();
    let both = StorageTotals {
        objects: 2,
        plain_bytes: 1000 + 2000,
        streams: 2,
        segments: 2,
        pieces: 3,
        ..StorageTotals::default()
    };
    assert_eq!(totals(&meta), with_accounting(both, &[1, 10]));
}

#[test]
fn totals_are_one_aggregate_without_correlated_subqueries() {
    let (_dir, meta) = store();
    let plan = plan(&meta, totals::STORAGE_TOTALS);
    assert!(!plan.contains("CORRELATED"), "{plan}");
    assert!(plan.contains("MATERIALIZE"), "{plan}");
}
