//! Part 1 of an audit pass: one node's listing against the metadata (see the parent module).
//!
//! Why the audit lists the nodes itself instead of sharing the orphan collection's listing:
//! the two want different things of the same pages — orphan collection every id the
//! metadata, live or garbage, or an upload in flight may have on the node, at its own fixed
//! pace every 6 h; the audit only the healthy pieces of live bodies, mapped back to their
//! segment and number, within the audit's configured rates and interval, and on demand
//! ([`super::ObjectLayer::audit_pass`]). A listing costs one request per 1000 pieces, little
//! beside the sampled reads, and keeping them apart leaves orphan deletion's safety argument
//! untouched. The pieces of the two are shared: the node listing pages
//! (`Transfers::list_page`) and the sorted prefix set ([`Expected`]).

use std::collections::HashSet;
use std::sync::Arc;

use super::super::orphans::{prefix, Expected};
use super::super::repair::SegmentClaim;
use super::super::{Inner, ObjectError};
use super::{record, AuditReport};
use crate::meta::{PieceFinding, PieceState, StreamId};
use crate::nodes::NodeError;
use crate::transfer::limits::Pace;

/// Ids per node listing page.
const PAGE: usize = 1000;
/// Metadata rows per read while building a node's expected set.
const META_PAGE: usize = 10_000;

/// Compares node `index`'s listing with the metadata and records the pieces it lacks.
pub(super) async fn audit_node(
    inner: &Arc<Inner>,
    index: usize,
    pace: &Pace,
    report: &mut AuditReport,
) -> Result<(), ObjectError> {
    let t = &inner.transfers;
    let node = t.node(index).id().to_string();
    if t.is_offline(index) {
        report.nodes_skipped += 1;
        return Ok(());
    }
    let expected = expected_on(inner, index).await?;
    if expected.keys().is_empty() {
        // Nothing to look for: the listing would only show orphans and metadata blobs.
        report.nodes_listed += 1;
        return Ok(());
    }
    let seen = match listed(inner, index, &expected, pace).await {
        Ok(seen) => seen,
        Err(e) => {
            tracing::warn!(node = %node, error = %e, "audit listing failed; nothing recorded for this node in this pass");
            report.nodes_skipped += 1;
            return Ok(());
        }
    };
    report.nodes_listed += 1;
    let compared = expected.keys().len() as u64;
    report.pieces_listed += compared;
    inner.audit.counters.pieces_listed.inc_by(compared);
    let absent: HashSet<u64> = expected
        .keys()
        .iter()
        .zip(&seen)
        .filter(|(_, &s)| !s)
        .map(|(&k, _)| k)
        .collect();
    if absent.is_empty() {
        return Ok(());
    }
    tracing::info!(node = %node, pieces = absent.len(), "audit: pieces absent from the node's listing; checking each");
    for (stream, segment, number) in absent_pieces(inner, index, &absent).await? {
        confirm_missing(inner, index, stream, segment, number, pace, report).await?;
    }
    Ok(())
}

/// The healthy pieces of live bodies the metadata places on node `index`, as prefixes of
/// their ids there.
async fn expected_on(inner: &Arc<Inner>, index: usize) -> Result<Expected, ObjectError> {
    let t = &inner.transfers;
    let node = t.node(index).id().to_string();
    let mut keys = Vec::new();
    let mut after = None;
    loop {
        let page = inner
            .meta
            .node_healthy_pieces(&node, after, META_PAGE)
            .await?;
        let complete = page.len() < META_PAGE;
        for (stream, segment, number) in &page {
            keys.push(prefix(&t.piece_id(index, &stream.0, *segment, *number)));
        }
        after = page.last().copied();
        if complete {
            break;
        }
        tokio::task::yield_now().await;
    }
    tokio::task::spawn_blocking(move || Expected::new(keys))
        .await
        .map_err(|e| ObjectError::Internal(e.to_string()))
}

/// Lists node `index` completely; returns, per expected key, whether the listing had it.
async fn listed(
    inner: &Arc<Inner>,
    index: usize,
    expected: &Expected,
    pace: &Pace,
) -> Result<Vec<bool>, NodeError> {
    let t = &inner.transfers;
    let mut seen = vec![false; expected.keys().len()];
    let mut after = None;
    loop {
        pace.request(0).await;
        let page = t.list_page(index, after, PAGE).await?;
        let complete = page.len() < PAGE;
        after = page.last().copied().or(after);
        for id in &page {
            if let Some(i) = expected.find(id) {
                seen[i] = true;
            }
        }
        if complete {
            return Ok(seen);
        }
    }
}

/// The pieces behind the `absent` prefixes, read again from the metadata (those no longer
/// healthy there, or gone, drop out).
async fn absent_pieces(
    inner: &Arc<Inner>,
    index: usize,
    absent: &HashSet<u64>,
) -> Result<Vec<(StreamId, u32, u16)>, ObjectError> {
    let t = &inner.transfers;
    let node = t.node(index).id().to_string();
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = inner
            .meta
            .node_healthy_pieces(&node, after, META_PAGE)
            .await?;
        let complete = page.len() < META_PAGE;
        out.extend(page.iter().copied().filter(|(stream, segment, number)| {
            absent.contains(&prefix(&t.piece_id(index, &stream.0, *segment, *number)))
        }));
        after = page.last().copied();
        if complete {
            return Ok(out);
        }
        tokio::task::yield_now().await;
    }
}

/// Asks the node for one piece its listing lacked and records it missing if the node does
/// not have it and the metadata still places it there, healthy, on a live body.
async fn confirm_missing(
    inner: &Arc<Inner>,
    index: usize,
    stream: StreamId,
    segment: u32,
    number: u16,
    pace: &Pace,
    report: &mut AuditReport,
) -> Result<(), ObjectError> {
    let t = &inner.transfers;
    let node = t.node(index).id().to_string();
    pace.request(0).await;
    // Repair (the only writer of existing pieces) must not switch this segment between the
    // node's answer and the finding.
    let Some(claim) = SegmentClaim::take(inner, stream, segment) else {
        return Ok(());
    };
    let id = t.piece_id(index, &stream.0, segment, number);
    match t.piece_size(index, id).await {
        // Written or put back since the listing.
        Ok(_) => return Ok(()),
        Err(NodeError::NotFound { .. }) => {}
        Err(e) => {
            tracing::debug!(node = %node, error = %e, "audit could not re-check a piece; left for the next pass");
            return Ok(());
        }
    }
    let placed = inner
        .meta
        .repair_source(&stream, segment)
        .await?
        .is_some_and(|src| {
            src.pieces
                .iter()
                .any(|p| p.number == number && p.node == node && p.state.is_ok())
        });
    if !placed {
        return Ok(());
    }
    let finding = PieceFinding {
        stream_id: stream,
        segment,
        number,
        node,
        state: PieceState::Missing,
        found_by: "listing".into(),
    };
    let changed = record(inner, finding, report).await?;
    drop(claim);
    if changed {
        inner.repair_wake.notify_one();
    }
    Ok(())
}
