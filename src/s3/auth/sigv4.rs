//! SigV4 verification of a request head, in the `Authorization` header or the query string.
//!
//! The contract is stated on [`super`]; this file holds the order of the checks:
//! 1. pick the mechanism (query `X-Amz-Algorithm`, else `Authorization`; both is an error);
//! 2. parse it completely (malformed → `AuthorizationHeaderMalformed` /
//!    `AuthorizationQueryParametersError`, bad payload hash → `InvalidArgument`);
//! 3. `host` and every `x-amz-*` header present must be signed;
//! 4. the access key must be ours; 5. the time must be acceptable;
//! 6. the signature must match, over the raw path first, then over its RFC 3986 form.

use std::collections::BTreeSet;
use std::time::SystemTime;

use aws_lc_rs::hmac;
use http::header::{AUTHORIZATION, DATE};
use http::request::Parts;
use http::{HeaderName, HeaderValue};

use super::canonical::{self, QueryParam};
use super::signing::{self, ChunkSigning, ALGORITHM, SERVICE, TERMINATOR};
use super::time::{self, AmzDate};
use super::{AuthError, Credentials, PayloadMode, Verified};

/// Allowed distance between the request time and ours (AWS: 15 minutes).
const MAX_SKEW_SECS: u64 = 15 * 60;
/// The longest presigned-URL lifetime AWS allows: one week.
const MAX_EXPIRES_SECS: i64 = 604_800;
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
const CONTENT_SHA256: &str = "x-amz-content-sha256";
const SIGNATURE_PARAM: &[u8] = b"X-Amz-Signature";
const QUERY_REQUIRED: &str = "Query-string authentication version 4 requires the X-Amz-Algorithm, \
     X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.";

/// What a request claims about itself, parsed but not yet checked.
struct Claim<'a> {
    access_key: &'a str,
    region: &'a str,
    signed_headers: &'a str,
    signature: [u8; 32],
    date: AmzDate,
    /// The payload hash exactly as the client gave it (the canonical request's last line).
    payload_hash: &'a str,
    payload: PayloadMode,
    /// `X-Amz-Expires`, for query auth only.
    expires: Option<i64>,
}

/// Verifies the SigV4 signature of a request head against the single tenant's credentials.
///
/// See the [module contract](super) for exactly what `Ok` guarantees and what the caller
/// still has to check on the body.
pub fn verify_request(
    parts: &Parts,
    creds: &Credentials,
    now: SystemTime,
) -> Result<Verified, AuthError> {
    let params = canonical::parse_query(parts.uri.query());
    let algorithm = query_value(&params, "X-Amz-Algorithm")?;
    let claim = match (algorithm, parts.headers.get(AUTHORIZATION)) {
        (Some(_), Some(_)) => return Err(AuthError::ConflictingMechanisms),
        (Some(algorithm), None) => query_claim(algorithm, &params)?,
        (None, Some(header)) => header_claim(header, parts)?,
        (None, None) => return Err(no_authentication(&params)),
    };
    let malformed = if claim.expires.is_some() {
        AuthError::MalformedQuery
    } else {
        AuthError::MalformedHeader
    };
    let signed = split_signed_headers(claim.signed_headers, malformed)?;
    check_signed_headers(parts, &signed)?;
    if claim.access_key != creds.access_key {
        return Err(AuthError::InvalidAccessKeyId(claim.access_key.to_owned()));
    }
    check_time(&claim, time::unix_seconds(now))?;

    let key = signing::signing_key(&creds.secret_key, claim.date.date(), claim.region);
    let scope = signing::scope(claim.date.date(), claim.region);
    if !signature_matches(parts, &claim, &params, &signed, &key, &scope) {
        return Err(AuthError::SignatureDoesNotMatch);
    }

    let chunk_signing = matches!(
        claim.payload,
        PayloadMode::StreamingSigned | PayloadMode::StreamingSignedTrailer
    )
    .then(|| ChunkSigning::new(key, claim.date.iso().to_owned(), scope, claim.signature));
    Ok(Verified {
        access_key: claim.access_key.to_owned(),
        region: claim.region.to_owned(),
        payload: claim.payload,
        chunk_signing,
    })
}

/// Whether the claimed signature is the one over the request's canonical form: with the raw
/// path first, then (if different) with its RFC 3986 form.
fn signature_matches(
    parts: &Parts,
    claim: &Claim<'_>,
    params: &[QueryParam],
    signed: &[&str],
    key: &hmac::Key,
    scope: &str,
) -> bool {
    let skip = claim.expires.is_some().then_some(SIGNATURE_PARAM);
    let query = canonical::canonical_query(params, skip);
    let headers = canonical::canonical_headers(parts, signed);
    let matches = |path: &str| {
        let request = canonical::canonical_request(
            parts.method.as_str(),
            path,
            &query,
            &headers,
            claim.signed_headers,
            claim.payload_hash,
        );
        let string_to_sign = format!(
            "{ALGORITHM}\n{}\n{scope}\n{}",
            claim.date.iso(),
            signing::hex(&signing::sha256(&request))
        );
        signing::same_signature(
            &signing::sign(key, string_to_sign.as_bytes()),
            &claim.signature,
        )
    };
    let raw = canonical::raw_path(parts);
    let normalized = canonical::normalized_path(raw);
    matches(raw) || (normalized != raw && matches(&normalized))
}

