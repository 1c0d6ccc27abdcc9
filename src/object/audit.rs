//! The audit: checking in the background, within its own rate limits, that the nodes still
//! hold what the metadata says, and recording what they do not for repair.
//!
//! A pass ([`ObjectLayer::audit_pass`]) has two parts:
//! 1. **Listing** ([`listing`]), node after node (nodes offline since start are skipped): the
//!    ids of the pieces in state `ok` of live bodies the metadata places on the node are
//!    compared with the node's complete listing. An expected id the listing lacks is asked
//!    for directly (`NodeStore::size`); only when the node answers "not found" *and* the
//!    metadata, read again, still places the piece there in state `ok` on a live body, is it
//!    recorded `missing`, found by `listing`. A piece of a live body is only ever deleted or
//!    replaced after the metadata stopped naming it (garbage collection, orphan collection,
//!    repair's switch), or replaced atomically under its id (repair), so a listing racing a
//!    write, a repair or a delete never yields a false finding. A listing that fails midway
//!    records nothing for its node.
//! 2. **Sampling** ([`sampling`]): up to `samples` segments of live bodies, in key order from
//!    where the previous pass stopped (a random point after start; stream ids are random, so
//!    this is a random order of bodies, and passes together cover every segment in turn). Of
//!    each, `pieces` healthy pieces picked at random, and of each piece a random run of whole
//!    stripes (`sample_bytes`, header included when it starts at stripe 0) is read and
//!    verified by the download code. A chunk or header that fails verification, or a piece
//!    shorter than its layout, is recorded `corrupt`; a piece its node does not have,
//!    `missing`; both found by `audit`. The segment is leased as a GET leases it, so garbage
//!    collection leaves it alone meanwhile.
//!
//! Every check of one piece (re-check or sampled read) and the recording of what it found run
//! under the segment's repair claim, so repair never rewrites a piece between the audit's
//! look and its finding. Findings go to the metadata one by one ([`crate::meta::PieceFinding`];
//! a piece already known bad or placed elsewhere since is left as is) and wake repair.
//!
//! Bounds: every node request of a pass (listing page, re-check, sampled read) first waits
//! for its turn in the pass's [`Pace`] — `rate` piece bytes and `requests` requests per
//! second, all nodes together, at every instant of the pass — and then for a connection
//! slot like any transfer; sampled reads also pay the `[limits]` download rate. Requests go
//! one at a time, and one pass at a time (a pass waits for the one running). The audit takes
//! no lock a client request waits for: metadata reads use the reader pool, findings are one
//! short write each. Bytes read count under the metrics reason `audit`.

mod listing;
mod sampling;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{now_ms, Inner, ObjectError, ObjectLayer};
use crate::config::AuditConfig;
use crate::meta::{PieceFinding, PieceState, StreamId};
use crate::transfer::limits::Pace;

/// Bytes of one sampled range (rounded down to whole stripe records, at least one): with the
/// default 64 KiB chunks four records, which balances the default byte and request rates.
pub const SAMPLE_BYTES: u64 = 256 << 10;
/// The first background pass after start (or after the interval, when that is shorter).
pub const FIRST_PASS: Duration = Duration::from_secs(300);
/// Findings a report lists (all of them are counted and recorded).
const REPORTED: usize = 1000;

/// How an audit pass runs.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditOptions {
    /// Piece bytes per second read from all nodes together; `None` is unlimited.
    pub rate: Option<u64>,
    /// Node requests per second, all nodes together; `None` is unlimited.
    pub requests: Option<f64>,
    /// Segments sampled (0: listings only).
    pub samples: u64,
    /// Healthy pieces read per sampled segment.
    pub pieces: usize,
    /// Bytes read per sampled piece; `u64::MAX` reads whole pieces.
    pub sample_bytes: u64,
}

impl AuditOptions {
    /// The background audit's options: one piece and [`SAMPLE_BYTES`] per sampled segment.
    pub fn background(cfg: &AuditConfig) -> AuditOptions {
        AuditOptions {
            rate: cfg.rate,
            requests: cfg.requests,
            samples: cfg.samples,
            pieces: 1,
            sample_bytes: SAMPLE_BYTES,
        }
    }
}

