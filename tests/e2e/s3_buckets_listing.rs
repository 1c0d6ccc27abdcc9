//! End-to-end bucket operations and listings: CreateBucket, HeadBucket, DeleteBucket,
//! GetBucketLocation, ListBuckets and their errors; ListObjects v1 and v2 compared page by page
//! with a reference listing computed here from the key set (prefix, delimiters, markers,
//! continuation tokens, max-keys, byte order, `encoding-type=url`); DeleteObjects.

use std::collections::BTreeSet;

use crate::harness::s3x::status_code;
use crate::harness::{raw, TestGateway};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, EncodingType, ObjectIdentifier};
use aws_sdk_s3::Client;

macro_rules! assert_s3_err {
    ($result:expr, $status:expr, $code:expr) => {{
        let e = $result.expect_err("expected an error");
        let (status, code) = status_code(&e);
        assert_eq!(status, Some($status), "{e:?}");
        if let Some(c) = $code {
            assert_eq!(code.as_deref(), Some(c), "{e:?}");
        }
    }};
}

#[tokio::test]
async fn bucket_lifecycle_and_errors() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    for b in ["zeta-bucket", "alpha.bucket", "m1d-bucket"] {
        c.create_bucket().bucket(b).send().await.unwrap();
    }
    c.head_bucket().bucket("alpha.bucket").send().await.unwrap();
    let loc = c
        .get_bucket_location()
        .bucket("alpha.bucket")
        .send()
        .await
        .unwrap();
    // us-east-1 is the empty LocationConstraint on AWS.
    assert_eq!(
        loc.location_constraint().map(|l| l.as_str()).unwrap_or(""),
        ""
    );
    let listed = c.list_buckets().send().await.unwrap();
    let names: Vec<&str> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["alpha.bucket", "m1d-bucket", "zeta-bucket"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for b in listed.buckets() {
        let created = b.creation_date().expect("creation date").secs();
        assert!((now - 60..=now + 1).contains(&created), "{b:?}");
    }

    // Re-creating a bucket you own: 200 in us-east-1 (AWS's legacy answer, and this
    // gateway's region), BucketAlreadyOwnedByYou when another region is asked for.
    c.create_bucket()
        .bucket("alpha.bucket")
        .send()
        .await
        .unwrap();
    assert_s3_err!(
        c.create_bucket()
            .bucket("alpha.bucket")
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                    .build()
            )
            .send()
            .await,
        409,
        Some("BucketAlreadyOwnedByYou")
    );
    let again = c.list_buckets().send().await.unwrap();
    assert_eq!(again.buckets().len(), 3);
    for bad in [
        "ab",
        "UPPERCASE",
        "under_score",
        "-leading-dash",
        "trailing-dash-",
        "double..dot",
        "192.168.5.4",
        "xn--punycode",
        &"x".repeat(64),
    ] {
        assert_s3_err!(
            c.create_bucket().bucket(bad).send().await,
            400,
            Some("InvalidBucketName")
        );
    }

    let missing = "no-such-bucket";
    assert_s3_err!(
        c.get_object().bucket(missing).key("k").send().await,
        404,
        Some("NoSuchBucket")
    );
    assert_s3_err!(
        c.put_object()
            .bucket(missing)
            .key("k")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        404,
        Some("NoSuchBucket")
    );
    assert_s3_err!(
        c.list_objects().bucket(missing).send().await,
        404,
        Some("NoSuchBucket")
    );
    assert_s3_err!(
        c.list_objects_v2().bucket(missing).send().await,
        404,
        Some("NoSuchBucket")
    );
    assert_s3_err!(
        c.get_bucket_location().bucket(missing).send().await,
        404,
        Some("NoSuchBucket")
    );
    assert_s3_err!(
        c.delete_bucket().bucket(missing).send().await,
        404,
        Some("NoSuchBucket")
    );
    // HEAD carries no body, so only the status says why.
    assert_s3_err!(c.head_bucket().bucket(missing).send().await, 404, None);
    assert_s3_err!(
        c.head_object().bucket(missing).key("k").send().await,
        404,
        None
    );

    c.put_object()
        .bucket("m1d-bucket")
        .key("keep")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    assert_s3_err!(
        c.delete_bucket().bucket("m1d-bucket").send().await,
        409,
        Some("BucketNotEmpty")
    );
    c.head_object()
        .bucket("m1d-bucket")
        .key("keep")
        .send()
        .await
        .unwrap();
    c.delete_object()
        .bucket("m1d-bucket")
        .key("keep")
        .send()
        .await
        .unwrap();
    let r = raw::signed(gw.addr(), "DELETE", "/m1d-bucket", &[], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.body_text());
    assert_s3_err!(c.head_bucket().bucket("m1d-bucket").send().await, 404, None);
    let names: Vec<String> = c
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_string))
        .collect();
    assert_eq!(names, ["alpha.bucket", "zeta-bucket"]);
    // The name is free again.
    c.create_bucket().bucket("m1d-bucket").send().await.unwrap();
    let list = c
        .list_objects_v2()
        .bucket("m1d-bucket")
        .send()
        .await
        .unwrap();
    assert_eq!(list.key_count(), Some(0));
}

