//! Segment health (schema version 4): the state of each piece, the healthy-piece count of each
//! segment, the findings that changed them, and the atomic switch of repaired pieces.
//!
//! Invariant kept by every statement here and by [`super::streams`]'s insert:
//! `segments.healthy` = the number of the segment's `pieces` rows in state `ok` (NULL for
//! inline segments). A piece's state only leaves `ok` through a finding (read, audit, node
//! replacement) and only returns to `ok` when repair writes a new piece under that number.

use rusqlite::{params, OptionalExtension, Transaction};

use super::super::log::Change;
use super::super::{MetaError, PieceRecord, PieceState, StreamId};
use super::{now_ms, sql_limit, SqliteMeta};

/// Findings kept in `piece_faults` (older rows are pruned).
const FINDINGS_KEPT: i64 = 10_000;

/// One thing learnt about one piece.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PieceFinding {
    pub stream_id: StreamId,
    pub segment: u32,
    pub number: u16,
    /// The node the piece was read from: a finding about a piece that has since moved to
    /// another node changes nothing.
    pub node: String,
    pub state: PieceState,
    /// What found it: `read`, `audit`, `listing`...
    pub found_by: String,
}

/// A segment that repair should look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHealth {
    pub stream_id: StreamId,
    pub segment: u32,
    pub healthy: u16,
    pub k: u16,
    pub n: u16,
}

/// Everything repair needs to rebuild one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairSource {
    pub cipher: u8,
    pub block_size: u32,
    pub plain_size: u64,
    pub wrapped_key: Vec<u8>,
    pub k: u16,
    pub n: u16,
    pub chunk_size: u32,
    /// Every piece row, ordered by number, with its state.
    pub pieces: Vec<PieceRecord>,
}

/// Counts for operators.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HealthCounts {
    /// Erasure-coded segments of live bodies, by healthy-piece count: `(healthy, segments)`.
    pub by_healthy: Vec<(u16, u64)>,
    /// Pieces of live bodies not in state `ok`: `(node, state, pieces)`.
    pub not_ok: Vec<(String, String, u64)>,
    /// Findings recorded (the newest [`FINDINGS_KEPT`]): `(node, kind, found_by, count)`.
    pub findings: Vec<(String, String, String, u64)>,
}

