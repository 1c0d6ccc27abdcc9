//! Downloading a range of stripes of one segment, every chunk verified on its own.
//!
//! Each chunk carries its own MAC, so a chunk that fails it is an erasure of its stripe only:
//! the piece's other chunks are still used, and a group of stripes is read once every stripe
//! has `k` good chunks among the pieces read (not necessarily from the same pieces).
//!
//! Candidates are the segment's pieces whose reads have not failed outright, data pieces
//! first (when all of them verify, nothing needs decoding) and pieces on backed-off nodes
//! last. `k + limits.download_extra` reads start at once; each read waits for a connection
//! slot and the download rate. Whenever the finished reads plus those in flight can no longer
//! give some stripe `k` good chunks (a read failed, or some of its chunks failed their MACs),
//! the next candidate starts and reads the whole group. A read that fails outright (piece
//! missing or short, node error) excludes its piece for the rest of the segment
//! ([`SegmentReads`]); a piece with bad chunks stays a candidate for the segment's later
//! groups. When nothing finished for `limits.stall_timeout`, one more candidate starts beside
//! the slow ones (stall detection). As soon as every stripe has `k` good chunks the other
//! reads are cancelled.
//!
//! Faults of stored pieces ([`PieceFault`]: a piece its node does not have, a chunk or header
//! that fails verification, a piece shorter than its layout) are collected once per piece per
//! segment read in [`SegmentReads`], for the object layer to record. A node that is
//! unreachable or fails is a matter of its health, not a fault of the piece.
//!
//! [`Transfers::check_piece_range`] reads and verifies one piece's range with the same code
//! (connection slot, download rate, health and byte accounting included), for the audit.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;

use super::health::Rank;
use super::TransferError;
use super::Transfers;
use crate::erasure::piece::verify_record;
use crate::erasure::{Layout, PieceHeader, PIECE_HEADER_LEN};
use crate::meta::PieceRecord;
use crate::metrics::{NodeOp, Reason};
use crate::nodes::NodeError;

/// What is wrong with a stored piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// Its node answered that it does not have the piece.
    Missing,
    /// A chunk failed its MAC, the header did not decode or disagreed with the metadata, or
    /// the piece is shorter than its layout.
    Corrupt,
}

/// A piece a read found faulty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceFault {
    pub number: u16,
    /// The node holding it.
    pub node: String,
    pub kind: FaultKind,
}

/// What the reads of one segment learned so far, carried from one group of stripes to the
/// next.
#[derive(Debug, Default)]
pub struct SegmentReads {
    /// Pieces whose read failed outright: not tried again in this segment.
    excluded: HashSet<u16>,
    /// At most one per piece, in the order they were found.
    faults: Vec<PieceFault>,
}

impl SegmentReads {
    pub fn new() -> SegmentReads {
        SegmentReads::default()
    }

    /// Pieces left out of the segment's later groups because their read failed outright.
    pub fn excluded(&self) -> &HashSet<u16> {
        &self.excluded
    }

    /// The faulty pieces found so far, each once.
    pub fn faults(&self) -> &[PieceFault] {
        &self.faults
    }

    pub fn take_faults(&mut self) -> Vec<PieceFault> {
        std::mem::take(&mut self.faults)
    }

    fn fault(&mut self, number: u16, node: &str, kind: FaultKind) {
        if !self.faults.iter().any(|f| f.number == number) {
            self.faults.push(PieceFault {
                number,
                node: node.to_string(),
                kind,
            });
        }
    }
}

/// One piece's chunks of a group of stripes.
struct PieceChunks {
    number: u16,
    /// The chunk of every stripe, concatenated; a chunk that failed verification is zeroed.
    data: Vec<u8>,
    /// Per stripe: whether its chunk verified.
    good: Vec<bool>,
    /// What failed verification, if anything.
    damage: Option<String>,
}

/// Verified chunks of a group of stripes, enough for every stripe to have `k` good ones.
pub struct Stripes {
    k: usize,
    chunk_size: usize,
    count: usize,
    /// Ascending piece number.
    pieces: Vec<PieceChunks>,
}

impl Stripes {
    /// Stripes in the group.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The numbers of the pieces read, ascending.
    pub fn piece_numbers(&self) -> Vec<u16> {
        self.pieces.iter().map(|p| p.number).collect()
    }

