//! Routing, and piece PUTs written byte by byte on a raw connection, hand-signed with the
//! token: the wire format of the digest trailer and what the server does with it.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::nodes::protocol::{piece_target, DIGEST_TRAILER};
use crate::nodes::remote::{RemoteNode, RemoteOptions};

#[test]
fn routes() {
    let hex = "ab".repeat(32);
    let r = |s: &str| route(&s.parse::<Uri>().unwrap());
    assert!(matches!(r("/v1/status"), Ok(Route::Status)));
    assert!(matches!(r(&format!("/v1/pieces/{hex}")), Ok(Route::Piece(p)) if p.0 == [0xab; 32]));
    assert!(matches!(
        r("/v1/pieces?limit=7"),
        Ok(Route::List {
            after: None,
            limit: 7
        })
    ));
    assert!(matches!(
        r(&format!("/v1/pieces?after={hex}")),
        Ok(Route::List {
            after: Some(_),
            limit: DEFAULT_LIST_LIMIT
        })
    ));
    let status = |s: &str| r(s).err().map(|f| f.status);
    assert_eq!(status("/v1/pieces?limit=0"), Some(StatusCode::BAD_REQUEST));
    assert_eq!(
        status("/v1/pieces?limit=10001"),
        Some(StatusCode::BAD_REQUEST)
    );
    assert_eq!(status("/v1/pieces?after=zz"), Some(StatusCode::BAD_REQUEST));
    assert_eq!(status("/v1/pieces?bogus=1"), Some(StatusCode::BAD_REQUEST));
    assert_eq!(
        status(&format!("/v1/pieces/{}", hex.to_uppercase())),
        Some(StatusCode::BAD_REQUEST)
    );
    assert_eq!(status("/v1/pieces/../etc"), Some(StatusCode::BAD_REQUEST));
    assert_eq!(status("/v2/status"), Some(StatusCode::NOT_FOUND));
    assert_eq!(status("/v1/other"), Some(StatusCode::NOT_FOUND));
}

struct Fixture {
    dir: tempfile::TempDir,
    server: NodeServer,
    token: NodeToken,
}

impl Fixture {
    async fn start() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let server = NodeServer::start(&NodeServerOptions {
            dir: dir.path().join("node"),
            listen: "127.0.0.1:0".parse().unwrap(),
            token_file: None,
            reserve: 0,
            tls: None,
        })
        .await
        .unwrap();
        let token = NodeToken::load(server.token_file()).unwrap();
        Fixture { dir, server, token }
    }

    fn client(&self) -> RemoteNode {
        let address = format!("http://{}", self.server.addr());
        RemoteNode::new("n1", RemoteOptions::new(address, self.token.clone())).unwrap()
    }

    /// Committed piece files and temp files on disk, once no temp file is left (or after 5 s).
    async fn files(&self) -> (usize, usize) {
        let root = self.dir.path().join("node");
        let start = Instant::now();
        loop {
            let mut pieces = 0;
            for fan in std::fs::read_dir(root.join("pieces")).unwrap() {
                pieces += std::fs::read_dir(fan.unwrap().path()).unwrap().count();
            }
            let tmp = std::fs::read_dir(root.join("tmp")).unwrap().count();
            if tmp == 0 || start.elapsed() > Duration::from_secs(5) {
                return (pieces, tmp);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends a signed piece PUT over a fresh HTTP/1.1 connection and returns the status and
    /// the answer's body.
    async fn raw_put(&self, id: PieceId, body: RawBody<'_>) -> (u16, String) {
        let target = piece_target(&id);
        let date = unix_now();
        let declared = match &body {
            RawBody::Chunked { .. } => None,
            RawBody::Sized(data) => Some(data.len() as u64),
        };
        let auth = self.token.authorization("PUT", &target, date, declared);
        let mut req = format!(
            "PUT {target} HTTP/1.1\r\nhost: {}\r\n{DATE_HEADER}: {date}\r\n\
             authorization: {auth}\r\nconnection: close\r\n",
            self.server.addr()
        )
        .into_bytes();
        match body {
            RawBody::Sized(data) => {
                req.extend(format!("content-length: {}\r\n\r\n", data.len()).bytes());
                req.extend_from_slice(data);
            }
            RawBody::Chunked { chunks, trailers } => {
                req.extend(b"transfer-encoding: chunked\r\ntrailer: x-gw-blake3\r\n\r\n");
                for c in chunks {
                    req.extend(format!("{:x}\r\n", c.len()).bytes());
                    req.extend_from_slice(c);
                    req.extend(b"\r\n");
                }
                req.extend(b"0\r\n");
                for t in trailers {
                    req.extend(format!("{t}\r\n").bytes());
                }
                req.extend(b"\r\n");
            }
        }
        let mut conn = tokio::net::TcpStream::connect(self.server.addr())
            .await
            .unwrap();
        conn.write_all(&req).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer))
            .await
            .unwrap()
            .unwrap();
        let answer = String::from_utf8(answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_string())
    }
}

