//! Metadata store: buckets, objects, the stream (stored body) behind each object, its segments
//! and where every piece of every segment lives.
//!
//! Contract:
//! - Every mutation is one transaction: a reader sees an object either entirely (row, stream,
//!   every segment and piece) or not at all, never a mix of an old and a new body.
//! - Object keys are compared as raw UTF-8 bytes (memcmp), the order S3 listings require.
//! - A body stops being live when its object is replaced or deleted; in the same transaction
//!   it becomes [`Garbage`], which is durable and stays listed by [`Meta::garbage`] (with its
//!   pieces) until [`Meta::garbage_done`] forgets it. Nothing here deletes pieces from nodes.
//! - A stream id belongs to exactly one object for its whole life; putting a record whose
//!   stream id is already known (live or garbage) fails with [`MetaError::StreamExists`].
//! - Nothing here knows HTTP or S3 XML. Listing semantics are S3's (see [`ListQuery`]).
//!
//! [`SqliteMeta`] is the synchronous backend; [`Meta`] is the cheap-to-clone async facade that
//! runs each call on tokio's blocking pool.

mod sqlite;

pub use sqlite::SqliteMeta;

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Format version of object records written by this build.
pub const OBJECT_FORMAT: u32 = 1;

/// Random id of one stored object body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub [u8; 16]);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    pub name: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    pub bucket: String,
    pub key: String,
    /// `None` is S3's "null" version (unversioned bucket).
    pub version_id: Option<String>,
    /// Record format version, [`OBJECT_FORMAT`].
    pub format: u32,
    /// Plaintext bytes.
    pub size: u64,
    /// Without quotes.
    pub etag: String,
    pub last_modified_ms: i64,
    pub content_type: Option<String>,
    /// cache-control, content-disposition, ... (lowercase names), order preserved.
    pub system_meta: Vec<(String, String)>,
    /// x-amz-meta-* without the prefix, lowercase names, order preserved.
    pub user_meta: Vec<(String, String)>,
    pub stream: StreamRecord,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    pub stream_id: StreamId,
    /// Cipher suite id.
    pub cipher: u8,
    /// Plaintext bytes per AEAD block.
    pub block_size: u32,
    /// Plaintext bytes per full segment.
    pub segment_size: u64,
    /// Ordered by index; indices must be exactly `0..segments.len()`.
    pub segments: Vec<SegmentRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRecord {
    pub index: u32,
    pub plain_size: u64,
    pub wrapped_key: Vec<u8>,
    pub placement: Placement,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Ciphertext stored in the database.
    Inline(Vec<u8>),
    /// Erasure-coded pieces on nodes; `pieces` ordered by number, numbers unique and `< n`.
    Pieces {
        k: u16,
        n: u16,
        chunk_size: u32,
        pieces: Vec<PieceRecord>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceRecord {
    pub number: u16,
    /// Node id from config.
    pub node: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListPage {
    /// In key byte order.
    pub objects: Vec<ObjectSummary>,
    /// In byte order; each appears once across all pages of one listing.
    pub common_prefixes: Vec<String>,
    /// True only if at least one more object or common prefix follows this page.
    pub is_truncated: bool,
    /// The last key or common prefix returned (what S3 uses as NextMarker / continuation
    /// point); `None` when the page is empty. Passing it back as `start_after` continues the
    /// listing exactly after this page.
    pub next_marker: Option<String>,
}

/// One page of an S3 listing.
///
/// Matching keys start with `prefix` and sort (bytewise) strictly after `start_after`. With a
/// non-empty `delimiter`, a key whose remainder after `prefix` contains it is returned only as
/// the common prefix `prefix + remainder[..=end of first delimiter]`. If `start_after` is a
/// common prefix or lies inside one, the listing resumes after every key of that prefix.
/// `max_keys` bounds objects and common prefixes together; with `max_keys == 0` the page is
/// empty and not truncated (as S3 answers max-keys=0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListQuery<'a> {
    pub bucket: &'a str,
    pub prefix: &'a str,
    /// `None` or empty = no grouping.
    pub delimiter: Option<&'a str>,
    /// Exclusive; works for marker, start-after and continuation token alike.
    pub start_after: Option<&'a str>,
    pub max_keys: usize,
}

/// A body that is no longer referenced and whose pieces must be deleted from nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Garbage {
    pub stream_id: StreamId,
    /// `(segment index, piece)`, ordered by segment then piece number; empty for bodies whose
    /// segments were all inline.
    pub pieces: Vec<(u32, PieceRecord)>,
}

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("no such bucket: {0}")]
    NoSuchBucket(String),
    #[error("bucket already exists: {0}")]
    BucketExists(String),
    #[error("bucket is not empty: {0}")]
    BucketNotEmpty(String),
    #[error("metadata schema version {found} is newer than the supported version {supported}")]
    SchemaTooNew { found: u32, supported: u32 },
    #[error("{}: cannot switch to WAL journal mode (still {mode})", path.display())]
    NoWal { path: PathBuf, mode: String },
    #[error("stream id {0:?} is already recorded")]
    StreamExists(StreamId),
    #[error("stream {0:?} is live; only garbage can be forgotten")]
    StreamLive(StreamId),
    #[error("invalid object record: {0}")]
    InvalidRecord(String),
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("metadata task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// The smallest byte string greater than every string starting with `bytes`; `None` if there
/// is none (`bytes` is empty or all 0xFF). The result need not be UTF-8.
fn successor(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut next = bytes.to_vec();
    while let Some(last) = next.pop() {
        if last < u8::MAX {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

/// The common prefix `key` rolls up into: `prefix + remainder[..=end of first delimiter]`, or
/// `None` if `key` does not start with `prefix` or its remainder holds no delimiter.
fn common_prefix<'k>(prefix: &str, key: &'k str, delimiter: &str) -> Option<&'k str> {
    let remainder = key.strip_prefix(prefix)?;
    let at = remainder.find(delimiter)?;
    key.get(..prefix.len() + at + delimiter.len())
}

/// Async facade over [`SqliteMeta`]: every call runs in `tokio::task::spawn_blocking`.
/// Cloning is cheap and shares the same database connections.
#[derive(Debug, Clone)]
pub struct Meta {
    inner: Arc<SqliteMeta>,
}

impl From<SqliteMeta> for Meta {
    fn from(backend: SqliteMeta) -> Self {
        Meta {
            inner: Arc::new(backend),
        }
    }
}

impl Meta {
    /// Opens or creates the database at `path`; see [`SqliteMeta::open`].
    pub async fn open(path: &Path) -> Result<Meta, MetaError> {
        let path = path.to_path_buf();
        let backend = tokio::task::spawn_blocking(move || SqliteMeta::open(&path)).await??;
        Ok(Meta::from(backend))
    }

    async fn run<T, F>(&self, f: F) -> Result<T, MetaError>
    where
        T: Send + 'static,
        F: FnOnce(&SqliteMeta) -> Result<T, MetaError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner)).await?
    }

    pub async fn create_bucket(&self, name: &str, created_ms: i64) -> Result<(), MetaError> {
        let name = name.to_owned();
        self.run(move |m| m.create_bucket(&name, created_ms)).await
    }

    pub async fn delete_bucket(&self, name: &str) -> Result<(), MetaError> {
        let name = name.to_owned();
        self.run(move |m| m.delete_bucket(&name)).await
    }

    pub async fn get_bucket(&self, name: &str) -> Result<Option<BucketInfo>, MetaError> {
        let name = name.to_owned();
        self.run(move |m| m.get_bucket(&name)).await
    }

    pub async fn list_buckets(&self) -> Result<Vec<BucketInfo>, MetaError> {
        self.run(|m| m.list_buckets()).await
    }

    pub async fn put_object(&self, rec: &ObjectRecord) -> Result<(), MetaError> {
        let rec = rec.clone();
        self.run(move |m| m.put_object(&rec)).await
    }

    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<ObjectRecord>, MetaError> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.run(move |m| m.get_object(&bucket, &key)).await
    }

    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<bool, MetaError> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.run(move |m| m.delete_object(&bucket, &key)).await
    }

    pub async fn list_objects(&self, q: &ListQuery<'_>) -> Result<ListPage, MetaError> {
        let bucket = q.bucket.to_owned();
        let prefix = q.prefix.to_owned();
        let delimiter = q.delimiter.map(str::to_owned);
        let start_after = q.start_after.map(str::to_owned);
        let max_keys = q.max_keys;
        self.run(move |m| {
            m.list_objects(&ListQuery {
                bucket: &bucket,
                prefix: &prefix,
                delimiter: delimiter.as_deref(),
                start_after: start_after.as_deref(),
                max_keys,
            })
        })
        .await
    }

    pub async fn garbage(&self, limit: usize) -> Result<Vec<Garbage>, MetaError> {
        self.run(move |m| m.garbage(limit)).await
    }

    pub async fn garbage_done(&self, stream_id: &StreamId) -> Result<(), MetaError> {
        let stream_id = *stream_id;
        self.run(move |m| m.garbage_done(&stream_id)).await
    }

    pub async fn pieces_on_node(
        &self,
        node: &str,
        limit: usize,
    ) -> Result<Vec<(StreamId, u32, u16)>, MetaError> {
        let node = node.to_owned();
        self.run(move |m| m.pieces_on_node(&node, limit)).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn record(bucket: &str, key: &str, id: u8) -> ObjectRecord {
        ObjectRecord {
            bucket: bucket.into(),
            key: key.into(),
            version_id: None,
            format: OBJECT_FORMAT,
            size: 3,
            etag: "abc".into(),
            last_modified_ms: 7,
            content_type: None,
            system_meta: vec![],
            user_meta: vec![],
            stream: StreamRecord {
                stream_id: StreamId([id; 16]),
                cipher: 1,
                block_size: 64,
                segment_size: 64,
                segments: vec![SegmentRecord {
                    index: 0,
                    plain_size: 3,
                    wrapped_key: vec![1, 2],
                    placement: Placement::Pieces {
                        k: 1,
                        n: 2,
                        chunk_size: 16,
                        pieces: vec![
                            PieceRecord {
                                number: 0,
                                node: "n1".into(),
                            },
                            PieceRecord {
                                number: 1,
                                node: "n2".into(),
                            },
                        ],
                    },
                }],
            },
        }
    }

    #[test]
    fn successor_skips_every_extension() {
        assert_eq!(successor(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(successor(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(successor(b"\xff\xff"), None);
        assert_eq!(successor(b""), None);
        let next = successor("日/".as_bytes()).unwrap();
        assert!("日/\u{10FFFF}".as_bytes() < next.as_slice());
        assert!("日0".as_bytes() >= next.as_slice());
    }

    #[test]
    fn common_prefix_uses_first_delimiter_after_prefix() {
        assert_eq!(common_prefix("", "a/b/c", "/"), Some("a/"));
        assert_eq!(common_prefix("a/", "a/b/c", "/"), Some("a/b/"));
        assert_eq!(common_prefix("a/", "a/b", "/"), None);
        assert_eq!(common_prefix("b", "a/b", "/"), None);
        assert_eq!(common_prefix("x", "x--y--z", "--"), Some("x--"));
        assert_eq!(common_prefix("x-", "x--y", "--"), None);
        assert_eq!(common_prefix("", "é日😀x", "日"), Some("é日"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn facade_round_trips_through_blocking_pool() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta::open(&dir.path().join("meta.db")).await.unwrap();
        meta.create_bucket("b", 5).await.unwrap();
        assert!(matches!(
            meta.create_bucket("b", 6).await,
            Err(MetaError::BucketExists(_))
        ));
        assert_eq!(
            meta.get_bucket("b").await.unwrap(),
            Some(BucketInfo {
                name: "b".into(),
                created_ms: 5
            })
        );
        assert_eq!(meta.list_buckets().await.unwrap().len(), 1);

        let rec = record("b", "dir/k", 1);
        meta.put_object(&rec).await.unwrap();
        let clone = meta.clone();
        assert_eq!(clone.get_object("b", "dir/k").await.unwrap(), Some(rec));
        let page = meta
            .list_objects(&ListQuery {
                bucket: "b",
                prefix: "",
                delimiter: Some("/"),
                start_after: None,
                max_keys: 10,
            })
            .await
            .unwrap();
        assert_eq!(page.common_prefixes, vec!["dir/".to_string()]);
        assert_eq!(
            meta.pieces_on_node("n2", 10).await.unwrap(),
            vec![(StreamId([1; 16]), 0, 1)]
        );

        meta.put_object(&record("b", "dir/k", 2)).await.unwrap();
        let garbage = meta.garbage(10).await.unwrap();
        assert_eq!(garbage.len(), 1);
        assert_eq!(garbage[0].stream_id, StreamId([1; 16]));
        meta.garbage_done(&StreamId([1; 16])).await.unwrap();
        assert!(meta.garbage(10).await.unwrap().is_empty());

        assert!(meta.delete_object("b", "dir/k").await.unwrap());
        assert!(!meta.delete_object("b", "dir/k").await.unwrap());
        meta.delete_bucket("b").await.unwrap();
        assert_eq!(meta.get_bucket("b").await.unwrap(), None);
    }
}
