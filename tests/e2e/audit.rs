//! The audit: a deleted piece and a corrupted piece are found by a pass (listing and sampled
//! reads), recorded with their node, kind and finder, and repaired; a healthy store, even
//! under concurrent writes and deletes, yields no finding; a pass keeps within its rates.

use std::time::{Duration, Instant};

use crate::harness::s3x::{get, put};
use crate::harness::storage;
use crate::harness::storage::{piece, piece_files};
use crate::harness::{data, wait, Setup, TestGateway};
use aws_sdk_s3::Client;
use gateway::meta::{HealthCounts, PieceFinding, PieceState, Placement, StreamId};
use gateway::object::audit::{AuditOptions, AuditReport};
use gateway::object::repair::RepairOptions;

const BUCKET: &str = "audit";

async fn setup(setup: Setup) -> (TestGateway, Client) {
    let gw = setup.start().await;
    let c = gw.client();
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    (gw, c)
}

/// The background audit off: passes run only when a test asks.
fn no_background() -> Setup {
    Setup::new().set("audit", "enabled", false)
}

/// Neither background audit nor background repair: what a pass finds stays as it found it.
fn manual() -> Setup {
    no_background().set("repair", "enabled", false)
}

async fn stream_of(gw: &TestGateway, key: &str) -> StreamId {
    gw.record(BUCKET, key).await.unwrap().parts[0]
        .stream
        .stream_id
}

/// A pass that verifies every healthy piece whole, without rate limits.
fn everything() -> AuditOptions {
    AuditOptions {
        rate: None,
        requests: None,
        samples: u64::MAX,
        pieces: usize::MAX,
        sample_bytes: u64::MAX,
    }
}

async fn pass(gw: &TestGateway, opts: &AuditOptions) -> AuditReport {
    gw.gateway()
        .layer
        .audit_pass(opts)
        .await
        .expect("audit pass")
}

async fn counts(gw: &TestGateway) -> HealthCounts {
    gw.gateway().layer.health_counts().await.unwrap()
}

/// Findings recorded so far as (node, kind, found_by, count).
fn findings(c: &HealthCounts) -> Vec<(&str, &str, &str, u64)> {
    c.findings
        .iter()
        .map(|(n, k, f, c)| (n.as_str(), k.as_str(), f.as_str(), *c))
        .collect()
}

/// Waits (bounded) until every erasure-coded segment of `keys` has six healthy pieces;
/// returns whether it happened.
async fn full_health(gw: &TestGateway, keys: &[&str], limit: Duration) -> bool {
    wait::eventually_async(limit, || async {
        let mut all = true;
        for key in keys {
            let rec = gw.record(BUCKET, key).await.unwrap();
            for seg in &rec.parts[0].stream.segments {
                if let Placement::Pieces { pieces, .. } = &seg.placement {
                    all &= pieces.len() == 6 && pieces.iter().all(|p| p.state == PieceState::Ok);
                }
            }
        }
        all
    })
    .await
}

