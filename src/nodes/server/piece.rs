//! The piece endpoints of the node server: streamed PUT with the free-space reserve, GET and
//! HEAD with one byte range, read in bounded windows, and the transfer counters of both (the
//! guarantees are listed in [`super`]).

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};

use crate::nodes::dir::fs_space;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::{
    content_length, empty, Failure, State, BODY_IDLE_TIMEOUT, READ_WINDOW, SPACE_CHECK_EVERY,
    WRITE_BATCH,
};
use crate::nodes::body::{BodyAborted, BodyMsg, NodeBody};
use crate::nodes::dir::OpenPiece;
use crate::nodes::protocol::{verify_digest, MAX_PIECE_LEN};
use crate::nodes::{NodeStore, PieceId, PieceWriter};

/// Refuses (507) when writing `incoming` more bytes would leave less than the reserve.
fn check_space(state: &State, incoming: u64) -> Result<(), Failure> {
    let (free, _) = fs_space(state.node.root()).map_err(|e| {
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("free space of the node directory: {e}"),
        )
    })?;
    if free < state.reserve.saturating_add(incoming) {
        let reserve = state.reserve;
        return Err(Failure::new(
            StatusCode::INSUFFICIENT_STORAGE,
            if incoming == 0 {
                format!("node is full: {free} bytes free, below the reserve of {reserve} bytes")
            } else {
                format!("node is full: {free} bytes free; a {incoming}-byte piece would leave less than the reserve of {reserve} bytes")
            },
        ));
    }
    Ok(())
}

pub(super) async fn put_piece(
    state: &Arc<State>,
    id: PieceId,
    req: Request<Incoming>,
) -> Result<Response<NodeBody>, Failure> {
    let declared = content_length(req.headers())?;
    if declared.is_some_and(|n| n > MAX_PIECE_LEN) {
        return Err(too_large());
    }
    check_space(state, declared.unwrap_or(0))?;
    let mut writer = state.node.create(id).await?;
    if let Err(f) = receive(state, writer.as_mut(), req.into_body(), declared).await {
        writer.abort().await;
        return Err(f);
    }
    writer.commit().await?;
    Ok(empty(StatusCode::CREATED))
}

fn too_large() -> Failure {
    Failure::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("a piece is at most {MAX_PIECE_LEN} bytes"),
    )
}

/// Streams the request body into `writer`; `Ok` only when the body is complete and matches
/// the digest in its trailers.
async fn receive(
    state: &State,
    writer: &mut dyn PieceWriter,
    mut body: Incoming,
    declared: Option<u64>,
) -> Result<(), Failure> {
    let limit = declared.unwrap_or(MAX_PIECE_LEN);
    let mut received = 0u64;
    let mut next_space_check = SPACE_CHECK_EVERY;
    let mut buf = BytesMut::new();
    let mut hasher = blake3::Hasher::new();
    let mut trailers: Option<HeaderMap> = None;
    loop {
        let frame = match tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame()).await {
            Err(_) => {
                return Err(Failure::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "no data for {} s after {received} bytes; upload discarded",
                        BODY_IDLE_TIMEOUT.as_secs()
                    ),
                ))
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(Failure::new(
                    StatusCode::BAD_REQUEST,
                    format!("upload broken after {received} bytes: {e}"),
                ))
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    let all = trailers.get_or_insert_with(HeaderMap::new);
                    for (name, value) in &t {
                        all.append(name, value.clone());
                    }
                }
                continue;
            }
        };
        state
            .received
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        received += data.len() as u64;
        if received > limit {
            return Err(if declared.is_some() {
                Failure::new(
                    StatusCode::BAD_REQUEST,
                    "body is longer than its Content-Length",
                )
            } else {
                too_large()
            });
        }
        if received >= next_space_check {
            check_space(state, 0)?;
            next_space_check += SPACE_CHECK_EVERY;
        }
        buf.extend_from_slice(&data);
        if buf.len() >= WRITE_BATCH {
            hasher = hash_and_write(writer, hasher, buf.split().freeze()).await?;
        }
    }
    if let Some(n) = declared.filter(|n| *n != received) {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            format!("body ended after {received} of {n} bytes"),
        ));
    }
    // The last batch is hashed before the digest is checked, and written only after.
    let last = buf.freeze();
    if !last.is_empty() {
        hasher = hash(hasher, last.clone()).await?;
    }
    verify_digest(trailers.as_ref(), &hasher.finalize())
        .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    if !last.is_empty() {
        writer.write(last).await?;
    }
    Ok(())
}

