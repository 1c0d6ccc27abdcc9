//! Self-healing: degraded writes with a node gone, repair back to full health (after the node
//! returns, after bit rot, after a node is replaced by an empty one).

use std::time::Duration;

use crate::harness::s3x::{get, put};
use crate::harness::storage;
use crate::harness::storage::piece;
use crate::harness::{data, wait, Setup, TestGateway};
use aws_sdk_s3::Client;
use gateway::meta::{PieceState, Placement};
use gateway::object::repair::{RepairOptions, RepairReport};

const BUCKET: &str = "heal";

async fn setup() -> (TestGateway, Client) {
    setup_with(6).await
}

async fn setup_with(nodes: usize) -> (TestGateway, Client) {
    let gw = Setup::new().dir_nodes(nodes).start().await;
    let c = gw.client();
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    (gw, c)
}

/// (healthy piece count, piece states) of every erasure-coded segment of `key`.
async fn segments(gw: &TestGateway, key: &str) -> Vec<Vec<(String, PieceState)>> {
    let rec = gw.record(BUCKET, key).await.unwrap();
    let mut out = Vec::new();
    for part in &rec.parts {
        for seg in &part.stream.segments {
            if let Placement::Pieces { pieces, .. } = &seg.placement {
                out.push(pieces.iter().map(|p| (p.node.clone(), p.state)).collect());
            }
        }
    }
    out
}

async fn repair(gw: &TestGateway) -> RepairReport {
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
        .expect("repair pass")
}

/// Waits (bounded) until every segment of `keys` is at full health: the background repair
/// loop may be repairing a segment the explicit pass then skips.
async fn settle(gw: &TestGateway, keys: &[&str]) -> Vec<Vec<(String, PieceState)>> {
    wait::observe(
        Duration::from_secs(20),
        || async {
            let mut all = Vec::new();
            for k in keys {
                all.extend(segments(gw, k).await);
            }
            all
        },
        |all| full_health(all),
    )
    .await
}

fn full_health(segs: &[Vec<(String, PieceState)>]) -> bool {
    segs.iter()
        .all(|s| s.len() == 6 && s.iter().all(|(_, st)| *st == PieceState::Ok))
}