/// One entry of a listing, in the order S3 returns them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Entry {
    Key(String),
    Prefix(String),
}

impl Entry {
    fn name(&self) -> &str {
        match self {
            Entry::Key(k) | Entry::Prefix(k) => k,
        }
    }
}

/// What a complete listing must contain, computed from the key set: keys under `prefix`
/// in byte order, those whose remainder contains `delim` rolled up into one common prefix.
fn reference(keys: &BTreeSet<String>, prefix: &str, delim: Option<&str>) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for k in keys.iter().filter(|k| k.starts_with(prefix)) {
        let rest = &k[prefix.len()..];
        let e = match delim.and_then(|d| rest.find(d).map(|i| i + d.len())) {
            Some(end) => Entry::Prefix(format!("{prefix}{}", &rest[..end])),
            None => Entry::Key(k.clone()),
        };
        if out.last() != Some(&e) {
            out.push(e);
        }
    }
    out
}

/// Keys and common prefixes merged into listing order (by bytes).
fn merge(keys: Vec<String>, prefixes: Vec<String>) -> Vec<Entry> {
    let mut v: Vec<Entry> = keys
        .into_iter()
        .map(Entry::Key)
        .chain(prefixes.into_iter().map(Entry::Prefix))
        .collect();
    v.sort_by(|a, b| a.name().cmp(b.name()));
    v
}

struct Page {
    entries: Vec<Entry>,
    truncated: bool,
    next: Option<String>,
}

async fn list_v1(
    c: &Client,
    bucket: &str,
    prefix: &str,
    delim: Option<&str>,
    max_keys: i32,
    marker: Option<&str>,
) -> Page {
    let out = c
        .list_objects()
        .bucket(bucket)
        .prefix(prefix)
        .set_delimiter(delim.map(str::to_string))
        .max_keys(max_keys)
        .set_marker(marker.map(str::to_string))
        .send()
        .await
        .unwrap_or_else(|e| panic!("v1 {prefix:?} {delim:?} {max_keys} {marker:?}: {e:?}"));
    assert_eq!(out.max_keys(), Some(max_keys));
    assert_eq!(out.prefix().unwrap_or(""), prefix);
    assert_eq!(out.marker().unwrap_or(""), marker.unwrap_or(""));
    assert_eq!(out.delimiter(), delim);
    Page {
        entries: merge(
            out.contents()
                .iter()
                .map(|o| o.key().unwrap().to_string())
                .collect(),
            out.common_prefixes()
                .iter()
                .map(|p| p.prefix().unwrap().to_string())
                .collect(),
        ),
        truncated: out.is_truncated().unwrap_or(false),
        next: out.next_marker().map(str::to_string),
    }
}

