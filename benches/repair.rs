//! Repair throughput: stores an object over local directory nodes, replaces some nodes by empty
//! ones (their pieces recorded as lost, their files deleted), then times one repair pass back
//! to full health — what `gateway node replace` + `gateway repair` do. Not a test: it prints
//! MB/s of segments rebuilt (ciphertext bytes of the segments repair touched, per second) and
//! the time to full health.
//!
//! `cargo bench --bench repair` (env `BENCH_MB` = object size in MiB, default 256;
//! `BENCH_SCHEME`, default 4/5/6/8; `BENCH_NODES`, default total; `BENCH_LOSE` = nodes
//! replaced, default 1; `BENCH_CONCURRENCY` = segments repaired at once, default 2 as
//! `[repair] concurrency`; `BENCH_SEGMENT_MB`, default 64).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway::config::{LimitsConfig, StorageConfig};
use gateway::crypto::RootKey;
use gateway::erasure::Scheme;
use gateway::meta::Meta;
use gateway::metrics::Metrics;
use gateway::nodes::{DirNode, NodeStore};
use gateway::object::repair::RepairOptions;
use gateway::object::{BodyEvent, BodyReceiver, ObjectLayer, PutObject};
use gateway::transfer::{NodeSpec, Transfers};
use tokio::sync::mpsc;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let mb: usize = env("BENCH_MB", 256);
    let scheme = env("BENCH_SCHEME", "4/5/6/8".to_string())
        .parse::<Scheme>()
        .expect("scheme");
    let nodes_n: usize = env("BENCH_NODES", scheme.total as usize);
    let lose: usize = env("BENCH_LOSE", 1);
    let concurrency: usize = env("BENCH_CONCURRENCY", 2);
    let segment_mb: u64 = env("BENCH_SEGMENT_MB", 64);
    let dir = tempfile::tempdir().expect("tempdir");
    let ids: Vec<String> = (0..nodes_n).map(|i| format!("n{i}")).collect();
    let specs = ids
        .iter()
        .map(|id| {
            let store: Arc<dyn NodeStore> =
                Arc::new(DirNode::open(id, &dir.path().join(id), true).expect("node"));
            NodeSpec {
                domain: format!("node:{id}"),
                store,
                kind: "dir".into(),
                label: None,
                offline: None,
            }
        })
        .collect();
    let meta = Meta::open(&dir.path().join("meta.sqlite"))
        .await
        .expect("meta");
    let storage = StorageConfig {
        scheme,
        segment_size: segment_mb << 20,
        ..StorageConfig::default()
    };
    let root = RootKey::generate().expect("key");
    let limits = LimitsConfig {
        max_connections: 4096,
        max_connections_per_node: 64,
        ..LimitsConfig::default()
    };
    let transfers = Transfers::new(&root, specs, limits, None, Arc::new(Metrics::new()));
    let layer = ObjectLayer::new(storage, root, transfers, meta.clone());
    layer.create_bucket("bench").await.expect("bucket");

    let block = Bytes::from(
        (0..1 << 20)
            .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect::<Vec<u8>>(),
    );
    let (tx, rx) = mpsc::channel(4);
    let feeder = tokio::spawn(async move {
        for _ in 0..mb {
            if tx.send(BodyEvent::Data(block.clone())).await.is_err() {
                return;
            }
        }
        let _ = tx.send(BodyEvent::End(None)).await;
    });
    let put = PutObject {
        bucket: "bench".into(),
        key: "obj".into(),
        ..PutObject::default()
    };
    layer
        .put_object(put, BodyReceiver::new(rx, None))
        .await
        .expect("put");
    feeder.await.expect("feeder");

    // The first `lose` nodes are replaced by empty ones.
    let mut lost = 0;
    for id in &ids[..lose] {
        lost += meta.mark_node_lost(id, "bench").await.expect("mark lost");
        // Its piece files go (the fan-out directories of an initialised node stay).
        for fan in std::fs::read_dir(dir.path().join(id).join("pieces")).expect("node") {
            for f in std::fs::read_dir(fan.expect("fan").path()).expect("fan") {
                std::fs::remove_file(f.expect("piece").path()).expect("wipe piece");
            }
        }
    }

    let opts = RepairOptions {
        threshold: scheme.success.saturating_sub(1),
        concurrency,
        offline_after: Duration::from_secs(3600),
        rate: None,
    };
    let t = Instant::now();
    let r = layer.repair_pass(&opts, &|_| {}).await.expect("repair");
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(r.failed, 0, "{r:?}");
    assert_eq!(r.pieces_written, lost, "{r:?}");
    let counts = layer.health_counts().await.expect("counts");
    assert!(
        counts.by_healthy.iter().all(|&(h, _)| h >= scheme.success),
        "{counts:?}"
    );

    // Everything still reads back.
    let mut got = layer.get_object("bench", "obj", None).await.expect("get");
    let mut n = 0usize;
    while let Some(chunk) = got.body.recv().await {
        n += chunk.expect("chunk").len();
    }
    assert_eq!(n, mb << 20);

    println!(
        "repair {} MiB, scheme {}, {} nodes, {} replaced, concurrency {}: {} segments ({:.0} MiB) rebuilt, {} pieces ({:.0} MiB) written in {:.2} s: {:.0} MB/s of segments, {:.0} MB/s written",
        mb,
        scheme,
        nodes_n,
        lose,
        concurrency,
        r.repaired,
        r.segment_bytes as f64 / (1 << 20) as f64,
        r.pieces_written,
        r.bytes_sent as f64 / (1 << 20) as f64,
        secs,
        r.segment_bytes as f64 / secs / 1e6,
        r.bytes_sent as f64 / secs / 1e6,
    );
}
