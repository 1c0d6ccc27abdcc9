//! End-to-end error paths: authentication failures (wrong secret, unknown key, unsigned,
//! skewed clock, expired or tampered presigned URLs), not-implemented operations, uploads
//! whose body is short, does not match its signed SHA-256 or its Content-MD5 (nothing may be
//! committed, and an object being overwritten must survive), presigned and virtual-host-style
//! requests that must work, and the key-length and metadata-size limits.

use std::time::{Duration, SystemTime};

use crate::harness;
use crate::harness::raw::{self, Payload};
use crate::harness::s3x::{base64, status_code};
use crate::harness::{data, wait, TestGateway};
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use gateway::object::ObjectError;

const SEG: usize = 256 << 10;

macro_rules! assert_s3_err {
    ($result:expr, $status:expr, $code:expr) => {{
        let e = $result.expect_err("expected an error");
        let (status, code) = status_code(&e);
        assert_eq!(status, Some($status), "{e:?}");
        assert_eq!(code.as_deref(), Some($code), "{e:?}");
    }};
}

fn client_as(gw: &TestGateway, access: &str, secret: &str) -> Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(gw.endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(access, secret, None, None, "test"))
        .force_path_style(true)
        .build();
    Client::from_conf(conf)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn md5_of(b: &[u8]) -> [u8; 16] {
    use md5::{Digest, Md5};
    Md5::digest(b).into()
}

/// Every file under `nodes/*/pieces`.
/// Data piece files on every node (metadata blobs left out).
fn piece_files(gw: &TestGateway) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if !harness::is_metadata_blob(&p) {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    for node in std::fs::read_dir(gw.nodes_dir()).unwrap().flatten() {
        walk(&node.path().join("pieces"), &mut out);
    }
    out
}

/// Waits (bounded) until the nodes hold exactly `n` piece files; aborted uploads delete
/// their pieces in the background.
async fn wait_for_piece_count(gw: &TestGateway, n: usize) {
    let files = wait::observe(
        Duration::from_secs(5),
        || std::future::ready(piece_files(gw)),
        |files| files.len() == n,
    )
    .await;
    assert_eq!(files.len(), n, "piece files left: {files:?}");
}

/// The object is visible neither through S3 nor in the gateway's metadata.
async fn assert_not_committed(gw: &TestGateway, bucket: &str, key: &str) {
    let c = gw.client();
    let e = c
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect_err("object must not exist");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(404));
    let layer = &gw.gateway().layer;
    assert!(
        matches!(
            layer.head_object(bucket, key).await,
            Err(ObjectError::NoSuchKey)
        ),
        "metadata has {bucket}/{key}"
    );
    let listed = c
        .list_objects_v2()
        .bucket(bucket)
        .prefix(key)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0));
}

async fn get_body(c: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let got = c.get_object().bucket(bucket).key(key).send().await.unwrap();
    got.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test]
async fn wrong_secret_and_unknown_access_key_are_refused() {
    let gw = TestGateway::start().await;
    gw.client()
        .create_bucket()
        .bucket("auth")
        .send()
        .await
        .unwrap();
    let wrong_secret = client_as(
        &gw,
        harness::ACCESS_KEY,
        "not-the-secret-key-00000000000000000000",
    );
    assert_s3_err!(
        wrong_secret.list_buckets().send().await,
        403,
        "SignatureDoesNotMatch"
    );
    assert_s3_err!(
        wrong_secret
            .put_object()
            .bucket("auth")
            .key("k")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        403,
        "SignatureDoesNotMatch"
    );
    let unknown = client_as(&gw, "AKIAUNKNOWNKEY000000", harness::SECRET_KEY);
    assert_s3_err!(
        unknown.list_objects_v2().bucket("auth").send().await,
        403,
        "InvalidAccessKeyId"
    );
    assert_s3_err!(
        unknown.get_object().bucket("auth").key("k").send().await,
        403,
        "InvalidAccessKeyId"
    );
    assert_not_committed(&gw, "auth", "k").await;
}

