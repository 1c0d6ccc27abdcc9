//! What a node holds: pages of its inventory and a look at single pieces, for garbage
//! collection of orphan pieces (`object::orphans`) and the audit (`object::audit`).
//!
//! Contract: like every node request, each call holds a connection slot of the global and the
//! node's limit for its duration, feeds the node's health and the request counters; the bytes
//! [`Transfers::probe_piece`] reads are counted under [`Reason::Delete`] (they are read to
//! decide a deletion); the other calls move no piece bytes.

use std::sync::Arc;
use std::time::Instant;

use super::inflight::InFlight;
use super::Transfers;
use crate::metrics::{NodeOp, Reason};
use crate::nodes::{NodeError, PieceId};

/// How many leading bytes [`Transfers::probe_piece`] reads: enough for a format magic.
pub const PROBE_LEN: u64 = 4;

/// What [`Transfers::probe_piece`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PieceProbe {
    /// The first [`PROBE_LEN`] bytes; `None` when the piece is shorter.
    pub magic: Option<[u8; PROBE_LEN as usize]>,
    /// Its size, when the node reports sizes.
    pub size: Option<u64>,
}

impl Transfers {
    /// The streams whose pieces are being written and not yet in the metadata.
    pub fn in_flight(&self) -> &Arc<InFlight> {
        &self.inflight
    }

    /// Whether node `index` could not be opened at start (every request to it fails).
    pub(crate) fn is_offline(&self, index: usize) -> bool {
        self.node(index).health.rank() == super::health::Rank::Offline
    }

    /// Up to `limit` piece ids of node `index` after `after`, in byte order; fewer than
    /// `limit` means the listing is complete.
    pub(crate) async fn list_page(
        &self,
        index: usize,
        after: Option<PieceId>,
        limit: usize,
    ) -> Result<Vec<PieceId>, NodeError> {
        let _conn = self.connect(index).await?;
        let started = Instant::now();
        let r = self.node(index).store.list(after, limit).await;
        self.record(index, NodeOp::List, started, r.as_ref().map(|_| ()));
        r
    }

    /// The size of a piece as its node reports it; `NotFound` when the node does not have it.
    pub(crate) async fn piece_size(&self, index: usize, id: PieceId) -> Result<u64, NodeError> {
        let _conn = self.connect(index).await?;
        let started = Instant::now();
        let r = self.node(index).store.size(id).await;
        self.record(index, NodeOp::Get, started, r.as_ref().map(|_| ()));
        r
    }

    /// The first bytes of a piece and its size. `NotFound` when the piece is gone.
    pub(crate) async fn probe_piece(
        &self,
        index: usize,
        id: PieceId,
    ) -> Result<PieceProbe, NodeError> {
        let _conn = self.connect(index).await?;
        let store = &self.node(index).store;
        let started = Instant::now();
        let head = store.read(id, 0, PROBE_LEN).await;
        let magic = match head {
            Ok(b) => {
                self.record(index, NodeOp::Get, started, Ok(()));
                self.metrics
                    .node_received(self.node(index).id(), Reason::Delete, b.len() as u64);
                let mut m = [0u8; PROBE_LEN as usize];
                m.copy_from_slice(&b[..PROBE_LEN as usize]);
                Some(m)
            }
            // Shorter than a magic: not one of our formats.
            Err(NodeError::ShortRead { .. }) => None,
            Err(e) => {
                self.record(index, NodeOp::Get, started, Err(&e));
                return Err(e);
            }
        };
        let started = Instant::now();
        let size = match store.size(id).await {
            Ok(n) => {
                self.record(index, NodeOp::Get, started, Ok(()));
                Some(n)
            }
            Err(e @ NodeError::NotFound { .. }) => return Err(e),
            // A node kind without sizes, or a passing failure: the size is only reported.
            Err(_) => None,
        };
        Ok(PieceProbe { magic, size })
    }
}