    /// Sets `out` to `k` good chunks of stripe `s` (0-based within the group) as (piece
    /// number, chunk) pairs, lowest piece numbers first: the data chunks whenever they are
    /// all good, so a stripe is decoded only when one of them is not.
    pub fn chunks_of<'a>(&'a self, s: usize, out: &mut Vec<(usize, &'a [u8])>) {
        out.clear();
        let cs = self.chunk_size;
        for p in &self.pieces {
            if out.len() == self.k {
                break;
            }
            if p.good[s] {
                out.push((usize::from(p.number), &p.data[s * cs..(s + 1) * cs]));
            }
        }
    }
}

/// A piece read that yielded nothing usable.
struct ReadFailure {
    fault: Option<FaultKind>,
    cause: String,
    /// No connection slot came free in time: the gateway is overloaded, nothing is known
    /// of the piece or its node.
    busy: bool,
}

impl From<NodeError> for ReadFailure {
    fn from(e: NodeError) -> Self {
        let fault = match e {
            NodeError::NotFound { .. } => Some(FaultKind::Missing),
            NodeError::ShortRead { .. } => Some(FaultKind::Corrupt),
            _ => None,
        };
        ReadFailure {
            fault,
            cause: e.to_string(),
            busy: false,
        }
    }
}

/// What to fetch: stripes of one stored segment.
pub struct Fetch<'a> {
    pub stream: [u8; 16],
    pub segment: u32,
    pub layout: Layout,
    pub pieces: &'a [PieceRecord],
    pub mac_key: Arc<[u8; 32]>,
    /// Reads feeding an upload (a copy) that already holds connection slots: they take no
    /// slot, so the two cannot wait on each other. At most `k + download_extra` plus the
    /// stall hedges per copy in flight.
    pub exempt: bool,
    /// What the bytes read count as in the node metrics (`download`, or `repair`).
    pub reason: Reason,
}

/// The bytes of a piece that hold stripes `[g0, g1]`, as `(offset, len)`; from stripe 0 the
/// header is included (and verified with the chunks).
pub fn piece_range(layout: &Layout, g0: u64, g1: u64) -> (u64, u64) {
    let records = (g1 - g0 + 1) * layout.record_len();
    if g0 == 0 {
        (0, PIECE_HEADER_LEN as u64 + records)
    } else {
        (layout.record_offset(g0), records)
    }
}

/// What a verifying read of one piece's range found ([`Transfers::check_piece_range`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeCheck {
    /// Every chunk of the range, and the header when read, verified.
    Good,
    /// The piece is faulty: its node does not have it, it is short, or a chunk or its header
    /// failed verification.
    Faulty { kind: FaultKind, cause: String },
    /// The node failed or could not be reached: nothing was learnt about the piece.
    NodeFailed(String),
}

impl Transfers {
    /// Reads stripes `[g0, g1]` of piece `number` of `f`'s segment from node `node` and
    /// verifies them exactly as a download does, within the same connection limits, download
    /// rate and health accounting; bytes count under `f.reason`. For the audit's sampled reads.
    pub(crate) async fn check_piece_range(
        &self,
        f: &Fetch<'_>,
        node: usize,
        number: u16,
        g0: u64,
        g1: u64,
    ) -> RangeCheck {
        let read = self
            .fetch_piece(
                node,
                f.stream,
                f.segment,
                f.layout,
                number,
                g0,
                g1,
                f.mac_key.clone(),
                f.exempt,
                f.reason,
            )
            .await;
        match read {
            Ok(PieceChunks { damage: None, .. }) => RangeCheck::Good,
            Ok(PieceChunks {
                damage: Some(cause),
                ..
            }) => RangeCheck::Faulty {
                kind: FaultKind::Corrupt,
                cause,
            },
            Err(ReadFailure {
                fault: Some(kind),
                cause,
                ..
            }) => RangeCheck::Faulty { kind, cause },
            Err(ReadFailure {
                fault: None, cause, ..
            }) => RangeCheck::NodeFailed(cause),
        }
    }

