//! The `gateway` binary: command-line parsing and process concerns (logging, signals, exit
//! codes). `anyhow` lives only here; everything else is the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gateway::app::key_backup;
use gateway::app::lock::DataDirLock;
use gateway::app::{default_data_dir, prepare, AppError, Gateway};
use gateway::config::ConfigError;
use gateway::crypto::backup::{write_new_private, Installed};
use gateway::nodes::protocol::TokenError;
use gateway::nodes::server::{NodeServer, NodeServerError, NodeServerOptions};
use gateway::progress::Progress;
use gateway::tls::TlsFiles;

#[derive(Parser)]
#[command(
    name = "gateway",
    version,
    about = "Self-hosted S3 gateway: end-to-end encrypted, erasure-coded storage"
)]
struct Cli {
    /// Log line format on stderr: `text` (coloured only on a terminal, and never with
    /// NO_COLOR set) or `json` (one object per line, for journald and log shippers).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "GATEWAY_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Whether stderr carries JSON lines only (`--log-format json`): then the last error line and
/// warnings go through the logger too.
static LOG_JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Installs the stderr logger: `GATEWAY_LOG` filters (default `info`); colour only when stderr
/// is a terminal and NO_COLOR is unset, so files and journald get plain text.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEWAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => {
            LOG_JSON.store(true, std::sync::atomic::Ordering::Relaxed);
            builder.json().with_current_span(false).init()
        }
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            builder.with_ansi(colour).init()
        }
    }
}

/// One line for a failure: the error and its causes, each cause only when the text so far
/// does not already say it (most errors here print their source themselves, so anyhow's `{:#}`
/// would repeat it: "cannot listen on X: Address in use: Address in use").
fn error_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

