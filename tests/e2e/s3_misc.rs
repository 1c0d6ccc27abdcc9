//! End-to-end tagging, versioning probes, ACL probes and SigV2: object tagging (put, get,
//! delete, AWS's limits and InvalidTag, `x-amz-tagging-count`), bucket tagging (NoSuchTagSet
//! when none), ListObjectVersions on an unversioned bucket (every version "null" and latest,
//! paging by key marker), GetBucketVersioning (empty), GetBucketAcl/GetObjectAcl (the owner's
//! FULL_CONTROL), and SigV2 presigned and header-signed requests built by hand.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::harness::s3x::*;
use crate::harness::{data, raw, TestGateway, ACCESS_KEY, SECRET_KEY};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Permission, Tag, Tagging, Type};
use aws_sdk_s3::Client;

fn tagging(pairs: &[(String, String)]) -> Tagging {
    Tagging::builder()
        .set_tag_set(Some(
            pairs
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build().unwrap())
                .collect(),
        ))
        .build()
        .unwrap()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn object_tags(c: &Client, key: &str) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = c
        .get_object_tagging()
        .bucket("misc")
        .key(key)
        .send()
        .await
        .unwrap()
        .tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    tags.sort();
    tags
}

/// `x-amz-tagging-count` of a raw GET and HEAD (which must agree).
async fn tag_count(gw: &TestGateway, key: &str) -> Option<String> {
    let target = format!("/misc/{key}");
    let get = signed(gw, "GET", &target, &[], b"").await;
    let head = signed(gw, "HEAD", &target, &[], b"").await;
    assert_eq!(get.status, 200);
    assert_eq!(
        get.header("x-amz-tagging-count"),
        head.header("x-amz-tagging-count"),
        "GET and HEAD disagree"
    );
    get.header("x-amz-tagging-count").map(str::to_string)
}

#[tokio::test]
async fn object_tagging_put_get_delete() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("misc").send().await.unwrap();
    c.put_object()
        .bucket("misc")
        .key("k")
        .tagging("b=2&a=one%20two")
        .body(ByteStream::from_static(b"tagged"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        object_tags(&c, "k").await,
        owned(&[("a", "one two"), ("b", "2")])
    );
    assert_eq!(tag_count(&gw, "k").await.as_deref(), Some("2"));
    let got = c.get_object().bucket("misc").key("k").send().await.unwrap();
    assert_eq!(got.tag_count(), Some(2));

    c.put_object_tagging()
        .bucket("misc")
        .key("k")
        .tagging(tagging(&owned(&[("c", "3")])))
        .send()
        .await
        .unwrap();
    assert_eq!(object_tags(&c, "k").await, owned(&[("c", "3")]));
    assert_eq!(tag_count(&gw, "k").await.as_deref(), Some("1"));
    // Tagging changes neither the body nor the ETag.
    assert_eq!(get(&c, "misc", "k").await, b"tagged");
    let head = c
        .head_object()
        .bucket("misc")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(head.e_tag(), Some(etag_of(b"tagged").as_str()));

    c.delete_object_tagging()
        .bucket("misc")
        .key("k")
        .send()
        .await
        .unwrap();
    assert!(object_tags(&c, "k").await.is_empty());
    assert_eq!(tag_count(&gw, "k").await, None);
    // An object put without tags has none.
    put(&c, "misc", "plain", b"x").await;
    assert!(object_tags(&c, "plain").await.is_empty());
    assert_eq!(tag_count(&gw, "plain").await, None);

    // Missing keys and buckets.
    expect_err(
        c.get_object_tagging()
            .bucket("misc")
            .key("nope")
            .send()
            .await,
        404,
        "NoSuchKey",
    );
    expect_err(
        c.put_object_tagging()
            .bucket("misc")
            .key("nope")
            .tagging(tagging(&owned(&[("a", "1")])))
            .send()
            .await,
        404,
        "NoSuchKey",
    );
    expect_err(
        c.delete_object_tagging()
            .bucket("misc")
            .key("nope")
            .send()
            .await,
        404,
        "NoSuchKey",
    );
    expect_err(
        c.get_object_tagging()
            .bucket("nope-bucket")
            .key("k")
            .send()
            .await,
        404,
        "NoSuchBucket",
    );
}

