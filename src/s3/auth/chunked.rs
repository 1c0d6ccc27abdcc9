//! Decoding of `aws-chunked` request bodies (SigV4 streaming uploads).
//!
//! Wire format: chunks `hex-size[;chunk-signature=<64 hex>]\r\n<data>\r\n`, ended by a chunk of
//! size 0, then an empty line, or (trailer modes) trailer lines `name:value\r\n` and an empty
//! line. In the signed-trailer mode the last trailer line is `x-amz-trailer-signature:<64 hex>`.
//!
//! Contract:
//! - Signed modes: every chunk line must carry a signature; a chunk's bytes are appended to the
//!   output only after the whole chunk, its CRLF and its signature (chained from the previous
//!   signature, starting at the seed) have been verified. A decoder therefore buffers up to
//!   `max_chunk` bytes. In the unsigned-trailer mode a chunk signature is a format error and
//!   bytes are emitted as they arrive: nothing in that mode authenticates them, so the caller
//!   must verify the trailer checksum before committing anything.
//! - Trailers: names are lowercased, values trimmed of spaces and tabs. In the signed-trailer
//!   mode, trailers (if any) must be followed by a valid `x-amz-trailer-signature`, computed over
//!   the trailers sorted by name as `name:value\n` lines and chained from the final chunk's
//!   signature; that line is not returned. An unsigned mode refuses a trailer signature, and
//!   `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` refuses any trailer.
//! - Left to the caller: comparing [`ChunkedDecoder::decoded_len`] with
//!   `x-amz-decoded-content-length`, checking that the trailers returned are the ones
//!   `x-amz-trailer` announced, and verifying the checksum values they carry.
//! - Any split of the input over `feed` calls gives the same output and outcome. After an error
//!   the decoder stays failed and returns that error again. [`ChunkedDecoder::finish`] is `Ok`
//!   only when the final chunk and the section after it were complete and valid, and no byte
//!   followed them.
//! - Lines (chunk headers, trailers) end with `\r\n`; a bare `\n` is accepted too. A chunk-size
//!   line is at most 4 KiB, and the trailer section at most 16 KiB (line contents plus one
//!   byte per line end).

use std::fmt;

use aws_lc_rs::digest;

use super::signing::{self, ChunkSigning};
use super::PayloadMode;
use crate::s3::error::S3ErrorCode;

const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILER_SECTION: usize = 16 * 1024;
const TRAILER_SIGNATURE: &str = "x-amz-trailer-signature";
const CHUNK_SIGNATURE: &str = "chunk-signature=";

/// Why an aws-chunked body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    #[error("x-amz-content-sha256 does not declare an aws-chunked payload")]
    NotStreaming,
    #[error("a signed aws-chunked payload needs the request's signing context")]
    MissingSigning,
    #[error("malformed aws-chunked chunk header: {0}")]
    MalformedChunk(&'static str),
    #[error("chunk of {size} bytes exceeds the limit of {max} bytes")]
    ChunkTooLarge { size: u64, max: usize },
    #[error("chunk data is not followed by CRLF")]
    MissingChunkEnd,
    #[error("the chunk signature we calculated does not match the signature you provided")]
    ChunkSignatureMismatch,
    #[error("malformed trailer: {0}")]
    MalformedTrailer(&'static str),
    #[error("the trailer signature we calculated does not match the signature you provided")]
    TrailerSignatureMismatch,
    #[error("the request body terminated unexpectedly")]
    Incomplete,
    #[error("data follows the end of the aws-chunked body")]
    TrailingData,
}

impl ChunkedError {
    /// The S3 error code (and so the HTTP status) for this error.
    pub fn s3_code(&self) -> S3ErrorCode {
        use S3ErrorCode as C;
        match self {
            Self::ChunkSignatureMismatch | Self::TrailerSignatureMismatch => {
                C::SignatureDoesNotMatch
            }
            Self::MalformedChunk(_) | Self::MissingChunkEnd | Self::Incomplete => C::IncompleteBody,
            Self::NotStreaming
            | Self::ChunkTooLarge { .. }
            | Self::MalformedTrailer(_)
            | Self::TrailingData => C::InvalidArgument,
            Self::MissingSigning => C::InternalError,
        }
    }
}

/// Which trailer section the body may end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trailer {
    None,
    Unsigned,
    Signed,
}