    /// Fetches stripes `[g0, g1]` and verifies every chunk, reading pieces until each stripe
    /// has `k` good chunks. Pieces whose read fails outright are added to `reads`' excluded
    /// set, faulty pieces to its faults.
    pub async fn fetch_stripes(
        self: &Arc<Self>,
        f: &Fetch<'_>,
        g0: u64,
        g1: u64,
        reads: &mut SegmentReads,
    ) -> Result<Stripes, TransferError> {
        let k = f.layout.k;
        let count = (g1 - g0 + 1) as usize;
        let mut causes = Vec::new();
        let mut candidates = Vec::new();
        for p in f
            .pieces
            .iter()
            .filter(|p| !reads.excluded.contains(&p.number))
        {
            match self.index_of(&p.node) {
                Some(i) => candidates.push((i, p.number, p.state.is_ok())),
                None => causes.push(format!("piece {} on unknown node {}", p.number, p.node)),
            }
        }
        // Pieces known bad (missing, corrupt, lost) last: tried only if the others fall short.
        candidates.sort_by_key(|&(i, number, ok)| {
            (!ok, self.node(i).health.rank() >= Rank::Backoff, number)
        });
        let mut candidates = candidates.into_iter().map(|(i, number, _)| (i, number));
        let mut running = JoinSet::new();
        let mut start_next = |running: &mut JoinSet<_>| {
            let Some((node, number)) = candidates.next() else {
                return false;
            };
            let t = self.clone();
            let layout = f.layout;
            let mac_key = f.mac_key.clone();
            let (stream, segment, exempt, reason) = (f.stream, f.segment, f.exempt, f.reason);
            running.spawn(async move {
                let r = t
                    .fetch_piece(
                        node, stream, segment, layout, number, g0, g1, mac_key, exempt, reason,
                    )
                    .await;
                (number, node, r)
            });
            true
        };
        for _ in 0..k + self.limits.download_extra {
            if !start_next(&mut running) {
                break;
            }
        }
        // Good chunks per stripe among the pieces read.
        let mut have = vec![0usize; count];
        // Reads that found no connection slot in time.
        let mut busy = 0usize;
        let mut got: Vec<PieceChunks> = Vec::with_capacity(k);
        let stall = self.limits.stall_timeout;
        let mut stall_at = tokio::time::Instant::now() + stall;
        loop {
            tokio::select! {
                done = running.join_next() => {
                    let Some(done) = done else { break };
                    let (number, node, result) =
                        done.map_err(|e| TransferError::Internal(e.to_string()))?;
                    let node = self.node(node).id();
                    match result {
                        Ok(chunks) => {
                            if let Some(damage) = &chunks.damage {
                                tracing::warn!(node, piece = number, segment = f.segment, %damage, "piece damaged; its bad chunks are erasures");
                                causes.push(format!("piece {number} on node {node}: {damage}"));
                                reads.fault(number, node, FaultKind::Corrupt);
                            }
                            for (h, &good) in have.iter_mut().zip(&chunks.good) {
                                *h += usize::from(good);
                            }
                            got.push(chunks);
                            if have.iter().all(|&h| h >= k) {
                                running.abort_all();
                                got.sort_by_key(|p| p.number);
                                return Ok(Stripes {
                                    k,
                                    chunk_size: f.layout.chunk_size,
                                    count,
                                    pieces: got,
                                });
                            }
                        }
                        Err(failure) if failure.busy => {
                            // Overload, not a fault: the piece is not excluded from the
                            // segment's later groups.
                            busy += 1;
                            causes.push(format!("piece {number} on node {node}: {}", failure.cause));
                        }
                        Err(failure) => {
                            let cause = failure.cause;
                            tracing::warn!(node, piece = number, segment = f.segment, %cause, "piece unusable, trying another");
                            causes.push(format!("piece {number} on node {node}: {cause}"));
                            reads.excluded.insert(number);
                            if let Some(kind) = failure.fault {
                                reads.fault(number, node, kind);
                            }
                        }
                    }
                    // Start reads until those in flight could give every stripe its `k`.
                    let short = have.iter().map(|&h| k.saturating_sub(h)).max().unwrap_or(0);
                    while running.len() < short && start_next(&mut running) {}
                    stall_at = tokio::time::Instant::now() + stall;
                }
                _ = tokio::time::sleep_until(stall_at) => {
                    if start_next(&mut running) {
                        tracing::debug!(segment = f.segment, "piece reads stalled; starting another");
                    }
                    stall_at = tokio::time::Instant::now() + stall;
                }
            }
        }
        let (worst, fewest) = have
            .iter()
            .enumerate()
            .min_by_key(|&(_, &h)| h)
            .map_or((0, 0), |(s, &h)| (s, h));
        // Overload only when the reads that waited in vain could have made up the shortfall;
        // pieces really missing or corrupt beyond that are reported as such.
        if busy > 0 && busy >= k.saturating_sub(fewest) {
            return Err(TransferError::Busy(format!(
                "reading stripe {}: {}",
                g0 + worst as u64,
                causes.join("; ")
            )));
        }
        Err(TransferError::NotEnoughPieces {
            segment: f.segment,
            causes: format!(
                "stripe {}: {} of {} needed chunks intact; {}",
                g0 + worst as u64,
                fewest,
                k,
                causes.join("; ")
            ),
        })
    }

