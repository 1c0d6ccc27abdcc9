//! Uploading one segment's pieces: parallel writers, spare nodes, long-tail cancellation.
//!
//! [`SegmentUpload::start`] picks up to `total` distinct nodes (healthy first, at most
//! `max_pieces_per_domain` per failure domain, each with a free connection slot) and starts one
//! writer task per piece. [`SegmentUpload::send`] hands every writer its record of the next
//! batch. A writer whose queue is full is lagging: once `success` writers have taken the
//! batch, a laggard gets `limits.long_tail_grace` to catch up and is then cancelled as long
//! tail; while fewer than `success` have it, the encoder waits (memory stays bounded by the
//! queue depth either way).
//!
//! A writer whose node fails moves its piece to a spare node (one not chosen for the segment,
//! respecting the domain cap) as long as it still holds every byte it sent — it keeps the first
//! `replay_cap` bytes for that — so a node that is down or refuses at the start of an upload
//! costs nothing but a retry. [`SegmentUpload::finish`] commits every piece and returns as soon
//! as `success` pieces are durable — giving pieces whose commit is already under way (all
//! their bytes sent) up to [`COMMIT_GRACE`] to land and be kept; the others are cancelled
//! (long tail) and their possibly committed pieces deleted in the background. Bytes sent to pieces that are not kept are
//! counted as [`Reason::LongTail`]; kept pieces as [`Reason::Upload`].
//!
//! Degraded writes: with nodes down, full or failing, a segment is still stored as long as
//! `floor` pieces become durable ([`Target`]); it is then recorded with fewer pieces than
//! `success` and repaired later. A node failure during the upload that leaves no spare only
//! lowers the count; it fails the upload when fewer than `floor` pieces remain possible.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::{JoinHandle, JoinSet};

use super::health::Rank;
use super::TransferError;
use super::{Conn, Transfers};
use crate::meta::PieceRecord;
use crate::metrics::{NodeOp, Reason};
use crate::nodes::NodeError;

/// Batches queued per writer before it counts as lagging.
const QUEUE_DEPTH: usize = 4;
/// Bytes per segment upload kept for replaying pieces onto spare nodes, split over the pieces.
const REPLAY_BUDGET: usize = 8 << 20;
const REPLAY_MIN: usize = 256 << 10;
/// A writer whose queue stays empty this long gives its connection slots back until its next
/// record arrives (see `Job::next_msg`).
const IDLE_RELEASE: Duration = Duration::from_millis(200);
/// How long a writer given back its slots waits to have them again before it goes on without
/// (well under a node's one-minute body idle timeout).
const REACQUIRE_WAIT: Duration = Duration::from_secs(2);
/// How long an aborted writer's possibly started commit is given to land before its piece is
/// deleted.
const COMMIT_SETTLE: Duration = Duration::from_secs(2);
/// Once `success` pieces are durable, how long pieces whose commit is under way may take to
/// land and be kept.
const COMMIT_GRACE: Duration = Duration::from_millis(50);

enum Msg {
    Data(Bytes),
    Commit,
}

/// Where one writer stands, readable after it was aborted.
#[derive(Default)]
struct WriterState {
    /// Index of the node the piece is being written to.
    node: AtomicUsize,
    /// Bytes sent to that node.
    sent: AtomicU64,
    /// Bytes sent to nodes given up on.
    wasted: AtomicU64,
    /// Set just before the writer asks its node to commit.
    committing: AtomicBool,
    /// Set when the segment no longer wants this piece: a failed attempt then ends the
    /// writer instead of moving the piece to a spare.
    abandoned: AtomicBool,
}

struct Writer {
    number: u16,
    tx: Option<mpsc::Sender<Msg>>,
    handle: Option<JoinHandle<Result<usize, String>>>,
    result: Option<Result<usize, String>>,
    state: Arc<WriterState>,
}

impl Writer {
    /// Takes the result of a writer task (that has ended or is about to); `Some(durable)`
    /// unless it was already taken.
    async fn reap(&mut self) -> Option<bool> {
        let h = self.handle.take()?;
        let r = h
            .await
            .unwrap_or_else(|e| Err(format!("writer task failed: {e}")));
        let ok = r.is_ok();
        self.result = Some(r);
        Some(ok)
    }
}

/// Nodes not chosen for the segment, in preference order, and the pieces per domain.
struct Spares {
    order: VecDeque<usize>,
    per_domain: HashMap<String, usize>,
    cap: Option<usize>,
}

