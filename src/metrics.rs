//! Traffic and node metrics: one [`Metrics`] per process, shared as `Arc<Metrics>`, exposed in
//! the OpenMetrics text format by the admin listener (never on the S3 port, where `/metrics`
//! is a bucket name).
//!
//! Exposed families (exact names in the exposition):
//! - `gateway_s3_received_bytes_total`, `gateway_s3_sent_bytes_total`: body bytes from and to
//!   S3 clients.
//! - `gateway_node_sent_bytes_total{node,reason}`, `gateway_node_received_bytes_total{node,reason}`:
//!   bytes sent to / fetched from storage nodes, `reason` one of [`Reason::ALL`]'s labels;
//!   only the series that can count exist ([`Reason::can_send`]: upload, long_tail, repair,
//!   metadata; [`Reason::can_receive`]: every reason but upload and long_tail).
//! - `gateway_node_requests_total{node,op,result}`: finished node requests, `result` `ok` or
//!   `error`.
//! - `gateway_node_connections{node}`: connections open now (opened minus closed);
//!   `gateway_node_connections_peak`: the highest sum over all nodes since start.
//! - `gateway_node_up{node}`: 1 usable, 0 backed off or offline; present only for nodes the
//!   scheduler has reported on.
//! - Orphan collection (`object::orphans`), per node, present once the node was scanned:
//!   `gateway_orphan_pieces{node}` and `gateway_orphan_bytes{node}` (data pieces the last
//!   complete scan found that no metadata references, not deleted yet; bytes of those whose
//!   size the node reported), `gateway_orphan_held{node}` (1 while the safety valve stops
//!   deletions), `gateway_orphan_last_scan_timestamp_seconds{node}`, and the counters
//!   `gateway_orphan_reclaimed_pieces_total{node}`, `gateway_orphan_reclaimed_bytes_total{node}`;
//!   `gateway_temp_removed_files_total{node}`, `gateway_temp_removed_bytes_total{node}`: temp
//!   files of unfinished uploads removed from directory nodes at start.
//! - Segment health, findings and repair: see [`health`].
//!
//! Guarantees:
//! - Every call only touches atomics behind a read lock (a write lock the first time a node
//!   is seen); nothing blocks on I/O and counts are exact under any concurrency.
//! - A node's byte, request and connection series are created together, at zero, by
//!   [`Metrics::add_node`] or the first call naming the node (other than `set_node_up`), so a
//!   rate over them never misses the first increment.
//! - [`Metrics::snapshot`] reads the same counters the exposition shows, not a copy: the two
//!   never disagree beyond the increments that land between the two reads.
//! - `connection_opened` / `connection_closed` must be paired by the caller; an unpaired
//!   close shows as a negative gauge rather than being hidden.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

pub mod health;
pub use health::{AuditCounters, HealthMetrics, RepairTotals};

/// Why bytes moved between the gateway and a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Pieces of a new segment that became part of the stored object.
    Upload,
    /// Upload bytes spent on pieces that were cancelled (long tail) or failed.
    LongTail,
    Download,
    Repair,
    Audit,
    Delete,
    /// Metadata replication: change-log batches, snapshots and head records.
    Metadata,
}

impl Reason {
    pub const ALL: [Reason; 7] = [
        Reason::Upload,
        Reason::LongTail,
        Reason::Download,
        Reason::Repair,
        Reason::Audit,
        Reason::Delete,
        Reason::Metadata,
    ];

    /// Whether bytes can go to a node for this reason (piece and blob writes): uploads, the
    /// long tail, repair's rebuilt pieces, metadata. Reads send none.
    pub fn can_send(self) -> bool {
        matches!(
            self,
            Reason::Upload | Reason::LongTail | Reason::Repair | Reason::Metadata
        )
    }

    /// Whether bytes can come from a node for this reason (piece reads and listings): every
    /// reason but the upload's and the long tail's, which only write.
    pub fn can_receive(self) -> bool {
        !matches!(self, Reason::Upload | Reason::LongTail)
    }

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Upload => "upload",
            Reason::LongTail => "long_tail",
            Reason::Download => "download",
            Reason::Repair => "repair",
            Reason::Audit => "audit",
            Reason::Delete => "delete",
            Reason::Metadata => "metadata",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl EncodeLabelValue for Reason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// The kind of a request to a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeOp {
    Put,
    Get,
    Delete,
    List,
}

impl NodeOp {
    pub const ALL: [NodeOp; 4] = [NodeOp::Put, NodeOp::Get, NodeOp::Delete, NodeOp::List];

