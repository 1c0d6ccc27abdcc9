//! Garbage collection of orphan pieces: pieces a node holds that no metadata references — left
//! by uploads a crash or `kill -9` cut short, by a cancelled long tail or a failed upload whose
//! delete failed, by deletes while a node was down.
//!
//! Every `storage.orphan_scan_interval` (and [`FIRST_SCAN`] after start), one node after the
//! other:
//! 1. Take the in-flight registry's snapshot ([`crate::transfer::inflight`]), *then* read every
//!    piece row the metadata has for the node, live and garbage, and derive each one's id on
//!    the node, plus every id the streams in flight may have there: the expected set. (A
//!    stream leaves the registry only after its metadata commit returned, so in this order no
//!    stream falls between the two.)
//! 2. List the node page by page ([`PAGE`] ids, [`PAGE_PAUSE`] between pages). A listed id not
//!    expected is a candidate; a new candidate's first bytes are read: only data pieces (magic
//!    `GWPC`) are ever deleted — metadata blobs (`GWMB`, owned by `replication`) and anything
//!    else are left alone — and its size is asked for, for the reports.
//! 3. Safety valve: when the node's orphans are more than `storage.orphan_max_share` of the
//!    data pieces it lists, nothing is deleted from it (the metadata is probably older than
//!    the node, or a node directory, id or root key is mixed up); an error is logged every
//!    scan and `gateway stats` shows why.
//! 4. A candidate seen by an earlier scan, at least `storage.orphan_grace` ago, is deleted, in
//!    batches under the registry's deletion fence (no rewrite of an existing stream runs
//!    meanwhile; if one finished since step 1 the expected set is rebuilt first).
//!
//! Why a candidate of step 4 is an orphan for good: it was listed by an earlier scan, so its
//! stream was registered (or in the metadata) before this scan began; it is neither in flight
//! nor in the metadata now, so its upload ended without a commit, or its body was collected.
//! New streams have random ids, so no later upload can write a piece with its id.
//!
//! Candidates' first sightings are kept in the data directory (`orphans.json`), so a gateway
//! restarted more often than the grace period still collects. A listing that fails midway
//! deletes nothing from that node in that scan. Every node request holds a connection slot
//! like any transfer, and pieces are looked at and deleted at most one per [`OP_PAUSE`].
//! Counts and bytes go to [`crate::metrics::Metrics`] (`gateway_orphan_*`, `gateway stats`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{now_ms, Inner, ObjectLayer};
use crate::metrics::OrphanCount;
use crate::nodes::{NodeError, PieceId};

/// Ids per node listing page.
const PAGE: usize = 1000;
/// Pause between two listing pages of one node.
const PAGE_PAUSE: Duration = Duration::from_millis(100);
/// Pause after each look at, or deletion of, a single piece.
const OP_PAUSE: Duration = Duration::from_millis(2);
/// Metadata rows per read while building a node's expected set.
const META_PAGE: usize = 10_000;
/// The first scan after start (or after the scan interval, when that is shorter).
pub const FIRST_SCAN: Duration = Duration::from_secs(60);
/// Deletions per hold of the deletion fence.
const DELETE_BATCH: usize = 256;
/// Candidates remembered per node; beyond, later scans find the rest.
const MAX_TRACKED: usize = 200_000;
/// The first bytes of a data piece (`erasure::piece`); nothing else is ever deleted.
const DATA_PIECE_MAGIC: [u8; 4] = *b"GWPC";
/// The file in the data directory keeping candidates' first sightings.
pub const STATE_FILE: &str = "orphans.json";

impl ObjectLayer {
    /// Starts collecting orphan pieces in the background (see the module docs), keeping its
    /// state in `state_dir` (the data directory) when given. Runs until the layer is dropped.
    pub fn start_orphan_collection(&self, state_dir: Option<&Path>) {
        spawn(
            Arc::downgrade(&self.inner),
            state_dir.map(|d| d.join(STATE_FILE)),
        );
    }
}

fn spawn(inner: Weak<Inner>, state_file: Option<PathBuf>) {
    tokio::spawn(async move {
        let interval = match inner.upgrade() {
            Some(i) => i.storage.orphan_scan_interval,
            None => return,
        };
        let mut collector = Collector::load(state_file).await;
        tokio::time::sleep(FIRST_SCAN.min(interval)).await;
        loop {
            {
                let Some(strong) = inner.upgrade() else {
                    return;
                };
                collector.round(&strong).await;
            }
            tokio::time::sleep(interval).await;
        }
    });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A data piece; its size when the node reported it.
    Data(Option<u64>),
    /// Not a data piece (a metadata blob, something foreign): never deleted.
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    first_seen_ms: i64,
    kind: Kind,
}

