//! Repair: rebuilding the missing, bad and lost pieces of degraded segments.
//!
//! A segment needs repair when it has at most `threshold` healthy pieces (the background loop
//! uses `max(repair, floor)` of the scheme, see [`crate::transfer::Target`]; `gateway repair`
//! asks for full health, `success - 1`), when any of its pieces is known bad (missing or
//! corrupt, found by a read or an audit), or when a piece sits on a node that is lost
//! (replaced) or has been unreachable for longer than `repair.offline_after`.
//!
//! Repairing one segment ([`ObjectLayer::repair_segment`]):
//! 1. read the segment's row and pieces; decide which piece numbers to write: every bad or
//!    unreachable one, plus absent numbers (degraded writes) until the segment would have the
//!    scheme's `success` healthy pieces;
//! 2. pick a node for each: the bad piece's own node when it is healthy (the new piece
//!    replaces it under the same id), else a healthy node holding no healthy piece of the
//!    segment, within the failure-domain cap;
//! 3. stream the segment in groups of stripes: fetch `k` good chunks per stripe (the GET
//!    path, with per-stripe erasures), decode, re-encode, and send only the new pieces'
//!    records to their nodes — memory is one group, whatever the segment size;
//! 4. commit the new pieces, then switch them in with one metadata transaction that first
//!    checks the segment is unchanged and still live; if it is not, the new pieces are
//!    deleted again.
//!
//! Bytes read and written count under the metrics reason `repair`. Most-degraded segments go
//! first; `repair.concurrency` segments run at once and `repair.rate` paces the bytes sent.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Inner, ObjectError, ObjectLayer};
use crate::crypto::{ciphertext_len, unwrap_segment_key};
use crate::erasure::{Layout, PieceHeader, StripeDecoder, StripeEncoder};
use crate::meta::{PieceRecord, RepairSource, SegmentHealth, StreamId};
use crate::metrics::{NodeOp, Reason};
use crate::nodes::PieceWriter;
use crate::transfer::download::{Fetch, SegmentReads};
use crate::transfer::health::Rank;
use crate::transfer::limits::TokenBucket;
use crate::transfer::TransferError;

/// Ciphertext bytes per group of stripes read and re-encoded at once.
const GROUP_BYTES: u64 = 4 << 20;
/// Segments taken from the metadata per query.
const QUEUE_PAGE: usize = 256;

/// What one segment's repair did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentRepair {
    /// Pieces written and switched in.
    pub pieces: usize,
    /// Bytes sent to nodes (kept pieces).
    pub bytes_sent: u64,
    /// Healthy pieces after the repair.
    pub healthy: usize,
    /// Ciphertext bytes of the segment (when pieces were written).
    pub segment_bytes: u64,
}

/// Totals of a repair pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RepairReport {
    /// Segments looked at.
    pub checked: u64,
    pub repaired: u64,
    pub pieces_written: u64,
    pub bytes_sent: u64,
    /// Segments repair could not fix now (too few readable pieces, too few nodes).
    pub failed: u64,
    /// Segment bytes (ciphertext) rebuilt.
    pub segment_bytes: u64,
}

/// How a repair pass runs.
#[derive(Debug, Clone)]
pub struct RepairOptions {
    /// Segments with at most this many healthy pieces are repaired.
    pub threshold: u16,
    pub concurrency: usize,
    /// Nodes unreachable for longer count as lost.
    pub offline_after: Duration,
    /// Bytes per second sent; `None` is unlimited.
    pub rate: Option<u64>,
}

impl RepairOptions {
    /// The background loop's options: segments at or below `max(repair, floor)` healthy
    /// pieces, so every degraded write is repaired.
    pub fn background(scheme: &crate::erasure::Scheme, cfg: &crate::config::RepairConfig) -> Self {
        let floor = crate::transfer::Target::for_scheme(scheme).floor as u16;
        RepairOptions {
            threshold: scheme.repair.max(floor),
            concurrency: cfg.concurrency,
            offline_after: cfg.offline_after,
            rate: cfg.rate,
        }
    }

    /// `gateway repair`: every segment below `success` healthy pieces.
    pub fn full(scheme: &crate::erasure::Scheme, cfg: &crate::config::RepairConfig) -> Self {
        RepairOptions {
            threshold: scheme.success.saturating_sub(1),
            ..Self::background(scheme, cfg)
        }
    }
}

