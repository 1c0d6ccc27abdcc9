//! End-to-end multipart uploads through aws-sdk-s3 and raw HTTP: the whole lifecycle (ETag as
//! the MD5 of the part MD5s, exact bytes, ranges across part boundaries, GET/HEAD by part
//! number), part replacement, completing a subset, the completion errors, NoSuchUpload,
//! ListParts and ListMultipartUploads paging, abort releasing pieces, UploadPartCopy,
//! conditional and racing completions, retried completions, and COMPOSITE / FULL_OBJECT
//! checksums.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::harness::s3x::*;
use crate::harness::{data, TestGateway};
use aws_sdk_s3::operation::complete_multipart_upload::{
    CompleteMultipartUploadError, CompleteMultipartUploadOutput,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
};
use aws_sdk_s3::Client;

type CompleteResult = Result<
    CompleteMultipartUploadOutput,
    aws_sdk_s3::error::SdkError<CompleteMultipartUploadError>,
>;

async fn create(c: &Client, bucket: &str, key: &str) -> String {
    c.create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {key}: {e:?}"))
        .upload_id()
        .expect("upload id")
        .to_string()
}

async fn upload(c: &Client, bucket: &str, key: &str, id: &str, n: i32, body: &[u8]) -> String {
    c.upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .part_number(n)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("upload part {n} of {key}: {e:?}"))
        .e_tag()
        .expect("part etag")
        .to_string()
}

fn completed(parts: &[(i32, &str)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts
                .iter()
                .map(|(n, e)| CompletedPart::builder().part_number(*n).e_tag(*e).build())
                .collect(),
        ))
        .build()
}

async fn complete(
    c: &Client,
    bucket: &str,
    key: &str,
    id: &str,
    parts: &[(i32, &str)],
) -> CompleteResult {
    c.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(completed(parts))
        .send()
        .await
}

/// Keys of the uploads in progress in `bucket`, in listing order.
async fn upload_keys(c: &Client, bucket: &str) -> Vec<String> {
    let out = c
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    out.uploads()
        .iter()
        .map(|u| u.key().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn three_parts_read_back_exact_with_ranges_and_part_numbers() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("mpu").send().await.unwrap();
    let parts = [data(5 * MIB, 1), data(5 * MIB, 2), data(MIB, 3)];
    let whole: Vec<u8> = parts.concat();
    let id = create(&c, "mpu", "big").await;
    let mut etags = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let etag = upload(&c, "mpu", "big", &id, i as i32 + 1, p).await;
        assert_eq!(etag, etag_of(p), "ETag of part {}", i + 1);
        etags.push(etag);
    }
    // Nothing is visible before completion.
    expect_status(c.head_object().bucket("mpu").key("big").send().await, 404);

    let listed = c
        .list_parts()
        .bucket("mpu")
        .key("big")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    let got: Vec<(i32, i64, String)> = listed
        .parts()
        .iter()
        .map(|p| {
            (
                p.part_number().unwrap(),
                p.size().unwrap(),
                p.e_tag().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(i32, i64, String)> = parts
        .iter()
        .zip(&etags)
        .enumerate()
        .map(|(i, (p, e))| (i as i32 + 1, p.len() as i64, e.clone()))
        .collect();
    assert_eq!(got, want);

    let list: Vec<(i32, &str)> = etags
        .iter()
        .enumerate()
        .map(|(i, e)| (i as i32 + 1, e.as_str()))
        .collect();
    let done = complete(&c, "mpu", "big", &id, &list).await.unwrap();
    let want_etag = multipart_etag(&[&parts[0], &parts[1], &parts[2]]);
    assert!(want_etag.ends_with("-3\""), "{want_etag}");
    assert_eq!(done.e_tag(), Some(want_etag.as_str()));
    assert_eq!(done.key(), Some("big"));
    assert_eq!(done.bucket(), Some("mpu"));

    let head = c
        .head_object()
        .bucket("mpu")
        .key("big")
        .send()
        .await
        .unwrap();
    assert_eq!(head.e_tag(), Some(want_etag.as_str()));
    assert_eq!(head.content_length(), Some(whole.len() as i64));
    assert_bytes(&get(&c, "mpu", "big").await, &whole, "whole object");
    // The upload is gone once completed.
    assert!(upload_keys(&c, "mpu").await.is_empty());

    let (b1, b2) = (5 * MIB, 10 * MIB);
    let total = whole.len();
    for (a, b) in [
        (b1 - 10, b1 + 9),
        (b1 - 1, b1),
        (b1, b2 - 1),
        (b2 - 1, b2),
        (b2 - 5, total - 1),
        (MIB, total - 2),
    ] {
        let spec = format!("bytes={a}-{b}");
        let r = signed(&gw, "GET", "/mpu/big", &[("range", &spec)], b"").await;
        assert_eq!(r.status, 206, "{spec}: {}", r.body_text());
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {a}-{b}/{total}").as_str()),
            "{spec}"
        );
        assert_bytes(&r.body, &whole[a..=b], &spec);
    }

    let mut start = 0;
    for (i, p) in parts.iter().enumerate() {
        let n = i + 1;
        let end = start + p.len() - 1;
        let target = format!("/mpu/big?partNumber={n}");
        for method in ["GET", "HEAD"] {
            let r = signed(&gw, method, &target, &[], b"").await;
            assert_eq!(r.status, 206, "{method} part {n}: {}", r.body_text());
            assert_eq!(
                r.header("content-range"),
                Some(format!("bytes {start}-{end}/{total}").as_str()),
                "{method} part {n}"
            );
            assert_eq!(
                r.header("content-length"),
                Some(p.len().to_string().as_str()),
                "{method} part {n}"
            );
            assert_eq!(
                r.header("x-amz-mp-parts-count"),
                Some("3"),
                "{method} part {n}"
            );
            assert_eq!(
                r.header("etag"),
                Some(want_etag.as_str()),
                "{method} part {n}"
            );
            if method == "GET" {
                assert_bytes(&r.body, p, &format!("part {n}"));
            }
        }
        // The SDK agrees (and its response checksum validation has nothing to object to).
        let out = c
            .get_object()
            .bucket("mpu")
            .key("big")
            .part_number(n as i32)
            .send()
            .await
            .unwrap();
        assert_eq!(out.parts_count(), Some(3));
        assert_eq!(out.content_length(), Some(p.len() as i64));
        let body = out.body.collect().await.unwrap().into_bytes();
        assert_bytes(&body, p, &format!("SDK part {n}"));
        start = end + 1;
    }
    let r = signed(&gw, "GET", "/mpu/big?partNumber=4", &[], b"").await;
    assert_eq!(r.status, 416, "{}", r.body_text());
    assert_eq!(r.code().as_deref(), Some("InvalidPartNumber"));
}

#[tokio::test]
async fn a_reuploaded_part_replaces_the_old_one_and_a_subset_can_be_completed() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("mpu").send().await.unwrap();
    let (a, b, small, d) = (
        data(5 * MIB, 11),
        data(5 * MIB, 12),
        data(MIB, 13),
        data(5 * MIB, 14),
    );
    let id = create(&c, "mpu", "k").await;
    let mut before = pieces(&gw);
    let mut stored = Vec::new();
    for (n, body) in [(1, &a), (2, &b), (3, &small), (2, &d)] {
        let etag = upload(&c, "mpu", "k", &id, n, body).await;
        assert_eq!(etag, etag_of(body));
        let mine = new_pieces(&gw, &before);
        assert!(!mine.is_empty(), "part {n} stored no piece files");
        before.extend(mine.iter().cloned());
        stored.push((n, etag, mine));
    }
    let (e1, p1) = (&stored[0].1, &stored[0].2);
    let (old_e2, old_p2) = (&stored[1].1, &stored[1].2);
    let (e3, p3) = (&stored[2].1, &stored[2].2);
    let (e2, p2) = (&stored[3].1, &stored[3].2);
    // A replacement is a new stream: new piece files, never the old names (no key reuse).
    assert!(p2.is_disjoint(old_p2));
    wait_gone(old_p2, Duration::from_secs(10), "replaced part 2").await;

    let listed = c
        .list_parts()
        .bucket("mpu")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    let etags: Vec<(i32, &str)> = listed
        .parts()
        .iter()
        .map(|p| (p.part_number().unwrap(), p.e_tag().unwrap()))
        .collect();
    assert_eq!(
        etags,
        vec![(1, e1.as_str()), (2, e2.as_str()), (3, e3.as_str())]
    );

    // The replaced part's ETag no longer names a part.
    expect_err(
        complete(&c, "mpu", "k", &id, &[(2, old_e2), (3, e3)]).await,
        400,
        "InvalidPart",
    );
    // Parts 2 and 3 only: the replacement's content wins, part 1 is left out.
    let done = complete(&c, "mpu", "k", &id, &[(2, e2), (3, e3)])
        .await
        .unwrap();
    assert_eq!(done.e_tag(), Some(multipart_etag(&[&d, &small]).as_str()));
    assert_bytes(
        &get(&c, "mpu", "k").await,
        &[d.clone(), small.clone()].concat(),
        "subset",
    );
    // The part left out is garbage; the parts in the object stay.
    wait_gone(p1, Duration::from_secs(10), "part 1 left out of the object").await;
    assert!(p2.iter().chain(p3.iter()).all(|p| p.exists()));
}

#[tokio::test]
async fn completion_refuses_small_unknown_mismatched_and_unordered_parts() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("mpu").send().await.unwrap();
    let (p1, p2) = (data(MIB, 1), data(MIB, 2));
    let id = create(&c, "mpu", "k").await;
    let e1 = upload(&c, "mpu", "k", &id, 1, &p1).await;
    let e2 = upload(&c, "mpu", "k", &id, 2, &p2).await;
    // Every part but the last must be at least 5 MiB.
    expect_err(
        complete(&c, "mpu", "k", &id, &[(1, &e1), (2, &e2)]).await,
        400,
        "EntityTooSmall",
    );
    // A wrong ETag, or a part that was never uploaded.
    expect_err(
        complete(&c, "mpu", "k", &id, &[(1, &etag_of(b"other"))]).await,
        400,
        "InvalidPart",
    );
    expect_err(
        complete(&c, "mpu", "k", &id, &[(7, &e1)]).await,
        400,
        "InvalidPart",
    );
    expect_err(
        complete(&c, "mpu", "k", &id, &[(2, &e2), (1, &e1)]).await,
        400,
        "InvalidPartOrder",
    );
    // None of that committed anything or ended the upload.
    expect_status(c.head_object().bucket("mpu").key("k").send().await, 404);
    assert_eq!(upload_keys(&c, "mpu").await, vec!["k".to_string()]);
    // A single small part is fine: the last part has no minimum.
    let done = complete(&c, "mpu", "k", &id, &[(2, &e2)]).await.unwrap();
    assert_eq!(done.e_tag(), Some(multipart_etag(&[&p2]).as_str()));
    assert_bytes(&get(&c, "mpu", "k").await, &p2, "single part");
}

