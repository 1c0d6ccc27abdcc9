//! Multipart uploads: create, parts, abort, complete, listing.
//!
//! An upload row owns its `upload_parts` rows (ON DELETE CASCADE). An upload is addressed by
//! bucket, key and upload id together: an id under another bucket or key is `NoSuchUpload`,
//! as S3 answers. Completing or aborting deletes the upload in the same transaction that
//! releases its parts' streams, so of two racing completes (or a complete and an abort)
//! exactly one succeeds and the other gets `NoSuchUpload`.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::super::log::Change;
use super::super::MAX_PART_NUMBER;
use super::super::{
    CompletedUpload, MetaError, ObjectRecord, PartRecord, PartSummary, Precondition, StreamId,
    UploadListPage, UploadListQuery, UploadRecord,
};
use super::objects::{check_precondition, replace_object, validate_object};
use super::{from_json, list, require_bucket, sql_limit, streams, to_json, SqliteMeta};

/// How long a completion is remembered for retried CompleteMultipartUploads. Rows are pruned
/// by later completions, counted back from the completing object's `last_modified_ms` (not
/// the wall clock), so replaying the change log prunes exactly the same rows.
pub const COMPLETED_UPLOAD_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;

impl SqliteMeta {
    /// Records a new upload. `NoSuchBucket`; `InvalidRecord` if the upload id is taken.
    pub fn create_upload(&self, u: &UploadRecord) -> Result<(), MetaError> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        require_bucket(&tx, &u.bucket)?;
        let taken = tx
            .prepare_cached("SELECT 1 FROM uploads WHERE upload_id = ?1")?
            .exists(params![u.upload_id])?;
        if taken {
            return Err(MetaError::InvalidRecord(format!(
                "upload id {} already exists",
                u.upload_id
            )));
        }
        tx.prepare_cached(
            "INSERT INTO uploads (upload_id, bucket, key, initiated_ms, content_type,
                 system_meta, user_meta, tags, checksum_algorithm, checksum_kind)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            u.upload_id,
            u.bucket,
            u.key.as_bytes(),
            u.initiated_ms,
            u.content_type,
            to_json(&u.system_meta)?,
            to_json(&u.user_meta)?,
            to_json(&u.tags)?,
            u.checksum_algorithm,
            u.checksum_kind,
        ])?;
        self.commit(tx, Change::CreateUpload { upload: u.clone() })
    }

    /// The upload if it exists under this bucket and key; `NoSuchBucket` if the bucket is
    /// missing.
    pub fn get_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<UploadRecord>, MetaError> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        let row = tx
            .prepare_cached(
                "SELECT initiated_ms, content_type, system_meta, user_meta, tags,
                        checksum_algorithm, checksum_kind
                 FROM uploads WHERE upload_id = ?1 AND bucket = ?2 AND key = ?3",
            )?
            .query_row(params![upload_id, bucket, key.as_bytes()], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, Option<String>>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, Option<u8>>(5)?,
                    row.get::<_, Option<u8>>(6)?,
                ))
            })
            .optional()?;
        let Some((initiated_ms, content_type, sys, user, tags, algorithm, kind)) = row else {
            require_bucket(&tx, bucket)?;
            return Ok(None);
        };
        Ok(Some(UploadRecord {
            upload_id: upload_id.to_owned(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            initiated_ms,
            content_type,
            system_meta: from_json(&sys, "uploads.system_meta")?,
            user_meta: from_json(&user, "uploads.user_meta")?,
            tags: from_json(&tags, "uploads.tags")?,
            checksum_algorithm: algorithm,
            checksum_kind: kind,
        }))
    }

    /// Stores a part, replacing any part of the same number (whose stream becomes garbage
    /// unless referenced elsewhere). The part's stream is inserted if unknown and shared if
    /// live, like an object part's. `NoSuchBucket`, `NoSuchUpload`, `StreamGone`,
    /// `InvalidRecord` (number outside `1..=MAX_PART_NUMBER`, malformed stream).
    pub fn put_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part: &PartRecord,
    ) -> Result<(), MetaError> {
        let what = format!("{bucket}/{key} upload {upload_id} part {}", part.number);
        if !(1..=MAX_PART_NUMBER).contains(&part.number) {
            return Err(MetaError::InvalidRecord(format!(
                "{what}: part number outside 1..={MAX_PART_NUMBER}"
            )));
        }
        streams::validate_stream(&part.stream, &what)?;
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        require_upload(&tx, bucket, key, upload_id)?;
        streams::reference(&tx, &part.stream)?;
        let replaced = tx
            .prepare_cached(
                "SELECT stream_id FROM upload_parts WHERE upload_id = ?1 AND number = ?2",
            )?
            .query_row(params![upload_id, part.number], |row| {
                row.get::<_, [u8; 16]>(0).map(StreamId)
            })
            .optional()?;
        tx.prepare_cached(
            "INSERT INTO upload_parts (upload_id, number, stream_id, size, etag, checksum,
                 last_modified_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (upload_id, number) DO UPDATE SET
                 stream_id = excluded.stream_id, size = excluded.size, etag = excluded.etag,
                 checksum = excluded.checksum, last_modified_ms = excluded.last_modified_ms",
        )?
        .execute(params![
            upload_id,
            part.number,
            part.stream.stream_id.0,
            part.size,
            part.etag,
            part.checksum,
            part.last_modified_ms,
        ])?;
        if let Some(old) = replaced {
            streams::release(&tx, &[old])?;
        }
        self.commit(
            tx,
            Change::PutPart {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                upload_id: upload_id.to_owned(),
                part: part.clone(),
            },
        )
    }

    /// Every part with its full stream, by number. `NoSuchBucket`, `NoSuchUpload`.
    pub fn get_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<PartRecord>, MetaError> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        require_upload(&tx, bucket, key, upload_id)?;
        let rows = tx
            .prepare_cached(
                "SELECT number, size, etag, checksum, last_modified_ms, stream_id
                 FROM upload_parts WHERE upload_id = ?1 ORDER BY number",
            )?
            .query_map(params![upload_id], |row| {
                Ok((summary(row)?, StreamId(row.get::<_, [u8; 16]>(5)?)))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut parts = Vec::with_capacity(rows.len());
        for (s, id) in rows {
            parts.push(PartRecord {
                number: s.number,
                size: s.size,
                etag: s.etag,
                checksum: s.checksum,
                last_modified_ms: s.last_modified_ms,
                stream: streams::read_stream(&tx, id)?,
            });
        }
        Ok(parts)
    }

    /// ListParts: up to `max` parts numbered above `after`, by number, and whether more
    /// follow. `max == 0` gives an empty, untruncated page (as for object listings).
    /// `NoSuchBucket`, `NoSuchUpload`.
    pub fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        after: u32,
        max: usize,
    ) -> Result<(Vec<PartSummary>, bool), MetaError> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        require_upload(&tx, bucket, key, upload_id)?;
        if max == 0 {
            return Ok((Vec::new(), false));
        }
        let mut parts = tx
            .prepare_cached(
                "SELECT number, size, etag, checksum, last_modified_ms FROM upload_parts
                 WHERE upload_id = ?1 AND number > ?2 ORDER BY number LIMIT ?3",
            )?
            .query_map(
                params![upload_id, after, sql_limit(max.saturating_add(1))],
                summary,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        let truncated = parts.len() > max;
        parts.truncate(max);
        Ok((parts, truncated))
    }

    /// Deletes the upload and its parts; their streams become garbage unless referenced
    /// elsewhere. `NoSuchBucket`, `NoSuchUpload`.
    pub fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<(), MetaError> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        require_upload(&tx, bucket, key, upload_id)?;
        let parts = part_streams(&tx, upload_id)?;
        tx.prepare_cached("DELETE FROM uploads WHERE upload_id = ?1")?
            .execute(params![upload_id])?;
        streams::release(&tx, &parts)?;
        self.commit(
            tx,
            Change::AbortUpload {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                upload_id: upload_id.to_owned(),
            },
        )
    }

    /// Turns the upload into the object `rec` (same bucket and key) in one transaction.
    ///
    /// Each part of `rec` must be the upload's current part of that number, on the same
    /// stream; otherwise (the part was replaced meanwhile, or never existed) `StreamGone`
    /// names the stream of `rec` that is not the upload's. The upload and its parts are
    /// deleted; streams of parts `rec` leaves out, and streams of the replaced object, become
    /// garbage unless referenced elsewhere. The same transaction remembers the completion for
    /// [`SqliteMeta::completed_upload`]. Errors: `NoSuchUpload` (unknown, completed or
    /// aborted, or under another bucket/key), `NoSuchBucket`, the precondition errors of
    /// [`SqliteMeta::put_object`], `StreamGone`, `InvalidRecord`.
    pub fn complete_upload(
        &self,
        upload_id: &str,
        rec: &ObjectRecord,
        pre: &Precondition,
    ) -> Result<(), MetaError> {
        validate_object(rec)?;
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        require_upload(&tx, &rec.bucket, &rec.key, upload_id)?;
        check_precondition(&tx, &rec.bucket, &rec.key, pre)?;
        let uploaded: Vec<(u32, StreamId)> = tx
            .prepare_cached(
                "SELECT number, stream_id FROM upload_parts WHERE upload_id = ?1 ORDER BY number",
            )?
            .query_map(params![upload_id], |row| {
                Ok((row.get(0)?, StreamId(row.get::<_, [u8; 16]>(1)?)))
            })?
            .collect::<Result<_, _>>()?;
        for part in &rec.parts {
            let id = part.stream.stream_id;
            let current = uploaded
                .binary_search_by_key(&part.number, |(number, _)| *number)
                .ok()
                .and_then(|i| uploaded.get(i));
            if current.map(|(_, stream)| *stream) != Some(id) {
                return Err(MetaError::StreamGone(id));
            }
        }
        let mut released = replace_object(&tx, rec)?;
        tx.prepare_cached("DELETE FROM uploads WHERE upload_id = ?1")?
            .execute(params![upload_id])?;
        released.extend(uploaded.into_iter().map(|(_, id)| id));
        streams::release(&tx, &released)?;
        remember_completion(&tx, upload_id, rec)?;
        self.commit(
            tx,
            Change::CompleteUpload {
                upload_id: upload_id.to_owned(),
                record: rec.clone(),
            },
        )
    }

    /// How `upload_id` was completed into this bucket and key, if it was within the last
    /// [`COMPLETED_UPLOAD_RETENTION_MS`]; `None` for an upload never completed (unknown, in
    /// progress, aborted), completed under another bucket or key, or forgotten since.
    /// `NoSuchBucket` if the bucket is missing. The object under the key may have changed
    /// since: comparing it is the caller's business.
    pub fn completed_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<CompletedUpload>, MetaError> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        let row = tx
            .prepare_cached(
                "SELECT etag, parts, completed_ms FROM completed_uploads
                 WHERE upload_id = ?1 AND bucket = ?2 AND key = ?3",
            )?
            .query_row(params![upload_id, bucket, key.as_bytes()], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })
            .optional()?;
        let Some((etag, parts, completed_ms)) = row else {
            require_bucket(&tx, bucket)?;
            return Ok(None);
        };
        let parts = serde_json::from_str(&parts)
            .map_err(|e| MetaError::Corrupt(format!("completed_uploads.parts: {e}")))?;
        Ok(Some(CompletedUpload {
            upload_id: upload_id.to_owned(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            etag,
            parts,
            completed_ms,
        }))
    }

    /// One page of ListMultipartUploads; see [`UploadListQuery`]. `NoSuchBucket`.
    pub fn list_uploads(&self, q: &UploadListQuery) -> Result<UploadListPage, MetaError> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        require_bucket(&tx, q.bucket)?;
        Ok(list::uploads_page(&tx, q)?.0)
    }
}

