//! AWS's published SigV4 examples and the refusals, against our verifier.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::super::ChunkedDecoder;
use super::*;

pub(super) const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
pub(super) const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// 20130524T000000Z, the time of every AWS example.
const EXAMPLE_TIME: u64 = 1_369_353_600;
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

pub(super) fn creds() -> Credentials {
    Credentials {
        access_key: ACCESS_KEY.to_owned(),
        secret_key: SECRET.to_owned(),
    }
}

pub(super) fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn head(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

fn authorization(signed_headers: &str, signature: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20130524/us-east-1/s3/aws4_request,\
         SignedHeaders={signed_headers},Signature={signature}"
    )
}

fn verify(parts: &Parts) -> Result<Verified, AuthError> {
    verify_request(parts, &creds(), at(EXAMPLE_TIME))
}

// ---- AWS's published examples (sig-v4-header-based-auth, sigv4-query-string-auth,
// ---- sigv4-streaming, sigv4-streaming-trailers).

fn get_object_example(signature: &str) -> Parts {
    let auth = authorization("host;range;x-amz-content-sha256;x-amz-date", signature);
    head(
        "GET",
        "/test.txt",
        &[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
            ("authorization", &auth),
        ],
    )
}

#[test]
fn aws_example_get_object() {
    let verified = verify(&get_object_example(
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    ))
    .unwrap();
    assert_eq!(verified.access_key, ACCESS_KEY);
    assert_eq!(verified.region, "us-east-1");
    assert_eq!(verified.payload, PayloadMode::Sha256(signing::sha256(b"")));
    assert!(verified.chunk_signing.is_none());
}

#[test]
fn aws_example_put_object_with_a_reserved_character() {
    let auth = authorization(
        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
    );
    let body_hash = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
    assert_eq!(
        signing::hex(&signing::sha256(b"Welcome to Amazon S3.")),
        body_hash
    );
    // As the client sends it, and with `$` left unencoded on the wire.
    for path in ["/test%24file.text", "/test$file.text"] {
        let parts = head(
            "PUT",
            path,
            &[
                ("host", "examplebucket.s3.amazonaws.com"),
                ("date", "Fri, 24 May 2013 00:00:00 GMT"),
                ("x-amz-date", "20130524T000000Z"),
                ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
                ("x-amz-content-sha256", body_hash),
                ("authorization", &auth),
            ],
        );
        let verified = verify(&parts).unwrap();
        assert_eq!(
            verified.payload,
            PayloadMode::Sha256(signing::parse_hex32(body_hash).unwrap())
        );
    }
    // A different key is a different resource.
    let parts = head(
        "PUT",
        "/test%25file.text",
        &[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-content-sha256", body_hash),
            ("authorization", &auth),
        ],
    );
    assert_eq!(
        verify(&parts).unwrap_err(),
        AuthError::SignatureDoesNotMatch
    );
}

fn bucket_get(uri: &str, signature: &str) -> Parts {
    let auth = authorization("host;x-amz-content-sha256;x-amz-date", signature);
    head(
        "GET",
        uri,
        &[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("authorization", &auth),
        ],
    )
}

#[test]
fn aws_example_bucket_requests_with_query_strings() {
    let lifecycle = "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543";
    assert!(verify(&bucket_get("/?lifecycle", lifecycle)).is_ok());
    assert!(verify(&bucket_get("/?lifecycle=", lifecycle)).is_ok());
    let list = "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7";
    assert!(verify(&bucket_get("/?max-keys=2&prefix=J", list)).is_ok());
    assert!(verify(&bucket_get("/?prefix=J&max-keys=2", list)).is_ok());
    assert_eq!(
        verify(&bucket_get("/?max-keys=3&prefix=J", list)).unwrap_err(),
        AuthError::SignatureDoesNotMatch
    );
    assert_eq!(
        verify(&bucket_get("/?max-keys=2&prefix=J&x=", list)).unwrap_err(),
        AuthError::SignatureDoesNotMatch
    );
}

