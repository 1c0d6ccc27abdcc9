//! Request and response bodies.
//!
//! [`pump_request_body`] moves a request body into the object layer's [`BodyReceiver`](crate::object::BodyReceiver)
//! channel, decoding `aws-chunked` framing (each chunk's signature verified before its bytes
//! are forwarded) and checking the declared payload hash and lengths. `BodyEvent::End` is sent
//! only after every check passed, so the object layer never commits a body that failed one:
//! a failed check drops the channel without `End`, and the pump's own error is the one the
//! client sees.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use aws_lc_rs::digest;
use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::mpsc;

use super::auth::{ChunkedDecoder, PayloadMode, Verified};
use super::checksum_headers::{verify, ChecksumExpectation};
use super::error::{S3Error, S3ErrorCode};
use crate::checksum::{ChecksumAlgorithm, Hasher};
use crate::meta::StoredChecksum;
use crate::object::{BodyEvent, BodyStream, ObjectError};

/// Largest aws-chunked chunk accepted (clients use 64 KiB to 8 MiB).
const MAX_CHUNK: usize = 16 << 20;
/// Largest single PUT, as on AWS.
pub const MAX_PUT_SIZE: u64 = 5 << 30;

/// A request body with the `[server]` body limits: over every `body_timeout` window of time
/// spent waiting for the client (time the gateway spends not reading, because it waits for
/// nodes, does not count), the client must send at least `body_min_rate` bytes per second
/// (at least one byte when the rate is 0), else the request ends with `RequestTimeout` and
/// the connection is closed.
pub struct RequestBody<B = Incoming> {
    inner: B,
    window: Duration,
    /// Bytes a window must bring.
    needed: u64,
    /// Time spent waiting for the client in the current window, and the bytes it brought.
    waited: Duration,
    got: u64,
}

impl<B> RequestBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    pub fn new(inner: B, limits: &crate::config::ServerConfig) -> RequestBody<B> {
        let needed = (limits.body_min_rate as f64 * limits.body_timeout.as_secs_f64()) as u64;
        RequestBody {
            inner,
            window: limits.body_timeout,
            needed: needed.max(1),
            waited: Duration::ZERO,
            got: 0,
        }
    }

    /// The next frame, or `RequestTimeout` when the client is too slow.
    pub async fn frame(&mut self) -> Option<Result<Frame<Bytes>, S3Error>> {
        loop {
            let left = self.window.saturating_sub(self.waited);
            let started = tokio::time::Instant::now();
            let r = tokio::time::timeout(left, self.inner.frame()).await;
            self.waited += started.elapsed();
            match r {
                Ok(Some(Ok(frame))) => {
                    if let Some(d) = frame.data_ref() {
                        self.got += d.len() as u64;
                    }
                    if let Err(e) = self.next_window() {
                        return Some(Err(e));
                    }
                    return Some(Ok(frame));
                }
                Ok(Some(Err(e))) => {
                    return Some(Err(S3Error::new(
                        S3ErrorCode::IncompleteBody,
                        format!("the request body could not be read completely: {e}"),
                    )))
                }
                Ok(None) => return None,
                Err(_) => {
                    if let Err(e) = self.next_window() {
                        return Some(Err(e));
                    }
                }
            }
        }
    }

    /// At the end of a window: fails when it brought too little, else starts the next one.
    fn next_window(&mut self) -> Result<(), S3Error> {
        if self.waited < self.window {
            return Ok(());
        }
        if self.got < self.needed {
            return Err(S3Error::new(
                S3ErrorCode::RequestTimeout,
                "Your socket connection to the server was not read from or written to within the timeout period.",
            )
            .with_header(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            ));
        }
        self.waited = Duration::ZERO;
        self.got = 0;
        Ok(())
    }
}

/// Bytes of body frames handed to the blocking pool at once.
const WORK_BATCH: usize = 256 << 10;
/// A batch smaller than this is worked in place: cheaper than a hop to the blocking pool.
const WORK_INLINE: usize = 32 << 10;

/// The CPU work on a request body: aws-chunked decoding (each chunk's signature checked), the
/// payload SHA-256 and the checksum. It runs on the blocking pool, a batch of frames at a time
/// (what has arrived, up to [`WORK_BATCH`]): the reactor threads only move bytes.
struct BodyWork {
    decoder: Option<ChunkedDecoder>,
    sha: Option<digest::Context>,
    hasher: Option<Hasher>,
}

type WorkDone = (BodyWork, Result<Vec<Bytes>, S3Error>);

