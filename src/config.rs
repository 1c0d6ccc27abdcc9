//! Configuration: the TOML file, its defaults, and validation with one-line errors.
//!
//! Relative paths in the file are resolved against the data directory. Every validation error
//! names the offending field and the reason ([`ConfigError`]); the binary prints it on one line
//! and exits with status 2.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::crypto::CipherSuite;
use crate::erasure::Scheme;
use crate::nodes::protocol::NodeToken;
use crate::nodes::remote::{validate_address, DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT};
use crate::tls::TlsFiles;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7777";
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:7778";
pub const CONFIG_FILE: &str = "config.toml";
pub const KEY_FILE: &str = "root.key";
pub const CREDENTIALS_FILE: &str = "credentials.toml";
pub const METADATA_FILE: &str = "metadata.sqlite";

/// A validation or parse error naming the field at fault.
#[derive(Debug, thiserror::Error)]
#[error("config error: {field}: {reason}")]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The file as written by users (all optional; defaults fill in).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    region: Option<String>,
    key_file: Option<PathBuf>,
    credentials_file: Option<PathBuf>,
    admin_listen: Option<String>,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    metadata: RawMetadata,
    #[serde(default)]
    repair: RawRepair,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    nodes: Vec<RawNode>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    max_client_connections: Option<usize>,
    header_timeout: Option<String>,
    body_timeout: Option<String>,
    body_min_rate: Option<ByteSize>,
    drain_timeout: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    enabled: Option<bool>,
    interval: Option<String>,
    rate: Option<ByteSize>,
    requests: Option<f64>,
    samples: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepair {
    enabled: Option<bool>,
    interval: Option<String>,
    concurrency: Option<usize>,
    rate: Option<ByteSize>,
    offline_after: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetadata {
    replication: Option<String>,
    max_delay: Option<String>,
    snapshot_interval: Option<String>,
    sync_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    scheme: Option<String>,
    segment_size: Option<ByteSize>,
    inline_limit: Option<ByteSize>,
    block_size: Option<ByteSize>,
    chunk_size: Option<ByteSize>,
    cipher: Option<String>,
    gc_grace: Option<String>,
    orphan_grace: Option<String>,
    orphan_scan_interval: Option<String>,
    orphan_max_share: Option<f64>,
    max_pieces_per_domain: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_connections: Option<usize>,
    max_connections_per_node: Option<usize>,
    upload_rate: Option<ByteSize>,
    download_rate: Option<ByteSize>,
    download_extra: Option<usize>,
    stall_timeout: Option<String>,
    long_tail_grace: Option<String>,
    queue_depth: Option<usize>,
    queue_wait: Option<String>,
    memory: Option<ByteSize>,
}

/// One `[[nodes]]` entry: the settings every kind has, and the kind's own.
#[derive(Debug, Deserialize)]
struct RawNode {
    id: String,
    domain: Option<String>,
    #[serde(default)]
    drain: bool,
    #[serde(flatten, deserialize_with = "dir_unless_told")]
    kind: RawNodeKind,
}

/// A node kind's own settings, tagged by `kind`; each kind refuses the others' settings.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum RawNodeKind {
    Dir(RawDirNode),
    Remote(RawRemoteNode),
    S3(RawS3Node),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirNode {
    path: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemoteNode {
    address: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    #[serde(flatten)]
    connection: RawConnection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawS3Node {
    endpoint: Option<String>,
    region: Option<String>,
    bucket: Option<String>,
    prefix: Option<String>,
    access_key: Option<String>,
    secret_key: Option<String>,
    secret_key_file: Option<PathBuf>,
    #[serde(flatten)]
    connection: RawConnection,
}

/// How the gateway connects to a node over the network (kinds `remote` and `s3`).
#[derive(Debug, Deserialize)]
struct RawConnection {
    connect_timeout: Option<DurationText>,
    read_timeout: Option<DurationText>,
    ca_file: Option<PathBuf>,
}

/// `kind` is optional in the file: a node without one is a directory.
fn dir_unless_told<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RawNodeKind, D::Error> {
    let mut table = toml::Table::deserialize(d)?;
    let kind = table
        .entry("kind")
        .or_insert_with(|| "dir".into())
        .to_string();
    RawNodeKind::deserialize(toml::Value::Table(table))
        .map_err(|e| serde::de::Error::custom(format!("a node of kind {kind}: {}", e.message())))
}

/// A size: an integer number of bytes or a string like `"64MiB"`, `"4 KiB"`, `"1GB"`.
#[derive(Debug, Clone, Copy)]
struct ByteSize(u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Str(s) => parse_size(&s)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// A duration: an integer number of seconds or a string like `"500ms"`, `"5s"`, `"2m"`.
#[derive(Debug, Clone, Copy)]
struct DurationText(Duration);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(DurationText(Duration::from_secs(n))),
            Raw::Str(s) => parse_duration(&s)
                .map(DurationText)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `"500ms"`, `"5s"`, `"2m"` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (expected e.g. 5 or \"500ms\")"))?;
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" | "min" => n
            .checked_mul(60)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{s:?} is too long")),
        "h" => n
            .checked_mul(3600)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{s:?} is too long")),
        other => Err(format!(
            "unknown duration unit {other:?} in {s:?} (ms, s, m, h)"
        )),
    }
}

/// Parses `"64MiB"`-style sizes (B, KiB, MiB, GiB, KB, MB, GB; case-insensitive).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (expected e.g. 65536 or \"64MiB\")"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(format!("unknown size unit {other:?} in {s:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    Dir {
        path: PathBuf,
    },
    /// A `gateway node` server.
    Remote(RemoteNodeConfig),
    /// A bucket on an S3-compatible server.
    S3(S3NodeConfig),
}

#[derive(Clone, PartialEq, Eq)]
pub struct S3NodeConfig {
    /// `http(s)://host[:port]`, validated.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub prefix: String,
    pub access_key: String,
    pub secret_key: S3Secret,
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

impl std::fmt::Debug for S3NodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3NodeConfig")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("access_key", &self.access_key)
            .field("secret_key", &self.secret_key)
            .finish_non_exhaustive()
    }
}

/// Where an S3 node's secret key comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum S3Secret {
    Inline(String),
    /// A file holding the secret (trailing whitespace ignored), read when the node is opened.
    File(PathBuf),
}

impl std::fmt::Debug for S3Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            S3Secret::Inline(_) => f.write_str("Inline(<redacted>)"),
            S3Secret::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteNodeConfig {
    /// `http://host:port`, validated.
    pub address: String,
    pub token: RemoteToken,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// PEM certificates to trust for an `https://` address instead of the system roots.
    pub ca_file: Option<PathBuf>,
}

/// Where a remote node's token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteToken {
    Inline(NodeToken),
    /// A token file (resolved against the data directory), read when the node is opened.
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    pub id: String,
    pub kind: NodeKind,
    /// Failure domain (host, rack, zone...); a node without one is a domain of its own.
    pub domain: Option<String>,
    /// Being drained: it gets no new pieces, and repair moves those it holds to the other
    /// nodes (before the node is removed from the configuration).
    pub drain: bool,
}

impl NodeConfig {
    /// The failure domain this node counts against.
    pub fn failure_domain(&self) -> String {
        match &self.domain {
            Some(d) => format!("domain:{d}"),
            None => format!("node:{}", self.id),
        }
    }
}

