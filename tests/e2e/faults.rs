//! Fault tests against a running gateway: node directories deleted under it, pieces corrupted
//! on disk. The contract under test: any `k` intact pieces of a segment are enough, a corrupt
//! chunk is detected and routed around, and when too little survives a request fails with a
//! 503 and never returns wrong bytes or commits a partial object.

use std::time::Duration;

use crate::harness::s3x::{get_range, put};
use crate::harness::storage;
use crate::harness::storage::{code_of, piece, piece_paths, status_of};
use crate::harness::{data, wait, Setup, TestGateway};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

const SEG: usize = 256 << 10;
const BUCKET: &str = "faults";

/// The objects every test stores: (key, size). Inline, one stripe, many stripes of one
/// segment, several segments with a short last one.
const OBJECTS: [(&str, usize); 4] = [
    ("inline", 3000),
    ("one-stripe", 10_000),
    ("many-stripes", 100_000),
    ("multi-segment", 3 * SEG + 12_345),
];

async fn setup(setup: Setup) -> (TestGateway, Client) {
    let gw = setup.start().await;
    let c = gw.client_no_retry();
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    (gw, c)
}

async fn put_all(c: &Client) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, (key, size)) in OBJECTS.into_iter().enumerate() {
        let body = data(size, 100 + i as u64);
        put(c, BUCKET, key, &body).await;
        out.push((key, body));
    }
    out
}

/// GET (optionally with a Range header); panics on failure.
/// Asserts a GET fails with 503 ServiceUnavailable before any body byte is sent.
async fn get_fails_503(c: &Client, key: &str, range: Option<&str>) {
    let r = c
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .set_range(range.map(str::to_string))
        .send()
        .await;
    match r {
        Ok(out) => {
            let body = out.body.collect().await;
            panic!(
                "get {key} {range:?} succeeded ({} body bytes) with too few intact pieces",
                body.map(|b| b.into_bytes().len()).unwrap_or(0)
            );
        }
        Err(e) => {
            assert_eq!(status_of(&e), Some(503), "get {key} {range:?}: {e:?}");
            assert_eq!(code_of(&e).as_deref(), Some("ServiceUnavailable"));
        }
    }
}

/// Range headers worth reading from an object of `size` bytes, with the bytes they select:
/// inside one block, across blocks, across stripes, across segments, open-ended, suffixes,
/// and an end past the object.
fn ranges(size: usize) -> Vec<(String, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut from_to = |a: usize, b: usize| {
        if a < size && a <= b {
            out.push((format!("bytes={a}-{b}"), a..b.min(size - 1) + 1));
        }
    };
    from_to(0, 0);
    from_to(10, 99);
    from_to(4000, 4200);
    from_to(1000, 40_000);
    from_to(size / 2, size / 2 + 70_000);
    from_to(SEG - 100, SEG + 100);
    from_to(SEG + 5000, 2 * SEG + 5000);
    from_to(size.saturating_sub(3), size + 1000);
    out.push((format!("bytes={}-", size / 3), size / 3..size));
    let n = 5000.min(size);
    out.push((format!("bytes=-{n}"), size - n..size));
    out
}

async fn assert_all_readable(c: &Client, objects: &[(&str, Vec<u8>)]) {
    for (key, body) in objects {
        let got = get_range(c, BUCKET, key, None).await;
        assert!(
            got == *body,
            "{key}: full GET differs ({} bytes)",
            got.len()
        );
        for (header, want) in ranges(body.len()) {
            let got = get_range(c, BUCKET, key, Some(&header)).await;
            assert!(
                got[..] == body[want.clone()],
                "{key} {header}: bytes differ"
            );
        }
    }
}

#[tokio::test]
async fn every_object_reads_bit_exact_with_n_minus_k_nodes_deleted() {
    let (gw, c) = setup(Setup::new()).await;
    let objects = put_all(&c).await;
    // Delete the nodes holding data pieces 0 and 1 of the first segment, so that reading it
    // needs decoding from parity.
    let rec = gw.record(BUCKET, "multi-segment").await.unwrap();
    for number in [0, 1] {
        gw.remove_node_dir(&piece(&gw, &rec, 0, number).node);
    }
    assert_all_readable(&c, &objects).await;
}