/// Progress of a pass, for a progress bar.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassProgress {
    pub queued: u64,
    pub done: u64,
    pub bytes_sent: u64,
}

impl ObjectLayer {
    /// Starts the background repair loop: a pass now, then whenever reads found faults or
    /// `interval` passed. It stops when the layer is dropped.
    pub fn spawn_repair(&self, opts: RepairOptions, interval: Duration) {
        let weak = Arc::downgrade(&self.inner);
        let wake = self.inner.repair_wake.clone();
        tokio::spawn(async move {
            loop {
                {
                    let Some(inner) = weak.upgrade() else { return };
                    let layer = ObjectLayer { inner };
                    match layer.repair_pass(&opts, &|_| {}).await {
                        Ok(r) if r.checked > 0 => tracing::info!(
                            repaired = r.repaired,
                            pieces = r.pieces_written,
                            bytes = r.bytes_sent,
                            failed = r.failed,
                            "repair pass done"
                        ),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "repair pass failed"),
                    }
                    // The health gauges follow each pass.
                    if let Err(e) = layer.health_counts().await {
                        tracing::warn!(error = %e, "could not count segment health");
                    }
                }
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(interval) => {}
                }
            }
        });
    }

    /// Segment health as the metadata records it.
    /// Segment health as the metadata records it; also refreshes the health gauges.
    pub async fn health_counts(&self) -> Result<crate::meta::HealthCounts, ObjectError> {
        let counts = self.inner.meta.health_counts().await?;
        self.inner
            .transfers
            .metrics()
            .health
            .set_counts(&counts.by_healthy, &counts.not_ok);
        Ok(counts)
    }

    /// Nodes whose pieces repair treats as lost now: unreachable for longer than
    /// `offline_after` (offline since start included).
    pub fn unreachable_nodes(&self, offline_after: Duration) -> HashSet<String> {
        let t = &self.inner.transfers;
        (0..t.node_count())
            .filter(|&i| {
                t.node(i)
                    .health
                    .down_for()
                    .is_some_and(|d| d >= offline_after)
            })
            .map(|i| t.node(i).id().to_string())
            .collect()
    }

    /// Segments to repair now, most degraded first (at most `limit` from the threshold query
    /// plus those with pieces on `excluded` nodes).
    async fn repair_work(
        &self,
        threshold: u16,
        excluded: &HashSet<String>,
        limit: usize,
    ) -> Result<Vec<SegmentHealth>, ObjectError> {
        let meta = &self.inner.meta;
        let mut work = meta.repair_queue(threshold, limit).await?;
        let mut seen: HashSet<(StreamId, u32)> =
            work.iter().map(|s| (s.stream_id, s.segment)).collect();
        for node in excluded {
            let mut after = None;
            loop {
                let page = meta.segments_on_node(node, after, QUEUE_PAGE).await?;
                let full = page.len() == QUEUE_PAGE;
                after = page.last().map(|s| (s.stream_id, s.segment));
                for s in page {
                    if seen.insert((s.stream_id, s.segment)) {
                        work.push(s);
                    }
                }
                if !full || work.len() >= limit * 4 {
                    break;
                }
            }
        }
        work.sort_by_key(|s| s.healthy);
        Ok(work)
    }

    /// Repairs every segment that needs it, until none is left that can be repaired now.
    pub async fn repair_pass(
        &self,
        opts: &RepairOptions,
        progress: &(dyn Fn(PassProgress) + Send + Sync),
    ) -> Result<RepairReport, ObjectError> {
        let pace = opts.rate.map(|r| Arc::new(TokenBucket::new(r)));
        let mut report = RepairReport::default();
        let mut given_up: HashSet<(StreamId, u32)> = HashSet::new();
        let mut shown = PassProgress::default();
        loop {
            // Pieces on draining nodes move like those on lost ones (they stay readable).
            let mut excluded = self.unreachable_nodes(opts.offline_after);
            excluded.extend(self.inner.transfers.draining_nodes());
            let work: Vec<SegmentHealth> = self
                .repair_work(opts.threshold, &excluded, QUEUE_PAGE + given_up.len())
                .await?
                .into_iter()
                .filter(|s| !given_up.contains(&(s.stream_id, s.segment)))
                .collect();
            if work.is_empty() {
                break;
            }
            shown.queued = shown.done + work.len() as u64;
            progress(shown);
            let mut it = work.into_iter();
            let mut running = tokio::task::JoinSet::new();
            loop {
                while running.len() < opts.concurrency.max(1) {
                    let Some(s) = it.next() else { break };
                    let (layer, excluded, pace) = (self.clone(), excluded.clone(), pace.clone());
                    running.spawn(async move {
                        let r = layer
                            .repair_segment(&s.stream_id, s.segment, &excluded, pace)
                            .await;
                        (s, r)
                    });
                }
                let Some(joined) = running.join_next().await else {
                    break;
                };
                let (s, r) = joined.map_err(|e| ObjectError::Internal(e.to_string()))?;
                report.checked += 1;
                shown.done += 1;
                let m = &self.inner.transfers.metrics().health;
                match r {
                    Ok(done) if done.pieces > 0 => {
                        report.repaired += 1;
                        report.pieces_written += done.pieces as u64;
                        report.bytes_sent += done.bytes_sent;
                        report.segment_bytes += done.segment_bytes;
                        shown.bytes_sent += done.bytes_sent;
                        m.repaired(done.pieces as u64);
                        if done.healthy <= usize::from(opts.threshold) {
                            // Better, but not yet out of the queue (too few nodes): not again
                            // in this pass.
                            given_up.insert((s.stream_id, s.segment));
                        }
                    }
                    Ok(_) => {
                        given_up.insert((s.stream_id, s.segment));
                    }
                    Err(e) => {
                        tracing::warn!(segment = s.segment, stream = ?s.stream_id, error = %e, "segment repair failed; will retry later");
                        report.failed += 1;
                        m.repair_failed();
                        given_up.insert((s.stream_id, s.segment));
                    }
                }
                progress(shown);
            }
        }
        self.inner
            .transfers
            .metrics()
            .health
            .repair_pass(given_up.len() as u64, super::now_ms().max(0) / 1000);
        Ok(report)
    }

    /// Repairs one segment (see the module documentation); `excluded` nodes count as lost.
    pub async fn repair_segment(
        &self,
        stream_id: &StreamId,
        segment: u32,
        excluded: &HashSet<String>,
        pace: Option<Arc<TokenBucket>>,
    ) -> Result<SegmentRepair, ObjectError> {
        let inner = &self.inner;
        // One repair per segment at a time (the background loop and a foreground pass may
        // pick the same one): a second one would write the same piece ids.
        let Some(_busy) = SegmentClaim::take(inner, *stream_id, segment) else {
            return Ok(SegmentRepair::default());
        };
        let Some(src) = inner.meta.repair_source(stream_id, segment).await? else {
            return Ok(SegmentRepair::default());
        };
        let plan = plan(inner, &src, excluded);
        if plan.writes.is_empty() {
            return Ok(SegmentRepair {
                healthy: plan.good,
                ..SegmentRepair::default()
            });
        }
        // Orphan collection must not delete a leftover piece under an id this repair writes
        // again before the switch below has landed.
        let _rewrite = inner.transfers.in_flight().rewrite().await;
        let written = rebuild(inner, stream_id, segment, &src, &plan, pace).await?;
        if written.is_empty() {
            // Every planned write failed: a failure of this repair, not "nothing to do".
            return Err(TransferError::NotEnoughDurable {
                segment,
                durable: 0,
                needed: plan.writes.len(),
                causes: "no repaired piece could be written (the node errors are in the log)"
                    .into(),
            }
            .into());
        }
        let new: Vec<PieceRecord> = written
            .iter()
            .map(|w| PieceRecord::new(w.number, inner.transfers.node(w.node).id()))
            .collect();
        let switched = inner
            .meta
            .replace_pieces(stream_id, segment, src.pieces.clone(), new.clone())
            .await;
        if !matches!(switched, Ok(true)) {
            // The segment changed under us (deleted, or a piece marked bad meanwhile): the new
            // pieces are not referenced — except one written under an id a row still names
            // (a bad piece rewritten in place), which stays: it is better than what it
            // replaced, and the next pass rewrites it again.
            let current = inner
                .meta
                .repair_source(stream_id, segment)
                .await
                .ok()
                .flatten()
                .map(|s| s.pieces)
                .unwrap_or_default();
            for w in &written {
                let node = inner.transfers.node(w.node).id();
                if current
                    .iter()
                    .any(|p| p.number == w.number && p.node == node)
                {
                    continue;
                }
                let id = inner
                    .transfers
                    .piece_id(w.node, &stream_id.0, segment, w.number);
                if let Err(e) = inner.transfers.delete_at(w.node, id).await {
                    tracing::warn!(error = %e, "could not delete an unused repaired piece; left for garbage collection");
                }
            }
            switched?;
            return Ok(SegmentRepair {
                healthy: plan.good,
                ..SegmentRepair::default()
            });
        }
        // A piece moved off a draining node is deleted there now (best effort: garbage
        // collection takes what fails); pieces replaced on lost or unreachable nodes are left
        // to it.
        for old in &src.pieces {
            let Some(i) = inner.transfers.index_of(&old.node) else {
                continue;
            };
            let moved = new
                .iter()
                .any(|p| p.number == old.number && p.node != old.node);
            if moved && inner.transfers.node(i).draining() {
                if let Err(e) = inner
                    .transfers
                    .delete_piece(&old.node, &stream_id.0, segment, old.number)
                    .await
                {
                    tracing::warn!(node = %old.node, error = %e, "could not delete a piece moved off a draining node; left for garbage collection");
                }
            }
        }
        Ok(SegmentRepair {
            pieces: written.len(),
            bytes_sent: written.iter().map(|w| w.bytes).sum(),
            healthy: plan.good + written.len(),
            segment_bytes: plan.layout.cipher_len,
        })
    }
}

