//! GET: metadata → for each segment in range: fetch the needed stripes from `k` pieces in
//! parallel (more when a read fails or some of its chunks do not verify) → verify chunk MACs
//! (a bad chunk is an erasure of its stripe only) → decode each stripe from its own `k` good
//! chunks, only if one of its data chunks is missing → decrypt the needed blocks → stream the
//! plaintext out. Faulty pieces found are handed to `Inner::report_faults` after each
//! segment.
//!
//! Stripes are fetched in groups of about [`GROUP_BYTES`] of ciphertext, so memory per
//! download is bounded by that, the output channel depth, and one AEAD block.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{BodyStream, Inner, ObjectError, ObjectLayer, ReadLease};
use crate::crypto::{
    ciphertext_len, plain_block_count, unwrap_segment_key, BlockCipher, CipherSuite, TAG_LEN,
};
use crate::erasure::{Layout, StripeDecoder};
use crate::meta::{ObjectRecord, Placement, SegmentRecord, StreamRecord};
use crate::transfer::download::{Fetch, SegmentReads};

/// Ciphertext bytes fetched per group of stripes.
const GROUP_BYTES: u64 = 4 << 20;
/// Depth of the plaintext channel towards the client.
const OUT_DEPTH: usize = 2;

/// A requested byte range, as in an HTTP `Range: bytes=` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b` (inclusive).
    FromTo(u64, u64),
    /// `bytes=a-`.
    From(u64),
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The half-open range `[start, end)` within an object of `size` bytes, or `InvalidRange`
    /// when unsatisfiable (RFC 9110: first byte at or past the end, or an empty suffix).
    pub fn resolve(self, size: u64) -> Result<(u64, u64), ObjectError> {
        let bad = Err(ObjectError::InvalidRange { size });
        match self {
            ByteRange::FromTo(a, b) if a < size && a <= b => Ok((a, b.min(size - 1) + 1)),
            ByteRange::From(a) if a < size => Ok((a, size)),
            ByteRange::Suffix(n) if n > 0 && size > 0 => Ok((size - n.min(size), size)),
            _ => bad,
        }
    }
}

/// The byte range `[start, end)` of part `n` (1-based, in the order the parts were
/// completed) of an object; a single-PUT object is one part.
pub fn part_range(rec: &ObjectRecord, n: u32) -> Option<(u64, u64)> {
    let idx = (n as usize).checked_sub(1)?;
    let start: u64 = rec.parts.iter().take(idx).map(|p| p.size).sum();
    let part = rec.parts.get(idx)?;
    Some((start, start + part.size))
}

pub struct GetOutcome {
    pub record: ObjectRecord,
    /// The half-open range served, when a range was requested.
    pub range: Option<(u64, u64)>,
    pub body: BodyStream,
}

impl ObjectLayer {
    /// Starts a download. The first bytes are produced before this returns, so a missing or
    /// corrupt object fails here (as an error status) rather than mid-body.
    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<GetOutcome, ObjectError> {
        let record = self.head_object(bucket, key).await?;
        self.read_object(record, range).await
    }

    /// Starts a download of exactly this record (as read by [`ObjectLayer::head_object`]),
    /// so conditions checked against it hold for the bytes served even if the key is
    /// overwritten meanwhile.
    pub async fn read_object(
        &self,
        record: ObjectRecord,
        range: Option<ByteRange>,
    ) -> Result<GetOutcome, ObjectError> {
        self.read_object_in(record, range, Lane::Client).await
    }

