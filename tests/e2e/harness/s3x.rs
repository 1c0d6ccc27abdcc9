//! Helpers for the end-to-end tests of the S3 features of issue 3 (multipart, copy,
//! checksums, conditionals, tagging):
//! - digests and encodings computed independently of the gateway (MD5 via `md-5`, CRCs via
//!   `crc-fast`, SHAs via `aws-lc-rs`, base64 by hand), including the multipart ETag and the
//!   COMPOSITE checksum exactly as AWS defines them;
//! - assertions on the HTTP status and S3 error code of a failed SDK call;
//! - piece-file accounting on the node directories (which files appeared, and waiting until
//!   they are gone), so tests can tell whether data moved or was released;
//! - small raw-HTTP and XML conveniences.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime, DateTimeFormat};
use aws_sdk_s3::types::ChecksumAlgorithm;
use aws_sdk_s3::Client;

use super::{raw, wait, TestGateway};

pub const KIB: usize = 1 << 10;
pub const MIB: usize = 1 << 20;

/// The five algorithms S3 defines, in its documentation order.
pub const ALGORITHMS: [ChecksumAlgorithm; 5] = [
    ChecksumAlgorithm::Crc32,
    ChecksumAlgorithm::Crc32C,
    ChecksumAlgorithm::Crc64Nvme,
    ChecksumAlgorithm::Sha1,
    ChecksumAlgorithm::Sha256,
];

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn md5_of(b: &[u8]) -> [u8; 16] {
    use md5::{Digest, Md5};
    Md5::digest(b).into()
}

/// The ETag S3 gives a single PUT of `b`, with its quotes.
pub fn etag_of(b: &[u8]) -> String {
    format!("\"{}\"", hex(&md5_of(b)))
}

/// The ETag S3 gives a multipart object made of `parts`, with its quotes: the MD5 of the
/// concatenated binary part MD5s, then `-N`.
pub fn multipart_etag(parts: &[&[u8]]) -> String {
    let mut all = Vec::with_capacity(16 * parts.len());
    for p in parts {
        all.extend_from_slice(&md5_of(p));
    }
    format!("\"{}-{}\"", hex(&md5_of(&all)), parts.len())
}

/// Standard padded base64 (RFC 4648 §4).
pub fn base64(b: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The raw digest of `data` (CRCs as big-endian integers of their width).
pub fn digest(a: &ChecksumAlgorithm, data: &[u8]) -> Vec<u8> {
    use aws_lc_rs::digest::{digest as sha, SHA1_FOR_LEGACY_USE_ONLY, SHA256};
    use crc_fast::{checksum, CrcAlgorithm};
    match a {
        ChecksumAlgorithm::Crc32 => (checksum(CrcAlgorithm::Crc32IsoHdlc, data) as u32)
            .to_be_bytes()
            .to_vec(),
        ChecksumAlgorithm::Crc32C => (checksum(CrcAlgorithm::Crc32Iscsi, data) as u32)
            .to_be_bytes()
            .to_vec(),
        ChecksumAlgorithm::Crc64Nvme => checksum(CrcAlgorithm::Crc64Nvme, data)
            .to_be_bytes()
            .to_vec(),
        ChecksumAlgorithm::Sha1 => sha(&SHA1_FOR_LEGACY_USE_ONLY, data).as_ref().to_vec(),
        ChecksumAlgorithm::Sha256 => sha(&SHA256, data).as_ref().to_vec(),
        other => panic!("no digest for {other:?}"),
    }
}

/// The checksum of `data` as S3 writes it in `x-amz-checksum-*`.
pub fn checksum_b64(a: &ChecksumAlgorithm, data: &[u8]) -> String {
    base64(&digest(a, data))
}

/// S3's COMPOSITE multipart checksum: the algorithm over the concatenated raw part digests,
/// base64, then `-N`.
pub fn composite_b64(a: &ChecksumAlgorithm, parts: &[&[u8]]) -> String {
    let mut all = Vec::new();
    for p in parts {
        all.extend_from_slice(&digest(a, p));
    }
    format!("{}-{}", base64(&digest(a, &all)), parts.len())
}

/// The `x-amz-checksum-*` header of an algorithm.
pub fn checksum_header(a: &ChecksumAlgorithm) -> String {
    format!("x-amz-checksum-{}", a.as_str().to_ascii_lowercase())
}

/// The value of algorithm `$a` among the checksum getters of an SDK output.
macro_rules! checksum_value {
    ($out:expr, $a:expr) => {{
        let out = &$out;
        match $a {
            aws_sdk_s3::types::ChecksumAlgorithm::Crc32 => out.checksum_crc32(),
            aws_sdk_s3::types::ChecksumAlgorithm::Crc32C => out.checksum_crc32_c(),
            aws_sdk_s3::types::ChecksumAlgorithm::Crc64Nvme => out.checksum_crc64_nvme(),
            aws_sdk_s3::types::ChecksumAlgorithm::Sha1 => out.checksum_sha1(),
            aws_sdk_s3::types::ChecksumAlgorithm::Sha256 => out.checksum_sha256(),
            other => panic!("unexpected algorithm {other:?}"),
        }
    }};
}
pub(crate) use checksum_value;

/// Every checksum value an SDK output carries, as (getter name, value).
macro_rules! checksum_values {
    ($out:expr) => {{
        let out = &$out;
        [
            ("crc32", out.checksum_crc32()),
            ("crc32c", out.checksum_crc32_c()),
            ("crc64nvme", out.checksum_crc64_nvme()),
            ("sha1", out.checksum_sha1()),
            ("sha256", out.checksum_sha256()),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v.to_string())))
        .collect::<Vec<(&str, String)>>()
    }};
}
pub(crate) use checksum_values;