impl Spares {
    /// Gives up node `failed` and takes the first spare with room in its domain and a free slot.
    fn replace(&mut self, t: &Transfers, failed: usize) -> Option<(usize, OwnedSemaphorePermit)> {
        if let Some(c) = self.per_domain.get_mut(&t.node(failed).domain) {
            *c = c.saturating_sub(1);
        }
        for pos in 0..self.order.len() {
            let i = self.order[pos];
            let slot = t.node(i);
            let room = self
                .cap
                .is_none_or(|cap| self.per_domain.get(&slot.domain).copied().unwrap_or(0) < cap);
            if !room {
                continue;
            }
            // Busy spares stay in the list for a later failure.
            let Ok(permit) = slot.permits.clone().try_acquire_owned() else {
                continue;
            };
            self.order.remove(pos);
            *self.per_domain.entry(slot.domain.clone()).or_insert(0) += 1;
            return Some((i, permit));
        }
        None
    }
}

/// How many durable pieces a segment upload aims at and how few it accepts.
///
/// An upload aims at the scheme's `success` pieces. When nodes are down, full or failing, it
/// still succeeds with fewer, down to `floor = max(repair, minimum + 1)` (never more than
/// `success`): the segment is then stored degraded — at or below the repair threshold, so
/// repair restores it once nodes are back or replaced — but still survives the loss of one
/// more piece. Fewer than `floor` fails the upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub success: usize,
    pub floor: usize,
}

impl Target {
    pub fn for_scheme(s: &crate::erasure::Scheme) -> Target {
        let success = usize::from(s.success);
        Target {
            success,
            floor: usize::from(s.repair.max(s.minimum + 1)).min(success),
        }
    }

    /// Exactly `success` pieces, no degraded writes (metadata blobs, tests).
    pub fn exact(success: usize) -> Target {
        Target {
            success,
            floor: success,
        }
    }
}

/// The outcome of a segment upload.
#[derive(Debug, Clone, Default)]
pub struct UploadedSegment {
    pub pieces: Vec<PieceRecord>,
    /// Bytes of the kept pieces.
    pub encoded_bytes: u64,
    /// Every byte sent to nodes for this segment.
    pub uploaded_bytes: u64,
    /// Of those, bytes of pieces that were cancelled or failed.
    pub long_tail_bytes: u64,
}

pub struct SegmentUpload {
    t: Arc<Transfers>,
    stream: [u8; 16],
    segment: u32,
    /// Durable pieces aimed at: the scheme's `success`, or fewer when fewer nodes could take
    /// a piece.
    success: usize,
    /// Fewest durable pieces accepted.
    floor: usize,
    /// The scheme's `success`: a segment stored with fewer pieces is degraded.
    target_success: usize,
    writers: Vec<Writer>,
    done_rx: mpsc::UnboundedReceiver<usize>,
    /// Set once commits were requested: a dropped upload must then delete what may have landed.
    committing: bool,
    finished: bool,
}

/// The global connection slots a segment upload holds: the `success` its pieces need, in
/// one step (fair: first come, first served, and no two uploads can each hold half of what
/// both need), then whatever else is free now, up to `n`. Returns them and how many.
async fn take_global_slots(
    t: &Transfers,
    success: usize,
    n: usize,
    deadline: tokio::time::Instant,
) -> Result<(OwnedSemaphorePermit, usize), TransferError> {
    let all = t.connections.clone().acquire_many_owned(success as u32);
    let mut global = match tokio::time::timeout_at(deadline, all).await {
        Ok(Ok(p)) => p,
        Ok(Err(_)) => return Err(TransferError::ShuttingDown),
        Err(_) => {
            return Err(TransferError::Busy(format!(
                "no node connection free within {:?}",
                t.limits.queue_wait
            )))
        }
    };
    let mut want = success;
    while want < n {
        match t.connections.clone().try_acquire_owned() {
            Ok(p) => {
                global.merge(p);
                want += 1;
            }
            Err(_) => break,
        }
    }
    Ok((global, want))
}

/// The nodes a segment upload writes to, each with one of its connection slots, and why the
/// others were not taken.
struct NodePick {
    chosen: Vec<(usize, OwnedSemaphorePermit)>,
    /// Usable, but every connection slot was busy.
    busy: Vec<usize>,
    /// Usable but not needed, or over the failure-domain cap: the spares, in preference order.
    rest: VecDeque<usize>,
    offline: Vec<usize>,
    draining: Vec<usize>,
    per_domain: HashMap<String, usize>,
    cap: Option<usize>,
    /// Whether the pick waited for busy nodes.
    waited: bool,
}

impl NodePick {
    fn room(&self, t: &Transfers, i: usize) -> bool {
        self.cap
            .is_none_or(|cap| self.per_domain.get(&t.node(i).domain).copied().unwrap_or(0) < cap)
    }

    fn take(&mut self, t: &Transfers, i: usize, permit: OwnedSemaphorePermit) {
        *self.per_domain.entry(t.node(i).domain.clone()).or_insert(0) += 1;
        self.chosen.push((i, permit));
    }

