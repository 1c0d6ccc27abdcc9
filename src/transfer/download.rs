//! Downloading a range of stripes of one segment from `k` verified pieces.
//!
//! Candidates are the segment's pieces not yet found bad, data pieces first (with all of them
//! nothing needs decoding) and pieces on backed-off nodes last. `k + limits.download_extra`
//! reads start at once; each read waits for a connection slot and the download rate. A read
//! that fails, or whose chunks fail their MACs, marks its piece bad and starts the next
//! candidate; when nothing finished for `limits.stall_timeout`, one more candidate starts
//! beside the slow ones (stall detection). The first `k` verified pieces win; the other reads
//! are cancelled.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;

use super::health::Rank;
use super::Transfers;
use crate::erasure::piece::verify_record;
use crate::erasure::{Layout, PieceHeader, CHUNK_MAC_LEN, PIECE_HEADER_LEN};
use crate::meta::PieceRecord;
use crate::metrics::{NodeOp, Reason};
use crate::object::ObjectError;

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
}

impl Transfers {
    /// Fetches and verifies stripes `[g0, g1]` from `k` pieces; returns (piece number, chunk
    /// data of every stripe concatenated). Pieces that fail are added to `bad` and replaced.
    pub async fn fetch_stripes(
        self: &Arc<Self>,
        f: &Fetch<'_>,
        g0: u64,
        g1: u64,
        bad: &mut HashSet<u16>,
    ) -> Result<Vec<(u16, Vec<u8>)>, ObjectError> {
        let k = f.layout.k;
        let mut causes = Vec::new();
        let mut candidates = Vec::new();
        for p in f.pieces.iter().filter(|p| !bad.contains(&p.number)) {
            match self.index_of(&p.node) {
                Some(i) => candidates.push((i, p.number)),
                None => causes.push(format!("piece {} on unknown node {}", p.number, p.node)),
            }
        }
        candidates
            .sort_by_key(|&(i, number)| (self.slot(i).health.rank() >= Rank::Backoff, number));
        let mut candidates = candidates.into_iter();
        let mut running = JoinSet::new();
        let mut start_next = |running: &mut JoinSet<_>| {
            let Some((node, number)) = candidates.next() else {
                return false;
            };
            let t = self.clone();
            let layout = f.layout;
            let mac_key = f.mac_key.clone();
            let (stream, segment, exempt) = (f.stream, f.segment, f.exempt);
            running.spawn(async move {
                let r = t
                    .fetch_piece(
                        node, stream, segment, layout, number, g0, g1, mac_key, exempt,
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
        let mut good = Vec::with_capacity(k);
        let stall = self.limits.stall_timeout;
        let mut stall_at = tokio::time::Instant::now() + stall;
        loop {
            tokio::select! {
                done = running.join_next() => {
                    let Some(done) = done else { break };
                    let (number, node, result) =
                        done.map_err(|e| ObjectError::Internal(e.to_string()))?;
                    match result {
                        Ok(data) => {
                            good.push((number, data));
                            if good.len() == k {
                                running.abort_all();
                                return Ok(good);
                            }
                        }
                        Err(cause) => {
                            let node = self.slot(node).id();
                            tracing::warn!(node, piece = number, segment = f.segment, %cause, "piece unusable, trying another");
                            causes.push(format!("piece {number} on node {node}: {cause}"));
                            bad.insert(number);
                            start_next(&mut running);
                        }
                    }
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
        Err(ObjectError::NotEnoughPieces {
            segment: f.segment,
            causes: format!(
                "{} of {} needed pieces intact; {}",
                good.len(),
                k,
                causes.join("; ")
            ),
        })
    }

    /// Reads stripes `[g0, g1]` of one piece and verifies every chunk MAC (and the header when
    /// the range starts at stripe 0). Returns the chunk data without MACs.
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
    ) -> Result<Vec<u8>, String> {
        let rl = layout.record_len();
        let with_header = g0 == 0;
        let offset = if with_header {
            0
        } else {
            layout.record_offset(g0)
        };
        let len = (g1 - g0 + 1) * rl
            + if with_header {
                PIECE_HEADER_LEN as u64
            } else {
                0
            };
        let id = self.piece_id(node, &stream, segment, number);
        let conn = if exempt {
            self.connect_exempt(node)
        } else {
            self.connect(node).await.map_err(|e| e.to_string())?
        };
        self.pace_down(len).await;
        let started = Instant::now();
        let r = self.slot(node).store.read(id, offset, len).await;
        self.record(node, NodeOp::Get, started, r.as_ref().map(|_| ()));
        drop(conn);
        let bytes = r.map_err(|e| e.to_string())?;
        self.metrics
            .node_received(self.slot(node).id(), Reason::Download, bytes.len() as u64);
        tokio::task::spawn_blocking(move || {
            let mut body = &bytes[..];
            if with_header {
                let h = PieceHeader::decode(body).map_err(|e| e.to_string())?;
                if h.chunk_size as usize != layout.chunk_size {
                    return Err("piece header disagrees with metadata".to_string());
                }
                body = &body[PIECE_HEADER_LEN..];
            }
            let mut data = Vec::with_capacity(((g1 - g0 + 1) as usize) * layout.chunk_size);
            for (i, rec) in body.chunks(rl as usize).enumerate() {
                let stripe = g0 + i as u64;
                if rec.len() != rl as usize || !verify_record(&mac_key, number, stripe, rec) {
                    return Err(format!("chunk of stripe {stripe} failed verification"));
                }
                data.extend_from_slice(&rec[..rec.len() - CHUNK_MAC_LEN]);
            }
            Ok(data)
        })
        .await
        .map_err(|e| e.to_string())?
    }
}
