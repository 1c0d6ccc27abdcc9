//! AWS Signature Version 2 (HMAC-SHA1), in the `Authorization: AWS <key>:<signature>` header
//! or in the query string (`AWSAccessKeyId`, `Signature`, `Expires`), as older SDKs and
//! boto3's `generate_presigned_url` still send it.
//!
//! Contract of [`verify`] (the mechanism is chosen by [`applies`]):
//! - `Ok` means: the access key is ours, the time is acceptable, and the Base64 HMAC-SHA1 under
//!   the secret key of a StringToSign of the request equals the signature given (compared in
//!   constant time). The result has `PayloadMode::Unsigned` and no chunk signing: SigV2 says
//!   nothing about the body. The region is always `us-east-1`.
//! - StringToSign = `METHOD \n Content-MD5 \n Content-Type \n Date-or-Expires \n`
//!   CanonicalizedAmzHeaders CanonicalizedResource, built on bytes:
//!   - Content-MD5 and Content-Type are the header values, trimmed (empty when absent).
//!   - CanonicalizedAmzHeaders: every `x-amz-*` header, lowercase, sorted, values trimmed and
//!     joined with `,`, one `name:value\n` line each.
//!   - CanonicalizedResource: `/<bucket>` when the bucket came from the Host header
//!     (`vhost_bucket`), then the raw path exactly as sent (`/` when empty), then `?` and the
//!     sub-resources present in the query (the list AWS, botocore and minio-go sign), sorted by
//!     name, each with its percent-decoded value when it has one (a `+` stays a `+`).
//! - Header auth: the time is `x-amz-date` if present, else `Date` (RFC 1123 with a
//!   `GMT`/`UTC`/`±hhmm` zone, or ISO 8601 basic), within 15 minutes of `now`
//!   (`RequestTimeTooSkewed`). Clients disagree on the date line when `x-amz-date` is present,
//!   so each of these forms is accepted: the `Date` header (botocore, MinIO), empty (the AWS
//!   text, boto), or the `x-amz-date` value with `x-amz-date` left out of the amz headers (AWS's
//!   published example).
//! - Query auth: the date line is `Expires` (Unix seconds) and the request is refused with
//!   `AccessDenied` "Request has expired" once `now` is past it. Query parameters named
//!   `content-md5`, `content-type` or `x-amz-*` stand for the header of that name (botocore
//!   moves signed headers there when presigning). A `Signature` whose `+` arrived unencoded (and
//!   so decoded as a space) is repaired, since Base64 has no spaces.
//! - Clients also disagree on two resource details, and both forms are accepted: a sub-resource
//!   sent as `name=` signs as `name=` or `name`; a bucket-level resource signs as `/<bucket>/`
//!   or `/<bucket>` (botocore signs `/photos/` for a request to `/photos`). Each form names
//!   the same resource.
//! - Neither errors nor `Debug` output contain the secret key or the expected signature.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_lc_rs::{constant_time, hmac};
use http::header::{AUTHORIZATION, CONTENT_TYPE, DATE};
use http::request::Parts;

use super::canonical::{self, QueryParam};
use super::time::{self, AmzDate};
use super::{AuthError, Credentials, PayloadMode, Verified};
use crate::checksum::base64_decode;

/// Allowed distance between the request time and ours (AWS: 15 minutes).
const MAX_SKEW_SECS: u64 = 15 * 60;
/// SigV2 has no region; this is the one S3 used for it.
const REGION: &str = "us-east-1";
const CONTENT_MD5: &str = "content-md5";
const AMZ_DATE: &str = "x-amz-date";
const AMZ_PREFIX: &str = "x-amz-";
const QUERY_REQUIRED: &str =
    "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters";
/// Query parameters that are part of the CanonicalizedResource: AWS's list, plus those
/// botocore and minio-go sign too (all name operations this gateway may not implement).
const SUB_RESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "delete",
    "encryption",
    "inventory",
    "legal-hold",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "retention",
    "select",
    "select-type",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// Whether the request is SigV2-authenticated: an `Authorization` header of scheme `AWS`, or
/// (without that header) an `AWSAccessKeyId` query parameter. A request that also carries
/// `X-Amz-Algorithm` is left to SigV4, which reports the conflict.
pub(super) fn applies(parts: &Parts) -> bool {
    let params = canonical::parse_query(parts.uri.query());
    if has_param(&params, "X-Amz-Algorithm") {
        return false;
    }
    match parts.headers.get(AUTHORIZATION) {
        Some(value) => {
            let value = value.as_bytes();
            let scheme = value.split(|b| *b == b' ').next().unwrap_or(value);
            scheme == b"AWS"
        }
        None => has_param(&params, "AWSAccessKeyId"),
    }
}