    /// As [`ObjectLayer::read_object`], with the transfer lane the reads use.
    pub(crate) async fn read_object_in(
        &self,
        record: ObjectRecord,
        range: Option<ByteRange>,
        lane: Lane,
    ) -> Result<GetOutcome, ObjectError> {
        let (start, end) = match range {
            Some(r) => r.resolve(record.size)?,
            None => (0, record.size),
        };
        let (tx, mut rx) = mpsc::channel(OUT_DEPTH);
        let inner = self.inner.clone();
        let rec = record.clone();
        let lease = ReadLease::new(
            &self.inner,
            record.parts.iter().map(|p| p.stream.stream_id).collect(),
        );
        tokio::spawn(async move {
            let _lease = lease;
            if let Err(e) = stream_range(&inner, &rec, start, end, &tx, lane).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        // Peek at the first item to surface early failures as errors.
        let first = if end > start { rx.recv().await } else { None };
        let (tx2, rx2) = mpsc::channel(OUT_DEPTH);
        match first {
            Some(Err(e)) => return Err(e),
            Some(Ok(bytes)) => {
                // Re-chain: first item, then the rest.
                tokio::spawn(async move {
                    if tx2.send(Ok(bytes)).await.is_err() {
                        return;
                    }
                    while let Some(item) = rx.recv().await {
                        if tx2.send(item).await.is_err() {
                            return;
                        }
                    }
                });
            }
            None => drop(tx2),
        }
        Ok(GetOutcome {
            record,
            range: range.map(|_| (start, end)),
            body: rx2,
        })
    }
}

type Tx = mpsc::Sender<Result<Bytes, ObjectError>>;

/// Whose reads these are. A copy's reads feed an upload whose writers already hold
/// connection slots; making them wait for slots too could deadlock (every slot held by writers
/// waiting for data the reads would bring), so they are exempt from the connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    Client,
    Copy,
}

async fn stream_range(
    inner: &Arc<Inner>,
    rec: &ObjectRecord,
    start: u64,
    end: u64,
    tx: &Tx,
    lane: Lane,
) -> Result<(), ObjectError> {
    let mut part_start = 0u64;
    for part in &rec.parts {
        let part_end = part_start + part.size;
        if part_end > start && part_start < end {
            let a = start.max(part_start) - part_start;
            let b = end.min(part_end) - part_start;
            stream_part(inner, &part.stream, a, b, tx, lane).await?;
        }
        if part_end >= end {
            break;
        }
        part_start = part_end;
    }
    Ok(())
}

/// Streams plaintext bytes `[start, end)` of one stored body.
async fn stream_part(
    inner: &Arc<Inner>,
    stream: &StreamRecord,
    start: u64,
    end: u64,
    tx: &Tx,
    lane: Lane,
) -> Result<(), ObjectError> {
    let mut seg_start = 0u64;
    for seg in &stream.segments {
        let seg_end = seg_start + seg.plain_size;
        if seg_end > start && seg_start < end {
            let a = start.max(seg_start) - seg_start;
            let b = end.min(seg_end) - seg_start;
            read_segment(inner, stream, seg, a, b, tx, lane).await?;
        }
        if seg_end >= end {
            break;
        }
        seg_start = seg_end;
    }
    Ok(())
}

/// Streams plaintext bytes `[a, b)` of one segment.
async fn read_segment(
    inner: &Arc<Inner>,
    stream: &StreamRecord,
    seg: &SegmentRecord,
    a: u64,
    b: u64,
    tx: &Tx,
    lane: Lane,
) -> Result<(), ObjectError> {
    let stream_id = stream.stream_id.0;
    let key = unwrap_segment_key(&inner.root, &seg.wrapped_key, &stream_id, seg.index)?;
    let suite = CipherSuite::from_id(stream.cipher)?;
    let cipher = Arc::new(BlockCipher::new(suite, &key, stream_id, seg.index)?);
    let bs = u64::from(stream.block_size);
    let cbs = bs + TAG_LEN as u64;
    let blocks = plain_block_count(seg.plain_size, stream.block_size);
    let cipher_len = ciphertext_len(seg.plain_size, stream.block_size);
    let (b0, b1) = (a / bs, (b.max(a + 1) - 1) / bs);

    let mut decrypt = Decrypt {
        cipher,
        block_size: bs,
        blocks,
        next_block: b0,
        last_block: b1,
        last_len: (cipher_len - (blocks - 1) * cbs) as usize,
        carry: Vec::new(),
        a,
        b,
    };

    let (k, n, chunk_size, pieces) = match &seg.placement {
        Placement::Inline(ct) => {
            let c0 = (b0 * cbs) as usize;
            let c1 = (((b1 + 1) * cbs).min(cipher_len) as usize).min(ct.len());
            if c0 > c1 {
                return Err(ObjectError::Internal(
                    "inline segment shorter than recorded".into(),
                ));
            }
            let out = decrypt.feed(&ct[c0..c1])?;
            decrypt.finish()?;
            let _ = tx.send(Ok(Bytes::from(out))).await;
            return Ok(());
        }
        Placement::Pieces {
            k,
            n,
            chunk_size,
            pieces,
        } => (*k as usize, *n as usize, *chunk_size as usize, pieces),
    };
    let layout = Layout {
        k,
        n,
        chunk_size,
        cipher_len,
    };
    let c0 = b0 * cbs;
    let c1 = ((b1 + 1) * cbs).min(cipher_len);
    let (s0, s1) = layout.stripes_for(c0, c1);
    let group = (GROUP_BYTES / layout.stripe_bytes()).max(1);
    let mac_key = Arc::new(key.chunk_mac_key());
    let fetch = Fetch {
        stream: stream_id,
        segment: seg.index,
        layout,
        pieces,
        mac_key,
        exempt: lane == Lane::Copy,
        reason: crate::metrics::Reason::Download,
    };
    let mut reads = SegmentReads::new();
    let r: Result<(), ObjectError> = async {
        let mut g = s0;
        while g <= s1 {
            let g_end = (g + group - 1).min(s1);
            let stripes = inner
                .transfers
                .fetch_stripes(&fetch, g, g_end, &mut reads)
                .await?;
            // Decode (only the stripes missing a data chunk) and decrypt off the reactor.
            let stripe_start = g * layout.stripe_bytes();
            let skip = (c0.max(stripe_start) - stripe_start) as usize;
            let keep = (c1.min((g_end + 1) * layout.stripe_bytes()) - stripe_start) as usize;
            let (d, out) =
                tokio::task::spawn_blocking(move || -> (Decrypt, Result<Vec<u8>, ObjectError>) {
                    let r = (|| {
                        let mut decoder = StripeDecoder::new(layout);
                        let mut cipher_bytes = Vec::with_capacity(stripes.count() * k * chunk_size);
                        let mut chunks = Vec::with_capacity(k);
                        for s in 0..stripes.count() {
                            // Each stripe from its own `k` good chunks.
                            stripes.chunks_of(s, &mut chunks);
                            decoder.decode(&chunks, &mut cipher_bytes)?;
                        }
                        decrypt.feed(&cipher_bytes[skip..keep])
                    })();
                    (decrypt, r)
                })
                .await
                .map_err(|e| ObjectError::Internal(e.to_string()))?;
            decrypt = d;
            let out = out?;
            if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
                return Ok(()); // the client went away
            }
            g = g_end + 1;
        }
        decrypt.finish()
    }
    .await;
    let faults = reads.take_faults();
    if !faults.is_empty() {
        inner.report_faults(stream_id, seg.index, faults);
    }
    r
}