async fn list_v2(
    c: &Client,
    bucket: &str,
    prefix: &str,
    delim: Option<&str>,
    max_keys: i32,
    token: Option<&str>,
    start_after: Option<&str>,
) -> Page {
    let out = c
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .set_delimiter(delim.map(str::to_string))
        .max_keys(max_keys)
        .set_continuation_token(token.map(str::to_string))
        .set_start_after(start_after.map(str::to_string))
        .send()
        .await
        .unwrap_or_else(|e| panic!("v2 {prefix:?} {delim:?} {max_keys} {token:?}: {e:?}"));
    assert_eq!(out.max_keys(), Some(max_keys));
    assert_eq!(out.prefix().unwrap_or(""), prefix);
    assert_eq!(out.delimiter(), delim);
    assert_eq!(out.continuation_token(), token);
    assert_eq!(out.start_after(), start_after);
    let entries = merge(
        out.contents()
            .iter()
            .map(|o| o.key().unwrap().to_string())
            .collect(),
        out.common_prefixes()
            .iter()
            .map(|p| p.prefix().unwrap().to_string())
            .collect(),
    );
    assert_eq!(out.key_count(), Some(entries.len() as i32));
    Page {
        entries,
        truncated: out.is_truncated().unwrap_or(false),
        next: out.next_continuation_token().map(str::to_string),
    }
}

/// Walks a v1 listing page by page and checks every page against `want`.
async fn walk_v1(
    c: &Client,
    bucket: &str,
    prefix: &str,
    delim: Option<&str>,
    max_keys: usize,
    want: &[Entry],
) {
    let ctx = format!("v1 prefix={prefix:?} delimiter={delim:?} max-keys={max_keys}");
    let mut got: Vec<Entry> = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..=want.len() + 1 {
        let p = list_v1(c, bucket, prefix, delim, max_keys as i32, marker.as_deref()).await;
        let expected_len = (want.len() - got.len()).min(max_keys);
        assert_eq!(p.entries.len(), expected_len, "{ctx}: page size");
        got.extend(p.entries.iter().cloned());
        assert_eq!(p.truncated, got.len() < want.len(), "{ctx}: IsTruncated");
        if !p.truncated {
            // NextMarker only accompanies a truncated listing.
            assert_eq!(p.next, None, "{ctx}");
            break;
        }
        let last = p.entries.last().expect("a truncated page is not empty");
        marker = Some(match delim {
            // AWS returns NextMarker only when a delimiter was given.
            Some(_) => {
                assert_eq!(p.next.as_deref(), Some(last.name()), "{ctx}: NextMarker");
                p.next.clone().unwrap()
            }
            None => {
                assert_eq!(p.next, None, "{ctx}: NextMarker without delimiter");
                last.name().to_string()
            }
        });
    }
    assert_eq!(got, want, "{ctx}");
}

/// Walks a v2 listing with continuation tokens and checks every page against `want`.
async fn walk_v2(
    c: &Client,
    bucket: &str,
    prefix: &str,
    delim: Option<&str>,
    max_keys: usize,
    want: &[Entry],
) {
    let ctx = format!("v2 prefix={prefix:?} delimiter={delim:?} max-keys={max_keys}");
    let mut got: Vec<Entry> = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..=want.len() + 1 {
        let p = list_v2(
            c,
            bucket,
            prefix,
            delim,
            max_keys as i32,
            token.as_deref(),
            None,
        )
        .await;
        let expected_len = (want.len() - got.len()).min(max_keys);
        assert_eq!(p.entries.len(), expected_len, "{ctx}: page size");
        got.extend(p.entries.iter().cloned());
        assert_eq!(p.truncated, got.len() < want.len(), "{ctx}: IsTruncated");
        if !p.truncated {
            assert_eq!(p.next, None, "{ctx}: NextContinuationToken");
            break;
        }
        token = Some(p.next.clone().expect("truncated page without a token"));
    }
    assert_eq!(got, want, "{ctx}");

    // The SDK's paginator walks the same listing.
    let mut pages = c
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .set_delimiter(delim.map(str::to_string))
        .max_keys(max_keys as i32)
        .into_paginator()
        .send();
    let mut via_paginator: Vec<Entry> = Vec::new();
    let mut count = 0;
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        count += 1;
        assert!(count <= want.len() + 1, "{ctx}: paginator does not end");
        via_paginator.extend(merge(
            page.contents()
                .iter()
                .map(|o| o.key().unwrap().to_string())
                .collect(),
            page.common_prefixes()
                .iter()
                .map(|p| p.prefix().unwrap().to_string())
                .collect(),
        ));
    }
    assert_eq!(via_paginator, want, "{ctx}: paginator");
}

