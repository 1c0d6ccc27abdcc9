//! The transfer layer: every byte between the gateway and its storage nodes passes here.
//!
//! Contract:
//! - Every piece transfer (an upload of one piece, a read of one piece range) holds one
//!   connection slot of the global limit (`limits.max_connections`) and one of its node's
//!   (`limits.max_connections_per_node`) for its whole duration, so the number of concurrent
//!   node connections never exceeds the limits, however many client requests run at once.
//!   Global slots are always taken before node slots, and a segment upload takes the slots
//!   its `success` pieces need in one step, so transfers cannot deadlock each other.
//! - Upstream and downstream bytes are paced by shared token buckets when rates are set.
//! - Every request's outcome feeds the node's [`health::Health`]; nodes that fail are backed
//!   off and chosen last.
//! - Every piece byte sent or received is counted in [`Metrics`] by node and [`Reason`]; bytes
//!   are payload bytes (piece headers, chunks and MACs), not protocol overhead.
//!
//! Uploads: [`upload::SegmentUpload`]; downloads: [`download`].

pub mod blobs;
pub mod download;
pub mod health;
pub mod inflight;
pub mod inventory;
pub mod limits;
pub mod upload;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::LimitsConfig;
use crate::crypto::RootKey;
use crate::metrics::{Metrics, NodeOp, Reason};
use crate::nodes::{NodeError, NodeStore, PieceId};
use health::{Health, HealthView, Rank};
use limits::Rate;

pub use download::{FaultKind, PieceFault};
pub use upload::{SegmentUpload, Target, UploadedSegment};

/// Why moving pieces to or from the nodes failed. The object layer wraps it
/// (`ObjectError::Transfer`); the S3 layer answers `Busy` with SlowDown and a Retry-After, the
/// `NotEnough*` cases with ServiceUnavailable naming the cause, the rest with InternalError.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("segment {segment}: only {durable} of the {needed} required pieces became durable: {causes}")]
    NotEnoughDurable {
        segment: u32,
        durable: usize,
        needed: usize,
        causes: String,
    },
    #[error("segment {segment}: only {usable} of {nodes} nodes can take a piece, {needed} needed ({causes})")]
    NotEnoughNodes {
        segment: u32,
        usable: usize,
        needed: usize,
        nodes: usize,
        causes: String,
    },
    #[error("segment {segment}: not enough intact pieces to read ({causes})")]
    NotEnoughPieces { segment: u32, causes: String },
    /// The queue for node connections or memory is full, or a request waited in it for
    /// `limits.queue_wait`: the client should retry later.
    #[error("gateway busy: {0}")]
    Busy(String),
    #[error("gateway is shutting down")]
    ShuttingDown,
    /// The random source failed (node order shuffling).
    #[error("random source: {0}")]
    Random(#[from] crate::crypto::CryptoError),
    /// A task of the transfer failed (a panic) or its bookkeeping broke.
    #[error("internal: {0}")]
    Internal(String),
}

/// A configured node as the application opened it.
pub struct NodeSpec {
    pub store: Arc<dyn NodeStore>,
    /// "dir", "remote", "s3".
    pub kind: String,
    /// The failure-domain label from the config, if any.
    pub label: Option<String>,
    /// The key failure-domain caps count against (unlabelled nodes are their own domain).
    pub domain: String,
    /// Why the node could not be opened at start, if it could not.
    pub offline: Option<String>,
}

/// What the transfer layer keeps of one configured node: its store, health, connection
/// permits (its connection slots) and state.
pub(crate) struct NodeHandle {
    pub store: Arc<dyn NodeStore>,
    pub id_key: [u8; 32],
    pub kind: String,
    pub label: Option<String>,
    pub domain: String,
    pub health: Health,
    pub permits: Arc<Semaphore>,
    /// Draining: no new pieces go here; repair moves the ones it holds elsewhere.
    draining: std::sync::atomic::AtomicBool,
    /// A free-space query is still running (a hung filesystem): no second one is started.
    space_busy: Arc<std::sync::atomic::AtomicBool>,
}

impl NodeHandle {
    pub fn id(&self) -> &str {
        self.store.id()
    }

    pub fn draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// What operators see of one node.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub id: String,
    pub kind: String,
    pub domain: Option<String>,
    pub health: HealthView,
    pub connections_in_use: usize,
}

