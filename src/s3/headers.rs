//! Request headers shared by several operations (metadata, conditions, tagging, copy
//! sources) and the object headers of GET/HEAD responses.

use http::header::{self, HeaderMap, HeaderName};
use http::HeaderValue;

use super::error::{S3Error, S3ErrorCode};
use super::router::decode_path;
use crate::checksum::ChecksumAlgorithm;
use crate::meta::{DeleteCondition, ObjectRecord, Precondition, MAX_PART_NUMBER};
use crate::object::Conditions;

/// The `partNumber` query parameter (GetObject, HeadObject, UploadPart, UploadPartCopy):
/// `1..=MAX_PART_NUMBER`, else InvalidArgument.
pub fn part_number(raw: Option<&str>) -> Result<u32, S3Error> {
    let raw = raw.unwrap_or("");
    raw.parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| {
            S3Error::invalid_argument(
                "Part number must be an integer between 1 and 10000, inclusive",
                "partNumber",
                raw,
            )
        })
}

/// Keys are at most 1024 bytes of UTF-8, as on AWS.
const MAX_KEY_LEN: usize = 1024;
/// User-defined metadata (names and values of x-amz-meta-*) is at most 2 KiB.
const MAX_USER_META: usize = 2048;
/// Stored and returned as given.
const SYSTEM_HEADERS: &[&str] = &[
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
];
/// AWS limits on object tags.
const MAX_OBJECT_TAGS: usize = 10;
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;

pub fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// A header that changes what an operation does: `None` when absent; a value that is not
/// visible ASCII, or the header repeated, is 400 InvalidArgument, never read as absent (which
/// would drop the condition or the refusal the header asks for).
fn semantic_header<'a>(h: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, S3Error> {
    let mut values = h.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    let bad = |why: &str| {
        S3Error::invalid_argument(
            format!("{name} {why}"),
            name,
            &String::from_utf8_lossy(first.as_bytes()),
        )
    };
    if values.next().is_some() {
        return Err(bad("is given more than once"));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| bad("must be visible ASCII"))
}

pub fn check_key(key: &str) -> Result<(), S3Error> {
    if key.len() > MAX_KEY_LEN {
        return Err(S3Error::new(
            S3ErrorCode::KeyTooLongError,
            "Your key is too long",
        ));
    }
    Ok(())
}

pub fn system_meta(h: &HeaderMap) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in SYSTEM_HEADERS {
        let Some(v) = header_str(h, name) else {
            continue;
        };
        let v = if *name == "content-encoding" {
            // aws-chunked is transport framing, not a property of the object.
            let rest: Vec<&str> = v
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked"))
                .collect();
            if rest.is_empty() {
                continue;
            }
            rest.join(", ")
        } else {
            v.to_string()
        };
        out.push((name.to_string(), v));
    }
    out
}

pub fn user_meta(h: &HeaderMap) -> Result<Vec<(String, String)>, S3Error> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut size = 0;
    for (name, value) in h {
        let Some(n) = name.as_str().strip_prefix("x-amz-meta-") else {
            continue;
        };
        let v = value.to_str().map_err(|_| {
            S3Error::invalid_argument("metadata values must be US-ASCII", name.as_str(), "")
        })?;
        size += n.len() + v.len();
        // Repeated headers are joined, as HTTP allows.
        match out.iter_mut().find(|(k, _)| k == n) {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(v);
            }
            None => out.push((n.to_string(), v.to_string())),
        }
    }
    if size > MAX_USER_META {
        return Err(S3Error::new(
            S3ErrorCode::MetadataTooLarge,
            "Your metadata headers exceed the maximum allowed metadata size.",
        ));
    }
    Ok(out)
}

/// Checks a tag set against AWS's limits (object tags: at most 10; bucket tags: 50).
pub fn check_tags(tags: &[(String, String)], max: usize) -> Result<(), S3Error> {
    let bad = |m: &str| S3Error::new(S3ErrorCode::InvalidTag, m.to_string());
    if tags.len() > max {
        return Err(bad("Object tags cannot be greater than 10"));
    }
    for (i, (k, v)) in tags.iter().enumerate() {
        if k.is_empty() || k.chars().count() > MAX_TAG_KEY {
            return Err(bad("The TagKey you have provided is invalid"));
        }
        if v.chars().count() > MAX_TAG_VALUE {
            return Err(bad("The TagValue you have provided is invalid"));
        }
        if tags[..i].iter().any(|(o, _)| o == k) {
            return Err(bad("Cannot provide multiple Tags with the same key"));
        }
        if k.starts_with("aws:") {
            return Err(bad("Your TagKey cannot be prefixed with aws:"));
        }
    }
    Ok(())
}

