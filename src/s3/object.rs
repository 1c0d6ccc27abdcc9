//! Object operations: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects.

use http::header::{self, HeaderName};
use http::{Response, StatusCode};
use hyper::body::Incoming;
use tokio::sync::mpsc;

use super::body::{pump_request_body, RequestBody, ResponseBody, MAX_PUT_SIZE};
use super::error::{S3Error, S3ErrorCode};
use super::headers::{
    apply_response_overrides, check_key, conditions, content_md5, delete_condition, header_str,
    insert, object_headers, part_number, refuse_unsupported_write_headers, system_meta,
    tagging_header, user_meta, write_precondition,
};
use super::xml::{self, DeleteError, DeletedObject};
use super::{empty_response, object_error, xml_response, Ctx, HttpResponse};
use crate::meta::DeleteCondition;
use crate::object::{
    part_range, BodyReceiver, ByteRange, ConditionOutcome, ObjectError, PutObject,
};

/// The decoded body length a PUT declares: `x-amz-decoded-content-length` for aws-chunked
/// bodies, else Content-Length (MissingContentLength when neither, unless chunked transfer).
pub(super) fn declared_length(ctx: &Ctx<'_>) -> Result<Option<u64>, S3Error> {
    let h = &ctx.parts.headers;
    let declared = if ctx.auth.payload.is_streaming() {
        header_str(h, "x-amz-decoded-content-length")
    } else {
        header_str(h, "content-length")
    };
    let len = match declared {
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
    if len.is_some_and(|n| n > MAX_PUT_SIZE) {
        return Err(S3Error::new(
            S3ErrorCode::EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed object size (5 GiB).",
        ));
    }
    Ok(len)
}

/// Response headers announcing a stored checksum (PUT / UploadPart answers).
pub(super) fn checksum_response_headers(h: &mut http::HeaderMap, algorithm: u8, value: &str) {
    if let Some(a) = crate::checksum::ChecksumAlgorithm::from_id(algorithm) {
        if let Ok(n) = HeaderName::from_bytes(a.header_name().as_bytes()) {
            insert(h, n, value);
        }
    }
}

/// GetObjectAttributes: the attributes named in `x-amz-object-attributes` (ETag, Checksum,
/// ObjectParts, StorageClass, ObjectSize; at least one, else 400 InvalidArgument). ObjectParts
/// exists for multipart objects only and pages with `x-amz-max-parts` (default and cap 1000)
/// and `x-amz-part-number-marker` (parts after that number).
pub(super) async fn get_object_attributes(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: &str,
) -> Result<HttpResponse, S3Error> {
    const NAMES: [&str; 5] = [
        "ETag",
        "Checksum",
        "ObjectParts",
        "StorageClass",
        "ObjectSize",
    ];
    let h = &ctx.parts.headers;
    let invalid =
        |name: &str, value: &str| S3Error::invalid_argument(format!("Invalid {name}"), name, value);
    let mut wanted = [false; 5];
    for value in h.get_all("x-amz-object-attributes") {
        let value = value
            .to_str()
            .map_err(|_| invalid("x-amz-object-attributes", ""))?;
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let i = NAMES
                .iter()
                .position(|n| *n == name)
                .ok_or_else(|| invalid("x-amz-object-attributes", name))?;
            wanted[i] = true;
        }
    }
    if !wanted.contains(&true) {
        return Err(invalid("x-amz-object-attributes", ""));
    }
    let number = |name: &str, default: u32| match header_str(h, name) {
        None if !h.contains_key(name) => Ok(default),
        v => v
            .and_then(|v| v.trim().parse::<u32>().ok())
            .ok_or_else(|| invalid(name, v.unwrap_or(""))),
    };
    let max_parts = number("x-amz-max-parts", 1000)?.min(1000);
    let marker = number("x-amz-part-number-marker", 0)?;
    let rec = ctx
        .layer
        .head_object(bucket, key)
        .await
        .map_err(|e| object_error(e, bucket, key))?;
    let algorithm = rec
        .checksum
        .as_ref()
        .and_then(|c| crate::checksum::ChecksumAlgorithm::from_id(c.algorithm))
        .map(|a| a.name());
    let checksum = rec.checksum.as_ref().and_then(|c| {
        let kind = crate::checksum::ChecksumType::from_id(c.kind)?.name();
        Some((algorithm?, c.value.as_str(), kind))
    });
    let multipart = rec.parts.first().is_some_and(|p| p.number > 0);
    let parts = (wanted[2] && multipart).then(|| {
        let after: Vec<_> = rec.parts.iter().filter(|p| p.number > marker).collect();
        let page: Vec<_> = after
            .iter()
            .take(max_parts as usize)
            .map(|p| (p.number, p.size, p.checksum.as_deref()))
            .collect();
        // More parts than this page holds: continue after its last (or, for an empty page of
        // `x-amz-max-parts: 0`, after the marker asked for).
        let next_marker = (after.len() > page.len()).then(|| page.last().map_or(marker, |p| p.0));
        xml::AttributeParts {
            parts_count: rec.parts.len(),
            marker,
            max_parts,
            next_marker,
            algorithm,
            parts: page,
        }
    });
    let doc = xml::get_object_attributes(&xml::ObjectAttributes {
        etag: wanted[0].then_some(rec.etag.as_str()),
        checksum: checksum.filter(|_| wanted[1]),
        parts,
        storage_class: wanted[3],
        size: wanted[4].then_some(rec.size),
    });
    let mut resp = xml_response(doc);
    insert(
        resp.headers_mut(),
        header::LAST_MODIFIED,
        &crate::timestamp::format_http_date(rec.last_modified_ms.div_euclid(1000)),
    );
    Ok(resp)
}

