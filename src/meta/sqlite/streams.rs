//! Stream rows (a stored body: its segments and pieces) and their reference counting.
//!
//! A stream is referenced by object parts and upload parts. [`reference()`] is how a writer
//! attaches a stream to a new reference: an unknown stream is inserted, a live one is shared,
//! a garbage one is refused ([`MetaError::StreamGone`]: garbage collection may already be
//! deleting its pieces). [`release`] is called, in the same transaction, with every stream
//! that lost a reference; those that nothing references any more become garbage.

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::super::{
    MetaError, PieceRecord, PieceState, Placement, SegmentRecord, StreamAccounting, StreamId,
    StreamRecord,
};
use super::now_ms;

/// What the database knows about a stream id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StreamState {
    Unknown,
    Live,
    Garbage,
}

pub(super) fn stream_state(conn: &Connection, id: &StreamId) -> Result<StreamState, MetaError> {
    let garbage = conn
        .prepare_cached("SELECT garbage FROM streams WHERE stream_id = ?1")?
        .query_row(params![id.0], |row| row.get::<_, bool>(0))
        .optional()?;
    Ok(match garbage {
        None => StreamState::Unknown,
        Some(false) => StreamState::Live,
        Some(true) => StreamState::Garbage,
    })
}

/// Makes `stream` available to a new reference: inserts it if unknown, shares it as stored if
/// live (the segments and accounting in `stream` are then ignored), refuses it with
/// `StreamGone` if garbage.
/// The caller must insert the reference in the same transaction.
pub(super) fn reference(tx: &Transaction, stream: &StreamRecord) -> Result<(), MetaError> {
    match stream_state(tx, &stream.stream_id)? {
        StreamState::Unknown => insert_stream(tx, stream),
        StreamState::Live => Ok(()),
        StreamState::Garbage => Err(MetaError::StreamGone(stream.stream_id)),
    }
}

/// Requires `id` to be a live stream (for a new reference to an existing body).
pub(super) fn reference_live(tx: &Transaction, id: &StreamId) -> Result<(), MetaError> {
    match stream_state(tx, id)? {
        StreamState::Live => Ok(()),
        StreamState::Unknown | StreamState::Garbage => Err(MetaError::StreamGone(*id)),
    }
}

/// Marks as garbage every stream of `ids` that is live and no longer referenced by any object
/// part or upload part. Call after the references are gone, in the same transaction.
pub(super) fn release(tx: &Transaction, ids: &[StreamId]) -> Result<(), MetaError> {
    let mut referenced = tx.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM object_parts WHERE stream_id = ?1)
             OR EXISTS (SELECT 1 FROM upload_parts WHERE stream_id = ?1)",
    )?;
    let mut mark = tx.prepare_cached(
        "UPDATE streams SET garbage = 1, garbage_since_ms = ?2
         WHERE stream_id = ?1 AND garbage = 0",
    )?;
    let now = now_ms();
    for id in ids {
        if !referenced.query_row(params![id.0], |row| row.get::<_, bool>(0))? {
            mark.execute(params![id.0, now])?;
        }
    }
    Ok(())
}

/// Checks what the schema cannot: segment indices are `0..len` and each segment's piece
/// numbers increase strictly and stay below `n`. `what` names the owner in the error.
pub(super) fn validate_stream(stream: &StreamRecord, what: &str) -> Result<(), MetaError> {
    let invalid = |msg: String| MetaError::InvalidRecord(format!("{what}: {msg}"));
    for (position, segment) in stream.segments.iter().enumerate() {
        if usize::try_from(segment.index).ok() != Some(position) {
            return Err(invalid(format!(
                "segment at position {position} has index {}",
                segment.index
            )));
        }
        if let Placement::Pieces { n, pieces, .. } = &segment.placement {
            let mut previous: Option<u16> = None;
            for piece in pieces {
                if piece.number >= *n || previous.is_some_and(|p| p >= piece.number) {
                    return Err(invalid(format!(
                        "segment {position}: piece numbers must increase strictly and stay below n = {n}"
                    )));
                }
                previous = Some(piece.number);
            }
        }
    }
    Ok(())
}

