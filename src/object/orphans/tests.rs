use std::collections::HashSet;

use bytes::Bytes;

use super::*;
use crate::config::Config;
use crate::crypto::RootKey;
use crate::erasure::PieceHeader;
use crate::meta::Meta;
use crate::nodes::{DirNode, NodeStore};
use crate::object::{BodyEvent, PutObject};

/// A layer over six directory nodes (4/5/6/6, 64 KiB segments) with `storage` lines added to
/// its `[storage]` table; garbage bodies keep their pieces (gc_grace 60m); orphans have no
/// grace period unless `storage` sets one.
struct Fixture {
    dir: tempfile::TempDir,
    layer: ObjectLayer,
}

async fn fixture(storage: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let grace = if storage.contains("orphan_grace") {
        ""
    } else {
        "orphan_grace = \"0s\"\n"
    };
    let mut text = format!(
        "[storage]\nscheme = \"4/5/6/6\"\nsegment_size = \"64KiB\"\nblock_size = \"4KiB\"\n\
         chunk_size = \"4KiB\"\ngc_grace = \"60m\"\n{grace}{storage}\n"
    );
    for i in 1..=6 {
        text.push_str(&format!(
            "[[nodes]]\nid = \"n{i}\"\npath = \"nodes/n{i}\"\n"
        ));
    }
    let cfg = Config::parse(&text, dir.path()).unwrap();
    let root = RootKey::generate().unwrap();
    let meta = Meta::open(&dir.path().join("meta.sqlite")).await.unwrap();
    let transfers = crate::app::open_transfers(&cfg, &root, Some(&meta))
        .await
        .unwrap();
    let layer = ObjectLayer::new(cfg.storage.clone(), root, transfers, meta);
    layer.create_bucket("b").await.unwrap();
    Fixture { dir, layer }
}

impl Fixture {
    fn inner(&self) -> &Arc<Inner> {
        &self.layer.inner
    }

    /// A second handle on node `n{i}`'s directory, to write pieces behind the gateway's back.
    fn node(&self, i: usize) -> DirNode {
        DirNode::open(
            &format!("n{i}"),
            &self.dir.path().join(format!("nodes/n{i}")),
            false,
        )
        .unwrap()
    }

    fn ids(&self, i: usize) -> HashSet<PieceId> {
        self.node(i)
            .list_pieces(None, 1 << 20)
            .unwrap()
            .into_iter()
            .collect()
    }

    async fn put(&self, key: &str, body: Vec<u8>) {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(BodyEvent::Data(Bytes::from(body))).await.unwrap();
        tx.send(BodyEvent::End(None)).await.unwrap();
        let req = PutObject {
            bucket: "b".into(),
            key: key.into(),
            ..PutObject::default()
        };
        self.layer
            .put_object(req, crate::object::BodyReceiver::new(rx, None))
            .await
            .unwrap();
    }

    async fn get(&self, key: &str) -> Vec<u8> {
        let mut out = self.layer.get_object("b", key, None).await.unwrap();
        let mut got = Vec::new();
        while let Some(chunk) = out.body.recv().await {
            got.extend_from_slice(&chunk.unwrap());
        }
        got
    }
}

/// Writes a committed piece of `len` bytes starting with `magic` under `id` on `node`.
async fn write_piece(node: &DirNode, id: PieceId, magic: &[u8], len: usize) {
    let mut body = magic.to_vec();
    body.resize(len.max(magic.len()), 7);
    let mut w = node.create(id).await.unwrap();
    w.write(Bytes::from(body)).await.unwrap();
    w.commit().await.unwrap();
}

