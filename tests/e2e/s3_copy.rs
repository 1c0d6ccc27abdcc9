//! End-to-end CopyObject through aws-sdk-s3: metadata and tagging directives, copying onto
//! itself (refused unchanged, allowed with REPLACE as rclone does to set modtimes), the
//! copy-source conditions, missing sources, conditional copies, and that a copy moves no data:
//! it shares the stored body, which outlives the source and is released with the last copy.

use std::time::Duration;

use crate::harness::s3x::*;
use crate::harness::{data, TestGateway};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, MetadataDirective, TaggingDirective};
use aws_sdk_s3::Client;

async fn tags(c: &Client, bucket: &str, key: &str) -> Vec<(String, String)> {
    c.get_object_tagging()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("tags of {key}: {e:?}"))
        .tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn put_source(c: &Client, body: &[u8]) -> String {
    c.put_object()
        .bucket("cpy")
        .key("src")
        .content_type("text/plain")
        .cache_control("max-age=60")
        .content_disposition("attachment; filename=\"src.txt\"")
        .metadata("color", "blue")
        .metadata("mtime", "1700000000")
        .tagging("t=1&team=storage")
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap()
        .e_tag()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn metadata_and_tagging_directives() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("cpy").send().await.unwrap();
    let body = data(10_000, 1);
    let etag = put_source(&c, &body).await;
    let copy = |dst: &str| {
        c.copy_object()
            .bucket("cpy")
            .key(dst)
            .copy_source("cpy/src")
    };

    // COPY (the default): everything comes along, x-amz-tagging is ignored.
    let out = copy("same").tagging("ignored=yes").send().await.unwrap();
    let result = out.copy_object_result().expect("CopyObjectResult");
    assert_eq!(result.e_tag(), Some(etag.as_str()));
    assert!(result.last_modified().is_some());
    let head = c
        .head_object()
        .bucket("cpy")
        .key("same")
        .send()
        .await
        .unwrap();
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(
        head.content_disposition(),
        Some("attachment; filename=\"src.txt\"")
    );
    let meta = head.metadata().unwrap();
    assert_eq!(meta.get("color").map(String::as_str), Some("blue"));
    assert_eq!(meta.get("mtime").map(String::as_str), Some("1700000000"));
    assert_eq!(
        tags(&c, "cpy", "same").await,
        pairs(&[("t", "1"), ("team", "storage")])
    );
    assert_bytes(&get(&c, "cpy", "same").await, &body, "COPY");

    // REPLACE: only what this request says.
    copy("replaced")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("application/json")
        .metadata("shape", "round")
        .send()
        .await
        .unwrap();
    let head = c
        .head_object()
        .bucket("cpy")
        .key("replaced")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("application/json"));
    assert_eq!(head.cache_control(), None);
    assert_eq!(head.content_disposition(), None);
    let meta = head.metadata().unwrap();
    assert_eq!(meta.len(), 1, "{meta:?}");
    assert_eq!(meta.get("shape").map(String::as_str), Some("round"));
    // Tags follow their own directive (COPY by default).
    assert_eq!(
        tags(&c, "cpy", "replaced").await,
        pairs(&[("t", "1"), ("team", "storage")])
    );
    assert_bytes(&get(&c, "cpy", "replaced").await, &body, "REPLACE");

    copy("retagged")
        .tagging_directive(TaggingDirective::Replace)
        .tagging("x=9&y=two%20words")
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags(&c, "cpy", "retagged").await,
        pairs(&[("x", "9"), ("y", "two words")])
    );
    let meta = c
        .head_object()
        .bucket("cpy")
        .key("retagged")
        .send()
        .await
        .unwrap();
    assert_eq!(
        meta.metadata().unwrap().get("color").map(String::as_str),
        Some("blue")
    );
    copy("untagged")
        .tagging_directive(TaggingDirective::Replace)
        .send()
        .await
        .unwrap();
    assert!(tags(&c, "cpy", "untagged").await.is_empty());

    // Directive values other than COPY/REPLACE, and invalid tags on copy.
    let r = signed(
        &gw,
        "PUT",
        "/cpy/bad",
        &[
            ("x-amz-copy-source", "/cpy/src"),
            ("x-amz-metadata-directive", "MERGE"),
        ],
        b"",
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body_text());
    assert_eq!(r.code().as_deref(), Some("InvalidArgument"));
    let eleven: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
    expect_err(
        copy("bad")
            .tagging_directive(TaggingDirective::Replace)
            .tagging(eleven.join("&"))
            .send()
            .await,
        400,
        "InvalidTag",
    );
    expect_status(c.head_object().bucket("cpy").key("bad").send().await, 404);
}

