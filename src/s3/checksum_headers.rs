//! What a request says about the integrity of its body: `Content-MD5`, one
//! `x-amz-checksum-<algorithm>` header or an `x-amz-trailer` announcing one in the aws-chunked
//! trailer, and `x-amz-sdk-checksum-algorithm`; and the check of those claims once the body
//! has been read.
//!
//! Contract of [`parse_request_checksums`] (errors as AWS answers them, first failure wins):
//! - `Content-MD5` must be the strict base64 of 16 bytes, else `InvalidDigest`.
//! - `x-amz-sdk-checksum-algorithm` must name a known algorithm (any case), else
//!   `InvalidRequest`.
//! - Every `x-amz-checksum-*` header other than `-type`, `-algorithm` and `-mode` must name a
//!   known algorithm, else `InvalidRequest`. More than one of them, or one of them together with
//!   `x-amz-trailer`, is `InvalidRequest` ("Expecting a single x-amz-checksum- header...").
//! - `x-amz-trailer` must name exactly one `x-amz-checksum-*` header, else `InvalidRequest`.
//! - `x-amz-sdk-checksum-algorithm` without a checksum header or trailer, or naming another
//!   algorithm than theirs, is `InvalidRequest`.
//! - A header value must be the strict base64 of the algorithm's digest length, else
//!   `InvalidRequest` ("Value for x-amz-checksum-crc32 header is invalid.").
//! - `Ok` means: at most one algorithm is in play ([`ChecksumExpectation::algorithm`]), with its
//!   value either already known (`header_value`) or owed by the trailer (`trailer`), never both.
//!
//! Contract of [`verify`], called after the whole body was decoded:
//! - Trailers (as returned by `ChunkedDecoder::finish`: names lowercase, signature removed)
//!   must be exactly the one announced by `x-amz-trailer`: a missing, repeated or unannounced
//!   trailer is `InvalidRequest` with AWS's MalformedTrailerError message (our error set has no
//!   `MalformedTrailerError`), a malformed trailer value `InvalidRequest`.
//! - The expected value (header or trailer) must equal `computed`, the caller's [`Hasher`] over
//!   the decoded body, else `BadDigest` ("The CRC32 you specified did not match the calculated
//!   checksum."). `computed` missing or of another algorithm is the caller's bug:
//!   `InternalError`.
//! - `Ok(Some(c))` is the checksum to record for the body: the verified one, or `computed`
//!   as is when the client claimed none (a server-chosen default). `Ok(None)`: nothing to record.
//! - `Content-MD5` is only parsed here; comparing it with the body's MD5 is the caller's job.
//!
//! [`Hasher`]: crate::checksum::Hasher

use http::HeaderMap;

use super::error::{S3Error, S3ErrorCode};
use crate::checksum::{base64_decode, Checksum, ChecksumAlgorithm, Hasher};

const CONTENT_MD5: &str = "content-md5";
const SDK_ALGORITHM: &str = "x-amz-sdk-checksum-algorithm";
const TRAILER: &str = "x-amz-trailer";
const CHECKSUM_PREFIX: &str = "x-amz-checksum-";
/// `x-amz-checksum-*` headers that carry no checksum value.
const NOT_VALUE_HEADERS: [&str; 3] = [
    "x-amz-checksum-type",
    "x-amz-checksum-algorithm",
    "x-amz-checksum-mode",
];
const MULTIPLE: &str =
    "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.";
const MALFORMED_TRAILER: &str = "The request contained trailing data that was not well-formed \
     or did not conform to our published schema.";

/// What the request head declared about body checksums.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChecksumExpectation {
    /// The algorithm to hash the body with: from an `x-amz-checksum-<a>` header,
    /// `x-amz-sdk-checksum-algorithm` or `x-amz-trailer`.
    pub algorithm: Option<ChecksumAlgorithm>,
    /// The value given in a header, to verify at the end of the body.
    pub header_value: Option<Checksum>,
    /// The value will arrive in the aws-chunked trailer (`x-amz-trailer: x-amz-checksum-crc32`).
    pub trailer: Option<ChecksumAlgorithm>,
    /// The decoded `Content-MD5`.
    pub content_md5: Option<[u8; 16]>,
}

impl ChecksumExpectation {
    /// A hasher for [`Self::algorithm`], if the body has to be checksummed.
    pub fn hasher(&self) -> Option<Hasher> {
        self.algorithm.map(Hasher::new)
    }
}

/// Parses the checksum headers of a request (see the module contract).
pub fn parse_request_checksums(headers: &HeaderMap) -> Result<ChecksumExpectation, S3Error> {
    let content_md5 = parse_content_md5(headers)?;
    let sdk_algorithm = parse_sdk_algorithm(headers)?;
    let header = checksum_header(headers)?;
    let trailer = parse_trailer(headers)?;
    if header.is_some() && trailer.is_some() {
        return Err(S3Error::invalid_request(MULTIPLE));
    }
    if let Some(sdk) = sdk_algorithm {
        let declared = header.as_ref().map(|(a, _)| *a).or(trailer);
        match declared {
            None => {
                return Err(S3Error::invalid_request(
                    "x-amz-sdk-checksum-algorithm specified, but no corresponding \
                     x-amz-checksum-* or x-amz-trailer headers were found.",
                ))
            }
            Some(a) if a != sdk => return Err(invalid_value(SDK_ALGORITHM)),
            Some(_) => {}
        }
    }
    let header_value = match header {
        None => None,
        Some((a, value)) => Some(
            value
                .and_then(|v| Checksum::from_base64(a, v).ok())
                .ok_or_else(|| invalid_value(a.header_name()))?,
        ),
    };
    let algorithm = header_value.as_ref().map(|c| c.algorithm).or(trailer);
    Ok(ChecksumExpectation {
        algorithm,
        header_value,
        trailer,
        content_md5,
    })
}

