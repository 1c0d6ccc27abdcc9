//! AWS Signature Version 4 (header form, S3 flavour) for the requests [`super::S3Node`] sends.
//!
//! Contract:
//! - [`Signer::sign`] adds `x-amz-date`, `x-amz-content-sha256: UNSIGNED-PAYLOAD` and
//!   `authorization` to a request whose other headers (including `host`) are final. Every
//!   header present at that point is signed, so nothing added later may change them.
//! - The canonical URI is the path exactly as sent and the canonical query string is the query
//!   exactly as sent (S3 signs both without normalisation). Callers build paths with
//!   [`encode_path`] and queries with [`encode_query`], which produce the canonical forms.
//! - Signing-key derivation and the final HMAC are `aws_sigv4::sign::v4`'s. The canonical
//!   request and string to sign (about 50 lines, checked against AWS's documented examples
//!   below) are built here rather than through `aws_sigv4::http_request::sign`, which would
//!   need `aws-credential-types` named as a dependency for its `Identity` and re-parse the
//!   path and query this module has just encoded. The rest of an S3 client (XML, multipart
//!   writer, errors) is hand-written too: `aws-sdk-s3` as a runtime dependency would add its
//!   compile (145 s on two cores, for that crate alone) to every release build.
//! - The secret key never leaves [`Signer`]: its `Debug` prints only the access key and region.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use aws_lc_rs::digest;
use aws_sigv4::sign::v4::{calculate_signature, generate_signing_key};
use http::header::{HeaderName, InvalidHeaderValue, AUTHORIZATION};
use http::{HeaderMap, HeaderValue, Method};

/// The payload hash sent with every request: bodies are protected by `Content-MD5` instead.
pub(super) const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SERVICE: &str = "s3";
const X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
const X_AMZ_CONTENT_SHA256: HeaderName = HeaderName::from_static("x-amz-content-sha256");

pub(super) struct Signer {
    access_key: String,
    secret_key: String,
    region: String,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("access_key", &self.access_key)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub(super) fn new(access_key: &str, secret_key: &str, region: &str) -> Signer {
        Signer {
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            region: region.to_string(),
        }
    }

    /// Signs a request for `time` (see the module doc).
    pub(super) fn sign(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        headers: &mut HeaderMap,
        time: SystemTime,
    ) -> Result<(), InvalidHeaderValue> {
        headers.insert(X_AMZ_DATE, HeaderValue::from_str(&amz_date(time).1)?);
        headers.insert(
            X_AMZ_CONTENT_SHA256,
            HeaderValue::from_static(UNSIGNED_PAYLOAD),
        );
        let auth = self.authorization(method, path, query, headers, UNSIGNED_PAYLOAD, time);
        headers.insert(AUTHORIZATION, HeaderValue::from_str(&auth)?);
        Ok(())
    }

    /// The `Authorization` value for a request with these (final) headers.
    fn authorization(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        headers: &HeaderMap,
        payload_hash: &str,
        time: SystemTime,
    ) -> String {
        let (canonical_headers, signed_headers) = canonical_headers(headers);
        let canonical_request = format!(
            "{method}\n{path}\n{query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}"
        );
        let (date, datetime) = amz_date(time);
        let scope = format!("{date}/{}/{SERVICE}/aws4_request", self.region);
        let string_to_sign = format!(
            "{ALGORITHM}\n{datetime}\n{scope}\n{}",
            crate::crypto::encode_hex(
                digest::digest(&digest::SHA256, canonical_request.as_bytes()).as_ref()
            )
        );
        let key = generate_signing_key(&self.secret_key, time, &self.region, SERVICE);
        let signature = calculate_signature(key, string_to_sign.as_bytes());
        let credential = format!("{}/{scope}", self.access_key);
        format!(
            "{ALGORITHM} Credential={credential}, SignedHeaders={signed_headers}, \
             Signature={signature}"
        )
    }
}

/// `name:value\n` lines sorted by name (values of a repeated name joined by `,`, spaces
/// trimmed and collapsed), and the `;`-joined names.
fn canonical_headers(headers: &HeaderMap) -> (String, String) {
    let mut map: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        map.entry(name.as_str()).or_default().push(value);
    }
    let mut lines = String::new();
    for (name, values) in &map {
        lines.push_str(name);
        lines.push(':');
        lines.push_str(&values.join(","));
        lines.push('\n');
    }
    let names = map.keys().copied().collect::<Vec<_>>().join(";");
    (lines, names)
}

