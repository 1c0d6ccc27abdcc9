//! Faults over real node servers: `gateway node` processes on loopback ports, a gateway using
//! them as `remote` nodes, aws-sdk-s3 as the client. Each test owns its processes and temp dir.
//!
//! Contract under test:
//! - A node that is down, full, or refuses the gateway's token at upload costs a retry: its
//!   pieces go to a spare node, the upload succeeds with every piece elsewhere, the refusals
//!   show as failed requests in the metrics and the node is no longer ranked healthy. With no
//!   spare left the upload fails with 503 and nothing stays committed.
//! - A node that stops answering (SIGSTOP) is left behind as long tail: the upload completes
//!   without it, and reads never wait on it.
//! - A node killed during a download, or serving a corrupted piece, costs nothing but the use
//!   of another piece: the client gets every byte exactly.
//! - Accounting: the bytes the gateway reports sent to nodes are the bytes the nodes report
//!   received, and for scheme 4/5/6/8 they are between 6/4 and 8/4 of the object.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::data;
use crate::harness::nodes::{node_id, start_nodes, NodeProcess};
use crate::harness::raw;
use crate::harness::s3x::{get, put};
use crate::harness::wait::eventually;
use crate::harness::{Setup, TestGateway};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use gateway::erasure::PIECE_HEADER_LEN;
use gateway::meta::{ObjectRecord, PieceRecord, Placement};
use gateway::metrics::{NodeTraffic, Reason};
use gateway::nodes::PieceId;
use gateway::transfer::health::Rank;

const SEG: usize = 256 << 10;
const MIB: usize = 1 << 20;
const BUCKET: &str = "nodes";
/// Liveness bound for one request in a fault scenario (not a performance assertion).
const LIVENESS: Duration = Duration::from_secs(20);

async fn bucket(c: &Client) {
    c.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create bucket");
}

/// The pieces of every segment stored on nodes, by segment index.
fn segments(rec: &ObjectRecord) -> Vec<Vec<PieceRecord>> {
    rec.parts
        .iter()
        .flat_map(|p| &p.stream.segments)
        .filter_map(|s| match &s.placement {
            Placement::Pieces { pieces, .. } => Some(pieces.clone()),
            Placement::Inline(_) => None,
        })
        .collect()
}

/// Index of the node process configured as `id` (`r1` is 0).
fn node_index(id: &str) -> usize {
    id.strip_prefix('r')
        .and_then(|n| n.parse::<usize>().ok())
        .map(|n| n - 1)
        .unwrap_or_else(|| panic!("unexpected node id {id}"))
}

/// Where the gateway stores piece `number` of segment `segment` of `rec` on `node`.
fn piece_path(
    gw: &TestGateway,
    nodes: &[NodeProcess],
    rec: &ObjectRecord,
    segment: u32,
    number: u16,
) -> PathBuf {
    let stream = &rec.parts[0].stream;
    let piece = segments(rec)[segment as usize]
        .iter()
        .find(|p| p.number == number)
        .unwrap_or_else(|| panic!("no piece {number} in segment {segment}"))
        .clone();
    let key = gw.prepared.root_key.piece_id_key(&piece.node);
    let name = PieceId::derive(&key, &stream.stream_id.0, segment, number).to_hex();
    nodes[node_index(&piece.node)]
        .dir
        .join("pieces")
        .join(&name[..2])
        .join(name)
}

fn traffic(gw: &TestGateway, node: &str) -> NodeTraffic {
    gw.gateway()
        .transfers
        .metrics()
        .snapshot()
        .nodes
        .get(node)
        .cloned()
        .unwrap_or_else(|| panic!("no metrics for node {node}"))
}

fn sent_for(t: &NodeTraffic, reason: Reason) -> u64 {
    t.sent_bytes.get(reason.as_str()).copied().unwrap_or(0)
}

fn received_for(t: &NodeTraffic, reason: Reason) -> u64 {
    t.received_bytes.get(reason.as_str()).copied().unwrap_or(0)
}