const PRESIGNED_EXAMPLE: &str = "/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256\
    &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
    &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
    &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

#[test]
fn aws_example_presigned_url_and_its_validity_window() {
    let parts = head(
        "GET",
        PRESIGNED_EXAMPLE,
        &[("host", "examplebucket.s3.amazonaws.com")],
    );
    let check = |secs| verify_request(&parts, &creds(), at(secs));
    let verified = check(EXAMPLE_TIME).unwrap();
    assert_eq!(verified.payload, PayloadMode::Unsigned);
    assert!(check(EXAMPLE_TIME + 86_400).is_ok());
    assert_eq!(
        check(EXAMPLE_TIME + 86_401).unwrap_err(),
        AuthError::Expired
    );
    assert!(check(EXAMPLE_TIME - 15 * 60).is_ok());
    let early = check(EXAMPLE_TIME - 15 * 60 - 1).unwrap_err();
    assert_eq!(early, AuthError::NotYetValid);
    assert_eq!(
        (early.s3_code().as_str(), early.s3_code().status().as_u16()),
        ("AccessDenied", 403)
    );
    let expired = AuthError::Expired;
    assert_eq!(
        (
            expired.s3_code().as_str(),
            expired.s3_code().status().as_u16(),
            expired.to_string().as_str()
        ),
        ("AccessDenied", 403, "Request has expired")
    );

    let other_key = head(
        "GET",
        &PRESIGNED_EXAMPLE.replace("/test.txt", "/test2.txt"),
        &[("host", "examplebucket.s3.amazonaws.com")],
    );
    assert_eq!(
        verify(&other_key).unwrap_err(),
        AuthError::SignatureDoesNotMatch
    );
    let longer = head(
        "GET",
        &PRESIGNED_EXAMPLE.replace("=86400", "=86500"),
        &[("host", "examplebucket.s3.amazonaws.com")],
    );
    assert_eq!(
        verify(&longer).unwrap_err(),
        AuthError::SignatureDoesNotMatch
    );
}