/// Limits on the traffic between the gateway and its nodes, shared by every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Piece transfers (connections) in flight to all nodes together.
    pub max_connections: usize,
    /// Piece transfers in flight to one node.
    pub max_connections_per_node: usize,
    /// Upstream bytes per second to nodes, all uploads together; `None` is unlimited.
    pub upload_rate: Option<u64>,
    /// Downstream bytes per second from nodes; `None` is unlimited.
    pub download_rate: Option<u64>,
    /// Pieces a download fetches beyond the `minimum` it needs, to ride over slow nodes.
    pub download_extra: usize,
    /// A piece read that has not finished after this long gets a backup read from another node.
    pub stall_timeout: Duration,
    /// Once `success` pieces of a segment have taken their data, how long the encoder waits for
    /// a lagging piece before cancelling it as long tail.
    pub long_tail_grace: Duration,
    /// Requests waiting for memory or node connections at once (a fair queue); beyond it, new
    /// ones are answered `503 SlowDown` at once.
    pub queue_depth: usize,
    /// How long the memory queue may stand still (no reservation granted or given back), or
    /// a request wait for a node connection slot, before `503 SlowDown`.
    pub queue_wait: Duration,
    /// Memory for the buffers of transfers in progress (an upload's batch being encoded, its
    /// pieces' queues, what is kept to move a piece to a spare node; a download's group of
    /// stripes and plaintext frames): each reserves its worst case before it buffers
    /// anything, waiting in the queue above when the budget is spent.
    pub memory: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: 64,
            max_connections_per_node: 8,
            upload_rate: None,
            download_rate: None,
            download_extra: 0,
            stall_timeout: Duration::from_secs(5),
            long_tail_grace: Duration::from_secs(2),
            queue_depth: 1024,
            queue_wait: Duration::from_secs(30),
            memory: 256 << 20,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    pub scheme: Scheme,
    /// Plaintext bytes per segment; a multiple of `block_size`.
    pub segment_size: u64,
    /// Objects up to this size are stored encrypted in the metadata database.
    pub inline_limit: u64,
    /// Plaintext bytes per AEAD block.
    pub block_size: u32,
    /// Largest chunk a piece holds per stripe.
    pub chunk_size: usize,
    pub cipher: CipherSuite,
    /// Replaced or deleted bodies keep their pieces at least this long, so a read that
    /// began just before the replacement still finds them.
    pub gc_grace: std::time::Duration,
    /// A piece on a node that no metadata references (an orphan: a crashed or failed upload)
    /// is deleted once it has been seen as an orphan for this long; `None` ("off") only
    /// reports orphans.
    pub orphan_grace: Option<std::time::Duration>,
    /// How often every node's pieces are listed to find orphans.
    pub orphan_scan_interval: std::time::Duration,
    /// Safety valve: no orphan of a node is deleted while orphans are more than this share of
    /// the data pieces the node lists (metadata older than the nodes, a node directory or id
    /// mixed up). 1 disables the valve.
    pub orphan_max_share: f64,
    /// Most pieces of one segment in one failure domain; `None` is no limit.
    pub max_pieces_per_domain: Option<u16>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            scheme: Scheme::default(),
            segment_size: 64 << 20,
            inline_limit: 4096,
            block_size: 64 << 10,
            chunk_size: 64 << 10,
            cipher: CipherSuite::Aes256Gcm,
            gc_grace: std::time::Duration::from_secs(60),
            orphan_grace: Some(std::time::Duration::from_secs(24 * 3600)),
            orphan_scan_interval: std::time::Duration::from_secs(6 * 3600),
            orphan_max_share: 0.5,
            max_pieces_per_domain: None,
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub region: String,
    pub key_file: PathBuf,
    pub credentials_file: PathBuf,
    pub metadata_file: PathBuf,
    pub storage: StorageConfig,
    pub limits: LimitsConfig,
    pub nodes: Vec<NodeConfig>,
    /// The admin listener (metrics, stats); `None` when disabled with `admin_listen = ""`.
    pub admin_listen: Option<SocketAddr>,
    pub metadata: MetadataConfig,
    pub repair: RepairConfig,
    pub audit: AuditConfig,
    pub server: ServerConfig,
}

/// `[server]`: what the S3 listener gives clients, and how long they may take.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Client connections open at once. At the cap, idle keep-alive connections are closed
    /// to make room; when none is idle, new connections wait in the listen backlog.
    pub max_client_connections: usize,
    /// A request's line and headers must arrive within this long of the connection opening
    /// or of the previous response; it is also how long a keep-alive connection may idle.
    pub header_timeout: Duration,
    /// The window over which a request body's rate is measured: a body that brings fewer than
    /// `body_min_rate` bytes per second over one (counting only the time the gateway waits
    /// for the client) ends with `RequestTimeout`. Responses alike: a client that takes fewer
    /// over a window in which the gateway waits for it has its connection closed.
    pub body_timeout: Duration,
    /// Bytes per second a request body (or a response) must average over `body_timeout`; 0
    /// only ends those that move nothing for a whole window.
    pub body_min_rate: u64,
    /// At shutdown (SIGTERM, Ctrl-C), how long requests in flight may take to finish before
    /// their connections are cut. Acknowledged writes are durable whatever happens.
    pub drain_timeout: Duration,
    /// Serve S3 over TLS only (https://) with this certificate chain and key (PEM); re-read on
    /// SIGHUP.
    pub tls: Option<TlsFiles>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_client_connections: 1024,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(20),
            body_min_rate: 1024,
            drain_timeout: Duration::from_secs(30),
            tls: None,
        }
    }
}

fn server_from_raw(
    raw: RawServer,
    resolve: impl Fn(PathBuf) -> PathBuf,
) -> Result<ServerConfig, ConfigError> {
    let d = ServerConfig::default();
    let duration = |name: &str, v: Option<String>, default: Duration| match v {
        None => Ok(default),
        Some(t) => match parse_duration(&t) {
            Ok(d) if d >= Duration::from_secs(1) => Ok(d),
            Ok(_) => Err(ConfigError::new(
                format!("server.{name}"),
                "must be at least 1s",
            )),
            Err(r) => Err(ConfigError::new(format!("server.{name}"), r)),
        },
    };
    let count = |name: &str, v: Option<usize>, default: usize| match v {
        Some(0) => Err(ConfigError::new(
            format!("server.{name}"),
            "must be at least 1",
        )),
        v => Ok(v.unwrap_or(default)),
    };
    Ok(ServerConfig {
        max_client_connections: count(
            "max_client_connections",
            raw.max_client_connections,
            d.max_client_connections,
        )?,
        header_timeout: duration("header_timeout", raw.header_timeout, d.header_timeout)?,
        body_timeout: duration("body_timeout", raw.body_timeout, d.body_timeout)?,
        body_min_rate: raw.body_min_rate.map_or(d.body_min_rate, |b| b.0),
        drain_timeout: duration("drain_timeout", raw.drain_timeout, d.drain_timeout)?,
        tls: match (raw.tls_cert, raw.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: resolve(cert),
                key: resolve(key),
            }),
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "server.tls_key",
                    "missing: tls_cert needs its private key",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "server.tls_cert",
                    "missing: tls_key needs its certificate",
                ))
            }
        },
    })
}

/// `[repair]`: the background repair of degraded segments (see `object::repair`).
#[derive(Debug, Clone, PartialEq)]
pub struct RepairConfig {
    /// Run the background repair loop in `gateway run` (`gateway repair` runs regardless).
    pub enabled: bool,
    /// How often the loop looks for work when it found none (it also wakes when reads find
    /// faults).
    pub interval: Duration,
    /// Segments repaired at once.
    pub concurrency: usize,
    /// Bytes per second repair may send to nodes (reads are paced the same); `None` is
    /// unlimited (the `[limits]` rates still apply).
    pub rate: Option<u64>,
    /// A node unreachable for this long has its pieces rebuilt elsewhere.
    pub offline_after: Duration,
}

