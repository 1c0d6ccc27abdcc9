//! CopyObject, UploadPartCopy and object tags.
//!
//! A whole-object copy moves no piece data: the new object's parts reference the source's
//! streams (the metadata store keeps a stream alive while anything references it). Only a
//! ranged part copy reads the source range through the normal GET path and stores it as a
//! new stream, inside the gateway.

use bytes::Bytes;
use tokio::sync::mpsc;

use super::conditions::{Conditions, Outcome};
use super::put::{store_body, upload_memory};
use super::{now_ms, BodyEvent, BodyReceiver, ByteRange, ObjectError, ObjectLayer, PartOutcome};
use crate::checksum::{ChecksumAlgorithm, Hasher};
use crate::meta::{ObjectRecord, Precondition, StoredChecksum};

/// What a copy does with metadata (`x-amz-metadata-directive`).
#[derive(Debug, Clone)]
pub enum MetadataDirective {
    Copy,
    Replace {
        content_type: Option<String>,
        system_meta: Vec<(String, String)>,
        user_meta: Vec<(String, String)>,
    },
}

/// What a copy does with tags (`x-amz-tagging-directive`).
#[derive(Debug, Clone)]
pub enum TaggingDirective {
    Copy,
    Replace(Vec<(String, String)>),
}

#[derive(Debug, Clone)]
pub struct CopyObject {
    pub src_bucket: String,
    pub src_key: String,
    pub dst_bucket: String,
    pub dst_key: String,
    pub metadata: MetadataDirective,
    pub tagging: TaggingDirective,
    /// `x-amz-copy-source-if-*`.
    pub source_conditions: Conditions,
    /// Conditional write on the destination.
    pub precondition: Precondition,
}

#[derive(Debug, Clone)]
pub struct CopyOutcome {
    pub etag: String,
    pub last_modified_ms: i64,
    pub checksum: Option<StoredChecksum>,
}

impl ObjectLayer {
    async fn copy_source(
        &self,
        bucket: &str,
        key: &str,
        conditions: &Conditions,
    ) -> Result<ObjectRecord, ObjectError> {
        let src = self.head_object(bucket, key).await?;
        if conditions.evaluate_copy_source(&src.etag, src.last_modified_ms) != Outcome::Proceed {
            return Err(ObjectError::PreconditionFailed);
        }
        Ok(src)
    }

    pub async fn copy_object(&self, req: CopyObject) -> Result<CopyOutcome, ObjectError> {
        let src = self
            .copy_source(&req.src_bucket, &req.src_key, &req.source_conditions)
            .await?;
        self.bucket(&req.dst_bucket).await?;
        let same = req.src_bucket == req.dst_bucket && req.src_key == req.dst_key;
        if same
            && matches!(req.metadata, MetadataDirective::Copy)
            && matches!(req.tagging, TaggingDirective::Copy)
        {
            return Err(ObjectError::InvalidRequest(
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.".into(),
            ));
        }
        let mut rec = src;
        rec.bucket = req.dst_bucket;
        rec.key = req.dst_key;
        rec.last_modified_ms = now_ms();
        if let MetadataDirective::Replace {
            content_type,
            system_meta,
            user_meta,
        } = req.metadata
        {
            rec.content_type = content_type;
            rec.system_meta = system_meta;
            rec.user_meta = user_meta;
        }
        if let TaggingDirective::Replace(tags) = req.tagging {
            rec.tags = tags;
        }
        // Shared streams must still be live: a source deleted (and collected) meanwhile makes
        // the copy fail rather than resurrect a body whose pieces are gone.
        self.inner
            .meta
            .put_object_sharing(&rec, &req.precondition)
            .await?;
        self.inner.gc_wake.notify_one();
        Ok(CopyOutcome {
            etag: rec.etag,
            last_modified_ms: rec.last_modified_ms,
            checksum: rec.checksum,
        })
    }

    /// UploadPartCopy: the source (or a range of it) becomes part `number` of the upload.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part_copy(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        src_bucket: &str,
        src_key: &str,
        range: Option<(u64, u64)>,
        conditions: &Conditions,
    ) -> Result<PartOutcome, ObjectError> {
        let upload = self.upload(bucket, key, upload_id).await?;
        let src = self.copy_source(src_bucket, src_key, conditions).await?;
        if let Some((a, b)) = range {
            if b >= src.size || a > b {
                return Err(ObjectError::InvalidRange { size: src.size });
            }
        }
        let algorithm = upload
            .checksum_algorithm
            .and_then(ChecksumAlgorithm::from_id);
        let byte_range = range.map(|(a, b)| ByteRange::FromTo(a, b));
        // Memory for the read and the write at once: reserving them one after the other could
        // leave copies holding reads while waiting for writes nobody frees.
        let (start, end) = range.map_or((0, src.size), |(a, b)| (a, b + 1));
        // The source's pieces stay while the copy waits for memory (see `read_object_in`).
        let _lease = super::ReadLease::new(
            &self.inner,
            src.parts.iter().map(|p| p.stream.stream_id).collect(),
        );
        let nodes = self.inner.transfers.node_count();
        let memory = self
            .inner
            .transfers
            .reserve_memory(
                super::get::download_memory(&src, start, end)
                    + upload_memory(&self.inner.storage, nodes, Some(end - start))
                    // The frames in the feed and its channel are the read's, not the body
                    // frames the upload counts.
                    + 3 * super::get::FRAME_BYTES,
            )
            .await?;
        // The version whose conditions and size were checked is the one copied.
        let mut got = self
            .read_object_in(src, byte_range, super::get::Lane::Copy)
            .await?;
        let (tx, rx) = mpsc::channel(2);
        let rx = BodyReceiver::new(rx, Some(end - start));
        // Feed the decrypted source into a new stream; hash it if the upload wants checksums.
        let feed = async move {
            let mut hasher = algorithm.map(Hasher::new);
            while let Some(item) = got.body.recv().await {
                let bytes: Bytes = item?;
                if let Some(h) = hasher.as_mut() {
                    h.update(&bytes);
                }
                if tx.send(BodyEvent::Data(bytes)).await.is_err() {
                    return Ok(());
                }
            }
            let checksum = hasher.map(|h| {
                let c = h.finish();
                StoredChecksum {
                    algorithm: c.algorithm.id(),
                    kind: crate::checksum::ChecksumType::FullObject.id(),
                    value: c.to_base64(),
                }
            });
            let _ = tx.send(BodyEvent::End(checksum)).await;
            Ok::<(), ObjectError>(())
        };
        let (fed, stored) = tokio::join!(feed, store_body(&self.inner, rx, Some(memory)));
        fed?;
        let body = stored?;
        self.commit_part(bucket, key, upload_id, number, body).await
    }

    pub async fn object_tags(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Vec<(String, String)>, ObjectError> {
        Ok(self.head_object(bucket, key).await?.tags)
    }

    pub async fn set_object_tags(
        &self,
        bucket: &str,
        key: &str,
        tags: &[(String, String)],
    ) -> Result<(), ObjectError> {
        self.bucket(bucket).await?;
        Ok(self.inner.meta.set_object_tags(bucket, key, tags).await?)
    }

    pub async fn bucket_tags(
        &self,
        bucket: &str,
    ) -> Result<Option<Vec<(String, String)>>, ObjectError> {
        Ok(self.inner.meta.get_bucket_tags(bucket).await?)
    }

    pub async fn set_bucket_tags(
        &self,
        bucket: &str,
        tags: Option<&[(String, String)]>,
    ) -> Result<(), ObjectError> {
        Ok(self.inner.meta.set_bucket_tags(bucket, tags).await?)
    }
}
