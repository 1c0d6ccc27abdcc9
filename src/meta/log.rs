//! The change log: every committed metadata mutation as a logical record, in commit order.
//!
//! Contract:
//! - Every mutation of [`SqliteMeta`] that commits writes exactly one [`Change`] into the
//!   `meta_log` table in the same transaction, under a sequence number that is never reused
//!   (SQLite AUTOINCREMENT). A committed change is therefore never missing from the log, and a
//!   change that rolled back is never in it.
//! - A change records what was done, not what was asked: conditional writes are logged
//!   without their precondition (it held), so replaying the changes of a sequence in order on
//!   the state that preceded it reproduces that sequence's result ([`SqliteMeta::apply`]).
//!   Only `garbage_since_ms` (when a body became garbage) takes the replay's clock.
//! - Records are JSON (one object per line in a batch), self-describing, versioned by
//!   [`LOG_FORMAT`] in each batch's first line. Byte strings are lowercase hex, inline object
//!   data standard base64. Changing the
//!   shape of a logged type (`ObjectRecord`, `PartRecord`, ...) changes the format: bump
//!   [`LOG_FORMAT`] and keep reading the old one (`log_format_is_stable` pins it).
//! - [`encode_batch`] / [`decode_batch`] turn consecutive entries into one batch: a header
//!   line naming the format and the sequence range, the entries, and newline padding to a
//!   multiple of [`BATCH_PADDING`] so a batch's size on the nodes says little about the
//!   changes in it. Decoding checks that the entries are exactly the header's range, in order.
//!
//! Shipping the batches to the nodes and rebuilding a store from them is `replication`'s.

use serde::{Deserialize, Serialize};

use super::{
    MetaError, ObjectRecord, PartRecord, PieceFinding, PieceRecord, Precondition, SqliteMeta,
    StreamId, UploadRecord,
};

/// Format version of batches written by this build.
pub const LOG_FORMAT: u32 = 1;

/// Batches are padded with newlines to a multiple of this many bytes.
pub const BATCH_PADDING: usize = 4096;

const BATCH_MAGIC: &str = "gateway-meta-log";

type Tags = Vec<(String, String)>;

/// One committed mutation, as the [`SqliteMeta`] call that made it (without preconditions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    CreateBucket {
        name: String,
        created_ms: i64,
    },
    DeleteBucket {
        name: String,
    },
    SetBucketTags {
        bucket: String,
        tags: Option<Tags>,
    },
    PutObject {
        record: ObjectRecord,
    },
    PutObjectSharing {
        record: ObjectRecord,
    },
    DeleteObject {
        bucket: String,
        key: String,
    },
    SetObjectTags {
        bucket: String,
        key: String,
        tags: Tags,
    },
    CreateUpload {
        upload: UploadRecord,
    },
    PutPart {
        bucket: String,
        key: String,
        upload_id: String,
        part: PartRecord,
    },
    AbortUpload {
        bucket: String,
        key: String,
        upload_id: String,
    },
    CompleteUpload {
        upload_id: String,
        record: ObjectRecord,
    },
    GarbageDone {
        stream_id: StreamId,
    },
    /// Pieces found missing or corrupt (only those whose state changed are logged).
    MarkPieces {
        findings: Vec<PieceFinding>,
    },
    /// Every healthy piece on `node` is lost (the node was replaced or removed).
    NodeLost {
        node: String,
        found_by: String,
    },
    /// Repaired pieces switched in for their numbers.
    RepairSegment {
        stream_id: StreamId,
        segment: u32,
        pieces: Vec<PieceRecord>,
    },
}

impl Change {
    pub fn to_json(&self) -> Result<Vec<u8>, MetaError> {
        serde_json::to_vec(self).map_err(|e| MetaError::InvalidRecord(e.to_string()))
    }
}

/// A change with its place in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub seq: u64,
    /// When it was committed (unix ms).
    pub at_ms: i64,
    pub change: Change,
}

/// A change as stored in `meta_log`: its JSON, not parsed again to be shipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub seq: u64,
    pub at_ms: i64,
    pub change: Vec<u8>,
}

/// A decoded batch: entries `first_seq..=last_seq`, every one present, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub first_seq: u64,
    pub last_seq: u64,
    pub entries: Vec<LogEntry>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LogError {
    #[error("not a metadata log batch")]
    NotABatch,
    #[error("metadata log format {0} is newer than this build's ({LOG_FORMAT})")]
    TooNew(u32),
    #[error("log batch: {0}")]
    Malformed(String),
}

/// One batch of consecutive entries (`entries` non-empty, consecutive sequence numbers).
pub fn encode_batch(entries: &[RawEntry]) -> Vec<u8> {
    let (first, last) = match (entries.first(), entries.last()) {
        (Some(f), Some(l)) => (f.seq, l.seq),
        _ => (0, 0),
    };
    let body: usize = entries.iter().map(|e| e.change.len() + 48).sum();
    let mut out = Vec::with_capacity(body + 64);
    out.extend_from_slice(
        format!(
            "{BATCH_MAGIC} v{LOG_FORMAT} {first} {last} {}\n",
            entries.len()
        )
        .as_bytes(),
    );
    for e in entries {
        out.extend_from_slice(
            format!("{{\"seq\":{},\"at_ms\":{},\"change\":", e.seq, e.at_ms).as_bytes(),
        );
        out.extend_from_slice(&e.change);
        out.extend_from_slice(b"}\n");
    }
    let padded = out.len().div_ceil(BATCH_PADDING) * BATCH_PADDING;
    out.resize(padded, b'\n');
    out
}

