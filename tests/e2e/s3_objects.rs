//! End-to-end object operations through aws-sdk-s3 and raw HTTP: round trips of every
//! interesting size, byte ranges of every form, stored metadata, overwrite, delete, both
//! cipher suites and both request-checksum modes of the SDK.

use crate::harness::{data, raw, Setup, TestGateway};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;

async fn put_get(c: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &[u8]) {
    let put = c
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key} ({} bytes): {e:?}", body.len()));
    let md5 = format!("\"{}\"", hex(&md5_of(body)));
    assert_eq!(
        put.e_tag(),
        Some(md5.as_str()),
        "etag of {} bytes",
        body.len()
    );
    let got = c.get_object().bucket(bucket).key(key).send().await.unwrap();
    assert_eq!(got.content_length(), Some(body.len() as i64));
    let bytes = got.body.collect().await.unwrap().into_bytes();
    assert!(
        bytes[..] == body[..],
        "body of {} bytes differs",
        body.len()
    );
}

fn md5_of(b: &[u8]) -> [u8; 16] {
    use md5::{Digest, Md5};
    Md5::digest(b).into()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn round_trips_of_every_interesting_size() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("sizes").send().await.unwrap();
    let seg = 256 << 10;
    let inline = 4096;
    for (i, size) in [
        0,
        1,
        inline - 1,
        inline,
        inline + 1,
        seg - 1,
        seg,
        seg + 1,
        3 * seg + 12345,
    ]
    .into_iter()
    .enumerate()
    {
        put_get(&c, "sizes", &format!("obj-{size}"), &data(size, i as u64)).await;
    }
}

const SEG: usize = 256 << 10;

/// A signed raw GET or HEAD of `/bucket/key` with an optional Range header.
async fn raw_get(
    gw: &TestGateway,
    method: &str,
    path: &str,
    range: Option<&str>,
) -> raw::RawResponse {
    let headers: Vec<(String, String)> = range
        .map(|r| vec![("range".to_string(), r.to_string())])
        .unwrap_or_default();
    raw::signed(gw.addr(), method, path, &headers, b"")
        .await
        .unwrap_or_else(|e| panic!("{method} {path} {range:?}: {e}"))
}

/// Checks one satisfiable range: status 206, Content-Range, Content-Length and the bytes.
async fn check_range(
    gw: &TestGateway,
    path: &str,
    body: &[u8],
    spec: &str,
    first: usize,
    last: usize,
) {
    let size = body.len();
    let r = raw_get(gw, "GET", path, Some(spec)).await;
    assert_eq!(r.status, 206, "{spec}: {}", r.body_text());
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes {first}-{last}/{size}").as_str()),
        "{spec}"
    );
    assert_eq!(
        r.header("content-length"),
        Some((last + 1 - first).to_string().as_str()),
        "{spec}"
    );
    assert!(r.body[..] == body[first..=last], "{spec}: bytes differ");
    let h = raw_get(gw, "HEAD", path, Some(spec)).await;
    assert_eq!(h.status, 206, "HEAD {spec}");
    assert_eq!(
        h.header("content-range"),
        Some(format!("bytes {first}-{last}/{size}").as_str()),
        "HEAD {spec}"
    );
}

async fn check_unsatisfiable(gw: &TestGateway, path: &str, size: usize, spec: &str) {
    let r = raw_get(gw, "GET", path, Some(spec)).await;
    assert_eq!(r.status, 416, "{spec}: {}", r.body_text());
    assert_eq!(r.code().as_deref(), Some("InvalidRange"), "{spec}");
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{size}").as_str()),
        "{spec}"
    );
}

