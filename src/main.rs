//! The `gateway` binary: command-line parsing and process concerns (logging, signals, exit
//! codes). `anyhow` lives only here; everything else is the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gateway::app::{default_data_dir, prepare, AppError, Gateway};
use gateway::nodes::protocol::TokenError;
use gateway::nodes::server::{NodeServer, NodeServerError, NodeServerOptions};

#[derive(Parser)]
#[command(
    name = "gateway",
    version,
    about = "Self-hosted S3 gateway: end-to-end encrypted, erasure-coded storage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
        /// Address to listen on (default 127.0.0.1:7777; overrides the config).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Storage node commands.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Serve one directory's pieces to gateways over HTTP (HTTP/1.1 and h2c). The directory is
    /// initialised when absent or empty.
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
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GATEWAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
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
                (_, Some(NodeServerError::Token(TokenError::Malformed { .. }))) => 2,
                _ => 1,
            };
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run {
            config,
            data_dir,
            listen,
        } => {
            let data_dir = data_dir.unwrap_or_else(default_data_dir);
            let mut prepared = prepare(&data_dir, config.as_deref())?;
            if let Some(addr) = listen {
                prepared.config.listen = addr;
            }
            if prepared.created_config {
                println!(
                    "created a new gateway in {} (back up {} — without it the data cannot be read)",
                    prepared.config.data_dir.display(),
                    prepared.config.key_file.display()
                );
            }
            let mut gw = Gateway::start(&prepared).await?;
            println!("gateway listening on http://{}", gw.addr);
            println!("  access key: {}", prepared.credentials.access_key);
            if prepared.credentials_from_env {
                println!("  secret key: from GATEWAY_SECRET_KEY");
            } else {
                println!(
                    "  secret key: in {}",
                    prepared.config.credentials_file.display()
                );
            }
            println!(
                "  scheme {} over {} nodes",
                prepared.config.storage.scheme,
                prepared.config.nodes.len()
            );
            tokio::select! {
                r = gw.wait() => r?,
                _ = shutdown_signal() => {
                    tracing::info!("shutting down");
                    gw.stop().await?;
                }
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
                },
        } => {
            let opts = NodeServerOptions {
                dir,
                listen,
                token_file,
                reserve,
            };
            let mut server = NodeServer::start(&opts).await?;
            // Tests and scripts read the address from this first line.
            println!("gateway node listening on http://{}", server.addr());
            println!("  directory: {}", opts.dir.display());
            if server.token_created() {
                println!(
                    "  token: created {} (give it to the gateway as this node's token_file)",
                    server.token_file().display()
                );
            } else {
                println!("  token: {}", server.token_file().display());
            }
            println!("  reserve: {reserve} bytes");
            if server.stale_temp_removed() > 0 {
                println!(
                    "  removed {} unfinished uploads",
                    server.stale_temp_removed()
                );
            }
            tokio::select! {
                _ = server.wait() => {}
                _ = shutdown_signal() => {
                    tracing::info!("shutting down");
                    server.stop().await;
                }
            }
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
