//! Request routing: which S3 operation a request is, from method, host, path and query.
//!
//! Path style (`/bucket/key`) and virtual-host style (`bucket.<domain>/key`, for the
//! configured domains) are both accepted. Any sub-resource we do not implement is routed to
//! [`Op::NotImplemented`] so it answers 501 rather than being mistaken for a plain GET or
//! PUT of an object.

use super::error::{S3Error, S3ErrorCode};

/// Parsed query string: decoded (name, value) pairs in order.
#[derive(Debug, Default, Clone)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Query, S3Error> {
        let mut out = Vec::new();
        for part in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (n, v) = part.split_once('=').unwrap_or((part, ""));
            out.push((decode_query(n)?, decode_query(v)?));
        }
        Ok(Query(out))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }
}

fn invalid_uri() -> S3Error {
    S3Error::new(
        S3ErrorCode::InvalidArgument,
        "Couldn't parse the specified URI.",
    )
}

/// Percent-decodes `s` into bytes; `plus_is_space` for query strings.
fn percent_decode(s: &str, plus_is_space: bool) -> Result<Vec<u8>, S3Error> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3).ok_or_else(invalid_uri)?;
                let h = std::str::from_utf8(hex).map_err(|_| invalid_uri())?;
                out.push(u8::from_str_radix(h, 16).map_err(|_| invalid_uri())?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn decode_query(s: &str) -> Result<String, S3Error> {
    String::from_utf8(percent_decode(s, true)?).map_err(|_| invalid_uri())
}

/// Decodes a URI path (a `+` stays a `+` in paths).
pub fn decode_path(s: &str) -> Result<String, S3Error> {
    String::from_utf8(percent_decode(s, false)?).map_err(|_| invalid_uri())
}

/// The S3 operation a request asks for. Bucket and key travel separately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    ListBuckets,
    CreateBucket,
    HeadBucket,
    DeleteBucket,
    GetBucketLocation,
    GetBucketVersioning,
    GetBucketAcl,
    PutBucketAcl,
    GetBucketTagging,
    PutBucketTagging,
    DeleteBucketTagging,
    ListObjects,
    ListObjectsV2,
    ListObjectVersions,
    ListMultipartUploads,
    DeleteObjects,
    PutObject,
    CopyObject,
    GetObject,
    HeadObject,
    DeleteObject,
    GetObjectAcl,
    PutObjectAcl,
    GetObjectAttributes,
    GetObjectTagging,
    PutObjectTagging,
    DeleteObjectTagging,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListParts,
    /// A recognised request for an operation this gateway does not implement.
    NotImplemented {
        what: String,
    },
}

impl Op {
    /// Whether the operation's key is checked against S3's key limit (1024 bytes, else
    /// `KeyTooLongError`) before it runs: every operation that writes under a key or names an
    /// upload or tags of one. Reads of a key (GET, HEAD, GetObjectAcl) are not: an over-long
    /// key simply does not exist.
    pub fn checks_key(&self) -> bool {
        matches!(
            self,
            Op::PutObject
                | Op::CopyObject
                | Op::DeleteObject
                | Op::PutObjectAcl
                | Op::GetObjectTagging
                | Op::PutObjectTagging
                | Op::DeleteObjectTagging
                | Op::CreateMultipartUpload
                | Op::UploadPart
                | Op::UploadPartCopy
                | Op::CompleteMultipartUpload
                | Op::AbortMultipartUpload
                | Op::ListParts
        )
    }
}

/// Query parameters that do not select a sub-resource.
const PLAIN_PARAMS: &[&str] = &[
    "prefix",
    "max-buckets",
    "bucket-region",
    "delimiter",
    "marker",
    "max-keys",
    "encoding-type",
    "list-type",
    "continuation-token",
    "start-after",
    "fetch-owner",
    "response-content-type",
    "response-content-language",
    "response-expires",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "x-id",
    "key-marker",
    "upload-id-marker",
    "version-id-marker",
    "max-uploads",
    "max-parts",
    "part-number-marker",
    // SigV2 query authentication (presigned URLs), and headers it carries in the query.
    "AWSAccessKeyId",
    "Signature",
    "Expires",
    "content-type",
    "content-md5",
];

/// The sub-resource names of a request (sorted, unique), without plain parameters.
fn sub_resources(q: &Query) -> Vec<&str> {
    let mut subs: Vec<&str> =
        q.0.iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| {
                !PLAIN_PARAMS.contains(n)
                    && *n != "versionId"
                    && !n.to_ascii_lowercase().starts_with("x-amz-")
            })
            .collect();
    subs.sort_unstable();
    subs.dedup();
    subs
}