#[tokio::test]
async fn completing_with_an_empty_part_list_is_malformed_xml() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("mpu").send().await.unwrap();
    let id = create(&c, "mpu", "k").await;
    upload(&c, "mpu", "k", &id, 1, b"abc").await;
    // As AWS (and ceph's s3-tests, test_multipart_upload_empty) answer.
    expect_err(
        complete(&c, "mpu", "k", &id, &[]).await,
        400,
        "MalformedXML",
    );
}

#[tokio::test]
async fn unknown_completed_and_aborted_uploads_are_no_such_upload() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("mpu").send().await.unwrap();

    async fn all_refused(c: &Client, key: &str, id: &str) {
        expect_err(
            c.upload_part()
                .bucket("mpu")
                .key(key)
                .upload_id(id)
                .part_number(1)
                .body(ByteStream::from_static(b"x"))
                .send()
                .await,
            404,
            "NoSuchUpload",
        );
        expect_err(
            c.list_parts()
                .bucket("mpu")
                .key(key)
                .upload_id(id)
                .send()
                .await,
            404,
            "NoSuchUpload",
        );
        expect_err(
            complete(c, "mpu", key, id, &[(1, &etag_of(b"x"))]).await,
            404,
            "NoSuchUpload",
        );
        expect_err(
            c.abort_multipart_upload()
                .bucket("mpu")
                .key(key)
                .upload_id(id)
                .send()
                .await,
            404,
            "NoSuchUpload",
        );
    }

    all_refused(&c, "k", "0123456789abcdef0123456789abcdef0123456789abcdef").await;

    let done = create(&c, "mpu", "done").await;
    let e = upload(&c, "mpu", "done", &done, 1, b"body").await;
    complete(&c, "mpu", "done", &done, &[(1, &e)])
        .await
        .unwrap();
    all_refused(&c, "done", &done).await;

    let aborted = create(&c, "mpu", "aborted").await;
    upload(&c, "mpu", "aborted", &aborted, 1, b"body").await;
    c.abort_multipart_upload()
        .bucket("mpu")
        .key("aborted")
        .upload_id(&aborted)
        .send()
        .await
        .unwrap();
    all_refused(&c, "aborted", &aborted).await;
    expect_status(
        c.head_object().bucket("mpu").key("aborted").send().await,
        404,
    );

    // An upload id belongs to its key.
    let other = create(&c, "mpu", "mine").await;
    expect_err(
        c.list_parts()
            .bucket("mpu")
            .key("not-mine")
            .upload_id(&other)
            .send()
            .await,
        404,
        "NoSuchUpload",
    );
}