pub struct Transfers {
    nodes: Vec<NodeHandle>,
    by_id: HashMap<String, usize>,
    limits: LimitsConfig,
    pub(crate) max_per_domain: Option<usize>,
    connections: Arc<Semaphore>,
    up: Rate,
    down: Rate,
    metrics: Arc<Metrics>,
    /// Streams being written, not yet in the metadata (see [`inflight`]).
    inflight: Arc<inflight::InFlight>,
    /// Segment uploads waiting for connection slots (bounded by `limits.queue_depth`).
    queued: Arc<std::sync::atomic::AtomicUsize>,
    /// `limits.memory`, in KiB.
    memory: Arc<Semaphore>,
    memory_kib: u32,
    /// Counts reservations granted and given back: the memory queue moving.
    memory_moves: Arc<std::sync::atomic::AtomicU64>,
}

/// Memory reserved for one transfer's buffers; dropping it gives it back.
pub struct MemoryReservation {
    _permit: OwnedSemaphorePermit,
    moves: Arc<std::sync::atomic::AtomicU64>,
}

impl Drop for MemoryReservation {
    fn drop(&mut self) {
        self.moves
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A place in the queue for connection slots; leaving it (drop) frees the place.
pub(crate) struct Queued(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// One connection slot in use; dropping it frees the slot.
pub(crate) struct Conn {
    metrics: Arc<Metrics>,
    node: String,
    _global: Option<OwnedSemaphorePermit>,
    _node: Option<OwnedSemaphorePermit>,
}

impl Conn {
    /// Takes the global slot out, to keep it while this connection's node slot is given back.
    pub(crate) fn take_global(&mut self) -> Option<OwnedSemaphorePermit> {
        self._global.take()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.metrics.connection_closed(&self.node);
    }
}

impl Transfers {
    pub fn new(
        root: &RootKey,
        specs: Vec<NodeSpec>,
        limits: LimitsConfig,
        max_per_domain: Option<u16>,
        metrics: Arc<Metrics>,
    ) -> Arc<Transfers> {
        let nodes: Vec<NodeHandle> = specs
            .into_iter()
            .map(|s| {
                metrics.add_node(s.store.id());
                metrics.set_node_up(s.store.id(), s.offline.is_none());
                NodeHandle {
                    id_key: root.piece_id_key(s.store.id()),
                    store: s.store,
                    kind: s.kind,
                    label: s.label,
                    domain: s.domain,
                    health: Health::new(s.offline),
                    permits: Arc::new(Semaphore::new(limits.max_connections_per_node)),
                    draining: std::sync::atomic::AtomicBool::new(false),
                    space_busy: Arc::new(std::sync::atomic::AtomicBool::new(false)),
                }
            })
            .collect();
        let memory_kib = u32::try_from(limits.memory / 1024)
            .unwrap_or(u32::MAX)
            .clamp(1, u32::MAX >> 4);
        let by_id = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id().to_string(), i))
            .collect();
        Arc::new(Transfers {
            by_id,
            connections: Arc::new(Semaphore::new(limits.max_connections)),
            up: Rate::new(limits.upload_rate),
            down: Rate::new(limits.download_rate),
            max_per_domain: max_per_domain.map(usize::from),
            limits,
            nodes,
            metrics,
            inflight: inflight::InFlight::new(),
            queued: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            memory: Arc::new(Semaphore::new(memory_kib as usize)),
            memory_kib,
            memory_moves: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        })
    }

    /// Reserves `bytes` of the memory budget for transfers (`limits.memory`, shared by uploads
    /// and downloads; a request needing more than all of it takes all of it), waiting in the
    /// queue for node connections: bounded by
    /// `limits.queue_depth`, and told to come back later ([`TransferError::Busy`]) when the
    /// queue has not moved (no reservation granted or given back) for `limits.queue_wait`. A
    /// queue that moves is waited through: a backlog finishes rather than fails.
    pub async fn reserve_memory(&self, bytes: usize) -> Result<MemoryReservation, TransferError> {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.memory_kib);
        let Some(queued) = self.join_queue() else {
            return Err(TransferError::Busy(format!(
                "{} requests already wait for memory or node connections",
                self.limits.queue_depth
            )));
        };
        use std::sync::atomic::Ordering;
        let wait = self.limits.queue_wait;
        let permit = self.memory.clone().acquire_many_owned(kib);
        tokio::pin!(permit);
        let mut seen = self.memory_moves.load(Ordering::Relaxed);
        let r = loop {
            match tokio::time::timeout(wait, &mut permit).await {
                Ok(Ok(p)) => {
                    self.memory_moves.fetch_add(1, Ordering::Relaxed);
                    break Ok(MemoryReservation {
                        _permit: p,
                        moves: self.memory_moves.clone(),
                    });
                }
                Ok(Err(_)) => break Err(TransferError::ShuttingDown),
                Err(_) => {
                    let now = self.memory_moves.load(Ordering::Relaxed);
                    if now == seen {
                        break Err(TransferError::Busy(format!(
                            "the queue for transfer memory (limits.memory) has not moved for {wait:?}"
                        )));
                    }
                    seen = now;
                }
            }
        };
        drop(queued);
        r
    }

