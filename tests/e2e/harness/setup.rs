//! [`Setup`]: the one description of a gateway under test, built with typed calls and written
//! as the `config.toml` the gateway reads; [`TestGateway`]: such a gateway started in this
//! process on a temporary data directory.
//!
//! Two starting points: [`Setup::new`] (six directory nodes under the data directory, scheme
//! 4/5/6/6, 256 KiB segments of 4 KiB chunks and blocks, 4 KiB inline limit, AES-256-GCM, no
//! grace period for replaced bodies: small sizes, so tests cross many stripes and segments) and
//! [`Setup::remote`] (the given node servers, scheme 2/3/4/4, the same sizes, everything else
//! the gateway's default). Node ids are `n<i>` (directory), `r<i>` (node server) and `s<i>`
//! (S3 bucket), `i` counting from 1 in the order given.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::config::RequestChecksumCalculation;
use aws_sdk_s3::Client;
use gateway::app::{prepare, Gateway, Prepared};
use gateway::config::NodeKind;
use gateway::erasure::Scheme;
use gateway::meta::ObjectRecord;
use toml::{Table, Value};

use super::nodes::NodeProcess;
use super::{client_config, ACCESS_KEY, SECRET_KEY};

/// One configured node.
#[derive(Debug, Clone)]
enum NodeSpec {
    /// `nodes/n<i>` under the data directory.
    Dir,
    /// A `gateway node run` process, authenticated with its token file.
    Remote {
        address: String,
        token_file: PathBuf,
    },
    /// A prefix of a bucket on an S3 server.
    S3 {
        endpoint: String,
        bucket: String,
        prefix: String,
        access_key: String,
        secret_key_file: String,
    },
}

/// A gateway configuration under test.
#[derive(Debug, Clone)]
pub struct Setup {
    scheme: Scheme,
    nodes: Vec<NodeSpec>,
    /// Node index → the 64 hex digits configured as its token instead of its token file.
    tokens: Vec<(usize, String)>,
    /// `connect_timeout` and `read_timeout` of every node server.
    remote_timeouts: (String, String),
    /// Every other table (`storage`, `limits`, `server`, `metadata`, `audit`...).
    tables: Table,
}

impl Default for Setup {
    fn default() -> Self {
        Self::new()
    }
}

impl Setup {
    /// Six directory nodes, 4/5/6/6, small segments, chunks and blocks (see the module).
    pub fn new() -> Setup {
        Setup {
            scheme: scheme("4/5/6/6"),
            nodes: vec![NodeSpec::Dir; 6],
            tokens: Vec::new(),
            remote_timeouts: ("1s".into(), "5s".into()),
            tables: Table::new(),
        }
        .segment_size("256KiB")
        .chunk_size("4KiB")
        .inline_limit("4KiB")
        .cipher("aes-256-gcm")
        .gc_grace("0s")
    }

    /// The node servers `nodes` (ids `r1`...), 2/3/4/4, 256 KiB segments of 4 KiB chunks.
    pub fn remote(nodes: &[NodeProcess]) -> Setup {
        Setup {
            scheme: scheme("2/3/4/4"),
            nodes: Vec::new(),
            tokens: Vec::new(),
            remote_timeouts: ("1s".into(), "5s".into()),
            tables: Table::new(),
        }
        .remote_nodes(nodes)
        .segment_size("256KiB")
        .chunk_size("4KiB")
    }

    /// The redundancy scheme, `minimum/repair/success/total`.
    pub fn scheme(mut self, s: &str) -> Setup {
        self.scheme = scheme(s);
        self
    }

    /// `count` directory nodes (ids `n1`...) instead of the nodes configured so far.
    pub fn dir_nodes(mut self, count: usize) -> Setup {
        self.nodes = vec![NodeSpec::Dir; count];
        self
    }

    /// The node servers `nodes` (ids `r1`...) instead of the nodes configured so far.
    pub fn remote_nodes(mut self, nodes: &[NodeProcess]) -> Setup {
        self.nodes = nodes
            .iter()
            .map(|n| NodeSpec::Remote {
                address: n.addr.clone(),
                token_file: n.token_file(),
            })
            .collect();
        self
    }

    /// `count` prefixes `node<i>/` of `bucket` on the S3 server at `endpoint` (ids `s1`...),
    /// instead of the nodes configured so far. The secret is read from `secret_key_file`
    /// (relative to the data directory).
    pub fn s3_nodes(
        mut self,
        count: usize,
        endpoint: &str,
        bucket: &str,
        access_key: &str,
        secret_key_file: &str,
    ) -> Setup {
        self.nodes = (1..=count)
            .map(|i| NodeSpec::S3 {
                endpoint: endpoint.into(),
                bucket: bucket.into(),
                prefix: format!("node{i}/"),
                access_key: access_key.into(),
                secret_key_file: secret_key_file.into(),
            })
            .collect();
        self
    }

    /// Node `index` (0-based) authenticates with these 64 hex digits instead of its token file.
    pub fn node_token(mut self, index: usize, hex: &str) -> Setup {
        self.tokens.push((index, hex.to_string()));
        self
    }

