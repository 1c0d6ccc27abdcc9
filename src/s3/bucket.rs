//! Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation.

use http::{HeaderValue, StatusCode};
use hyper::body::Incoming;

use super::error::{S3Error, S3ErrorCode};
use super::router::valid_bucket_name;
use super::xml::{self, BucketEntry, Owner};
use super::{empty_response, object_error, xml_response, Ctx, HttpResponse};
use crate::object::ObjectError;

pub(super) fn owner() -> Owner {
    Owner {
        id: "gateway".into(),
        display_name: "gateway".into(),
    }
}

/// Most buckets one ListBuckets page may be asked for (AWS's bound on `max-buckets`).
const MAX_BUCKETS: usize = 10_000;

/// ListBuckets, in name order: `prefix`, `bucket-region` (every bucket is in the gateway's
/// region), and pages of `max-buckets` continued by `continuation-token` (the last name of
/// the page before; opaque to clients).
pub(super) async fn list_buckets(ctx: &Ctx<'_>) -> Result<HttpResponse, S3Error> {
    let q = ctx.query;
    let max = match q.get("max-buckets") {
        None => MAX_BUCKETS,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_BUCKETS).contains(n))
            .ok_or_else(|| {
                S3Error::invalid_argument(
                    "max-buckets must be an integer from 1 to 10000",
                    "max-buckets",
                    v,
                )
            })?,
    };
    let after = match q.get("continuation-token") {
        None => None,
        Some(t) if valid_bucket_name(t) => Some(t),
        Some(t) => {
            return Err(S3Error::invalid_argument(
                "The continuation token provided is incorrect",
                "continuation-token",
                t,
            ))
        }
    };
    let prefix = q.get("prefix").filter(|p| !p.is_empty());
    let in_region = q.get("bucket-region").is_none_or(|r| r == ctx.cfg.region);
    let buckets = ctx
        .layer
        .list_buckets()
        .await
        .map_err(|e| object_error(e, "", ""))?;
    let mut entries: Vec<BucketEntry> = buckets
        .into_iter()
        .filter(|b| in_region && prefix.is_none_or(|p| b.name.starts_with(p)))
        .filter(|b| after.is_none_or(|a| b.name.as_str() > a))
        .map(|b| BucketEntry {
            name: b.name,
            creation_date_ms: b.created_ms,
        })
        .take(max + 1)
        .collect();
    let next = if entries.len() > max {
        entries.truncate(max);
        entries.last().map(|b| b.name.clone())
    } else {
        None
    };
    Ok(xml_response(xml::list_all_my_buckets(
        &owner(),
        &entries,
        next.as_deref(),
        prefix,
    )))
}

pub(super) async fn create_bucket(
    ctx: &Ctx<'_>,
    bucket: &str,
    body: Incoming,
) -> Result<HttpResponse, S3Error> {
    if !valid_bucket_name(bucket) {
        return Err(S3Error::invalid_bucket_name(bucket));
    }
    // The body may carry a CreateBucketConfiguration; any region is accepted, since this
    // gateway answers for whichever region the client signs with.
    let raw = ctx
        .read_xml_body(body, xml::read::MAX_XML_BODY, true)
        .await?;
    let location = xml::read::parse_create_bucket_configuration(&raw)?;
    let region = location.as_deref().unwrap_or(&ctx.cfg.region);
    match ctx.layer.create_bucket(bucket).await {
        Ok(()) => {}
        // AWS, for legacy compatibility: re-creating a bucket you own in us-east-1 is 200
        // (BucketAlreadyOwnedByYou in every other region). Nothing changes.
        Err(ObjectError::BucketExists(_)) if region == "us-east-1" => {}
        Err(e) => return Err(object_error(e, bucket, "")),
    }
    let mut resp = empty_response(StatusCode::OK);
    if let Ok(v) = HeaderValue::from_str(&format!("/{bucket}")) {
        resp.headers_mut().insert(http::header::LOCATION, v);
    }
    Ok(resp)
}

pub(super) async fn head_bucket(ctx: &Ctx<'_>, bucket: &str) -> Result<HttpResponse, S3Error> {
    ctx.layer
        .bucket(bucket)
        .await
        .map_err(|e| object_error(e, bucket, ""))?;
    let mut resp = empty_response(StatusCode::OK);
    if let Ok(v) = HeaderValue::from_str(&ctx.cfg.region) {
        resp.headers_mut().insert("x-amz-bucket-region", v);
    }
    Ok(resp)
}

