//! Starting a gateway: the data directory's first-start defaults, and the running server.
//!
//! [`prepare`] turns a data directory (and optionally a config file) into a validated
//! [`Config`] plus credentials, creating the embedded default on first start: a config file,
//! a random root key (mode 0600), random S3 credentials (mode 0600) unless
//! `GATEWAY_ACCESS_KEY`/`GATEWAY_SECRET_KEY` are set, and six local directory nodes. A root
//! key is only ever generated for a data directory that has no metadata yet, so an existing
//! store can never silently get a new key. [`Gateway::start`] opens the nodes and the metadata
//! and serves S3. A node that cannot be opened (a missing directory, a bad address) becomes an
//! [`OfflineNode`]; a remote node is opened without connecting, so an unreachable node server
//! is not fatal either. An unreadable remote-node token file is a configuration error.

pub mod config_edit;
pub mod key_backup;
pub mod lock;
pub mod maintenance;
#[cfg(unix)]
pub mod notify;
pub mod plan;
pub mod recover;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::admin::{
    AdminError, AdminServer, AdminSource, AuditStats, FindingCount, HealthReport, HealthyCount,
    LimitsReport, NodeReport, OrphanReport, PiecesNotOk, RepairStats, ReplicationReport,
    StatsReport, StoredTotals,
};
use crate::config::{
    Config, ConfigError, NodeKind, RemoteNodeConfig, RemoteToken, ReplicationMode, S3NodeConfig,
    S3Secret, CONFIG_FILE,
};
use crate::crypto::{CryptoError, RootKey};
use crate::erasure::Scheme;
use crate::meta::{Meta, MetaError};
use crate::metrics::{Metrics, Reason};
use crate::nodes::protocol::NodeToken;
use crate::nodes::s3::{S3Node, S3Options};
use crate::nodes::{DirNode, NodeError, NodeStore, OfflineNode, RemoteNode, RemoteOptions};
use crate::object::audit::AuditOptions;
use crate::object::repair::RepairOptions;
use crate::object::ObjectLayer;
use crate::replication::{ReplicationError, Replicator};
use crate::s3::auth::Credentials;
use crate::s3::{S3Config, S3Service};
use crate::tls::{reloadable_server_config, ReloadableCert};
use crate::transfer::{NodeSpec, Transfers};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("metadata: {0}")]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(
        "root key {0} is missing but the metadata database exists: refusing to create a new key (objects would be unreadable); restore it from its backup with `gateway key import BACKUP`"
    )]
    MissingKey(PathBuf),
    #[error("credentials file {path}: {reason}")]
    Credentials { path: PathBuf, reason: String },
    #[error(transparent)]
    Replication(#[from] ReplicationError),
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error("repair: {0}")]
    Repair(#[from] crate::object::ObjectError),
    #[error("admin listener: {0}")]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Backup(#[from] crate::crypto::backup::BackupError),
    /// The S3 listener's certificate or key (a configuration mistake).
    #[error("server.tls_cert/tls_key: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> AppError + '_ {
    move |source| AppError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads and checks the configuration file `prepare` would use, creating nothing (for a
/// reload).
pub fn load_config(data_dir: &Path, config_file: Option<&Path>) -> Result<Config, AppError> {
    let path = match config_file {
        Some(p) => p.to_path_buf(),
        None => data_dir.join(CONFIG_FILE),
    };
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    Ok(Config::parse(&text, data_dir)?)
}

/// What a reload did (see [`Gateway::reload`]).
#[derive(Debug, Default)]
pub struct Reloaded {
    /// What now runs with the file's settings.
    pub applied: Vec<String>,
    /// Settings that differ in the file from what runs, and take effect only at a restart.
    pub need_restart: Vec<&'static str>,
}

/// Everything needed to start.
pub struct Prepared {
    pub config: Config,
    pub credentials: Credentials,
    pub root_key: RootKey,
    /// Whether this call created the embedded default configuration.
    pub created_config: bool,
    /// Whether this call generated the root key (the operator must back it up now).
    pub created_key: bool,
    /// Whether the credentials came from the environment.
    pub credentials_from_env: bool,
}

/// The default data directory: `$XDG_DATA_HOME/gateway`, else `~/.local/share/gateway`.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("gateway");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| ".".into());
    home.join(".local/share/gateway")
}

/// Loads (or on first start creates) configuration, key and credentials.
pub fn prepare(data_dir: &Path, config_file: Option<&Path>) -> Result<Prepared, AppError> {
    let (config_path, explicit) = match config_file {
        Some(p) => (p.to_path_buf(), true),
        None => (data_dir.join(CONFIG_FILE), false),
    };
    let mut created_config = false;
    let text = match std::fs::read_to_string(&config_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            create_private_dir(data_dir)?;
            let text = Config::embedded_default_text();
            write_new_file(&config_path, text.as_bytes(), 0o644)?;
            created_config = true;
            text
        }
        Err(e) => return Err(io_err(&config_path)(e)),
    };
    let config = Config::parse(&text, data_dir)?;
    create_private_dir(&config.data_dir)?;

    let mut created_key = false;
    let root_key = match RootKey::load(&config.key_file) {
        Ok(k) => k,
        Err(_) if !config.key_file.exists() => {
            if config.metadata_file.exists() {
                return Err(AppError::MissingKey(config.key_file.clone()));
            }
            let k = RootKey::generate()?;
            k.save_new(&config.key_file)?;
            created_key = true;
            k
        }
        Err(e) => return Err(e.into()),
    };

    let env_creds = (
        std::env::var("GATEWAY_ACCESS_KEY")
            .ok()
            .filter(|v| !v.is_empty()),
        std::env::var("GATEWAY_SECRET_KEY")
            .ok()
            .filter(|v| !v.is_empty()),
    );
    let (credentials, credentials_from_env) = match env_creds {
        (Some(access_key), Some(secret_key)) => (
            Credentials {
                access_key,
                secret_key,
            },
            true,
        ),
        _ => (load_or_create_credentials(&config.credentials_file)?, false),
    };
    Ok(Prepared {
        config,
        credentials,
        root_key,
        created_config,
        created_key,
        credentials_from_env,
    })
}