const LISTING_KEYS: &[&str] = &[
    "B",
    "a",
    "a/b",
    "a0",
    "aé",
    "photos/2023/jan/1.jpg",
    "photos/2023/jan/2.jpg",
    "photos/2023/feb/1.jpg",
    "photos/2024/mar/x.jpg",
    "photos/readme",
    "photos/",
    "docs/a b.txt",
    "docs/a+b.txt",
    "docs/100%.txt",
    "docs/日本語/ファイル",
    "docs/über",
    "docs/x&y<z>",
    "log-2024-01",
    "log-2024-02",
    "log-2025-01",
    "logs",
    "tilde~key",
    "emoji-😀",
    "x/y/z",
    "x-y-z",
    "z",
    "zz/",
    "zz//double",
];

async fn bucket_with_listing_keys(gw: &TestGateway, bucket: &str) -> BTreeSet<String> {
    let c = gw.client();
    c.create_bucket().bucket(bucket).send().await.unwrap();
    for k in LISTING_KEYS {
        c.put_object()
            .bucket(bucket)
            .key(*k)
            .body(ByteStream::from(k.as_bytes().to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {k:?}: {e:?}"));
    }
    LISTING_KEYS.iter().map(|k| k.to_string()).collect()
}

const QUERIES: &[(&str, Option<&str>)] = &[
    ("", None),
    ("", Some("/")),
    ("photos/", Some("/")),
    ("photos/2023/", Some("/")),
    ("photos", Some("/")),
    ("docs/", Some("/")),
    ("", Some("-")),
    ("log-", Some("-")),
    ("a", None),
    ("a", Some("/")),
    ("zz/", Some("/")),
    ("", Some("/20")),
    ("photos/", Some("2")),
    ("nomatch", None),
    ("nomatch", Some("/")),
];

#[tokio::test]
async fn listings_match_the_reference_page_by_page() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    let keys = bucket_with_listing_keys(&gw, "listing").await;
    for (prefix, delim) in QUERIES {
        let want = reference(&keys, prefix, *delim);
        // Everything in one page.
        let p = list_v1(&c, "listing", prefix, *delim, 1000, None).await;
        assert_eq!(p.entries, want, "v1 {prefix:?} {delim:?}");
        assert!(!p.truncated);
        let p = list_v2(&c, "listing", prefix, *delim, 1000, None, None).await;
        assert_eq!(p.entries, want, "v2 {prefix:?} {delim:?}");
        assert!(!p.truncated);
        for max_keys in [1, 2, 7] {
            walk_v1(&c, "listing", prefix, *delim, max_keys, &want).await;
            walk_v2(&c, "listing", prefix, *delim, max_keys, &want).await;
        }
    }
    // Without max-keys, a page holds up to 1000.
    let out = c.list_objects_v2().bucket("listing").send().await.unwrap();
    assert_eq!(out.max_keys(), Some(1000));
    assert_eq!(out.key_count(), Some(keys.len() as i32));
}

#[tokio::test]
async fn listing_is_in_byte_order() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    let keys = bucket_with_listing_keys(&gw, "order").await;
    let p = list_v2(&c, "order", "", None, 1000, None, None).await;
    let names: Vec<&str> = p.entries.iter().map(Entry::name).collect();
    // Uppercase before lowercase, '/' (0x2F) before '0' (0x30), and UTF-8 after ASCII.
    assert_eq!(names[..5], ["B", "a", "a/b", "a0", "aé"]);
    let mut sorted: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
    sorted.sort();
    let got: Vec<&[u8]> = names.iter().map(|k| k.as_bytes()).collect();
    assert_eq!(got, sorted);
}