#[tokio::test]
async fn copying_onto_itself_needs_a_replace() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("cpy").send().await.unwrap();
    let body = data(300 << 10, 2);
    let etag = put_source(&c, &body).await;
    let before = c
        .head_object()
        .bucket("cpy")
        .key("src")
        .send()
        .await
        .unwrap();
    let pieces_before = pieces(&gw);

    expect_err(
        c.copy_object()
            .bucket("cpy")
            .key("src")
            .copy_source("cpy/src")
            .send()
            .await,
        400,
        "InvalidRequest",
    );

    // rclone sets a modtime this way: same key, REPLACE, new metadata.
    next_second().await;
    c.copy_object()
        .bucket("cpy")
        .key("src")
        .copy_source("cpy/src")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/plain")
        .metadata("mtime", "1800000000.5")
        .send()
        .await
        .unwrap();
    let after = c
        .head_object()
        .bucket("cpy")
        .key("src")
        .send()
        .await
        .unwrap();
    let meta = after.metadata().unwrap();
    assert_eq!(meta.get("mtime").map(String::as_str), Some("1800000000.5"));
    assert_eq!(meta.get("color"), None);
    assert_eq!(after.e_tag(), Some(etag.as_str()));
    assert!(
        after.last_modified().unwrap().secs() > before.last_modified().unwrap().secs(),
        "Last-Modified must move: {:?} then {:?}",
        before.last_modified(),
        after.last_modified()
    );
    assert_bytes(&get(&c, "cpy", "src").await, &body, "after self-copy");
    // No data moved, and the body the object had is still the one it has.
    assert_eq!(pieces(&gw), pieces_before);
    gw.collect_garbage().await;
    assert_eq!(pieces(&gw), pieces_before);
}

#[tokio::test]
async fn copy_source_conditions() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("cpy").send().await.unwrap();
    let body = data(5000, 3);
    let etag = put(&c, "cpy", "src", &body).await;
    let lm = c
        .head_object()
        .bucket("cpy")
        .key("src")
        .send()
        .await
        .unwrap()
        .last_modified()
        .unwrap()
        .secs();
    let at = DateTime::from_secs;
    let copy = || {
        c.copy_object()
            .bucket("cpy")
            .key("dst")
            .copy_source("cpy/src")
    };
    let wrong = etag_of(b"not the source");

    for (what, req) in [
        ("if-match wrong", copy().copy_source_if_match(&wrong)),
        (
            "if-none-match current",
            copy().copy_source_if_none_match(&etag),
        ),
        (
            "if-modified-since last-modified",
            copy().copy_source_if_modified_since(at(lm)),
        ),
        (
            "if-unmodified-since before",
            copy().copy_source_if_unmodified_since(at(lm - 1)),
        ),
        (
            "if-none-match current, if-modified-since before",
            copy()
                .copy_source_if_none_match(&etag)
                .copy_source_if_modified_since(at(lm - 1)),
        ),
    ] {
        let e = req.send().await.expect_err(what);
        assert_eq!(
            status_code(&e),
            (Some(412), Some("PreconditionFailed".to_string())),
            "{what}: {e:?}"
        );
        expect_status(c.head_object().bucket("cpy").key("dst").send().await, 404);
    }

    for (what, req) in [
        ("if-match current", copy().copy_source_if_match(&etag)),
        (
            "if-none-match wrong",
            copy().copy_source_if_none_match(&wrong),
        ),
        (
            "if-modified-since before",
            copy().copy_source_if_modified_since(at(lm - 1)),
        ),
        (
            "if-unmodified-since last-modified",
            copy().copy_source_if_unmodified_since(at(lm)),
        ),
        // AWS: if-match true and if-unmodified-since false copy anyway.
        (
            "if-match current, if-unmodified-since before",
            copy()
                .copy_source_if_match(&etag)
                .copy_source_if_unmodified_since(at(lm - 1)),
        ),
    ] {
        req.send().await.unwrap_or_else(|e| panic!("{what}: {e:?}"));
        assert_bytes(&get(&c, "cpy", "dst").await, &body, what);
        c.delete_object()
            .bucket("cpy")
            .key("dst")
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn missing_sources_and_destinations() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("cpy").send().await.unwrap();
    put(&c, "cpy", "src", b"hello").await;
    let copy = |bucket: &str, source: &str| {
        c.copy_object()
            .bucket(bucket)
            .key("dst")
            .copy_source(source)
            .send()
    };
    expect_err(copy("cpy", "cpy/nope").await, 404, "NoSuchKey");
    expect_err(copy("cpy", "no-such-bucket/src").await, 404, "NoSuchBucket");
    expect_err(copy("no-such-bucket", "cpy/src").await, 404, "NoSuchBucket");
    expect_err(copy("cpy", "cpy").await, 400, "InvalidArgument");
    expect_status(c.head_object().bucket("cpy").key("dst").send().await, 404);
    // An encoded source key: spaces and non-ASCII.
    put(&c, "cpy", "dir/a bé", b"encoded").await;
    copy("cpy", "cpy/dir/a%20b%C3%A9").await.unwrap();
    assert_eq!(get(&c, "cpy", "dst").await, b"encoded");
}

