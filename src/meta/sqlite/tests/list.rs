//! Object listings.

use std::collections::BTreeSet;

use super::*;
use crate::meta::sqlite::list::{list_page, range_sql, Lower, OBJECTS};

pub(super) fn list(
    meta: &SqliteMeta,
    prefix: &str,
    delimiter: Option<&str>,
    start_after: Option<&str>,
    max_keys: usize,
) -> ListPage {
    meta.list_objects(&ListQuery {
        bucket: "b",
        prefix,
        delimiter,
        start_after,
        max_keys,
    })
    .unwrap()
}

pub(super) fn keys(page: &ListPage) -> Vec<&str> {
    page.objects.iter().map(|o| o.key.as_str()).collect()
}

fn with_keys(keys: &[&str]) -> (tempfile::TempDir, SqliteMeta) {
    let (dir, meta) = store();
    no_sync(&meta);
    meta.create_bucket("b", 0).unwrap();
    for (i, key) in keys.iter().enumerate() {
        meta.put_object(&small("b", key, i as u128), &NONE).unwrap();
    }
    (dir, meta)
}

#[test]
fn listing_orders_by_utf8_bytes() {
    // UTF-16 order would put the emoji (a surrogate pair) before U+FFFD.
    let all = [
        "😀", "\u{FFFD}", "é", "z", "Z", "a b", "a%", "a+", "\u{1}", "a\u{0}b", "~",
    ];
    let (_dir, meta) = with_keys(&all);
    let page = list(&meta, "", None, None, 100);
    let mut expected: Vec<&str> = all.to_vec();
    expected.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(keys(&page), expected);
    assert_eq!(expected.last(), Some(&"😀"));
    assert!(!page.is_truncated);
    assert_eq!(page.next_marker.as_deref(), Some("😀"));
    let summary = &page.objects[0];
    assert_eq!((summary.size, summary.etag.as_str()), (1000, "etag-8"));
    assert_eq!(
        keys(&list(&meta, "a", None, None, 100)),
        ["a\u{0}b", "a b", "a%", "a+"]
    );
    assert_eq!(
        keys(&list(&meta, "", None, Some("z"), 100)),
        ["~", "é", "\u{FFFD}", "😀"]
    );
}

#[test]
fn listing_groups_by_delimiter() {
    let (_dir, meta) = with_keys(&[
        "a/1", "a/2/x", "a/2/y", "a+b", "a/", "b", "c/d", "c--e--f", "c--g", "c-h", "日/本", "日本",
    ]);
    let page = list(&meta, "", Some("/"), None, 100);
    assert_eq!(keys(&page), ["a+b", "b", "c--e--f", "c--g", "c-h", "日本"]);
    assert_eq!(page.common_prefixes, ["a/", "c/", "日/"]);
    assert_eq!(page.next_marker.as_deref(), Some("日本"));

    let page = list(&meta, "a/", Some("/"), None, 100);
    assert_eq!(keys(&page), ["a/", "a/1"]);
    assert_eq!(page.common_prefixes, ["a/2/"]);

    let page = list(&meta, "c", Some("--"), None, 100);
    assert_eq!(keys(&page), ["c-h", "c/d"]);
    assert_eq!(page.common_prefixes, ["c--"]);
    let page = list(&meta, "c--", Some("--"), None, 100);
    assert_eq!(keys(&page), ["c--g"]);
    assert_eq!(page.common_prefixes, ["c--e--"]);

    let page = list(&meta, "", Some("日"), None, 100);
    assert_eq!(page.common_prefixes, ["日"]);
    assert_eq!(page.objects.len(), 10);

    // An empty delimiter means no grouping.
    assert_eq!(list(&meta, "a/", Some(""), None, 100).objects.len(), 4);
}