#[tokio::test]
async fn writes_continue_with_one_node_gone_and_repair_restores_full_health() {
    let (gw, c) = setup().await;
    let before = data(300_000, 1);
    put(&c, BUCKET, "before", &before).await;

    // n6's directory disappears (an unmounted disk).
    let dir = gw.node_dir("n6");
    let away = dir.with_extension("away");
    std::fs::rename(&dir, &away).unwrap();

    // 4/5/6/6: every write still succeeds, with five pieces (the repair threshold).
    let mut objects = Vec::new();
    for (i, size) in [10_000usize, 200_000, 700_000].into_iter().enumerate() {
        let key = format!("during-{i}");
        let body = data(size, 10 + i as u64);
        put(&c, BUCKET, &key, &body).await;
        for s in segments(&gw, &key).await {
            assert_eq!(s.len(), 5, "{key}: {s:?}");
            assert!(s.iter().all(|(n, _)| n != "n6"), "{key}: {s:?}");
        }
        objects.push((key, body));
    }
    for (key, body) in &objects {
        assert!(get(&c, BUCKET, key).await == *body, "{key}");
    }
    assert!(get(&c, BUCKET, "before").await == before);
    let counts = gw.gateway().layer.health_counts().await.unwrap();
    assert!(
        counts.by_healthy.iter().any(|&(h, n)| h == 5 && n > 0),
        "{counts:?}"
    );
    // `gateway stats` and the metrics show the degraded segments.
    let admin = gw.admin();
    let stats = gateway::admin::fetch_stats(&admin).await.expect("stats");
    let health = stats.health.clone().expect("health report");
    assert_eq!((health.full, health.repair_threshold), (6, Some(5)));
    let degraded: u64 = health
        .segments
        .iter()
        .filter(|c| c.healthy == 5)
        .map(|c| c.segments)
        .sum();
    assert!(degraded >= 3, "{health:?}");
    let text = gateway::admin::render(&stats);
    assert!(text.contains("below full health"), "{text}");
    let metrics = gw.gateway().transfers.metrics().encode();
    assert!(
        metrics.contains(&format!("gateway_segments{{healthy=\"5\"}} {degraded}")),
        "{metrics}"
    );

    // The node comes back: repair gives every segment its sixth piece.
    std::fs::rename(&away, &dir).unwrap();
    let report = repair(&gw).await;
    assert_eq!(report.failed, 0, "{report:?}");
    let mut keys = vec!["before"];
    keys.extend(objects.iter().map(|(k, _)| k.as_str()));
    let all = settle(&gw, &keys).await;
    assert!(full_health(&all), "{all:?}");
    let counts = gw.gateway().layer.health_counts().await.unwrap();
    assert!(counts.by_healthy.iter().all(|&(h, _)| h == 6), "{counts:?}");
    let health = gateway::admin::fetch_stats(&admin)
        .await
        .expect("stats")
        .health
        .expect("health report");
    assert!(health.segments.iter().all(|c| c.healthy == 6), "{health:?}");
    assert!(
        health.repair.segments >= degraded && health.repair.pieces >= degraded,
        "{health:?}"
    );
    assert!(health.repair.bytes > 0, "{health:?}");
    let metrics = gw.gateway().transfers.metrics().encode();
    assert!(
        !metrics.contains("gateway_segments{healthy=\"5\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "gateway_repair_segments_total {}",
            health.repair.segments
        )),
        "{metrics}"
    );
    // Repair bytes are counted under their own reason.
    let traffic = gw.gateway().transfers.metrics().snapshot();
    let repaired: u64 = traffic
        .nodes
        .values()
        .map(|n| n.sent_bytes.get("repair").copied().unwrap_or(0))
        .sum();
    assert!(
        repaired >= report.bytes_sent && repaired > 0,
        "{repaired} {report:?}"
    );

    // Every object reads back from the rebuilt pieces alone: drop two original nodes.
    for id in ["n1", "n2"] {
        let d = gw.node_dir(id);
        std::fs::rename(&d, d.with_extension("away")).unwrap();
    }
    for (key, body) in &objects {
        assert!(get(&c, BUCKET, key).await == *body, "{key} after repair");
    }
}