pub fn object_tag_limit() -> usize {
    MAX_OBJECT_TAGS
}

/// `x-amz-tagging: k1=v1&k2=v2` (URL-encoded, as a query string).
pub fn tagging_header(h: &HeaderMap) -> Result<Option<Vec<(String, String)>>, S3Error> {
    let Some(raw) = header_str(h, "x-amz-tagging") else {
        return Ok(None);
    };
    let q = super::router::Query::parse(Some(raw))?;
    let tags = q.0;
    check_tags(&tags, MAX_OBJECT_TAGS)?;
    Ok(Some(tags))
}

fn parse_etags(v: &str) -> Vec<String> {
    v.split(',')
        .map(|t| {
            t.trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .to_string()
        })
        .filter(|t| !t.is_empty())
        .collect()
}

fn parse_time(h: &HeaderMap, name: &str) -> Option<i64> {
    // An unparseable date is ignored, as HTTP prescribes.
    header_str(h, name).and_then(|v| crate::timestamp::parse_http_date(v.trim()).ok())
}

/// `If-*` headers (prefix "") or copy-source conditions (prefix "x-amz-copy-source-").
pub fn conditions(h: &HeaderMap, prefix: &str) -> Conditions {
    let name = |n: &str| format!("{prefix}{n}");
    Conditions {
        if_match: header_str(h, &name("if-match")).map(parse_etags),
        if_none_match: header_str(h, &name("if-none-match")).map(parse_etags),
        if_modified_since: parse_time(h, &name("if-modified-since")),
        if_unmodified_since: parse_time(h, &name("if-unmodified-since")),
    }
}

/// The `If-Match` of a write or a delete: `*`, or the value compared whole with the object's
/// ETag (one pair of quotes dropped). S3 does not apply HTTP's list semantics there: a list of
/// ETags is one string that matches no ETag, so it fails as a mismatch would.
fn if_match_value(v: &str) -> String {
    let v = v.trim();
    if v == "*" {
        return v.to_owned();
    }
    v.strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .unwrap_or(v)
        .to_owned()
}

/// Conditional deletes: `If-Match` (an ETag or `*`), `x-amz-if-match-last-modified-time` (an
/// HTTP date, or ISO 8601) and `x-amz-if-match-size`, all of which must hold. The conditions of
/// reads (`If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`) mean nothing S3 defines
/// on a delete: they are refused with 501 rather than ignored, so no client believes a delete
/// was guarded when it was not.
pub fn delete_condition(h: &HeaderMap) -> Result<DeleteCondition, S3Error> {
    for name in ["if-none-match", "if-modified-since", "if-unmodified-since"] {
        if h.contains_key(name) {
            return Err(S3Error::new(
                S3ErrorCode::NotImplemented,
                format!(
                    "{name} is not a condition of DeleteObject (If-Match, \
                     x-amz-if-match-last-modified-time and x-amz-if-match-size are)"
                ),
            ));
        }
    }
    let last_modified_secs = match semantic_header(h, "x-amz-if-match-last-modified-time")? {
        None => None,
        Some(v) => Some(
            crate::timestamp::parse_http_date(v.trim())
                .or_else(|_| crate::timestamp::parse_iso8601(v.trim()))
                .map_err(|_| {
                    S3Error::invalid_argument(
                        "x-amz-if-match-last-modified-time must be an HTTP date",
                        "x-amz-if-match-last-modified-time",
                        v,
                    )
                })?,
        ),
    };
    let size = match semantic_header(h, "x-amz-if-match-size")? {
        None => None,
        Some(v) => Some(v.trim().parse::<u64>().map_err(|_| {
            S3Error::invalid_argument(
                "x-amz-if-match-size must be a number of bytes",
                "x-amz-if-match-size",
                v,
            )
        })?),
    };
    Ok(DeleteCondition {
        if_match: semantic_header(h, "if-match")?.map(if_match_value),
        last_modified_secs,
        size,
    })
}