impl Default for RepairConfig {
    fn default() -> Self {
        RepairConfig {
            enabled: true,
            interval: Duration::from_secs(60),
            concurrency: 2,
            rate: None,
            offline_after: Duration::from_secs(3600),
        }
    }
}

fn repair_from_raw(raw: RawRepair) -> Result<RepairConfig, ConfigError> {
    let d = RepairConfig::default();
    let duration = |field: &str, v: Option<String>, default: Duration| match v {
        None => Ok(default),
        Some(t) => parse_duration(&t).map_err(|r| ConfigError::new(field, r)),
    };
    let concurrency = raw.concurrency.unwrap_or(d.concurrency);
    if concurrency == 0 {
        return Err(ConfigError::new("repair.concurrency", "must be at least 1"));
    }
    let rate = raw.rate.map(|b| b.0).filter(|&r| r > 0);
    Ok(RepairConfig {
        enabled: raw.enabled.unwrap_or(d.enabled),
        interval: duration("repair.interval", raw.interval, d.interval)?,
        concurrency,
        rate,
        offline_after: duration("repair.offline_after", raw.offline_after, d.offline_after)?,
    })
}

/// `[audit]`: the background audit of the nodes against the metadata (see `object::audit`).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditConfig {
    /// Run the background audit in `gateway run`.
    pub enabled: bool,
    /// The pause between two passes (the first one starts a few minutes after start).
    pub interval: Duration,
    /// Piece bytes per second the audit may read from all nodes together; `None` is
    /// unlimited (the `[limits]` download rate still applies).
    pub rate: Option<u64>,
    /// Node requests per second (listing pages, re-checks, sampled reads), all nodes
    /// together; `None` is unlimited.
    pub requests: Option<f64>,
    /// Segments whose pieces are read and verified per pass (0: listings only).
    pub samples: u64,
}

impl Default for AuditConfig {
    /// Gentle: at most 1 MiB/s and 5 requests/s, a thousand sampled segments an hour.
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            interval: Duration::from_secs(3600),
            rate: Some(1 << 20),
            requests: Some(5.0),
            samples: 1000,
        }
    }
}

fn audit_from_raw(raw: RawAudit) -> Result<AuditConfig, ConfigError> {
    let d = AuditConfig::default();
    let interval = match raw.interval {
        None => d.interval,
        Some(t) => parse_duration(&t).map_err(|r| ConfigError::new("audit.interval", r))?,
    };
    if interval.is_zero() {
        return Err(ConfigError::new("audit.interval", "must be more than 0"));
    }
    let rate = match raw.rate {
        None => d.rate,
        Some(ByteSize(0)) => None,
        Some(ByteSize(r)) if r < 64 << 10 => {
            return Err(ConfigError::new(
                "audit.rate",
                "must be at least 64KiB (per second), or 0 for unlimited",
            ))
        }
        Some(ByteSize(r)) => Some(r),
    };
    let requests = match raw.requests {
        None => d.requests,
        Some(0.0) => None,
        Some(r) if r.is_finite() && r >= 0.1 => Some(r),
        Some(r) => {
            let reason = format!("{r} is not at least 0.1 (per second), or 0 for unlimited");
            return Err(ConfigError::new("audit.requests", reason));
        }
    };
    Ok(AuditConfig {
        enabled: raw.enabled.unwrap_or(d.enabled),
        interval,
        rate,
        requests,
        samples: raw.samples.unwrap_or(d.samples),
    })
}

/// When a committed metadata change must be on the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicationMode {
    /// Acknowledge at once; ship within `max_delay` (the recovery point).
    Async,
    /// Acknowledge a write only once its change is durable on the nodes (recovery point 0).
    Sync,
    /// Never ship: the data directory is the only copy of the metadata.
    Off,
}

/// `[metadata]`: replication of the metadata to the nodes (see `replication`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataConfig {
    pub replication: ReplicationMode,
    /// Async mode: a committed change reaches the nodes within about this long.
    pub max_delay: Duration,
    /// A snapshot is taken at least this often while the metadata changes (and sooner when
    /// the log since the last one outgrows it).
    pub snapshot_interval: Duration,
    /// Sync mode: a write whose change is not on the nodes after this long fails (503); its
    /// change stays committed and is shipped when the nodes return.
    pub sync_timeout: Duration,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            replication: ReplicationMode::Async,
            max_delay: Duration::from_secs(1),
            snapshot_interval: Duration::from_secs(3600),
            sync_timeout: Duration::from_secs(30),
        }
    }
}

fn metadata_from_raw(raw: RawMetadata) -> Result<MetadataConfig, ConfigError> {
    let d = MetadataConfig::default();
    let replication = match raw.replication.as_deref() {
        None | Some("async") => ReplicationMode::Async,
        Some("sync") => ReplicationMode::Sync,
        Some("off") => ReplicationMode::Off,
        Some(other) => {
            return Err(ConfigError::new(
                "metadata.replication",
                format!("{other:?} is not \"async\", \"sync\" or \"off\""),
            ))
        }
    };
    let duration = |field: &str, v: Option<String>, default: Duration, min: Duration| {
        let value = match v {
            None => default,
            Some(t) => parse_duration(&t).map_err(|r| ConfigError::new(field, r))?,
        };
        if value < min {
            return Err(ConfigError::new(
                field,
                format!("must be at least {} ms", min.as_millis()),
            ));
        }
        Ok(value)
    };
    Ok(MetadataConfig {
        replication,
        max_delay: duration(
            "metadata.max_delay",
            raw.max_delay,
            d.max_delay,
            Duration::from_millis(10),
        )?,
        snapshot_interval: duration(
            "metadata.snapshot_interval",
            raw.snapshot_interval,
            d.snapshot_interval,
            Duration::from_secs(1),
        )?,
        sync_timeout: duration(
            "metadata.sync_timeout",
            raw.sync_timeout,
            d.sync_timeout,
            Duration::from_millis(100),
        )?,
    })
}

