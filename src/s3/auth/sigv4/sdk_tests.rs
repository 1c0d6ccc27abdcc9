//! Requests signed by aws-sigv4, the AWS SDK's own signer, verified by ours.

use std::time::Duration;

use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
    SignatureLocation, SigningSettings, UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;

use super::super::{ChunkedDecoder, ChunkedError};
use super::tests::{at, creds, ACCESS_KEY, SECRET};
use super::*;

const SIGNED_AT: u64 = 1_795_601_472; // 20261125T101112Z

/// Signs `request` the way aws-sdk-s3 does and returns its head as a server receives it:
/// origin-form URI plus a Host header.
fn sign_like_the_sdk(
    mut request: http::Request<()>,
    body: SignableBody<'_>,
    presign_for: Option<Duration>,
    region: &str,
) -> Parts {
    let identity =
        aws_sdk_s3::config::Credentials::new(ACCESS_KEY, SECRET, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    if let Some(expires) = presign_for {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expires);
        settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
    } else {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("s3")
        .time(at(SIGNED_AT))
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let uri = request.uri().to_string();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    let signable = SignableRequest::new(
        request.method().as_str(),
        uri,
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        body,
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    instructions.apply_to_request_http1x(&mut request);
    let (mut parts, ()) = request.into_parts();
    let authority = parts.uri.authority().unwrap().as_str().to_owned();
    parts.headers.insert("host", authority.parse().unwrap());
    parts.uri = parts
        .uri
        .path_and_query()
        .unwrap()
        .as_str()
        .parse()
        .unwrap();
    parts
}

fn sdk_request(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::Request<()> {
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap()
}

fn verify_at(parts: &Parts, secs: u64) -> Result<Verified, AuthError> {
    verify_request(parts, &creds(), at(secs))
}

#[test]
fn sdk_signed_requests_with_awkward_paths_and_queries_verify() {
    for uri in [
        "http://127.0.0.1:7777/bucket/dir/a%20b%2Bc/%C3%BCn%C3%AF%C2%A9%C3%B8d%C3%A9.txt",
        "http://127.0.0.1:7777/bucket/literal+plus/x",
        "http://127.0.0.1:7777/bucket/slash%2Finside/%7Etilde",
        "http://bucket.localhost:7777/?list-type=2&prefix=&delimiter=%2F&continuation-token=a%2Bb%3D%3D",
        "http://127.0.0.1:7777/bucket?uploads",
        "http://127.0.0.1:7777/bucket/key?acl&versionId=",
        "http://127.0.0.1:7777/bucket?prefix=a%20b&prefix=a%2Bb&marker=%E2%82%AC",
    ] {
        let request = sdk_request("GET", uri, &[("range", "bytes=0-9")]);
        let parts = sign_like_the_sdk(request, SignableBody::Bytes(b""), None, "us-east-1");
        let verified = verify_at(&parts, SIGNED_AT).unwrap_or_else(|e| panic!("{uri}: {e:?}"));
        assert_eq!(verified.payload, PayloadMode::Sha256(signing::sha256(b"")));
    }
}

#[test]
fn sdk_signed_put_verifies_and_tampering_is_caught() {
    let request = sdk_request(
        "PUT",
        "http://127.0.0.1:7777/bucket/photos/2026/cat.jpg?tagging",
        &[
            ("content-type", "image/jpeg"),
            ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
            ("x-amz-meta-note", "two   spaces  inside"),
            ("x-amz-storage-class", "STANDARD"),
        ],
    );
    let parts = sign_like_the_sdk(request, SignableBody::Bytes(b"meow"), None, "eu-west-3");
    let verified = verify_at(&parts, SIGNED_AT).unwrap();
    assert_eq!(verified.region, "eu-west-3");
    assert_eq!(
        verified.payload,
        PayloadMode::Sha256(signing::sha256(b"meow"))
    );

    let tamper = |change: &dyn Fn(&mut Parts)| {
        let mut copy = parts.clone();
        change(&mut copy);
        verify_at(&copy, SIGNED_AT).unwrap_err()
    };
    let mismatch = AuthError::SignatureDoesNotMatch;
    assert_eq!(
        tamper(&|p| {
            p.headers
                .insert("x-amz-meta-note", "two spaces inside!".parse().unwrap());
        }),
        mismatch
    );
    assert_eq!(
        tamper(&|p| {
            p.headers
                .insert("content-type", "text/plain".parse().unwrap());
        }),
        mismatch
    );
    assert_eq!(
        tamper(&|p| {
            p.headers.insert("host", "127.0.0.1:7778".parse().unwrap());
        }),
        mismatch
    );
    assert_eq!(
        tamper(&|p| p.uri = "/bucket/photos/2026/dog.jpg?tagging".parse().unwrap()),
        mismatch
    );
    assert_eq!(
        tamper(&|p| p.uri = "/bucket/photos/2026/cat.jpg?tagging&x=1".parse().unwrap()),
        mismatch
    );
    assert_eq!(
        tamper(&|p| p.uri = "/bucket/photos/2026/cat.jpg".parse().unwrap()),
        mismatch
    );
    assert_eq!(tamper(&|p| p.method = http::Method::POST), mismatch);
    assert_eq!(
        tamper(&|p| {
            p.headers.insert(
                "x-amz-content-sha256",
                signing::hex(&signing::sha256(b"woof")).parse().unwrap(),
            );
        }),
        mismatch
    );
    // Whitespace the canonical form removes does not matter.
    let mut spaced = parts.clone();
    spaced
        .headers
        .insert("x-amz-meta-note", "  two spaces   inside ".parse().unwrap());
    assert!(verify_at(&spaced, SIGNED_AT).is_ok());
    // Nor does HTTP/2's missing Host header when the URI carries the authority.
    let mut h2 = parts.clone();
    h2.headers.remove("host");
    h2.uri = "http://127.0.0.1:7777/bucket/photos/2026/cat.jpg?tagging"
        .parse()
        .unwrap();
    assert!(verify_at(&h2, SIGNED_AT).is_ok());
}

#[test]
fn sdk_presigned_urls_verify_within_their_lifetime() {
    for (method, uri) in [
        ("GET", "http://127.0.0.1:7777/bucket/some%20key%2Bplus.txt"),
        (
            "PUT",
            "http://127.0.0.1:7777/bucket/upload?partNumber=3&uploadId=abc%2Fdef",
        ),
    ] {
        let request = sdk_request(method, uri, &[]);
        let parts = sign_like_the_sdk(
            request,
            SignableBody::UnsignedPayload,
            Some(Duration::from_secs(3600)),
            "us-east-1",
        );
        assert!(parts.uri.query().unwrap().contains("X-Amz-Signature="));
        let verified =
            verify_at(&parts, SIGNED_AT + 3600).unwrap_or_else(|e| panic!("{uri}: {e:?}"));
        assert_eq!(verified.payload, PayloadMode::Unsigned);
        assert!(verified.chunk_signing.is_none());
        assert!(verify_at(&parts, SIGNED_AT - 600).is_ok());
        assert_eq!(
            verify_at(&parts, SIGNED_AT + 3601).unwrap_err(),
            AuthError::Expired
        );
        assert_eq!(
            verify_at(&parts, SIGNED_AT - 901).unwrap_err(),
            AuthError::NotYetValid
        );

        let mut moved = parts.clone();
        let query = parts.uri.query().unwrap();
        moved.uri = format!("/bucket/elsewhere?{query}").parse().unwrap();
        assert_eq!(
            verify_at(&moved, SIGNED_AT).unwrap_err(),
            AuthError::SignatureDoesNotMatch
        );
        let mut longer = parts.clone();
        longer.uri = format!(
            "{}?{}",
            parts.uri.path(),
            query.replace("X-Amz-Expires=3600", "X-Amz-Expires=7200")
        )
        .parse()
        .unwrap();
        assert_eq!(
            verify_at(&longer, SIGNED_AT).unwrap_err(),
            AuthError::SignatureDoesNotMatch
        );
    }
}

#[test]
fn sdk_signed_streaming_upload_decodes_end_to_end() {
    let request = sdk_request(
        "PUT",
        "http://127.0.0.1:7777/bucket/big.bin",
        &[
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "70000"),
        ],
    );
    let parts = sign_like_the_sdk(
        request,
        SignableBody::Precomputed("STREAMING-AWS4-HMAC-SHA256-PAYLOAD".to_owned()),
        None,
        "us-east-1",
    );
    let verified = verify_at(&parts, SIGNED_AT).unwrap();
    assert_eq!(verified.payload, PayloadMode::StreamingSigned);
    let signing = verified.chunk_signing.clone().unwrap();

    // Chunk signatures from aws-sigv4, chained from the seed our verifier returned.
    let identity =
        aws_sdk_s3::config::Credentials::new(ACCESS_KEY, SECRET, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(at(SIGNED_AT))
        .settings(())
        .build()
        .unwrap();
    let data: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let mut body = Vec::new();
    let mut running = signing::hex(&signing.seed_signature());
    for chunk in data.chunks(65_536).chain([&[][..]]) {
        let signature = v4::sign_chunk(&Bytes::copy_from_slice(chunk), &running, &params)
            .unwrap()
            .signature()
            .to_owned();
        body.extend_from_slice(
            format!("{:x};chunk-signature={signature}\r\n", chunk.len()).as_bytes(),
        );
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
        running = signature;
    }
    let mut decoder = ChunkedDecoder::new(&verified.payload, Some(&signing), 65_536).unwrap();
    let mut out = Vec::new();
    for piece in body.chunks(1000) {
        decoder.feed(piece, &mut out).unwrap();
    }
    assert_eq!(decoder.decoded_len(), 70_000);
    assert_eq!(decoder.finish().unwrap(), vec![]);
    assert!(out == data);

    // One flipped data bit fails the first chunk, and nothing is released.
    let mut other = ChunkedDecoder::new(&verified.payload, Some(&signing), 65_536).unwrap();
    let mut tampered = body.clone();
    tampered[100] ^= 1;
    let mut sink = Vec::new();
    assert_eq!(
        other.feed(&tampered, &mut sink),
        Err(ChunkedError::ChunkSignatureMismatch)
    );
    assert!(sink.is_empty());
}