#[test]
fn listing_resumes_after_common_prefixes() {
    let (_dir, meta) = with_keys(&["a/1", "a/2", "a/3", "b", "c/1", "d"]);
    // start_after inside a common prefix skips the rest of it.
    let page = list(&meta, "", Some("/"), Some("a/1"), 100);
    assert_eq!(keys(&page), ["b", "d"]);
    assert_eq!(page.common_prefixes, ["c/"]);
    // start_after equal to a common prefix, as a continuation from a previous page.
    let page = list(&meta, "", Some("/"), Some("a/"), 100);
    assert_eq!(page.common_prefixes, ["c/"]);
    // start_after before the prefix group still returns it.
    let page = list(&meta, "", Some("/"), Some("a"), 100);
    assert_eq!(page.common_prefixes, ["a/", "c/"]);
    // Without a delimiter the same marker is just a key position.
    assert_eq!(
        keys(&list(&meta, "", None, Some("a/1"), 100)),
        ["a/2", "a/3", "b", "c/1", "d"]
    );
    // start_after below or above the prefix range.
    assert_eq!(
        keys(&list(&meta, "a/", None, Some("0"), 100)),
        ["a/1", "a/2", "a/3"]
    );
    assert!(keys(&list(&meta, "a/", None, Some("b"), 100)).is_empty());

    let page = list(&meta, "", Some("/"), None, 2);
    assert_eq!(keys(&page), ["b"]);
    assert_eq!(page.common_prefixes, ["a/"]);
    assert!(page.is_truncated);
    assert_eq!(page.next_marker.as_deref(), Some("b"));
    let page = list(&meta, "", Some("/"), Some("b"), 2);
    assert_eq!(keys(&page), ["d"]);
    assert_eq!(page.common_prefixes, ["c/"]);
    assert!(!page.is_truncated, "nothing follows the last entry");
}

#[test]
fn max_keys_zero_is_an_empty_untruncated_page() {
    let (_dir, meta) = with_keys(&["a/1", "b"]);
    let page = list(&meta, "", Some("/"), None, 0);
    assert_eq!(page, ListPage::default());
    assert!(!list(&meta, "a", None, None, 0).is_truncated);
    assert!(!list(&meta, "c", None, None, 0).is_truncated);
    assert!(!list(&meta, "", None, Some("b"), 0).is_truncated);
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Key(String),
    Prefix(String),
}

impl Entry {
    fn name(&self) -> &str {
        match self {
            Entry::Key(s) | Entry::Prefix(s) => s,
        }
    }
}

/// Brute-force S3 listing over all keys.
fn reference(
    all: &BTreeSet<String>,
    prefix: &str,
    delimiter: Option<&str>,
    start_after: Option<&str>,
) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for key in all.iter().filter(|k| k.starts_with(prefix)) {
        let rest = &key[prefix.len()..];
        let entry = match delimiter.filter(|d| !d.is_empty()).and_then(|d| {
            rest.find(d)
                .map(|at| Entry::Prefix(key[..prefix.len() + at + d.len()].to_string()))
        }) {
            Some(group) => group,
            None => Entry::Key(key.clone()),
        };
        if out.last() != Some(&entry) {
            out.push(entry);
        }
    }
    out.retain(|e| start_after.is_none_or(|s| e.name() > s));
    out
}

fn entries(page: &ListPage) -> Vec<Entry> {
    let mut out: Vec<Entry> = page
        .objects
        .iter()
        .map(|o| Entry::Key(o.key.clone()))
        .chain(page.common_prefixes.iter().cloned().map(Entry::Prefix))
        .collect();
    out.sort_by(|a, b| a.name().cmp(b.name()));
    out
}

fn walk(meta: &SqliteMeta, prefix: &str, delimiter: Option<&str>, max_keys: usize) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..10_000 {
        let page = list(meta, prefix, delimiter, marker.as_deref(), max_keys);
        let got = entries(&page);
        assert!(got.len() <= max_keys);
        assert_eq!(page.next_marker.as_deref(), got.last().map(Entry::name));
        out.extend(got.iter().cloned());
        if !page.is_truncated {
            return out;
        }
        assert_eq!(got.len(), max_keys, "a truncated page is full");
        marker = page.next_marker;
    }
    panic!("listing did not terminate");
}

