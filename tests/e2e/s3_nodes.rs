//! The gateway over `s3` nodes: four prefixes of one bucket on a real third-party S3 server
//! (`rclone serve s3`, as `.ci/test` installs it; the test fails, never skips, without rclone).
//! Objects round-trip (whole and ranged), the server only ever holds opaque piece names, and a
//! deleted object's pieces are collected from the bucket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;

use crate::harness::nodes::S3Server;
use crate::harness::{self, data, storage, wait, Setup};

const SEG: usize = 256 << 10;
const NODE_AK: &str = "rclonenodekey";
const NODE_SK: &str = "rclone-node-secret-0123456789";

/// Data piece objects under `dir` (the metadata blobs every node also holds left out: they
/// start with `GWMB`).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = storage::files_under(dir);
    out.retain(|p| !harness::is_metadata_blob(p));
    out
}

#[tokio::test]
async fn objects_live_in_an_s3_bucket() {
    let tmp = tempfile::tempdir().unwrap();
    let server = S3Server::start(tmp.path(), NODE_AK, NODE_SK, "pieces");
    let root = server.root.clone();
    let data_dir = tmp.path().join("gw");
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::write(data_dir.join("node-secret"), format!("{NODE_SK}\n")).unwrap();
    let mut gw = Setup::new()
        .scheme("2/3/3/4")
        .s3_nodes(4, &server.endpoint, "pieces", NODE_AK, "node-secret")
        .start_in(&data_dir)
        .await;
    let c = gw.client();
    // rclone takes a moment to listen; the first request retries until it does (bounded).
    c.create_bucket().bucket("photos").send().await.unwrap();
    let body = data(3 * SEG + 777, 9);
    c.put_object()
        .bucket("photos")
        .key("secret-name.jpg")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put: {e:?}"));
    let got = c
        .get_object()
        .bucket("photos")
        .key("secret-name.jpg")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert!(got[..] == body[..], "whole object");
    let (a, b) = (SEG - 10, 2 * SEG + 10);
    let got = c
        .get_object()
        .bucket("photos")
        .key("secret-name.jpg")
        .range(format!("bytes={a}-{b}"))
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert!(got[..] == body[a..=b], "range across segments");

    // The bucket holds only piece objects under the node prefixes: four segments with three
    // or four pieces each, named by 64 hex digits; no object name anywhere.
    let stored = files(&root.join("pieces"));
    assert!((12..=16).contains(&stored.len()), "{stored:?}");
    for f in &stored {
        let rel = f
            .strip_prefix(root.join("pieces"))
            .unwrap()
            .to_string_lossy()
            .to_string();
        let (prefix, name) = rel.split_once('/').unwrap();
        assert!(prefix.starts_with("node"), "{rel}");
        assert!(
            name.len() == 64 && name.bytes().all(|c| c.is_ascii_hexdigit()),
            "{rel}"
        );
        assert!(!rel.contains("secret-name"));
    }
    let snap = gw.gateway().transfers.metrics().snapshot();
    assert!(snap.node_sent_total() as f64 >= 1.5 * body.len() as f64);

    // Deleting collects the pieces from the bucket.
    let pieces = root.join("pieces");
    c.delete_object()
        .bucket("photos")
        .key("secret-name.jpg")
        .send()
        .await
        .unwrap();
    let gone = wait::eventually(Duration::from_secs(20), || files(&pieces).is_empty()).await;
    assert!(gone, "pieces left: {:?}", files(&pieces));
    gw.stop().await;
}
