//! Metadata store: buckets, objects, multipart uploads, the streams (stored bodies) they
//! reference, each stream's segments and where every piece of every segment lives.
//!
//! Contract:
//! - Every mutation is one transaction: a reader sees an object either entirely (row, parts,
//!   their streams with every segment and piece) or not at all, never a mix of an old and a
//!   new body.
//! - Object keys are compared as raw UTF-8 bytes (memcmp), the order S3 listings require.
//! - A stream is referenced by object parts and multipart-upload parts; several objects may
//!   share one (copies), and an upload part may share one with objects. A stream becomes
//!   [`Garbage`] in the same transaction that removes its last reference (object replaced or
//!   deleted, part replaced, upload completed without it or aborted, bucket deleted with its
//!   uploads). Garbage is durable and stays listed by [`Meta::garbage`] (with its pieces)
//!   until [`Meta::garbage_done`] forgets it. Nothing here deletes pieces from nodes.
//! - A garbage stream is never referenced again: a write that names one fails with
//!   [`MetaError::StreamGone`], because garbage collection may already be deleting its pieces.
//! - Conditional writes ([`Precondition`]) are checked inside the writing transaction, so of
//!   two racing writers at most one succeeds.
//! - A stream carries its transfer accounting ([`StreamAccounting`]), recorded with the stream
//!   when it is first written and never changed: objects and parts sharing a stream share its
//!   accounting. The store keeps the values as given and does not check them.
//! - [`Meta::storage_totals`] sums, in one read transaction, what the objects hold: each object
//!   counts once, each live stream they reference counts once however many objects share it,
//!   and streams referenced only by in-progress multipart uploads, or garbage, do not count.
//! - Nothing here knows HTTP or S3 XML. Listing semantics are S3's (see [`ListQuery`],
//!   [`UploadListQuery`]).
//!
//! [`SqliteMeta`] is the synchronous backend; [`Meta`] is the cheap-to-clone async facade that
//! runs each call on tokio's blocking pool.

mod facade;
pub mod log;
mod sqlite;

pub use facade::Meta;
pub(crate) use sqlite::now_ms;
pub use sqlite::{
    HealthCounts, PieceFinding, RepairSource, ReplicationState, SegmentHealth, SnapshotTaken,
    SqliteMeta, COMPLETED_UPLOAD_RETENTION_MS,
};

/// Highest part number S3 allows (part numbers are `1..=MAX_PART_NUMBER`), and so also the
/// most parts one multipart upload can have: the one definition every layer uses.
pub const MAX_PART_NUMBER: u32 = 10_000;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The schema version this build reads and writes; older versions are migrated on open.
pub const SCHEMA_VERSION: u32 = 4;

/// Format version of object records written by this build.
pub const OBJECT_FORMAT: u32 = 1;

/// Random id of one stored object body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamId(#[serde(with = "log::hex_bytes")] pub [u8; 16]);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    pub name: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub bucket: String,
    pub key: String,
    /// `None` is S3's "null" version (unversioned bucket).
    pub version_id: Option<String>,
    /// Record format version, [`OBJECT_FORMAT`].
    pub format: u32,
    /// Plaintext bytes (the sum of the parts' sizes).
    pub size: u64,
    /// Without quotes: hex MD5 for a single PUT, `md5-of-part-md5s-N` for multipart.
    pub etag: String,
    pub last_modified_ms: i64,
    pub content_type: Option<String>,
    /// cache-control, content-disposition, ... (lowercase names), order preserved.
    pub system_meta: Vec<(String, String)>,
    /// x-amz-meta-* without the prefix, lowercase names, order preserved.
    pub user_meta: Vec<(String, String)>,
    /// Object tags, order preserved.
    pub tags: Vec<(String, String)>,
    /// The whole-object checksum, when the client supplied or requested one.
    pub checksum: Option<StoredChecksum>,
    /// The body: one part for a single PUT (number 0), the completed parts of a multipart
    /// upload (numbers as uploaded, ascending). Several objects may share a stream (copies);
    /// a stream becomes garbage only when nothing references it any more.
    pub parts: Vec<ObjectPart>,
}

/// A checksum as S3 reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChecksum {
    /// `checksum::ChecksumAlgorithm::id()`.
    pub algorithm: u8,
    /// 1 = FULL_OBJECT, 2 = COMPOSITE.
    pub kind: u8,
    /// Base64 of the digest; composite values carry their `-N` suffix.
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectPart {
    /// 0 for a single PUT; the multipart part number (1..=10000) otherwise.
    pub number: u32,
    pub size: u64,
    /// Hex MD5 of the part's plaintext, without quotes.
    pub etag: String,
    /// Base64 checksum of the part in the object's checksum algorithm, if any.
    pub checksum: Option<String>,
    pub stream: StreamRecord,
}

