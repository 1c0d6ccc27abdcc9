//! Throughput of the object pipeline (encrypt + erasure-code + write pieces, and back) over
//! local directory nodes in a temporary directory, without HTTP. Not a test: it prints MB/s.
//!
//! `cargo bench --bench pipeline` (env `BENCH_MB` = object size in MiB, default 256;
//! `BENCH_SCHEME` = scheme, default 4/5/6/6; `BENCH_NODES` = node count, default total).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use gateway::config::{LimitsConfig, StorageConfig};
use gateway::crypto::RootKey;
use gateway::erasure::Scheme;
use gateway::meta::Meta;
use gateway::metrics::Metrics;
use gateway::nodes::{DirNode, NodeStore};
use gateway::object::{BodyEvent, BodyReceiver, ObjectLayer, PutObject};
use gateway::transfer::{NodeSpec, Transfers};
use tokio::sync::mpsc;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let mb: usize = std::env::var("BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let scheme = std::env::var("BENCH_SCHEME").unwrap_or_else(|_| "4/5/6/6".into());
    let scheme = scheme.parse::<Scheme>().expect("scheme");
    let nodes_n: usize = std::env::var("BENCH_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(scheme.total as usize);
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes: Vec<Arc<dyn NodeStore>> = (0..nodes_n)
        .map(|i| {
            let id = format!("n{i}");
            Arc::new(DirNode::open(&id, &dir.path().join(&id), true).expect("node"))
                as Arc<dyn NodeStore>
        })
        .collect();
    let meta = Meta::open(&dir.path().join("meta.sqlite"))
        .await
        .expect("meta");
    let storage = StorageConfig {
        scheme,
        ..StorageConfig::default()
    };
    let root = RootKey::generate().expect("key");
    let specs = nodes
        .into_iter()
        .map(|store| NodeSpec {
            domain: format!("node:{}", store.id()),
            store,
            kind: "dir".into(),
            label: None,
            offline: None,
        })
        .collect();
    let limits = LimitsConfig {
        max_connections: 4096,
        max_connections_per_node: 64,
        ..LimitsConfig::default()
    };
    let transfers = Transfers::new(&root, specs, limits, None, Arc::new(Metrics::new()));
    let layer = ObjectLayer::new(storage, root, transfers, meta);
    layer.create_bucket("bench").await.expect("bucket");

    let size = mb << 20;
    let piece = Bytes::from(
        (0..1 << 20)
            .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect::<Vec<u8>>(),
    );
    let (tx, rx) = mpsc::channel(4);
    let feeder = tokio::spawn(async move {
        for _ in 0..mb {
            if tx.send(BodyEvent::Data(piece.clone())).await.is_err() {
                return;
            }
        }
        let _ = tx.send(BodyEvent::End(None)).await;
    });
    let t = Instant::now();
    let put = layer
        .put_object(
            PutObject {
                bucket: "bench".into(),
                key: "obj".into(),
                ..PutObject::default()
            },
            BodyReceiver::new(rx, None),
        )
        .await
        .expect("put");
    let put_s = t.elapsed().as_secs_f64();
    feeder.await.expect("feeder");
    assert_eq!(put.size, size as u64);

    let t = Instant::now();
    let mut got = layer.get_object("bench", "obj", None).await.expect("get");
    let mut n = 0usize;
    while let Some(chunk) = got.body.recv().await {
        n += chunk.expect("chunk").len();
    }
    let get_s = t.elapsed().as_secs_f64();
    assert_eq!(n, size);
    let mbs = |s: f64| size as f64 / s / 1e6;
    println!(
        "pipeline {} MiB, scheme {}, {} nodes: PUT {:.0} MB/s ({:.2} s), GET {:.0} MB/s ({:.2} s)",
        mb,
        scheme,
        nodes_n,
        mbs(put_s),
        put_s,
        mbs(get_s),
        get_s
    );
}
