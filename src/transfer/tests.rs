//! Scheduler behaviour with misbehaving in-memory nodes: a node that refuses every piece (the
//! piece moves to a spare) and a node that stops making progress (the upload finishes without
//! it once `success` pieces are durable, and its bytes count as long tail).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::config::LimitsConfig;
use crate::metrics::Reason;
use crate::nodes::{BoxFuture, DirNode, NodeError, NodeStore, PieceId, PieceWriter};

/// Fails every create (`refuse`), or accepts the first write and then never finishes another,
/// or (`slow_commit`) takes everything and never finishes the commit.
struct BadNode {
    id: String,
    refuse: bool,
    slow_commit: bool,
}

struct StuckWriter {
    writes: usize,
    slow_commit: bool,
}

impl PieceWriter for StuckWriter {
    fn write(&mut self, _: Bytes) -> BoxFuture<'_, Result<(), NodeError>> {
        self.writes += 1;
        let first = self.writes == 1 || self.slow_commit;
        Box::pin(async move {
            if !first {
                std::future::pending::<()>().await;
            }
            Ok(())
        })
    }
    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<(), NodeError>> {
        Box::pin(std::future::pending())
    }
    fn abort(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

impl NodeStore for BadNode {
    fn id(&self) -> &str {
        &self.id
    }
    fn create<'a>(&'a self, _: PieceId) -> BoxFuture<'a, Result<Box<dyn PieceWriter>, NodeError>> {
        Box::pin(async move {
            if self.refuse {
                return Err(NodeError::Refused {
                    node: self.id.clone(),
                    reason: "full".into(),
                });
            }
            Ok(Box::new(StuckWriter {
                writes: 0,
                slow_commit: self.slow_commit,
            }) as Box<dyn PieceWriter>)
        })
    }
    fn read<'a>(&'a self, _: PieceId, _: u64, _: u64) -> BoxFuture<'a, Result<Bytes, NodeError>> {
        Box::pin(async move {
            Err(NodeError::NotFound {
                node: self.id.clone(),
            })
        })
    }
    fn delete<'a>(&'a self, _: PieceId) -> BoxFuture<'a, Result<(), NodeError>> {
        Box::pin(async { Ok(()) })
    }
    fn list<'a>(
        &'a self,
        _: Option<PieceId>,
        _: usize,
    ) -> BoxFuture<'a, Result<Vec<PieceId>, NodeError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

fn transfers(dir: &std::path::Path, good: usize, bad: BadNode) -> Arc<Transfers> {
    transfers_with(dir, good, bad, LimitsConfig::default().max_connections)
}

fn transfers_with(
    dir: &std::path::Path,
    good: usize,
    bad: BadNode,
    max_connections: usize,
) -> Arc<Transfers> {
    let mut specs: Vec<NodeSpec> = (0..good)
        .map(|i| {
            let id = format!("g{i}");
            let store = Arc::new(DirNode::open(&id, &dir.join(&id), true).unwrap());
            NodeSpec {
                store,
                kind: "dir".into(),
                label: None,
                domain: format!("node:{id}"),
                offline: None,
            }
        })
        .collect();
    specs.push(NodeSpec {
        domain: format!("node:{}", bad.id),
        store: Arc::new(bad),
        kind: "test".into(),
        label: None,
        offline: None,
    });
    let limits = LimitsConfig {
        long_tail_grace: Duration::from_millis(100),
        stall_timeout: Duration::from_millis(300),
        max_connections,
        ..LimitsConfig::default()
    };
    Transfers::new(
        &crate::crypto::RootKey::generate().unwrap(),
        specs,
        limits,
        None,
        Arc::new(crate::metrics::Metrics::new()),
    )
}

async fn upload(t: &Arc<Transfers>, n: usize, success: usize, seg: u32) -> UploadedSegment {
    let mut up = SegmentUpload::start(
        t,
        [7; 16],
        seg,
        n,
        Target::exact(success),
        Bytes::from_static(b"HDR"),
    )
    .await
    .unwrap();
    for round in 0..12u8 {
        up.send(vec![vec![round; 1000]; n]).await.unwrap();
    }
    up.finish().await.unwrap()
}