/// `YYYYMMDD` and `YYYYMMDDTHHMMSSZ` in UTC.
fn amz_date(time: SystemTime) -> (String, String) {
    let datetime = crate::timestamp::format_amz_date(time);
    (datetime[..8].to_string(), datetime)
}

/// Appends `s` URI-encoded the SigV4 way: unreserved characters kept, every other byte
/// `%XX` (uppercase), `/` kept only when `keep_slash`.
fn encode_into(out: &mut String, s: &str, keep_slash: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else if b == b'/' && keep_slash {
            out.push('/');
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

/// `/` followed by each of `parts` encoded (their `/` kept), concatenated.
pub(super) fn encode_path(parts: &[&str]) -> String {
    let mut out = String::from("/");
    for p in parts {
        encode_into(&mut out, p, true);
    }
    out
}

/// The canonical query string of `params`: each name and value encoded, sorted, `&`-joined.
pub(super) fn encode_query(params: &[(&str, &str)]) -> String {
    let mut pairs: Vec<String> = params
        .iter()
        .map(|(k, v)| {
            let mut s = String::new();
            encode_into(&mut s, k, false);
            s.push('=');
            encode_into(&mut s, v, false);
            s
        })
        .collect();
    pairs.sort();
    pairs.join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    const AK: &str = "AKIAIOSFODNN7EXAMPLE";
    const SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// 2013-05-24T00:00:00Z, the date of the examples in the AWS S3 SigV4 documentation.
    fn example_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_369_353_600)
    }

    fn example_headers(extra: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "host",
            HeaderValue::from_static("examplebucket.s3.amazonaws.com"),
        );
        h.insert(X_AMZ_DATE, HeaderValue::from_static("20130524T000000Z"));
        for (k, v) in extra {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    // "Example: GET Object" of the AWS documentation (header-based SigV4 for S3).
    #[test]
    fn matches_aws_get_object_example() {
        let signer = Signer::new(AK, SK, "us-east-1");
        let headers = example_headers(&[
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
        ]);
        let auth = signer.authorization(
            &Method::GET,
            "/test.txt",
            "",
            &headers,
            EMPTY_SHA256,
            example_time(),
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    // "Example: GET Bucket (List Objects)": a signed query string.
    #[test]
    fn matches_aws_list_objects_example() {
        let signer = Signer::new(AK, SK, "us-east-1");
        let headers = example_headers(&[("x-amz-content-sha256", EMPTY_SHA256)]);
        let query = encode_query(&[("prefix", "J"), ("max-keys", "2")]);
        assert_eq!(query, "max-keys=2&prefix=J");
        let auth = signer.authorization(
            &Method::GET,
            "/",
            &query,
            &headers,
            EMPTY_SHA256,
            example_time(),
        );
        assert!(auth.ends_with(
            "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        ));
    }

    #[test]
    fn sign_adds_the_headers_it_signs() {
        let signer = Signer::new(AK, SK, "eu-west-3");
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:9000"));
        signer
            .sign(&Method::PUT, "/b/k", "", &mut headers, example_time())
            .unwrap();
        assert_eq!(headers[X_AMZ_CONTENT_SHA256], UNSIGNED_PAYLOAD);
        assert_eq!(headers[X_AMZ_DATE], "20130524T000000Z");
        let auth = headers[AUTHORIZATION].to_str().unwrap();
        assert!(auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/eu-west-3/s3/aws4_request, \
             SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="
        ));
        assert!(!auth.contains(SK));
        assert!(!format!("{signer:?}").contains(SK));
    }

    #[test]
    fn dates_are_utc_calendar_dates() {
        let at = |secs| amz_date(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0).1, "19700101T000000Z");
        assert_eq!(at(951_782_400 + 3661).1, "20000229T010101Z");
        assert_eq!(at(951_868_800).1, "20000301T000000Z");
        assert_eq!(
            at(4_102_444_799),
            ("20991231".into(), "20991231T235959Z".into())
        );
    }

    #[test]
    fn encoding_keeps_only_unreserved() {
        assert_eq!(
            encode_path(&["bucket", "/", "gw/n 1/", "ab~_-."]),
            "/bucket/gw/n%201/ab~_-."
        );
        assert_eq!(
            encode_query(&[("uploadId", "a/b+c=d"), ("partNumber", "3")]),
            "partNumber=3&uploadId=a%2Fb%2Bc%3Dd"
        );
        assert_eq!(encode_query(&[("uploads", "")]), "uploads=");
        assert_eq!(encode_path(&["é"]), "/%C3%A9");
    }
}
