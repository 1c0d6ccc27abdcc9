//! Metadata replication: the metadata store's change log and snapshots, encrypted and
//! erasure-coded onto the same nodes as the data, so a new machine with the root key and the
//! node list rebuilds the store ([`recover`]).
//!
//! Contract:
//! - Every committed change (see `meta::log`) is shipped to the nodes in numbered log
//!   batches, in order, each batch starting right after the previous one's last change. A
//!   batch is durable when `success` of its pieces are committed on nodes ([`MetaScheme`]);
//!   only then is it recorded as shipped and pruned from the local log, so a crash re-ships,
//!   never skips.
//! - Async mode ships within `metadata.max_delay` of a commit (the recovery point); sync mode
//!   holds every metadata write's acknowledgement until its change is durable on the nodes
//!   ([`Replicator::durable_watch`], `Meta::with_durability`). Graceful shutdown ships everything first.
//! - Snapshots (a consistent copy of the database, `VACUUM INTO`) are taken when the log since
//!   the last one outgrows it or `metadata.snapshot_interval` passed, written in parts, and
//!   then named by the head record, which every node holds a full copy of. The head names
//!   the newest snapshot and the one before (kept with its log as a fallback); older
//!   snapshots and log batches are deleted after the new head is durable.
//! - Nodes see opaque piece ids and sealed, authenticated pieces (see [`blob`]); batches are
//!   padded to 4 KiB multiples. They learn the sizes and times of metadata writes, nothing of
//!   names, keys or tags.
//! - At start ([`Replicator::start`]) the head on the nodes is checked against this store:
//!   heads that do not authenticate with the root key, or metadata on the nodes that this
//!   data directory does not have, refuse the start with a message saying what to do.

pub mod blob;
pub mod head;
mod io;
pub mod recover;
mod shipper;

pub use head::{Head, SnapshotRef};
pub use shipper::Replicator;

use crate::erasure::Scheme;
use crate::meta::MetaError;

/// The redundancy of metadata blobs over `n` nodes: one piece per node, any `k` rebuild,
/// durable with `success`. Chosen so the metadata survives at least as many lost nodes as
/// the data: `success - k >= data.success - data.minimum`, with `k` half the data's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaScheme {
    pub k: u16,
    pub n: u16,
    pub success: u16,
}

impl MetaScheme {
    pub fn for_nodes(data: &Scheme, nodes: usize) -> MetaScheme {
        let n = nodes.clamp(1, 255) as u16;
        let k = data.minimum.div_ceil(2).clamp(1, n);
        let extra = data.success.saturating_sub(data.minimum).max(1);
        let success = k.saturating_add(extra).min(n);
        MetaScheme { k, n, success }
    }

    /// A blob is absent from the nodes (never durably written) when at least this many nodes
    /// answered "not found": a durable blob has `success` pieces, so at most `n - success`
    /// nodes lack it.
    pub fn absent_quorum(&self) -> usize {
        usize::from(self.n - self.success) + 1
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error("metadata: {0}")]
    Meta(#[from] MetaError),
    #[error("{0}")]
    Crypto(String),
    #[error("{0}")]
    Io(String),
    #[error("{what}: only {durable} of the {needed} node writes it needs succeeded ({causes})")]
    NotDurable {
        what: String,
        durable: usize,
        needed: usize,
        causes: String,
    },
    #[error(
        "the root key does not match the metadata on the nodes: the head record on {nodes} does not \
         authenticate with this key (another gateway's nodes, or the wrong root.key)"
    )]
    ForeignHead { nodes: String },
    #[error(
        "the root key does not match this data directory's metadata (it was written with another key); \
         restore the right root.key"
    )]
    ForeignStore,
    #[error(
        "the nodes hold metadata (snapshot {snapshot}, {seq} changes) that this data directory does not \
         have: run `gateway recover` to rebuild it from the nodes, or point the gateway at empty nodes"
    )]
    NodesAhead { snapshot: u64, seq: u64 },
    #[error("{0}")]
    Recover(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scheme(minimum: u16, repair: u16, success: u16, total: u16) -> Scheme {
        Scheme {
            minimum,
            repair,
            success,
            total,
        }
    }

    #[test]
    fn metadata_survives_at_least_as_many_lost_nodes_as_data() {
        for (data, nodes) in [
            (scheme(4, 5, 6, 6), 6),
            (scheme(4, 5, 6, 8), 8),
            (scheme(2, 3, 4, 4), 6),
            (scheme(29, 35, 80, 110), 110),
            (scheme(1, 1, 1, 1), 1),
            (scheme(1, 1, 2, 2), 2),
        ] {
            let m = MetaScheme::for_nodes(&data, nodes);
            assert_eq!(usize::from(m.n), nodes);
            assert!(m.k >= 1 && m.k <= m.success && m.success <= m.n, "{m:?}");
            let tolerated = if nodes > 1 { m.success - m.k } else { 0 };
            assert!(
                tolerated >= (data.success - data.minimum).min(m.n - m.k),
                "{data} over {nodes}: {m:?}"
            );
            assert!(m.absent_quorum() >= 1 && m.absent_quorum() <= nodes);
        }
        assert_eq!(
            MetaScheme::for_nodes(&scheme(4, 5, 6, 6), 6),
            MetaScheme {
                k: 2,
                n: 6,
                success: 4
            }
        );
    }
}