/// Decrypts consecutive ciphertext blocks and trims the plaintext to `[a, b)` of the segment.
struct Decrypt {
    cipher: Arc<BlockCipher>,
    block_size: u64,
    blocks: u64,
    next_block: u64,
    last_block: u64,
    /// Ciphertext length of the segment's last block.
    last_len: usize,
    carry: Vec<u8>,
    a: u64,
    b: u64,
}

impl Decrypt {
    /// Every requested block was decrypted (a short stored ciphertext is an error, never a
    /// silently shorter body).
    fn finish(&self) -> Result<(), ObjectError> {
        if self.next_block <= self.last_block {
            return Err(ObjectError::Internal(format!(
                "segment ciphertext ended at block {} of {}",
                self.next_block,
                self.last_block + 1
            )));
        }
        Ok(())
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<u8>, ObjectError> {
        self.carry.extend_from_slice(bytes);
        let cbs = self.block_size as usize + TAG_LEN;
        let mut out = Vec::new();
        let mut used = 0;
        while self.next_block <= self.last_block {
            let is_last = self.next_block + 1 == self.blocks;
            let need = if is_last { self.last_len } else { cbs };
            if self.carry.len() - used < need {
                break;
            }
            let block_start = self.next_block * self.block_size;
            let mut plain = Vec::with_capacity(need);
            self.cipher.open(
                self.next_block,
                is_last,
                &self.carry[used..used + need],
                &mut plain,
            )?;
            let lo = self.a.saturating_sub(block_start) as usize;
            let hi = (self.b - block_start).min(plain.len() as u64) as usize;
            if lo < hi {
                out.extend_from_slice(&plain[lo..hi]);
            }
            used += need;
            self.next_block += 1;
        }
        self.carry.drain(..used);
        Ok(out)
    }
}