#[tokio::test]
async fn list_parts_pages_with_max_parts_and_part_number_marker() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("mpu").send().await.unwrap();
    let id = create(&c, "mpu", "k").await;
    let body = |n: i32| data(1000 + n as usize, n as u64);
    for n in [5, 3, 1, 4, 2] {
        upload(&c, "mpu", "k", &id, n, &body(n)).await;
    }
    let page = |marker: Option<&str>| {
        let mut req = c
            .list_parts()
            .bucket("mpu")
            .key("k")
            .upload_id(&id)
            .max_parts(2);
        if let Some(m) = marker {
            req = req.part_number_marker(m);
        }
        req.send()
    };
    let numbers = |out: &aws_sdk_s3::operation::list_parts::ListPartsOutput| {
        out.parts()
            .iter()
            .map(|p| p.part_number().unwrap())
            .collect::<Vec<_>>()
    };

    let p1 = page(None).await.unwrap();
    assert_eq!(numbers(&p1), vec![1, 2]);
    assert_eq!(p1.is_truncated(), Some(true));
    assert_eq!(p1.max_parts(), Some(2));
    assert_eq!(p1.next_part_number_marker(), Some("2"));
    let p2 = page(p1.next_part_number_marker()).await.unwrap();
    assert_eq!(numbers(&p2), vec![3, 4]);
    assert_eq!(p2.is_truncated(), Some(true));
    assert_eq!(p2.part_number_marker(), Some("2"));
    assert_eq!(p2.next_part_number_marker(), Some("4"));
    let p3 = page(p2.next_part_number_marker()).await.unwrap();
    assert_eq!(numbers(&p3), vec![5]);
    assert_eq!(p3.is_truncated(), Some(false));

    let all = c
        .list_parts()
        .bucket("mpu")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(numbers(&all), vec![1, 2, 3, 4, 5]);
    assert_eq!(all.is_truncated(), Some(false));
    for p in all.parts() {
        let n = p.part_number().unwrap();
        assert_eq!(p.size(), Some(1000 + i64::from(n)));
        assert_eq!(p.e_tag(), Some(etag_of(&body(n)).as_str()));
        assert!(p.last_modified().is_some());
    }
}

#[tokio::test]
async fn list_multipart_uploads_with_prefix_delimiter_markers_and_max_uploads() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("mpu").send().await.unwrap();
    let keys = ["a/1", "a/2", "b/1", "c", "d/e/f"];
    let mut ids = Vec::new();
    for k in keys {
        ids.push((k.to_string(), create(&c, "mpu", k).await));
    }
    let list = || c.list_multipart_uploads().bucket("mpu");
    let summary =
        |out: &aws_sdk_s3::operation::list_multipart_uploads::ListMultipartUploadsOutput| {
            let uploads: Vec<(String, String)> = out
                .uploads()
                .iter()
                .map(|u| {
                    (
                        u.key().unwrap().to_string(),
                        u.upload_id().unwrap().to_string(),
                    )
                })
                .collect();
            let prefixes: Vec<String> = out
                .common_prefixes()
                .iter()
                .map(|p| p.prefix().unwrap().to_string())
                .collect();
            (uploads, prefixes)
        };

    let all = list().send().await.unwrap();
    assert_eq!(summary(&all), (ids.clone(), vec![]));
    assert_eq!(all.is_truncated(), Some(false));

    let a = list().prefix("a/").send().await.unwrap();
    assert_eq!(summary(&a), (ids[..2].to_vec(), vec![]));

    let top = list().delimiter("/").send().await.unwrap();
    assert_eq!(
        summary(&top),
        (
            vec![ids[3].clone()],
            vec!["a/".to_string(), "b/".to_string(), "d/".to_string()]
        )
    );
    let d = list().prefix("d/").delimiter("/").send().await.unwrap();
    assert_eq!(summary(&d), (vec![], vec!["d/e/".to_string()]));

    let after_b = list().key_marker("b/1").send().await.unwrap();
    assert_eq!(summary(&after_b), (ids[3..].to_vec(), vec![]));

    // Pages of two, resumed with the markers of the previous page.
    let mut seen = Vec::new();
    let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
    for page in 0.. {
        assert!(page < 5, "listing did not end");
        let out = list()
            .max_uploads(2)
            .set_key_marker(key_marker.clone())
            .set_upload_id_marker(id_marker.clone())
            .send()
            .await
            .unwrap();
        let (uploads, _) = summary(&out);
        assert!(uploads.len() <= 2);
        seen.extend(uploads);
        if out.is_truncated() != Some(true) {
            break;
        }
        key_marker = out.next_key_marker().map(str::to_string);
        id_marker = out.next_upload_id_marker().map(str::to_string);
    }
    assert_eq!(seen, ids);

    // Completed and aborted uploads leave the listing.
    let e = upload(&c, "mpu", "c", &ids[3].1, 1, b"x").await;
    complete(&c, "mpu", "c", &ids[3].1, &[(1, &e)])
        .await
        .unwrap();
    c.abort_multipart_upload()
        .bucket("mpu")
        .key("a/1")
        .upload_id(&ids[0].1)
        .send()
        .await
        .unwrap();
    assert_eq!(upload_keys(&c, "mpu").await, vec!["a/2", "b/1", "d/e/f"]);
}

#[tokio::test]
async fn uploads_of_one_key_page_through_with_both_markers() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("mpu").send().await.unwrap();
    let mut ids = BTreeSet::new();
    for _ in 0..5 {
        ids.insert(create(&c, "mpu", "same").await);
    }
    create(&c, "mpu", "zz-after").await;
    let mut seen = Vec::new();
    let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
    for page in 0.. {
        assert!(page < 10, "listing did not end");
        let out = c
            .list_multipart_uploads()
            .bucket("mpu")
            .max_uploads(2)
            .set_key_marker(key_marker.clone())
            .set_upload_id_marker(id_marker.clone())
            .send()
            .await
            .unwrap();
        seen.extend(out.uploads().iter().map(|u| {
            (
                u.key().unwrap().to_string(),
                u.upload_id().unwrap().to_string(),
            )
        }));
        if out.is_truncated() != Some(true) {
            break;
        }
        key_marker = out.next_key_marker().map(str::to_string);
        id_marker = out.next_upload_id_marker().map(str::to_string);
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
    let same: BTreeSet<String> = seen[..5]
        .iter()
        .map(|(k, id)| {
            assert_eq!(k, "same");
            id.clone()
        })
        .collect();
    assert_eq!(same, ids, "every upload of the key exactly once");
    assert_eq!(seen[5].0, "zz-after");
}

