//! Object and bucket tagging.

use http::StatusCode;
use hyper::body::Incoming;

use super::error::{S3Error, S3ErrorCode};
use super::headers::{check_tags, object_tag_limit};
use super::xml::{self, Tag};
use super::{empty_response, object_error, xml_response, Ctx, HttpResponse};

/// AWS allows up to 50 tags on a bucket.
const MAX_BUCKET_TAGS: usize = 50;

fn to_xml(tags: &[(String, String)]) -> String {
    let tags: Vec<Tag> = tags
        .iter()
        .map(|(k, v)| Tag {
            key: k.clone(),
            value: v.clone(),
        })
        .collect();
    xml::tagging(&tags)
}

async fn read_tags(
    ctx: &Ctx<'_>,
    body: Incoming,
    max: usize,
) -> Result<Vec<(String, String)>, S3Error> {
    let raw = ctx
        .read_xml_body(body, xml::read::MAX_XML_BODY, true)
        .await?;
    let tags: Vec<(String, String)> = xml::read::parse_tagging(&raw)?
        .into_iter()
        .map(|t| (t.key, t.value))
        .collect();
    check_tags(&tags, max)?;
    Ok(tags)
}

pub(super) async fn get_object_tagging(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: &str,
) -> Result<HttpResponse, S3Error> {
    let tags = ctx
        .layer
        .object_tags(bucket, key)
        .await
        .map_err(|e| object_error(e, bucket, key))?;
    Ok(xml_response(to_xml(&tags)))
}

pub(super) async fn put_object_tagging(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    body: Incoming,
) -> Result<HttpResponse, S3Error> {
    let tags = read_tags(ctx, body, object_tag_limit()).await?;
    ctx.layer
        .set_object_tags(bucket, key, &tags)
        .await
        .map_err(|e| object_error(e, bucket, key))?;
    Ok(empty_response(StatusCode::OK))
}

pub(super) async fn delete_object_tagging(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: &str,
) -> Result<HttpResponse, S3Error> {
    ctx.layer
        .set_object_tags(bucket, key, &[])
        .await
        .map_err(|e| object_error(e, bucket, key))?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

pub(super) async fn get_bucket_tagging(
    ctx: &Ctx<'_>,
    bucket: &str,
) -> Result<HttpResponse, S3Error> {
    let tags = ctx
        .layer
        .bucket_tags(bucket)
        .await
        .map_err(|e| object_error(e, bucket, ""))?;
    match tags {
        Some(t) => Ok(xml_response(to_xml(&t))),
        None => Err(
            S3Error::new(S3ErrorCode::NoSuchTagSet, "The TagSet does not exist")
                .with_detail("BucketName", bucket),
        ),
    }
}

pub(super) async fn put_bucket_tagging(
    ctx: &Ctx<'_>,
    bucket: &str,
    body: Incoming,
) -> Result<HttpResponse, S3Error> {
    let tags = read_tags(ctx, body, MAX_BUCKET_TAGS).await?;
    ctx.layer
        .set_bucket_tags(bucket, Some(&tags))
        .await
        .map_err(|e| object_error(e, bucket, ""))?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

pub(super) async fn delete_bucket_tagging(
    ctx: &Ctx<'_>,
    bucket: &str,
) -> Result<HttpResponse, S3Error> {
    ctx.layer
        .set_bucket_tags(bucket, None)
        .await
        .map_err(|e| object_error(e, bucket, ""))?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}
