//! `gateway run` as a child process, for what only a real process shows: kill -9, signals,
//! exit statuses, what it prints.
//!
//! [`GatewayProcess::command`] is the base command (the test credentials in the environment,
//! both listeners on 127.0.0.1 with system-picked ports, `GATEWAY_LOG=info`); tests change it
//! (more flags, other environment) and [`GatewayProcess::spawn`] it, which waits (bounded) for
//! the startup banner. The process is SIGKILLed and reaped when its handle is dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;

use super::wait;
use super::{client_for, ACCESS_KEY, SECRET_KEY};

/// How long a start may take before the test fails (a debug build on two busy cores).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `gateway run`, killed (and reaped) when dropped.
pub struct GatewayProcess {
    pub child: Child,
    /// What it printed on stdout up to and including the scheme line.
    pub stdout: Vec<String>,
    /// `http://127.0.0.1:<port>` (or `https://`), from the banner.
    pub endpoint: String,
    /// The access key the banner names.
    pub access_key: String,
    /// The admin listener's `host:port`.
    pub admin: String,
    /// Its stderr.
    pub log: PathBuf,
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GatewayProcess {
    /// `gateway <subcommand> --data-dir <data_dir>` with the test credentials in the
    /// environment, `GATEWAY_LOG=info` and no stdin.
    pub fn command(subcommand: &str, data_dir: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
        cmd.arg(subcommand)
            .arg("--data-dir")
            .arg(data_dir)
            .env("GATEWAY_ACCESS_KEY", ACCESS_KEY)
            .env("GATEWAY_SECRET_KEY", SECRET_KEY)
            .env("GATEWAY_LOG", "info")
            .stdin(Stdio::null());
        cmd
    }

    /// `gateway run` on `data_dir`, both listeners on 127.0.0.1 with system-picked ports.
    pub fn run_command(data_dir: &Path) -> Command {
        let mut cmd = Self::command("run", data_dir);
        cmd.args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
        cmd
    }

    /// [`GatewayProcess::run_command`], started; its stderr goes to a new file beside the
    /// data directory (`<data_dir>.run-<n>.log`).
    pub fn start(data_dir: &Path) -> GatewayProcess {
        Self::try_start(data_dir).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`GatewayProcess::start`], or `Err` with what it printed when it does not start.
    pub fn try_start(data_dir: &Path) -> Result<GatewayProcess, String> {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let n = RUNS.fetch_add(1, Ordering::Relaxed);
        let log = data_dir.with_extension(format!("run-{n}.log"));
        Self::spawn(Self::run_command(data_dir), &log)
    }

    /// Starts `cmd` (stdout piped, stderr to `log`) and waits for its banner; `Err` with what
    /// it printed when it exits, or prints no banner within [`START_TIMEOUT`].
    pub fn spawn(mut cmd: Command, log: &Path) -> Result<GatewayProcess, String> {
        let stderr = std::fs::File::create(log).expect("log file");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn gateway");
        let out = child.stdout.take().expect("stdout");
        let mut p = GatewayProcess {
            child,
            stdout: Vec::new(),
            endpoint: String::new(),
            access_key: String::new(),
            admin: String::new(),
            log: log.to_path_buf(),
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("gateway listening on ") {
                        p.endpoint = url.to_string();
                    }
                    if let Some(a) = line.strip_prefix("  admin (metrics, stats): http://") {
                        p.admin = a.to_string();
                    }
                    if let Some(k) = line.strip_prefix("  access key: ") {
                        p.access_key = k.to_string();
                    }
                    let last = line.starts_with("  scheme ");
                    p.stdout.push(line);
                    if last {
                        return Ok(p);
                    }
                }
                Err(e) => {
                    return Err(format!(
                        "no startup banner ({e}); stdout so far: {:?}; stderr: {}",
                        p.stdout,
                        p.stderr()
                    ))
                }
            }
        }
    }

    /// What it wrote on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A client with the test credentials (and the SDK's default retries).
    pub fn client(&self) -> Client {
        client_for(&self.endpoint, ACCESS_KEY, SECRET_KEY)
    }

    /// SIGKILL, as a crash or a power cut.
    pub fn kill9(self) {
        drop(self);
    }

    /// Waits (at most `limit`) for it to exit on its own; kills it and fails on timeout.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        wait_exit(&mut self.child, limit)
    }

    /// Waits until every committed metadata change is on the nodes.
    pub async fn wait_replicated(&self) {
        wait_replicated(&self.admin).await
    }
}

/// Waits (at most `limit`) for `child` to exit on its own; kills it and fails on timeout.
pub fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) until the gateway whose admin listener is `admin` reports every committed
/// metadata change shipped to the nodes, with a snapshot.
pub async fn wait_replicated(admin: &str) {
    wait::until(
        Duration::from_secs(60),
        "replication to catch up",
        || async {
            let stats = gateway::admin::fetch_stats(admin).await.expect("stats");
            let rep = stats.replication.expect("replication report");
            (rep.last_seq > 0 && rep.shipped_seq == rep.last_seq && rep.snapshot > 0).then_some(())
        },
    )
    .await
}