/// An in-progress multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub upload_id: String,
    pub bucket: String,
    pub key: String,
    pub initiated_ms: i64,
    pub content_type: Option<String>,
    pub system_meta: Vec<(String, String)>,
    pub user_meta: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    /// Checksum algorithm id and kind (see [`StoredChecksum`]) chosen at creation.
    pub checksum_algorithm: Option<u8>,
    pub checksum_kind: Option<u8>,
}

/// One uploaded part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    pub number: u32,
    pub size: u64,
    pub etag: String,
    pub checksum: Option<String>,
    pub last_modified_ms: i64,
    pub stream: StreamRecord,
}

/// A multipart upload as it was completed, remembered for a while (see
/// [`SqliteMeta::completed_upload`]) so that a retried CompleteMultipartUpload can be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedUpload {
    pub upload_id: String,
    pub bucket: String,
    pub key: String,
    /// ETag of the object the completion committed.
    pub etag: String,
    /// (part number, part ETag) of the object's parts, in object order.
    pub parts: Vec<(u32, String)>,
    /// `last_modified_ms` of the object the completion committed.
    pub completed_ms: i64,
}

/// Summary of a part for ListParts (no segments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartSummary {
    pub number: u32,
    pub size: u64,
    pub etag: String,
    pub checksum: Option<String>,
    pub last_modified_ms: i64,
}

/// A write that only happens if the current object matches (checked inside the transaction,
/// so two racing writers cannot both succeed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Precondition {
    #[default]
    None,
    /// `If-None-Match: *`: only if no object exists under the key.
    IfNoneMatchStar,
    /// `If-Match: etag`: only if the object exists with this ETag (unquoted); `*`: only if
    /// it exists.
    IfMatch(String),
}

/// What a conditional delete requires of the object under the key. Every condition given must
/// hold; they are checked inside the delete's transaction, so a write racing the delete
/// cannot slip between check and delete.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeleteCondition {
    /// `If-Match`: the object's ETag (unquoted), or `*` for any existing object. With this
    /// condition a missing key is `NoSuchKey` (S3 answers 404 there).
    pub if_match: Option<String>,
    /// `x-amz-if-match-last-modified-time`: the object's Last-Modified, in whole seconds since
    /// the epoch (the precision S3 shows it with).
    pub last_modified_secs: Option<i64>,
    /// `x-amz-if-match-size`: the object's size in bytes.
    pub size: Option<u64>,
}