    /// Up to `want` nodes in preference order (healthy first, shuffled within a rank) whose
    /// connection slot is free now, within the failure-domain caps.
    fn in_preferred_order(t: &Transfers, want: usize) -> Result<NodePick, TransferError> {
        let mut pick = NodePick {
            chosen: Vec::new(),
            busy: Vec::new(),
            rest: VecDeque::new(),
            offline: Vec::new(),
            draining: Vec::new(),
            per_domain: HashMap::new(),
            cap: t.max_per_domain,
            waited: false,
        };
        for i in t.preference_order()? {
            if t.node(i).draining() {
                pick.draining.push(i);
                continue;
            }
            if t.node(i).health.rank() == Rank::Offline {
                pick.offline.push(i);
                continue;
            }
            if pick.chosen.len() >= want || !pick.room(t, i) {
                pick.rest.push_back(i);
                continue;
            }
            match t.node(i).permits.clone().try_acquire_owned() {
                Ok(p) => pick.take(t, i, p),
                Err(_) => pick.busy.push(i),
            }
        }
        Ok(pick)
    }

    /// Too many nodes busy: gives back every node slot and takes them again in index order,
    /// waiting (until `deadline`) where needed, up to `success`. Every upload that waits does
    /// so in that one global order while holding only lower-indexed slots, so waits cannot
    /// form a cycle.
    async fn wait_in_index_order(
        &mut self,
        t: &Transfers,
        success: usize,
        deadline: tokio::time::Instant,
    ) {
        self.waited = true;
        self.per_domain.clear();
        let mut all: Vec<usize> = self
            .chosen
            .drain(..)
            .map(|(i, _)| i)
            .chain(self.rest.drain(..))
            .chain(self.busy.drain(..))
            .collect();
        all.sort_unstable();
        for i in all {
            if self.chosen.len() >= success || !self.room(t, i) {
                self.rest.push_back(i);
                continue;
            }
            let permit = t.node(i).permits.clone().acquire_owned();
            match tokio::time::timeout_at(deadline, permit).await {
                Ok(Ok(p)) => self.take(t, i, p),
                _ => self.busy.push(i),
            }
        }
    }

    /// Fails unless at least `floor` nodes were picked: Busy when only connection slots were
    /// missing (after waiting for them), else NotEnoughNodes naming why each other node was
    /// not taken.
    fn check_floor(&self, t: &Transfers, segment: u32, floor: usize) -> Result<(), TransferError> {
        if self.chosen.len() >= floor {
            return Ok(());
        }
        let wait = t.limits.queue_wait;
        if self.waited && self.chosen.len() + self.busy.len() >= floor {
            // Nodes are there, only their connection slots stayed busy: the gateway is busy.
            return Err(TransferError::Busy(format!(
                "{} of {} nodes had no connection slot free within {wait:?}",
                self.busy.len(),
                t.node_count()
            )));
        }
        let mut causes = Vec::new();
        for &i in &self.offline {
            let why = t.node(i).health.view().last_error.unwrap_or_default();
            causes.push(format!("{} offline: {why}", t.node(i).id()));
        }
        for &i in &self.busy {
            let wait = if self.waited {
                format!(" for {wait:?}")
            } else {
                String::new()
            };
            causes.push(format!(
                "{}: every connection slot busy{wait}",
                t.node(i).id()
            ));
        }
        for &i in &self.rest {
            causes.push(format!("{}: over the failure-domain limit", t.node(i).id()));
        }
        for &i in &self.draining {
            causes.push(format!("{}: draining", t.node(i).id()));
        }
        Err(TransferError::NotEnoughNodes {
            segment,
            usable: self.chosen.len(),
            needed: floor,
            nodes: t.node_count(),
            causes: causes.join("; "),
        })
    }