/// Marks a segment as being repaired (or audited: `audit`) in this process until dropped.
pub(super) struct SegmentClaim {
    inner: Arc<Inner>,
    key: (StreamId, u32),
}

impl SegmentClaim {
    /// The claim, or `None` when someone else holds it.
    pub(super) fn take(
        inner: &Arc<Inner>,
        stream_id: StreamId,
        segment: u32,
    ) -> Option<SegmentClaim> {
        let mut busy = inner.repairing.lock().unwrap_or_else(|p| p.into_inner());
        busy.insert((stream_id, segment)).then(|| SegmentClaim {
            inner: inner.clone(),
            key: (stream_id, segment),
        })
    }
}

impl Drop for SegmentClaim {
    fn drop(&mut self) {
        self.inner
            .repairing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

/// Which pieces to write where.
struct Plan {
    /// Healthy pieces on usable nodes.
    good: usize,
    /// (piece number, node index).
    writes: Vec<(u16, usize)>,
    layout: Layout,
}

fn plan(inner: &Inner, src: &RepairSource, excluded: &HashSet<String>) -> Plan {
    let t = &inner.transfers;
    let (k, n) = (usize::from(src.k), usize::from(src.n));
    let layout = Layout {
        k,
        n,
        chunk_size: src.chunk_size as usize,
        cipher_len: ciphertext_len(src.plain_size, src.block_size),
    };
    let usable = |node: &str| !excluded.contains(node) && t.index_of(node).is_some();
    let good: Vec<&PieceRecord> = src
        .pieces
        .iter()
        .filter(|p| p.state.is_ok() && usable(&p.node))
        .collect();
    let target = usize::from(inner.storage.scheme.success).min(n);
    // Bad or unreachable pieces were placed: put them back. Then absent numbers, up to the
    // target.
    let mut numbers: Vec<(u16, Option<&str>)> = src
        .pieces
        .iter()
        .filter(|p| !(p.state.is_ok() && usable(&p.node)))
        .map(|p| (p.number, Some(p.node.as_str())))
        .collect();
    let present: HashSet<u16> = src.pieces.iter().map(|p| p.number).collect();
    let mut absent = (0..n as u16).filter(|x| !present.contains(x));
    while good.len() + numbers.len() < target {
        match absent.next() {
            Some(x) => numbers.push((x, None)),
            None => break,
        }
    }

    // Nodes: not holding a healthy piece of this segment, healthy enough to write to, within
    // the domain cap.
    let holding: HashSet<&str> = good.iter().map(|p| p.node.as_str()).collect();
    let mut per_domain: HashMap<String, usize> = HashMap::new();
    for p in &good {
        if let Some(i) = t.index_of(&p.node) {
            *per_domain.entry(t.node(i).domain.clone()).or_insert(0) += 1;
        }
    }
    let cap = t.max_per_domain;
    // Backed-off nodes are tried last (the preference order), not skipped: a node that just
    // came back is still backed off from its outage.
    let writable = |i: usize| {
        t.node(i).health.rank() != Rank::Offline && !t.node(i).draining() && usable(t.node(i).id())
    };
    let mut taken: HashSet<usize> = HashSet::new();
    let mut order: Vec<usize> = t
        .preference_order()
        .unwrap_or_else(|_| (0..t.node_count()).collect());
    order.retain(|&i| writable(i) && !holding.contains(t.node(i).id()));
    let mut writes = Vec::new();
    for (number, old_node) in numbers {
        let room = |per_domain: &HashMap<String, usize>, i: usize| {
            cap.is_none_or(|c| per_domain.get(&t.node(i).domain).copied().unwrap_or(0) < c)
        };
        // The bad piece's own node first: the new piece replaces it under the same id.
        let own = old_node
            .and_then(|id| t.index_of(id))
            .filter(|&i| order.contains(&i) && !taken.contains(&i) && room(&per_domain, i));
        let pick = own.or_else(|| {
            order
                .iter()
                .copied()
                .find(|&i| !taken.contains(&i) && room(&per_domain, i))
        });
        let Some(i) = pick else { break };
        taken.insert(i);
        *per_domain.entry(t.node(i).domain.clone()).or_insert(0) += 1;
        writes.push((number, i));
    }
    Plan {
        good: good.len(),
        writes,
        layout,
    }
}

struct Written {
    number: u16,
    node: usize,
    bytes: u64,
}

/// One new piece being written.
struct Out {
    number: u16,
    node: usize,
    writer: Option<Box<dyn PieceWriter>>,
    sent: u64,
    started: Instant,
    _conn: crate::transfer::Conn,
}

async fn rebuild(
    inner: &Arc<Inner>,
    stream_id: &StreamId,
    segment: u32,
    src: &RepairSource,
    plan: &Plan,
    pace: Option<Arc<TokenBucket>>,
) -> Result<Vec<Written>, ObjectError> {
    let t = &inner.transfers;
    let layout = plan.layout;
    let key = unwrap_segment_key(&inner.root, &src.wrapped_key, &stream_id.0, segment)?;
    let mac_key = key.chunk_mac_key();
    // Healthy pieces first, then the others: a "missing" piece may be back, and a corrupt
    // one is bad in some stripes only (a piece rewritten under its own id is replaced only at
    // its commit, after the last read).
    let mut sources: Vec<PieceRecord> = src.pieces.clone();
    sources.sort_by_key(|p| (!p.state.is_ok(), p.number));
    let fetch = Fetch {
        stream: stream_id.0,
        segment,
        layout,
        pieces: &sources,
        mac_key: Arc::new(mac_key),
        exempt: false,
        reason: Reason::Repair,
    };

    let header = Bytes::copy_from_slice(
        &PieceHeader {
            chunk_size: layout.chunk_size as u32,
        }
        .encode(),
    );
    let mut outs = Vec::new();
    for &(number, node) in &plan.writes {
        let conn = t
            .connect(node)
            .await
            .map_err(|e| ObjectError::Internal(e.to_string()))?;
        let id = t.piece_id(node, &stream_id.0, segment, number);
        let started = Instant::now();
        match t.node(node).store.create(id).await {
            Ok(w) => outs.push(Out {
                number,
                node,
                writer: Some(w),
                sent: 0,
                started,
                _conn: conn,
            }),
            Err(e) => {
                t.record(node, NodeOp::Put, started, Err(&e));
                tracing::warn!(node = t.node(node).id(), error = %e, "repair could not write to a node");
            }
        }
    }
    let records = vec![header; outs.len()];
    outs = send_all(t, outs, records, &pace).await?;

    let mut encoder = StripeEncoder::new(layout, mac_key)?;
    let stripes = layout.stripes();
    let group = (GROUP_BYTES / layout.stripe_bytes()).max(1);
    let mut reads = SegmentReads::new();
    let mut g = 0;
    let result: Result<(), ObjectError> = async {
        while g < stripes && outs.iter().any(|o| o.writer.is_some()) {
            let g_end = (g + group - 1).min(stripes - 1);
            let got = t.fetch_stripes(&fetch, g, g_end, &mut reads).await?;
            let numbers: Vec<u16> = outs.iter().map(|o| o.number).collect();
            let (enc, records) = tokio::task::spawn_blocking(move || {
                let r = (|| -> Result<Vec<Vec<u8>>, ObjectError> {
                    let mut decoder = StripeDecoder::new(layout);
                    let mut all = vec![Vec::new(); layout.n];
                    let mut data = Vec::with_capacity(layout.k * layout.chunk_size);
                    let mut chunks = Vec::new();
                    for s in 0..got.count() {
                        got.chunks_of(s, &mut chunks);
                        data.clear();
                        decoder.decode(&chunks, &mut data)?;
                        encoder.encode(g + s as u64, &data, &mut all)?;
                    }
                    Ok(numbers
                        .iter()
                        .map(|&x| std::mem::take(&mut all[usize::from(x)]))
                        .collect())
                })();
                (encoder, r)
            })
            .await
            .map_err(|e| ObjectError::Internal(e.to_string()))?;
            encoder = enc;
            let records = records?.into_iter().map(Bytes::from).collect();
            outs = send_all(t, std::mem::take(&mut outs), records, &pace).await?;
            g = g_end + 1;
        }
        Ok(())
    }
    .await;
    let faults = reads.take_faults();
    if !faults.is_empty() {
        inner.report_faults(stream_id.0, segment, faults);
    }
    if let Err(e) = result {
        for o in &mut outs {
            if let Some(w) = o.writer.take() {
                w.abort().await;
            }
        }
        return Err(e);
    }

    let mut written = Vec::new();
    let mut commits = tokio::task::JoinSet::new();
    for mut o in outs {
        if let Some(w) = o.writer.take() {
            commits.spawn(async move {
                let r = w.commit().await;
                (o, r)
            });
        }
    }
    while let Some(joined) = commits.join_next().await {
        let (o, r) = joined.map_err(|e| ObjectError::Internal(e.to_string()))?;
        t.record(o.node, NodeOp::Put, o.started, r.as_ref().map(|_| ()));
        match r {
            Ok(()) => written.push(Written {
                number: o.number,
                node: o.node,
                bytes: o.sent,
            }),
            Err(e) => {
                tracing::warn!(node = t.node(o.node).id(), error = %e, "repaired piece did not commit")
            }
        }
    }
    Ok(written)
}

/// Sends `records[i]` to `outs[i]`, all in parallel; returns the pieces, in order.
async fn send_all(
    t: &Arc<crate::transfer::Transfers>,
    outs: Vec<Out>,
    records: Vec<Bytes>,
    pace: &Option<Arc<TokenBucket>>,
) -> Result<Vec<Out>, ObjectError> {
    let mut set = tokio::task::JoinSet::new();
    for (i, (mut o, rec)) in outs.into_iter().zip(records).enumerate() {
        let (t, pace) = (t.clone(), pace.clone());
        set.spawn(async move {
            send_one(&t, &mut o, rec, pace.as_deref()).await;
            (i, o)
        });
    }
    let mut back = Vec::with_capacity(set.len());
    while let Some(joined) = set.join_next().await {
        back.push(joined.map_err(|e| ObjectError::Internal(e.to_string()))?);
    }
    back.sort_by_key(|(i, _)| *i);
    Ok(back.into_iter().map(|(_, o)| o).collect())
}

/// Sends one record to one new piece; a failure drops that piece from the repair.
async fn send_one(
    t: &crate::transfer::Transfers,
    o: &mut Out,
    rec: Bytes,
    pace: Option<&TokenBucket>,
) {
    let Some(w) = o.writer.as_mut() else { return };
    let len = rec.len() as u64;
    if let Some(p) = pace {
        p.take(len).await;
    }
    t.pace_up(len).await;
    match w.write(rec).await {
        Ok(()) => {
            o.sent += len;
            t.sent(o.node, Reason::Repair, len);
        }
        Err(e) => {
            t.record(o.node, NodeOp::Put, o.started, Err(&e));
            tracing::warn!(node = t.node(o.node).id(), error = %e, "repair lost a node mid-piece");
            if let Some(w) = o.writer.take() {
                w.abort().await;
            }
        }
    }
}