#[tokio::test]
async fn a_refusing_node_is_replaced_by_a_spare() {
    let dir = tempfile::tempdir().unwrap();
    let bad = BadNode {
        id: "full".into(),
        refuse: true,
        slow_commit: false,
    };
    let t = transfers(dir.path(), 4, bad);
    // Four of five nodes per segment: the refusing node is chosen in most segments at first,
    // then backed off and chosen last.
    for seg in 0..8 {
        let out = upload(&t, 4, 4, seg).await;
        assert_eq!(out.pieces.len(), 4);
        assert!(
            out.pieces.iter().all(|p| p.node != "full"),
            "{:?}",
            out.pieces
        );
        assert_eq!(out.long_tail_bytes, 0, "a refused create sends nothing");
        assert_eq!(out.encoded_bytes, 4 * (3 + 12 * 1000));
    }
    let snap = t.metrics().snapshot();
    let full = &snap.nodes["full"];
    assert!(full.requests_error >= 1, "{full:?}");
    assert_eq!(
        snap.node_sent_for(Reason::Upload),
        8 * 4 * (3 + 12 * 1000),
        "kept pieces count as upload"
    );
    let view = t.node_views().into_iter().find(|v| v.id == "full").unwrap();
    assert_ne!(view.health.rank, health::Rank::Healthy);
}

#[tokio::test]
async fn a_stuck_node_is_left_behind_as_long_tail() {
    let dir = tempfile::tempdir().unwrap();
    let bad = BadNode {
        id: "stuck".into(),
        refuse: false,
        slow_commit: false,
    };
    let t = transfers(dir.path(), 4, bad);
    // All five nodes, success four: the stuck one never finishes.
    let out = tokio::time::timeout(Duration::from_secs(20), upload(&t, 5, 4, 0))
        .await
        .expect("the upload waited for the stuck node");
    assert_eq!(out.pieces.len(), 4);
    assert!(out.pieces.iter().all(|p| p.node != "stuck"));
    // It took the header; everything it was sent is waste.
    assert!(out.long_tail_bytes >= 3, "{out:?}");
    assert_eq!(out.uploaded_bytes, out.encoded_bytes + out.long_tail_bytes);
    // The abandoned writer's bytes reach the metrics once it is cleaned up.
    let settled = async {
        loop {
            if t.metrics().snapshot().node_sent_for(Reason::LongTail) >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), settled)
        .await
        .expect("long tail bytes counted");
    // Connections are all given back.
    let settled = async {
        while t.node_views().iter().any(|v| v.connections_in_use > 0) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), settled)
        .await
        .expect("connection slots returned");
}

