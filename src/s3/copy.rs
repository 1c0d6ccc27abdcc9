//! CopyObject.

use super::error::S3Error;
use super::headers::{
    conditions, copy_source, header_str, refuse_unsupported_write_headers, system_meta,
    tagging_header, user_meta, write_precondition,
};
use super::{object_error, xml, xml_response, Ctx, HttpResponse};
use crate::object::{CopyObject, MetadataDirective, TaggingDirective};

/// `x-amz-metadata-directive` / `x-amz-tagging-directive`: COPY (default) or REPLACE.
fn directive(ctx: &Ctx<'_>, name: &str) -> Result<bool, S3Error> {
    match header_str(&ctx.parts.headers, name) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("COPY") => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("REPLACE") => Ok(true),
        Some(v) => Err(S3Error::invalid_argument(
            format!("Unknown {name}."),
            name,
            v,
        )),
    }
}

pub(super) async fn copy_object(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: &str,
) -> Result<HttpResponse, S3Error> {
    let h = &ctx.parts.headers;
    refuse_unsupported_write_headers(h)?;
    let (src_bucket, src_key) = copy_source(h)?;
    let metadata = if directive(ctx, "x-amz-metadata-directive")? {
        MetadataDirective::Replace {
            content_type: header_str(h, "content-type").map(str::to_string),
            system_meta: system_meta(h),
            user_meta: user_meta(h)?,
        }
    } else {
        MetadataDirective::Copy
    };
    let tagging = if directive(ctx, "x-amz-tagging-directive")? {
        TaggingDirective::Replace(tagging_header(h)?.unwrap_or_default())
    } else {
        TaggingDirective::Copy
    };
    let out = ctx
        .layer
        .copy_object(CopyObject {
            src_bucket: src_bucket.clone(),
            src_key: src_key.clone(),
            dst_bucket: bucket.to_string(),
            dst_key: key.to_string(),
            metadata,
            tagging,
            source_conditions: conditions(h, "x-amz-copy-source-"),
            precondition: write_precondition(h)?,
        })
        .await
        .map_err(|e| match e {
            // Missing source objects are reported against the source.
            crate::object::ObjectError::NoSuchKey => S3Error::no_such_key(&src_key),
            e => object_error(e, bucket, key),
        })?;
    Ok(xml_response(xml::copy_object_result(
        &out.etag,
        out.last_modified_ms,
    )))
}