    /// One writer task per chosen node (piece numbers in pick order), each owning one of the
    /// `global` slots for as long as it runs (a cancelled writer whose commit is left to land
    /// still counts against the limit); the unchosen usable nodes become the spares.
    fn start_writers(
        self,
        t: &Arc<Transfers>,
        stream: [u8; 16],
        segment: u32,
        mut global: OwnedSemaphorePermit,
        header: &Bytes,
    ) -> Result<(Vec<Writer>, mpsc::UnboundedReceiver<usize>), TransferError> {
        let NodePick {
            chosen,
            busy,
            mut rest,
            per_domain,
            cap,
            ..
        } = self;
        rest.extend(busy);
        let spares = Arc::new(Mutex::new(Spares {
            order: rest,
            per_domain,
            cap,
        }));
        let replay_cap = (REPLAY_BUDGET / chosen.len().max(1)).max(REPLAY_MIN);
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let mut writers = Vec::with_capacity(chosen.len());
        for (number, (node, permit)) in chosen.into_iter().enumerate() {
            let Some(global_slot) = global.split(1) else {
                return Err(TransferError::Internal(
                    "connection slots miscounted".into(),
                ));
            };
            let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
            let state = Arc::new(WriterState::default());
            let job = Job {
                t: t.clone(),
                spares: spares.clone(),
                state: state.clone(),
                stream,
                segment,
                number: number as u16,
                replay_cap,
            };
            let done = done_tx.clone();
            let header = header.clone();
            let handle = tokio::spawn(async move {
                let r = job.run(global_slot, node, permit, header, rx).await;
                let _ = done.send(number);
                r
            });
            writers.push(Writer {
                number: number as u16,
                tx: Some(tx),
                handle: Some(handle),
                result: None,
                state,
            });
        }
        Ok((writers, done_rx))
    }
}

impl SegmentUpload {
    /// The most memory the upload of one segment holds besides its input: for `n` pieces
    /// whose records are `record_len` bytes, each writer's queue, the encoded batch being
    /// handed out, and what is kept to move pieces to spare nodes.
    pub fn memory_bound(n: usize, record_len: usize) -> usize {
        let replay = REPLAY_BUDGET.max(REPLAY_MIN * n);
        n * record_len * (QUEUE_DEPTH + 1) + replay
    }

    /// Starts writers for up to `n` pieces (numbers `0..`) of segment `segment`, aiming at
    /// `success` durable pieces and accepting no fewer than `floor` (a degraded write, see
    /// [`Target`]); fails when fewer than `floor` nodes can take a piece. Every piece
    /// starts with `header`.
    ///
    /// The steps: a place in the queue for connection slots (bounded in length and in time),
    /// the global slots ([`take_global_slots`]), the nodes ([`NodePick`]: preferred order,
    /// then, if too many were busy, waiting in index order), the floor check, the writers.
    pub async fn start(
        t: &Arc<Transfers>,
        stream: [u8; 16],
        segment: u32,
        n: usize,
        target: Target,
        header: Bytes,
    ) -> Result<SegmentUpload, TransferError> {
        let Target { success, floor } = target;
        let floor = floor.min(success);
        // A body's later segments are not refused for the queue's length (the body is under
        // way and its earlier segments would be lost); they still wait their turn.
        let queued = t.join_queue();
        if queued.is_none() && segment == 0 {
            return Err(TransferError::Busy(format!(
                "{} uploads already wait for node connections",
                t.limits.queue_depth
            )));
        }
        let deadline = tokio::time::Instant::now() + t.limits.queue_wait;
        let (mut global, want) = take_global_slots(t, success, n, deadline).await?;
        let mut pick = NodePick::in_preferred_order(t, want)?;
        if pick.chosen.len() < success && !pick.busy.is_empty() {
            pick.wait_in_index_order(t, success, deadline).await;
        }
        drop(queued);
        pick.check_floor(t, segment, floor)?;
        if pick.chosen.len() < want {
            drop(global.split(want - pick.chosen.len()));
        }
        let (writers, done_rx) = pick.start_writers(t, stream, segment, global, &header)?;
        Ok(SegmentUpload {
            t: t.clone(),
            stream,
            segment,
            success: success.min(writers.len()),
            floor,
            target_success: success,
            writers,
            done_rx,
            committing: false,
            finished: false,
        })
    }

    /// Pieces being written (at least the floor, at most the `n` asked for).
    pub fn pieces(&self) -> usize {
        self.writers.len()
    }

    /// Hands each writer its record: `records[number]`. Records of pieces without a writer are
    /// dropped.
    pub async fn send(&mut self, mut records: Vec<Vec<u8>>) -> Result<(), TransferError> {
        let mut pending = Vec::new();
        let mut accepted = 0;
        for (i, w) in self.writers.iter_mut().enumerate() {
            let Some(tx) = &w.tx else { continue };
            let Some(rec) = records.get_mut(w.number as usize) else {
                return Err(TransferError::Internal(format!(
                    "no record for piece {}",
                    w.number
                )));
            };
            match tx.try_send(Msg::Data(Bytes::from(std::mem::take(rec)))) {
                Ok(()) => accepted += 1,
                Err(TrySendError::Full(m)) => pending.push((i, tx.clone(), m)),
                Err(TrySendError::Closed(_)) => w.tx = None,
            }
        }
        if !pending.is_empty() {
            self.wait_for_laggards(pending, accepted).await?;
        }
        let alive = self.writers.iter().filter(|w| w.tx.is_some()).count();
        if alive < self.floor {
            return Err(self.fail().await);
        }
        Ok(())
    }

