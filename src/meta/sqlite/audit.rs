//! What the audit (`object::audit`) reads: the healthy pieces of live bodies the metadata
//! places on one node, and the live erasure-coded segments in key order, page by page. Each
//! page is its own read, so pages do not form one snapshot: the audit re-checks anything it
//! finds before recording it.

use rusqlite::params;

use super::super::{MetaError, StreamId};
use super::{sql_limit, SqliteMeta};

// Seeks in `pieces_by_node (node, stream_id)` like `node_pieces::NODE_PIECES`; the state and
// the body's liveness filter rows, they do not change the order.
pub(super) const NODE_HEALTHY_PIECES: &str = "SELECT p.stream_id, p.segment_idx, p.number
     FROM pieces AS p JOIN streams AS s ON s.stream_id = p.stream_id
     WHERE p.node = ?1 AND (p.stream_id, p.segment_idx, p.number) > (?2, ?3, ?4)
       AND p.state = 0 AND s.garbage = 0
     ORDER BY p.stream_id, p.segment_idx, p.number LIMIT ?5";

// Seeks in the segments' primary key from the cursor.
pub(super) const LIVE_SEGMENTS: &str = "SELECT g.stream_id, g.idx
     FROM segments AS g JOIN streams AS s ON s.stream_id = g.stream_id
     WHERE (g.stream_id, g.idx) > (?1, ?2) AND g.inline_data IS NULL AND s.garbage = 0
     ORDER BY g.stream_id, g.idx LIMIT ?3";

impl SqliteMeta {
    /// Up to `limit` pieces in state `ok` of live bodies recorded on `node`, after `after`
    /// (from the start when `None`), as `(stream, segment, number)` in that order; fewer than
    /// `limit` means the end.
    pub fn node_healthy_pieces(
        &self,
        node: &str,
        after: Option<(StreamId, u32, u16)>,
        limit: usize,
    ) -> Result<Vec<(StreamId, u32, u16)>, MetaError> {
        // Before everything: an empty blob sorts before any stream id.
        let (stream, segment, number): (Vec<u8>, i64, i64) = match after {
            Some((s, seg, num)) => (s.0.to_vec(), i64::from(seg), i64::from(num)),
            None => (Vec::new(), -1, -1),
        };
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(NODE_HEALTHY_PIECES)?;
        let rows = stmt
            .query_map(
                params![node, stream, segment, number, sql_limit(limit)],
                |row| {
                    Ok((
                        StreamId(row.get::<_, [u8; 16]>(0)?),
                        row.get::<_, u32>(1)?,
                        row.get::<_, u16>(2)?,
                    ))
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Up to `limit` erasure-coded segments of live bodies after `after` (from the start when
    /// `None`), as `(stream, segment)` in that order; fewer than `limit` means the end.
    pub fn live_segments(
        &self,
        after: Option<(StreamId, u32)>,
        limit: usize,
    ) -> Result<Vec<(StreamId, u32)>, MetaError> {
        let (stream, segment): (Vec<u8>, i64) = match after {
            Some((s, seg)) => (s.0.to_vec(), i64::from(seg)),
            None => (Vec::new(), -1),
        };
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(LIVE_SEGMENTS)?;
        let rows = stmt
            .query_map(params![stream, segment, sql_limit(limit)], |row| {
                Ok((StreamId(row.get::<_, [u8; 16]>(0)?), row.get::<_, u32>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
