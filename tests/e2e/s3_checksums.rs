//! End-to-end request and response checksums: PutObject with each of the five algorithms
//! through the SDK (trailers over aws-chunked with `WhenSupported`, precomputed header values
//! with `WhenRequired`, whose explicit algorithm alone S3 refuses), GET/HEAD with checksum mode returning the stored
//! value (and the SDK's own response validation passing), no whole-object checksum on ranged
//! reads, and the refusals: wrong values (BadDigest, nothing committed), malformed or
//! repeated checksum headers, `x-amz-sdk-checksum-algorithm` without a checksum, Content-MD5,
//! and bad trailers.

use std::time::Duration;

use crate::harness;
use crate::harness::s3x::*;
use crate::harness::{data, TestGateway};
use aws_sdk_s3::config::RequestChecksumCalculation;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ChecksumType};
use aws_sdk_s3::Client;

/// Request headers (or trailers) of one case.
type Headers<'a> = Vec<(&'a str, &'a str)>;

/// GET and HEAD with checksum mode return `value` for `a` (and nothing else); the GET body,
/// which the SDK validates against it, is `body`.
async fn assert_stored(c: &Client, key: &str, a: &ChecksumAlgorithm, value: &str, body: &[u8]) {
    let head = c
        .head_object()
        .bucket("sums")
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap_or_else(|e| panic!("HEAD {key}: {e:?}"));
    let name = a.as_str().to_ascii_lowercase();
    assert_eq!(
        checksum_values!(head),
        vec![(name.as_str(), value.to_string())],
        "HEAD {key}"
    );
    assert_eq!(
        head.checksum_type(),
        Some(&ChecksumType::FullObject),
        "{key}"
    );
    let got = c
        .get_object()
        .bucket("sums")
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {key}: {e:?}"));
    assert_eq!(
        checksum_values!(got),
        vec![(name.as_str(), value.to_string())],
        "GET {key}"
    );
    let bytes = got
        .body
        .collect()
        .await
        .unwrap_or_else(|e| panic!("GET {key} body (SDK validation): {e:?}"))
        .into_bytes();
    assert_bytes(&bytes, body, key);
}

#[tokio::test]
async fn put_with_every_algorithm_as_trailers() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c_bucket(&c).await;
    for a in &ALGORITHMS {
        for size in [0, 1000, 600 * KIB] {
            let key = format!("{}/{size}", a.as_str());
            let body = data(size, size as u64 + 7);
            let want = checksum_b64(a, &body);
            let out = c
                .put_object()
                .bucket("sums")
                .key(&key)
                .checksum_algorithm(a.clone())
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
            assert_eq!(checksum_value!(out, a), Some(want.as_str()), "put {key}");
            assert_eq!(out.e_tag(), Some(etag_of(&body).as_str()), "{key}");
            assert_stored(&c, &key, a, &want, &body).await;
        }
    }
}

#[tokio::test]
async fn an_sdk_algorithm_without_a_checksum_is_refused_as_s3_does() {
    // With WhenRequired, aws-sdk-s3 (like the C++ SDK, aws/aws-sdk-cpp#3859) sends an explicit
    // algorithm as `x-amz-sdk-checksum-algorithm` but neither a checksum header nor a trailer.
    // S3 answers 400 InvalidRequest ("x-amz-sdk-checksum-algorithm specified, but no
    // corresponding x-amz-checksum-* or x-amz-trailer headers were found.").
    let gw = TestGateway::start().await;
    let c = gw.client_with(RequestChecksumCalculation::WhenRequired);
    c_bucket(&c).await;
    for a in &ALGORITHMS {
        for size in [0, 1000] {
            let key = format!("{}/{size}", a.as_str());
            expect_err(
                c.put_object()
                    .bucket("sums")
                    .key(&key)
                    .checksum_algorithm(a.clone())
                    .body(ByteStream::from(data(size, 1)))
                    .send()
                    .await,
                400,
                "InvalidRequest",
            );
            expect_status(c.head_object().bucket("sums").key(&key).send().await, 404);
        }
    }
    // Without the algorithm, WhenRequired sends no checksum at all, which is fine.
    put(&c, "sums", "plain", b"no checksum").await;
    assert_eq!(get(&c, "sums", "plain").await, b"no checksum");
}