    async fn wait_for_laggards(
        &mut self,
        pending: Vec<(usize, mpsc::Sender<Msg>, Msg)>,
        mut accepted: usize,
    ) -> Result<(), TransferError> {
        let grace = self.t.limits.long_tail_grace;
        let mut waiting: HashSet<usize> = pending.iter().map(|p| p.0).collect();
        let mut set = JoinSet::new();
        for (i, tx, m) in pending {
            set.spawn(async move { (i, tx.send(m).await.is_ok()) });
        }
        let mut deadline = (accepted >= self.success).then(|| tokio::time::Instant::now() + grace);
        loop {
            let timer = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = set.join_next() => match r {
                    None => return Ok(()),
                    Some(Ok((i, ok))) => {
                        waiting.remove(&i);
                        if ok {
                            accepted += 1;
                            if deadline.is_none() && accepted >= self.success {
                                deadline = Some(tokio::time::Instant::now() + grace);
                            }
                        } else {
                            self.writers[i].tx = None;
                        }
                    }
                    Some(Err(e)) => return Err(TransferError::Internal(e.to_string())),
                },
                _ = timer => {
                    set.abort_all();
                    let t = self.t.clone();
                    for i in waiting {
                        let w = &mut self.writers[i];
                        tracing::debug!(segment = self.segment, piece = w.number, "piece fell behind; cancelled as long tail");
                        w.tx = None;
                        abandon(&t, w, self.stream, self.segment);
                        w.result = Some(Err("fell behind; cancelled as long tail".into()));
                    }
                    return Ok(());
                }
            }
        }
    }

    /// Commits every piece; returns once `success` are durable and cancels the rest.
    ///
    /// The steps: ask every writer to commit ([`Self::request_commits`]), wait for `success`
    /// durable pieces or until the floor is out of reach ([`Self::wait_durable`]), keep the
    /// pieces whose commit is under way for a moment ([`Self::keep_committing`]), cancel the
    /// long tail ([`Self::cancel_long_tail`]), then account every piece's bytes and report
    /// ([`Self::account`]).
    pub async fn finish(mut self) -> Result<UploadedSegment, TransferError> {
        self.request_commits();
        let mut durable = self.wait_durable().await;
        if durable >= self.floor {
            durable += self.keep_committing().await;
        }
        durable += self.cancel_long_tail().await;
        self.finished = true;
        let ok = durable >= self.floor;
        let (out, causes) = self.account(ok);
        if !ok {
            return Err(TransferError::NotEnoughDurable {
                segment: self.segment,
                durable,
                needed: self.floor,
                causes: causes.join("; "),
            });
        }
        if out.pieces.len() < self.target_success {
            tracing::warn!(
                segment = self.segment,
                pieces = out.pieces.len(),
                wanted = self.target_success,
                "segment stored degraded (repair will restore it): {}",
                causes.join("; ")
            );
        } else if !causes.is_empty() {
            tracing::debug!(
                segment = self.segment,
                pieces = out.pieces.len(),
                "segment stored; not kept: {}",
                causes.join("; ")
            );
        }
        Ok(out)
    }

    /// Queues a commit behind every writer's data (without waiting: a writer may be slow).
    fn request_commits(&mut self) {
        self.committing = true;
        for w in &mut self.writers {
            if let Some(tx) = w.tx.take() {
                tokio::spawn(async move {
                    let _ = tx.send(Msg::Commit).await;
                });
            }
        }
    }

    /// Reaps writers as they end until `success` pieces are durable, none is left, or the
    /// floor cannot be reached any more; returns the durable count.
    async fn wait_durable(&mut self) -> usize {
        let mut durable = 0;
        // Writers cancelled while lagging never report; the channel closes once every task ended.
        let mut outstanding = self.writers.iter().filter(|w| w.handle.is_some()).count();
        while durable < self.success && outstanding > 0 && durable + outstanding >= self.floor {
            let Some(i) = self.done_rx.recv().await else {
                break;
            };
            if let Some(ok) = self.writers[i].reap().await {
                outstanding -= 1;
                durable += usize::from(ok);
            }
        }
        durable
    }

    /// Pieces already committing are not the long tail: they have sent everything and only
    /// wait for their node's fsync. Keeping the ones that land within a moment adds
    /// durability for bandwidth already spent. Returns how many more became durable.
    async fn keep_committing(&mut self) -> usize {
        let mut more = 0;
        let until = tokio::time::Instant::now() + COMMIT_GRACE.min(self.t.limits.long_tail_grace);
        while self
            .writers
            .iter()
            .any(|w| w.handle.is_some() && w.state.committing.load(Ordering::Relaxed))
        {
            let Ok(Some(i)) = tokio::time::timeout_at(until, self.done_rx.recv()).await else {
                break;
            };
            more += usize::from(self.writers[i].reap().await == Some(true));
        }
        more
    }

    /// Cancels every writer still running (a piece that made it in the meantime is kept);
    /// returns how many more became durable.
    async fn cancel_long_tail(&mut self) -> usize {
        let mut more = 0;
        for w in &mut self.writers {
            if w.handle.as_ref().is_some_and(|h| h.is_finished()) {
                more += usize::from(w.reap().await == Some(true));
            }
            if w.handle.is_some() {
                abandon(&self.t, w, self.stream, self.segment);
                w.result = Some(Err("cancelled: long tail".into()));
            }
        }
        more
    }

    /// Every piece's bytes as kept (`ok`: the segment is stored) or wasted, the kept pieces,
    /// and why the others were not kept. A failed segment's durable pieces are deleted later.
    fn account(&self, ok: bool) -> (UploadedSegment, Vec<String>) {
        let mut out = UploadedSegment::default();
        let mut causes = Vec::new();
        for w in &self.writers {
            let wasted = w.state.wasted.load(Ordering::Relaxed);
            let sent = w.state.sent.load(Ordering::Relaxed);
            match &w.result {
                Some(Ok(node)) => {
                    out.uploaded_bytes += wasted + sent;
                    out.long_tail_bytes += wasted;
                    if ok {
                        out.encoded_bytes += sent;
                        self.t.sent(*node, Reason::Upload, sent);
                        out.pieces.push(PieceRecord::new(
                            w.number,
                            self.t.node(*node).id().to_string(),
                        ));
                    } else {
                        // The segment failed: its durable pieces are waste too.
                        out.long_tail_bytes += sent;
                        self.t.sent(*node, Reason::LongTail, sent);
                        delete_later(&self.t, *node, self.stream, self.segment, w.number);
                    }
                }
                Some(Err(cause)) => {
                    // Abandoned writers' bytes were moved to `wasted` above.
                    out.uploaded_bytes += wasted;
                    out.long_tail_bytes += wasted;
                    causes.push(format!("piece {}: {cause}", w.number));
                }
                None => causes.push(format!("piece {}: no result", w.number)),
            }
        }
        (out, causes)
    }

    /// Stops every writer (no commit was requested yet) and returns the error naming each
    /// piece's fate.
    async fn fail(&mut self) -> TransferError {
        let mut causes = Vec::new();
        for w in &mut self.writers {
            w.tx = None;
            if w.handle.as_ref().is_some_and(|h| h.is_finished()) {
                w.reap().await;
            }
            if w.handle.is_some() {
                abandon(&self.t, w, self.stream, self.segment);
                w.result = Some(Err("cancelled: too few pieces left".into()));
            }
            if let Some(Err(c)) = &w.result {
                causes.push(format!("piece {}: {c}", w.number));
            }
        }
        self.finished = true;
        TransferError::NotEnoughDurable {
            segment: self.segment,
            durable: 0,
            needed: self.floor,
            causes: causes.join("; "),
        }
    }
}

