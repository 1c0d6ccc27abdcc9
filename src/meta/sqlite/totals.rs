//! Storage totals for `gateway stats`: one aggregate statement in one read transaction, so the
//! numbers describe a single committed state and no row is loaded into Rust.
//!
//! What counts (see [`StorageTotals`]): every object row, with its full size; every live stream
//! referenced by at least one object part, once however many objects share it, with its
//! segments, pieces and accounting. Streams referenced only by upload parts (in-progress
//! multipart uploads) and garbage streams do not count. A stream that an upload part shares
//! with an object (UploadPartCopy) counts, through the object.

use super::super::{MetaError, StorageTotals};
use super::SqliteMeta;

// `counted` is materialized once; the segment and piece counts probe it through the leading
// `stream_id` column of their primary keys. `objects` is scanned once. An object part never
// references garbage (a stream becomes garbage only when its last reference goes), so
// `garbage = 0` only guards that rule.
pub(super) const STORAGE_TOTALS: &str = "
WITH counted AS MATERIALIZED (
    SELECT stream_id, encoded_bytes, uploaded_bytes, long_tail_bytes FROM streams
    WHERE garbage = 0 AND stream_id IN (SELECT stream_id FROM object_parts)
),
stored AS (
    SELECT count(*) AS objects, coalesce(sum(size), 0) AS plain_bytes FROM objects
),
kept AS (
    SELECT count(*) AS streams,
        coalesce(sum(encoded_bytes), 0) AS encoded_bytes,
        coalesce(sum(uploaded_bytes), 0) AS uploaded_bytes,
        coalesce(sum(long_tail_bytes), 0) AS long_tail_bytes
    FROM counted
)
SELECT
    stored.objects,
    stored.plain_bytes,
    kept.streams,
    (SELECT count(*) FROM segments WHERE stream_id IN (SELECT stream_id FROM counted)),
    (SELECT count(*) FROM pieces WHERE stream_id IN (SELECT stream_id FROM counted)),
    kept.encoded_bytes,
    kept.uploaded_bytes,
    kept.long_tail_bytes
FROM stored, kept";

impl SqliteMeta {
    /// Totals over all buckets; see [`StorageTotals`] and the module doc for what counts.
    /// Cost: a scan of `objects`, `object_parts` and `streams`, and one index probe per counted
    /// stream into `segments` and `pieces` (or a scan of them, as SQLite's planner prefers).
    /// A sum beyond `i64::MAX` fails with `MetaError::Sqlite` (integer overflow).
    pub fn storage_totals(&self) -> Result<StorageTotals, MetaError> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        let totals = tx.prepare_cached(STORAGE_TOTALS)?.query_row([], |row| {
            Ok(StorageTotals {
                objects: row.get(0)?,
                plain_bytes: row.get(1)?,
                streams: row.get(2)?,
                segments: row.get(3)?,
                pieces: row.get(4)?,
                encoded_bytes: row.get(5)?,
                uploaded_bytes: row.get(6)?,
                long_tail_bytes: row.get(7)?,
            })
        })?;
        Ok(totals)
    }
}