/// The error for a request with neither mechanism: a half-built presigned URL, SigV2, or none.
fn no_authentication(params: &[QueryParam]) -> AuthError {
    let has = |name: &str| params.iter().any(|(n, _)| n == name.as_bytes());
    if has("X-Amz-Credential") || has("X-Amz-Signature") {
        AuthError::MalformedQuery(QUERY_REQUIRED.to_owned())
    } else if has("AWSAccessKeyId") && has("Signature") {
        AuthError::UnsupportedMechanism
    } else {
        AuthError::MissingAuthentication
    }
}

fn header_claim<'a>(value: &'a HeaderValue, parts: &'a Parts) -> Result<Claim<'a>, AuthError> {
    let malformed = |msg: &str| AuthError::MalformedHeader(msg.to_owned());
    let value = value
        .to_str()
        .map_err(|_| malformed("it contains non-ASCII bytes"))?
        .trim();
    let (algorithm, rest) = value.split_once(' ').unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(if algorithm == "AWS" || algorithm.starts_with("AWS4-") {
            AuthError::UnsupportedMechanism
        } else {
            AuthError::UnsupportedAuthorizationType
        });
    }

    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for component in rest.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let (name, value) = component.split_once('=').ok_or_else(|| {
            AuthError::MalformedHeader(format!("expected name=value, found \"{component}\""))
        })?;
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => {
                return Err(AuthError::MalformedHeader(format!(
                    "unknown component \"{name}\""
                )))
            }
        };
        if slot.replace(value).is_some() {
            return Err(AuthError::MalformedHeader(format!(
                "{name} is given more than once"
            )));
        }
    }
    let credential = credential.ok_or_else(|| malformed("missing Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| malformed("missing SignedHeaders"))?;
    let signature = signature.ok_or_else(|| malformed("missing Signature"))?;
    let signature = signing::parse_hex32(signature)
        .ok_or_else(|| malformed("Signature must be 64 hexadecimal digits"))?;

    let payload_hash = parts
        .headers
        .get(CONTENT_SHA256)
        .ok_or(AuthError::MissingContentSha256)?
        .to_str()
        .map_err(|_| AuthError::InvalidContentSha256)?;
    let payload = parse_payload(payload_hash)?;
    let date = header_date(parts)?;
    let (access_key, region) = parse_credential(credential, &date, AuthError::MalformedHeader)?;
    Ok(Claim {
        access_key,
        region,
        signed_headers,
        signature,
        date,
        payload_hash,
        payload,
        expires: None,
    })
}

/// `x-amz-date` (ISO 8601 basic), else `Date` (ISO 8601 basic or IMF-fixdate).
fn header_date(parts: &Parts) -> Result<AmzDate, AuthError> {
    fn text(value: &HeaderValue) -> Result<&str, AuthError> {
        value.to_str().map_err(|_| AuthError::InvalidDate)
    }
    if let Some(value) = parts.headers.get("x-amz-date") {
        return AmzDate::parse_iso(text(value)?).ok_or(AuthError::InvalidDate);
    }
    let value = parts.headers.get(DATE).ok_or(AuthError::InvalidDate)?;
    let value = text(value)?;
    AmzDate::parse_iso(value)
        .or_else(|| AmzDate::parse_http(value))
        .ok_or(AuthError::InvalidDate)
}

fn query_claim<'a>(algorithm: &'a str, params: &'a [QueryParam]) -> Result<Claim<'a>, AuthError> {
    let malformed = |msg: &str| AuthError::MalformedQuery(msg.to_owned());
    if algorithm != ALGORITHM {
        return Err(malformed(
            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"",
        ));
    }
    let required = |name: &str| query_value(params, name)?.ok_or_else(|| malformed(QUERY_REQUIRED));
    let credential = required("X-Amz-Credential")?;
    let date = required("X-Amz-Date")?;
    let expires = required("X-Amz-Expires")?;
    let signed_headers = required("X-Amz-SignedHeaders")?;
    let signature = required("X-Amz-Signature")?;

    let date = AmzDate::parse_iso(date).ok_or_else(|| {
        malformed("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    })?;
    let expires = parse_expires(expires).ok_or_else(|| {
        malformed("X-Amz-Expires must be a whole number of seconds from 1 to 604800")
    })?;
    let signature = signing::parse_hex32(signature)
        .ok_or_else(|| malformed("X-Amz-Signature must be 64 hexadecimal digits"))?;
    let payload_hash = query_value(params, "X-Amz-Content-Sha256")?.unwrap_or(UNSIGNED_PAYLOAD);
    let payload = parse_payload(payload_hash)?;
    let (access_key, region) = parse_credential(credential, &date, AuthError::MalformedQuery)?;
    Ok(Claim {
        access_key,
        region,
        signed_headers,
        signature,
        date,
        payload_hash,
        payload,
        expires: Some(expires),
    })
}

/// The single value of query parameter `name`; repeated or non-UTF-8 is malformed.
fn query_value<'a>(params: &'a [QueryParam], name: &str) -> Result<Option<&'a str>, AuthError> {
    let mut found = params.iter().filter(|(n, _)| n == name.as_bytes());
    let Some((_, value)) = found.next() else {
        return Ok(None);
    };
    if found.next().is_some() {
        return Err(AuthError::MalformedQuery(format!(
            "{name} is given more than once"
        )));
    }
    std::str::from_utf8(value)
        .map(Some)
        .map_err(|_| AuthError::MalformedQuery(format!("{name} is not valid UTF-8")))
}

fn parse_expires(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 7 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse()
        .ok()
        .filter(|s| (1..=MAX_EXPIRES_SECS).contains(s))
}

/// `<access key>/<YYYYMMDD>/<region>/s3/aws4_request`, the date being the request's.
fn parse_credential<'a>(
    credential: &'a str,
    date: &AmzDate,
    malformed: fn(String) -> AuthError,
) -> Result<(&'a str, &'a str), AuthError> {
    let mut fields = credential.split('/');
    let (Some(access_key), Some(scope_date), Some(region), Some(service), Some(terminator), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(malformed(
            "the Credential must be <access key>/<YYYYMMDD>/<region>/s3/aws4_request".to_owned(),
        ));
    };
    if access_key.is_empty() || region.is_empty() {
        return Err(malformed(
            "the Credential has an empty access key or region".to_owned(),
        ));
    }
    if terminator != TERMINATOR {
        return Err(malformed(format!(
            "incorrect terminal \"{terminator}\"; this endpoint uses \"{TERMINATOR}\""
        )));
    }
    if service != SERVICE {
        return Err(malformed(format!(
            "incorrect service \"{service}\"; this endpoint belongs to \"{SERVICE}\""
        )));
    }
    if scope_date != date.date() {
        return Err(malformed(format!(
            "invalid credential date \"{scope_date}\"; it is not the same as X-Amz-Date \"{}\"",
            date.date()
        )));
    }
    Ok((access_key, region))
}

fn parse_payload(text: &str) -> Result<PayloadMode, AuthError> {
    Ok(match text {
        UNSIGNED_PAYLOAD => PayloadMode::Unsigned,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" => PayloadMode::StreamingSigned,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" => PayloadMode::StreamingSignedTrailer,
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER" => PayloadMode::StreamingUnsignedTrailer,
        hash => {
            PayloadMode::Sha256(signing::parse_hex32(hash).ok_or(AuthError::InvalidContentSha256)?)
        }
    })
}

/// The `;`-separated signed header names: lowercase, valid, without repeats.
fn split_signed_headers(
    list: &str,
    malformed: fn(String) -> AuthError,
) -> Result<Vec<&str>, AuthError> {
    let mut seen = BTreeSet::new();
    let mut names = Vec::new();
    for name in list.split(';') {
        let valid = HeaderName::from_bytes(name.as_bytes()).is_ok()
            && !name.bytes().any(|b| b.is_ascii_uppercase());
        if !valid {
            return Err(malformed(format!(
                "SignedHeaders has an invalid header name \"{name}\""
            )));
        }
        if !seen.insert(name) {
            return Err(malformed(format!(
                "SignedHeaders lists \"{name}\" more than once"
            )));
        }
        names.push(name);
    }
    Ok(names)
}

/// `host` and every `x-amz-*` header present must be signed, as on AWS. `x-amz-content-sha256`
/// is exempt: its value is the canonical request's payload line, so it is covered anyway.
fn check_signed_headers(parts: &Parts, signed: &[&str]) -> Result<(), AuthError> {
    let signed: BTreeSet<&str> = signed.iter().copied().collect();
    let mut unsigned = Vec::new();
    if !signed.contains("host") {
        unsigned.push("host".to_owned());
    }
    for name in parts.headers.keys().map(HeaderName::as_str) {
        if name.starts_with("x-amz-") && name != CONTENT_SHA256 && !signed.contains(name) {
            unsigned.push(name.to_owned());
        }
    }
    if unsigned.is_empty() {
        Ok(())
    } else {
        Err(AuthError::HeadersNotSigned(unsigned))
    }
}

fn check_time(claim: &Claim<'_>, now: i64) -> Result<(), AuthError> {
    let at = claim.date.unix();
    match claim.expires {
        None if now.abs_diff(at) > MAX_SKEW_SECS => Err(AuthError::RequestTimeTooSkewed),
        None => Ok(()),
        Some(_) if at > now && at.abs_diff(now) > MAX_SKEW_SECS => Err(AuthError::NotYetValid),
        Some(expires) if now > at.saturating_add(expires) => Err(AuthError::Expired),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod sdk_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
