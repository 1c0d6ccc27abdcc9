//! The 1 GiB transfer benchmark (issue 4). Not a test: it prints a table of measurements and
//! fails only when the object does not round-trip.
//!
//! Two configurations, each run in its own child process so that peak RSS is its own:
//! - `dir`: scheme 29/35/80/110 over 110 local directory nodes, limits 128 connections in all
//!   and 8 per node (a segment upload takes its 80 `success` slots at once).
//! - `remote`: scheme 4/5/6/8 over 12 `gateway node run --reserve 0` processes on loopback,
//!   default limits (64 in all, 8 per node).
//!
//! Each uploads `BENCH_MB` MiB of pseudo-random data as one object through
//! [`ObjectLayer::put_object`] (1 MiB `BodyEvent::Data` chunks, then `End(None)`), then reads it
//! back fully through [`ObjectLayer::get_object`] and checks that the blake3 of the stream equals
//! the blake3 of the input; both are computed incrementally, nothing holds the whole object.
//!
//! The PUT and the GET each run on their own `ObjectLayer` and [`Metrics`] over the same nodes
//! and metadata, so byte ratios and peak connections are per phase. The PUT phase ends when
//! `put_object` returns (MB/s) and its bytes are read once every node connection it opened
//! has closed, so the long tail's cancelled or late pieces are counted.
//!
//! Reported per configuration: PUT and GET MB/s (10^6 bytes/s of object data), upstream ratio
//! (bytes sent to nodes during the PUT / object bytes) with the long-tail share, downstream
//! ratio (bytes received from nodes during the GET / object bytes), peak node connections of
//! each phase, peak RSS (VmHWM) of the bench process and, for `remote`, the sum of the node
//! processes' VmHWM read just before they are killed.
//!
//! `cargo bench --bench transfer`; env `BENCH_MB` (MiB, default 1024), `BENCH_ONLY=dir|remote`
//! (run one configuration in this process), `BENCH_DIR` (where node directories go, default
//! the system temp dir). Node directories are checked for free space before the run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway::config::{LimitsConfig, StorageConfig};
use gateway::crypto::RootKey;
use gateway::erasure::Scheme;
use gateway::meta::Meta;
use gateway::metrics::{Metrics, Reason};
use gateway::nodes::protocol::NodeToken;
use gateway::nodes::remote::{RemoteNode, RemoteOptions};
use gateway::nodes::{DirNode, NodeStore};
use gateway::object::{BodyEvent, BodyReceiver, ObjectLayer, PutObject};
use gateway::transfer::{NodeSpec, Transfers};
use tokio::sync::mpsc;

const CHUNK: usize = 1 << 20;
const MIB: f64 = (1u64 << 20) as f64;
const CONFIGS: [&str; 2] = ["dir", "remote"];
/// Marks a child's result line on its stdout, for the parent to collect.
const ROW_TAG: &str = "ROW\t";

fn main() {
    let mb: u64 = std::env::var("BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    match std::env::var("BENCH_ONLY").ok().as_deref() {
        None | Some("") => run_children(mb),
        Some(config) => {
            let row = run_config(config, mb);
            if std::env::var_os("BENCH_CHILD").is_some() {
                println!("{ROW_TAG}{}", row.join("\t"));
            } else {
                print_table(&[row]);
            }
        }
    }
}

/// Runs every configuration in a fresh copy of this process and prints their rows together.
fn run_children(mb: u64) {
    let exe = std::env::current_exe().expect("current exe");
    let mut rows = Vec::new();
    for config in CONFIGS {
        eprintln!("transfer bench: {config}, {mb} MiB");
        let out = Command::new(&exe)
            .env("BENCH_ONLY", config)
            .env("BENCH_CHILD", "1")
            .env("BENCH_MB", mb.to_string())
            .stderr(Stdio::inherit())
            .output()
            .expect("run bench child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{config} failed: {}\n{stdout}",
            out.status
        );
        let row = stdout
            .lines()
            .find_map(|l| l.strip_prefix(ROW_TAG))
            .unwrap_or_else(|| panic!("{config} printed no result: {stdout}"));
        rows.push(row.split('\t').map(str::to_string).collect());
    }
    print_table(&rows);
}

const HEADER: [&str; 14] = [
    "config",
    "scheme",
    "nodes",
    "MiB",
    "PUT MB/s",
    "GET MB/s",
    "up ratio",
    "long tail MiB",
    "down ratio",
    "peak conn PUT",
    "peak conn GET",
    "bench RSS MiB",
    "nodes RSS MiB",
    "blake3",
];