async fn c_bucket(c: &Client) {
    c.create_bucket().bucket("sums").send().await.unwrap();
}

#[tokio::test]
async fn precomputed_values_in_headers_and_the_sdk_default() {
    let gw = TestGateway::start().await;
    let c = gw.client_with(RequestChecksumCalculation::WhenRequired);
    c_bucket(&c).await;
    let body = data(300 * KIB, 8);
    for a in &ALGORITHMS {
        let key = format!("pre/{}", a.as_str());
        let value = checksum_b64(a, &body);
        let req = c
            .put_object()
            .bucket("sums")
            .key(&key)
            .body(ByteStream::from(body.clone()));
        let req = match a {
            ChecksumAlgorithm::Crc32 => req.checksum_crc32(&value),
            ChecksumAlgorithm::Crc32C => req.checksum_crc32_c(&value),
            ChecksumAlgorithm::Crc64Nvme => req.checksum_crc64_nvme(&value),
            ChecksumAlgorithm::Sha1 => req.checksum_sha1(&value),
            _ => req.checksum_sha256(&value),
        };
        req.send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
        assert_stored(&c, &key, a, &value, &body).await;
    }
    // The SDK's default with WhenSupported is a CRC32 trailer; it is what gets stored.
    let c = gw.client();
    put(&c, "sums", "default", &body).await;
    let crc32 = ChecksumAlgorithm::Crc32;
    assert_stored(&c, "default", &crc32, &checksum_b64(&crc32, &body), &body).await;
}

#[tokio::test]
async fn ranged_reads_and_reads_without_checksum_mode_carry_no_checksum() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c_bucket(&c).await;
    let body = data(600 * KIB, 9);
    let value = checksum_b64(&ChecksumAlgorithm::Sha256, &body);
    let r = signed(
        &gw,
        "PUT",
        "/sums/k",
        &[("x-amz-checksum-sha256", &value)],
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.header("x-amz-checksum-sha256"), Some(value.as_str()));
    let checksum_headers = |r: &harness::raw::RawResponse| -> Vec<String> {
        r.headers
            .iter()
            .filter(|(n, _)| n.starts_with("x-amz-checksum-"))
            .map(|(n, v)| format!("{n}: {v}"))
            .collect()
    };
    let enabled = ("x-amz-checksum-mode", "ENABLED");
    for method in ["GET", "HEAD"] {
        let whole = signed(&gw, method, "/sums/k", &[enabled], b"").await;
        assert_eq!(whole.status, 200);
        assert_eq!(
            checksum_headers(&whole),
            vec![
                format!("x-amz-checksum-sha256: {value}"),
                "x-amz-checksum-type: FULL_OBJECT".to_string()
            ],
            "{method}"
        );
        let plain = signed(&gw, method, "/sums/k", &[], b"").await;
        assert_eq!(plain.status, 200);
        assert!(checksum_headers(&plain).is_empty(), "{method} without mode");
        for range in ["bytes=0-99", "bytes=1-", "bytes=-10", "bytes=100-200000"] {
            let r = signed(&gw, method, "/sums/k", &[enabled, ("range", range)], b"").await;
            assert_eq!(r.status, 206, "{method} {range}");
            assert!(checksum_headers(&r).is_empty(), "{method} {range}");
        }
    }
    // A range that covers the whole object may carry the value, but only the object's own.
    let all = format!("bytes=0-{}", body.len() - 1);
    let r = signed(&gw, "GET", "/sums/k", &[enabled, ("range", &all)], b"").await;
    assert_eq!(r.status, 206);
    if let Some(v) = r.header("x-amz-checksum-sha256") {
        assert_eq!(v, value, "{all}");
    }
    // Through the SDK, whose response validation would fail on a whole-object value.
    let got = c
        .get_object()
        .bucket("sums")
        .key("k")
        .range("bytes=1000-1999")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert!(checksum_values!(got).is_empty());
    let bytes = got.body.collect().await.unwrap().into_bytes();
    assert_bytes(&bytes, &body[1000..2000], "SDK range");
}