impl Config {
    /// Parses and validates a config file's text. `data_dir` (from the command line or the
    /// default) is used unless the file sets `data_dir`; flags override later.
    pub fn parse(text: &str, default_data_dir: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            // toml's message spans lines; keep the first line and name the key if known.
            let msg = e
                .message()
                .lines()
                .next()
                .unwrap_or("invalid TOML")
                .to_string();
            let field = e
                .span()
                .map(|s| {
                    let before = text.get(..s.start).unwrap_or(text);
                    let line = before.matches('\n').count() + 1;
                    format!("line {line}")
                })
                .unwrap_or_else(|| "file".into());
            ConfigError::new(field, msg)
        })?;
        Self::from_raw(raw, default_data_dir)
    }

    /// The configuration used when no file exists: defaults everywhere, six local directory
    /// nodes `nodes/n1..n6` under the data directory.
    pub fn embedded_default_text() -> String {
        let mut s = String::from(EMBEDDED_HEADER);
        for i in 1..=6 {
            s.push_str(&format!(
                "\n[[nodes]]\nid = \"n{i}\"\nkind = \"dir\"\npath = \"nodes/n{i}\"\n"
            ));
        }
        s
    }

    fn from_raw(raw: RawConfig, default_data_dir: &Path) -> Result<Config, ConfigError> {
        let data_dir = raw
            .data_dir
            .unwrap_or_else(|| default_data_dir.to_path_buf());
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { data_dir.join(p) };
        let listen_text = raw.listen.unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            ConfigError::new(
                "listen",
                format!("{listen_text:?} is not an address like 127.0.0.1:7777"),
            )
        })?;
        let region = raw.region.unwrap_or_else(|| "us-east-1".into());
        if region.is_empty() {
            return Err(ConfigError::new("region", "must not be empty"));
        }
        let admin_listen = match raw.admin_listen.as_deref() {
            Some("") => None,
            text => {
                let text = text.unwrap_or(DEFAULT_ADMIN_LISTEN);
                let a: SocketAddr = text.parse().map_err(|_| {
                    ConfigError::new(
                        "admin_listen",
                        format!(
                            "{text:?} is not an address like 127.0.0.1:7778 (or \"\" to disable)"
                        ),
                    )
                })?;
                if a == listen && a.port() != 0 {
                    return Err(ConfigError::new(
                        "admin_listen",
                        "must differ from listen: on the S3 port /metrics is a bucket name",
                    ));
                }
                Some(a)
            }
        };
        let storage = storage_from_raw(raw.storage)?;
        let limits = limits_from_raw(raw.limits, &storage)?;
        let mut nodes = Vec::new();
        for (i, n) in raw.nodes.into_iter().enumerate() {
            let field = |f: &str| format!("nodes[{i}].{f}");
            if n.id.is_empty()
                || !n
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(ConfigError::new(
                    field("id"),
                    format!(
                        "{:?} must be non-empty ASCII letters, digits, '-' or '_'",
                        n.id
                    ),
                ));
            }
            if nodes.iter().any(|m: &NodeConfig| m.id == n.id) {
                return Err(ConfigError::new(
                    field("id"),
                    format!("duplicate node id {:?}", n.id),
                ));
            }
            if let Some(d) = &n.domain {
                if d.is_empty() || d.len() > 64 || d.chars().any(|c| c.is_control()) {
                    return Err(ConfigError::new(
                        field("domain"),
                        "must be 1 to 64 printable characters",
                    ));
                }
            }
            let kind = node_kind(n.kind, &field, &resolve)?;
            nodes.push(NodeConfig {
                id: n.id,
                kind,
                domain: n.domain,
                drain: n.drain,
            });
        }
        if nodes.len() < storage.scheme.success as usize {
            return Err(ConfigError::new(
                "nodes",
                format!(
                    "{} nodes configured, but scheme {} needs at least success = {} nodes",
                    nodes.len(),
                    storage.scheme,
                    storage.scheme.success
                ),
            ));
        }
        let writable = nodes.iter().filter(|n| !n.drain).count();
        if writable < storage.scheme.success as usize {
            return Err(ConfigError::new(
                "nodes",
                format!(
                    "{} of the {} nodes are being drained, which leaves {writable} to write to, \
                     but scheme {} needs success = {}: add a node first",
                    nodes.len() - writable,
                    nodes.len(),
                    storage.scheme,
                    storage.scheme.success
                ),
            ));
        }
        if let Some(cap) = storage.max_pieces_per_domain {
            let mut per_domain = std::collections::HashMap::new();
            for n in nodes.iter().filter(|n| !n.drain) {
                *per_domain.entry(n.failure_domain()).or_insert(0usize) += 1;
            }
            let placeable: usize = per_domain.values().map(|&c| c.min(cap as usize)).sum();
            if placeable < storage.scheme.success as usize {
                return Err(ConfigError::new(
                    "storage.max_pieces_per_domain",
                    format!(
                        "with at most {cap} pieces per failure domain only {placeable} pieces of a \
                         segment can be placed, but scheme {} needs success = {}",
                        storage.scheme, storage.scheme.success
                    ),
                ));
            }
        }
        Ok(Config {
            admin_listen,
            metadata: metadata_from_raw(raw.metadata)?,
            repair: repair_from_raw(raw.repair)?,
            audit: audit_from_raw(raw.audit)?,
            server: server_from_raw(raw.server, resolve)?,
            limits,
            listen,
            region,
            key_file: resolve(raw.key_file.unwrap_or_else(|| KEY_FILE.into())),
            credentials_file: resolve(
                raw.credentials_file
                    .unwrap_or_else(|| CREDENTIALS_FILE.into()),
            ),
            metadata_file: data_dir.join(METADATA_FILE),
            storage,
            nodes,
            data_dir,
        })
    }
}

impl Config {
    /// Re-checks what command-line flags may override (limits, the admin listener).
    pub fn check_overrides(&self) -> Result<(), ConfigError> {
        check_limits(
            &self.limits,
            &self.storage,
            [
                "--max-connections",
                "--max-connections-per-node",
                "--upload-rate",
                "--download-rate",
            ],
        )?;
        if self.admin_listen == Some(self.listen) && self.listen.port() != 0 {
            return Err(ConfigError::new(
                "--admin-listen",
                "must differ from listen: on the S3 port /metrics is a bucket name",
            ));
        }
        Ok(())
    }
}

/// Validates one node's kind-specific settings; `field` names a setting of this node.
fn node_kind(
    kind: RawNodeKind,
    field: &dyn Fn(&str) -> String,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<NodeKind, ConfigError> {
    match kind {
        RawNodeKind::Dir(d) => {
            let path = d
                .path
                .ok_or_else(|| ConfigError::new(field("path"), "required for kind \"dir\""))?;
            Ok(NodeKind::Dir {
                path: resolve(path),
            })
        }
        RawNodeKind::Remote(r) => remote_node(r, field, resolve),
        RawNodeKind::S3(s) => s3_node(s, field, resolve),
    }
}

/// A network node's timeouts and CA file, checked and resolved.
struct Connection {
    connect_timeout: Duration,
    read_timeout: Duration,
    ca_file: Option<PathBuf>,
}

fn connection(
    c: RawConnection,
    field: &dyn Fn(&str) -> String,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<Connection, ConfigError> {
    let timeout = |name: &str, v: Option<DurationText>, default: Duration| {
        let d = v.map_or(default, |d| d.0);
        if d.is_zero() || d > Duration::from_secs(3600) {
            return Err(ConfigError::new(
                field(name),
                "must be more than 0 and at most 1 hour",
            ));
        }
        Ok(d)
    };
    Ok(Connection {
        connect_timeout: timeout(
            "connect_timeout",
            c.connect_timeout,
            DEFAULT_CONNECT_TIMEOUT,
        )?,
        read_timeout: timeout("read_timeout", c.read_timeout, DEFAULT_READ_TIMEOUT)?,
        ca_file: c.ca_file.map(resolve),
    })
}

fn remote_node(
    r: RawRemoteNode,
    field: &dyn Fn(&str) -> String,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<NodeKind, ConfigError> {
    let address = r.address.ok_or_else(|| {
        ConfigError::new(
            field("address"),
            "required for kind \"remote\" (e.g. \"http://127.0.0.1:7001\")",
        )
    })?;
    validate_address(&address).map_err(|r| ConfigError::new(field("address"), r))?;
    let token = match (r.token, r.token_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                field("token"),
                "set either token or token_file, not both",
            ))
        }
        (Some(t), None) => RemoteToken::Inline(NodeToken::from_hex(&t).map_err(|_| {
            ConfigError::new(field("token"), "must be 64 hex digits (the node's token)")
        })?),
        (None, Some(p)) => RemoteToken::File(resolve(p)),
        (None, None) => {
            return Err(ConfigError::new(
                field("token_file"),
                "kind \"remote\" needs token_file (or token): the node's secret",
            ))
        }
    };
    let c = connection(r.connection, field, resolve)?;
    Ok(NodeKind::Remote(RemoteNodeConfig {
        address,
        token,
        connect_timeout: c.connect_timeout,
        read_timeout: c.read_timeout,
        ca_file: c.ca_file,
    }))
}

