//! [`Meta`]: the async facade over [`SqliteMeta`]. Every call clones its arguments and runs
//! the synchronous call on tokio's blocking pool; results and errors are exactly those of the
//! [`SqliteMeta`] method of the same name.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::log::RawEntry;
use super::{
    BucketInfo, CompletedUpload, DeleteCondition, Garbage, HealthCounts, ListPage, ListQuery,
    MetaError, ObjectRecord, PartRecord, PartSummary, PieceFinding, PieceRecord, Precondition,
    RepairSource, ReplicationState, SegmentHealth, SnapshotTaken, SqliteMeta, StorageTotals,
    StreamId, UploadListPage, UploadListQuery, UploadRecord,
};

/// Cheap to clone; clones share the same database connections.
#[derive(Debug, Clone)]
pub struct Meta {
    inner: Arc<SqliteMeta>,
    /// Sync replication: writes return once the change is durable elsewhere (the watched
    /// sequence number reaches theirs), or fail with `NotReplicated` after the timeout.
    durable: Option<(watch::Receiver<u64>, Duration)>,
}

impl From<SqliteMeta> for Meta {
    fn from(backend: SqliteMeta) -> Self {
        Meta {
            inner: Arc::new(backend),
            durable: None,
        }
    }
}

type Tags = Vec<(String, String)>;

impl Meta {
    /// Opens or creates the database at `path`; see [`SqliteMeta::open`].
    pub async fn open(path: &Path) -> Result<Meta, MetaError> {
        let path = path.to_path_buf();
        let backend = tokio::task::spawn_blocking(move || SqliteMeta::open(&path)).await??;
        Ok(Meta::from(backend))
    }

    /// This handle's writes return only once `durable` reports their change (sync
    /// replication); see [`MetaError::NotReplicated`].
    pub fn with_durability(mut self, durable: watch::Receiver<u64>, timeout: Duration) -> Meta {
        self.durable = Some((durable, timeout));
        self
    }

