//! Multipart uploads: each part is stored as its own stream when it arrives; completing the
//! upload commits an object whose parts reference those streams, so completion moves no data.
//!
//! Contract:
//! - Re-uploading a part number stores a new stream (fresh segment keys, so no key/nonce pair
//!   is ever reused) and makes the old one garbage.
//! - Completion validates the client's list as S3 does (ascending order → InvalidPartOrder;
//!   unknown part or ETag/checksum mismatch → InvalidPart; a non-last part under 5 MiB →
//!   EntityTooSmall) and commits atomically: of two racing completions exactly one commits,
//!   the other is answered as a retry (below). Parts not named in the list become garbage.
//! - A completion that finds its upload gone is answered as a retry of the one that completed
//!   it (as AWS does, so a client whose connection dropped after the commit does not report
//!   a failed upload), changing nothing: 200 with the committed ETag and checksum only if the
//!   upload was completed into this bucket and key within `COMPLETED_UPLOAD_RETENTION_MS`,
//!   the object under the key is still the one it committed (same ETag, last-modified time
//!   and parts), and the request lists exactly the parts completed (numbers and ETags, and
//!   the part and whole-object checksums it states). Otherwise NoSuchUpload: success is never
//!   reported for an object that is not the one the client completed. Preconditions are not
//!   evaluated again: they held when the completion committed.
//! - ETag: hex MD5 of the concatenated binary part MD5s, then `-N`. Checksums: COMPOSITE is the
//!   checksum of the concatenated part checksums plus `-N`; FULL_OBJECT (CRCs only) is the CRC
//!   of the whole object, combined from the part CRCs.

use std::collections::HashMap;

use md5::{Digest, Md5};

use super::put::{store_body, StoredBody};
use super::{now_ms, BodyReceiver, ObjectError, ObjectLayer};
use crate::checksum::{self, Checksum, ChecksumAlgorithm, ChecksumType};
use crate::meta::{
    CompletedUpload, MetaError, ObjectPart, ObjectRecord, PartRecord, PartSummary, Precondition,
    StoredChecksum, UploadListPage, UploadListQuery, UploadRecord, OBJECT_FORMAT,
};

/// Every part but the last must be at least this big (as on AWS).
pub const MIN_PART_SIZE: u64 = 5 << 20;

#[derive(Debug, Clone, Default)]
pub struct CreateUpload {
    pub bucket: String,
    pub key: String,
    pub content_type: Option<String>,
    pub system_meta: Vec<(String, String)>,
    pub user_meta: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    pub checksum: Option<(ChecksumAlgorithm, ChecksumType)>,
}

#[derive(Debug, Clone)]
pub struct PartOutcome {
    pub etag: String,
    pub checksum: Option<StoredChecksum>,
    pub last_modified_ms: i64,
}

/// One entry of the client's CompleteMultipartUpload list.
#[derive(Debug, Clone)]
pub struct CompletedPart {
    pub number: u32,
    /// Unquoted.
    pub etag: String,
    /// Base64 checksum the client says the part has, in the upload's algorithm.
    pub checksum: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CompleteOutcome {
    pub etag: String,
    pub checksum: Option<StoredChecksum>,
    pub size: u64,
}

impl ObjectLayer {
    pub async fn create_upload(&self, req: CreateUpload) -> Result<String, ObjectError> {
        self.bucket(&req.bucket).await?;
        let upload_id = new_upload_id()?;
        let rec = UploadRecord {
            upload_id: upload_id.clone(),
            bucket: req.bucket,
            key: req.key,
            initiated_ms: now_ms(),
            content_type: req.content_type,
            system_meta: req.system_meta,
            user_meta: req.user_meta,
            tags: req.tags,
            checksum_algorithm: req.checksum.map(|(a, _)| a.id()),
            checksum_kind: req.checksum.map(|(_, t)| t.id()),
        };
        self.inner.meta.create_upload(&rec).await?;
        Ok(upload_id)
    }

    /// The upload, or NoSuchUpload (also when it belongs to another bucket or key).
    pub async fn upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<UploadRecord, ObjectError> {
        self.bucket(bucket).await?;
        self.inner
            .meta
            .get_upload(bucket, key, upload_id)
            .await?
            .ok_or(ObjectError::NoSuchUpload)
    }

