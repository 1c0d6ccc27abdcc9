//! Per-stripe erasures on read, with in-memory nodes holding one piece each: bad chunks are
//! erasures of their stripe only, a piece with bad chunks keeps serving its good ones, reads
//! fail only when a stripe lacks `k` good chunks, and faults are collected once per piece.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::config::LimitsConfig;
use crate::erasure::{StripeDecoder, StripeEncoder};
use crate::nodes::{BoxFuture, NodeStore, PieceId, PieceWriter};
use crate::transfer::NodeSpec;

const STREAM: [u8; 16] = [5; 16];
const SEGMENT: u32 = 3;
const MAC_KEY: [u8; 32] = [8; 32];
const K: usize = 4;
const N: usize = 6;
const CHUNK: usize = 64;
const STRIPES: usize = 8;

/// A node holding pieces in memory; it can be down or hang, and counts the reads it served.
#[derive(Default)]
struct MemNode {
    id: String,
    pieces: Mutex<HashMap<PieceId, Vec<u8>>>,
    down: AtomicBool,
    hang: AtomicBool,
    reads: AtomicUsize,
}

impl MemNode {
    fn piece(&self) -> std::sync::MutexGuard<'_, HashMap<PieceId, Vec<u8>>> {
        self.pieces.lock().unwrap()
    }
    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