#[tokio::test]
async fn conditional_copy_onto_an_existing_key() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("cpy").send().await.unwrap();
    put(&c, "cpy", "src", b"source").await;
    let old = put(&c, "cpy", "dst", b"destination").await;
    let copy = || {
        c.copy_object()
            .bucket("cpy")
            .key("dst")
            .copy_source("cpy/src")
    };
    expect_err(
        copy().if_none_match("*").send().await,
        412,
        "PreconditionFailed",
    );
    expect_err(
        copy().if_match(etag_of(b"other")).send().await,
        412,
        "PreconditionFailed",
    );
    assert_eq!(get(&c, "cpy", "dst").await, b"destination");
    copy().if_match(&old).send().await.unwrap();
    assert_eq!(get(&c, "cpy", "dst").await, b"source");
    copy().key("fresh").if_none_match("*").send().await.unwrap();
    assert_eq!(get(&c, "cpy", "fresh").await, b"source");
}

#[tokio::test]
async fn copies_share_the_stored_body_which_outlives_the_source() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("cpy").send().await.unwrap();
    c.create_bucket().bucket("cpy2").send().await.unwrap();
    // A multi-segment object with a CRC32 checksum, and a multipart object.
    let single = data(3 * (256 << 10) + 123, 4);
    c.put_object()
        .bucket("cpy")
        .key("single")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(ByteStream::from(single.clone()))
        .send()
        .await
        .unwrap();
    let parts = [data(5 * MIB, 5), data(100 * KIB, 6)];
    let id = c
        .create_multipart_upload()
        .bucket("cpy")
        .key("multi")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string();
    let mut done = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let out = c
            .upload_part()
            .bucket("cpy")
            .key("multi")
            .upload_id(&id)
            .part_number(i as i32 + 1)
            .body(ByteStream::from(p.clone()))
            .send()
            .await
            .unwrap();
        done.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(i as i32 + 1)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    c.complete_multipart_upload()
        .bucket("cpy")
        .key("multi")
        .upload_id(&id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let multi = parts.concat();
    let stored = pieces(&gw);
    assert!(!stored.is_empty());

    for (bucket, key, source) in [
        ("cpy", "single-a", "cpy/single"),
        ("cpy2", "single-b", "cpy/single"),
        ("cpy2", "multi-a", "cpy/multi"),
    ] {
        c.copy_object()
            .bucket(bucket)
            .key(key)
            .copy_source(source)
            .send()
            .await
            .unwrap_or_else(|e| panic!("copy to {bucket}/{key}: {e:?}"));
    }
    assert_eq!(pieces(&gw), stored, "a copy wrote or removed piece files");
    // The copy keeps the source's checksum.
    let head = c
        .head_object()
        .bucket("cpy2")
        .key("single-b")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    let crc = checksum_b64(&ChecksumAlgorithm::Crc32, &single);
    assert_eq!(head.checksum_crc32(), Some(crc.as_str()));

    // Sources gone: the copies still read exactly, from the same piece files.
    c.delete_object()
        .bucket("cpy")
        .key("single")
        .send()
        .await
        .unwrap();
    c.delete_object()
        .bucket("cpy")
        .key("multi")
        .send()
        .await
        .unwrap();
    gw.collect_garbage().await;
    assert_eq!(
        pieces(&gw),
        stored,
        "deleting a source released shared pieces"
    );
    assert_bytes(&get(&c, "cpy", "single-a").await, &single, "single-a");
    assert_bytes(&get(&c, "cpy2", "single-b").await, &single, "single-b");
    assert_bytes(&get(&c, "cpy2", "multi-a").await, &multi, "multi-a");

    // The last reference releases them.
    c.delete_object()
        .bucket("cpy")
        .key("single-a")
        .send()
        .await
        .unwrap();
    c.delete_object()
        .bucket("cpy2")
        .key("single-b")
        .send()
        .await
        .unwrap();
    c.delete_object()
        .bucket("cpy2")
        .key("multi-a")
        .send()
        .await
        .unwrap();
    wait_gone(&stored, Duration::from_secs(10), "last copies deleted").await;
}