#[tokio::test]
async fn a_wrong_checksum_is_bad_digest_and_commits_nothing() {
    let gw = TestGateway::start().await;
    let c = gw.client_with(RequestChecksumCalculation::WhenRequired);
    c_bucket(&c).await;
    let old = data(2000, 10);
    put(&c, "sums", "kept", &old).await;
    let before = pieces(&gw);
    for a in &ALGORITHMS {
        for (size, key) in [(1000, "small"), (600 * KIB, "big"), (600 * KIB, "kept")] {
            let body = data(size, 11);
            let wrong = checksum_b64(a, b"something else");
            let header = checksum_header(a);
            let r = signed(
                &gw,
                "PUT",
                &format!("/sums/{key}"),
                &[(&header, &wrong)],
                &body,
            )
            .await;
            assert_eq!(r.status, 400, "{header} {key}: {}", r.body_text());
            assert_eq!(r.code().as_deref(), Some("BadDigest"), "{header} {key}");
            if key == "kept" {
                assert_bytes(&get(&c, "sums", "kept").await, &old, "overwritten object");
            } else {
                expect_status(c.head_object().bucket("sums").key(key).send().await, 404);
            }
        }
    }
    // Through the SDK too, with a precomputed wrong value.
    expect_err(
        c.put_object()
            .bucket("sums")
            .key("small")
            .checksum_crc32_c(checksum_b64(&ChecksumAlgorithm::Crc32C, b"nope"))
            .body(ByteStream::from_static(b"the body"))
            .send()
            .await,
        400,
        "BadDigest",
    );
    expect_status(
        c.head_object().bucket("sums").key("small").send().await,
        404,
    );
    // The refused bodies' pieces do not stay behind.
    wait_pieces(&gw, &before, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn malformed_repeated_and_orphan_checksum_headers_are_invalid_requests() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c_bucket(&c).await;
    let body = b"checksummed body";
    let crc32 = checksum_b64(&ChecksumAlgorithm::Crc32, body);
    let sha256 = checksum_b64(&ChecksumAlgorithm::Sha256, body);
    let five_bytes = base64(b"12345");
    let cases: Vec<(&str, Headers)> = vec![
        ("not base64", vec![("x-amz-checksum-crc32", "not base64!")]),
        ("wrong length", vec![("x-amz-checksum-crc32", &five_bytes)]),
        (
            "a CRC32 value as SHA-256",
            vec![("x-amz-checksum-sha256", &crc32)],
        ),
        ("unknown algorithm", vec![("x-amz-checksum-foo", &crc32)]),
        (
            "two checksum headers",
            vec![
                ("x-amz-checksum-crc32", &crc32),
                ("x-amz-checksum-sha256", &sha256),
            ],
        ),
        (
            "sdk algorithm without a checksum",
            vec![("x-amz-sdk-checksum-algorithm", "CRC32")],
        ),
        (
            "sdk algorithm naming another algorithm",
            vec![
                ("x-amz-sdk-checksum-algorithm", "SHA256"),
                ("x-amz-checksum-crc32", &crc32),
            ],
        ),
        (
            "unknown sdk algorithm",
            vec![
                ("x-amz-sdk-checksum-algorithm", "MD4"),
                ("x-amz-checksum-crc32", &crc32),
            ],
        ),
        (
            "empty sdk algorithm",
            vec![
                ("x-amz-sdk-checksum-algorithm", ""),
                ("x-amz-checksum-crc32", &crc32),
            ],
        ),
    ];
    for (what, headers) in cases {
        let r = signed(&gw, "PUT", "/sums/k", &headers, body).await;
        assert_eq!(r.status, 400, "{what}: {}", r.body_text());
        assert_eq!(r.code().as_deref(), Some("InvalidRequest"), "{what}");
        expect_status(c.head_object().bucket("sums").key("k").send().await, 404);
    }
    // The well-formed single header is accepted.
    let r = signed(
        &gw,
        "PUT",
        "/sums/k",
        &[("x-amz-checksum-crc32", &crc32)],
        body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body_text());
}

#[tokio::test]
async fn content_md5_alone_and_with_a_checksum() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c_bucket(&c).await;
    let body = data(50 * KIB, 12);
    let md5 = base64(&md5_of(&body));
    let bad_md5 = base64(&md5_of(b"other"));
    let crc = checksum_b64(&ChecksumAlgorithm::Crc32, &body);
    let bad_crc = checksum_b64(&ChecksumAlgorithm::Crc32, b"other");

    let refused: [(&str, Headers, &str); 5] = [
        ("wrong md5", vec![("content-md5", &bad_md5)], "BadDigest"),
        (
            "md5 not base64",
            vec![("content-md5", "zzz")],
            "InvalidDigest",
        ),
        (
            "md5 of the wrong length",
            vec![("content-md5", "AAAA")],
            "InvalidDigest",
        ),
        (
            "right md5, wrong crc",
            vec![("content-md5", &md5), ("x-amz-checksum-crc32", &bad_crc)],
            "BadDigest",
        ),
        (
            "wrong md5, right crc",
            vec![("content-md5", &bad_md5), ("x-amz-checksum-crc32", &crc)],
            "BadDigest",
        ),
    ];
    for (what, headers, code) in refused {
        let r = signed(&gw, "PUT", "/sums/k", &headers, &body).await;
        assert_eq!(r.status, 400, "{what}: {}", r.body_text());
        assert_eq!(r.code().as_deref(), Some(code), "{what}");
        expect_status(c.head_object().bucket("sums").key("k").send().await, 404);
    }
    let r = signed(&gw, "PUT", "/sums/k", &[("content-md5", &md5)], &body).await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.header("etag"), Some(etag_of(&body).as_str()));
    let r = signed(
        &gw,
        "PUT",
        "/sums/both",
        &[("content-md5", &md5), ("x-amz-checksum-crc32", &crc)],
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_stored(&c, "both", &ChecksumAlgorithm::Crc32, &crc, &body).await;
}