    /// Stores one part. `body`'s end event carries the verified checksum, if the client sent
    /// one or the upload asked for one.
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: BodyReceiver,
        expected_md5: Option<[u8; 16]>,
    ) -> Result<PartOutcome, ObjectError> {
        self.upload(bucket, key, upload_id).await?;
        let body = store_body(&self.inner, body, None).await?;
        if expected_md5.is_some_and(|m| m != body.md5) {
            return Err(ObjectError::BadDigest);
        }
        self.commit_part(bucket, key, upload_id, number, body).await
    }

    /// Records a stored body as part `number`, replacing any earlier part of that number.
    pub(super) async fn commit_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: StoredBody,
    ) -> Result<PartOutcome, ObjectError> {
        let etag = crate::crypto::encode_hex(&body.md5);
        let part = PartRecord {
            number,
            size: body.size,
            etag: etag.clone(),
            checksum: body.checksum.as_ref().map(|c| c.value.clone()),
            last_modified_ms: now_ms(),
            stream: body.stream.clone(),
        };
        let body_checksum = body.checksum.clone();
        let meta = self.inner.meta.clone();
        let (b, k, u, p) = (
            bucket.to_string(),
            key.to_string(),
            upload_id.to_string(),
            part.clone(),
        );
        body.commit(async move { meta.put_part(&b, &k, &u, &p).await })
            .await?;
        self.inner.gc_wake.notify_one();
        Ok(PartOutcome {
            etag,
            checksum: body_checksum,
            last_modified_ms: part.last_modified_ms,
        })
    }

    /// The algorithm CompleteMultipartUpload reads the part checksums of `upload_id` in: the
    /// upload's while it is in progress, else its completion's if a retry can be answered;
    /// NoSuchUpload otherwise.
    pub async fn completion_checksum_algorithm(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<ChecksumAlgorithm>, ObjectError> {
        match self.upload(bucket, key, upload_id).await {
            Ok(upload) => Ok(upload
                .checksum_algorithm
                .and_then(ChecksumAlgorithm::from_id)),
            Err(ObjectError::NoSuchUpload) => Ok(self
                .completion(bucket, key, upload_id)
                .await?
                .checksum_algorithm()),
            Err(e) => Err(e),
        }
    }

    /// Completes the upload, or answers a retry of its completion (see the module docs).
    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        list: &[CompletedPart],
        precondition: &Precondition,
        expected_checksum: Option<String>,
    ) -> Result<CompleteOutcome, ObjectError> {
        let expected_checksum = expected_checksum.as_deref();
        match self
            .commit_completion(
                bucket,
                key,
                upload_id,
                list,
                precondition,
                expected_checksum,
            )
            .await
        {
            // Completed before this request, or by a copy of it that won the race.
            Err(ObjectError::NoSuchUpload) => self
                .completion(bucket, key, upload_id)
                .await?
                .answer(list, expected_checksum),
            outcome => outcome,
        }
    }

    /// How `upload_id` was completed, if it was and the object under the key is still the one
    /// it committed; NoSuchUpload otherwise.
    async fn completion(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Completion, ObjectError> {
        let completed = self
            .inner
            .meta
            .completed_upload(bucket, key, upload_id)
            .await?
            .ok_or(ObjectError::NoSuchUpload)?;
        // Read after the record, so a match means the object under the key was the
        // completion's at a moment after it committed.
        let object = self
            .inner
            .meta
            .get_object(bucket, key)
            .await?
            .ok_or(ObjectError::NoSuchUpload)?;
        let still = object.etag == completed.etag
            && object.last_modified_ms == completed.completed_ms
            && object
                .parts
                .iter()
                .map(|p| (p.number, p.etag.as_str()))
                .eq(completed.parts.iter().map(|(n, e)| (*n, e.as_str())));
        if !still {
            return Err(ObjectError::NoSuchUpload);
        }
        Ok(Completion { completed, object })
    }

    /// Checks `list` against the upload in progress and commits its object.
    async fn commit_completion(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        list: &[CompletedPart],
        precondition: &Precondition,
        expected_checksum: Option<&str>,
    ) -> Result<CompleteOutcome, ObjectError> {
        let upload = self.upload(bucket, key, upload_id).await?;
        if list.is_empty() {
            return Err(ObjectError::InvalidRequest(
                "You must specify at least one part".into(),
            ));
        }
        if list.windows(2).any(|w| w[0].number >= w[1].number) {
            return Err(ObjectError::InvalidPartOrder);
        }
        let stored = self.inner.meta.get_parts(bucket, key, upload_id).await?;
        let algorithm = upload
            .checksum_algorithm
            .and_then(ChecksumAlgorithm::from_id);
        // One pass over each list (linear, not one search per listed part): both are in
        // ascending part number order, `list` strictly (checked above), `stored` as the
        // metadata returns it (by number).
        let by_number: HashMap<u32, &PartRecord> = stored.iter().map(|p| (p.number, p)).collect();
        let mut chosen = Vec::with_capacity(list.len());
        for (i, want) in list.iter().enumerate() {
            let part = by_number
                .get(&want.number)
                .copied()
                .filter(|p| p.etag == want.etag)
                .ok_or(ObjectError::InvalidPart(want.number))?;
            if let (Some(given), Some(have)) = (&want.checksum, &part.checksum) {
                if given != have {
                    return Err(ObjectError::InvalidPart(want.number));
                }
            }
            if i + 1 < list.len() && part.size < MIN_PART_SIZE {
                return Err(ObjectError::EntityTooSmall(want.number));
            }
            chosen.push(part);
        }

        let mut md5s = Md5::new();
        for p in &chosen {
            let raw = crate::crypto::decode_hex(&p.etag).ok_or_else(|| {
                ObjectError::Internal(format!("stored part ETag {:?} is not hex", p.etag))
            })?;
            md5s.update(&raw);
        }
        let etag = format!(
            "{}-{}",
            crate::crypto::encode_hex(&md5s.finalize()),
            chosen.len()
        );
        let checksum = match (algorithm, upload.checksum_kind) {
            (Some(a), Some(kind)) => {
                // Combining 10 000 part CRCs takes a while: off the reactor.
                let parts: Vec<(u32, Option<String>, u64)> = chosen
                    .iter()
                    .map(|p| (p.number, p.checksum.clone(), p.size))
                    .collect();
                let sum = tokio::task::spawn_blocking(move || whole_checksum(a, kind, &parts))
                    .await
                    .map_err(|e| ObjectError::Internal(e.to_string()))??;
                Some(sum)
            }
            _ => None,
        };
        if let (Some(want), Some(have)) = (expected_checksum, &checksum) {
            if want != have.value {
                return Err(ObjectError::ChecksumMismatch(
                    algorithm.map_or("checksum", |a| a.name()).to_string(),
                ));
            }
        }
        let size = chosen.iter().map(|p| p.size).sum();
        let rec = ObjectRecord {
            bucket: bucket.to_string(),
            key: key.to_string(),
            version_id: None,
            format: OBJECT_FORMAT,
            size,
            etag: etag.clone(),
            last_modified_ms: now_ms(),
            content_type: upload.content_type,
            system_meta: upload.system_meta,
            user_meta: upload.user_meta,
            tags: upload.tags,
            checksum: checksum.clone(),
            parts: chosen
                .iter()
                .map(|p| ObjectPart {
                    number: p.number,
                    size: p.size,
                    etag: p.etag.clone(),
                    checksum: p.checksum.clone(),
                    stream: p.stream.clone(),
                })
                .collect(),
        };
        self.inner
            .meta
            .complete_upload(upload_id, &rec, precondition)
            .await
            .map_err(|e| match e {
                // A part replaced or removed since we read the list.
                MetaError::StreamGone(_) => ObjectError::InvalidPart(0),
                e => e.into(),
            })?;
        self.inner.gc_wake.notify_one();
        Ok(CompleteOutcome {
            etag,
            checksum,
            size,
        })
    }

    pub async fn abort_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), ObjectError> {
        self.bucket(bucket).await?;
        self.inner.meta.abort_upload(bucket, key, upload_id).await?;
        self.inner.gc_wake.notify_one();
        Ok(())
    }

    pub async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        after: u32,
        max: usize,
    ) -> Result<(UploadRecord, Vec<PartSummary>, bool), ObjectError> {
        let upload = self.upload(bucket, key, upload_id).await?;
        let (parts, truncated) = self
            .inner
            .meta
            .list_parts(bucket, key, upload_id, after, max)
            .await?;
        Ok((upload, parts, truncated))
    }

    pub async fn list_uploads(
        &self,
        q: &UploadListQuery<'_>,
    ) -> Result<UploadListPage, ObjectError> {
        self.bucket(q.bucket).await?;
        Ok(self.inner.meta.list_uploads(q).await?)
    }
}

