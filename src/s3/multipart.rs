//! Multipart uploads: Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts,
//! ListMultipartUploads.

use http::header;
use http::StatusCode;
use hyper::body::Incoming;
use tokio::sync::mpsc;

use super::body::{pump_request_body, RequestBody};
use super::error::S3Error;
use super::headers::{
    conditions, content_md5, copy_source, header_str, insert, part_number,
    refuse_unsupported_write_headers, system_meta, tagging_header, user_meta, write_precondition,
};
use super::object::{checksum_response_headers, declared_length};
use super::xml::{self, ListMultipartUploads, ListParts, PartEntry, UploadEntry};
use super::{empty_response, object_error, xml_response, Ctx, HttpResponse};
use crate::checksum::{ChecksumAlgorithm, ChecksumType};
use crate::meta::UploadListQuery;
use crate::object::{BodyReceiver, CompletedPart, CreateUpload, ObjectError};

const MAX_LIST: usize = 1000;

fn upload_id<'a>(ctx: &'a Ctx<'_>) -> &'a str {
    ctx.query.get("uploadId").unwrap_or("")
}

fn map(e: ObjectError, bucket: &str, key: &str, upload: &str) -> S3Error {
    match e {
        ObjectError::NoSuchUpload => S3Error::no_such_upload(upload),
        e => object_error(e, bucket, key),
    }
}

fn max_param(ctx: &Ctx<'_>, name: &str) -> Result<usize, S3Error> {
    match ctx.query.get(name) {
        None => Ok(MAX_LIST),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| (n as usize).min(MAX_LIST))
            .ok_or_else(|| S3Error::invalid_argument(format!("Invalid {name}"), name, v)),
    }
}

pub(super) async fn create_upload(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: &str,
) -> Result<HttpResponse, S3Error> {
    let h = &ctx.parts.headers;
    refuse_unsupported_write_headers(h)?;
    let algorithm = match header_str(h, "x-amz-checksum-algorithm") {
        None => None,
        Some(v) => Some(ChecksumAlgorithm::from_name(v).ok_or_else(|| {
            S3Error::invalid_argument(
                "Checksum algorithm provided is unsupported.",
                "x-amz-checksum-algorithm",
                v,
            )
        })?),
    };
    let kind = match header_str(h, "x-amz-checksum-type") {
        None => None,
        Some(v) => Some(ChecksumType::from_name(v).ok_or_else(|| {
            S3Error::invalid_argument(
                "Value for x-amz-checksum-type header is invalid.",
                "x-amz-checksum-type",
                v,
            )
        })?),
    };
    let checksum = match (algorithm, kind) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(S3Error::invalid_request(
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.",
            ))
        }
        // AWS's defaults: CRC64NVME is full-object only; the others default to composite.
        (Some(a), None) if a == ChecksumAlgorithm::Crc64Nvme => Some((a, ChecksumType::FullObject)),
        (Some(a), None) => Some((a, ChecksumType::Composite)),
        (Some(a), Some(ChecksumType::FullObject)) if !a.is_crc() => {
            return Err(S3Error::invalid_request(format!(
                "The {} checksum algorithm does not support the FULL_OBJECT checksum type.",
                a.name()
            )))
        }
        (Some(ChecksumAlgorithm::Crc64Nvme), Some(ChecksumType::Composite)) => {
            return Err(S3Error::invalid_request(
                "The CRC64NVME checksum algorithm does not support the COMPOSITE checksum type.",
            ))
        }
        (Some(a), Some(t)) => Some((a, t)),
    };
    let id = ctx
        .layer
        .create_upload(CreateUpload {
            bucket: bucket.to_string(),
            key: key.to_string(),
            content_type: header_str(h, "content-type").map(str::to_string),
            system_meta: system_meta(h),
            user_meta: user_meta(h)?,
            tags: tagging_header(h)?.unwrap_or_default(),
            checksum,
        })
        .await
        .map_err(|e| object_error(e, bucket, key))?;
    let mut resp = xml_response(xml::initiate_multipart_upload_result(bucket, key, &id));
    if let Some((a, t)) = checksum {
        insert(
            resp.headers_mut(),
            http::HeaderName::from_static("x-amz-checksum-algorithm"),
            a.name(),
        );
        insert(
            resp.headers_mut(),
            http::HeaderName::from_static("x-amz-checksum-type"),
            t.name(),
        );
    }
    Ok(resp)
}