#[tokio::test]
async fn object_tag_limits() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("misc").send().await.unwrap();
    put(&c, "misc", "k", b"body").await;
    let set = |tags: Vec<(String, String)>| {
        c.put_object_tagging()
            .bucket("misc")
            .key("k")
            .tagging(tagging(&tags))
            .send()
    };
    let n_tags = |n: usize| -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("k{i:02}"), format!("v{i}")))
            .collect()
    };
    let one = |k: String, v: String| vec![(k, v)];

    // At the limits: accepted.
    for (what, tags) in [
        ("10 tags", n_tags(10)),
        ("128-byte key", one("k".repeat(128), "v".into())),
        (
            "128-character unicode key",
            one("é".repeat(128), "v".into()),
        ),
        ("256-byte value", one("k".into(), "v".repeat(256))),
        ("empty value", one("k".into(), String::new())),
    ] {
        set(tags.clone())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let mut want = tags;
        want.sort();
        assert_eq!(object_tags(&c, "k").await, want, "{what}");
    }

    // Past them: InvalidTag, and the tags stay as they were.
    let kept = owned(&[("keep", "me")]);
    set(kept.clone()).await.unwrap();
    for (what, tags) in [
        ("11 tags", n_tags(11)),
        ("129-byte key", one("k".repeat(129), "v".into())),
        ("257-byte value", one("k".into(), "v".repeat(257))),
        ("empty key", one(String::new(), "v".into())),
        (
            "duplicate keys",
            vec![("a".into(), "1".into()), ("a".into(), "2".into())],
        ),
        ("aws: prefix", one("aws:reserved".into(), "v".into())),
    ] {
        let e = set(tags).await.expect_err(what);
        assert_eq!(
            status_code(&e),
            (Some(400), Some("InvalidTag".to_string())),
            "{what}: {e:?}"
        );
        assert_eq!(object_tags(&c, "k").await, kept, "{what}");
    }

    // The same limit on x-amz-tagging of PUT, CreateMultipartUpload and copies.
    let eleven: Vec<String> = (0..11).map(|i| format!("t{i}=v")).collect();
    let eleven = eleven.join("&");
    expect_err(
        c.put_object()
            .bucket("misc")
            .key("new")
            .tagging(&eleven)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        400,
        "InvalidTag",
    );
    expect_status(c.head_object().bucket("misc").key("new").send().await, 404);
    expect_err(
        c.create_multipart_upload()
            .bucket("misc")
            .key("new")
            .tagging(&eleven)
            .send()
            .await,
        400,
        "InvalidTag",
    );
    let long_key = format!("{}=v", "k".repeat(129));
    expect_err(
        c.put_object()
            .bucket("misc")
            .key("new")
            .tagging(long_key)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        400,
        "InvalidTag",
    );
}

#[tokio::test]
async fn tags_given_at_creation_of_a_multipart_upload_land_on_the_object() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("misc").send().await.unwrap();
    let id = c
        .create_multipart_upload()
        .bucket("misc")
        .key("mp")
        .tagging("x=1&y=2")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string();
    let etag = c
        .upload_part()
        .bucket("misc")
        .key("mp")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from(data(1000, 1)))
        .send()
        .await
        .unwrap()
        .e_tag()
        .unwrap()
        .to_string();
    c.complete_multipart_upload()
        .bucket("misc")
        .key("mp")
        .upload_id(&id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .parts(
                    aws_sdk_s3::types::CompletedPart::builder()
                        .part_number(1)
                        .e_tag(etag)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        object_tags(&c, "mp").await,
        owned(&[("x", "1"), ("y", "2")])
    );
    assert_eq!(tag_count(&gw, "mp").await.as_deref(), Some("2"));
}

