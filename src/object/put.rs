//! PUT: body → segments → blocks (AEAD) → stripes (Reed-Solomon) → pieces on nodes → commit.
//!
//! The body is consumed in batches of whole AEAD blocks. Each batch is encrypted and
//! erasure-coded on the blocking pool while the previous batches' piece records are being
//! written by the transfer layer's writers ([`SegmentUpload`]), whose bounded queues keep
//! memory to roughly `batch × n/k × queue depth` per upload. A block is sealed only once the next
//! byte of the body (or its end) is known, so the last block of every segment carries the
//! last-block flag.

use std::sync::Arc;

use bytes::Bytes;
use md5::{Digest, Md5};

use super::{now_ms, BodyEvent, BodyReceiver, Inner, ObjectError, ObjectLayer};
use crate::crypto::{ciphertext_len, random_bytes, wrap_segment_key, BlockCipher, SegmentKey};
use crate::erasure::{Layout, PieceHeader, StripeEncoder};
use crate::meta::{
    ObjectPart, ObjectRecord, PieceRecord, Placement, Precondition, SegmentRecord, StoredChecksum,
    StreamAccounting, StreamId, StreamRecord, OBJECT_FORMAT,
};
use crate::transfer::inflight::InFlightGuard;
use crate::transfer::{SegmentUpload, Target};

/// Target plaintext bytes per encode batch (rounded to whole blocks, at least one stripe).
const BATCH_TARGET: usize = 1 << 20;

/// What the caller knows about the object besides its body.
#[derive(Debug, Clone, Default)]
pub struct PutObject {
    pub bucket: String,
    pub key: String,
    pub content_type: Option<String>,
    pub system_meta: Vec<(String, String)>,
    pub user_meta: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    /// Content-MD5 sent by the client; a mismatch fails the PUT with nothing committed.
    pub expected_md5: Option<[u8; 16]>,
    /// Conditional write (`If-None-Match: *`, `If-Match`), checked atomically at commit.
    pub precondition: Precondition,
}

#[derive(Debug, Clone)]
pub struct PutOutcome {
    pub etag: String,
    pub size: u64,
    pub last_modified_ms: i64,
    pub checksum: Option<StoredChecksum>,
}

/// A body stored on the nodes but not yet referenced by any metadata. Dropping it (error,
/// cancelled request) deletes its pieces in the background; [`StoredBody::keep`] after the
/// metadata commit makes it permanent.
pub(crate) struct StoredBody {
    pub stream: StreamRecord,
    pub md5: [u8; 16],
    pub size: u64,
    pub checksum: Option<StoredChecksum>,
    cleanup: Cleanup,
}

impl StoredBody {
    fn keep(mut self) {
        self.cleanup.pieces.clear();
    }

    /// Runs `commit` (the metadata write that references this body) to its end in a task of
    /// its own, and keeps the body exactly when it succeeded. A request cancelled while the
    /// commit is in flight can then neither delete the pieces of a body that did get
    /// committed nor leak those of one that did not.
    pub async fn commit<T: Send + 'static>(
        self,
        commit: impl std::future::Future<Output = Result<T, crate::meta::MetaError>> + Send + 'static,
    ) -> Result<T, ObjectError> {
        tokio::spawn(async move {
            let r = commit.await;
            if r.is_ok() {
                self.keep();
            }
            r
        })
        .await
        .map_err(|e| ObjectError::Internal(e.to_string()))?
        .map_err(Into::into)
    }
}

/// The body being read, with read-ahead.
struct Input {
    rx: BodyReceiver,
    buf: Vec<u8>,
    ended: bool,
    total: u64,
    checksum: Option<StoredChecksum>,
}

