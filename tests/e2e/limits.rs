//! Limits on the node traffic hold under parallel client load: the number of piece transfers
//! in flight never exceeds `max_connections`, every slot is given back, and the byte rates
//! are honoured (lower bounds only: a slow machine can only make transfers slower).

use std::time::{Duration, Instant};

use crate::harness::raw::{self, Payload};
use crate::harness::{data, wait, Setup, TestGateway};
use aws_sdk_s3::primitives::ByteStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BUCKET: &str = "limits";

#[tokio::test]
async fn parallel_requests_stay_within_the_connection_limit() {
    // total > success: cancelled long-tail commits still hold their slots while they land.
    let gw = Setup::new()
        .scheme("2/3/4/6")
        .limit("max_connections", 6)
        .limit("max_connections_per_node", 2)
        .limit("long_tail_grace", "50ms")
        .start()
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
    let settled = wait::eventually(Duration::from_secs(10), || {
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
    let gw = Setup::new()
        .limit("upload_rate", "1MiB")
        .limit("download_rate", "1MiB")
        .start()
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
    let gw = Setup::new()
        .segment_size("4MiB")
        .limit("max_connections", 6)
        .limit("max_connections_per_node", 1)
        .start()
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

// ---- Slow, idle and oversized clients; the queue for node connections (issue 11) ----

/// Waits until the gateway closes `s` (EOF or reset), at most `limit`; returns how long it took.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit.saturating_sub(t.elapsed()), s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(t.elapsed()),
            Ok(Ok(_)) => continue, // a 408-like answer before the close
        }
    }
}

#[tokio::test]
async fn idle_and_half_sent_heads_are_closed_after_the_header_timeout() {
    let gw = Setup::new().server("header_timeout", "1s").start().await;
    let mut silent = TcpStream::connect(gw.addr()).await.unwrap();
    let mut half = TcpStream::connect(gw.addr()).await.unwrap();
    half.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A keep-alive connection that finished a request and then idles.
    let mut idle = TcpStream::connect(gw.addr()).await.unwrap();
    idle.write_all(&raw::head("GET", "/", &[("host".into(), "x".into())]))
        .await
        .unwrap();
    let first = raw::read_response(&mut idle, false).await.unwrap();
    assert_eq!(first.status, 403, "unsigned request: {first:?}");
    let limit = Duration::from_secs(10);
    let (a, b, c) = tokio::join!(
        closed_within(&mut silent, limit),
        closed_within(&mut half, limit),
        closed_within(&mut idle, limit)
    );
    for (name, took) in [("silent", a), ("half head", b), ("idle", c)] {
        let took = took.unwrap_or_else(|| panic!("{name} connection still open after 10 s"));
        assert!(
            took >= Duration::from_millis(500),
            "{name} closed too early: {took:?}"
        );
    }
    // The gateway still serves.
    let c = gw.client();
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
}

#[tokio::test]
async fn oversized_heads_are_refused_with_s3_errors_at_once() {
    let gw = TestGateway::start().await;
    gw.client()
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    for (size, status, code) in [
        (9 << 10, 400, Some("RequestHeaderSectionTooLarge")),
        (100_000, 400, Some("RequestHeaderSectionTooLarge")),
        (400_000, 431, None),
    ] {
        let mut headers = vec![
            ("host".to_string(), gw.addr().to_string()),
            ("content-length".to_string(), "3".to_string()),
            ("x-amz-meta-big".to_string(), "a".repeat(size)),
        ];
        let url = format!("http://{}/{BUCKET}/big", gw.addr());
        headers.extend(raw::sign_headers(
            "PUT",
            &url,
            &headers,
            Payload::Bytes(b"abc"),
            std::time::SystemTime::now(),
        ));
        let mut req = raw::head("PUT", &format!("/{BUCKET}/big"), &headers);
        req.extend_from_slice(b"abc");
        let t = Instant::now();
        let r = raw::send(gw.addr(), &req, false).await.unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{size}: took {:?}",
            t.elapsed()
        );
        assert_eq!(r.status, status, "{size}: {}", r.body_text());
        assert_eq!(r.code().as_deref(), code, "{size}");
        if code.is_some() {
            assert!(r
                .body_text()
                .contains("<MaxSizeAllowed>8192</MaxSizeAllowed>"));
        }
    }
    let listed = gw
        .client()
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0));
}

