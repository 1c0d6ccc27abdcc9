//! Storage nodes: the [`NodeStore`] trait and its backends.
//!
//! Contract of every backend:
//! - A piece is written through a [`PieceWriter`]; it becomes visible under its id only when
//!   [`PieceWriter::commit`] returns `Ok`, and then it is durable (fsynced, or the backend's
//!   equivalent). A writer dropped or aborted before commit leaves no visible piece.
//! - Committing over an existing id replaces it atomically.
//! - [`NodeStore::read`] returns exactly the requested range or an error; a range past the
//!   end is an error (`NodeError::ShortRead`), never silently short data.
//! - Deleting a missing piece is not an error.
//! - Nodes only ever see [`PieceId`]s (keyed hashes); never bucket or object names.
//!
//! Backends: [`DirNode`] (a local directory) and [`RemoteNode`] (a `gateway node` server,
//! [`server`], reached over HTTP with the [`protocol`] both sides share).

pub mod body;
pub mod dir;
pub mod http;
pub mod protocol;
pub mod remote;
pub mod s3;
pub mod server;

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

pub use dir::DirNode;
pub use remote::{RemoteNode, RemoteOptions};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The name of a piece on one node: a keyed hash, different on every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PieceId(pub [u8; 32]);

impl PieceId {
    /// The id of piece `number` of segment `segment` of stream `stream_id`, on the node whose
    /// piece-id key is `node_key` (see `crypto::RootKey::piece_id_key`).
    pub fn derive(node_key: &[u8; 32], stream_id: &[u8; 16], segment: u32, number: u16) -> Self {
        let mut h = blake3::Hasher::new_keyed(node_key);
        h.update(stream_id);
        h.update(&segment.to_be_bytes());
        h.update(&number.to_be_bytes());
        PieceId(*h.finalize().as_bytes())
    }

    pub fn to_hex(&self) -> String {
        crate::crypto::encode_hex(&self.0)
    }

    /// Parses the 64 lowercase hex digits [`PieceId::to_hex`] writes; anything else is `None`.
    pub fn from_hex(s: &str) -> Option<PieceId> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            *o = (lower_hex_digit(pair[0])? << 4) | lower_hex_digit(pair[1])?;
        }
        Some(PieceId(out))
    }
}

fn lower_hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("node {node}: piece not found")]
    NotFound { node: String },
    #[error("node {node}: piece is shorter than the requested range")]
    ShortRead { node: String },
    #[error("node {node} is unavailable: {reason}")]
    Unavailable { node: String, reason: String },
    /// The node answered but refused the request (bad credentials, full, too large...).
    #[error("node {node} refused the request: {reason}")]
    Refused { node: String, reason: String },
    #[error("node {node}: {op}: {source}")]
    Io {
        node: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Free and total bytes where a node keeps its pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    pub free: u64,
    pub total: u64,
}

/// One storage node.
pub trait NodeStore: Send + Sync {
    /// The node's id from the configuration.
    fn id(&self) -> &str;

    /// Starts writing a piece.
    fn create<'a>(
        &'a self,
        piece: PieceId,
    ) -> BoxFuture<'a, Result<Box<dyn PieceWriter>, NodeError>>;

    /// Reads `len` bytes at `offset` of a committed piece.
    fn read<'a>(
        &'a self,
        piece: PieceId,
        offset: u64,
        len: u64,
    ) -> BoxFuture<'a, Result<Bytes, NodeError>>;

    /// Removes a piece; a missing piece is not an error.
    fn delete<'a>(&'a self, piece: PieceId) -> BoxFuture<'a, Result<(), NodeError>>;

    /// Up to `limit` committed piece ids greater than `after` (from the start when `None`),
    /// in ascending byte order: a page of the node's inventory, for garbage collection and
    /// audits. Fewer than `limit` ids means the listing is complete.
    fn list<'a>(
        &'a self,
        after: Option<PieceId>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<PieceId>, NodeError>>;

    /// Free and total bytes of the node's storage, for the status page; `None` when the
    /// backend cannot tell (an S3 bucket has no size), the default.
    fn space<'a>(&'a self) -> BoxFuture<'a, Result<Option<Space>, NodeError>> {
        Box::pin(async move { Ok(None) })
    }

    /// The size in bytes of a committed piece (`NodeError::NotFound` when there is none), for
    /// reporting what garbage collection finds and reclaims. A backend that cannot tell
    /// cheaply answers `Unavailable` (the default).
    fn size<'a>(&'a self, piece: PieceId) -> BoxFuture<'a, Result<u64, NodeError>> {
        let _ = piece;
        Box::pin(async move {
            Err(NodeError::Unavailable {
                node: self.id().to_string(),
                reason: "this node kind does not report piece sizes".into(),
            })
        })
    }
}