/// What one pass did and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditReport {
    /// Nodes whose complete listing was compared with the metadata.
    pub nodes_listed: u64,
    /// Nodes not compared: offline since start, or their listing failed.
    pub nodes_skipped: u64,
    /// Pieces the metadata expects on the nodes listed.
    pub pieces_listed: u64,
    /// Segments sampled, and pieces read and verified in them.
    pub segments_sampled: u64,
    pub pieces_sampled: u64,
    /// Bytes read and verified good.
    pub bytes_verified: u64,
    /// Findings recorded (each changed a piece's state).
    pub missing: u64,
    pub corrupt: u64,
    /// The first findings recorded.
    pub findings: Vec<PieceFinding>,
}

pub use crate::metrics::AuditCounters;

/// The audit's state in the object layer.
#[derive(Debug)]
pub(crate) struct AuditState {
    /// Shared with the metrics registry.
    pub counters: AuditCounters,
    /// The segment sampled last: the next pass continues after it.
    cursor: Mutex<Option<(StreamId, u32)>>,
    /// Held for the whole of a pass.
    running: tokio::sync::Mutex<()>,
}

impl AuditState {
    pub fn new(counters: AuditCounters) -> AuditState {
        AuditState {
            counters,
            cursor: Mutex::new(None),
            running: tokio::sync::Mutex::new(()),
        }
    }
}

impl ObjectLayer {
    /// Starts the background audit: a pass [`FIRST_PASS`] after start (or after `interval`,
    /// when shorter), then `interval` after each pass ends. It stops when the layer is dropped.
    pub fn spawn_audit(&self, opts: AuditOptions, interval: Duration) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            tokio::time::sleep(FIRST_PASS.min(interval)).await;
            loop {
                {
                    let Some(inner) = weak.upgrade() else { return };
                    let layer = ObjectLayer { inner };
                    match layer.audit_pass(&opts).await {
                        Ok(r) => tracing::info!(
                            nodes = r.nodes_listed,
                            skipped = r.nodes_skipped,
                            pieces = r.pieces_listed,
                            sampled = r.pieces_sampled,
                            bytes = r.bytes_verified,
                            missing = r.missing,
                            corrupt = r.corrupt,
                            "audit pass done"
                        ),
                        Err(e) => tracing::warn!(error = %e, "audit pass failed"),
                    }
                }
                tokio::time::sleep(interval).await;
            }
        });
    }

    /// Runs one audit pass now (see the module documentation), after the one running, if any.
    pub async fn audit_pass(&self, opts: &AuditOptions) -> Result<AuditReport, ObjectError> {
        let inner = &self.inner;
        let _one = inner.audit.running.lock().await;
        let pace = Pace::new(opts.rate, opts.requests);
        let mut report = AuditReport::default();
        for index in 0..inner.transfers.node_count() {
            listing::audit_node(inner, index, &pace, &mut report).await?;
        }
        if opts.samples > 0 {
            sampling::sample(inner, opts, &pace, &mut report).await?;
        }
        let c = &inner.audit.counters;
        c.passes.inc();
        c.last_pass_secs.set(now_ms().max(0) / 1000);
        Ok(report)
    }

    /// The counters of the audit since start.
    pub fn audit_counters(&self) -> &AuditCounters {
        &self.inner.audit.counters
    }
}

/// Records one finding; returns whether it changed the piece's state (it was still healthy
/// and on that node). The caller wakes repair once it released the segment.
async fn record(
    inner: &Inner,
    finding: PieceFinding,
    report: &mut AuditReport,
) -> Result<bool, ObjectError> {
    if inner
        .meta
        .record_findings(vec![finding.clone()])
        .await?
        .is_empty()
    {
        return Ok(false);
    }
    inner.transfers.metrics().health.finding(
        &finding.node,
        finding.state.as_str(),
        &finding.found_by,
    );
    tracing::warn!(
        node = %finding.node,
        segment = finding.segment,
        piece = finding.number,
        kind = finding.state.as_str(),
        found_by = %finding.found_by,
        "faulty piece found by the audit; recorded for repair"
    );
    let c = &inner.audit.counters;
    match finding.state {
        PieceState::Corrupt => {
            report.corrupt += 1;
            c.corrupt.inc();
        }
        _ => {
            report.missing += 1;
            c.missing.inc();
        }
    }
    if report.findings.len() < REPORTED {
        report.findings.push(finding);
    }
    Ok(true)
}

/// A uniformly random number below `n` (`n > 0`; the modulo bias is at most `n / 2^64`).
fn random_below(n: u64) -> Result<u64, ObjectError> {
    let mut b = [0u8; 8];
    crate::crypto::random_bytes(&mut b)?;
    Ok(u64::from_le_bytes(b) % n.max(1))
}