#[tokio::test]
async fn unsigned_and_skewed_requests_are_refused() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("open").send().await.unwrap();
    c.put_object()
        .bucket("open")
        .key("k")
        .body(ByteStream::from_static(b"secret"))
        .send()
        .await
        .unwrap();
    let host = gw.addr().to_string();
    for req in [
        format!("GET / HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"),
        format!("GET /open/k HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"),
        format!(
            "PUT /open/new HTTP/1.1\r\nhost: {host}\r\ncontent-length: 3\r\nconnection: close\r\n\r\nabc"
        ),
    ] {
        let r = raw::send(gw.addr(), req.as_bytes(), false).await.unwrap();
        assert_eq!(r.status, 403, "{req}: {}", r.body_text());
        assert_eq!(r.code().as_deref(), Some("AccessDenied"), "{req}");
        assert!(!r.body_text().contains("secret"));
    }
    assert_not_committed(&gw, "open", "new").await;

    // Signed 20 minutes ago: outside the 15-minute window.
    let headers = vec![
        ("host".to_string(), host.clone()),
        ("connection".to_string(), "close".to_string()),
    ];
    let url = format!("http://{host}/open/k");
    let then = SystemTime::now() - Duration::from_secs(20 * 60);
    let mut all = headers.clone();
    all.extend(raw::sign_headers(
        "GET",
        &url,
        &headers,
        Payload::Bytes(b""),
        then,
    ));
    let r = raw::send(gw.addr(), &raw::head("GET", "/open/k", &all), false)
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body_text());
    assert_eq!(r.code().as_deref(), Some("RequestTimeTooSkewed"));
}

#[tokio::test]
async fn operations_we_do_not_implement_answer_501() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("nimpl").send().await.unwrap();
    c.put_object()
        .bucket("nimpl")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let enabled = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    assert_s3_err!(
        c.put_bucket_versioning()
            .bucket("nimpl")
            .versioning_configuration(enabled)
            .send()
            .await,
        501,
        "NotImplemented"
    );
    assert_s3_err!(
        c.get_bucket_policy().bucket("nimpl").send().await,
        501,
        "NotImplemented"
    );
    assert_s3_err!(
        c.put_object_acl()
            .bucket("nimpl")
            .key("k")
            .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead)
            .send()
            .await,
        400,
        "AccessControlListNotSupported"
    );
    assert_s3_err!(
        c.put_bucket_lifecycle_configuration()
            .bucket("nimpl")
            .send()
            .await,
        501,
        "NotImplemented"
    );
    // The object itself is untouched.
    assert_eq!(get_body(&c, "nimpl", "k").await, b"x");
}

/// A PUT signed with UNSIGNED-PAYLOAD declaring `declared` bytes but sending only `body`,
/// then closing the write half.
async fn short_put(gw: &TestGateway, target: &str, declared: usize, body: &[u8]) {
    let host = gw.addr().to_string();
    let mut headers = vec![
        ("host".to_string(), host.clone()),
        ("content-length".to_string(), declared.to_string()),
    ];
    let url = format!("http://{host}{target}");
    headers.extend(raw::sign_headers(
        "PUT",
        &url,
        &headers,
        Payload::Unsigned,
        SystemTime::now(),
    ));
    let mut req = raw::head("PUT", target, &headers);
    req.extend_from_slice(body);
    if let Some(r) = raw::send_truncated(gw.addr(), &req).await.unwrap() {
        // The connection may also just close; if an answer comes, it is a client error.
        assert_eq!(r.status, 400, "{}", r.body_text());
        assert_eq!(r.code().as_deref(), Some("IncompleteBody"));
    }
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_commits_nothing() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("short").send().await.unwrap();
    // A whole segment reaches the nodes before the body ends.
    let big = data(SEG + 50_000, 1);
    short_put(&gw, "/short/big", 3 * SEG, &big).await;
    assert_not_committed(&gw, "short", "big").await;
    let small = data(1000, 2);
    short_put(&gw, "/short/small", 2000, &small).await;
    assert_not_committed(&gw, "short", "small").await;
    // The pieces written for the aborted upload are removed.
    wait_for_piece_count(&gw, 0).await;

    // An object being overwritten by a short body keeps its old content.
    let old = data(2 * SEG + 1, 3);
    c.put_object()
        .bucket("short")
        .key("kept")
        .body(ByteStream::from(old.clone()))
        .send()
        .await
        .unwrap();
    let pieces_before = piece_files(&gw).len();
    short_put(&gw, "/short/kept", 3 * SEG, &data(2 * SEG, 4)).await;
    assert!(get_body(&c, "short", "kept").await == old);
    wait_for_piece_count(&gw, pieces_before).await;

    // A complete raw UNSIGNED-PAYLOAD upload works, so the failures above are the short bodies.
    let host = gw.addr().to_string();
    let body = data(SEG + 1, 5);
    let mut headers = vec![
        ("host".to_string(), host.clone()),
        ("content-length".to_string(), body.len().to_string()),
        ("connection".to_string(), "close".to_string()),
    ];
    headers.extend(raw::sign_headers(
        "PUT",
        &format!("http://{host}/short/whole"),
        &headers,
        Payload::Unsigned,
        SystemTime::now(),
    ));
    let mut req = raw::head("PUT", "/short/whole", &headers);
    req.extend_from_slice(&body);
    let r = raw::send(gw.addr(), &req, false).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert!(get_body(&c, "short", "whole").await == body);
}