fn create_private_dir(dir: &Path) -> Result<(), AppError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(io_err(dir))
}

fn write_new_file(path: &Path, body: &[u8], mode: u32) -> Result<(), AppError> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = o.open(path).map_err(io_err(path))?;
    f.write_all(body).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    access_key: String,
    secret_key: String,
}

fn load_or_create_credentials(path: &Path) -> Result<Credentials, AppError> {
    let bad = |reason: String| AppError::Credentials {
        path: path.to_path_buf(),
        reason,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let f: CredentialsFile = toml::from_str(&text)
                .map_err(|e| bad(e.message().lines().next().unwrap_or("invalid").to_string()))?;
            if f.access_key.is_empty() || f.secret_key.is_empty() {
                return Err(bad("access_key and secret_key must not be empty".into()));
            }
            Ok(Credentials {
                access_key: f.access_key,
                secret_key: f.secret_key,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let creds = Credentials {
                access_key: random_string(20, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")?,
                secret_key: random_string(
                    40,
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                )?,
            };
            let body = format!(
                "# S3 credentials of this gateway. Keep this file private.\naccess_key = \"{}\"\nsecret_key = \"{}\"\n",
                creds.access_key, creds.secret_key
            );
            write_new_file(path, body.as_bytes(), 0o600)?;
            Ok(creds)
        }
        Err(e) => Err(io_err(path)(e)),
    }
}

/// A random string over `alphabet` (its length must divide 256 for an unbiased draw).
fn random_string(len: usize, alphabet: &[u8]) -> Result<String, CryptoError> {
    let mut raw = vec![0u8; len];
    crate::crypto::random_bytes(&mut raw)?;
    Ok(raw
        .iter()
        .map(|b| alphabet[*b as usize % alphabet.len()] as char)
        .collect())
}

/// A remote node client. A token file that cannot be read is a configuration error (fatal);
/// an unreachable node is not: the client connects lazily, and a probe at start only logs.
fn open_remote(
    index: usize,
    id: &str,
    r: &RemoteNodeConfig,
) -> Result<Result<Arc<RemoteNode>, NodeError>, AppError> {
    let token = match &r.token {
        RemoteToken::Inline(t) => t.clone(),
        RemoteToken::File(path) => NodeToken::load(path)
            .map_err(|e| ConfigError::new(format!("nodes[{index}].token_file"), e.to_string()))?,
    };
    if let Some(ca) = &r.ca_file {
        // An unreadable trust file is a configuration mistake, not an offline node.
        crate::tls::client_config(Some(ca))
            .map_err(|e| ConfigError::new(format!("nodes[{index}].ca_file"), e.to_string()))?;
    }
    let opts = RemoteOptions {
        connect_timeout: r.connect_timeout,
        read_timeout: r.read_timeout,
        ca_file: r.ca_file.clone(),
        ..RemoteOptions::new(r.address.clone(), token)
    };
    let node = match RemoteNode::new(id, opts) {
        Ok(node) => Arc::new(node),
        Err(e) => return Ok(Err(e)),
    };
    let probe = node.clone();
    tokio::spawn(async move {
        match probe.status().await {
            Ok(s) => tracing::info!(
                node = %probe.id(),
                free_bytes = s.free_bytes,
                reserve_bytes = s.reserve_bytes,
                version = %s.version,
                "remote node reachable"
            ),
            Err(e) => tracing::warn!(
                node = %probe.id(),
                error = %e,
                "remote node not reachable at start; requests to it fail until it is"
            ),
        }
    });
    Ok(Ok(node))
}

/// An S3-bucket node. A secret file that cannot be read is a configuration error (fatal); an
/// unreachable endpoint is not: a probe at start only logs.
fn open_s3(
    index: usize,
    id: &str,
    c: &S3NodeConfig,
) -> Result<Result<Arc<S3Node>, NodeError>, AppError> {
    let secret = match &c.secret_key {
        S3Secret::Inline(s) => s.clone(),
        S3Secret::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new(
                    format!("nodes[{index}].secret_key_file"),
                    format!("{}: {e}", path.display()),
                )
            })?;
            let t = text.trim().to_string();
            if t.is_empty() {
                return Err(ConfigError::new(
                    format!("nodes[{index}].secret_key_file"),
                    format!("{} is empty", path.display()),
                )
                .into());
            }
            t
        }
    };
    let opts = S3Options {
        prefix: c.prefix.clone(),
        ca_file: c.ca_file.clone(),
        connect_timeout: c.connect_timeout,
        read_timeout: c.read_timeout,
        ..S3Options::new(
            c.endpoint.clone(),
            c.region.clone(),
            c.bucket.clone(),
            c.access_key.clone(),
            secret,
        )
    };
    let node = match S3Node::new(id, opts) {
        Ok(node) => Arc::new(node),
        Err(e) => return Ok(Err(e)),
    };
    let probe = node.clone();
    tokio::spawn(async move {
        match probe.check().await {
            Ok(()) => tracing::info!(node = %probe.id(), "s3 node reachable"),
            Err(e) => tracing::warn!(
                node = %probe.id(),
                error = %e,
                "s3 node not reachable at start; requests to it fail until it is"
            ),
        }
    });
    Ok(Ok(node))
}

