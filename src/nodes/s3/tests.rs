//! `S3Node` against a real third-party S3 server: `rclone serve s3` over a temp directory,
//! one server per test. The tests fail (never skip) when rclone cannot be found.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::nodes::conformance;

const AK: &str = "gw-test-access";
const SK: &str = "gw-test-secret-3f9a2c71";
const BUCKET: &str = "pieces";
const MIB: usize = 1 << 20;

/// The rclone binary: `$GATEWAY_TEST_RCLONE` (`.ci/test` sets it), else the one `.ci/test`
/// installed, else the interop venv's, else `rclone` on PATH.
fn rclone_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("GATEWAY_TEST_RCLONE") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "GATEWAY_TEST_RCLONE={} is not a file (`bash .ci/test` installs rclone)",
            p.display()
        );
        return p;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for installed in ["target/test-tools/bin/rclone", ".ci/.venv/bin/rclone"] {
        if root.join(installed).is_file() {
            return root.join(installed);
        }
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("rclone"))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "rclone not found: the s3 node tests run against `rclone serve s3`. Run the tests \
             with `bash .ci/test` (installs rclone into target/test-tools/bin), put rclone on \
             PATH, or set GATEWAY_TEST_RCLONE to an rclone binary"
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `rclone serve s3` with the bucket [`BUCKET`]; killed on drop.
struct Rclone {
    child: Child,
    dir: tempfile::TempDir,
    endpoint: String,
    https: bool,
}

impl Rclone {
    async fn start() -> Rclone {
        Rclone::start_with(&[]).await
    }

    /// Serves https with the test certificate of `tests/fixtures/tls`.
    async fn start_tls() -> Rclone {
        let cert = fixture("node-cert.pem");
        let key = fixture("node-key.pem");
        Rclone::start_with(&[
            "--cert".as_ref(),
            cert.as_os_str(),
            "--key".as_ref(),
            key.as_os_str(),
        ])
        .await
    }

