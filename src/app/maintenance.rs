//! Offline maintenance of a stopped gateway's data directory: `gateway repair` (every degraded
//! segment back to full health, in the foreground), `gateway node list`, `gateway node
//! replace` (a lost node's pieces are rebuilt on its empty replacement), `gateway node drain`
//! (a node's pieces move to the others) and `gateway node remove` (a drained or lost node
//! leaves the configuration).
//!
//! Each takes the data directory's lock like `gateway run` (a running gateway repairs in the
//! background, see `object::repair`), opens the metadata and the nodes, and ships its metadata
//! changes to the nodes before returning.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::config_edit::ConfigEdit;
use super::lock::DataDirLock;
use super::{open_transfers, AppError};
use crate::config::{Config, ConfigError, NodeKind, CONFIG_FILE};
use crate::crypto::RootKey;
use crate::meta::Meta;
use crate::object::repair::{PassProgress, RepairOptions, RepairReport};
use crate::object::ObjectLayer;
use crate::replication::{ReplicationError, Replicator};
use crate::transfer::Transfers;

/// How long a maintenance command keeps shipping its metadata changes at the end.
const SHIP_DEADLINE: Duration = Duration::from_secs(30);

/// An opened, locked data directory.
struct Opened {
    cfg: Config,
    meta: Meta,
    transfers: Arc<Transfers>,
    replicator: Replicator,
    _lock: DataDirLock,
}

fn config_path(data_dir: &Path, config: Option<&Path>) -> PathBuf {
    config
        .map(Path::to_path_buf)
        .unwrap_or_else(|| data_dir.join(CONFIG_FILE))
}

fn load(data_dir: &Path, config: Option<&Path>) -> Result<(Config, RootKey), AppError> {
    let path = config_path(data_dir, config);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        AppError::Config(ConfigError::new(
            "--config",
            format!("{}: {e} (no gateway configured here)", path.display()),
        ))
    })?;
    let cfg = Config::parse(&text, data_dir)?;
    if !cfg.metadata_file.exists() {
        return Err(AppError::Config(ConfigError::new(
            "--data-dir",
            format!("{} holds no metadata", cfg.data_dir.display()),
        )));
    }
    let root = RootKey::load(&cfg.key_file)?;
    Ok((cfg, root))
}

async fn open(cfg: Config, root: &RootKey) -> Result<Opened, AppError> {
    let lock = DataDirLock::acquire(&cfg.data_dir)?;
    let meta = Meta::open(&cfg.metadata_file).await?;
    if let Some(check) = meta.key_check().await? {
        if check != root.key_check() {
            return Err(ReplicationError::ForeignStore.into());
        }
    }
    let transfers = open_transfers(&cfg, root, Some(&meta)).await?;
    let replicator = Replicator::start(
        meta.clone(),
        transfers.clone(),
        root,
        &cfg.storage.scheme,
        cfg.metadata.clone(),
        cfg.data_dir.clone(),
    )
    .await?;
    Ok(Opened {
        cfg,
        meta,
        transfers,
        replicator,
        _lock: lock,
    })
}

/// `gateway repair`: repairs every segment below full health (`success` healthy pieces on
/// reachable nodes) that can be repaired now, and moves the pieces of draining nodes;
/// `progress` sees each step.
pub async fn run_repair(
    data_dir: &Path,
    config: Option<&Path>,
    progress: &(dyn Fn(PassProgress) + Send + Sync),
) -> Result<RepairReport, AppError> {
    let (cfg, root) = load(data_dir, config)?;
    let o = open(cfg, &root).await?;
    let report = full_pass(&o, root, progress).await;
    o.replicator.stop(SHIP_DEADLINE).await;
    report
}

async fn full_pass(
    o: &Opened,
    root: RootKey,
    progress: &(dyn Fn(PassProgress) + Send + Sync),
) -> Result<RepairReport, AppError> {
    let layer = ObjectLayer::new(
        o.cfg.storage.clone(),
        root,
        o.transfers.clone(),
        o.meta.clone(),
    );
    // Offline nodes cannot come back during this command: their pieces count as lost.
    let opts = RepairOptions {
        offline_after: Duration::ZERO,
        ..RepairOptions::full(&o.cfg.storage.scheme, &o.cfg.repair)
    };
    Ok(layer.repair_pass(&opts, progress).await?)
}