fn streaming_example(
    content_sha256: &str,
    signed_headers: &str,
    seed: &str,
    extra: &[(&str, &str)],
) -> Parts {
    let auth = authorization(signed_headers, seed);
    let mut headers = vec![
        ("host", "s3.amazonaws.com"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ("x-amz-content-sha256", content_sha256),
        ("content-encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", "66560"),
        ("authorization", auth.as_str()),
    ];
    headers.extend_from_slice(extra);
    head("PUT", "/examplebucket/chunkObject.txt", &headers)
}

fn example_chunks(signatures: [&str; 3], tail: &str) -> Vec<u8> {
    let mut body = format!("10000;chunk-signature={}\r\n", signatures[0]).into_bytes();
    body.extend_from_slice(&[b'a'; 65_536]);
    body.extend_from_slice(format!("\r\n400;chunk-signature={}\r\n", signatures[1]).as_bytes());
    body.extend_from_slice(&[b'a'; 1024]);
    body.extend_from_slice(format!("\r\n0;chunk-signature={}\r\n{tail}", signatures[2]).as_bytes());
    body
}

#[test]
fn aws_example_streaming_upload_end_to_end() {
    let parts = streaming_example(
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class",
        "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
        &[("content-length", "66824")],
    );
    let verified = verify(&parts).unwrap();
    assert_eq!(verified.payload, PayloadMode::StreamingSigned);
    let signing = verified.chunk_signing.as_ref().unwrap();
    let body = example_chunks(
        [
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
            "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
        ],
        "\r\n",
    );
    assert_eq!(body.len(), 66_824);
    let mut decoder = ChunkedDecoder::new(&verified.payload, Some(signing), 1 << 20).unwrap();
    let mut out = Vec::new();
    decoder.feed(&body, &mut out).unwrap();
    assert_eq!(decoder.finish().unwrap(), vec![]);
    assert!(out == vec![b'a'; 66_560]);
}

#[test]
fn aws_example_streaming_upload_with_a_signed_trailer() {
    let parts = streaming_example(
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer",
        "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
        &[("x-amz-trailer", "x-amz-checksum-crc32c")],
    );
    let verified = verify(&parts).unwrap();
    assert_eq!(verified.payload, PayloadMode::StreamingSignedTrailer);
    let body = example_chunks(
        [
            "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
            "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
            "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
        ],
        "x-amz-checksum-crc32c:sOO8/Q==\r\n\
         x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n",
    );
    let mut decoder =
        ChunkedDecoder::new(&verified.payload, verified.chunk_signing.as_ref(), 1 << 20).unwrap();
    let mut out = Vec::new();
    decoder.feed(&body, &mut out).unwrap();
    assert_eq!(
        decoder.finish().unwrap(),
        vec![("x-amz-checksum-crc32c".to_owned(), "sOO8/Q==".to_owned())]
    );
    assert_eq!(out.len(), 66_560);
}

// ---- Refusals.

#[test]
fn requests_without_v4_authentication_are_refused() {
    let none = verify(&head("GET", "/bucket/key", &[("host", "h")])).unwrap_err();
    assert_eq!(none, AuthError::MissingAuthentication);
    assert_eq!(
        (none.s3_code().as_str(), none.s3_code().status().as_u16()),
        ("AccessDenied", 403)
    );

    let v2 = verify(&head(
        "GET",
        "/b/k",
        &[
            ("host", "h"),
            (
                "authorization",
                "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=",
            ),
        ],
    ))
    .unwrap_err();
    assert_eq!(v2, AuthError::UnsupportedMechanism);
    assert_eq!(
        (v2.s3_code().as_str(), v2.s3_code().status().as_u16()),
        ("InvalidRequest", 400)
    );
    assert!(v2.to_string().contains("AWS4-HMAC-SHA256"));

    let v2_query = verify(&head(
        "GET",
        "/b/k?AWSAccessKeyId=AKIA&Expires=1&Signature=abc",
        &[("host", "h")],
    ))
    .unwrap_err();
    assert_eq!(v2_query, AuthError::UnsupportedMechanism);

    let v4a = verify(&head(
        "GET",
        "/b/k",
        &[
            ("host", "h"),
            ("authorization", "AWS4-ECDSA-P256-SHA256 Credential=x"),
        ],
    ))
    .unwrap_err();
    assert_eq!(v4a, AuthError::UnsupportedMechanism);

    let bearer = verify(&head(
        "GET",
        "/b/k",
        &[("host", "h"), ("authorization", "Bearer abc")],
    ))
    .unwrap_err();
    assert_eq!(bearer.s3_code().as_str(), "InvalidArgument");

    let mut both = head(
        "GET",
        PRESIGNED_EXAMPLE,
        &[("host", "examplebucket.s3.amazonaws.com")],
    );
    both.headers.insert(
        "authorization",
        authorization("host", EMPTY_SHA256).parse().unwrap(),
    );
    assert_eq!(verify(&both).unwrap_err(), AuthError::ConflictingMechanisms);
}

#[test]
fn malformed_authorization_headers_are_refused() {
    let good =
        get_object_example("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    let with_auth = |auth: &str| {
        let mut parts = good.clone();
        parts.headers.insert("authorization", auth.parse().unwrap());
        verify(&parts)
    };
    let original = good
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(with_auth(&original).is_ok());
    assert!(
        with_auth(&original.replace(",", ", ")).is_ok(),
        "spaces after commas are fine"
    );
    for bad in [
        original.replace(
            ",Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
            "",
        ),
        original.replace("SignedHeaders=", "SignedHeaderz="),
        original.replace("/us-east-1/s3/", "/us-east-1/"),
        original.replace("/s3/", "/ec2/"),
        original.replace("aws4_request", "aws5_request"),
        original.replace("/20130524/", "/20130523/"),
        original.replace("Signature=f0e8", "Signature=f0e"),
        original.replace("host;range", "Host;range"),
        original.replace("host;range", "host;host;range"),
        original.replace("host;range", "host;;range"),
        format!("{original},Signature=00"),
        original.replace("Credential=AKIAIOSFODNN7EXAMPLE/", "Credential=/"),
    ] {
        let error = with_auth(&bad).unwrap_err();
        assert!(
            matches!(error, AuthError::MalformedHeader(_)),
            "{bad}: {error:?}"
        );
        assert_eq!(
            (error.s3_code().as_str(), error.s3_code().status().as_u16()),
            ("AuthorizationHeaderMalformed", 400)
        );
    }
}

#[test]
fn content_sha256_and_date_are_required_for_header_auth() {
    let good =
        get_object_example("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    let mut missing = good.clone();
    missing.headers.remove("x-amz-content-sha256");
    let error = verify(&missing).unwrap_err();
    assert_eq!(error, AuthError::MissingContentSha256);
    assert_eq!(
        (error.s3_code().as_str(), error.s3_code().status().as_u16()),
        ("InvalidRequest", 400)
    );

    for bad in [
        "abc",
        "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
        &EMPTY_SHA256[1..],
    ] {
        let mut parts = good.clone();
        parts
            .headers
            .insert("x-amz-content-sha256", bad.parse().unwrap());
        let error = verify(&parts).unwrap_err();
        assert_eq!(error, AuthError::InvalidContentSha256, "{bad}");
        assert_eq!(error.s3_code().as_str(), "InvalidArgument");
    }

    // Without x-amz-date (and no Date header) there is no request time at all.
    let mut no_date = good.clone();
    no_date.headers.remove("x-amz-date");
    assert_eq!(verify(&no_date).unwrap_err(), AuthError::InvalidDate);
}

#[test]
fn bad_dates_are_refused() {
    let good =
        get_object_example("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    for bad in [
        "2013-05-24T00:00:00Z",
        "20130524T000000",
        "Fri, 24 May 2013 00:00:00 GMT",
    ] {
        let mut parts = good.clone();
        parts.headers.insert("x-amz-date", bad.parse().unwrap());
        let error = verify(&parts).unwrap_err();
        assert_eq!(error, AuthError::InvalidDate, "{bad}");
        assert_eq!(error.s3_code().status().as_u16(), 403);
    }
}

#[test]
fn header_auth_allows_fifteen_minutes_of_skew() {
    let parts =
        get_object_example("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    for secs in [EXAMPLE_TIME - 900, EXAMPLE_TIME + 900] {
        assert!(verify_request(&parts, &creds(), at(secs)).is_ok());
    }
    for secs in [EXAMPLE_TIME - 901, EXAMPLE_TIME + 901, 0] {
        let error = verify_request(&parts, &creds(), at(secs)).unwrap_err();
        assert_eq!(error, AuthError::RequestTimeTooSkewed);
        assert_eq!(
            (error.s3_code().as_str(), error.s3_code().status().as_u16()),
            ("RequestTimeTooSkewed", 403)
        );
    }
}

#[test]
fn wrong_credentials_are_refused_without_leaking_secrets() {
    let parts =
        get_object_example("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    let other_key = Credentials {
        access_key: "AKIDOTHER".to_owned(),
        secret_key: SECRET.to_owned(),
    };
    let error = verify_request(&parts, &other_key, at(EXAMPLE_TIME)).unwrap_err();
    assert_eq!(error, AuthError::InvalidAccessKeyId(ACCESS_KEY.to_owned()));
    assert_eq!(
        (error.s3_code().as_str(), error.s3_code().status().as_u16()),
        ("InvalidAccessKeyId", 403)
    );

    let other_secret = Credentials {
        access_key: ACCESS_KEY.to_owned(),
        secret_key: "not the secret".to_owned(),
    };
    let error = verify_request(&parts, &other_secret, at(EXAMPLE_TIME)).unwrap_err();
    assert_eq!(error, AuthError::SignatureDoesNotMatch);
    assert_eq!(
        (error.s3_code().as_str(), error.s3_code().status().as_u16()),
        ("SignatureDoesNotMatch", 403)
    );

    // A tampered signature: neither the secret nor the signature we expect may show.
    let tampered =
        get_object_example("00e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    let error = verify(&tampered).unwrap_err();
    for shown in [
        error.to_string(),
        format!("{error:?}"),
        format!("{:?}", creds()),
    ] {
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(
            !shown.contains("f0e8bdb87c964420e857bd35b5d6ed31"),
            "{shown}"
        );
    }
}

#[test]
fn host_and_x_amz_headers_must_be_signed() {
    let mut late =
        get_object_example("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    late.headers.insert("x-amz-meta-late", "1".parse().unwrap());
    late.headers
        .insert("x-amzn-trace-id", "Root=1".parse().unwrap());
    let error = verify(&late).unwrap_err();
    assert_eq!(
        error,
        AuthError::HeadersNotSigned(vec!["x-amz-meta-late".to_owned()])
    );
    assert_eq!(
        (error.s3_code().as_str(), error.s3_code().status().as_u16()),
        ("AccessDenied", 403)
    );

    let auth = authorization("x-amz-content-sha256;x-amz-date", EMPTY_SHA256);
    let no_host = head(
        "GET",
        "/",
        &[
            ("host", "h"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("authorization", &auth),
        ],
    );
    assert_eq!(
        verify(&no_host).unwrap_err(),
        AuthError::HeadersNotSigned(vec!["host".to_owned()])
    );

    // An unsigned x-amz-content-sha256 on a presigned request is tolerated, as on AWS.
    let presigned = head(
        "GET",
        PRESIGNED_EXAMPLE,
        &[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ],
    );
    assert!(verify(&presigned).is_ok());
}

#[test]
fn malformed_query_authentication_is_refused() {
    let host = [("host", "examplebucket.s3.amazonaws.com")];
    let check = |uri: &str| verify(&head("GET", uri, &host)).unwrap_err();
    for uri in [
        PRESIGNED_EXAMPLE.replace("&X-Amz-Expires=86400", ""),
        PRESIGNED_EXAMPLE.replace("&X-Amz-SignedHeaders=host", ""),
        PRESIGNED_EXAMPLE.replace("X-Amz-Signature=", "X-Amz-Signaturex="),
        PRESIGNED_EXAMPLE.replace("=86400", "=0"),
        PRESIGNED_EXAMPLE.replace("=86400", "=604801"),
        PRESIGNED_EXAMPLE.replace("=86400", "=-1"),
        PRESIGNED_EXAMPLE.replace("=86400", "=1e3"),
        PRESIGNED_EXAMPLE.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"),
        PRESIGNED_EXAMPLE.replace("X-Amz-Date=20130524T000000Z", "X-Amz-Date=2013-05-24"),
        PRESIGNED_EXAMPLE.replace("X-Amz-Date=20130524T000000Z", "X-Amz-Date=20130525T000000Z"),
        format!("{PRESIGNED_EXAMPLE}&X-Amz-Date=20130524T000000Z"),
        PRESIGNED_EXAMPLE.replace("%2Fs3%2F", "%2Fsqs%2F"),
        PRESIGNED_EXAMPLE.replace("X-Amz-Algorithm=AWS4-HMAC-SHA256&", ""),
        PRESIGNED_EXAMPLE.replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=HOST"),
    ] {
        let error = check(&uri);
        assert!(
            matches!(error, AuthError::MalformedQuery(_)),
            "{uri}: {error:?}"
        );
        assert_eq!(
            (error.s3_code().as_str(), error.s3_code().status().as_u16()),
            ("AuthorizationQueryParametersError", 400)
        );
    }
    let bad_hash = format!("{PRESIGNED_EXAMPLE}&X-Amz-Content-Sha256=nope");
    assert_eq!(check(&bad_hash), AuthError::InvalidContentSha256);
}
