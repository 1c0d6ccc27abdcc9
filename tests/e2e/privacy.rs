//! What storage nodes can learn: nothing about names or contents. Objects whose bucket, key,
//! metadata and body carry marker strings are stored, then every file under `nodes/` (names
//! and bytes) is searched for the markers; and piece file names are checked to be per-node
//! keyed hashes, different on every node for the pieces of one segment.

use std::collections::HashSet;

use crate::harness;
use crate::harness::process::GatewayProcess;
use crate::harness::storage;
use crate::harness::storage::{files_under, piece_files};
use crate::harness::{Setup, TestGateway};
use aws_sdk_s3::primitives::ByteStream;

const BUCKET: &str = "marker-bucket-9b1c";
const BODY_MARKER: &str = "SECRET-MARKER-7f3a";
const KEY_MARKER: &str = "SECRET-KEY-MARKER";
const META_MARKER: &str = "SECRET-META-MARKER-c0de";
const TYPE_MARKER: &str = "application/x-secret-type-marker-5e21";
const SEG: usize = 256 << 10;

/// A body of `len` bytes made of the marker repeated.
fn marker_body(len: usize) -> Vec<u8> {
    BODY_MARKER.bytes().cycle().take(len).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn nodes_never_see_names_metadata_or_plaintext() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    let objects = [
        (format!("private/{KEY_MARKER}.txt"), 3000),
        (format!("private/{KEY_MARKER}-stripes.bin"), 100_000),
        (format!("private/{KEY_MARKER}-large.bin"), 3 * SEG + 777),
    ];
    for (key, size) in &objects {
        c.put_object()
            .bucket(BUCKET)
            .key(key)
            .content_type(TYPE_MARKER)
            .metadata("note", META_MARKER)
            .body(ByteStream::from(marker_body(*size)))
            .send()
            .await
            .unwrap();
    }
    // The objects really are stored and readable (so the scan below looks at real pieces).
    for (key, size) in &objects {
        let got = c.get_object().bucket(BUCKET).key(key).send().await.unwrap();
        assert_eq!(got.metadata().unwrap().get("note").unwrap(), META_MARKER);
        let bytes = got.body.collect().await.unwrap().into_bytes();
        assert!(bytes[..] == marker_body(*size)[..]);
    }
    let mut expected_pieces = 0;
    for (key, _) in &objects {
        expected_pieces += piece_files(&gw, &gw.record(BUCKET, key).await.unwrap()).len();
    }
    // 1 segment of many stripes + 4 segments, 6 pieces each; the small one is inline.
    assert_eq!(expected_pieces, 5 * 6);

    let markers: Vec<&[u8]> = vec![
        BODY_MARKER.as_bytes(),
        KEY_MARKER.as_bytes(),
        META_MARKER.as_bytes(),
        TYPE_MARKER.as_bytes(),
        BUCKET.as_bytes(),
        b"private/",
    ];
    let files = files_under(&gw.nodes_dir());
    let pieces = storage::piece_paths(&gw.nodes_dir());
    assert_eq!(pieces.len(), expected_pieces, "{pieces:?}");
    for f in &files {
        let name = f
            .strip_prefix(gw.nodes_dir())
            .unwrap()
            .to_string_lossy()
            .to_ascii_lowercase();
        let body = std::fs::read(f).unwrap();
        for m in &markers {
            let lower = String::from_utf8_lossy(m).to_ascii_lowercase();
            assert!(!name.contains(&lower), "file name {name} contains {lower}");
            assert!(
                !contains(&body, m),
                "{} contains {:?}",
                f.display(),
                String::from_utf8_lossy(m)
            );
        }
    }
}