/// What `gateway node drain` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drained {
    /// The repair pass that moved the pieces (and repaired whatever else needed it).
    pub report: RepairReport,
    /// Healthy pieces the metadata still places on the node (0: drained, it can be removed).
    pub left: u64,
}

/// `gateway node drain ID`: marks the node `drain = true` in the configuration (it gets no new
/// pieces, and a running gateway keeps moving its pieces in the background), then moves every
/// piece it holds to the other nodes now, reading from it where it can, like `gateway repair`.
pub async fn drain_node(
    data_dir: &Path,
    config: Option<&Path>,
    id: &str,
    progress: &(dyn Fn(PassProgress) + Send + Sync),
) -> Result<Drained, AppError> {
    let (_, root) = load(data_dir, config)?;
    // The lock first: the configuration of a running gateway is not edited under it.
    let lock = DataDirLock::acquire(data_dir)?;
    let path = config_path(data_dir, config);
    let mut edit = ConfigEdit::open(&path, data_dir)?;
    if edit.set_drain(id, true)? {
        edit.save()?;
    }
    drop(lock);
    let (cfg, _) = load(data_dir, config)?;
    let o = open(cfg, &root).await?;
    let report = full_pass(&o, root, progress).await;
    let left = match &report {
        Ok(_) => o.meta.node_holds_pieces(id).await,
        Err(_) => Ok(0),
    };
    o.replicator.stop(SHIP_DEADLINE).await;
    Ok(Drained {
        report: report?,
        left: left?,
    })
}

/// What `gateway node remove` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Pieces recorded as lost (`--lost`): repair rebuilds them on the other nodes.
    pub lost: u64,
    /// The removed node's directory (left as it was: deleting it is the operator's call).
    pub directory: Option<PathBuf>,
}

/// `gateway node remove ID`: takes the node out of the configuration. Refused while the
/// metadata places healthy pieces on it, unless `lost` (its data is gone for good: they are
/// recorded as lost and repair rebuilds them on the other nodes). The configuration must stay
/// valid without it (enough nodes for the scheme), which is checked before anything changes.
pub async fn remove_node(
    data_dir: &Path,
    config: Option<&Path>,
    id: &str,
    lost: bool,
) -> Result<Removed, AppError> {
    let (cfg, root) = load(data_dir, config)?;
    let Some(node) = cfg.nodes.iter().find(|n| n.id == id).cloned() else {
        return Err(AppError::Config(ConfigError::new(
            "node",
            format!("no node {id:?} in the configuration"),
        )));
    };
    let lock = DataDirLock::acquire(&cfg.data_dir)?;
    let path = config_path(data_dir, config);
    let mut edit = ConfigEdit::open(&path, data_dir)?;
    edit.remove_node(id)?;
    let after = edit.check()?;
    let meta = Meta::open(&cfg.metadata_file).await?;
    if let Some(check) = meta.key_check().await? {
        if check != root.key_check() {
            return Err(ReplicationError::ForeignStore.into());
        }
    }
    let held = meta.node_holds_pieces(id).await?;
    let mut marked = 0;
    if held > 0 {
        if !lost {
            return Err(AppError::Config(ConfigError::new(
                "node",
                format!(
                    "{id} still holds {held} pieces: run `gateway node drain {id}` first to move \
                     them, or, if its data is gone for good, `gateway node remove {id} --lost` \
                     (repair then rebuilds them on the other nodes)"
                ),
            )));
        }
        marked = meta.mark_node_lost(id, "node removed").await?;
    }
    edit.save()?;
    drop(meta);
    drop(lock);
    // Ship the change (with the nodes that remain).
    match open(after, &root).await {
        Ok(o) => o.replicator.stop(SHIP_DEADLINE).await,
        Err(e) => {
            tracing::warn!(error = %e, "could not ship the change to the nodes now; the gateway ships it at its next start")
        }
    }
    Ok(Removed {
        lost: marked,
        directory: match node.kind {
            NodeKind::Dir { path } => Some(path),
            _ => None,
        },
    })
}