#[tokio::test]
async fn ranges_of_every_form_on_a_multi_segment_object() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("ranges").send().await.unwrap();
    let size = 3 * SEG + 12345;
    let body = data(size, 77);
    put_get(&c, "ranges", "big", &body).await;
    let path = "/ranges/big";
    // Ciphertext blocks are 4096 + 16 bytes and a stripe is 4 chunks of 4 KiB of
    // ciphertext, so plaintext offset 16336 is the first byte of the second stripe.
    let stripe1 = 3 * 4096 + (16384 - 3 * 4112);
    let cases: Vec<(String, usize, usize)> = vec![
        ("bytes=0-0".into(), 0, 0),
        ("bytes=100-200".into(), 100, 200),
        ("bytes=4000-4200".into(), 4000, 4200),
        ("bytes=4096-8191".into(), 4096, 8191),
        (
            format!("bytes={}-{}", stripe1 - 1, stripe1),
            stripe1 - 1,
            stripe1,
        ),
        ("bytes=16300-16400".into(), 16300, 16400),
        ("bytes=10000-70000".into(), 10000, 70000),
        (format!("bytes={}-{}", SEG - 1, SEG), SEG - 1, SEG),
        ("bytes=262000-262300".into(), 262_000, 262_300),
        ("bytes=100-600000".into(), 100, 600_000),
        (format!("bytes=0-{}", size - 1), 0, size - 1),
        (
            format!("bytes={}-{}", size - 1, size - 1),
            size - 1,
            size - 1,
        ),
        ("bytes=5-".into(), 5, size - 1),
        (format!("bytes={}-", 3 * SEG), 3 * SEG, size - 1),
        (format!("bytes={}-", size - 1), size - 1, size - 1),
        ("bytes=-1".into(), size - 1, size - 1),
        ("bytes=-12345".into(), size - 12345, size - 1),
        ("bytes=-300000".into(), size - 300_000, size - 1),
        (format!("bytes=-{size}"), 0, size - 1),
        (format!("bytes=-{}", size + 1000), 0, size - 1),
        ("bytes=700000-99999999".into(), 700_000, size - 1),
        (format!("bytes=600000-{size}"), 600_000, size - 1),
    ];
    for (spec, first, last) in &cases {
        check_range(&gw, path, &body, spec, *first, *last).await;
    }
    // The SDK sees the same.
    let got = c
        .get_object()
        .bucket("ranges")
        .key("big")
        .range("bytes=262000-262300")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.content_range(),
        Some(format!("bytes 262000-262300/{size}").as_str())
    );
    assert_eq!(got.content_length(), Some(301));
    let bytes = got.body.collect().await.unwrap().into_bytes();
    assert!(bytes[..] == body[262_000..=262_300]);

    for spec in [
        format!("bytes={size}-"),
        format!("bytes={size}-{}", size + 10),
        format!("bytes={}-", size + 5),
        "bytes=99999999-".to_string(),
    ] {
        check_unsatisfiable(&gw, path, size, &spec).await;
    }
    let err = c
        .get_object()
        .bucket("ranges")
        .key("big")
        .range(format!("bytes={size}-"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidRange"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(416));
}

#[tokio::test]
async fn ranges_on_inline_and_empty_objects() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("small").send().await.unwrap();
    let body = data(1000, 5);
    put_get(&c, "small", "inline", &body).await;
    for (spec, first, last) in [
        ("bytes=10-20", 10, 20),
        ("bytes=990-", 990, 999),
        ("bytes=-5", 995, 999),
        ("bytes=0-5000", 0, 999),
    ] {
        check_range(&gw, "/small/inline", &body, spec, first, last).await;
    }
    check_unsatisfiable(&gw, "/small/inline", 1000, "bytes=1000-").await;

    put_get(&c, "small", "empty", b"").await;
    for spec in ["bytes=0-0", "bytes=0-", "bytes=-5", "bytes=0-100"] {
        check_unsatisfiable(&gw, "/small/empty", 0, spec).await;
    }
    // Without a range the empty object is a plain 200.
    let r = raw_get(&gw, "GET", "/small/empty", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("0"));
    assert!(r.header("content-range").is_none());
}