#[tokio::test]
async fn oversized_xml_bodies_are_answered_promptly() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    c.put_object()
        .bucket(BUCKET)
        .key("keep")
        .body(ByteStream::from_static(b"kept"))
        .send()
        .await
        .unwrap();
    // 3 MB of DeleteObjects (3,000 keys) and 5 MB of CompleteMultipartUpload: both over their
    // limits, sent whole before the client reads the answer (what used to hang).
    let mut delete = String::from("<Delete>");
    for i in 0..3000 {
        delete.push_str(&format!("<Object><Key>keep{i:0>990}</Key></Object>"));
    }
    delete.push_str("</Delete>");
    let upload = c
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let mut complete = String::from("<CompleteMultipartUpload>");
    while complete.len() < 5 << 20 {
        complete.push_str("<Part><ETag>\"00000000000000000000000000000000\"</ETag><PartNumber>1</PartNumber></Part>");
    }
    complete.push_str("</CompleteMultipartUpload>");
    for (method, target, body) in [
        ("POST", format!("/{BUCKET}?delete"), delete),
        ("POST", format!("/{BUCKET}/mp?uploadId={id}"), complete),
    ] {
        let t = Instant::now();
        let r = raw::signed(gw.addr(), method, &target, &[], body.as_bytes())
            .await
            .unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{target}: took {:?}",
            t.elapsed()
        );
        assert_eq!(r.status, 400, "{target}: {}", r.body_text());
        assert_eq!(
            r.code().as_deref(),
            Some("MaxMessageLengthExceeded"),
            "{target}"
        );
    }
    let kept = c
        .get_object()
        .bucket(BUCKET)
        .key("keep")
        .send()
        .await
        .unwrap();
    assert_eq!(
        kept.body.collect().await.unwrap().into_bytes().as_ref(),
        b"kept"
    );
}

/// Sends a signed PUT head declaring `declared` bytes and the first `first` of them.
async fn start_slow_put(gw: &TestGateway, key: &str, declared: usize, first: &[u8]) -> TcpStream {
    let target = format!("/{BUCKET}/{key}");
    let url = format!("http://{}{target}", gw.addr());
    let mut headers = vec![
        ("host".to_string(), gw.addr().to_string()),
        ("content-length".to_string(), declared.to_string()),
    ];
    headers.extend(raw::sign_headers(
        "PUT",
        &url,
        &headers,
        Payload::Unsigned,
        std::time::SystemTime::now(),
    ));
    let mut s = TcpStream::connect(gw.addr()).await.unwrap();
    s.write_all(&raw::head("PUT", &target, &headers))
        .await
        .unwrap();
    s.write_all(first).await.unwrap();
    s
}

