//! S3 request authentication: AWS Signature Version 4 in the `Authorization` header or in the
//! query string (presigned URLs), the `aws-chunked` body encodings SigV4 streaming uses, and
//! the legacy Signature Version 2 (header and presigned URLs) that boto3 still presigns with.
//!
//! Contract of [`verify_request`]:
//! - It sees only the request head. The mechanism is SigV2 when the `Authorization` scheme is
//!   `AWS`, or without that header when the query has `AWSAccessKeyId` (and no
//!   `X-Amz-Algorithm`); SigV4 otherwise. SigV4a and other schemes are refused as unsupported.
//! - SigV4: `Ok(Verified)` means the signature over the method, the raw path, the query, the
//!   signed headers and the declared payload hash is valid for `creds`, the timestamp is
//!   acceptable, `host` and every `x-amz-*` header present (except `x-amz-content-sha256`,
//!   which the canonical request covers anyway) are signed.
//! - SigV2 (contract in `sigv2.rs`): `Ok(Verified)` means the HMAC-SHA1 over the method,
//!   Content-MD5, Content-Type, the date or `Expires`, every `x-amz-*` header and the resource
//!   (`/<vhost_bucket>` + raw path + sub-resources) is valid for `creds` and the time is
//!   acceptable; the payload is always [`PayloadMode::Unsigned`] and the region `us-east-1`.
//!   `vhost_bucket` is the bucket the Host header named (virtual-host style), else `None`.
//! - It does not read the body. [`Verified::payload`] says what the caller still owes:
//!   [`PayloadMode::Sha256`] bodies must be hashed and compared before anything is committed;
//!   the streaming modes must be decoded through [`ChunkedDecoder`]; `Unsigned` bodies carry no
//!   integrity guarantee from the signature.
//! - SigV4 header auth: `x-amz-content-sha256` is required; the time is `x-amz-date` or else
//!   `Date` (ISO 8601 basic or IMF-fixdate) and must be within 15 minutes of `now`.
//! - SigV4 query auth: `X-Amz-Expires` is 1..=604800; the request is valid from `X-Amz-Date`
//!   minus 15 minutes (clock skew) until `X-Amz-Date + X-Amz-Expires`; the payload is
//!   `UNSIGNED-PAYLOAD` unless an `X-Amz-Content-Sha256` parameter says otherwise.
//! - The SigV4 credential scope must be `<X-Amz-Date's date>/<any region>/s3/aws4_request`;
//!   the region is returned, not checked.
//! - Signatures are compared in constant time. No error or `Debug` output contains the secret
//!   key, the signing key or the expected signature.
//!
//! Contract of [`ChunkedDecoder`] (details on the type):
//! - Signed streaming modes: a chunk's bytes are released only after the whole chunk and its
//!   signature, chained from the seed signature of [`Verified::chunk_signing`], are verified,
//!   so a decoder buffers up to `max_chunk` bytes. Trailers, when present in the signed-trailer
//!   mode, must carry a valid `x-amz-trailer-signature`.
//! - `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: nothing authenticates the bytes, which are released
//!   as they arrive; the caller must verify the trailer checksum before committing anything.
//! - Left to the caller: `x-amz-decoded-content-length` against
//!   [`ChunkedDecoder::decoded_len`], the trailer names against `x-amz-trailer`, and the
//!   checksum values. `finish` is `Ok` only for a complete body with nothing after its end.

mod canonical;
mod chunked;
mod signing;
mod sigv2;
mod sigv4;
mod time;

use std::fmt;
use std::time::SystemTime;

use http::request::Parts;

use super::error::S3ErrorCode;

pub use chunked::{ChunkedDecoder, ChunkedError};
pub use signing::ChunkSigning;

/// A chunk-signing context with a fixed key, date and seed, for fuzzing the aws-chunked
/// decoder's signed forms.
#[doc(hidden)]
pub fn fuzz_chunk_signing() -> ChunkSigning {
    ChunkSigning::new(
        signing::signing_key("fuzz-secret", "20130524", "us-east-1"),
        "20130524T000000Z".to_owned(),
        signing::scope("20130524", "us-east-1"),
        [7; 32],
    )
}

/// Verifies the signature of a request head (SigV2 or SigV4) against the single tenant's
/// credentials. `vhost_bucket` is the bucket named by the Host header of a virtual-host-style
/// request (SigV2 signs it as part of the resource), `None` for path style.
///
/// See the [module contract](self) for exactly what `Ok` guarantees and what the caller
/// still has to check on the body.
pub fn verify_request(
    parts: &Parts,
    creds: &Credentials,
    now: SystemTime,
    vhost_bucket: Option<&str>,
) -> Result<Verified, AuthError> {
    if sigv2::applies(parts) {
        sigv2::verify(parts, creds, now, vhost_bucket)
    } else {
        sigv4::verify_request(parts, creds, now)
    }
}