impl Input {
    /// Reads until `buf` holds at least `want` bytes or the body ended.
    async fn fill(&mut self, want: usize) -> Result<(), ObjectError> {
        while self.buf.len() < want && !self.ended {
            let next = tokio::time::timeout(super::BODY_IDLE_TIMEOUT, self.rx.recv())
                .await
                .map_err(|_| ObjectError::BodyStalled)?;
            match next {
                Some(BodyEvent::Data(b)) => {
                    self.total += b.len() as u64;
                    self.buf.extend_from_slice(&b);
                }
                Some(BodyEvent::End(checksum)) => {
                    self.ended = true;
                    self.checksum = checksum;
                }
                None => return Err(ObjectError::BodyAborted),
            }
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let rest = self.buf.split_off(n);
        std::mem::replace(&mut self.buf, rest)
    }
}

impl ObjectLayer {
    pub async fn put_object(
        &self,
        req: PutObject,
        body: BodyReceiver,
    ) -> Result<PutOutcome, ObjectError> {
        self.bucket(&req.bucket).await?;
        if req.precondition == Precondition::IfNoneMatchStar
            && self
                .inner
                .meta
                .get_object(&req.bucket, &req.key)
                .await?
                .is_some()
        {
            // Early refusal saves the upload; the commit re-checks atomically.
            return Err(ObjectError::PreconditionFailed);
        }
        let body = store_body(&self.inner, body, None).await?;
        if req.expected_md5.is_some_and(|m| m != body.md5) {
            return Err(ObjectError::BadDigest);
        }
        let etag = crate::crypto::encode_hex(&body.md5);
        let last_modified_ms = now_ms();
        let record = ObjectRecord {
            bucket: req.bucket,
            key: req.key,
            version_id: None,
            format: OBJECT_FORMAT,
            size: body.size,
            etag: etag.clone(),
            last_modified_ms,
            content_type: req.content_type,
            system_meta: req.system_meta,
            user_meta: req.user_meta,
            tags: req.tags,
            checksum: body.checksum.clone(),
            parts: vec![ObjectPart {
                number: 0,
                size: body.size,
                etag: etag.clone(),
                checksum: body.checksum.as_ref().map(|c| c.value.clone()),
                stream: body.stream.clone(),
            }],
        };
        let out = PutOutcome {
            etag,
            size: body.size,
            last_modified_ms,
            checksum: body.checksum.clone(),
        };
        let meta = self.inner.meta.clone();
        body.commit(async move { meta.put_object(&record, &req.precondition).await })
            .await?;
        // The replaced body, if any, may be garbage now.
        self.inner.gc_wake.notify_one();
        Ok(out)
    }
}

/// Stores a body as a new stream: inline when small, else segment by segment on the nodes.
/// `held` is the upload's share of the memory budget when the caller already reserved it (a
/// copy reserves its read and its write together); else it is reserved here.
pub(crate) async fn store_body(
    inner: &Arc<Inner>,
    body: BodyReceiver,
    held: Option<crate::transfer::MemoryReservation>,
) -> Result<StoredBody, ObjectError> {
    let storage = &inner.storage;
    let mut stream_id = [0u8; 16];
    random_bytes(&mut stream_id)?;
    // Registered before any piece is written and released only after the metadata commit
    // returned or the pieces were deleted (by `cleanup`): orphan collection never takes the
    // pieces of a body in flight for orphans, however long the upload takes.
    let in_flight = inner
        .transfers
        .in_flight()
        .begin(stream_id, storage.scheme.total);
    let mut input = Input {
        rx: body,
        buf: Vec::new(),
        ended: false,
        total: 0,
        checksum: None,
    };
    let mut md5 = Md5::new();
    let mut segments = Vec::new();
    let mut accounting = StreamAccounting::default();
    let mut cleanup = Cleanup {
        inner: inner.clone(),
        stream_id,
        pieces: Vec::new(),
        in_flight: Some(in_flight),
    };

    input.fill(storage.inline_limit as usize + 1).await?;
    if input.ended && input.buf.len() as u64 <= storage.inline_limit {
        let plain = input.take(input.buf.len());
        let (seg, md5_done) = tokio::task::spawn_blocking({
            let inner = inner.clone();
            move || -> Result<_, ObjectError> {
                md5.update(&plain);
                let seg = seal_inline(&inner, stream_id, &plain)?;
                Ok((seg, md5))
            }
        })
        .await
        .map_err(|e| ObjectError::Internal(e.to_string()))??;
        md5 = md5_done;
        segments.push(seg);
    } else {
        // The upload's buffers, reserved before any of them fills (see `limits.memory`),
        // unless the caller reserved them with its own.
        let _memory = match held {
            Some(held) => held,
            None => {
                let nodes = inner.transfers.node_count();
                let bytes = upload_memory(storage, nodes, input.rx.declared());
                inner.transfers.reserve_memory(bytes).await?
            }
        };
        let mut index = 0u32;
        loop {
            let (seg, md5_back) = upload_segment(
                inner,
                stream_id,
                index,
                &mut input,
                md5,
                &mut cleanup,
                &mut accounting,
            )
            .await?;
            md5 = md5_back;
            segments.push(seg);
            input.fill(1).await?;
            if input.ended && input.buf.is_empty() {
                break;
            }
            index = index
                .checked_add(1)
                .ok_or_else(|| ObjectError::Internal("too many segments".into()))?;
        }
    }
    Ok(StoredBody {
        stream: StreamRecord {
            stream_id: StreamId(stream_id),
            cipher: storage.cipher.id(),
            block_size: storage.block_size,
            segment_size: storage.segment_size,
            segments,
            accounting,
        },
        md5: md5.finalize().into(),
        size: input.total,
        checksum: input.checksum,
        cleanup,
    })
}

/// Encrypts a small body as one segment stored in the metadata row.
fn seal_inline(
    inner: &Inner,
    stream_id: [u8; 16],
    plain: &[u8],
) -> Result<SegmentRecord, ObjectError> {
    let key = SegmentKey::generate()?;
    let cipher = BlockCipher::new(inner.storage.cipher, &key, stream_id, 0)?;
    let bs = inner.storage.block_size as usize;
    let mut ct =
        Vec::with_capacity(ciphertext_len(plain.len() as u64, inner.storage.block_size) as usize);
    seal_blocks(&cipher, 0, plain, bs, true, &mut ct)?;
    Ok(SegmentRecord {
        index: 0,
        plain_size: plain.len() as u64,
        wrapped_key: wrap_segment_key(&inner.root, &key, &stream_id, 0)?,
        placement: Placement::Inline(ct),
    })
}

/// Seals `plain` as blocks starting at `first_block`; with `last`, the final block (possibly
/// empty, when `plain` is empty) carries the last-block flag. Returns the number of blocks.
fn seal_blocks(
    cipher: &BlockCipher,
    first_block: u64,
    plain: &[u8],
    block_size: usize,
    last: bool,
    out: &mut Vec<u8>,
) -> Result<u64, ObjectError> {
    if plain.is_empty() {
        if last {
            cipher.seal(first_block, true, &[], out)?;
            return Ok(1);
        }
        return Ok(0);
    }
    let count = plain.len().div_ceil(block_size);
    for (i, block) in plain.chunks(block_size).enumerate() {
        let is_last = last && i + 1 == count;
        cipher.seal(first_block + i as u64, is_last, block, out)?;
    }
    Ok(count as u64)
}

/// Encoder state of one segment, moved into the blocking pool for each batch.
struct SegmentEncoder {
    cipher: BlockCipher,
    stripes: StripeEncoder,
    layout: Layout,
    md5: Md5,
    next_block: u64,
    next_stripe: u64,
    carry: Vec<u8>,
}

impl SegmentEncoder {
    /// Encrypts and codes one batch; returns the new records of each piece.
    fn batch(
        &mut self,
        plain: &[u8],
        last: bool,
        block_size: usize,
    ) -> Result<Vec<Vec<u8>>, ObjectError> {
        self.md5.update(plain);
        self.next_block += seal_blocks(
            &self.cipher,
            self.next_block,
            plain,
            block_size,
            last,
            &mut self.carry,
        )?;
        let sb = self.layout.stripe_bytes() as usize;
        let mut out = vec![Vec::new(); self.layout.n];
        let mut used = 0;
        while self.carry.len() - used >= sb {
            self.stripes
                .encode(self.next_stripe, &self.carry[used..used + sb], &mut out)?;
            self.next_stripe += 1;
            used += sb;
        }
        if last && (used < self.carry.len() || self.next_stripe == 0) {
            self.stripes
                .encode(self.next_stripe, &self.carry[used..], &mut out)?;
            self.next_stripe += 1;
            used = self.carry.len();
        }
        self.carry.drain(..used);
        Ok(out)
    }
}

/// Pieces committed so far by an upload that has not committed its metadata yet. Dropped
/// with pieces still listed (error, cancelled request), it deletes them in the background.
/// It holds the body's in-flight registration, released when it is dropped or, when it has
/// pieces to delete, once they are deleted.
struct Cleanup {
    inner: Arc<Inner>,
    stream_id: [u8; 16],
    pieces: Vec<(u32, PieceRecord)>,
    in_flight: Option<InFlightGuard>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.pieces.is_empty() {
            return;
        }
        let pieces = std::mem::take(&mut self.pieces);
        let inner = self.inner.clone();
        let stream_id = self.stream_id;
        let in_flight = self.in_flight.take();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _in_flight = in_flight;
                for (segment, p) in pieces {
                    if let Err(e) = inner
                        .transfers
                        .delete_piece(&p.node, &stream_id, segment, p.number)
                        .await
                    {
                        tracing::warn!(node = %p.node, error = %e, "could not delete piece of a failed upload; left for garbage collection");
                    }
                }
            });
        }
    }
}

