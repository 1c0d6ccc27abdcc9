//! Multipart-upload listings (ListMultipartUploads).

use std::collections::BTreeSet;

use super::*;
use crate::meta::sqlite::list::{range_sql, uploads_page, Lower, UPLOADS};
use crate::meta::{UploadListPage, UploadListQuery, UploadRecord};

fn new_upload(bucket: &str, key: &str, upload_id: &str) -> UploadRecord {
    UploadRecord {
        upload_id: upload_id.into(),
        bucket: bucket.into(),
        key: key.into(),
        initiated_ms: 5,
        content_type: None,
        system_meta: vec![],
        user_meta: vec![],
        tags: vec![],
        checksum_algorithm: None,
        checksum_kind: None,
    }
}

fn uploads(
    meta: &SqliteMeta,
    prefix: &str,
    delimiter: Option<&str>,
    key_marker: Option<&str>,
    upload_id_marker: Option<&str>,
    max_uploads: usize,
) -> UploadListPage {
    meta.list_uploads(&UploadListQuery {
        bucket: "b",
        prefix,
        delimiter,
        key_marker,
        upload_id_marker,
        max_uploads,
    })
    .unwrap()
}

fn positions(page: &UploadListPage) -> Vec<(&str, &str)> {
    page.uploads
        .iter()
        .map(|u| (u.key.as_str(), u.upload_id.as_str()))
        .collect()
}

fn with_uploads(all: &[(&str, &str)]) -> (tempfile::TempDir, SqliteMeta) {
    let (dir, meta) = store();
    no_sync(&meta);
    meta.create_bucket("b", 0).unwrap();
    meta.create_bucket("other", 0).unwrap();
    meta.create_upload(&new_upload("other", "a/1", "x0"))
        .unwrap();
    for (key, upload_id) in all {
        meta.create_upload(&new_upload("b", key, upload_id))
            .unwrap();
    }
    (dir, meta)
}