/// A PUT whose `x-amz-content-sha256` is the hash of `signed_for` while `body` is sent.
async fn put_with_payload_hash(
    gw: &TestGateway,
    target: &str,
    signed_for: &[u8],
    body: &[u8],
) -> raw::RawResponse {
    let host = gw.addr().to_string();
    let mut headers = vec![
        ("host".to_string(), host.clone()),
        ("content-length".to_string(), body.len().to_string()),
        ("connection".to_string(), "close".to_string()),
    ];
    headers.extend(raw::sign_headers(
        "PUT",
        &format!("http://{host}{target}"),
        &headers,
        Payload::Bytes(signed_for),
        SystemTime::now(),
    ));
    let mut req = raw::head("PUT", target, &headers);
    req.extend_from_slice(body);
    raw::send(gw.addr(), &req, false).await.unwrap()
}

#[tokio::test]
async fn a_payload_hash_mismatch_commits_nothing() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("sha").send().await.unwrap();
    for (key, size) in [("small", 100), ("big", 2 * SEG + 77)] {
        let body = data(size, 10);
        let mut other = body.clone();
        other[size / 2] ^= 1;
        let r = put_with_payload_hash(&gw, &format!("/sha/{key}"), &other, &body).await;
        assert_eq!(r.status, 400, "{key}: {}", r.body_text());
        assert_eq!(
            r.code().as_deref(),
            Some("XAmzContentSHA256Mismatch"),
            "{key}"
        );
        assert_not_committed(&gw, "sha", key).await;
    }
    wait_for_piece_count(&gw, 0).await;

    // Overwrite attempts with a mismatching hash leave the old object in place.
    let old = data(SEG + 3, 11);
    c.put_object()
        .bucket("sha")
        .key("kept")
        .body(ByteStream::from(old.clone()))
        .send()
        .await
        .unwrap();
    let new = data(SEG + 9, 12);
    let r = put_with_payload_hash(&gw, "/sha/kept", b"something else", &new).await;
    assert_eq!(r.code().as_deref(), Some("XAmzContentSHA256Mismatch"));
    assert!(get_body(&c, "sha", "kept").await == old);

    // The matching hash is accepted.
    let r = put_with_payload_hash(&gw, "/sha/kept", &new, &new).await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(
        r.header("etag"),
        Some(format!("\"{}\"", hex(&md5_of(&new))).as_str())
    );
    assert!(get_body(&c, "sha", "kept").await == new);
}

#[tokio::test]
async fn a_content_md5_mismatch_is_bad_digest_and_commits_nothing() {
    let gw = TestGateway::start().await;
    let c = gw.client_with(RequestChecksumCalculation::WhenRequired);
    c.create_bucket().bucket("md5").send().await.unwrap();
    for (key, size) in [("small", 10), ("big", SEG + 1)] {
        let body = data(size, 20);
        let wrong = base64(&md5_of(b"not the body"));
        assert_s3_err!(
            c.put_object()
                .bucket("md5")
                .key(key)
                .content_md5(wrong)
                .body(ByteStream::from(body.clone()))
                .send()
                .await,
            400,
            "BadDigest"
        );
        assert_not_committed(&gw, "md5", key).await;
        // Through raw HTTP as well, so no client-side checksum is involved.
        let headers = vec![("content-md5".to_string(), base64(&md5_of(b"nope")))];
        let r = raw::signed(gw.addr(), "PUT", &format!("/md5/{key}"), &headers, &body)
            .await
            .unwrap();
        assert_eq!(r.status, 400, "{}", r.body_text());
        assert_eq!(r.code().as_deref(), Some("BadDigest"));
        assert_not_committed(&gw, "md5", key).await;
        // The right digest is accepted.
        c.put_object()
            .bucket("md5")
            .key(key)
            .content_md5(base64(&md5_of(&body)))
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        assert!(get_body(&c, "md5", key).await == body);
    }
    // A digest that is not base64 of 16 bytes is InvalidDigest.
    let headers = vec![("content-md5".to_string(), "not-base64!".to_string())];
    let r = raw::signed(gw.addr(), "PUT", "/md5/x", &headers, b"abc")
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.code().as_deref(), Some("InvalidDigest"));
    assert_not_committed(&gw, "md5", "x").await;
}