#[tokio::test]
async fn bucket_tagging() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("misc").send().await.unwrap();
    expect_err(
        c.get_bucket_tagging().bucket("misc").send().await,
        404,
        "NoSuchTagSet",
    );
    let tags = owned(&[("env", "test"), ("team", "storage")]);
    c.put_bucket_tagging()
        .bucket("misc")
        .tagging(tagging(&tags))
        .send()
        .await
        .unwrap();
    let got = c.get_bucket_tagging().bucket("misc").send().await.unwrap();
    let mut got: Vec<(String, String)> = got
        .tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    got.sort();
    assert_eq!(got, tags);
    // Buckets allow 50 tags; a put replaces the whole set.
    let fifty: Vec<(String, String)> = (0..50).map(|i| (format!("k{i}"), "v".into())).collect();
    c.put_bucket_tagging()
        .bucket("misc")
        .tagging(tagging(&fifty))
        .send()
        .await
        .unwrap();
    let got = c.get_bucket_tagging().bucket("misc").send().await.unwrap();
    assert_eq!(got.tag_set().len(), 50);
    let fifty_one: Vec<(String, String)> = (0..51).map(|i| (format!("k{i}"), "v".into())).collect();
    expect_err(
        c.put_bucket_tagging()
            .bucket("misc")
            .tagging(tagging(&fifty_one))
            .send()
            .await,
        400,
        "InvalidTag",
    );
    assert_eq!(
        c.get_bucket_tagging()
            .bucket("misc")
            .send()
            .await
            .unwrap()
            .tag_set()
            .len(),
        50
    );
    c.delete_bucket_tagging()
        .bucket("misc")
        .send()
        .await
        .unwrap();
    expect_err(
        c.get_bucket_tagging().bucket("misc").send().await,
        404,
        "NoSuchTagSet",
    );
    expect_err(
        c.get_bucket_tagging().bucket("nope-bucket").send().await,
        404,
        "NoSuchBucket",
    );
    // Bucket tags are not object tags.
    put(&c, "misc", "k", b"x").await;
    c.put_bucket_tagging()
        .bucket("misc")
        .tagging(tagging(&tags))
        .send()
        .await
        .unwrap();
    assert!(object_tags(&c, "k").await.is_empty());
}

#[tokio::test]
async fn list_object_versions_of_an_unversioned_bucket() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("misc").send().await.unwrap();
    let keys = ["a", "b/1", "b/2", "c", "d"];
    for (i, k) in keys.iter().enumerate() {
        put(&c, "misc", k, &data(100 + i, i as u64)).await;
    }
    let all = c
        .list_object_versions()
        .bucket("misc")
        .send()
        .await
        .unwrap();
    assert_eq!(all.is_truncated(), Some(false));
    assert!(all.delete_markers().is_empty());
    let listed: Vec<&str> = all.versions().iter().map(|v| v.key().unwrap()).collect();
    assert_eq!(listed, keys);
    for (i, v) in all.versions().iter().enumerate() {
        assert_eq!(v.version_id(), Some("null"), "{:?}", v.key());
        assert_eq!(v.is_latest(), Some(true), "{:?}", v.key());
        assert_eq!(v.size(), Some(100 + i as i64));
        let want = etag_of(&data(100 + i, i as u64));
        assert_eq!(v.e_tag(), Some(want.as_str()));
        assert!(v.last_modified().is_some());
    }

    // Pages of two, resumed at the key marker.
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    for page in 0.. {
        assert!(page < 5, "listing did not end");
        let out = c
            .list_object_versions()
            .bucket("misc")
            .max_keys(2)
            .set_key_marker(marker.clone())
            .send()
            .await
            .unwrap();
        assert!(out.versions().len() <= 2);
        seen.extend(out.versions().iter().map(|v| v.key().unwrap().to_string()));
        if out.is_truncated() != Some(true) {
            break;
        }
        assert_eq!(out.next_version_id_marker(), Some("null"));
        marker = out.next_key_marker().map(str::to_string);
        assert!(marker.is_some());
    }
    assert_eq!(seen, keys);
    let after = c
        .list_object_versions()
        .bucket("misc")
        .key_marker("b/2")
        .send()
        .await
        .unwrap();
    let listed: Vec<&str> = after.versions().iter().map(|v| v.key().unwrap()).collect();
    assert_eq!(listed, ["c", "d"]);

    let top = c
        .list_object_versions()
        .bucket("misc")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let listed: Vec<&str> = top.versions().iter().map(|v| v.key().unwrap()).collect();
    assert_eq!(listed, ["a", "c", "d"]);
    let prefixes: Vec<&str> = top
        .common_prefixes()
        .iter()
        .map(|p| p.prefix().unwrap())
        .collect();
    assert_eq!(prefixes, ["b/"]);
    expect_err(
        c.list_object_versions().bucket("nope-bucket").send().await,
        404,
        "NoSuchBucket",
    );
}

