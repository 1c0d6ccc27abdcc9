//! End-to-end conditional requests: GET/HEAD with If-Match, If-None-Match, If-Modified-Since
//! and If-Unmodified-Since alone and combined (RFC 9110 §13.2.2 precedence, as AWS documents
//! it), conditional PutObject (`If-None-Match: *`, `If-Match: etag`, and If-Match on a missing
//! key answering 404 as AWS documents), races of conditional writers (exactly one wins), and
//! the `response-*` overrides of GET.

use std::time::Duration;

use crate::harness::s3x::*;
use crate::harness::{data, TestGateway};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::Client;

/// Request headers of one case.
type Headers<'a> = Vec<(&'a str, &'a str)>;

/// ETag (quoted) and Last-Modified (epoch seconds) of an object.
async fn etag_and_time(c: &Client, bucket: &str, key: &str) -> (String, i64) {
    let h = c
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    (
        h.e_tag().unwrap().to_string(),
        h.last_modified().unwrap().secs(),
    )
}

#[tokio::test]
async fn get_and_head_conditions_and_their_precedence() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("cond").send().await.unwrap();
    let body = data(5000, 1);
    put(&c, "cond", "k", &body).await;
    let (etag, lm) = etag_and_time(&c, "cond", "k").await;
    let (at, before) = (http_date(lm), http_date(lm - 1));
    let wrong = etag_of(b"another body");
    let weak = format!("W/{etag}");
    let list = format!("{wrong}, {etag}");

    let cases: Vec<(&str, Headers, u16)> = vec![
        ("if-match current", vec![("if-match", &etag)], 200),
        ("if-match other", vec![("if-match", &wrong)], 412),
        ("if-match *", vec![("if-match", "*")], 200),
        ("if-match list", vec![("if-match", &list)], 200),
        ("if-none-match current", vec![("if-none-match", &etag)], 304),
        ("if-none-match weak", vec![("if-none-match", &weak)], 304),
        ("if-none-match other", vec![("if-none-match", &wrong)], 200),
        ("if-none-match *", vec![("if-none-match", "*")], 304),
        (
            "if-modified-since now",
            vec![("if-modified-since", &at)],
            304,
        ),
        (
            "if-modified-since before",
            vec![("if-modified-since", &before)],
            200,
        ),
        (
            "if-unmodified-since now",
            vec![("if-unmodified-since", &at)],
            200,
        ),
        (
            "if-unmodified-since before",
            vec![("if-unmodified-since", &before)],
            412,
        ),
        (
            "if-modified-since unparseable",
            vec![("if-modified-since", "yesterday-ish")],
            200,
        ),
        // AWS: If-Match true and If-Unmodified-Since false → 200.
        (
            "if-match true, if-unmodified-since false",
            vec![("if-match", &etag), ("if-unmodified-since", &before)],
            200,
        ),
        // AWS: If-None-Match false and If-Modified-Since true → 304.
        (
            "if-none-match false, if-modified-since true",
            vec![("if-none-match", &etag), ("if-modified-since", &before)],
            304,
        ),
        // RFC 9110: If-Modified-Since is ignored when If-None-Match is present.
        (
            "if-none-match true, if-modified-since false",
            vec![("if-none-match", &wrong), ("if-modified-since", &at)],
            200,
        ),
        // RFC 9110: the If-Match / If-Unmodified-Since step comes first.
        (
            "if-match false, if-none-match true",
            vec![("if-match", &wrong), ("if-none-match", &wrong)],
            412,
        ),
        (
            "if-match false, if-modified-since false",
            vec![("if-match", &wrong), ("if-modified-since", &at)],
            412,
        ),
        (
            "if-unmodified-since false, if-none-match false",
            vec![("if-unmodified-since", &before), ("if-none-match", &etag)],
            412,
        ),
    ];
    for (what, headers, want) in cases {
        for method in ["GET", "HEAD"] {
            let r = signed(&gw, method, "/cond/k", &headers, b"").await;
            assert_eq!(r.status, want, "{method} {what}: {}", r.body_text());
            match want {
                200 => {
                    if method == "GET" {
                        assert_bytes(&r.body, &body, what);
                    }
                }
                304 => {
                    assert!(r.body.is_empty(), "{method} {what}: 304 with a body");
                    assert_eq!(r.header("etag"), Some(etag.as_str()), "{method} {what}");
                    assert_eq!(r.header("last-modified"), Some(at.as_str()));
                }
                _ => {
                    if method == "GET" {
                        assert_eq!(r.code().as_deref(), Some("PreconditionFailed"), "{what}");
                    }
                }
            }
        }
    }

    // The SDK sees the same.
    expect_err(
        c.get_object()
            .bucket("cond")
            .key("k")
            .if_match(&wrong)
            .send()
            .await,
        412,
        "PreconditionFailed",
    );
    expect_status(
        c.get_object()
            .bucket("cond")
            .key("k")
            .if_none_match(&etag)
            .send()
            .await,
        304,
    );
    expect_status(
        c.head_object()
            .bucket("cond")
            .key("k")
            .if_modified_since(DateTime::from_secs(lm))
            .send()
            .await,
        304,
    );
    expect_status(
        c.head_object()
            .bucket("cond")
            .key("k")
            .if_unmodified_since(DateTime::from_secs(lm - 1))
            .send()
            .await,
        412,
    );
    let got = c
        .get_object()
        .bucket("cond")
        .key("k")
        .if_match(&etag)
        .if_modified_since(DateTime::from_secs(lm - 1))
        .send()
        .await
        .unwrap();
    assert_eq!(got.e_tag(), Some(etag.as_str()));
    // Conditions on a missing key: it is missing.
    expect_err(
        c.get_object()
            .bucket("cond")
            .key("nope")
            .if_match(&etag)
            .send()
            .await,
        404,
        "NoSuchKey",
    );
}