    /// `connect_timeout` and `read_timeout` of every node server (default 1 s and 5 s).
    pub fn node_timeouts(mut self, connect: &str, read: &str) -> Setup {
        self.remote_timeouts = (connect.into(), read.into());
        self
    }

    pub fn segment_size(self, size: &str) -> Setup {
        self.storage("segment_size", size)
    }

    /// The chunk size and the encryption block size (kept equal, as the tests want them).
    pub fn chunk_size(self, size: &str) -> Setup {
        self.storage("chunk_size", size).storage("block_size", size)
    }

    /// The gateway's defaults for the chunk and block size.
    pub fn default_chunk_size(mut self) -> Setup {
        if let Some(Value::Table(t)) = self.tables.get_mut("storage") {
            t.remove("chunk_size");
            t.remove("block_size");
        }
        self
    }

    pub fn inline_limit(self, size: &str) -> Setup {
        self.storage("inline_limit", size)
    }

    pub fn cipher(self, cipher: &str) -> Setup {
        self.storage("cipher", cipher)
    }

    /// How long replaced bodies keep their pieces.
    pub fn gc_grace(self, d: &str) -> Setup {
        self.storage("gc_grace", d)
    }

    /// `key = value` in `[storage]`.
    pub fn storage(self, key: &str, value: impl Into<Value>) -> Setup {
        self.set("storage", key, value)
    }

    /// `key = value` in `[limits]`.
    pub fn limit(self, key: &str, value: impl Into<Value>) -> Setup {
        self.set("limits", key, value)
    }

    /// `key = value` in `[server]`.
    pub fn server(self, key: &str, value: impl Into<Value>) -> Setup {
        self.set("server", key, value)
    }

    /// `key = value` in `[table]` (any table but `nodes`).
    pub fn set(mut self, table: &str, key: &str, value: impl Into<Value>) -> Setup {
        assert_ne!(table, "nodes", "nodes are set with the *_nodes calls");
        let entry = self
            .tables
            .entry(table)
            .or_insert_with(|| Value::Table(Table::new()));
        let Value::Table(t) = entry else {
            unreachable!("tables hold tables")
        };
        t.insert(key.to_string(), value.into());
        self
    }

    /// The configured id of node `index` (0-based).
    pub fn node_id(&self, index: usize) -> String {
        let prefix = match self.nodes[index] {
            NodeSpec::Dir => "n",
            NodeSpec::Remote { .. } => "r",
            NodeSpec::S3 { .. } => "s",
        };
        format!("{prefix}{}", index + 1)
    }

    /// The `config.toml` text: listeners on 127.0.0.1 with system-picked ports, the tables,
    /// the nodes.
    pub fn config_toml(&self) -> String {
        let mut root = Table::new();
        root.insert("listen".into(), "127.0.0.1:0".into());
        root.insert("admin_listen".into(), "127.0.0.1:0".into());
        root.extend(self.tables.clone());
        let storage = root
            .entry("storage")
            .or_insert_with(|| Value::Table(Table::new()));
        if let Value::Table(t) = storage {
            t.insert("scheme".into(), self.scheme.to_string().into());
        }
        let (connect, read) = &self.remote_timeouts;
        let nodes: Vec<Value> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let mut t = Table::new();
                t.insert("id".into(), self.node_id(i).into());
                match spec {
                    NodeSpec::Dir => {
                        t.insert("path".into(), format!("nodes/{}", self.node_id(i)).into());
                    }
                    NodeSpec::Remote {
                        address,
                        token_file,
                    } => {
                        t.insert("kind".into(), "remote".into());
                        t.insert("address".into(), address.as_str().into());
                        match self.tokens.iter().find(|(n, _)| *n == i) {
                            Some((_, hex)) => t.insert("token".into(), hex.as_str().into()),
                            None => t.insert(
                                "token_file".into(),
                                token_file.display().to_string().into(),
                            ),
                        };
                        t.insert("connect_timeout".into(), connect.as_str().into());
                        t.insert("read_timeout".into(), read.as_str().into());
                    }
                    NodeSpec::S3 {
                        endpoint,
                        bucket,
                        prefix,
                        access_key,
                        secret_key_file,
                    } => {
                        t.insert("kind".into(), "s3".into());
                        t.insert("endpoint".into(), endpoint.as_str().into());
                        t.insert("bucket".into(), bucket.as_str().into());
                        t.insert("prefix".into(), prefix.as_str().into());
                        t.insert("access_key".into(), access_key.as_str().into());
                        t.insert("secret_key_file".into(), secret_key_file.as_str().into());
                    }
                }
                Value::Table(t)
            })
            .collect();
        root.insert("nodes".into(), Value::Array(nodes));
        toml::to_string(&root).expect("config serializes")
    }

    /// Writes `config.toml` into `data_dir` (created); the credentials come from elsewhere
    /// (the environment of a `gateway run` process, or a first start generating them).
    pub fn write_config(&self, data_dir: &Path) {
        std::fs::create_dir_all(data_dir).expect("data dir");
        std::fs::write(data_dir.join("config.toml"), self.config_toml()).expect("config.toml");
    }

    /// Writes `config.toml` and a `credentials.toml` with the test credentials.
    pub fn write(&self, data_dir: &Path) {
        self.write_config(data_dir);
        std::fs::write(
            data_dir.join("credentials.toml"),
            format!("access_key = \"{ACCESS_KEY}\"\nsecret_key = \"{SECRET_KEY}\"\n"),
        )
        .expect("credentials.toml");
    }

    /// Starts the gateway in this process on a new temporary data directory.
    pub async fn start(&self) -> TestGateway {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = tmp.path().to_path_buf();
        let mut gw = self.start_in(&data_dir).await;
        gw.tmp = Some(tmp);
        gw
    }

    /// Starts the gateway in this process on `data_dir` (created; kept after the test).
    pub async fn start_in(&self, data_dir: &Path) -> TestGateway {
        self.write(data_dir);
        TestGateway::open(data_dir).await
    }
}

