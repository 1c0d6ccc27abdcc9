//! GET: metadata → for each segment in range: fetch the needed stripes from `k` pieces in
//! parallel (more when a read fails or some of its chunks do not verify) → verify chunk MACs
//! (a bad chunk is an erasure of its stripe only) → decode each stripe from its own `k` good
//! chunks, only if one of its data chunks is missing → decrypt the needed blocks → stream the
//! plaintext out. Faulty pieces found are handed to `Inner::report_faults` after each
//! segment.
//!
//! Stripes are fetched in groups of about [`GROUP_BYTES`] of ciphertext and the plaintext
//! leaves in frames of at most [`FRAME_BYTES`], [`OUT_FRAMES`] of them queued towards the
//! client: [`download_memory`] bounds what one download holds, and that much of the memory
//! budget (`limits.memory`) is reserved before it starts (waiting in the same bounded queue as
//! uploads) and given back when the response body is dropped.

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
/// The largest plaintext frame handed to the HTTP layer.
pub(crate) const FRAME_BYTES: usize = 512 << 10;
/// Frames queued towards the client (a group's worth: its decryption overlaps the client
/// taking the previous group).
const OUT_FRAMES: usize = 8;

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
        // Leased before any wait: garbage collection must not take the bodies' pieces while
        // the download waits for memory (however long the queue takes).
        let lease = ReadLease::new(
            &self.inner,
            record.parts.iter().map(|p| p.stream.stream_id).collect(),
        );
        // A copy's caller reserved the memory of both its read and its write in one go.
        let memory = match lane {
            Lane::Client => {
                let bytes = download_memory(&record, start, end);
                if bytes > 0 {
                    Some(Arc::new(self.inner.transfers.reserve_memory(bytes).await?))
                } else {
                    None
                }
            }
            Lane::Copy => None,
        };
        let (tx, mut rx) = mpsc::channel(OUT_FRAMES);
        let inner = self.inner.clone();
        let rec = record.clone();
        let held = memory.clone();
        tokio::spawn(async move {
            let (_lease, _memory) = (lease, held);
            if let Err(e) = stream_range(&inner, &rec, start, end, &tx, lane).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        // Peek at the first item to surface early failures as errors.
        let first = if end > start { rx.recv().await } else { None };
        if let Some(Err(e)) = first {
            return Err(e);
        }
        Ok(GetOutcome {
            record,
            range: range.map(|_| (start, end)),
            body: BodyStream::new(first, rx, memory),
        })
    }
}