/// A completed upload whose object is still the one under its key.
struct Completion {
    completed: CompletedUpload,
    object: ObjectRecord,
}

impl Completion {
    fn checksum_algorithm(&self) -> Option<ChecksumAlgorithm> {
        let sum = self.object.checksum.as_ref()?;
        ChecksumAlgorithm::from_id(sum.algorithm)
    }

    /// The outcome the completion had, if `list` and `expected_checksum` describe it;
    /// NoSuchUpload otherwise, since the request is then not a retry of this completion.
    fn answer(
        self,
        list: &[CompletedPart],
        expected_checksum: Option<&str>,
    ) -> Result<CompleteOutcome, ObjectError> {
        // `completion` checked that the object's parts are the completed ones.
        let same_parts = list.len() == self.completed.parts.len()
            && list
                .iter()
                .zip(self.completed.parts.iter().zip(&self.object.parts))
                .all(|(want, ((number, etag), part))| {
                    want.number == *number
                        && want.etag == *etag
                        && match (&want.checksum, &part.checksum) {
                            (Some(given), Some(have)) => given == have,
                            _ => true,
                        }
                });
        let same_sum = match (expected_checksum, &self.object.checksum) {
            (Some(want), Some(have)) => want == have.value,
            _ => true,
        };
        if !(same_parts && same_sum) {
            return Err(ObjectError::NoSuchUpload);
        }
        Ok(CompleteOutcome {
            etag: self.object.etag,
            checksum: self.object.checksum,
            size: self.object.size,
        })
    }
}