fn print_table(rows: &[Vec<String>]) {
    let widths: Vec<usize> = HEADER
        .iter()
        .enumerate()
        .map(|(i, h)| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(String::len)
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let cells: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect();
        println!("| {} |", cells.join(" | "));
    };
    line(HEADER.to_vec());
    println!(
        "|{}|",
        widths
            .iter()
            .map(|w| format!("{}:", "-".repeat(w + 1)))
            .collect::<Vec<_>>()
            .join("|")
    );
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// One configuration, start to end; returns its table row.
fn run_config(config: &str, mb: u64) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let base = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base).expect("bench dir");
    let tmp = tempfile::tempdir_in(&base).expect("tempdir");
    match config {
        "dir" => {
            let scheme = "29/35/80/110".parse::<Scheme>().expect("scheme");
            check_space(tmp.path(), mb, scheme);
            let stores = (0..scheme.total)
                .map(|i| {
                    let id = format!("d{i}");
                    Arc::new(DirNode::open(&id, &tmp.path().join(&id), true).expect("dir node"))
                        as Arc<dyn NodeStore>
                })
                .collect();
            let limits = LimitsConfig {
                max_connections: 128,
                max_connections_per_node: 8,
                ..LimitsConfig::default()
            };
            let m = rt.block_on(measure(tmp.path(), stores, "dir", scheme, limits, mb));
            m.row(config, scheme, None)
        }
        "remote" => {
            let scheme = "4/5/6/8".parse::<Scheme>().expect("scheme");
            check_space(tmp.path(), mb, scheme);
            let mut procs: Vec<NodeProcess> = (0..12)
                .map(|i| NodeProcess::start(&tmp.path().join(format!("node{i}"))))
                .collect();
            let stores = procs
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let token = NodeToken::load(&p.dir.join("token")).expect("node token");
                    let node =
                        RemoteNode::new(&format!("r{i}"), RemoteOptions::new(&p.addr, token))
                            .expect("remote node");
                    Arc::new(node) as Arc<dyn NodeStore>
                })
                .collect();
            let m = rt.block_on(measure(
                tmp.path(),
                stores,
                "remote",
                scheme,
                LimitsConfig::default(),
                mb,
            ));
            let nodes_hwm = procs
                .iter()
                .map(|p| vm_hwm_kib(&format!("/proc/{}/status", p.child.id())).expect("node VmHWM"))
                .sum::<u64>();
            for p in &mut procs {
                p.kill();
            }
            m.row(config, scheme, Some(nodes_hwm))
        }
        other => panic!("BENCH_ONLY must be dir or remote, not {other:?}"),
    }
}

/// Refuses to start when the node directories' filesystem cannot hold every piece of the
/// object (all `total` pieces, plus a tenth for headers and the long tail).
fn check_space(dir: &Path, mb: u64, scheme: Scheme) {
    let st = rustix::fs::statvfs(dir).expect("statvfs");
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    let need = (mb << 20) / u64::from(scheme.minimum) * u64::from(scheme.total) * 11 / 10;
    assert!(
        free >= need,
        "{} has {} MiB free, the bench needs about {} MiB: set BENCH_DIR",
        dir.display(),
        free >> 20,
        need >> 20
    );
}

struct Measured {
    nodes: usize,
    bytes: u64,
    put: Duration,
    get: Duration,
    up_total: u64,
    up_long_tail: u64,
    down_total: u64,
    peak_put: u64,
    peak_get: u64,
    checksum_ok: bool,
}

impl Measured {
    fn row(&self, config: &str, scheme: Scheme, nodes_hwm_kib: Option<u64>) -> Vec<String> {
        let object = self.bytes as f64;
        let mbs = |d: Duration| format!("{:.1}", object / d.as_secs_f64() / 1e6);
        let bench_hwm = vm_hwm_kib("/proc/self/status").expect("own VmHWM");
        vec![
            config.to_string(),
            scheme.to_string(),
            self.nodes.to_string(),
            (self.bytes >> 20).to_string(),
            mbs(self.put),
            mbs(self.get),
            format!("{:.3}", self.up_total as f64 / object),
            format!("{:.1}", self.up_long_tail as f64 / MIB),
            format!("{:.3}", self.down_total as f64 / object),
            self.peak_put.to_string(),
            self.peak_get.to_string(),
            (bench_hwm >> 10).to_string(),
            nodes_hwm_kib.map_or_else(|| "-".into(), |k| (k >> 10).to_string()),
            if self.checksum_ok { "ok" } else { "MISMATCH" }.to_string(),
        ]
    }
}

