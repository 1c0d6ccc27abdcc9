//! End to end over real node servers: six `gateway node` processes on loopback ports, a gateway
//! configured with them as `remote` nodes (scheme 4/5/6/6), aws-sdk-s3 as the client. The
//! contract under test: objects round-trip through node servers, every node holds pieces, and
//! with two node processes killed any four remaining pieces still give back every byte.

use crate::harness::nodes::start_nodes;
use crate::harness::s3x::get_range;
use crate::harness::{data, Setup};
use aws_sdk_s3::primitives::ByteStream;

const SEG: usize = 256 << 10;
const BUCKET: &str = "remote";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_survive_two_killed_node_servers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut nodes = start_nodes(tmp.path(), 6);
    let mut gw = Setup::remote(&nodes)
        .scheme("4/5/6/6")
        .start_in(&tmp.path().join("gateway"))
        .await;
    let c = gw.client();
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
        assert_eq!(&get_range(&c, BUCKET, key, None).await, body, "{key}");
    }
    for n in &nodes {
        // Four segments of the big object plus one of the small one, one piece each.
        assert_eq!(n.piece_count(), 5, "pieces on {}", n.dir.display());
    }

    nodes[1].kill();
    nodes[4].kill();
    for (key, body) in &objects {
        assert_eq!(
            &get_range(&c, BUCKET, key, None).await,
            body,
            "{key} with two nodes down"
        );
    }
    let (key, body) = &objects[0];
    let (a, b) = (SEG - 100, 2 * SEG + 5_000);
    assert_eq!(
        get_range(&c, BUCKET, key, Some(&format!("bytes={a}-{b}"))).await,
        body[a..=b],
        "range across segments with two nodes down"
    );

    gw.stop().await;
}