    /// Joins the queue for connection slots, or `None` when `limits.queue_depth` requests
    /// already wait.
    pub(crate) fn join_queue(&self) -> Option<Queued> {
        use std::sync::atomic::Ordering;
        let mut n = self.queued.load(Ordering::Acquire);
        loop {
            if n >= self.limits.queue_depth {
                return None;
            }
            match self
                .queued
                .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(Queued(self.queued.clone())),
                Err(now) => n = now,
            }
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The limits in force (the rates as last set).
    pub fn limits(&self) -> LimitsConfig {
        LimitsConfig {
            upload_rate: self.up.get(),
            download_rate: self.down.get(),
            ..self.limits.clone()
        }
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub(crate) fn node(&self, index: usize) -> &NodeHandle {
        &self.nodes[index]
    }

    pub(crate) fn index_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// Starts (or stops) draining node `id`: uploads and repair write no new pieces to it,
    /// reads still use it, and repair moves its pieces to the other nodes. Returns false for
    /// an unknown id.
    pub fn set_draining(&self, id: &str, on: bool) -> bool {
        match self.index_of(id) {
            Some(i) => {
                self.nodes[i]
                    .draining
                    .store(on, std::sync::atomic::Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// The ids of the nodes being drained.
    pub fn draining_nodes(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.draining())
            .map(|n| n.id().to_string())
            .collect()
    }

    /// The nodes, their health and connections in use, in configuration order.
    pub fn node_views(&self) -> Vec<NodeView> {
        self.nodes
            .iter()
            .map(|n| NodeView {
                id: n.id().to_string(),
                kind: n.kind.clone(),
                domain: n.label.clone(),
                health: n.health.view(),
                connections_in_use: self.limits.max_connections_per_node
                    - n.permits.available_permits(),
            })
            .collect()
    }

    /// Every node's free and total space, in node order, asked of all nodes at once; a node
    /// that cannot tell (an S3 bucket), fails or takes longer than `limit` is `None`. A node
    /// whose previous query has not returned yet (a hung filesystem or server) is not asked
    /// again, so polling cannot pile up blocked threads. Takes no connection slot: it is one
    /// small request.
    pub async fn node_spaces(
        &self,
        limit: std::time::Duration,
    ) -> Vec<Option<crate::nodes::Space>> {
        use std::sync::atomic::Ordering;
        let mut waits = Vec::with_capacity(self.nodes.len());
        for n in &self.nodes {
            if n.space_busy.swap(true, Ordering::AcqRel) {
                waits.push(None);
                continue;
            }
            let (store, busy) = (n.store.clone(), n.space_busy.clone());
            let (tx, rx) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                let space = store.space().await;
                busy.store(false, Ordering::Release);
                let _ = tx.send(space.ok().flatten());
            });
            waits.push(Some(rx));
        }
        let mut out = Vec::with_capacity(waits.len());
        let deadline = tokio::time::Instant::now() + limit;
        for wait in waits {
            out.push(match wait {
                Some(rx) => tokio::time::timeout_at(deadline, rx)
                    .await
                    .ok()
                    .and_then(|r| r.ok())
                    .flatten(),
                None => None,
            });
        }
        out
    }

    /// The piece id of piece `number` of a segment on node `index`.
    pub(crate) fn piece_id(
        &self,
        index: usize,
        stream: &[u8; 16],
        segment: u32,
        number: u16,
    ) -> PieceId {
        PieceId::derive(&self.nodes[index].id_key, stream, segment, number)
    }

    /// Takes a global slot and then a slot of node `index`, waiting for both.
    pub(crate) async fn connect(&self, index: usize) -> Result<Conn, NodeError> {
        let closed = |n: &NodeHandle| NodeError::Unavailable {
            node: n.id().to_string(),
            reason: "gateway is shutting down".into(),
        };
        let node = &self.nodes[index];
        let global = self
            .connections
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| closed(node))?;
        let own = node
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| closed(node))?;
        Ok(self.conn(index, Some(global), own))
    }

    /// A connection outside the limits (see `download::Fetch::exempt`); still counted.
    pub(crate) fn connect_exempt(&self, index: usize) -> Conn {
        let node = self.nodes[index].id().to_string();
        self.metrics.connection_opened(&node);
        Conn {
            metrics: self.metrics.clone(),
            node,
            _global: None,
            _node: None,
        }
    }

    fn conn(
        &self,
        index: usize,
        global: Option<OwnedSemaphorePermit>,
        own: OwnedSemaphorePermit,
    ) -> Conn {
        let node = self.nodes[index].id().to_string();
        self.metrics.connection_opened(&node);
        Conn {
            metrics: self.metrics.clone(),
            node,
            _global: global,
            _node: Some(own),
        }
    }

    /// Records the outcome of one request to node `index`.
    pub(crate) fn record(
        &self,
        index: usize,
        op: NodeOp,
        started: Instant,
        r: Result<(), &NodeError>,
    ) {
        let node = &self.nodes[index];
        match r {
            Ok(()) => {
                node.health.success(started.elapsed());
                self.metrics.node_request(node.id(), op, true);
                self.metrics.set_node_up(node.id(), true);
            }
            Err(e) => {
                node.health.failure(e);
                self.metrics.node_request(node.id(), op, false);
                if health::is_node_failure(e) {
                    self.metrics.set_node_up(node.id(), false);
                }
            }
        }
    }

    pub(crate) fn sent(&self, index: usize, reason: Reason, bytes: u64) {
        if bytes > 0 {
            self.metrics
                .node_sent(self.nodes[index].id(), reason, bytes);
        }
    }

    pub(crate) async fn pace_up(&self, bytes: u64) {
        self.up.take(bytes).await;
    }

    pub(crate) async fn pace_down(&self, bytes: u64) {
        self.down.take(bytes).await;
    }

    /// Changes the node byte rates while transfers run (a reload); `None` is unlimited.
    pub fn set_rates(&self, upload: Option<u64>, download: Option<u64>) {
        self.up.set(upload);
        self.down.set(download);
    }

    /// Deletes a piece by node id (garbage collection, failed uploads). Deletes move no piece
    /// bytes; they show as `op="delete"` requests.
    pub(crate) async fn delete_piece(
        &self,
        node_id: &str,
        stream: &[u8; 16],
        segment: u32,
        number: u16,
    ) -> Result<(), NodeError> {
        let Some(index) = self.index_of(node_id) else {
            // A node removed from the config: nothing can be deleted there.
            return Ok(());
        };
        self.delete_at(index, self.piece_id(index, stream, segment, number))
            .await
    }

    pub(crate) async fn delete_at(&self, index: usize, id: PieceId) -> Result<(), NodeError> {
        let _conn = self.connect(index).await?;
        let started = Instant::now();
        let r = self.nodes[index].store.delete(id).await;
        self.record(index, NodeOp::Delete, started, r.as_ref().map(|_| ()));
        r
    }

    /// Node indexes in the order transfers should prefer them: healthy first, then degraded,
    /// backed-off and offline ones; random within a rank (spreads load).
    pub(crate) fn preference_order(&self) -> Result<Vec<usize>, crate::crypto::CryptoError> {
        let mut idx: Vec<usize> = (0..self.nodes.len()).collect();
        let mut rnd = vec![0u8; idx.len() * 4];
        crate::crypto::random_bytes(&mut rnd)?;
        for i in (1..idx.len()).rev() {
            let r =
                u32::from_le_bytes([rnd[i * 4], rnd[i * 4 + 1], rnd[i * 4 + 2], rnd[i * 4 + 3]]);
            idx.swap(i, r as usize % (i + 1));
        }
        let ranks: Vec<Rank> = self.nodes.iter().map(|n| n.health.rank()).collect();
        idx.sort_by_key(|&i| ranks[i]);
        Ok(idx)
    }
}

#[cfg(test)]
mod tests;
