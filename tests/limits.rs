//! Limits on the node traffic hold under parallel client load: the number of piece transfers
//! in flight never exceeds `max_connections`, every slot is given back, and the byte rates
//! are honoured (lower bounds only: a slow machine can only make transfers slower).

mod common;
#[path = "common/fs.rs"]
mod fs_util;

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use common::{data, Opts, TestGateway};

const BUCKET: &str = "limits";

#[tokio::test]
async fn parallel_requests_stay_within_the_connection_limit() {
    // total > success: cancelled long-tail commits still hold their slots while they land.
    let gw = TestGateway::start_with(Opts {
        scheme: "2/3/4/6",
        limits: "max_connections = 6\nmax_connections_per_node = 2\nlong_tail_grace = \"50ms\"",
        ..Opts::default()
    })
    .await;
    let c = gw.client();
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    let mut puts = tokio::task::JoinSet::new();
    for i in 0..8u64 {
        let c = c.clone();
        puts.spawn(async move {
            let body = data(600_000 + i as usize * 1000, i);
            c.put_object()
                .bucket(BUCKET)
                .key(format!("k{i}"))
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .unwrap();
            (i, body)
        });
    }
    let mut objects = Vec::new();
    while let Some(r) = puts.join_next().await {
        objects.push(r.unwrap());
    }
    let mut gets = tokio::task::JoinSet::new();
    for (i, body) in objects {
        let c = c.clone();
        gets.spawn(async move {
            let got = c
                .get_object()
                .bucket(BUCKET)
                .key(format!("k{i}"))
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes();
            assert!(got[..] == body[..], "k{i}");
        });
    }
    while let Some(r) = gets.join_next().await {
        r.unwrap();
    }
    let t = &gw.gateway().transfers;
    let peak = t.metrics().peak_connections();
    assert!((1..=6).contains(&peak), "peak connections {peak}");
    let settled = fs_util::eventually(Duration::from_secs(10), || {
        t.node_views().iter().all(|v| v.connections_in_use == 0)
            && t.metrics()
                .snapshot()
                .nodes
                .values()
                .all(|n| n.connections == 0)
    })
    .await;
    assert!(settled, "connection slots not given back");
}

#[tokio::test]
async fn byte_rates_are_honoured() {
    let gw = TestGateway::start_with(Opts {
        limits: "upload_rate = \"1MiB\"\ndownload_rate = \"1MiB\"",
        ..Opts::default()
    })
    .await;
    let c = gw.client();
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    let body = data(1 << 20, 5);
    let t0 = Instant::now();
    c.put_object()
        .bucket(BUCKET)
        .key("paced")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let up = t0.elapsed();
    // 4/5/6/6 sends 1.5 MiB and more; the bucket lets a quarter second of it through at once.
    assert!(up >= Duration::from_millis(1000), "upload took {up:?}");
    let t0 = Instant::now();
    let got = c
        .get_object()
        .bucket(BUCKET)
        .key("paced")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let down = t0.elapsed();
    assert!(got[..] == body[..]);
    // Four pieces' worth (1 MiB and a little) at 1 MiB/s, less the burst.
    assert!(down >= Duration::from_millis(600), "download took {down:?}");
}

/// A copy reads its source while its writers hold connection slots: with no slot to spare
/// (max_connections = success, one per node) the reads must still get through.
#[tokio::test]
async fn copies_do_not_deadlock_at_the_connection_limit() {
    let gw = TestGateway::start_with(Opts {
        segment_size: "4MiB",
        limits: "max_connections = 6\nmax_connections_per_node = 1",
        ..Opts::default()
    })
    .await;
    let c = gw.client();
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    // Segments larger than an encode batch: the copy's writers are open (holding every slot)
    // while the rest of the segment still has to be read from the source.
    let body = data(9_000_000, 11);
    c.put_object()
        .bucket(BUCKET)
        .key("src")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let copy = async {
        let up = c
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("dst")
            .send()
            .await
            .unwrap();
        let id = up.upload_id().unwrap();
        let part = c
            .upload_part_copy()
            .bucket(BUCKET)
            .key("dst")
            .upload_id(id)
            .part_number(1)
            .copy_source(format!("{BUCKET}/src"))
            .send()
            .await
            .unwrap();
        let etag = part
            .copy_part_result()
            .unwrap()
            .e_tag()
            .unwrap()
            .to_string();
        c.complete_multipart_upload()
            .bucket(BUCKET)
            .key("dst")
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
    };
    tokio::time::timeout(Duration::from_secs(60), copy)
        .await
        .expect("the copy hung at the connection limit");
    let got = c
        .get_object()
        .bucket(BUCKET)
        .key("dst")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert!(got[..] == body[..]);
}