/// Removes the temp files that uploads cut short by a crash left in the directory nodes. Only
/// at start, before anything writes to them: `gateway run` holds the data directory's lock, so
/// no other gateway process writes to its directory nodes (one `gateway node` server per
/// directory, which sweeps its own at start, is the other rule). A node that cannot be opened
/// is skipped; a failure is logged.
async fn sweep_stale_temp(cfg: &Config, metrics: &Metrics) {
    for n in &cfg.nodes {
        let NodeKind::Dir { path } = &n.kind else {
            continue;
        };
        let Ok(node) = DirNode::open(&n.id, path, false) else {
            continue;
        };
        let swept = tokio::task::spawn_blocking(move || node.remove_stale_temp()).await;
        match swept {
            Ok(Ok(s)) if s.files > 0 => {
                metrics.temp_removed(&n.id, s.files, s.bytes);
                tracing::info!(
                    node = %n.id,
                    files = s.files,
                    bytes = s.bytes,
                    "removed the temp files of unfinished uploads"
                );
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(node = %n.id, error = %e, "could not remove stale temp files")
            }
            Err(e) => tracing::warn!(node = %n.id, error = %e, "could not remove stale temp files"),
        }
    }
}

/// How long the stats report waits for a node to say its free space.
const NODE_SPACE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a stopping gateway keeps shipping metadata changes to the nodes.
const SHUTDOWN_SHIP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(15);

