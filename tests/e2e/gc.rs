//! Garbage collection: replaced and deleted bodies lose their pieces, but never under a
//! reader that started before the replacement; orphan pieces (on a node, referenced by no
//! metadata) and temp files left by a killed gateway go, while uploads in flight and metadata
//! blobs stay.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness;
use crate::harness::process::{self, GatewayProcess};
use crate::harness::storage;
use crate::harness::{data, wait, Setup, TestGateway};
use aws_sdk_s3::primitives::ByteStream;

#[tokio::test]
async fn a_read_in_progress_survives_overwrite_and_collection() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("gc-bucket").send().await.unwrap();
    // 64 segments of 256 KiB: far more than the download buffers ahead plus what the
    // loopback socket holds (its send buffer grows to 4 MiB here) while the client reads
    // nothing.
    let old = data(16 << 20, 1);
    c.put_object()
        .bucket("gc-bucket")
        .key("k")
        .body(ByteStream::from(old.clone()))
        .send()
        .await
        .unwrap();
    let old_files = storage::piece_paths(&gw.nodes_dir());
    let reading = c
        .get_object()
        .bucket("gc-bucket")
        .key("k")
        .send()
        .await
        .unwrap();

    let new = data(3 << 20, 2);
    c.put_object()
        .bucket("gc-bucket")
        .key("k")
        .body(ByteStream::from(new.clone()))
        .send()
        .await
        .unwrap();
    // A collection round after the overwrite must skip the body being read.
    gw.collect_garbage().await;
    let now = storage::piece_paths(&gw.nodes_dir());
    let lost: Vec<_> = old_files.iter().filter(|f| !now.contains(f)).collect();
    assert!(
        lost.is_empty(),
        "the body being read lost pieces: {lost:?} of {old_files:?}"
    );
    let got = reading.body.collect().await.unwrap().into_bytes();
    assert!(got[..] == old[..], "the reader saw the old body intact");

    // Once nobody reads it, the old body's pieces go away (the collector retries on the next
    // wake-up; a delete of another object wakes it).
    c.put_object()
        .bucket("gc-bucket")
        .key("other")
        .body(ByteStream::from(data(10_000, 3)))
        .send()
        .await
        .unwrap();
    c.delete_object()
        .bucket("gc-bucket")
        .key("other")
        .send()
        .await
        .unwrap();
    let gone = wait::eventually(Duration::from_secs(5), || {
        let now = storage::piece_paths(&gw.nodes_dir());
        old_files.iter().all(|f| !now.contains(f))
    })
    .await;
    assert!(gone, "the old body's pieces were collected");
    let now = c
        .get_object()
        .bucket("gc-bucket")
        .key("k")
        .send()
        .await
        .unwrap();
    assert!(now.body.collect().await.unwrap().into_bytes()[..] == new[..]);
}

#[tokio::test]
async fn replaced_bodies_keep_their_pieces_for_the_grace_period() {
    let gw = Setup::new().gc_grace("60m").start().await;
    let c = gw.client();
    c.create_bucket()
        .bucket("grace-bucket")
        .send()
        .await
        .unwrap();
    let body = data(1 << 20, 4);
    c.put_object()
        .bucket("grace-bucket")
        .key("k")
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap();
    let before = storage::piece_paths(&gw.nodes_dir());
    c.delete_object()
        .bucket("grace-bucket")
        .key("k")
        .send()
        .await
        .unwrap();
    gw.collect_garbage().await;
    let after = storage::piece_paths(&gw.nodes_dir());
    assert!(!before.is_empty());
    assert!(
        before.iter().all(|f| after.contains(f)),
        "pieces of a body deleted moments ago are still there"
    );
}

// Orphan collection: pieces on the nodes that no metadata references.

const DEADLINE: Duration = Duration::from_secs(90);

/// Orphans collected fast: a scan every 200 ms, deleted at the second sighting.
fn fast_orphans() -> Setup {
    Setup::new()
        .storage("orphan_grace", "0s")
        .storage("orphan_scan_interval", "200ms")
}

async fn stats(admin: &str) -> gateway::admin::StatsReport {
    gateway::admin::fetch_stats(admin).await.expect("stats")
}

fn orphan_nodes(s: &gateway::admin::StatsReport) -> Vec<gateway::metrics::NodeOrphans> {
    s.orphans
        .as_ref()
        .expect("orphan report")
        .nodes
        .values()
        .cloned()
        .collect()
}