    /// The `op` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeOp::Put => "put",
            NodeOp::Get => "get",
            NodeOp::Delete => "delete",
            NodeOp::List => "list",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for NodeOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl EncodeLabelValue for NodeOp {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Outcome {
    Ok,
    Error,
}

impl Outcome {
    const ALL: [Outcome; 2] = [Outcome::Ok, Outcome::Error];
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        let label = match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
        };
        EncodeLabelValue::encode(&label, encoder)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct NodeLabels {
    node: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TrafficLabels {
    node: String,
    reason: Reason,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    node: String,
    op: NodeOp,
    result: Outcome,
}

/// One node's series, resolved once so that later calls skip the families' label hashing.
/// The counters share their values with the registered families.
struct NodeSeries {
    sent: [Counter; Reason::ALL.len()],
    received: [Counter; Reason::ALL.len()],
    /// Indexed by [`NodeOp::index`], then ok (0) / error (1).
    requests: [[Counter; 2]; NodeOp::ALL.len()],
    connections: Gauge,
}

/// The process's metrics; cheap to call from any task.
pub struct Metrics {
    registry: Registry,
    started: Instant,
    s3_received: Counter,
    s3_sent: Counter,
    node_sent: Family<TrafficLabels, Counter>,
    node_received: Family<TrafficLabels, Counter>,
    node_requests: Family<RequestLabels, Counter>,
    node_connections: Family<NodeLabels, Gauge>,
    node_up: Family<NodeLabels, Gauge>,
    /// Sum of the per-node connection gauges; its successive values define the peak.
    connections_now: AtomicI64,
    connections_peak: Gauge,
    nodes: RwLock<HashMap<String, NodeSeries>>,
    orphan_pieces: Family<NodeLabels, Gauge>,
    orphan_bytes: Family<NodeLabels, Gauge>,
    orphan_held: Family<NodeLabels, Gauge>,
    orphan_last_scan: Family<NodeLabels, Gauge>,
    orphan_reclaimed_pieces: Family<NodeLabels, Counter>,
    orphan_reclaimed_bytes: Family<NodeLabels, Counter>,
    temp_removed_files: Family<NodeLabels, Counter>,
    temp_removed_bytes: Family<NodeLabels, Counter>,
    /// The same numbers, plus the valve's reason, for `gateway stats`.
    orphans: Mutex<BTreeMap<String, NodeOrphans>>,
    /// Segment health, findings and repair.
    pub health: HealthMetrics,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("uptime", &self.uptime())
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let s3_received = Counter::default();
        let s3_sent = Counter::default();
        let node_sent = Family::<TrafficLabels, Counter>::default();
        let node_received = Family::<TrafficLabels, Counter>::default();
        let node_requests = Family::<RequestLabels, Counter>::default();
        let node_connections = Family::<NodeLabels, Gauge>::default();
        let node_up = Family::<NodeLabels, Gauge>::default();
        let connections_peak = Gauge::default();
        // Names exclude the unit and the `_total` suffix: the encoder appends both.
        registry.register_with_unit(
            "gateway_s3_received",
            "Body bytes received from S3 clients",
            Unit::Bytes,
            s3_received.clone(),
        );
        registry.register_with_unit(
            "gateway_s3_sent",
            "Body bytes sent to S3 clients",
            Unit::Bytes,
            s3_sent.clone(),
        );
        registry.register_with_unit(
            "gateway_node_sent",
            "Bytes sent to storage nodes, by node and reason",
            Unit::Bytes,
            node_sent.clone(),
        );
        registry.register_with_unit(
            "gateway_node_received",
            "Bytes received from storage nodes, by node and reason",
            Unit::Bytes,
            node_received.clone(),
        );
        registry.register(
            "gateway_node_requests",
            "Finished requests to storage nodes, by node, operation and result",
            node_requests.clone(),
        );
        registry.register(
            "gateway_node_connections",
            "Connections to storage nodes open now",
            node_connections.clone(),
        );
        registry.register(
            "gateway_node_connections_peak",
            "Highest number of node connections open at once since start",
            connections_peak.clone(),
        );
        registry.register(
            "gateway_node_up",
            "1 when the scheduler considers the node usable, 0 while backed off or offline",
            node_up.clone(),
        );
        let orphan_pieces = Family::<NodeLabels, Gauge>::default();
        let orphan_bytes = Family::<NodeLabels, Gauge>::default();
        let orphan_held = Family::<NodeLabels, Gauge>::default();
        let orphan_last_scan = Family::<NodeLabels, Gauge>::default();
        let orphan_reclaimed_pieces = Family::<NodeLabels, Counter>::default();
        let orphan_reclaimed_bytes = Family::<NodeLabels, Counter>::default();
        let temp_removed_files = Family::<NodeLabels, Counter>::default();
        let temp_removed_bytes = Family::<NodeLabels, Counter>::default();
        registry.register(
            "gateway_orphan_pieces",
            "Data pieces on the node that no metadata references, found by the last complete scan and not deleted yet",
            orphan_pieces.clone(),
        );
        registry.register_with_unit(
            "gateway_orphan",
            "Bytes of the orphan pieces the node reported sizes for",
            Unit::Bytes,
            orphan_bytes.clone(),
        );
        registry.register(
            "gateway_orphan_held",
            "1 while the safety valve stops orphan deletions on the node",
            orphan_held.clone(),
        );
        registry.register_with_unit(
            "gateway_orphan_last_scan_timestamp",
            "When the last complete orphan scan of the node ended (unix time)",
            Unit::Seconds,
            orphan_last_scan.clone(),
        );
        registry.register(
            "gateway_orphan_reclaimed_pieces",
            "Orphan pieces deleted from the node",
            orphan_reclaimed_pieces.clone(),
        );
        registry.register_with_unit(
            "gateway_orphan_reclaimed",
            "Bytes of the orphan pieces deleted from the node",
            Unit::Bytes,
            orphan_reclaimed_bytes.clone(),
        );
        registry.register(
            "gateway_temp_removed_files",
            "Temp files of unfinished uploads removed from the directory node at start",
            temp_removed_files.clone(),
        );
        registry.register_with_unit(
            "gateway_temp_removed",
            "Bytes of the temp files removed from the directory node at start",
            Unit::Bytes,
            temp_removed_bytes.clone(),
        );
        let health = HealthMetrics::register(&mut registry);
        Metrics {
            health,
            registry,
            started: Instant::now(),
            s3_received,
            s3_sent,
            node_sent,
            node_received,
            node_requests,
            node_connections,
            node_up,
            connections_now: AtomicI64::new(0),
            connections_peak,
            nodes: RwLock::new(HashMap::new()),
            orphan_pieces,
            orphan_bytes,
            orphan_held,
            orphan_last_scan,
            orphan_reclaimed_pieces,
            orphan_reclaimed_bytes,
            temp_removed_files,
            temp_removed_bytes,
            orphans: Mutex::new(BTreeMap::new()),
        }
    }

    /// Time since this `Metrics` was created (process start in practice).
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Creates the node's series at zero (idempotent): call it for every configured node at
    /// start so that idle nodes show in the exposition and the snapshot.
    pub fn add_node(&self, node: &str) {
        self.with_node(node, |_| ());
    }

    pub fn s3_received(&self, bytes: u64) {
        self.s3_received.inc_by(bytes);
    }

    pub fn s3_sent(&self, bytes: u64) {
        self.s3_sent.inc_by(bytes);
    }

    pub fn node_sent(&self, node: &str, reason: Reason, bytes: u64) {
        self.with_node(node, |s| s.sent[reason.index()].inc_by(bytes));
    }

    pub fn node_received(&self, node: &str, reason: Reason, bytes: u64) {
        self.with_node(node, |s| s.received[reason.index()].inc_by(bytes));
    }

    /// Counts one finished request; `ok` is false for any failure (transport or status).
    pub fn node_request(&self, node: &str, op: NodeOp, ok: bool) {
        let outcome = usize::from(!ok);
        self.with_node(node, |s| s.requests[op.index()][outcome].inc());
    }

    pub fn connection_opened(&self, node: &str) {
        self.with_node(node, |s| s.connections.inc());
        let now = self.connections_now.fetch_add(1, Ordering::Relaxed) + 1;
        self.connections_peak
            .inner()
            .fetch_max(now, Ordering::Relaxed);
    }

    pub fn connection_closed(&self, node: &str) {
        self.with_node(node, |s| s.connections.dec());
        self.connections_now.fetch_sub(1, Ordering::Relaxed);
    }

    /// 1 when the scheduler considers the node usable, 0 while it is backed off / offline.
    pub fn set_node_up(&self, node: &str, up: bool) {
        self.node_up
            .get_or_create(&NodeLabels {
                node: node.to_owned(),
            })
            .set(i64::from(up));
    }

    /// Records a complete orphan scan of `node`: what it found pending and whether the safety
    /// valve holds deletions (`held`: why).
    pub fn orphan_scan(&self, node: &str, pending: OrphanCount, held: Option<String>, at_ms: i64) {
        let labels = NodeLabels {
            node: node.to_owned(),
        };
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.orphan_pieces
            .get_or_create(&labels)
            .set(gauge(pending.pieces));
        self.orphan_bytes
            .get_or_create(&labels)
            .set(gauge(pending.bytes));
        self.orphan_held
            .get_or_create(&labels)
            .set(i64::from(held.is_some()));
        self.orphan_last_scan
            .get_or_create(&labels)
            .set(at_ms.max(0) / 1000);
        self.with_orphans(node, |o| {
            o.pending_pieces = pending.pieces;
            o.pending_bytes = pending.bytes;
            o.unsized_pieces = pending.unknown_size;
            o.held = held;
            o.last_scan_ms = at_ms;
        });
    }

    /// Counts orphan pieces deleted from `node` (`bytes`: of those with a known size).
    pub fn orphans_reclaimed(&self, node: &str, pieces: u64, bytes: u64) {
        let labels = NodeLabels {
            node: node.to_owned(),
        };
        self.orphan_reclaimed_pieces
            .get_or_create(&labels)
            .inc_by(pieces);
        self.orphan_reclaimed_bytes
            .get_or_create(&labels)
            .inc_by(bytes);
        self.with_orphans(node, |o| {
            o.reclaimed_pieces = o.reclaimed_pieces.saturating_add(pieces);
            o.reclaimed_bytes = o.reclaimed_bytes.saturating_add(bytes);
            o.pending_pieces = o.pending_pieces.saturating_sub(pieces);
            o.pending_bytes = o.pending_bytes.saturating_sub(bytes);
        });
        let pending = self.orphans_of(node);
        self.orphan_pieces
            .get_or_create(&labels)
            .set(i64::try_from(pending.pending_pieces).unwrap_or(i64::MAX));
        self.orphan_bytes
            .get_or_create(&labels)
            .set(i64::try_from(pending.pending_bytes).unwrap_or(i64::MAX));
    }

    /// Counts temp files of unfinished uploads removed from directory node `node` at start.
    pub fn temp_removed(&self, node: &str, files: u64, bytes: u64) {
        let labels = NodeLabels {
            node: node.to_owned(),
        };
        self.temp_removed_files.get_or_create(&labels).inc_by(files);
        self.temp_removed_bytes.get_or_create(&labels).inc_by(bytes);
        self.with_orphans(node, |o| {
            o.temp_removed_files = o.temp_removed_files.saturating_add(files);
            o.temp_removed_bytes = o.temp_removed_bytes.saturating_add(bytes);
        });
    }

    /// Orphan collection per node, for nodes scanned or swept since start.
    pub fn orphans(&self) -> BTreeMap<String, NodeOrphans> {
        self.orphans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn orphans_of(&self, node: &str) -> NodeOrphans {
        self.orphans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(node)
            .cloned()
            .unwrap_or_default()
    }

    fn with_orphans(&self, node: &str, f: impl FnOnce(&mut NodeOrphans)) {
        let mut map = self.orphans.lock().unwrap_or_else(PoisonError::into_inner);
        f(map.entry(node.to_owned()).or_default());
    }

    /// Peak of the sum of gateway_node_connections since start (also exposed as a gauge
    /// gateway_node_connections_peak), for benchmarks.
    pub fn peak_connections(&self) -> u64 {
        u64::try_from(self.connections_peak.get()).unwrap_or(0)
    }

    /// OpenMetrics text exposition, ending with `# EOF`.
    /// The OpenMetrics text, each family's samples sorted (by name, then labels: the order
    /// of a family's series is otherwise a hash map's).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail and our label encoders never fail either.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        let mut out = String::with_capacity(text.len());
        let mut samples: Vec<&str> = Vec::new();
        let flush = |samples: &mut Vec<&str>, out: &mut String| {
            samples.sort_unstable();
            for s in samples.drain(..) {
                out.push_str(s);
                out.push('\n');
            }
        };
        for line in text.lines() {
            if line.starts_with('#') {
                flush(&mut samples, &mut out);
                out.push_str(line);
                out.push('\n');
            } else {
                samples.push(line);
            }
        }
        flush(&mut samples, &mut out);
        out
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let nodes = self.nodes.read().unwrap_or_else(PoisonError::into_inner);
        let nodes = nodes
            .iter()
            .map(|(id, s)| (id.clone(), s.traffic()))
            .collect();
        MetricsSnapshot {
            s3_received_bytes: self.s3_received.get(),
            s3_sent_bytes: self.s3_sent.get(),
            nodes,
            peak_connections: self.peak_connections(),
        }
    }

    fn with_node<R>(&self, node: &str, f: impl FnOnce(&NodeSeries) -> R) -> R {
        // A poisoned lock only means a panic elsewhere while inserting; the map is still valid.
        {
            let nodes = self.nodes.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(series) = nodes.get(node) {
                return f(series);
            }
        }
        let mut nodes = self.nodes.write().unwrap_or_else(PoisonError::into_inner);
        let series = nodes
            .entry(node.to_owned())
            .or_insert_with(|| self.new_series(node));
        f(series)
    }

    fn new_series(&self, node: &str) -> NodeSeries {
        // Only the series that can ever count something are exported; the others stay
        // unregistered (and at zero: nothing adds to them).
        let traffic = |family: &Family<TrafficLabels, Counter>, possible: fn(Reason) -> bool| {
            Reason::ALL.map(|reason| {
                if !possible(reason) {
                    return Counter::default();
                }
                family.get_or_create_owned(&TrafficLabels {
                    node: node.to_owned(),
                    reason,
                })
            })
        };
        let requests = NodeOp::ALL.map(|op| {
            Outcome::ALL.map(|result| {
                self.node_requests.get_or_create_owned(&RequestLabels {
                    node: node.to_owned(),
                    op,
                    result,
                })
            })
        });
        NodeSeries {
            sent: traffic(&self.node_sent, Reason::can_send),
            received: traffic(&self.node_received, Reason::can_receive),
            requests,
            connections: self.node_connections.get_or_create_owned(&NodeLabels {
                node: node.to_owned(),
            }),
        }
    }
}

impl NodeSeries {
    fn traffic(&self) -> NodeTraffic {
        let by_reason = |counters: &[Counter; Reason::ALL.len()]| {
            Reason::ALL
                .iter()
                .map(|r| (r.as_str().to_owned(), counters[r.index()].get()))
                .collect()
        };
        let outcome = |i: usize| {
            self.requests
                .iter()
                .fold(0u64, |sum, op| sum.saturating_add(op[i].get()))
        };
        NodeTraffic {
            sent_bytes: by_reason(&self.sent),
            received_bytes: by_reason(&self.received),
            requests_ok: outcome(0),
            requests_error: outcome(1),
            connections: self.connections.get(),
        }
    }
}

/// Orphan pieces of one kind: how many, and the bytes of those whose size is known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrphanCount {
    pub pieces: u64,
    pub bytes: u64,
    /// Pieces whose size the node did not report (not in `bytes`).
    pub unknown_size: u64,
}

/// Orphan collection on one node since start (see [`Metrics::orphans`]).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct NodeOrphans {
    /// Data pieces the last complete scan found unreferenced, not deleted yet, and the bytes
    /// of those with a known size.
    pub pending_pieces: u64,
    pub pending_bytes: u64,
    #[serde(default)]
    pub unsized_pieces: u64,
    /// Orphans deleted since start.
    pub reclaimed_pieces: u64,
    pub reclaimed_bytes: u64,
    /// Why the safety valve stops deletions on this node, while it does.
    #[serde(default)]
    pub held: Option<String>,
    /// When the last complete scan ended (unix ms; 0: none yet).
    #[serde(default)]
    pub last_scan_ms: i64,
    /// Temp files of unfinished uploads removed at start (directory nodes).
    #[serde(default)]
    pub temp_removed_files: u64,
    #[serde(default)]
    pub temp_removed_bytes: u64,
}