#[tokio::test]
async fn uploads_of_one_key_are_listed_in_initiation_order() {
    // ListMultipartUploads: "uploads are sorted in ascending order within each key by the
    // upload initiation time."
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("mpu").send().await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(create(&c, "mpu", "same").await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let out = c
        .list_multipart_uploads()
        .bucket("mpu")
        .send()
        .await
        .unwrap();
    let listed: Vec<String> = out
        .uploads()
        .iter()
        .map(|u| u.upload_id().unwrap().to_string())
        .collect();
    assert_eq!(listed, ids);
}

#[tokio::test]
async fn abort_releases_the_pieces_of_every_part() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("mpu").send().await.unwrap();
    // Something that must survive the abort.
    put(&c, "mpu", "keep", &data(600 * KIB, 9)).await;
    let before = pieces(&gw);
    let id = create(&c, "mpu", "k").await;
    upload(&c, "mpu", "k", &id, 1, &data(600 * KIB, 1)).await;
    upload(&c, "mpu", "k", &id, 2, &data(300 * KIB, 2)).await;
    upload(&c, "mpu", "k", &id, 1, &data(700 * KIB, 3)).await;
    let mine = new_pieces(&gw, &before);
    assert!(!mine.is_empty());
    c.abort_multipart_upload()
        .bucket("mpu")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    wait_gone(&mine, Duration::from_secs(10), "aborted upload").await;
    assert!(upload_keys(&c, "mpu").await.is_empty());
    assert!(
        before.iter().all(|p| p.exists()),
        "abort touched other pieces"
    );
    assert_bytes(&get(&c, "mpu", "keep").await, &data(600 * KIB, 9), "keep");
}

#[tokio::test]
async fn upload_part_copy_builds_an_object_from_ranges_of_others() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("cpy").send().await.unwrap();
    let src = data(6 * MIB + 200, 21);
    let five = data(5 * MIB, 22);
    let src_etag = put(&c, "cpy", "src", &src).await;
    put(&c, "cpy", "five", &five).await;

    let copy_part = |key: &str, id: &str, n: i32, source: &str, range: Option<String>| {
        c.upload_part_copy()
            .bucket("cpy")
            .key(key)
            .upload_id(id)
            .part_number(n)
            .copy_source(source)
            .set_copy_source_range(range)
            .send()
    };
    let id = create(&c, "cpy", "built").await;
    // A whole object, then two ranges of another; every part but the last is >= 5 MiB.
    let (r2, r3) = ((MIB, 6 * MIB + 100), (0, 999));
    let want = [
        five.clone(),
        src[r2.0..=r2.1].to_vec(),
        src[r3.0..=r3.1].to_vec(),
    ];
    let mut etags = Vec::new();
    for (n, source, range) in [
        (1, "/cpy/five", None),
        (2, "cpy/src", Some(format!("bytes={}-{}", r2.0, r2.1))),
        (3, "cpy/src", Some(format!("bytes={}-{}", r3.0, r3.1))),
    ] {
        let out = copy_part("built", &id, n, source, range).await.unwrap();
        let r = out.copy_part_result().expect("CopyPartResult");
        assert_eq!(r.e_tag(), Some(etag_of(&want[n as usize - 1]).as_str()));
        assert!(r.last_modified().is_some());
        etags.push(r.e_tag().unwrap().to_string());
    }
    let done = complete(
        &c,
        "cpy",
        "built",
        &id,
        &[(1, &etags[0]), (2, &etags[1]), (3, &etags[2])],
    )
    .await
    .unwrap();
    assert_eq!(
        done.e_tag(),
        Some(multipart_etag(&[&want[0], &want[1], &want[2]]).as_str())
    );
    let built = want.concat();
    assert_bytes(&get(&c, "cpy", "built").await, &built, "built");

    // A range of a multipart source that crosses its part boundary.
    let again = create(&c, "cpy", "again").await;
    let (a, b) = (want[0].len() - 500, want[0].len() + 1000);
    let out = copy_part(
        "again",
        &again,
        1,
        "cpy/built",
        Some(format!("bytes={a}-{b}")),
    )
    .await
    .unwrap();
    let e = out.copy_part_result().unwrap().e_tag().unwrap().to_string();
    complete(&c, "cpy", "again", &again, &[(1, &e)])
        .await
        .unwrap();
    assert_bytes(
        &get(&c, "cpy", "again").await,
        &built[a..=b],
        "cross-part range",
    );

    // Errors: a range past the end, a missing source, failed copy-source conditions.
    let id = create(&c, "cpy", "errors").await;
    let e = copy_part(
        "errors",
        &id,
        4,
        "cpy/src",
        Some(format!("bytes=0-{}", src.len())),
    )
    .await
    .expect_err("range past the end");
    let (status, code) = status_code(&e);
    assert!(
        matches!(
            (status, code.as_deref()),
            (Some(416), Some("InvalidRange")) | (Some(400), Some("InvalidArgument"))
        ),
        "{e:?}"
    );
    expect_err(
        copy_part("errors", &id, 4, "cpy/nope", None).await,
        404,
        "NoSuchKey",
    );
    expect_err(
        c.upload_part_copy()
            .bucket("cpy")
            .key("errors")
            .upload_id(&id)
            .part_number(4)
            .copy_source("cpy/src")
            .copy_source_if_match("\"0000\"")
            .send()
            .await,
        412,
        "PreconditionFailed",
    );
    expect_err(
        c.upload_part_copy()
            .bucket("cpy")
            .key("errors")
            .upload_id(&id)
            .part_number(4)
            .copy_source("cpy/src")
            .copy_source_if_none_match(&src_etag)
            .send()
            .await,
        412,
        "PreconditionFailed",
    );
}

#[tokio::test]
async fn conditional_completion_checks_the_current_object() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("mpu").send().await.unwrap();
    let old = data(1000, 1);
    let old_etag = put(&c, "mpu", "exists", &old).await;
    let new = data(2000, 2);
    let id = create(&c, "mpu", "exists").await;
    let e = upload(&c, "mpu", "exists", &id, 1, &new).await;
    let conditional = |if_none_match: Option<&str>, if_match: Option<&str>| {
        c.complete_multipart_upload()
            .bucket("mpu")
            .key("exists")
            .upload_id(&id)
            .multipart_upload(completed(&[(1, &e)]))
            .set_if_none_match(if_none_match.map(str::to_string))
            .set_if_match(if_match.map(str::to_string))
            .send()
    };
    expect_err(
        conditional(Some("*"), None).await,
        412,
        "PreconditionFailed",
    );
    expect_err(
        conditional(None, Some(&etag_of(b"something else"))).await,
        412,
        "PreconditionFailed",
    );
    // The object is untouched and the upload is still there.
    assert_bytes(&get(&c, "mpu", "exists").await, &old, "old object");
    assert_eq!(upload_keys(&c, "mpu").await, vec!["exists"]);
    conditional(None, Some(&old_etag)).await.unwrap();
    assert_bytes(&get(&c, "mpu", "exists").await, &new, "replaced object");

    // If-None-Match: * on a new key completes; If-Match on a missing key is 404 NoSuchKey.
    let fresh = create(&c, "mpu", "fresh").await;
    let e = upload(&c, "mpu", "fresh", &fresh, 1, &new).await;
    c.complete_multipart_upload()
        .bucket("mpu")
        .key("fresh")
        .upload_id(&fresh)
        .multipart_upload(completed(&[(1, &e)]))
        .if_none_match("*")
        .send()
        .await
        .unwrap();
    let missing = create(&c, "mpu", "missing").await;
    let e = upload(&c, "mpu", "missing", &missing, 1, &new).await;
    expect_err(
        c.complete_multipart_upload()
            .bucket("mpu")
            .key("missing")
            .upload_id(&missing)
            .multipart_upload(completed(&[(1, &e)]))
            .if_match(etag_of(&new))
            .send()
            .await,
        404,
        "NoSuchKey",
    );
    expect_status(
        c.head_object().bucket("mpu").key("missing").send().await,
        404,
    );
}