impl Drop for SegmentUpload {
    /// An upload abandoned midway (error, cancelled request): stop the writers, count what they
    /// sent as long tail, and delete pieces that were or may yet be committed.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        for w in &mut self.writers {
            w.tx = None;
            if let Some(Ok(node)) = w.result {
                let sent = w.state.sent.load(Ordering::Relaxed);
                self.t.sent(node, Reason::LongTail, sent);
                delete_later(&self.t, node, self.stream, self.segment, w.number);
            }
            abandon(&self.t, w, self.stream, self.segment);
        }
    }
}

/// Stops waiting for a writer. One that is still sending data is aborted (nothing of it
/// becomes visible); one that is committing is left to finish — aborting could not stop a
/// commit already handed to the node — and its piece is deleted once it has landed. Either
/// way its bytes count as long tail.
fn abandon(t: &Arc<Transfers>, w: &mut Writer, stream: [u8; 16], segment: u32) {
    let Some(h) = w.handle.take() else { return };
    w.state.abandoned.store(true, Ordering::Relaxed);
    if !w.state.committing.load(Ordering::Relaxed) {
        h.abort();
    }
    // What it sent so far is waste now; anything it still sends is counted when it ends.
    let sent = w.state.sent.swap(0, Ordering::Relaxed);
    w.state.wasted.fetch_add(sent, Ordering::Relaxed);
    t.sent(w.state.node.load(Ordering::Relaxed), Reason::LongTail, sent);
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let (t, state, number) = (t.clone(), w.state.clone(), w.number);
    rt.spawn(async move {
        let landed = match h.await {
            Ok(Ok(node)) => Some(node),
            // The writer counted its failed attempts itself.
            Ok(Err(_)) => None,
            // Aborted: a commit that started meanwhile may still land; give it time first.
            Err(_) if state.committing.load(Ordering::Relaxed) => {
                tokio::time::sleep(COMMIT_SETTLE).await;
                Some(state.node.load(Ordering::Relaxed))
            }
            Err(_) => {
                let node = state.node.load(Ordering::Relaxed);
                t.sent(node, Reason::LongTail, state.sent.swap(0, Ordering::Relaxed));
                None
            }
        };
        if let Some(node) = landed {
            t.sent(node, Reason::LongTail, state.sent.swap(0, Ordering::Relaxed));
            let id = t.piece_id(node, &stream, segment, number);
            if let Err(e) = t.delete_at(node, id).await {
                tracing::warn!(node = t.node(node).id(), error = %e, "could not delete a cancelled piece; left for garbage collection");
            }
        }
    });
}