/// Orphan collection's memory: each node's candidates, by node id.
struct Collector {
    nodes: HashMap<String, HashMap<PieceId, Candidate>>,
    state_file: Option<PathBuf>,
    /// What the state file holds, so that an unchanged state is not written again.
    saved: Vec<u8>,
}

/// What one complete listing of a node found.
#[derive(Debug, Default)]
struct Listing {
    /// Ids listed, data pieces among them (expected ones and data orphans), and the data
    /// orphans.
    listed: u64,
    data: u64,
    orphans: OrphanCount,
    /// Candidates that are not data pieces (metadata blobs, foreign files).
    other: u64,
}

impl Collector {
    async fn load(state_file: Option<PathBuf>) -> Collector {
        let mut nodes = HashMap::new();
        if let Some(path) = state_file.clone() {
            let read = tokio::task::spawn_blocking(move || std::fs::read(&path)).await;
            match read {
                Ok(Ok(bytes)) => match serde_json::from_slice::<StateFile>(&bytes) {
                    Ok(state) => nodes = state.into_candidates(),
                    Err(e) => {
                        tracing::warn!(error = %e, "orphan collection state unreadable; starting afresh (orphans are deleted one grace period later)")
                    }
                },
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "orphan collection state unreadable; starting afresh")
                }
                Err(e) => tracing::warn!(error = %e, "orphan collection state not loaded"),
            }
        }
        Collector {
            nodes,
            state_file,
            saved: Vec::new(),
        }
    }

    /// Scans every node once, deleting the orphans whose grace period is over.
    async fn round(&mut self, inner: &Arc<Inner>) {
        let t = &inner.transfers;
        for index in 0..t.node_count() {
            let node = t.node(index).id().to_string();
            if t.is_offline(index) {
                continue;
            }
            let mut candidates = self.nodes.remove(&node).unwrap_or_default();
            if let Err(e) = collect_node(inner, index, &mut candidates).await {
                tracing::warn!(node = %node, error = %e, "orphan scan stopped; nothing more deleted from this node until the next scan");
            }
            self.nodes.insert(node, candidates);
            self.save().await;
        }
        // Nodes no longer configured are forgotten.
        let configured: Vec<String> = (0..t.node_count())
            .map(|i| t.node(i).id().to_string())
            .collect();
        self.nodes.retain(|n, _| configured.contains(n));
    }

    async fn save(&mut self) {
        let Some(path) = self.state_file.clone() else {
            return;
        };
        let body = match serde_json::to_vec(&StateFile::from_candidates(&self.nodes)) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "could not save the orphan collection state");
                return;
            }
        };
        if body == self.saved {
            return;
        }
        let written = body.clone();
        let r = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let tmp = path.with_extension("json.tmp");
            std::fs::write(&tmp, written)?;
            std::fs::rename(&tmp, &path)
        })
        .await;
        match r {
            Ok(Ok(())) => self.saved = body,
            Ok(Err(e)) => tracing::warn!(error = %e, "could not save the orphan collection state"),
            Err(e) => tracing::warn!(error = %e, "could not save the orphan collection state"),
        }
    }
}