#[tokio::test]
async fn markers_and_start_after_resume_strictly_after() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    let keys = bucket_with_listing_keys(&gw, "resume").await;
    let all = reference(&keys, "", None);
    let mut starts: Vec<String> = keys.iter().cloned().collect();
    // Also points that are not keys: before everything, between keys, after everything.
    starts.extend(["0".into(), "a/a".into(), "docs/b".into(), "zzz".into()]);
    for s in &starts {
        let want: Vec<Entry> = all
            .iter()
            .filter(|e| e.name() > s.as_str())
            .cloned()
            .collect();
        let v1 = list_v1(&c, "resume", "", None, 1000, Some(s)).await;
        assert_eq!(v1.entries, want, "marker {s:?}");
        let v2 = list_v2(&c, "resume", "", None, 1000, None, Some(s)).await;
        assert_eq!(v2.entries, want, "start-after {s:?}");
    }
    // start-after with a delimiter, at a key outside any common prefix.
    let with_delim = reference(&keys, "", Some("/"));
    let v2 = list_v2(&c, "resume", "", Some("/"), 1000, None, Some("logs")).await;
    let want: Vec<Entry> = with_delim
        .iter()
        .filter(|e| e.name() > "logs")
        .cloned()
        .collect();
    assert_eq!(v2.entries, want);
    // A continuation token wins over start-after.
    let first = list_v2(&c, "resume", "", None, 3, None, Some("a")).await;
    assert_eq!(first.entries, all[2..5]);
    let token = first.next.expect("token");
    let second = list_v2(&c, "resume", "", None, 3, Some(&token), Some("a")).await;
    assert_eq!(second.entries, all[5..8]);
    // A token that is not one of ours is refused.
    assert_s3_err!(
        c.list_objects_v2()
            .bucket("resume")
            .continuation_token("not a token")
            .send()
            .await,
        400,
        Some("InvalidArgument")
    );
}

#[tokio::test]
async fn max_keys_zero_returns_an_empty_untruncated_page() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    bucket_with_listing_keys(&gw, "zero").await;
    // As on AWS (pinned by ceph/s3-tests test_bucket_list_maxkeys_zero and
    // test_bucket_listv2_maxkeys_zero): no entries, IsTruncated false, nothing to continue.
    let v1 = list_v1(&c, "zero", "", None, 0, None).await;
    assert!(v1.entries.is_empty());
    assert!(!v1.truncated, "v1 max-keys=0 reported IsTruncated=true");
    assert_eq!(v1.next, None);
    let v2 = list_v2(&c, "zero", "", Some("/"), 0, None, None).await;
    assert!(v2.entries.is_empty());
    assert!(!v2.truncated, "v2 max-keys=0 reported IsTruncated=true");
    assert_eq!(v2.next, None);
}

#[tokio::test]
async fn max_keys_zero_on_an_empty_bucket_and_bad_max_keys() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("empty").send().await.unwrap();
    let v1 = list_v1(&c, "empty", "", None, 0, None).await;
    assert!(v1.entries.is_empty() && !v1.truncated);
    let v2 = list_v2(&c, "empty", "", None, 0, None, None).await;
    assert!(v2.entries.is_empty() && !v2.truncated);
    // A negative max-keys is an InvalidArgument (raw, since the SDK passes it through anyway).
    let r = raw::signed(gw.addr(), "GET", "/empty?list-type=2&max-keys=-1", &[], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.body_text());
    assert_eq!(r.code().as_deref(), Some("InvalidArgument"));
}

/// S3's `encoding-type=url` form: every byte outside `A-Za-z0-9-._~/` as `%XX`.
fn s3_url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Texts of every `<tag>` element, XML entities decoded.
fn elements(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let j = after.find(&close).expect("unclosed element");
        out.push(
            after[..j]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[j + close.len()..];
    }
    out
}

