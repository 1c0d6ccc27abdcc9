//! End to end over real node servers: six `gateway node` processes on loopback ports, a gateway
//! configured with them as `remote` nodes (scheme 4/5/6/6), aws-sdk-s3 as the client. The
//! contract under test: objects round-trip through node servers, every node holds pieces, and
//! with two node processes killed any four remaining pieces still give back every byte.

mod common;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use common::nodes::NodeProcess;
use common::{data, ACCESS_KEY, SECRET_KEY};
use gateway::app::{prepare, Gateway};

const SEG: usize = 256 << 10;
const BUCKET: &str = "remote";

fn client(gw: &Gateway) -> Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(format!("http://{}", gw.addr))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
        .force_path_style(true)
        .build();
    Client::from_conf(conf)
}

async fn get(c: &Client, key: &str, range: Option<&str>) -> Vec<u8> {
    c.get_object()
        .bucket(BUCKET)
        .key(key)
        .set_range(range.map(str::to_string))
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key} {range:?}: {e:?}"))
        .body
        .collect()
        .await
        .unwrap_or_else(|e| panic!("body of {key}: {e:?}"))
        .into_bytes()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_survive_two_killed_node_servers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut nodes: Vec<NodeProcess> = (1..=6)
        .map(|i| {
            NodeProcess::start(
                &tmp.path().join(format!("node{i}")),
                &tmp.path().join(format!("node{i}.log")),
            )
        })
        .collect();

    let data_dir = tmp.path().join("gateway");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let mut cfg = format!(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[storage]\nscheme = \"4/5/6/6\"\nsegment_size = \"{SEG}\"\n\
         chunk_size = \"4KiB\"\nblock_size = \"4KiB\"\n"
    );
    for (i, n) in nodes.iter().enumerate() {
        cfg.push_str(&format!(
            "[[nodes]]\nid = \"r{}\"\nkind = \"remote\"\naddress = \"{}\"\ntoken_file = \"{}\"\n\
             connect_timeout = \"1s\"\nread_timeout = \"5s\"\n",
            i + 1,
            n.addr,
            n.dir.join("token").display()
        ));
    }
    std::fs::write(data_dir.join("config.toml"), cfg).expect("config");
    std::fs::write(
        data_dir.join("credentials.toml"),
        format!("access_key = \"{ACCESS_KEY}\"\nsecret_key = \"{SECRET_KEY}\"\n"),
    )
    .expect("credentials");
    let prepared = prepare(&data_dir, None).expect("prepare");
    let gw = Gateway::start(&prepared).await.expect("start gateway");
    let c = client(&gw);
    c.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");

    let objects = [
        ("multi-segment", data(3 * SEG + 12_345, 1)),
        ("one-stripe", data(10_000, 2)),
    ];
    for (key, body) in &objects {
        c.put_object()
            .bucket(BUCKET)
            .key(*key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
        assert_eq!(&get(&c, key, None).await, body, "{key}");
    }
    for n in &nodes {
        // Four segments of the big object plus one of the small one, one piece each.
        assert_eq!(n.piece_count(), 5, "pieces on {}", n.dir.display());
    }

    nodes[1].kill();
    nodes[4].kill();
    for (key, body) in &objects {
        assert_eq!(&get(&c, key, None).await, body, "{key} with two nodes down");
    }
    let (key, body) = &objects[0];
    let (a, b) = (SEG - 100, 2 * SEG + 5_000);
    assert_eq!(
        get(&c, key, Some(&format!("bytes={a}-{b}"))).await,
        body[a..=b],
        "range across segments with two nodes down"
    );

    gw.stop().await.expect("stop gateway");
}