/// The counters at one instant, keyed by node id.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct MetricsSnapshot {
    pub s3_received_bytes: u64,
    pub s3_sent_bytes: u64,
    pub nodes: BTreeMap<String, NodeTraffic>,
    pub peak_connections: u64,
}

/// One node's counters; byte maps are keyed by [`Reason::as_str`].
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct NodeTraffic {
    pub sent_bytes: BTreeMap<String, u64>,
    pub received_bytes: BTreeMap<String, u64>,
    pub requests_ok: u64,
    pub requests_error: u64,
    pub connections: i64,
}

impl NodeTraffic {
    pub fn sent_total(&self) -> u64 {
        sum(self.sent_bytes.values().copied())
    }

    pub fn received_total(&self) -> u64 {
        sum(self.received_bytes.values().copied())
    }
}

impl MetricsSnapshot {
    /// Bytes sent to all nodes, all reasons.
    pub fn node_sent_total(&self) -> u64 {
        sum(self.nodes.values().map(NodeTraffic::sent_total))
    }

    /// Bytes received from all nodes, all reasons.
    pub fn node_received_total(&self) -> u64 {
        sum(self.nodes.values().map(NodeTraffic::received_total))
    }

    /// Bytes sent to all nodes for one reason.
    pub fn node_sent_for(&self, reason: Reason) -> u64 {
        sum(self
            .nodes
            .values()
            .filter_map(|n| n.sent_bytes.get(reason.as_str()).copied()))
    }

