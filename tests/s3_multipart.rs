//! End-to-end multipart uploads (issue 3).

mod common;
#[path = "common/s3x.rs"]
mod s3x;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use common::{data, TestGateway};
use s3x::*;

async fn create(c: &Client, bucket: &str, key: &str) -> String {
    c.create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {key}: {e:?}"))
        .upload_id()
        .expect("upload id")
        .to_string()
}

async fn upload(c: &Client, bucket: &str, key: &str, id: &str, n: i32, body: &[u8]) -> String {
    c.upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .part_number(n)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("upload part {n} of {key}: {e:?}"))
        .e_tag()
        .expect("part etag")
        .to_string()
}

fn completed(parts: &[(i32, &str)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts
                .iter()
                .map(|(n, e)| CompletedPart::builder().part_number(*n).e_tag(*e).build())
                .collect(),
        ))
        .build()
}

#[tokio::test]
async fn timing() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("mpu").send().await.unwrap();
    let t = std::time::Instant::now();
    let parts = [data(5 * MIB, 1), data(5 * MIB, 2), data(MIB, 3)];
    let id = create(&c, "mpu", "big").await;
    let mut etags = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        etags.push(upload(&c, "mpu", "big", &id, i as i32 + 1, p).await);
    }
    eprintln!("upload {:?}", t.elapsed());
    let list: Vec<(i32, &str)> = etags
        .iter()
        .enumerate()
        .map(|(i, e)| (i as i32 + 1, e.as_str()))
        .collect();
    c.complete_multipart_upload()
        .bucket("mpu")
        .key("big")
        .upload_id(&id)
        .multipart_upload(completed(&list))
        .send()
        .await
        .unwrap();
    eprintln!("complete {:?}", t.elapsed());
    let got = get(&c, "mpu", "big").await;
    eprintln!("get {:?}", t.elapsed());
    assert_eq!(got.len(), 11 * MIB);
}