/// Waits until every node was scanned completely at least once after `after_ms`.
async fn wait_scanned_after(admin: &str, nodes: usize, after_ms: i64) {
    wait::until(
        DEADLINE,
        &format!("an orphan scan after {after_ms}"),
        || async {
            let s = stats(admin).await;
            let done = orphan_nodes(&s)
                .iter()
                .filter(|n| n.last_scan_ms > after_ms)
                .count();
            (done >= nodes).then_some(())
        },
    )
    .await
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Writes a file that looks like a committed data piece under a random id on a node.
fn plant_orphan(node_dir: &Path, len: usize, seed: u64) -> PathBuf {
    let id = blake3::hash(&data(64, seed)).to_hex().to_string();
    let dir = node_dir.join("pieces").join(&id[..2]);
    let path = dir.join(&id);
    let mut body = b"GWPC".to_vec();
    body.extend(data(len - 4, seed));
    std::fs::write(&path, body).unwrap();
    path
}

/// Planted orphans are deleted, metadata blobs (which every node also holds, and which no
/// metadata row names) are not: after collection the metadata is still recoverable from the
/// nodes, and every object reads back.
#[tokio::test]
async fn orphans_go_and_metadata_blobs_stay() {
    let mut gw = fast_orphans().start().await;
    let admin = gw.admin();
    let c = gw.client();
    c.create_bucket().bucket("blobs").send().await.unwrap();
    let mut bodies = Vec::new();
    for i in 0..5u64 {
        let body = data(100_000 + 70_000 * i as usize, 10 + i);
        c.put_object()
            .bucket("blobs")
            .key(format!("k{i}"))
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        bodies.push(body);
    }
    process::wait_replicated(&admin).await;
    let blobs: Vec<PathBuf> = storage::files_under(&gw.nodes_dir())
        .into_iter()
        .filter(|p| harness::is_metadata_blob(p))
        .collect();
    assert!(!blobs.is_empty());
    let planted: Vec<PathBuf> = (1..=3)
        .map(|i| plant_orphan(&gw.nodes_dir().join(format!("n{i}")), 1000, i))
        .collect();
    let gone = wait::eventually(DEADLINE, || planted.iter().all(|p| !p.exists())).await;
    assert!(gone, "planted orphans were collected");
    // Another complete scan of every node after that: still nothing else deleted.
    wait_scanned_after(&admin, 6, now_ms()).await;
    for b in &blobs {
        assert!(b.exists(), "metadata blob {} was deleted", b.display());
    }
    let s = stats(&admin).await;
    let nodes = orphan_nodes(&s);
    let reclaimed: u64 = nodes.iter().map(|n| n.reclaimed_pieces).sum();
    let bytes: u64 = nodes.iter().map(|n| n.reclaimed_bytes).sum();
    assert_eq!((reclaimed, bytes), (3, 3000));
    assert!(nodes
        .iter()
        .all(|n| n.pending_pieces == 0 && n.held.is_none()));
    let text = gateway::admin::render(&s);
    assert!(
        text.contains("reclaimed 3 pieces, 2.9 KiB since start"),
        "{text}"
    );
    for (i, body) in bodies.iter().enumerate() {
        let got = c
            .get_object()
            .bucket("blobs")
            .key(format!("k{i}"))
            .send()
            .await
            .unwrap();
        assert!(got.body.collect().await.unwrap().into_bytes()[..] == body[..]);
    }

    // The metadata rebuilt from the nodes' blobs serves every object.
    gw.stop().await;
    for f in [
        "metadata.sqlite",
        "metadata.sqlite-wal",
        "metadata.sqlite-shm",
    ] {
        let _ = std::fs::remove_file(gw.data_dir().join(f));
    }
    gateway::app::recover::run_recover(&gateway::app::recover::RecoverOptions {
        data_dir: gw.data_dir().to_path_buf(),
        config: None,
        key_file: None,
        passphrase: None,
        force: false,
        progress: false,
    })
    .await
    .expect("recover from the nodes after orphan collection");
    gw.restart().await;
    let c = gw.client();
    for (i, body) in bodies.iter().enumerate() {
        let got = c
            .get_object()
            .bucket("blobs")
            .key(format!("k{i}"))
            .send()
            .await
            .unwrap();
        assert!(got.body.collect().await.unwrap().into_bytes()[..] == body[..]);
    }
}

/// A slow multi-segment upload: its first segments' pieces sit on the nodes, referenced by no
/// metadata, for much longer than the grace period while scans run; none is touched.
#[tokio::test]
async fn a_slow_upload_outlives_the_grace_period_unharmed() {
    let gw = Setup::new()
        // The valve off: only the in-flight registry protects the upload's pieces.
        .storage("orphan_grace", "500ms")
        .storage("orphan_scan_interval", "100ms")
        .storage("orphan_max_share", 1)
        .start()
        .await;
    let admin = gw.admin();
    let c = gw.client();
    c.create_bucket().bucket("slow").send().await.unwrap();
    let layer = gw.gateway().layer.clone();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let put = tokio::spawn(async move {
        layer
            .put_object(
                gateway::object::PutObject {
                    bucket: "slow".into(),
                    key: "k".into(),
                    ..Default::default()
                },
                gateway::object::BodyReceiver::new(rx, None),
            )
            .await
    });
    // 12 segments of 256 KiB, one every 300 ms: about 3.6 s, seven grace periods.
    let body = data(12 * (256 << 10), 77);
    let started = now_ms();
    let mut scans_during = 0;
    let mut seen_pieces = 0;
    for chunk in body.chunks(256 << 10) {
        tx.send(gateway::object::BodyEvent::Data(
            bytes::Bytes::copy_from_slice(chunk),
        ))
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        seen_pieces = seen_pieces.max(storage::piece_paths(&gw.nodes_dir()).len());
    }
    let s = stats(&admin).await;
    for n in orphan_nodes(&s) {
        if n.last_scan_ms > started + 1000 {
            scans_during += 1;
        }
        assert_eq!(n.reclaimed_pieces, 0, "nothing was deleted");
    }
    assert_eq!(scans_during, 6, "every node was scanned during the upload");
    assert!(
        seen_pieces >= 6 * 10,
        "segments were on the nodes before the end"
    );
    tx.send(gateway::object::BodyEvent::End(None))
        .await
        .unwrap();
    put.await.unwrap().expect("the slow upload commits");
    let got = c.get_object().bucket("slow").key("k").send().await.unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes()[..] == body[..]);
    // And its pieces are not orphans afterwards either.
    wait_scanned_after(&admin, 6, now_ms()).await;
    let s = stats(&admin).await;
    assert!(orphan_nodes(&s)
        .iter()
        .all(|n| n.pending_pieces == 0 && n.reclaimed_pieces == 0));
}

