//! Objects: put (with preconditions, sharing live streams), get, delete, tags, listing.
//!
//! An object row owns its `object_parts` rows (ON DELETE CASCADE); replacing an object deletes
//! the old row and inserts the new one in the same transaction, then releases the streams the
//! old parts referenced (see [`streams::release`]).

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::super::log::Change;
use super::super::{
    DeleteCondition, ListPage, ListQuery, MetaError, ObjectPart, ObjectRecord, Precondition,
    StoredChecksum, StreamId,
};
use super::{from_json, list, require_bucket, streams, to_json, SqliteMeta};

impl SqliteMeta {
    /// Inserts or replaces (same bucket+key) atomically, if `pre` holds for the current object.
    ///
    /// Each part's stream is inserted if unknown, shared as stored if live (a copy: the
    /// segments in `rec` are ignored) and refused with `StreamGone` if it is garbage. Streams
    /// the replaced object referenced and nothing references any more become garbage.
    /// Errors: `NoSuchBucket`; `PreconditionFailed` (`IfNoneMatchStar` and the key exists,
    /// `IfMatch` and the ETag differs); `NoSuchKey` (`IfMatch` and the key is missing, as S3
    /// answers); `StreamGone`; `InvalidRecord` (part numbers not strictly increasing,
    /// `size` not the sum of the part sizes, a malformed stream).
    pub fn put_object(&self, rec: &ObjectRecord, pre: &Precondition) -> Result<(), MetaError> {
        self.write_object(rec, pre, false)
    }

    /// As [`SqliteMeta::put_object`] for a record whose streams all belong to another object
    /// (CopyObject): every stream must still be live. A stream that is unknown (its source was
    /// deleted and collected meanwhile) or garbage is `StreamGone`, never re-created.
    pub fn put_object_sharing(
        &self,
        rec: &ObjectRecord,
        pre: &Precondition,
    ) -> Result<(), MetaError> {
        self.write_object(rec, pre, true)
    }

    fn write_object(
        &self,
        rec: &ObjectRecord,
        pre: &Precondition,
        shared_only: bool,
    ) -> Result<(), MetaError> {
        validate_object(rec)?;
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        require_bucket(&tx, &rec.bucket)?;
        check_precondition(&tx, &rec.bucket, &rec.key, pre)?;
        for part in &rec.parts {
            if shared_only {
                streams::reference_live(&tx, &part.stream.stream_id)?;
            } else {
                streams::reference(&tx, &part.stream)?;
            }
        }
        let replaced = replace_object(&tx, rec)?;
        streams::release(&tx, &replaced)?;
        let record = rec.clone();
        let change = if shared_only {
            Change::PutObjectSharing { record }
        } else {
            Change::PutObject { record }
        };
        self.commit(tx, change)
    }

    /// The object with every part's full stream; `Ok(None)` if the bucket exists but the key
    /// does not.
    pub fn get_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>, MetaError> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        let object = read_object(&tx, bucket, key)?;
        if object.is_none() {
            require_bucket(&tx, bucket)?;
        }
        Ok(object)
    }

    /// Removes the object (if present; returns whether it existed); the streams it referenced
    /// become garbage unless referenced elsewhere.
    pub fn delete_object(&self, bucket: &str, key: &str) -> Result<bool, MetaError> {
        self.delete_object_if(bucket, key, &DeleteCondition::default())
    }

    /// [`SqliteMeta::delete_object`] if the object meets `condition`: `PreconditionFailed`
    /// when it does not, `NoSuchKey` when an `If-Match` finds no object, `Ok(false)` when only
    /// other conditions were given and there is no object (S3 answers 204 there).
    pub fn delete_object_if(
        &self,
        bucket: &str,
        key: &str,
        condition: &DeleteCondition,
    ) -> Result<bool, MetaError> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        require_bucket(&tx, bucket)?;
        if !condition.is_unconditional() && !check_delete_condition(&tx, bucket, key, condition)? {
            return Ok(false);
        }
        let referenced = object_streams(&tx, bucket, key)?;
        let deleted = tx
            .prepare_cached("DELETE FROM objects WHERE bucket = ?1 AND key = ?2")?
            .execute(params![bucket, key.as_bytes()])?;
        if deleted == 0 {
            return Ok(false);
        }
        streams::release(&tx, &referenced)?;
        self.commit(
            tx,
            Change::DeleteObject {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            },
        )?;
        Ok(true)
    }

    /// Replaces the object's tag set (empty = no tags); the last-modified time is not
    /// touched. `NoSuchBucket`, `NoSuchKey`.
    pub fn set_object_tags(
        &self,
        bucket: &str,
        key: &str,
        tags: &[(String, String)],
    ) -> Result<(), MetaError> {
        let change = Change::SetObjectTags {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            tags: tags.to_vec(),
        };
        let tags = to_json(tags)?;
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let updated = tx
            .prepare_cached("UPDATE objects SET tags = ?3 WHERE bucket = ?1 AND key = ?2")?
            .execute(params![bucket, key.as_bytes(), tags])?;
        if updated == 0 {
            require_bucket(&tx, bucket)?;
            return Err(MetaError::NoSuchKey);
        }
        self.commit(tx, change)
    }

    /// One page of an S3 listing; see [`ListQuery`]. `NoSuchBucket` if the bucket is missing.
    pub fn list_objects(&self, q: &ListQuery) -> Result<ListPage, MetaError> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        require_bucket(&tx, q.bucket)?;
        Ok(list::list_page(&tx, q)?.0)
    }
}