#[tokio::test]
async fn corrupt_chunks_are_detected_and_routed_around() {
    let (gw, c) = setup(Setup::new()).await;
    let objects = put_all(&c).await;
    let rec = gw.record(BUCKET, "multi-segment").await.unwrap();

    let multi = &objects[3..];
    let one_segment = &objects[2..3];

    // One flipped byte in a data piece (piece 0 is always read first when intact).
    let p0 = piece(&gw, &rec, 0, 0);
    storage::flip_byte(&p0.path, p0.data_offset(0, 100));
    assert_all_readable(&c, multi).await;

    // A second corrupt piece of the same segment, in another stripe; and in segment 1, a
    // broken header on one piece and a broken MAC on another.
    let p1 = piece(&gw, &rec, 0, 1);
    storage::flip_byte(&p1.path, p1.data_offset(5, 7));
    let s1p0 = piece(&gw, &rec, 1, 0);
    storage::flip_byte(&s1p0.path, 0);
    let s1p3 = piece(&gw, &rec, 1, 3);
    storage::flip_byte(&s1p3.path, s1p3.mac_offset(2, 0));
    assert_all_readable(&c, multi).await;

    // The same for an object of one segment, corrupting two data pieces in two stripes.
    let rec = gw.record(BUCKET, "many-stripes").await.unwrap();
    let a = piece(&gw, &rec, 0, 2);
    storage::flip_byte(&a.path, a.data_offset(1, 0));
    let b = piece(&gw, &rec, 0, 3);
    storage::flip_byte(&b.path, b.data_offset(4, b.chunk_size - 1));
    assert_all_readable(&c, one_segment).await;
    // Objects whose pieces were not touched read as before.
    assert_all_readable(&c, &objects[..2]).await;
}

#[tokio::test]
async fn too_many_corrupt_pieces_fail_and_never_return_wrong_bytes() {
    let (gw, c) = setup(Setup::new()).await;
    let objects = put_all(&c).await;
    let body = &objects[3].1;
    let rec = gw.record(BUCKET, "multi-segment").await.unwrap();
    // Three of six pieces of segment 1 corrupt in stripe 0: only 3 < k = 4 intact there.
    for number in 0..3 {
        let p = piece(&gw, &rec, 1, number);
        storage::flip_byte(&p.path, p.data_offset(0, 11));
    }
    // Segment 0 is untouched, and so are the later stripes of segment 1 (a range read
    // verifies only the stripes it reads).
    let got = get_range(&c, BUCKET, "multi-segment", Some("bytes=0-99999")).await;
    assert!(got[..] == body[..100_000]);
    let (a, b) = (SEG + 40_000, SEG + 60_000);
    let got = get_range(&c, BUCKET, "multi-segment", Some(&format!("bytes={a}-{b}"))).await;
    assert!(got[..] == body[a..=b]);
    // A read starting in the damaged stripe fails before any byte is sent.
    get_fails_503(
        &c,
        "multi-segment",
        Some(&format!("bytes={SEG}-{}", SEG + 10)),
    )
    .await;
    // A full read has already sent segment 0 when it reaches the damage: the body must then
    // fail, never complete.
    match c
        .get_object()
        .bucket(BUCKET)
        .key("multi-segment")
        .send()
        .await
    {
        Err(e) => assert!(status_of(&e).is_some_and(|s| s >= 500), "{e:?}"),
        Ok(out) => {
            if let Ok(b) = out.body.collect().await {
                panic!(
                    "full GET completed ({} bytes) although segment 1 is unrecoverable",
                    b.into_bytes().len()
                );
            }
        }
    }
}

#[tokio::test]
async fn more_than_n_minus_k_nodes_gone_gives_503_not_wrong_bytes() {
    let (gw, c) = setup(Setup::new()).await;
    let objects = put_all(&c).await;
    for id in ["n1", "n2", "n3"] {
        gw.remove_node_dir(id);
    }
    for (key, body) in &objects {
        if *key == "inline" {
            // Inline bodies live in the metadata: no node is involved.
            assert!(get_range(&c, BUCKET, key, None).await == *body);
            continue;
        }
        get_fails_503(&c, key, None).await;
        get_fails_503(&c, key, Some("bytes=0-99")).await;
        get_fails_503(&c, key, Some("bytes=-10")).await;
        // Metadata is intact: HEAD still answers.
        let head = c
            .head_object()
            .bucket(BUCKET)
            .key(*key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_length(), Some(body.len() as i64));
    }
}