pub(super) async fn upload_part(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    body: Incoming,
) -> Result<HttpResponse, S3Error> {
    let number = part_number(ctx.query.get("partNumber"))?;
    let id = upload_id(ctx);
    let h = &ctx.parts.headers;
    refuse_unsupported_write_headers(h)?;
    let expected_len = declared_length(ctx)?;
    let upload = ctx
        .layer
        .upload(bucket, key, id)
        .await
        .map_err(|e| map(e, bucket, key, id))?;
    let algorithm = upload
        .checksum_algorithm
        .and_then(ChecksumAlgorithm::from_id);
    let checksums = super::checksum_headers::parse_request_checksums(h)?;
    if let (Some(want), Some(given)) = (algorithm, checksums.algorithm) {
        if want != given {
            return Err(S3Error::invalid_request(format!(
                "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                want.name().to_ascii_lowercase(),
                given.name().to_ascii_lowercase()
            )));
        }
    }
    let md5 = content_md5(h)?;
    let (tx, rx) = mpsc::channel(2);
    let (pumped, stored) = tokio::join!(
        pump_request_body(
            RequestBody::new(body, &ctx.cfg.server),
            ctx.auth,
            expected_len,
            &checksums,
            algorithm,
            tx
        ),
        ctx.layer.upload_part(
            bucket,
            key,
            id,
            number,
            BodyReceiver::new(rx, expected_len),
            md5
        )
    );
    pumped?;
    let out = stored.map_err(|e| map(e, bucket, key, id))?;
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

/// `x-amz-copy-source-range: bytes=first-last` (both required, inclusive).
fn copy_range(ctx: &Ctx<'_>) -> Result<Option<(u64, u64)>, S3Error> {
    let Some(v) = header_str(&ctx.parts.headers, "x-amz-copy-source-range") else {
        return Ok(None);
    };
    let bad = || {
        S3Error::invalid_argument(
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy",
            "x-amz-copy-source-range",
            v,
        )
    };
    let spec = v.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    if a > b {
        return Err(bad());
    }
    Ok(Some((a, b)))
}

pub(super) async fn upload_part_copy(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: &str,
) -> Result<HttpResponse, S3Error> {
    let number = part_number(ctx.query.get("partNumber"))?;
    let id = upload_id(ctx);
    let h = &ctx.parts.headers;
    refuse_unsupported_write_headers(h)?;
    let (src_bucket, src_key) = copy_source(h)?;
    let range = copy_range(ctx)?;
    let range_text = header_str(h, "x-amz-copy-source-range").unwrap_or("");
    let out = ctx
        .layer
        .upload_part_copy(
            bucket,
            key,
            id,
            number,
            &src_bucket,
            &src_key,
            range,
            &conditions(h, "x-amz-copy-source-"),
        )
        .await
        .map_err(|e| match e {
            ObjectError::NoSuchKey => S3Error::no_such_key(&src_key),
            ObjectError::InvalidRange { size } => S3Error::invalid_range(range_text, size),
            e => map(e, bucket, key, id),
        })?;
    let name = out
        .checksum
        .as_ref()
        .and_then(|c| ChecksumAlgorithm::from_id(c.algorithm))
        .map(|a| a.name());
    let checksum = name.zip(out.checksum.as_ref().map(|c| c.value.as_str()));
    Ok(xml_response(xml::copy_part_result_with_checksum(
        &out.etag,
        out.last_modified_ms,
        checksum,
    )))
}

pub(super) async fn complete_upload(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    body: Incoming,
) -> Result<HttpResponse, S3Error> {
    let id = upload_id(ctx);
    let h = &ctx.parts.headers;
    let precondition = write_precondition(h)?;
    // Also known for an upload completed already: its retry is answered like AWS does.
    let algorithm = ctx
        .layer
        .completion_checksum_algorithm(bucket, key, id)
        .await
        .map_err(|e| map(e, bucket, key, id))?;
    let raw = ctx
        .read_xml_body(body, xml::read::MAX_COMPLETE_MULTIPART_BODY, false)
        .await?;
    let parts = xml::read::parse_complete_multipart_upload(&raw)?;
    // A whole-object checksum the client states must match ours, checked before commit.
    let expected_whole = algorithm
        .and_then(|a| header_str(h, a.header_name()))
        .map(|v| v.trim().to_string());
    let list: Vec<CompletedPart> = parts
        .into_iter()
        .map(|p| {
            let checksum = match algorithm {
                Some(ChecksumAlgorithm::Crc32) => p.checksum_crc32,
                Some(ChecksumAlgorithm::Crc32c) => p.checksum_crc32c,
                Some(ChecksumAlgorithm::Crc64Nvme) => p.checksum_crc64nvme,
                Some(ChecksumAlgorithm::Sha1) => p.checksum_sha1,
                Some(ChecksumAlgorithm::Sha256) => p.checksum_sha256,
                None => None,
            };
            CompletedPart {
                number: p.part_number,
                etag: p.etag,
                checksum,
            }
        })
        .collect();
    let out = ctx
        .layer
        .complete_upload(bucket, key, id, &list, &precondition, expected_whole)
        .await
        .map_err(|e| map(e, bucket, key, id))?;
    let location = format!("/{bucket}/{key}");
    let name = out
        .checksum
        .as_ref()
        .and_then(|c| ChecksumAlgorithm::from_id(c.algorithm))
        .map(|a| a.name());
    let checksum = match (&out.checksum, name) {
        (Some(c), Some(name)) => Some((
            name,
            c.value.as_str(),
            ChecksumType::from_id(c.kind).map_or("FULL_OBJECT", ChecksumType::name),
        )),
        _ => None,
    };
    let mut resp = xml_response(xml::complete_multipart_upload_result_with_checksum(
        &location, bucket, key, &out.etag, checksum,
    ));
    if let Some(c) = &out.checksum {
        checksum_response_headers(resp.headers_mut(), c.algorithm, &c.value);
    }
    Ok(resp)
}

pub(super) async fn abort_upload(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: &str,
) -> Result<HttpResponse, S3Error> {
    let id = upload_id(ctx);
    ctx.layer
        .abort_upload(bucket, key, id)
        .await
        .map_err(|e| map(e, bucket, key, id))?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

pub(super) async fn list_parts(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: &str,
) -> Result<HttpResponse, S3Error> {
    let id = upload_id(ctx);
    let max = max_param(ctx, "max-parts")?;
    let marker = match ctx.query.get("part-number-marker") {
        None => 0,
        Some(v) => v.parse::<u32>().map_err(|_| {
            S3Error::invalid_argument("Invalid part-number-marker", "part-number-marker", v)
        })?,
    };
    let (upload, parts, truncated) = ctx
        .layer
        .list_parts(bucket, key, id, marker, max)
        .await
        .map_err(|e| map(e, bucket, key, id))?;
    let next = if truncated {
        parts.last().map(|p| p.number)
    } else {
        None
    };
    Ok(xml_response(xml::list_parts(&ListParts {
        bucket: bucket.to_string(),
        key: key.to_string(),
        upload_id: id.to_string(),
        owner: super::bucket::owner(),
        part_number_marker: marker,
        next_part_number_marker: next,
        max_parts: max as u32,
        is_truncated: truncated,
        checksum: upload
            .checksum_algorithm
            .and_then(ChecksumAlgorithm::from_id)
            .zip(upload.checksum_kind.and_then(ChecksumType::from_id))
            .map(|(a, kind)| (a.name().to_string(), kind.name().to_string())),
        parts: parts
            .into_iter()
            .map(|p| PartEntry {
                part_number: p.number,
                last_modified_ms: p.last_modified_ms,
                etag: p.etag,
                size: p.size,
                checksum: upload
                    .checksum_algorithm
                    .and_then(ChecksumAlgorithm::from_id)
                    .zip(p.checksum)
                    .map(|(a, v)| (a.name().to_string(), v)),
            })
            .collect(),
    })))
}

pub(super) async fn list_uploads(ctx: &Ctx<'_>, bucket: &str) -> Result<HttpResponse, S3Error> {
    let q = ctx.query;
    let max = max_param(ctx, "max-uploads")?;
    let url_encoding = match q.get("encoding-type") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("url") => true,
        Some(v) => {
            return Err(S3Error::invalid_argument(
                "Invalid Encoding Method specified in Request",
                "encoding-type",
                v,
            ))
        }
    };
    let prefix = q.get("prefix").unwrap_or("");
    let delimiter = q.get("delimiter").filter(|d| !d.is_empty());
    let key_marker = q.get("key-marker").filter(|m| !m.is_empty());
    // The upload-id marker only means something together with a key marker.
    let upload_id_marker = key_marker.and(q.get("upload-id-marker").filter(|m| !m.is_empty()));
    let page = ctx
        .layer
        .list_uploads(&UploadListQuery {
            bucket,
            prefix,
            delimiter,
            key_marker,
            upload_id_marker,
            max_uploads: max,
        })
        .await
        .map_err(|e| object_error(e, bucket, ""))?;
    Ok(xml_response(xml::list_multipart_uploads(
        &ListMultipartUploads {
            bucket: bucket.to_string(),
            key_marker: key_marker.unwrap_or("").to_string(),
            upload_id_marker: upload_id_marker.unwrap_or("").to_string(),
            next_key_marker: page.next_key_marker,
            next_upload_id_marker: page.next_upload_id_marker,
            delimiter: delimiter.map(str::to_string),
            prefix: prefix.to_string(),
            max_uploads: max as u32,
            is_truncated: page.is_truncated,
            url_encoding,
            uploads: page
                .uploads
                .into_iter()
                .map(|u| UploadEntry {
                    key: u.key,
                    upload_id: u.upload_id,
                    initiated_ms: u.initiated_ms,
                })
                .collect(),
            common_prefixes: page.common_prefixes,
            owner: super::bucket::owner(),
        },
    )))
}