/// Refuses the headers of object writes (PutObject, CopyObject, CreateMultipartUpload,
/// UploadPart, UploadPartCopy) whose meaning the gateway does not provide, rather than store
/// the object without it:
/// - object lock (`x-amz-object-lock-*`): 400 InvalidRequest, AWS's answer for a bucket
///   without an object lock configuration (no bucket here has one): an object the client
///   believes locked must not be stored unlocked.
/// - SSE-C (`x-amz-server-side-encryption-customer-*`, also of a copy source) and SSE-KMS
///   (`x-amz-server-side-encryption: aws:kms...`, a KMS key id or context): 501. `AES256` is accepted: every object is
///   encrypted at rest, with the gateway's key.
/// - ACLs other than `private` / `bucket-owner-full-control` (the same thing for a single
///   owner) and `x-amz-grant-*`: 400 AccessControlListNotSupported, AWS's answer on a bucket
///   with ACLs disabled; objects are only ever readable by the owner.
/// - Any of these (and the conditions of deletes) repeated, or with a value that is not
///   visible ASCII: 400 InvalidArgument.
/// - storage classes other than `STANDARD`: 400 InvalidStorageClass; every object is stored
///   the one way, and listings say `STANDARD`.
/// - `x-amz-website-redirect-location`: 501 (no website hosting; it would not be kept).
pub fn refuse_unsupported_write_headers(h: &HeaderMap) -> Result<(), S3Error> {
    let not_implemented = |what: String| Err(S3Error::new(S3ErrorCode::NotImplemented, what));
    for (name, _) in h.iter() {
        let name = name.as_str();
        if name.starts_with("x-amz-object-lock-") {
            return Err(S3Error::invalid_request(
                "Bucket is missing Object Lock Configuration",
            ));
        }
        if name.starts_with("x-amz-server-side-encryption-customer-")
            || name.starts_with("x-amz-copy-source-server-side-encryption-customer-")
        {
            return not_implemented(format!(
                "{name}: customer-provided keys (SSE-C) are not supported; every object is \
                 encrypted with the gateway's own key"
            ));
        }
        if name.starts_with("x-amz-server-side-encryption-aws-kms-")
            || name == "x-amz-server-side-encryption-context"
        {
            return not_implemented(format!(
                "{name}: SSE-KMS is not supported; every object is encrypted with the \
                 gateway's own key"
            ));
        }
        if name == "x-amz-website-redirect-location" {
            return not_implemented(format!("{name}: website hosting is not supported"));
        }
    }
    if let Some(v) = semantic_header(h, "x-amz-server-side-encryption")? {
        match v.trim() {
            "AES256" => {}
            "aws:kms" | "aws:kms:dsse" => {
                return not_implemented(
                    "SSE-KMS is not supported; every object is encrypted with the gateway's own \
                     key (x-amz-server-side-encryption: AES256 is accepted)"
                        .into(),
                )
            }
            other => {
                return Err(S3Error::invalid_argument(
                    "The encryption method specified is not supported",
                    "x-amz-server-side-encryption",
                    other,
                ))
            }
        }
    }
    acl_headers(h)?;
    if let Some(v) = semantic_header(h, "x-amz-storage-class")? {
        if v.trim() != super::xml::STORAGE_CLASS {
            return Err(S3Error::new(
                S3ErrorCode::InvalidStorageClass,
                format!(
                    "The storage class you specified is not valid: every object is stored as {}",
                    super::xml::STORAGE_CLASS
                ),
            )
            .with_detail("StorageClassRequested", v));
        }
    }
    Ok(())
}

/// The ACL a request's headers ask for, which must be the owner-only one: `Ok(true)` for
/// `x-amz-acl: private` or `bucket-owner-full-control` (the same for a single owner),
/// `Ok(false)` when no ACL header is given; any other canned ACL or an `x-amz-grant-*` is
/// 400 AccessControlListNotSupported, an unknown canned ACL 400 InvalidArgument.
pub fn acl_headers(h: &HeaderMap) -> Result<bool, S3Error> {
    if let Some(name) = h.keys().find(|n| n.as_str().starts_with("x-amz-grant-")) {
        return Err(acl_not_supported(name.as_str()));
    }
    let Some(v) = semantic_header(h, "x-amz-acl")? else {
        return Ok(false);
    };
    match v.trim() {
        "private" | "bucket-owner-full-control" => Ok(true),
        "public-read" | "public-read-write" | "authenticated-read" | "aws-exec-read"
        | "bucket-owner-read" | "log-delivery-write" => {
            Err(acl_not_supported(&format!("x-amz-acl: {v}")))
        }
        other => Err(S3Error::invalid_argument(
            "The canned ACL specified is not valid",
            "x-amz-acl",
            other,
        )),
    }
}