#[tokio::test]
async fn a_trickling_body_ends_with_request_timeout_and_holds_no_node_connection() {
    // One connection per node: a slow client that kept its slots would stall everyone.
    // Segments of 4 MiB are encoded in 1 MiB batches: after 1.5 MiB the segment's upload has
    // started and waits for the client in the middle of its pieces.
    let gw = Setup::new()
        .segment_size("4MiB")
        .limit("max_connections_per_node", 1)
        .server("body_timeout", "6s")
        .server("body_min_rate", "1KiB")
        .start()
        .await;
    let c = gw.client();
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    let first = data(1_500_000, 1);
    let mut slow = start_slow_put(&gw, "slow", 3_000_000, &first).await;
    let trickle = tokio::spawn(async move {
        let t = Instant::now();
        let mut buf = vec![0u8; 4096];
        loop {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "no answer within 20 s"
            );
            tokio::select! {
                r = slow.read(&mut buf) => {
                    let n = r.unwrap_or(0);
                    return (String::from_utf8_lossy(&buf[..n]).into_owned(), t.elapsed());
                }
                _ = tokio::time::sleep(Duration::from_millis(250)) => {
                    let _ = slow.write_all(b"x").await;
                }
            }
        }
    });
    // Meanwhile other uploads go through: the slow one holds no node connection while it waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    for i in 0..3 {
        let body = data(1 << 20, 10 + i);
        c.put_object()
            .bucket(BUCKET)
            .key(format!("fast{i}"))
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
    }
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "fast uploads took {:?} beside the slow one (its RequestTimeout comes after 6 s)",
        t.elapsed()
    );
    let (answer, took) = trickle.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("<Code>RequestTimeout</Code>"), "{answer}");
    assert!(
        took < Duration::from_secs(14),
        "RequestTimeout after {took:?}"
    );
    // Nothing of it became visible; every slot came back.
    let head = c.head_object().bucket(BUCKET).key("slow").send().await;
    assert!(head.is_err());
    let views = gw.gateway().transfers.node_views();
    assert!(
        views.iter().all(|v| v.connections_in_use == 0),
        "slots still held: {:?}",
        views
            .iter()
            .map(|v| v.connections_in_use)
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn uploads_queue_for_node_connections_instead_of_failing() {
    let gw = Setup::new()
        .limit("max_connections_per_node", 1)
        .start()
        .await;
    let c = gw.client_no_retry();
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    let mut puts = tokio::task::JoinSet::new();
    for i in 0..24u64 {
        let c = c.clone();
        puts.spawn(async move {
            let body = data(1 << 20, 100 + i);
            let r = c
                .put_object()
                .bucket(BUCKET)
                .key(format!("q{i}"))
                .body(ByteStream::from(body.clone()))
                .send()
                .await;
            (i, body, r.map_err(|e| format!("{e:?}")))
        });
    }
    let mut stored = Vec::new();
    while let Some(r) = puts.join_next().await {
        let (i, body, r) = r.unwrap();
        r.unwrap_or_else(|e| panic!("put {i} failed: {e}"));
        stored.push((i, body));
    }
    for (i, body) in stored {
        let got = c
            .get_object()
            .bucket(BUCKET)
            .key(format!("q{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            got.body.collect().await.unwrap().into_bytes().as_ref(),
            &body[..]
        );
    }
}

#[tokio::test]
async fn a_full_queue_answers_slow_down_with_retry_after() {
    let gw = Setup::new()
        .limit("max_connections_per_node", 1)
        .limit("queue_depth", 1)
        .start()
        .await;
    let c = gw.client_no_retry();
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    let mut puts = tokio::task::JoinSet::new();
    for i in 0..12u64 {
        let c = c.clone();
        puts.spawn(async move {
            let body = data(2 << 20, 200 + i);
            let r = c
                .put_object()
                .bucket(BUCKET)
                .key(format!("s{i}"))
                .body(ByteStream::from(body))
                .send()
                .await;
            (i, r)
        });
    }
    let (mut ok, mut slow) = (Vec::new(), 0);
    while let Some(r) = puts.join_next().await {
        match r.unwrap() {
            (i, Ok(_)) => ok.push(i),
            (i, Err(e)) => {
                let raw = e.raw_response().unwrap_or_else(|| panic!("put {i}: {e:?}"));
                assert_eq!(raw.status().as_u16(), 503, "put {i}: {e:?}");
                assert_eq!(raw.headers().get("retry-after"), Some("5"), "put {i}");
                let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&e);
                assert_eq!(code, Some("SlowDown"), "put {i}");
                slow += 1;
            }
        }
    }
    assert!(slow > 0, "12 uploads through a queue of 1 all went through");
    assert!(!ok.is_empty(), "every upload was refused");
    for i in ok {
        c.head_object()
            .bucket(BUCKET)
            .key(format!("s{i}"))
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn at_the_connection_cap_the_idlest_connection_makes_room() {
    let gw = Setup::new()
        .server("max_client_connections", 4)
        .start()
        .await;
    // Four connections that send nothing (the header timeout is 30 s) fill the cap.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(gw.addr()).await.unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A real client still gets in at once, several times over.
    let c = gw.client();
    let t = Instant::now();
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    for i in 0..3 {
        let fresh = gw.client_no_retry();
        fresh
            .put_object()
            .bucket(BUCKET)
            .key(format!("k{i}"))
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    }
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    // The oldest idle connection was the first to go.
    let first = closed_within(&mut idle[0], Duration::from_secs(2)).await;
    assert!(first.is_some(), "the idlest connection is still open");
}

/// Sends a signed GET of `key` on a socket with a small receive buffer and reads only the
/// response head: the client then takes nothing more.
async fn start_stalled_get(gw: &TestGateway, key: &str) -> TcpStream {
    let target = format!("/{BUCKET}/{key}");
    let url = format!("http://{}{target}", gw.addr());
    let mut headers = vec![("host".to_string(), gw.addr().to_string())];
    headers.extend(raw::sign_headers(
        "GET",
        &url,
        &headers,
        Payload::Bytes(b""),
        std::time::SystemTime::now(),
    ));
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(gw.addr()).await.unwrap();
    s.write_all(&raw::head("GET", &target, &headers))
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).await.unwrap(),
            1,
            "closed before the head"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_and_its_memory_freed() {
    // The budget holds one large download: a second one waits for the first's memory.
    let gw = Setup::new()
        .segment_size("4MiB")
        .limit("memory", "24MiB")
        .limit("queue_wait", "20s")
        .server("body_timeout", "2s")
        .server("body_min_rate", "0")
        .start()
        .await;
    let c = gw.client();
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    let body = data(24 << 20, 5);
    c.put_object()
        .bucket(BUCKET)
        .key("big")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();

    let mut stalled = start_stalled_get(&gw, "big").await;
    let t = Instant::now();
    let got = c
        .get_object()
        .bucket(BUCKET)
        .key("big")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let waited = t.elapsed();
    assert!(got == body, "the second download is not bit-exact");
    // It waited for the stalled one's memory, which came back once the stalled client was
    // disconnected (a 2 s window in which it took nothing, checked every second), not after
    // the queue's 20 s.
    assert!(
        waited > Duration::from_millis(1500) && waited < Duration::from_secs(12),
        "second download took {waited:?}"
    );
    // The stalled client got part of the object, then the connection ended.
    let mut taken = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline.into(), stalled.read(&mut buf)).await {
            Err(_) => panic!("the stalled connection is still open"),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => taken += n,
        }
    }
    assert!(
        taken < body.len(),
        "the stalled client got the whole object"
    );
}
