//! The change log: every committed mutation is logged once, in order; replaying the log (or
//! a snapshot plus the log after it) on an empty store rebuilds the same store.

use super::*;
use crate::meta::log::{decode_batch, encode_batch};
use crate::meta::{ListQuery, PartRecord, PieceFinding, PieceRecord, PieceState, UploadRecord};

/// Everything a reader can see, for comparing two stores.
fn dump(meta: &SqliteMeta) -> Vec<String> {
    let mut out = Vec::new();
    for b in meta.list_buckets().unwrap() {
        out.push(format!(
            "{b:?} {:?}",
            meta.get_bucket_tags(&b.name).unwrap()
        ));
        let page = meta
            .list_objects(&ListQuery {
                bucket: &b.name,
                prefix: "",
                delimiter: None,
                start_after: None,
                max_keys: 10_000,
            })
            .unwrap();
        for o in page.objects {
            out.push(format!("{:?}", meta.get_object(&b.name, &o.key).unwrap()));
        }
    }
    let mut garbage: Vec<_> = meta
        .garbage(10_000)
        .unwrap()
        .into_iter()
        .map(|g| format!("{:?} {:?}", g.stream_id, g.pieces))
        .collect();
    garbage.sort();
    out.push(format!("garbage {garbage:?}"));
    out.push(format!("totals {:?}", meta.storage_totals().unwrap()));
    out.push(format!("uploads {}", meta.count_uploads().unwrap()));
    out.push(format!("health {:?}", meta.health_counts().unwrap()));
    out
}

fn upload(id: &str, key: &str) -> UploadRecord {
    UploadRecord {
        upload_id: id.into(),
        bucket: "b".into(),
        key: key.into(),
        initiated_ms: 5,
        content_type: None,
        system_meta: vec![],
        user_meta: vec![("m".into(), "v".into())],
        tags: vec![],
        checksum_algorithm: None,
        checksum_kind: None,
    }
}

/// A mix of every kind of mutation; returns how many committed.
fn workload(meta: &SqliteMeta, offset: u128) -> u64 {
    let mut n = 0;
    let mut ok = |r: Result<(), MetaError>| {
        r.unwrap();
        n += 1;
    };
    if meta.get_bucket("b").unwrap().is_none() {
        ok(meta.create_bucket("b", 1));
        ok(meta.create_bucket("gone", 2));
        ok(meta.delete_bucket("gone"));
    }
    ok(meta.set_bucket_tags("b", Some(&[("t".into(), "1".into())])));
    ok(meta.put_object(&small("b", &format!("inline-{offset}"), offset + 1), &NONE));
    ok(meta.put_object(
        &rec(
            "b",
            &format!("pieces-{offset}"),
            offset + 2,
            vec![segment(0, pieces(8, &["n1", "n2", "n3", "n4"]))],
        ),
        &NONE,
    ));
    // Replace: the old body becomes garbage, then is collected.
    ok(meta.put_object(&small("b", &format!("inline-{offset}"), offset + 3), &NONE));
    ok(meta.garbage_done(&id(offset + 1)));
    // A copy shares the body.
    let mut copy = meta
        .get_object("b", &format!("pieces-{offset}"))
        .unwrap()
        .unwrap();
    copy.key = format!("copy-{offset}");
    ok(meta.put_object_sharing(&copy, &NONE));
    ok(meta.set_object_tags("b", &format!("copy-{offset}"), &[("k".into(), "v".into())]));
    // Segment health: a read finds a piece missing, repair moves it, a node is lost.
    ok(meta
        .record_findings(&[PieceFinding {
            stream_id: id(offset + 2),
            segment: 0,
            number: 2,
            node: "n2".into(),
            state: PieceState::Missing,
            found_by: "read".into(),
        }])
        .map(|changed| assert_eq!(changed.len(), 1)));
    let seen = meta
        .repair_source(&id(offset + 2), 0)
        .unwrap()
        .unwrap()
        .pieces;
    ok(meta
        .replace_pieces(&id(offset + 2), 0, &seen, &[PieceRecord::new(2, "n5")])
        .map(|switched| assert!(switched)));
    ok(meta.mark_node_lost("n4", "node replaced").map(|_| ()));
    // Multipart: one completed (a part left out becomes garbage), one aborted, one left open.
    let done = format!("up-done-{offset}");
    ok(meta.create_upload(&upload(&done, &format!("mp-{offset}"))));
    let p1 = PartRecord {
        number: 1,
        size: 3,
        etag: "p1".into(),
        checksum: None,
        last_modified_ms: 6,
        stream: stream(offset + 10, vec![segment(0, pieces(4, &["n1", "n2"]))]),
    };
    let p2 = PartRecord {
        number: 2,
        stream: stream(offset + 11, vec![segment(0, Placement::Inline(vec![1; 3]))]),
        ..p1.clone()
    };
    ok(meta.put_part("b", &format!("mp-{offset}"), &done, &p1));
    ok(meta.put_part("b", &format!("mp-{offset}"), &done, &p2));
    let completed = object(
        "b",
        &format!("mp-{offset}"),
        vec![part(1, p1.stream.clone())],
    );
    ok(meta.complete_upload(&done, &completed, &NONE));
    let aborted = format!("up-abort-{offset}");
    ok(meta.create_upload(&upload(&aborted, "x")));
    ok(meta.put_part(
        "b",
        "x",
        &aborted,
        &PartRecord {
            stream: stream(offset + 12, vec![]),
            ..p1.clone()
        },
    ));
    ok(meta.abort_upload("b", "x", &aborted));
    let open = format!("up-open-{offset}");
    ok(meta.create_upload(&upload(&open, "y")));
    ok(meta.put_part(
        "b",
        "y",
        &open,
        &PartRecord {
            stream: stream(offset + 13, vec![]),
            ..p1
        },
    ));
    assert!(meta
        .delete_object("b", &format!("pieces-{offset}"))
        .unwrap());
    n += 1;
    // Not a change: nothing is logged.
    assert!(!meta.delete_object("b", "never-there").unwrap());
    assert!(meta.create_bucket("b", 9).is_err());
    n
}

