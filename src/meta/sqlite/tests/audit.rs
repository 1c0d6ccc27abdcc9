//! What the audit reads: healthy pieces of live bodies per node, live segments in key order.

use super::*;
use crate::meta::sqlite::audit::{LIVE_SEGMENTS, NODE_HEALTHY_PIECES};
use crate::meta::{PieceFinding, PieceState};

#[test]
fn audit_reads_healthy_live_pieces_and_live_segments_through_the_indexes() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    // Stream 1: pieces 0, 2, 4 of segment 0 on n1, n2, n1; stream 2: two segments and an
    // inline object between them; stream 4 becomes garbage.
    meta.put_object(
        &rec(
            "b",
            "x",
            1,
            vec![segment(0, pieces(6, &["n1", "n2", "n1"]))],
        ),
        &NONE,
    )
    .unwrap();
    meta.put_object(
        &rec(
            "b",
            "y",
            2,
            vec![
                segment(0, pieces(6, &["n1"])),
                segment(1, pieces(6, &["n1", "n1"])),
            ],
        ),
        &NONE,
    )
    .unwrap();
    meta.put_object(&small("b", "i", 3), &NONE).unwrap();
    meta.put_object(
        &rec("b", "z", 4, vec![segment(0, pieces(6, &["n1"]))]),
        &NONE,
    )
    .unwrap();
    meta.put_object(&small("b", "z", 5), &NONE).unwrap();
    // Piece 4 of stream 1 is known missing: the audit does not look for it again.
    let found = meta
        .record_findings(&[PieceFinding {
            stream_id: id(1),
            segment: 0,
            number: 4,
            node: "n1".into(),
            state: PieceState::Missing,
            found_by: "read".into(),
        }])
        .unwrap();
    assert_eq!(found.len(), 1);

    let all = meta.node_healthy_pieces("n1", None, 10).unwrap();
    assert_eq!(
        all,
        vec![(id(1), 0, 0), (id(2), 0, 0), (id(2), 1, 0), (id(2), 1, 2)]
    );
    let first = meta.node_healthy_pieces("n1", None, 3).unwrap();
    assert_eq!(first, all[..3]);
    assert_eq!(
        meta.node_healthy_pieces("n1", Some(first[2]), 3).unwrap(),
        all[3..]
    );
    assert_eq!(
        meta.node_healthy_pieces("n2", None, 10).unwrap(),
        vec![(id(1), 0, 2)]
    );
    assert!(meta.node_healthy_pieces("n9", None, 10).unwrap().is_empty());

    // Segments of live bodies with pieces, in key order: not the inline one, not garbage.
    let segs = meta.live_segments(None, 10).unwrap();
    assert_eq!(segs, vec![(id(1), 0), (id(2), 0), (id(2), 1)]);
    assert_eq!(meta.live_segments(None, 2).unwrap(), segs[..2]);
    assert_eq!(meta.live_segments(Some(segs[1]), 2).unwrap(), segs[2..]);
    assert!(meta.live_segments(Some(segs[2]), 2).unwrap().is_empty());
    // A cursor between streams starts at the next one.
    assert_eq!(
        meta.live_segments(Some((id(1), u32::MAX)), 1).unwrap(),
        vec![(id(2), 0)]
    );

    let plan_pieces = plan(&meta, NODE_HEALTHY_PIECES);
    assert!(plan_pieces.contains("pieces_by_node"), "{plan_pieces}");
    assert!(!plan_pieces.contains("TEMP B-TREE"), "{plan_pieces}");
    let plan_segments = plan(&meta, LIVE_SEGMENTS);
    assert!(!plan_segments.contains("TEMP B-TREE"), "{plan_segments}");
    assert!(!plan_segments.contains("SCAN s"), "{plan_segments}");
}