pub(super) async fn delete_bucket(ctx: &Ctx<'_>, bucket: &str) -> Result<HttpResponse, S3Error> {
    ctx.layer
        .delete_bucket(bucket)
        .await
        .map_err(|e| object_error(e, bucket, ""))?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

pub(super) async fn get_location(ctx: &Ctx<'_>, bucket: &str) -> Result<HttpResponse, S3Error> {
    ctx.layer
        .bucket(bucket)
        .await
        .map_err(|e| object_error(e, bucket, ""))?;
    Ok(xml_response(xml::location_constraint(&ctx.cfg.region)))
}

/// Versioning was never enabled: the empty configuration, as AWS answers for such buckets.
pub(super) async fn get_versioning(ctx: &Ctx<'_>, bucket: &str) -> Result<HttpResponse, S3Error> {
    ctx.layer
        .bucket(bucket)
        .await
        .map_err(|e| object_error(e, bucket, ""))?;
    Ok(xml_response(xml::versioning_configuration(None)))
}

/// ACLs are not supported; clients that probe them get the only policy there is: the owner
/// has FULL_CONTROL (what AWS answers for a private bucket or object).
/// PutBucketAcl / PutObjectAcl. Every bucket and object is readable by its owner alone (AWS's
/// "ACLs disabled"), so the only ACL that can be set is that one, and setting it changes
/// nothing: `x-amz-acl: private` (or `bucket-owner-full-control`), or a body granting
/// FULL_CONTROL to the owner and nothing else. Anything else is AccessControlListNotSupported.
pub(super) async fn put_acl(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: Option<&str>,
    body: Incoming,
) -> Result<HttpResponse, S3Error> {
    exists(ctx, bucket, key).await?;
    let header = super::headers::acl_headers(&ctx.parts.headers)?;
    let raw = ctx
        .read_xml_body(body, xml::read::MAX_XML_BODY, true)
        .await?;
    let body_given = !raw.iter().all(u8::is_ascii_whitespace);
    match (header, body_given) {
        (true, true) => Err(S3Error::new(
            S3ErrorCode::UnexpectedContent,
            "This request does not support content when x-amz-acl is given",
        )),
        (true, false) => Ok(empty_response(StatusCode::OK)),
        (false, false) => Err(S3Error::new(
            S3ErrorCode::MissingSecurityHeader,
            "Your request was missing a required header: x-amz-acl (or an \
             AccessControlPolicy body)",
        )),
        (false, true) => {
            let grants = xml::read::parse_access_control_policy(&raw)?;
            let me = owner().id;
            let owner_only = !grants.is_empty()
                && grants.iter().all(|g| {
                    g.grantee_id.as_deref() == Some(me.as_str()) && g.permission == "FULL_CONTROL"
                });
            if owner_only {
                Ok(empty_response(StatusCode::OK))
            } else {
                Err(S3Error::new(
                    S3ErrorCode::AccessControlListNotSupported,
                    "The bucket does not allow ACLs: only FULL_CONTROL for the owner alone can \
                     be set; objects are readable by their owner alone",
                ))
            }
        }
    }
}

/// NoSuchBucket / NoSuchKey unless the bucket (and the object, for a key) exists.
async fn exists(ctx: &Ctx<'_>, bucket: &str, key: Option<&str>) -> Result<(), S3Error> {
    match key {
        Some(k) => ctx
            .layer
            .head_object(bucket, k)
            .await
            .map(|_| ())
            .map_err(|e| object_error(e, bucket, k)),
        None => ctx
            .layer
            .bucket(bucket)
            .await
            .map(|_| ())
            .map_err(|e| object_error(e, bucket, "")),
    }
}

pub(super) async fn get_acl(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: Option<&str>,
) -> Result<HttpResponse, S3Error> {
    exists(ctx, bucket, key).await?;
    let o = owner();
    Ok(xml_response(format!(
        "{}<AccessControlPolicy xmlns=\"{}\"><Owner><ID>{id}</ID><DisplayName>{name}</DisplayName></Owner><AccessControlList><Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"CanonicalUser\"><ID>{id}</ID><DisplayName>{name}</DisplayName></Grantee><Permission>FULL_CONTROL</Permission></Grant></AccessControlList></AccessControlPolicy>",
        xml::XML_DECLARATION,
        xml::S3_XMLNS,
        id = xml::escape_text(&o.id),
        name = xml::escape_text(&o.display_name),
    )))
}
