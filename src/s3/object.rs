//! Object operations: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects.

use http::header::{self, HeaderMap, HeaderName};
use http::{HeaderValue, Response, StatusCode};
use hyper::body::Incoming;
use tokio::sync::mpsc;

use super::body::{pump_request_body, read_small_body, ResponseBody, MAX_PUT_SIZE};
use super::error::{S3Error, S3ErrorCode};
use super::xml::{self, DeleteError, DeletedObject};
use super::{empty_response, object_error, xml_response, Ctx, HttpResponse};
use crate::meta::ObjectRecord;
use crate::object::{ByteRange, ObjectError, PutObject};

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

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn check_key(key: &str) -> Result<(), S3Error> {
    if key.len() > MAX_KEY_LEN {
        return Err(S3Error::new(
            S3ErrorCode::KeyTooLongError,
            "Your key is too long",
        ));
    }
    Ok(())
}

pub(super) async fn put_object(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    body: Incoming,
) -> Result<HttpResponse, S3Error> {
    let h = &ctx.parts.headers;
    if h.contains_key("x-amz-copy-source") {
        return Err(S3Error::not_implemented(
            "CopyObject is not implemented yet",
        ));
    }
    check_key(key)?;
    let streaming = ctx.auth.payload.is_streaming();
    let declared = if streaming {
        header_str(h, "x-amz-decoded-content-length")
    } else {
        header_str(h, "content-length")
    };
    let expected_len = match declared {
        Some(v) => Some(v.trim().parse::<u64>().map_err(|_| {
            S3Error::invalid_argument("invalid content length", "Content-Length", v)
        })?),
        None if h.contains_key(header::TRANSFER_ENCODING) => None,
        None => {
            return Err(S3Error::new(
                S3ErrorCode::MissingContentLength,
                "You must provide the Content-Length HTTP header.",
            ));
        }
    };
    if expected_len.is_some_and(|n| n > MAX_PUT_SIZE) {
        return Err(S3Error::new(
            S3ErrorCode::EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed object size (5 GiB).",
        ));
    }
    let expected_md5 = match header_str(h, "content-md5") {
        None => None,
        Some(v) => Some(
            decode_base64(v.trim())
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .ok_or_else(|| {
                    S3Error::new(
                        S3ErrorCode::InvalidDigest,
                        "The Content-MD5 you specified was invalid.",
                    )
                })?,
        ),
    };
    let req = PutObject {
        bucket: bucket.to_string(),
        key: key.to_string(),
        content_type: header_str(h, "content-type").map(str::to_string),
        system_meta: system_meta(h),
        user_meta: user_meta(h)?,
        expected_md5,
    };
    let (tx, rx) = mpsc::channel(2);
    let (pumped, put) = tokio::join!(
        pump_request_body(body, ctx.auth, expected_len, tx),
        ctx.layer.put_object(req, rx)
    );
    // A body failure explains a put failure, so it is reported first.
    pumped?;
    let out = put.map_err(|e| object_error(e, bucket, key))?;
    let mut resp = empty_response(StatusCode::OK);
    insert(
        resp.headers_mut(),
        header::ETAG,
        &format!("\"{}\"", out.etag),
    );
    Ok(resp)
}