// kill -9 during uploads, with real processes.

/// What is on the node directories that should not be: data piece files that no piece row of
/// the metadata names (derived as the gateway derives ids), and temp files. Reads the metadata
/// read-only beside the running gateway.
fn leftovers(data_dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let root = gateway::crypto::RootKey::load(&data_dir.join("root.key")).expect("root key");
    let nodes = data_dir.join("nodes");
    // Files first: a piece deleted after this listing is not counted (checked again below).
    let files = storage::piece_paths(&nodes);
    let db = rusqlite::Connection::open_with_flags(
        data_dir.join("metadata.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open metadata");
    let mut stmt = db
        .prepare("SELECT stream_id, segment_idx, number, node FROM pieces")
        .expect("query");
    let expected: std::collections::HashSet<PathBuf> = stmt
        .query_map([], |row| {
            Ok((
                row.get::<_, [u8; 16]>(0)?,
                row.get::<_, u32>(1)?,
                row.get::<_, u16>(2)?,
                row.get::<_, String>(3)?,
            ))
        })
        .expect("rows")
        .map(|r| {
            let (stream, segment, number, node) = r.expect("row");
            let key = root.piece_id_key(&node);
            let id = gateway::nodes::PieceId::derive(&key, &stream, segment, number).to_hex();
            nodes.join(&node).join("pieces").join(&id[..2]).join(&id)
        })
        .collect();
    let orphans = files
        .into_iter()
        .filter(|f| !expected.contains(f) && f.exists())
        .collect();
    // nodes/<node>/tmp/...
    let temp = storage::files_under(&nodes)
        .into_iter()
        .filter(|p| {
            p.strip_prefix(&nodes).is_ok_and(|r| {
                r.components()
                    .nth(1)
                    .is_some_and(|c| c.as_os_str() == "tmp")
            })
        })
        .collect();
    (orphans, temp)
}

/// kill -9 while 50 uploads (single PUTs and multipart) are in flight leaves orphan pieces and
/// temp files on the nodes. After a restart the temp files are swept at once and the orphans
/// collected after their grace period, down to nothing, while every acknowledged object
/// reads back bit-exact.
#[tokio::test]
async fn after_kill9_during_uploads_orphans_and_temp_files_go_and_acknowledged_objects_stay() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    // The safety valve is off (orphan_max_share = 1): this is about the collector's own
    // judgement, and a wrong deletion shows as an object that no longer reads back. The upload
    // rate keeps many uploads in flight when the kill comes.
    Setup::new()
        .chunk_size("16KiB")
        .storage("orphan_grace", "2s")
        .storage("orphan_scan_interval", "1s")
        .storage("orphan_max_share", 1)
        .limit("upload_rate", "16MiB")
        .write_config(&data_dir);
    let gw = GatewayProcess::start(&data_dir);
    let c = gw.client();
    c.create_bucket().bucket("crash").send().await.unwrap();

    // 40 single PUTs of 0.3 to 2 MiB and 10 multipart uploads of 5 MiB + 1 MiB, all at once;
    // each records its object once acknowledged.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, Vec<u8>)>::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50u64 {
        let (c, acked) = (c.clone(), acked.clone());
        tasks.spawn(async move {
            let key = format!("obj-{i:02}");
            if i % 5 == 4 {
                let parts = [data(5 << 20, 1000 + i), data(1 << 20, 2000 + i)];
                let up = c
                    .create_multipart_upload()
                    .bucket("crash")
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let id = up.upload_id().unwrap_or_default().to_string();
                let mut done = Vec::new();
                for (n, part) in parts.iter().enumerate() {
                    let r = c
                        .upload_part()
                        .bucket("crash")
                        .key(&key)
                        .upload_id(&id)
                        .part_number(n as i32 + 1)
                        .body(ByteStream::from(part.clone()))
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    done.push(
                        aws_sdk_s3::types::CompletedPart::builder()
                            .part_number(n as i32 + 1)
                            .e_tag(r.e_tag().unwrap_or_default())
                            .build(),
                    );
                }
                c.complete_multipart_upload()
                    .bucket("crash")
                    .key(&key)
                    .upload_id(&id)
                    .multipart_upload(
                        aws_sdk_s3::types::CompletedMultipartUpload::builder()
                            .set_parts(Some(done))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                acked.lock().unwrap().push((key, parts.concat()));
            } else {
                let body = data(300_000 + (i as usize * 37_000) % (1700 << 10), i);
                c.put_object()
                    .bucket("crash")
                    .key(&key)
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                acked.lock().unwrap().push((key, body));
            }
            Ok::<(), String>(())
        });
    }
    wait::until_true(DEADLINE, "8 acknowledged uploads", || {
        acked.lock().unwrap().len() >= 8
    })
    .await;
    gw.kill9();
    while tasks.join_next().await.is_some() {}
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.len() < 50,
        "the kill came while uploads were in flight"
    );
    let (orphans, temp) = leftovers(&data_dir);
    assert!(
        !orphans.is_empty() && !temp.is_empty(),
        "the kill left orphans ({}) and temp files ({})",
        orphans.len(),
        temp.len()
    );

    let gw = GatewayProcess::start(&data_dir);
    let clean = wait::eventually(DEADLINE, || {
        let (orphans, temp) = leftovers(&data_dir);
        orphans.is_empty() && temp.is_empty()
    })
    .await;
    if !clean {
        let (orphans, temp) = leftovers(&data_dir);
        panic!(
            "{} orphans and {} temp files left (e.g. {:?}); gateway log:\n{}",
            orphans.len(),
            temp.len(),
            orphans.iter().chain(&temp).next(),
            gw.stderr()
        );
    }
    let c = gw.client();
    for (key, body) in &acked {
        let got = c
            .get_object()
            .bucket("crash")
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
        let got = got.body.collect().await.unwrap().into_bytes();
        assert!(got[..] == body[..], "{key} reads back bit-exact");
    }
    let s = stats(&gw.admin).await;
    let nodes = orphan_nodes(&s);
    let sum = |f: fn(&gateway::metrics::NodeOrphans) -> u64| nodes.iter().map(f).sum::<u64>();
    assert!(sum(|n| n.reclaimed_pieces) >= orphans.len() as u64);
    assert!(sum(|n| n.reclaimed_bytes) > 0);
    assert!(sum(|n| n.temp_removed_files) >= 1);
    assert!(sum(|n| n.temp_removed_bytes) > 0);
}