    /// Reads stripes `[g0, g1]` of one piece and verifies every chunk MAC (and the header when
    /// the range starts at stripe 0). Chunks that fail are marked bad, the others kept; a
    /// damaged header is reported but does not discard the chunks (each verifies on its own).
    #[allow(clippy::too_many_arguments)]
    async fn fetch_piece(
        &self,
        node: usize,
        stream: [u8; 16],
        segment: u32,
        layout: Layout,
        number: u16,
        g0: u64,
        g1: u64,
        mac_key: Arc<[u8; 32]>,
        exempt: bool,
        reason: Reason,
    ) -> Result<PieceChunks, ReadFailure> {
        let rl = layout.record_len();
        let with_header = g0 == 0;
        let (offset, len) = piece_range(&layout, g0, g1);
        let id = self.piece_id(node, &stream, segment, number);
        let conn = if exempt {
            self.connect_exempt(node)
        } else {
            let wait = self.limits.queue_wait;
            match tokio::time::timeout(wait, self.connect(node)).await {
                Ok(conn) => conn?,
                Err(_) => {
                    return Err(ReadFailure {
                        fault: None,
                        cause: format!("no connection slot free within {wait:?}"),
                        busy: true,
                    })
                }
            }
        };
        self.pace_down(len).await;
        let started = Instant::now();
        let r = self.node(node).store.read(id, offset, len).await;
        self.record(node, NodeOp::Get, started, r.as_ref().map(|_| ()));
        drop(conn);
        let bytes = r?;
        self.metrics
            .node_received(self.node(node).id(), reason, bytes.len() as u64);
        if bytes.len() as u64 != len {
            return Err(ReadFailure {
                fault: Some(FaultKind::Corrupt),
                cause: format!("read {} of {len} bytes", bytes.len()),
                busy: false,
            });
        }
        tokio::task::spawn_blocking(move || {
            // The chunks are compacted in place (each record's MAC dropped), so a read holds
            // one buffer, not two.
            let mut data = Vec::from(bytes);
            let mut damage = Vec::new();
            let mut at = 0;
            if with_header {
                match PieceHeader::decode(&data) {
                    Ok(h) if h.chunk_size as usize == layout.chunk_size => {}
                    Ok(_) => damage.push("piece header disagrees with metadata".to_string()),
                    Err(e) => damage.push(e.to_string()),
                }
                at = PIECE_HEADER_LEN;
            }
            let (cs, rl) = (layout.chunk_size, rl as usize);
            let count = (g1 - g0 + 1) as usize;
            let mut good = Vec::with_capacity(count);
            let mut bad_stripes = Vec::new();
            for i in 0..count {
                let stripe = g0 + i as u64;
                let rec = at + i * rl;
                // `i * cs` never reaches past `rec`, nor its chunk past the next record.
                if verify_record(&mac_key, number, stripe, &data[rec..rec + rl]) {
                    data.copy_within(rec..rec + cs, i * cs);
                    good.push(true);
                } else {
                    data[i * cs..(i + 1) * cs].fill(0);
                    good.push(false);
                    bad_stripes.push(stripe.to_string());
                }
            }
            data.truncate(count * cs);
            match bad_stripes.len() {
                0 => {}
                1 => damage.push(format!(
                    "chunk of stripe {} failed verification",
                    bad_stripes[0]
                )),
                _ => damage.push(format!(
                    "chunks of stripes {} failed verification",
                    bad_stripes.join(", ")
                )),
            }
            PieceChunks {
                number,
                data,
                good,
                damage: (!damage.is_empty()).then(|| damage.join("; ")),
            }
        })
        .await
        .map_err(|e| ReadFailure {
            fault: None,
            cause: e.to_string(),
            busy: false,
        })
    }
}

#[cfg(test)]
mod tests;
