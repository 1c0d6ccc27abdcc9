//! Segment health, findings and repair: the families [`HealthMetrics`] registers.
//!
//! - `gateway_piece_findings_total{node,kind,found_by}`: pieces whose state a finding changed
//!   (`kind` `missing` or `corrupt`, `found_by` `read`, `audit`, `listing`...). A piece already
//!   known bad is not counted again.
//! - `gateway_segments{healthy}`: erasure-coded segments of live objects by healthy-piece
//!   count, and `gateway_pieces_not_ok{node,state}`: pieces in state `missing`, `corrupt` or
//!   `lost`. Both are the metadata's counts as of the last repair pass or `gateway stats` call
//!   (a query, not a running count); a series whose count fell to zero disappears.
//! - `gateway_repair_segments_total`, `gateway_repair_pieces_total`,
//!   `gateway_repair_failed_total`, `gateway_repair_passes_total`: segments rebuilt, pieces
//!   written by them, segment repairs that failed (retried later), passes finished.
//!   `gateway_repair_pending`: segments the last pass could not bring above the threshold;
//!   `gateway_repair_last_pass_timestamp_seconds`. Repair bytes are
//!   `gateway_node_sent_bytes_total{reason="repair"}`.
//! - The audit ([`AuditCounters`]): `gateway_audit_pieces_listed_total` (pieces the metadata
//!   expects that were compared with a node's listing), `gateway_audit_pieces_sampled_total`,
//!   `gateway_audit_verified_bytes_total`, `gateway_audit_missing_total`,
//!   `gateway_audit_corrupt_total` (findings that changed a piece's state),
//!   `gateway_audit_passes_total`, `gateway_audit_last_pass_timestamp_seconds`. Audit reads are
//!   `gateway_node_received_bytes_total{reason="audit"}`.

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, EncodeLabelSet)]
struct FindingLabels {
    node: String,
    kind: String,
    found_by: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, EncodeLabelSet)]
struct HealthyLabels {
    healthy: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, EncodeLabelSet)]
struct NotOkLabels {
    node: String,
    state: String,
}

/// Repair since start, as [`HealthMetrics::repair`] reads it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepairTotals {
    pub passes: u64,
    pub segments: u64,
    pub pieces: u64,
    pub failed: u64,
    pub pending: u64,
    /// When the last pass ended (unix seconds; 0: none yet).
    pub last_pass_secs: i64,
}

/// What the audit did since start: counters registered in the metrics, shared with the
/// object layer's audit (cloning shares the values).
#[derive(Debug, Clone, Default)]
pub struct AuditCounters {
    pub pieces_listed: Counter,
    pub pieces_sampled: Counter,
    pub bytes_verified: Counter,
    pub missing: Counter,
    pub corrupt: Counter,
    pub passes: Counter,
    /// When the last pass ended (unix seconds; 0: none yet).
    pub last_pass_secs: Gauge,
}

impl AuditCounters {
    fn register(&self, registry: &mut Registry) {
        let counters = [
            (
                "gateway_audit_pieces_listed",
                "Pieces the metadata expects that the audit compared with a node's listing",
                &self.pieces_listed,
            ),
            (
                "gateway_audit_pieces_sampled",
                "Pieces the audit read a sampled range of",
                &self.pieces_sampled,
            ),
            (
                "gateway_audit_missing",
                "Pieces the audit found missing (state changes recorded)",
                &self.missing,
            ),
            (
                "gateway_audit_corrupt",
                "Pieces the audit found corrupt (state changes recorded)",
                &self.corrupt,
            ),
            (
                "gateway_audit_passes",
                "Audit passes finished",
                &self.passes,
            ),
        ];
        for (name, help, c) in counters {
            registry.register(name, help, c.clone());
        }
        registry.register_with_unit(
            "gateway_audit_verified",
            "Piece bytes the audit read and verified",
            prometheus_client::registry::Unit::Bytes,
            self.bytes_verified.clone(),
        );
        registry.register(
            "gateway_audit_last_pass_timestamp_seconds",
            "When the last audit pass ended (unix time)",
            self.last_pass_secs.clone(),
        );
    }
}

pub struct HealthMetrics {
    /// The audit's counters.
    pub audit: AuditCounters,
    findings: Family<FindingLabels, Counter>,
    segments: Family<HealthyLabels, Gauge>,
    not_ok: Family<NotOkLabels, Gauge>,
    /// The label sets `segments` and `not_ok` hold now, to remove those a new count lacks
    /// (removing only those: a scrape never sees a series vanish and come back).
    shown: Mutex<(BTreeSet<HealthyLabels>, BTreeSet<NotOkLabels>)>,
    repaired_segments: Counter,
    repaired_pieces: Counter,
    repair_failed: Counter,
    repair_passes: Counter,
    repair_pending: Gauge,
    repair_last_pass: Gauge,
}