#[tokio::test]
async fn bucket_versioning_is_never_enabled() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("misc").send().await.unwrap();
    let v = c
        .get_bucket_versioning()
        .bucket("misc")
        .send()
        .await
        .unwrap();
    assert_eq!(v.status(), None);
    assert_eq!(v.mfa_delete(), None);
    let r = signed(&gw, "GET", "/misc?versioning", &[], b"").await;
    assert_eq!(r.status, 200);
    assert!(
        xml_all(&r.body_text(), "Status").is_empty(),
        "{}",
        r.body_text()
    );
    assert!(r.body_text().contains("VersioningConfiguration"));
    expect_err(
        c.get_bucket_versioning().bucket("nope-bucket").send().await,
        404,
        "NoSuchBucket",
    );
}

#[tokio::test]
async fn acls_answer_the_owners_full_control() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("misc").send().await.unwrap();
    put(&c, "misc", "k", b"x").await;
    let bucket = c.get_bucket_acl().bucket("misc").send().await.unwrap();
    let object = c
        .get_object_acl()
        .bucket("misc")
        .key("k")
        .send()
        .await
        .unwrap();
    for (what, owner, grants) in [
        ("bucket", bucket.owner(), bucket.grants()),
        ("object", object.owner(), object.grants()),
    ] {
        let owner_id = owner.and_then(|o| o.id()).expect("owner id");
        assert!(!owner_id.is_empty(), "{what}");
        assert_eq!(grants.len(), 1, "{what}: {grants:?}");
        let grantee = grants[0].grantee().expect("grantee");
        assert_eq!(grantee.r#type(), &Type::CanonicalUser, "{what}");
        assert_eq!(grantee.id(), Some(owner_id), "{what}");
        assert_eq!(
            grants[0].permission(),
            Some(&Permission::FullControl),
            "{what}"
        );
    }
    expect_err(
        c.get_object_acl().bucket("misc").key("nope").send().await,
        404,
        "NoSuchKey",
    );
    expect_err(
        c.get_bucket_acl().bucket("nope-bucket").send().await,
        404,
        "NoSuchBucket",
    );
    // Setting an ACL: only the owner-only one, which changes nothing, is accepted.
    use aws_sdk_s3::types::{
        AccessControlPolicy, BucketCannedAcl, Grant, Grantee, ObjectCannedAcl, Owner,
    };
    c.put_bucket_acl()
        .bucket("misc")
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .unwrap();
    c.put_object_acl()
        .bucket("misc")
        .key("k")
        .acl(ObjectCannedAcl::BucketOwnerFullControl)
        .send()
        .await
        .unwrap();
    let owner_id = bucket.owner().and_then(|o| o.id()).unwrap().to_string();
    let grant = |id: Option<&str>, uri: Option<&str>, permission: Permission| {
        Grant::builder()
            .grantee(
                Grantee::builder()
                    .r#type(if uri.is_some() {
                        Type::Group
                    } else {
                        Type::CanonicalUser
                    })
                    .set_id(id.map(str::to_string))
                    .set_uri(uri.map(str::to_string))
                    .build()
                    .unwrap(),
            )
            .permission(permission)
            .build()
    };
    let policy = |grants: Vec<Grant>| {
        AccessControlPolicy::builder()
            .owner(Owner::builder().id(&owner_id).build())
            .set_grants(Some(grants))
            .build()
    };
    c.put_object_acl()
        .bucket("misc")
        .key("k")
        .access_control_policy(policy(vec![grant(
            Some(&owner_id),
            None,
            Permission::FullControl,
        )]))
        .send()
        .await
        .unwrap();
    let all_users = "http://acs.amazonaws.com/groups/global/AllUsers";
    for grants in [
        vec![
            grant(Some(&owner_id), None, Permission::FullControl),
            grant(None, Some(all_users), Permission::Read),
        ],
        vec![grant(Some(&owner_id), None, Permission::Read)],
        vec![grant(Some("someone-else"), None, Permission::FullControl)],
    ] {
        expect_err(
            c.put_bucket_acl()
                .bucket("misc")
                .access_control_policy(policy(grants))
                .send()
                .await,
            400,
            "AccessControlListNotSupported",
        );
    }
    for acl in [
        ObjectCannedAcl::PublicRead,
        ObjectCannedAcl::AuthenticatedRead,
    ] {
        expect_err(
            c.put_object_acl()
                .bucket("misc")
                .key("k")
                .acl(acl)
                .send()
                .await,
            400,
            "AccessControlListNotSupported",
        );
    }
    expect_err(
        c.put_object_acl()
            .bucket("misc")
            .key("k")
            .grant_read("id=someone")
            .send()
            .await,
        400,
        "AccessControlListNotSupported",
    );
    expect_err(
        c.put_object_acl()
            .bucket("misc")
            .key("nope")
            .acl(ObjectCannedAcl::Private)
            .send()
            .await,
        404,
        "NoSuchKey",
    );
    let r = signed(&gw, "PUT", "/misc/k?acl", &[], b"").await;
    assert_eq!(r.status, 400, "{}", r.body_text());
    assert_eq!(r.code().as_deref(), Some("MissingSecurityHeader"));
    // Still the owner's FULL_CONTROL alone.
    let after = c
        .get_object_acl()
        .bucket("misc")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(after.grants().len(), 1);
}