/// What the request claims, parsed but not yet checked.
struct Claim {
    access_key: String,
    /// The decoded signature; empty when it was not valid Base64 (it then matches nothing).
    signature: Vec<u8>,
    /// `Some(Expires)` for query auth, as given and as a number.
    expires: Option<(String, i64)>,
}

/// Verifies a SigV2 request head; see the module contract. `vhost_bucket` is the bucket the
/// Host header named (virtual-host style), `None` for path-style requests.
pub(super) fn verify(
    parts: &Parts,
    creds: &Credentials,
    now: SystemTime,
    vhost_bucket: Option<&str>,
) -> Result<Verified, AuthError> {
    let params = canonical::parse_query(parts.uri.query());
    let claim = match parts.headers.get(AUTHORIZATION) {
        Some(_) if has_param(&params, "AWSAccessKeyId") || has_param(&params, "Signature") => {
            return Err(AuthError::ConflictingMechanisms)
        }
        Some(value) => header_claim(value.as_bytes())?,
        None => query_claim(&params)?,
    };
    if claim.access_key != creds.access_key {
        return Err(AuthError::InvalidAccessKeyId(claim.access_key));
    }
    let now = time::unix_seconds(now);
    let elements = Elements::new(parts, claim.expires.is_some().then_some(&params[..]));
    let date_lines = match &claim.expires {
        None => {
            let at = header_time(parts)?;
            if now.abs_diff(at) > MAX_SKEW_SECS {
                return Err(AuthError::RequestTimeTooSkewed);
            }
            header_date_lines(&elements)
        }
        Some((_, expires)) if now > *expires => return Err(AuthError::Expired),
        Some((text, _)) => vec![DateLine {
            value: text.as_bytes().to_vec(),
            skip_amz_date: false,
        }],
    };

    let key = hmac::Key::new(
        hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        creds.secret_key.as_bytes(),
    );
    let resources = canonical_resources(parts, vhost_bucket);
    let method = parts.method.as_str();
    let matched = date_lines.iter().any(|date| {
        resources.iter().any(|resource| {
            let string_to_sign = elements.string_to_sign(method, date, resource);
            let expected = hmac::sign(&key, &string_to_sign);
            constant_time::verify_slices_are_equal(expected.as_ref(), &claim.signature).is_ok()
        })
    });
    if !matched {
        return Err(AuthError::SignatureDoesNotMatch);
    }
    Ok(Verified {
        access_key: claim.access_key,
        region: REGION.to_owned(),
        payload: PayloadMode::Unsigned,
        chunk_signing: None,
    })
}

/// `AWS <AccessKeyId>:<Signature>`.
fn header_claim(value: &[u8]) -> Result<Claim, AuthError> {
    let malformed = || {
        AuthError::MalformedHeader(
            "Signature Version 2 expects \"AWS <AccessKeyId>:<Signature>\"".to_owned(),
        )
    };
    let value = std::str::from_utf8(value).map_err(|_| malformed())?.trim();
    let credentials = value.strip_prefix("AWS ").ok_or_else(malformed)?.trim();
    let (access_key, signature) = credentials.split_once(':').ok_or_else(malformed)?;
    if access_key.is_empty() || signature.is_empty() {
        return Err(malformed());
    }
    Ok(Claim {
        access_key: access_key.to_owned(),
        signature: base64_decode(signature).unwrap_or_default(),
        expires: None,
    })
}

/// `AWSAccessKeyId`, `Signature` and `Expires` from the query.
fn query_claim(params: &[QueryParam]) -> Result<Claim, AuthError> {
    let required = |name: &str| {
        single_param(params, name)?
            .ok_or_else(|| AuthError::MalformedQuery(QUERY_REQUIRED.to_owned()))
    };
    let access_key = required("AWSAccessKeyId")?;
    let signature = required("Signature")?;
    let expires_text = required("Expires")?;
    let expires = parse_expires(&expires_text).ok_or_else(|| {
        AuthError::MalformedQuery("Expires must be a number of seconds since the epoch".to_owned())
    })?;
    // An unencoded `+` in the query decodes as a space; Base64 never contains one.
    let signature = signature.replace(' ', "+");
    Ok(Claim {
        access_key,
        signature: base64_decode(&signature).unwrap_or_default(),
        expires: Some((expires_text, expires)),
    })
}

