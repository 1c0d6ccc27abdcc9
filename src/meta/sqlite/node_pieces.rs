//! What the metadata says one node holds: every piece row naming the node, of live and garbage
//! streams alike, page by page (for orphan collection: a piece a node lists that no row names
//! is an orphan candidate).

use rusqlite::params;

use super::super::{MetaError, StreamId};
use super::{sql_limit, SqliteMeta};

/// One piece recorded on a node: `(stream, segment, piece number, live)`; `live` is false for
/// a garbage stream whose pieces are not deleted yet.
type NodePiece = (StreamId, u32, u16, bool);

// The row value comparison seeks in `pieces_by_node (node, stream_id)`, whose entries also
// carry the rest of the primary key (segment_idx, number): no sort, no scan of other nodes.
pub(super) const NODE_PIECES: &str = "SELECT p.stream_id, p.segment_idx, p.number, s.garbage
     FROM pieces AS p JOIN streams AS s ON s.stream_id = p.stream_id
     WHERE p.node = ?1 AND (p.stream_id, p.segment_idx, p.number) > (?2, ?3, ?4)
     ORDER BY p.stream_id, p.segment_idx, p.number LIMIT ?5";

impl SqliteMeta {
    /// Up to `limit` pieces recorded on `node` after `after` (from the start when `None`), in
    /// `(stream, segment, number)` order; fewer than `limit` means the end. Each page is its
    /// own read: pages do not form one snapshot.
    pub fn node_pieces(
        &self,
        node: &str,
        after: Option<(StreamId, u32, u16)>,
        limit: usize,
    ) -> Result<Vec<NodePiece>, MetaError> {
        // Before everything: an empty blob sorts before any stream id.
        let (stream, segment, number): (Vec<u8>, i64, i64) = match after {
            Some((s, seg, num)) => (s.0.to_vec(), i64::from(seg), i64::from(num)),
            None => (Vec::new(), -1, -1),
        };
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(NODE_PIECES)?;
        let rows = stmt
            .query_map(
                params![node, stream, segment, number, sql_limit(limit)],
                |row| {
                    Ok((
                        StreamId(row.get::<_, [u8; 16]>(0)?),
                        row.get::<_, u32>(1)?,
                        row.get::<_, u16>(2)?,
                        // `garbage` is 0 or 1.
                        !row.get::<_, bool>(3)?,
                    ))
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