#[tokio::test]
async fn put_if_none_match_star_creates_only() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("cond").send().await.unwrap();
    let first = data(600 * KIB, 2);
    let etag = c
        .put_object()
        .bucket("cond")
        .key("k")
        .if_none_match("*")
        .body(ByteStream::from(first.clone()))
        .send()
        .await
        .unwrap()
        .e_tag()
        .unwrap()
        .to_string();
    assert_eq!(etag, etag_of(&first));
    let stored = pieces(&gw);
    for size in [100, 600 * KIB] {
        expect_err(
            c.put_object()
                .bucket("cond")
                .key("k")
                .if_none_match("*")
                .body(ByteStream::from(data(size, 3)))
                .send()
                .await,
            412,
            "PreconditionFailed",
        );
    }
    assert_bytes(&get(&c, "cond", "k").await, &first, "first writer's body");
    // The refused bodies leave no pieces behind, and the object's stay.
    wait_pieces(&gw, &stored, Duration::from_secs(10)).await;
    // Once the key is gone, it can be created again.
    c.delete_object()
        .bucket("cond")
        .key("k")
        .send()
        .await
        .unwrap();
    c.put_object()
        .bucket("cond")
        .key("k")
        .if_none_match("*")
        .body(ByteStream::from_static(b"again"))
        .send()
        .await
        .unwrap();
    assert_eq!(get(&c, "cond", "k").await, b"again");
}