fn s3_node(
    n: RawS3Node,
    field: &dyn Fn(&str) -> String,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<NodeKind, ConfigError> {
    let required = |name: &str, v: Option<String>, example: &str| {
        v.filter(|s| !s.is_empty()).ok_or_else(|| {
            ConfigError::new(
                field(name),
                format!("required for kind \"s3\" (e.g. {example})"),
            )
        })
    };
    let endpoint = required("endpoint", n.endpoint, "\"http://127.0.0.1:9000\"")?;
    crate::nodes::s3::validate_endpoint(&endpoint)
        .map_err(|r| ConfigError::new(field("endpoint"), r))?;
    let bucket = required("bucket", n.bucket, "\"gateway-pieces\"")?;
    let access_key = required("access_key", n.access_key, "\"AKIA...\"")?;
    let secret_key = match (n.secret_key, n.secret_key_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                field("secret_key"),
                "set either secret_key or secret_key_file, not both",
            ))
        }
        (Some(s), None) if !s.is_empty() => S3Secret::Inline(s),
        (None, Some(p)) => S3Secret::File(resolve(p)),
        _ => {
            return Err(ConfigError::new(
                field("secret_key_file"),
                "kind \"s3\" needs secret_key_file (or secret_key)",
            ))
        }
    };
    let prefix = n.prefix.unwrap_or_default();
    if prefix.len() > 512 || prefix.chars().any(|c| c.is_control()) {
        return Err(ConfigError::new(
            field("prefix"),
            "must be at most 512 printable characters",
        ));
    }
    let c = connection(n.connection, field, resolve)?;
    Ok(NodeKind::S3(S3NodeConfig {
        endpoint,
        region: n
            .region
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "us-east-1".into()),
        bucket,
        prefix,
        access_key,
        secret_key,
        ca_file: c.ca_file,
        connect_timeout: c.connect_timeout,
        read_timeout: c.read_timeout,
    }))
}

/// The checks flags can also break: connection limits against the scheme, rate minimums.
/// `names` are the fields reported for max_connections, max_connections_per_node,
/// upload_rate and download_rate (config keys or flags).
fn check_limits(
    l: &LimitsConfig,
    storage: &StorageConfig,
    names: [&str; 4],
) -> Result<(), ConfigError> {
    let success = storage.scheme.success as usize;
    if l.max_connections < success || l.max_connections > 100_000 {
        return Err(ConfigError::new(
            names[0],
            format!(
                "{} is too few: an upload of scheme {} needs success = {success} pieces in \
                 flight at once (at most 100000)",
                l.max_connections, storage.scheme
            ),
        ));
    }
    if l.max_connections_per_node == 0 || l.max_connections_per_node > l.max_connections {
        return Err(ConfigError::new(
            names[1],
            format!(
                "must be between 1 and max_connections ({})",
                l.max_connections
            ),
        ));
    }
    for (name, r) in [(names[2], l.upload_rate), (names[3], l.download_rate)] {
        if r.is_some_and(|r| r < 64 << 10) {
            return Err(ConfigError::new(
                name,
                "must be at least 64KiB (per second), or 0 for unlimited",
            ));
        }
    }
    Ok(())
}

fn limits_from_raw(raw: RawLimits, storage: &StorageConfig) -> Result<LimitsConfig, ConfigError> {
    let d = LimitsConfig::default();
    let rate = |v: Option<ByteSize>| v.map(|b| b.0).filter(|&r| r > 0);
    let mut limits = LimitsConfig {
        max_connections: raw.max_connections.unwrap_or(d.max_connections),
        max_connections_per_node: raw
            .max_connections_per_node
            .unwrap_or(d.max_connections_per_node),
        upload_rate: rate(raw.upload_rate),
        download_rate: rate(raw.download_rate),
        ..d.clone()
    };
    check_limits(
        &limits,
        storage,
        [
            "limits.max_connections",
            "limits.max_connections_per_node",
            "limits.upload_rate",
            "limits.download_rate",
        ],
    )?;
    let download_extra = raw.download_extra.unwrap_or(d.download_extra);
    let spare = (storage.scheme.total - storage.scheme.minimum) as usize;
    if download_extra > spare {
        return Err(ConfigError::new(
            "limits.download_extra",
            format!(
                "must be at most total - minimum ({spare}) for scheme {}",
                storage.scheme
            ),
        ));
    }
    let duration = |name: &str, v: Option<String>, default: Duration| match v {
        None => Ok(default),
        Some(t) => {
            let d =
                parse_duration(&t).map_err(|r| ConfigError::new(format!("limits.{name}"), r))?;
            if d.is_zero() {
                return Err(ConfigError::new(
                    format!("limits.{name}"),
                    "must be more than 0",
                ));
            }
            Ok(d)
        }
    };
    limits.download_extra = download_extra;
    limits.stall_timeout = duration("stall_timeout", raw.stall_timeout, d.stall_timeout)?;
    limits.long_tail_grace = duration("long_tail_grace", raw.long_tail_grace, d.long_tail_grace)?;
    limits.queue_wait = duration("queue_wait", raw.queue_wait, d.queue_wait)?;
    limits.memory = match raw.memory {
        None => d.memory,
        Some(ByteSize(m)) if m < 16 << 20 => {
            return Err(ConfigError::new("limits.memory", "must be at least 16MiB"))
        }
        Some(ByteSize(m)) => m,
    };
    limits.queue_depth = match raw.queue_depth {
        Some(0) => return Err(ConfigError::new("limits.queue_depth", "must be at least 1")),
        v => v.unwrap_or(d.queue_depth),
    };
    Ok(limits)
}