#[tokio::test]
async fn encoding_type_url_percent_encodes_keys_and_prefixes() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    let keys = bucket_with_listing_keys(&gw, "enc").await;
    let docs: Vec<String> = keys
        .iter()
        .filter(|k| k.starts_with("docs/"))
        .cloned()
        .collect();

    // Raw, so the XML is seen exactly as sent. Query values are percent-encoded here.
    let target = "/enc?list-type=2&encoding-type=url&prefix=docs%2F";
    let r = raw::signed(gw.addr(), "GET", target, &[], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body_text());
    let xml = r.body_text();
    let want: Vec<String> = docs.iter().map(|k| s3_url_encode(k)).collect();
    assert_eq!(elements(&xml, "Key"), want);
    assert!(want.contains(&"docs/a%20b.txt".to_string()));
    assert!(want.contains(&"docs/a%2Bb.txt".to_string()));
    assert!(want.contains(&"docs/100%25.txt".to_string()));
    assert!(want.contains(&"docs/%C3%BCber".to_string()));
    assert_eq!(elements(&xml, "EncodingType"), ["url"]);

    // Common prefixes and the echoed prefix are encoded too; v1 as well.
    let target = "/enc?encoding-type=url&prefix=docs%2F%E6%97%A5&delimiter=%2F";
    let r = raw::signed(gw.addr(), "GET", target, &[], b"")
        .await
        .unwrap();
    let xml = r.body_text();
    assert_eq!(r.status, 200, "{xml}");
    assert_eq!(
        elements(&xml, "Prefix"),
        ["docs/%E6%97%A5", "docs/%E6%97%A5%E6%9C%AC%E8%AA%9E/"]
    );
    assert!(elements(&xml, "Key").is_empty());

    // Without encoding-type the keys come back verbatim (XML-escaped only).
    let r = raw::signed(
        gw.addr(),
        "GET",
        "/enc?list-type=2&prefix=docs%2F",
        &[],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(elements(&r.body_text(), "Key"), docs);
    assert!(r.body_text().contains("docs/x&amp;y&lt;z&gt;"));

    // Through the SDK: encoded keys decode back to the stored ones.
    let out = c
        .list_objects_v2()
        .bucket("enc")
        .prefix("docs/")
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .unwrap();
    let got: Vec<String> = out
        .contents()
        .iter()
        .map(|o| percent_decode(o.key().unwrap()))
        .collect();
    assert_eq!(got, docs);
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn ids(keys: &[String]) -> Delete {
    Delete::builder()
        .set_objects(Some(
            keys.iter()
                .map(|k| ObjectIdentifier::builder().key(k).build().unwrap())
                .collect(),
        ))
        .build()
        .unwrap()
}

#[tokio::test]
async fn delete_objects_quiet_and_verbose() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("multi").send().await.unwrap();
    let present: Vec<String> = (0..40).map(|i| format!("obj/{i:04}")).collect();
    for k in &present {
        c.put_object()
            .bucket("multi")
            .key(k)
            .body(ByteStream::from(k.as_bytes().to_vec()))
            .send()
            .await
            .unwrap();
    }

    // Verbose: every key, present or missing, is reported deleted.
    let mut batch: Vec<String> = present[..10].to_vec();
    batch.push("obj/missing".into());
    let out = c
        .delete_objects()
        .bucket("multi")
        .delete(ids(&batch))
        .send()
        .await
        .unwrap();
    let mut deleted: Vec<String> = out
        .deleted()
        .iter()
        .map(|d| d.key().unwrap().to_string())
        .collect();
    deleted.sort();
    let mut want = batch.clone();
    want.sort();
    assert_eq!(deleted, want);
    assert!(out.errors().is_empty(), "{:?}", out.errors());

    // Quiet: successes are not listed.
    let quiet = Delete::builder()
        .set_objects(ids(&present[10..20]).objects.into())
        .quiet(true)
        .build()
        .unwrap();
    let out = c
        .delete_objects()
        .bucket("multi")
        .delete(quiet)
        .send()
        .await
        .unwrap();
    assert!(out.deleted().is_empty(), "{:?}", out.deleted());
    assert!(out.errors().is_empty(), "{:?}", out.errors());

    // Per-key failures are reported as errors, the rest still deleted.
    let bad_version = Delete::builder()
        .objects(
            ObjectIdentifier::builder()
                .key(&present[20])
                .version_id("v-not-null")
                .build()
                .unwrap(),
        )
        .objects(
            ObjectIdentifier::builder()
                .key("k".repeat(1025))
                .build()
                .unwrap(),
        )
        .objects(
            ObjectIdentifier::builder()
                .key(&present[21])
                .build()
                .unwrap(),
        )
        .quiet(true)
        .build()
        .unwrap();
    let out = c
        .delete_objects()
        .bucket("multi")
        .delete(bad_version)
        .send()
        .await
        .unwrap();
    let mut codes: Vec<(String, String)> = out
        .errors()
        .iter()
        .map(|e| (e.key().unwrap().to_string(), e.code().unwrap().to_string()))
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            ("k".repeat(1025), "KeyTooLongError".to_string()),
            (present[20].clone(), "NoSuchVersion".to_string()),
        ]
    );

    let left: Vec<String> = c
        .list_objects_v2()
        .bucket("multi")
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .map(|o| o.key().unwrap().to_string())
        .collect();
    let mut want: Vec<String> = present[20..].to_vec();
    want.retain(|k| *k != present[21]);
    assert_eq!(left, want);

    // In a missing bucket the whole request fails.
    assert_s3_err!(
        c.delete_objects()
            .bucket("no-such-bucket")
            .delete(ids(&present[..1]))
            .send()
            .await,
        404,
        Some("NoSuchBucket")
    );
}