#[tokio::test]
async fn bit_rot_is_recorded_by_reads_and_repaired() {
    let (gw, c) = setup().await;
    let body = data(200_000, 7);
    put(&c, BUCKET, "rot", &body).await;
    let rec = gw.record(BUCKET, "rot").await.unwrap();
    for (number, stripe, byte) in [(0u16, 2u64, 100usize), (3, 6, 4095), (5, 10, 0)] {
        let p = piece(&gw, &rec, 0, number);
        storage::flip_byte(&p.path, p.data_offset(stripe, byte));
    }
    assert!(get(&c, BUCKET, "rot").await == body);

    // The read records the three corrupt pieces (in the background). The findings history is
    // what to wait on: the background repair loop, woken by the same read, may already have
    // rewritten the pieces (and reset their state) by the time a poll looks at them.
    let corrupt_findings = |counts: &gateway::meta::HealthCounts| -> u64 {
        counts
            .findings
            .iter()
            .filter(|f| f.1 == "corrupt")
            .map(|f| f.3)
            .sum()
    };
    // The metrics count what changed state, right after the metadata commit.
    let counted = |gw: &TestGateway| -> u64 {
        gw.gateway()
            .transfers
            .metrics()
            .encode()
            .lines()
            .filter(|l| {
                l.starts_with("gateway_piece_findings_total{")
                    && l.contains("kind=\"corrupt\",found_by=\"read\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let counts = wait::observe(
        Duration::from_secs(10),
        || async { gw.gateway().layer.health_counts().await.unwrap() },
        |counts| corrupt_findings(counts) >= 3 && counted(&gw) >= 3,
    )
    .await;
    assert_eq!(corrupt_findings(&counts), 3, "{counts:?}");
    // Three pieces on three nodes, found by the read.
    let found: Vec<(&str, &str)> = counts
        .findings
        .iter()
        .filter(|f| f.1 == "corrupt")
        .map(|f| (f.0.as_str(), f.2.as_str()))
        .collect();
    assert_eq!(found.len(), 3, "{counts:?}");
    assert!(found.iter().all(|f| f.1 == "read"), "{counts:?}");
    assert_eq!(counted(&gw), 3);

    // Repair rewrites them (the background loop may get there first; either way it ends
    // healthy).
    let report = repair(&gw).await;
    let segs = settle(&gw, &["rot"]).await;
    assert!(full_health(&segs), "{segs:?} {report:?}");
    // The rewritten pieces verify: a read using only them and one other piece succeeds.
    let rec = gw.record(BUCKET, "rot").await.unwrap();
    for number in [1u16, 2] {
        std::fs::remove_file(piece(&gw, &rec, 0, number).path).unwrap();
    }
    assert!(get(&c, BUCKET, "rot").await == body);
}

#[tokio::test]
async fn a_replaced_empty_node_is_refilled_by_repair() {
    let (mut gw, c) = setup().await;
    let mut objects = Vec::new();
    for i in 0..5u64 {
        let key = format!("k{i}");
        let body = data(150_000 + i as usize * 70_000, 20 + i);
        put(&c, BUCKET, &key, &body).await;
        objects.push((key, body));
    }
    gw.stop().await;

    // n3's disk is lost: an empty directory takes its place.
    let dir = gw.node_dir("n3");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir(&dir).unwrap();
    let data_dir = gw.data_dir().to_path_buf();
    let replaced = gateway::app::maintenance::replace_node(&data_dir, None, "n3")
        .await
        .expect("replace");
    assert!(replaced.lost > 0);
    assert_eq!(replaced.initialised.as_deref(), Some(dir.as_path()));
    let report = gateway::app::maintenance::run_repair(&data_dir, None, &|_| {})
        .await
        .expect("gateway repair");
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(report.pieces_written, replaced.lost, "{report:?}");

    gw.restart().await;
    let c = gw.client();
    for (key, body) in &objects {
        let segs = segments(&gw, key).await;
        assert!(full_health(&segs), "{key}: {segs:?}");
        assert!(
            segs.iter().all(|s| s.iter().any(|(n, _)| n == "n3")),
            "{key}: {segs:?}"
        );
        assert!(get(&c, BUCKET, key).await == *body, "{key}");
    }
}

/// Every node id any piece of `keys` is placed on.
async fn nodes_used(gw: &TestGateway, keys: &[String]) -> std::collections::BTreeSet<String> {
    let mut used = std::collections::BTreeSet::new();
    for k in keys {
        for s in segments(gw, k).await {
            used.extend(s.into_iter().map(|(n, _)| n));
        }
    }
    used
}

#[tokio::test]
async fn a_drained_node_is_emptied_and_removed_without_losing_anything() {
    let (mut gw, c) = setup_with(7).await;
    let mut objects = Vec::new();
    for i in 0..6u64 {
        let key = format!("d{i}");
        let body = data(120_000 + i as usize * 90_000, 40 + i);
        put(&c, BUCKET, &key, &body).await;
        objects.push((key, body));
    }
    let keys: Vec<String> = objects.iter().map(|(k, _)| k.clone()).collect();
    assert!(nodes_used(&gw, &keys).await.contains("n3"));
    gw.stop().await;
    let data_dir = gw.data_dir().to_path_buf();
    let n3 = gw.node_dir("n3");
    assert!(!storage::piece_paths(&n3).is_empty());

    // Removing a node that still holds pieces is refused, and changes nothing.
    let config_before = std::fs::read_to_string(data_dir.join("config.toml")).unwrap();
    let err = gateway::app::maintenance::remove_node(&data_dir, None, "n3", false)
        .await
        .expect_err("n3 holds pieces");
    assert!(err.to_string().contains("gateway node drain n3"), "{err}");
    assert_eq!(
        std::fs::read_to_string(data_dir.join("config.toml")).unwrap(),
        config_before
    );

    // Drain: every piece moves off n3 (and is deleted there), the config says so.
    let drained = gateway::app::maintenance::drain_node(&data_dir, None, "n3", &|_| {})
        .await
        .expect("drain");
    assert_eq!(drained.left, 0, "{drained:?}");
    assert_eq!(drained.report.failed, 0, "{drained:?}");
    assert!(drained.report.pieces_written > 0, "{drained:?}");
    assert!(storage::piece_paths(&n3).is_empty(), "pieces left on n3");
    let config = std::fs::read_to_string(data_dir.join("config.toml")).unwrap();
    assert!(config.contains("drain = true"), "{config}");

    // Remove: out of the configuration, its directory untouched.
    let removed = gateway::app::maintenance::remove_node(&data_dir, None, "n3", false)
        .await
        .expect("remove");
    assert_eq!(removed.lost, 0);
    assert_eq!(removed.directory.as_deref(), Some(n3.as_path()));
    assert!(n3.exists());
    let config = std::fs::read_to_string(data_dir.join("config.toml")).unwrap();
    assert!(!config.contains("\"n3\""), "{config}");

    // One more removal would leave fewer nodes than the scheme's success: refused.
    let err = gateway::app::maintenance::remove_node(&data_dir, None, "n5", true)
        .await
        .expect_err("too few nodes");
    assert!(
        err.to_string().contains("needs at least success = 6"),
        "{err}"
    );

    gw.restart().await;
    let c = gw.client();
    for (key, body) in &objects {
        let segs = segments(&gw, key).await;
        assert!(full_health(&segs), "{key}: {segs:?}");
        assert!(get(&c, BUCKET, key).await == *body, "{key}");
    }
    assert!(!nodes_used(&gw, &keys).await.contains("n3"));
}

#[tokio::test]
async fn a_running_gateway_drains_in_the_background_and_writes_elsewhere() {
    let (mut gw, c) = setup_with(7).await;
    let mut objects = Vec::new();
    for i in 0..6u64 {
        let key = format!("b{i}");
        let body = data(100_000 + i as usize * 50_000, 60 + i);
        put(&c, BUCKET, &key, &body).await;
        objects.push((key, body));
    }
    gw.stop().await;
    let data_dir = gw.data_dir().to_path_buf();
    let mut edit =
        gateway::app::config_edit::ConfigEdit::open(&data_dir.join("config.toml"), &data_dir)
            .unwrap();
    assert!(edit.set_drain("n2", true).unwrap());
    edit.save().unwrap();
    gw.restart().await;
    let c = gw.client();

    // New writes go elsewhere at once.
    for i in 0..3u64 {
        let key = format!("new{i}");
        let body = data(150_000, 80 + i);
        put(&c, BUCKET, &key, &body).await;
        assert!(!nodes_used(&gw, std::slice::from_ref(&key))
            .await
            .contains("n2"));
        objects.push((key, body));
    }
    // The background repair moves the old pieces off n2.
    let keys: Vec<String> = objects.iter().map(|(k, _)| k.clone()).collect();
    wait::until(
        Duration::from_secs(30),
        "repair to move every piece off n2",
        || async { (!nodes_used(&gw, &keys).await.contains("n2")).then_some(()) },
    )
    .await;
    let n2 = gw.node_dir("n2");
    assert!(
        wait::eventually(Duration::from_secs(10), || storage::piece_paths(&n2)
            .is_empty())
        .await,
        "pieces left on n2: {:?}",
        storage::piece_paths(&n2)
    );
    for (key, body) in &objects {
        assert!(full_health(&segments(&gw, key).await), "{key}");
        assert!(get(&c, BUCKET, key).await == *body, "{key}");
    }
}