/// A chunked body with its trailer lines, or one body with a Content-Length.
enum RawBody<'a> {
    Chunked {
        chunks: &'a [&'a [u8]],
        trailers: &'a [String],
    },
    Sized(&'a [u8]),
}

#[tokio::test]
async fn a_put_commits_only_with_the_digest_of_its_body() {
    let f = Fixture::start().await;
    let chunks: &[&[u8]] = &[b"first chunk, ", b"second chunk"];
    let good = blake3::hash(b"first chunk, second chunk")
        .to_hex()
        .to_string();
    let other = blake3::hash(b"first chunk, second chunK")
        .to_hex()
        .to_string();
    let bad = |status: u16, body: &str, reason: &str| {
        assert_eq!(status, 400, "{body}");
        assert_eq!(body, format!("{reason}\n"));
    };

    let id = PieceId([1; 32]);
    let wrong = [format!("{DIGEST_TRAILER}: {other}")];
    let (status, body) = f
        .raw_put(
            id,
            RawBody::Chunked {
                chunks,
                trailers: &wrong,
            },
        )
        .await;
    bad(status, &body, "piece body does not match its BLAKE3 digest");
    assert_eq!(f.files().await, (0, 0));

    let (status, body) = f
        .raw_put(
            id,
            RawBody::Chunked {
                chunks,
                trailers: &[],
            },
        )
        .await;
    bad(status, &body, "missing x-gw-blake3 trailer");
    // Another trailer field is not the digest.
    let unrelated = [format!("x-other: {good}")];
    let (status, body) = f
        .raw_put(
            id,
            RawBody::Chunked {
                chunks,
                trailers: &unrelated,
            },
        )
        .await;
    bad(status, &body, "missing x-gw-blake3 trailer");
    // HTTP/1.1 cannot carry trailers after a Content-Length body.
    let (status, body) = f
        .raw_put(id, RawBody::Sized(b"first chunk, second chunk"))
        .await;
    bad(status, &body, "missing x-gw-blake3 trailer");
    let short = [format!("{DIGEST_TRAILER}: {}", &good[..63])];
    let (status, body) = f
        .raw_put(
            id,
            RawBody::Chunked {
                chunks,
                trailers: &short,
            },
        )
        .await;
    bad(
        status,
        &body,
        "malformed x-gw-blake3 trailer (expected one value of 64 hex digits)",
    );
    assert_eq!(f.files().await, (0, 0));
    let node = f.client();
    assert!(matches!(
        node.read(id, 0, 1).await,
        Err(NodeError::NotFound { .. })
    ));

    // The right digest, in either case: committed, with exactly the bytes sent.
    let right = [format!("{DIGEST_TRAILER}: {}", good.to_uppercase())];
    let (status, body) = f
        .raw_put(
            id,
            RawBody::Chunked {
                chunks,
                trailers: &right,
            },
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(f.files().await, (1, 0));
    assert_eq!(
        &node.read(id, 0, 25).await.unwrap()[..],
        b"first chunk, second chunk"
    );
    // Refused bodies were received all the same: six bodies of 25 bytes.
    assert_eq!(node.status().await.unwrap().received_bytes, 6 * 25);
}