/// `x-amz-expected-bucket-owner` of a request on a bucket (and, for a `copy`,
/// `x-amz-source-expected-bucket-owner`): when given, it must name the owner of every bucket
/// here (`owner_id`), else 403 AccessDenied, as AWS answers a request whose bucket belongs to
/// another account.
pub fn expected_owner(h: &HeaderMap, owner_id: &str, copy: bool) -> Result<(), S3Error> {
    let names: &[&str] = if copy {
        &[
            "x-amz-expected-bucket-owner",
            "x-amz-source-expected-bucket-owner",
        ]
    } else {
        &["x-amz-expected-bucket-owner"]
    };
    for &name in names {
        if let Some(v) = semantic_header(h, name)? {
            if v.trim() != owner_id {
                return Err(S3Error::new(
                    S3ErrorCode::AccessDenied,
                    format!("{name}: the bucket's owner is not {v:?}"),
                ));
            }
        }
    }
    Ok(())
}

/// AWS's answer to an ACL on a bucket whose ACLs are disabled (its default since 2023): here
/// every bucket is that, objects are readable by their owner alone.
fn acl_not_supported(what: &str) -> S3Error {
    S3Error::new(
        S3ErrorCode::AccessControlListNotSupported,
        format!(
            "The bucket does not allow ACLs ({what}): only the canned ACL private (or \
             bucket-owner-full-control) is accepted; objects are readable by their owner alone"
        ),
    )
}

/// Conditional writes: `If-None-Match: *` or `If-Match` (see [`if_match_value`]).
pub fn write_precondition(h: &HeaderMap) -> Result<Precondition, S3Error> {
    match (header_str(h, "if-none-match"), header_str(h, "if-match")) {
        (None, None) => Ok(Precondition::None),
        (Some(v), None) if v.trim() == "*" => Ok(Precondition::IfNoneMatchStar),
        (Some(_), None) => Err(S3Error::new(
            S3ErrorCode::NotImplemented,
            "If-None-Match on writes supports only '*'",
        )),
        (None, Some(v)) => Ok(Precondition::IfMatch(if_match_value(v))),
        (Some(_), Some(_)) => Err(S3Error::invalid_request(
            "If-Match and If-None-Match cannot both be given on a write",
        )),
    }
}

/// `Content-MD5`, base64 of 16 bytes.
pub fn content_md5(h: &HeaderMap) -> Result<Option<[u8; 16]>, S3Error> {
    let Some(v) = header_str(h, "content-md5") else {
        return Ok(None);
    };
    crate::checksum::base64_decode(v.trim())
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .map(Some)
        .ok_or_else(|| {
            S3Error::new(
                S3ErrorCode::InvalidDigest,
                "The Content-MD5 you specified was invalid.",
            )
        })
}

/// `x-amz-copy-source: /bucket/key` (or without the leading slash; URL-encoded; a
/// `?versionId=null` suffix is accepted).
pub fn copy_source(h: &HeaderMap) -> Result<(String, String), S3Error> {
    let raw = header_str(h, "x-amz-copy-source").unwrap_or("");
    let (path, query) = raw.split_once('?').unwrap_or((raw, ""));
    if let Some(v) = query.strip_prefix("versionId=") {
        if v != "null" {
            return Err(S3Error::invalid_argument(
                "Invalid version id specified",
                "x-amz-copy-source",
                raw,
            ));
        }
    }
    let decoded = decode_path(path)?;
    let trimmed = decoded.strip_prefix('/').unwrap_or(&decoded);
    match trimmed.split_once('/') {
        Some((b, k)) if !b.is_empty() && !k.is_empty() => {
            check_key(k)?;
            Ok((b.to_string(), k.to_string()))
        }
        _ => Err(S3Error::invalid_argument(
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            "x-amz-copy-source",
            raw,
        )),
    }
}

