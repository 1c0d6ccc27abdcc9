//! Streams shared by several objects (copies), conditional writes, tags and checksums.

use std::sync::Barrier;

use super::*;
use crate::meta::StoredChecksum;

fn copy_of(source: &ObjectRecord, key: &str) -> ObjectRecord {
    let mut copy = source.clone();
    copy.key = key.into();
    copy
}

#[test]
fn copies_share_a_stream_until_the_last_reference_goes() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    let source = rec("b", "a", 1, vec![segment(0, pieces(6, &["n1", "n2"]))]);
    meta.put_object(&source, &NONE).unwrap();

    // A copy names the stream; the segments and accounting it carries are ignored in favour
    // of the stored ones.
    let mut copy = copy_of(&source, "c");
    copy.parts[0].stream.segments = vec![segment(0, Placement::Inline(vec![1]))];
    copy.parts[0].stream.accounting = StreamAccounting::default();
    meta.put_object(&copy, &NONE).unwrap();
    assert_eq!(
        meta.get_object("b", "c").unwrap(),
        Some(copy_of(&source, "c"))
    );
    assert_eq!(count(&meta, "segments", &id(1)), 1);
    // Each piece is listed once however many objects share it.
    assert_eq!(meta.pieces_on_node("n1", 10).unwrap(), vec![(id(1), 0, 0)]);

    assert!(meta.delete_object("b", "a").unwrap());
    assert_eq!(state(&meta, &id(1)), StreamState::Live);
    assert!(meta.garbage(10).unwrap().is_empty());
    assert_eq!(
        meta.get_object("b", "c").unwrap(),
        Some(copy_of(&source, "c"))
    );

    assert!(meta.delete_object("b", "c").unwrap());
    assert_eq!(garbage_ids(&meta), [id(1)]);
    assert!(meta.pieces_on_node("n1", 10).unwrap().is_empty());

    // Garbage is never referenced again: its pieces may already be going.
    assert!(matches!(
        meta.put_object(&copy_of(&source, "d"), &NONE),
        Err(MetaError::StreamGone(s)) if s == id(1)
    ));
    assert_eq!(meta.get_object("b", "d").unwrap(), None);
    assert_eq!(garbage_ids(&meta), [id(1)]);
}

#[test]
fn replacing_an_object_by_a_copy_of_itself_keeps_its_stream() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    let first = rec("b", "k", 1, vec![segment(0, pieces(6, &["n1"]))]);
    meta.put_object(&first, &NONE).unwrap();
    let mut again = first.clone();
    again.content_type = Some("text/plain".into());
    again.user_meta = vec![("new".into(), "meta".into())];
    again.last_modified_ms += 1;
    meta.put_object(&again, &NONE).unwrap();
    assert_eq!(meta.get_object("b", "k").unwrap(), Some(again));
    assert_eq!(state(&meta, &id(1)), StreamState::Live);
    assert!(meta.garbage(10).unwrap().is_empty());
}

#[test]
fn multipart_objects_release_only_streams_nothing_references() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    let parts: Vec<ObjectPart> = (1..=3)
        .map(|n| {
            part(
                n,
                stream(u128::from(n), vec![segment(0, pieces(6, &["n1"]))]),
            )
        })
        .collect();
    let whole = object("b", "k", parts.clone());
    meta.put_object(&whole, &NONE).unwrap();
    assert_eq!(meta.get_object("b", "k").unwrap(), Some(whole.clone()));
    // A copy of the whole object shares all three streams.
    meta.put_object(&copy_of(&whole, "copy"), &NONE).unwrap();

    // Replace "k" by an object sharing part 2's stream, plus a new one.
    let next = object("b", "k", vec![parts[1].clone(), part(7, stream(4, vec![]))]);
    meta.put_object(&next, &NONE).unwrap();
    assert!(meta.garbage(10).unwrap().is_empty(), "the copy holds 1..=3");
    assert!(meta.delete_object("b", "copy").unwrap());
    assert_eq!(garbage_ids(&meta), [id(1), id(3)]);
    assert_eq!(state(&meta, &id(2)), StreamState::Live);
    assert_eq!(meta.get_object("b", "k").unwrap(), Some(next));
    assert!(meta.delete_object("b", "k").unwrap());
    assert_eq!(garbage_ids(&meta), [id(1), id(2), id(3), id(4)]);
}