/// An object layer with its own metrics over shared nodes and metadata.
fn layer(
    stores: &[Arc<dyn NodeStore>],
    kind: &str,
    scheme: Scheme,
    limits: LimitsConfig,
    root: &RootKey,
    meta: Meta,
) -> (ObjectLayer, Arc<Metrics>) {
    let specs = stores
        .iter()
        .map(|store| NodeSpec {
            domain: format!("node:{}", store.id()),
            store: store.clone(),
            kind: kind.into(),
            label: None,
            offline: None,
        })
        .collect();
    let metrics = Arc::new(Metrics::new());
    let transfers = Transfers::new(root, specs, limits, None, metrics.clone());
    let storage = StorageConfig {
        scheme,
        ..StorageConfig::default()
    };
    (
        ObjectLayer::new(storage, root.clone(), transfers, meta),
        metrics,
    )
}

async fn measure(
    dir: &Path,
    stores: Vec<Arc<dyn NodeStore>>,
    kind: &str,
    scheme: Scheme,
    limits: LimitsConfig,
    mb: u64,
) -> Measured {
    let meta = Meta::open(&dir.join("meta.sqlite")).await.expect("meta");
    let root = RootKey::generate().expect("root key");
    let (put_layer, put_metrics) =
        layer(&stores, kind, scheme, limits.clone(), &root, meta.clone());
    let (get_layer, get_metrics) = layer(&stores, kind, scheme, limits, &root, meta);
    put_layer.create_bucket("bench").await.expect("bucket");
    let bytes = mb << 20;

    let mut input = blake3::Hasher::new();
    for i in 0..mb {
        input.update(&chunk(i));
    }
    let input = input.finalize();

    let (tx, rx) = mpsc::channel(4);
    let feeder = tokio::spawn(async move {
        for i in 0..mb {
            if tx.send(BodyEvent::Data(chunk(i))).await.is_err() {
                return;
            }
        }
        let _ = tx.send(BodyEvent::End(None)).await;
    });
    let t = Instant::now();
    let put = put_layer
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
    let put_time = t.elapsed();
    feeder.await.expect("feeder");
    assert_eq!(put.size, bytes);
    settle(&put_metrics).await;
    let up = put_metrics.snapshot();

    let t = Instant::now();
    let mut got = get_layer
        .get_object("bench", "obj", None)
        .await
        .expect("get");
    let mut output = blake3::Hasher::new();
    let mut n = 0u64;
    while let Some(data) = got.body.recv().await {
        let data = data.expect("get body");
        n += data.len() as u64;
        output.update(&data);
    }
    let get_time = t.elapsed();
    assert_eq!(n, bytes, "GET returned {n} bytes of {bytes}");
    let down = get_metrics.snapshot();
    let checksum_ok = output.finalize() == input;
    assert!(checksum_ok, "GET bytes differ from the PUT bytes");

    Measured {
        nodes: stores.len(),
        bytes,
        put: put_time,
        get: get_time,
        up_total: up.node_sent_total(),
        up_long_tail: up.node_sent_for(Reason::LongTail),
        down_total: down.node_received_total(),
        peak_put: up.peak_connections,
        peak_get: down.peak_connections,
        checksum_ok,
    }
}

/// Waits (at most a minute) until every node connection of `metrics` has closed, so the long
/// tail's late commits and cancellations are counted.
async fn settle(metrics: &Metrics) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if metrics
            .snapshot()
            .nodes
            .values()
            .all(|n| n.connections == 0)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("warning: PUT connections still open after 60 s; counting them as they are");
}

/// Chunk `i` of the object: 1 MiB of xorshift64* output seeded by `i`, so the input can be
/// hashed ahead and regenerated while feeding without being held.
fn chunk(i: u64) -> Bytes {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(CHUNK);
    while out.len() < CHUNK {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    Bytes::from(out)
}

/// VmHWM (peak resident set) in KiB from a `/proc/<pid>/status` file.
fn vm_hwm_kib(status: &str) -> Option<u64> {
    std::fs::read_to_string(status)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

/// One running `gateway node run` process; killed when dropped.
struct NodeProcess {
    child: Child,
    addr: String,
    dir: PathBuf,
    // Kept open: the node prints after its first line, and a closed pipe would kill it.
    _stdout: BufReader<ChildStdout>,
}

impl NodeProcess {
    fn start(dir: &Path) -> NodeProcess {
        let log = dir.with_extension("log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(["node", "run", "--listen", "127.0.0.1:0", "--reserve", "0"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("node log"))
            .spawn()
            .expect("spawn gateway node");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read node stdout");
        let Some(addr) = line.trim().strip_prefix("gateway node listening on ") else {
            let _ = child.kill();
            panic!(
                "node did not start: {line:?}; log: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        NodeProcess {
            addr: addr.to_string(),
            child,
            dir: dir.to_path_buf(),
            _stdout: stdout,
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
