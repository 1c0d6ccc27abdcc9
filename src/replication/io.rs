//! Metadata blobs on the nodes: where their pieces are ([`piece_ids`]), writing one
//! everywhere ([`put_blob`]) and reading what the nodes hold of one ([`fetch`]). The shipper,
//! the head record and recovery all go through here.

use std::sync::Arc;

use super::blob::{piece_len_from_header, seal_blob, BlobName, BLOB_HEADER_LEN};
use super::{MetaScheme, ReplicationError};
use crate::crypto::RootKey;
use crate::nodes::NodeError;
use crate::transfer::Transfers;

/// The ids of blob `name`'s pieces, one per node in configuration order.
pub(super) fn piece_ids(
    transfers: &Transfers,
    root: &RootKey,
    name: &BlobName,
) -> Vec<crate::nodes::PieceId> {
    transfers
        .node_ids()
        .iter()
        .map(|id| name.piece_id(&root.piece_id_key(id), id))
        .collect()
}

/// Seals `plain` as blob `name` (coded `k` of one piece per node) and writes it everywhere;
/// `Ok` once `scheme.success` nodes committed their piece.
pub(super) async fn put_blob(
    transfers: &Arc<Transfers>,
    root: &RootKey,
    scheme: &MetaScheme,
    name: BlobName,
    plain: &[u8],
    k: u16,
) -> Result<(), ReplicationError> {
    let key = root.metadata_key();
    let plain = plain.to_vec();
    let n = scheme.n;
    let pieces = tokio::task::spawn_blocking(move || seal_blob(&key, &name, &plain, k, n))
        .await
        .map_err(|e| ReplicationError::Crypto(e.to_string()))??;
    let mut pieces: Vec<Option<Vec<u8>>> = pieces.into_iter().map(Some).collect();
    pieces.resize(transfers.node_count(), None);
    let results = transfers
        .put_pieces_everywhere(
            piece_ids(transfers, root, &name),
            pieces,
            usize::from(scheme.success),
        )
        .await;
    let durable = results.iter().filter(|r| matches!(r, Some(Ok(())))).count();
    if durable >= usize::from(scheme.success) {
        return Ok(());
    }
    let causes: Vec<String> = results
        .iter()
        .filter_map(|r| match r {
            Some(Err(e)) => Some(e.to_string()),
            _ => None,
        })
        .collect();
    Err(ReplicationError::NotDurable {
        what: name.to_string(),
        durable,
        needed: usize::from(scheme.success),
        causes: causes.join("; "),
    })
}

/// The pieces of one blob found on the nodes.
pub(super) struct Fetched {
    pub(super) pieces: Vec<Vec<u8>>,
    pub(super) not_found: usize,
    pub(super) causes: Vec<String>,
}

/// Reads every node's piece of blob `name`.
pub(super) async fn fetch(transfers: &Arc<Transfers>, root: &RootKey, name: &BlobName) -> Fetched {
    let results = transfers
        .get_pieces_everywhere(
            piece_ids(transfers, root, name),
            BLOB_HEADER_LEN as u64,
            piece_len_from_header,
        )
        .await;
    let mut f = Fetched {
        pieces: Vec::new(),
        not_found: 0,
        causes: Vec::new(),
    };
    // Only the first `n` nodes (at most 255) are given metadata pieces.
    let n = transfers.node_count().min(255);
    for r in results.into_iter().take(n) {
        match r {
            Ok(p) => f.pieces.push(p),
            Err(NodeError::NotFound { .. }) => f.not_found += 1,
            Err(e) => f.causes.push(e.to_string()),
        }
    }
    f
}