#[tokio::test]
async fn of_two_racing_completions_exactly_one_wins() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("mpu").send().await.unwrap();
    for round in 0..5u64 {
        let (head, tail) = (data(5 * MIB, round), data(64 * KIB, round + 100));
        let id = create(&c, "mpu", "race").await;
        let e1 = upload(&c, "mpu", "race", &id, 1, &head).await;
        let e2 = upload(&c, "mpu", "race", &id, 2, &tail).await;
        let (whole, part_one) = ([(1, e1.as_str()), (2, e2.as_str())], [(1, e1.as_str())]);
        let (a, b) = tokio::join!(
            complete(&c, "mpu", "race", &id, &whole),
            complete(&c, "mpu", "race", &id, &part_one)
        );
        let (winner, loser, want) = match (a, b) {
            (Ok(w), Err(l)) => (w, l, [head.clone(), tail.clone()].concat()),
            (Err(l), Ok(w)) => (w, l, head.clone()),
            (a, b) => panic!("round {round}: expected one winner, got {a:?} and {b:?}"),
        };
        // The loser listed other parts: it is no retry of the winner, the upload is gone.
        assert_eq!(
            status_code(&loser),
            (Some(404), Some("NoSuchUpload".to_string())),
            "{loser:?}"
        );
        let got = get(&c, "mpu", "race").await;
        assert_bytes(&got, &want, "race winner");
        assert_eq!(winner.e_tag(), Some(head_etag(&c, "race").await.as_str()));
    }
}

#[tokio::test]
async fn racing_copies_of_one_completion_both_get_its_answer() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("mpu").send().await.unwrap();
    for round in 0..5u64 {
        let body = data(64 * KIB, round);
        let id = create(&c, "mpu", "race").await;
        let e = upload(&c, "mpu", "race", &id, 1, &body).await;
        let list = [(1, e.as_str())];
        // A client retrying while its first attempt is still committing: one commits, the
        // other is answered as a retry of it.
        let (a, b) = tokio::join!(
            complete(&c, "mpu", "race", &id, &list),
            complete(&c, "mpu", "race", &id, &list)
        );
        let want = multipart_etag(&[&body]);
        for out in [a, b] {
            let out = out.unwrap_or_else(|e| panic!("round {round}: {e:?}"));
            assert_eq!(out.e_tag(), Some(want.as_str()), "round {round}");
        }
        assert_bytes(&get(&c, "mpu", "race").await, &body, "completed");
    }
}

async fn head_etag(c: &Client, key: &str) -> String {
    let head = c.head_object().bucket("mpu").key(key).send().await.unwrap();
    head.e_tag().unwrap().to_string()
}

/// HEAD of `mpu/key`: (ETag, Last-Modified, size).
async fn head_of(c: &Client, key: &str) -> (String, String, i64) {
    let head = c.head_object().bucket("mpu").key(key).send().await.unwrap();
    (
        head.e_tag().unwrap().to_string(),
        head.last_modified().unwrap().to_string(),
        head.content_length().unwrap(),
    )
}

#[tokio::test]
async fn a_retried_completion_gets_the_same_answer_and_changes_nothing() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("mpu").send().await.unwrap();
    let parts = [data(5 * MIB, 71), data(5 * MIB, 72), data(1000, 73)];
    let id = create(&c, "mpu", "k").await;
    let mut etags = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        etags.push(upload(&c, "mpu", "k", &id, i as i32 + 1, p).await);
    }
    let (e1, e2, e3) = (etags[0].as_str(), etags[1].as_str(), etags[2].as_str());
    let all = [(1, e1), (2, e2), (3, e3)];
    let first = complete(&c, "mpu", "k", &id, &all).await.unwrap();
    let before = head_of(&c, "k").await;
    assert_eq!(first.e_tag(), Some(before.0.as_str()));

    // The same request again (the client never saw the first answer): the same answer.
    for _ in 0..2 {
        let again = complete(&c, "mpu", "k", &id, &all).await.unwrap();
        assert_eq!(again.e_tag(), first.e_tag());
        assert_eq!(again.location(), first.location());
        assert_eq!(again.bucket(), Some("mpu"));
        assert_eq!(again.key(), Some("k"));
    }
    // Any other list is not a retry of that completion, and cannot change the object: not
    // a subset, not another order, not another part's ETag.
    let subset = [(1, e1), (2, e2)];
    let swapped = [(1, e1), (2, e3), (3, e2)];
    let disordered = [(2, e2), (1, e1), (3, e3)];
    let longer = [(1, e1), (2, e2), (3, e3), (4, e3)];
    for list in [&subset[..], &swapped, &disordered, &longer] {
        expect_err(
            complete(&c, "mpu", "k", &id, list).await,
            404,
            "NoSuchUpload",
        );
    }
    // The id belongs to its bucket and key.
    c.create_bucket().bucket("other").send().await.unwrap();
    expect_err(
        complete(&c, "mpu", "elsewhere", &id, &all).await,
        404,
        "NoSuchUpload",
    );
    expect_err(
        complete(&c, "other", "k", &id, &all).await,
        404,
        "NoSuchUpload",
    );
    assert_eq!(head_of(&c, "k").await, before);
    assert_bytes(&get(&c, "mpu", "k").await, &parts.concat(), "object");

    // The upload itself is gone, as on AWS.
    expect_err(
        c.abort_multipart_upload()
            .bucket("mpu")
            .key("k")
            .upload_id(&id)
            .send()
            .await,
        404,
        "NoSuchUpload",
    );
    expect_err(
        c.list_parts()
            .bucket("mpu")
            .key("k")
            .upload_id(&id)
            .send()
            .await,
        404,
        "NoSuchUpload",
    );
    assert_eq!(upload_keys(&c, "mpu").await, Vec::<String>::new());
    // And still answered after the abort attempt.
    let again = complete(&c, "mpu", "k", &id, &all).await.unwrap();
    assert_eq!(again.e_tag(), first.e_tag());
    assert_eq!(head_of(&c, "k").await, before);
}