/// Deletes a piece that may exist, in the background.
fn delete_later(t: &Arc<Transfers>, node: usize, stream: [u8; 16], segment: u32, number: u16) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let t = t.clone();
    rt.spawn(async move {
        let id = t.piece_id(node, &stream, segment, number);
        if let Err(e) = t.delete_at(node, id).await {
            tracing::warn!(node = t.node(node).id(), error = %e, "could not delete an abandoned piece; left for garbage collection");
        }
    });
}

/// One piece's writer.
struct Job {
    t: Arc<Transfers>,
    spares: Arc<Mutex<Spares>>,
    state: Arc<WriterState>,
    stream: [u8; 16],
    segment: u32,
    number: u16,
    replay_cap: usize,
}

enum Attempt {
    /// The node failed; `committing` when it failed while making the piece durable.
    Failed(NodeError, bool),
    /// The upload was abandoned (channel closed without a commit).
    Cancelled,
}

/// Everything sent to the current node while it is small enough to send again elsewhere.
struct Replay {
    records: Vec<Bytes>,
    len: usize,
    complete: bool,
    /// The commit was requested (and taken from the queue) before the node failed.
    commit: bool,
}

impl Job {
    async fn run(
        self,
        global: OwnedSemaphorePermit,
        mut node: usize,
        permit: OwnedSemaphorePermit,
        header: Bytes,
        mut rx: mpsc::Receiver<Msg>,
    ) -> Result<usize, String> {
        let mut replay = Replay {
            len: header.len(),
            records: vec![header],
            complete: true,
            commit: false,
        };
        let mut causes = Vec::new();
        let mut conn = Some(self.t.conn(node, Some(global), permit));
        loop {
            self.state.node.store(node, Ordering::Relaxed);
            self.state.sent.store(0, Ordering::Relaxed);
            let r = self.attempt(node, &mut replay, &mut rx, &mut conn).await;
            let node_id = self.t.node(node).id().to_string();
            match r {
                // The segment counts the bytes of kept pieces (it knows which are kept).
                Ok(()) => return Ok(node),
                Err(Attempt::Cancelled) => {
                    self.give_up(node);
                    return Err("upload abandoned".into());
                }
                Err(Attempt::Failed(e, committing)) => {
                    self.give_up(node);
                    causes.push(format!("node {node_id}: {e}"));
                    if committing {
                        delete_later(&self.t, node, self.stream, self.segment, self.number);
                    }
                    self.state.committing.store(false, Ordering::Relaxed);
                    if self.state.abandoned.load(Ordering::Relaxed) {
                        return Err(causes.join("; "));
                    }
                    if !replay.complete {
                        causes.push("too far into the piece to move it to a spare node".into());
                        return Err(causes.join("; "));
                    }
                    // Keep the global slot for the spare (taken again, before any node slot,
                    // when it was given back while idle).
                    let global = match conn.as_mut().and_then(Conn::take_global) {
                        Some(g) => g,
                        None => match self.t.connections.clone().acquire_owned().await {
                            Ok(g) => g,
                            Err(_) => return Err("gateway is shutting down".into()),
                        },
                    };
                    // The failed node's slot goes back before a spare's is taken.
                    drop(conn.take());
                    let spare = self
                        .spares
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .replace(&self.t, node);
                    match spare {
                        Some((next, p)) => {
                            tracing::info!(segment = self.segment, piece = self.number, failed = %node_id, spare = self.t.node(next).id(), "moving piece to a spare node");
                            node = next;
                            conn = Some(self.t.conn(node, Some(global), p));
                        }
                        None => {
                            causes.push("no spare node left".into());
                            return Err(causes.join("; "));
                        }
                    }
                }
            }
        }
    }