impl HealthMetrics {
    pub(super) fn register(registry: &mut Registry) -> HealthMetrics {
        let m = HealthMetrics {
            audit: AuditCounters::default(),
            findings: Family::default(),
            segments: Family::default(),
            not_ok: Family::default(),
            shown: Mutex::new((BTreeSet::new(), BTreeSet::new())),
            repaired_segments: Counter::default(),
            repaired_pieces: Counter::default(),
            repair_failed: Counter::default(),
            repair_passes: Counter::default(),
            repair_pending: Gauge::default(),
            repair_last_pass: Gauge::default(),
        };
        registry.register(
            "gateway_piece_findings",
            "Pieces found missing or corrupt, by node, kind and what found them",
            m.findings.clone(),
        );
        registry.register(
            "gateway_segments",
            "Erasure-coded segments of live objects by healthy-piece count (as of the last count)",
            m.segments.clone(),
        );
        registry.register(
            "gateway_pieces_not_ok",
            "Pieces of live objects known missing, corrupt or lost, by node and state (as of the last count)",
            m.not_ok.clone(),
        );
        registry.register(
            "gateway_repair_segments",
            "Segments repair rebuilt pieces for",
            m.repaired_segments.clone(),
        );
        registry.register(
            "gateway_repair_pieces",
            "Pieces written by repair",
            m.repaired_pieces.clone(),
        );
        registry.register(
            "gateway_repair_failed",
            "Segment repairs that failed (retried by a later pass)",
            m.repair_failed.clone(),
        );
        registry.register(
            "gateway_repair_passes",
            "Repair passes finished",
            m.repair_passes.clone(),
        );
        registry.register(
            "gateway_repair_pending",
            "Segments the last repair pass could not bring above its threshold",
            m.repair_pending.clone(),
        );
        registry.register(
            "gateway_repair_last_pass_timestamp_seconds",
            "When the last repair pass ended (unix time)",
            m.repair_last_pass.clone(),
        );
        m.audit.register(registry);
        m
    }

    /// Counts a finding that changed a piece's state.
    pub fn finding(&self, node: &str, kind: &str, found_by: &str) {
        self.findings
            .get_or_create(&FindingLabels {
                node: node.to_owned(),
                kind: kind.to_owned(),
                found_by: found_by.to_owned(),
            })
            .inc();
    }

    /// Sets the health gauges from a count of the metadata: `(healthy, segments)` and
    /// `(node, state, pieces)`.
    pub fn set_counts(&self, by_healthy: &[(u16, u64)], not_ok: &[(String, String, u64)]) {
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut shown = self.shown.lock().unwrap_or_else(PoisonError::into_inner);
        let segs: BTreeSet<HealthyLabels> = by_healthy
            .iter()
            .map(|&(healthy, n)| {
                let l = HealthyLabels { healthy };
                self.segments.get_or_create(&l).set(gauge(n));
                l
            })
            .collect();
        let bad: BTreeSet<NotOkLabels> = not_ok
            .iter()
            .map(|(node, state, n)| {
                let l = NotOkLabels {
                    node: node.clone(),
                    state: state.clone(),
                };
                self.not_ok.get_or_create(&l).set(gauge(*n));
                l
            })
            .collect();
        for gone in shown.0.difference(&segs) {
            self.segments.remove(gone);
        }
        for gone in shown.1.difference(&bad) {
            self.not_ok.remove(gone);
        }
        *shown = (segs, bad);
    }

    /// Counts one segment repaired with `pieces` new pieces.
    pub fn repaired(&self, pieces: u64) {
        self.repaired_segments.inc();
        self.repaired_pieces.inc_by(pieces);
    }

    pub fn repair_failed(&self) {
        self.repair_failed.inc();
    }

    /// Counts a finished pass that left `pending` segments at or below its threshold.
    pub fn repair_pass(&self, pending: u64, at_secs: i64) {
        self.repair_passes.inc();
        self.repair_pending
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        self.repair_last_pass.set(at_secs);
    }

    /// The repair counters now (the values the exposition shows).
    pub fn repair(&self) -> RepairTotals {
        RepairTotals {
            passes: self.repair_passes.get(),
            segments: self.repaired_segments.get(),
            pieces: self.repaired_pieces.get(),
            failed: self.repair_failed.get(),
            pending: u64::try_from(self.repair_pending.get()).unwrap_or(0),
            last_pass_secs: self.repair_last_pass.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    fn exposition(registry: &Registry) -> String {
        let mut out = String::new();
        encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn counts_replace_the_previous_ones_and_drop_series_that_fell_to_zero() {
        let mut registry = Registry::default();
        let m = HealthMetrics::register(&mut registry);
        m.set_counts(&[(5, 3), (6, 100)], &[("n6".into(), "missing".into(), 3)]);
        let text = exposition(&registry);
        assert!(text.contains("gateway_segments{healthy=\"5\"} 3"), "{text}");
        assert!(
            text.contains("gateway_segments{healthy=\"6\"} 100"),
            "{text}"
        );
        assert!(
            text.contains("gateway_pieces_not_ok{node=\"n6\",state=\"missing\"} 3"),
            "{text}"
        );
        m.set_counts(&[(6, 103)], &[]);
        let text = exposition(&registry);
        assert!(!text.contains("healthy=\"5\""), "{text}");
        assert!(
            text.contains("gateway_segments{healthy=\"6\"} 103"),
            "{text}"
        );
        assert!(!text.contains("gateway_pieces_not_ok{"), "{text}");
    }

    #[test]
    fn repair_and_findings_are_counted() {
        let mut registry = Registry::default();
        let m = HealthMetrics::register(&mut registry);
        m.finding("n2", "corrupt", "read");
        m.finding("n2", "corrupt", "read");
        m.repaired(2);
        m.repaired(1);
        m.repair_failed();
        m.repair_pass(4, 1_700_000_000);
        assert_eq!(
            m.repair(),
            RepairTotals {
                passes: 1,
                segments: 2,
                pieces: 3,
                failed: 1,
                pending: 4,
                last_pass_secs: 1_700_000_000,
            }
        );
        let text = exposition(&registry);
        assert!(
            text.contains(
                "gateway_piece_findings_total{node=\"n2\",kind=\"corrupt\",found_by=\"read\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains("gateway_repair_pieces_total 3"), "{text}");
        assert!(text.contains("gateway_repair_pending 4"), "{text}");
    }
}