/// Plaintext bytes per encode batch: [`BATCH_TARGET`], at least one stripe, whole blocks.
fn batch_plain(storage: &crate::config::StorageConfig) -> usize {
    let k = storage.scheme.minimum as usize;
    let bs = storage.block_size as usize;
    BATCH_TARGET.max(k * storage.chunk_size).div_ceil(bs) * bs
}

/// The most memory one body's upload holds at a time: its input (the batch being filled, one
/// more body frame, the batch being encoded) and one segment upload's buffers. A body of a
/// declared length holds no more than itself in the input, nor more than its pieces' records
/// in the writers' queues and in what they keep for replay.
pub(crate) fn upload_memory(
    storage: &crate::config::StorageConfig,
    nodes: usize,
    declared: Option<u64>,
) -> usize {
    let k = storage.scheme.minimum as usize;
    let n = (storage.scheme.total as usize).min(nodes).max(k);
    let batch = batch_plain(storage);
    // Ciphertext (a tag per block) and a MAC per chunk: well under an eighth more.
    let record = (batch + batch / 8).div_ceil(k);
    let full = 2 * batch + MAX_FRAME + SegmentUpload::memory_bound(n, record);
    match declared.and_then(|d| usize::try_from(d).ok()) {
        Some(len) => {
            let input = 2 * len.min(batch) + MAX_FRAME;
            let pieces = len
                .saturating_add(len / 8)
                .saturating_add(storage.block_size as usize)
                .div_ceil(k)
                .saturating_mul(n);
            input.saturating_add(pieces.saturating_mul(2)).min(full)
        }
        None => full,
    }
}