#[tokio::test]
async fn put_if_match_replaces_only_the_expected_version() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("cond").send().await.unwrap();
    let v1 = put(&c, "cond", "k", b"version one").await;
    let put_if = |etag: &str, body: &'static [u8]| {
        c.put_object()
            .bucket("cond")
            .key("k")
            .if_match(etag)
            .body(ByteStream::from_static(body))
            .send()
    };
    let v2 = put_if(&v1, b"version two")
        .await
        .unwrap()
        .e_tag()
        .unwrap()
        .to_string();
    assert_eq!(v2, etag_of(b"version two"));
    // The old ETag no longer matches.
    expect_err(put_if(&v1, b"lost update").await, 412, "PreconditionFailed");
    assert_eq!(get(&c, "cond", "k").await, b"version two");
    // AWS: "If there's no current object version with the same name ... the operation fails
    // with a 404 Not Found error."
    expect_err(
        c.put_object()
            .bucket("cond")
            .key("missing")
            .if_match(&v1)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        404,
        "NoSuchKey",
    );
    expect_status(
        c.head_object().bucket("cond").key("missing").send().await,
        404,
    );
}

/// Runs `n` concurrent PUTs of distinct bodies to `key`, each with the given condition;
/// returns the bodies that were accepted and asserts every refusal is 412 (or AWS's 409
/// ConditionalRequestConflict).
async fn race(
    c: &Client,
    key: &str,
    n: u64,
    if_none_match: bool,
    if_match: Option<&str>,
) -> Vec<Vec<u8>> {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let (c, key) = (c.clone(), key.to_string());
        let if_match = if_match.map(str::to_string);
        let body = data(300 * KIB, 100 + i);
        set.spawn(async move {
            let mut req = c
                .put_object()
                .bucket("cond")
                .key(key)
                .set_if_match(if_match)
                .body(ByteStream::from(body.clone()));
            if if_none_match {
                req = req.if_none_match("*");
            }
            (body, req.send().await)
        });
    }
    let mut won = Vec::new();
    while let Some(joined) = set.join_next().await {
        let (body, result) = joined.unwrap();
        match result {
            Ok(_) => won.push(body),
            Err(e) => {
                let (status, code) = status_code(&e);
                assert!(
                    matches!(
                        (status, code.as_deref()),
                        (Some(412), Some("PreconditionFailed"))
                            | (Some(409), Some("ConditionalRequestConflict"))
                    ),
                    "{e:?}"
                );
            }
        }
    }
    won
}

#[tokio::test]
async fn of_eight_racing_conditional_writers_exactly_one_wins() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("cond").send().await.unwrap();
    for round in 0..3 {
        let key = format!("new-{round}");
        let won = race(&c, &key, 8, true, None).await;
        assert_eq!(won.len(), 1, "If-None-Match: * round {round}");
        assert_bytes(&get(&c, "cond", &key).await, &won[0], "winner's body");
    }
    // Compare-and-swap: all start from the same ETag, one replaces it.
    let v1 = put(&c, "cond", "cas", b"v1").await;
    let won = race(&c, "cas", 8, false, Some(&v1)).await;
    assert_eq!(won.len(), 1, "If-Match");
    assert_bytes(&get(&c, "cond", "cas").await, &won[0], "CAS winner's body");
}