    /// The next message for the writer. A writer whose queue stays empty for [`IDLE_RELEASE`]
    /// (the client is slower than the nodes) gives its connection slots back and takes them
    /// again, global slot first, when the next message arrives: slots are held only while
    /// bytes flow to the node.
    async fn next_msg(
        &self,
        node: usize,
        rx: &mut mpsc::Receiver<Msg>,
        conn: &mut Option<Conn>,
    ) -> Option<Msg> {
        if conn.is_some() {
            match tokio::time::timeout(IDLE_RELEASE, rx.recv()).await {
                Ok(m) => return m,
                Err(_) => *conn = None,
            }
        }
        let m = rx.recv().await?;
        // The node stream is still open and its node drops it after a minute without data:
        // a writer that cannot have its slots back within REACQUIRE_WAIT (every slot busy,
        // new uploads queued first) goes on without them rather than lose its piece.
        let slots = async {
            let global = self.t.connections.clone().acquire_owned().await.ok()?;
            let own = self
                .t
                .node(node)
                .permits
                .clone()
                .acquire_owned()
                .await
                .ok()?;
            Some((global, own))
        };
        *conn = Some(match tokio::time::timeout(REACQUIRE_WAIT, slots).await {
            Ok(Some((global, own))) => self.t.conn(node, Some(global), own),
            Ok(None) => return None,
            Err(_) => self.t.connect_exempt(node),
        });
        Some(m)
    }

    /// Counts what the failed attempt sent as waste (exactly once: `abandon` may be moving
    /// the same counter concurrently, and whoever swaps it out counts it).
    fn give_up(&self, node: usize) {
        let sent = self.state.sent.swap(0, Ordering::Relaxed);
        self.state.wasted.fetch_add(sent, Ordering::Relaxed);
        self.t.sent(node, Reason::LongTail, sent);
    }

    /// A node request bounded in time: a node that stops making progress is a failed node.
    async fn bounded<T>(
        &self,
        node: usize,
        f: impl std::future::Future<Output = Result<T, NodeError>>,
    ) -> Result<T, NodeError> {
        let limit = self.t.limits.stall_timeout.saturating_mul(6);
        match tokio::time::timeout(limit, f).await {
            Ok(r) => r,
            Err(_) => Err(NodeError::Unavailable {
                node: self.t.node(node).id().to_string(),
                reason: format!("no progress for {limit:?}"),
            }),
        }
    }

    /// Sends one record, paced by the upload rate, and counts it.
    async fn push(
        &self,
        node: usize,
        w: &mut Box<dyn crate::nodes::PieceWriter>,
        rec: Bytes,
    ) -> Result<(), NodeError> {
        let len = rec.len() as u64;
        self.t.pace_up(len).await;
        self.bounded(node, w.write(rec)).await?;
        self.state.sent.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    async fn attempt(
        &self,
        node: usize,
        replay: &mut Replay,
        rx: &mut mpsc::Receiver<Msg>,
        conn: &mut Option<Conn>,
    ) -> Result<(), Attempt> {
        let t = &self.t;
        let store = t.node(node).store.clone();
        let id = t.piece_id(node, &self.stream, self.segment, self.number);
        let started = Instant::now();
        let fail = |e: NodeError, committing: bool| {
            t.record(node, NodeOp::Put, started, Err(&e));
            Attempt::Failed(e, committing)
        };
        let mut w = match self.bounded(node, store.create(id)).await {
            Ok(w) => w,
            Err(e) => return Err(fail(e, false)),
        };
        for rec in replay.records.clone() {
            if let Err(e) = self.push(node, &mut w, rec).await {
                w.abort().await;
                return Err(fail(e, false));
            }
        }
        loop {
            let msg = if replay.commit {
                Some(Msg::Commit)
            } else {
                self.next_msg(node, rx, conn).await
            };
            match msg {
                Some(Msg::Data(rec)) => {
                    if replay.complete {
                        if replay.len + rec.len() <= self.replay_cap {
                            replay.len += rec.len();
                            replay.records.push(rec.clone());
                        } else {
                            *replay = Replay {
                                records: Vec::new(),
                                len: 0,
                                complete: false,
                                commit: false,
                            };
                        }
                    }
                    if let Err(e) = self.push(node, &mut w, rec).await {
                        w.abort().await;
                        return Err(fail(e, false));
                    }
                }
                Some(Msg::Commit) => {
                    replay.commit = true;
                    self.state.committing.store(true, Ordering::Relaxed);
                    return match self.bounded(node, w.commit()).await {
                        Ok(()) => {
                            t.record(node, NodeOp::Put, started, Ok(()));
                            Ok(())
                        }
                        Err(e) => Err(fail(e, true)),
                    };
                }
                None => {
                    w.abort().await;
                    return Err(Attempt::Cancelled);
                }
            }
        }
    }
}