/// Opens every configured node (a node that cannot be opened becomes an [`OfflineNode`]) and
/// the transfer layer over them. With `meta`, an empty directory node is initialised only
/// while the store records none of its pieces; without (recovery), never.
pub async fn open_transfers(
    cfg: &Config,
    root: &RootKey,
    meta: Option<&Meta>,
) -> Result<Arc<Transfers>, AppError> {
    let mut nodes: Vec<NodeSpec> = Vec::new();
    for (i, n) in cfg.nodes.iter().enumerate() {
        // A node is only initialised while it holds none of our pieces: a node directory
        // that lost its contents (an unmounted disk, a deleted folder) must stay visibly
        // broken rather than become an empty node that silently lost data.
        // Recovery (no store yet) never initialises a node.
        let held = match meta {
            Some(meta) => meta.node_holds_pieces(&n.id).await?,
            None => 0,
        };
        let holds_pieces = meta.is_none() || held > 0;
        let (kind, opened) = match &n.kind {
            NodeKind::Dir { path } => (
                "dir",
                DirNode::open(&n.id, path, !holds_pieces)
                    .map(|d| Arc::new(d) as Arc<dyn NodeStore>),
            ),
            NodeKind::Remote(r) => (
                "remote",
                open_remote(i, &n.id, r)?.map(|r| r as Arc<dyn NodeStore>),
            ),
            NodeKind::S3(c) => ("s3", open_s3(i, &n.id, c)?.map(|r| r as Arc<dyn NodeStore>)),
        };
        let (store, offline) = match opened {
            Ok(node) => (node, None),
            Err(e) => {
                let mut reason = e.to_string();
                if held > 0 && matches!(n.kind, NodeKind::Dir { .. }) {
                    reason.push_str(&format!(
                        "; the metadata places {held} pieces on it: if its data is gone for good, \
                         run `gateway node replace {}` and repair refills it",
                        n.id
                    ));
                }
                tracing::error!(node = %n.id, error = %reason, "node unavailable; serving from the other nodes");
                let node: Arc<dyn NodeStore> = Arc::new(OfflineNode {
                    id: n.id.clone(),
                    reason: reason.clone(),
                });
                (node, Some(reason))
            }
        };
        nodes.push(NodeSpec {
            store,
            kind: kind.to_string(),
            label: n.domain.clone(),
            domain: n.failure_domain(),
            offline,
        });
    }
    let transfers = Transfers::new(
        root,
        nodes,
        cfg.limits.clone(),
        cfg.storage.max_pieces_per_domain,
        Arc::new(Metrics::new()),
    );
    for n in cfg.nodes.iter().filter(|n| n.drain) {
        transfers.set_draining(&n.id, true);
        tracing::info!(node = %n.id, "node is being drained: no new pieces, repair moves its pieces to the other nodes");
    }
    Ok(transfers)
}

