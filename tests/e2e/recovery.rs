//! Metadata recovery with real processes: `gateway run` over `gateway node` servers, killed
//! with SIGKILL, its data directory wiped but for the root key and the configuration, then
//! `gateway recover` and a new `gateway run` that must serve everything as before.
//!
//! Every child process is killed by a guard; every wait has a deadline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::harness::nodes::{node_id, start_nodes, NodeProcess};
use crate::harness::process::GatewayProcess;
use crate::harness::s3x::get;
use crate::harness::Setup;
use crate::harness::{data, wait};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Tag, Tagging};
use aws_sdk_s3::Client;
use gateway::crypto::RootKey;
use gateway::replication::blob::BlobName;

fn recover_cmd(data_dir: &Path, extra: &[&str]) -> Output {
    GatewayProcess::command("recover", data_dir)
        .args(extra)
        .output()
        .expect("run gateway recover")
}

/// Keeps `config.toml` and `root.key`, deletes everything else in the data directory.
fn lose_data_dir(data_dir: &Path) {
    for entry in std::fs::read_dir(data_dir).expect("data dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "config.toml" || name == "root.key" {
            continue;
        }
        if path.is_dir() {
            std::fs::remove_dir_all(&path).expect("rm dir");
        } else {
            std::fs::remove_file(&path).expect("rm file");
        }
    }
}

/// The data directory `root/data` with a config over `nodes` (4/5/6/6) and these
/// `[metadata]` entries.
fn setup(root: &Path, nodes: &[NodeProcess], metadata: &[(&str, &str)]) -> PathBuf {
    let data_dir = root.join("data");
    let mut setup = Setup::remote(nodes).scheme("4/5/6/6");
    for (k, v) in metadata {
        setup = setup.set("metadata", k, *v);
    }
    setup.write_config(&data_dir);
    data_dir
}

/// Everything a client can see, for before/after comparison.
async fn listing(c: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for b in c.list_buckets().send().await.expect("buckets").buckets() {
        let name = b.name().unwrap_or_default().to_string();
        out.push(format!("bucket {name}"));
        let mut token = None;
        loop {
            let page = c
                .list_objects_v2()
                .bucket(&name)
                .set_continuation_token(token.clone())
                .send()
                .await
                .expect("list");
            for o in page.contents() {
                out.push(format!(
                    "{} {} {:?} {:?}",
                    o.key().unwrap_or_default(),
                    o.size().unwrap_or_default(),
                    o.e_tag(),
                    o.last_modified()
                ));
            }
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        let uploads = c
            .list_multipart_uploads()
            .bucket(&name)
            .send()
            .await
            .expect("uploads");
        for u in uploads.uploads() {
            out.push(format!("upload {:?} {:?}", u.key(), u.upload_id()));
        }
    }
    out
}

/// Writes a mixed population; returns key -> (bucket, content hash).
async fn populate(c: &Client, count: usize) -> BTreeMap<String, (String, blake3::Hash)> {
    let mut expect = BTreeMap::new();
    for b in ["alpha", "beta"] {
        c.create_bucket().bucket(b).send().await.expect("bucket");
    }
    let mut set = tokio::task::JoinSet::new();
    for i in 0..count {
        let c = c.clone();
        let bucket = if i % 3 == 0 { "beta" } else { "alpha" };
        // Mostly inline; every 20th spans stripes, every 150th several segments.
        let len = if i % 150 == 7 {
            600_000
        } else if i % 20 == 3 {
            20_000 + i * 37
        } else {
            (i * 131) % 4000
        };
        let key = format!("dir{}/obj-{i:05}", i % 7);
        let body = data(len, i as u64);
        expect.insert(key.clone(), (bucket.to_string(), blake3::hash(&body)));
        set.spawn(async move {
            let mut put = c
                .put_object()
                .bucket(bucket)
                .key(&key)
                .body(ByteStream::from(body));
            if i % 5 == 0 {
                put = put
                    .metadata("origin", format!("m{i}"))
                    .tagging(format!("n={i}"));
            }
            put.send()
                .await
                .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
        });
        if set.len() >= 16 {
            set.join_next().await.expect("task").expect("put");
        }
    }
    while let Some(r) = set.join_next().await {
        r.expect("put");
    }
    // Copies, tag changes and deletes.
    for i in (0..count).step_by(97) {
        let key = format!("dir{}/obj-{i:05}", i % 7);
        let (bucket, hash) = expect[&key].clone();
        let copy = format!("copies/{i}");
        c.copy_object()
            .bucket("alpha")
            .key(&copy)
            .copy_source(format!("{bucket}/{key}"))
            .send()
            .await
            .expect("copy");
        expect.insert(copy, ("alpha".into(), hash));
        c.put_object_tagging()
            .bucket(&bucket)
            .key(&key)
            .tagging(
                Tagging::builder()
                    .tag_set(
                        Tag::builder()
                            .key("re")
                            .value("tagged")
                            .build()
                            .expect("tag"),
                    )
                    .build()
                    .expect("tagging"),
            )
            .send()
            .await
            .expect("tag");
    }
    for i in (5..count).step_by(211) {
        let key = format!("dir{}/obj-{i:05}", i % 7);
        let bucket = expect.remove(&key).expect("known").0;
        c.delete_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .expect("delete");
    }
    // A completed multipart upload and one left in progress.
    let part1 = data(5 << 20, 91);
    let part2 = data(70_000, 92);
    let up = c
        .create_multipart_upload()
        .bucket("alpha")
        .key("multipart/done")
        .send()
        .await
        .expect("create upload");
    let id = up.upload_id().expect("id").to_string();
    let mut parts = Vec::new();
    for (n, body) in [(1, &part1), (2, &part2)] {
        let r = c
            .upload_part()
            .bucket("alpha")
            .key("multipart/done")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("part");
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .set_e_tag(r.e_tag().map(str::to_string))
                .build(),
        );
    }
    c.complete_multipart_upload()
        .bucket("alpha")
        .key("multipart/done")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect("complete");
    let mut whole = part1.clone();
    whole.extend_from_slice(&part2);
    expect.insert(
        "multipart/done".into(),
        ("alpha".into(), blake3::hash(&whole)),
    );
    let open = c
        .create_multipart_upload()
        .bucket("beta")
        .key("multipart/open")
        .send()
        .await
        .expect("create upload");
    c.upload_part()
        .bucket("beta")
        .key("multipart/open")
        .upload_id(open.upload_id().expect("id"))
        .part_number(1)
        .body(ByteStream::from(data(5 << 20, 93)))
        .send()
        .await
        .expect("open part");
    expect
}