#[tokio::test]
async fn pieces_of_one_segment_have_different_names_on_every_node() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    let key = format!("private/{KEY_MARKER}-large.bin");
    c.put_object()
        .bucket(BUCKET)
        .key(&key)
        .body(ByteStream::from(marker_body(2 * SEG + 1)))
        .send()
        .await
        .unwrap();
    let rec = gw.record(BUCKET, &key).await.unwrap();
    let stream_hex: String = rec.parts[0]
        .stream
        .stream_id
        .0
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let pieces = piece_files(&gw, &rec);
    assert_eq!(pieces.len(), 3 * 6);
    for seg in 0..3 {
        let of_seg: Vec<_> = pieces.iter().filter(|p| p.segment == seg).collect();
        let nodes: HashSet<_> = of_seg.iter().map(|p| p.node.as_str()).collect();
        let names: HashSet<_> = of_seg.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(nodes.len(), 6, "segment {seg} is not spread over six nodes");
        assert_eq!(names.len(), 6, "segment {seg} reuses a piece name");
        for p in &of_seg {
            assert!(p.path.is_file(), "{p:?} is not where the gateway keeps it");
            assert!(!p.name.contains(&stream_hex));
        }
    }
    // On disk: each node holds one file per segment, and no name appears on two nodes.
    let mut all = HashSet::new();
    for i in 1..=6 {
        let on_node = storage::piece_paths(&gw.node_dir(&format!("n{i}")));
        assert_eq!(on_node.len(), 3, "node n{i}");
        for p in on_node {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(name.len(), 64);
            assert!(all.insert(name), "piece name repeated across nodes");
        }
    }
}

/// Everything the gateway process logs, at every level of every crate, while it serves
/// signed, presigned, failing and multipart requests: neither the S3 secret key nor the root
/// key appears in it.
#[tokio::test]
async fn no_secret_reaches_the_log_at_any_level() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    Setup::new().write_config(&data_dir);
    let mut cmd = GatewayProcess::run_command(&data_dir);
    cmd.env("GATEWAY_LOG", "trace");
    let gw = GatewayProcess::spawn(cmd, &tmp.path().join("stderr.log")).unwrap();
    let addr: std::net::SocketAddr = gw.endpoint.trim_start_matches("http://").parse().unwrap();
    let c = gw.client();
    c.create_bucket().bucket("logs").send().await.unwrap();
    for (key, len) in [("small", 100), ("big", 600_000)] {
        c.put_object()
            .bucket("logs")
            .key(key)
            .body(ByteStream::from(marker_body(len)))
            .send()
            .await
            .unwrap();
        c.get_object().bucket("logs").key(key).send().await.unwrap();
    }
    let presigned = c
        .get_object()
        .bucket("logs")
        .key("big")
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(
                60,
            ))
            .unwrap(),
        )
        .await
        .unwrap();
    let got = harness::raw::fetch_url(addr, "GET", presigned.uri(), &[], b"")
        .await
        .unwrap();
    assert_eq!(got.status, 200);
    // A wrong secret: the signature check fails and is logged.
    let wrong = aws_sdk_s3::Client::from_conf(
        c.config()
            .to_builder()
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                harness::ACCESS_KEY,
                "wrong-secret-wrong-secret-wrong-secret00",
                None,
                None,
                "test",
            ))
            .build(),
    );
    assert!(wrong.list_buckets().send().await.is_err());
    let up = c
        .create_multipart_upload()
        .bucket("logs")
        .key("mp")
        .send()
        .await
        .unwrap();
    c.abort_multipart_upload()
        .bucket("logs")
        .key("mp")
        .upload_id(up.upload_id().unwrap())
        .send()
        .await
        .unwrap();

    let text = gw.stderr();
    assert!(
        text.contains("DEBUG") || text.contains("TRACE"),
        "nothing captured"
    );
    let root_key = std::fs::read_to_string(data_dir.join("root.key")).unwrap();
    let root_hex = root_key.lines().nth(1).unwrap().trim().to_string();
    assert_eq!(root_hex.len(), 64);
    for (what, secret) in [
        ("S3 secret key", harness::SECRET_KEY),
        ("root key", root_hex.as_str()),
    ] {
        assert!(!text.contains(secret), "the {what} is in the log");
        assert!(
            !text
                .to_ascii_lowercase()
                .contains(&secret.to_ascii_lowercase()),
            "the {what} is in the log"
        );
    }
}