/// What the admin listener reports about a running gateway.
struct AdminView {
    transfers: Arc<Transfers>,
    meta: Meta,
    scheme: Scheme,
    replication: ReplicationMode,
    orphan_grace: Option<std::time::Duration>,
    orphan_scan_interval: std::time::Duration,
    /// Pieces of a segment at full health (the scheme's success).
    full: u16,
    /// The background repair's threshold, when it runs.
    repair_threshold: Option<u16>,
    /// The audit's interval, when it runs.
    audit_interval: Option<std::time::Duration>,
}

impl AdminView {
    async fn health(&self) -> Result<HealthReport, String> {
        let counts = self.meta.health_counts().await.map_err(|e| e.to_string())?;
        let metrics = self.transfers.metrics();
        metrics
            .health
            .set_counts(&counts.by_healthy, &counts.not_ok);
        let repair = metrics.health.repair();
        let bytes = metrics
            .snapshot()
            .nodes
            .values()
            .map(|n| {
                n.sent_bytes
                    .get(Reason::Repair.as_str())
                    .copied()
                    .unwrap_or(0)
            })
            .fold(0u64, u64::saturating_add);
        Ok(HealthReport {
            full: self.full,
            repair_threshold: self.repair_threshold,
            segments: counts
                .by_healthy
                .iter()
                .map(|&(healthy, segments)| HealthyCount { healthy, segments })
                .collect(),
            pieces_not_ok: counts
                .not_ok
                .into_iter()
                .map(|(node, state, pieces)| PiecesNotOk {
                    node,
                    state,
                    pieces,
                })
                .collect(),
            findings: counts
                .findings
                .into_iter()
                .map(|(node, kind, found_by, count)| FindingCount {
                    node,
                    kind,
                    found_by,
                    count,
                })
                .collect(),
            repair: RepairStats {
                passes: repair.passes,
                segments: repair.segments,
                pieces: repair.pieces,
                bytes,
                failed: repair.failed,
                pending: repair.pending,
                last_pass_secs: repair.last_pass_secs,
            },
            audit: self.audit_interval.map(|interval| {
                let a = &metrics.health.audit;
                AuditStats {
                    interval_secs: interval.as_secs(),
                    passes: a.passes.get(),
                    pieces_listed: a.pieces_listed.get(),
                    pieces_sampled: a.pieces_sampled.get(),
                    bytes_verified: a.bytes_verified.get(),
                    missing: a.missing.get(),
                    corrupt: a.corrupt.get(),
                    last_pass_secs: a.last_pass_secs.get(),
                }
            }),
        })
    }
}

impl AdminSource for AdminView {
    fn metrics(&self) -> &Metrics {
        self.transfers.metrics()
    }