/// Aborts every upload in `bucket` (DeleteBucket does, as S3 does for general-purpose
/// buckets); their parts' streams become garbage unless referenced elsewhere.
pub(super) fn abort_bucket_uploads(
    tx: &rusqlite::Transaction,
    bucket: &str,
) -> Result<(), MetaError> {
    let parts = tx
        .prepare_cached(
            "SELECT p.stream_id FROM uploads AS u JOIN upload_parts AS p
                 ON p.upload_id = u.upload_id
             WHERE u.bucket = ?1",
        )?
        .query_map(params![bucket], |row| {
            row.get::<_, [u8; 16]>(0).map(StreamId)
        })?
        .collect::<Result<Vec<_>, _>>()?;
    tx.prepare_cached("DELETE FROM uploads WHERE bucket = ?1")?
        .execute(params![bucket])?;
    streams::release(tx, &parts)
}

/// Records that `upload_id` became the object `rec`, and forgets completions older than
/// [`COMPLETED_UPLOAD_RETENTION_MS`] before `rec`'s time.
fn remember_completion(
    tx: &rusqlite::Transaction,
    upload_id: &str,
    rec: &ObjectRecord,
) -> Result<(), MetaError> {
    tx.prepare_cached("DELETE FROM completed_uploads WHERE completed_ms < ?1")?
        .execute(params![rec
            .last_modified_ms
            .saturating_sub(COMPLETED_UPLOAD_RETENTION_MS)])?;
    let parts: Vec<(u32, &str)> = rec
        .parts
        .iter()
        .map(|p| (p.number, p.etag.as_str()))
        .collect();
    let parts =
        serde_json::to_string(&parts).map_err(|e| MetaError::InvalidRecord(e.to_string()))?;
    tx.prepare_cached(
        "INSERT INTO completed_uploads (upload_id, bucket, key, etag, parts, completed_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        upload_id,
        rec.bucket,
        rec.key.as_bytes(),
        rec.etag,
        parts,
        rec.last_modified_ms,
    ])?;
    Ok(())
}