    async fn start_with(extra: &[&std::ffi::OsStr]) -> Rclone {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("root").join(BUCKET)).unwrap();
        std::fs::write(dir.path().join("rclone.conf"), "").unwrap();
        let log = std::fs::File::create(dir.path().join("rclone.log")).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(rclone_binary())
            .args(["serve", "s3", "--addr", &addr])
            .args(["--auth-key", &format!("{AK},{SK}")])
            .arg("--config")
            .arg(dir.path().join("rclone.conf"))
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(["--vfs-cache-mode", "off"])
            .args(extra)
            .arg(dir.path().join("root"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let https = !extra.is_empty();
        let scheme = if https { "https" } else { "http" };
        let mut server = Rclone {
            child,
            dir,
            endpoint: format!("{scheme}://{addr}"),
            https,
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&mut self) {
        let mut opts = self.options("");
        opts.connect_timeout = Duration::from_millis(500);
        opts.read_timeout = Duration::from_secs(2);
        opts.retries = 0;
        let node = S3Node::new("probe", opts).unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("rclone exited with {status}:\n{}", self.log());
            }
            match node.check().await {
                Ok(()) => return,
                Err(e) if start.elapsed() > Duration::from_secs(15) => {
                    panic!("rclone not ready within 15 s: {e}\n{}", self.log())
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rclone.log")).unwrap_or_default()
    }

    fn options(&self, prefix: &str) -> S3Options {
        let mut opts = S3Options::new(&self.endpoint, "us-east-1", BUCKET, AK, SK);
        opts.prefix = prefix.to_string();
        if self.https {
            opts.ca_file = Some(fixture("node-cert.pem"));
        }
        opts
    }

    fn node(&self, prefix: &str) -> S3Node {
        S3Node::new("s3n", self.options(prefix)).unwrap()
    }

    /// Files under the bucket, as paths relative to it (rclone's hidden temp objects too).
    fn files(&self) -> Vec<String> {
        let root = self.dir.path().join("root").join(BUCKET);
        let mut out = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push(path.strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
    }

    /// Waits (at most 5 s) until the bucket holds exactly `want` files.
    async fn files_become(&self, want: &[String]) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if self.files() == want {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }
}

impl Drop for Rclone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// Deterministic, non-repeating bytes (xorshift), so a misplaced part cannot match.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn writer(node: &S3Node, piece: PieceId) -> S3Writer {
    S3Writer::new(node.inner.clone(), node.inner.object_path(&piece))
}

#[tokio::test]
async fn conformance_with_a_prefix() {
    let server = Rclone::start().await;
    let node = server.node("gw/n1/");
    conformance::run(&node).await;
    // Pieces live under the prefix, and nothing else is left behind.
    let files = server.files();
    assert_eq!(files.len(), 8, "{files:?}");
    assert!(files.iter().all(|f| f.starts_with("gw/n1/")), "{files:?}");
    // Another prefix in the same bucket sees none of them.
    assert!(server
        .node("gw/n2/")
        .list(None, 100)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn large_piece_round_trips_through_multipart() {
    let server = Rclone::start().await;
    let node = server.node("mp/");
    let id = PieceId([7; 32]);
    let old = data(1000, 1);
    let mut w = node.create(id).await.unwrap();
    w.write(Bytes::from(old.clone())).await.unwrap();
    w.commit().await.unwrap();

    let total = 20 * MIB + 3;
    let content = data(total, 2);
    // Uneven writes: buffered, crossing part boundaries, and one larger than a part.
    let sizes = [100_000, 7_000_000, 10_000_000, total - 17_100_000];
    let mut w = writer(&node, id);
    let mut at = 0;
    for size in sizes {
        w.write_data(Bytes::copy_from_slice(&content[at..at + size]))
            .await
            .unwrap();
        at += size;
        assert!(w.buf.capacity() <= PART_SIZE, "buffer grew past a part");
    }
    assert_eq!(at, total);
    assert!(w.upload_id.is_some());
    assert_eq!(w.etags.len(), 2, "two full parts uploaded inside write");
    assert_eq!(w.buf.len(), total - 2 * PART_SIZE);
    // Not visible before commit: the old piece still reads.
    assert_eq!(node.read(id, 0, 1000).await.unwrap(), old);
    Box::new(w).commit().await.unwrap();

    assert_eq!(node.read(id, 0, total as u64).await.unwrap(), content);
    for (offset, len) in [
        (PART_SIZE - 5, 10),
        (2 * PART_SIZE - 1, 2),
        (PART_SIZE, PART_SIZE),
        (1, 2 * PART_SIZE + 1),
        (total - 10, 10),
    ] {
        let got = node.read(id, offset as u64, len as u64).await.unwrap();
        assert!(
            got[..] == content[offset..offset + len],
            "range {offset}+{len}"
        );
    }
    assert!(matches!(
        node.read(id, (total - 10) as u64, 11).await,
        Err(NodeError::ShortRead { .. })
    ));
    assert!(matches!(
        node.read(id, total as u64 + 5, 1).await,
        Err(NodeError::ShortRead { .. })
    ));
    assert_eq!(node.read(id, total as u64, 0).await.unwrap().len(), 0);
    assert!(matches!(
        node.read(id, total as u64 + 1, 0).await,
        Err(NodeError::ShortRead { .. })
    ));
    assert_eq!(node.list(None, 10).await.unwrap(), vec![id]);
}

#[tokio::test]
async fn a_piece_of_exactly_one_part_is_a_single_put() {
    let server = Rclone::start().await;
    let node = server.node("");
    let id = PieceId([9; 32]);
    let content = data(PART_SIZE, 3);
    let mut w = writer(&node, id);
    w.write_data(Bytes::copy_from_slice(&content[..3 * MIB]))
        .await
        .unwrap();
    w.write_data(Bytes::copy_from_slice(&content[3 * MIB..]))
        .await
        .unwrap();
    assert!(w.upload_id.is_none() && w.etags.is_empty());
    Box::new(w).commit().await.unwrap();
    assert_eq!(node.read(id, 0, PART_SIZE as u64).await.unwrap(), content);
    // An empty piece is a valid piece too.
    let empty = PieceId([10; 32]);
    node.create(empty).await.unwrap().commit().await.unwrap();
    assert_eq!(node.read(empty, 0, 0).await.unwrap().len(), 0);
    assert!(matches!(
        node.read(empty, 0, 1).await,
        Err(NodeError::ShortRead { .. })
    ));
}

#[tokio::test]
async fn wrong_secret_is_refused_and_writes_nothing() {
    let server = Rclone::start().await;
    let mut opts = server.options("gw/");
    let wrong = "not-the-secret-8d41e0";
    opts.secret_key = wrong.to_string();
    let bad = S3Node::new("bad", opts).unwrap();
    let id = PieceId([3; 32]);

    let reason = |e: NodeError| match e {
        NodeError::Refused { reason, .. } => {
            assert!(!reason.contains(wrong) && !reason.contains(SK), "{reason}");
            reason
        }
        other => panic!("expected Refused, got {other:?}"),
    };
    let mut w = bad.create(id).await.unwrap();
    w.write(Bytes::from_static(b"small")).await.unwrap();
    let r = reason(w.commit().await.unwrap_err());
    assert!(r.contains("PutObject: HTTP 403"), "{r}");
    // A multipart upload is refused at its first part.
    let mut w = bad.create(id).await.unwrap();
    let e = w
        .write(Bytes::from(data(PART_SIZE + 1, 4)))
        .await
        .unwrap_err();
    reason(e);
    assert!(w.write(Bytes::from_static(b"more")).await.is_err());
    assert!(w.commit().await.is_err());
    reason(bad.read(id, 0, 1).await.unwrap_err());
    reason(bad.list(None, 10).await.unwrap_err());
    reason(bad.check().await.unwrap_err());

    let good = server.node("gw/");
    assert!(good.list(None, 10).await.unwrap().is_empty());
    assert!(server.files().is_empty(), "{:?}", server.files());
}

#[tokio::test]
async fn unreachable_endpoint_is_unavailable_within_the_timeouts() {
    let mut opts = S3Options::new(
        format!("http://127.0.0.1:{}", free_port()),
        "us-east-1",
        BUCKET,
        AK,
        SK,
    );
    opts.connect_timeout = Duration::from_millis(300);
    opts.read_timeout = Duration::from_millis(300);
    opts.retries = 1;
    let node = S3Node::new("gone", opts.clone()).unwrap();
    assert_unavailable_quickly(&node).await;

    // A server that accepts connections (the kernel's backlog does) but never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = silent.local_addr().unwrap();
    opts.endpoint = format!("http://{addr}");
    let node = S3Node::new("silent", opts).unwrap();
    assert_unavailable_quickly(&node).await;
}

async fn assert_unavailable_quickly(node: &S3Node) {
    let id = PieceId([4; 32]);
    let start = Instant::now();
    let unavailable = |r: Result<(), NodeError>| {
        assert!(
            matches!(r, Err(NodeError::Unavailable { .. })),
            "expected Unavailable, got {r:?}"
        )
    };
    unavailable(node.check().await);
    unavailable(node.read(id, 0, 1).await.map(drop));
    unavailable(node.read(id, 0, 0).await.map(drop));
    unavailable(node.delete(id).await);
    unavailable(node.list(None, 5).await.map(drop));
    let mut w = node.create(id).await.unwrap();
    w.write(Bytes::from_static(b"abc")).await.unwrap();
    unavailable(w.commit().await);
    // Each call: at most two attempts of 300 ms plus a backoff of at most 50 ms.
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "took {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn aborted_or_dropped_multipart_writers_leave_nothing() {
    let server = Rclone::start().await;
    let node = server.node("ab/");
    let id = PieceId([5; 32]);
    let old = data(10, 5);
    let mut w = node.create(id).await.unwrap();
    w.write(Bytes::from(old.clone())).await.unwrap();
    w.commit().await.unwrap();
    let committed = server.files();
    assert_eq!(committed.len(), 1);

    // Aborted after a part was uploaded: the old piece stays, no upload is left behind.
    let mut w = writer(&node, id);
    w.write_data(Bytes::from(data(PART_SIZE + MIB, 6)))
        .await
        .unwrap();
    assert_eq!(w.etags.len(), 1);
    Box::new(w).abort().await;
    assert_eq!(node.read(id, 0, 10).await.unwrap(), old);
    assert!(
        server.files_become(&committed).await,
        "{:?}",
        server.files()
    );

    // Dropped: the abort runs in a spawned task.
    let other = PieceId([6; 32]);
    let mut w = writer(&node, other);
    w.write_data(Bytes::from(data(PART_SIZE + MIB, 7)))
        .await
        .unwrap();
    assert_eq!(w.etags.len(), 1);
    let upload_id = w.upload_id.clone().unwrap();
    drop(w);
    assert!(
        server.files_become(&committed).await,
        "{:?}",
        server.files()
    );
    assert!(matches!(
        node.read(other, 0, 1).await,
        Err(NodeError::NotFound { .. })
    ));
    assert_eq!(node.list(None, 10).await.unwrap(), vec![id]);
    // The upload is gone: a late part for it is refused.
    let late = node
        .inner
        .upload_part(
            &node.inner.object_path(&other),
            &upload_id,
            2,
            Bytes::from_static(b"x"),
        )
        .await;
    assert!(matches!(late, Err(NodeError::Refused { .. })), "{late:?}");
}

#[tokio::test]
async fn listing_follows_continuation_past_foreign_keys() {
    let server = Rclone::start().await;
    let dir = server.dir.path().join("root").join(BUCKET).join("c");
    std::fs::create_dir_all(&dir).unwrap();
    // Keys under the prefix that are not piece ids, sorting before and between them.
    let upper = "AB".repeat(32);
    for junk in ["-junk1", "-junk2", upper.as_str(), "5-not-hex"] {
        std::fs::write(dir.join(junk), b"j").unwrap();
    }
    let node = server.node("c/");
    let mut ids: Vec<PieceId> = [0x00, 0x42, 0x99, 0xf0]
        .iter()
        .map(|&b| PieceId([b; 32]))
        .collect();
    for id in &ids {
        let mut w = node.create(*id).await.unwrap();
        w.write(Bytes::from_static(b"p")).await.unwrap();
        w.commit().await.unwrap();
    }
    ids.sort_by_key(|id| id.0);
    // Two keys a page: the first page holds no piece at all.
    assert_eq!(node.list(None, 2).await.unwrap(), ids[..2]);
    assert_eq!(node.list(Some(ids[0]), 2).await.unwrap(), ids[1..3]);
    assert_eq!(node.list(Some(ids[2]), 2).await.unwrap(), ids[3..]);
    assert_eq!(node.list(None, 1000).await.unwrap(), ids);
    assert!(node.list(None, 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_server_checks_content_md5() {
    let server = Rclone::start().await;
    let node = server.node("");
    let id = PieceId([11; 32]);
    let path = node.inner.object_path(&id);
    let mut req = Req::new("PutObject", Method::PUT, &path).body(Bytes::from_static(b"hello"));
    // The MD5 of other bytes, as if the body had been damaged on the way.
    req.md5 = Req::new("x", Method::PUT, "/")
        .body(Bytes::from_static(b"hellO"))
        .md5;
    let r = node.inner.call(&req, XML_BODY_MAX).await.unwrap();
    match node.inner.failure(req.what, &r) {
        NodeError::Refused { reason, .. } => assert!(reason.contains("BadDigest"), "{reason}"),
        e => panic!("{e:?}"),
    }
    assert!(matches!(
        node.read(id, 0, 1).await,
        Err(NodeError::NotFound { .. })
    ));
}

#[tokio::test]
async fn https_with_a_ca_file() {
    let server = Rclone::start_tls().await;
    let node = server.node("tls/");
    let id = PieceId([8; 32]);
    let mut w = node.create(id).await.unwrap();
    w.write(Bytes::from_static(b"over tls")).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(&node.read(id, 5, 3).await.unwrap()[..], b"tls");
    assert_eq!(node.list(None, 10).await.unwrap(), vec![id]);

    // Trusting another certificate: the server is not who it claims to be.
    let mut opts = server.options("tls/");
    opts.ca_file = Some(fixture("other-cert.pem"));
    opts.retries = 0;
    let wary = S3Node::new("wary", opts).unwrap();
    let e = wary.read(id, 0, 1).await.unwrap_err();
    assert!(matches!(e, NodeError::Unavailable { .. }), "{e:?}");
}

#[test]
fn debug_output_has_no_secret() {
    let opts = S3Options::new("http://127.0.0.1:9", "us-east-1", BUCKET, AK, SK);
    let text = format!("{opts:?}");
    assert!(!text.contains(SK), "{text}");
    assert!(text.contains(AK) && text.contains(BUCKET), "{text}");
    let node = S3Node::new("n1", opts).unwrap();
    let text = format!("{node:?}");
    assert!(!text.contains(SK), "{text}");
    assert!(
        text.contains("n1") && text.contains("127.0.0.1:9"),
        "{text}"
    );
}

#[test]
fn endpoints_are_validated() {
    for ok in [
        "http://127.0.0.1:9000",
        "http://minio.local:9000/",
        "https://s3.eu-west-3.amazonaws.com",
        "https://[::1]:8443",
    ] {
        assert_eq!(validate_endpoint(ok), Ok(()), "{ok}");
    }
    for bad in [
        "",
        "127.0.0.1:9000",
        "ftp://host",
        "http://host:9000/bucket",
        "http://host?x=1",
        "https://user:pw@host",
        "http://",
    ] {
        assert!(validate_endpoint(bad).is_err(), "{bad:?}");
    }
    let mut opts = S3Options::new("http://127.0.0.1:9", "us-east-1", "a/b", AK, SK);
    assert!(matches!(
        S3Node::new("n", opts.clone()),
        Err(NodeError::Unavailable { .. })
    ));
    opts.bucket = BUCKET.into();
    opts.access_key = "a,b".into();
    assert!(S3Node::new("n", opts.clone()).is_err());
    opts.access_key = AK.into();
    opts.secret_key = String::new();
    assert!(S3Node::new("n", opts).is_err());
}
