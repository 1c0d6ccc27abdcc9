//! `RemoteNode` against a `NodeServer` that speaks only TLS, with the certificates of
//! `tests/fixtures/tls/`.

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::*;
use crate::nodes::server::{NodeServerError, TLS_HANDSHAKE_TIMEOUT};
use crate::tls::tests::{fixture, node_files};
use crate::tls::TlsError;

async fn tls_fixture() -> Fixture {
    Fixture::start_with(0, Some(node_files())).await
}

/// The HTTP version the node answers a status request with.
async fn negotiated(node: &RemoteNode) -> http::Version {
    let req = node
        .inner
        .request(Method::GET, &status_target(), NodeBody::empty(), None)
        .unwrap();
    let resp = node.inner.client.request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.version()
}

#[tokio::test]
async fn conformance_over_tls_with_http1() {
    let f = tls_fixture().await;
    let node = f.client();
    assert!(node.inner.base.starts_with("https://"));
    assert_eq!(negotiated(&node).await, http::Version::HTTP_11);
    crate::nodes::conformance::run(&node).await;
    assert!(f.no_temp_files().await, "aborted uploads left temp files");
    assert_eq!(f.files().0, 8, "only the eight concurrent pieces remain");
}

#[tokio::test]
async fn conformance_over_tls_with_h2() {
    let f = tls_fixture().await;
    let node = RemoteNode::with_versions("r1", f.options(), true).unwrap();
    assert_eq!(negotiated(&node).await, http::Version::HTTP_2);
    crate::nodes::conformance::run(&node).await;
    assert!(f.no_temp_files().await, "aborted uploads left temp files");
    assert_eq!(f.files().0, 8, "only the eight concurrent pieces remain");
}

#[tokio::test]
async fn a_node_with_an_untrusted_certificate_gets_nothing() {
    let f = tls_fixture().await;
    let mut opts = f.options();
    opts.ca_file = Some(fixture("other-cert.pem"));
    opts.retries = 0;
    let node = RemoteNode::new("r1", opts).unwrap();
    let id = PieceId([4; 32]);
    let check = |e: NodeError| match e {
        NodeError::Unavailable { node, reason } => {
            assert_eq!(node, "r1");
            assert!(reason.contains("certificate"), "{reason}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    };
    check(put(&node, id, b"for the node only").await.unwrap_err());
    check(node.read(id, 0, 1).await.unwrap_err());
    check(node.status().await.unwrap_err());
    assert!(f.no_temp_files().await);
    assert_eq!(f.files(), (0, 0));
    // The server carries on for clients that trust it.
    put(&f.client(), id, b"trusted").await.unwrap();
    assert_eq!(f.files(), (1, 0));
}

#[tokio::test]
async fn a_plain_http_client_fails_quickly_against_a_tls_node() {
    let f = tls_fixture().await;
    let mut opts = f.options();
    opts.address = format!("http://{}", f.server().addr());
    opts.ca_file = None;
    // Failing must come from the protocol mismatch, not from this timeout.
    opts.read_timeout = Duration::from_secs(20);
    let node = RemoteNode::new("plain", opts).unwrap();
    let start = Instant::now();
    assert!(matches!(
        node.status().await,
        Err(NodeError::Unavailable { .. })
    ));
    assert!(matches!(
        put(&node, PieceId([5; 32]), b"x").await,
        Err(NodeError::Unavailable { .. })
    ));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(f.no_temp_files().await);
    assert_eq!(f.files(), (0, 0));
}

/// Reads until the peer closes the connection (or resets it).
async fn closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

#[tokio::test]
async fn broken_and_stalled_handshakes_only_close_their_own_connection() {
    let f = tls_fixture().await;
    let addr = f.server().addr();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let silent_since = Instant::now();
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    // A handshake record holding a message of an unknown type.
    tokio::io::AsyncWriteExt::write_all(&mut garbage, b"\x16\x03\x01\x00\x05hello")
        .await
        .unwrap();
    // Meanwhile a client that speaks TLS is served.
    let node = f.client();
    let id = PieceId([6; 32]);
    put(&node, id, b"served").await.unwrap();
    assert_eq!(&node.read(id, 0, 6).await.unwrap()[..], b"served");
    tokio::time::timeout(Duration::from_secs(5), closed(&mut garbage))
        .await
        .expect("the server closes a connection whose handshake failed");
    // The silent connection is closed once the handshake timeout passes, not before.
    tokio::time::timeout(
        TLS_HANDSHAKE_TIMEOUT + Duration::from_secs(5),
        closed(&mut silent),
    )
    .await
    .expect("the server closes a connection that never completes its handshake");
    let waited = silent_since.elapsed();
    assert!(
        waited >= TLS_HANDSHAKE_TIMEOUT - Duration::from_millis(500),
        "{waited:?}"
    );
    node.status().await.unwrap();
}

#[tokio::test]
async fn bad_certificate_files_stop_the_server_before_it_touches_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let node_dir = dir.path().join("node");
    for (files, named) in [
        (
            TlsFiles {
                cert: missing.clone(),
                key: fixture("node-key.pem"),
            },
            &missing,
        ),
        (
            TlsFiles {
                cert: fixture("node-cert.pem"),
                key: garbage.clone(),
            },
            &garbage,
        ),
    ] {
        let result = NodeServer::start(&NodeServerOptions {
            dir: node_dir.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            token_file: None,
            reserve: 0,
            tls: Some(files),
        })
        .await;
        let Err(err) = result else {
            panic!("the server started with a bad certificate or key")
        };
        assert!(matches!(err, NodeServerError::Tls(_)), "{err:?}");
        assert!(
            err.to_string().contains(&named.display().to_string()),
            "{err}"
        );
    }
    assert!(!node_dir.exists());
}

#[test]
fn unusable_trust_roots_fail_at_construction() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let missing = dir.path().join("missing.pem");
    let token = NodeToken::generate().unwrap();
    for ca in [&empty, &missing] {
        let mut opts = RemoteOptions::new("https://127.0.0.1:7001", token.clone());
        opts.ca_file = Some(ca.clone());
        match RemoteNode::new("r1", opts) {
            Err(NodeError::Io { node, source, .. }) => {
                assert_eq!(node, "r1");
                let tls = source.get_ref().and_then(|e| e.downcast_ref::<TlsError>());
                assert!(tls.is_some(), "{source:?}");
                assert!(source.to_string().contains(&ca.display().to_string()));
            }
            Err(other) => panic!("expected Io, got {other:?}"),
            Ok(_) => panic!("accepted CA file {}", ca.display()),
        }
    }
    // A CA file for a plain address is a mistake, not a silent downgrade.
    let mut opts = RemoteOptions::new("http://127.0.0.1:7001", token);
    opts.ca_file = Some(fixture("node-cert.pem"));
    assert!(matches!(
        RemoteNode::new("r1", opts),
        Err(NodeError::Unavailable { reason, .. }) if reason.contains("https")
    ));
}