/// `hasher` fed with `data` on the blocking pool.
async fn hash(mut hasher: blake3::Hasher, data: Bytes) -> Result<blake3::Hasher, Failure> {
    tokio::task::spawn_blocking(move || {
        hasher.update(&data);
        hasher
    })
    .await
    .map_err(|e| {
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("hashing failed: {e}"),
        )
    })
}

/// Writes a batch while it is hashed on the blocking pool.
async fn hash_and_write(
    writer: &mut dyn PieceWriter,
    hasher: blake3::Hasher,
    batch: Bytes,
) -> Result<blake3::Hasher, Failure> {
    let hashing = hash(hasher, batch.clone());
    let (hashed, written) = tokio::join!(hashing, writer.write(batch));
    written?;
    hashed
}

pub(super) async fn get_piece(
    state: &State,
    id: PieceId,
    headers: &HeaderMap,
    is_head: bool,
) -> Result<Response<NodeBody>, Failure> {
    let piece = state.node.open_piece(id).await?;
    let size = piece.size();
    let range = headers
        .get(RANGE)
        .map(|v| {
            v.to_str().ok().and_then(parse_range).ok_or_else(|| {
                Failure::new(
                    StatusCode::BAD_REQUEST,
                    "Range must be bytes=FIRST-LAST or bytes=FIRST-",
                )
            })
        })
        .transpose()?;
    let (status, start, len) = match range {
        None => (StatusCode::OK, 0, size),
        Some((first, last)) => {
            let last = last.unwrap_or(size.saturating_sub(1));
            if first >= size || last >= size || last < first {
                return Err(Failure {
                    piece_size: Some(size),
                    ..Failure::new(
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        format!("range {first}-{last} is outside the piece ({size} bytes)"),
                    )
                });
            }
            (StatusCode::PARTIAL_CONTENT, first, last - first + 1)
        }
    };
    let body = if is_head || len == 0 {
        NodeBody::empty()
    } else {
        stream_piece(piece, start, len)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.extensions_mut().insert(PieceData);
    let h = resp.headers_mut();
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        let v = format!("bytes {start}-{}/{size}", start + len - 1);
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}

/// `bytes=FIRST-LAST` or `bytes=FIRST-` (one range; suffix ranges are not used by the gateway).
pub(crate) fn parse_range(v: &str) -> Option<(u64, Option<u64>)> {
    let (first, last) = v.trim().strip_prefix("bytes=")?.split_once('-')?;
    let first = first.trim().parse().ok()?;
    let last = match last.trim() {
        "" => None,
        l => Some(l.parse().ok()?),
    };
    Some((first, last))
}

/// A body reading `len` bytes at `start` in windows; a read error aborts the body, so the
/// client sees a broken response rather than a short one.
fn stream_piece(piece: OpenPiece, start: u64, len: u64) -> NodeBody {
    let (tx, body) = NodeBody::channel(2);
    tokio::spawn(async move {
        let end = start + len;
        let mut pos = start;
        while pos < end {
            let n = (end - pos).min(READ_WINDOW as u64) as usize;
            match piece.read_at(pos, n).await {
                Ok(data) => {
                    if tx.send(BodyMsg::Data(data)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "piece read failed mid-response");
                    return;
                }
            }
            pos += n as u64;
        }
        let _ = tx.send(BodyMsg::End).await;
    });
    body
}

/// Marks an answer whose body is piece data, to be counted as sent.
#[derive(Debug, Clone, Copy)]
struct PieceData;

/// The server's answer body: counts the data frames of piece answers into `sent_bytes` as the
/// connection takes them, so bytes still queued when a client goes away are not counted.
pub(super) struct CountedBody {
    inner: NodeBody,
    state: Option<Arc<State>>,
}

impl CountedBody {
    /// Counts `resp`'s body when [`get_piece`] made it.
    pub(super) fn wrap(resp: Response<NodeBody>, state: &Arc<State>) -> Response<CountedBody> {
        let state = resp.extensions().get::<PieceData>().map(|_| state.clone());
        resp.map(|inner| CountedBody { inner, state })
    }
}

impl Body for CountedBody {
    type Data = Bytes;
    type Error = BodyAborted;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyAborted>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(state)) = (&polled, &self.state) {
            if let Some(data) = frame.data_ref() {
                state.sent.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse() {
        assert_eq!(parse_range("bytes=0-9"), Some((0, Some(9))));
        assert_eq!(parse_range("bytes=5-"), Some((5, None)));
        assert_eq!(parse_range("bytes=-5"), None);
        assert_eq!(parse_range("bytes=1-2,4-5"), None);
        assert_eq!(parse_range("items=1-2"), None);
    }
}