fn system_meta(h: &HeaderMap) -> Vec<(String, String)> {
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

fn user_meta(h: &HeaderMap) -> Result<Vec<(String, String)>, S3Error> {
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

/// Parses `Range: bytes=...`. Forms we cannot serve (several ranges, other units) and
/// syntactically invalid values are ignored, as HTTP prescribes: the whole object is sent.
fn parse_range(v: &str) -> Option<ByteRange> {
    let spec = v.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    match (a.is_empty(), b.is_empty()) {
        (true, false) => Some(ByteRange::Suffix(b.parse().ok()?)),
        (false, true) => Some(ByteRange::From(a.parse().ok()?)),
        (false, false) => {
            let (a, b) = (a.parse().ok()?, b.parse().ok()?);
            (a <= b).then_some(ByteRange::FromTo(a, b))
        }
        (true, true) => None,
    }
}

fn insert(h: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

fn object_headers(h: &mut HeaderMap, rec: &ObjectRecord) {
    insert(h, header::ETAG, &format!("\"{}\"", rec.etag));
    insert(
        h,
        header::LAST_MODIFIED,
        &xml::time::format_http_date(rec.last_modified_ms.div_euclid(1000)),
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
}

pub(super) async fn get_object(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    head: bool,
) -> Result<HttpResponse, S3Error> {
    let range = header_str(&ctx.parts.headers, "range").and_then(parse_range);
    let range_text = header_str(&ctx.parts.headers, "range").unwrap_or("");
    let map_err = |e: ObjectError| match e {
        ObjectError::InvalidRange { size } => S3Error::invalid_range(range_text, size),
        e => object_error(e, bucket, key),
    };
    let (rec, served, body) = if head {
        let rec = ctx.layer.head_object(bucket, key).await.map_err(map_err)?;
        let served = match range {
            Some(r) => Some(r.resolve(rec.size).map_err(map_err)?),
            None => None,
        };
        (rec, served, ResponseBody::empty())
    } else {
        let out = ctx
            .layer
            .get_object(bucket, key, range)
            .await
            .map_err(map_err)?;
        (out.record, out.range, ResponseBody::Stream(out.body))
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    object_headers(h, &rec);
    match served {
        Some((start, end)) => {
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            let h = resp.headers_mut();
            insert(h, header::CONTENT_LENGTH, &(end - start).to_string());
            insert(
                h,
                header::CONTENT_RANGE,
                &format!("bytes {}-{}/{}", start, end - 1, rec.size),
            );
        }
        None => insert(h, header::CONTENT_LENGTH, &rec.size.to_string()),
    }
    Ok(resp)
}

pub(super) async fn delete_object(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: &str,
) -> Result<HttpResponse, S3Error> {
    check_key(key)?;
    ctx.layer
        .delete_object(bucket, key)
        .await
        .map_err(|e| object_error(e, bucket, key))?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

pub(super) async fn delete_objects(
    ctx: &Ctx<'_>,
    bucket: &str,
    body: Incoming,
) -> Result<HttpResponse, S3Error> {
    let raw = read_small_body(body, ctx.auth, xml::read::MAX_XML_BODY).await?;
    let req = xml::read::parse_delete(&raw)?;
    ctx.layer
        .bucket(bucket)
        .await
        .map_err(|e| object_error(e, bucket, ""))?;
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for obj in req.objects {
        let result = match obj.version_id.as_deref() {
            Some(v) if v != "null" => Err(S3Error::new(
                S3ErrorCode::NoSuchVersion,
                "The specified version does not exist.",
            )),
            _ => match check_key(&obj.key) {
                Err(e) => Err(e),
                Ok(()) => ctx
                    .layer
                    .delete_object(bucket, &obj.key)
                    .await
                    .map_err(|e| object_error(e, bucket, &obj.key)),
            },
        };
        match result {
            Ok(()) => deleted.push(DeletedObject {
                key: obj.key,
                version_id: obj.version_id,
                delete_marker: false,
                delete_marker_version_id: None,
            }),
            Err(e) => errors.push(DeleteError {
                key: obj.key,
                version_id: obj.version_id,
                code: e.code,
                message: e.message,
            }),
        }
    }
    Ok(xml_response(xml::delete_result(
        &deleted, &errors, req.quiet,
    )))
}

/// Standard base64 with padding (RFC 4648), as Content-MD5 uses.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let b = s.as_bytes();
    if b.is_empty() || !b.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    for (i, quad) in b.chunks_exact(4).enumerate() {
        let last = i + 1 == b.len() / 4;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9"), Some(ByteRange::FromTo(0, 9)));
        assert_eq!(parse_range("bytes=5-"), Some(ByteRange::From(5)));
        assert_eq!(parse_range("bytes=-3"), Some(ByteRange::Suffix(3)));
        assert_eq!(parse_range("bytes=9-0"), None);
        assert_eq!(parse_range("bytes=0-1,3-4"), None);
        assert_eq!(parse_range("items=0-1"), None);
        assert_eq!(parse_range("bytes=-"), None);
    }

    #[test]
    fn base64() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8h").unwrap(), b"hello!");
        assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
        assert_eq!(decode_base64("aA==").unwrap(), b"h");
        assert!(decode_base64("aGk").is_none());
        assert!(decode_base64("a=Gk").is_none());
        assert!(decode_base64("").is_none());
        // MD5 of the empty string.
        assert_eq!(decode_base64("1B2M2Y8AsgTpgAmY7PhCfg==").unwrap().len(), 16);
    }
}
