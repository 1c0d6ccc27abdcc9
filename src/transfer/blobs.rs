//! Whole-piece transfers for metadata replication: one small piece per node, written, read
//! and deleted on every node at once.
//!
//! Contract: each request holds a connection slot like any piece transfer (the limits hold),
//! is paced by the shared rates, feeds the node's health and is counted under
//! [`Reason::Metadata`]. Results come back per node, in configuration order; nothing here
//! knows what the pieces contain.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::task::JoinSet;

use super::Transfers;

/// How long writes still in flight may finish once enough succeeded.
pub const LAGGARD_GRACE: std::time::Duration = std::time::Duration::from_millis(50);
use crate::metrics::{NodeOp, Reason};
use crate::nodes::{NodeError, PieceId};

impl Transfers {
    /// The configured node ids, in configuration order.
    pub fn node_ids(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.id().to_string()).collect()
    }

    /// Writes `pieces[i]` under `ids[i]` on node `i` (a `None` piece is skipped), all nodes
    /// concurrently. Returns each node's outcome (`None`: nothing written, or still in flight)
    /// once every write ended, or once `need` writes succeeded and the others had
    /// [`LAGGARD_GRACE`] more: a slow or hung node does not hold up the caller, and its write
    /// goes on in the background (within the node client's own timeouts).
    pub async fn put_pieces_everywhere(
        self: &Arc<Self>,
        ids: Vec<PieceId>,
        pieces: Vec<Option<Vec<u8>>>,
        need: usize,
    ) -> Vec<Option<Result<(), NodeError>>> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut started = 0;
        for (index, (id, piece)) in ids.into_iter().zip(pieces).enumerate() {
            let Some(piece) = piece else { continue };
            let (me, tx) = (Arc::clone(self), tx.clone());
            started += 1;
            tokio::spawn(async move {
                let _ = tx.send((index, me.put_whole(index, id, piece).await));
            });
        }
        drop(tx);
        let mut out: Vec<Option<Result<(), NodeError>>> =
            (0..self.nodes.len()).map(|_| None).collect();
        let (mut ended, mut ok) = (0, 0);
        let mut grace: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        while ended < started {
            let next = match grace.as_mut() {
                Some(g) => tokio::select! {
                    r = rx.recv() => r,
                    _ = g => break,
                },
                None => rx.recv().await,
            };
            let Some((index, r)) = next else { break };
            ended += 1;
            ok += usize::from(r.is_ok());
            out[index] = Some(r);
            if ok >= need && grace.is_none() {
                grace = Some(Box::pin(tokio::time::sleep(LAGGARD_GRACE)));
            }
        }
        out
    }

    async fn put_whole(&self, index: usize, id: PieceId, piece: Vec<u8>) -> Result<(), NodeError> {
        let _conn = self.connect(index).await?;
        let len = piece.len() as u64;
        self.pace_up(len).await;
        let started = Instant::now();
        let store = &self.nodes[index].store;
        let r = async {
            let mut w = store.create(id).await?;
            if let Err(e) = w.write(Bytes::from(piece)).await {
                w.abort().await;
                return Err(e);
            }
            w.commit().await
        }
        .await;
        self.record(index, NodeOp::Put, started, r.as_ref().map(|_| ()));
        self.sent(index, Reason::Metadata, len);
        r
    }

    /// Reads the whole piece `ids[i]` from every node `i` concurrently. `header_len` bytes are
    /// read first and `total_len` tells from them how long the piece is (`None`: not a piece
    /// this caller can read, returned as read so far).
    pub async fn get_pieces_everywhere(
        self: &Arc<Self>,
        ids: Vec<PieceId>,
        header_len: u64,
        total_len: fn(&[u8]) -> Option<u64>,
    ) -> Vec<Result<Vec<u8>, NodeError>> {
        let mut set = JoinSet::new();
        for (index, id) in ids.into_iter().enumerate() {
            let me = Arc::clone(self);
            set.spawn(async move { (index, me.get_whole(index, id, header_len, total_len).await) });
        }
        let mut out: Vec<Result<Vec<u8>, NodeError>> = self
            .nodes
            .iter()
            .map(|n| {
                Err(NodeError::Unavailable {
                    node: n.id().to_string(),
                    reason: "read task failed".into(),
                })
            })
            .collect();
        while let Some(joined) = set.join_next().await {
            if let Ok((index, r)) = joined {
                out[index] = r;
            }
        }
        out
    }

    async fn get_whole(
        &self,
        index: usize,
        id: PieceId,
        header_len: u64,
        total_len: fn(&[u8]) -> Option<u64>,
    ) -> Result<Vec<u8>, NodeError> {
        let _conn = self.connect(index).await?;
        let store = &self.nodes[index].store;
        let started = Instant::now();
        let r = async {
            let head = match store.read(id, 0, header_len).await {
                // Shorter than a header: not one of ours.
                Err(NodeError::ShortRead { .. }) => return Ok(Vec::new()),
                r => r?,
            };
            let mut piece = head.to_vec();
            if let Some(total) = total_len(&head).filter(|t| *t > header_len) {
                self.pace_down(total - header_len).await;
                match store.read(id, header_len, total - header_len).await {
                    Ok(rest) => piece.extend_from_slice(&rest),
                    // A piece of the wrong length is unusable; hand over the header alone.
                    Err(NodeError::ShortRead { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(piece)
        }
        .await;
        let outcome = match &r {
            Err(NodeError::NotFound { .. }) => Ok(()),
            other => other.as_ref().map(|_| ()),
        };
        self.record(index, NodeOp::Get, started, outcome);
        if let Ok(p) = &r {
            self.metrics
                .node_received(self.nodes[index].id(), Reason::Metadata, p.len() as u64);
        }
        r
    }

    /// Deletes `ids[i]` on every node `i` concurrently; returns how many deletes failed.
    pub async fn delete_pieces_everywhere(self: &Arc<Self>, ids: Vec<PieceId>) -> usize {
        let mut set = JoinSet::new();
        for (index, id) in ids.into_iter().enumerate() {
            let me = Arc::clone(self);
            set.spawn(async move { me.delete_at(index, id).await.is_err() });
        }
        let mut failed = 0;
        while let Some(joined) = set.join_next().await {
            if !matches!(joined, Ok(false)) {
                failed += 1;
            }
        }
        failed
    }
}