#[test]
fn pagination_matches_brute_force_reference() {
    let tokens = [
        "a", "b", "z", "A", "/", "/", "é", "日", "😀", "-", "%", "+", " ", "\u{1}", "~", "ab",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut all = BTreeSet::new();
    while all.len() < 300 {
        let len = 1 + rng.below(6);
        let key: String = (0..len).map(|_| tokens[rng.below(tokens.len())]).collect();
        all.insert(key);
    }
    let (_dir, meta) = store();
    no_sync(&meta);
    meta.create_bucket("b", 0).unwrap();
    for (i, key) in all.iter().enumerate() {
        meta.put_object(&small("b", key, i as u128), &NONE).unwrap();
    }
    let sample: Vec<&String> = all.iter().step_by(11).collect();

    for prefix in ["", "a", "a/", "日", "é/", "/", "q"] {
        for delimiter in [
            None,
            Some("/"),
            Some("-"),
            Some("a/"),
            Some("日"),
            Some("😀"),
        ] {
            let full = reference(&all, prefix, delimiter, None);
            for max_keys in [1, 2, 3, 1000] {
                assert_eq!(
                    walk(&meta, prefix, delimiter, max_keys),
                    full,
                    "prefix {prefix:?} delimiter {delimiter:?} max_keys {max_keys}"
                );
            }
            let empty = list(&meta, prefix, delimiter, None, 0);
            assert_eq!(empty, ListPage::default());
            for key in &sample {
                for after in [
                    key.to_string(),
                    format!("{key}/"),
                    key[..key.len() - key.chars().last().unwrap().len_utf8()].to_string(),
                ] {
                    let page = list(&meta, prefix, delimiter, Some(&after), 1000);
                    assert_eq!(
                        entries(&page),
                        reference(&all, prefix, delimiter, Some(&after)),
                        "prefix {prefix:?} delimiter {delimiter:?} after {after:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn common_prefixes_are_skipped_by_seeking() {
    let (_dir, meta) = store();
    no_sync(&meta);
    meta.create_bucket("b", 0).unwrap();
    meta.put_object(&small("b", "a", 0), &NONE).unwrap();
    for i in 0..3000 {
        meta.put_object(&small("b", &format!("big/{i:05}"), i + 1), &NONE)
            .unwrap();
    }
    meta.put_object(&small("b", "c", 9999), &NONE).unwrap();

    let run = |start_after: Option<&str>, max_keys: usize| {
        let conn = meta.reader();
        list_page(
            &conn,
            &ListQuery {
                bucket: "b",
                prefix: "",
                delimiter: Some("/"),
                start_after,
                max_keys,
            },
        )
        .unwrap()
    };
    let (page, rows) = run(None, 1000);
    assert_eq!(keys(&page), ["a", "c"]);
    assert_eq!(page.common_prefixes, ["big/"]);
    assert_eq!(rows, 3);
    let (page, rows) = run(Some("a"), 1);
    assert_eq!(page.common_prefixes, ["big/"]);
    assert!(page.is_truncated);
    assert_eq!(rows, 2);
    let (page, rows) = run(Some("big/01234"), 1);
    assert_eq!(keys(&page), ["c"]);
    assert!(!page.is_truncated);
    assert_eq!(rows, 1);

    let bounds = [
        (Lower::Exclusive(b"a".to_vec()), Some(&b"b"[..])),
        (Lower::Inclusive(b"a".to_vec()), None),
    ];
    for (lower, upper) in &bounds {
        let (sql, _) = range_sql(&OBJECTS, "b", lower, *upper);
        let plan = plan(&meta, &sql);
        assert!(
            plan.contains("SEARCH") && plan.contains("PRIMARY KEY"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }
}
