//! The `/v1/stats` report and its human rendering for `gateway stats`.
//!
//! [`StatsReport`] is the JSON document the admin listener serves; field names are the wire
//! format, so renaming one breaks older `gateway stats` clients. [`render`] turns it into a
//! plain-text summary: it never divides by zero (a ratio without a denominator prints `n/a`),
//! and strips control characters from strings that came from nodes or the configuration
//! (ids, domains, error messages), so a hostile node cannot drive the operator's terminal.

use std::fmt::Write as _;

use std::collections::BTreeMap;

use crate::erasure::Scheme;
use crate::metrics::{MetricsSnapshot, NodeOrphans, NodeTraffic, Reason};

/// Everything `gateway stats` shows, computed on demand by the running gateway.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct StatsReport {
    pub version: String,
    pub uptime_secs: u64,
    /// The erasure scheme (`minimum/repair/success/total` in JSON, e.g. `"4/5/6/8"`).
    pub scheme: Scheme,
    pub limits: LimitsReport,
    /// What the metadata says is stored now.
    pub stored: StoredTotals,
    /// Counters since the process started.
    pub traffic: MetricsSnapshot,
    pub nodes: Vec<NodeReport>,
    /// Metadata replication to the nodes (see `replication`).
    #[serde(default)]
    pub replication: Option<ReplicationReport>,
    /// Orphan pieces on the nodes (see `object::orphans`).
    #[serde(default)]
    pub orphans: Option<OrphanReport>,
    /// Segment health, findings and repair (see `object::repair`).
    #[serde(default)]
    pub health: Option<HealthReport>,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct HealthReport {
    /// Pieces a segment has at full health (the scheme's `success`).
    pub full: u16,
    /// The background repair rebuilds segments with at most this many healthy pieces (or any
    /// piece known bad); `None`: background repair is off.
    pub repair_threshold: Option<u16>,
    /// Erasure-coded segments of live objects by healthy-piece count, ascending.
    pub segments: Vec<HealthyCount>,
    /// Pieces of live objects known missing, corrupt or lost.
    pub pieces_not_ok: Vec<PiecesNotOk>,
    /// What the kept history of findings holds (the newest 10 000).
    pub findings: Vec<FindingCount>,
    /// Repair since start.
    pub repair: RepairStats,
    /// The audit since start; `None`: the audit is off.
    #[serde(default)]
    pub audit: Option<AuditStats>,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct AuditStats {
    pub interval_secs: u64,
    pub passes: u64,
    pub pieces_listed: u64,
    pub pieces_sampled: u64,
    pub bytes_verified: u64,
    /// Findings that changed a piece's state.
    pub missing: u64,
    pub corrupt: u64,
    /// When the last pass ended (unix seconds; 0: none yet).
    pub last_pass_secs: i64,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct HealthyCount {
    pub healthy: u16,
    pub segments: u64,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct PiecesNotOk {
    pub node: String,
    /// `missing`, `corrupt` or `lost`.
    pub state: String,
    pub pieces: u64,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct FindingCount {
    pub node: String,
    pub kind: String,
    pub found_by: String,
    pub count: u64,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct RepairStats {
    pub passes: u64,
    pub segments: u64,
    pub pieces: u64,
    /// Bytes sent to nodes by repair.
    pub bytes: u64,
    pub failed: u64,
    pub pending: u64,
    /// When the last pass ended (unix seconds; 0: none yet).
    pub last_pass_secs: i64,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct OrphanReport {
    /// How long a piece stays an orphan before it is deleted; `None`: orphans are only
    /// reported.
    pub grace_secs: Option<u64>,
    pub scan_interval_secs: u64,
    /// By node id: nodes scanned or swept since start.
    pub nodes: BTreeMap<String, NodeOrphans>,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ReplicationReport {
    /// "async", "sync" or "off".
    pub mode: String,
    /// The newest committed metadata change, and the newest one durable on the nodes.
    pub last_seq: u64,
    pub shipped_seq: u64,
    /// Newest snapshot on the nodes (0: none yet), the change it ends with, when taken.
    pub snapshot: u64,
    pub snapshot_seq: u64,
    pub snapshot_ms: i64,
    /// Log batches written since that snapshot, and their bytes.
    pub batches_since_snapshot: u64,
    pub log_bytes_since_snapshot: u64,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct LimitsReport {
    pub max_connections: u64,
    pub max_per_node: u64,
    /// `None`: unlimited.
    pub upload_bytes_per_sec: Option<u64>,
    pub download_bytes_per_sec: Option<u64>,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct StoredTotals {
    pub objects: u64,
    pub segments: u64,
    pub pieces: u64,
    /// Object bytes (plaintext).
    pub plain_bytes: u64,
    /// Bytes of the pieces kept on nodes.
    pub encoded_bytes: u64,
    /// Bytes sent to nodes when uploading them, long tail included.
    pub uploaded_bytes: u64,
    /// Of `uploaded_bytes`, those spent on pieces cancelled or failed.
    pub long_tail_bytes: u64,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct NodeReport {
    pub id: String,
    pub kind: String,
    pub domain: Option<String>,
    /// `healthy`, `degraded`, `backoff` or `offline`.
    pub state: String,
    pub consecutive_errors: u32,
    pub backoff_remaining_ms: u64,
    /// Smoothed latency of recent requests.
    pub latency_ms: Option<f64>,
    pub last_error: Option<String>,
    /// Free and total bytes of the node's storage; absent when the node cannot tell (an S3
    /// bucket) or did not answer in time.
    #[serde(default)]
    pub free_bytes: Option<u64>,
    #[serde(default)]
    pub total_bytes: Option<u64>,
}

/// The readable summary `gateway stats` prints.
pub fn render(report: &StatsReport) -> String {
    let mut out = String::new();
    header(&mut out, report);
    stored(&mut out, report);
    session(&mut out, &report.traffic);
    nodes(&mut out, report);
    replication(&mut out, report);
    orphans(&mut out, report);
    health(&mut out, report);
    out
}

fn health(out: &mut String, r: &StatsReport) {
    let Some(h) = &r.health else { return };
    let repair = match h.repair_threshold {
        Some(t) => format!("repaired at {t} healthy pieces or fewer"),
        None => "background repair off".to_string(),
    };
    let _ = writeln!(out, "segment health ({} pieces is full; {repair}):", h.full);
    let total: u64 = h.segments.iter().map(|c| c.segments).sum();
    let degraded: u64 = h
        .segments
        .iter()
        .filter(|c| c.healthy < h.full)
        .map(|c| c.segments)
        .sum();
    let by = h
        .segments
        .iter()
        .map(|c| format!("{} at {}/{}", c.segments, c.healthy, h.full))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        out,
        "  segments: {total}, {degraded} below full health{}",
        if by.is_empty() {
            String::new()
        } else {
            format!(" ({by})")
        }
    );
    if !h.pieces_not_ok.is_empty() {
        let list = h
            .pieces_not_ok
            .iter()
            .map(|p| format!("{} {} on {}", p.pieces, clean(&p.state), clean(&p.node)))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(out, "  pieces not ok: {}", truncate(&list, 400));
    }
    if !h.findings.is_empty() {
        let list = h
            .findings
            .iter()
            .map(|f| {
                format!(
                    "{} {} on {} (by {})",
                    f.count,
                    clean(&f.kind),
                    clean(&f.node),
                    clean(&f.found_by)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(out, "  findings kept: {}", truncate(&list, 400));
    }
    let p = &h.repair;
    let last = last_pass(p.last_pass_secs);
    let _ = writeln!(
        out,
        "  repair since start: {} segments ({} pieces, {}), {} failed, {} pending, {} passes{last}",
        p.segments,
        p.pieces,
        human_bytes(p.bytes),
        p.failed,
        p.pending,
        p.passes,
    );
    match &h.audit {
        None => {
            let _ = writeln!(out, "  audit: off");
        }
        Some(a) => {
            let _ = writeln!(
                out,
                "  audit since start (every {}): {} pieces checked against listings, {} sampled ({} verified); found {} missing, {} corrupt; {} passes{}",
                human_duration(a.interval_secs),
                a.pieces_listed,
                a.pieces_sampled,
                human_bytes(a.bytes_verified),
                a.missing,
                a.corrupt,
                a.passes,
                last_pass(a.last_pass_secs),
            );
        }
    }
}

/// "; last pass 5m 3s ago", or nothing before the first pass.
fn last_pass(at_secs: i64) -> String {
    if at_secs <= 0 {
        return String::new();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    format!(
        "; last pass {} ago",
        human_duration(now.saturating_sub(at_secs).max(0) as u64)
    )
}

fn orphans(out: &mut String, r: &StatsReport) {
    let Some(o) = &r.orphans else { return };
    let sum = |f: &dyn Fn(&NodeOrphans) -> u64| {
        o.nodes
            .values()
            .fold(0u64, |acc, n| acc.saturating_add(f(n)))
    };
    let grace = match o.grace_secs {
        Some(s) => format!("deleted after {}", human_duration(s)),
        None => "only reported (orphan_grace off)".to_string(),
    };
    let _ = writeln!(
        out,
        "orphan pieces (referenced by no metadata; {grace}, scan every {}):",
        human_duration(o.scan_interval_secs)
    );
    let scanned = o.nodes.values().any(|n| n.last_scan_ms > 0);
    let unknown_size = sum(&|n| n.unsized_pieces);
    let _ = writeln!(
        out,
        "  orphans: {} pieces, {} pending{}; reclaimed {} pieces, {} since start{}",
        sum(&|n| n.pending_pieces),
        human_bytes(sum(&|n| n.pending_bytes)),
        if unknown_size > 0 {
            format!(" ({unknown_size} of unknown size)")
        } else {
            String::new()
        },
        sum(&|n| n.reclaimed_pieces),
        human_bytes(sum(&|n| n.reclaimed_bytes)),
        if scanned { "" } else { " (no scan yet)" },
    );
    let temp = sum(&|n| n.temp_removed_files);
    if temp > 0 {
        let _ = writeln!(
            out,
            "  temp files of unfinished uploads removed at start: {temp}, {}",
            human_bytes(sum(&|n| n.temp_removed_bytes))
        );
    }
    for (node, n) in &o.nodes {
        if let Some(why) = &n.held {
            let _ = writeln!(
                out,
                "  {}: deletions held: {}",
                clean(node),
                truncate(&clean(why), 400)
            );
        }
    }
}

fn replication(out: &mut String, r: &StatsReport) {
    let Some(rep) = &r.replication else { return };
    let _ = writeln!(
        out,
        "metadata replication ({}): change {} committed, {} on the nodes ({} behind); snapshot {} (to change {}), {} log batches ({}) since",
        rep.mode,
        rep.last_seq,
        rep.shipped_seq,
        rep.last_seq.saturating_sub(rep.shipped_seq),
        rep.snapshot,
        rep.snapshot_seq,
        rep.batches_since_snapshot,
        human_bytes(rep.log_bytes_since_snapshot),
    );
}

fn header(out: &mut String, r: &StatsReport) {
    let _ = writeln!(
        out,
        "gateway {}, up {}, scheme {} (minimum/repair/success/total)",
        clean(&r.version),
        human_duration(r.uptime_secs),
        r.scheme
    );
    let rate = |limit: Option<u64>| match limit {
        Some(b) => format!("{}/s", human_bytes(b)),
        None => "unlimited".to_string(),
    };
    let _ = writeln!(
        out,
        "limits: {} node connections, {} per node; upload {}, download {}",
        r.limits.max_connections,
        r.limits.max_per_node,
        rate(r.limits.upload_bytes_per_sec),
        rate(r.limits.download_bytes_per_sec)
    );
}

fn stored(out: &mut String, r: &StatsReport) {
    let s = &r.stored;
    let _ = writeln!(out, "\nStored now");
    let _ = writeln!(
        out,
        "  objects {}, segments {}, pieces {}",
        s.objects, s.segments, s.pieces
    );
    let sc = r.scheme;
    let bounds = format!(
        "scheme: {} at success, {} at total",
        times(ratio(sc.success.into(), sc.minimum.into())),
        times(ratio(sc.total.into(), sc.minimum.into()))
    );
    let rows = [
        [
            "object bytes".to_string(),
            human_bytes(s.plain_bytes),
            String::new(),
        ],
        [
            "on nodes".to_string(),
            human_bytes(s.encoded_bytes),
            format!(
                "{} object bytes",
                times(ratio(s.encoded_bytes, s.plain_bytes))
            ),
        ],
        [
            "uploaded".to_string(),
            human_bytes(s.uploaded_bytes),
            format!(
                "expansion {} ({bounds})",
                times(ratio(s.uploaded_bytes, s.plain_bytes))
            ),
        ],
        [
            "long-tail waste".to_string(),
            human_bytes(s.long_tail_bytes),
            format!(
                "{} of uploaded",
                percent(ratio(s.long_tail_bytes, s.uploaded_bytes))
            ),
        ],
    ];
    out.push_str(&table(None, &rows, &[false, true, false], "  "));
}

fn session(out: &mut String, t: &MetricsSnapshot) {
    let _ = writeln!(out, "\nSince start");
    let _ = writeln!(
        out,
        "  S3 in {}, S3 out {}",
        human_bytes(t.s3_received_bytes),
        human_bytes(t.s3_sent_bytes)
    );
    let by_reason = |total: u64, of: &dyn Fn(Reason) -> u64| {
        let parts: Vec<String> = Reason::ALL
            .iter()
            .filter(|r| of(**r) > 0)
            .map(|r| format!("{} {}", r.as_str(), human_bytes(of(*r))))
            .collect();
        if parts.is_empty() {
            human_bytes(total)
        } else {
            format!("{} ({})", human_bytes(total), parts.join(", "))
        }
    };
    let up = t.node_sent_total();
    let _ = writeln!(out, "  to nodes {}", by_reason(up, &|r| t.node_sent_for(r)));
    let _ = writeln!(
        out,
        "  from nodes {}",
        by_reason(t.node_received_total(), &|r| t.node_received_for(r))
    );
    let _ = writeln!(
        out,
        "  node up / S3 in: {}",
        times(ratio(up, t.s3_received_bytes))
    );
    let (ok, failed) = t.nodes.values().fold((0u64, 0u64), |(ok, failed), n| {
        (
            ok.saturating_add(n.requests_ok),
            failed.saturating_add(n.requests_error),
        )
    });
    let _ = writeln!(
        out,
        "  node requests: {ok} ok, {failed} failed; peak connections {}",
        t.peak_connections
    );
}

fn nodes(out: &mut String, r: &StatsReport) {
    let mut states: Vec<(&str, usize)> = Vec::new();
    for n in &r.nodes {
        match states.iter_mut().find(|(s, _)| *s == n.state) {
            Some((_, count)) => *count += 1,
            None => states.push((&n.state, 1)),
        }
    }
    let states: Vec<String> = states
        .iter()
        .map(|(s, c)| format!("{c} {}", clean(s)))
        .collect();
    let _ = writeln!(
        out,
        "\nNodes: {}{}",
        r.nodes.len(),
        if states.is_empty() {
            String::new()
        } else {
            format!(" ({})", states.join(", "))
        }
    );

    let idle = NodeTraffic::default();
    let mut rows: Vec<[String; 10]> = r
        .nodes
        .iter()
        .map(|n| node_row(n, r.traffic.nodes.get(&n.id).unwrap_or(&idle)))
        .collect();
    // Nodes with traffic this session but no longer configured still account for bytes.
    for (id, t) in &r.traffic.nodes {
        if !r.nodes.iter().any(|n| &n.id == id) {
            let gone = NodeReport {
                id: id.clone(),
                state: "not configured".to_string(),
                ..NodeReport::default()
            };
            rows.push(node_row(&gone, t));
        }
    }
    if rows.is_empty() {
        return;
    }
    // Traffic is counted by the gateway: what it sent to each node and received from it.
    let headers = [
        "NODE",
        "DOMAIN",
        "STATE",
        "FAILED",
        "IN A ROW",
        "LATENCY",
        "FREE",
        "TO NODE",
        "FROM NODE",
        "CONNS",
    ]
    .map(String::from);
    let right = [
        false, false, false, true, true, true, true, true, true, true,
    ];
    out.push_str(&table(Some(&headers), &rows, &right, "  "));

    let errors: Vec<String> = r
        .nodes
        .iter()
        .filter_map(|n| {
            let e = n.last_error.as_deref()?;
            Some(format!("  {}: {}", clean(&n.id), truncate(&clean(e), 200)))
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(out, "\nLast errors");
        for e in errors {
            let _ = writeln!(out, "{e}");
        }
    }
}

fn node_row(n: &NodeReport, t: &NodeTraffic) -> [String; 10] {
    let state = if n.backoff_remaining_ms > 0 {
        format!(
            "{} {:.1}s",
            clean(&n.state),
            n.backoff_remaining_ms as f64 / 1000.0
        )
    } else {
        clean(&n.state)
    };
    [
        clean(&n.id),
        n.domain.as_deref().map_or_else(|| "-".to_string(), clean),
        state,
        t.requests_error.to_string(),
        n.consecutive_errors.to_string(),
        n.latency_ms
            .filter(|l| l.is_finite())
            .map_or_else(|| "-".to_string(), |l| format!("{l:.1} ms")),
        n.free_bytes.map_or_else(|| "-".to_string(), human_bytes),
        human_bytes(t.sent_total()),
        human_bytes(t.received_total()),
        t.connections.to_string(),
    ]
}

/// Rows padded to their columns' widths; `right[i]` right-aligns column `i`.
fn table<const N: usize>(
    headers: Option<&[String; N]>,
    rows: &[[String; N]],
    right: &[bool; N],
    indent: &str,
) -> String {
    let mut widths = [0usize; N];
    for row in headers.into_iter().chain(rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in headers.into_iter().chain(rows) {
        let mut line = indent.to_string();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = " ".repeat(widths[i].saturating_sub(cell.chars().count()));
            if right[i] {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&pad);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

fn times(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".to_string(), |r| format!("{r:.2}x"))
}

fn percent(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".to_string(), |r| format!("{:.1}%", r * 100.0))
}

/// `512 B`, `1.5 KiB`, `3.0 GiB`: binary units, one decimal.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    // 1023.96 KiB would print as "1024.0 KiB": move up while the rounded value reaches 1024.
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m"),
    }
}

/// Control characters (escape sequences, newlines) replaced by spaces.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const MIB: u64 = 1 << 20;

    fn traffic(sent: &[(&str, u64)], received: &[(&str, u64)]) -> NodeTraffic {
        let map = |kv: &[(&str, u64)]| -> BTreeMap<String, u64> {
            kv.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        NodeTraffic {
            sent_bytes: map(sent),
            received_bytes: map(received),
            requests_ok: 10,
            requests_error: 2,
            connections: 3,
        }
    }

    pub(crate) fn sample_report() -> StatsReport {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "node-1".to_string(),
            traffic(
                &[("upload", 150 * MIB), ("long_tail", 25 * MIB)],
                &[("download", 30 * MIB)],
            ),
        );
        StatsReport {
            health: None,
            replication: Some(ReplicationReport {
                mode: "async".into(),
                last_seq: 120,
                shipped_seq: 118,
                snapshot: 3,
                snapshot_seq: 100,
                snapshot_ms: 0,
                batches_since_snapshot: 4,
                log_bytes_since_snapshot: 16384,
            }),
            orphans: Some(OrphanReport {
                grace_secs: Some(86_400),
                scan_interval_secs: 6 * 3600,
                nodes: [
                    (
                        "node-1".to_string(),
                        NodeOrphans {
                            pending_pieces: 3,
                            pending_bytes: 3 * MIB,
                            reclaimed_pieces: 10,
                            reclaimed_bytes: 20 * MIB,
                            last_scan_ms: 1,
                            temp_removed_files: 2,
                            temp_removed_bytes: MIB,
                            ..NodeOrphans::default()
                        },
                    ),
                    (
                        "node-2".to_string(),
                        NodeOrphans {
                            pending_pieces: 4,
                            unsized_pieces: 4,
                            held: Some("too many\x1b[2J".into()),
                            last_scan_ms: 1,
                            ..NodeOrphans::default()
                        },
                    ),
                ]
                .into_iter()
                .collect(),
            }),
            version: "0.1.0".into(),
            uptime_secs: 3 * 3600 + 4 * 60 + 5,
            scheme: "4/5/6/8".parse().unwrap(),
            limits: LimitsReport {
                max_connections: 64,
                max_per_node: 8,
                upload_bytes_per_sec: Some(50 * MIB),
                download_bytes_per_sec: None,
            },
            stored: StoredTotals {
                objects: 3,
                segments: 4,
                pieces: 24,
                plain_bytes: 100 * MIB,
                encoded_bytes: 150 * MIB,
                uploaded_bytes: 175 * MIB,
                long_tail_bytes: 25 * MIB,
            },
            traffic: MetricsSnapshot {
                s3_received_bytes: 100 * MIB,
                s3_sent_bytes: 20 * MIB,
                nodes,
                peak_connections: 12,
            },
            nodes: vec![
                NodeReport {
                    id: "node-1".into(),
                    kind: "dir".into(),
                    domain: Some("rack-a".into()),
                    state: "healthy".into(),
                    consecutive_errors: 0,
                    backoff_remaining_ms: 0,
                    latency_ms: Some(12.3),
                    last_error: None,
                    free_bytes: Some(1 << 30),
                    total_bytes: Some(4 << 30),
                },
                NodeReport {
                    id: "node-2".into(),
                    kind: "remote".into(),
                    domain: None,
                    state: "backoff".into(),
                    consecutive_errors: 4,
                    backoff_remaining_ms: 2500,
                    latency_ms: None,
                    last_error: Some("connection refused\x1b[2J".into()),
                    free_bytes: None,
                    total_bytes: None,
                },
            ],
        }
    }

    fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{text}"))
    }

    #[test]
    fn renders_expansion_waste_and_bounds() {
        let text = render(&sample_report());
        assert!(line_with(&text, "gateway 0.1.0").contains("up 3h 4m 5s"));
        assert!(line_with(&text, "gateway 0.1.0").contains("scheme 4/5/6/8"));
        assert!(line_with(&text, "limits:").contains("upload 50.0 MiB/s, download unlimited"));
        let uploaded = line_with(&text, "  uploaded ");
        assert!(uploaded.contains("175.0 MiB"), "{uploaded}");
        assert!(uploaded.contains("expansion 1.75x"), "{uploaded}");
        assert!(
            uploaded.contains("(scheme: 1.50x at success, 2.00x at total)"),
            "{uploaded}"
        );
        assert!(line_with(&text, "on nodes").contains("1.50x object bytes"));
        let rep = line_with(&text, "metadata replication");
        assert!(
            rep.contains("(async)") && rep.contains("118 on the nodes (2 behind)"),
            "{rep}"
        );
        assert!(
            rep.contains("snapshot 3 (to change 100), 4 log batches (16.0 KiB)"),
            "{rep}"
        );
        let waste = line_with(&text, "long-tail waste");
        assert!(
            waste.contains("25.0 MiB") && waste.contains("14.3% of uploaded"),
            "{waste}"
        );
        assert!(line_with(&text, "S3 in").contains("S3 in 100.0 MiB, S3 out 20.0 MiB"));
        assert!(line_with(&text, "to nodes")
            .contains("175.0 MiB (upload 150.0 MiB, long_tail 25.0 MiB)"));
        assert!(line_with(&text, "from nodes").contains("30.0 MiB (download 30.0 MiB)"));
        assert!(line_with(&text, "node up / S3 in").contains("1.75x"));
        assert!(line_with(&text, "node requests").contains("10 ok, 2 failed"));
        assert!(line_with(&text, "Nodes: 2").contains("(1 healthy, 1 backoff)"));
    }

    #[test]
    fn renders_orphans() {
        let text = render(&sample_report());
        let head = line_with(&text, "orphan pieces");
        assert!(head.contains("deleted after 1d 0h 0m"), "{head}");
        assert!(head.contains("scan every 6h 0m 0s"), "{head}");
        let line = line_with(&text, "  orphans: ");
        assert_eq!(
            line,
            "  orphans: 7 pieces, 3.0 MiB pending (4 of unknown size); reclaimed 10 pieces, 20.0 MiB since start"
        );
        assert!(line_with(&text, "temp files").ends_with("removed at start: 2, 1.0 MiB"));
        let held = line_with(&text, "node-2: deletions held: too many");
        assert!(!held.contains('\x1b'));
        let mut off = sample_report();
        off.orphans = Some(OrphanReport {
            grace_secs: None,
            scan_interval_secs: 60,
            nodes: BTreeMap::new(),
        });
        let text = render(&off);
        assert!(line_with(&text, "orphan pieces").contains("only reported"));
        assert!(line_with(&text, "  orphans: 0 pieces").ends_with("(no scan yet)"));
        off.orphans = None;
        assert!(!render(&off).contains("orphan"));
    }

    #[test]
    fn renders_segment_health_and_repair() {
        let mut r = sample_report();
        assert!(!render(&r).contains("segment health"));
        r.health = Some(HealthReport {
            full: 8,
            repair_threshold: Some(6),
            segments: vec![
                HealthyCount {
                    healthy: 6,
                    segments: 2,
                },
                HealthyCount {
                    healthy: 8,
                    segments: 98,
                },
            ],
            pieces_not_ok: vec![PiecesNotOk {
                node: "n\x1b[2J3".into(),
                state: "lost".into(),
                pieces: 4,
            }],
            findings: vec![FindingCount {
                node: "n2".into(),
                kind: "corrupt".into(),
                found_by: "read".into(),
                count: 1,
            }],
            repair: RepairStats {
                passes: 3,
                segments: 5,
                pieces: 9,
                bytes: 3 * MIB,
                failed: 1,
                pending: 2,
                last_pass_secs: 0,
            },
            audit: Some(AuditStats {
                interval_secs: 3600,
                passes: 2,
                pieces_listed: 1200,
                pieces_sampled: 40,
                bytes_verified: 2 * MIB,
                missing: 1,
                corrupt: 0,
                last_pass_secs: 0,
            }),
        });
        let text = render(&r);
        assert!(line_with(&text, "segment health")
            .contains("(8 pieces is full; repaired at 6 healthy pieces or fewer)"));
        assert_eq!(
            line_with(&text, "  segments:"),
            "  segments: 100, 2 below full health (2 at 6/8, 98 at 8/8)"
        );
        let bad = line_with(&text, "  pieces not ok:");
        assert!(bad.contains("4 lost on n"), "{bad}");
        assert!(!text.contains('\x1b'));
        assert_eq!(
            line_with(&text, "  findings kept:"),
            "  findings kept: 1 corrupt on n2 (by read)"
        );
        assert_eq!(
            line_with(&text, "  repair since start:"),
            "  repair since start: 5 segments (9 pieces, 3.0 MiB), 1 failed, 2 pending, 3 passes"
        );
        assert_eq!(
            line_with(&text, "  audit since start"),
            "  audit since start (every 1h 0m 0s): 1200 pieces checked against listings, 40 sampled (2.0 MiB verified); found 1 missing, 0 corrupt; 2 passes"
        );
        r.health.as_mut().unwrap().audit = None;
        assert!(render(&r).contains("  audit: off"));
    }

    #[test]
    fn renders_one_line_per_node() {
        let text = render(&sample_report());
        let header = line_with(&text, "NODE");
        assert!(header.contains("LATENCY") && header.contains("FROM NODE"));
        let n1: Vec<&str> = line_with(&text, "  node-1 ").split_whitespace().collect();
        assert_eq!(
            n1,
            [
                "node-1", "rack-a", "healthy", "2", "0", "12.3", "ms", "1.0", "GiB", "175.0",
                "MiB", "30.0", "MiB", "3"
            ]
        );
        let n2: Vec<&str> = line_with(&text, "  node-2 ").split_whitespace().collect();
        assert_eq!(
            n2,
            ["node-2", "-", "backoff", "2.5s", "0", "4", "-", "-", "0", "B", "0", "B", "0"]
        );
        // Columns line up: every table line has its TO NODE column at the same offset.
        let col = header.find("TO NODE").unwrap() + "TO NODE".len();
        let n1_line = line_with(&text, "  node-1 ");
        assert_eq!(&n1_line[col - 3..col], "MiB");
        // The escape sequence a node put in its error is neutralised.
        let err = line_with(&text, "node-2: connection refused");
        assert!(!err.contains('\x1b'));
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn zero_objects_and_no_traffic_print_na() {
        let report = StatsReport {
            version: "0.1.0".into(),
            scheme: "29/35/80/110".parse().unwrap(),
            ..StatsReport::default()
        };
        let text = render(&report);
        assert!(line_with(&text, "objects 0, segments 0, pieces 0").starts_with("  "));
        assert!(line_with(&text, "on nodes").contains("n/a object bytes"));
        let uploaded = line_with(&text, "  uploaded ");
        assert!(uploaded.contains("expansion n/a"), "{uploaded}");
        assert!(
            uploaded.contains("2.76x at success, 3.79x at total"),
            "{uploaded}"
        );
        assert!(line_with(&text, "long-tail waste").contains("n/a of uploaded"));
        assert!(line_with(&text, "node up / S3 in").contains("n/a"));
        assert!(line_with(&text, "to nodes").ends_with("to nodes 0 B"));
        assert!(text.contains("Nodes: 0\n"));
        assert!(!text.contains("NaN") && !text.contains("inf"));
    }

    #[test]
    fn unconfigured_nodes() {
        let mut report = sample_report();
        report.nodes.clear();
        let text = render(&report);
        assert!(line_with(&text, "  node-1 ").contains("not configured"));
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(MIB - 1), "1.0 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
        assert_eq!(human_duration(59), "59s");
        assert_eq!(human_duration(61), "1m 1s");
        assert_eq!(human_duration(90_061), "1d 1h 1m");
        assert_eq!(truncate("héllo", 2), "hé...");
        assert_eq!(truncate("hé", 2), "hé");
    }

    #[test]
    fn report_json_round_trips() {
        let report = sample_report();
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(serde_json::from_str::<StatsReport>(&json).unwrap(), report);
    }
}
