//! Part 2 of an audit pass: sampled reads of piece ranges, verified by the download code (see
//! the parent module).

use std::sync::{Arc, PoisonError};

use super::super::repair::SegmentClaim;
use super::super::{Inner, ObjectError, ReadLease};
use super::{random_below, record, AuditOptions, AuditReport};
use crate::crypto::{ciphertext_len, unwrap_segment_key};
use crate::erasure::Layout;
use crate::meta::{PieceFinding, PieceState, RepairSource, StreamId};
use crate::metrics::Reason;
use crate::transfer::download::{piece_range, FaultKind, Fetch, RangeCheck};
use crate::transfer::limits::Pace;

/// Segments taken from the metadata per query.
const PAGE: usize = 256;

/// Samples up to `opts.samples` segments, each at most once, continuing after the segment
/// the previous pass sampled last and wrapping around at the end of the key order.
pub(super) async fn sample(
    inner: &Arc<Inner>,
    opts: &AuditOptions,
    pace: &Pace,
    report: &mut AuditReport,
) -> Result<(), ObjectError> {
    let cursor = *inner
        .audit
        .cursor
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let start = match cursor {
        Some(c) => c,
        None => {
            // The first pass after start begins at a random point of the key order.
            let mut id = [0u8; 16];
            crate::crypto::random_bytes(&mut id)?;
            (StreamId(id), u32::MAX)
        }
    };
    let mut after = Some(start);
    let mut wrapped = false;
    loop {
        let page = inner.meta.live_segments(after, PAGE).await?;
        let complete = page.len() < PAGE;
        after = page.last().copied();
        for (stream, segment) in page {
            if wrapped && (stream, segment) > start {
                return Ok(());
            }
            sample_segment(inner, stream, segment, opts, pace, report).await?;
            *inner
                .audit
                .cursor
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some((stream, segment));
            report.segments_sampled += 1;
            if report.segments_sampled >= opts.samples {
                return Ok(());
            }
        }
        if complete {
            if wrapped {
                return Ok(());
            }
            wrapped = true;
            after = None;
        }
    }
}

/// Reads and verifies a random range of `opts.pieces` random healthy pieces of one segment.
async fn sample_segment(
    inner: &Arc<Inner>,
    stream: StreamId,
    segment: u32,
    opts: &AuditOptions,
    pace: &Pace,
    report: &mut AuditReport,
) -> Result<(), ObjectError> {
    // Garbage collection leaves the body alone from here on; read after taking the lease, a
    // live body stays live for the whole sample.
    let _lease = ReadLease::new(inner, vec![stream]);
    let Some(src) = inner.meta.repair_source(&stream, segment).await? else {
        return Ok(());
    };
    let t = &inner.transfers;
    let layout = Layout {
        k: usize::from(src.k),
        n: usize::from(src.n),
        chunk_size: src.chunk_size as usize,
        cipher_len: ciphertext_len(src.plain_size, src.block_size),
    };
    let mac_key = match unwrap_segment_key(&inner.root, &src.wrapped_key, &stream.0, segment) {
        Ok(key) => Arc::new(key.chunk_mac_key()),
        Err(e) => {
            // Reads of this segment fail the same way; that is for them to report.
            tracing::warn!(segment, stream = ?stream, error = %e, "audit could not unwrap a segment key; segment skipped");
            return Ok(());
        }
    };
    let fetch = Fetch {
        stream: stream.0,
        segment,
        layout,
        pieces: &src.pieces,
        mac_key,
        exempt: false,
        reason: Reason::Audit,
    };
    let stripes = layout.stripes();
    let count = (opts.sample_bytes / layout.record_len()).clamp(1, stripes);
    for (number, node) in pick(inner, &src, opts.pieces)? {
        let g0 = random_below(stripes - count + 1)?;
        let g1 = g0 + count - 1;
        let (_, len) = piece_range(&layout, g0, g1);
        pace.request(len).await;
        // Repair must not rewrite the piece between this read and its finding.
        let Some(claim) = SegmentClaim::take(inner, stream, segment) else {
            return Ok(());
        };
        let check = t.check_piece_range(&fetch, node, number, g0, g1).await;
        report.pieces_sampled += 1;
        let c = &inner.audit.counters;
        c.pieces_sampled.inc();
        let state = match check {
            RangeCheck::Good => {
                report.bytes_verified += len;
                c.bytes_verified.inc_by(len);
                continue;
            }
            RangeCheck::NodeFailed(cause) => {
                tracing::debug!(node = t.node(node).id(), %cause, "audit read failed; the node's health, not the piece's");
                continue;
            }
            RangeCheck::Faulty { kind, cause } => {
                tracing::debug!(node = t.node(node).id(), piece = number, segment, %cause, "audit read found a faulty piece");
                match kind {
                    FaultKind::Missing => PieceState::Missing,
                    FaultKind::Corrupt => PieceState::Corrupt,
                }
            }
        };
        let finding = PieceFinding {
            stream_id: stream,
            segment,
            number,
            node: t.node(node).id().to_string(),
            state,
            found_by: "audit".into(),
        };
        let changed = record(inner, finding, report).await?;
        drop(claim);
        if changed {
            inner.repair_wake.notify_one();
        }
    }
    Ok(())
}

/// Up to `want` of the segment's healthy pieces on nodes not offline since start, at random,
/// as (piece number, node index).
fn pick(inner: &Inner, src: &RepairSource, want: usize) -> Result<Vec<(u16, usize)>, ObjectError> {
    let t = &inner.transfers;
    let mut healthy: Vec<(u16, usize)> = src
        .pieces
        .iter()
        .filter(|p| p.state.is_ok())
        .filter_map(|p| t.index_of(&p.node).map(|i| (p.number, i)))
        .filter(|&(_, i)| !t.is_offline(i))
        .collect();
    // Fisher-Yates, as far as needed.
    let want = want.min(healthy.len());
    for i in 0..want {
        let j = i + random_below((healthy.len() - i) as u64)? as usize;
        healthy.swap(i, j);
    }
    healthy.truncate(want);
    Ok(healthy)
}