    fn stats(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<StatsReport, String>> + Send + '_>>
    {
        Box::pin(async move {
            let totals = self
                .meta
                .storage_totals()
                .await
                .map_err(|e| e.to_string())?;
            let limits = self.transfers.limits();
            let rep = self
                .meta
                .replication_state()
                .await
                .map_err(|e| e.to_string())?;
            let replication = Some(ReplicationReport {
                mode: match self.replication {
                    ReplicationMode::Async => "async",
                    ReplicationMode::Sync => "sync",
                    ReplicationMode::Off => "off",
                }
                .to_string(),
                last_seq: rep.last_seq,
                shipped_seq: rep.shipped_seq,
                snapshot: rep.snapshot,
                snapshot_seq: rep.snapshot_seq,
                snapshot_ms: rep.snapshot_ms,
                batches_since_snapshot: rep.next_batch.saturating_sub(rep.snapshot_batch),
                log_bytes_since_snapshot: rep.log_bytes_since_snapshot,
            });
            let orphans = Some(OrphanReport {
                grace_secs: self.orphan_grace.map(|g| g.as_secs()),
                scan_interval_secs: self.orphan_scan_interval.as_secs(),
                nodes: self.transfers.metrics().orphans(),
            });
            let health = Some(self.health().await?);
            let spaces = self.transfers.node_spaces(NODE_SPACE_TIMEOUT).await;
            Ok(StatsReport {
                health,
                orphans,
                replication,
                version: env!("CARGO_PKG_VERSION").to_string(),
                uptime_secs: self.transfers.metrics().uptime().as_secs(),
                scheme: self.scheme,
                limits: LimitsReport {
                    max_connections: limits.max_connections as u64,
                    max_per_node: limits.max_connections_per_node as u64,
                    upload_bytes_per_sec: limits.upload_rate,
                    download_bytes_per_sec: limits.download_rate,
                },
                stored: StoredTotals {
                    objects: totals.objects,
                    segments: totals.segments,
                    pieces: totals.pieces,
                    plain_bytes: totals.plain_bytes,
                    encoded_bytes: totals.encoded_bytes,
                    uploaded_bytes: totals.uploaded_bytes,
                    long_tail_bytes: totals.long_tail_bytes,
                },
                traffic: self.transfers.metrics().snapshot(),
                nodes: self
                    .transfers
                    .node_views()
                    .into_iter()
                    .zip(spaces)
                    .map(|(v, space)| NodeReport {
                        id: v.id,
                        kind: v.kind,
                        domain: v.domain,
                        state: v.health.rank.as_str().to_string(),
                        consecutive_errors: v.health.consecutive_errors,
                        backoff_remaining_ms: v.health.backoff_remaining.as_millis() as u64,
                        latency_ms: v.health.latency_ms,
                        last_error: v.health.last_error,
                        free_bytes: space.map(|s| s.free),
                        total_bytes: space.map(|s| s.total),
                    })
                    .collect(),
            })
        })
    }
}

/// A running gateway.
pub struct Gateway {
    pub addr: SocketAddr,
    /// The configuration it started with (command-line overrides applied).
    config: Config,
    /// The S3 listener's certificate when it serves TLS.
    tls: Option<Arc<ReloadableCert>>,
    /// Where the admin listener (metrics, stats) listens, when enabled.
    pub admin_addr: Option<SocketAddr>,
    pub layer: ObjectLayer,
    pub transfers: Arc<Transfers>,
    admin: Option<AdminServer>,
    replicator: Option<Replicator>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Gateway {
    /// Opens nodes and metadata, binds the listener and starts serving.
    pub async fn start(p: &Prepared) -> Result<Gateway, AppError> {
        let cfg = &p.config;
        // First of all: a certificate that does not load stops the start before the metadata,
        // the nodes or any background work is touched.
        let tls = match &cfg.server.tls {
            Some(files) => Some(ReloadableCert::load(files)?),
            None => None,
        };
        let acceptor = match &tls {
            Some(cert) => Some(TlsAcceptor::from(reloadable_server_config(
                cert.clone(),
                &[b"http/1.1"],
            )?)),
            None => None,
        };
        let meta = Meta::open(&cfg.metadata_file).await?;
        if let Some(check) = meta.key_check().await? {
            if check != p.root_key.key_check() {
                return Err(ReplicationError::ForeignStore.into());
            }
        }
        let transfers = open_transfers(cfg, &p.root_key, Some(&meta)).await?;
        let metrics = transfers.metrics().clone();
        // Before anything writes to the nodes (replication writes at start).
        sweep_stale_temp(cfg, &metrics).await;
        let replicator = Replicator::start(
            meta.clone(),
            transfers.clone(),
            &p.root_key,
            &cfg.storage.scheme,
            cfg.metadata.clone(),
            cfg.data_dir.clone(),
        )
        .await?;
        meta.set_key_check(&p.root_key.key_check()).await?;
        let layer_meta = if replicator.mode() == ReplicationMode::Sync {
            meta.clone()
                .with_durability(replicator.durable_watch(), cfg.metadata.sync_timeout)
        } else {
            meta.clone()
        };
        let admin = match cfg.admin_listen {
            Some(addr) => Some(
                AdminServer::start(
                    addr,
                    Arc::new(AdminView {
                        transfers: transfers.clone(),
                        meta: meta.clone(),
                        scheme: cfg.storage.scheme,
                        replication: cfg.metadata.replication,
                        orphan_grace: cfg.storage.orphan_grace,
                        orphan_scan_interval: cfg.storage.orphan_scan_interval,
                        full: cfg.storage.scheme.success,
                        audit_interval: cfg.audit.enabled.then_some(cfg.audit.interval),
                        repair_threshold: cfg.repair.enabled.then(|| {
                            RepairOptions::background(&cfg.storage.scheme, &cfg.repair).threshold
                        }),
                    }),
                )
                .await?,
            ),
            None => None,
        };
        let layer = ObjectLayer::new(
            cfg.storage.clone(),
            p.root_key.clone(),
            transfers.clone(),
            layer_meta,
        );
        if cfg.repair.enabled {
            layer.spawn_repair(
                RepairOptions::background(&cfg.storage.scheme, &cfg.repair),
                cfg.repair.interval,
            );
        }
        if cfg.audit.enabled {
            layer.spawn_audit(AuditOptions::background(&cfg.audit), cfg.audit.interval);
        }
        layer.start_orphan_collection(Some(&cfg.data_dir));
        let listener =
            crate::s3::listener::bind(cfg.listen).map_err(|source| AppError::Listen {
                addr: cfg.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| AppError::Listen {
            addr: cfg.listen,
            source,
        })?;
        let service = S3Service::new(
            layer.clone(),
            S3Config {
                region: cfg.region.clone(),
                credentials: p.credentials.clone(),
                domains: vec!["localhost".into()],
                metrics: Some(metrics),
                server: cfg.server.clone(),
            },
        );
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(service.serve(listener, acceptor, async {
            let _ = rx.await;
        }));
        Ok(Gateway {
            addr,
            config: cfg.clone(),
            tls,
            admin_addr: admin.as_ref().map(|a| a.addr()),
            admin,
            transfers,
            layer,
            replicator: Some(replicator),
            shutdown: Some(tx),
            task,
        })
    }

    /// `https` when the S3 listener serves TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Applies what can change while serving (SIGHUP) from `fresh`, the configuration file
    /// read again: the S3 listener's certificate and key are re-read from their files, and the
    /// node byte rates (`limits.upload_rate`, `download_rate`) take the file's values. Every
    /// other difference from the configuration the gateway started with is reported as
    /// needing a restart. A certificate pair that does not load is an error and changes
    /// nothing: the pair and the rates in use stay.
    pub fn reload(&self, fresh: &Config) -> Result<Reloaded, AppError> {
        let old = &self.config;
        let mut r = Reloaded::default();
        if fresh.server.tls == old.server.tls {
            if let Some(cert) = &self.tls {
                cert.reload()?;
                r.applied
                    .push(format!("TLS certificate {}", cert.files().cert.display()));
            }
        } else {
            r.need_restart.push("server.tls_cert/tls_key");
        }
        let running = self.transfers.limits();
        let (up, down) = (fresh.limits.upload_rate, fresh.limits.download_rate);
        if (up, down) != (running.upload_rate, running.download_rate) {
            self.transfers.set_rates(up, down);
            let show = |r: Option<u64>| r.map_or("unlimited".to_string(), |r| format!("{r} B/s"));
            r.applied.push(format!(
                "limits.upload_rate {}, limits.download_rate {}",
                show(up),
                show(down)
            ));
        }
        let without_rates = |l: &crate::config::LimitsConfig| crate::config::LimitsConfig {
            upload_rate: None,
            download_rate: None,
            ..l.clone()
        };
        let without_tls = |s: &crate::config::ServerConfig| crate::config::ServerConfig {
            tls: None,
            ..s.clone()
        };
        let changed = [
            ("data_dir", fresh.data_dir != old.data_dir),
            ("listen", fresh.listen != old.listen),
            ("admin_listen", fresh.admin_listen != old.admin_listen),
            ("region", fresh.region != old.region),
            ("key_file", fresh.key_file != old.key_file),
            (
                "credentials_file",
                fresh.credentials_file != old.credentials_file,
            ),
            ("storage", fresh.storage != old.storage),
            ("nodes", fresh.nodes != old.nodes),
            ("metadata", fresh.metadata != old.metadata),
            ("repair", fresh.repair != old.repair),
            ("audit", fresh.audit != old.audit),
            (
                "limits (other than the rates)",
                without_rates(&fresh.limits) != without_rates(&old.limits),
            ),
            (
                "server (other than tls_cert/tls_key)",
                without_tls(&fresh.server) != without_tls(&old.server),
            ),
        ];
        r.need_restart
            .extend(changed.iter().filter(|(_, c)| *c).map(|(name, _)| *name));
        Ok(r)
    }

    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let r = (&mut self.task).await.map_err(std::io::Error::other);
        if let Some(replicator) = self.replicator.take() {
            // Every acknowledged change goes to the nodes before the process ends, however
            // the server task ended.
            replicator.stop(SHUTDOWN_SHIP_DEADLINE).await;
        }
        let r = r?;
        if let Some(admin) = self.admin.take() {
            admin.stop().await;
        }
        r
    }

    /// Waits until the server ends (it ends only through [`Gateway::stop`] or an error).
    pub async fn wait(&mut self) -> std::io::Result<()> {
        (&mut self.task).await.map_err(std::io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_creates_and_later_starts_reuse() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let p = prepare(&data, None).unwrap();
        assert!(p.created_config);
        assert_eq!(p.config.nodes.len(), 6);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |f: &str| {
                std::fs::metadata(data.join(f))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777
            };
            assert_eq!(mode("root.key"), 0o600);
            assert_eq!(mode("credentials.toml"), 0o600);
        }
        let again = prepare(&data, None).unwrap();
        assert!(!again.created_config);
        assert_eq!(again.credentials.secret_key, p.credentials.secret_key);
        assert_eq!(
            std::fs::read(&p.config.key_file).unwrap(),
            std::fs::read(&again.config.key_file).unwrap()
        );
    }

    #[test]
    fn never_replaces_a_lost_key_of_an_existing_store() {
        let dir = tempfile::tempdir().unwrap();
        let p = prepare(dir.path(), None).unwrap();
        std::fs::write(&p.config.metadata_file, b"").unwrap();
        std::fs::remove_file(&p.config.key_file).unwrap();
        assert!(matches!(
            prepare(dir.path(), None),
            Err(AppError::MissingKey(_))
        ));
    }

    #[test]
    fn explicit_missing_config_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        assert!(prepare(dir.path(), Some(&missing)).is_err());
    }