#[derive(Debug)]
enum State {
    /// Reading a chunk-size line into `line`.
    ChunkLine,
    /// Reading `remaining` bytes of chunk data.
    Data {
        remaining: u64,
        signature: Option<[u8; 32]>,
    },
    /// Expecting the CRLF after chunk data; `seen` bytes of it matched so far.
    DataEnd {
        seen: usize,
        signature: Option<[u8; 32]>,
    },
    /// After the final chunk: reading trailer lines (or just the empty line) into `line`.
    Trailers,
    Done,
    Failed(ChunkedError),
}

/// An incremental aws-chunked decoder: [`feed`](Self::feed) it the raw body in any split, then
/// [`finish`](Self::finish). Signed modes release a chunk only once it is complete and its
/// signature verified; the unsigned-trailer mode releases bytes as they arrive. Errors are
/// sticky. The caller still checks the decoded length, the trailer names and their checksums.
pub struct ChunkedDecoder {
    signing: Option<ChunkSigning>,
    trailer: Trailer,
    max_chunk: usize,
    state: State,
    line: Vec<u8>,
    /// Data of the current signed chunk, held back until its signature is verified.
    pending: Vec<u8>,
    hasher: Option<digest::Context>,
    previous: [u8; 32],
    trailers: Vec<(String, String)>,
    trailer_bytes: usize,
    trailer_signature: Option<[u8; 32]>,
    decoded: u64,
}

impl fmt::Debug for ChunkedDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkedDecoder")
            .field("trailer", &self.trailer)
            .field("signed", &self.signing.is_some())
            .field("max_chunk", &self.max_chunk)
            .field("state", &self.state)
            .field("decoded", &self.decoded)
            .finish_non_exhaustive()
    }
}

impl ChunkedDecoder {
    /// A decoder for a body declared with `mode`. The signed modes need `signing` (from
    /// [`super::Verified::chunk_signing`]); it is ignored in the unsigned-trailer mode.
    /// Chunks with more than `max_chunk` data bytes are refused.
    pub fn new(
        mode: &PayloadMode,
        signing: Option<&ChunkSigning>,
        max_chunk: usize,
    ) -> Result<Self, ChunkedError> {
        let (trailer, signed) = match mode {
            PayloadMode::StreamingSigned => (Trailer::None, true),
            PayloadMode::StreamingSignedTrailer => (Trailer::Signed, true),
            PayloadMode::StreamingUnsignedTrailer => (Trailer::Unsigned, false),
            PayloadMode::Unsigned | PayloadMode::Sha256(_) => {
                return Err(ChunkedError::NotStreaming)
            }
        };
        let signing = if signed {
            Some(signing.ok_or(ChunkedError::MissingSigning)?.clone())
        } else {
            None
        };
        let previous = signing
            .as_ref()
            .map(ChunkSigning::seed_signature)
            .unwrap_or_default();
        Ok(Self {
            signing,
            trailer,
            max_chunk,
            state: State::ChunkLine,
            line: Vec::new(),
            pending: Vec::new(),
            hasher: None,
            previous,
            trailers: Vec::new(),
            trailer_bytes: 0,
            trailer_signature: None,
            decoded: 0,
        })
    }