#[tokio::test]
async fn response_overrides_on_get() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("cond").send().await.unwrap();
    let body = data(1000, 4);
    let expires = DateTime::from_secs(2_000_000_000);
    c.put_object()
        .bucket("cond")
        .key("k")
        .content_type("text/plain")
        .cache_control("max-age=60")
        .content_disposition("inline")
        .content_language("en")
        .content_encoding("identity")
        .expires(expires)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    // Stored headers come back as given.
    let plain = c.get_object().bucket("cond").key("k").send().await.unwrap();
    assert_eq!(plain.content_type(), Some("text/plain"));
    assert_eq!(plain.cache_control(), Some("max-age=60"));
    assert_eq!(plain.content_disposition(), Some("inline"));
    assert_eq!(plain.content_language(), Some("en"));
    assert_eq!(plain.content_encoding(), Some("identity"));
    assert_eq!(
        plain.expires_string(),
        Some(http_date(2_000_000_000).as_str())
    );

    let later = DateTime::from_secs(2_100_000_000);
    let got = c
        .get_object()
        .bucket("cond")
        .key("k")
        .response_content_type("application/x-test")
        .response_cache_control("no-cache")
        .response_content_disposition("attachment; filename=\"x.bin\"")
        .response_content_language("fr")
        .response_content_encoding("x-test")
        .response_expires(later)
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("application/x-test"));
    assert_eq!(got.cache_control(), Some("no-cache"));
    assert_eq!(
        got.content_disposition(),
        Some("attachment; filename=\"x.bin\"")
    );
    assert_eq!(got.content_language(), Some("fr"));
    assert_eq!(got.content_encoding(), Some("x-test"));
    assert_eq!(
        got.expires_string(),
        Some(http_date(2_100_000_000).as_str())
    );
    let bytes = got.body.collect().await.unwrap().into_bytes();
    assert_bytes(&bytes, &body, "overridden GET");
    // Overrides change the response only, never the object.
    let head = c
        .head_object()
        .bucket("cond")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(head.cache_control(), Some("max-age=60"));
    // With a range, too.
    let r = signed(
        &gw,
        "GET",
        "/cond/k?response-content-type=image%2Fpng",
        &[("range", "bytes=0-9")],
        b"",
    )
    .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_bytes(&r.body, &body[..10], "ranged overridden GET");
}

#[tokio::test]
async fn response_overrides_on_head() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("cond").send().await.unwrap();
    c.put_object()
        .bucket("cond")
        .key("k")
        .content_type("text/plain")
        .body(ByteStream::from_static(b"body"))
        .send()
        .await
        .unwrap();
    let head = c
        .head_object()
        .bucket("cond")
        .key("k")
        .response_content_type("application/x-test")
        .response_cache_control("no-cache")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("application/x-test"));
    assert_eq!(head.cache_control(), Some("no-cache"));
}

/// Conditional DeleteObject (as AWS documents for general purpose buckets): `If-Match` (an
/// ETag or `*`), `x-amz-if-match-size` and `x-amz-if-match-last-modified-time`, each failing
/// alone or beside ones that hold; read conditions refused; a missing key.
#[tokio::test]
async fn deletes_happen_only_when_their_conditions_hold() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("del").send().await.unwrap();
    let body = data(3000, 7);
    let etag = put(&c, "del", "k", &body).await;
    let (_, lm) = etag_and_time(&c, "del", "k").await;
    let delete = || c.delete_object().bucket("del").key("k");
    let at = |secs| DateTime::from_secs(secs);

    let failing = [
        delete().if_match("\"0123456789abcdef0123456789abcdef\""),
        delete().if_match(format!("{etag}, {etag}")),
        delete().if_match_size(2999),
        delete().if_match_last_modified_time(at(lm - 1)),
        delete().if_match(&etag).if_match_size(3001),
        delete()
            .if_match("*")
            .if_match_size(3000)
            .if_match_last_modified_time(at(lm + 1)),
    ];
    for request in failing {
        expect_err(request.send().await, 412, "PreconditionFailed");
        assert_bytes(&get(&c, "del", "k").await, &body, "after a failed delete");
    }
    // The conditions of a read mean nothing on a delete: refused, never ignored.
    for (name, value) in [
        ("if-none-match", "*"),
        ("if-unmodified-since", "Wed, 25 Nov 2026 17:13:11 GMT"),
    ] {
        let r = delete()
            .customize()
            .mutate_request(move |req| {
                req.headers_mut().insert(name, value);
            })
            .send()
            .await;
        expect_err(r, 501, "NotImplemented");
        assert_bytes(&get(&c, "del", "k").await, &body, name);
    }

    delete()
        .if_match(&etag)
        .if_match_size(3000)
        .if_match_last_modified_time(at(lm))
        .send()
        .await
        .unwrap();
    expect_status(c.head_object().bucket("del").key("k").send().await, 404);
    // A missing key: If-Match is 404 NoSuchKey; size or time alone succeed (nothing to do).
    expect_err(delete().if_match("*").send().await, 404, "NoSuchKey");
    expect_err(delete().if_match(&etag).send().await, 404, "NoSuchKey");
    delete().if_match_size(3000).send().await.unwrap();
    // A missing bucket is NoSuchBucket, with or without conditions.
    for r in [
        c.delete_object().bucket("no-such-bucket").key("k"),
        c.delete_object()
            .bucket("no-such-bucket")
            .key("k")
            .if_match("*"),
    ] {
        expect_err(r.send().await, 404, "NoSuchBucket");
    }
    // `If-Match: *` deletes whatever is there.
    put(&c, "del", "k", b"again").await;
    delete().if_match("*").send().await.unwrap();
    expect_status(c.head_object().bucket("del").key("k").send().await, 404);
}