impl BodyWork {
    /// Decodes and hashes `frames`; returns the decoded bytes, in order.
    fn run(&mut self, frames: Vec<Bytes>) -> Result<Vec<Bytes>, S3Error> {
        let mut out = Vec::with_capacity(frames.len());
        for data in frames {
            let data = match self.decoder.as_mut() {
                Some(d) => {
                    let mut decoded = Vec::with_capacity(data.len());
                    d.feed(&data, &mut decoded).map_err(|e| chunked_error(&e))?;
                    Bytes::from(decoded)
                }
                None => data,
            };
            if data.is_empty() {
                continue;
            }
            if let Some(h) = self.sha.as_mut() {
                h.update(&data);
            }
            if let Some(h) = self.hasher.as_mut() {
                h.update(&data);
            }
            out.push(data);
        }
        Ok(out)
    }

    /// [`BodyWork::run`] on the blocking pool.
    fn spawn(mut self, frames: Vec<Bytes>) -> tokio::task::JoinHandle<WorkDone> {
        tokio::task::spawn_blocking(move || {
            let out = self.run(frames);
            (self, out)
        })
    }
}

/// Where a body's decoded bytes go: the length checks, then the object layer.
struct Forward<'a> {
    tx: &'a mpsc::Sender<BodyEvent>,
    expected_len: Option<u64>,
    total: u64,
}