impl SqliteMeta {
    /// Records findings; returns those that changed a piece's state (a piece already known
    /// bad, or no longer on the finding's node, is left as is). Commits nothing when nothing
    /// changed.
    pub fn record_findings(
        &self,
        findings: &[PieceFinding],
    ) -> Result<Vec<PieceFinding>, MetaError> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let changed = mark_pieces(&tx, findings)?;
        if changed.is_empty() {
            return Ok(changed);
        }
        self.commit(
            tx,
            Change::MarkPieces {
                findings: changed.clone(),
            },
        )?;
        Ok(changed)
    }

    /// Marks every healthy piece on `node` as lost (the node was replaced by an empty one, or
    /// removed): repair then rebuilds them elsewhere or on the new node. Returns the count.
    pub fn mark_node_lost(&self, node: &str, found_by: &str) -> Result<u64, MetaError> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = node_lost(&tx, node, found_by)?;
        self.commit(
            tx,
            Change::NodeLost {
                node: node.to_string(),
                found_by: found_by.to_string(),
            },
        )?;
        Ok(n)
    }

    /// Up to `limit` segments of live bodies with at most `threshold` healthy pieces or with
    /// any piece known bad, most degraded first.
    pub fn repair_queue(
        &self,
        threshold: u16,
        limit: usize,
    ) -> Result<Vec<SegmentHealth>, MetaError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT g.stream_id, g.idx, g.healthy, g.k, g.n FROM segments AS g
             JOIN streams AS s ON s.stream_id = g.stream_id
             WHERE s.garbage = 0 AND g.healthy IS NOT NULL
               AND (g.healthy <= ?1 OR EXISTS (
                   SELECT 1 FROM pieces AS p INDEXED BY pieces_not_ok
                   WHERE p.stream_id = g.stream_id AND p.segment_idx = g.idx AND p.state != 0))
             ORDER BY g.healthy, g.stream_id, g.idx LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![threshold, sql_limit(limit)], segment_health_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Up to `limit` segments of live bodies with a healthy piece on `node`, after `after` in
    /// (stream, segment) order: what a drained, removed or long-unavailable node held.
    pub fn segments_on_node(
        &self,
        node: &str,
        after: Option<(StreamId, u32)>,
        limit: usize,
    ) -> Result<Vec<SegmentHealth>, MetaError> {
        let conn = self.reader();
        let (after_id, after_seg) = match after {
            Some((id, seg)) => (id.0.to_vec(), i64::from(seg)),
            None => (Vec::new(), -1),
        };
        let mut stmt = conn.prepare_cached(
            "SELECT g.stream_id, g.idx, g.healthy, g.k, g.n
             FROM pieces AS p
             JOIN segments AS g ON g.stream_id = p.stream_id AND g.idx = p.segment_idx
             JOIN streams AS s ON s.stream_id = p.stream_id
             WHERE p.node = ?1 AND p.state = 0 AND s.garbage = 0
               AND (p.stream_id > ?2 OR (p.stream_id = ?2 AND p.segment_idx > ?3))
             ORDER BY p.stream_id, p.segment_idx LIMIT ?4",
        )?;
        let rows = stmt
            .query_map(
                params![node, after_id, after_seg, sql_limit(limit)],
                segment_health_row,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The segment as repair needs it; `None` when its body is garbage or gone (nothing to
    /// repair) or the segment is inline.
    pub fn repair_source(
        &self,
        stream_id: &StreamId,
        segment: u32,
    ) -> Result<Option<RepairSource>, MetaError> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        let row = tx
            .prepare_cached(
                "SELECT s.cipher, s.block_size, g.plain_size, g.wrapped_key, g.k, g.n,
                        g.chunk_size
                 FROM segments AS g JOIN streams AS s ON s.stream_id = g.stream_id
                 WHERE g.stream_id = ?1 AND g.idx = ?2 AND s.garbage = 0
                   AND g.inline_data IS NULL",
            )?
            .query_row(params![stream_id.0, segment], |r| {
                Ok(RepairSource {
                    cipher: r.get(0)?,
                    block_size: r.get(1)?,
                    plain_size: r.get(2)?,
                    wrapped_key: r.get(3)?,
                    k: r.get(4)?,
                    n: r.get(5)?,
                    chunk_size: r.get(6)?,
                    pieces: Vec::new(),
                })
            })
            .optional()?;
        let Some(mut src) = row else {
            return Ok(None);
        };
        src.pieces = segment_pieces(&tx, stream_id, segment)?;
        Ok(Some(src))
    }

    /// Switches repaired pieces in, atomically: each of `new` takes its number's row (or adds
    /// it) as a healthy piece — but only if the segment's body is still live and every piece
    /// row is still what repair read (`seen`); otherwise nothing changes and `false` is
    /// returned (the caller deletes the pieces it wrote).
    pub fn replace_pieces(
        &self,
        stream_id: &StreamId,
        segment: u32,
        seen: &[PieceRecord],
        new: &[PieceRecord],
    ) -> Result<bool, MetaError> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let live = tx
            .prepare_cached(
                "SELECT 1 FROM segments AS g JOIN streams AS s ON s.stream_id = g.stream_id
                 WHERE g.stream_id = ?1 AND g.idx = ?2 AND s.garbage = 0
                   AND g.inline_data IS NULL",
            )?
            .exists(params![stream_id.0, segment])?;
        if !live || segment_pieces(&tx, stream_id, segment)? != seen {
            return Ok(false);
        }
        upsert_pieces(&tx, stream_id, segment, new)?;
        self.commit(
            tx,
            Change::RepairSegment {
                stream_id: *stream_id,
                segment,
                pieces: new.to_vec(),
            },
        )?;
        Ok(true)
    }

    /// Replays [`Change::RepairSegment`].
    pub(in crate::meta) fn apply_repair(
        &self,
        stream_id: &StreamId,
        segment: u32,
        pieces: &[PieceRecord],
    ) -> Result<(), MetaError> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        upsert_pieces(&tx, stream_id, segment, pieces)?;
        self.commit(
            tx,
            Change::RepairSegment {
                stream_id: *stream_id,
                segment,
                pieces: pieces.to_vec(),
            },
        )
    }

    /// Replays [`Change::MarkPieces`].
    pub(in crate::meta) fn apply_findings(
        &self,
        findings: &[PieceFinding],
    ) -> Result<(), MetaError> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        mark_pieces(&tx, findings)?;
        self.commit(
            tx,
            Change::MarkPieces {
                findings: findings.to_vec(),
            },
        )
    }

    /// Whether `node` holds healthy pieces of live or garbage bodies (a node directory that
    /// comes up empty must then not be initialised: its data vanished).
    pub fn node_holds_pieces(&self, node: &str) -> Result<u64, MetaError> {
        let conn = self.reader();
        let n: i64 = conn
            .prepare_cached("SELECT count(*) FROM pieces WHERE node = ?1 AND state = 0")?
            .query_row(params![node], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub fn health_counts(&self) -> Result<HealthCounts, MetaError> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        let by_healthy = tx
            .prepare_cached(
                "SELECT g.healthy, count(*) FROM segments AS g
                 JOIN streams AS s ON s.stream_id = g.stream_id
                 WHERE g.healthy IS NOT NULL AND s.garbage = 0
                 GROUP BY g.healthy ORDER BY g.healthy",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        let not_ok = tx
            .prepare_cached(
                "SELECT p.node, p.state, count(*) FROM pieces AS p INDEXED BY pieces_not_ok
                 JOIN streams AS s ON s.stream_id = p.stream_id
                 WHERE p.state != 0 AND s.garbage = 0
                 GROUP BY p.node, p.state ORDER BY p.node, p.state",
            )?
            .query_map([], |r| {
                let code: u8 = r.get(1)?;
                let state = PieceState::from_code(code).map_or("unknown", PieceState::as_str);
                Ok((r.get(0)?, state.to_string(), r.get(2)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let findings = tx
            .prepare_cached(
                "SELECT node, kind, found_by, count(*) FROM piece_faults
                 GROUP BY node, kind, found_by ORDER BY node, kind, found_by",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HealthCounts {
            by_healthy,
            not_ok,
            findings,
        })
    }
}

/// A `(stream_id, idx, healthy, k, n)` row.
fn segment_health_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SegmentHealth> {
    Ok(SegmentHealth {
        stream_id: StreamId(r.get(0)?),
        segment: r.get(1)?,
        healthy: r.get(2)?,
        k: r.get(3)?,
        n: r.get(4)?,
    })
}

fn segment_pieces(
    tx: &Transaction,
    stream_id: &StreamId,
    segment: u32,
) -> Result<Vec<PieceRecord>, MetaError> {
    let mut stmt = tx.prepare_cached(
        "SELECT number, node, state FROM pieces WHERE stream_id = ?1 AND segment_idx = ?2
         ORDER BY number",
    )?;
    let mut rows = stmt.query(params![stream_id.0, segment])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let code: u8 = r.get(2)?;
        out.push(PieceRecord {
            number: r.get(0)?,
            node: r.get(1)?,
            state: PieceState::from_code(code)
                .ok_or_else(|| MetaError::Corrupt(format!("piece state {code} is unknown")))?,
        });
    }
    Ok(out)
}

/// Applies findings; returns those that changed a piece's state.
fn mark_pieces(
    tx: &Transaction,
    findings: &[PieceFinding],
) -> Result<Vec<PieceFinding>, MetaError> {
    let mut mark = tx.prepare_cached(
        "UPDATE pieces SET state = ?5
         WHERE stream_id = ?1 AND segment_idx = ?2 AND number = ?3 AND node = ?4 AND state = 0",
    )?;
    let mut count = tx.prepare_cached(
        "UPDATE segments SET healthy = healthy - 1 WHERE stream_id = ?1 AND idx = ?2",
    )?;
    let mut changed = Vec::new();
    for f in findings {
        if f.state.is_ok() {
            continue;
        }
        let n = mark.execute(params![
            f.stream_id.0,
            f.segment,
            f.number,
            f.node,
            f.state.code()
        ])?;
        if n == 1 {
            count.execute(params![f.stream_id.0, f.segment])?;
            log_finding(tx, f)?;
            changed.push(f.clone());
        }
    }
    Ok(changed)
}

fn node_lost(tx: &Transaction, node: &str, found_by: &str) -> Result<u64, MetaError> {
    tx.prepare_cached(
        "UPDATE segments SET healthy = healthy - (
             SELECT count(*) FROM pieces AS p
             WHERE p.stream_id = segments.stream_id AND p.segment_idx = segments.idx
               AND p.node = ?1 AND p.state = 0)
         WHERE (stream_id, idx) IN (
             SELECT stream_id, segment_idx FROM pieces WHERE node = ?1 AND state = 0)",
    )?
    .execute(params![node])?;
    let n = tx
        .prepare_cached(
            "UPDATE pieces SET state = 3 WHERE node = ?1 AND state = 0
             RETURNING stream_id, segment_idx, number",
        )?
        .query_map(params![node], |r| {
            Ok((
                r.get::<_, [u8; 16]>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, u16>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    // One summary finding, not one row per piece: a node holds millions.
    tx.prepare_cached(
        "INSERT INTO piece_faults (at_ms, node, stream_id, segment_idx, number, kind, found_by)
         VALUES (?1, ?2, x'', -1, -1, 'lost', ?3)",
    )?
    .execute(params![
        now_ms(),
        node,
        format!("{found_by} ({} pieces)", n.len())
    ])?;
    Ok(n.len() as u64)
}

fn upsert_pieces(
    tx: &Transaction,
    stream_id: &StreamId,
    segment: u32,
    pieces: &[PieceRecord],
) -> Result<(), MetaError> {
    let mut put = tx.prepare_cached(
        "INSERT INTO pieces (stream_id, segment_idx, number, node, state)
         VALUES (?1, ?2, ?3, ?4, 0)
         ON CONFLICT (stream_id, segment_idx, number)
         DO UPDATE SET node = excluded.node, state = 0",
    )?;
    for p in pieces {
        put.execute(params![stream_id.0, segment, p.number, p.node])?;
    }
    tx.prepare_cached(
        "UPDATE segments SET healthy = (
             SELECT count(*) FROM pieces AS p
             WHERE p.stream_id = ?1 AND p.segment_idx = ?2 AND p.state = 0)
         WHERE stream_id = ?1 AND idx = ?2",
    )?
    .execute(params![stream_id.0, segment])?;
    Ok(())
}

fn log_finding(tx: &Transaction, f: &PieceFinding) -> Result<(), MetaError> {
    tx.prepare_cached(
        "INSERT INTO piece_faults (at_ms, node, stream_id, segment_idx, number, kind, found_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        now_ms(),
        f.node,
        f.stream_id.0,
        f.segment,
        f.number,
        f.state.as_str(),
        f.found_by
    ])?;
    tx.prepare_cached(
        "DELETE FROM piece_faults WHERE id <= (SELECT max(id) FROM piece_faults) - ?1",
    )?
    .execute(params![FINDINGS_KEPT])?;
    Ok(())
}