/// The single tenant's S3 credentials.
#[derive(Clone)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// What the client declared about the body (`x-amz-content-sha256`, or the presigned default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadMode {
    /// `UNSIGNED-PAYLOAD` (header, or the presigned-URL default).
    Unsigned,
    /// A SHA-256 the caller must check against the body.
    Sha256([u8; 32]),
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: aws-chunked with chunk signatures.
    StreamingSigned,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`: signed chunks plus a signed trailer.
    StreamingSignedTrailer,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: unsigned chunks plus an unsigned trailer.
    StreamingUnsignedTrailer,
}

impl PayloadMode {
    /// Whether the body is aws-chunked and must go through [`ChunkedDecoder`].
    pub fn is_streaming(&self) -> bool {
        matches!(
            self,
            Self::StreamingSigned | Self::StreamingSignedTrailer | Self::StreamingUnsignedTrailer
        )
    }

    /// Whether the body ends with a trailer section (checksums the caller verifies).
    pub fn has_trailer(&self) -> bool {
        matches!(
            self,
            Self::StreamingSignedTrailer | Self::StreamingUnsignedTrailer
        )
    }
}

/// A request whose signature checked out.
#[derive(Debug, Clone)]
pub struct Verified {
    pub access_key: String,
    /// The region the client signed with (any region is accepted).
    pub region: String,
    pub payload: PayloadMode,
    /// Everything needed to verify aws-chunked chunk signatures (signing key, scope, amz date,
    /// seed signature). Present for the two signed streaming modes, `None` otherwise
    /// (`STREAMING-UNSIGNED-PAYLOAD-TRAILER` has no chunk signatures).
    pub chunk_signing: Option<ChunkSigning>,
}

/// Why a request failed authentication. `Display` is the client-visible message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Access Denied: the request carries no authentication")]
    MissingAuthentication,
    #[error("The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.")]
    UnsupportedMechanism,
    #[error("Unsupported Authorization Type")]
    UnsupportedAuthorizationType,
    #[error(
        "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the \
         Authorization header should be specified"
    )]
    ConflictingMechanisms,
    #[error("The authorization header is malformed; {0}")]
    MalformedHeader(String),
    #[error("Query-string authentication is malformed; {0}")]
    MalformedQuery(String),
    #[error("The AWS Access Key Id you provided does not exist in our records: {0}")]
    InvalidAccessKeyId(String),
    #[error(
        "The request signature we calculated does not match the signature you provided. \
         Check your key and signing method."
    )]
    SignatureDoesNotMatch,
    #[error("Missing required header for this request: x-amz-content-sha256")]
    MissingContentSha256,
    #[error(
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, \
         STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, STREAMING-UNSIGNED-PAYLOAD-TRAILER or a \
         valid sha256 value"
    )]
    InvalidContentSha256,
    #[error("AWS authentication requires a valid Date or x-amz-date header")]
    InvalidDate,
    #[error("The difference between the request time and the current time is too large.")]
    RequestTimeTooSkewed,
    #[error("Request has expired")]
    Expired,
    #[error("Request is not yet valid")]
    NotYetValid,
    #[error("There were headers present in the request which were not signed: {}", .0.join(", "))]
    HeadersNotSigned(Vec<String>),
}

impl AuthError {
    /// The S3 error code (and so the HTTP status) AWS answers this error with.
    pub fn s3_code(&self) -> S3ErrorCode {
        use S3ErrorCode as C;
        match self {
            Self::MissingAuthentication
            | Self::InvalidDate
            | Self::Expired
            | Self::NotYetValid
            | Self::HeadersNotSigned(_) => C::AccessDenied,
            Self::UnsupportedMechanism | Self::MissingContentSha256 => C::InvalidRequest,
            Self::UnsupportedAuthorizationType
            | Self::ConflictingMechanisms
            | Self::InvalidContentSha256 => C::InvalidArgument,
            Self::MalformedHeader(_) => C::AuthorizationHeaderMalformed,
            Self::MalformedQuery(_) => C::AuthorizationQueryParametersError,
            Self::InvalidAccessKeyId(_) => C::InvalidAccessKeyId,
            Self::SignatureDoesNotMatch => C::SignatureDoesNotMatch,
            Self::RequestTimeTooSkewed => C::RequestTimeTooSkewed,
        }
    }
}