fn presigned_headers(p: &aws_sdk_s3::presigning::PresignedRequest) -> Vec<(String, String)> {
    p.headers()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("host"))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn presigned_urls_work_until_they_expire() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("presign").send().await.unwrap();
    let five_minutes = PresigningConfig::expires_in(Duration::from_secs(300)).unwrap();
    let body = data(SEG + 10, 30);

    let put = c
        .put_object()
        .bucket("presign")
        .key("dir/a b+c.bin")
        .presigned(five_minutes.clone())
        .await
        .unwrap();
    assert_eq!(put.method(), "PUT");
    assert!(put.uri().contains("X-Amz-Signature="), "{}", put.uri());
    let r = raw::fetch_url(gw.addr(), "PUT", put.uri(), &presigned_headers(&put), &body)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body_text());

    let get = c
        .get_object()
        .bucket("presign")
        .key("dir/a b+c.bin")
        .presigned(five_minutes.clone())
        .await
        .unwrap();
    let r = raw::fetch_url(gw.addr(), "GET", get.uri(), &presigned_headers(&get), b"")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert!(r.body == body);

    // Tampering with the signed URL (another key) is caught.
    let tampered = get.uri().replace("a%20b", "a%20c");
    assert_ne!(tampered, get.uri());
    let r = raw::fetch_url(gw.addr(), "GET", &tampered, &presigned_headers(&get), b"")
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body_text());
    assert_eq!(r.code().as_deref(), Some("SignatureDoesNotMatch"));

    // Signed an hour ago for one minute: expired.
    let expired = PresigningConfig::builder()
        .start_time(SystemTime::now() - Duration::from_secs(3600))
        .expires_in(Duration::from_secs(60))
        .build()
        .unwrap();
    let old_get = c
        .get_object()
        .bucket("presign")
        .key("dir/a b+c.bin")
        .presigned(expired.clone())
        .await
        .unwrap();
    let r = raw::fetch_url(
        gw.addr(),
        "GET",
        old_get.uri(),
        &presigned_headers(&old_get),
        b"",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403, "{}", r.body_text());
    assert_eq!(r.code().as_deref(), Some("AccessDenied"));
    let old_put = c
        .put_object()
        .bucket("presign")
        .key("late")
        .presigned(expired)
        .await
        .unwrap();
    let r = raw::fetch_url(
        gw.addr(),
        "PUT",
        old_put.uri(),
        &presigned_headers(&old_put),
        b"late body",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403, "{}", r.body_text());
    assert_not_committed(&gw, "presign", "late").await;
}

#[tokio::test]
async fn virtual_host_style_requests_work() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket()
        .bucket("vhost-bucket")
        .send()
        .await
        .unwrap();
    let port = gw.addr().port();
    let vhost = format!("vhost-bucket.localhost:{port}");
    let body = data(5000, 40);

    let send = |method: &'static str, target: &'static str, body: Vec<u8>| {
        let vhost = vhost.clone();
        let addr = gw.addr();
        async move {
            let mut headers = vec![
                ("host".to_string(), vhost.clone()),
                ("connection".to_string(), "close".to_string()),
            ];
            if method == "PUT" {
                headers.push(("content-length".to_string(), body.len().to_string()));
            }
            headers.extend(raw::sign_headers(
                method,
                &format!("http://{vhost}{target}"),
                &headers,
                Payload::Bytes(&body),
                SystemTime::now(),
            ));
            let mut req = raw::head(method, target, &headers);
            req.extend_from_slice(&body);
            raw::send(addr, &req, method == "HEAD").await.unwrap()
        }
    };

    let r = send("PUT", "/dir/obj.bin", body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    // Path style sees the same object.
    assert!(get_body(&c, "vhost-bucket", "dir/obj.bin").await == body);
    let r = send("GET", "/dir/obj.bin", Vec::new()).await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert!(r.body == body);
    let r = send("GET", "/?list-type=2", Vec::new()).await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert!(
        r.body_text().contains("<Key>dir/obj.bin</Key>"),
        "{}",
        r.body_text()
    );
    assert!(r.body_text().contains("<Name>vhost-bucket</Name>"));
    let r = send("HEAD", "/", Vec::new()).await;
    assert_eq!(r.status, 200);
    let r = send("DELETE", "/dir/obj.bin", Vec::new()).await;
    assert_eq!(r.status, 204, "{}", r.body_text());
    assert_not_committed(&gw, "vhost-bucket", "dir/obj.bin").await;
}