pub(super) async fn put_object(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    body: Incoming,
) -> Result<HttpResponse, S3Error> {
    let h = &ctx.parts.headers;
    refuse_unsupported_write_headers(h)?;
    let expected_len = declared_length(ctx)?;
    let req = PutObject {
        bucket: bucket.to_string(),
        key: key.to_string(),
        content_type: header_str(h, "content-type").map(str::to_string),
        system_meta: system_meta(h),
        user_meta: user_meta(h)?,
        tags: tagging_header(h)?.unwrap_or_default(),
        expected_md5: content_md5(h)?,
        precondition: write_precondition(h)?,
    };
    let checksums = crate::s3::checksum_headers::parse_request_checksums(h)?;
    let (tx, rx) = mpsc::channel(2);
    let (pumped, put) = tokio::join!(
        pump_request_body(
            RequestBody::new(body, &ctx.cfg.server),
            ctx.auth,
            expected_len,
            &checksums,
            None,
            tx
        ),
        ctx.layer
            .put_object(req, BodyReceiver::new(rx, expected_len))
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
    if let Some(c) = &out.checksum {
        checksum_response_headers(resp.headers_mut(), c.algorithm, &c.value);
    }
    Ok(resp)
}

/// Parses `Range: bytes=...`. Forms we cannot serve (several ranges, other units) and
/// syntactically invalid values are ignored, as HTTP prescribes: the whole object is sent.
pub(crate) fn parse_range(v: &str) -> Option<ByteRange> {
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

pub(super) async fn get_object(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    head: bool,
) -> Result<HttpResponse, S3Error> {
    let h = &ctx.parts.headers;
    let range_text = header_str(h, "range").unwrap_or("");
    let map_err = |e: ObjectError| match e {
        ObjectError::InvalidRange { size } => S3Error::invalid_range(range_text, size),
        e => object_error(e, bucket, key),
    };
    let mut rec = ctx.layer.head_object(bucket, key).await.map_err(map_err)?;
    match conditions(h, "").evaluate(&rec.etag, rec.last_modified_ms) {
        ConditionOutcome::Proceed => {}
        ConditionOutcome::PreconditionFailed => {
            return Err(S3Error::precondition_failed("If-Match"));
        }
        ConditionOutcome::NotModified => {
            let mut resp = empty_response(StatusCode::NOT_MODIFIED);
            let hm = resp.headers_mut();
            insert(hm, header::ETAG, &format!("\"{}\"", rec.etag));
            insert(
                hm,
                header::LAST_MODIFIED,
                &crate::timestamp::format_http_date(rec.last_modified_ms.div_euclid(1000)),
            );
            return Ok(resp);
        }
    }
    let mut range = header_str(h, "range").and_then(parse_range);
    if ctx.query.get("partNumber").is_some() {
        let n = part_number(ctx.query.get("partNumber"))?;
        if range.is_some() {
            return Err(S3Error::invalid_request(
                "Cannot specify both Range header and partNumber query parameter",
            ));
        }
        let (a, b) = part_range(&rec, n).ok_or_else(|| {
            S3Error::new(
                S3ErrorCode::InvalidPartNumber,
                "The requested partnumber is not satisfiable",
            )
        })?;
        // An empty part is served whole (an empty range cannot be expressed).
        range = (b > a).then_some(ByteRange::FromTo(a, b - 1));
    }
    let (served, body) = if head {
        let served = match range {
            Some(r) => Some(r.resolve(rec.size).map_err(map_err)?),
            None => None,
        };
        (served, ResponseBody::empty())
    } else {
        // Exactly the version whose conditions and part layout were checked above.
        let out = ctx.layer.read_object(rec, range).await.map_err(map_err)?;
        rec = out.record;
        (out.range, ResponseBody::Stream(out.body))
    };
    let checksum_mode =
        header_str(h, "x-amz-checksum-mode").is_some_and(|v| v.eq_ignore_ascii_case("enabled"));
    let mut resp = Response::new(body);
    let hm = resp.headers_mut();
    let whole = served
        .is_none_or(|(a, b)| a == 0 && b == rec.size && ctx.query.get("partNumber").is_none());
    object_headers(hm, &rec, checksum_mode, whole);
    apply_response_overrides(hm, ctx.query);
    match served {
        Some((start, end)) => {
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            let hm = resp.headers_mut();
            insert(hm, header::CONTENT_LENGTH, &(end - start).to_string());
            insert(
                hm,
                header::CONTENT_RANGE,
                &format!("bytes {}-{}/{}", start, end - 1, rec.size),
            );
        }
        None => insert(hm, header::CONTENT_LENGTH, &rec.size.to_string()),
    }
    Ok(resp)
}

pub(super) async fn delete_object(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: &str,
) -> Result<HttpResponse, S3Error> {
    let condition = delete_condition(&ctx.parts.headers)?;
    ctx.layer
        .delete_object(bucket, key, &condition)
        .await
        .map_err(|e| delete_error(e, bucket, key, &condition))?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// A failed delete's S3 error; a failed precondition names the condition that was given.
fn delete_error(e: ObjectError, bucket: &str, key: &str, condition: &DeleteCondition) -> S3Error {
    match e {
        ObjectError::PreconditionFailed => {
            S3Error::precondition_failed(if condition.if_match.is_some() {
                "If-Match"
            } else if condition.last_modified_secs.is_some() {
                "x-amz-if-match-last-modified-time"
            } else {
                "x-amz-if-match-size"
            })
        }
        e => object_error(e, bucket, key),
    }
}

pub(super) async fn delete_objects(
    ctx: &Ctx<'_>,
    bucket: &str,
    body: Incoming,
) -> Result<HttpResponse, S3Error> {
    let raw = ctx
        .read_xml_body(body, xml::read::MAX_DELETE_BODY, true)
        .await?;
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
                Ok(()) => {
                    let condition = DeleteCondition {
                        if_match: obj.etag.clone(),
                        last_modified_secs: obj.last_modified_secs,
                        size: obj.size,
                    };
                    ctx.layer
                        .delete_object(bucket, &obj.key, &condition)
                        .await
                        .map_err(|e| delete_error(e, bucket, &obj.key, &condition))
                }
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
                code: e.code.as_str(),
                message: e.message,
            }),
        }
    }
    Ok(xml_response(xml::delete_result(
        &deleted, &errors, req.quiet,
    )))
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
}