    /// Feeds raw body bytes; decoded payload bytes are appended to `out`. For signed modes,
    /// no byte of a chunk is emitted before that chunk's signature is verified.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), ChunkedError> {
        if let State::Failed(error) = &self.state {
            return Err(error.clone());
        }
        let mut input = input;
        while !input.is_empty() {
            match self.step(input, out) {
                Ok(used) => input = input.get(used..).unwrap_or_default(),
                Err(error) => {
                    self.state = State::Failed(error.clone());
                    self.pending = Vec::new();
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// The body ended: `Ok(trailers)` only if the final 0-size chunk (and, with trailers, the
    /// trailer section and, in the signed-trailer mode, its signature) were complete and valid.
    pub fn finish(self) -> Result<Vec<(String, String)>, ChunkedError> {
        match self.state {
            State::Done => Ok(self.trailers),
            State::Failed(error) => Err(error),
            _ => Err(ChunkedError::Incomplete),
        }
    }

    /// Payload bytes emitted so far.
    pub fn decoded_len(&self) -> u64 {
        self.decoded
    }

    /// Consumes a prefix of `input` (at least one byte) and returns its length.
    fn step(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ChunkedError> {
        match self.state {
            State::ChunkLine => {
                let (used, complete) = take_line(&mut self.line, input, MAX_CHUNK_LINE)
                    .ok_or(ChunkedError::MalformedChunk("chunk-size line too long"))?;
                if complete {
                    let line = std::mem::take(&mut self.line);
                    self.start_chunk(&line)?;
                }
                Ok(used)
            }
            State::Data {
                remaining,
                signature,
            } => {
                let take = usize::try_from(remaining).map_or(input.len(), |r| r.min(input.len()));
                let data = input.get(..take).unwrap_or_default();
                // A chunk with a signature is held back; only unsigned data flows straight out.
                if signature.is_some() {
                    if let Some(hasher) = &mut self.hasher {
                        hasher.update(data);
                    }
                    self.pending.extend_from_slice(data);
                } else {
                    out.extend_from_slice(data);
                    self.decoded += take as u64;
                }
                let remaining = remaining - take as u64;
                self.state = if remaining == 0 {
                    State::DataEnd { seen: 0, signature }
                } else {
                    State::Data {
                        remaining,
                        signature,
                    }
                };
                Ok(take)
            }
            State::DataEnd { seen, signature } => {
                if input.first() != b"\r\n".get(seen) {
                    return Err(ChunkedError::MissingChunkEnd);
                }
                if seen == 0 {
                    self.state = State::DataEnd { seen: 1, signature };
                } else {
                    self.end_chunk(signature, out)?;
                    self.state = State::ChunkLine;
                }
                Ok(1)
            }
            State::Trailers => {
                let room = MAX_TRAILER_SECTION.saturating_sub(self.trailer_bytes);
                let (used, complete) = take_line(&mut self.line, input, room)
                    .ok_or(ChunkedError::MalformedTrailer("trailer section too large"))?;
                if complete {
                    let line = std::mem::take(&mut self.line);
                    // Counted per complete line so that the limit does not depend on the split.
                    self.trailer_bytes += line.len() + 1;
                    self.trailer_line(&line)?;
                }
                Ok(used)
            }
            State::Done => Err(ChunkedError::TrailingData),
            State::Failed(ref error) => Err(error.clone()),
        }
    }

    /// Parses a chunk-size line and moves to its data (or, for size 0, to the end section).
    fn start_chunk(&mut self, line: &[u8]) -> Result<(), ChunkedError> {
        let line = std::str::from_utf8(line)
            .map_err(|_| ChunkedError::MalformedChunk("chunk-size line is not ASCII"))?;
        let (size, extension) = match line.split_once(';') {
            Some((size, extension)) => (size, Some(extension)),
            None => (line, None),
        };
        let size = parse_size(size)?;
        let signature = match (&self.signing, extension) {
            (Some(_), Some(extension)) => Some(
                extension
                    .strip_prefix(CHUNK_SIGNATURE)
                    .and_then(signing::parse_hex32)
                    .ok_or(ChunkedError::MalformedChunk(
                        "expected chunk-signature=<64 hex digits>",
                    ))?,
            ),
            (Some(_), None) => return Err(ChunkedError::MalformedChunk("missing chunk-signature")),
            (None, Some(_)) => {
                return Err(ChunkedError::MalformedChunk(
                    "chunk extension in an unsigned payload",
                ))
            }
            (None, None) => None,
        };
        if size > self.max_chunk as u64 {
            return Err(ChunkedError::ChunkTooLarge {
                size,
                max: self.max_chunk,
            });
        }
        if size == 0 {
            if let Some(signature) = signature {
                self.verify_chunk(&signing::sha256(b""), &signature)?;
            }
            self.state = State::Trailers;
        } else {
            self.hasher = signature.map(|_| digest::Context::new(&digest::SHA256));
            self.state = State::Data {
                remaining: size,
                signature,
            };
        }
        Ok(())
    }

    /// A chunk's data and CRLF are in: verify it (signed modes) and release its bytes.
    fn end_chunk(
        &mut self,
        signature: Option<[u8; 32]>,
        out: &mut Vec<u8>,
    ) -> Result<(), ChunkedError> {
        if let Some(signature) = signature {
            let hasher = self.hasher.take().ok_or(ChunkedError::MissingSigning)?;
            let mut hash = [0u8; 32];
            for (slot, b) in hash.iter_mut().zip(hasher.finish().as_ref()) {
                *slot = *b;
            }
            self.verify_chunk(&hash, &signature)?;
            out.extend_from_slice(&self.pending);
            self.decoded += self.pending.len() as u64;
            self.pending.clear();
        }
        Ok(())
    }

    fn verify_chunk(
        &mut self,
        data_sha256: &[u8; 32],
        signature: &[u8; 32],
    ) -> Result<(), ChunkedError> {
        let signing = self.signing.as_ref().ok_or(ChunkedError::MissingSigning)?;
        let expected = signing.chunk_signature(&self.previous, data_sha256);
        if !signing::same_signature(&expected, signature) {
            return Err(ChunkedError::ChunkSignatureMismatch);
        }
        self.previous = *signature;
        Ok(())
    }

    /// One line of the section after the final chunk.
    fn trailer_line(&mut self, line: &[u8]) -> Result<(), ChunkedError> {
        if line.is_empty() {
            return self.end_trailers();
        }
        if self.trailer == Trailer::None {
            return Err(ChunkedError::MalformedTrailer(
                "trailer in a payload that declared none",
            ));
        }
        if self.trailer_signature.is_some() {
            return Err(ChunkedError::MalformedTrailer(
                "trailer after x-amz-trailer-signature",
            ));
        }
        let line = std::str::from_utf8(line)
            .map_err(|_| ChunkedError::MalformedTrailer("trailer is not UTF-8"))?;
        let (name, value) = line
            .split_once(':')
            .ok_or(ChunkedError::MalformedTrailer("trailer without ':'"))?;
        let name = name.trim_matches([' ', '\t']).to_ascii_lowercase();
        let value = value.trim_matches([' ', '\t']);
        if name.is_empty() || http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(ChunkedError::MalformedTrailer("invalid trailer name"));
        }
        if name == TRAILER_SIGNATURE {
            if self.trailer != Trailer::Signed {
                return Err(ChunkedError::MalformedTrailer(
                    "trailer signature in an unsigned payload",
                ));
            }
            let signature = signing::parse_hex32(value).ok_or(ChunkedError::MalformedTrailer(
                "x-amz-trailer-signature must be 64 hex digits",
            ))?;
            self.trailer_signature = Some(signature);
        } else {
            self.trailers.push((name, value.to_owned()));
        }
        Ok(())
    }

    /// The empty line after the trailers: check the trailer signature, then done.
    fn end_trailers(&mut self) -> Result<(), ChunkedError> {
        if self.trailer == Trailer::Signed {
            match (self.trailer_signature, &self.signing) {
                (Some(signature), Some(signing)) => {
                    let mut sorted: Vec<&(String, String)> = self.trailers.iter().collect();
                    sorted.sort_by(|a, b| a.0.cmp(&b.0));
                    let mut canonical = String::new();
                    for (name, value) in sorted {
                        canonical.push_str(name);
                        canonical.push(':');
                        canonical.push_str(value);
                        canonical.push('\n');
                    }
                    let expected = signing
                        .trailer_signature(&self.previous, &signing::sha256(canonical.as_bytes()));
                    if !signing::same_signature(&expected, &signature) {
                        return Err(ChunkedError::TrailerSignatureMismatch);
                    }
                }
                (None, _) if !self.trailers.is_empty() => {
                    return Err(ChunkedError::MalformedTrailer(
                        "missing x-amz-trailer-signature",
                    ))
                }
                _ => {}
            }
        }
        self.state = State::Done;
        Ok(())
    }
}

/// Appends to `line` the bytes of `input` up to the next `\n` (consumed, not stored) and
/// drops a `\r` right before it. Returns (bytes used, whether the line is complete), or `None`
/// once the line would exceed `max` bytes.
fn take_line(line: &mut Vec<u8>, input: &[u8], max: usize) -> Option<(usize, bool)> {
    let (used, complete) = match input.iter().position(|b| *b == b'\n') {
        Some(end) => (end + 1, true),
        None => (input.len(), false),
    };
    let content = input
        .get(..used - usize::from(complete))
        .unwrap_or_default();
    if line.len() + content.len() > max {
        return None;
    }
    line.extend_from_slice(content);
    if complete && line.last() == Some(&b'\r') {
        line.pop();
    }
    Some((used, complete))
}

/// A chunk size: 1 to 16 hex digits.
fn parse_size(text: &str) -> Result<u64, ChunkedError> {
    if text.is_empty() || text.len() > 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ChunkedError::MalformedChunk(
            "chunk size must be 1 to 16 hex digits",
        ));
    }
    u64::from_str_radix(text, 16)
        .map_err(|_| ChunkedError::MalformedChunk("chunk size must be 1 to 16 hex digits"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