#[tokio::test]
async fn upload_with_too_few_nodes_fails_with_503_and_commits_nothing() {
    let (gw, c) = setup(Setup::new()).await;
    let old = data(50_000, 1);
    put(&c, BUCKET, "kept", &old).await;
    gw.remove_node_dir("n5");
    gw.remove_node_dir("n6");

    // 4/5/6/6 accepts a degraded write down to five durable pieces (the repair threshold):
    // with two of six nodes gone the upload fails.
    for (key, size) in [("one-stripe", 10_000), ("many-stripes", 200_000)] {
        let err = c
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(data(size, 2)))
            .send()
            .await
            .expect_err("upload without enough nodes succeeded");
        assert_eq!(status_of(&err), Some(503), "{key}: {err:?}");
        assert_eq!(code_of(&err).as_deref(), Some("ServiceUnavailable"));
        let head = c.head_object().bucket(BUCKET).key(key).send().await;
        assert_eq!(head.map_err(|e| status_of(&e)).err(), Some(Some(404)));
        assert!(gw.record(BUCKET, key).await.is_none());
    }
    // A multi-segment upload fails too. The gateway may answer before reading the whole body,
    // so the client can see the connection close instead of the 503; either way no success.
    let err = c
        .put_object()
        .bucket(BUCKET)
        .key("multi-segment")
        .body(ByteStream::from(data(3 * SEG + 1, 3)))
        .send()
        .await
        .expect_err("multi-segment upload without enough nodes succeeded");
    if let Some(s) = status_of(&err) {
        assert_eq!(s, 503, "{err:?}");
    }
    assert!(gw.record(BUCKET, "multi-segment").await.is_none());

    // A failed overwrite leaves the previous object as it was.
    let err = c
        .put_object()
        .bucket(BUCKET)
        .key("kept")
        .body(ByteStream::from(data(60_000, 4)))
        .send()
        .await
        .expect_err("overwrite without enough nodes succeeded");
    assert_eq!(status_of(&err), Some(503));
    assert!(get_range(&c, BUCKET, "kept", None).await == old);

    let listed = c.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["kept"]);

    // The pieces the failed uploads did write are deleted again: only "kept"'s four pieces
    // survive on the remaining nodes, and no temporary file is left behind.
    let nodes = gw.nodes_dir();
    let settled = wait::eventually(Duration::from_secs(5), || piece_paths(&nodes).len() == 4).await;
    assert!(settled, "left over pieces: {:?}", piece_paths(&nodes));
    let kept = gw.record(BUCKET, "kept").await.unwrap();
    for p in storage::piece_files(&gw, &kept) {
        assert_eq!(p.path.exists(), p.node != "n5" && p.node != "n6", "{p:?}");
    }
    // Cancelled writers end (and remove their temp files) asynchronously: give them time.
    for id in ["n1", "n2", "n3", "n4"] {
        let tmp = gw.node_dir(id).join("tmp");
        let empty = wait::eventually(Duration::from_secs(10), || {
            std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(1) == 0
        })
        .await;
        assert!(empty, "{id}/tmp not empty");
    }
}

#[tokio::test]
async fn scheme_with_spare_pieces_uploads_with_a_node_missing() {
    let (gw, c) = setup(Setup::new().scheme("2/3/4/6")).await;
    gw.remove_node_dir("n1");
    // success = 4 of total = 6: five durable pieces are plenty.
    let objects = put_all(&c).await;
    for (key, _) in &objects {
        let rec = gw.record(BUCKET, key).await.unwrap();
        for seg in &rec.parts[0].stream.segments {
            if let gateway::meta::Placement::Pieces { pieces, .. } = &seg.placement {
                // Success is 4: the upload may stop waiting for the fifth (long tail).
                assert!((4..=5).contains(&pieces.len()), "{key}: {}", pieces.len());
                assert!(pieces.iter().all(|p| p.node != "n1"), "{key}");
            }
        }
    }
    assert_all_readable(&c, &objects).await;
    // k = 2: losing two more nodes still leaves enough.
    gw.remove_node_dir("n2");
    gw.remove_node_dir("n3");
    assert_all_readable(&c, &objects).await;
}