#[tokio::test]
async fn keys_are_at_most_1024_bytes() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("keylen").send().await.unwrap();
    let longest = "k".repeat(1024);
    c.put_object()
        .bucket("keylen")
        .key(&longest)
        .body(ByteStream::from_static(b"fits"))
        .send()
        .await
        .unwrap();
    assert_eq!(get_body(&c, "keylen", &longest).await, b"fits");
    // The limit is in bytes of UTF-8: 512 two-byte characters fit, one more byte does not.
    let multibyte = "é".repeat(512);
    c.put_object()
        .bucket("keylen")
        .key(&multibyte)
        .body(ByteStream::from_static(b"fits too"))
        .send()
        .await
        .unwrap();
    for too_long in ["k".repeat(1025), format!("{multibyte}x")] {
        assert_s3_err!(
            c.put_object()
                .bucket("keylen")
                .key(&too_long)
                .body(ByteStream::from_static(b"no"))
                .send()
                .await,
            400,
            "KeyTooLongError"
        );
        // Every operation that writes under a key, or names one's upload or tags, is refused
        // the same way (one check, before the operation runs).
        assert_s3_err!(
            c.copy_object()
                .bucket("keylen")
                .key(&too_long)
                .copy_source(format!("keylen/{longest}"))
                .send()
                .await,
            400,
            "KeyTooLongError"
        );
        assert_s3_err!(
            c.create_multipart_upload()
                .bucket("keylen")
                .key(&too_long)
                .send()
                .await,
            400,
            "KeyTooLongError"
        );
        assert_s3_err!(
            c.delete_object()
                .bucket("keylen")
                .key(&too_long)
                .send()
                .await,
            400,
            "KeyTooLongError"
        );
        assert_s3_err!(
            c.get_object_tagging()
                .bucket("keylen")
                .key(&too_long)
                .send()
                .await,
            400,
            "KeyTooLongError"
        );
        let layer = &gw.gateway().layer;
        assert!(matches!(
            layer.head_object("keylen", &too_long).await,
            Err(ObjectError::NoSuchKey)
        ));
    }
    let listed = c.list_objects_v2().bucket("keylen").send().await.unwrap();
    assert_eq!(listed.key_count(), Some(2));
}

#[tokio::test]
async fn user_metadata_is_at_most_2_kib() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("metasize").send().await.unwrap();
    // Name and value bytes count: 1 + 2047 = 2048 fits.
    c.put_object()
        .bucket("metasize")
        .key("fits")
        .metadata("m", "v".repeat(2047))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let h = c
        .head_object()
        .bucket("metasize")
        .key("fits")
        .send()
        .await
        .unwrap();
    assert_eq!(
        h.metadata().and_then(|m| m.get("m")).map(String::len),
        Some(2047)
    );
    for (name, value) in [("m", "v".repeat(2048)), ("n", "w".repeat(5000))] {
        assert_s3_err!(
            c.put_object()
                .bucket("metasize")
                .key("too-much")
                .metadata(name, value)
                .body(ByteStream::from(data(SEG + 1, 50)))
                .send()
                .await,
            400,
            "MetadataTooLarge"
        );
    }
    // Several entries add up.
    let mut req = c.put_object().bucket("metasize").key("too-much");
    for i in 0..10 {
        req = req.metadata(format!("k{i}"), "z".repeat(210));
    }
    assert_s3_err!(
        req.body(ByteStream::from_static(b"x")).send().await,
        400,
        "MetadataTooLarge"
    );
    assert_not_committed(&gw, "metasize", "too-much").await;
}