/// DeleteObjects evaluates each object's `ETag`, `Size` and `LastModifiedTime`: a failed one
/// is an error entry and stays; the others are deleted.
#[tokio::test]
async fn delete_objects_checks_each_object_s_conditions() {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("dels").send().await.unwrap();
    let mut etags = std::collections::HashMap::new();
    for key in ["a", "b", "c", "d", "e"] {
        etags.insert(key, put(&c, "dels", key, key.as_bytes()).await);
    }
    let (_, lm) = etag_and_time(&c, "dels", "e").await;
    let id = |key: &str| ObjectIdentifier::builder().key(key);
    let objects = vec![
        id("a").e_tag("\"ffffffffffffffffffffffffffffffff\""),
        id("b").e_tag(&etags["b"]),
        id("c").size(2),
        id("d").e_tag(&etags["d"]).size(1),
        id("e").last_modified_time(DateTime::from_secs(lm - 1)),
        id("missing").e_tag("*"),
        id("missing-too").size(5),
    ];
    let out = c
        .delete_objects()
        .bucket("dels")
        .delete(
            Delete::builder()
                .set_objects(Some(
                    objects.into_iter().map(|o| o.build().unwrap()).collect(),
                ))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let mut deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
    deleted.sort_unstable();
    assert_eq!(deleted, ["b", "d", "missing-too"]);
    let mut errors: Vec<(&str, &str)> = out
        .errors()
        .iter()
        .map(|e| (e.key().unwrap(), e.code().unwrap()))
        .collect();
    errors.sort_unstable();
    assert_eq!(
        errors,
        [
            ("a", "PreconditionFailed"),
            ("c", "PreconditionFailed"),
            ("e", "PreconditionFailed"),
            ("missing", "NoSuchKey"),
        ]
    );
    for key in ["a", "c", "e"] {
        assert_eq!(get(&c, "dels", key).await, key.as_bytes());
    }
    for key in ["b", "d"] {
        expect_status(c.head_object().bucket("dels").key(key).send().await, 404);
    }
}

/// `If-Match` on a write: `*` means "exists" (404 NoSuchKey on a missing key); a list of
/// ETags is compared whole, as S3 does, so it never matches (412), even when it names the
/// current ETag.
#[tokio::test]
async fn if_match_on_writes_takes_star_and_compares_a_list_whole() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("wrt").send().await.unwrap();
    let etag = put(&c, "wrt", "k", b"one").await;
    let write = |body: &'static [u8]| {
        c.put_object()
            .bucket("wrt")
            .key("k")
            .body(ByteStream::from_static(body))
    };
    expect_err(
        write(b"two")
            .if_match(format!("\"0\", {etag}"))
            .send()
            .await,
        412,
        "PreconditionFailed",
    );
    assert_eq!(get(&c, "wrt", "k").await, b"one");
    write(b"three").if_match("*").send().await.unwrap();
    assert_eq!(get(&c, "wrt", "k").await, b"three");
    let missing = c
        .put_object()
        .bucket("wrt")
        .key("missing")
        .if_match("*")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    expect_err(missing, 404, "NoSuchKey");
}