/// After the body: `computed` from a Hasher over the decoded body, `trailers` from
/// ChunkedDecoder::finish.
pub fn verify(
    exp: &ChecksumExpectation,
    computed: Option<&Checksum>,
    trailers: &[(String, String)],
) -> Result<Option<Checksum>, S3Error> {
    let from_trailer = trailer_value(exp.trailer, trailers)?;
    let Some(expected) = exp.header_value.as_ref().or(from_trailer.as_ref()) else {
        return Ok(computed.cloned());
    };
    let computed = computed
        .filter(|c| c.algorithm == expected.algorithm)
        .ok_or_else(|| {
            S3Error::internal(format!(
                "the body's {} checksum was not computed",
                expected.algorithm
            ))
        })?;
    if computed.bytes != expected.bytes {
        return Err(S3Error::new(
            S3ErrorCode::BadDigest,
            format!(
                "The {} you specified did not match the calculated checksum.",
                expected.algorithm
            ),
        ));
    }
    Ok(Some(expected.clone()))
}

/// The one trailer `declared` announced, decoded; any other trailer is malformed.
fn trailer_value(
    declared: Option<ChecksumAlgorithm>,
    trailers: &[(String, String)],
) -> Result<Option<Checksum>, S3Error> {
    let malformed = || S3Error::invalid_request(MALFORMED_TRAILER);
    let Some(a) = declared else {
        return if trailers.is_empty() {
            Ok(None)
        } else {
            Err(malformed())
        };
    };
    let [(name, value)] = trailers else {
        return Err(malformed());
    };
    if !name.eq_ignore_ascii_case(a.header_name()) {
        return Err(malformed());
    }
    Checksum::from_base64(a, value).map(Some).map_err(|_| {
        S3Error::invalid_request(format!(
            "Value for {} trailing header is invalid.",
            a.header_name()
        ))
    })
}

fn parse_content_md5(headers: &HeaderMap) -> Result<Option<[u8; 16]>, S3Error> {
    let Some(value) = single(headers, CONTENT_MD5) else {
        return Ok(None);
    };
    value
        .and_then(|v| base64_decode(v.trim()))
        .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
        .map(Some)
        .ok_or_else(|| S3ErrorCode::InvalidDigest.into())
}

fn parse_sdk_algorithm(headers: &HeaderMap) -> Result<Option<ChecksumAlgorithm>, S3Error> {
    let Some(value) = single(headers, SDK_ALGORITHM) else {
        return Ok(None);
    };
    value
        .and_then(|v| ChecksumAlgorithm::from_name(v.trim()))
        .map(Some)
        .ok_or_else(|| {
            S3Error::invalid_request(
                "Checksum algorithm provided is unsupported. Please try again with any of the \
                 valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]",
            )
        })
}

/// The single `x-amz-checksum-<a>` header, with its value (`None` if not UTF-8).
fn checksum_header(
    headers: &HeaderMap,
) -> Result<Option<(ChecksumAlgorithm, Option<&str>)>, S3Error> {
    let mut found = None;
    for name in headers.keys().map(|n| n.as_str()) {
        if !name.starts_with(CHECKSUM_PREFIX) || NOT_VALUE_HEADERS.contains(&name) {
            continue;
        }
        let algorithm = ChecksumAlgorithm::from_header_name(name).ok_or_else(|| {
            S3Error::invalid_request(
                "The algorithm type you specified in x-amz-checksum- header is invalid.",
            )
        })?;
        if found.is_some() {
            return Err(S3Error::invalid_request(MULTIPLE));
        }
        found = Some((algorithm, single(headers, name).flatten()));
    }
    Ok(found)
}

fn parse_trailer(headers: &HeaderMap) -> Result<Option<ChecksumAlgorithm>, S3Error> {
    let Some(value) = single(headers, TRAILER) else {
        return Ok(None);
    };
    value
        .and_then(|v| ChecksumAlgorithm::from_header_name(v.trim()))
        .map(Some)
        .ok_or_else(|| {
            S3Error::invalid_request(
                "The value specified in the x-amz-trailer header is not supported",
            )
        })
}

/// The value of header `name` if it occurs; `Some(None)` when it is unusable: not UTF-8, or
/// the header is repeated (each caller reports that as its own invalid value).
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Option<Option<&'a str>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return Some(None);
    }
    Some(first.to_str().ok())
}

fn invalid_value(header: &str) -> S3Error {
    S3Error::invalid_request(format!("Value for {header} header is invalid."))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
