//! The head record: the one blob rewritten in place, a full copy on every node, naming the
//! newest snapshot (and the one before it) so recovery knows where to start.
//!
//! Contract: JSON, versioned by [`HEAD_FORMAT`], sealed as blob [`BlobName::HEAD`] with
//! `k = 1` (any one authentic copy is enough). Of several authentic copies (a rewrite that
//! reached only some nodes) the highest `generation` wins. [`read_head`] tells an absent head
//! (enough nodes said "not found") from a foreign one (pieces exist but none authenticates)
//! and from an unknown state (too many nodes unreachable to tell).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::blob::{open_blob, piece_len_from_header, BlobName, BLOB_HEADER_LEN};
use super::{MetaScheme, ReplicationError};
use crate::crypto::RootKey;
use crate::nodes::NodeError;
use crate::transfer::Transfers;

pub const HEAD_FORMAT: u32 = 1;

/// One snapshot on the nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    pub number: u64,
    /// The last change it contains.
    pub seq: u64,
    /// The first log batch to replay after it.
    pub first_batch: u64,
    pub taken_ms: i64,
    pub bytes: u64,
    /// BLAKE3 of each part's plaintext, in order (also picks the right write of a part that
    /// was written twice).
    pub parts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub format: u32,
    /// Increases with every rewrite.
    pub generation: u64,
    /// Hex of `RootKey::key_check`.
    pub key_check: String,
    pub current: SnapshotRef,
    pub previous: Option<SnapshotRef>,
    pub written_ms: i64,
}

/// What the nodes' head records say.
#[derive(Debug)]
pub enum HeadRead {
    Found(Head),
    /// Enough nodes answered "not found": no head was ever durably written.
    Absent,
    /// Head pieces exist but none authenticates with this key.
    Foreign {
        nodes: Vec<String>,
    },
    /// Too few nodes answered to tell; the causes.
    Unknown {
        answered: usize,
        causes: String,
    },
}

/// Reads every node's copy of the head.
pub async fn read_head(
    transfers: &Arc<Transfers>,
    root: &RootKey,
    scheme: &MetaScheme,
) -> Result<HeadRead, ReplicationError> {
    let ids: Vec<_> = transfers
        .node_ids()
        .iter()
        .map(|id| BlobName::HEAD.piece_id(&root.piece_id_key(id), id))
        .collect();
    let results = transfers
        .get_pieces_everywhere(ids, BLOB_HEADER_LEN as u64, piece_len_from_header)
        .await;
    let node_ids = transfers.node_ids();
    let meta_key = root.metadata_key();
    let mut best: Option<Head> = None;
    let mut foreign = Vec::new();
    let mut not_found = 0;
    let mut causes = Vec::new();
    for (node, r) in node_ids.iter().zip(results) {
        match r {
            Ok(piece) => {
                let report = open_blob(&meta_key, &BlobName::HEAD, &[piece]);
                let head = report
                    .opened
                    .iter()
                    .filter_map(|o| serde_json::from_slice::<Head>(&o.plain).ok())
                    .filter(|h| h.format <= HEAD_FORMAT)
                    .max_by_key(|h| h.generation);
                match head {
                    Some(h) => {
                        if best.as_ref().is_none_or(|b| h.generation > b.generation) {
                            best = Some(h);
                        }
                    }
                    None => foreign.push(node.clone()),
                }
            }
            Err(NodeError::NotFound { .. }) => not_found += 1,
            Err(e) => causes.push(e.to_string()),
        }
    }
    if let Some(h) = best {
        if h.key_check != crate::crypto::encode_hex(&root.key_check()) {
            return Ok(HeadRead::Foreign {
                nodes: node_ids.clone(),
            });
        }
        return Ok(HeadRead::Found(h));
    }
    if !foreign.is_empty() {
        return Ok(HeadRead::Foreign { nodes: foreign });
    }
    if not_found >= scheme.absent_quorum() {
        return Ok(HeadRead::Absent);
    }
    Ok(HeadRead::Unknown {
        answered: not_found,
        causes: causes.join("; "),
    })
}

/// Writes `head` to every node; durable when `scheme.success` copies are committed.
pub async fn write_head(
    transfers: &Arc<Transfers>,
    root: &RootKey,
    scheme: &MetaScheme,
    head: &Head,
) -> Result<(), ReplicationError> {
    let plain = serde_json::to_vec(head).map_err(|e| ReplicationError::Io(e.to_string()))?;
    super::io::put_blob(transfers, root, scheme, BlobName::HEAD, &plain, 1).await
}