    /// Bytes received from all nodes for one reason.
    pub fn node_received_for(&self, reason: Reason) -> u64 {
        sum(self
            .nodes
            .values()
            .filter_map(|n| n.received_bytes.get(reason.as_str()).copied()))
    }
}

// Snapshots also arrive as JSON from another process: saturate rather than overflow.
fn sum(values: impl IntoIterator<Item = u64>) -> u64 {
    values.into_iter().fold(0, |acc, v| acc.saturating_add(v))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn has_line(text: &str, line: &str) -> bool {
        text.lines().any(|l| l == line)
    }

    #[test]
    fn label_values_are_the_documented_ones() {
        let reasons: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "upload",
                "long_tail",
                "download",
                "repair",
                "audit",
                "delete",
                "metadata"
            ]
        );
        let ops: Vec<_> = NodeOp::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(ops, ["put", "get", "delete", "list"]);
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        for (i, o) in NodeOp::ALL.iter().enumerate() {
            assert_eq!(o.index(), i);
        }
    }

    #[test]
    fn exposition_has_the_exact_names_labels_and_values() {
        let m = Metrics::new();
        m.s3_received(100);
        m.s3_sent(250);
        m.node_sent("n1", Reason::Upload, 1000);
        m.node_sent("n1", Reason::Upload, 24);
        m.node_sent("n1", Reason::LongTail, 7);
        m.node_received("n2", Reason::Download, 4096);
        m.node_request("n1", NodeOp::Put, true);
        m.node_request("n1", NodeOp::Put, true);
        m.node_request("n1", NodeOp::Put, false);
        m.node_request("n2", NodeOp::Get, false);
        m.connection_opened("n1");
        m.connection_opened("n2");
        m.connection_closed("n2");
        m.set_node_up("n1", true);
        m.set_node_up("n2", false);

        let text = m.encode();
        for line in [
            "# TYPE gateway_s3_received_bytes counter",
            "# TYPE gateway_node_sent_bytes counter",
            "# TYPE gateway_node_requests counter",
            "# TYPE gateway_node_connections gauge",
            "gateway_s3_received_bytes_total 100",
            "gateway_s3_sent_bytes_total 250",
            r#"gateway_node_sent_bytes_total{node="n1",reason="upload"} 1024"#,
            r#"gateway_node_sent_bytes_total{node="n1",reason="long_tail"} 7"#,
            r#"gateway_node_sent_bytes_total{node="n1",reason="repair"} 0"#,
            r#"gateway_node_received_bytes_total{node="n2",reason="download"} 4096"#,
            r#"gateway_node_requests_total{node="n1",op="put",result="ok"} 2"#,
            r#"gateway_node_requests_total{node="n1",op="put",result="error"} 1"#,
            r#"gateway_node_requests_total{node="n2",op="get",result="error"} 1"#,
            r#"gateway_node_connections{node="n1"} 1"#,
            r#"gateway_node_connections{node="n2"} 0"#,
            "gateway_node_connections_peak 2",
            r#"gateway_node_up{node="n1"} 1"#,
            r#"gateway_node_up{node="n2"} 0"#,
        ] {
            assert!(has_line(&text, line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
        // No series that can never count: reads send nothing, writes read nothing.
        for never in [
            r#"gateway_node_sent_bytes_total{node="n1",reason="download"}"#,
            r#"gateway_node_sent_bytes_total{node="n1",reason="audit"}"#,
            r#"gateway_node_sent_bytes_total{node="n1",reason="delete"}"#,
            r#"gateway_node_received_bytes_total{node="n1",reason="upload"}"#,
            r#"gateway_node_received_bytes_total{node="n1",reason="long_tail"}"#,
            r#"op="status""#,
        ] {
            assert!(!text.contains(never), "{never} in\n{text}");
        }
        // Each family's samples are sorted.
        let mut family: Vec<&str> = Vec::new();
        for line in text.lines().chain(["# end"]) {
            if line.starts_with('#') {
                assert!(
                    family.windows(2).all(|w| w[0] <= w[1]),
                    "unsorted: {family:#?}"
                );
                family.clear();
            } else {
                family.push(line);
            }
        }
        // Nodes nobody reported on have no `up` series (0 would claim they are down).
        m.add_node("n3");
        let text = m.encode();
        assert!(!text.contains(r#"gateway_node_up{node="n3"}"#));
        assert!(has_line(
            &text,
            r#"gateway_node_received_bytes_total{node="n3",reason="audit"} 0"#
        ));
        assert_eq!(
            m.snapshot().nodes["n3"],
            NodeTraffic {
                sent_bytes: Reason::ALL
                    .iter()
                    .map(|r| (r.as_str().to_owned(), 0))
                    .collect(),
                received_bytes: Reason::ALL
                    .iter()
                    .map(|r| (r.as_str().to_owned(), 0))
                    .collect(),
                ..NodeTraffic::default()
            }
        );
    }

    #[test]
    fn orphan_collection_is_exposed_and_reported() {
        let m = Metrics::new();
        m.temp_removed("n1", 3, 3000);
        m.orphan_scan(
            "n1",
            OrphanCount {
                pieces: 5,
                bytes: 500,
                unknown_size: 1,
            },
            None,
            1_700_000_000_123,
        );
        m.orphans_reclaimed("n1", 2, 200);
        m.orphan_scan(
            "n2",
            OrphanCount {
                pieces: 9,
                bytes: 900,
                unknown_size: 0,
            },
            Some("too many".into()),
            1_700_000_000_000,
        );
        let text = m.encode();
        for line in [
            r#"gateway_orphan_pieces{node="n1"} 3"#,
            r#"gateway_orphan_bytes{node="n1"} 300"#,
            r#"gateway_orphan_held{node="n1"} 0"#,
            r#"gateway_orphan_held{node="n2"} 1"#,
            r#"gateway_orphan_last_scan_timestamp_seconds{node="n1"} 1700000000"#,
            r#"gateway_orphan_reclaimed_pieces_total{node="n1"} 2"#,
            r#"gateway_orphan_reclaimed_bytes_total{node="n1"} 200"#,
            r#"gateway_temp_removed_files_total{node="n1"} 3"#,
            r#"gateway_temp_removed_bytes_total{node="n1"} 3000"#,
        ] {
            assert!(has_line(&text, line), "missing {line:?} in\n{text}");
        }
        let o = m.orphans();
        assert_eq!(
            o["n1"],
            NodeOrphans {
                pending_pieces: 3,
                pending_bytes: 300,
                unsized_pieces: 1,
                reclaimed_pieces: 2,
                reclaimed_bytes: 200,
                held: None,
                last_scan_ms: 1_700_000_000_123,
                temp_removed_files: 3,
                temp_removed_bytes: 3000,
            }
        );
        assert_eq!(o["n2"].held.as_deref(), Some("too many"));
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(
            serde_json::from_str::<BTreeMap<String, NodeOrphans>>(&json).unwrap(),
            o
        );
    }

    #[test]
    fn node_ids_are_escaped_in_labels() {
        let m = Metrics::new();
        m.node_sent("a\"b\\c", Reason::Upload, 5);
        assert!(has_line(
            &m.encode(),
            r#"gateway_node_sent_bytes_total{node="a\"b\\c",reason="upload"} 5"#
        ));
    }

    #[test]
    fn snapshot_agrees_with_the_calls() {
        let m = Metrics::new();
        m.s3_received(10);
        m.s3_sent(20);
        m.node_sent("n1", Reason::Upload, 300);
        m.node_sent("n1", Reason::LongTail, 45);
        m.node_sent("n2", Reason::Upload, 200);
        m.node_received("n2", Reason::Download, 64);
        m.node_received("n2", Reason::Audit, 6);
        m.node_request("n1", NodeOp::Put, true);
        m.node_request("n1", NodeOp::Delete, true);
        m.node_request("n1", NodeOp::Get, false);
        m.connection_opened("n2");

        let s = m.snapshot();
        assert_eq!(s.s3_received_bytes, 10);
        assert_eq!(s.s3_sent_bytes, 20);
        assert_eq!(s.nodes.len(), 2);
        let n1 = &s.nodes["n1"];
        assert_eq!(n1.sent_bytes["upload"], 300);
        assert_eq!(n1.sent_bytes["long_tail"], 45);
        assert_eq!(n1.sent_bytes["repair"], 0);
        assert_eq!(n1.sent_bytes.len(), 7);
        assert_eq!((n1.requests_ok, n1.requests_error), (2, 1));
        assert_eq!(n1.connections, 0);
        let n2 = &s.nodes["n2"];
        assert_eq!(n2.received_bytes["download"], 64);
        assert_eq!(n2.received_total(), 70);
        assert_eq!(n2.connections, 1);
        assert_eq!(s.node_sent_total(), 545);
        assert_eq!(s.node_received_total(), 70);
        assert_eq!(s.node_sent_for(Reason::Upload), 500);
        assert_eq!(s.node_sent_for(Reason::LongTail), 45);
        assert_eq!(s.node_received_for(Reason::Audit), 6);
        assert_eq!(s.peak_connections, 1);

        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<MetricsSnapshot>(&json).unwrap(), s);
    }

    #[test]
    fn totals_saturate_instead_of_overflowing() {
        let mut s = MetricsSnapshot::default();
        for id in ["a", "b"] {
            let mut t = NodeTraffic::default();
            t.sent_bytes.insert("upload".into(), u64::MAX - 1);
            s.nodes.insert(id.into(), t);
        }
        assert_eq!(s.node_sent_total(), u64::MAX);
    }

    #[test]
    fn connections_go_up_and_down_and_the_peak_is_the_max_of_the_sum() {
        let m = Metrics::new();
        assert_eq!(m.peak_connections(), 0);
        m.connection_opened("a");
        m.connection_opened("a");
        m.connection_opened("b");
        m.connection_closed("a");
        m.connection_closed("a");
        m.connection_opened("b");
        // Sums were 1, 2, 3, 2, 1, 2: the peak is 3 although no node ever had more than 2.
        assert_eq!(m.peak_connections(), 3);
        let s = m.snapshot();
        assert_eq!(s.nodes["a"].connections, 0);
        assert_eq!(s.nodes["b"].connections, 2);
        assert_eq!(s.peak_connections, 3);
        let text = m.encode();
        assert!(has_line(&text, "gateway_node_connections_peak 3"));
        assert!(has_line(&text, r#"gateway_node_connections{node="b"} 2"#));
        m.connection_closed("b");
        m.connection_closed("b");
        assert!(has_line(
            &m.encode(),
            r#"gateway_node_connections{node="b"} 0"#
        ));
        assert_eq!(m.peak_connections(), 3);
    }

    #[test]
    fn concurrent_updates_are_exact() {
        const THREADS: usize = 8;
        const ROUNDS: u64 = 10_000;
        let m = Arc::new(Metrics::new());
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let m = m.clone();
                std::thread::spawn(move || {
                    let node = format!("n{}", t % 3);
                    for i in 0..ROUNDS {
                        m.connection_opened(&node);
                        m.s3_received(1);
                        m.node_sent(&node, Reason::Upload, 3);
                        m.node_received(&node, Reason::Download, 1);
                        m.node_request(&node, NodeOp::Put, i % 2 == 0);
                        m.connection_closed(&node);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let total = THREADS as u64 * ROUNDS;
        let s = m.snapshot();
        assert_eq!(s.s3_received_bytes, total);
        assert_eq!(s.node_sent_total(), 3 * total);
        assert_eq!(s.node_received_for(Reason::Download), total);
        let ok: u64 = s.nodes.values().map(|n| n.requests_ok).sum();
        let err: u64 = s.nodes.values().map(|n| n.requests_error).sum();
        assert_eq!((ok, err), (total / 2, total / 2));
        // Threads per node: n0 gets t = 0, 3, 6; n1 gets 1, 4, 7; n2 gets 2, 5.
        assert_eq!(s.nodes["n0"].sent_total(), 3 * 3 * ROUNDS);
        assert_eq!(s.nodes["n2"].sent_total(), 3 * 2 * ROUNDS);
        assert!(s.nodes.values().all(|n| n.connections == 0));
        assert!((1..=THREADS as u64).contains(&s.peak_connections));
        assert!(has_line(
            &m.encode(),
            &format!("gateway_s3_received_bytes_total {total}")
        ));
    }
}