pub fn decode_batch(bytes: &[u8]) -> Result<Batch, LogError> {
    let malformed = |m: String| LogError::Malformed(m);
    let mut lines = bytes.split(|b| *b == b'\n');
    let header = lines.next().ok_or(LogError::NotABatch)?;
    let header = std::str::from_utf8(header).map_err(|_| LogError::NotABatch)?;
    let mut words = header.split(' ');
    if words.next() != Some(BATCH_MAGIC) {
        return Err(LogError::NotABatch);
    }
    let version: u32 = words
        .next()
        .and_then(|v| v.strip_prefix('v'))
        .and_then(|v| v.parse().ok())
        .ok_or(LogError::NotABatch)?;
    if version > LOG_FORMAT {
        return Err(LogError::TooNew(version));
    }
    let mut num = |what: &str| -> Result<u64, LogError> {
        words
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| malformed(format!("header: bad {what}")))
    };
    let (first_seq, last_seq, count) = (num("first")?, num("last")?, num("count")?);
    if count == 0 || last_seq < first_seq || last_seq - first_seq + 1 != count {
        return Err(malformed(format!(
            "header: range {first_seq}..={last_seq} does not hold {count} entries"
        )));
    }
    let mut entries = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(1 << 20));
    for line in lines.filter(|l| !l.is_empty()) {
        let entry: LogEntry = serde_json::from_slice(line)
            .map_err(|e| malformed(format!("entry {}: {e}", entries.len())))?;
        let expected = first_seq + entries.len() as u64;
        if entry.seq != expected {
            return Err(malformed(format!(
                "entry {} has sequence {} where {expected} belongs",
                entries.len(),
                entry.seq
            )));
        }
        entries.push(entry);
    }
    if entries.len() as u64 != count {
        return Err(malformed(format!(
            "{} entries where the header says {count}",
            entries.len()
        )));
    }
    Ok(Batch {
        first_seq,
        last_seq,
        entries,
    })
}

impl SqliteMeta {
    /// Replays one logged change: the call that made it, without precondition. On the state
    /// the change was made on, it succeeds and does the same (and logs it again).
    pub fn apply(&self, change: &Change) -> Result<(), MetaError> {
        let none = Precondition::None;
        match change {
            Change::CreateBucket { name, created_ms } => self.create_bucket(name, *created_ms),
            Change::DeleteBucket { name } => self.delete_bucket(name),
            Change::SetBucketTags { bucket, tags } => self.set_bucket_tags(bucket, tags.as_deref()),
            Change::PutObject { record } => self.put_object(record, &none),
            Change::PutObjectSharing { record } => self.put_object_sharing(record, &none),
            Change::DeleteObject { bucket, key } => self.delete_object(bucket, key).map(|_| ()),
            Change::SetObjectTags { bucket, key, tags } => self.set_object_tags(bucket, key, tags),
            Change::CreateUpload { upload } => self.create_upload(upload),
            Change::PutPart {
                bucket,
                key,
                upload_id,
                part,
            } => self.put_part(bucket, key, upload_id, part),
            Change::AbortUpload {
                bucket,
                key,
                upload_id,
            } => self.abort_upload(bucket, key, upload_id),
            Change::CompleteUpload { upload_id, record } => {
                self.complete_upload(upload_id, record, &none)
            }
            Change::GarbageDone { stream_id } => self.garbage_done(stream_id),
            Change::MarkPieces { findings } => self.apply_findings(findings),
            Change::NodeLost { node, found_by } => self.mark_node_lost(node, found_by).map(|_| ()),
            Change::RepairSegment {
                stream_id,
                segment,
                pieces,
            } => self.apply_repair(stream_id, *segment, pieces),
        }
    }
}

/// Serde helper: byte strings as standard base64 (inline object data: a third smaller than
/// hex in every log batch and snapshot).
pub(crate) mod base64_bytes {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::checksum::base64_encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        crate::checksum::base64_decode(&text).ok_or_else(|| D::Error::custom("not base64"))
    }
}