async fn check_all(c: &Client, expect: &BTreeMap<String, (String, blake3::Hash)>) {
    let mut set = tokio::task::JoinSet::new();
    for (key, (bucket, hash)) in expect.clone() {
        let c = c.clone();
        set.spawn(async move {
            let got = get(&c, &bucket, &key).await;
            assert_eq!(blake3::hash(&got), hash, "{bucket}/{key} differs");
        });
        if set.len() >= 16 {
            set.join_next().await.expect("task").expect("get");
        }
    }
    while let Some(r) = set.join_next().await {
        r.expect("get");
    }
}

fn stdout(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recover_rebuilds_everything_after_losing_the_data_directory() {
    let root = tempfile::tempdir().expect("tempdir");
    let nodes = start_nodes(root.path(), 6);
    // Snapshots every second, so the run writes several, prunes old ones, and recovery
    // combines a snapshot with the log after it.
    let data_dir = setup(root.path(), &nodes, &[("snapshot_interval", "1s")]);
    let gw = GatewayProcess::start(&data_dir);
    let c = gw.client();
    let expect = populate(&c, 2000).await;
    let before = listing(&c).await;
    let stats_before = gateway::admin::fetch_stats(&gw.admin).await.expect("stats");
    gw.wait_replicated().await;
    gw.kill9();
    lose_data_dir(&data_dir);

    let started = Instant::now();
    let out = recover_cmd(&data_dir, &[]);
    assert!(out.status.success(), "{}", stdout(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    println!("recovered in {:?}:\n{text}", started.elapsed());
    assert!(
        text.contains(&format!("objects: {}", stats_before.stored.objects)),
        "{text}"
    );
    assert!(text.contains("multipart uploads in progress: 1"), "{text}");
    // A second recovery refuses to replace the store.
    let again = recover_cmd(&data_dir, &[]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("refusing"),
        "{}",
        stdout(&again)
    );

    let gw = GatewayProcess::start(&data_dir);
    let c = gw.client();
    assert_eq!(listing(&c).await, before);
    check_all(&c, &expect).await;
    let stats_after = gateway::admin::fetch_stats(&gw.admin).await.expect("stats");
    assert_eq!(stats_after.stored, stats_before.stored);
    // Tags and user metadata came back too.
    let head = c
        .head_object()
        .bucket("alpha")
        .key("dir5/obj-00005")
        .send()
        .await;
    assert!(head.is_err(), "obj 5 was deleted");
    let h = c
        .head_object()
        .bucket("beta")
        .key("dir0/obj-00000")
        .send()
        .await
        .expect("head");
    assert_eq!(
        h.metadata()
            .and_then(|m| m.get("origin"))
            .map(String::as_str),
        Some("m0")
    );
    let tags = c
        .get_object_tagging()
        .bucket("beta")
        .key("dir0/obj-00000")
        .send()
        .await
        .expect("tags");
    assert_eq!(tags.tag_set()[0].key(), "re");
    // The recovered gateway keeps replicating where the old one stopped.
    c.put_object()
        .bucket("alpha")
        .key("after")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put after");
    gw.wait_replicated().await;
    drop(nodes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recovery_point_in_async_and_sync_mode() {
    for (mode, metadata, window) in [
        ("async", &[("max_delay", "1s")][..], Duration::from_secs(1)),
        ("sync", &[("replication", "sync")][..], Duration::ZERO),
    ] {
        let root = tempfile::tempdir().expect("tempdir");
        let nodes = start_nodes(root.path(), 6);
        let data_dir = setup(root.path(), &nodes, metadata);
        let gw = GatewayProcess::start(&data_dir);
        let c = gw.client();
        c.create_bucket()
            .bucket("rpo")
            .send()
            .await
            .expect("bucket");
        gw.wait_replicated().await;
        // A client writing continuously; the gateway is killed under it.
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let writer = {
            let (c, count) = (c.clone(), count.clone());
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..100_000u64 {
                    let body = data(if i % 10 == 0 { 50_000 } else { 100 }, i);
                    let r = c
                        .put_object()
                        .bucket("rpo")
                        .key(format!("k{i:06}"))
                        .body(ByteStream::from(body))
                        .send()
                        .await;
                    match r {
                        Ok(_) => {
                            acked.push((i, Instant::now()));
                            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        Err(_) => break,
                    }
                }
                acked
            })
        };
        // Killed in the middle of the stream, once it is well under way: 50 writes
        // acknowledged and at least 3 s of them, so that (in async mode) writes older than the
        // one-second window exist and must survive.
        let started = Instant::now();
        wait::until_true(Duration::from_secs(60), "50 acknowledged writes", || {
            count.load(std::sync::atomic::Ordering::SeqCst) >= 50
                && started.elapsed() >= Duration::from_secs(3)
        })
        .await;
        let killed_at = Instant::now();
        gw.kill9();
        let acked = writer.await.expect("writer");
        assert!(
            acked.len() > 10,
            "{mode}: only {} writes acknowledged",
            acked.len()
        );
        assert!(
            acked
                .iter()
                .any(|(_, at)| killed_at.saturating_duration_since(*at) > window * 2),
            "{mode}: no write acknowledged well before the kill: the check below tests nothing"
        );
        lose_data_dir(&data_dir);
        let out = recover_cmd(&data_dir, &[]);
        assert!(out.status.success(), "{}", stdout(&out));
        let gw = GatewayProcess::start(&data_dir);
        let c = gw.client();
        let mut present = 0;
        let mut lost_in_window = 0;
        for (i, at) in &acked {
            let found = c
                .head_object()
                .bucket("rpo")
                .key(format!("k{i:06}"))
                .send()
                .await
                .is_ok();
            if found {
                present += 1;
            } else {
                let age = killed_at.saturating_duration_since(*at);
                assert!(
                    age <= window,
                    "{mode}: k{i:06}, acknowledged {age:?} before the kill, is lost"
                );
                lost_in_window += 1;
            }
        }
        println!(
            "{mode}: {} writes acknowledged, {present} recovered, {lost_in_window} lost (acknowledged within {window:?} of the kill)",
            acked.len()
        );
        drop(nodes);
    }
}

/// The files of blob `name`'s pieces on the node servers (`None` where a node has none).
fn blob_files(data_dir: &Path, nodes: &[NodeProcess], name: BlobName) -> Vec<Option<PathBuf>> {
    let key = RootKey::load(&data_dir.join("root.key")).expect("root key");
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let id = node_id(i);
            let hex = name.piece_id(&key.piece_id_key(&id), &id).to_hex();
            let p = n.dir.join("pieces").join(&hex[..2]).join(&hex);
            p.exists().then_some(p)
        })
        .collect()
}

fn corrupt(path: &Path) {
    let mut bytes = std::fs::read(path).expect("read piece");
    let at = bytes.len() - 40;
    bytes[at] ^= 0x55;
    std::fs::write(path, bytes).expect("write piece");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn damaged_lost_and_foreign_metadata_is_detected() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = start_nodes(root.path(), 6);
    let data_dir = setup(root.path(), &nodes, &[]);
    let gw = GatewayProcess::start(&data_dir);
    let c = gw.client();
    let expect = populate(&c, 200).await;
    gw.wait_replicated().await;

    // The nodes hold this key's metadata: a fresh data directory with the same key is told
    // to recover, one with another key is refused.
    let fresh = root.path().join("fresh");
    std::fs::create_dir_all(&fresh).expect("fresh");
    std::fs::copy(data_dir.join("config.toml"), fresh.join("config.toml")).expect("cfg");
    std::fs::copy(data_dir.join("root.key"), fresh.join("root.key")).expect("key");
    let err = GatewayProcess::try_start(&fresh).err().expect("refused");
    assert!(err.contains("gateway recover"), "{err}");
    // The refused start left an empty store behind: `recover` may replace that one.
    let out = recover_cmd(&fresh, &[]);
    assert!(out.status.success(), "{}", stdout(&out));
    let rebuilt = GatewayProcess::start(&fresh);
    check_all(&rebuilt.client(), &expect).await;
    rebuilt.kill9();
    for f in ["root.key", "metadata.sqlite"] {
        std::fs::remove_file(fresh.join(f)).expect("rm");
    }
    let err = GatewayProcess::try_start(&fresh).err().expect("refused");
    assert!(err.contains("root key does not match"), "{err}");
    let other_key = root.path().join("other.key");
    RootKey::generate()
        .expect("key")
        .save_new(&other_key)
        .expect("save");
    // The refused start left an empty store; the failed recovery must leave it as it was.
    let store = fresh.join("metadata.sqlite");
    let before = std::fs::read(&store).ok();
    let out = recover_cmd(&fresh, &["--key-file", other_key.to_str().expect("utf8")]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("root key does not match"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        std::fs::read(&store).ok(),
        before,
        "a failed recovery changed the store"
    );
    assert!(!fresh.join("metadata.sqlite.recovering").exists());

    gw.kill9();
    lose_data_dir(&data_dir);
    // Damage the first snapshot's pieces on four nodes (r3..r6): the two intact ones on r1
    // and r2 still rebuild it.
    let snap = BlobName::snapshot(1, 0);
    let files = blob_files(&data_dir, &nodes, snap);
    assert!(
        files.iter().all(Option::is_some),
        "every node holds a piece of {snap}"
    );
    for f in files.iter().skip(2).flatten() {
        corrupt(f);
    }
    // Two nodes down as well: recovery reads from the other four.
    nodes[4].kill();
    nodes[5].kill();
    let out = recover_cmd(&data_dir, &[]);
    assert!(out.status.success(), "{}", stdout(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("pieces rejected"), "{text}");
    let gw = GatewayProcess::start(&data_dir);
    check_all(&gw.client(), &expect).await;
    gw.kill9();

    // Beyond the tolerance: one node left. A clear error, nothing written.
    lose_data_dir(&data_dir);
    nodes[1].kill();
    nodes[2].kill();
    nodes[3].kill();
    let out = recover_cmd(&data_dir, &[]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("intact"), "{err}");
    assert!(!data_dir.join("metadata.sqlite").exists());
    assert!(!data_dir.join("metadata.sqlite.recovering").exists());
}

/// Sync mode with a hung node (SIGSTOP): metadata writes need `success` nodes, not all of
/// them, so writes go on. Were they to wait for the hung node, its 5 s read timeout would
/// outlast the 3 s sync timeout and every write would fail with 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_mode_writes_go_on_with_a_hung_node() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = start_nodes(root.path(), 6);
    let data_dir = setup(
        root.path(),
        &nodes,
        &[("replication", "sync"), ("sync_timeout", "3s")],
    );
    let gw = GatewayProcess::start(&data_dir);
    let c = gw.client();
    c.create_bucket()
        .bucket("hung")
        .send()
        .await
        .expect("bucket");
    gw.wait_replicated().await;
    nodes[5].stop();
    for i in 0..5 {
        c.put_object()
            .bucket("hung")
            .key(format!("k{i}"))
            .body(ByteStream::from(data(100, i)))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {i} with a hung node: {e:?}"));
    }
    nodes[5].resume();
    gw.wait_replicated().await;
}