fn parse_expires(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The single value of query parameter `name` as UTF-8; repeated or non-UTF-8 is malformed.
fn single_param(params: &[QueryParam], name: &str) -> Result<Option<String>, AuthError> {
    let mut found = params.iter().filter(|(n, _)| n == name.as_bytes());
    let Some((_, value)) = found.next() else {
        return Ok(None);
    };
    if found.next().is_some() {
        return Err(AuthError::MalformedQuery(format!(
            "{name} is given more than once"
        )));
    }
    String::from_utf8(value.clone())
        .map(Some)
        .map_err(|_| AuthError::MalformedQuery(format!("{name} is not valid UTF-8")))
}

fn has_param(params: &[QueryParam], name: &str) -> bool {
    params.iter().any(|(n, _)| n == name.as_bytes())
}

/// The request time for header auth: `x-amz-date`, else `Date`, as Unix seconds.
fn header_time(parts: &Parts) -> Result<i64, AuthError> {
    let value = parts
        .headers
        .get(AMZ_DATE)
        .or_else(|| parts.headers.get(DATE))
        .ok_or(AuthError::InvalidDate)?;
    let text = value.to_str().map_err(|_| AuthError::InvalidDate)?;
    parse_date(text.trim()).ok_or(AuthError::InvalidDate)
}

/// RFC 1123 / RFC 822 dates (`Tue, 27 Mar 2007 19:36:42 +0000`, weekday optional, zone
/// `GMT`, `UT`, `UTC`, `Z` or `±hhmm`), or ISO 8601 basic (`20070327T193642Z`).
fn parse_date(text: &str) -> Option<i64> {
    if let Some(date) = AmzDate::parse_iso(text) {
        return Some(date.unix());
    }
    let rest = match text.split_once(',') {
        Some((weekday, rest)) if weekday.len() == 3 => rest,
        Some(_) => return None,
        None => text,
    };
    let mut fields = rest.split_ascii_whitespace();
    let (Some(day), Some(month), Some(year), Some(clock), Some(zone), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return None;
    };
    if !(1..=2).contains(&day.len()) {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? + 1;
    let clock = clock.as_bytes();
    if year.len() != 4 || clock.len() != 8 || clock[2] != b':' || clock[5] != b':' {
        return None;
    }
    let hms: String = [&clock[0..2], &clock[3..5], &clock[6..8]]
        .concat()
        .into_iter()
        .map(char::from)
        .collect();
    // Re-spelled in ISO 8601 basic form, which `AmzDate` checks field by field (the weekday
    // name, when given, is not cross-checked).
    let local = AmzDate::parse_iso(&format!("{year}{month:02}{day:0>2}T{hms}Z"))?.unix();
    Some(local - zone_offset(zone)?)
}

/// Seconds east of UTC.
fn zone_offset(zone: &str) -> Option<i64> {
    match zone {
        "GMT" | "UT" | "UTC" | "Z" => return Some(0),
        _ => {}
    }
    let (sign, digits) = match zone.split_at_checked(1)? {
        ("+", digits) => (1, digits),
        ("-", digits) => (-1, digits),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i64 = digits.get(..2)?.parse().ok()?;
    let minutes: i64 = digits.get(2..)?.parse().ok()?;
    (hours <= 23 && minutes <= 59).then_some(sign * (hours * 3600 + minutes * 60))
}

/// One way of filling the date line.
struct DateLine {
    value: Vec<u8>,
    /// Leave `x-amz-date` out of the amz headers (its value is the date line instead).
    skip_amz_date: bool,
}

/// The date-line forms clients use for header auth (see the module contract).
fn header_date_lines(elements: &Elements) -> Vec<DateLine> {
    let date = elements.date.clone().unwrap_or_default();
    let Some(amz_date) = elements.amz.get(AMZ_DATE) else {
        return vec![DateLine {
            value: date,
            skip_amz_date: false,
        }];
    };
    let mut lines = vec![
        DateLine {
            value: date.clone(),
            skip_amz_date: false,
        },
        DateLine {
            value: amz_date.clone(),
            skip_amz_date: true,
        },
    ];
    if !date.is_empty() {
        lines.push(DateLine {
            value: Vec::new(),
            skip_amz_date: false,
        });
    }
    lines
}

/// The header-derived parts of the StringToSign.
struct Elements {
    content_md5: Vec<u8>,
    content_type: Vec<u8>,
    date: Option<Vec<u8>>,
    /// Lowercase `x-amz-*` name → values trimmed and joined with `,`.
    amz: BTreeMap<String, Vec<u8>>,
}

impl Elements {
    /// From the headers; with `query` (query auth), parameters named `content-md5`,
    /// `content-type` or `x-amz-*` replace the header of that name.
    fn new(parts: &Parts, query: Option<&[QueryParam]>) -> Self {
        let mut elements = Elements {
            content_md5: joined(
                parts
                    .headers
                    .get_all(CONTENT_MD5)
                    .iter()
                    .map(|v| v.as_bytes()),
            ),
            content_type: joined(
                parts
                    .headers
                    .get_all(CONTENT_TYPE)
                    .iter()
                    .map(|v| v.as_bytes()),
            ),
            date: parts.headers.get(DATE).map(|v| trim(v.as_bytes()).to_vec()),
            amz: BTreeMap::new(),
        };
        for name in parts.headers.keys() {
            if name.as_str().starts_with(AMZ_PREFIX) {
                let values = parts.headers.get_all(name).iter().map(|v| v.as_bytes());
                elements
                    .amz
                    .insert(name.as_str().to_owned(), joined(values));
            }
        }
        let Some(query) = query else {
            return elements;
        };
        let mut overrides: BTreeMap<String, Vec<&[u8]>> = BTreeMap::new();
        for (name, value) in query {
            let Ok(name) = std::str::from_utf8(name) else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            if name == CONTENT_MD5 || name == CONTENT_TYPE.as_str() || name.starts_with(AMZ_PREFIX)
            {
                overrides.entry(name).or_default().push(value);
            }
        }
        for (name, values) in overrides {
            let value = joined(values.into_iter());
            if name == CONTENT_MD5 {
                elements.content_md5 = value;
            } else if name == CONTENT_TYPE.as_str() {
                elements.content_type = value;
            } else {
                elements.amz.insert(name, value);
            }
        }
        elements
    }

    fn string_to_sign(&self, method: &str, date: &DateLine, resource: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + resource.len());
        for line in [
            method.as_bytes(),
            &self.content_md5,
            &self.content_type,
            &date.value,
        ] {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        for (name, value) in &self.amz {
            if date.skip_amz_date && name == AMZ_DATE {
                continue;
            }
            out.extend_from_slice(name.as_bytes());
            out.push(b':');
            out.extend_from_slice(value);
            out.push(b'\n');
        }
        out.extend_from_slice(resource);
        out
    }
}

fn joined<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, value) in values.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(trim(value));
    }
    out
}

