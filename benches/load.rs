//! A load generator: concurrent S3 clients with a configurable mix and sizes, plus slow-loris
//! uploaders and idle connections, against a real `gateway run` process. Not a test: it prints
//! ops/s, latency p50/p99/max per operation, errors by S3 code and the gateway's peak RSS.
//!
//! `cargo bench --bench load` runs every scenario briefly; `LOAD_SCENARIO` picks one:
//!
//! - `mixed`: `LOAD_CLIENTS` (64) clients for `LOAD_SECS` (30) seconds, each looping over
//!   PUT/GET/LIST/DELETE of its own keys in the proportions `LOAD_MIX` (`put=40,get=40,
//!   list=10,delete=10`), object sizes log-uniform in `LOAD_MIN_KB`..`LOAD_MAX_KB`
//!   (4..16384).
//! - `puts`: `LOAD_PUTS` (32) PUTs of `LOAD_PUT_MB` (4) MiB started at once.
//! - `attack`: one normal client (4 MiB PUT then GET, in a loop) alone for `LOAD_SECS`, then
//!   beside `LOAD_LORIS` (10) slow-loris uploaders (2.5 MB of a PUT body, then one byte per
//!   second, reconnecting when cut) and `LOAD_IDLE` (2000) idle connections; prints the normal
//!   client's throughput in both phases and how the attackers' requests ended.
//! - `all` (the default): `puts`, then `mixed`, then `attack`.
//!
//! The gateway is the binary built with this bench, started on a fresh data directory with
//! the embedded default (six local directory nodes, 4/5/6/6) and `LOAD_CONFIG` appended to
//! that configuration when set (tables the default does not have, e.g.
//! `LOAD_CONFIG=$'[audit]\nenabled = false'`). The
//! clients never retry: every error is counted.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ACCESS_KEY: &str = "loadaccesskey";
const SECRET_KEY: &str = "loadsecretkeyloadsecretkey";
const BUCKET: &str = "load";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A `gateway run` child process on a temporary data directory.
struct GatewayProcess {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl GatewayProcess {
    fn start() -> GatewayProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        if let Ok(extra) = std::env::var("LOAD_CONFIG") {
            // What a first start would write, plus the extra settings.
            std::fs::create_dir_all(&data).expect("data dir");
            let text = format!(
                "{}\n{extra}\n",
                gateway::config::Config::embedded_default_text()
            );
            std::fs::write(data.join("config.toml"), text).expect("config");
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
        cmd.args(["run", "--data-dir"])
            .arg(&data)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "off"])
            .env("GATEWAY_ACCESS_KEY", ACCESS_KEY)
            .env("GATEWAY_SECRET_KEY", SECRET_KEY)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("gateway.log")).expect("log"),
            ));
        let mut child = cmd.spawn().expect("start gateway");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let Some(Ok(line)) = lines.next() else {
                panic!(
                    "gateway exited before listening; log: {}",
                    dir.path().join("gateway.log").display()
                );
            };
            if let Some(a) = line.trim().strip_prefix("gateway listening on http://") {
                break a.to_string();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        GatewayProcess {
            child,
            addr,
            _dir: dir,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The gateway's peak resident set so far, in MiB.
    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// Current resident set, in MiB.
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client(endpoint: &str) -> Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "load"))
        .force_path_style(true)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(conf)
}

/// Latencies and errors, per operation.
#[derive(Default)]
struct Stats {
    latencies: BTreeMap<&'static str, Vec<Duration>>,
    errors: BTreeMap<String, u64>,
    bytes: u64,
}

impl Stats {
    fn ok(&mut self, op: &'static str, d: Duration) {
        self.latencies.entry(op).or_default().push(d);
    }

    fn err(&mut self, op: &'static str, code: String) {
        *self.errors.entry(format!("{op} {code}")).or_default() += 1;
    }

    fn merge(&mut self, other: Stats) {
        for (op, mut l) in other.latencies {
            self.latencies.entry(op).or_default().append(&mut l);
        }
        for (k, n) in other.errors {
            *self.errors.entry(k).or_default() += n;
        }
        self.bytes += other.bytes;
    }

