//! The metadata replication benchmark (issue 9). Not a test: it prints measurements and fails
//! only when something does not work (a write fails, a recovery misses objects).
//!
//! For each `metadata.replication` mode (`off`, `async`, `sync`), one gateway on loopback over
//! six local directory nodes (the embedded default's 4/5/6/6), driven with aws-sdk-s3:
//! - 4 KiB PUTs from `BENCH_CLIENTS` (default 32) concurrent clients for `BENCH_SECS` (default
//!   10) seconds: ops/s, and the bytes replication sent to the nodes per object written;
//! - one `BENCH_MB` MiB (default 1024) object, single stream: MB/s.
//!
//! Then recovery time: a gateway holding `BENCH_RECOVER` objects (default "10000,100000";
//! small objects, written by 64 clients) is stopped, its metadata file deleted, and
//! `gateway::app::recover::run_recover` rebuilds it from the nodes; the time and the
//! object count are printed.
//!
//! `cargo bench --bench replication`; `BENCH_MODES` (default "off,async,sync") and
//! `BENCH_RECOVER` choose the parts; `BENCH_DIR` chooses where the node directories go.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use gateway::app::recover::{run_recover, RecoverOptions};
use gateway::app::{prepare, Gateway};
use gateway::metrics::Reason;

const ACCESS: &str = "BENCHACCESSKEY000001";
const SECRET: &str = "bench-secret-key-000000000000000000000000";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn setup(root: &Path, mode: &str, name: &str) -> PathBuf {
    let data = root.join(format!("data-{name}"));
    std::fs::create_dir_all(&data).expect("data dir");
    let mut cfg = format!(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"\"\n[metadata]\nreplication = \"{mode}\"\n"
    );
    for i in 1..=6 {
        cfg.push_str(&format!(
            "[[nodes]]\nid = \"n{i}\"\nkind = \"dir\"\npath = \"nodes/n{i}\"\n"
        ));
    }
    std::fs::write(data.join("config.toml"), cfg).expect("config");
    data
}

async fn start(data: &Path) -> (Gateway, Client) {
    std::env::set_var("GATEWAY_ACCESS_KEY", ACCESS);
    std::env::set_var("GATEWAY_SECRET_KEY", SECRET);
    let p = prepare(data, None).expect("prepare");
    let gw = Gateway::start(&p).await.expect("start");
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(format!("http://{}", gw.addr))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ACCESS, SECRET, None, None, "bench"))
        .force_path_style(true)
        .build();
    (gw, Client::from_conf(conf))
}

/// `clients` writers of `size`-byte objects for `secs` seconds (or until `limit` objects);
/// returns how many were written.
async fn put_many(
    c: &Client,
    bucket: &str,
    clients: usize,
    size: usize,
    secs: u64,
    limit: u64,
) -> u64 {
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let body = bytes::Bytes::from(vec![7u8; size]);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (c, next, body, bucket) = (c.clone(), next.clone(), body.clone(), bucket.to_string());
        set.spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= limit {
                    break;
                }
                c.put_object()
                    .bucket(&bucket)
                    .key(format!("o/{i:08}"))
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await
                    .expect("put");
                done += 1;
            }
            done
        });
    }
    let mut total = 0;
    while let Some(r) = set.join_next().await {
        total += r.expect("writer");
    }
    total
}

async fn bench_mode(root: &Path, mode: &str, clients: usize, secs: u64, mb: usize) -> String {
    let data = setup(root, mode, mode);
    let (gw, c) = start(&data).await;
    c.create_bucket()
        .bucket("bench")
        .send()
        .await
        .expect("bucket");
    let meta_before = gw
        .transfers
        .metrics()
        .snapshot()
        .node_sent_for(Reason::Metadata);
    let t = Instant::now();
    let n = put_many(&c, "bench", clients, 4096, secs, u64::MAX).await;
    let ops = n as f64 / t.elapsed().as_secs_f64();
    let meta_bytes = gw
        .transfers
        .metrics()
        .snapshot()
        .node_sent_for(Reason::Metadata)
        - meta_before;
    let big = bytes::Bytes::from(vec![0x5au8; mb << 20]);
    let t = Instant::now();
    c.put_object()
        .bucket("bench")
        .key("big")
        .body(ByteStream::from(big))
        .send()
        .await
        .expect("big put");
    let mbps = (mb << 20) as f64 / 1e6 / t.elapsed().as_secs_f64();
    gw.stop().await.expect("stop");
    let _ = std::fs::remove_dir_all(&data);
    format!(
        "{mode:<6} 4 KiB PUT {ops:>8.0} ops/s ({n} objects, {clients} clients)   metadata upstream {:>7.0} B/object   {mb} MiB PUT {mbps:>6.1} MB/s",
        meta_bytes as f64 / n.max(1) as f64
    )
}

async fn bench_recovery(root: &Path, objects: u64) -> String {
    let data = setup(root, "async", &format!("recover-{objects}"));
    let (gw, c) = start(&data).await;
    c.create_bucket()
        .bucket("bench")
        .send()
        .await
        .expect("bucket");
    let t = Instant::now();
    let written = put_many(&c, "bench", 64, 100, 3600, objects).await;
    let put_secs = t.elapsed().as_secs_f64();
    let cfg = prepare(&data, None).expect("prepare").config;
    gw.stop().await.expect("stop");
    std::fs::remove_file(&cfg.metadata_file).expect("rm metadata");
    let t = Instant::now();
    let r = run_recover(&RecoverOptions {
        data_dir: data.clone(),
        config: None,
        key_file: None,
        passphrase: None,
        force: false,
        progress: false,
    })
    .await
    .expect("recover");
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(r.summary.objects, written, "recovered object count");
    let _ = std::fs::remove_dir_all(&data);
    format!(
        "recover {written:>7} objects: {secs:>6.2} s (snapshot {:?} + {} log batches, {} changes; written in {put_secs:.0} s)",
        r.summary.snapshot, r.summary.batches, r.summary.changes_replayed
    )
}

fn main() {
    let clients: usize = env_or("BENCH_CLIENTS", 32);
    let secs: u64 = env_or("BENCH_SECS", 10);
    let mb: usize = env_or("BENCH_MB", 1024);
    let recover: String = env_or("BENCH_RECOVER", "10000,100000".to_string());
    let base = std::env::var_os("BENCH_DIR").map(PathBuf::from);
    let root = match &base {
        Some(b) => tempfile::tempdir_in(b),
        None => tempfile::tempdir(),
    }
    .expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut lines = Vec::new();
    let modes: String = env_or("BENCH_MODES", "off,async,sync".to_string());
    for mode in modes.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let line = rt.block_on(bench_mode(root.path(), mode, clients, secs, mb));
        eprintln!("{line}");
        lines.push(line);
    }
    for n in recover
        .split(',')
        .filter_map(|s| s.trim().parse::<u64>().ok())
    {
        let line = rt.block_on(bench_recovery(root.path(), n));
        eprintln!("{line}");
        lines.push(line);
    }
    println!("\nmetadata replication bench (6 directory nodes, 4/5/6/6)");
    for l in lines {
        println!("{l}");
    }
}