#[test]
fn upload_listing_orders_groups_and_resumes() {
    let (_dir, meta) = with_uploads(&[
        ("b", "u5"),
        ("a/1", "u2"),
        ("é", "u7"),
        ("a/1", "u1"),
        ("c/d", "u6"),
        ("b", "u4"),
        ("a/2", "u3"),
    ]);
    let page = uploads(&meta, "", None, None, None, 100);
    assert_eq!(
        positions(&page),
        [
            ("a/1", "u1"),
            ("a/1", "u2"),
            ("a/2", "u3"),
            ("b", "u4"),
            ("b", "u5"),
            ("c/d", "u6"),
            ("é", "u7")
        ]
    );
    assert_eq!(page.uploads[0].initiated_ms, 5);
    assert!(!page.is_truncated);
    assert_eq!(page.next_key_marker.as_deref(), Some("é"));
    assert_eq!(page.next_upload_id_marker.as_deref(), Some("u7"));
    assert_eq!(
        positions(&uploads(&meta, "a/", None, None, None, 100)),
        [("a/1", "u1"), ("a/1", "u2"), ("a/2", "u3")]
    );

    let page = uploads(&meta, "", Some("/"), None, None, 100);
    assert_eq!(positions(&page), [("b", "u4"), ("b", "u5"), ("é", "u7")]);
    assert_eq!(page.common_prefixes, ["a/", "c/"]);

    // key-marker alone skips every upload of that key; with an upload-id marker, only those
    // up to it. An upload-id marker without a key marker is ignored.
    assert_eq!(
        positions(&uploads(&meta, "", None, Some("b"), None, 100)),
        [("c/d", "u6"), ("é", "u7")]
    );
    assert_eq!(
        positions(&uploads(&meta, "", None, Some("b"), Some("u4"), 100)),
        [("b", "u5"), ("c/d", "u6"), ("é", "u7")]
    );
    assert_eq!(
        positions(&uploads(&meta, "", None, Some("a/1"), Some("u0"), 2)),
        [("a/1", "u1"), ("a/1", "u2")]
    );
    assert_eq!(
        uploads(&meta, "", None, None, Some("u9"), 100)
            .uploads
            .len(),
        7
    );
    // A key marker that is (or lies inside) a returned common prefix skips the group.
    for marker in ["a/", "a/1"] {
        let page = uploads(&meta, "", Some("/"), Some(marker), Some("u1"), 100);
        assert_eq!(page.common_prefixes, ["c/"]);
        assert_eq!(positions(&page), [("b", "u4"), ("b", "u5"), ("é", "u7")]);
    }

    // Paging: the next markers continue exactly after the page.
    let page = uploads(&meta, "", Some("/"), None, None, 2);
    assert_eq!(page.common_prefixes, ["a/"]);
    assert_eq!(positions(&page), [("b", "u4")]);
    assert!(page.is_truncated);
    assert_eq!(
        (
            page.next_key_marker.as_deref(),
            page.next_upload_id_marker.as_deref()
        ),
        (Some("b"), Some("u4"))
    );
    let page = uploads(&meta, "", Some("/"), Some("b"), Some("u4"), 2);
    assert_eq!(positions(&page), [("b", "u5")]);
    assert_eq!(page.common_prefixes, ["c/"]);
    assert!(page.is_truncated);
    assert_eq!(
        (page.next_key_marker.as_deref(), page.next_upload_id_marker),
        (Some("c/"), None)
    );
    let page = uploads(&meta, "", Some("/"), Some("c/"), None, 2);
    assert_eq!(positions(&page), [("é", "u7")]);
    assert!(!page.is_truncated);

    assert_eq!(
        uploads(&meta, "", Some("/"), None, None, 0),
        UploadListPage::default()
    );
    assert!(matches!(
        meta.list_uploads(&UploadListQuery {
            bucket: "nope",
            prefix: "",
            delimiter: None,
            key_marker: None,
            upload_id_marker: None,
            max_uploads: 10,
        }),
        Err(MetaError::NoSuchBucket(_))
    ));
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Position {
    Upload(String, String),
    Prefix(String),
}

impl Position {
    fn order(&self) -> (&str, &str) {
        match self {
            Position::Upload(key, id) => (key, id),
            Position::Prefix(group) => (group, ""),
        }
    }
}

/// Brute-force ListMultipartUploads over all (key, upload id) pairs.
fn upload_reference(
    all: &BTreeSet<(String, String)>,
    prefix: &str,
    delimiter: Option<&str>,
    marker: Option<(&str, Option<&str>)>,
) -> Vec<Position> {
    let mut out: Vec<Position> = Vec::new();
    for (key, id) in all.iter().filter(|(k, _)| k.starts_with(prefix)) {
        let rest = &key[prefix.len()..];
        let entry = match delimiter.and_then(|d| rest.find(d).map(|at| (d, at))) {
            Some((d, at)) => Position::Prefix(key[..prefix.len() + at + d.len()].to_string()),
            None => Position::Upload(key.clone(), id.clone()),
        };
        if out.last() != Some(&entry) {
            out.push(entry);
        }
    }
    out.retain(|e| match (marker, e) {
        (None, _) => true,
        (Some((k, _)), Position::Prefix(g)) => g.as_str() > k,
        (Some((k, u)), Position::Upload(key, id)) => {
            key.as_str() > k || (key == k && u.is_some_and(|u| id.as_str() > u))
        }
    });
    out
}

fn upload_positions(page: &UploadListPage) -> Vec<Position> {
    let mut out: Vec<Position> = page
        .uploads
        .iter()
        .map(|u| Position::Upload(u.key.clone(), u.upload_id.clone()))
        .chain(page.common_prefixes.iter().cloned().map(Position::Prefix))
        .collect();
    out.sort_by(|a, b| a.order().cmp(&b.order()));
    out
}

fn walk_uploads(
    meta: &SqliteMeta,
    prefix: &str,
    delimiter: Option<&str>,
    max: usize,
) -> Vec<Position> {
    let mut out = Vec::new();
    let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
    for _ in 0..10_000 {
        let page = uploads(
            meta,
            prefix,
            delimiter,
            key_marker.as_deref(),
            id_marker.as_deref(),
            max,
        );
        let got = upload_positions(&page);
        assert!(got.len() <= max);
        let last = got.last().map(|p| match p {
            Position::Upload(k, u) => (Some(k.clone()), Some(u.clone())),
            Position::Prefix(g) => (Some(g.clone()), None),
        });
        assert_eq!(
            (
                page.next_key_marker.clone(),
                page.next_upload_id_marker.clone()
            ),
            last.unwrap_or((None, None))
        );
        out.extend(got.iter().cloned());
        if !page.is_truncated {
            return out;
        }
        assert_eq!(got.len(), max, "a truncated page is full");
        (key_marker, id_marker) = (page.next_key_marker, page.next_upload_id_marker);
    }
    panic!("upload listing did not terminate");
}

#[test]
fn upload_pagination_matches_brute_force_reference() {
    let tokens = ["a", "b", "/", "/", "é", "日", "-", " ", "ab"];
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut all = BTreeSet::new();
    let mut ids = BTreeSet::new();
    while all.len() < 150 {
        let len = 1 + rng.below(4);
        let key: String = (0..len).map(|_| tokens[rng.below(tokens.len())]).collect();
        // Several uploads per key; ids are unique, in no particular order.
        for _ in 0..1 + rng.below(3) {
            let id = format!("u{:04}", rng.below(10_000));
            if ids.insert(id.clone()) {
                all.insert((key.clone(), id));
            }
        }
    }
    let pairs: Vec<(&str, &str)> = all.iter().map(|(k, u)| (k.as_str(), u.as_str())).collect();
    let (_dir, meta) = with_uploads(&pairs);
    let sample: Vec<&(String, String)> = all.iter().step_by(7).collect();

    for prefix in ["", "a", "a/", "日", "q"] {
        for delimiter in [None, Some("/"), Some("b/"), Some("日")] {
            let full = upload_reference(&all, prefix, delimiter, None);
            for max in [1, 2, 3, 1000] {
                assert_eq!(
                    walk_uploads(&meta, prefix, delimiter, max),
                    full,
                    "prefix {prefix:?} delimiter {delimiter:?} max {max}"
                );
            }
            for (key, id) in &sample {
                for marker in [(key.as_str(), None), (key.as_str(), Some(id.as_str()))] {
                    let page = uploads(&meta, prefix, delimiter, Some(marker.0), marker.1, 1000);
                    assert_eq!(
                        upload_positions(&page),
                        upload_reference(&all, prefix, delimiter, Some(marker)),
                        "prefix {prefix:?} delimiter {delimiter:?} marker {marker:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn upload_listing_seeks_past_common_prefixes() {
    let mut all = vec![("a".to_string(), "u".to_string())];
    all.extend((0..2000).map(|i| (format!("big/{i:05}"), format!("u{i}"))));
    all.push(("c".into(), "w".into()));
    let pairs: Vec<(&str, &str)> = all.iter().map(|(k, u)| (k.as_str(), u.as_str())).collect();
    let (_dir, meta) = with_uploads(&pairs);
    let run = |key_marker: Option<&str>, upload_id_marker: Option<&str>, max_uploads| {
        let conn = meta.reader();
        uploads_page(
            &conn,
            &UploadListQuery {
                bucket: "b",
                prefix: "",
                delimiter: Some("/"),
                key_marker,
                upload_id_marker,
                max_uploads,
            },
        )
        .unwrap()
    };
    let (page, rows) = run(None, None, 1000);
    assert_eq!(page.common_prefixes, ["big/"]);
    assert_eq!(positions(&page), [("a", "u"), ("c", "w")]);
    assert_eq!(rows, 3);
    let (page, rows) = run(Some("a"), Some("u"), 1);
    assert_eq!(page.common_prefixes, ["big/"]);
    assert_eq!(rows, 2);

    let bounds = [
        (Lower::After(b"a".to_vec(), "u".into()), Some(&b"b"[..])),
        (Lower::Exclusive(b"a".to_vec()), None),
        (Lower::Inclusive(b"a".to_vec()), Some(&b"b"[..])),
    ];
    for (lower, upper) in &bounds {
        let (sql, _) = range_sql(&UPLOADS, "b", lower, *upper);
        let plan = plan(&meta, &sql);
        assert!(
            plan.contains("SEARCH") && plan.contains("uploads_by_key"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }
}