#[tokio::test]
async fn head_and_get_return_what_was_stored() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("meta").send().await.unwrap();
    let body = data(SEG + 7, 9);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expires = aws_sdk_s3::primitives::DateTime::from_secs(2_000_000_000);
    c.put_object()
        .bucket("meta")
        .key("doc.txt")
        .content_type("text/plain; charset=utf-8")
        .cache_control("max-age=60, private")
        .content_disposition("attachment; filename=\"doc.txt\"")
        .content_encoding("gzip")
        .content_language("fr-CA")
        .expires(expires)
        .metadata("color", "blue")
        .metadata("Mixed-Case", "Some Value")
        .metadata("empty", "")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let after = before + 5;
    let etag = format!("\"{}\"", hex(&md5_of(&body)));

    let h = c
        .head_object()
        .bucket("meta")
        .key("doc.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(h.content_length(), Some(body.len() as i64));
    assert_eq!(h.e_tag(), Some(etag.as_str()));
    assert_eq!(h.content_type(), Some("text/plain; charset=utf-8"));
    assert_eq!(h.cache_control(), Some("max-age=60, private"));
    assert_eq!(
        h.content_disposition(),
        Some("attachment; filename=\"doc.txt\"")
    );
    assert_eq!(h.content_encoding(), Some("gzip"));
    assert_eq!(h.content_language(), Some("fr-CA"));
    assert_eq!(h.expires_string(), Some("Wed, 18 May 2033 03:33:20 GMT"));
    let lm = h.last_modified().expect("last-modified").secs();
    assert!(
        (before..=after).contains(&lm),
        "last-modified {lm} not in [{before}, {after}]"
    );
    let meta = h.metadata().expect("metadata");
    assert_eq!(meta.get("color").map(String::as_str), Some("blue"));
    assert_eq!(
        meta.get("mixed-case").map(String::as_str),
        Some("Some Value")
    );
    assert_eq!(meta.get("empty").map(String::as_str), Some(""));
    assert_eq!(meta.len(), 3, "{meta:?}");

    // GET carries the same headers (raw, so nothing is normalised by the SDK).
    let g = raw_get(&gw, "GET", "/meta/doc.txt", None).await;
    assert_eq!(g.status, 200);
    assert!(g.body == body);
    for (name, want) in [
        ("etag", etag.as_str()),
        ("content-type", "text/plain; charset=utf-8"),
        ("cache-control", "max-age=60, private"),
        ("content-disposition", "attachment; filename=\"doc.txt\""),
        ("content-encoding", "gzip"),
        ("content-language", "fr-CA"),
        ("expires", "Wed, 18 May 2033 03:33:20 GMT"),
        ("x-amz-meta-color", "blue"),
        ("x-amz-meta-mixed-case", "Some Value"),
        ("accept-ranges", "bytes"),
    ] {
        assert_eq!(g.header(name), Some(want), "{name}");
    }
    let raw_head = raw_get(&gw, "HEAD", "/meta/doc.txt", None).await;
    assert_eq!(raw_head.status, 200);
    assert_eq!(
        raw_head.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(raw_head.header("last-modified"), g.header("last-modified"));
}

#[tokio::test]
async fn default_content_type_is_binary_octet_stream() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("ctype").send().await.unwrap();
    // A raw PUT, so no client adds a Content-Type of its own.
    let r = raw::signed(gw.addr(), "PUT", "/ctype/plain", &[], b"hello")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body_text());
    let h = c
        .head_object()
        .bucket("ctype")
        .key("plain")
        .send()
        .await
        .unwrap();
    assert_eq!(h.content_type(), Some("binary/octet-stream"));
    let g = raw_get(&gw, "GET", "/ctype/plain", None).await;
    assert_eq!(g.header("content-type"), Some("binary/octet-stream"));
    assert_eq!(g.body, b"hello");
}

#[tokio::test]
async fn overwrite_replaces_content_and_metadata() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("owr").send().await.unwrap();
    let big = data(2 * SEG + 3, 1);
    c.put_object()
        .bucket("owr")
        .key("k")
        .metadata("v", "1")
        .content_type("text/one")
        .body(ByteStream::from(big.clone()))
        .send()
        .await
        .unwrap();
    put_get(&c, "owr", "k", b"small now").await;
    let h = c.head_object().bucket("owr").key("k").send().await.unwrap();
    assert_eq!(h.content_length(), Some(9));
    // The SDK sends its own default type; what matters is that the old one is gone.
    assert_ne!(h.content_type(), Some("text/one"));
    assert!(
        h.metadata().is_none_or(|m| m.is_empty()),
        "{:?}",
        h.metadata()
    );
    let other = data(SEG + 100, 2);
    put_get(&c, "owr", "k", &other).await;
    let list = c.list_objects_v2().bucket("owr").send().await.unwrap();
    let objs = list.contents();
    assert_eq!(objs.len(), 1);
    assert_eq!(objs[0].size(), Some(other.len() as i64));
    assert_eq!(
        objs[0].e_tag(),
        Some(format!("\"{}\"", hex(&md5_of(&other))).as_str())
    );
}