    #[tokio::test]
    async fn remote_nodes_open_lazily_and_need_their_token_file() {
        let dir = tempfile::tempdir().unwrap();
        let token = crate::nodes::protocol::NodeToken::generate().unwrap();
        std::fs::write(dir.path().join("t1"), token.to_hex()).unwrap();
        // Both listeners on ports the system picks: the default admin port may be taken by a
        // gateway running on this machine.
        let mut cfg = String::from(
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[storage]\nscheme = \"1/1/2/2\"\n",
        );
        // A port that was free a moment ago: nothing listens there (nodes open without connecting).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        for (id, file) in [("r1", "t1"), ("r2", "t2")] {
            cfg.push_str(&format!(
                "[[nodes]]\nid = \"{id}\"\nkind = \"remote\"\naddress = \"http://127.0.0.1:{port}\"\ntoken_file = \"{file}\"\n"
            ));
        }
        std::fs::write(dir.path().join("config.toml"), &cfg).unwrap();
        let p = prepare(dir.path(), None).unwrap();
        match Gateway::start(&p).await {
            Err(AppError::Config(e)) => assert_eq!(e.field, "nodes[1].token_file"),
            Err(e) => panic!("expected a config error, got {e}"),
            Ok(_) => panic!("started without a token file"),
        }
        std::fs::write(dir.path().join("t2"), token.to_hex()).unwrap();
        let gw = Gateway::start(&p).await.unwrap();
        gw.stop().await.unwrap();
    }
}