#[tokio::test]
async fn trailer_checksums_are_verified() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c_bucket(&c).await;
    let body = data(200 * KIB, 13);
    for a in &ALGORITHMS {
        let header = checksum_header(a);
        let value = checksum_b64(a, &body);
        let key = format!("/sums/t-{}", a.as_str());
        let r = put_with_trailer(
            &gw,
            &key,
            &body,
            64 * KIB,
            Some(&header),
            &[(&header, &value)],
        )
        .await;
        assert_eq!(r.status, 200, "{header}: {}", r.body_text());
        assert_stored(&c, &key["/sums/".len()..], a, &value, &body).await;
    }
    let crc = "x-amz-checksum-crc32";
    let right = checksum_b64(&ChecksumAlgorithm::Crc32, &body);
    let wrong = checksum_b64(&ChecksumAlgorithm::Crc32, b"other");
    let before = pieces(&gw);
    let cases: [(&str, Option<&str>, Headers, &str); 4] = [
        ("wrong value", Some(crc), vec![(crc, &wrong)], "BadDigest"),
        (
            "malformed value",
            Some(crc),
            vec![(crc, "***")],
            "InvalidRequest",
        ),
        ("announced, missing", Some(crc), vec![], "InvalidRequest"),
        ("not announced", None, vec![(crc, &right)], "InvalidRequest"),
    ];
    for (what, announced, trailers, code) in cases {
        let r = put_with_trailer(&gw, "/sums/bad", &body, 64 * KIB, announced, &trailers).await;
        assert_eq!(r.status, 400, "{what}: {}", r.body_text());
        assert_eq!(r.code().as_deref(), Some(code), "{what}");
        expect_status(c.head_object().bucket("sums").key("bad").send().await, 404);
    }
    wait_pieces(&gw, &before, Duration::from_secs(10)).await;
}