#[tokio::test]
async fn too_few_nodes_fail_with_every_cause() {
    let dir = tempfile::tempdir().unwrap();
    let bad = BadNode {
        id: "full".into(),
        refuse: true,
        slow_commit: false,
    };
    let t = transfers(dir.path(), 3, bad);
    // Four pieces on four nodes, one of which refuses: no spare, success unreachable.
    let mut up = SegmentUpload::start(
        &t,
        [1; 16],
        0,
        4,
        Target::exact(4),
        Bytes::from_static(b"H"),
    )
    .await
    .unwrap();
    let mut err = None;
    for _ in 0..8 {
        if let Err(e) = up.send(vec![vec![1; 100]; 4]).await {
            err = Some(e);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let err = match err {
        Some(e) => e,
        None => up.finish().await.unwrap_err(),
    };
    let msg = err.to_string();
    assert!(
        msg.contains("full") && msg.contains("no spare node left"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_commit_left_to_land_keeps_its_connection_slot() {
    let dir = tempfile::tempdir().unwrap();
    let bad = BadNode {
        id: "slow".into(),
        refuse: false,
        slow_commit: true,
    };
    // Five slots for five nodes; success four.
    let t = transfers_with(dir.path(), 4, bad, 5);
    for seg in 0..3 {
        let out = upload(&t, 5, 4, seg).await;
        assert_eq!(out.pieces.len(), 4);
        // The slow node's commit is still running (its writer holds a slot), so the next
        // segment gets four slots, not five: the limit holds.
        assert!(
            t.metrics().peak_connections() <= 5,
            "peak {}",
            t.metrics().peak_connections()
        );
    }
}

#[tokio::test]
async fn pieces_respect_the_failure_domain_cap() {
    let dir = tempfile::tempdir().unwrap();
    // Six nodes in three racks; at most one piece per rack.
    let specs = (0..6)
        .map(|i| {
            let id = format!("d{i}");
            NodeSpec {
                store: Arc::new(DirNode::open(&id, &dir.path().join(&id), true).unwrap()),
                kind: "dir".into(),
                label: Some(format!("rack{}", i / 2)),
                domain: format!("domain:rack{}", i / 2),
                offline: None,
            }
        })
        .collect();
    let t = Transfers::new(
        &crate::crypto::RootKey::generate().unwrap(),
        specs,
        LimitsConfig::default(),
        Some(1),
        Arc::new(crate::metrics::Metrics::new()),
    );
    for seg in 0..10 {
        // Five pieces wanted, but only three racks: three pieces, one per rack.
        let out = upload(&t, 5, 3, seg).await;
        let mut racks: Vec<char> = out
            .pieces
            .iter()
            .map(|p| {
                let i: usize = p.node[1..].parse().unwrap();
                char::from(b'0' + (i / 2) as u8)
            })
            .collect();
        racks.sort_unstable();
        assert_eq!(racks, ['0', '1', '2'], "{:?}", out.pieces);
    }
    // Asking for more successes than racks fails up front, naming the limit.
    let err = SegmentUpload::start(
        &t,
        [3; 16],
        0,
        5,
        Target::exact(4),
        Bytes::from_static(b"H"),
    )
    .await
    .err()
    .expect("four pieces in three racks");
    assert!(err.to_string().contains("failure-domain"), "{err}");
}

#[tokio::test]
async fn upload_memory_is_reserved_fairly_and_bounded_in_wait_and_depth() {
    let limits = LimitsConfig {
        memory: 16 << 20,
        queue_depth: 2,
        queue_wait: Duration::from_millis(300),
        ..LimitsConfig::default()
    };
    let t = without_nodes(limits);
    // More than the budget takes all of it.
    let all = t.reserve_memory(64 << 20).await.unwrap();
    // The next one waits, then is told to come back later.
    let started = std::time::Instant::now();
    let e = t.reserve_memory(1 << 20).await.err().unwrap();
    assert!(matches!(e, TransferError::Busy(_)), "{e}");
    assert!(started.elapsed() >= Duration::from_millis(250));
    // Waiters beyond the queue's depth are refused at once.
    let (t1, t2) = (t.clone(), t.clone());
    let w1 = tokio::spawn(async move { t1.reserve_memory(8 << 20).await.map(|_| ()) });
    let w2 = tokio::spawn(async move { t2.reserve_memory(8 << 20).await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    let e = t.reserve_memory(1 << 20).await.err().unwrap();
    assert!(matches!(e, TransferError::Busy(_)), "{e}");
    assert!(started.elapsed() < Duration::from_millis(100));
    // Freed memory goes to the waiters (two halves of the budget).
    drop(all);
    w1.await.unwrap().unwrap();
    w2.await.unwrap().unwrap();
}

/// A queue that moves is waited through, however long past `queue_wait`; one that stands
/// still for `queue_wait` is refused. (Paused clock: the timings are exact.)
#[tokio::test(start_paused = true)]
async fn a_moving_memory_queue_is_waited_through() {
    let limits = LimitsConfig {
        memory: 16 << 20,
        queue_wait: Duration::from_millis(300),
        ..LimitsConfig::default()
    };
    let t = without_nodes(limits);
    let r1 = t.reserve_memory(8 << 20).await.unwrap();
    let r2 = t.reserve_memory(8 << 20).await.unwrap();
    let t1 = t.clone();
    let started = tokio::time::Instant::now();
    let whole = tokio::spawn(async move { t1.reserve_memory(16 << 20).await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(r1);
    tokio::time::sleep(Duration::from_millis(250)).await;
    drop(r2);
    whole.await.unwrap().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(450));
    // Standing still: refused after `queue_wait`.
    let _all = t.reserve_memory(16 << 20).await.unwrap();
    let started = tokio::time::Instant::now();
    let e = t.reserve_memory(1 << 20).await.err().unwrap();
    assert!(matches!(e, TransferError::Busy(_)), "{e}");
    assert_eq!(started.elapsed(), Duration::from_millis(300));
}

/// Transfers over no nodes: the memory budget and its queue alone.
fn without_nodes(limits: LimitsConfig) -> Arc<Transfers> {
    Transfers::new(
        &crate::crypto::RootKey::generate().unwrap(),
        Vec::new(),
        limits,
        None,
        Arc::new(crate::metrics::Metrics::new()),
    )
}