#[tokio::test]
async fn a_retried_conditional_completion_is_not_checked_again() {
    // If-None-Match: * held when the completion committed; the object it created must not
    // make the retry fail.
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("mpu").send().await.unwrap();
    let id = create(&c, "mpu", "k").await;
    let e = upload(&c, "mpu", "k", &id, 1, b"body").await;
    let send = || {
        c.complete_multipart_upload()
            .bucket("mpu")
            .key("k")
            .upload_id(&id)
            .multipart_upload(completed(&[(1, &e)]))
            .if_none_match("*")
            .send()
    };
    let first = send().await.unwrap();
    let again = send().await.unwrap();
    assert_eq!(again.e_tag(), first.e_tag());
}

#[tokio::test]
async fn a_retried_completion_fails_once_the_object_under_the_key_changed() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("mpu").send().await.unwrap();
    async fn completed_upload(c: &Client, key: &str, body: &[u8]) -> (String, String) {
        let id = create(c, "mpu", key).await;
        let e = upload(c, "mpu", key, &id, 1, body).await;
        complete(c, "mpu", key, &id, &[(1, &e)]).await.unwrap();
        (id, e)
    }

    // Overwritten by a PUT.
    let (id, e) = completed_upload(&c, "put", b"completed").await;
    put(&c, "mpu", "put", b"newer").await;
    expect_err(
        complete(&c, "mpu", "put", &id, &[(1, &e)]).await,
        404,
        "NoSuchUpload",
    );
    assert_bytes(&get(&c, "mpu", "put").await, b"newer", "overwritten");

    // Deleted.
    let (id, e) = completed_upload(&c, "deleted", b"completed").await;
    c.delete_object()
        .bucket("mpu")
        .key("deleted")
        .send()
        .await
        .unwrap();
    expect_err(
        complete(&c, "mpu", "deleted", &id, &[(1, &e)]).await,
        404,
        "NoSuchUpload",
    );
    expect_status(
        c.head_object().bucket("mpu").key("deleted").send().await,
        404,
    );

    // Replaced by another completion of the very same bytes (so the same ETag).
    let (id, e) = completed_upload(&c, "again", b"same bytes").await;
    let (newer, newer_e) = completed_upload(&c, "again", b"same bytes").await;
    assert_eq!(e, newer_e);
    expect_err(
        complete(&c, "mpu", "again", &id, &[(1, &e)]).await,
        404,
        "NoSuchUpload",
    );
    complete(&c, "mpu", "again", &newer, &[(1, &e)])
        .await
        .unwrap();

    // Copied onto itself with new metadata: same bytes and ETag, but another object.
    let (id, e) = completed_upload(&c, "copied", b"completed").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    c.copy_object()
        .bucket("mpu")
        .key("copied")
        .copy_source("mpu/copied")
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .metadata("colour", "blue")
        .send()
        .await
        .unwrap();
    expect_err(
        complete(&c, "mpu", "copied", &id, &[(1, &e)]).await,
        404,
        "NoSuchUpload",
    );
    let head = c
        .head_object()
        .bucket("mpu")
        .key("copied")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("colour"))
            .map(String::as_str),
        Some("blue")
    );
}

/// Creates an upload with a checksum algorithm (and type), uploads `parts` with checksums of
/// that algorithm, checks each part's checksum, and returns the upload id and part list.
async fn upload_with_checksums(
    c: &Client,
    key: &str,
    a: &ChecksumAlgorithm,
    kind: Option<ChecksumType>,
    want_kind: ChecksumType,
    parts: &[&[u8]],
) -> (String, Vec<CompletedPart>) {
    let created = c
        .create_multipart_upload()
        .bucket("sums")
        .key(key)
        .checksum_algorithm(a.clone())
        .set_checksum_type(kind)
        .send()
        .await
        .unwrap();
    assert_eq!(created.checksum_algorithm(), Some(a));
    assert_eq!(created.checksum_type(), Some(&want_kind));
    let id = created.upload_id().unwrap().to_string();
    let mut list = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let out = c
            .upload_part()
            .bucket("sums")
            .key(key)
            .upload_id(&id)
            .part_number(n)
            .checksum_algorithm(a.clone())
            .body(ByteStream::from(p.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("part {n}: {e:?}"));
        let sum = checksum_b64(a, p);
        assert_eq!(checksum_value!(out, a), Some(sum.as_str()), "part {n}");
        let part = CompletedPart::builder()
            .part_number(n)
            .e_tag(out.e_tag().unwrap());
        let part = match a {
            ChecksumAlgorithm::Crc32 => part.checksum_crc32(sum),
            ChecksumAlgorithm::Crc32C => part.checksum_crc32_c(sum),
            ChecksumAlgorithm::Crc64Nvme => part.checksum_crc64_nvme(sum),
            ChecksumAlgorithm::Sha1 => part.checksum_sha1(sum),
            _ => part.checksum_sha256(sum),
        };
        list.push(part.build());
    }
    (id, list)
}

/// HEAD and GET with checksum mode report `value` of `kind`; the SDK validates what it can.
async fn assert_object_checksum(
    c: &Client,
    key: &str,
    a: &ChecksumAlgorithm,
    value: &str,
    kind: ChecksumType,
    whole: &[u8],
) {
    let head = c
        .head_object()
        .bucket("sums")
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(checksum_value!(head, a), Some(value), "HEAD {key}");
    assert_eq!(head.checksum_type(), Some(&kind), "HEAD {key}");
    let got = c
        .get_object()
        .bucket("sums")
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(checksum_value!(got, a), Some(value), "GET {key}");
    assert_eq!(got.checksum_type(), Some(&kind), "GET {key}");
    let body = got.body.collect().await.unwrap().into_bytes();
    assert_bytes(&body, whole, key);
    // Never a whole-object checksum on a ranged read.
    let ranged = c
        .get_object()
        .bucket("sums")
        .key(key)
        .range("bytes=10-99")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(checksum_values!(ranged), vec![], "ranged GET {key}");
    let body = ranged.body.collect().await.unwrap().into_bytes();
    assert_bytes(&body, &whole[10..100], "range");
}