/// HTTP status and S3 error code of a failed SDK call.
pub fn status_code<E: ProvideErrorMetadata>(e: &SdkError<E>) -> (Option<u16>, Option<String>) {
    (
        e.raw_response().map(|r| r.status().as_u16()),
        e.code().map(str::to_string),
    )
}

/// Asserts that `r` failed with HTTP `status` and S3 error `code`.
#[track_caller]
pub fn expect_err<T: Debug, E: ProvideErrorMetadata + Debug>(
    r: Result<T, SdkError<E>>,
    status: u16,
    code: &str,
) {
    let e = r.expect_err(&format!("expected {status} {code}"));
    let (s, c) = status_code(&e);
    assert_eq!(
        (s, c.as_deref()),
        (Some(status), Some(code)),
        "expected {status} {code}, got {e:?}"
    );
}

/// Asserts that `r` failed with HTTP `status` (a HEAD error has no body, so no code).
#[track_caller]
pub fn expect_status<T: Debug, E: ProvideErrorMetadata + Debug>(
    r: Result<T, SdkError<E>>,
    status: u16,
) {
    let e = r.expect_err(&format!("expected {status}"));
    assert_eq!(status_code(&e).0, Some(status), "{e:?}");
}

pub async fn put(c: &Client, bucket: &str, key: &str, body: &[u8]) -> String {
    let out = c
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {bucket}/{key}: {e:?}"));
    out.e_tag().expect("etag").to_string()
}

pub async fn get(c: &Client, bucket: &str, key: &str) -> Vec<u8> {
    get_range(c, bucket, key, None).await
}

/// GET of `range` (a `Range` header value such as `bytes=0-99`) or of the whole object.
pub async fn get_range(c: &Client, bucket: &str, key: &str, range: Option<&str>) -> Vec<u8> {
    c.get_object()
        .bucket(bucket)
        .key(key)
        .set_range(range.map(str::to_string))
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {bucket}/{key} {range:?}: {e:?}"))
        .body
        .collect()
        .await
        .unwrap_or_else(|e| panic!("body of {bucket}/{key} {range:?}: {e:?}"))
        .into_bytes()
        .to_vec()
}

/// Asserts that two byte strings are equal without printing megabytes on failure.
#[track_caller]
pub fn assert_bytes(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: first difference at byte {i}");
    }
}

/// Data piece files on every node (metadata blobs left out).
pub fn pieces(gw: &TestGateway) -> BTreeSet<PathBuf> {
    super::storage::piece_paths(&gw.nodes_dir())
        .into_iter()
        .collect()
}

/// Piece files present now that were not in `before`.
pub fn new_pieces(gw: &TestGateway, before: &BTreeSet<PathBuf>) -> BTreeSet<PathBuf> {
    pieces(gw).difference(before).cloned().collect()
}