#[test]
fn preconditions_are_checked_against_the_stored_object() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    let star = Precondition::IfNoneMatchStar;
    let if_match = |etag: &str| Precondition::IfMatch(etag.into());

    // If-Match on a missing key is NoSuchKey, as S3 answers.
    assert!(matches!(
        meta.put_object(&small("b", "k", 1), &if_match("etag-1")),
        Err(MetaError::NoSuchKey)
    ));
    meta.put_object(&small("b", "k", 1), &star).unwrap();
    assert!(matches!(
        meta.put_object(&small("b", "k", 2), &star),
        Err(MetaError::PreconditionFailed)
    ));
    assert!(matches!(
        meta.put_object(&small("b", "k", 3), &if_match("etag-2")),
        Err(MetaError::PreconditionFailed)
    ));
    assert_eq!(meta.get_object("b", "k").unwrap(), Some(small("b", "k", 1)));
    // A refused write leaves no trace: its new stream was not recorded.
    for n in [2, 3] {
        assert_eq!(state(&meta, &id(n)), StreamState::Unknown);
    }
    assert!(meta.garbage(10).unwrap().is_empty());

    meta.put_object(&small("b", "k", 4), &if_match("etag-1"))
        .unwrap();
    assert_eq!(garbage_ids(&meta), [id(1)]);
    meta.put_object(&small("b", "k", 5), &if_match("*"))
        .unwrap();
    assert_eq!(meta.get_object("b", "k").unwrap(), Some(small("b", "k", 5)));
    // The bucket check comes first.
    assert!(matches!(
        meta.put_object(&small("nope", "k", 6), &star),
        Err(MetaError::NoSuchBucket(_))
    ));
}

