//! Node servers for end-to-end tests: real `gateway node run` processes on loopback ports
//! ([`NodeProcess`]), with the faults a machine has (killed, hung, resumed); a gateway uses them
//! through [`Setup::remote`](super::Setup::remote).
//!
//! Guarantees: a node process is SIGKILLed (after a SIGCONT, should it be stopped) when its
//! [`NodeProcess`] is dropped, so no test leaves a process behind; node `i` of a setup is
//! configured with id [`node_id`]`(i)` (`r1`, `r2`, ...), in the order given; every address
//! is on 127.0.0.1.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use gateway::nodes::protocol::{NodeStatus, NodeToken};
use gateway::nodes::{RemoteNode, RemoteOptions};

/// One running `gateway node run` process; killed when dropped.
pub struct NodeProcess {
    child: Child,
    /// `http://127.0.0.1:<port>`, as the node printed it.
    pub addr: String,
    pub dir: PathBuf,
    stopped: bool,
    // Kept open: the node prints after its first line, and a closed pipe would kill it.
    _stdout: BufReader<ChildStdout>,
}

impl NodeProcess {
    /// A node without a free-space reserve, serving `dir`, logging to `log`.
    pub fn start(dir: &Path, log: &Path) -> NodeProcess {
        Self::start_with_reserve(dir, log, "0")
    }

    /// A node keeping `reserve` (a size as `--reserve` takes it) free.
    pub fn start_with_reserve(dir: &Path, log: &Path, reserve: &str) -> NodeProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args([
                "node",
                "run",
                "--listen",
                "127.0.0.1:0",
                "--reserve",
                reserve,
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("node log"))
            .spawn()
            .expect("spawn gateway node");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read node stdout");
        let Some(addr) = line.trim().strip_prefix("gateway node listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "node did not start: {line:?}; log: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        };
        NodeProcess {
            addr: addr.to_string(),
            child,
            dir: dir.to_path_buf(),
            stopped: false,
            _stdout: stdout,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn token_file(&self) -> PathBuf {
        self.dir.join("token")
    }

    pub fn token(&self) -> NodeToken {
        NodeToken::load(&self.token_file()).expect("node token")
    }

    /// SIGKILL, as a crashed node.
    pub fn kill(&mut self) {
        self.resume();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGSTOP: the node keeps its sockets (connections are accepted by the kernel) but
    /// answers nothing, as a hung machine.
    pub fn stop(&mut self) {
        signal(self.pid(), "-STOP");
        self.stopped = true;
    }

    /// SIGCONT after [`NodeProcess::stop`].
    pub fn resume(&mut self) {
        if self.stopped {
            signal(self.pid(), "-CONT");
            self.stopped = false;
        }
    }

    /// Committed data piece files (`pieces/<2 hex>/<64 hex>`), sorted; empty before the
    /// first. Metadata blobs (replication) are left out: they start with `GWMB`.
    pub fn piece_paths(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let Ok(fans) = std::fs::read_dir(self.dir.join("pieces")) else {
            return out;
        };
        for fan in fans {
            let fan = fan.expect("fan entry").path();
            for piece in std::fs::read_dir(&fan).expect("fan dir") {
                let path = piece.expect("piece entry").path();
                if !super::is_metadata_blob(&path) {
                    out.push(path);
                }
            }
        }
        out.sort();
        out
    }

    pub fn piece_count(&self) -> usize {
        self.piece_paths().len()
    }

    /// The node's `/v1/status`, asked with its own token.
    pub async fn status(&self) -> NodeStatus {
        let mut opts = RemoteOptions::new(self.addr.clone(), self.token());
        opts.connect_timeout = Duration::from_secs(2);
        opts.read_timeout = Duration::from_secs(5);
        RemoteNode::new("status", opts)
            .expect("status client")
            .status()
            .await
            .unwrap_or_else(|e| panic!("status of {}: {e}", self.addr))
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn signal(pid: u32, sig: &str) {
    // The shell's built-in kill: a `kill` program (procps) is not on every machine.
    let status = Command::new("sh")
        .args(["-c", "kill \"$1\" \"$2\"", "sh", sig, &pid.to_string()])
        .status()
        .expect("run sh -c kill");
    assert!(status.success(), "kill {sig} {pid} failed");
}

/// Starts `count` nodes in `root/node<i>` (logs in `root/node<i>.log`), `i` from 1.
pub fn start_nodes(root: &Path, count: usize) -> Vec<NodeProcess> {
    (1..=count)
        .map(|i| {
            NodeProcess::start(
                &root.join(format!("node{i}")),
                &root.join(format!("node{i}.log")),
            )
        })
        .collect()
}

/// The configured id of the `i`th node (0-based) of a [`Setup::remote`](super::Setup::remote).
pub fn node_id(i: usize) -> String {
    format!("r{}", i + 1)
}

/// A third-party S3 server (`rclone serve s3` over a local directory) to use as `s3` nodes;
/// killed when dropped. Its buckets are the directories under [`S3Server::root`].
pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The served directory.
    pub root: PathBuf,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    /// Serves `dir/s3root` (with `bucket` created in it) with one access key, logging to
    /// `dir/rclone.log`; returns once it accepts connections (bounded).
    pub fn start(dir: &Path, access_key: &str, secret_key: &str, bucket: &str) -> S3Server {
        let root = dir.join("s3root");
        std::fs::create_dir_all(root.join(bucket)).expect("s3 root");
        std::fs::write(dir.join("rclone.conf"), "").expect("rclone.conf");
        // rclone cannot report the port it picked: take one the system picks and hand it over.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let log = dir.join("rclone.log");
        let child = Command::new(rclone_binary())
            .args(["serve", "s3", "--addr", &format!("127.0.0.1:{port}")])
            .args(["--auth-key", &format!("{access_key},{secret_key}")])
            .arg("--config")
            .arg(dir.join("rclone.conf"))
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .args(["--vfs-cache-mode", "off"])
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("rclone log"))
            .spawn()
            .expect("spawn rclone");
        let mut server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            root,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "rclone serve s3 exited ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "rclone serve s3 not listening after 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

/// The rclone `.ci/test` installed (or `GATEWAY_TEST_RCLONE`, or one on the PATH); the tests
/// that need it fail, never skip, without it.
pub fn rclone_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("GATEWAY_TEST_RCLONE") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for installed in ["target/test-tools/bin/rclone", ".ci/.venv/bin/rclone"] {
        if root.join(installed).is_file() {
            return root.join(installed);
        }
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("rclone"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "rclone not found: run the tests with `bash .ci/test` or set GATEWAY_TEST_RCLONE"
            )
        })
}