/// One node: list, compare, report, and delete what is due. `candidates` is updated in place:
/// after a complete listing it holds exactly the candidates listed.
async fn collect_node(
    inner: &Arc<Inner>,
    index: usize,
    candidates: &mut HashMap<PieceId, Candidate>,
) -> Result<(), String> {
    let t = &inner.transfers;
    let node = t.node(index).id().to_string();
    let scan_started_ms = now_ms();
    let mut rewrites_seen = t.in_flight().rewrites_done();
    let mut expected = expected_on(inner, index).await?;

    let listing = list_node(inner, index, &expected, candidates, scan_started_ms).await?;
    let storage = &inner.storage;
    let held = valve(&listing, storage.orphan_max_share);
    t.metrics()
        .orphan_scan(&node, listing.orphans, held.clone(), now_ms());
    if listing.orphans.pieces > 0 {
        tracing::info!(
            node = %node,
            listed = listing.listed,
            data_pieces = listing.data,
            orphans = listing.orphans.pieces,
            orphan_bytes = listing.orphans.bytes,
            not_data = listing.other,
            "orphan scan"
        );
    }
    if let Some(reason) = held {
        tracing::error!(node = %node, "orphan pieces NOT deleted: {reason}");
        return Ok(());
    }
    let Some(grace) = storage.orphan_grace else {
        return Ok(());
    };
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    let now = now_ms();
    let due: Vec<(PieceId, Option<u64>)> = candidates
        .iter()
        .filter_map(|(id, c)| match c.kind {
            // Seen by an earlier scan, and long enough ago.
            Kind::Data(size)
                if c.first_seen_ms < scan_started_ms
                    && now.saturating_sub(c.first_seen_ms) >= grace_ms =>
            {
                Some((*id, size))
            }
            _ => None,
        })
        .collect();
    let (mut deleted, mut bytes) = (0u64, 0u64);
    for batch in due.chunks(DELETE_BATCH) {
        let fence = t.in_flight().deletion_fence().await;
        let now_rewrites = t.in_flight().rewrites_done();
        if now_rewrites != rewrites_seen {
            // A repair or move switched pieces since the view was read.
            expected = expected_on(inner, index).await?;
            rewrites_seen = now_rewrites;
        }
        let (mut n, mut b) = (0u64, 0u64);
        let mut failed = None;
        for (id, size) in batch {
            if expected.find(id).is_some() {
                candidates.remove(id);
                continue;
            }
            match t.delete_at(index, *id).await {
                Ok(()) => {
                    candidates.remove(id);
                    n += 1;
                    b += size.unwrap_or(0);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
            tokio::time::sleep(OP_PAUSE).await;
        }
        drop(fence);
        t.metrics().orphans_reclaimed(&node, n, b);
        deleted += n;
        bytes += b;
        if let Some(e) = failed {
            tracing::info!(node = %node, deleted, bytes, "orphan pieces deleted");
            return Err(format!("deleting an orphan piece: {e}"));
        }
    }
    if deleted > 0 {
        tracing::info!(node = %node, deleted, bytes, "orphan pieces deleted");
    }
    Ok(())
}

/// Why deletions must be held on a node, if they must (see the module docs).
fn valve(l: &Listing, max_share: f64) -> Option<String> {
    if max_share >= 1.0 || l.orphans.pieces == 0 {
        return None;
    }
    let share = l.orphans.pieces as f64 / l.data.max(1) as f64;
    (share > max_share).then(|| {
        format!(
            "{} of the {} data pieces on the node ({:.0}%) are referenced by no metadata, more than \
             storage.orphan_max_share ({:.0}%): the metadata may be older than the node, or a node \
             directory, node id or root key is mixed up. Check the configuration; if these really \
             are orphans (e.g. a crash during large uploads into an almost empty store), set \
             storage.orphan_max_share = 1 until they are collected",
            l.orphans.pieces,
            l.data,
            share * 100.0,
            max_share * 100.0
        )
    })
}

/// Lists node `index` and sorts what it holds into expected pieces and candidates; probes new
/// candidates. After a complete listing `candidates` holds exactly the candidates listed; an
/// error leaves the earlier ones in place (plus any new ones).
async fn list_node(
    inner: &Arc<Inner>,
    index: usize,
    expected: &Expected,
    candidates: &mut HashMap<PieceId, Candidate>,
    now_ms: i64,
) -> Result<Listing, String> {
    let t = &inner.transfers;
    let mut seen: HashMap<PieceId, Candidate> = HashMap::new();
    let mut out = Listing::default();
    let mut after = None;
    let result: Result<(), NodeError> = async {
        loop {
            let page = t.list_page(index, after, PAGE).await?;
            let complete = page.len() < PAGE;
            after = page.last().copied().or(after);
            for id in page {
                out.listed += 1;
                if expected.find(&id).is_some() {
                    out.data += 1;
                    continue;
                }
                let candidate = match candidates.get(&id) {
                    Some(c) => *c,
                    None if seen.len() >= MAX_TRACKED => continue,
                    None => {
                        let probe = t.probe_piece(index, id).await;
                        tokio::time::sleep(OP_PAUSE).await;
                        let kind = match probe {
                            Ok(p) if p.magic == Some(DATA_PIECE_MAGIC) => Kind::Data(p.size),
                            Ok(_) => Kind::Other,
                            // Deleted since it was listed (an upload's own cleanup).
                            Err(NodeError::NotFound { .. }) => continue,
                            Err(e) => return Err(e),
                        };
                        Candidate {
                            first_seen_ms: now_ms,
                            kind,
                        }
                    }
                };
                match candidate.kind {
                    Kind::Data(size) => {
                        out.data += 1;
                        out.orphans.pieces += 1;
                        match size {
                            Some(n) => out.orphans.bytes += n,
                            None => out.orphans.unknown_size += 1,
                        }
                    }
                    Kind::Other => out.other += 1,
                }
                seen.insert(id, candidate);
            }
            if complete {
                return Ok(());
            }
            tokio::time::sleep(PAGE_PAUSE).await;
        }
    }
    .await;
    match result {
        Ok(()) => {
            *candidates = seen;
            Ok(out)
        }
        Err(e) => {
            candidates.extend(seen);
            Err(format!("listing: {e}"))
        }
    }
}

/// The ids a node should hold, as sorted 64-bit prefixes (a prefix shared by an orphan and an
/// expected piece only keeps the orphan: the error is on the safe side). Also the audit's
/// view of what a node should hold (`audit::listing`).
pub(super) struct Expected {
    keys: Vec<u64>,
}

pub(super) fn prefix(id: &PieceId) -> u64 {
    let mut p = [0u8; 8];
    p.copy_from_slice(&id.0[..8]);
    u64::from_be_bytes(p)
}

impl Expected {
    pub(super) fn new(mut keys: Vec<u64>) -> Expected {
        keys.sort_unstable();
        keys.dedup();
        Expected { keys }
    }

    /// The position of `id`'s prefix in [`Expected::keys`], if expected.
    pub(super) fn find(&self, id: &PieceId) -> Option<usize> {
        self.keys.binary_search(&prefix(id)).ok()
    }

    /// The prefixes, ascending and distinct.
    pub(super) fn keys(&self) -> &[u64] {
        &self.keys
    }
}

/// Step 1 of the module docs: the in-flight snapshot first, then the metadata.
async fn expected_on(inner: &Arc<Inner>, index: usize) -> Result<Expected, String> {
    let t = &inner.transfers;
    let mut keys = Vec::new();
    for s in t.in_flight().snapshot() {
        for segment in 0..s.segments {
            for number in 0..s.numbers {
                keys.push(prefix(&t.piece_id(index, &s.stream, segment, number)));
            }
        }
    }
    let node = t.node(index).id().to_string();
    let mut after = None;
    loop {
        let page = inner
            .meta
            .node_pieces(&node, after, META_PAGE)
            .await
            .map_err(|e| format!("reading the metadata: {e}"))?;
        let complete = page.len() < META_PAGE;
        for (stream, segment, number, _live) in &page {
            keys.push(prefix(&t.piece_id(index, &stream.0, *segment, *number)));
        }
        after = page.last().map(|(s, seg, n, _)| (*s, *seg, *n));
        if complete {
            break;
        }
        tokio::task::yield_now().await;
    }
    tokio::task::spawn_blocking(move || Expected::new(keys))
        .await
        .map_err(|e| e.to_string())
}

/// `orphans.json`: the data candidates' first sightings, by node.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StateFile {
    version: u32,
    /// Node id → `[hex id, first seen (unix ms), size or null]`.
    candidates: BTreeMap<String, Vec<(String, i64, Option<u64>)>>,
}

impl StateFile {
    fn from_candidates(nodes: &HashMap<String, HashMap<PieceId, Candidate>>) -> StateFile {
        let candidates = nodes
            .iter()
            .map(|(node, c)| {
                let mut list: Vec<(String, i64, Option<u64>)> = c
                    .iter()
                    .filter_map(|(id, c)| match c.kind {
                        Kind::Data(size) => Some((id.to_hex(), c.first_seen_ms, size)),
                        Kind::Other => None,
                    })
                    .collect();
                list.sort();
                (node.clone(), list)
            })
            .collect();
        StateFile {
            version: 1,
            candidates,
        }
    }

    fn into_candidates(self) -> HashMap<String, HashMap<PieceId, Candidate>> {
        if self.version != 1 {
            return HashMap::new();
        }
        self.candidates
            .into_iter()
            .map(|(node, list)| {
                let map = list
                    .into_iter()
                    .filter_map(|(hex, first_seen_ms, size)| {
                        Some((
                            PieceId::from_hex(&hex)?,
                            Candidate {
                                first_seen_ms,
                                kind: Kind::Data(size),
                            },
                        ))
                    })
                    .collect();
                (node, map)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