#[tokio::test]
async fn a_pass_finds_a_deleted_and_a_corrupted_piece_and_repair_restores_them() {
    let (gw, c) = setup(manual()).await;
    let bodies = [
        ("a", data(200_000, 1)),
        ("b", data(600_000, 2)),
        ("c", data(30_000, 3)),
    ];
    for (key, body) in &bodies {
        put(&c, BUCKET, key, body).await;
    }
    // One piece of `a` is deleted, one byte of a piece of `b` (its second segment) flipped.
    let rec_a = gw.record(BUCKET, "a").await.unwrap();
    let gone = piece(&gw, &rec_a, 0, 2);
    std::fs::remove_file(&gone.path).unwrap();
    let rec_b = gw.record(BUCKET, "b").await.unwrap();
    let rotten = piece(&gw, &rec_b, 1, 4);
    storage::flip_byte(&rotten.path, rotten.data_offset(3, 10));
    let mut total_pieces = 0;
    for (key, _) in &bodies {
        let rec = gw.record(BUCKET, key).await.unwrap();
        total_pieces += piece_files(&gw, &rec).len() as u64;
    }

    let report = pass(&gw, &everything()).await;
    let mut found = report.findings.clone();
    found.sort_by_key(|f| f.state.as_str());
    assert_eq!(
        found,
        vec![
            PieceFinding {
                stream_id: stream_of(&gw, "b").await,
                segment: 1,
                number: 4,
                node: rotten.node.clone(),
                state: PieceState::Corrupt,
                found_by: "audit".into(),
            },
            PieceFinding {
                stream_id: stream_of(&gw, "a").await,
                segment: 0,
                number: 2,
                node: gone.node.clone(),
                state: PieceState::Missing,
                found_by: "listing".into(),
            },
        ],
        "{report:?}"
    );
    assert_eq!((report.missing, report.corrupt), (1, 1), "{report:?}");
    assert_eq!(report.nodes_listed, 6, "{report:?}");
    assert_eq!(report.pieces_listed, total_pieces, "{report:?}");
    // Every piece but the one the listing found missing.
    assert_eq!(report.pieces_sampled, total_pieces - 1, "{report:?}");
    assert!(report.bytes_verified > 0, "{report:?}");
    let recorded = counts(&gw).await;
    let f = findings(&recorded);
    assert!(
        f.contains(&(gone.node.as_str(), "missing", "listing", 1)),
        "{recorded:?}"
    );
    assert!(
        f.contains(&(rotten.node.as_str(), "corrupt", "audit", 1)),
        "{recorded:?}"
    );
    assert_eq!(f.len(), 2, "{recorded:?}");
    let counters = gw.gateway().layer.audit_counters();
    assert_eq!(counters.missing.get(), 1);
    assert_eq!(counters.corrupt.get(), 1);
    assert_eq!(counters.passes.get(), 1);
    assert_eq!(counters.pieces_listed.get(), total_pieces);
    assert_eq!(counters.bytes_verified.get(), report.bytes_verified);
    assert!(counters.last_pass_secs.get() > 0);
    // The same counters are in the exposition.
    let text = gw.gateway().transfers.metrics().encode();
    assert!(text.contains("gateway_audit_missing_total 1"), "{text}");
    assert!(text.contains("gateway_audit_corrupt_total 1"), "{text}");
    assert!(
        text.contains(&format!(
            "gateway_audit_verified_bytes_total {}",
            report.bytes_verified
        )),
        "{text}"
    );
    // Audit reads count under their own reason.
    let read = gw
        .gateway()
        .transfers
        .metrics()
        .snapshot()
        .node_received_for(gateway::metrics::Reason::Audit);
    assert!(read >= report.bytes_verified, "{read} {report:?}");

    // Repair restores both.
    let opts = RepairOptions {
        threshold: 5,
        concurrency: 2,
        offline_after: Duration::from_secs(3600),
        rate: None,
    };
    gw.gateway()
        .layer
        .repair_pass(&opts, &|_| {})
        .await
        .expect("repair");
    assert!(
        full_health(&gw, &["a", "b", "c"], Duration::from_secs(20)).await,
        "{:?}",
        counts(&gw).await
    );
    assert!(gone.path.exists());
    for (key, body) in &bodies {
        assert!(get(&c, BUCKET, key).await == *body, "{key}");
    }
    // The rebuilt pieces verify: the next pass finds nothing.
    let again = pass(&gw, &everything()).await;
    assert!(again.findings.is_empty(), "{again:?}");
    assert_eq!(again.pieces_sampled, total_pieces, "{again:?}");
}

#[tokio::test]
async fn the_background_audit_finds_them_within_its_configured_pass() {
    // Passes every 100 ms, one random piece of every segment each (the store has six).
    let (gw, c) = setup(
        Setup::new()
            .set("audit", "interval", "100ms")
            .set("audit", "rate", "64MiB")
            .set("audit", "requests", 1000)
            .set("audit", "samples", 100),
    )
    .await;
    let a = data(200_000, 4);
    let b = data(600_000, 5);
    put(&c, BUCKET, "a", &a).await;
    put(&c, BUCKET, "b", &b).await;
    let rec_a = gw.record(BUCKET, "a").await.unwrap();
    let gone = piece(&gw, &rec_a, 0, 5);
    std::fs::remove_file(&gone.path).unwrap();
    // Every chunk of the piece is bad, so any sampled range of it is.
    let rec_b = gw.record(BUCKET, "b").await.unwrap();
    let rotten = piece(&gw, &rec_b, 2, 1);
    let stripes =
        (std::fs::metadata(&rotten.path).unwrap().len() - 32) / (rotten.chunk_size as u64 + 32);
    for s in 0..stripes {
        storage::flip_byte(&rotten.path, rotten.data_offset(s, 0));
    }

    // The missing piece is found by the next listing (or, if this pass had already listed
    // its node, by a sampled read); the corrupt one by a sampled read, one chance in six per
    // pass.
    let recorded = wait::observe(
        Duration::from_secs(60),
        || counts(&gw),
        |now| {
            let f = findings(now);
            let missing = f.iter().any(|x| {
                x.0 == gone.node && x.1 == "missing" && ["listing", "audit"].contains(&x.2)
            });
            missing && f.contains(&(rotten.node.as_str(), "corrupt", "audit", 1))
        },
    )
    .await;
    let f = findings(&recorded);
    assert_eq!(f.len(), 2, "{recorded:?}");
    assert!(
        f.iter().any(|x| x.0 == gone.node && x.1 == "missing"),
        "{recorded:?}"
    );
    assert!(
        f.contains(&(rotten.node.as_str(), "corrupt", "audit", 1)),
        "{recorded:?}"
    );
    // The background repair, woken by the findings, rewrites both.
    assert!(
        full_health(&gw, &["a", "b"], Duration::from_secs(30)).await,
        "{:?}",
        counts(&gw).await
    );
    assert!(get(&c, BUCKET, "a").await == a);
    assert!(get(&c, BUCKET, "b").await == b);
}