fn insert_stream(tx: &Transaction, stream: &StreamRecord) -> Result<(), MetaError> {
    let id = stream.stream_id.0;
    let accounting = &stream.accounting;
    tx.prepare_cached(
        "INSERT INTO streams (stream_id, cipher, block_size, segment_size, encoded_bytes,
             uploaded_bytes, long_tail_bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        id,
        stream.cipher,
        stream.block_size,
        stream.segment_size,
        accounting.encoded_bytes,
        accounting.uploaded_bytes,
        accounting.long_tail_bytes,
    ])?;
    let mut insert_segment = tx.prepare_cached(
        "INSERT INTO segments (stream_id, idx, plain_size, wrapped_key, inline_data, k, n,
             chunk_size, healthy)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let mut insert_piece = tx.prepare_cached(
        "INSERT INTO pieces (stream_id, segment_idx, number, node, state)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for segment in &stream.segments {
        match &segment.placement {
            Placement::Inline(data) => {
                insert_segment.execute(params![
                    id,
                    segment.index,
                    segment.plain_size,
                    segment.wrapped_key,
                    data,
                    None::<u16>,
                    None::<u16>,
                    None::<u32>,
                    None::<u16>,
                ])?;
            }
            Placement::Pieces {
                k,
                n,
                chunk_size,
                pieces,
            } => {
                insert_segment.execute(params![
                    id,
                    segment.index,
                    segment.plain_size,
                    segment.wrapped_key,
                    None::<Vec<u8>>,
                    k,
                    n,
                    chunk_size,
                    pieces.iter().filter(|p| p.state.is_ok()).count(),
                ])?;
                for piece in pieces {
                    insert_piece.execute(params![
                        id,
                        segment.index,
                        piece.number,
                        piece.node,
                        piece.state.code()
                    ])?;
                }
            }
        }
    }
    Ok(())
}

type SegmentRow = (
    u32,
    u64,
    Vec<u8>,
    Option<Vec<u8>>,
    Option<u16>,
    Option<u16>,
    Option<u32>,
);

/// The stream with all its segments and pieces; `Corrupt` if it is missing or malformed
/// (a reference to it exists, so it must be whole).
pub(super) fn read_stream(conn: &Connection, id: StreamId) -> Result<StreamRecord, MetaError> {
    let (cipher, block_size, segment_size, accounting) = conn
        .prepare_cached(
            "SELECT cipher, block_size, segment_size, encoded_bytes, uploaded_bytes,
                    long_tail_bytes
             FROM streams WHERE stream_id = ?1",
        )?
        .query_row(params![id.0], |row| {
            Ok((
                row.get::<_, u8>(0)?,
                row.get::<_, u32>(1)?,
                row.get::<_, u64>(2)?,
                StreamAccounting {
                    encoded_bytes: row.get(3)?,
                    uploaded_bytes: row.get(4)?,
                    long_tail_bytes: row.get(5)?,
                },
            ))
        })
        .optional()?
        .ok_or_else(|| MetaError::Corrupt(format!("reference to missing stream {id:?}")))?;

    let rows: Vec<SegmentRow> = conn
        .prepare_cached(
            "SELECT idx, plain_size, wrapped_key, inline_data, k, n, chunk_size
             FROM segments WHERE stream_id = ?1 ORDER BY idx",
        )?
        .query_map(params![id.0], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut segments = Vec::with_capacity(rows.len());
    for (position, (index, plain_size, wrapped_key, inline, k, n, chunk_size)) in
        rows.into_iter().enumerate()
    {
        if usize::try_from(index).ok() != Some(position) {
            return Err(MetaError::Corrupt(format!(
                "stream {id:?}: segment {index} found at position {position}"
            )));
        }
        let placement = match (inline, k, n, chunk_size) {
            (Some(data), None, None, None) => Placement::Inline(data),
            (None, Some(k), Some(n), Some(chunk_size)) => Placement::Pieces {
                k,
                n,
                chunk_size,
                pieces: Vec::new(),
            },
            _ => {
                return Err(MetaError::Corrupt(format!(
                    "stream {id:?}: segment {index} is neither inline nor pieces"
                )))
            }
        };
        segments.push(SegmentRecord {
            index,
            plain_size,
            wrapped_key,
            placement,
        });
    }

    let mut stmt = conn.prepare_cached(
        "SELECT segment_idx, number, node, state FROM pieces WHERE stream_id = ?1
         ORDER BY segment_idx, number",
    )?;
    let mut rows = stmt.query(params![id.0])?;
    while let Some(row) = rows.next()? {
        let index: u32 = row.get(0)?;
        let code: u8 = row.get(3)?;
        let piece = PieceRecord {
            number: row.get(1)?,
            node: row.get(2)?,
            state: PieceState::from_code(code).ok_or_else(|| {
                MetaError::Corrupt(format!("stream {id:?}: piece state {code} is unknown"))
            })?,
        };
        let segment = usize::try_from(index)
            .ok()
            .and_then(|i| segments.get_mut(i));
        match segment.map(|s| &mut s.placement) {
            Some(Placement::Pieces { pieces, .. }) => pieces.push(piece),
            _ => {
                return Err(MetaError::Corrupt(format!(
                    "stream {id:?}: piece {} belongs to no erasure-coded segment {index}",
                    piece.number
                )))
            }
        }
    }
    Ok(StreamRecord {
        stream_id: id,
        cipher,
        block_size,
        segment_size,
        segments,
        accounting,
    })
}