    fn print(&mut self, secs: f64) {
        let ops: usize = self.latencies.values().map(Vec::len).sum();
        let errors: u64 = self.errors.values().sum();
        println!(
            "  {:.1} ops/s ({ops} ok, {errors} errors in {secs:.1} s), {:.1} MB/s of bodies",
            ops as f64 / secs,
            self.bytes as f64 / secs / 1e6
        );
        for (op, l) in &mut self.latencies {
            l.sort_unstable();
            let pct = |p: f64| l[((l.len() as f64 * p) as usize).min(l.len() - 1)];
            println!(
                "  {op:<7} n={:<6} p50 {:>8.1} ms  p99 {:>8.1} ms  max {:>8.1} ms",
                l.len(),
                ms(pct(0.5)),
                ms(pct(0.99)),
                ms(*l.last().unwrap_or(&Duration::ZERO))
            );
        }
        for (k, n) in &self.errors {
            println!("  error {k}: {n}");
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn code_of<E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug>(
    e: &aws_sdk_s3::error::SdkError<E>,
) -> String {
    match e {
        aws_sdk_s3::error::SdkError::ServiceError(s) => s
            .err()
            .code()
            .map(str::to_string)
            .unwrap_or_else(|| format!("HTTP {}", s.raw().status().as_u16())),
        aws_sdk_s3::error::SdkError::TimeoutError(_) => "client timeout".into(),
        aws_sdk_s3::error::SdkError::DispatchFailure(d) => {
            format!(
                "dispatch failure ({})",
                if d.is_io() { "io" } else { "other" }
            )
        }
        other => format!("{other:?}").chars().take(60).collect(),
    }
}

/// A small xorshift generator: sizes and choices, reproducible per client.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn body(len: usize) -> Bytes {
    static DATA: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    let data = DATA.get_or_init(|| {
        let mut r = Rng(0x9e3779b97f4a7c15);
        let mut v = Vec::with_capacity(64 << 20);
        while v.len() < 64 << 20 {
            v.extend_from_slice(&r.next().to_le_bytes());
        }
        Bytes::from(v)
    });
    data.slice(0..len.min(data.len()))
}

async fn put(c: &Client, key: &str, len: usize) -> Result<(), String> {
    c.put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(body(len)))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| code_of(&e))
}

async fn get(c: &Client, key: &str) -> Result<usize, String> {
    let out = c
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .map_err(|e| code_of(&e))?;
    let data = out.body.collect().await.map_err(|e| format!("body: {e}"))?;
    Ok(data.into_bytes().len())
}

struct Mix {
    put: f64,
    get: f64,
    list: f64,
}

fn mix() -> Mix {
    let spec =
        std::env::var("LOAD_MIX").unwrap_or_else(|_| "put=40,get=40,list=10,delete=10".into());
    let mut w = BTreeMap::new();
    for part in spec.split(',') {
        if let Some((k, v)) = part.split_once('=') {
            w.insert(k.trim().to_string(), v.trim().parse::<f64>().unwrap_or(0.0));
        }
    }
    let total: f64 = w.values().sum::<f64>().max(1.0);
    let f = |k: &str| w.get(k).copied().unwrap_or(0.0) / total;
    Mix {
        put: f("put"),
        get: f("get"),
        list: f("list"),
    }
}