/// Serde helper: byte strings as lowercase hex.
pub(crate) mod hex_bytes {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, T: AsRef<[u8]>>(bytes: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::crypto::encode_hex(bytes.as_ref()))
    }

    pub fn deserialize<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: TryFrom<Vec<u8>>,
    {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let bytes = crate::crypto::decode_hex(&text).ok_or_else(|| D::Error::custom("not hex"))?;
        T::try_from(bytes).map_err(|_| D::Error::custom("wrong length"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::meta::{
        ObjectPart, PieceRecord, Placement, SegmentRecord, StoredChecksum, StreamAccounting,
        StreamRecord,
    };

    fn record() -> ObjectRecord {
        ObjectRecord {
            bucket: "b".into(),
            key: "dir/k é".into(),
            version_id: None,
            format: 1,
            size: 5,
            etag: "e".into(),
            last_modified_ms: 7,
            content_type: Some("text/plain".into()),
            system_meta: vec![("cache-control".into(), "no".into())],
            user_meta: vec![("a".into(), "1".into())],
            tags: vec![("t".into(), "v".into())],
            checksum: Some(StoredChecksum {
                algorithm: 1,
                kind: 1,
                value: "AAAA".into(),
            }),
            parts: vec![ObjectPart {
                number: 0,
                size: 5,
                etag: "e".into(),
                checksum: None,
                stream: StreamRecord {
                    stream_id: StreamId([0xab; 16]),
                    cipher: 1,
                    block_size: 64,
                    segment_size: 128,
                    segments: vec![
                        SegmentRecord {
                            index: 0,
                            plain_size: 3,
                            wrapped_key: vec![1, 2],
                            placement: Placement::Inline(vec![0xff]),
                        },
                        SegmentRecord {
                            index: 1,
                            plain_size: 2,
                            wrapped_key: vec![3],
                            placement: Placement::Pieces {
                                k: 1,
                                n: 2,
                                chunk_size: 16,
                                pieces: vec![PieceRecord::new(1, "n2")],
                            },
                        },
                    ],
                    accounting: StreamAccounting {
                        encoded_bytes: 1,
                        uploaded_bytes: 2,
                        long_tail_bytes: 0,
                    },
                },
            }],
        }
    }

    /// The JSON of a logged change is the on-node format: this fails when a logged type
    /// changes shape, which must come with a new [`LOG_FORMAT`].
    #[test]
    fn log_format_is_stable() {
        let json =
            String::from_utf8(Change::PutObject { record: record() }.to_json().unwrap()).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"op":"put_object","record":{"bucket":"b","key":"dir/k é","version_id":null,"#,
                r#""format":1,"size":5,"etag":"e","last_modified_ms":7,"content_type":"text/plain","#,
                r#""system_meta":[["cache-control","no"]],"user_meta":[["a","1"]],"tags":[["t","v"]],"#,
                r#""checksum":{"algorithm":1,"kind":1,"value":"AAAA"},"parts":[{"number":0,"size":5,"#,
                r#""etag":"e","checksum":null,"stream":{"stream_id":"abababababababababababababababab","#,
                r#""cipher":1,"block_size":64,"segment_size":128,"segments":[{"index":0,"plain_size":3,"#,
                r#""wrapped_key":"0102","placement":{"inline":"/w=="}},{"index":1,"plain_size":2,"#,
                r#""wrapped_key":"03","placement":{"pieces":{"k":1,"n":2,"chunk_size":16,"#,
                r#""pieces":[{"number":1,"node":"n2"}]}}}],"accounting":{"encoded_bytes":1,"#,
                r#""uploaded_bytes":2,"long_tail_bytes":0}}}]}}"#
            )
        );
    }

    fn raw(seq: u64, change: &Change) -> RawEntry {
        RawEntry {
            seq,
            at_ms: 100 + seq as i64,
            change: change.to_json().unwrap(),
        }
    }

    #[test]
    fn batches_round_trip_padded() {
        let changes = [
            Change::CreateBucket {
                name: "b".into(),
                created_ms: 1,
            },
            Change::PutObject { record: record() },
            Change::GarbageDone {
                stream_id: StreamId([7; 16]),
            },
        ];
        let entries: Vec<RawEntry> = changes
            .iter()
            .enumerate()
            .map(|(i, c)| raw(10 + i as u64, c))
            .collect();
        let bytes = encode_batch(&entries);
        assert_eq!(bytes.len() % BATCH_PADDING, 0);
        let batch = decode_batch(&bytes).unwrap();
        assert_eq!((batch.first_seq, batch.last_seq), (10, 12));
        let decoded: Vec<Change> = batch.entries.into_iter().map(|e| e.change).collect();
        assert_eq!(decoded, changes);
    }

    #[test]
    fn batches_with_gaps_or_foreign_headers_are_refused() {
        let c = Change::DeleteBucket { name: "b".into() };
        let bytes = encode_batch(&[raw(1, &c), raw(3, &c)]);
        assert!(matches!(decode_batch(&bytes), Err(LogError::Malformed(_))));
        let mut missing = encode_batch(&[raw(1, &c), raw(2, &c)]);
        let cut = missing.iter().rposition(|b| *b == b'}').unwrap();
        let start = missing[..cut].iter().rposition(|b| *b == b'\n').unwrap();
        missing.truncate(start + 1);
        assert!(matches!(
            decode_batch(&missing),
            Err(LogError::Malformed(_))
        ));
        assert_eq!(decode_batch(b"hello\n"), Err(LogError::NotABatch));
        assert_eq!(
            decode_batch(b"gateway-meta-log v99 1 1 1\n"),
            Err(LogError::TooNew(99))
        );
    }
}