    async fn run<T, F>(&self, f: F) -> Result<T, MetaError>
    where
        T: Send + 'static,
        F: FnOnce(&SqliteMeta) -> Result<T, MetaError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner)).await?
    }

    /// A mutation: [`Meta::run`], then (sync replication) the wait for its change to be
    /// durable. The sequence number read after the call is at least the call's own (writes
    /// are serialised), so waiting for it is never too early.
    async fn write<T, F>(&self, f: F) -> Result<T, MetaError>
    where
        T: Send + 'static,
        F: FnOnce(&SqliteMeta) -> Result<T, MetaError> + Send + 'static,
    {
        let out = self.run(f).await?;
        if let Some((durable, timeout)) = &self.durable {
            let seq = *self.inner.subscribe_commits().borrow();
            let mut rx = durable.clone();
            let waited = tokio::time::timeout(*timeout, async {
                rx.wait_for(|d| *d >= seq).await.map(|_| ())
            })
            .await;
            match waited {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    return Err(MetaError::NotReplicated(
                        "metadata replication has stopped".into(),
                    ))
                }
                Err(_) => {
                    return Err(MetaError::NotReplicated(format!(
                        "the change is committed but not on the nodes after {} s (sync replication); it is shipped when enough nodes answer",
                        timeout.as_secs()
                    )))
                }
            }
        }
        Ok(out)
    }

    pub async fn create_bucket(&self, name: &str, created_ms: i64) -> Result<(), MetaError> {
        let name = name.to_owned();
        self.write(move |m| m.create_bucket(&name, created_ms))
            .await
    }

    pub async fn delete_bucket(&self, name: &str) -> Result<(), MetaError> {
        let name = name.to_owned();
        self.write(move |m| m.delete_bucket(&name)).await
    }

    pub async fn get_bucket(&self, name: &str) -> Result<Option<BucketInfo>, MetaError> {
        let name = name.to_owned();
        self.run(move |m| m.get_bucket(&name)).await
    }

    pub async fn list_buckets(&self) -> Result<Vec<BucketInfo>, MetaError> {
        self.run(|m| m.list_buckets()).await
    }

    pub async fn set_bucket_tags(
        &self,
        bucket: &str,
        tags: Option<&[(String, String)]>,
    ) -> Result<(), MetaError> {
        let bucket = bucket.to_owned();
        let tags: Option<Tags> = tags.map(<[_]>::to_vec);
        self.write(move |m| m.set_bucket_tags(&bucket, tags.as_deref()))
            .await
    }

    pub async fn get_bucket_tags(&self, bucket: &str) -> Result<Option<Tags>, MetaError> {
        let bucket = bucket.to_owned();
        self.run(move |m| m.get_bucket_tags(&bucket)).await
    }

    pub async fn put_object(
        &self,
        rec: &ObjectRecord,
        pre: &Precondition,
    ) -> Result<(), MetaError> {
        let (rec, pre) = (rec.clone(), pre.clone());
        self.write(move |m| m.put_object(&rec, &pre)).await
    }

    pub async fn put_object_sharing(
        &self,
        rec: &ObjectRecord,
        pre: &Precondition,
    ) -> Result<(), MetaError> {
        let (rec, pre) = (rec.clone(), pre.clone());
        self.write(move |m| m.put_object_sharing(&rec, &pre)).await
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
        self.delete_object_if(bucket, key, &DeleteCondition::default())
            .await
    }

    /// [`SqliteMeta::delete_object_if`].
    pub async fn delete_object_if(
        &self,
        bucket: &str,
        key: &str,
        condition: &DeleteCondition,
    ) -> Result<bool, MetaError> {
        let (bucket, key, condition) = (bucket.to_owned(), key.to_owned(), condition.clone());
        self.write(move |m| m.delete_object_if(&bucket, &key, &condition))
            .await
    }

    pub async fn set_object_tags(
        &self,
        bucket: &str,
        key: &str,
        tags: &[(String, String)],
    ) -> Result<(), MetaError> {
        let (bucket, key, tags) = (bucket.to_owned(), key.to_owned(), tags.to_vec());
        self.write(move |m| m.set_object_tags(&bucket, &key, &tags))
            .await
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

    pub async fn create_upload(&self, u: &UploadRecord) -> Result<(), MetaError> {
        let u = u.clone();
        self.write(move |m| m.create_upload(&u)).await
    }

    pub async fn get_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<UploadRecord>, MetaError> {
        let (bucket, key, id) = (bucket.to_owned(), key.to_owned(), upload_id.to_owned());
        self.run(move |m| m.get_upload(&bucket, &key, &id)).await
    }

    pub async fn put_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part: &PartRecord,
    ) -> Result<(), MetaError> {
        let (bucket, key, id) = (bucket.to_owned(), key.to_owned(), upload_id.to_owned());
        let part = part.clone();
        self.write(move |m| m.put_part(&bucket, &key, &id, &part))
            .await
    }

    pub async fn get_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<PartRecord>, MetaError> {
        let (bucket, key, id) = (bucket.to_owned(), key.to_owned(), upload_id.to_owned());
        self.run(move |m| m.get_parts(&bucket, &key, &id)).await
    }

    pub async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        after: u32,
        max: usize,
    ) -> Result<(Vec<PartSummary>, bool), MetaError> {
        let (bucket, key, id) = (bucket.to_owned(), key.to_owned(), upload_id.to_owned());
        self.run(move |m| m.list_parts(&bucket, &key, &id, after, max))
            .await
    }

    pub async fn abort_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), MetaError> {
        let (bucket, key, id) = (bucket.to_owned(), key.to_owned(), upload_id.to_owned());
        self.write(move |m| m.abort_upload(&bucket, &key, &id))
            .await
    }

    pub async fn complete_upload(
        &self,
        upload_id: &str,
        rec: &ObjectRecord,
        pre: &Precondition,
    ) -> Result<(), MetaError> {
        let (id, rec, pre) = (upload_id.to_owned(), rec.clone(), pre.clone());
        self.write(move |m| m.complete_upload(&id, &rec, &pre))
            .await
    }

    pub async fn completed_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<CompletedUpload>, MetaError> {
        let (bucket, key, id) = (bucket.to_owned(), key.to_owned(), upload_id.to_owned());
        self.run(move |m| m.completed_upload(&bucket, &key, &id))
            .await
    }

    pub async fn list_uploads(&self, q: &UploadListQuery<'_>) -> Result<UploadListPage, MetaError> {
        let bucket = q.bucket.to_owned();
        let prefix = q.prefix.to_owned();
        let delimiter = q.delimiter.map(str::to_owned);
        let key_marker = q.key_marker.map(str::to_owned);
        let upload_id_marker = q.upload_id_marker.map(str::to_owned);
        let max_uploads = q.max_uploads;
        self.run(move |m| {
            m.list_uploads(&UploadListQuery {
                bucket: &bucket,
                prefix: &prefix,
                delimiter: delimiter.as_deref(),
                key_marker: key_marker.as_deref(),
                upload_id_marker: upload_id_marker.as_deref(),
                max_uploads,
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

    // Segment health and repair (see `sqlite::health`).

    pub async fn record_findings(
        &self,
        findings: Vec<PieceFinding>,
    ) -> Result<Vec<PieceFinding>, MetaError> {
        self.run(move |m| m.record_findings(&findings)).await
    }

    pub async fn mark_node_lost(&self, node: &str, found_by: &str) -> Result<u64, MetaError> {
        let (node, found_by) = (node.to_owned(), found_by.to_owned());
        self.write(move |m| m.mark_node_lost(&node, &found_by))
            .await
    }

    pub async fn repair_queue(
        &self,
        threshold: u16,
        limit: usize,
    ) -> Result<Vec<SegmentHealth>, MetaError> {
        self.run(move |m| m.repair_queue(threshold, limit)).await
    }

    pub async fn segments_on_node(
        &self,
        node: &str,
        after: Option<(StreamId, u32)>,
        limit: usize,
    ) -> Result<Vec<SegmentHealth>, MetaError> {
        let node = node.to_owned();
        self.run(move |m| m.segments_on_node(&node, after, limit))
            .await
    }

    pub async fn repair_source(
        &self,
        stream_id: &StreamId,
        segment: u32,
    ) -> Result<Option<RepairSource>, MetaError> {
        let stream_id = *stream_id;
        self.run(move |m| m.repair_source(&stream_id, segment))
            .await
    }

    pub async fn replace_pieces(
        &self,
        stream_id: &StreamId,
        segment: u32,
        seen: Vec<PieceRecord>,
        new: Vec<PieceRecord>,
    ) -> Result<bool, MetaError> {
        let stream_id = *stream_id;
        self.write(move |m| m.replace_pieces(&stream_id, segment, &seen, &new))
            .await
    }

    pub async fn node_holds_pieces(&self, node: &str) -> Result<u64, MetaError> {
        let node = node.to_owned();
        self.run(move |m| m.node_holds_pieces(&node)).await
    }

    pub async fn health_counts(&self) -> Result<HealthCounts, MetaError> {
        self.run(|m| m.health_counts()).await
    }

    /// Pieces recorded on `node`, live and garbage, as `(stream, segment, number, live)`; see
    /// [`SqliteMeta::node_pieces`].
    pub async fn node_pieces(
        &self,
        node: &str,
        after: Option<(StreamId, u32, u16)>,
        limit: usize,
    ) -> Result<Vec<(StreamId, u32, u16, bool)>, MetaError> {
        let node = node.to_owned();
        self.run(move |m| m.node_pieces(&node, after, limit)).await
    }

    /// Healthy pieces of live bodies on `node`; see [`SqliteMeta::node_healthy_pieces`].
    pub async fn node_healthy_pieces(
        &self,
        node: &str,
        after: Option<(StreamId, u32, u16)>,
        limit: usize,
    ) -> Result<Vec<(StreamId, u32, u16)>, MetaError> {
        let node = node.to_owned();
        self.run(move |m| m.node_healthy_pieces(&node, after, limit))
            .await
    }

    /// Erasure-coded segments of live bodies in key order; see [`SqliteMeta::live_segments`].
    pub async fn live_segments(
        &self,
        after: Option<(StreamId, u32)>,
        limit: usize,
    ) -> Result<Vec<(StreamId, u32)>, MetaError> {
        self.run(move |m| m.live_segments(after, limit)).await
    }

    pub async fn storage_totals(&self) -> Result<StorageTotals, MetaError> {
        self.run(|m| m.storage_totals()).await
    }

    // Replication (see `meta::log` and the `replication` module).

    pub fn subscribe_commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.subscribe_commits()
    }

    pub async fn replication_state(&self) -> Result<ReplicationState, MetaError> {
        self.run(|m| m.replication_state()).await
    }

    pub async fn pending_changes(
        &self,
        after: u64,
        max_bytes: usize,
    ) -> Result<Vec<RawEntry>, MetaError> {
        self.run(move |m| m.pending_changes(after, max_bytes)).await
    }

    pub async fn mark_shipped(
        &self,
        batch: u64,
        last_seq: u64,
        bytes: u64,
    ) -> Result<(), MetaError> {
        self.run(move |m| m.mark_shipped(batch, last_seq, bytes))
            .await
    }

    pub async fn mark_snapshot(
        &self,
        number: u64,
        seq: u64,
        batch: u64,
        at_ms: i64,
    ) -> Result<(), MetaError> {
        self.run(move |m| m.mark_snapshot(number, seq, batch, at_ms))
            .await
    }

    pub async fn snapshot_into(&self, dest: &Path) -> Result<SnapshotTaken, MetaError> {
        let dest = dest.to_path_buf();
        self.run(move |m| m.snapshot_into(&dest)).await
    }

    pub async fn key_check(&self) -> Result<Option<Vec<u8>>, MetaError> {
        self.run(|m| m.key_check()).await
    }

    pub async fn set_key_check(&self, check: &[u8]) -> Result<(), MetaError> {
        let check = check.to_vec();
        self.run(move |m| m.set_key_check(&check)).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::meta::{
        ObjectPart, PieceRecord, Placement, SegmentRecord, StorageTotals, StreamAccounting,
        StreamRecord, OBJECT_FORMAT,
    };

    fn stream(id: u8) -> StreamRecord {
        StreamRecord {
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
                    pieces: vec![PieceRecord::new(0, "n1"), PieceRecord::new(1, "n2")],
                },
            }],
            accounting: accounting(id),
        }
    }

    fn accounting(id: u8) -> StreamAccounting {
        StreamAccounting {
            encoded_bytes: 100 + u64::from(id),
            uploaded_bytes: 200 + u64::from(id),
            long_tail_bytes: 50 + u64::from(id),
        }
    }

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
            tags: vec![],
            checksum: None,
            parts: vec![ObjectPart {
                number: 0,
                size: 3,
                etag: "abc".into(),
                checksum: None,
                stream: stream(id),
            }],
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn objects_and_buckets_round_trip_through_blocking_pool() {
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
        let tags = vec![("k".to_string(), "v".to_string())];
        meta.set_bucket_tags("b", Some(&tags)).await.unwrap();
        assert_eq!(meta.get_bucket_tags("b").await.unwrap(), Some(tags.clone()));

        let mut rec = record("b", "dir/k", 1);
        meta.put_object(&rec, &Precondition::IfNoneMatchStar)
            .await
            .unwrap();
        assert!(matches!(
            meta.put_object(&rec, &Precondition::IfNoneMatchStar).await,
            Err(MetaError::PreconditionFailed)
        ));
        meta.set_object_tags("b", "dir/k", &tags).await.unwrap();
        rec.tags = tags;
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

        meta.put_object(
            &record("b", "dir/k", 2),
            &Precondition::IfMatch("abc".into()),
        )
        .await
        .unwrap();
        let garbage = meta.garbage(10).await.unwrap();
        assert_eq!(garbage.len(), 1);
        assert_eq!(garbage[0].stream_id, StreamId([1; 16]));
        assert_eq!(
            meta.storage_totals().await.unwrap(),
            StorageTotals {
                objects: 1,
                plain_bytes: 3,
                streams: 1,
                segments: 1,
                pieces: 2,
                encoded_bytes: 102,
                uploaded_bytes: 202,
                long_tail_bytes: 52,
            }
        );
        meta.garbage_done(&StreamId([1; 16])).await.unwrap();
        assert!(meta.garbage(10).await.unwrap().is_empty());

        assert!(meta.delete_object("b", "dir/k").await.unwrap());
        assert!(!meta.delete_object("b", "dir/k").await.unwrap());
        meta.delete_bucket("b").await.unwrap();
        assert_eq!(meta.get_bucket("b").await.unwrap(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn uploads_round_trip_through_blocking_pool() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta::open(&dir.path().join("meta.db")).await.unwrap();
        meta.create_bucket("b", 5).await.unwrap();
        let upload = UploadRecord {
            upload_id: "u".into(),
            bucket: "b".into(),
            key: "k".into(),
            initiated_ms: 9,
            content_type: None,
            system_meta: vec![],
            user_meta: vec![],
            tags: vec![],
            checksum_algorithm: Some(1),
            checksum_kind: Some(2),
        };
        meta.create_upload(&upload).await.unwrap();
        assert_eq!(
            meta.get_upload("b", "k", "u").await.unwrap(),
            Some(upload.clone())
        );
        let part = |number: u32, id: u8| PartRecord {
            number,
            size: 3,
            etag: "abc".into(),
            checksum: None,
            last_modified_ms: 8,
            stream: stream(id),
        };
        meta.put_part("b", "k", "u", &part(1, 1)).await.unwrap();
        meta.put_part("b", "k", "u", &part(2, 2)).await.unwrap();
        assert_eq!(meta.get_parts("b", "k", "u").await.unwrap().len(), 2);
        let (listed, truncated) = meta.list_parts("b", "k", "u", 0, 1).await.unwrap();
        assert_eq!((listed.len(), listed[0].number, truncated), (1, 1, true));
        let page = meta
            .list_uploads(&UploadListQuery {
                bucket: "b",
                prefix: "",
                delimiter: None,
                key_marker: None,
                upload_id_marker: None,
                max_uploads: 10,
            })
            .await
            .unwrap();
        assert_eq!(page.uploads.len(), 1);

        let mut rec = record("b", "k", 1);
        rec.parts[0].number = 1;
        meta.complete_upload("u", &rec, &Precondition::None)
            .await
            .unwrap();
        assert_eq!(meta.get_object("b", "k").await.unwrap(), Some(rec));
        let garbage = meta.garbage(10).await.unwrap();
        assert_eq!(garbage.len(), 1);
        assert_eq!(garbage[0].stream_id, StreamId([2; 16]));
        assert!(matches!(
            meta.abort_upload("b", "k", "u").await,
            Err(MetaError::NoSuchUpload(_))
        ));
    }
}