fn storage_from_raw(raw: RawStorage) -> Result<StorageConfig, ConfigError> {
    let d = StorageConfig::default();
    let scheme = match raw.scheme {
        None => d.scheme,
        Some(s) => s
            .parse::<Scheme>()
            .map_err(|r| ConfigError::new("storage.scheme", r))?,
    };
    let block_size = raw.block_size.map_or(u64::from(d.block_size), |b| b.0);
    if !(1024..=(16 << 20)).contains(&block_size) {
        return Err(ConfigError::new(
            "storage.block_size",
            "must be between 1 KiB and 16 MiB",
        ));
    }
    let segment_size = raw.segment_size.map_or(d.segment_size, |b| b.0);
    if segment_size == 0 || !segment_size.is_multiple_of(block_size) || segment_size > (1 << 30) {
        return Err(ConfigError::new(
            "storage.segment_size",
            format!("must be a multiple of block_size ({block_size}) and at most 1 GiB"),
        ));
    }
    let inline_limit = raw.inline_limit.map_or(d.inline_limit, |b| b.0);
    if inline_limit > (64 << 10) {
        return Err(ConfigError::new(
            "storage.inline_limit",
            "must be at most 64 KiB",
        ));
    }
    let chunk_size = raw.chunk_size.map_or(d.chunk_size as u64, |b| b.0);
    if !(64..=(16 << 20)).contains(&chunk_size) || !chunk_size.is_multiple_of(64) {
        return Err(ConfigError::new(
            "storage.chunk_size",
            "must be a multiple of 64 bytes between 64 B and 16 MiB",
        ));
    }
    let cipher = match raw.cipher {
        None => d.cipher,
        Some(c) => CipherSuite::from_name(&c).ok_or_else(|| {
            ConfigError::new(
                "storage.cipher",
                format!("{c:?} is not \"aes-256-gcm\" or \"chacha20-poly1305\""),
            )
        })?,
    };
    let gc_grace = match raw.gc_grace {
        None => d.gc_grace,
        Some(g) => parse_duration(&g).map_err(|r| ConfigError::new("storage.gc_grace", r))?,
    };
    let orphan_grace =
        match raw.orphan_grace.as_deref().map(str::trim) {
            None => d.orphan_grace,
            Some("off") => None,
            Some(g) => Some(parse_duration(g).map_err(|r| {
                ConfigError::new("storage.orphan_grace", format!("{r}, or \"off\""))
            })?),
        };
    let orphan_scan_interval = match raw.orphan_scan_interval {
        None => d.orphan_scan_interval,
        Some(i) => match parse_duration(&i) {
            Ok(i) if !i.is_zero() => i,
            Ok(_) => {
                return Err(ConfigError::new(
                    "storage.orphan_scan_interval",
                    "must be longer than 0",
                ))
            }
            Err(r) => return Err(ConfigError::new("storage.orphan_scan_interval", r)),
        },
    };
    let orphan_max_share = raw.orphan_max_share.unwrap_or(d.orphan_max_share);
    if !(orphan_max_share > 0.0 && orphan_max_share <= 1.0) {
        return Err(ConfigError::new(
            "storage.orphan_max_share",
            "must be a fraction above 0 and at most 1 (1 disables the check)",
        ));
    }
    if raw.max_pieces_per_domain == Some(0) {
        return Err(ConfigError::new(
            "storage.max_pieces_per_domain",
            "must be at least 1",
        ));
    }
    Ok(StorageConfig {
        max_pieces_per_domain: raw.max_pieces_per_domain,
        scheme,
        segment_size,
        inline_limit,
        block_size: block_size as u32,
        chunk_size: chunk_size as usize,
        cipher,
        gc_grace,
        orphan_grace,
        orphan_scan_interval,
        orphan_max_share,
    })
}

const EMBEDDED_HEADER: &str = r#"# gateway configuration, written at first start (see config/example.toml for every field).
# Relative paths are relative to the data directory holding this file.

listen = "127.0.0.1:7777"
key_file = "root.key"                 # 256-bit root key; losing it loses every object
credentials_file = "credentials.toml" # S3 access key and secret (mode 0600)