/// Base64 HMAC-SHA1 of `string_to_sign` under the test secret.
fn sigv2(string_to_sign: &str) -> String {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, SECRET_KEY.as_bytes());
    base64(hmac::sign(&key, string_to_sign.as_bytes()).as_ref())
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A SigV2 presigned GET URL of `path` (already percent-encoded) expiring at `expires`.
fn presigned_v2(gw: &TestGateway, path: &str, expires: u64) -> String {
    let signature = sigv2(&format!("GET\n\n\n{expires}\n{path}"));
    format!(
        "{}{path}?AWSAccessKeyId={ACCESS_KEY}&Expires={expires}&Signature={}",
        gw.endpoint(),
        encode(&signature)
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn sigv2_presigned_and_header_signed_requests() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("misc").send().await.unwrap();
    let body = data(300 * KIB, 5);
    put(&c, "misc", "dir/a b+c.bin", &body).await;
    let path = "/misc/dir/a%20b%2Bc.bin";

    let url = presigned_v2(&gw, path, now_secs() + 300);
    let r = raw::fetch_url(gw.addr(), "GET", &url, &[], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_bytes(&r.body, &body, "SigV2 presigned GET");

    // Expired, tampered with, or for another object: refused.
    let expired = presigned_v2(&gw, path, now_secs() - 10);
    let r = raw::fetch_url(gw.addr(), "GET", &expired, &[], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body_text());
    assert_eq!(r.code().as_deref(), Some("AccessDenied"));
    let other = url.replace("a%20b%2Bc.bin", "other.bin");
    let r = raw::fetch_url(gw.addr(), "GET", &other, &[], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body_text());
    assert_eq!(r.code().as_deref(), Some("SignatureDoesNotMatch"));
    let bad_secret_sig = {
        use aws_lc_rs::hmac;
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, b"not the secret");
        let expires = now_secs() + 300;
        let sig =
            base64(hmac::sign(&key, format!("GET\n\n\n{expires}\n{path}").as_bytes()).as_ref());
        format!(
            "{}{path}?AWSAccessKeyId={ACCESS_KEY}&Expires={expires}&Signature={}",
            gw.endpoint(),
            encode(&sig)
        )
    };
    let r = raw::fetch_url(gw.addr(), "GET", &bad_secret_sig, &[], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(r.code().as_deref(), Some("SignatureDoesNotMatch"));

    // Header auth: `Authorization: AWS key:signature` over the Date header.
    let date = http_date(now_secs() as i64);
    let signature = sigv2(&format!("GET\n\n\n{date}\n{path}"));
    let headers = vec![
        ("host".to_string(), gw.addr().to_string()),
        ("date".to_string(), date.clone()),
        (
            "authorization".to_string(),
            format!("AWS {ACCESS_KEY}:{signature}"),
        ),
        ("connection".to_string(), "close".to_string()),
    ];
    let r = raw::send(gw.addr(), &raw::head("GET", path, &headers), false)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_bytes(&r.body, &body, "SigV2 header-signed GET");

    // A SigV2 PUT with a Content-Type and an x-amz-meta header in the string to sign.
    let put_body = b"written with sigv2";
    let string_to_sign = format!("PUT\n\ntext/plain\n{date}\nx-amz-meta-who:v2\n/misc/v2-object");
    let headers = vec![
        ("host".to_string(), gw.addr().to_string()),
        ("date".to_string(), date),
        ("content-type".to_string(), "text/plain".to_string()),
        ("x-amz-meta-who".to_string(), "v2".to_string()),
        ("content-length".to_string(), put_body.len().to_string()),
        (
            "authorization".to_string(),
            format!("AWS {ACCESS_KEY}:{}", sigv2(&string_to_sign)),
        ),
        ("connection".to_string(), "close".to_string()),
    ];
    let mut req = raw::head("PUT", "/misc/v2-object", &headers);
    req.extend_from_slice(put_body);
    let r = raw::send(gw.addr(), &req, false).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body_text());
    let head = c
        .head_object()
        .bucket("misc")
        .key("v2-object")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(
        head.metadata().unwrap().get("who").map(String::as_str),
        Some("v2")
    );
    assert_eq!(get(&c, "misc", "v2-object").await, put_body);
}

/// Write headers whose meaning the gateway does not provide are refused, and nothing is
/// stored: a client asking for object lock, SSE-C, SSE-KMS, a public ACL or another storage
/// class must not get an object that silently lacks it. What it does provide is accepted.
#[tokio::test]
async fn writes_asking_for_what_is_not_provided_are_refused_and_store_nothing() {
    use aws_sdk_s3::primitives::DateTime;
    use aws_sdk_s3::types::{ObjectCannedAcl, ObjectLockMode, ServerSideEncryption, StorageClass};
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("refuse").send().await.unwrap();
    let put = || {
        c.put_object()
            .bucket("refuse")
            .key("k")
            .body(ByteStream::from_static(b"data"))
    };
    let until = DateTime::from_secs(4_102_444_800);
    expect_err(
        put()
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(until)
            .send()
            .await,
        400,
        "InvalidRequest",
    );
    expect_err(
        put().acl(ObjectCannedAcl::PublicRead).send().await,
        400,
        "AccessControlListNotSupported",
    );
    expect_err(
        put()
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .send()
            .await,
        501,
        "NotImplemented",
    );
    expect_err(
        put().storage_class(StorageClass::Glacier).send().await,
        400,
        "InvalidStorageClass",
    );
    expect_err(
        c.create_multipart_upload()
            .bucket("refuse")
            .key("k")
            .sse_customer_algorithm("AES256")
            .sse_customer_key("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
            .sse_customer_key_md5("zZ5FnqcIqUjVwvWmyog4zw==")
            .send()
            .await,
        501,
        "NotImplemented",
    );
    expect_status(c.head_object().bucket("refuse").key("k").send().await, 404);
    let uploads = c
        .list_multipart_uploads()
        .bucket("refuse")
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty());

    // What it provides: the owner-only ACL, encryption at rest, the one storage class.
    put()
        .acl(ObjectCannedAcl::Private)
        .server_side_encryption(ServerSideEncryption::Aes256)
        .storage_class(StorageClass::Standard)
        .send()
        .await
        .unwrap();
    assert_eq!(get(&c, "refuse", "k").await, b"data");
    expect_err(
        c.copy_object()
            .bucket("refuse")
            .key("copy")
            .copy_source("refuse/k")
            .object_lock_legal_hold_status(aws_sdk_s3::types::ObjectLockLegalHoldStatus::On)
            .send()
            .await,
        400,
        "InvalidRequest",
    );
    expect_status(
        c.head_object().bucket("refuse").key("copy").send().await,
        404,
    );
}
