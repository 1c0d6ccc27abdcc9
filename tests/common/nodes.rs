//! Node-server harness for end-to-end tests: real `gateway node run` processes on loopback
//! ports ([`NodeProcess`]), and a gateway configured with them as `remote` nodes
//! ([`GatewaySetup`] → [`RemoteGateway`]).
//!
//! Guarantees: a node process is SIGKILLed (after a SIGCONT, should it be stopped) when its
//! [`NodeProcess`] is dropped, so no test leaves a process behind; node `i` of a setup is
//! configured with id [`node_id`]`(i)` (`r1`, `r2`, ...), in the order given; every address
//! is on 127.0.0.1.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::Client;
use gateway::app::{prepare, Gateway, Prepared};
use gateway::meta::ObjectRecord;
use gateway::nodes::protocol::{NodeStatus, NodeToken};
use gateway::nodes::{RemoteNode, RemoteOptions};

use super::{ACCESS_KEY, SECRET_KEY};

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

/// The configured id of the `i`th node (0-based) of a [`GatewaySetup`].
pub fn node_id(i: usize) -> String {
    format!("r{}", i + 1)
}

/// A gateway configuration over node processes.
pub struct GatewaySetup {
    pub scheme: &'static str,
    pub segment_size: &'static str,
    /// `None` keeps the default (64 KiB).
    pub chunk_size: Option<&'static str>,
    /// `key = "value"` pairs of the `[limits]` table.
    pub limits: Vec<(&'static str, &'static str)>,
    pub connect_timeout: &'static str,
    pub read_timeout: &'static str,
    /// Node index → the 64 hex digits configured as its token instead of its token file.
    pub tokens: Vec<(usize, String)>,
    /// Lines of the `[metadata]` table (empty: the defaults).
    pub metadata: &'static str,
}

impl Default for GatewaySetup {
    fn default() -> Self {
        GatewaySetup {
            scheme: "2/3/4/4",
            segment_size: "256KiB",
            chunk_size: Some("4KiB"),
            limits: Vec::new(),
            connect_timeout: "1s",
            read_timeout: "5s",
            tokens: Vec::new(),
            metadata: "",
        }
    }
}

impl GatewaySetup {
    /// The `config.toml` text for these nodes.
    pub fn config(&self, nodes: &[NodeProcess]) -> String {
        let mut cfg = format!(
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[storage]\nscheme = \"{}\"\n\
             segment_size = \"{}\"\n",
            self.scheme, self.segment_size
        );
        if let Some(c) = self.chunk_size {
            cfg.push_str(&format!("chunk_size = \"{c}\"\nblock_size = \"{c}\"\n"));
        }
        cfg.push_str("[limits]\n");
        for (k, v) in &self.limits {
            cfg.push_str(&format!("{k} = \"{v}\"\n"));
        }
        cfg.push_str(&format!("[metadata]\n{}\n", self.metadata));
        for (i, n) in nodes.iter().enumerate() {
            let token = match self.tokens.iter().find(|(t, _)| *t == i) {
                Some((_, hex)) => format!("token = \"{hex}\""),
                None => format!("token_file = \"{}\"", n.token_file().display()),
            };
            cfg.push_str(&format!(
                "[[nodes]]\nid = \"{}\"\nkind = \"remote\"\naddress = \"{}\"\n{token}\n\
                 connect_timeout = \"{}\"\nread_timeout = \"{}\"\n",
                node_id(i),
                n.addr,
                self.connect_timeout,
                self.read_timeout
            ));
        }
        cfg
    }

    /// Writes the config and credentials into `data_dir` (created) and starts the gateway.
    pub async fn start(&self, data_dir: &Path, nodes: &[NodeProcess]) -> RemoteGateway {
        std::fs::create_dir_all(data_dir).expect("data dir");
        std::fs::write(data_dir.join("config.toml"), self.config(nodes)).expect("config");
        std::fs::write(
            data_dir.join("credentials.toml"),
            format!("access_key = \"{ACCESS_KEY}\"\nsecret_key = \"{SECRET_KEY}\"\n"),
        )
        .expect("credentials");
        let prepared = prepare(data_dir, None).expect("prepare");
        let gateway = Gateway::start(&prepared).await.expect("start gateway");
        RemoteGateway { prepared, gateway }
    }
}

/// A running gateway over node processes.
pub struct RemoteGateway {
    pub prepared: Prepared,
    pub gateway: Gateway,
}

impl RemoteGateway {
    /// An aws-sdk-s3 client (path style, test credentials, default retries).
    pub fn client(&self) -> Client {
        Client::from_conf(self.client_config().build())
    }

    /// The same client without retries: a 503 reaches the test as it was sent, once.
    pub fn client_no_retry(&self) -> Client {
        Client::from_conf(
            self.client_config()
                .retry_config(RetryConfig::disabled())
                .build(),
        )
    }

    fn client_config(&self) -> aws_sdk_s3::config::Builder {
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(format!("http://{}", self.gateway.addr))
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
            .force_path_style(true)
    }

    /// The gateway's metadata record of an object (`None` when it does not exist).
    pub async fn record(&self, bucket: &str, key: &str) -> Option<ObjectRecord> {
        match self.gateway.layer.head_object(bucket, key).await {
            Ok(r) => Some(r),
            Err(gateway::object::ObjectError::NoSuchKey) => None,
            Err(e) => panic!("head_object {bucket}/{key}: {e}"),
        }
    }

    pub async fn stop(self) {
        self.gateway.stop().await.expect("stop gateway");
    }
}