[storage]
scheme = "4/5/6/6"        # minimum/repair/success/total (Storj notation)
segment_size = "64MiB"
inline_limit = "4KiB"
cipher = "aes-256-gcm"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses() {
        let c = Config::parse(&Config::embedded_default_text(), Path::new("/d")).unwrap();
        assert_eq!(c.nodes.len(), 6);
        assert_eq!(c.listen.to_string(), "127.0.0.1:7777");
        assert_eq!(c.storage.scheme.to_string(), "4/5/6/6");
        assert_eq!(
            c.nodes[0].kind,
            NodeKind::Dir {
                path: "/d/nodes/n1".into()
            }
        );
        assert_eq!(c.key_file, Path::new("/d/root.key"));
    }

    #[test]
    fn errors_name_the_field() {
        let base = Config::embedded_default_text();
        let cases = [
            ("listen = \"nope\"", "listen"),
            ("[storage]\nscheme = \"4/3/6/6\"", "storage.scheme"),
            ("[storage]\nsegment_size = \"1000\"", "storage.segment_size"),
            ("[storage]\ncipher = \"rot13\"", "storage.cipher"),
            ("[[nodes]]\nid = \"a b\"\npath = \"x\"", "nodes[0].id"),
            ("[[nodes]]\nid = \"a\"\nkind = \"remote\"", "nodes[0].address"),
            ("[[nodes]]\nid = \"a\"\nkind = \"s3\"", "nodes[0].endpoint"),
            ("[[nodes]]\nid = \"a\"\ndomain = \"\"\npath = \"x\"", "nodes[0].domain"),
            ("[limits]\nmax_connections = 2", "limits.max_connections"),
            ("[limits]\nmax_connections_per_node = 0", "limits.max_connections_per_node"),
            ("[limits]\nupload_rate = \"1KiB\"", "limits.upload_rate"),
            ("[limits]\ndownload_extra = 9", "limits.download_extra"),
            ("[limits]\nstall_timeout = \"0s\"", "limits.stall_timeout"),
            ("admin_listen = \"127.0.0.1:7777\"", "admin_listen"),
            ("admin_listen = \"nope\"", "admin_listen"),
            ("[storage]\nmax_pieces_per_domain = 0", "storage.max_pieces_per_domain"),
            (
                "[[nodes]]\nid = \"a\"\nkind = \"remote\"\naddress = \"ftp://h:1\"\ntoken_file = \"t\"",
                "nodes[0].address",
            ),
            (
                "[[nodes]]\nid = \"a\"\nkind = \"remote\"\naddress = \"http://h:1\"",
                "nodes[0].token_file",
            ),
            (
                "[[nodes]]\nid = \"a\"\nkind = \"remote\"\naddress = \"http://h:1\"\ntoken = \"abc\"",
                "nodes[0].token",
            ),
            (
                "[[nodes]]\nid = \"a\"\nkind = \"remote\"\naddress = \"http://h:1\"\ntoken_file = \"t\"\nread_timeout = \"0s\"",
                "nodes[0].read_timeout",
            ),
        ];
        for (text, field) in cases {
            let err = Config::parse(text, Path::new("/d")).unwrap_err();
            assert_eq!(err.field, field, "{text}");
            assert!(!err.to_string().contains('\n'));
        }
        // A node's kind is a tag: an unknown kind, or a setting of another kind, is refused
        // with the line of the node's table.
        let cases = [
            (
                "listen = \"127.0.0.1:1\"\n\n[[nodes]]\nid = \"a\"\nkind = \"ftp\"",
                "unknown variant `ftp`, expected one of `dir`, `remote`, `s3`",
            ),
            (
                "[[nodes]]\nid = \"a\"\nkind = \"remote\"\naddress = \"http://h:1\"\n\
                 token_file = \"t\"\n\n[[nodes]]\nid = \"b\"\nkind = \"remote\"\n\
                 address = \"http://h:1\"\ntoken_file = \"t\"\npath = \"p\"",
                "of kind \"remote\": unknown field `path`",
            ),
            (
                "[[nodes]]\nid = \"a\"\npath = \"p\"\naddress = \"http://h:1\"",
                "of kind \"dir\": unknown field `address`, expected `path`",
            ),
        ];
        for ((text, message), line) in cases.into_iter().zip([3, 7, 1]) {
            let err = Config::parse(text, Path::new("/d")).unwrap_err();
            assert_eq!(err.field, format!("line {line}"), "{text}");
            assert!(err.to_string().contains(message), "{err}");
        }
        // Too few nodes for the scheme.
        let err = Config::parse("", Path::new("/d")).unwrap_err();
        assert_eq!(err.field, "nodes");
        // Unknown keys are refused, naming the line.
        let err = Config::parse(&format!("bogus = 1\n{base}"), Path::new("/d")).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn overrides_are_checked_like_the_file() {
        let mut c = Config::parse(&Config::embedded_default_text(), Path::new("/d")).unwrap();
        assert!(c.check_overrides().is_ok());
        c.limits.max_connections = 5;
        assert_eq!(c.check_overrides().unwrap_err().field, "--max-connections");
        c.limits.max_connections = 64;
        c.limits.upload_rate = Some(1024);
        assert_eq!(c.check_overrides().unwrap_err().field, "--upload-rate");
    }

    #[test]
    fn limits_domains_and_s3_nodes() {
        let mut text = String::from(
            "admin_listen = \"127.0.0.1:9999\"\n[storage]\nscheme = \"2/3/4/6\"\n\
             max_pieces_per_domain = 2\n[limits]\nmax_connections = 16\n\
             max_connections_per_node = 3\nupload_rate = \"10MiB\"\ndownload_extra = 1\n\
             stall_timeout = \"1s\"\nlong_tail_grace = \"500ms\"\n",
        );
        for (i, rack) in ["a", "a", "a", "b", "b", "c"].iter().enumerate() {
            text.push_str(&format!(
                "[[nodes]]\nid = \"n{i}\"\npath = \"n{i}\"\ndomain = \"{rack}\"\n"
            ));
        }
        text.push_str(
            "[[nodes]]\nid = \"s\"\nkind = \"s3\"\nendpoint = \"http://127.0.0.1:9000\"\n\
             bucket = \"pieces\"\naccess_key = \"ak\"\nsecret_key = \"very-secret\"\n",
        );
        let c = Config::parse(&text, Path::new("/d")).unwrap();
        assert_eq!(c.admin_listen.unwrap().port(), 9999);
        assert_eq!(c.storage.max_pieces_per_domain, Some(2));
        assert_eq!(
            c.limits,
            LimitsConfig {
                max_connections: 16,
                max_connections_per_node: 3,
                upload_rate: Some(10 << 20),
                download_rate: None,
                download_extra: 1,
                stall_timeout: Duration::from_secs(1),
                long_tail_grace: Duration::from_millis(500),
                ..LimitsConfig::default()
            }
        );
        assert_eq!(c.nodes[0].failure_domain(), "domain:a");
        assert_eq!(c.nodes[6].failure_domain(), "node:s");
        let NodeKind::S3(s3) = &c.nodes[6].kind else {
            panic!("not s3: {:?}", c.nodes[6].kind)
        };
        assert_eq!((s3.region.as_str(), s3.prefix.as_str()), ("us-east-1", ""));
        assert!(!format!("{c:?}").contains("very-secret"));
        // Domains a, b, c (+ s) with at most 1 piece each hold 4 pieces: enough for success 4;
        // without the s3 node only 3.
        let one = text.replace("max_pieces_per_domain = 2", "max_pieces_per_domain = 1");
        assert!(Config::parse(&one, Path::new("/d")).is_ok());
        let cut = one
            .split("[[nodes]]\nid = \"s\"")
            .next()
            .unwrap()
            .to_string();
        let err = Config::parse(&cut, Path::new("/d")).unwrap_err();
        assert_eq!(err.field, "storage.max_pieces_per_domain", "{err}");
        // The admin listener can be turned off.
        let off = text.replace("admin_listen = \"127.0.0.1:9999\"", "admin_listen = \"\"");
        assert_eq!(
            Config::parse(&off, Path::new("/d")).unwrap().admin_listen,
            None
        );
    }

    #[test]
    fn documented_example_parses_to_the_defaults() {
        let c = Config::parse(include_str!("../config/example.toml"), Path::new("/d")).unwrap();
        assert_eq!(c.limits, LimitsConfig::default());
        assert_eq!(
            c.admin_listen.map(|a| a.to_string()).as_deref(),
            Some(DEFAULT_ADMIN_LISTEN)
        );
        let d = StorageConfig::default();
        assert_eq!(c.storage.scheme, d.scheme);
        assert_eq!(c.storage.segment_size, d.segment_size);
        assert_eq!(c.storage.inline_limit, d.inline_limit);
        assert_eq!(c.storage.block_size, d.block_size);
        assert_eq!(c.storage.chunk_size, d.chunk_size);
        assert_eq!(c.storage.gc_grace, d.gc_grace);
        assert_eq!(c.storage.orphan_grace, d.orphan_grace);
        assert_eq!(c.storage.orphan_scan_interval, d.orphan_scan_interval);
        assert_eq!(c.storage.orphan_max_share, d.orphan_max_share);
        assert_eq!(c.nodes.len(), 6);
        let m = MetadataConfig::default();
        assert_eq!(c.metadata.replication, m.replication);
        assert_eq!(c.metadata.max_delay, m.max_delay);
        assert_eq!(c.metadata.snapshot_interval, m.snapshot_interval);
        assert_eq!(c.metadata.sync_timeout, m.sync_timeout);
        assert_eq!(c.audit, AuditConfig::default());
        assert_eq!(c.server, ServerConfig::default());
    }

    #[test]
    fn server_settings_and_their_bounds() {
        let base = Config::embedded_default_text();
        let c = Config::parse(
            &format!(
                "{base}\n[server]\nmax_client_connections = 8\nheader_timeout = \"5s\"\n\
                 body_timeout = \"3s\"\nbody_min_rate = \"4KiB\"\ndrain_timeout = \"2m\"\n\
                 tls_cert = \"tls/cert.pem\"\ntls_key = \"/etc/gw/key.pem\""
            ),
            Path::new("/d"),
        )
        .unwrap();
        assert_eq!(
            c.server,
            ServerConfig {
                max_client_connections: 8,
                header_timeout: Duration::from_secs(5),
                body_timeout: Duration::from_secs(3),
                body_min_rate: 4096,
                drain_timeout: Duration::from_secs(120),
                // Relative to the data directory, like every path of the file.
                tls: Some(TlsFiles {
                    cert: PathBuf::from("/d/tls/cert.pem"),
                    key: PathBuf::from("/etc/gw/key.pem"),
                }),
            }
        );
        for (text, field) in [
            (
                "[server]\nmax_client_connections = 0",
                "server.max_client_connections",
            ),
            (
                "[server]\nheader_timeout = \"500ms\"",
                "server.header_timeout",
            ),
            ("[server]\nbody_timeout = \"soon\"", "server.body_timeout"),
            ("[server]\ndrain_timeout = \"0s\"", "server.drain_timeout"),
            ("[server]\ntls_cert = \"c.pem\"", "server.tls_key"),
            ("[server]\ntls_key = \"k.pem\"", "server.tls_cert"),
            ("[limits]\nqueue_depth = 0", "limits.queue_depth"),
            ("[limits]\nqueue_wait = \"0s\"", "limits.queue_wait"),
        ] {
            let e = Config::parse(&format!("{base}\n{text}"), Path::new("/d")).unwrap_err();
            assert_eq!(e.field, field, "{text}");
        }
    }

    #[test]
    fn orphan_collection_settings() {
        let with = |lines: &str| {
            let text = Config::embedded_default_text();
            text.replacen("[storage]\n", &format!("[storage]\n{lines}\n"), 1)
        };
        let d = Config::parse(&with(""), Path::new("/d")).unwrap().storage;
        assert_eq!(d.orphan_grace, Some(Duration::from_secs(24 * 3600)));
        assert_eq!(d.orphan_scan_interval, Duration::from_secs(6 * 3600));
        assert_eq!(d.orphan_max_share, 0.5);
        let c = Config::parse(
            &with("orphan_grace = \"2s\"\norphan_scan_interval = \"500ms\"\norphan_max_share = 1"),
            Path::new("/d"),
        )
        .unwrap()
        .storage;
        assert_eq!(c.orphan_grace, Some(Duration::from_secs(2)));
        assert_eq!(c.orphan_scan_interval, Duration::from_millis(500));
        assert_eq!(c.orphan_max_share, 1.0);
        let off = Config::parse(&with("orphan_grace = \"off\""), Path::new("/d")).unwrap();
        assert_eq!(off.storage.orphan_grace, None);
        for (text, field) in [
            ("orphan_grace = \"soon\"", "storage.orphan_grace"),
            (
                "orphan_scan_interval = \"0s\"",
                "storage.orphan_scan_interval",
            ),
            ("orphan_max_share = 0", "storage.orphan_max_share"),
            ("orphan_max_share = 1.5", "storage.orphan_max_share"),
        ] {
            let e = Config::parse(&with(text), Path::new("/d")).unwrap_err();
            assert_eq!(e.field, field, "{text}");
        }
    }

    #[test]
    fn audit_settings() {
        let with = |table: &str| {
            let nodes = Config::embedded_default_text();
            let at = nodes.find("[[nodes]]").unwrap();
            format!("{}[audit]\n{table}\n{}", &nodes[..at], &nodes[at..])
        };
        let d = Config::parse(&with(""), Path::new("/d")).unwrap().audit;
        assert_eq!(d, AuditConfig::default());
        assert_eq!(
            (d.enabled, d.interval, d.rate, d.requests, d.samples),
            (
                true,
                Duration::from_secs(3600),
                Some(1 << 20),
                Some(5.0),
                1000
            )
        );
        let c = Config::parse(
            &with(
                "enabled = false\ninterval = \"10m\"\nrate = \"4MiB\"\nrequests = 0.5\nsamples = 0",
            ),
            Path::new("/d"),
        )
        .unwrap()
        .audit;
        assert_eq!(
            c,
            AuditConfig {
                enabled: false,
                interval: Duration::from_secs(600),
                rate: Some(4 << 20),
                requests: Some(0.5),
                samples: 0,
            }
        );
        let unlimited = Config::parse(&with("rate = 0\nrequests = 0"), Path::new("/d")).unwrap();
        assert_eq!(
            (unlimited.audit.rate, unlimited.audit.requests),
            (None, None)
        );
        // An integer number of requests is accepted.
        let whole = Config::parse(&with("requests = 20"), Path::new("/d")).unwrap();
        assert_eq!(whole.audit.requests, Some(20.0));
        for (text, field) in [
            ("interval = \"often\"", "audit.interval"),
            ("interval = \"0s\"", "audit.interval"),
            ("rate = \"1KiB\"", "audit.rate"),
            ("requests = -1", "audit.requests"),
            ("requests = 0.01", "audit.requests"),
        ] {
            let e = Config::parse(&with(text), Path::new("/d")).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
        // Not a count: TOML's error, naming the line.
        let e = Config::parse(&with("samples = -5"), Path::new("/d")).unwrap_err();
        assert!(e.field.starts_with("line "), "{e}");
    }

    #[test]
    fn metadata_replication_settings() {
        let with = |table: &str| {
            let nodes = Config::embedded_default_text();
            let at = nodes.find("[[nodes]]").unwrap();
            format!("{}[metadata]\n{table}\n{}", &nodes[..at], &nodes[at..])
        };
        let c = Config::parse(
            &with("replication = \"sync\"\nmax_delay = \"250ms\"\nsnapshot_interval = \"1h\""),
            Path::new("/d"),
        )
        .unwrap();
        assert_eq!(c.metadata.replication, ReplicationMode::Sync);
        assert_eq!(c.metadata.max_delay, Duration::from_millis(250));
        assert_eq!(c.metadata.snapshot_interval, Duration::from_secs(3600));
        for (text, field) in [
            ("replication = \"later\"", "metadata.replication"),
            ("max_delay = \"1ms\"", "metadata.max_delay"),
            ("sync_timeout = \"soon\"", "metadata.sync_timeout"),
        ] {
            let e = Config::parse(&with(text), Path::new("/d")).unwrap_err();
            assert_eq!(e.field, field, "{text}");
        }
    }

    #[test]
    fn draining_nodes_must_leave_enough_to_write_to() {
        let nodes = |n: usize, drained: &[usize]| {
            let mut t = String::from("[storage]\nscheme = \"2/3/3/4\"\n");
            for i in 1..=n {
                t.push_str(&format!(
                    "[[nodes]]\nid = \"n{i}\"\npath = \"nodes/n{i}\"\n"
                ));
                if drained.contains(&i) {
                    t.push_str("drain = true\n");
                }
            }
            t
        };
        let c = Config::parse(&nodes(4, &[4]), Path::new("/d")).unwrap();
        let drained: Vec<bool> = c.nodes.iter().map(|n| n.drain).collect();
        assert_eq!(drained, [false, false, false, true]);
        let e = Config::parse(&nodes(4, &[3, 4]), Path::new("/d")).unwrap_err();
        assert_eq!(e.field, "nodes");
        assert!(e.reason.contains("leaves 2 to write to"), "{e}");
        assert!(e.reason.contains("add a node first"), "{e}");
    }

    #[test]
    fn remote_nodes() {
        let token = "ab".repeat(32);
        let text = format!(
            "[storage]\nscheme = \"1/1/2/2\"\n\
             [[nodes]]\nid = \"r1\"\nkind = \"remote\"\naddress = \"http://10.0.0.1:7001\"\ntoken_file = \"tokens/r1\"\n\
             [[nodes]]\nid = \"r2\"\nkind = \"remote\"\naddress = \"http://node2:7001/\"\ntoken = \"{token}\"\n\
             connect_timeout = \"250ms\"\nread_timeout = 10\n"
        );
        let c = Config::parse(&text, Path::new("/d")).unwrap();
        assert_eq!(
            c.nodes[0].kind,
            NodeKind::Remote(RemoteNodeConfig {
                address: "http://10.0.0.1:7001".into(),
                token: RemoteToken::File("/d/tokens/r1".into()),
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                read_timeout: DEFAULT_READ_TIMEOUT,
                ca_file: None,
            })
        );
        assert_eq!(
            c.nodes[1].kind,
            NodeKind::Remote(RemoteNodeConfig {
                address: "http://node2:7001/".into(),
                token: RemoteToken::Inline(NodeToken::from_hex(&token).unwrap()),
                connect_timeout: Duration::from_millis(250),
                read_timeout: Duration::from_secs(10),
                ca_file: None,
            })
        );
        // The inline token never appears in the config's Debug output.
        assert!(!format!("{c:?}").contains(&token));
    }

    #[test]
    fn documented_remote_node_parses_when_uncommented() {
        let example = include_str!("../config/example.toml");
        let at = example.find("# [[nodes]]").unwrap();
        let block: String = example[at..]
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::parse(&format!("{}\n{block}", &example[..at]), Path::new("/d")).unwrap();
        let NodeKind::Remote(r) = &c.nodes[6].kind else {
            panic!("not remote: {:?}", c.nodes[6]);
        };
        assert_eq!(r.token, RemoteToken::File("/d/tokens/r1".into()));
        assert_eq!(r.read_timeout, DEFAULT_READ_TIMEOUT);
        assert_eq!(
            r.ca_file.as_deref(),
            Some(Path::new("/d/tokens/r1-cert.pem"))
        );
        assert_eq!(c.nodes[6].domain.as_deref(), Some("rack-1"));
        let NodeKind::S3(s3) = &c.nodes[7].kind else {
            panic!("not s3: {:?}", c.nodes[7]);
        };
        assert_eq!(s3.secret_key, S3Secret::File("/d/tokens/s1-secret".into()));
        assert_eq!(
            (s3.bucket.as_str(), s3.prefix.as_str()),
            ("gateway-pieces", "s1/")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5 fortnights").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("4 KiB").unwrap(), 4096);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
    }
}
