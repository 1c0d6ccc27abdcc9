//! Entry points for the fuzz targets in `fuzz/`: each runs one family of parsers over
//! arbitrary bytes. None may panic, hang or allocate without bound on any input; the
//! results are dropped.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};

use super::auth::{self, ChunkedDecoder, Credentials, PayloadMode};
use super::{headers, object, router, xml};

/// Splits fuzz input into a request: the first line is `METHOD target`, every further line
/// up to an empty one is `name: value`; what follows is the rest (a body, say).
fn request(data: &[u8]) -> Option<(http::request::Parts, &[u8])> {
    let split = data
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or(data.len());
    let (head, rest) = data.split_at(split);
    let rest = rest.get(2..).unwrap_or(&[]);
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.lines();
    let (method, target) = lines.next()?.split_once(' ')?;
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).ok()?)
        .uri(target)
        .body(())
        .ok()?;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) {
            req.headers_mut().append(n, v);
        }
    }
    Some((req.into_parts().0, rest))
}

/// SigV4 (header and presigned query forms) and SigV2 request authentication, with the
/// query and path parsers around them.
pub fn auth(data: &[u8]) {
    let Some((parts, _)) = request(data) else {
        return;
    };
    let creds = Credentials {
        access_key: "AKIDEXAMPLE".into(),
        secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600);
    let _ = router::Query::parse(parts.uri.query());
    let _ = router::decode_path(parts.uri.path());
    let _ = auth::verify_request(&parts, &creds, now, None);
    let _ = auth::verify_request(&parts, &creds, now, Some("bucket"));
}

/// The aws-chunked decoder in every form: signed, signed with trailer, unsigned with
/// trailer. The first byte picks the form and how the rest is cut into reads.
pub fn chunked(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let mode = match first % 3 {
        0 => PayloadMode::StreamingSigned,
        1 => PayloadMode::StreamingSignedTrailer,
        _ => PayloadMode::StreamingUnsignedTrailer,
    };
    let signing = auth::fuzz_chunk_signing();
    let signing = (!matches!(mode, PayloadMode::StreamingUnsignedTrailer)).then_some(&signing);
    let Ok(mut decoder) = ChunkedDecoder::new(&mode, signing, 1 << 20) else {
        return;
    };
    let step = usize::from(first / 3).max(1);
    let mut out = Vec::new();
    for piece in body.chunks(step) {
        out.clear();
        if decoder.feed(piece, &mut out).is_err() {
            return;
        }
    }
    let _ = decoder.finish();
}

/// Every XML request body: CreateBucketConfiguration, Delete, Tagging,
/// CompleteMultipartUpload.
pub fn xml(data: &[u8]) {
    let _ = xml::read::parse_create_bucket_configuration(data);
    let _ = xml::read::parse_delete(data);
    let _ = xml::read::parse_tagging(data);
    let _ = xml::read::parse_complete_multipart_upload(data);
}

/// Range, conditional and the other request headers the handlers parse.
pub fn headers(data: &[u8]) {
    let Some((parts, _)) = request(data) else {
        return;
    };
    let h: &HeaderMap = &parts.headers;
    if let Some(r) = headers::header_str(h, "range") {
        let _ = object::parse_range(r);
    }
    let _ = headers::conditions(h, "");
    let _ = headers::conditions(h, "x-amz-copy-source-");
    let _ = headers::write_precondition(h);
    let _ = headers::delete_condition(h);
    let _ = headers::content_md5(h);
    let _ = headers::copy_source(h);
    let _ = headers::tagging_header(h);
    let _ = headers::user_meta(h);
    let _ = super::checksum_headers::parse_request_checksums(h);
}