impl DeleteCondition {
    pub fn is_unconditional(&self) -> bool {
        *self == DeleteCondition::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSummary {
    pub key: String,
    pub upload_id: String,
    pub initiated_ms: i64,
}

/// ListMultipartUploads: uploads ordered by (key bytes, upload id), S3 semantics for prefix,
/// delimiter (common prefixes), key_marker / upload_id_marker and max_uploads.
///
/// Listed uploads have keys starting with `prefix`. Without `key_marker` the listing starts at
/// the first such key and `upload_id_marker` is ignored. With `key_marker` alone it starts
/// after every upload of that key; with both, after that (key, upload id), so later uploads of
/// the same key follow. A `key_marker` that is a common prefix, or lies inside one, resumes
/// after every key of that prefix (the common prefix was already returned). `max_uploads`
/// bounds uploads and common prefixes together; 0 gives an empty, untruncated page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadListQuery<'a> {
    pub bucket: &'a str,
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    pub key_marker: Option<&'a str>,
    pub upload_id_marker: Option<&'a str>,
    pub max_uploads: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UploadListPage {
    /// In (key bytes, upload id) order.
    pub uploads: Vec<UploadSummary>,
    /// In byte order; each appears once across all pages of one listing.
    pub common_prefixes: Vec<String>,
    /// True only if at least one more upload or common prefix follows this page.
    pub is_truncated: bool,
    /// The position of the last entry of the page (`None` when the page is empty): the key
    /// and upload id of the last upload, or the last common prefix and `None`. Passed back as
    /// `key_marker` / `upload_id_marker`, they continue the listing exactly after this page.
    pub next_key_marker: Option<String>,
    pub next_upload_id_marker: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// What storing this body cost; all zeros for bodies whose segments are all inline (and
    /// for bodies recorded before schema version 2).
    pub accounting: StreamAccounting,
}

/// Transfer accounting of one stream, over all its segments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamAccounting {
    /// Bytes of the pieces kept on nodes (headers + chunks + MACs), all segments.
    pub encoded_bytes: u64,
    /// Bytes sent to nodes while uploading this body, including pieces that were
    /// cancelled (long tail) or failed and replaced.
    pub uploaded_bytes: u64,
    /// Of `uploaded_bytes`, those spent on pieces that were not kept.
    pub long_tail_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRecord {
    pub index: u32,
    pub plain_size: u64,
    #[serde(with = "log::hex_bytes")]
    pub wrapped_key: Vec<u8>,
    pub placement: Placement,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Ciphertext stored in the database.
    Inline(#[serde(with = "log::base64_bytes")] Vec<u8>),
    /// Erasure-coded pieces on nodes; `pieces` ordered by number, numbers unique and `< n`.
    Pieces {
        k: u16,
        n: u16,
        chunk_size: u32,
        pieces: Vec<PieceRecord>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceRecord {
    pub number: u16,
    /// Node id from config.
    pub node: String,
    /// What the gateway knows about the piece (schema version 4). Left out of the log when
    /// `ok`, so records of healthy pieces serialise as before.
    #[serde(default, skip_serializing_if = "PieceState::is_ok")]
    pub state: PieceState,
}

impl PieceRecord {
    /// A healthy piece.
    pub fn new(number: u16, node: impl Into<String>) -> PieceRecord {
        PieceRecord {
            number,
            node: node.into(),
            state: PieceState::Ok,
        }
    }
}

/// The known state of one stored piece. Anything but `Ok` makes it an erasure for repair
/// (it is still tried last on reads: a "missing" piece may come back with its node).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PieceState {
    #[default]
    Ok,
    /// Its node answered "not found" (a read or an audit listing).
    Missing,
    /// A chunk failed its MAC, the header was wrong, or the piece was short.
    Corrupt,
    /// Its node was replaced or removed: the piece is gone with it.
    Lost,
}

impl PieceState {
    pub fn is_ok(&self) -> bool {
        *self == PieceState::Ok
    }

    pub fn code(self) -> u8 {
        match self {
            PieceState::Ok => 0,
            PieceState::Missing => 1,
            PieceState::Corrupt => 2,
            PieceState::Lost => 3,
        }
    }

    pub fn from_code(c: u8) -> Option<PieceState> {
        Some(match c {
            0 => PieceState::Ok,
            1 => PieceState::Missing,
            2 => PieceState::Corrupt,
            3 => PieceState::Lost,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PieceState::Ok => "ok",
            PieceState::Missing => "missing",
            PieceState::Corrupt => "corrupt",
            PieceState::Lost => "lost",
        }
    }
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

/// What the gateway stores, for `gateway stats`; see [`Meta::storage_totals`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageTotals {
    /// Objects in all buckets.
    pub objects: u64,
    /// Sum of the objects' plaintext sizes; an object sharing a stream with another (a copy)
    /// counts in full, as that is what the user stores.
    pub plain_bytes: u64,
    /// Live streams referenced by at least one object, each counted once.
    pub streams: u64,
    /// Segments of those streams.
    pub segments: u64,
    /// Pieces of those streams (recorded piece rows).
    pub pieces: u64,
    /// Sums of the [`StreamAccounting`] fields over those streams.
    pub encoded_bytes: u64,
    pub uploaded_bytes: u64,
    pub long_tail_bytes: u64,
}

/// A body that is no longer referenced and whose pieces must be deleted from nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Garbage {
    pub stream_id: StreamId,
    /// When the body became garbage.
    pub since_ms: i64,
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
    /// Not returned by [`SqliteMeta`] since streams are shared (a known live stream is
    /// referenced, not refused).
    #[error("stream id {0:?} is already recorded")]
    StreamExists(StreamId),
    #[error("stream {0:?} is live; only garbage can be forgotten")]
    StreamLive(StreamId),
    /// A write named a stream that is garbage (e.g. a copy whose source was deleted
    /// meanwhile), or a complete named a part that is no longer the upload's (replaced
    /// meanwhile; S3's InvalidPart).
    #[error("stream {0:?} is no longer live (its object was deleted)")]
    StreamGone(StreamId),
    /// The object is missing: tagging a missing key, or `If-Match` on a missing key (S3
    /// answers 404 NoSuchKey there, not 412).
    #[error("no such key")]
    NoSuchKey,
    #[error("no such upload: {0}")]
    NoSuchUpload(String),
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("invalid object record: {0}")]
    InvalidRecord(String),
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
    /// Sync replication: the change is committed locally but did not reach the nodes in
    /// time (see `replication`).
    #[error("{0}")]
    NotReplicated(String),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
}