fn replay_all(from: &SqliteMeta, after: u64, into: &SqliteMeta) {
    let pending = from.pending_changes(after, usize::MAX).unwrap();
    // Through the batch format, in two batches.
    let mid = pending.len() / 2;
    for chunk in [&pending[..mid], &pending[mid..]] {
        if chunk.is_empty() {
            continue;
        }
        let batch = decode_batch(&encode_batch(chunk)).unwrap();
        for e in batch.entries {
            into.apply(&e.change).unwrap();
        }
    }
}

#[test]
fn every_commit_is_logged_once_and_replay_rebuilds_the_store() {
    let (_d, meta) = store();
    let mut commits = meta.subscribe_commits();
    let changes = workload(&meta, 0);
    let state = meta.replication_state().unwrap();
    assert_eq!(state.last_seq, changes);
    assert_eq!(*commits.borrow_and_update(), changes);
    let logged = meta.pending_changes(0, usize::MAX).unwrap();
    assert_eq!(logged.len() as u64, changes);
    assert!(logged.windows(2).all(|w| w[1].seq == w[0].seq + 1));

    let (_d2, copy) = store();
    replay_all(&meta, 0, &copy);
    assert_eq!(dump(&copy), dump(&meta));
}

#[test]
fn snapshot_plus_later_log_rebuilds_the_store_and_shipping_prunes() {
    let (dir, meta) = store();
    workload(&meta, 0);
    let shipped = meta.replication_state().unwrap().last_seq;
    meta.mark_shipped(1, shipped, 100).unwrap();
    assert!(meta.pending_changes(0, usize::MAX).unwrap().is_empty());
    let snap = dir.path().join("snap.db");
    let taken = meta.snapshot_into(&snap).unwrap();
    assert_eq!(taken.seq, shipped);
    workload(&meta, 100);
    let state = meta.replication_state().unwrap();
    assert_eq!((state.shipped_seq, state.next_batch), (shipped, 2));
    assert!(state.last_seq > shipped);

    let restored = SqliteMeta::open(&snap).unwrap();
    assert_eq!(restored.replication_state().unwrap().last_seq, shipped);
    replay_all(&meta, taken.seq, &restored);
    assert_eq!(dump(&restored), dump(&meta));
    // Numbering continues where the original's does.
    restored
        .finish_recovery(&ReplicationState {
            last_seq: state.last_seq,
            next_batch: 7,
            ..state
        })
        .unwrap();
    let after = restored.replication_state().unwrap();
    assert_eq!(
        (after.last_seq, after.shipped_seq, after.next_batch),
        (state.last_seq, state.last_seq, 7)
    );
    restored.create_bucket("later", 3).unwrap();
    assert_eq!(
        restored.pending_changes(0, usize::MAX).unwrap()[0].seq,
        state.last_seq + 1
    );
}

#[test]
fn key_check_is_set_once() {
    let (_d, meta) = store();
    assert_eq!(meta.key_check().unwrap(), None);
    meta.set_key_check(&[1; 32]).unwrap();
    meta.set_key_check(&[2; 32]).unwrap();
    assert_eq!(meta.key_check().unwrap(), Some(vec![1; 32]));
}