#[tokio::test]
async fn a_healthy_store_yields_no_finding_even_under_concurrent_writes() {
    let (gw, c) = setup(no_background()).await;
    let sizes = [100usize, 5_000, 30_000, 200_000, 700_000];
    for (i, size) in sizes.iter().enumerate() {
        put(&c, BUCKET, &format!("k{i}"), &data(*size, i as u64)).await;
    }
    // Overwrites, new objects and deletes race the passes (garbage is collected at once:
    // `gc_grace` is 0 in tests).
    let writer = {
        let c = c.clone();
        tokio::spawn(async move {
            for round in 0..40u64 {
                let key = format!("k{}", round % 5);
                put(
                    &c,
                    BUCKET,
                    &key,
                    &data(10_000 + (round as usize % 3) * 150_000, round),
                )
                .await;
                put(
                    &c,
                    BUCKET,
                    &format!("new{round}"),
                    &data(50_000, 100 + round),
                )
                .await;
                c.delete_object()
                    .bucket(BUCKET)
                    .key(format!("new{round}"))
                    .send()
                    .await
                    .unwrap();
            }
        })
    };
    let mut passes = 0;
    while !writer.is_finished() || passes < 2 {
        let r = pass(&gw, &everything()).await;
        assert!(r.findings.is_empty(), "pass {passes}: {r:?}");
        passes += 1;
    }
    writer.await.unwrap();
    let c2 = counts(&gw).await;
    assert!(c2.findings.is_empty(), "{c2:?}");
    assert!(c2.not_ok.is_empty(), "{c2:?}");

    // At rest, a pass looks at every piece and reads each whole: exactly the bytes on disk.
    let (mut pieces, mut bytes) = (0u64, 0u64);
    for i in 0..sizes.len() {
        let rec = gw.record(BUCKET, &format!("k{i}")).await.unwrap();
        for p in piece_files(&gw, &rec) {
            pieces += 1;
            bytes += std::fs::metadata(&p.path).unwrap().len();
        }
    }
    assert!(pieces > 0);
    let r = pass(&gw, &everything()).await;
    assert!(r.findings.is_empty(), "{r:?}");
    assert_eq!(r.pieces_listed, pieces, "{r:?}");
    assert_eq!(r.pieces_sampled, pieces, "{r:?}");
    assert_eq!(r.bytes_verified, bytes, "{r:?}");
}

#[tokio::test]
async fn a_pass_keeps_within_its_byte_and_request_rates() {
    let (gw, c) = setup(no_background()).await;
    for i in 0..4u64 {
        put(&c, BUCKET, &format!("k{i}"), &data(200_000, i)).await;
    }
    // Each node is listed in one page and every piece read whole: requests = 6 + pieces.
    let slow = AuditOptions {
        rate: Some(512 << 10),
        requests: Some(40.0),
        ..everything()
    };
    let started = Instant::now();
    let r = pass(&gw, &slow).await;
    let took = started.elapsed().as_secs_f64();
    assert!(r.findings.is_empty(), "{r:?}");
    let requests = r.nodes_listed + r.pieces_sampled;
    let burst = (512u64 << 10) / 4;
    let by_requests = (requests - 1) as f64 / 40.0;
    let by_bytes = r.bytes_verified.saturating_sub(burst) as f64 / f64::from(512 << 10);
    assert!(
        by_bytes > by_requests,
        "the byte rate binds: {by_bytes} {by_requests}"
    );
    assert!(took >= by_bytes, "{took} s for {r:?}");
    // With more bytes allowed, the request rate binds instead.
    let requests_bound = AuditOptions {
        rate: Some(64 << 20),
        requests: Some(10.0),
        ..everything()
    };
    let started = Instant::now();
    let r = pass(&gw, &requests_bound).await;
    let took = started.elapsed().as_secs_f64();
    let requests = r.nodes_listed + r.pieces_sampled;
    assert!(
        took >= (requests - 1) as f64 / 10.0,
        "{took} s for {requests} requests"
    );
}
