//! `node_pieces`: every piece row naming a node, live and garbage, in pages.

use super::*;
use crate::meta::sqlite::node_pieces::NODE_PIECES;

#[test]
fn node_pieces_pages_live_and_garbage_pieces_through_the_index() {
    let (_dir, meta) = store();
    meta.create_bucket("b", 0).unwrap();
    // Stream 1: piece numbers 0, 2, 4 of segment 0 on n1, n2, n1.
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
                segment(0, pieces(6, &["n2"])),
                segment(1, pieces(6, &["n1"])),
            ],
        ),
        &NONE,
    )
    .unwrap();
    // Replacing x makes stream 1 garbage: its pieces are still on the nodes.
    meta.put_object(&small("b", "x", 3), &NONE).unwrap();
    let all = meta.node_pieces("n1", None, 10).unwrap();
    assert_eq!(
        all,
        vec![
            (id(1), 0, 0, false),
            (id(1), 0, 4, false),
            (id(2), 1, 0, true)
        ]
    );
    let first = meta.node_pieces("n1", None, 2).unwrap();
    assert_eq!(first, all[..2]);
    let (s, seg, num, _) = first[1];
    assert_eq!(
        meta.node_pieces("n1", Some((s, seg, num)), 2).unwrap(),
        all[2..]
    );
    let (s, seg, num, _) = all[2];
    assert!(meta
        .node_pieces("n1", Some((s, seg, num)), 2)
        .unwrap()
        .is_empty());
    assert_eq!(meta.node_pieces("n2", None, 10).unwrap().len(), 2);
    assert!(meta.node_pieces("n9", None, 10).unwrap().is_empty());
    // Collected garbage is gone from the node's list.
    meta.garbage_done(&id(1)).unwrap();
    assert_eq!(
        meta.node_pieces("n1", None, 10).unwrap(),
        vec![(id(2), 1, 0, true)]
    );
    let plan = plan(&meta, NODE_PIECES);
    assert!(plan.contains("pieces_by_node"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "{plan}");
}
