//! The gateway over `s3` nodes: four prefixes of one bucket on a real third-party S3 server
//! (`rclone serve s3`, as `.ci/test` installs it; the test fails, never skips, without rclone).
//! Objects round-trip (whole and ranged), the server only ever holds opaque piece names, and a
//! deleted object's pieces are collected from the bucket.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use common::{data, ACCESS_KEY, SECRET_KEY};
use gateway::app::{prepare, Gateway};

const SEG: usize = 256 << 10;
const NODE_AK: &str = "rclonenodekey";
const NODE_SK: &str = "rclone-node-secret-0123456789";

fn rclone_binary() -> PathBuf {
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

struct Rclone(Child);

impl Drop for Rclone {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Files under `dir`, recursively.
/// Data piece objects under `dir` (the metadata blobs every node also holds left out: they
/// start with `GWMB`).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = all_files(dir);
    out.retain(|p| !common::is_metadata_blob(p));
    out
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn objects_live_in_an_s3_bucket() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("s3root");
    std::fs::create_dir_all(root.join("pieces")).unwrap();
    std::fs::write(tmp.path().join("rclone.conf"), "").unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = Rclone(
        Command::new(rclone_binary())
            .args(["serve", "s3", "--addr", &format!("127.0.0.1:{port}")])
            .args(["--auth-key", &format!("{NODE_AK},{NODE_SK}")])
            .arg("--config")
            .arg(tmp.path().join("rclone.conf"))
            .arg("--cache-dir")
            .arg(tmp.path().join("cache"))
            .args(["--vfs-cache-mode", "off"])
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(tmp.path().join("rclone.log")).unwrap())
            .spawn()
            .expect("spawn rclone"),
    );
    let data_dir = tmp.path().join("gw");
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::write(data_dir.join("node-secret"), format!("{NODE_SK}\n")).unwrap();
    let mut cfg = format!(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[storage]\nscheme = \"2/3/3/4\"\n\
         segment_size = \"{SEG}\"\nchunk_size = \"4KiB\"\nblock_size = \"4KiB\"\ngc_grace = \"0s\"\n"
    );
    for i in 1..=4 {
        cfg.push_str(&format!(
            "[[nodes]]\nid = \"s{i}\"\nkind = \"s3\"\nendpoint = \"http://127.0.0.1:{port}\"\n\
             bucket = \"pieces\"\nprefix = \"node{i}/\"\naccess_key = \"{NODE_AK}\"\n\
             secret_key_file = \"node-secret\"\n"
        ));
    }
    std::fs::write(data_dir.join("config.toml"), cfg).unwrap();
    std::fs::write(
        data_dir.join("credentials.toml"),
        format!("access_key = \"{ACCESS_KEY}\"\nsecret_key = \"{SECRET_KEY}\"\n"),
    )
    .unwrap();
    let p = prepare(&data_dir, None).unwrap();
    let gw = Gateway::start(&p).await.unwrap();
    let c = Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(format!("http://{}", gw.addr))
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "t"))
            .force_path_style(true)
            .build(),
    );
    // rclone takes a moment to listen; the first request retries until it does (bounded).
    c.create_bucket().bucket("photos").send().await.unwrap();
    let body = data(3 * SEG + 777, 9);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = c
            .put_object()
            .bucket("photos")
            .key("secret-name.jpg")
            .body(ByteStream::from(body.clone()))
            .send()
            .await;
        match r {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("put failed (rclone starting?): {e:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("put: {e:?}"),
        }
    }
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
    let snap = gw.transfers.metrics().snapshot();
    assert!(snap.node_sent_total() as f64 >= 1.5 * body.len() as f64);

    // Deleting collects the pieces from the bucket.
    c.delete_object()
        .bucket("photos")
        .key("secret-name.jpg")
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !files(&root.join("pieces")).is_empty() {
        assert!(
            Instant::now() < deadline,
            "pieces left: {:?}",
            files(&root.join("pieces"))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gw.stop().await.unwrap();
}