fn trim(bytes: &[u8]) -> &[u8] {
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or_default()
}

/// The CanonicalizedResource forms to try (see the module contract), most standard first.
fn canonical_resources(parts: &Parts, vhost_bucket: Option<&str>) -> Vec<Vec<u8>> {
    let raw_path = canonical::raw_path(parts);
    let path = match vhost_bucket {
        None => raw_path.to_owned(),
        Some(bucket) => format!("/{bucket}{raw_path}"),
    };
    let mut paths = vec![path.clone()];
    // A bucket-level resource is `/bucket` or `/bucket/` depending on the client.
    if let Some(bucket) = path.strip_prefix('/').filter(|b| !b.is_empty()) {
        match bucket.strip_suffix('/') {
            Some(name) if !name.is_empty() && !name.contains('/') => paths.push(format!("/{name}")),
            None if !bucket.contains('/') => paths.push(format!("{path}/")),
            _ => {}
        }
    }
    let sub_resources = sub_resources(parts.uri.query());
    let mut queries = vec![sub_resource_query(&sub_resources, true)];
    let bare = sub_resource_query(&sub_resources, false);
    if bare != queries[0] {
        queries.push(bare);
    }
    let mut resources = Vec::with_capacity(paths.len() * queries.len());
    for path in &paths {
        for query in &queries {
            let mut resource = path.as_bytes().to_vec();
            resource.extend_from_slice(query);
            resources.push(resource);
        }
    }
    resources
}

/// A sub-resource: name, and value if the parameter had an `=`.
type SubResource = (Vec<u8>, Option<Vec<u8>>);

/// The sub-resource parameters of the raw query, percent-decoded (`+` kept), sorted by name.
fn sub_resources(raw_query: Option<&str>) -> Vec<SubResource> {
    let mut found: Vec<SubResource> = raw_query
        .unwrap_or_default()
        .split('&')
        .filter(|piece| !piece.is_empty())
        .filter_map(|piece| {
            let (name, value) = match piece.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (piece, None),
            };
            let name = percent_decode(name);
            SUB_RESOURCES
                .iter()
                .any(|s| s.as_bytes() == name.as_slice())
                .then(|| (name, value.map(percent_decode)))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// `?name[=value]&...`, or nothing without sub-resources. `keep_empty_values`: a parameter
/// sent as `name=` signs as `name=` (else as `name`).
fn sub_resource_query(sub_resources: &[SubResource], keep_empty_values: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (name, value)) in sub_resources.iter().enumerate() {
        out.push(if i == 0 { b'?' } else { b'&' });
        out.extend_from_slice(name);
        match value {
            Some(value) if keep_empty_values || !value.is_empty() => {
                out.push(b'=');
                out.extend_from_slice(value);
            }
            _ => {}
        }
    }
    out
}

/// Decodes `%XX` escapes; a malformed escape and `+` stay literal.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|hex| b == b'%' && hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(decoded) => {
                out.push(decoded);
                i += 3;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