/// An in-progress piece upload.
pub trait PieceWriter: Send {
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<(), NodeError>>;
    /// Makes the piece durable and visible.
    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<(), NodeError>>;
    /// Discards the piece.
    fn abort(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// A configured node that could not be opened at start: every operation fails with the
/// reason, so reads fall back to other pieces and uploads count it as a failed piece.
pub struct OfflineNode {
    pub id: String,
    pub reason: String,
}

impl OfflineNode {
    fn err(&self) -> NodeError {
        NodeError::Unavailable {
            node: self.id.clone(),
            reason: self.reason.clone(),
        }
    }
}

impl NodeStore for OfflineNode {
    fn id(&self) -> &str {
        &self.id
    }

    fn create<'a>(&'a self, _: PieceId) -> BoxFuture<'a, Result<Box<dyn PieceWriter>, NodeError>> {
        Box::pin(async move { Err(self.err()) })
    }

    fn read<'a>(&'a self, _: PieceId, _: u64, _: u64) -> BoxFuture<'a, Result<Bytes, NodeError>> {
        Box::pin(async move { Err(self.err()) })
    }

    fn delete<'a>(&'a self, _: PieceId) -> BoxFuture<'a, Result<(), NodeError>> {
        Box::pin(async move { Err(self.err()) })
    }

    fn list<'a>(
        &'a self,
        _: Option<PieceId>,
        _: usize,
    ) -> BoxFuture<'a, Result<Vec<PieceId>, NodeError>> {
        Box::pin(async move { Err(self.err()) })
    }
}

/// The conformance suite every backend passes.
#[cfg(test)]
pub(crate) mod conformance {
    use super::*;

    pub async fn run(node: &dyn NodeStore) {
        let id = PieceId([1; 32]);
        // Not visible before commit.
        let mut w = node.create(id).await.unwrap();
        w.write(Bytes::from_static(b"hello ")).await.unwrap();
        w.write(Bytes::from_static(b"world")).await.unwrap();
        assert!(matches!(
            node.read(id, 0, 1).await,
            Err(NodeError::NotFound { .. })
        ));
        w.commit().await.unwrap();
        assert_eq!(&node.read(id, 0, 11).await.unwrap()[..], b"hello world");
        assert_eq!(&node.read(id, 6, 5).await.unwrap()[..], b"world");
        assert_eq!(node.read(id, 11, 0).await.unwrap().len(), 0);
        assert!(matches!(
            node.read(id, 6, 6).await,
            Err(NodeError::ShortRead { .. })
        ));
        // Replace atomically.
        let mut w = node.create(id).await.unwrap();
        w.write(Bytes::from_static(b"second")).await.unwrap();
        w.commit().await.unwrap();
        assert_eq!(&node.read(id, 0, 6).await.unwrap()[..], b"second");
        // Abort leaves the old piece.
        let mut w = node.create(id).await.unwrap();
        w.write(Bytes::from_static(b"third!")).await.unwrap();
        w.abort().await;
        assert_eq!(&node.read(id, 0, 6).await.unwrap()[..], b"second");
        // A dropped writer leaves nothing visible either.
        let other = PieceId([2; 32]);
        let mut w = node.create(other).await.unwrap();
        w.write(Bytes::from_static(b"x")).await.unwrap();
        drop(w);
        assert!(matches!(
            node.read(other, 0, 1).await,
            Err(NodeError::NotFound { .. })
        ));
        // Delete, twice.
        node.delete(id).await.unwrap();
        node.delete(id).await.unwrap();
        assert!(matches!(
            node.read(id, 0, 1).await,
            Err(NodeError::NotFound { .. })
        ));
        // Concurrent writers of different pieces.
        let mut handles = Vec::new();
        for i in 0..8u8 {
            handles.push(async move {
                let pid = PieceId([10 + i; 32]);
                let mut w = node.create(pid).await.unwrap();
                w.write(Bytes::from(vec![i; 1000])).await.unwrap();
                w.commit().await.unwrap();
                pid
            });
        }
        let mut written = Vec::new();
        for (i, h) in handles.into_iter().enumerate() {
            let pid = h.await;
            assert_eq!(node.read(pid, 0, 1000).await.unwrap(), vec![i as u8; 1000]);
            written.push(pid);
        }
        // Listing: ascending, paged, complete; aborted and dropped writers are not listed.
        let all = node.list(None, 1000).await.unwrap();
        assert_eq!(all, written);
        let first = node.list(None, 3).await.unwrap();
        assert_eq!(first, written[..3]);
        let rest = node.list(Some(first[2]), 1000).await.unwrap();
        assert_eq!(rest, written[3..]);
        assert!(node.list(Some(written[7]), 10).await.unwrap().is_empty());
        // Sizes of committed pieces; a missing piece is NotFound.
        assert_eq!(node.size(written[3]).await.unwrap(), 1000);
        assert!(matches!(
            node.size(id).await,
            Err(NodeError::NotFound { .. })
        ));
    }
}