#[tokio::test]
async fn delete_then_get_is_no_such_key_and_deleting_a_missing_key_succeeds() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("del").send().await.unwrap();
    for (key, size) in [("inline", 10), ("big", 2 * SEG + 1)] {
        put_get(&c, "del", key, &data(size, 3)).await;
        c.delete_object()
            .bucket("del")
            .key(key)
            .send()
            .await
            .unwrap();
        let err = c
            .get_object()
            .bucket("del")
            .key(key)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("NoSuchKey"), "{key}");
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
        let err = c
            .head_object()
            .bucket("del")
            .key(key)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
    }
    let r = raw::signed(gw.addr(), "DELETE", "/del/never-existed", &[], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.body_text());
    c.delete_object()
        .bucket("del")
        .key("never-existed")
        .send()
        .await
        .unwrap();
    // Deleting in a bucket that does not exist is an error, as on AWS.
    let r = raw::signed(gw.addr(), "DELETE", "/no-such-bucket/k", &[], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.code().as_deref(), Some("NoSuchBucket"));
    let list = c.list_objects_v2().bucket("del").send().await.unwrap();
    assert_eq!(list.key_count(), Some(0));
}

#[tokio::test]
async fn both_cipher_suites_round_trip() {
    let mut ids = Vec::new();
    for cipher in ["aes-256-gcm", "chacha20-poly1305"] {
        let gw = Setup::new().cipher(cipher).start().await;
        let c = gw.client();
        c.create_bucket().bucket("ciph").send().await.unwrap();
        for (i, size) in [0, 1, 4096, 4097, SEG + 1, 2 * SEG + 999]
            .into_iter()
            .enumerate()
        {
            put_get(&c, "ciph", &format!("o{size}"), &data(size, 100 + i as u64)).await;
        }
        let body = data(2 * SEG + 999, 105);
        check_range(
            &gw,
            &format!("/ciph/o{}", body.len()),
            &body,
            "bytes=200000-300000",
            200_000,
            300_000,
        )
        .await;
        let layer = &gw.gateway().layer;
        let rec = layer.head_object("ciph", "o4097").await.unwrap();
        ids.push(rec.parts[0].stream.cipher);
        let rec_inline = layer.head_object("ciph", "o1").await.unwrap();
        assert_eq!(
            rec_inline.parts[0].stream.cipher, rec.parts[0].stream.cipher,
            "{cipher}"
        );
    }
    assert_ne!(
        ids[0], ids[1],
        "both gateways recorded the same cipher suite"
    );
}

#[tokio::test]
async fn when_required_and_when_supported_checksum_clients_both_work() {
    use aws_sdk_s3::config::RequestChecksumCalculation as R;
    let gw = TestGateway::start().await;
    let setup = gw.client();
    setup.create_bucket().bucket("cks").send().await.unwrap();
    for (n, mode) in [R::WhenRequired, R::WhenSupported].into_iter().enumerate() {
        let c = gw.client_with(mode);
        for (i, size) in [0, 17, 4097, SEG + 5].into_iter().enumerate() {
            let key = format!("m{n}-{size}");
            let body = data(size, (10 * n + i) as u64);
            put_get(&c, "cks", &key, &body).await;
            // And the other client reads it too.
            let other = gw.client_with(if n == 0 {
                R::WhenSupported
            } else {
                R::WhenRequired
            });
            let got = other
                .get_object()
                .bucket("cks")
                .key(&key)
                .send()
                .await
                .unwrap();
            let bytes = got.body.collect().await.unwrap().into_bytes();
            assert!(bytes[..] == body[..], "{key}");
        }
    }
}

/// GetObject/HeadObject `partNumber` on an object stored by one PutObject: part 1 is the whole
/// object (206, its Content-Range), any other part is 416 InvalidPartNumber.
#[tokio::test]
async fn part_number_on_a_single_part_object() {
    use crate::harness::s3x::{assert_bytes, expect_err, put};
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("single").send().await.unwrap();
    let body = data(70_000, 5);
    put(&c, "single", "k", &body).await;
    let one = c
        .get_object()
        .bucket("single")
        .key("k")
        .part_number(1)
        .send()
        .await
        .unwrap();
    assert_eq!(one.content_length(), Some(70_000));
    assert_eq!(one.content_range(), Some("bytes 0-69999/70000"));
    assert_eq!(one.parts_count(), None);
    assert_bytes(
        &one.body.collect().await.unwrap().into_bytes(),
        &body,
        "part 1",
    );
    let head = c
        .head_object()
        .bucket("single")
        .key("k")
        .part_number(1)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(70_000));
    expect_err(
        c.get_object()
            .bucket("single")
            .key("k")
            .part_number(2)
            .send()
            .await,
        416,
        "InvalidPartNumber",
    );
}
