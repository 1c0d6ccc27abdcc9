//! The object layer: buckets and objects in domain terms, with no HTTP types.
//!
//! Contract:
//! - [`ObjectLayer::put_object`] stores a body as segments (encrypted, erasure-coded, pieces
//!   written to nodes in parallel) and commits the object's metadata in one transaction only
//!   after every segment has at least `success` durable pieces and the body ended properly
//!   ([`BodyEvent::End`]). On any failure or cancellation nothing becomes visible and the
//!   pieces written so far are deleted (best effort; what a crash or a failed delete leaves
//!   behind is found by listing the nodes and deleted after a grace period: [`orphans`]).
//!   Pieces not yet referenced by the metadata are registered in flight meanwhile
//!   (`transfer::inflight`), so that collection never takes them for orphans.
//! - Bodies at or under the inline limit are stored encrypted in the metadata row.
//! - Memory per transfer is bounded by the configuration (batch size × pieces × channel
//!   depth), never by the object size.
//! - Replaced and deleted bodies become garbage in the same metadata transaction; a
//!   background task ([`gc`]) deletes their pieces from the nodes.
//! - A background audit ([`audit`]) compares the nodes' listings with the metadata and verifies
//!   sampled piece ranges; repair ([`repair`]) rebuilds what it, reads, or node replacement
//!   found bad.
//! - [`ObjectLayer::get_object`] returns a stream of plaintext for the requested range; bytes
//!   are only ever produced after their chunk MACs and AEAD tags verified, so a reader gets
//!   correct bytes or an error, never wrong bytes.

pub mod audit;
pub mod conditions;
mod copy;
mod gc;
mod get;
pub mod multipart;
mod orphans;
mod put;
pub mod repair;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};

use crate::config::StorageConfig;
use crate::crypto::{CryptoError, RootKey};
use crate::erasure::ErasureError;
use crate::meta::{
    BucketInfo, DeleteCondition, ListPage, ListQuery, Meta, MetaError, ObjectRecord, PieceFinding,
    PieceState, StoredChecksum, StreamId,
};
use crate::nodes::NodeError;
use crate::transfer::download::FaultKind;
use crate::transfer::{PieceFault, TransferError, Transfers};

pub use conditions::{Conditions, Outcome as ConditionOutcome};
pub use copy::{CopyObject, CopyOutcome, MetadataDirective, TaggingDirective};
pub use get::{part_range, ByteRange, GetOutcome};
pub use multipart::{CompleteOutcome, CompletedPart, CreateUpload, PartOutcome};
pub use put::{PutObject, PutOutcome};

/// What the S3 layer feeds into a PUT. The body is complete only when `End` arrives: a
/// channel closed without it (the sender failed or was dropped) aborts the upload.
#[derive(Debug)]
pub enum BodyEvent {
    Data(Bytes),
    /// The body ended and passed every check; carries the checksum the client supplied (or
    /// asked for) over the whole body, already verified.
    End(Option<StoredChecksum>),
}

/// The receiving end of a body fed into a PUT, with the length the client declared (an upper
/// bound the sender enforces: it fails the body rather than send more), which sizes the
/// upload's memory reservation.
pub struct BodyReceiver {
    rx: mpsc::Receiver<BodyEvent>,
    declared: Option<u64>,
}

impl BodyReceiver {
    pub fn new(rx: mpsc::Receiver<BodyEvent>, declared: Option<u64>) -> BodyReceiver {
        BodyReceiver { rx, declared }
    }

    pub async fn recv(&mut self) -> Option<BodyEvent> {
        self.rx.recv().await
    }

    /// At most this many bytes will arrive, when the client declared a length.
    pub fn declared(&self) -> Option<u64> {
        self.declared
    }
}

/// How long an upload waits for the next bytes of its body (S3 answers `RequestTimeout` after
/// about 20 s of silence; this is more lenient).
pub const BODY_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A stream of plaintext produced by a GET. It holds the download's share of the memory
/// budget (`limits.memory`) until it is dropped, so the frames the HTTP layer still holds count.
pub struct BodyStream {
    first: Option<Result<Bytes, ObjectError>>,
    rx: mpsc::Receiver<Result<Bytes, ObjectError>>,
    _memory: Option<Arc<crate::transfer::MemoryReservation>>,
}

impl BodyStream {
    pub(crate) fn new(
        first: Option<Result<Bytes, ObjectError>>,
        rx: mpsc::Receiver<Result<Bytes, ObjectError>>,
        memory: Option<Arc<crate::transfer::MemoryReservation>>,
    ) -> BodyStream {
        BodyStream {
            first,
            rx,
            _memory: memory,
        }
    }

    pub async fn recv(&mut self) -> Option<Result<Bytes, ObjectError>> {
        match self.first.take() {
            Some(item) => Some(item),
            None => self.rx.recv().await,
        }
    }