/// Splits host and path into (bucket, key). `domains` are the virtual-host base domains.
pub fn split_target(
    host: Option<&str>,
    raw_path: &str,
    domains: &[String],
) -> Result<(Option<String>, Option<String>), S3Error> {
    let path = decode_path(raw_path)?;
    let path = path.strip_prefix('/').unwrap_or(&path);
    let host = host.map(|h| strip_port(h).to_ascii_lowercase());
    let vhost_bucket = host.as_deref().and_then(|h| {
        domains.iter().find_map(|d| {
            h.strip_suffix(d.as_str())
                .and_then(|b| b.strip_suffix('.'))
                .filter(|b| !b.is_empty())
                .map(str::to_string)
        })
    });
    if let Some(bucket) = vhost_bucket {
        let key = (!path.is_empty()).then(|| path.to_string());
        return Ok((Some(bucket), key));
    }
    if path.is_empty() {
        return Ok((None, None));
    }
    match path.split_once('/') {
        None => Ok((Some(path.to_string()), None)),
        Some((b, "")) => Ok((Some(b.to_string()), None)),
        Some((b, k)) => Ok((Some(b.to_string()), Some(k.to_string()))),
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // IPv6 literal: never a virtual host.
        return host;
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Chooses the operation. `copy_source` tells whether `x-amz-copy-source` is present.
pub fn route(
    method: &http::Method,
    bucket: Option<&str>,
    key: Option<&str>,
    q: &Query,
    copy_source: bool,
) -> Result<Op, S3Error> {
    use http::Method as M;
    // Unversioned buckets have one version per key, "null"; anything else does not exist.
    if let Some(v) = q.get("versionId") {
        if v != "null" {
            return Err(S3Error::invalid_argument(
                "Invalid version id specified",
                "versionId",
                v,
            ));
        }
    }
    let subs = sub_resources(q);
    let not_impl = |on: &str| {
        Ok(Op::NotImplemented {
            what: format!("{method} on {on} with ?{}", subs.join("&")),
        })
    };
    if bucket.is_none() {
        return match (method, subs.as_slice()) {
            (&M::GET, []) => Ok(Op::ListBuckets),
            _ => not_impl("the service"),
        };
    }
    if key.is_none() {
        return Ok(match (method, subs.as_slice()) {
            (&M::PUT, []) => Op::CreateBucket,
            (&M::HEAD, []) => Op::HeadBucket,
            (&M::DELETE, []) => Op::DeleteBucket,
            (&M::GET, ["location"]) => Op::GetBucketLocation,
            (&M::GET, ["versioning"]) => Op::GetBucketVersioning,
            (&M::GET, ["acl"]) => Op::GetBucketAcl,
            (&M::PUT, ["acl"]) => Op::PutBucketAcl,
            (&M::GET, ["tagging"]) => Op::GetBucketTagging,
            (&M::PUT, ["tagging"]) => Op::PutBucketTagging,
            (&M::DELETE, ["tagging"]) => Op::DeleteBucketTagging,
            (&M::GET, []) if q.get("list-type") == Some("2") => Op::ListObjectsV2,
            (&M::GET, []) => Op::ListObjects,
            (&M::GET, ["versions"]) => Op::ListObjectVersions,
            (&M::GET, ["uploads"]) => Op::ListMultipartUploads,
            (&M::POST, ["delete"]) => Op::DeleteObjects,
            _ => return not_impl("a bucket"),
        });
    }
    Ok(match (method, subs.as_slice()) {
        (&M::PUT, []) if copy_source => Op::CopyObject,
        (&M::PUT, []) => Op::PutObject,
        (&M::GET, [] | ["partNumber"]) => Op::GetObject,
        (&M::HEAD, [] | ["partNumber"]) => Op::HeadObject,
        (&M::DELETE, []) => Op::DeleteObject,
        (&M::GET, ["acl"]) => Op::GetObjectAcl,
        (&M::PUT, ["acl"]) => Op::PutObjectAcl,
        (&M::GET, ["attributes"]) => Op::GetObjectAttributes,
        (&M::GET, ["tagging"]) => Op::GetObjectTagging,
        (&M::PUT, ["tagging"]) => Op::PutObjectTagging,
        (&M::DELETE, ["tagging"]) => Op::DeleteObjectTagging,
        (&M::POST, ["uploads"]) => Op::CreateMultipartUpload,
        (&M::PUT, ["partNumber", "uploadId"]) if copy_source => Op::UploadPartCopy,
        (&M::PUT, ["partNumber", "uploadId"]) => Op::UploadPart,
        (&M::POST, ["uploadId"]) => Op::CompleteMultipartUpload,
        (&M::DELETE, ["uploadId"]) => Op::AbortMultipartUpload,
        (&M::GET, ["uploadId"]) => Op::ListParts,
        _ => return not_impl("an object"),
    })
}

/// Bucket names by the DNS rules AWS applies to new buckets.
pub fn valid_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    if !(3..=63).contains(&b.len()) {
        return false;
    }
    let edge_ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !edge_ok(b[0]) || !edge_ok(b[b.len() - 1]) {
        return false;
    }
    if !b
        .iter()
        .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
    {
        return false;
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return false;
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return false;
    }
    let reserved_prefix = ["xn--", "sthree-", "amzn-s3-demo-"];
    let reserved_suffix = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];
    !reserved_prefix.iter().any(|p| name.starts_with(p))
        && !reserved_suffix.iter().any(|s| name.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn ep(
        method: Method,
        host: &str,
        path: &str,
        query: &str,
    ) -> (Option<String>, Option<String>, Op) {
        let q = Query::parse(Some(query)).unwrap();
        let (b, k) = split_target(Some(host), path, &["localhost".to_string()]).unwrap();
        let op = route(&method, b.as_deref(), k.as_deref(), &q, false).unwrap();
        (b, k, op)
    }

    #[test]
    fn path_and_vhost_style() {
        assert_eq!(
            ep(Method::GET, "127.0.0.1:7777", "/", ""),
            (None, None, Op::ListBuckets)
        );
        assert_eq!(
            ep(Method::GET, "127.0.0.1:7777", "/b/a%20b/c+d", ""),
            (Some("b".into()), Some("a b/c+d".into()), Op::GetObject)
        );
        assert_eq!(
            ep(Method::GET, "bkt.localhost:7777", "/x//y", ""),
            (Some("bkt".into()), Some("x//y".into()), Op::GetObject)
        );
        assert_eq!(
            ep(Method::GET, "bkt.localhost", "/", "list-type=2&prefix=a+b"),
            (Some("bkt".into()), None, Op::ListObjectsV2)
        );
        assert_eq!(
            ep(Method::PUT, "localhost:1", "/bkt/", "").2,
            Op::CreateBucket
        );
    }

    #[test]
    fn sub_resources_select_operations() {
        assert_eq!(
            ep(Method::PUT, "h", "/b/k", "tagging").2,
            Op::PutObjectTagging
        );
        assert_eq!(
            ep(Method::GET, "h", "/b", "versioning").2,
            Op::GetBucketVersioning
        );
        assert_eq!(
            ep(Method::POST, "h", "/b/k", "uploads").2,
            Op::CreateMultipartUpload
        );
        assert_eq!(
            ep(Method::PUT, "h", "/b/k", "partNumber=1&uploadId=x").2,
            Op::UploadPart
        );
        assert_eq!(
            ep(Method::GET, "h", "/b/k", "partNumber=2").2,
            Op::GetObject
        );
        assert_eq!(
            ep(Method::GET, "h", "/b/k", "versionId=null").2,
            Op::GetObject
        );
        let q = Query::parse(Some("partNumber=1&uploadId=x")).unwrap();
        assert_eq!(
            route(&Method::PUT, Some("b"), Some("k"), &q, true).unwrap(),
            Op::UploadPartCopy
        );
        assert_eq!(
            route(&Method::PUT, Some("b"), Some("k"), &Query::default(), true).unwrap(),
            Op::CopyObject
        );
        for (m, path, q) in [
            (Method::GET, "/b", "policy"),
            (Method::PUT, "/b", "versioning"),
            (Method::POST, "/b/k", ""),
            (Method::PUT, "/b/k", "cors"),
            (Method::GET, "/b", "lifecycle"),
        ] {
            assert!(
                matches!(ep(m.clone(), "h", path, q).2, Op::NotImplemented { .. }),
                "{m} {path}?{q}"
            );
        }
        let q = Query::parse(Some("versionId=abc")).unwrap();
        assert!(route(&Method::GET, Some("b"), Some("k"), &q, false).is_err());
    }

    #[test]
    fn query_decoding() {
        let q = Query::parse(Some("prefix=a%2Fb+c&delimiter=%2F&empty&x=")).unwrap();
        assert_eq!(q.get("prefix"), Some("a/b c"));
        assert_eq!(q.get("delimiter"), Some("/"));
        assert_eq!(q.get("empty"), Some(""));
        assert!(Query::parse(Some("a=%zz")).is_err());
        assert!(Query::parse(Some("a=%ff")).is_err());
    }

    #[test]
    fn bucket_names() {
        for ok in [
            "abc",
            "my-bucket.example",
            "a1b2c3",
            "x".repeat(63).as_str(),
        ] {
            assert!(valid_bucket_name(ok), "{ok}");
        }
        for bad in [
            "ab",
            "ABC",
            "-abc",
            "abc-",
            "a..b",
            "192.168.1.1",
            "xn--abc",
            "a_b",
            "abc-s3alias",
            &"x".repeat(64),
        ] {
            assert!(!valid_bucket_name(bad), "{bad}");
        }
    }
}