/// Plaintext block and stripe geometry of the default test gateway (4 KiB blocks with a
/// 16-byte tag, 4 KiB chunks, k = 4): the stripes `[first, last]` a GET of plaintext bytes
/// `a..=b` of a one-segment object reads (whole blocks are read).
fn stripes_read(a: usize, b: usize) -> (usize, usize) {
    const BLOCK: usize = 4096;
    const SEALED: usize = BLOCK + 16;
    const STRIPE: usize = 4 * 4096;
    (
        (a / BLOCK) * SEALED / STRIPE,
        ((b / BLOCK + 1) * SEALED - 1) / STRIPE,
    )
}

#[tokio::test]
async fn bad_chunks_in_three_pieces_at_different_stripes_are_per_stripe_erasures() {
    let (gw, c) = setup(Setup::new()).await;
    // One segment of 13 stripes.
    let body = data(200_000, 7);
    put(&c, BUCKET, "rot", &body).await;
    let rec = gw.record(BUCKET, "rot").await.unwrap();
    assert_eq!(stripes_read(0, body.len() - 1), (0, 12));
    // Bit rot in three of six pieces, each in another stripe: no stripe has more than one bad
    // chunk, so every stripe keeps five good chunks although only three pieces are intact.
    for (number, stripe, byte) in [(0, 2, 100), (3, 6, 4095), (5, 10, 0)] {
        let p = piece(&gw, &rec, 0, number);
        storage::flip_byte(&p.path, p.data_offset(stripe, byte));
    }
    assert!(
        get_range(&c, BUCKET, "rot", None).await == body,
        "full GET differs"
    );
    // Ranges over the damaged stripes, over one of them only, and around them.
    for (a, b, stripes) in [
        (33_000, 170_000, (2, 10)),
        (98_304, 110_591, (6, 6)),
        (0, 40_000, (0, 2)),
        (150_000, 199_999, (9, 12)),
    ] {
        assert_eq!(stripes_read(a, b), stripes, "bytes={a}-{b}");
        let got = get_range(&c, BUCKET, "rot", Some(&format!("bytes={a}-{b}"))).await;
        assert!(got[..] == body[a..=b], "bytes={a}-{b} differ");
    }
    assert_all_readable(&c, &[("rot", body.clone())]).await;

    // UploadPartCopy reads the source the same way.
    let up = c
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("rot-copy")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let part = c
        .upload_part_copy()
        .bucket(BUCKET)
        .key("rot-copy")
        .upload_id(id)
        .part_number(1)
        .copy_source(format!("{BUCKET}/rot"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("upload part copy: {e:?}"));
    let etag = part
        .copy_part_result()
        .unwrap()
        .e_tag()
        .unwrap()
        .to_string();
    c.complete_multipart_upload()
        .bucket(BUCKET)
        .key("rot-copy")
        .upload_id(id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .parts(
                    aws_sdk_s3::types::CompletedPart::builder()
                        .part_number(1)
                        .e_tag(etag)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(
        get_range(&c, BUCKET, "rot-copy", None).await == body,
        "copied body differs"
    );
}

#[tokio::test]
async fn a_stripe_with_fewer_than_k_good_chunks_fails_with_503() {
    let (gw, c) = setup(Setup::new()).await;
    let body = data(200_000, 8);
    put(&c, BUCKET, "rot", &body).await;
    let rec = gw.record(BUCKET, "rot").await.unwrap();
    // Stripe 4 keeps three good chunks of six (k = 4); stripe 8 loses one, which is fine.
    for (number, stripe) in [(1, 4), (2, 4), (4, 4), (0, 8)] {
        let p = piece(&gw, &rec, 0, number);
        storage::flip_byte(&p.path, p.data_offset(stripe, 9));
    }
    // Anything reading stripe 4 fails before a byte is sent.
    get_fails_503(&c, "rot", None).await;
    for (a, b) in [(66_000, 66_000), (40_000, 120_000)] {
        let (first, last) = stripes_read(a, b);
        assert!(first <= 4 && 4 <= last, "bytes={a}-{b}");
        get_fails_503(&c, "rot", Some(&format!("bytes={a}-{b}"))).await;
    }
    // The other stripes read bit-exact, the one with a bad chunk included.
    for (a, b) in [(0, 60_000), (90_000, 199_999), (130_000, 140_000)] {
        let (first, last) = stripes_read(a, b);
        assert!(last < 4 || first > 4, "bytes={a}-{b}");
        let got = get_range(&c, BUCKET, "rot", Some(&format!("bytes={a}-{b}"))).await;
        assert!(got[..] == body[a..=b], "bytes={a}-{b} differ");
    }
}