/// The most memory a download of `[start, end)` of `rec` holds at once: for its largest group
/// of stripes the pieces read (up to `n` of them, one buffer each) and the ciphertext decoded
/// from them, then the plaintext frames queued towards the client, one being peeked at and one
/// the HTTP layer is writing. Zero when the range lies in inline segments only.
pub(crate) fn download_memory(rec: &ObjectRecord, start: u64, end: u64) -> usize {
    let mut most = 0u64;
    let mut part_start = 0u64;
    for part in &rec.parts {
        let part_end = part_start + part.size;
        let mut seg_start = part_start;
        for seg in &part.stream.segments {
            let seg_end = seg_start + seg.plain_size;
            if seg_end > start && seg_start < end {
                if let Placement::Pieces {
                    k, n, chunk_size, ..
                } = &seg.placement
                {
                    let (k, n) = (u64::from(*k).max(1), u64::from(*n));
                    let stripe = k * u64::from(*chunk_size).max(1);
                    // Whole blocks, with a tag each, cover the range: at most two more.
                    let bs = u64::from(part.stream.block_size).max(1);
                    let wanted = (end.min(seg_end) - start.max(seg_start)) / bs + 2;
                    let cipher = wanted * (bs + TAG_LEN as u64);
                    let stripes = (cipher.div_ceil(stripe) + 1).min((GROUP_BYTES / stripe).max(1));
                    // A block over a frame's size makes its frames that large, and a partial
                    // block waits in the carry.
                    let frame = (FRAME_BYTES as u64).max(bs);
                    let frames = ((OUT_FRAMES + 2) as u64 * frame).min(end - start + frame);
                    let held = stripes * stripe * (n + k) / k + bs + TAG_LEN as u64 + frames;
                    most = most.max(held);
                }
            }
            seg_start = seg_end;
        }
        part_start = part_end;
    }
    usize::try_from(most).unwrap_or(usize::MAX)
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
    let cipher_len = ciphertext_len(seg.plain_size, stream.block_size);
    let mut decrypt = Decrypt::new(cipher, stream.block_size, seg.plain_size, a, b);
    let (b0, b1) = (decrypt.next_block, decrypt.last_block);

    let (k, n, chunk_size, pieces) = match &seg.placement {
        Placement::Inline(ct) => {
            let c0 = (b0 * cbs) as usize;
            let c1 = (((b1 + 1) * cbs).min(cipher_len) as usize).min(ct.len());
            if c0 > c1 {
                return Err(ObjectError::Internal(
                    "inline segment shorter than recorded".into(),
                ));
            }
            let mut frames = Frames::default();
            decrypt.feed(&ct[c0..c1], &mut frames)?;
            decrypt.finish()?;
            for frame in frames.take() {
                if tx.send(Ok(frame)).await.is_err() {
                    break; // the client went away
                }
            }
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
            let (d, out) = tokio::task::spawn_blocking(
                move || -> (Decrypt, Result<Vec<Bytes>, ObjectError>) {
                    let r = (|| {
                        let mut decoder = StripeDecoder::new(layout);
                        let mut cipher_bytes = Vec::with_capacity(stripes.count() * k * chunk_size);
                        let mut chunks = Vec::with_capacity(k);
                        for s in 0..stripes.count() {
                            // Each stripe from its own `k` good chunks.
                            stripes.chunks_of(s, &mut chunks);
                            decoder.decode(&chunks, &mut cipher_bytes)?;
                        }
                        drop(chunks);
                        drop(stripes);
                        let mut frames = Frames::default();
                        decrypt.feed(&cipher_bytes[skip..keep], &mut frames)?;
                        Ok(frames.take())
                    })();
                    (decrypt, r)
                },
            )
            .await
            .map_err(|e| ObjectError::Internal(e.to_string()))?;
            decrypt = d;
            for frame in out? {
                if tx.send(Ok(frame)).await.is_err() {
                    return Ok(()); // the client went away
                }
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
    /// Decrypts the blocks holding plaintext `[a, b)` of a segment of `plain_size` bytes.
    fn new(cipher: Arc<BlockCipher>, block_size: u32, plain_size: u64, a: u64, b: u64) -> Decrypt {
        let bs = u64::from(block_size);
        let blocks = plain_block_count(plain_size, block_size);
        let cipher_len = ciphertext_len(plain_size, block_size);
        Decrypt {
            cipher,
            block_size: bs,
            blocks,
            next_block: a / bs,
            last_block: (b.max(a + 1) - 1) / bs,
            last_len: (cipher_len - (blocks - 1) * (bs + TAG_LEN as u64)) as usize,
            carry: Vec::new(),
            a,
            b,
        }
    }

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

    /// Ciphertext length of the next block.
    fn next_len(&self) -> usize {
        if self.next_block + 1 == self.blocks {
            self.last_len
        } else {
            self.block_size as usize + TAG_LEN
        }
    }

    /// Decrypts the whole blocks `bytes` completes (with what the previous call left over)
    /// into `out`; keeps a trailing partial block for the next call.
    fn feed(&mut self, bytes: &[u8], out: &mut Frames) -> Result<(), ObjectError> {
        let mut rest = bytes;
        if !self.carry.is_empty() && self.next_block <= self.last_block {
            let need = self.next_len();
            let take = (need - self.carry.len().min(need)).min(rest.len());
            self.carry.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.carry.len() < need {
                return Ok(());
            }
            let block = std::mem::take(&mut self.carry);
            self.open(&block, out)?;
        }
        while self.next_block <= self.last_block {
            let need = self.next_len();
            if rest.len() < need {
                self.carry.extend_from_slice(rest);
                break;
            }
            self.open(&rest[..need], out)?;
            rest = &rest[need..];
        }
        Ok(())
    }

    /// Opens the next block into `out`, keeping only its part within `[a, b)`.
    fn open(&mut self, sealed: &[u8], out: &mut Frames) -> Result<(), ObjectError> {
        let is_last = self.next_block + 1 == self.blocks;
        let block_start = self.next_block * self.block_size;
        let left = self.b.saturating_sub(self.a.max(block_start));
        let frame = out.room(self.block_size as usize, left);
        let at = frame.len();
        self.cipher.open(self.next_block, is_last, sealed, frame)?;
        let len = (frame.len() - at) as u64;
        let lo = self.a.saturating_sub(block_start).min(len) as usize;
        let hi = (self.b.saturating_sub(block_start)).min(len) as usize;
        // Only the range's first and last blocks are trimmed.
        frame.truncate(at + hi.max(lo));
        frame.drain(at..at + lo);
        self.next_block += 1;
        Ok(())
    }
}

/// Plaintext cut into frames of at most [`FRAME_BYTES`], each its own allocation (so a frame
/// sent frees its memory once written, whatever the others do).
#[derive(Default)]
struct Frames {
    done: Vec<Bytes>,
    current: Vec<u8>,
}

impl Frames {
    /// The frame to append up to `len` more bytes to, `left` being how many are still to come.
    fn room(&mut self, len: usize, left: u64) -> &mut Vec<u8> {
        if !self.current.is_empty() && self.current.len() + len > FRAME_BYTES {
            let full = std::mem::take(&mut self.current);
            self.done.push(Bytes::from(full));
        }
        if self.current.capacity() == 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(FRAME_BYTES);
            self.current.reserve_exact(want.max(len));
        }
        &mut self.current
    }

    /// Every frame so far, the last one possibly short.
    fn take(&mut self) -> Vec<Bytes> {
        if !self.current.is_empty() {
            let last = std::mem::take(&mut self.current);
            self.done.push(Bytes::from(last));
        }
        std::mem::take(&mut self.done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SegmentKey;

    /// A segment of `len` plaintext bytes sealed in blocks of `bs`.
    fn sealed(len: usize, bs: usize) -> (Vec<u8>, Vec<u8>, Arc<BlockCipher>) {
        let plain: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
        let key = SegmentKey::generate().unwrap();
        let cipher = BlockCipher::new(CipherSuite::Aes256Gcm, &key, [3; 16], 0).unwrap();
        let mut ct = Vec::new();
        let count = plain.len().div_ceil(bs).max(1);
        for i in 0..count {
            let block = &plain[(i * bs).min(len)..((i + 1) * bs).min(len)];
            cipher
                .seal(i as u64, i + 1 == count, block, &mut ct)
                .unwrap();
        }
        (plain, ct, Arc::new(cipher))
    }

    /// Decrypts `[a, b)` feeding the ciphertext in pieces of `step` bytes.
    fn read(
        ct: &[u8],
        cipher: &Arc<BlockCipher>,
        len: u64,
        bs: u64,
        a: u64,
        b: u64,
        step: usize,
    ) -> Vec<u8> {
        let cipher_len = ciphertext_len(len, bs as u32);
        let cbs = bs + TAG_LEN as u64;
        let mut d = Decrypt::new(cipher.clone(), bs as u32, len, a, b);
        let (b0, b1) = (d.next_block, d.last_block);
        let c0 = (b0 * cbs) as usize;
        let c1 = (((b1 + 1) * cbs).min(cipher_len)) as usize;
        let mut out = Vec::new();
        for piece in ct[c0..c1].chunks(step) {
            let mut frames = Frames::default();
            d.feed(piece, &mut frames).unwrap();
            for f in frames.take() {
                assert!(f.len() <= FRAME_BYTES);
                out.extend_from_slice(&f);
            }
        }
        d.finish().unwrap();
        out
    }

    #[test]
    fn ranges_decrypt_exactly_whatever_the_pieces_fed() {
        let bs = 4096u64;
        let len = 10 * 4096 + 1234;
        let (plain, ct, cipher) = sealed(len, bs as usize);
        let ranges = [
            (0, len as u64),
            (1, 2),
            (4095, 4097),
            (4096, 8192),
            (5000, len as u64),
            (len as u64 - 1, len as u64),
            (123, 41_000),
        ];
        for (a, b) in ranges {
            for step in [1, 17, 4096 + TAG_LEN, 5000, 1 << 20] {
                let got = read(&ct, &cipher, len as u64, bs, a, b, step);
                assert_eq!(
                    got,
                    plain[a as usize..b as usize],
                    "range {a}..{b} step {step}"
                );
            }
        }
    }

    #[test]
    fn a_large_range_leaves_in_bounded_separate_frames() {
        let bs = 65536u64;
        let len = 3 << 20;
        let (plain, ct, cipher) = sealed(len, bs as usize);
        let got = read(&ct, &cipher, len as u64, bs, 10, len as u64 - 10, 1 << 22);
        assert_eq!(got, plain[10..len - 10]);
    }

    #[test]
    fn a_truncated_ciphertext_is_an_error_not_a_short_body() {
        let bs = 4096u64;
        let len = 3 * 4096;
        let (_, ct, cipher) = sealed(len, bs as usize);
        let mut d = Decrypt::new(cipher, bs as u32, len as u64, 0, len as u64);
        let mut frames = Frames::default();
        d.feed(&ct[..ct.len() - 1], &mut frames).unwrap();
        assert!(d.finish().is_err());
    }
}
