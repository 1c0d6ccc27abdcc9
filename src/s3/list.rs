//! ListObjects (v1) and ListObjectsV2.

use super::error::S3Error;
use super::xml::{self, ObjectEntry};
use super::{object_error, xml_response, Ctx, HttpResponse};
use crate::meta::{ListPage, ListQuery};

/// S3 caps a page at 1000 entries whatever max-keys asks for.
const MAX_KEYS: usize = 1000;

struct Common {
    prefix: String,
    delimiter: Option<String>,
    max_keys: usize,
    url_encoding: bool,
}

fn common(ctx: &Ctx<'_>) -> Result<Common, S3Error> {
    let q = ctx.query;
    let max_keys = match q.get("max-keys") {
        None => MAX_KEYS,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| (n as u64).min(MAX_KEYS as u64) as usize)
            .ok_or_else(|| {
                S3Error::invalid_argument(
                    "Provided max-keys not an integer or within integer range",
                    "max-keys",
                    v,
                )
            })?,
    };
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
    Ok(Common {
        prefix: q.get("prefix").unwrap_or("").to_string(),
        // An empty delimiter means no grouping.
        delimiter: q
            .get("delimiter")
            .filter(|d| !d.is_empty())
            .map(str::to_string),
        max_keys,
        url_encoding,
    })
}

async fn page(
    ctx: &Ctx<'_>,
    bucket: &str,
    c: &Common,
    start_after: Option<&str>,
) -> Result<ListPage, S3Error> {
    ctx.layer
        .list_objects(&ListQuery {
            bucket,
            prefix: &c.prefix,
            delimiter: c.delimiter.as_deref(),
            start_after,
            max_keys: c.max_keys,
        })
        .await
        .map_err(|e| object_error(e, bucket, ""))
}

fn entries(page: &ListPage) -> Vec<ObjectEntry> {
    page.objects
        .iter()
        .map(|o| ObjectEntry {
            key: o.key.clone(),
            last_modified_ms: o.last_modified_ms,
            etag: o.etag.clone(),
            size: o.size,
        })
        .collect()
}

pub(super) async fn list_objects_v1(ctx: &Ctx<'_>, bucket: &str) -> Result<HttpResponse, S3Error> {
    let c = common(ctx)?;
    let marker = ctx.query.get("marker").unwrap_or("").to_string();
    let p = page(
        ctx,
        bucket,
        &c,
        (!marker.is_empty()).then_some(marker.as_str()),
    )
    .await?;
    let contents = entries(&p);
    Ok(xml_response(xml::list_objects_v1(&xml::ListObjectsV1 {
        bucket: bucket.to_string(),
        prefix: c.prefix,
        marker,
        next_marker: if p.is_truncated {
            p.next_marker.clone()
        } else {
            None
        },
        max_keys: c.max_keys as u32,
        delimiter: c.delimiter,
        is_truncated: p.is_truncated,
        url_encoding: c.url_encoding,
        contents,
        common_prefixes: p.common_prefixes,
        owner: Some(super::bucket::owner()),
    })))
}

pub(super) async fn list_objects_v2(ctx: &Ctx<'_>, bucket: &str) -> Result<HttpResponse, S3Error> {
    let c = common(ctx)?;
    let q = ctx.query;
    let token = q.get("continuation-token").map(str::to_string);
    let start_after_param = q.get("start-after").map(str::to_string);
    let start_from_token = match token.as_deref() {
        Some(t) => Some(decode_token(t).ok_or_else(|| {
            S3Error::invalid_argument(
                "The continuation token provided is incorrect",
                "continuation-token",
                t,
            )
        })?),
        None => None,
    };
    let start_after = start_from_token
        .as_deref()
        .or(start_after_param.as_deref().filter(|s| !s.is_empty()));
    let p = page(ctx, bucket, &c, start_after).await?;
    let owner = (q.get("fetch-owner") == Some("true")).then(super::bucket::owner);
    let contents = entries(&p);
    let next = if p.is_truncated {
        p.next_marker.as_deref().map(encode_token)
    } else {
        None
    };
    Ok(xml_response(xml::list_objects_v2(&xml::ListObjectsV2 {
        bucket: bucket.to_string(),
        prefix: c.prefix,
        max_keys: c.max_keys as u32,
        delimiter: c.delimiter,
        is_truncated: p.is_truncated,
        continuation_token: token,
        next_continuation_token: next,
        start_after: start_after_param,
        url_encoding: c.url_encoding,
        contents,
        common_prefixes: p.common_prefixes,
        owner,
    })))
}