    pub fn poll_recv(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Bytes, ObjectError>>> {
        match self.first.take() {
            Some(item) => std::task::Poll::Ready(Some(item)),
            None => self.rx.poll_recv(cx),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("bucket {0:?} does not exist")]
    NoSuchBucket(String),
    #[error("bucket {0:?} already exists")]
    BucketExists(String),
    #[error("bucket {0:?} is not empty")]
    BucketNotEmpty(String),
    #[error("no such key")]
    NoSuchKey,
    #[error("range not satisfiable for an object of {size} bytes")]
    InvalidRange { size: u64 },
    #[error("request body ended before it was complete")]
    BodyAborted,
    /// No body bytes arrived for [`BODY_IDLE_TIMEOUT`]: the upload gives its connection slots
    /// back rather than holding them for a client that went quiet.
    #[error("no request body data arrived within the timeout")]
    BodyStalled,
    #[error("the body does not match its Content-MD5")]
    BadDigest,
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("the {0} you specified did not match the calculated checksum")]
    ChecksumMismatch(String),
    #[error("no such upload")]
    NoSuchUpload,
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the list of parts was not in ascending order")]
    InvalidPartOrder,
    #[error("part {0} was not found or its ETag does not match")]
    InvalidPart(u32),
    #[error("part {0} is smaller than the minimum allowed size")]
    EntityTooSmall(u32),
    /// Moving pieces to or from the nodes failed (too few nodes, pieces or connection slots).
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// Sync replication: the write is committed but its metadata is not on the nodes yet.
    #[error("metadata replication: {0}")]
    NotReplicated(String),
    #[error("metadata: {0}")]
    Meta(MetaError),
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
    #[error("erasure coding: {0}")]
    Erasure(#[from] ErasureError),
    #[error("node: {0}")]
    Node(#[from] NodeError),
    #[error("internal: {0}")]
    Internal(String),
}

impl From<MetaError> for ObjectError {
    /// Domain outcomes the metadata store decides become their own variants; the rest are
    /// store failures.
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::NoSuchBucket(b) => ObjectError::NoSuchBucket(b),
            MetaError::BucketExists(b) => ObjectError::BucketExists(b),
            MetaError::BucketNotEmpty(b) => ObjectError::BucketNotEmpty(b),
            MetaError::NoSuchKey | MetaError::StreamGone(_) => ObjectError::NoSuchKey,
            MetaError::NoSuchUpload(_) => ObjectError::NoSuchUpload,
            MetaError::PreconditionFailed => ObjectError::PreconditionFailed,
            MetaError::NotReplicated(m) => ObjectError::NotReplicated(m),
            other => ObjectError::Meta(other),
        }
    }
}

pub(crate) struct Inner {
    pub storage: StorageConfig,
    pub root: RootKey,
    pub transfers: Arc<Transfers>,
    pub meta: Meta,
    pub gc_wake: Arc<Notify>,
    pub gc_rounds: tokio::sync::watch::Sender<gc::Rounds>,
    /// Streams being read right now, with a count of readers. Garbage collection leaves
    /// these alone, so a GET that started before an overwrite or delete still completes.
    pub reading: std::sync::Mutex<std::collections::HashMap<StreamId, usize>>,
    /// Wakes the background repair loop (reads found faults).
    pub repair_wake: Arc<Notify>,
    /// Segments being repaired, or a piece of which is being audited, right now (see
    /// `repair::SegmentClaim`).
    pub repairing: std::sync::Mutex<std::collections::HashSet<(StreamId, u32)>>,
    /// The audit's counters and where its sampling continues (see `audit`).
    pub audit: audit::AuditState,
}

impl Inner {
    /// Records faulty pieces found by a segment read (in the background: the read does not
    /// wait for the metadata) and wakes repair.
    pub(crate) fn report_faults(&self, stream: [u8; 16], segment: u32, faults: Vec<PieceFault>) {
        if faults.is_empty() {
            return;
        }
        let findings: Vec<PieceFinding> = faults
            .into_iter()
            .map(|f| {
                tracing::warn!(segment, piece = f.number, node = %f.node, kind = ?f.kind, "faulty piece found by a read; recorded for repair");
                PieceFinding {
                    stream_id: StreamId(stream),
                    segment,
                    number: f.number,
                    node: f.node,
                    state: match f.kind {
                        FaultKind::Missing => PieceState::Missing,
                        FaultKind::Corrupt => PieceState::Corrupt,
                    },
                    found_by: "read".into(),
                }
            })
            .collect();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (meta, wake, transfers) = (
            self.meta.clone(),
            self.repair_wake.clone(),
            self.transfers.clone(),
        );
        rt.spawn(async move {
            if let Err(e) = record_findings(&meta, &wake, &transfers, findings).await {
                tracing::warn!(error = %e, "could not record faulty pieces");
            }
        });
    }
}

impl ObjectLayer {
    /// Records findings (reads, audit), counts those that changed a piece's state in the
    /// metrics and wakes repair when any did; returns how many did.
    pub async fn record_findings(&self, findings: Vec<PieceFinding>) -> Result<usize, MetaError> {
        let i = &self.inner;
        record_findings(&i.meta, &i.repair_wake, &i.transfers, findings).await
    }
}

async fn record_findings(
    meta: &Meta,
    wake: &Notify,
    transfers: &Transfers,
    findings: Vec<PieceFinding>,
) -> Result<usize, MetaError> {
    let changed = meta.record_findings(findings).await?;
    for f in &changed {
        transfers
            .metrics()
            .health
            .finding(&f.node, f.state.as_str(), &f.found_by);
    }
    if !changed.is_empty() {
        wake.notify_one();
    }
    Ok(changed.len())
}

/// Registration of a reader on some streams; dropping it ends the registration.
pub(crate) struct ReadLease {
    inner: Arc<Inner>,
    streams: Vec<StreamId>,
}

impl ReadLease {
    pub fn new(inner: &Arc<Inner>, streams: Vec<StreamId>) -> ReadLease {
        let mut map = inner.reading.lock().unwrap_or_else(|p| p.into_inner());
        for s in &streams {
            *map.entry(*s).or_insert(0) += 1;
        }
        drop(map);
        ReadLease {
            inner: inner.clone(),
            streams,
        }
    }
}

impl Drop for ReadLease {
    fn drop(&mut self) {
        let mut map = self.inner.reading.lock().unwrap_or_else(|p| p.into_inner());
        for s in &self.streams {
            if let Some(n) = map.get_mut(s) {
                *n -= 1;
                if *n == 0 {
                    map.remove(s);
                }
            }
        }
    }
}

/// The object layer; cheap to clone.
#[derive(Clone)]
pub struct ObjectLayer {
    inner: Arc<Inner>,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl ObjectLayer {
    /// Builds the layer and starts its garbage collector on the current runtime.
    pub fn new(
        storage: StorageConfig,
        root: RootKey,
        transfers: Arc<Transfers>,
        meta: Meta,
    ) -> ObjectLayer {
        let audit_counters = transfers.metrics().health.audit.clone();
        let layer = ObjectLayer {
            inner: Arc::new(Inner {
                storage,
                root,
                transfers,
                meta,
                gc_wake: Arc::new(Notify::new()),
                gc_rounds: tokio::sync::watch::Sender::new(gc::Rounds::default()),
                reading: std::sync::Mutex::new(std::collections::HashMap::new()),
                repair_wake: Arc::new(Notify::new()),
                repairing: std::sync::Mutex::new(std::collections::HashSet::new()),
                audit: audit::AuditState::new(audit_counters),
            }),
        };
        gc::spawn(Arc::downgrade(&layer.inner), layer.inner.gc_wake.clone());
        layer
    }

    /// Wakes the garbage collector and waits until a round that began after this call has
    /// finished. That round looked at the oldest garbage (up to 64 bodies besides those
    /// deferred after failed deletes, fewer if reading the metadata failed): what it could
    /// delete of those is gone, what it had to keep (being read, within the grace period, on
    /// a node that is down) is still there. For tests and tools that need a settled state;
    /// bounded by the caller (a collector task that died would never finish a round).
    pub async fn collect_garbage(&self) {
        let mut rounds = self.inner.gc_rounds.subscribe();
        let target = rounds.borrow().begun + 1;
        self.inner.gc_wake.notify_one();
        // The sender lives in `inner`, which `self` keeps alive: this cannot fail.
        let _ = rounds.wait_for(|r| r.finished >= target).await;
    }

    pub async fn create_bucket(&self, name: &str) -> Result<(), ObjectError> {
        Ok(self.inner.meta.create_bucket(name, now_ms()).await?)
    }

    pub async fn delete_bucket(&self, name: &str) -> Result<(), ObjectError> {
        Ok(self.inner.meta.delete_bucket(name).await?)
    }

    pub async fn bucket(&self, name: &str) -> Result<BucketInfo, ObjectError> {
        self.inner
            .meta
            .get_bucket(name)
            .await?
            .ok_or_else(|| ObjectError::NoSuchBucket(name.to_string()))
    }

    pub async fn list_buckets(&self) -> Result<Vec<BucketInfo>, ObjectError> {
        Ok(self.inner.meta.list_buckets().await?)
    }

    /// The object's metadata (HEAD).
    pub async fn head_object(&self, bucket: &str, key: &str) -> Result<ObjectRecord, ObjectError> {
        self.bucket(bucket).await?;
        self.inner
            .meta
            .get_object(bucket, key)
            .await?
            .ok_or(ObjectError::NoSuchKey)
    }

    /// Deletes an object if it meets `condition` (see [`DeleteCondition`]); deleting a
    /// missing key unconditionally succeeds, as in S3.
    pub async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        condition: &DeleteCondition,
    ) -> Result<(), ObjectError> {
        self.bucket(bucket).await?;
        if self
            .inner
            .meta
            .delete_object_if(bucket, key, condition)
            .await?
        {
            self.inner.gc_wake.notify_one();
        }
        Ok(())
    }

    pub async fn list_objects(&self, q: &ListQuery<'_>) -> Result<ListPage, ObjectError> {
        self.bucket(q.bucket).await?;
        Ok(self.inner.meta.list_objects(q).await?)
    }
}
