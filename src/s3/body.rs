//! Request and response bodies.
//!
//! [`pump_request_body`] moves a request body into the object layer's [`BodyReceiver`]
//! channel, decoding `aws-chunked` framing (each chunk's signature verified before its bytes
//! are forwarded) and checking the declared payload hash and lengths. `BodyEvent::End` is sent
//! only after every check passed, so the object layer never commits a body that failed one:
//! a failed check drops the channel without `End`, and the pump's own error is the one the
//! client sees.

use std::pin::Pin;
use std::task::{Context, Poll};

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

/// Reads the request body into `tx`. `expected_len` is the decoded length the client
/// declared (Content-Length, or x-amz-decoded-content-length for aws-chunked).
///
/// `checksums` is what the request declared (headers, trailer, algorithm); `compute` asks for
/// a checksum even when the client sent none (multipart uploads created with an algorithm).
/// The verified checksum travels with `BodyEvent::End`.
pub async fn pump_request_body(
    mut body: Incoming,
    auth: &Verified,
    expected_len: Option<u64>,
    checksums: &ChecksumExpectation,
    compute: Option<ChecksumAlgorithm>,
    tx: mpsc::Sender<BodyEvent>,
) -> Result<(), S3Error> {
    let mut decoder = if auth.payload.is_streaming() {
        Some(
            ChunkedDecoder::new(&auth.payload, auth.chunk_signing.as_ref(), MAX_CHUNK)
                .map_err(|e| chunked_error(&e))?,
        )
    } else {
        None
    };
    let mut sha = match auth.payload {
        PayloadMode::Sha256(_) => Some(digest::Context::new(&digest::SHA256)),
        _ => None,
    };
    let mut hasher = checksums.algorithm.or(compute).map(Hasher::new);
    let mut total = 0u64;
    let mut decoded = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            S3Error::new(
                S3ErrorCode::IncompleteBody,
                format!("the request body could not be read completely: {e}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // HTTP trailers: aws-chunked carries its own
        };
        let data = match decoder.as_mut() {
            Some(d) => {
                decoded.clear();
                d.feed(&data, &mut decoded).map_err(|e| chunked_error(&e))?;
                Bytes::from(std::mem::take(&mut decoded))
            }
            None => data,
        };
        if data.is_empty() {
            continue;
        }
        if let Some(h) = sha.as_mut() {
            h.update(&data);
        }
        if let Some(h) = hasher.as_mut() {
            h.update(&data);
        }
        total += data.len() as u64;
        if total > MAX_PUT_SIZE {
            return Err(S3Error::new(
                S3ErrorCode::EntityTooLarge,
                "Your proposed upload exceeds the maximum allowed object size (5 GiB).",
            ));
        }
        if expected_len.is_some_and(|n| total > n) {
            return Err(S3Error::new(
                S3ErrorCode::InvalidRequest,
                "the body is longer than its declared length",
            ));
        }
        if tx.send(BodyEvent::Data(data)).await.is_err() {
            // The object layer stopped reading; its own error is reported.
            return Ok(());
        }
    }
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

/// Reads a small request body (XML) fully, up to `limit` bytes, verifying the payload hash,
/// Content-MD5 and, with `body_checksums`, any x-amz-checksum-* header or trailer.
/// (CompleteMultipartUpload passes `false`: its checksum headers describe the object.)
pub async fn read_small_body(
    body: Incoming,
    auth: &Verified,
    headers: &http::HeaderMap,
    limit: usize,
    body_checksums: bool,
) -> Result<Vec<u8>, S3Error> {
    let checksums = if body_checksums {
        super::checksum_headers::parse_request_checksums(headers)?
    } else {
        ChecksumExpectation::default()
    };
    let md5 = super::headers::content_md5(headers)?;
    let (tx, mut rx) = mpsc::channel(4);
    let pump = pump_request_body(body, auth, None, &checksums, None, tx);
    let collect = async {
        let mut out = Vec::new();
        while let Some(ev) = rx.recv().await {
            match ev {
                BodyEvent::Data(b) => {
                    if out.len() + b.len() > limit {
                        return Err(S3Error::new(
                            S3ErrorCode::MaxMessageLengthExceeded,
                            "Your request was too big.",
                        ));
                    }
                    out.extend_from_slice(&b);
                }
                BodyEvent::End(_) => return Ok(Some(out)),
            }
        }
        Ok(None)
    };
    let (pumped, collected) = tokio::join!(pump, collect);
    pumped?;
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
    S3Error::new(super::error::code_from_str(e.s3_code()), e.to_string())
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