fn random_id() -> PieceId {
    let mut id = [0u8; 32];
    crate::crypto::random_bytes(&mut id).unwrap();
    PieceId(id)
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn the_data_magic_is_the_piece_format_s() {
    assert_eq!(
        PieceHeader { chunk_size: 64 }.encode()[..4],
        DATA_PIECE_MAGIC
    );
}

#[test]
fn expected_ids_are_found_by_prefix() {
    let ids: Vec<PieceId> = (0..100).map(|_| random_id()).collect();
    let e = Expected::new(ids[..50].iter().map(prefix).collect());
    assert!(ids[..50].iter().all(|id| e.find(id).is_some()));
    assert!(ids[50..].iter().all(|id| e.find(id).is_none()));
}

#[test]
fn the_valve_holds_when_orphans_dominate_a_node() {
    let listing = |data: u64, orphans: u64| Listing {
        listed: data + 3,
        data,
        orphans: OrphanCount {
            pieces: orphans,
            bytes: orphans * 100,
            unknown_size: 0,
        },
        other: 3,
    };
    assert!(valve(&listing(100, 0), 0.5).is_none());
    assert!(valve(&listing(100, 50), 0.5).is_none());
    let held = valve(&listing(100, 51), 0.5).unwrap();
    assert!(held.contains("51 of the 100 data pieces"), "{held}");
    // Metadata that places nothing on the node: every data piece is an orphan.
    assert!(valve(&listing(7, 7), 0.5).is_some());
    // 1 turns the valve off.
    assert!(valve(&listing(7, 7), 1.0).is_none());
}

#[tokio::test]
async fn orphans_are_collected_and_nothing_else() {
    let f = fixture("").await;
    let t = f.inner().transfers.clone();
    // Live objects (4 segments), and a replaced body that is garbage not yet collected.
    let a = data(200_000, 1);
    f.put("a", a.clone()).await;
    f.put("b", data(100_000, 2)).await;
    let b = data(150_000, 3);
    f.put("b", b.clone()).await;
    assert_eq!(f.inner().meta.garbage(10).await.unwrap().len(), 1);
    let before: Vec<HashSet<PieceId>> = (1..=6).map(|i| f.ids(i)).collect();

    // An upload in flight: its first two segments' pieces are on n1, not in the metadata.
    let stream = [9u8; 16];
    let guard = t.in_flight().begin(stream, 6);
    guard.segment(1);
    let header = PieceHeader { chunk_size: 4096 }.encode();
    let n1 = f.node(1);
    let mut in_flight = Vec::new();
    for segment in 0..2 {
        for number in [0u16, 5] {
            let id = t.piece_id(0, &stream, segment, number);
            write_piece(&n1, id, &header, 3000).await;
            in_flight.push(id);
        }
    }
    // Orphans of a crashed upload, a metadata blob and a stray short file.
    let orphans: Vec<PieceId> = (0..3).map(|_| random_id()).collect();
    for id in &orphans {
        write_piece(&n1, *id, &header, 5000).await;
    }
    let blob = random_id();
    write_piece(&n1, blob, b"GWMB", 200).await;
    let short = random_id();
    write_piece(&n1, short, b"GW", 2).await;

    let mut c = Collector::load(None).await;
    c.round(f.inner()).await;
    // First sighting: reported, nothing deleted.
    let o = t.metrics().orphans();
    assert_eq!(o["n1"].pending_pieces, 3);
    assert_eq!(o["n1"].pending_bytes, 15_000);
    assert_eq!(o["n1"].held, None);
    assert!(o["n1"].last_scan_ms > 0);
    assert_eq!(o["n2"].pending_pieces, 0);
    assert!(orphans.iter().all(|id| f.ids(1).contains(id)));

    c.round(f.inner()).await;
    let now = f.ids(1);
    assert!(
        orphans.iter().all(|id| !now.contains(id)),
        "orphans deleted"
    );
    for keep in before[0].iter().chain(&in_flight).chain([&blob, &short]) {
        assert!(now.contains(keep), "{} deleted", keep.to_hex());
    }
    for (i, ids) in before.iter().enumerate().skip(1) {
        assert_eq!(&f.ids(i + 1), ids, "n{} changed", i + 1);
    }
    let o = t.metrics().orphans();
    assert_eq!(o["n1"].reclaimed_pieces, 3);
    assert_eq!(o["n1"].reclaimed_bytes, 15_000);
    assert_eq!(o["n1"].pending_pieces, 0);
    assert!(f.get("a").await == a);
    assert!(f.get("b").await == b);

    // The upload fails without cleaning up: its pieces are orphans from now on, collected
    // one scan after they are first seen as such.
    drop(guard);
    c.round(f.inner()).await;
    assert!(in_flight.iter().all(|id| f.ids(1).contains(id)));
    c.round(f.inner()).await;
    let now = f.ids(1);
    assert!(in_flight.iter().all(|id| !now.contains(id)));
    assert!(now.contains(&blob) && now.contains(&short));
    assert_eq!(t.metrics().orphans()["n1"].reclaimed_pieces, 7);
    assert!(f.get("a").await == a);
}

#[tokio::test]
async fn a_piece_is_deleted_only_once_its_grace_period_is_over() {
    let f = fixture("orphan_grace = \"1h\"").await;
    f.put("a", data(100_000, 1)).await;
    let orphan = random_id();
    let header = PieceHeader { chunk_size: 4096 }.encode();
    write_piece(&f.node(2), orphan, &header, 100).await;
    let mut c = Collector::load(None).await;
    c.round(f.inner()).await;
    c.round(f.inner()).await;
    assert!(f.ids(2).contains(&orphan));
    // Seen two hours ago (as a restarted gateway would remember it).
    c.nodes
        .get_mut("n2")
        .unwrap()
        .get_mut(&orphan)
        .unwrap()
        .first_seen_ms -= 2 * 3600 * 1000;
    c.round(f.inner()).await;
    assert!(!f.ids(2).contains(&orphan));
}

#[tokio::test]
async fn first_sightings_survive_a_restart() {
    let f = fixture("").await;
    f.put("a", data(100_000, 1)).await;
    let orphan = random_id();
    let header = PieceHeader { chunk_size: 4096 }.encode();
    write_piece(&f.node(3), orphan, &header, 100).await;
    let state = f.dir.path().join(STATE_FILE);
    let mut c = Collector::load(Some(state.clone())).await;
    c.round(f.inner()).await;
    let seen = c.nodes["n3"][&orphan].first_seen_ms;
    drop(c);
    let mut again = Collector::load(Some(state.clone())).await;
    assert_eq!(again.nodes["n3"][&orphan].first_seen_ms, seen);
    assert_eq!(again.nodes["n3"][&orphan].kind, Kind::Data(Some(100)));
    again.round(f.inner()).await;
    assert!(!f.ids(3).contains(&orphan));
    // A damaged state file only costs time.
    std::fs::write(&state, b"{not json").unwrap();
    assert!(Collector::load(Some(state)).await.nodes.is_empty());
}

#[tokio::test]
async fn the_valve_stops_deletions_and_says_why() {
    // Nothing stored: every data piece on n4 is an orphan.
    let f = fixture("").await;
    let header = PieceHeader { chunk_size: 4096 }.encode();
    let orphans: Vec<PieceId> = (0..2).map(|_| random_id()).collect();
    for id in &orphans {
        write_piece(&f.node(4), *id, &header, 100).await;
    }
    let mut c = Collector::load(None).await;
    c.round(f.inner()).await;
    c.round(f.inner()).await;
    assert!(orphans.iter().all(|id| f.ids(4).contains(id)));
    let o = f.inner().transfers.metrics().orphans();
    assert!(o["n4"]
        .held
        .as_deref()
        .unwrap()
        .contains("orphan_max_share"));
    assert_eq!(o["n4"].pending_pieces, 2);
    assert_eq!(o["n1"].held, None);
}

#[tokio::test]
async fn report_only_mode_deletes_nothing() {
    let f = fixture("orphan_grace = \"off\"\norphan_max_share = 1").await;
    let orphan = random_id();
    let header = PieceHeader { chunk_size: 4096 }.encode();
    write_piece(&f.node(5), orphan, &header, 100).await;
    let mut c = Collector::load(None).await;
    c.round(f.inner()).await;
    c.round(f.inner()).await;
    assert!(f.ids(5).contains(&orphan));
    assert_eq!(
        f.inner().transfers.metrics().orphans()["n5"].pending_pieces,
        1
    );
}
