//! `RemoteNode` against an in-process `NodeServer` on 127.0.0.1:0.

use std::path::Path;
use std::time::{Duration, Instant};

use super::*;
use crate::nodes::server::{NodeServer, NodeServerOptions};
use crate::tls::TlsFiles;
use http_body_util::BodyExt;

mod tls;

struct Fixture {
    dir: tempfile::TempDir,
    server: Option<NodeServer>,
    tls: bool,
}

impl Fixture {
    async fn start(reserve: u64) -> Fixture {
        Self::start_with(reserve, None).await
    }

    /// A server speaking only TLS with `files` when set.
    async fn start_with(reserve: u64, files: Option<TlsFiles>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let tls = files.is_some();
        let server = NodeServer::start(&NodeServerOptions {
            dir: dir.path().join("node"),
            listen: "127.0.0.1:0".parse().unwrap(),
            token_file: None,
            reserve,
            tls: files,
        })
        .await
        .unwrap();
        Fixture {
            dir,
            server: Some(server),
            tls,
        }
    }

    fn node_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("node")
    }

    fn server(&self) -> &NodeServer {
        self.server.as_ref().unwrap()
    }

    fn token(&self) -> NodeToken {
        NodeToken::load(self.server().token_file()).unwrap()
    }

    /// Options reaching the server the way it speaks; over TLS, trusting its certificate.
    fn options(&self) -> RemoteOptions {
        let scheme = if self.tls { "https" } else { "http" };
        let address = format!("{scheme}://{}", self.server().addr());
        let mut opts = RemoteOptions::new(address, self.token());
        if self.tls {
            opts.ca_file = Some(crate::tls::tests::fixture("node-cert.pem"));
        }
        opts
    }

    fn client(&self) -> RemoteNode {
        RemoteNode::new("r1", self.options()).unwrap()
    }

    /// Committed piece files and temp files on disk.
    fn files(&self) -> (usize, usize) {
        let root = self.node_dir();
        let mut pieces = 0;
        for fan in std::fs::read_dir(root.join("pieces")).unwrap() {
            pieces += std::fs::read_dir(fan.unwrap().path()).unwrap().count();
        }
        let tmp = std::fs::read_dir(root.join("tmp")).unwrap().count();
        (pieces, tmp)
    }

    /// Waits until no temp file is left (the server discards broken uploads asynchronously).
    async fn no_temp_files(&self) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if self.files().1 == 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