fn rank_of(gw: &TestGateway, node: &str) -> (Rank, Option<String>) {
    let v = gw
        .gateway()
        .transfers
        .node_views()
        .into_iter()
        .find(|v| v.id == node)
        .unwrap_or_else(|| panic!("no view of node {node}"));
    (v.health.rank, v.health.last_error)
}

/// Uploads multi-segment objects (each checked to round-trip and to keep `expect_pieces`
/// pieces per segment, none on `avoid`) until the gateway has tried `avoid` and recorded a
/// failed request there. Placement is random among healthy nodes, so this takes one object
/// in nearly every run; six bound it. Returns the objects.
async fn upload_until_refused(
    gw: &TestGateway,
    c: &Client,
    avoid: &str,
    expect_pieces: usize,
) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for i in 0..6u64 {
        let key = format!("object-{i}");
        let body = data(4 * SEG + 1_000, i + 1);
        put(c, BUCKET, &key, &body).await;
        let rec = gw.record(BUCKET, &key).await.expect("record");
        let segs = segments(&rec);
        assert_eq!(segs.len(), 5, "{key}: segments");
        for (s, pieces) in segs.iter().enumerate() {
            assert_eq!(pieces.len(), expect_pieces, "{key} segment {s}: {pieces:?}");
            assert!(
                pieces.iter().all(|p| p.node != avoid),
                "{key} segment {s} has a piece on {avoid}: {pieces:?}"
            );
        }
        assert!(get(c, BUCKET, &key).await == body, "{key} round-trip");
        out.push((key, body));
        if traffic(gw, avoid).requests_error > 0 {
            break;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_down_at_upload_moves_its_pieces_to_the_spare() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut nodes = start_nodes(tmp.path(), 5);
    let mut gw = Setup::remote(&nodes)
        .start_in(&tmp.path().join("gateway"))
        .await;
    let c = gw.client();
    bucket(&c).await;

    const DEAD: usize = 2;
    let dead = node_id(DEAD);
    nodes[DEAD].kill();
    let objects = upload_until_refused(&gw, &c, &dead, 4).await;

    let t = traffic(&gw, &dead);
    assert!(t.requests_error > 0, "no failed request to {dead}: {t:?}");
    assert_eq!(sent_for(&t, Reason::Upload), 0, "{t:?}");
    let (rank, last_error) = rank_of(&gw, &dead);
    assert_ne!(rank, Rank::Healthy, "{dead} still healthy");
    assert!(last_error.is_some(), "{dead} has no last error");
    for (key, body) in &objects {
        assert!(
            get(&c, BUCKET, key).await == *body,
            "{key} after the uploads"
        );
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_node_is_left_behind_by_uploads_and_reads() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut nodes = start_nodes(tmp.path(), 5);
    let setup = Setup::remote(&nodes)
        .scheme("2/3/4/5")
        .segment_size("16MiB")
        .limit("long_tail_grace", "500ms")
        .limit("stall_timeout", "1s")
        .node_timeouts("1s", "2s");
    let mut gw = setup.start_in(&tmp.path().join("gateway")).await;
    let c = gw.client();
    bucket(&c).await;

    const STALLED: usize = 1;
    let stalled = node_id(STALLED);
    nodes[STALLED].stop();
    // A stopped process's sockets still take a few MiB (kernel buffers): the small object's
    // pieces fit there, so the node is left behind at commit; the large one's 8 MiB pieces
    // do not, so its writers fall behind and are cancelled after the grace.
    for (key, size, segment_count) in [("short", 3 * MIB, 1), ("long", 20 * MIB, 2)] {
        let body = data(size, size as u64);
        let started = Instant::now();
        tokio::time::timeout(LIVENESS, put(&c, BUCKET, key, &body))
            .await
            .unwrap_or_else(|_| panic!("upload of {key} waited for the stalled node"));
        let took = started.elapsed();

        let rec = gw.record(BUCKET, key).await.expect("record");
        let segs = segments(&rec);
        assert_eq!(segs.len(), segment_count, "{key}");
        for (s, pieces) in segs.iter().enumerate() {
            assert_eq!(pieces.len(), 4, "{key} segment {s}: {pieces:?}");
            assert!(
                pieces.iter().all(|p| p.node != stalled),
                "{key} segment {s} kept a piece on the stalled node: {pieces:?}"
            );
        }
        assert_eq!(sent_for(&traffic(&gw, &stalled), Reason::Upload), 0);

        let started = Instant::now();
        let got = tokio::time::timeout(LIVENESS, get(&c, BUCKET, key))
            .await
            .unwrap_or_else(|_| panic!("read of {key} waited for the stalled node"));
        assert!(got == body, "{key}: round-trip with the node stopped");
        println!(
            "stalled node, {key} ({size} bytes): upload {took:?}, read {:?}",
            started.elapsed()
        );
    }
    // What the stalled node was sent is waste, counted once its writers are given up on.
    let counted = eventually(Duration::from_secs(10), || {
        sent_for(&traffic(&gw, &stalled), Reason::LongTail) > 0
    })
    .await;
    assert!(counted, "no long-tail bytes counted for the stalled node");
    println!(
        "stalled node: long-tail bytes {}",
        sent_for(&traffic(&gw, &stalled), Reason::LongTail)
    );

    nodes[STALLED].resume();
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_killed_mid_download() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut nodes = start_nodes(tmp.path(), 6);
    let setup = Setup::remote(&nodes).scheme("4/5/6/6").segment_size("1MiB");
    let mut gw = setup.start_in(&tmp.path().join("gateway")).await;
    let c = gw.client();
    bucket(&c).await;
    let body = data(8 * MIB, 3);
    put(&c, BUCKET, "big", &body).await;

    // The node holding data piece 0 of the last segment: the download must use it (data
    // pieces first) long after the first bytes reached the client.
    let rec = gw.record(BUCKET, "big").await.expect("record");
    let segs = segments(&rec);
    assert_eq!(segs.len(), 8);
    let victim = segs[7]
        .iter()
        .find(|p| p.number == 0)
        .expect("piece 0")
        .node
        .clone();

    let mut stream = c
        .get_object()
        .bucket(BUCKET)
        .key("big")
        .send()
        .await
        .expect("get")
        .body;
    let mut got = Vec::with_capacity(body.len());
    while got.len() < 256 << 10 {
        let chunk = stream
            .try_next()
            .await
            .expect("body")
            .expect("body ended early");
        got.extend_from_slice(&chunk);
    }
    nodes[node_index(&victim)].kill();
    while let Some(chunk) = tokio::time::timeout(LIVENESS, stream.try_next())
        .await
        .expect("download stuck after the kill")
        .expect("body after the kill")
    {
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got.len(), body.len());
    assert!(
        got == body,
        "bytes differ after a node was killed mid-download"
    );
    let t = traffic(&gw, &victim);
    assert!(
        t.requests_error > 0,
        "the download never asked the killed node {victim}: {t:?}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_node_is_refused_and_skipped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    const FULL: usize = 4;
    let nodes: Vec<NodeProcess> = (0..5)
        .map(|i| {
            let dir = tmp.path().join(format!("node{i}"));
            let log = tmp.path().join(format!("node{i}.log"));
            if i == FULL {
                // More than any filesystem has: every PUT is refused with 507.
                NodeProcess::start_with_reserve(&dir, &log, "1000000GiB")
            } else {
                NodeProcess::start(&dir, &log)
            }
        })
        .collect();
    let mut gw = Setup::remote(&nodes)
        .start_in(&tmp.path().join("gateway"))
        .await;
    let c = gw.client();
    bucket(&c).await;

    let full = node_id(FULL);
    upload_until_refused(&gw, &c, &full, 4).await;
    let t = traffic(&gw, &full);
    assert!(t.requests_error > 0, "no refused request on {full}: {t:?}");
    assert_eq!(sent_for(&t, Reason::Upload), 0, "{t:?}");
    assert_eq!(nodes[FULL].piece_count(), 0, "pieces on the full node");
    // The refusal is in the node's health. (Its rank may be back to healthy by now: the
    // clean-up of the refused upload deletes on the node, and a delete succeeds.)
    let (_, last_error) = rank_of(&gw, &full);
    let last_error = last_error.expect("last error");
    assert!(last_error.contains("full"), "{last_error}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_is_rejected() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let nodes = start_nodes(tmp.path(), 5);
    const WRONG: usize = 3;
    let real = nodes[WRONG].token().to_hex();
    let wrong = if real.starts_with("ab") { "cd" } else { "ab" }.repeat(32);
    let setup = Setup::remote(&nodes).node_token(WRONG, &wrong);
    let mut gw = setup.start_in(&tmp.path().join("gateway")).await;
    let c = gw.client();
    bucket(&c).await;

    let bad = node_id(WRONG);
    upload_until_refused(&gw, &c, &bad, 4).await;
    let t = traffic(&gw, &bad);
    assert!(t.requests_error > 0, "{t:?}");
    assert_eq!(
        nodes[WRONG].piece_count(),
        0,
        "pieces written with a wrong token"
    );
    println!(
        "wrong token: last error {:?}",
        rank_of(&gw, &bad).1.unwrap_or_default()
    );
    gw.stop().await;

    // Every node needed (4/5/5/5: even a degraded write needs repair = 5 pieces): the
    // refusal fails the upload and nothing of it stays on any node.
    // A second gateway (another root key) over the same nodes: nodes belong to one root
    // key's metadata, so this one keeps its metadata to itself.
    let strict = Setup::remote(&nodes)
        .scheme("4/5/5/5")
        .node_token(WRONG, &wrong)
        .set("metadata", "replication", "off");
    let mut gw = strict.start_in(&tmp.path().join("gateway2")).await;
    let c = gw.client_no_retry();
    bucket(&c).await;
    let before: HashSet<PathBuf> = nodes.iter().flat_map(NodeProcess::piece_paths).collect();
    let err = c
        .put_object()
        .bucket(BUCKET)
        .key("needs-all")
        .body(ByteStream::from(data(100_000, 9)))
        .send()
        .await
        .expect_err("an upload needing the refusing node succeeded");
    let status = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(503), "{err:?}");
    assert!(gw.record(BUCKET, "needs-all").await.is_none());
    let settled = eventually(Duration::from_secs(10), || {
        nodes
            .iter()
            .flat_map(NodeProcess::piece_paths)
            .all(|p| before.contains(&p))
    })
    .await;
    assert!(settled, "pieces of the failed upload were left on nodes");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_piece_is_detected_and_replaced() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let nodes = start_nodes(tmp.path(), 6);
    let setup = Setup::remote(&nodes).scheme("4/5/6/6");
    let mut gw = setup.start_in(&tmp.path().join("gateway")).await;
    let c = gw.client();
    bucket(&c).await;
    // One segment: data pieces 0..3 and parity pieces 4, 5 on six distinct nodes.
    let body = data(200_000, 5);
    put(&c, BUCKET, "one", &body).await;
    let rec = gw.record(BUCKET, "one").await.expect("record");
    let segs = segments(&rec);
    assert_eq!(segs.len(), 1);
    let holder = |n: u16| segs[0].iter().find(|p| p.number == n).unwrap().node.clone();
    let parity = holder(4);

    assert!(get(&c, BUCKET, "one").await == body);
    assert_eq!(
        received_for(&traffic(&gw, &parity), Reason::Download),
        0,
        "an intact object was read from a parity piece"
    );

    let path = piece_path(&gw, &nodes, &rec, 0, 0);
    flip_byte(&path, PIECE_HEADER_LEN as u64 + 100);
    assert!(
        get(&c, BUCKET, "one").await == body,
        "corrupted piece reached the client"
    );
    assert!(
        received_for(&traffic(&gw, &parity), Reason::Download) > 0,
        "the corrupted piece was not replaced by parity piece 4"
    );
    for i in 0..nodes.len() {
        let id = node_id(i);
        let t = traffic(&gw, &id);
        assert_eq!(t.requests_error, 0, "{id}: {t:?}");
        assert_eq!(rank_of(&gw, &id).0, Rank::Healthy, "{id}");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_bytes_match_what_nodes_received() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let nodes = start_nodes(tmp.path(), 8);
    let setup = Setup::remote(&nodes)
        .scheme("4/5/6/8")
        .segment_size("64MiB")
        .default_chunk_size()
        .node_timeouts("2s", "30s");
    let mut gw = setup.start_in(&tmp.path().join("gateway")).await;
    let c = gw.client();
    bucket(&c).await;
    const SIZE: usize = 64 * MIB;
    let body = data(SIZE, 11);
    put(&c, BUCKET, "big", &body).await;
    drop(body);

    // Cancelled pieces are counted (and deleted) in the background, a committing one up to
    // two seconds later: wait until the counters stop moving with no connection open.
    let metrics = gw.gateway().transfers.metrics().clone();
    let mut last = u64::MAX;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let snap = metrics.snapshot();
        let idle = snap.nodes.values().all(|n| n.connections == 0);
        if idle && snap.node_sent_total() == last {
            break;
        }
        last = snap.node_sent_total();
        assert!(Instant::now() < deadline, "transfers never settled");
    }
    let snap = metrics.snapshot();
    let up = snap.node_sent_total();
    let mut received = 0;
    for n in &nodes {
        received += n.status().await.received_bytes;
    }
    let ratio = up as f64 / SIZE as f64;
    let upload = snap.node_sent_for(Reason::Upload);
    let long_tail = snap.node_sent_for(Reason::LongTail);
    println!(
        "accounting 4/5/6/8, 64 MiB: gateway sent {up} (upload {upload}, long tail {long_tail}), \
         nodes received {received}, ratio {ratio:.4}"
    );
    assert!(
        up.abs_diff(received) * 100 <= up,
        "gateway sent {up} but nodes received {received}"
    );
    assert!(
        (1.5..=2.0 * 1.01).contains(&ratio),
        "upstream/object = {ratio}"
    );

    let rec = gw.record(BUCKET, "big").await.expect("record");
    let acc = rec.parts[0].stream.accounting;
    assert_eq!(acc.encoded_bytes, upload, "{acc:?}");
    assert!(
        acc.uploaded_bytes.abs_diff(up) * 100 <= up,
        "recorded {acc:?}, metrics {up}"
    );
    let pieces = &segments(&rec)[0];
    assert!((6..=8).contains(&pieces.len()), "{pieces:?}");
    let on_disk: u64 = pieces
        .iter()
        .map(|p| {
            let path = piece_path(&gw, &nodes, &rec, 0, p.number);
            std::fs::metadata(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .len()
        })
        .sum();
    assert_eq!(
        on_disk, acc.encoded_bytes,
        "kept piece files vs encoded bytes"
    );

    let admin = gw.gateway().admin_addr.expect("admin listener");
    let request = raw::head(
        "GET",
        "/metrics",
        &[
            ("Host".into(), admin.to_string()),
            ("Connection".into(), "close".into()),
        ],
    );
    let resp = raw::send(admin, &request, false).await.expect("/metrics");
    assert_eq!(resp.status, 200);
    let text = resp.body_text();
    let mut exposed = 0;
    for i in 0..nodes.len() {
        let prefix = format!(
            "gateway_node_sent_bytes_total{{node=\"{}\",reason=\"upload\"}} ",
            node_id(i)
        );
        let line = text
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in /metrics"));
        exposed += line[prefix.len()..].trim().parse::<u64>().expect("value");
    }
    assert_eq!(exposed, upload, "/metrics upload bytes vs the snapshot");
    gw.stop().await;
}

/// Inverts every bit of the byte at `offset` of an existing file.
fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let i = usize::try_from(offset).expect("offset");
    assert!(
        i < bytes.len(),
        "offset {offset} past the end of {}",
        path.display()
    );
    bytes[i] ^= 0xff;
    std::fs::write(path, bytes).expect("write corrupted piece");
}

/// Issue 10's scenario over real node servers, 4/5/6/8: two nodes die, 200 objects are
/// written (half before) and read; one dead node is replaced by an empty server, the other
/// stays dead; `gateway repair` brings every segment back to `success` healthy pieces on live
/// nodes; every object reads back bit-exact even with two more original nodes gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_die_one_is_replaced_and_repair_restores_full_health() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = start_nodes(tmp.path(), 8);
    let setup = Setup::remote(&nodes).scheme("4/5/6/8");
    let data_dir = tmp.path().join("gw");
    let mut gw = setup.start_in(&data_dir).await;
    let c = gw.client();
    bucket(&c).await;

    // 200 objects of 5 KiB .. 600 KiB (one to three segments), 8 uploads at a time; the
    // second hundred after r3 and r6 died.
    let sizes = |i: usize| 5_000 + (i * 7_919) % 600_000;
    let objects: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| (format!("o{i:03}"), data(sizes(i), 1000 + i as u64)))
        .collect();
    let put_all = |batch: &[(String, Vec<u8>)]| {
        let batch = batch.to_vec();
        let c = c.clone();
        async move {
            let mut set = tokio::task::JoinSet::new();
            for chunk in batch.chunks(batch.len().div_ceil(8)) {
                let (c, chunk) = (c.clone(), chunk.to_vec());
                set.spawn(async move {
                    for (k, b) in &chunk {
                        put(&c, BUCKET, k, b).await;
                    }
                });
            }
            while let Some(r) = set.join_next().await {
                r.expect("upload task");
            }
        }
    };
    put_all(&objects[..100]).await;
    nodes[2].kill();
    nodes[5].kill();
    put_all(&objects[100..]).await;
    for (k, b) in &objects {
        assert!(get(&c, BUCKET, k).await == *b, "{k} with two nodes dead");
    }
    let on =
        |rec: &ObjectRecord, id: &str| segments(rec).iter().any(|s| s.iter().any(|p| p.node == id));
    let mut touched = 0;
    for (k, _) in &objects {
        let rec = gw.record(BUCKET, k).await.expect("record");
        if on(&rec, "r3") || on(&rec, "r6") {
            touched += 1;
        }
    }
    assert!(
        touched >= 50,
        "only {touched} objects had pieces on r3 or r6"
    );
    gw.stop().await;

    // r3's machine is rebuilt: an empty node server under the same id (new address, new
    // token). r6 stays dead.
    let fresh = tmp.path().join("node3-new");
    nodes[2] = NodeProcess::start(&fresh, &tmp.path().join("node3-new.log"));
    setup.clone().remote_nodes(&nodes).write_config(&data_dir);
    let replaced = gateway::app::maintenance::replace_node(&data_dir, None, "r3")
        .await
        .expect("node replace");
    assert!(replaced.lost > 0, "{replaced:?}");
    let report = gateway::app::maintenance::run_repair(&data_dir, None, &|_| {})
        .await
        .expect("gateway repair");
    assert_eq!(report.failed, 0, "{report:?}");
    assert!(report.pieces_written >= replaced.lost, "{report:?}");
    assert!(report.bytes_sent > 0, "{report:?}");

    let mut gw = TestGateway::open(&data_dir).await;
    let counts = gw.gateway().layer.health_counts().await.unwrap();
    assert!(counts.by_healthy.iter().all(|&(h, _)| h >= 6), "{counts:?}");
    let mut on_new = 0;
    for (k, _) in &objects {
        let rec = gw.record(BUCKET, k).await.expect("record");
        for s in segments(&rec) {
            let live: Vec<&PieceRecord> = s
                .iter()
                .filter(|p| p.state.is_ok() && p.node != "r6")
                .collect();
            assert!(live.len() >= 6, "{k}: {s:?}");
            on_new += live.iter().filter(|p| p.node == "r3").count();
        }
    }
    assert!(on_new > 0, "repair put nothing on the replaced node");
    // Bit-exact, with two more original nodes gone: only rebuilt pieces can make up for them.
    nodes[0].kill();
    nodes[1].kill();
    let c = gw.client();
    for (k, b) in &objects {
        assert!(get(&c, BUCKET, k).await == *b, "{k} after repair");
    }
    gw.stop().await;
}