/// Waits (at most `limit`) until none of `paths` exists; panics naming how many are left.
pub async fn wait_gone(paths: &BTreeSet<PathBuf>, limit: Duration, what: &str) {
    let left = || paths.iter().filter(|p| p.exists()).count();
    if !wait::eventually(limit, || left() == 0).await {
        panic!(
            "{what}: {} of {} piece files still exist after {limit:?}",
            left(),
            paths.len()
        );
    }
}

/// A SigV4-signed raw request; panics on I/O errors.
pub async fn signed(
    gw: &TestGateway,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> raw::RawResponse {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    raw::signed(gw.addr(), method, target, &headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"))
}

/// The text of every `<tag>…</tag>` element of `xml`, in document order.
pub fn xml_all(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else {
            break;
        };
        out.push(after[..j].to_string());
        rest = &after[j + close.len()..];
    }
    out
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) for epoch seconds.
pub fn http_date(secs: i64) -> String {
    DateTime::from_secs(secs)
        .fmt(DateTimeFormat::HttpDate)
        .expect("http date")
}

/// Sleeps until the wall clock enters a new second, plus a margin, so that a following write
/// has a strictly later Last-Modified (S3 dates have one-second resolution).
pub async fn next_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let to_next = Duration::from_secs(1) - Duration::from_nanos(u64::from(now.subsec_nanos()));
    tokio::time::sleep(to_next + Duration::from_millis(50)).await;
}

/// SigV4 headers for a request whose body is `aws-chunked` with trailers and unsigned chunks
/// (`x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER`), for the test credentials.
pub fn sign_unsigned_trailer(url: &str, headers: &[(String, String)]) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{
        sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
        SigningSettings, UriPathNormalizationMode,
    };
    use aws_sigv4::sign::v4;
    let identity = aws_sdk_s3::config::Credentials::new(
        super::ACCESS_KEY,
        super::SECRET_KEY,
        None,
        None,
        "s3x",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(std::time::SystemTime::now())
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let req = SignableRequest::new(
        "PUT",
        url,
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::StreamingUnsignedPayloadTrailer,
    )
    .expect("signable request");
    let (instructions, _) = sign(req, &params).expect("sign").into_parts();
    instructions
        .headers()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// PUTs `body` to `target` as `aws-chunked` (STREAMING-UNSIGNED-PAYLOAD-TRAILER) in chunks of
/// `chunk` bytes, announcing `announced` in `x-amz-trailer` and sending `trailers` after the
/// last chunk, exactly as given.
pub async fn put_with_trailer(
    gw: &TestGateway,
    target: &str,
    body: &[u8],
    chunk: usize,
    announced: Option<&str>,
    trailers: &[(&str, &str)],
) -> raw::RawResponse {
    let mut encoded = Vec::new();
    for c in body.chunks(chunk) {
        encoded.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        encoded.extend_from_slice(c);
        encoded.extend_from_slice(b"\r\n");
    }
    encoded.extend_from_slice(b"0\r\n");
    for (n, v) in trailers {
        encoded.extend_from_slice(format!("{n}:{v}\r\n").as_bytes());
    }
    encoded.extend_from_slice(b"\r\n");
    let addr = gw.addr();
    let mut headers = vec![
        ("host".to_string(), addr.to_string()),
        ("connection".to_string(), "close".to_string()),
        ("content-encoding".to_string(), "aws-chunked".to_string()),
        (
            "x-amz-decoded-content-length".to_string(),
            body.len().to_string(),
        ),
        ("content-length".to_string(), encoded.len().to_string()),
    ];
    if let Some(a) = announced {
        headers.push(("x-amz-trailer".to_string(), a.to_string()));
    }
    let auth = sign_unsigned_trailer(&format!("http://{addr}{target}"), &headers);
    headers.extend(auth);
    let mut req = raw::head("PUT", target, &headers);
    req.extend_from_slice(&encoded);
    raw::send(addr, &req, false)
        .await
        .unwrap_or_else(|e| panic!("PUT {target}: {e}"))
}

/// Waits (at most `limit`) until the set of piece files equals `want` (a failed upload's
/// pieces are deleted in the background).
pub async fn wait_pieces(gw: &TestGateway, want: &BTreeSet<PathBuf>, limit: Duration) {
    if !wait::eventually(limit, || &pieces(gw) == want).await {
        panic!(
            "piece files: {} now, {} expected",
            pieces(gw).len(),
            want.len()
        );
    }
}