async fn start_server(dir: &Path, listen: &str, reserve: u64) -> NodeServer {
    NodeServer::start(&NodeServerOptions {
        dir: dir.to_path_buf(),
        listen: listen.parse().unwrap(),
        token_file: None,
        reserve,
        tls: None,
    })
    .await
    .unwrap()
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

async fn put(node: &RemoteNode, id: PieceId, body: &[u8]) -> Result<(), NodeError> {
    let mut w = node.create(id).await?;
    for chunk in body.chunks(100_000) {
        w.write(Bytes::copy_from_slice(chunk)).await?;
    }
    w.commit().await
}

#[tokio::test]
async fn conformance() {
    let f = Fixture::start(0).await;
    crate::nodes::conformance::run(&f.client()).await;
    assert!(f.no_temp_files().await, "aborted uploads left temp files");
    assert_eq!(f.files().0, 8, "only the eight concurrent pieces remain");
}

/// A TCP proxy to `server` that flips one bit of the first 0xaa byte a client sends through
/// it (request heads, chunk sizes and trailers are ASCII, so that byte is body data) and
/// forwards everything else untouched.
async fn corrupting_proxy(server: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let flipped = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let flipped = flipped.clone();
            tokio::spawn(async move {
                let upstream = tokio::net::TcpStream::connect(server).await.unwrap();
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_server, mut to_server) = upstream.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
                });
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n @ 1..) = from_client.read(&mut buf).await {
                    if !flipped.load(Ordering::SeqCst) {
                        if let Some(i) = buf[..n].iter().position(|b| *b == 0xaa) {
                            buf[i] ^= 1;
                            flipped.store(true, Ordering::SeqCst);
                        }
                    }
                    if to_server.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = to_server.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_upload_altered_in_flight_is_refused() {
    let f = Fixture::start(0).await;
    let mut opts = f.options();
    opts.address = format!("http://{}", corrupting_proxy(f.server().addr()).await);
    let node = RemoteNode::new("r1", opts).unwrap();
    let id = PieceId([8; 32]);
    let body = vec![0xaa; 300_000];
    match put(&node, id, &body).await {
        Err(NodeError::Refused { node, reason }) => {
            assert_eq!(node, "r1");
            assert!(reason.contains("400"), "{reason}");
            assert!(
                reason.contains("piece body does not match its BLAKE3 digest"),
                "{reason}"
            );
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    assert!(f.no_temp_files().await);
    assert_eq!(f.files(), (0, 0));
    // The proxy alters only one byte: the same upload through it again lands intact.
    put(&node, id, &body).await.unwrap();
    assert_eq!(node.read(id, 0, body.len() as u64).await.unwrap(), body);
    assert_eq!(f.files(), (1, 0));
}

#[tokio::test]
async fn wrong_token_is_refused_and_nothing_is_written() {
    let f = Fixture::start(0).await;
    let mut opts = f.options();
    opts.token = NodeToken::generate().unwrap();
    let intruder = RemoteNode::new("r1", opts).unwrap();
    let id = PieceId([7; 32]);
    let err = put(&intruder, id, b"not allowed").await.unwrap_err();
    match &err {
        NodeError::Refused { node, reason } => {
            assert_eq!(node, "r1");
            assert!(reason.contains("401"), "{reason}");
            assert!(reason.contains("token"), "{reason}");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    assert!(matches!(
        intruder.read(id, 0, 1).await,
        Err(NodeError::Refused { .. })
    ));
    assert!(matches!(
        intruder.delete(id).await,
        Err(NodeError::Refused { .. })
    ));
    assert!(matches!(
        intruder.list_pieces(None, 10).await,
        Err(NodeError::Refused { .. })
    ));
    assert!(f.no_temp_files().await);
    assert_eq!(f.files(), (0, 0));
    // The right token still works, and a request without any credentials is refused.
    put(&f.client(), id, b"allowed").await.unwrap();
    let raw = f.client();
    let uri = format!("http://{}/v1/status", f.server().addr());
    let resp = raw
        .inner
        .client
        .request(Request::get(uri).body(NodeBody::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("missing Authorization"));
}

#[tokio::test]
async fn killed_server_mid_upload_leaves_no_piece() {
    let mut f = Fixture::start(0).await;
    let node = f.client();
    let id = PieceId([9; 32]);
    let mut w = node.create(id).await.unwrap();
    w.write(Bytes::from(data(1 << 20, 1))).await.unwrap();
    // Let the server start writing the temp file.
    let start = Instant::now();
    while f.files().1 == 0 && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(f.files(), (0, 1), "the upload reached the server");
    f.server.take().unwrap().kill();
    // Further writes or the commit fail; nothing is committed.
    let mut failed = false;
    for _ in 0..8 {
        if w.write(Bytes::from(data(1 << 20, 2))).await.is_err() {
            failed = true;
            break;
        }
    }
    if !failed {
        assert!(w.commit().await.is_err());
    }
    assert!(f.no_temp_files().await);
    assert_eq!(f.files(), (0, 0));
    // A restarted server lists nothing and reading fails cleanly.
    f.server = Some(start_server(&f.node_dir(), "127.0.0.1:0", 0).await);
    let node = f.client();
    assert!(node.list_pieces(None, 10).await.unwrap().is_empty());
    assert!(matches!(
        node.read(id, 0, 1).await,
        Err(NodeError::NotFound { .. })
    ));
}

#[tokio::test]
async fn reserve_refuses_with_507_and_a_clear_message() {
    let f = Fixture::start(u64::MAX / 2).await;
    let node = f.client();
    let status = node.status().await.unwrap();
    assert_eq!(status.reserve_bytes, u64::MAX / 2);
    assert!(status.total_bytes > 0 && status.free_bytes <= status.total_bytes);
    assert_eq!(status.protocol, crate::nodes::protocol::PROTOCOL_VERSION);
    // A small piece and a streamed one large enough to still be sending when the node answers.
    for body in [b"no room".to_vec(), data(20 << 20, 1)] {
        let err = put(&node, PieceId([3; 32]), &body).await.unwrap_err();
        match &err {
            NodeError::Refused { reason, .. } => {
                assert!(reason.contains("507"), "{reason}");
                assert!(reason.contains("node is full"), "{reason}");
                assert!(reason.contains("reserve"), "{reason}");
            }
            other => panic!("expected Refused, got {other:?}"),
        }
    }
    assert!(f.no_temp_files().await);
    assert_eq!(f.files(), (0, 0));
}

/// The server's transfer counters, once they equal `want` (uploads are counted by the server
/// while the client moves on); the last value seen after 5 s otherwise.
async fn counters(node: &RemoteNode, want: (u64, u64)) -> (u64, u64) {
    let start = Instant::now();
    loop {
        let s = node.status().await.unwrap();
        let got = (s.received_bytes, s.sent_bytes);
        if got == want || start.elapsed() > Duration::from_secs(5) {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn status_counts_piece_bytes_received_and_sent() {
    let f = Fixture::start(0).await;
    let node = f.client();
    assert_eq!(counters(&node, (0, 0)).await, (0, 0));
    let id = PieceId([1; 32]);
    let body = data(3 * (1 << 20) + 5, 1);
    let n = body.len() as u64;
    put(&node, id, &body).await.unwrap();
    // Status answers are not piece bytes: sent stays 0 however often it is asked.
    assert_eq!(counters(&node, (n, 0)).await, (n, 0));
    let m = (2 << 20) + 7;
    assert_eq!(node.read(id, 1000, m).await.unwrap().len() as u64, m);
    assert_eq!(counters(&node, (n, m)).await, (n, m));
    // HEAD, refused ranges, missing pieces and listings send no piece bytes.
    node.read(id, n, 0).await.unwrap();
    assert!(node.read(id, n - 1, 2).await.is_err());
    assert!(node.read(PieceId([2; 32]), 0, 1).await.is_err());
    node.list_pieces(None, 10).await.unwrap();
    assert_eq!(counters(&node, (n, m)).await, (n, m));
    // The bytes of an upload that is then aborted were received all the same.
    let mut w = node.create(PieceId([3; 32])).await.unwrap();
    w.write(Bytes::from(data(300_000, 2))).await.unwrap();
    let received = n + 300_000;
    assert_eq!(counters(&node, (received, m)).await, (received, m));
    w.abort().await;
    assert!(f.no_temp_files().await);
    assert_eq!(node.list_pieces(None, 10).await.unwrap(), vec![id]);
    assert_eq!(counters(&node, (received, m)).await, (received, m));
}

#[tokio::test]
async fn listing_pages_through_every_piece_in_order() {
    let f = Fixture::start(0).await;
    let node = f.client();
    let mut ids: Vec<PieceId> = [0x00u8, 0x01, 0x7f, 0x80, 0xff]
        .iter()
        .flat_map(|b| [PieceId([*b; 32]), PieceId([*b ^ 0x55; 32])])
        .collect();
    for id in &ids {
        put(&node, *id, b"x").await.unwrap();
    }
    ids.sort_by_key(|id| id.0);
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = node.list_pieces(after, 3).await.unwrap();
        assert!(page.len() <= 3);
        seen.extend(page.iter().copied());
        if page.len() < 3 {
            break;
        }
        after = page.last().copied();
    }
    assert_eq!(seen, ids);
    let all = node.list_pieces(None, 100).await.unwrap();
    assert_eq!(all, ids);
    node.delete(ids[0]).await.unwrap();
    assert_eq!(node.list_pieces(None, 1).await.unwrap(), vec![ids[1]]);
}

#[tokio::test]
async fn range_reads_are_exact() {
    let f = Fixture::start(0).await;
    let node = f.client();
    let id = PieceId([5; 32]);
    // Larger than the server's read window, so responses span several windows.
    let body = data(3 * (1 << 20) + 12_345, 9);
    put(&node, id, &body).await.unwrap();
    let size = body.len() as u64;
    for (offset, len) in [
        (0, size),
        (0, 1),
        (size - 1, 1),
        (1_000_000, 2_000_000),
        ((1 << 20) - 3, 6),
        (size, 0),
    ] {
        let got = node
            .read(id, offset, len)
            .await
            .unwrap_or_else(|e| panic!("{offset}+{len}: {e:?} files {:?}", f.files()));
        assert_eq!(
            &got[..],
            &body[offset as usize..(offset + len) as usize],
            "{offset}+{len}"
        );
    }
    for (offset, len) in [(size - 1, 2), (size, 1), (size + 1, 0), (u64::MAX, 2)] {
        assert!(
            matches!(
                node.read(id, offset, len).await,
                Err(NodeError::ShortRead { .. })
            ),
            "{offset}+{len}"
        );
    }
    // The whole piece without a Range is a 200 with every byte.
    let r = node
        .inner
        .call(Method::GET, &piece_target(&id), None, body.len())
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, body);
}

#[tokio::test]
async fn server_speaks_h2c() {
    let f = Fixture::start(0).await;
    let raw = f.client();
    let h2: Client<HttpConnector, NodeBody> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new());
    let req = raw
        .inner
        .request(Method::GET, &status_target(), NodeBody::empty(), None)
        .unwrap();
    let resp = h2.request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn idempotent_requests_retry_until_the_node_is_back() {
    let dir = tempfile::tempdir().unwrap();
    // A free port, then nothing listening on it for a while.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let node_dir = dir.path().join("node");
    // Create the token first so the client can have it before the server starts.
    std::fs::create_dir_all(&node_dir).unwrap();
    crate::nodes::DirNode::open("t", &node_dir, true).unwrap();
    let token = NodeToken::load_or_create(&node_dir.join("token"))
        .unwrap()
        .0;
    let mut opts = RemoteOptions::new(format!("http://{listen}"), token);
    opts.retries = 6;
    let node = RemoteNode::new("r1", opts).unwrap();
    let starter = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        start_server(&node_dir, &listen, 0).await
    });
    let start = Instant::now();
    assert!(matches!(
        node.read(PieceId([1; 32]), 0, 1).await,
        Err(NodeError::NotFound { .. })
    ));
    assert!(start.elapsed() >= Duration::from_millis(250));
    starter.await.unwrap().stop().await;
}

#[tokio::test]
async fn unreachable_and_silent_nodes_fail_within_the_timeouts() {
    // Nothing listening: connection refused, retried, then Unavailable naming the node.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut opts = RemoteOptions::new(
        format!("http://127.0.0.1:{port}"),
        NodeToken::generate().unwrap(),
    );
    opts.retries = 1;
    let node = RemoteNode::new("gone", opts.clone()).unwrap();
    match node.read(PieceId([1; 32]), 0, 1).await {
        Err(NodeError::Unavailable { node, reason }) => {
            assert_eq!(node, "gone");
            assert!(reason.contains("onnect"), "{reason}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let mut w = node.create(PieceId([1; 32])).await.unwrap();
    let _ = w.write(Bytes::from_static(b"x")).await;
    assert!(matches!(
        w.commit().await,
        Err(NodeError::Unavailable { .. })
    ));

    // Accepts connections but never answers: the read timeout ends each attempt.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            conns.push(s);
        }
    });
    opts.address = format!("http://{addr}");
    opts.read_timeout = Duration::from_millis(200);
    opts.retries = 0;
    let node = RemoteNode::new("mute", opts).unwrap();
    let start = Instant::now();
    match node.read(PieceId([1; 32]), 0, 1).await {
        Err(NodeError::Unavailable { reason, .. }) => {
            assert!(reason.contains("no answer"), "{reason}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(2));
    hold.abort();
}

#[test]
fn addresses() {
    let base = |a: &str| base_url(a).unwrap();
    assert_eq!(
        base("http://127.0.0.1:7001"),
        ("http://127.0.0.1:7001".into(), false)
    );
    assert_eq!(
        base("http://node1:7001/"),
        ("http://node1:7001".into(), false)
    );
    assert_eq!(
        base("https://node1:7001/"),
        ("https://node1:7001".into(), true)
    );
    assert_eq!(base("HTTPS://node1"), ("https://node1".into(), true));
    assert!(validate_address("https://[::1]:7001").is_ok());
    assert!(base_url("https://node1:7001/v1").is_err());
    assert!(base_url("node1:7001").is_err());
    assert!(base_url("http://node1:7001/v1").is_err());
    assert!(base_url("ftp://node1").is_err());
    assert!(RemoteNode::new(
        "x",
        RemoteOptions::new("nope", NodeToken::generate().unwrap())
    )
    .is_err());
}