#[tokio::test]
async fn delete_objects_takes_at_most_1000_keys() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    c.create_bucket().bucket("thousand").send().await.unwrap();
    let present: Vec<String> = (0..100).map(|i| format!("p{i:04}")).collect();
    for k in &present {
        c.put_object()
            .bucket("thousand")
            .key(k)
            .body(ByteStream::from_static(b"."))
            .send()
            .await
            .unwrap();
    }
    let mut keys: Vec<String> = present.clone();
    keys.extend((0..901).map(|i| format!("missing-{i:04}")));
    assert_eq!(keys.len(), 1001);
    assert_s3_err!(
        c.delete_objects()
            .bucket("thousand")
            .delete(ids(&keys))
            .send()
            .await,
        400,
        Some("MalformedXML")
    );
    // Nothing was deleted by the refused request.
    let listed = c.list_objects_v2().bucket("thousand").send().await.unwrap();
    assert_eq!(listed.key_count(), Some(100));

    keys.pop();
    let out = c
        .delete_objects()
        .bucket("thousand")
        .delete(ids(&keys))
        .send()
        .await
        .unwrap();
    assert_eq!(out.deleted().len(), 1000);
    assert!(out.errors().is_empty());
    let listed = c.list_objects_v2().bucket("thousand").send().await.unwrap();
    assert_eq!(listed.key_count(), Some(0));
}

/// ListBuckets pages with `max-buckets` and `continuation-token`, filters by `prefix` and
/// `bucket-region`, and refuses a bad page size or token.
#[tokio::test]
async fn list_buckets_pages_and_filters() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    let names = ["logs-a", "logs-b", "logs-c", "photos", "zz-top"];
    for b in names {
        c.create_bucket().bucket(b).send().await.unwrap();
    }
    let page = |size: i32, token: Option<String>, prefix: Option<&str>| {
        c.list_buckets()
            .max_buckets(size)
            .set_continuation_token(token)
            .set_prefix(prefix.map(str::to_string))
            .send()
    };
    for (size, prefix, want) in [
        (2, None, &names[..]),
        (1, Some("logs-"), &names[..3]),
        (10, Some("logs-"), &names[..3]),
        (3, Some("nothing"), &names[..0]),
    ] {
        let (mut seen, mut token, mut pages) = (Vec::new(), None, 0);
        loop {
            let out = page(size, token.clone(), prefix).await.unwrap();
            pages += 1;
            assert!(out.buckets().len() <= size as usize);
            assert_eq!(out.prefix(), prefix);
            seen.extend(out.buckets().iter().map(|b| b.name().unwrap().to_string()));
            token = out.continuation_token().map(str::to_string);
            if token.is_none() {
                break;
            }
            assert!(pages < 10, "no end to the pages");
        }
        assert_eq!(seen, want, "size {size}, prefix {prefix:?}");
        // A full last page still says there is no more; pages hold `size` but the last.
        assert_eq!(pages, want.len().div_ceil(size as usize).max(1));
    }
    let other = c
        .list_buckets()
        .bucket_region("eu-west-1")
        .send()
        .await
        .unwrap();
    assert!(other.buckets().is_empty());
    let here = c
        .list_buckets()
        .bucket_region("us-east-1")
        .send()
        .await
        .unwrap();
    assert_eq!(here.buckets().len(), names.len());
    for bad in [0, 10_001, -1] {
        let e = c.list_buckets().max_buckets(bad).send().await.unwrap_err();
        assert_eq!(status_code(&e), (Some(400), Some("InvalidArgument".into())));
    }
    let e = page(2, Some("Not A Token!".into()), None)
        .await
        .unwrap_err();
    assert_eq!(status_code(&e), (Some(400), Some("InvalidArgument".into())));
}