#[tokio::test]
async fn composite_crc32_checksum_of_three_parts() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("sums").send().await.unwrap();
    let a = ChecksumAlgorithm::Crc32;
    let parts = [data(5 * MIB, 31), data(5 * MIB, 32), data(MIB, 33)];
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    // No type given: CRC32 defaults to COMPOSITE.
    let (id, list) =
        upload_with_checksums(&c, "comp", &a, None, ChecksumType::Composite, &refs).await;
    c.complete_multipart_upload()
        .bucket("sums")
        .key("comp")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(list))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let want = composite_b64(&a, &refs);
    assert!(want.ends_with("-3"), "{want}");
    assert_object_checksum(
        &c,
        "comp",
        &a,
        &want,
        ChecksumType::Composite,
        &parts.concat(),
    )
    .await;
}

#[tokio::test]
async fn full_object_checksums_crc64nvme_by_default_and_crc32_on_request() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("sums").send().await.unwrap();
    let parts = [data(5 * MIB, 41), data(700 * KIB, 42)];
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    let whole = parts.concat();
    for (key, a, kind) in [
        ("nvme", ChecksumAlgorithm::Crc64Nvme, None),
        (
            "crc32",
            ChecksumAlgorithm::Crc32,
            Some(ChecksumType::FullObject),
        ),
        (
            "crc32c",
            ChecksumAlgorithm::Crc32C,
            Some(ChecksumType::FullObject),
        ),
    ] {
        let (id, list) =
            upload_with_checksums(&c, key, &a, kind, ChecksumType::FullObject, &refs).await;
        c.complete_multipart_upload()
            .bucket("sums")
            .key(key)
            .upload_id(&id)
            .checksum_type(ChecksumType::FullObject)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(list))
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("complete {key}: {e:?}"));
        // The CRC of the whole object's bytes, which the SDK also validates on GET.
        let want = checksum_b64(&a, &whole);
        assert_object_checksum(&c, key, &a, &want, ChecksumType::FullObject, &whole).await;
    }
}

#[tokio::test]
async fn multipart_checksum_errors() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("sums").send().await.unwrap();
    // SHA algorithms cannot be FULL_OBJECT; CRC64NVME cannot be COMPOSITE.
    for (a, t) in [
        (ChecksumAlgorithm::Sha256, ChecksumType::FullObject),
        (ChecksumAlgorithm::Sha1, ChecksumType::FullObject),
        (ChecksumAlgorithm::Crc64Nvme, ChecksumType::Composite),
    ] {
        expect_err(
            c.create_multipart_upload()
                .bucket("sums")
                .key("k")
                .checksum_algorithm(a)
                .checksum_type(t)
                .send()
                .await,
            400,
            "InvalidRequest",
        );
    }
    let id = c
        .create_multipart_upload()
        .bucket("sums")
        .key("k")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string();
    // A part with a checksum of another algorithm than the upload's.
    expect_err(
        c.upload_part()
            .bucket("sums")
            .key("k")
            .upload_id(&id)
            .part_number(1)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from_static(b"part one"))
            .send()
            .await,
        400,
        "InvalidRequest",
    );
    let out = c
        .upload_part()
        .bucket("sums")
        .key("k")
        .upload_id(&id)
        .part_number(1)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(ByteStream::from_static(b"part one"))
        .send()
        .await
        .unwrap();
    let etag = out.e_tag().unwrap().to_string();
    // Completing with a part checksum that is not the part's: InvalidPart.
    let wrong = CompletedPart::builder()
        .part_number(1)
        .e_tag(&etag)
        .checksum_sha256(checksum_b64(&ChecksumAlgorithm::Sha256, b"not part one"))
        .build();
    expect_err(
        c.complete_multipart_upload()
            .bucket("sums")
            .key("k")
            .upload_id(&id)
            .multipart_upload(CompletedMultipartUpload::builder().parts(wrong).build())
            .send()
            .await,
        400,
        "InvalidPart",
    );
    expect_status(c.head_object().bucket("sums").key("k").send().await, 404);
}

#[tokio::test]
async fn a_wrong_full_object_checksum_on_completion_commits_nothing() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("sums").send().await.unwrap();
    let a = ChecksumAlgorithm::Crc64Nvme;
    let parts = [data(5 * MIB, 51), data(1000, 52)];
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    let (id, list) =
        upload_with_checksums(&c, "k", &a, None, ChecksumType::FullObject, &refs).await;
    let finish = |value: String| {
        c.complete_multipart_upload()
            .bucket("sums")
            .key("k")
            .upload_id(&id)
            .checksum_type(ChecksumType::FullObject)
            .checksum_crc64_nvme(value)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(list.clone()))
                    .build(),
            )
            .send()
    };
    expect_err(
        finish(checksum_b64(&a, b"not the object")).await,
        400,
        "BadDigest",
    );
    expect_status(c.head_object().bucket("sums").key("k").send().await, 404);
    // The upload survives and completes with the right value.
    finish(checksum_b64(&a, &parts.concat())).await.unwrap();
    assert_bytes(&get(&c, "sums", "k").await, &parts.concat(), "completed");
}

/// An upload of two CRC32 parts with checksums, not completed: (upload id, part list, parts).
async fn crc32_upload(c: &Client, key: &str) -> (String, Vec<CompletedPart>, [Vec<u8>; 2]) {
    c.create_bucket().bucket("sums").send().await.unwrap();
    let parts = [data(5 * MIB, 61), data(1000, 62)];
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    let a = ChecksumAlgorithm::Crc32;
    let (id, list) = upload_with_checksums(c, key, &a, None, ChecksumType::Composite, &refs).await;
    (id, list, parts)
}

#[tokio::test]
async fn complete_multipart_upload_result_carries_the_checksum() {
    // AWS's CompleteMultipartUploadResult has ChecksumCRC32.. and ChecksumType; SDKs read
    // them from the XML body only.
    let gw = TestGateway::start().await;
    let c = gw.client();
    let a = ChecksumAlgorithm::Crc32;
    let (id, list, parts) = crc32_upload(&c, "k").await;
    let done = c
        .complete_multipart_upload()
        .bucket("sums")
        .key("k")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(list))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    assert_eq!(
        done.checksum_crc32(),
        Some(composite_b64(&a, &refs).as_str())
    );
    assert_eq!(done.checksum_type(), Some(&ChecksumType::Composite));
}

#[tokio::test]
async fn a_retried_completion_repeats_the_checksum_and_must_state_the_same_ones() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    let (id, list, parts) = crc32_upload(&c, "k").await;
    let a = ChecksumAlgorithm::Crc32;
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    let whole = composite_b64(&a, &refs);
    let send = |list: Vec<CompletedPart>, whole: Option<String>| {
        c.complete_multipart_upload()
            .bucket("sums")
            .key("k")
            .upload_id(&id)
            .set_checksum_crc32(whole)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(list))
                    .build(),
            )
            .send()
    };
    let first = send(list.clone(), Some(whole.clone())).await.unwrap();
    assert_eq!(first.checksum_crc32(), Some(whole.as_str()));
    let again = send(list.clone(), Some(whole.clone())).await.unwrap();
    assert_eq!(again.e_tag(), first.e_tag());
    assert_eq!(again.checksum_crc32(), Some(whole.as_str()));
    assert_eq!(again.checksum_type(), Some(&ChecksumType::Composite));

    // Another part checksum, or another whole-object checksum, is not this completion.
    let mut wrong_part = list.clone();
    wrong_part[1] = CompletedPart::builder()
        .part_number(2)
        .e_tag(list[1].e_tag().unwrap())
        .checksum_crc32(checksum_b64(&a, b"other bytes"))
        .build();
    expect_err(send(wrong_part, None).await, 404, "NoSuchUpload");
    expect_err(
        send(list.clone(), Some(checksum_b64(&a, b"other bytes"))).await,
        404,
        "NoSuchUpload",
    );
    assert_bytes(&get(&c, "sums", "k").await, &parts.concat(), "object");
}

