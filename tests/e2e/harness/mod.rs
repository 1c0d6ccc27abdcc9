//! The end-to-end harness: real gateways on 127.0.0.1 with their own temporary data
//! directories, real node servers and third-party S3 servers as nodes, and clients for them.
//!
//! - [`setup`]: [`Setup`], the one typed description of a gateway under test (scheme, node
//!   kinds, sizes, limits, any other config table), written as `config.toml`; started in this
//!   process as a [`TestGateway`] or as a `gateway run` child process ([`process`]).
//! - [`nodes`]: `gateway node run` child processes with fault controls (kill, stop, resume).
//! - [`wait`]: bounded waits for a condition (poll with a deadline, never a bare sleep).
//! - [`storage`]: where an object's pieces live on directory nodes, and corrupting them.
//! - [`s3x`]: digests, ETags and checksums computed independently of the gateway, and
//!   assertions on S3 errors.
//! - [`raw`]: hand-written HTTP/1.1 for what an SDK will not send.
//!
//! Every child process is killed when its handle is dropped; every address is on 127.0.0.1 with
//! a port the system picks.

pub mod nodes;
pub mod process;
pub mod raw;
pub mod s3x;
pub mod setup;
pub mod storage;
pub mod wait;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::Client;

pub use setup::{Setup, TestGateway};

/// The S3 credentials every test gateway is configured with (file or environment).
pub const ACCESS_KEY: &str = "GWTESTACCESSKEY00000";
pub const SECRET_KEY: &str = "gwtestsecretkey0000000000000000000000000";

/// An aws-sdk-s3 client for `endpoint` (`http://host:port`): path style, region us-east-1,
/// the SDK's default retries and checksum behaviour.
pub fn client_for(endpoint: &str, access_key: &str, secret_key: &str) -> Client {
    Client::from_conf(client_config(endpoint, access_key, secret_key).build())
}

/// The configuration [`client_for`] builds, for tests that change more of it.
pub fn client_config(
    endpoint: &str,
    access_key: &str,
    secret_key: &str,
) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(access_key, secret_key, None, None, "test"))
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenSupported)
}

/// The same client without retries: a 503 reaches the test as it was sent, once.
pub fn no_retry(c: &Client) -> Client {
    Client::from_conf(
        c.config()
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .build(),
    )
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