impl NodeStore for MemNode {
    fn id(&self) -> &str {
        &self.id
    }
    fn create<'a>(&'a self, _: PieceId) -> BoxFuture<'a, Result<Box<dyn PieceWriter>, NodeError>> {
        Box::pin(async move {
            Err(NodeError::Refused {
                node: self.id.clone(),
                reason: "read-only test node".into(),
            })
        })
    }
    fn read<'a>(
        &'a self,
        piece: PieceId,
        offset: u64,
        len: u64,
    ) -> BoxFuture<'a, Result<Bytes, NodeError>> {
        Box::pin(async move {
            self.reads.fetch_add(1, Ordering::SeqCst);
            if self.hang.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            if self.down.load(Ordering::SeqCst) {
                return Err(NodeError::Unavailable {
                    node: self.id.clone(),
                    reason: "down".into(),
                });
            }
            let pieces = self.piece();
            let Some(p) = pieces.get(&piece) else {
                return Err(NodeError::NotFound {
                    node: self.id.clone(),
                });
            };
            let (a, b) = (offset as usize, (offset + len) as usize);
            if b > p.len() {
                return Err(NodeError::ShortRead {
                    node: self.id.clone(),
                });
            }
            Ok(Bytes::copy_from_slice(&p[a..b]))
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

/// Six nodes, node `i` holding piece `i` of one segment of `STRIPES` full stripes.
struct Fixture {
    t: Arc<Transfers>,
    nodes: Vec<Arc<MemNode>>,
    records: Vec<PieceRecord>,
    layout: Layout,
    /// The segment's ciphertext.
    data: Vec<u8>,
}

impl Fixture {
    fn new() -> Fixture {
        let layout = Layout {
            k: K,
            n: N,
            chunk_size: CHUNK,
            cipher_len: (STRIPES * K * CHUNK) as u64,
        };
        let data: Vec<u8> = (0..layout.cipher_len as usize)
            .map(|i| (i * 31 + i / 253) as u8)
            .collect();
        let mut enc = StripeEncoder::new(layout, MAC_KEY).unwrap();
        let header = PieceHeader {
            chunk_size: CHUNK as u32,
        }
        .encode();
        let mut pieces = vec![header.to_vec(); N];
        for (s, stripe) in data.chunks(K * CHUNK).enumerate() {
            enc.encode(s as u64, stripe, &mut pieces).unwrap();
        }
        let nodes: Vec<Arc<MemNode>> = (0..N)
            .map(|i| {
                Arc::new(MemNode {
                    id: format!("m{i}"),
                    ..MemNode::default()
                })
            })
            .collect();
        let specs = nodes
            .iter()
            .map(|n| NodeSpec {
                store: n.clone(),
                kind: "test".into(),
                label: None,
                domain: format!("node:{}", n.id),
                offline: None,
            })
            .collect();
        let limits = LimitsConfig {
            stall_timeout: Duration::from_millis(200),
            ..LimitsConfig::default()
        };
        let t = Transfers::new(
            &crate::crypto::RootKey::generate().unwrap(),
            specs,
            limits,
            None,
            Arc::new(crate::metrics::Metrics::new()),
        );
        for (i, piece) in pieces.into_iter().enumerate() {
            let id = t.piece_id(i, &STREAM, SEGMENT, i as u16);
            nodes[i].piece().insert(id, piece);
        }
        let records = (0..N)
            .map(|i| PieceRecord::new(i as u16, format!("m{i}")))
            .collect();
        Fixture {
            t,
            nodes,
            records,
            layout,
            data,
        }
    }

    fn piece_id(&self, number: usize) -> PieceId {
        self.t.piece_id(number, &STREAM, SEGMENT, number as u16)
    }

    /// Inverts byte `i` of the chunk data of `stripe` in piece `number`.
    fn corrupt_chunk(&self, number: usize, stripe: u64, i: usize) {
        let at = (self.layout.record_offset(stripe) as usize) + i;
        self.corrupt_at(number, at);
    }

    fn corrupt_at(&self, number: usize, at: usize) {
        let id = self.piece_id(number);
        self.nodes[number].piece().get_mut(&id).unwrap()[at] ^= 0xff;
    }

    fn remove(&self, number: usize) {
        let id = self.piece_id(number);
        self.nodes[number].piece().remove(&id);
    }

    fn truncate(&self, number: usize, len: usize) {
        let id = self.piece_id(number);
        self.nodes[number]
            .piece()
            .get_mut(&id)
            .unwrap()
            .truncate(len);
    }

    fn fetch(&self) -> Fetch<'_> {
        Fetch {
            stream: STREAM,
            segment: SEGMENT,
            layout: self.layout,
            pieces: &self.records,
            mac_key: Arc::new(MAC_KEY),
            exempt: false,
            reason: crate::metrics::Reason::Download,
        }
    }

    async fn read(
        &self,
        g0: u64,
        g1: u64,
        reads: &mut SegmentReads,
    ) -> Result<Stripes, TransferError> {
        let f = self.fetch();
        tokio::time::timeout(
            Duration::from_secs(20),
            self.t.fetch_stripes(&f, g0, g1, reads),
        )
        .await
        .expect("fetch_stripes finished")
    }

    /// Decodes every stripe of `got` (stripes `[g0, ..]`) and checks it against the data;
    /// returns the stripes (0-based within the group) that needed decoding.
    fn check(&self, g0: u64, got: &Stripes) -> Vec<usize> {
        let sb = K * CHUNK;
        let mut decoder = StripeDecoder::new(self.layout);
        let mut chunks = Vec::new();
        let mut decoded = Vec::new();
        for s in 0..got.count() {
            got.chunks_of(s, &mut chunks);
            assert_eq!(chunks.len(), K, "stripe {s}");
            if chunks.iter().any(|&(p, _)| p >= K) {
                decoded.push(s);
            }
            let mut out = Vec::new();
            decoder.decode(&chunks, &mut out).unwrap();
            let at = (g0 as usize + s) * sb;
            assert!(
                out == self.data[at..at + sb],
                "stripe {} differs",
                g0 as usize + s
            );
        }
        decoded
    }
}

fn faults(reads: &SegmentReads) -> Vec<(u16, &str, FaultKind)> {
    let mut out: Vec<_> = reads
        .faults()
        .iter()
        .map(|f| (f.number, f.node.as_str(), f.kind))
        .collect();
    out.sort_by_key(|f| f.0);
    out
}

#[tokio::test]
async fn intact_data_pieces_are_read_alone_and_nothing_is_decoded() {
    let fx = Fixture::new();
    let mut reads = SegmentReads::new();
    let got = fx.read(0, STRIPES as u64 - 1, &mut reads).await.unwrap();
    assert_eq!(got.piece_numbers(), [0, 1, 2, 3]);
    assert!(fx.check(0, &got).is_empty());
    assert!(reads.faults().is_empty() && reads.excluded().is_empty());
    let read: Vec<usize> = fx.nodes.iter().map(|n| n.reads()).collect();
    assert_eq!(read, [1, 1, 1, 1, 0, 0]);
}

#[tokio::test]
async fn bad_chunks_in_three_pieces_are_erasures_of_their_stripes_only() {
    let fx = Fixture::new();
    // Three pieces, three stripes: every stripe keeps five good chunks of six, although only
    // three pieces are intact.
    fx.corrupt_chunk(0, 1, 0);
    fx.corrupt_chunk(2, 4, CHUNK - 1);
    fx.corrupt_chunk(5, 6, 17);
    let mut reads = SegmentReads::new();
    let got = fx.read(0, STRIPES as u64 - 1, &mut reads).await.unwrap();
    // Data pieces first; one parity piece makes up for the two bad data chunks.
    assert_eq!(got.piece_numbers(), [0, 1, 2, 3, 4]);
    // Only the damaged stripes are decoded, each from its own subset.
    assert_eq!(fx.check(0, &got), [1, 4]);
    assert_eq!(
        faults(&reads),
        [(0, "m0", FaultKind::Corrupt), (2, "m2", FaultKind::Corrupt)]
    );
    assert!(reads.excluded().is_empty(), "{:?}", reads.excluded());

    // With piece 4 gone, piece 5 (bad only in stripe 6) stands in, and is reported too.
    fx.remove(4);
    let mut reads = SegmentReads::new();
    let got = fx.read(0, STRIPES as u64 - 1, &mut reads).await.unwrap();
    assert_eq!(got.piece_numbers(), [0, 1, 2, 3, 5]);
    assert_eq!(fx.check(0, &got), [1, 4]);
    assert_eq!(
        faults(&reads),
        [
            (0, "m0", FaultKind::Corrupt),
            (2, "m2", FaultKind::Corrupt),
            (4, "m4", FaultKind::Missing),
            (5, "m5", FaultKind::Corrupt)
        ]
    );
    assert_eq!(reads.excluded().iter().copied().collect::<Vec<_>>(), [4]);
}

#[tokio::test]
async fn a_stripe_with_fewer_than_k_good_chunks_fails_the_group() {
    let fx = Fixture::new();
    // Stripe 2 keeps three good chunks; stripe 5 loses one.
    for number in [0, 3, 4] {
        fx.corrupt_chunk(number, 2, 9);
    }
    fx.corrupt_chunk(1, 5, 0);
    let mut reads = SegmentReads::new();
    let err = match fx.read(0, STRIPES as u64 - 1, &mut reads).await {
        Err(e) => e,
        Ok(_) => panic!("a stripe with three good chunks of six was read"),
    };
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            TransferError::NotEnoughPieces {
                segment: SEGMENT,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("stripe 2: 3 of 4 needed chunks intact"),
        "{msg}"
    );
    // Every piece was tried; each faulty one is reported once.
    assert!(fx.nodes.iter().all(|n| n.reads() == 1));
    assert_eq!(
        faults(&reads).iter().map(|f| f.0).collect::<Vec<_>>(),
        [0, 1, 3, 4]
    );
    // A group without the bad stripe still reads, pieces with bad chunks included.
    let mut reads = SegmentReads::new();
    let got = fx.read(6, 7, &mut reads).await.unwrap();
    assert_eq!(got.piece_numbers(), [0, 1, 2, 3]);
    assert!(fx.check(6, &got).is_empty());
    let got = fx.read(3, 5, &mut reads).await.unwrap();
    assert_eq!(fx.check(3, &got), [2]);
}

#[tokio::test]
async fn a_piece_with_a_bad_chunk_serves_later_groups_a_failed_piece_does_not() {
    let fx = Fixture::new();
    fx.corrupt_chunk(1, 0, 3);
    fx.corrupt_chunk(1, 6, 3);
    fx.truncate(2, fx.layout.record_offset(2) as usize);
    let mut reads = SegmentReads::new();
    // Group [0, 1]: piece 1 is bad in stripe 0, piece 2 is whole.
    let got = fx.read(0, 1, &mut reads).await.unwrap();
    assert_eq!(got.piece_numbers(), [0, 1, 2, 3, 4]);
    assert_eq!(fx.check(0, &got), [0]);
    // Group [2, 3]: piece 2 is short there (a whole-read failure), piece 1 is fine.
    let got = fx.read(2, 3, &mut reads).await.unwrap();
    assert_eq!(got.piece_numbers(), [0, 1, 3, 4]);
    assert_eq!(fx.check(2, &got), [0, 1]);
    assert_eq!(reads.excluded().iter().copied().collect::<Vec<_>>(), [2]);
    // Groups [4, 5] and [6, 7]: piece 2 is not tried again, piece 1 still is.
    let before = fx.nodes[2].reads();
    let got = fx.read(4, 5, &mut reads).await.unwrap();
    assert_eq!(got.piece_numbers(), [0, 1, 3, 4]);
    fx.check(4, &got);
    let got = fx.read(6, 7, &mut reads).await.unwrap();
    assert_eq!(got.piece_numbers(), [0, 1, 3, 4, 5]);
    assert_eq!(fx.check(6, &got), [0, 1]);
    assert_eq!(fx.nodes[2].reads(), before);
    assert_eq!(fx.nodes[1].reads(), 4);
    // Each faulty piece once for the whole segment, though piece 1 was bad in two groups.
    assert_eq!(
        faults(&reads),
        [(1, "m1", FaultKind::Corrupt), (2, "m2", FaultKind::Corrupt)]
    );
    assert_eq!(reads.take_faults().len(), 2);
    assert!(reads.faults().is_empty());
}

#[tokio::test]
async fn a_damaged_header_is_a_fault_but_its_good_chunks_are_used() {
    let fx = Fixture::new();
    fx.corrupt_at(3, 0);
    let mut reads = SegmentReads::new();
    let got = fx.read(0, 2, &mut reads).await.unwrap();
    assert_eq!(got.piece_numbers(), [0, 1, 2, 3]);
    assert!(fx.check(0, &got).is_empty());
    assert_eq!(faults(&reads), [(3, "m3", FaultKind::Corrupt)]);
    assert!(reads.excluded().is_empty());
}

#[tokio::test]
async fn an_unavailable_node_is_not_a_fault() {
    let fx = Fixture::new();
    fx.nodes[0].down.store(true, Ordering::SeqCst);
    fx.nodes[1].down.store(true, Ordering::SeqCst);
    let mut reads = SegmentReads::new();
    let got = fx.read(0, STRIPES as u64 - 1, &mut reads).await.unwrap();
    assert_eq!(got.piece_numbers(), [2, 3, 4, 5]);
    assert_eq!(fx.check(0, &got).len(), STRIPES);
    assert!(reads.faults().is_empty(), "{:?}", reads.faults());
    let mut excluded: Vec<u16> = reads.excluded().iter().copied().collect();
    excluded.sort_unstable();
    assert_eq!(excluded, [0, 1]);
    // A third one down leaves too few.
    fx.nodes[2].down.store(true, Ordering::SeqCst);
    assert!(fx.read(0, 0, &mut SegmentReads::new()).await.is_err());
}

#[tokio::test]
async fn a_hanging_read_is_hedged_after_the_stall_timeout() {
    let fx = Fixture::new();
    fx.nodes[1].hang.store(true, Ordering::SeqCst);
    fx.corrupt_chunk(0, 3, 0);
    let mut reads = SegmentReads::new();
    // Pieces 0, 2, 3 answer, piece 0 is bad in stripe 3: piece 4 starts at once; piece 1
    // never answers, so piece 5 starts after the stall timeout.
    let got = fx.read(0, STRIPES as u64 - 1, &mut reads).await.unwrap();
    assert_eq!(got.piece_numbers(), [0, 2, 3, 4, 5]);
    fx.check(0, &got);
    assert_eq!(faults(&reads), [(0, "m0", FaultKind::Corrupt)]);
}
