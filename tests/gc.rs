//! Garbage collection: replaced and deleted bodies lose their pieces, but never under a
//! reader that started before the replacement.

mod common;
#[path = "common/fs.rs"]
mod fs_util;

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use common::{data, TestGateway};

#[tokio::test]
async fn a_read_in_progress_survives_overwrite_and_collection() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("gc-bucket").send().await.unwrap();
    // 12 segments of 256 KiB: far more than the download buffers ahead.
    let old = data(3 << 20, 1);
    c.put_object()
        .bucket("gc-bucket")
        .key("k")
        .body(ByteStream::from(old.clone()))
        .send()
        .await
        .unwrap();
    let old_files = fs_util::piece_paths(&gw.nodes_dir());
    let reading = c
        .get_object()
        .bucket("gc-bucket")
        .key("k")
        .send()
        .await
        .unwrap();

    let new = data(3 << 20, 2);
    c.put_object()
        .bucket("gc-bucket")
        .key("k")
        .body(ByteStream::from(new.clone()))
        .send()
        .await
        .unwrap();
    // Give the collector time to run; it must skip the body being read.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = reading.body.collect().await.unwrap().into_bytes();
    assert!(got[..] == old[..], "the reader saw the old body intact");

    // Once nobody reads it, the old body's pieces go away (the collector retries on the next
    // wake-up; a delete of another object wakes it).
    c.put_object()
        .bucket("gc-bucket")
        .key("other")
        .body(ByteStream::from(data(10_000, 3)))
        .send()
        .await
        .unwrap();
    c.delete_object()
        .bucket("gc-bucket")
        .key("other")
        .send()
        .await
        .unwrap();
    let gone = fs_util::eventually(Duration::from_secs(5), || {
        let now = fs_util::piece_paths(&gw.nodes_dir());
        old_files.iter().all(|f| !now.contains(f))
    })
    .await;
    assert!(gone, "the old body's pieces were collected");
    let now = c
        .get_object()
        .bucket("gc-bucket")
        .key("k")
        .send()
        .await
        .unwrap();
    assert!(now.body.collect().await.unwrap().into_bytes()[..] == new[..]);
}

#[tokio::test]
async fn replaced_bodies_keep_their_pieces_for_the_grace_period() {
    let gw = TestGateway::start_with(common::Opts {
        gc_grace: "60m",
        ..common::Opts::default()
    })
    .await;
    let c = gw.client();
    c.create_bucket()
        .bucket("grace-bucket")
        .send()
        .await
        .unwrap();
    let body = data(1 << 20, 4);
    c.put_object()
        .bucket("grace-bucket")
        .key("k")
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap();
    let before = fs_util::piece_paths(&gw.nodes_dir());
    c.delete_object()
        .bucket("grace-bucket")
        .key("k")
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let after = fs_util::piece_paths(&gw.nodes_dir());
    assert!(!before.is_empty());
    assert!(
        before.iter().all(|f| after.contains(f)),
        "pieces of a body deleted moments ago are still there"
    );
}