/// Ok if the upload exists under this bucket and key; else `NoSuchBucket` if the bucket is
/// missing, `NoSuchUpload` otherwise.
fn require_upload(
    conn: &Connection,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<(), MetaError> {
    let found = conn
        .prepare_cached("SELECT 1 FROM uploads WHERE upload_id = ?1 AND bucket = ?2 AND key = ?3")?
        .exists(params![upload_id, bucket, key.as_bytes()])?;
    if found {
        return Ok(());
    }
    require_bucket(conn, bucket)?;
    Err(MetaError::NoSuchUpload(upload_id.to_owned()))
}

fn part_streams(conn: &Connection, upload_id: &str) -> Result<Vec<StreamId>, MetaError> {
    let ids = conn
        .prepare_cached("SELECT stream_id FROM upload_parts WHERE upload_id = ?1")?
        .query_map(params![upload_id], |row| {
            row.get::<_, [u8; 16]>(0).map(StreamId)
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ids)
}

/// A part summary from a row starting `number, size, etag, checksum, last_modified_ms`.
fn summary(row: &rusqlite::Row) -> rusqlite::Result<PartSummary> {
    Ok(PartSummary {
        number: row.get(0)?,
        size: row.get(1)?,
        etag: row.get(2)?,
        checksum: row.get(3)?,
        last_modified_ms: row.get(4)?,
    })
}