/// The whole-object checksum of a completed upload from its parts' checksums.
/// `parts`: (number, base64 checksum, size) in object order.
fn whole_checksum(
    a: ChecksumAlgorithm,
    kind: u8,
    parts: &[(u32, Option<String>, u64)],
) -> Result<StoredChecksum, ObjectError> {
    let mut sums = Vec::with_capacity(parts.len());
    for (number, checksum, size) in parts {
        let value = checksum.as_deref().ok_or_else(|| {
            ObjectError::InvalidRequest(format!(
                "part {number} was uploaded without a {} checksum",
                a.name()
            ))
        })?;
        let sum = Checksum::from_base64(a, value)
            .map_err(|e| ObjectError::Internal(format!("stored part checksum: {e}")))?;
        sums.push((sum, *size));
    }
    let value = if kind == ChecksumType::Composite.id() {
        let only: Vec<Checksum> = sums.into_iter().map(|(c, _)| c).collect();
        checksum::composite(a, &only).map_err(|e| ObjectError::InvalidRequest(e.to_string()))?
    } else {
        checksum::combine_full_object(a, &sums)
            .map_err(|e| ObjectError::InvalidRequest(e.to_string()))?
            .to_base64()
    };
    Ok(StoredChecksum {
        algorithm: a.id(),
        kind,
        value,
    })
}

/// Upload ids sort in creation order (S3 lists the uploads of one key oldest first): the
/// creation time in milliseconds and a process-wide sequence number, then 16 random bytes so
/// ids cannot be guessed.
fn new_upload_id() -> Result<String, ObjectError> {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut rand = [0u8; 16];
    crate::crypto::random_bytes(&mut rand)?;
    Ok(format!(
        "{:012x}{:08x}{}",
        now_ms().max(0),
        seq,
        crate::crypto::encode_hex(&rand)
    ))
}