fn scheme(s: &str) -> Scheme {
    s.parse().unwrap_or_else(|e| panic!("scheme {s}: {e}"))
}

/// A gateway running in this process.
pub struct TestGateway {
    /// The temporary data directory, when [`Setup::start`] made one (removed when dropped).
    tmp: Option<tempfile::TempDir>,
    data_dir: PathBuf,
    gateway: Option<Gateway>,
    pub prepared: Prepared,
}

impl TestGateway {
    /// [`Setup::new`], started.
    pub async fn start() -> TestGateway {
        Setup::new().start().await
    }

    /// Starts a gateway in this process on an existing data directory (a restart), as it is.
    pub async fn open(data_dir: &Path) -> TestGateway {
        let prepared = prepare(data_dir, None).expect("prepare");
        let gateway = Gateway::start(&prepared).await.expect("start");
        TestGateway {
            tmp: None,
            data_dir: data_dir.to_path_buf(),
            gateway: Some(gateway),
            prepared,
        }
    }

    pub fn gateway(&self) -> &Gateway {
        self.gateway.as_ref().expect("running")
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.gateway().addr
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The admin listener's `host:port`.
    pub fn admin(&self) -> String {
        self.gateway()
            .admin_addr
            .expect("admin listener")
            .to_string()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where the directory nodes live (`nodes/` under the data directory).
    pub fn nodes_dir(&self) -> PathBuf {
        self.data_dir.join("nodes")
    }

    /// The directory of directory node `id`.
    pub fn node_dir(&self, id: &str) -> PathBuf {
        let node = self
            .prepared
            .config
            .nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"));
        match &node.kind {
            NodeKind::Dir { path } => path.clone(),
            other => panic!("node {id} is not a directory node: {other:?}"),
        }
    }

    /// Fault: directory node `id` loses its whole directory (a dead or wiped disk).
    pub fn remove_node_dir(&self, id: &str) {
        let dir = self.node_dir(id);
        std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("remove {}: {e}", dir.display()));
        assert!(!dir.exists());
    }

    /// An aws-sdk-s3 client with the test credentials and the SDK's default retries.
    pub fn client(&self) -> Client {
        self.client_with(RequestChecksumCalculation::WhenSupported)
    }

    pub fn client_with(&self, checksums: RequestChecksumCalculation) -> Client {
        Client::from_conf(
            client_config(&self.endpoint(), ACCESS_KEY, SECRET_KEY)
                .request_checksum_calculation(checksums)
                .build(),
        )
    }

    /// [`TestGateway::client`] without retries: an error reaches the test as it was sent.
    pub fn client_no_retry(&self) -> Client {
        super::no_retry(&self.client())
    }

    /// Wakes the garbage collector and waits (bounded) for a whole round that began after
    /// this call: what a test then finds on the nodes is what collection leaves.
    pub async fn collect_garbage(&self) {
        tokio::time::timeout(
            Duration::from_secs(30),
            self.gateway().layer.collect_garbage(),
        )
        .await
        .expect("a garbage collection round within 30 s");
    }

    /// The gateway's own metadata record of an object (`None` when it does not exist).
    pub async fn record(&self, bucket: &str, key: &str) -> Option<ObjectRecord> {
        match self.gateway().layer.head_object(bucket, key).await {
            Ok(r) => Some(r),
            Err(gateway::object::ObjectError::NoSuchKey) => None,
            Err(e) => panic!("head_object {bucket}/{key}: {e}"),
        }
    }

    /// Starts again after [`TestGateway::stop`], re-reading the data directory (config
    /// changes made meanwhile apply).
    pub async fn restart(&mut self) {
        self.stop().await;
        self.prepared = prepare(&self.data_dir, None).expect("prepare");
        self.gateway = Some(Gateway::start(&self.prepared).await.expect("restart"));
    }

    /// Stops serving (drains, like SIGTERM); the data directory stays.
    pub async fn stop(&mut self) {
        if let Some(g) = self.gateway.take() {
            g.stop().await.expect("stop");
        }
    }
}