impl Forward<'_> {
    /// Checks and sends `data`; `false` when the object layer stopped reading (its own error
    /// is the one reported).
    async fn send(&mut self, data: Vec<Bytes>) -> Result<bool, S3Error> {
        for chunk in data {
            self.total += chunk.len() as u64;
            if self.total > MAX_PUT_SIZE {
                return Err(S3Error::new(
                    S3ErrorCode::EntityTooLarge,
                    "Your proposed upload exceeds the maximum allowed object size (5 GiB).",
                ));
            }
            if self.expected_len.is_some_and(|n| self.total > n) {
                return Err(S3Error::new(
                    S3ErrorCode::InvalidRequest,
                    "the body is longer than its declared length",
                ));
            }
            if self.tx.send(BodyEvent::Data(chunk)).await.is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Reads the request body into `tx`. `expected_len` is the decoded length the client
/// declared (Content-Length, or x-amz-decoded-content-length for aws-chunked).
///
/// `checksums` is what the request declared (headers, trailer, algorithm); `compute` asks for
/// a checksum even when the client sent none (multipart uploads created with an algorithm).
/// The verified checksum travels with `BodyEvent::End`.
///
/// Each wait for the client ends with a batch of what has arrived (up to [`WORK_BATCH`]
/// bytes), decoded and hashed on the blocking pool (in place under [`WORK_INLINE`]) and
/// forwarded at once: a slow client's bytes are never held back waiting for more.
pub async fn pump_request_body<B>(
    mut body: RequestBody<B>,
    auth: &Verified,
    expected_len: Option<u64>,
    checksums: &ChecksumExpectation,
    compute: Option<ChecksumAlgorithm>,
    tx: mpsc::Sender<BodyEvent>,
) -> Result<(), S3Error>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let decoder = if auth.payload.is_streaming() {
        Some(
            ChunkedDecoder::new(&auth.payload, auth.chunk_signing.as_ref(), MAX_CHUNK)
                .map_err(|e| chunked_error(&e))?,
        )
    } else {
        None
    };
    let sha = match auth.payload {
        PayloadMode::Sha256(_) => Some(digest::Context::new(&digest::SHA256)),
        _ => None,
    };
    let hasher = checksums.algorithm.or(compute).map(Hasher::new);
    let mut work = BodyWork {
        decoder,
        sha,
        hasher,
    };
    let mut forward = Forward {
        tx: &tx,
        expected_len,
        total: 0,
    };
    let join_error = |e: tokio::task::JoinError| S3Error::internal(format!("body work: {e}"));
    let mut ended = false;
    while !ended {
        // Wait for the client; then take what else has arrived, without waiting: bytes are
        // never held back for a client that sends slowly.
        let mut batch: Vec<Bytes> = Vec::new();
        let mut batch_len = 0usize;
        let mut next = body.frame().await;
        loop {
            match next {
                // HTTP trailers are skipped: aws-chunked carries its own.
                Some(frame) => {
                    if let Ok(data) = frame?.into_data() {
                        batch_len += data.len();
                        batch.push(data);
                    }
                }
                None => {
                    ended = true;
                    break;
                }
            }
            if batch_len >= WORK_BATCH {
                break;
            }
            // One poll: a frame already received, or nothing (dropping a pending read loses
            // nothing and counts no waiting time).
            match tokio::time::timeout(Duration::ZERO, body.frame()).await {
                Ok(frame) => next = frame,
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let out = if batch_len < WORK_INLINE {
            work.run(batch)
        } else {
            let (done, out) = work.spawn(batch).await.map_err(join_error)?;
            work = done;
            out
        };
        if !forward.send(out?).await? {
            return Ok(());
        }
    }
    let total = forward.total;
    let BodyWork {
        decoder,
        sha,
        hasher,
    } = work;
    let trailers = match decoder {
        Some(d) => d.finish().map_err(|e| chunked_error(&e))?,
        None => Vec::new(),
    };
    if let Some(n) = expected_len {
        if total < n {
            return Err(S3Error::new(
                S3ErrorCode::IncompleteBody,
                format!("You did not provide the number of bytes specified by the Content-Length HTTP header ({total} of {n})."),
            ));
        }
    }
    if let (Some(h), PayloadMode::Sha256(expected)) = (sha, &auth.payload) {
        if h.finish().as_ref() != expected.as_slice() {
            return Err(S3Error::new(
                S3ErrorCode::XAmzContentSHA256Mismatch,
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            ));
        }
    }
    let computed = hasher.map(Hasher::finish);
    let verified = verify(checksums, computed.as_ref(), &trailers)?;
    // A checksum the client neither sent nor asked for, but the upload wants, is ours.
    let stored = verified.or(computed).map(|c| StoredChecksum {
        algorithm: c.algorithm.id(),
        kind: crate::checksum::ChecksumType::FullObject.id(),
        value: c.to_base64(),
    });
    let _ = tx.send(BodyEvent::End(stored)).await;
    Ok(())
}

/// Most bytes of an oversized small body read and discarded before the error is answered, and
/// how long that may take: a client that sends the whole body before reading the answer then
/// sees it, instead of a connection reset. Beyond either bound the answer goes out at once
/// and the connection is closed.
const DRAIN_MAX: u64 = 16 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_millis(500);

/// Reads a small request body (XML) fully, up to `limit` bytes, verifying the payload hash,
/// Content-MD5 and, with `body_checksums`, any x-amz-checksum-* header or trailer.
/// (CompleteMultipartUpload passes `false`: its checksum headers describe the object.)
///
/// A body over `limit` is answered with `MaxMessageLengthExceeded` promptly: at once when its
/// declared length says so and it is large (or the client waits for `100 Continue`), else
/// after the rest of it was drained within [`DRAIN_MAX`] and [`DRAIN_TIME`]; whenever
/// bytes may be left unread, the answer closes the connection.
pub async fn read_small_body(
    body: RequestBody,
    auth: &Verified,
    headers: &http::HeaderMap,
    limit: usize,
    body_checksums: bool,
) -> Result<Vec<u8>, S3Error> {
    let too_big = |close: bool| {
        let e = S3Error::new(
            S3ErrorCode::MaxMessageLengthExceeded,
            "Your request was too big.",
        )
        .with_detail("MaxMessageLengthBytes", limit.to_string());
        if close {
            e.with_header(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            )
        } else {
            e
        }
    };
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let wire_len = number("content-length");
    let declared = if auth.payload.is_streaming() {
        number("x-amz-decoded-content-length").or(wire_len)
    } else {
        wire_len
    };
    if declared.is_some_and(|n| n > limit as u64) {
        let waits_for_continue = headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if waits_for_continue || wire_len.is_none_or(|n| n > DRAIN_MAX) {
            return Err(too_big(true));
        }
    }
    let checksums = if body_checksums {
        super::checksum_headers::parse_request_checksums(headers)?
    } else {
        ChecksumExpectation::default()
    };
    let md5 = super::headers::content_md5(headers)?;
    let (tx, mut rx) = mpsc::channel(4);
    let pump = pump_request_body(body, auth, None, &checksums, None, tx);
    // Owns the receiver: when it returns, the pump's sends fail and it stops reading.
    let collect = async move {
        let mut out = Vec::new();
        let mut drained = None::<(u64, tokio::time::Instant)>;
        loop {
            let ev = match drained {
                None => rx.recv().await,
                Some((_, deadline)) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(ev) => ev,
                    Err(_) => return Err(too_big(true)),
                },
            };
            match (ev, drained.as_mut()) {
                (Some(BodyEvent::Data(b)), Some((n, _))) => {
                    *n += b.len() as u64;
                    if *n > DRAIN_MAX {
                        return Err(too_big(true));
                    }
                }
                (Some(BodyEvent::Data(b)), None) => {
                    if out.len() + b.len() > limit {
                        out = Vec::new();
                        drained = Some((b.len() as u64, tokio::time::Instant::now() + DRAIN_TIME));
                    } else {
                        out.extend_from_slice(&b);
                    }
                }
                (Some(BodyEvent::End(_)), None) => return Ok(Some(out)),
                (Some(BodyEvent::End(_)), Some(_)) => return Err(too_big(false)),
                (None, Some(_)) => return Err(too_big(true)),
                (None, None) => return Ok(None),
            }
        }
    };
    // The collector decides when to answer an oversized body: the pump (which may be waiting
    // for a stalled client) is then dropped, not awaited.
    tokio::pin!(pump);
    tokio::pin!(collect);
    let mut pumped = None;
    let collected = loop {
        tokio::select! {
            r = &mut pump, if pumped.is_none() => pumped = Some(r),
            c = &mut collect => break c,
        }
    };
    // An oversized body is the answer even when its end then failed a check.
    let collected = match collected {
        Err(e) if e.code == S3ErrorCode::MaxMessageLengthExceeded => return Err(e),
        other => other,
    };
    match pumped {
        Some(r) => r?,
        None => pump.await?,
    }
    let out = collected?
        .ok_or_else(|| S3Error::new(S3ErrorCode::IncompleteBody, "the request body ended early"))?;
    if let Some(expected) = md5 {
        use md5::Digest;
        let got: [u8; 16] = md5::Md5::digest(&out).into();
        if got != expected {
            return Err(S3Error::new(
                S3ErrorCode::BadDigest,
                "The Content-MD5 you specified did not match what we received.",
            ));
        }
    }
    Ok(out)
}

fn chunked_error(e: &super::auth::ChunkedError) -> S3Error {
    S3Error::new(e.s3_code(), e.to_string())
}

/// The response body: a whole buffer, or a stream of plaintext from the object layer.
pub enum ResponseBody {
    Full(Option<Bytes>),
    Stream(BodyStream),
}

impl ResponseBody {
    pub fn empty() -> Self {
        ResponseBody::Full(None)
    }

    pub fn full(b: impl Into<Bytes>) -> Self {
        ResponseBody::Full(Some(b.into()))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = ObjectError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ObjectError>>> {
        match self.get_mut() {
            ResponseBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Stream(rx) => match rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
                Poll::Ready(Some(Err(e))) => {
                    // Mid-body failure: aborting the connection is the only honest signal left.
                    tracing::error!(error = %e, "download failed after the response started");
                    Poll::Ready(Some(Err(e)))
                }
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ResponseBody::Full(None))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            ResponseBody::Full(Some(b)) => http_body::SizeHint::with_exact(b.len() as u64),
            ResponseBody::Full(None) => http_body::SizeHint::with_exact(0),
            ResponseBody::Stream(_) => http_body::SizeHint::default(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    /// A request body fed by the test, one frame at a time.
    struct Fed(mpsc::Receiver<Bytes>);

    impl Body for Fed {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
        }
    }

    /// A client that sends slowly has its bytes forwarded as they arrive, never held back
    /// waiting for a batch to fill (the object layer gives up on a body idle for 60 s).
    #[tokio::test]
    async fn a_slow_client_s_bytes_are_forwarded_as_they_arrive() {
        let (client, fed) = mpsc::channel(4);
        let (tx, mut rx) = mpsc::channel(64);
        let auth = Verified {
            access_key: "k".into(),
            region: "us-east-1".into(),
            payload: PayloadMode::Unsigned,
            chunk_signing: None,
        };
        let checksums = ChecksumExpectation {
            algorithm: Some(ChecksumAlgorithm::Crc32),
            ..ChecksumExpectation::default()
        };
        let total = 40 * 10_000;
        let limits = crate::config::ServerConfig::default();
        let pump = tokio::spawn(async move {
            let body = RequestBody::new(Fed(fed), &limits);
            pump_request_body(body, &auth, Some(total as u64), &checksums, None, tx).await
        });
        let mut got = 0usize;
        for i in 0..40u8 {
            client.send(Bytes::from(vec![i; 10_000])).await.unwrap();
            // This frame reaches the object layer before the client sends the next one.
            while got < (usize::from(i) + 1) * 10_000 {
                let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                    .await
                    .expect("bytes forwarded while the client waits")
                    .unwrap();
                let BodyEvent::Data(d) = event else {
                    panic!("end before the body")
                };
                assert!(d.iter().all(|b| *b == i));
                got += d.len();
            }
        }
        drop(client);
        let BodyEvent::End(sum) = rx.recv().await.unwrap() else {
            panic!("no end")
        };
        assert!(sum.is_some(), "the checksum of the whole body");
        assert_eq!(got, total);
        pump.await.unwrap().unwrap();
    }
}