/// Checks what the schema cannot: part numbers increase strictly, `size` is the sum of the
/// parts' sizes, and every part's stream is well formed ([`streams::validate_stream`]).
pub(super) fn validate_object(rec: &ObjectRecord) -> Result<(), MetaError> {
    let what = format!("{}/{}", rec.bucket, rec.key);
    let invalid = |msg: String| MetaError::InvalidRecord(format!("{what}: {msg}"));
    let mut total: u64 = 0;
    let mut previous: Option<u32> = None;
    for part in &rec.parts {
        if previous.is_some_and(|p| p >= part.number) {
            return Err(invalid(format!(
                "part numbers must increase strictly ({} after {previous:?})",
                part.number
            )));
        }
        previous = Some(part.number);
        total = total
            .checked_add(part.size)
            .ok_or_else(|| invalid("part sizes overflow".into()))?;
        streams::validate_stream(&part.stream, &format!("{what} part {}", part.number))?;
    }
    if total != rec.size {
        return Err(invalid(format!(
            "size {} is not the sum of the part sizes ({total})",
            rec.size
        )));
    }
    Ok(())
}

/// Fails unless `pre` holds for the object currently stored under bucket+key. `IfMatch("*")`
/// holds for any existing object.
pub(super) fn check_precondition(
    conn: &Connection,
    bucket: &str,
    key: &str,
    pre: &Precondition,
) -> Result<(), MetaError> {
    if *pre == Precondition::None {
        return Ok(());
    }
    let etag = conn
        .prepare_cached("SELECT etag FROM objects WHERE bucket = ?1 AND key = ?2")?
        .query_row(params![bucket, key.as_bytes()], |row| {
            row.get::<_, String>(0)
        })
        .optional()?;
    match (pre, etag) {
        (Precondition::None, _) => Ok(()),
        (Precondition::IfNoneMatchStar, None) => Ok(()),
        (Precondition::IfNoneMatchStar, Some(_)) => Err(MetaError::PreconditionFailed),
        // S3 answers If-Match on a missing key with 404 NoSuchKey, not 412.
        (Precondition::IfMatch(_), None) => Err(MetaError::NoSuchKey),
        (Precondition::IfMatch(want), Some(have)) if *want == have || want == "*" => Ok(()),
        (Precondition::IfMatch(_), Some(_)) => Err(MetaError::PreconditionFailed),
    }
}

/// Whether the delete may go on: `Ok(false)` if there is no object and no `If-Match`.
fn check_delete_condition(
    conn: &Connection,
    bucket: &str,
    key: &str,
    c: &DeleteCondition,
) -> Result<bool, MetaError> {
    let current = conn
        .prepare_cached(
            "SELECT etag, last_modified_ms, size FROM objects WHERE bucket = ?1 AND key = ?2",
        )?
        .query_row(params![bucket, key.as_bytes()], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })
        .optional()?;
    let Some((etag, last_modified_ms, size)) = current else {
        return match c.if_match {
            Some(_) => Err(MetaError::NoSuchKey),
            None => Ok(false),
        };
    };
    let holds = c.if_match.as_ref().is_none_or(|m| m == "*" || *m == etag)
        && c.last_modified_secs
            .is_none_or(|t| t == last_modified_ms.div_euclid(1000))
        && c.size.is_none_or(|s| i64::try_from(s) == Ok(size));
    if holds {
        Ok(true)
    } else {
        Err(MetaError::PreconditionFailed)
    }
}