/// One configured node, as `gateway node list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeListing {
    pub id: String,
    pub kind: &'static str,
    pub location: String,
    /// Healthy pieces the metadata places on it.
    pub pieces: u64,
    /// `None` when it opened; else why not.
    pub unavailable: Option<String>,
    /// Being drained (`drain = true`).
    pub draining: bool,
}

/// `gateway node list`.
pub async fn list_nodes(
    data_dir: &Path,
    config: Option<&Path>,
) -> Result<Vec<NodeListing>, AppError> {
    let (cfg, root) = load(data_dir, config)?;
    let _lock = DataDirLock::acquire(&cfg.data_dir)?;
    let meta = Meta::open(&cfg.metadata_file).await?;
    let transfers = open_transfers(&cfg, &root, Some(&meta)).await?;
    let views = transfers.node_views();
    let mut out = Vec::new();
    for (n, v) in cfg.nodes.iter().zip(views) {
        let (kind, location) = match &n.kind {
            NodeKind::Dir { path } => ("dir", path.display().to_string()),
            NodeKind::Remote(r) => ("remote", r.address.clone()),
            NodeKind::S3(s) => ("s3", format!("{}/{}", s.endpoint, s.bucket)),
        };
        out.push(NodeListing {
            id: n.id.clone(),
            kind,
            location,
            pieces: meta.node_holds_pieces(&n.id).await?,
            unavailable: (v.health.rank == crate::transfer::health::Rank::Offline)
                .then(|| v.health.last_error.unwrap_or_default()),
            draining: n.drain,
        });
    }
    Ok(out)
}

/// What `gateway node replace` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    /// Pieces recorded as lost (repair rebuilds them).
    pub lost: u64,
    /// A directory node initialised empty, if any.
    pub initialised: Option<PathBuf>,
}

/// `gateway node replace ID`: the node's previous contents are gone; every piece the metadata
/// places on it is recorded as lost, and an empty directory node is initialised. The next
/// repair (background, or `gateway repair`) refills it.
pub async fn replace_node(
    data_dir: &Path,
    config: Option<&Path>,
    id: &str,
) -> Result<Replaced, AppError> {
    let (cfg, root) = load(data_dir, config)?;
    let Some(node) = cfg.nodes.iter().find(|n| n.id == id).cloned() else {
        return Err(AppError::Config(ConfigError::new(
            "node",
            format!("no node {id:?} in the configuration"),
        )));
    };
    let lock = DataDirLock::acquire(&cfg.data_dir)?;
    let meta = Meta::open(&cfg.metadata_file).await?;
    if let Some(check) = meta.key_check().await? {
        if check != root.key_check() {
            return Err(ReplicationError::ForeignStore.into());
        }
    }
    let mut initialised = None;
    if let NodeKind::Dir { path } = &node.kind {
        // Refuse a directory that is neither empty nor a node: it may be the wrong path.
        let marker = path.join(crate::nodes::dir::MARKER);
        let empty = match std::fs::read_dir(path) {
            Ok(mut entries) => entries.next().is_none(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => {
                return Err(AppError::Config(ConfigError::new(
                    "node",
                    format!("{}: {e}", path.display()),
                )))
            }
        };
        if !empty && !marker.exists() {
            return Err(AppError::Config(ConfigError::new(
                "node",
                format!(
                    "{} is neither empty nor a node directory; not replacing",
                    path.display()
                ),
            )));
        }
    }
    let lost = meta.mark_node_lost(id, "node replaced").await?;
    if let NodeKind::Dir { path } = &node.kind {
        if !path.join(crate::nodes::dir::MARKER).exists() {
            crate::nodes::DirNode::open(id, path, true)
                .map_err(|e| AppError::Config(ConfigError::new("node", e.to_string())))?;
            initialised = Some(path.clone());
        }
    }
    drop(meta);
    drop(lock);
    // Ship the change (the replacement must survive a metadata recovery).
    let o = open(cfg, &root).await;
    match o {
        Ok(o) => o.replicator.stop(SHIP_DEADLINE).await,
        Err(e) => {
            tracing::warn!(error = %e, "could not ship the replacement to the nodes now; the gateway ships it at its next start")
        }
    }
    Ok(Replaced { lost, initialised })
}