#[tokio::test]
async fn list_parts_reports_the_part_checksums() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    let a = ChecksumAlgorithm::Crc32;
    let (id, _, parts) = crc32_upload(&c, "k").await;
    let listed = c
        .list_parts()
        .bucket("sums")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.parts().len(), 2);
    for (p, want) in listed.parts().iter().zip(&parts) {
        assert_eq!(p.checksum_crc32(), Some(checksum_b64(&a, want).as_str()));
    }
}

#[tokio::test]
async fn list_parts_reports_the_upload_checksum_algorithm_and_type() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    let (id, _, _) = crc32_upload(&c, "k").await;
    let listed = c
        .list_parts()
        .bucket("sums")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.checksum_algorithm(), Some(&ChecksumAlgorithm::Crc32));
    assert_eq!(listed.checksum_type(), Some(&ChecksumType::Composite));
}

#[tokio::test]
async fn upload_part_copy_reports_the_part_checksum() {
    // s3transfer (boto3, awscli) puts CopyPartResult's ChecksumCRC32 into its
    // CompleteMultipartUpload list when the upload has an algorithm.
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("sums").send().await.unwrap();
    let a = ChecksumAlgorithm::Crc32;
    let src = data(3000, 71);
    put(&c, "sums", "src", &src).await;
    let id = c
        .create_multipart_upload()
        .bucket("sums")
        .key("copy")
        .checksum_algorithm(a.clone())
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string();
    let out = c
        .upload_part_copy()
        .bucket("sums")
        .key("copy")
        .upload_id(&id)
        .part_number(1)
        .copy_source("sums/src")
        .copy_source_range("bytes=0-999")
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.copy_part_result().unwrap().checksum_crc32(),
        Some(checksum_b64(&a, &src[..1000]).as_str())
    );
}

/// GetObjectAttributes: the attributes asked for, the ETag unquoted, the composite checksum and
/// its parts' checksums, ObjectParts paged by max-parts / part-number-marker (multipart objects
/// only), and 400 without a valid attribute list.
#[tokio::test]
async fn object_attributes_of_multipart_and_single_objects() {
    use aws_sdk_s3::types::ObjectAttributes as A;
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("attrs").send().await.unwrap();
    let id = c
        .create_multipart_upload()
        .bucket("attrs")
        .key("multi")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .checksum_type(ChecksumType::Composite)
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string();
    let parts: Vec<Vec<u8>> = vec![data(5 << 20, 1), data(5 << 20, 2), data(1000, 3)];
    let mut done = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let out = c
            .upload_part()
            .bucket("attrs")
            .key("multi")
            .upload_id(&id)
            .part_number(n)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(p.clone()))
            .send()
            .await
            .unwrap();
        done.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().unwrap())
                .checksum_crc32(out.checksum_crc32().unwrap())
                .build(),
        );
    }
    let completed = c
        .complete_multipart_upload()
        .bucket("attrs")
        .key("multi")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let all = [
        A::Etag,
        A::Checksum,
        A::ObjectParts,
        A::StorageClass,
        A::ObjectSize,
    ];
    let out = c
        .get_object_attributes()
        .bucket("attrs")
        .key("multi")
        .set_object_attributes(Some(all.to_vec()))
        .max_parts(2)
        .send()
        .await
        .unwrap();
    let etag = completed.e_tag().unwrap().trim_matches('"');
    assert_eq!(out.e_tag(), Some(etag));
    assert!(out.last_modified().is_some());
    assert_eq!(out.object_size(), Some((10 << 20) + 1000));
    assert_eq!(
        out.storage_class(),
        Some(&aws_sdk_s3::types::StorageClass::Standard)
    );
    let sum = out.checksum().expect("checksum");
    assert_eq!(sum.checksum_crc32(), completed.checksum_crc32());
    assert_eq!(sum.checksum_type(), Some(&ChecksumType::Composite));
    let page = out.object_parts().expect("object parts");
    assert_eq!(page.total_parts_count(), Some(3));
    assert_eq!(page.is_truncated(), Some(true));
    assert_eq!(page.next_part_number_marker(), Some("2"));
    let listed: Vec<(i32, i64)> = page
        .parts()
        .iter()
        .map(|p| (p.part_number().unwrap(), p.size().unwrap()))
        .collect();
    assert_eq!(listed, [(1, 5 << 20), (2, 5 << 20)]);
    assert_eq!(
        page.parts()[0].checksum_crc32(),
        Some(checksum_b64(&ChecksumAlgorithm::Crc32, &parts[0]).as_str())
    );
    let rest = c
        .get_object_attributes()
        .bucket("attrs")
        .key("multi")
        .object_attributes(A::ObjectParts)
        .part_number_marker("2")
        .send()
        .await
        .unwrap();
    assert_eq!(rest.e_tag(), None);
    assert_eq!(rest.object_size(), None);
    let page = rest.object_parts().unwrap();
    assert_eq!(page.is_truncated(), Some(false));
    assert_eq!(page.parts().len(), 1);
    assert_eq!(page.parts()[0].part_number(), Some(3));

    // A single PutObject has no ObjectParts.
    put(&c, "attrs", "single", b"hello").await;
    let single = c
        .get_object_attributes()
        .bucket("attrs")
        .key("single")
        .set_object_attributes(Some(all.to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(single.object_size(), Some(5));
    assert!(single.object_parts().is_none());
    expect_err(
        c.get_object_attributes()
            .bucket("attrs")
            .key("nope")
            .object_attributes(A::Etag)
            .send()
            .await,
        404,
        "NoSuchKey",
    );
    for attributes in [None, Some("Colour")] {
        let headers: Vec<(&str, &str)> = attributes
            .map(|a| vec![("x-amz-object-attributes", a)])
            .unwrap_or_default();
        let r = signed(&gw, "GET", "/attrs/single?attributes", &headers, b"").await;
        assert_eq!(r.status, 400, "{}", r.body_text());
        assert_eq!(r.code().as_deref(), Some("InvalidArgument"));
    }
}