#[derive(Subcommand)]
enum Command {
    /// Serve S3. With no configuration in the data directory, creates the embedded default
    /// (a fresh root key, S3 credentials and six local directory nodes).
    Run {
        /// Configuration file (default: DATA_DIR/config.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (default: $XDG_DATA_HOME/gateway or ~/.local/share/gateway).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[command(flatten)]
        overrides: RunOverrides,
    },
    /// Print a running gateway's statistics: what is stored and what it cost to upload
    /// (expansion factor, long tail), traffic per node, node health.
    /// Rebuild this data directory's metadata from the nodes (after losing the disk that
    /// held it): the newest snapshot plus the change log, verified end to end. Needs the
    /// configuration naming the nodes and the root key; writes nothing unless it succeeds.
    Recover {
        /// Configuration file naming the nodes (default: DATA_DIR/config.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (default: $XDG_DATA_HOME/gateway or ~/.local/share/gateway).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Root key file, as `gateway key export` wrote it (plain or passphrase-wrapped);
        /// default: the configured key file. Installed as the key file if that is missing.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// File holding the passphrase of a wrapped --key-file (or GATEWAY_KEY_PASSPHRASE).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        /// Replace an existing metadata store (it is moved aside, not deleted).
        #[arg(long)]
        force: bool,
    },
    /// Rebuild every degraded segment (missing, corrupt or lost pieces, degraded writes, pieces
    /// on offline nodes) up to full health, in the foreground with progress on stderr. Run it
    /// with the gateway stopped; a running gateway repairs in the background.
    Repair {
        /// Configuration file (default: DATA_DIR/config.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (default: $XDG_DATA_HOME/gateway or ~/.local/share/gateway).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Plan an upload before doing it: the bytes sent to the nodes, the expected upload time
    /// over your uplink, the connections it takes and the long-tail waste, for a data size or
    /// a directory, with this data directory's configuration (or the embedded default).
    Plan {
        /// Your uplink to the nodes: bits per second ("100Mbit", "1Gbps") or bytes ("12MiB").
        #[arg(long, value_parser = gateway::app::plan::parse_rate)]
        uplink: u64,
        /// The data size to plan for ("500GiB"), as --objects objects of equal size.
        #[arg(long, value_parser = gateway::config::parse_size, conflicts_with = "dir", required_unless_present = "dir")]
        size: Option<u64>,
        /// How many objects --size is made of.
        #[arg(long, default_value_t = 1, requires = "size")]
        objects: u64,
        /// A directory to be backed up: one object per file (as rclone copies; restic packs
        /// files into pack files instead, so give it --size with the repository's size).
        #[arg(long, conflicts_with = "size")]
        dir: Option<PathBuf>,
        /// Scheme minimum/repair/success/total (default: the configuration's).
        #[arg(long, value_parser = |s: &str| s.parse::<gateway::erasure::Scheme>())]
        scheme: Option<gateway::erasure::Scheme>,
        /// Number of nodes (default: the configuration's).
        #[arg(long)]
        nodes: Option<usize>,
        /// Price per GB-month of node storage, for a cost line.
        #[arg(long)]
        price_per_gb: Option<f64>,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
        /// Configuration file (default: DATA_DIR/config.toml if it exists).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (default: $XDG_DATA_HOME/gateway or ~/.local/share/gateway).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    Stats {
        /// The gateway's admin listener.
        #[arg(long, default_value = gateway::config::DEFAULT_ADMIN_LISTEN)]
        admin: String,
        /// Print the raw JSON report instead.
        #[arg(long)]
        json: bool,
    },
    /// Storage node commands.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Root key backup: without the root key, every object is lost.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Write the data directory's root key to --out (a new file, mode 0600) or stdout. With a
    /// passphrase (--passphrase-file, or GATEWAY_KEY_PASSPHRASE) the copy is wrapped with
    /// Argon2id and XChaCha20-Poly1305.
    Export {
        /// Configuration file (default: DATA_DIR/config.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (default: $XDG_DATA_HOME/gateway or ~/.local/share/gateway).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Where to write the backup (never overwritten; default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        /// File holding the passphrase (one trailing newline is dropped).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Install a backup (plain or wrapped) as the data directory's root key (mode 0600).
    /// An existing, different root key is never replaced.
    Import {
        /// The backup written by `gateway key export`.
        file: PathBuf,
        /// Configuration file (default: DATA_DIR/config.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (default: $XDG_DATA_HOME/gateway or ~/.local/share/gateway).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// File holding the passphrase of a wrapped backup (else GATEWAY_KEY_PASSPHRASE).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum NodeCommand {
    /// List the configured nodes with the pieces the metadata places on each (gateway
    /// stopped).
    List {
        /// Configuration file (default: DATA_DIR/config.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (default: $XDG_DATA_HOME/gateway or ~/.local/share/gateway).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Declare a node's data lost and accept its replacement (an empty directory, a new node
    /// server or bucket under the same id): its pieces are recorded as lost, an empty directory
    /// node is initialised, and repair refills it (gateway stopped).
    Replace {
        /// The node's id in the configuration.
        id: String,
        /// Configuration file (default: DATA_DIR/config.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (default: $XDG_DATA_HOME/gateway or ~/.local/share/gateway).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Move every piece off a node before removing it (gateway stopped): sets `drain = true`
    /// on it in the configuration (no new pieces go there; a running gateway keeps moving its
    /// pieces in the background) and moves them to the other nodes now.
    Drain {
        /// The node's id in the configuration.
        id: String,
        /// Configuration file (default: DATA_DIR/config.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (default: $XDG_DATA_HOME/gateway or ~/.local/share/gateway).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Take a node out of the configuration (gateway stopped). Refused while it holds pieces,
    /// unless --lost.
    Remove {
        /// The node's id in the configuration.
        id: String,
        /// Its data is gone for good: record its pieces as lost (repair rebuilds them on the
        /// other nodes) instead of refusing.
        #[arg(long)]
        lost: bool,
        /// Configuration file (default: DATA_DIR/config.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (default: $XDG_DATA_HOME/gateway or ~/.local/share/gateway).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Serve one directory's pieces to gateways over HTTP (HTTP/1.1 and h2c), or only over
    /// TLS with --tls-cert and --tls-key. The directory is initialised when absent or empty.
    Run {
        /// Node directory.
        #[arg(long)]
        dir: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7001")]
        listen: SocketAddr,
        /// Token file shared with the gateway (default: DIR/token, created on first start).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Free space to keep on the node's filesystem ("10GiB"); uploads that would go below
        /// it are refused.
        #[arg(long, default_value = "1GiB", value_parser = gateway::config::parse_size)]
        reserve: u64,
        /// PEM certificate chain (leaf first): serve only TLS (https://, ALPN h2 and
        /// http/1.1). Gateways trust it through their CA file or the system roots.
        #[arg(long, value_name = "PEM", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key of --tls-cert.
        #[arg(long, value_name = "PEM", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Configuration mistakes get exit code 2 and one line naming the field.
            let code = match (
                e.downcast_ref::<AppError>(),
                e.downcast_ref::<NodeServerError>(),
            ) {
                (Some(AppError::Config(_)), _) => 2,
                (Some(AppError::Tls(_)), _) => 2,
                (_, Some(NodeServerError::Token(TokenError::Malformed { .. }))) => 2,
                // A certificate or key that cannot be used is a configuration mistake too.
                (_, Some(NodeServerError::Tls(_))) => 2,
                _ => 1,
            };
            if LOG_JSON.load(std::sync::atomic::Ordering::Relaxed) {
                tracing::error!(exit_code = code, "error: {}", error_line(&e));
            } else {
                eprintln!("error: {}", error_line(&e));
            }
            ExitCode::from(code)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run {
            config,
            data_dir,
            overrides,
        } => {
            let data_dir = data_dir.unwrap_or_else(default_data_dir);
            let mut prepared = prepare(&data_dir, config.as_deref())?;
            if prepared.created_key {
                let warning = key_backup::new_key_warning(
                    &prepared.config.key_file,
                    &prepared.config.data_dir,
                    config.as_deref(),
                );
                if LOG_JSON.load(std::sync::atomic::Ordering::Relaxed) {
                    for line in warning.lines() {
                        tracing::warn!("{}", line.trim_start_matches("WARNING: "));
                    }
                } else {
                    eprint!("{warning}");
                }
            }
            overrides.apply(&mut prepared.config)?;
            if prepared.created_config {
                println!(
                    "created a new gateway in {} (back up {} — without it the data cannot be read)",
                    prepared.config.data_dir.display(),
                    prepared.config.key_file.display()
                );
            }
            // Held until this process ends: a second gateway on the same data directory is
            // refused with a message naming this one.
            let mut lock = DataDirLock::acquire(&prepared.config.data_dir)?;
            // Installed before the start, which can take a while: a signal meanwhile waits
            // for the loop below instead of killing the process.
            let mut signals = Signals::new()?;
            let mut gw = Gateway::start(&prepared).await?;
            lock.record_listeners(gw.addr, gw.admin_addr)?;
            println!("gateway listening on {}://{}", gw.scheme(), gw.addr);
            println!("  access key: {}", prepared.credentials.access_key);
            if prepared.credentials_from_env {
                println!("  secret key: from GATEWAY_SECRET_KEY");
            } else {
                println!(
                    "  secret key: in {}",
                    prepared.config.credentials_file.display()
                );
            }
            if let Some(a) = gw.admin_addr {
                println!("  admin (metrics, stats): http://{a}");
            }
            println!(
                "  scheme {} over {} nodes",
                prepared.config.storage.scheme,
                prepared.config.nodes.len()
            );
            tracing::info!(
                s3 = %format!("{}://{}", gw.scheme(), gw.addr),
                admin = ?gw.admin_addr,
                "serving"
            );
            tell_manager(&format!(
                "READY=1\nSTATUS=serving S3 on {}://{}",
                gw.scheme(),
                gw.addr
            ));
            loop {
                tokio::select! {
                    r = gw.wait() => {
                        r?;
                        break;
                    }
                    signal = signals.next() => match signal {
                        Signal::Reload => {
                            tell_manager("RELOADING=1\nSTATUS=reloading");
                            let fresh = gateway::app::load_config(&data_dir, config.as_deref())
                                .and_then(|mut fresh| overrides.apply(&mut fresh).map(|()| fresh));
                            match fresh.and_then(|fresh| gw.reload(&fresh)) {
                                Ok(r) => {
                                    if r.applied.is_empty() {
                                        tracing::info!("SIGHUP: nothing to reload");
                                    } else {
                                        tracing::info!(reloaded = %r.applied.join("; "), "SIGHUP: reloaded");
                                    }
                                    if !r.need_restart.is_empty() {
                                        tracing::warn!(
                                            changed = %r.need_restart.join(", "),
                                            "SIGHUP: these settings changed in the configuration file and take effect at the next restart"
                                        );
                                    }
                                }
                                Err(e) => tracing::error!(error = %e, "SIGHUP: reload failed; the settings in use stay"),
                            }
                            tell_manager(&format!(
                                "READY=1\nSTATUS=serving S3 on {}://{}",
                                gw.scheme(),
                                gw.addr
                            ));
                        }
                        Signal::Stop => {
                            tracing::info!(
                                "shutting down: no new connections; requests in flight get up to {:?}",
                                prepared.config.server.drain_timeout
                            );
                            tell_manager("STOPPING=1\nSTATUS=draining requests in flight");
                            tokio::select! {
                                r = gw.stop() => r?,
                                _ = signals.next_stop() => {
                                    // A second stop: the operator does not want to wait.
                                    // Acknowledged writes are durable already.
                                    tracing::warn!("second stop signal: exiting without finishing the drain");
                                    std::process::exit(1);
                                }
                            }
                            break;
                        }
                    }
                }
            }
            Ok(())
        }
        Command::Key { command } => run_key(command),
        Command::Recover {
            config,
            data_dir,
            key_file,
            passphrase_file,
            force,
        } => {
            let passphrase = match &key_file {
                Some(_) => key_backup::passphrase(passphrase_file.as_deref())?,
                None => None,
            };
            let opts = gateway::app::recover::RecoverOptions {
                data_dir: data_dir.unwrap_or_else(default_data_dir),
                config,
                key_file,
                passphrase,
                force,
                progress: true,
            };
            let recovered = gateway::app::recover::run_recover(&opts).await?;
            print!("{}", gateway::app::recover::render(&recovered));
            Ok(())
        }
        Command::Repair { config, data_dir } => {
            let data_dir = data_dir.unwrap_or_else(default_data_dir);
            let started = std::time::Instant::now();
            let progress = Progress::stderr(true);
            let draw = |p: gateway::object::repair::PassProgress| {
                let written = format!("{} written", gateway::admin::human_bytes(p.bytes_sent));
                progress.update("repair: segments", p.done, Some(p.queued), &written);
            };
            let r =
                gateway::app::maintenance::run_repair(&data_dir, config.as_deref(), &draw).await;
            progress.finish();
            let r = r?;
            println!(
                "repaired {} of {} segments checked: {} pieces, {} bytes written in {:.1} s; {} could not be repaired now",
                r.repaired,
                r.checked,
                r.pieces_written,
                r.bytes_sent,
                started.elapsed().as_secs_f64(),
                r.failed
            );
            if r.failed > 0 {
                anyhow::bail!("{} segments could not be repaired (see the log)", r.failed);
            }
            Ok(())
        }
        Command::Node {
            command: NodeCommand::List { config, data_dir },
        } => {
            let data_dir = data_dir.unwrap_or_else(default_data_dir);
            let nodes = gateway::app::maintenance::list_nodes(&data_dir, config.as_deref()).await?;
            for n in nodes {
                let mut state = match &n.unavailable {
                    None => "ok".to_string(),
                    Some(why) => format!("UNAVAILABLE: {why}"),
                };
                if n.draining {
                    state.push_str(", draining");
                }
                println!(
                    "{}\t{}\t{}\t{} pieces\t{state}",
                    n.id, n.kind, n.location, n.pieces
                );
            }
            Ok(())
        }
        Command::Node {
            command:
                NodeCommand::Replace {
                    id,
                    config,
                    data_dir,
                },
        } => {
            let data_dir = data_dir.unwrap_or_else(default_data_dir);
            let r =
                gateway::app::maintenance::replace_node(&data_dir, config.as_deref(), &id).await?;
            if let Some(dir) = &r.initialised {
                println!("initialised {} as node {id}", dir.display());
            }
            println!(
                "node {id}: {} pieces recorded as lost; repair rebuilds them (`gateway repair`, or the running gateway in the background)",
                r.lost
            );
            Ok(())
        }
        Command::Node {
            command:
                NodeCommand::Drain {
                    id,
                    config,
                    data_dir,
                },
        } => {
            let data_dir = data_dir.unwrap_or_else(default_data_dir);
            let progress = Progress::stderr(true);
            let phase = format!("drain {id}: segments");
            let draw = |p: gateway::object::repair::PassProgress| {
                let written = format!("{} written", gateway::admin::human_bytes(p.bytes_sent));
                progress.update(&phase, p.done, Some(p.queued), &written);
            };
            let d = gateway::app::maintenance::drain_node(&data_dir, config.as_deref(), &id, &draw)
                .await;
            progress.finish();
            let d = d?;
            println!(
                "node {id} is draining: {} segments rewritten ({} pieces, {} bytes written), {} pieces left on it",
                d.report.repaired, d.report.pieces_written, d.report.bytes_sent, d.left
            );
            if d.left > 0 || d.report.failed > 0 {
                anyhow::bail!(
                    "{} pieces are still on {id} ({} segments failed, see the log): run the command again, or let the running gateway finish in the background",
                    d.left,
                    d.report.failed
                );
            }
            println!("node {id} is drained: `gateway node remove {id}` takes it out of the configuration");
            Ok(())
        }
        Command::Node {
            command:
                NodeCommand::Remove {
                    id,
                    lost,
                    config,
                    data_dir,
                },
        } => {
            let data_dir = data_dir.unwrap_or_else(default_data_dir);
            let r = gateway::app::maintenance::remove_node(&data_dir, config.as_deref(), &id, lost)
                .await?;
            if r.lost > 0 {
                println!(
                    "node {id}: {} pieces recorded as lost; repair rebuilds them on the other nodes",
                    r.lost
                );
            }
            println!("node {id} removed from the configuration");
            if let Some(dir) = &r.directory {
                println!("its directory {} was left as it was", dir.display());
            }
            Ok(())
        }
        Command::Plan {
            uplink,
            size,
            objects,
            dir,
            scheme,
            nodes,
            price_per_gb,
            json,
            config,
            data_dir,
        } => {
            use gateway::app::plan::{plan, render, DataSet};
            let data_dir = data_dir.unwrap_or_else(default_data_dir);
            let exists = config
                .clone()
                .unwrap_or_else(|| data_dir.join("config.toml"))
                .exists();
            let cfg = if exists || config.is_some() {
                Some(gateway::app::load_config(&data_dir, config.as_deref())?)
            } else {
                None
            };
            let mut storage = cfg.as_ref().map(|c| c.storage.clone()).unwrap_or_default();
            let limits = cfg.as_ref().map(|c| c.limits.clone()).unwrap_or_default();
            if let Some(s) = scheme {
                storage.scheme = s;
            }
            let nodes = nodes.or(cfg.as_ref().map(|c| c.nodes.len())).unwrap_or(6);
            let data = match (&dir, size) {
                (Some(d), _) => DataSet::directory(d)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", d.display()))?,
                (None, Some(size)) => DataSet::even(size, objects),
                (None, None) => anyhow::bail!("give --size or --dir"),
            };
            let p = plan(&data, &storage, &limits, nodes, uplink, price_per_gb);
            if json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else {
                print!("{}", render(&p));
            }
            Ok(())
        }
        Command::Stats { admin, json } => {
            let report = gateway::admin::fetch_stats(&admin).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", gateway::admin::render(&report));
            }
            Ok(())
        }
        Command::Node {
            command:
                NodeCommand::Run {
                    dir,
                    listen,
                    token_file,
                    reserve,
                    tls_cert,
                    tls_key,
                },
        } => {
            let opts = NodeServerOptions {
                dir,
                listen,
                token_file,
                reserve,
                tls: tls_cert
                    .zip(tls_key)
                    .map(|(cert, key)| TlsFiles { cert, key }),
            };
            let mut signals = Signals::new()?;
            let mut server = NodeServer::start(&opts).await?;
            let scheme = if opts.tls.is_some() { "https" } else { "http" };
            // Tests and scripts read the address from this first line.
            println!("gateway node listening on {scheme}://{}", server.addr());
            println!("  directory: {}", opts.dir.display());
            if let Some(tls) = &opts.tls {
                println!("  certificate: {}", tls.cert.display());
            }
            if server.token_created() {
                println!(
                    "  token: created {} (give it to the gateway as this node's token_file)",
                    server.token_file().display()
                );
            } else {
                println!("  token: {}", server.token_file().display());
            }
            println!("  reserve: {reserve} bytes");
            let swept = server.stale_temp_removed();
            if swept.files > 0 {
                println!(
                    "  removed {} unfinished uploads ({} bytes)",
                    swept.files, swept.bytes
                );
            }
            tell_manager(&format!(
                "READY=1\nSTATUS=serving pieces on {scheme}://{}",
                server.addr()
            ));
            loop {
                tokio::select! {
                    _ = server.wait() => break,
                    signal = signals.next() => match signal {
                        Signal::Reload => match server.reload_tls() {
                            Ok(true) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                            Ok(false) => tracing::info!("SIGHUP: nothing to reload (no TLS)"),
                            Err(e) => tracing::error!(error = %e, "SIGHUP: reload failed; the certificate in use stays"),
                        },
                        Signal::Stop => {
                            tracing::info!("shutting down");
                            tell_manager("STOPPING=1");
                            server.stop().await;
                            break;
                        }
                    }
                }
            }
            Ok(())
        }
    }
}

fn run_key(command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Export {
            config,
            data_dir,
            out,
            passphrase_file,
        } => {
            let data_dir = data_dir.unwrap_or_else(default_data_dir);
            let passphrase = key_backup::passphrase(passphrase_file.as_deref())?;
            let exported = key_backup::export(&data_dir, config.as_deref(), passphrase.as_deref())?;
            let kind = if exported.wrapped {
                "wrapped with the passphrase"
            } else {
                "NOT wrapped: anyone who reads it can read every object"
            };
            match out {
                Some(path) => {
                    write_new_private(&path, &exported.text)?;
                    eprintln!(
                        "wrote the root key {} to {} ({kind}); keep it off this machine",
                        exported.key_file.display(),
                        path.display()
                    );
                }
                None => print!("{}", exported.text),
            }
            Ok(())
        }
        KeyCommand::Import {
            file,
            config,
            data_dir,
            passphrase_file,
        } => {
            let data_dir = data_dir.unwrap_or_else(default_data_dir);
            let passphrase = key_backup::passphrase(passphrase_file.as_deref())?;
            let (key_file, done) =
                key_backup::import(&file, &data_dir, config.as_deref(), passphrase.as_deref())?;
            match done {
                Installed::Written => println!("installed the root key in {}", key_file.display()),
                Installed::AlreadyPresent => println!(
                    "{} already holds this root key; nothing to do",
                    key_file.display()
                ),
            }
            Ok(())
        }
    }
}

/// `gateway run` flags that override the configuration file, applied at start and again to
/// the file read at a reload.
#[derive(clap::Args)]
struct RunOverrides {
    /// Address to listen on (default 127.0.0.1:7777; overrides the config).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Admin listener for /metrics and /v1/stats (default 127.0.0.1:7778; "off" disables).
    #[arg(long, value_name = "ADDR|off")]
    admin_listen: Option<String>,
    /// Most piece transfers in flight to all nodes together (default 64).
    #[arg(long)]
    max_connections: Option<usize>,
    /// Most piece transfers in flight to one node (default 8).
    #[arg(long)]
    max_connections_per_node: Option<usize>,
    /// Upstream bytes per second to the nodes, e.g. "20MiB" (default unlimited; 0 = unlimited).
    #[arg(long, value_parser = gateway::config::parse_size)]
    upload_rate: Option<u64>,
    /// Downstream bytes per second from the nodes (default unlimited; 0 = unlimited).
    #[arg(long, value_parser = gateway::config::parse_size)]
    download_rate: Option<u64>,
}

impl RunOverrides {
    fn apply(&self, cfg: &mut gateway::config::Config) -> Result<(), AppError> {
        if let Some(addr) = self.listen {
            cfg.listen = addr;
        }
        match self.admin_listen.as_deref() {
            None => {}
            Some("off") => cfg.admin_listen = None,
            Some(a) => {
                cfg.admin_listen = Some(a.parse().map_err(|_| {
                    AppError::Config(ConfigError::new(
                        "--admin-listen",
                        format!("{a:?} is not an address like 127.0.0.1:7778 or \"off\""),
                    ))
                })?)
            }
        }
        if let Some(n) = self.max_connections {
            cfg.limits.max_connections = n;
        }
        if let Some(n) = self.max_connections_per_node {
            cfg.limits.max_connections_per_node = n;
        }
        if let Some(r) = self.upload_rate {
            cfg.limits.upload_rate = (r > 0).then_some(r);
        }
        if let Some(r) = self.download_rate {
            cfg.limits.download_rate = (r > 0).then_some(r);
        }
        cfg.check_overrides().map_err(AppError::Config)
    }
}

/// What a signal asks of a server.
enum Signal {
    /// SIGINT (Ctrl-C) or SIGTERM: stop accepting, drain, exit.
    Stop,
    /// SIGHUP: re-read what can change while serving.
    Reload,
}

/// The signals a server answers.
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
                hup: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Waits for the next stop signal, ignoring reloads.
    async fn next_stop(&mut self) {
        loop {
            if let Signal::Stop = self.next().await {
                return;
            }
        }
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.int.recv() => Signal::Stop,
                _ = self.term.recv() => Signal::Stop,
                _ = self.hup.recv() => Signal::Reload,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }
}

/// Tells the service manager (systemd, `Type=notify`) about a state change; a manager that
/// cannot be reached is logged, never fatal.
fn tell_manager(state: &str) {
    #[cfg(unix)]
    if let Err(e) = gateway::app::notify::notify(state) {
        tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
    #[cfg(not(unix))]
    let _ = state;
}
#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot listen on 127.0.0.1:1: {source}")]
    struct SaysItsSource {
        #[source]
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("admin listener")]
    struct Quiet(#[source] std::io::Error);

    #[test]
    fn an_error_line_says_each_cause_once() {
        let in_use = || std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let e = anyhow::Error::new(SaysItsSource { source: in_use() });
        let line = error_line(&e);
        assert_eq!(line.matches(&in_use().to_string()).count(), 1, "{line}");
        // A cause the message leaves out is still named.
        let e = anyhow::Error::new(Quiet(in_use()));
        assert_eq!(error_line(&e), format!("admin listener: {}", in_use()));
        let e = anyhow::anyhow!("plain");
        assert_eq!(error_line(&e), "plain");
    }
}