async fn mixed(gw: &GatewayProcess) {
    let clients = env_usize("LOAD_CLIENTS", 64);
    let secs = env_usize("LOAD_SECS", 30) as u64;
    let (min_kb, max_kb) = (env_usize("LOAD_MIN_KB", 4), env_usize("LOAD_MAX_KB", 16384));
    let m = mix();
    println!(
        "mixed: {clients} clients for {secs} s, {min_kb} KiB..{max_kb} KiB, put {:.0}% get {:.0}% list {:.0}% delete {:.0}%",
        m.put * 100.0,
        m.get * 100.0,
        m.list * 100.0,
        (1.0 - m.put - m.get - m.list) * 100.0
    );
    let end = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for id in 0..clients {
        let c = client(&gw.endpoint());
        let m = Mix { ..mix() };
        set.spawn(async move {
            let mut s = Stats::default();
            let mut rng =
                Rng(0x2545f4914f6cdd1d ^ (id as u64 + 1).wrapping_mul(0x9e3779b97f4a7c15));
            let mut keys: Vec<(String, usize)> = Vec::new();
            let mut n = 0u64;
            while Instant::now() < end {
                let r = rng.unit();
                let t = Instant::now();
                if r < m.put || keys.is_empty() {
                    let (lo, hi) = ((min_kb as f64).ln(), (max_kb as f64).ln());
                    let len = ((lo + (hi - lo) * rng.unit()).exp() * 1024.0) as usize;
                    let key = format!("c{id}/o{n}");
                    n += 1;
                    match put(&c, &key, len).await {
                        Ok(()) => {
                            s.ok("PUT", t.elapsed());
                            s.bytes += len as u64;
                            keys.push((key, len));
                        }
                        Err(e) => s.err("PUT", e),
                    }
                } else if r < m.put + m.get {
                    let (key, len) = keys[(rng.next() as usize) % keys.len()].clone();
                    match get(&c, &key).await {
                        Ok(got) if got == len => {
                            s.ok("GET", t.elapsed());
                            s.bytes += len as u64;
                        }
                        Ok(got) => s.err("GET", format!("short body {got} of {len}")),
                        Err(e) => s.err("GET", e),
                    }
                } else if r < m.put + m.get + m.list {
                    match c
                        .list_objects_v2()
                        .bucket(BUCKET)
                        .prefix(format!("c{id}/"))
                        .send()
                        .await
                    {
                        Ok(_) => s.ok("LIST", t.elapsed()),
                        Err(e) => s.err("LIST", code_of(&e)),
                    }
                } else {
                    let (key, _) = keys.swap_remove((rng.next() as usize) % keys.len());
                    match c.delete_object().bucket(BUCKET).key(&key).send().await {
                        Ok(_) => s.ok("DELETE", t.elapsed()),
                        Err(e) => s.err("DELETE", code_of(&e)),
                    }
                }
            }
            s
        });
    }
    let rss = watch_rss(gw);
    let mut total = Stats::default();
    while let Some(r) = set.join_next().await {
        total.merge(r.expect("client task"));
    }
    rss.stop();
    total.print(started.elapsed().as_secs_f64());
    println!("  gateway peak RSS {:.0} MiB", gw.peak_rss_mib());
}

/// Samples the gateway's RSS while a scenario runs (VmHWM is the peak over the process's life;
/// this also tells the peak of each scenario).
struct RssWatch {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
}

impl RssWatch {
    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        println!(
            "  gateway RSS peak during the scenario {} MiB",
            self.peak.load(Ordering::Relaxed)
        );
    }
}

