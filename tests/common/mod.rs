//! Shared harness for end-to-end tests: a real gateway on 127.0.0.1 with its own temporary
//! data directory, and an aws-sdk-s3 client pointed at it.
#![allow(dead_code)]

pub mod nodes;
pub mod raw;

use std::path::PathBuf;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::Client;
use gateway::app::{prepare, Gateway, Prepared};

pub const ACCESS_KEY: &str = "GWTESTACCESSKEY00000";
pub const SECRET_KEY: &str = "gwtestsecretkey0000000000000000000000000";

pub struct TestGateway {
    pub dir: tempfile::TempDir,
    pub gateway: Option<Gateway>,
    pub prepared: Prepared,
}

/// Storage settings small enough that tests exercise many stripes and segments.
pub struct Opts {
    pub scheme: &'static str,
    pub nodes: usize,
    pub segment_size: &'static str,
    pub chunk_size: &'static str,
    pub block_size: &'static str,
    pub inline_limit: &'static str,
    pub cipher: &'static str,
    /// How long replaced bodies keep their pieces; tests default to none.
    pub gc_grace: &'static str,
    /// Lines of the `[limits]` table (empty: the defaults).
    pub limits: &'static str,
    /// More lines of the `[storage]` table (orphan collection settings...).
    pub storage: &'static str,
    /// More tables after `[limits]` (`"[audit]\ninterval = \"1s\""`...).
    pub tables: &'static str,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            scheme: "4/5/6/6",
            nodes: 6,
            segment_size: "256KiB",
            chunk_size: "4KiB",
            block_size: "4KiB",
            inline_limit: "4KiB",
            cipher: "aes-256-gcm",
            gc_grace: "0s",
            limits: "",
            storage: "",
            tables: "",
        }
    }
}

impl TestGateway {
    pub async fn start() -> TestGateway {
        Self::start_with(Opts::default()).await
    }

    pub async fn start_with(o: Opts) -> TestGateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().to_path_buf();
        let mut cfg = format!(
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[storage]\nscheme = \"{}\"\nsegment_size = \"{}\"\nchunk_size = \"{}\"\nblock_size = \"{}\"\ninline_limit = \"{}\"\ncipher = \"{}\"\ngc_grace = \"{}\"\n",
            o.scheme, o.segment_size, o.chunk_size, o.block_size, o.inline_limit, o.cipher, o.gc_grace
        );
        cfg.push_str(o.storage);
        cfg.push('\n');
        cfg.push_str(&format!("[limits]\n{}\n", o.limits));
        cfg.push_str(o.tables);
        cfg.push('\n');
        for i in 1..=o.nodes {
            cfg.push_str(&format!(
                "[[nodes]]\nid = \"n{i}\"\npath = \"nodes/n{i}\"\n"
            ));
        }
        std::fs::write(data.join("config.toml"), cfg).expect("write config");
        std::fs::write(
            data.join("credentials.toml"),
            format!("access_key = \"{ACCESS_KEY}\"\nsecret_key = \"{SECRET_KEY}\"\n"),
        )
        .expect("write credentials");
        let prepared = prepare(&data, None).expect("prepare");
        let gateway = Gateway::start(&prepared).await.expect("start");
        TestGateway {
            dir,
            gateway: Some(gateway),
            prepared,
        }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.gateway.as_ref().expect("running").addr
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr())
    }

    pub fn client(&self) -> Client {
        self.client_with(RequestChecksumCalculation::WhenSupported)
    }

    pub fn client_with(&self, checksums: RequestChecksumCalculation) -> Client {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
            .force_path_style(true)
            .request_checksum_calculation(checksums)
            .build();
        Client::from_conf(conf)
    }

    pub fn gateway(&self) -> &Gateway {
        self.gateway.as_ref().expect("running")
    }

    pub fn nodes_dir(&self) -> PathBuf {
        self.dir.path().join("nodes")
    }

    pub async fn stop(&mut self) {
        if let Some(g) = self.gateway.take() {
            g.stop().await.expect("stop");
        }
    }
}

/// Whether a file on a node is a metadata blob (the replicated change log, a snapshot part or
/// the head record: every node holds some beside the data pieces) rather than a data piece.
/// Blobs start with the magic `GWMB` (README, "Metadata replication").
pub fn is_metadata_blob(path: &std::path::Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && &magic == b"GWMB"
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