#[test]
fn racing_create_only_writes_have_one_winner() {
    let (_dir, meta) = store();
    no_sync(&meta);
    meta.create_bucket("b", 0).unwrap();
    for round in 0..20u128 {
        let key = format!("k{round}");
        let barrier = Barrier::new(2);
        let results: Vec<Result<(), MetaError>> = std::thread::scope(|scope| {
            let writers: Vec<_> = [2 * round + 1, 2 * round + 2]
                .into_iter()
                .map(|n| {
                    let (meta, barrier, key) = (&meta, &barrier, &key);
                    scope.spawn(move || {
                        barrier.wait();
                        meta.put_object(&small("b", key, n), &Precondition::IfNoneMatchStar)
                    })
                })
                .collect();
            writers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let wins: Vec<usize> = (0..2).filter(|&i| results[i].is_ok()).collect();
        assert_eq!(wins.len(), 1, "round {round}: {results:?}");
        let loser = 1 - wins[0];
        assert!(matches!(results[loser], Err(MetaError::PreconditionFailed)));
        let winner = 2 * round + 1 + wins[0] as u128;
        assert_eq!(
            meta.get_object("b", &key).unwrap(),
            Some(small("b", &key, winner))
        );
        assert_eq!(
            state(&meta, &id(2 * round + 1 + loser as u128)),
            StreamState::Unknown
        );
    }
    assert!(meta.garbage(10).unwrap().is_empty());
}

#[test]
fn object_tags_change_without_touching_the_object() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    let mut tagged = small("b", "k", 1);
    tagged.tags = vec![("z".into(), "1".into()), ("a".into(), "日本 &<>".into())];
    meta.put_object(&tagged, &NONE).unwrap();
    assert_eq!(meta.get_object("b", "k").unwrap(), Some(tagged.clone()));

    let tags = vec![("only".to_string(), String::new())];
    meta.set_object_tags("b", "k", &tags).unwrap();
    let mut expected = tagged.clone();
    expected.tags = tags;
    assert_eq!(meta.get_object("b", "k").unwrap(), Some(expected.clone()));
    meta.set_object_tags("b", "k", &[]).unwrap();
    expected.tags = vec![];
    assert_eq!(meta.get_object("b", "k").unwrap(), Some(expected));
    assert_eq!(state(&meta, &id(1)), StreamState::Live);
    assert!(meta.garbage(10).unwrap().is_empty());

    assert!(matches!(
        meta.set_object_tags("b", "missing", &[]),
        Err(MetaError::NoSuchKey)
    ));
    assert!(matches!(
        meta.set_object_tags("nope", "k", &[]),
        Err(MetaError::NoSuchBucket(_))
    ));
}

#[test]
fn bucket_tags_distinguish_none_from_empty() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    meta.create_bucket("other", 0).unwrap();
    assert_eq!(meta.get_bucket_tags("b").unwrap(), None);
    let tags = vec![
        ("project".to_string(), "gateway".to_string()),
        ("cost".to_string(), "ä".to_string()),
    ];
    meta.set_bucket_tags("b", Some(&tags)).unwrap();
    assert_eq!(meta.get_bucket_tags("b").unwrap(), Some(tags));
    assert_eq!(meta.get_bucket_tags("other").unwrap(), None);
    meta.set_bucket_tags("b", Some(&[])).unwrap();
    assert_eq!(meta.get_bucket_tags("b").unwrap(), Some(vec![]));
    meta.set_bucket_tags("b", None).unwrap();
    assert_eq!(meta.get_bucket_tags("b").unwrap(), None);
    assert!(matches!(
        meta.set_bucket_tags("nope", None),
        Err(MetaError::NoSuchBucket(_))
    ));
    assert!(matches!(
        meta.get_bucket_tags("nope"),
        Err(MetaError::NoSuchBucket(_))
    ));
}

#[test]
fn checksums_round_trip() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    let mut parts: Vec<ObjectPart> = (1..=2)
        .map(|n| part(n, stream(u128::from(n), vec![])))
        .collect();
    parts[0].checksum = Some("AAAAAA==".into());
    parts[1].checksum = Some("BBBBBB==".into());
    let mut whole = object("b", "k", parts);
    whole.checksum = Some(StoredChecksum {
        algorithm: 2,
        kind: 2,
        value: "CCCCCC==-2".into(),
    });
    meta.put_object(&whole, &NONE).unwrap();
    assert_eq!(meta.get_object("b", "k").unwrap(), Some(whole));

    let plain = small("b", "k", 3);
    meta.put_object(&plain, &NONE).unwrap();
    assert_eq!(meta.get_object("b", "k").unwrap(), Some(plain));
}

#[test]
fn a_copy_never_resurrects_a_collected_stream() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    let source = rec("b", "a", 1, vec![segment(0, pieces(6, &["n1", "n2"]))]);
    meta.put_object(&source, &NONE).unwrap();
    // A live source can be shared.
    meta.put_object_sharing(&copy_of(&source, "c"), &NONE)
        .unwrap();
    assert!(meta.delete_object("b", "c").unwrap());
    // The source is deleted and collected while a copy is in flight.
    assert!(meta.delete_object("b", "a").unwrap());
    meta.garbage_done(&id(1)).unwrap();
    assert_eq!(state(&meta, &id(1)), StreamState::Unknown);
    assert!(matches!(
        meta.put_object_sharing(&copy_of(&source, "d"), &NONE),
        Err(MetaError::StreamGone(s)) if s == id(1)
    ));
    assert_eq!(meta.get_object("b", "d").unwrap(), None);
    assert_eq!(state(&meta, &id(1)), StreamState::Unknown);
}