/// The streams the object's parts reference, in part order (empty if there is no object).
pub(super) fn object_streams(
    conn: &Connection,
    bucket: &str,
    key: &str,
) -> Result<Vec<StreamId>, MetaError> {
    let ids = conn
        .prepare_cached(
            "SELECT stream_id FROM object_parts WHERE bucket = ?1 AND key = ?2 ORDER BY idx",
        )?
        .query_map(params![bucket, key.as_bytes()], |row| {
            row.get::<_, [u8; 16]>(0).map(StreamId)
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ids)
}

/// Writes `rec` in place of the current object (if any) and returns the streams the replaced
/// object referenced, for the caller to release. Every part's stream row must exist.
pub(super) fn replace_object(
    tx: &Transaction,
    rec: &ObjectRecord,
) -> Result<Vec<StreamId>, MetaError> {
    let replaced = object_streams(tx, &rec.bucket, &rec.key)?;
    let key = rec.key.as_bytes();
    // The old parts go with the old row (ON DELETE CASCADE).
    tx.prepare_cached("DELETE FROM objects WHERE bucket = ?1 AND key = ?2")?
        .execute(params![rec.bucket, key])?;
    let checksum = rec.checksum.as_ref();
    tx.prepare_cached(
        "INSERT INTO objects (bucket, key, version_id, format, size, etag, last_modified_ms,
             content_type, system_meta, user_meta, tags, checksum_algorithm, checksum_kind,
             checksum)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        rec.bucket,
        key,
        rec.version_id,
        rec.format,
        rec.size,
        rec.etag,
        rec.last_modified_ms,
        rec.content_type,
        to_json(&rec.system_meta)?,
        to_json(&rec.user_meta)?,
        to_json(&rec.tags)?,
        checksum.map(|c| c.algorithm),
        checksum.map(|c| c.kind),
        checksum.map(|c| c.value.as_str()),
    ])?;
    let mut insert_part = tx.prepare_cached(
        "INSERT INTO object_parts (bucket, key, idx, number, stream_id, size, etag, checksum)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (idx, part) in rec.parts.iter().enumerate() {
        insert_part.execute(params![
            rec.bucket,
            key,
            idx,
            part.number,
            part.stream.stream_id.0,
            part.size,
            part.etag,
            part.checksum,
        ])?;
    }
    Ok(replaced)
}

type ObjectRow = (
    Option<String>,
    u32,
    u64,
    String,
    i64,
    Option<String>,
    String,
    String,
    String,
    (Option<u8>, Option<u8>, Option<String>),
);

fn read_object(
    conn: &Connection,
    bucket: &str,
    key: &str,
) -> Result<Option<ObjectRecord>, MetaError> {
    let row: Option<ObjectRow> = conn
        .prepare_cached(
            "SELECT version_id, format, size, etag, last_modified_ms, content_type,
                    system_meta, user_meta, tags, checksum_algorithm, checksum_kind, checksum
             FROM objects WHERE bucket = ?1 AND key = ?2",
        )?
        .query_row(params![bucket, key.as_bytes()], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
                row.get(7)?,
                row.get(8)?,
                (row.get(9)?, row.get(10)?, row.get(11)?),
            ))
        })
        .optional()?;
    let Some((
        version_id,
        format,
        size,
        etag,
        last_modified_ms,
        content_type,
        sys,
        user,
        tags,
        sum,
    )) = row
    else {
        return Ok(None);
    };
    let checksum = match sum {
        (Some(algorithm), Some(kind), Some(value)) => Some(StoredChecksum {
            algorithm,
            kind,
            value,
        }),
        (None, None, None) => None,
        _ => {
            return Err(MetaError::Corrupt(format!(
                "{bucket}/{key}: partial checksum columns"
            )))
        }
    };
    Ok(Some(ObjectRecord {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        version_id,
        format,
        size,
        etag,
        last_modified_ms,
        content_type,
        system_meta: from_json(&sys, "objects.system_meta")?,
        user_meta: from_json(&user, "objects.user_meta")?,
        tags: from_json(&tags, "objects.tags")?,
        checksum,
        parts: read_parts(conn, bucket, key)?,
    }))
}

type PartRow = (usize, u32, [u8; 16], u64, String, Option<String>);

fn read_parts(conn: &Connection, bucket: &str, key: &str) -> Result<Vec<ObjectPart>, MetaError> {
    let rows: Vec<PartRow> = conn
        .prepare_cached(
            "SELECT idx, number, stream_id, size, etag, checksum FROM object_parts
             WHERE bucket = ?1 AND key = ?2 ORDER BY idx",
        )?
        .query_map(params![bucket, key.as_bytes()], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut parts = Vec::with_capacity(rows.len());
    for (position, (idx, number, id, size, etag, checksum)) in rows.into_iter().enumerate() {
        if idx != position {
            return Err(MetaError::Corrupt(format!(
                "{bucket}/{key}: part index {idx} found at position {position}"
            )));
        }
        parts.push(ObjectPart {
            number,
            size,
            etag,
            checksum,
            stream: streams::read_stream(conn, StreamId(id))?,
        });
    }
    Ok(parts)
}