pub fn insert(h: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// ETag, Last-Modified, Content-Type, stored headers, user metadata, tag count; the
/// object's checksum when `checksum_mode` and `whole` (never for a ranged read).
pub fn object_headers(h: &mut HeaderMap, rec: &ObjectRecord, checksum_mode: bool, whole: bool) {
    insert(h, header::ETAG, &format!("\"{}\"", rec.etag));
    insert(
        h,
        header::LAST_MODIFIED,
        &crate::timestamp::format_http_date(rec.last_modified_ms.div_euclid(1000)),
    );
    insert(
        h,
        header::CONTENT_TYPE,
        rec.content_type.as_deref().unwrap_or("binary/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    for (name, value) in &rec.system_meta {
        if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
            insert(h, n, value);
        }
    }
    for (name, value) in &rec.user_meta {
        if let Ok(n) = HeaderName::from_bytes(format!("x-amz-meta-{name}").as_bytes()) {
            insert(h, n, value);
        }
    }
    if !rec.tags.is_empty() {
        insert(
            h,
            HeaderName::from_static("x-amz-tagging-count"),
            &rec.tags.len().to_string(),
        );
    }
    if rec.parts.len() > 1 || rec.parts.first().is_some_and(|p| p.number > 0) {
        insert(
            h,
            HeaderName::from_static("x-amz-mp-parts-count"),
            &rec.parts.len().to_string(),
        );
    }
    if let (true, true, Some(c)) = (checksum_mode, whole, &rec.checksum) {
        if let Some(a) = ChecksumAlgorithm::from_id(c.algorithm) {
            if let Ok(n) = HeaderName::from_bytes(a.header_name().as_bytes()) {
                insert(h, n, &c.value);
            }
            if let Some(kind) = crate::checksum::ChecksumType::from_id(c.kind) {
                insert(
                    h,
                    HeaderName::from_static("x-amz-checksum-type"),
                    kind.name(),
                );
            }
        }
    }
}

/// `response-content-type` and friends override the stored headers on GET.
pub fn apply_response_overrides(h: &mut HeaderMap, q: &super::router::Query) {
    for (param, name) in [
        ("response-content-type", header::CONTENT_TYPE),
        ("response-content-language", header::CONTENT_LANGUAGE),
        ("response-expires", header::EXPIRES),
        ("response-cache-control", header::CACHE_CONTROL),
        ("response-content-disposition", header::CONTENT_DISPOSITION),
        ("response-content-encoding", header::CONTENT_ENCODING),
    ] {
        if let Some(v) = q.get(param) {
            insert(h, name, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hm(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn copy_source_forms() {
        let ok = |v: &str| copy_source(&hm(&[("x-amz-copy-source", v)])).unwrap();
        assert_eq!(ok("/b/k"), ("b".into(), "k".into()));
        assert_eq!(ok("b/dir/a%20b"), ("b".into(), "dir/a b".into()));
        assert_eq!(ok("b/k?versionId=null"), ("b".into(), "k".into()));
        assert!(copy_source(&hm(&[("x-amz-copy-source", "b")])).is_err());
        assert!(copy_source(&hm(&[("x-amz-copy-source", "b/k?versionId=x")])).is_err());
    }

    #[test]
    fn unsupported_write_headers_are_refused() {
        use S3ErrorCode::*;
        let cases: &[(&str, &str, Option<S3ErrorCode>)] = &[
            ("x-amz-acl", "private", None),
            ("x-amz-acl", "bucket-owner-full-control", None),
            ("x-amz-server-side-encryption", "AES256", None),
            ("x-amz-storage-class", "STANDARD", None),
            ("x-amz-request-payer", "requester", None),
            ("x-amz-object-lock-mode", "COMPLIANCE", Some(InvalidRequest)),
            (
                "x-amz-object-lock-retain-until-date",
                "2030-01-01T00:00:00Z",
                Some(InvalidRequest),
            ),
            ("x-amz-object-lock-legal-hold", "ON", Some(InvalidRequest)),
            (
                "x-amz-server-side-encryption",
                "aws:kms",
                Some(NotImplemented),
            ),
            (
                "x-amz-server-side-encryption",
                "rot13",
                Some(InvalidArgument),
            ),
            (
                "x-amz-server-side-encryption-customer-algorithm",
                "AES256",
                Some(NotImplemented),
            ),
            (
                "x-amz-copy-source-server-side-encryption-customer-key",
                "k",
                Some(NotImplemented),
            ),
            (
                "x-amz-acl",
                "public-read",
                Some(AccessControlListNotSupported),
            ),
            ("x-amz-acl", "everyone", Some(InvalidArgument)),
            (
                "x-amz-grant-read",
                "id=1",
                Some(AccessControlListNotSupported),
            ),
            (
                "x-amz-server-side-encryption-aws-kms-key-id",
                "k",
                Some(NotImplemented),
            ),
            (
                "x-amz-server-side-encryption-context",
                "e30=",
                Some(NotImplemented),
            ),
            (
                "x-amz-server-side-encryption-bucket-key-enabled",
                "false",
                None,
            ),
            ("x-amz-storage-class", "GLACIER", Some(InvalidStorageClass)),
            (
                "x-amz-website-redirect-location",
                "/x",
                Some(NotImplemented),
            ),
        ];
        for (name, value, want) in cases {
            let got = refuse_unsupported_write_headers(&hm(&[(name, value)])).err();
            assert_eq!(got.map(|e| e.code), *want, "{name}: {value}");
        }
        // A value that cannot be read, or the header twice, is refused, never skipped.
        let mut h = HeaderMap::new();
        h.insert(
            "x-amz-storage-class",
            HeaderValue::from_bytes(b"GLACIER\xff").unwrap(),
        );
        assert_eq!(
            refuse_unsupported_write_headers(&h).unwrap_err().code,
            InvalidArgument
        );
        let mut h = HeaderMap::new();
        h.append("x-amz-acl", HeaderValue::from_static("private"));
        h.append("x-amz-acl", HeaderValue::from_static("public-read"));
        assert_eq!(
            refuse_unsupported_write_headers(&h).unwrap_err().code,
            InvalidArgument
        );
        let mut h = HeaderMap::new();
        h.insert("if-match", HeaderValue::from_bytes(b"\"\xe9\"").unwrap());
        assert_eq!(delete_condition(&h).unwrap_err().code, InvalidArgument);
    }

    #[test]
    fn delete_conditions() {
        assert!(delete_condition(&hm(&[])).unwrap().is_unconditional());
        assert_eq!(
            delete_condition(&hm(&[
                ("if-match", "\"abc\""),
                (
                    "x-amz-if-match-last-modified-time",
                    "Wed, 25 Nov 2026 17:13:11 GMT"
                ),
                ("x-amz-if-match-size", "42"),
            ]))
            .unwrap(),
            DeleteCondition {
                if_match: Some("abc".into()),
                last_modified_secs: Some(1_795_626_791),
                size: Some(42),
            }
        );
        assert_eq!(
            delete_condition(&hm(&[(
                "x-amz-if-match-last-modified-time",
                "2026-11-25T17:13:11.000Z"
            )]))
            .unwrap()
            .last_modified_secs,
            Some(1_795_626_791)
        );
        for (name, value, code) in [
            ("x-amz-if-match-size", "-1", S3ErrorCode::InvalidArgument),
            ("x-amz-if-match-size", "lots", S3ErrorCode::InvalidArgument),
            (
                "x-amz-if-match-last-modified-time",
                "soon",
                S3ErrorCode::InvalidArgument,
            ),
            ("if-none-match", "*", S3ErrorCode::NotImplemented),
            (
                "if-modified-since",
                "Wed, 25 Nov 2026 17:13:11 GMT",
                S3ErrorCode::NotImplemented,
            ),
            (
                "if-unmodified-since",
                "Wed, 25 Nov 2026 17:13:11 GMT",
                S3ErrorCode::NotImplemented,
            ),
        ] {
            let e = delete_condition(&hm(&[(name, value)])).unwrap_err();
            assert_eq!(e.code, code, "{name}: {value}");
        }
    }

    #[test]
    fn preconditions_and_tags() {
        assert_eq!(
            write_precondition(&hm(&[("if-none-match", "*")])).unwrap(),
            Precondition::IfNoneMatchStar
        );
        assert_eq!(
            write_precondition(&hm(&[("if-match", "\"abc\"")])).unwrap(),
            Precondition::IfMatch("abc".into())
        );
        assert!(write_precondition(&hm(&[("if-match", "a"), ("if-none-match", "*")])).is_err());
        // `*` is "exists"; a list is one string that matches no ETag (S3 compares it whole).
        assert_eq!(
            write_precondition(&hm(&[("if-match", " * ")])).unwrap(),
            Precondition::IfMatch("*".into())
        );
        assert_eq!(
            write_precondition(&hm(&[("if-match", "\"a\", \"b\"")])).unwrap(),
            Precondition::IfMatch("a\", \"b".into())
        );
        let tags = tagging_header(&hm(&[("x-amz-tagging", "a=1&b=two%20words")]))
            .unwrap()
            .unwrap();
        assert_eq!(
            tags,
            vec![("a".into(), "1".into()), ("b".into(), "two words".into())]
        );
        assert!(tagging_header(&hm(&[("x-amz-tagging", "a=1&a=2")])).is_err());
        let c = conditions(
            &hm(&[
                ("if-match", "\"x\", \"y\""),
                ("if-modified-since", "Wed, 25 Nov 2026 17:13:11 GMT"),
            ]),
            "",
        );
        assert_eq!(c.if_match, Some(vec!["x".to_string(), "y".to_string()]));
        assert!(c.if_modified_since.is_some());
    }
}
