//! What the audit costs a concurrent PUT workload: the same workload timed with no audit
//! running and with audit passes running back to back, alternating in one process (off, on,
//! off, on...) so machine drift hits both alike. Not a test: it prints MB/s per round and the
//! medians.
//!
//! Over 6 local directory nodes, scheme 4/5/6/6 (the embedded default), a store of
//! `BENCH_STORE_MB` MiB (default 256) in 4 MiB objects for the audit to list and sample, then
//! per round `BENCH_WRITERS` (default 8) concurrent writers each putting `BENCH_PUTS` (default 4)
//! objects of `BENCH_OBJECT_MB` MiB (default 8). Audit modes: `default` (the `[audit]`
//! defaults: 1 MiB/s, 5 requests/s, 256 KiB samples) and `unlimited` (no byte or request cap:
//! the worst case). `BENCH_ROUNDS` (default 3) rounds of off/default/unlimited.
//!
//! `cargo bench --bench audit_cost`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use gateway::config::{AuditConfig, LimitsConfig, StorageConfig};
use gateway::crypto::RootKey;
use gateway::meta::Meta;
use gateway::metrics::Metrics;
use gateway::nodes::{DirNode, NodeStore};
use gateway::object::audit::AuditOptions;
use gateway::object::{BodyEvent, BodyReceiver, ObjectLayer, PutObject};
use gateway::transfer::{NodeSpec, Transfers};
use tokio::sync::mpsc;

fn env(name: &str, default: usize) -> usize {
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

async fn put(layer: &ObjectLayer, key: String, mb: usize, block: Bytes) {
    let (tx, rx) = mpsc::channel(4);
    let feeder = tokio::spawn(async move {
        for _ in 0..mb {
            if tx.send(BodyEvent::Data(block.clone())).await.is_err() {
                return;
            }
        }
        let _ = tx.send(BodyEvent::End(None)).await;
    });
    let req = PutObject {
        bucket: "bench".into(),
        key,
        ..PutObject::default()
    };
    layer
        .put_object(req, BodyReceiver::new(rx, None))
        .await
        .expect("put");
    feeder.await.expect("feeder");
}

/// MB/s of one round of the PUT workload.
async fn workload(layer: &ObjectLayer, writers: usize, puts: usize, mb: usize, b: &Bytes) -> f64 {
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for w in 0..writers {
        let (layer, b) = (layer.clone(), b.clone());
        set.spawn(async move {
            for p in 0..puts {
                put(&layer, format!("w{w}-{p}"), mb, b.clone()).await;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("writer");
    }
    (writers * puts * (mb << 20)) as f64 / t.elapsed().as_secs_f64() / 1e6
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn run() {
    let store_mb = env("BENCH_STORE_MB", 256);
    let writers = env("BENCH_WRITERS", 8);
    let puts = env("BENCH_PUTS", 4);
    let object_mb = env("BENCH_OBJECT_MB", 8);
    let rounds = env("BENCH_ROUNDS", 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = (1..=6)
        .map(|i| {
            let id = format!("n{i}");
            let store: Arc<dyn NodeStore> =
                Arc::new(DirNode::open(&id, &dir.path().join(&id), true).expect("node"));
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
    let root = RootKey::generate().expect("key");
    let transfers = Transfers::new(
        &root,
        specs,
        LimitsConfig::default(),
        None,
        Arc::new(Metrics::new()),
    );
    let storage = StorageConfig {
        gc_grace: std::time::Duration::ZERO,
        ..StorageConfig::default()
    };
    let layer = ObjectLayer::new(storage, root, transfers, meta);
    layer.create_bucket("bench").await.expect("bucket");
    let block = Bytes::from(
        (0..1 << 20)
            .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect::<Vec<u8>>(),
    );
    for i in 0..store_mb / 4 {
        put(&layer, format!("store-{i}"), 4, block.clone()).await;
    }

    let modes: [(&str, Option<AuditOptions>); 3] = [
        ("off", None),
        (
            "default",
            Some(AuditOptions::background(&AuditConfig::default())),
        ),
        (
            "unlimited",
            Some(AuditOptions {
                rate: None,
                requests: None,
                samples: u64::MAX,
                ..AuditOptions::background(&AuditConfig::default())
            }),
        ),
    ];
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for round in 0..rounds {
        for (m, (name, opts)) in modes.iter().enumerate() {
            let auditor = opts.clone().map(|opts| {
                let layer = layer.clone();
                tokio::spawn(async move {
                    loop {
                        layer.audit_pass(&opts).await.expect("audit pass");
                    }
                })
            });
            let before = layer.audit_counters().bytes_verified.get();
            let mbs = workload(&layer, writers, puts, object_mb, &block).await;
            let verified = layer.audit_counters().bytes_verified.get() - before;
            if let Some(a) = auditor {
                a.abort();
                let _ = a.await;
            }
            println!(
                "round {round} audit {name:>9}: PUT {mbs:.0} MB/s ({} MiB verified meanwhile)",
                verified >> 20
            );
            results[m].push(mbs);
        }
    }
    let off = median(&mut results[0].clone());
    for (m, (name, _)) in modes.iter().enumerate() {
        let med = median(&mut results[m]);
        println!(
            "audit {name:>9}: median PUT {med:.0} MB/s, {:.3} of off ({writers} writers x {puts} x {object_mb} MiB, store {store_mb} MiB, {rounds} rounds)",
            med / off
        );
    }
}