/// The largest body frame the S3 listener hands over (its read buffer).
const MAX_FRAME: usize = 128 << 10;

/// Uploads one segment from `input`; returns its record and the running MD5.
async fn upload_segment(
    inner: &Arc<Inner>,
    stream_id: [u8; 16],
    index: u32,
    input: &mut Input,
    md5: Md5,
    cleanup: &mut Cleanup,
    accounting: &mut StreamAccounting,
) -> Result<(SegmentRecord, Md5), ObjectError> {
    let storage = &inner.storage;
    let scheme = storage.scheme;
    let k = scheme.minimum as usize;
    let n = (scheme.total as usize).min(inner.transfers.node_count());
    let bs = storage.block_size as usize;
    let batch_plain = batch_plain(storage);
    let segment_size = storage.segment_size as usize;

    // First batch: decides the chunk size (small segments get a fitted one).
    let mut remaining = segment_size;
    let take = batch_plain.min(remaining);
    input.fill(take + 1).await?;
    let (first_len, mut last) = if input.buf.len() <= take {
        (input.buf.len(), true)
    } else {
        (take, take == remaining)
    };
    let layout = if last {
        Layout::fitted(
            k,
            n,
            ciphertext_len(first_len as u64, storage.block_size),
            storage.chunk_size,
        )
    } else {
        Layout {
            k,
            n,
            chunk_size: storage.chunk_size,
            cipher_len: 0,
        }
    };

    let key = SegmentKey::generate()?;
    let mut encoder = SegmentEncoder {
        cipher: BlockCipher::new(storage.cipher, &key, stream_id, index)?,
        stripes: StripeEncoder::new(layout, key.chunk_mac_key())?,
        layout,
        md5,
        next_block: 0,
        next_stripe: 0,
        carry: Vec::new(),
    };
    if let Some(g) = &cleanup.in_flight {
        g.segment(index);
    }
    let header = Bytes::copy_from_slice(
        &PieceHeader {
            chunk_size: layout.chunk_size as u32,
        }
        .encode(),
    );
    let mut upload = SegmentUpload::start(
        &inner.transfers,
        stream_id,
        index,
        n,
        Target::for_scheme(&scheme),
        header,
    )
    .await?;
    let mut plain_size = 0u64;
    let mut batch = input.take(first_len);
    loop {
        remaining -= batch.len();
        plain_size += batch.len() as u64;
        let (enc, records) = tokio::task::spawn_blocking(move || {
            let r = encoder.batch(&batch, last, bs);
            (encoder, r)
        })
        .await
        .map_err(|e| ObjectError::Internal(e.to_string()))?;
        encoder = enc;
        upload.send(records?).await?;
        if last {
            break;
        }
        let take = batch_plain.min(remaining);
        input.fill(take + 1).await?;
        if input.buf.len() <= take {
            batch = input.take(input.buf.len());
            last = true;
        } else {
            batch = input.take(take);
            last = take == remaining;
        }
    }

    let stored = upload.finish().await?;
    for p in &stored.pieces {
        cleanup.pieces.push((index, p.clone()));
    }
    accounting.encoded_bytes += stored.encoded_bytes;
    accounting.uploaded_bytes += stored.uploaded_bytes;
    accounting.long_tail_bytes += stored.long_tail_bytes;
    let pieces = stored.pieces;
    let record = SegmentRecord {
        index,
        plain_size,
        wrapped_key: wrap_segment_key(&inner.root, &key, &stream_id, index)?,
        placement: Placement::Pieces {
            k: k as u16,
            n: n as u16,
            chunk_size: layout.chunk_size as u32,
            pieces,
        },
    };
    Ok((record, encoder.md5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LimitsConfig, StorageConfig};
    use crate::crypto::RootKey;
    use crate::meta::Meta;
    use crate::metrics::Metrics;
    use crate::nodes::DirNode;
    use crate::transfer::{NodeSpec, Transfers};

    #[test]
    fn upload_memory_follows_the_declared_length_up_to_the_worst_case() {
        let storage = StorageConfig::default();
        let full = upload_memory(&storage, 6, None);
        let small = upload_memory(&storage, 6, Some(4096));
        let mid = upload_memory(&storage, 6, Some(2 << 20));
        assert!(small < 512 << 10, "{small}");
        assert!(small < mid && mid < full, "{small} {mid} {full}");
        // Never more than the worst case, whatever is declared.
        assert_eq!(upload_memory(&storage, 6, Some(5 << 30)), full);
        assert_eq!(upload_memory(&storage, 6, Some(u64::MAX)), full);
        // What a body holds: itself twice in the input, its pieces twice in the writers.
        let pieces = 6 * (2 << 20) * 9 / 8 / 4;
        assert!(mid >= 2 * (1 << 20) + 2 * pieces, "{mid}");
    }

    /// A client that goes quiet mid-body: the upload ends with `BodyStalled` (S3
    /// RequestTimeout) and gives back its connection slots instead of holding them forever.
    #[tokio::test(start_paused = true)]
    async fn a_silent_body_times_out_and_frees_its_slots() {
        let dir = tempfile::tempdir().unwrap();
        let root = RootKey::generate().unwrap();
        let specs = (0..6)
            .map(|i| {
                let id = format!("n{i}");
                NodeSpec {
                    store: Arc::new(DirNode::open(&id, &dir.path().join(&id), true).unwrap()),
                    kind: "dir".into(),
                    label: None,
                    domain: format!("node:{id}"),
                    offline: None,
                }
            })
            .collect();
        let transfers = Transfers::new(
            &root,
            specs,
            LimitsConfig::default(),
            None,
            Arc::new(Metrics::new()),
        );
        let meta = Meta::open(&dir.path().join("meta.sqlite")).await.unwrap();
        let layer = ObjectLayer::new(StorageConfig::default(), root, transfers.clone(), meta);
        layer.create_bucket("b").await.unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        // More than an encode batch, so piece writers are open when the client stops.
        for _ in 0..3 {
            tx.send(BodyEvent::Data(Bytes::from(vec![1u8; 1 << 20])))
                .await
                .unwrap();
        }
        let put = PutObject {
            bucket: "b".into(),
            key: "k".into(),
            ..PutObject::default()
        };
        let r = layer
            .put_object(put, super::BodyReceiver::new(rx, None))
            .await;
        assert!(matches!(r, Err(ObjectError::BodyStalled)), "{r:?}");
        drop(tx);
        for _ in 0..100 {
            if transfers
                .node_views()
                .iter()
                .all(|v| v.connections_in_use == 0)
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("connection slots still held");
    }
}
