//! Request routing: which S3 operation a request is, from method, host, path and query.
//!
//! Path style (`/bucket/key`) and virtual-host style (`bucket.<domain>/key`, for the
//! configured domains) are both accepted. Any sub-resource we do not implement is routed to
//! [`Endpoint::NotImplemented`] so it answers 501 rather than being mistaken for a plain GET or
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    ListBuckets,
    CreateBucket {
        bucket: String,
    },
    HeadBucket {
        bucket: String,
    },
    DeleteBucket {
        bucket: String,
    },
    GetBucketLocation {
        bucket: String,
    },
    ListObjects {
        bucket: String,
    },
    ListObjectsV2 {
        bucket: String,
    },
    DeleteObjects {
        bucket: String,
    },
    PutObject {
        bucket: String,
        key: String,
    },
    GetObject {
        bucket: String,
        key: String,
    },
    HeadObject {
        bucket: String,
        key: String,
    },
    DeleteObject {
        bucket: String,
        key: String,
    },
    /// A recognised request for an operation this gateway does not implement.
    NotImplemented {
        what: String,
    },
}

/// Query parameters that do not select a sub-resource.
const PLAIN_PARAMS: &[&str] = &[
    "prefix",
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
];

fn sub_resource(q: &Query) -> Option<&str> {
    q.0.iter()
        .map(|(n, _)| n.as_str())
        .find(|n| !PLAIN_PARAMS.contains(n) && !n.to_ascii_lowercase().starts_with("x-amz-"))
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

/// Chooses the endpoint.
pub fn route(
    method: &http::Method,
    bucket: Option<String>,
    key: Option<String>,
    q: &Query,
) -> Result<Endpoint, S3Error> {
    use http::Method;
    let sub = sub_resource(q).map(str::to_string);
    let not_impl = |what: String| Ok(Endpoint::NotImplemented { what });
    let Some(bucket) = bucket else {
        return match (method, sub) {
            (&Method::GET, None) => Ok(Endpoint::ListBuckets),
            (m, s) => not_impl(format!("{m} / {}", s.unwrap_or_default())),
        };
    };
    let Some(key) = key else {
        return match (method, sub.as_deref()) {
            (&Method::PUT, None) => Ok(Endpoint::CreateBucket { bucket }),
            (&Method::HEAD, None) => Ok(Endpoint::HeadBucket { bucket }),
            (&Method::DELETE, None) => Ok(Endpoint::DeleteBucket { bucket }),
            (&Method::GET, Some("location")) => Ok(Endpoint::GetBucketLocation { bucket }),
            (&Method::GET, None) if q.get("list-type") == Some("2") => {
                Ok(Endpoint::ListObjectsV2 { bucket })
            }
            (&Method::GET, None) => Ok(Endpoint::ListObjects { bucket }),
            (&Method::POST, Some("delete")) => Ok(Endpoint::DeleteObjects { bucket }),
            (m, s) => not_impl(format!("{m} on a bucket with ?{}", s.unwrap_or(""))),
        };
    };
    match (method, sub.as_deref()) {
        (&Method::PUT, None) => Ok(Endpoint::PutObject { bucket, key }),
        (&Method::GET, None) => Ok(Endpoint::GetObject { bucket, key }),
        (&Method::HEAD, None) => Ok(Endpoint::HeadObject { bucket, key }),
        (&Method::DELETE, None) => Ok(Endpoint::DeleteObject { bucket, key }),
        // An unversioned object's only version is "null".
        (&Method::GET | &Method::HEAD | &Method::DELETE, Some("versionId"))
            if q.get("versionId") == Some("null") && q.0.len() == 1 + plain_count(q) =>
        {
            match *method {
                Method::GET => Ok(Endpoint::GetObject { bucket, key }),
                Method::HEAD => Ok(Endpoint::HeadObject { bucket, key }),
                _ => Ok(Endpoint::DeleteObject { bucket, key }),
            }
        }
        (m, s) => not_impl(format!("{m} on an object with ?{}", s.unwrap_or(""))),
    }
}

fn plain_count(q: &Query) -> usize {
    q.0.iter()
        .filter(|(n, _)| {
            PLAIN_PARAMS.contains(&n.as_str()) || n.to_ascii_lowercase().starts_with("x-amz-")
        })
        .count()
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

    fn ep(method: Method, host: &str, path: &str, query: &str) -> Endpoint {
        let q = Query::parse(Some(query)).unwrap();
        let (b, k) = split_target(Some(host), path, &["localhost".to_string()]).unwrap();
        route(&method, b, k, &q).unwrap()
    }

    #[test]
    fn path_and_vhost_style() {
        assert_eq!(
            ep(Method::GET, "127.0.0.1:7777", "/", ""),
            Endpoint::ListBuckets
        );
        assert_eq!(
            ep(Method::GET, "127.0.0.1:7777", "/b/a%20b/c+d", ""),
            Endpoint::GetObject {
                bucket: "b".into(),
                key: "a b/c+d".into()
            }
        );
        assert_eq!(
            ep(Method::GET, "bkt.localhost:7777", "/x//y", ""),
            Endpoint::GetObject {
                bucket: "bkt".into(),
                key: "x//y".into()
            }
        );
        assert_eq!(
            ep(Method::GET, "bkt.localhost", "/", "list-type=2&prefix=a+b"),
            Endpoint::ListObjectsV2 {
                bucket: "bkt".into()
            }
        );
        assert_eq!(
            ep(Method::PUT, "localhost:1", "/bkt/", ""),
            Endpoint::CreateBucket {
                bucket: "bkt".into()
            }
        );
    }

    #[test]
    fn sub_resources_are_not_implemented() {
        for (m, path, q) in [
            (Method::PUT, "/b/k", "tagging"),
            (Method::GET, "/b", "versioning"),
            (Method::POST, "/b/k", "uploads"),
            (Method::PUT, "/b/k", "partNumber=1&uploadId=x"),
            (Method::GET, "/b/k", "acl"),
            (Method::POST, "/b/k", ""),
        ] {
            assert!(
                matches!(ep(m.clone(), "h", path, q), Endpoint::NotImplemented { .. }),
                "{m} {path}?{q}"
            );
        }
        assert_eq!(
            ep(Method::GET, "h", "/b/k", "versionId=null"),
            Endpoint::GetObject {
                bucket: "b".into(),
                key: "k".into()
            }
        );
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