fn watch_rss(gw: &GatewayProcess) -> RssWatch {
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let pid = gw.child.id();
    let (s, p) = (stop.clone(), peak.clone());
    std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            if let Some(kb) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                p.fetch_max(kb / 1024, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    RssWatch { stop, peak }
}

async fn puts(gw: &GatewayProcess, count: usize, mb: usize) {
    println!("puts: {count} concurrent PUTs of {mb} MiB");
    let c = client(&gw.endpoint());
    let started = Instant::now();
    let rss = watch_rss(gw);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..count {
        let c = c.clone();
        set.spawn(async move {
            let mut s = Stats::default();
            let t = Instant::now();
            match put(&c, &format!("puts/{mb}m-{i}"), mb << 20).await {
                Ok(()) => {
                    s.ok("PUT", t.elapsed());
                    s.bytes += (mb << 20) as u64;
                }
                Err(e) => s.err("PUT", e),
            }
            s
        });
    }
    let mut total = Stats::default();
    while let Some(r) = set.join_next().await {
        total.merge(r.expect("put task"));
    }
    rss.stop();
    total.print(started.elapsed().as_secs_f64());
    println!("  gateway peak RSS {:.0} MiB", gw.peak_rss_mib());
}

/// The normal client of the attack scenario: PUT then GET of 4 MiB, until `end`.
async fn normal_client(c: &Client, end: Instant, tag: &str) -> Stats {
    let mut s = Stats::default();
    let mut i = 0;
    while Instant::now() < end {
        let key = format!("normal/{tag}-{i}");
        i += 1;
        let t = Instant::now();
        match put(c, &key, 4 << 20).await {
            Ok(()) => {
                s.ok("PUT", t.elapsed());
                s.bytes += 4 << 20;
            }
            Err(e) => {
                s.err("PUT", e);
                continue;
            }
        }
        let t = Instant::now();
        match get(c, &key).await {
            Ok(n) => {
                s.ok("GET", t.elapsed());
                s.bytes += n as u64;
            }
            Err(e) => s.err("GET", e),
        }
    }
    s
}

/// How the attackers' requests ended.
#[derive(Default)]
struct AttackLog {
    /// Status line or failure, with the time the request lasted.
    ends: Vec<(String, Duration)>,
}

/// One slow-loris uploader: a presigned PUT declaring 8 MiB, 2.5 MB sent at once, then one
/// byte per second until the gateway ends the request; then again, until `end`.
async fn slow_loris(addr: String, url: String, end: Instant, log: Arc<Mutex<AttackLog>>) {
    let path = url
        .strip_prefix("http://")
        .and_then(|u| u.find('/').map(|i| u[i..].to_string()))
        .unwrap_or_default();
    while Instant::now() < end {
        let t = Instant::now();
        let outcome = async {
            let mut s = TcpStream::connect(&addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let head = format!(
                "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
                8 << 20
            );
            s.write_all(head.as_bytes())
                .await
                .map_err(|e| format!("write: {e}"))?;
            let first = body(2_500_000);
            s.write_all(&first)
                .await
                .map_err(|e| format!("write: {e}"))?;
            let mut buf = vec![0u8; 4096];
            loop {
                if Instant::now() >= end {
                    return Ok::<String, String>("still open at the end".into());
                }
                tokio::select! {
                    r = s.read(&mut buf) => {
                        return match r {
                            Ok(0) => Err("closed without a response".into()),
                            Ok(n) => Ok(response_summary(&buf[..n])),
                            Err(e) => Err(format!("read: {e}")),
                        };
                    }
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {
                        if let Err(e) = s.write_all(b"x").await {
                            // The gateway may have answered and closed: read what it said.
                            let n = s.read(&mut buf).await.unwrap_or(0);
                            return if n > 0 {
                                Ok(response_summary(&buf[..n]))
                            } else {
                                Err(format!("write: {e}"))
                            };
                        }
                    }
                }
            }
        }
        .await;
        let what = outcome.unwrap_or_else(|e| e);
        log.lock().expect("log").ends.push((what, t.elapsed()));
    }
}

/// "HTTP/1.1 400 Bad Request <Code>RequestTimeout</Code>" → "400 RequestTimeout".
fn response_summary(b: &[u8]) -> String {
    let text = String::from_utf8_lossy(b);
    let status = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?")
        .to_string();
    let code = text
        .split("<Code>")
        .nth(1)
        .and_then(|r| r.split("</Code>").next())
        .unwrap_or("");
    format!("{status} {code}").trim().to_string()
}

async fn attack(gw: &GatewayProcess) {
    let secs = env_usize("LOAD_SECS", 30) as u64;
    let loris = env_usize("LOAD_LORIS", 10);
    let idle = env_usize("LOAD_IDLE", 2000);
    println!("attack: a normal client alone for {secs} s, then beside {loris} slow-loris uploaders and {idle} idle connections");
    let c = client(&gw.endpoint());
    let end = Instant::now() + Duration::from_secs(secs);
    let t = Instant::now();
    let mut alone = normal_client(&c, end, "alone").await;
    let alone_secs = t.elapsed().as_secs_f64();
    println!("  alone:");
    alone.print(alone_secs);

    let end = Instant::now() + Duration::from_secs(secs);
    let log = Arc::new(Mutex::new(AttackLog::default()));
    let mut attackers = tokio::task::JoinSet::new();
    for i in 0..loris {
        let req = c
            .put_object()
            .bucket(BUCKET)
            .key(format!("loris/{i}"))
            .content_length(8 << 20)
            .presigned(PresigningConfig::expires_in(Duration::from_secs(3600)).expect("presign"))
            .await
            .expect("presign");
        attackers.spawn(slow_loris(
            gw.addr.clone(),
            req.uri().to_string(),
            end,
            log.clone(),
        ));
    }
    // Idle connections: connected, nothing sent (half of them), or half a request head.
    let idle_closed = Arc::new(AtomicU64::new(0));
    let idle_open = Arc::new(AtomicU64::new(0));
    let idle_first_close = Arc::new(Mutex::new(None::<Duration>));
    for i in 0..idle {
        let (addr, closed, open, first) = (
            gw.addr.clone(),
            idle_closed.clone(),
            idle_open.clone(),
            idle_first_close.clone(),
        );
        attackers.spawn(async move {
            let t = Instant::now();
            let Ok(mut s) = TcpStream::connect(&addr).await else {
                return;
            };
            open.fetch_add(1, Ordering::Relaxed);
            if i % 2 == 1 {
                let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await;
            }
            let mut buf = [0u8; 1024];
            let left = end.saturating_duration_since(Instant::now());
            if let Ok(r) = tokio::time::timeout(left, s.read(&mut buf)).await {
                if matches!(r, Ok(_) | Err(_)) {
                    closed.fetch_add(1, Ordering::Relaxed);
                    let mut f = first.lock().expect("first");
                    if f.is_none() {
                        *f = Some(t.elapsed());
                    }
                }
            }
        });
    }
    let rss = watch_rss(gw);
    let t = Instant::now();
    let mut beside = normal_client(&c, end, "beside").await;
    let beside_secs = t.elapsed().as_secs_f64();
    while attackers.join_next().await.is_some() {}
    rss.stop();
    println!("  beside the attackers:");
    beside.print(beside_secs);
    let ratio = (beside.bytes as f64 / beside_secs) / (alone.bytes as f64 / alone_secs).max(1.0);
    println!(
        "  normal client throughput beside the attackers: {:.0}% of alone",
        ratio * 100.0
    );
    let log = log.lock().expect("log");
    let mut ends: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for (what, d) in &log.ends {
        ends.entry(what.as_str()).or_default().push(*d);
    }
    for (what, ds) in ends {
        let max = ds.iter().max().copied().unwrap_or_default();
        println!(
            "  slow-loris requests ended \"{what}\": {} (longest {:.1} s)",
            ds.len(),
            max.as_secs_f64()
        );
    }
    println!(
        "  idle connections: {} opened, {} closed by the gateway within {secs} s (first after {:?})",
        idle_open.load(Ordering::Relaxed),
        idle_closed.load(Ordering::Relaxed),
        idle_first_close.lock().expect("first").map(|d| format!("{:.1} s", d.as_secs_f64()))
    );
    println!(
        "  gateway peak RSS {:.0} MiB, now {:.0} MiB",
        gw.peak_rss_mib(),
        gw.rss_mib()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let gw = GatewayProcess::start();
        client(&gw.endpoint())
            .create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .expect("create bucket");
        let scenario = std::env::var("LOAD_SCENARIO").unwrap_or_else(|_| "all".into());
        if scenario == "puts" || scenario == "all" {
            puts(&gw, env_usize("LOAD_PUTS", 32), env_usize("LOAD_PUT_MB", 4)).await;
        }
        if scenario == "mixed" || scenario == "all" {
            mixed(&gw).await;
        }
        if scenario == "attack" || scenario == "all" {
            attack(&gw).await;
        }
    });
}