/// Continuation tokens are opaque to clients: the hex of the last key returned.
fn encode_token(key: &str) -> String {
    crate::crypto::encode_hex(key.as_bytes())
}

fn decode_token(t: &str) -> Option<String> {
    String::from_utf8(crate::crypto::decode_hex(t)?).ok()
}

/// ListObjectVersions for buckets that were never versioned: every object is its own only,
/// latest version, with VersionId `null` (what AWS answers for such buckets).
pub(super) async fn list_object_versions(
    ctx: &Ctx<'_>,
    bucket: &str,
) -> Result<HttpResponse, S3Error> {
    let c = common(ctx)?;
    let q = ctx.query;
    let key_marker = q.get("key-marker").unwrap_or("").to_string();
    let version_marker = q.get("version-id-marker").unwrap_or("").to_string();
    if !version_marker.is_empty() && version_marker != "null" {
        return Err(S3Error::invalid_argument(
            "Invalid version id specified",
            "version-id-marker",
            &version_marker,
        ));
    }
    let p = page(
        ctx,
        bucket,
        &c,
        (!key_marker.is_empty()).then_some(key_marker.as_str()),
    )
    .await?;
    let url = c.url_encoding;
    let enc = |s: &str| -> String {
        if url {
            xml::escape_text(&xml::s3_url_encode(s)).into_owned()
        } else {
            xml::escape_text(s).into_owned()
        }
    };
    let owner = super::bucket::owner();
    let mut out = String::with_capacity(512 + p.objects.len() * 300);
    out.push_str(xml::XML_DECLARATION);
    out.push_str(&format!("<ListVersionsResult xmlns=\"{}\">", xml::S3_XMLNS));
    out.push_str(&format!("<Name>{}</Name>", xml::escape_text(bucket)));
    out.push_str(&format!("<Prefix>{}</Prefix>", enc(&c.prefix)));
    out.push_str(&format!("<KeyMarker>{}</KeyMarker>", enc(&key_marker)));
    out.push_str(&format!(
        "<VersionIdMarker>{}</VersionIdMarker>",
        xml::escape_text(&version_marker)
    ));
    if p.is_truncated {
        if let Some(next) = &p.next_marker {
            out.push_str(&format!("<NextKeyMarker>{}</NextKeyMarker>", enc(next)));
            out.push_str("<NextVersionIdMarker>null</NextVersionIdMarker>");
        }
    }
    out.push_str(&format!("<MaxKeys>{}</MaxKeys>", c.max_keys));
    if let Some(d) = &c.delimiter {
        out.push_str(&format!("<Delimiter>{}</Delimiter>", enc(d)));
    }
    out.push_str(&format!("<IsTruncated>{}</IsTruncated>", p.is_truncated));
    if url {
        out.push_str("<EncodingType>url</EncodingType>");
    }
    for o in &p.objects {
        out.push_str(&format!(
            "<Version><Key>{}</Key><VersionId>null</VersionId><IsLatest>true</IsLatest><LastModified>{}</LastModified><ETag>&quot;{}&quot;</ETag><Size>{}</Size><Owner><ID>{}</ID><DisplayName>{}</DisplayName></Owner><StorageClass>STANDARD</StorageClass></Version>",
            enc(&o.key),
            crate::timestamp::format_iso8601_millis(o.last_modified_ms),
            xml::escape_text(&o.etag),
            o.size,
            xml::escape_text(&owner.id),
            xml::escape_text(&owner.display_name),
        ));
    }
    for cp in &p.common_prefixes {
        out.push_str(&format!(
            "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
            enc(cp)
        ));
    }
    out.push_str("</ListVersionsResult>");
    Ok(xml_response(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip() {
        for k in ["", "a/b c", "日本/\u{1}"] {
            assert_eq!(decode_token(&encode_token(k)).as_deref(), Some(k));
        }
        assert!(decode_token("zz").is_none());
        assert!(decode_token("abc").is_none());
    }
}
