//! The HTTP body used on both sides of the node protocol: empty, one buffer, or a stream fed
//! through a bounded channel.
//!
//! Contract of a channel body: it ends cleanly only when the sender sends [`BodyMsg::End`] or
//! [`BodyMsg::EndWithTrailers`] (whose fields become the message's trailers: the last chunk of
//! a chunked HTTP/1.1 body, which hyper sends only for fields named in the request's `Trailer`
//! header, or a HEADERS frame ending the h2 stream). If the sender is dropped first, the body
//! yields an error, so hyper aborts the message (no final chunk on HTTP/1.1, a reset stream on
//! HTTP/2) and the receiving side sees a broken body — never a complete-looking truncated one.
//! The channel's capacity bounds the memory a slow peer can make the sender hold.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// One message of a channel body.
#[derive(Debug)]
pub enum BodyMsg {
    Data(Bytes),
    /// The body is complete.
    End,
    /// The body is complete; these are its trailers.
    EndWithTrailers(HeaderMap),
}

/// The sender dropped a channel body without ending it.
#[derive(Debug, thiserror::Error)]
#[error("body aborted by the sender")]
pub struct BodyAborted;

pub struct NodeBody {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    Channel {
        rx: mpsc::Receiver<BodyMsg>,
        ended: bool,
    },
}

impl NodeBody {
    pub fn empty() -> Self {
        NodeBody {
            kind: Kind::Full(None),
        }
    }

    pub fn full(data: impl Into<Bytes>) -> Self {
        let data: Bytes = data.into();
        NodeBody {
            kind: Kind::Full((!data.is_empty()).then_some(data)),
        }
    }

    /// A streamed body and its sender; at most `capacity` messages are buffered.
    pub fn channel(capacity: usize) -> (mpsc::Sender<BodyMsg>, Self) {
        let (tx, rx) = mpsc::channel(capacity);
        (
            tx,
            NodeBody {
                kind: Kind::Channel { rx, ended: false },
            },
        )
    }
}

impl Body for NodeBody {
    type Data = Bytes;
    type Error = BodyAborted;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyAborted>>> {
        match &mut self.kind {
            Kind::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Kind::Channel { rx, ended } => {
                if *ended {
                    return Poll::Ready(None);
                }
                match rx.poll_recv(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Some(BodyMsg::Data(d))) => Poll::Ready(Some(Ok(Frame::data(d)))),
                    Poll::Ready(Some(BodyMsg::End)) => {
                        *ended = true;
                        Poll::Ready(None)
                    }
                    Poll::Ready(Some(BodyMsg::EndWithTrailers(t))) => {
                        *ended = true;
                        Poll::Ready(Some(Ok(Frame::trailers(t))))
                    }
                    Poll::Ready(None) => {
                        *ended = true;
                        Poll::Ready(Some(Err(BodyAborted)))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(data) => data.is_none(),
            Kind::Channel { ended, .. } => *ended,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Channel { .. } => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn channel_body_ends_only_on_end() {
        let (tx, body) = NodeBody::channel(4);
        tx.send(BodyMsg::Data(Bytes::from_static(b"ab")))
            .await
            .unwrap();
        tx.send(BodyMsg::End).await.unwrap();
        let got = body.collect().await.unwrap().to_bytes();
        assert_eq!(&got[..], b"ab");

        let (tx, body) = NodeBody::channel(4);
        tx.send(BodyMsg::Data(Bytes::from_static(b"ab")))
            .await
            .unwrap();
        drop(tx);
        assert!(body.collect().await.is_err());
    }

    #[tokio::test]
    async fn channel_body_ends_with_its_trailers() {
        let (tx, mut body) = NodeBody::channel(4);
        let mut t = HeaderMap::new();
        t.insert("x-t", http::HeaderValue::from_static("v"));
        tx.send(BodyMsg::Data(Bytes::from_static(b"ab")))
            .await
            .unwrap();
        tx.send(BodyMsg::EndWithTrailers(t.clone())).await.unwrap();
        let data = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&data[..], b"ab");
        assert!(!body.is_end_stream());
        let last = body.frame().await.unwrap().unwrap();
        assert_eq!(last.into_trailers().unwrap(), t);
        assert!(body.is_end_stream());
        // Ended: nothing more, even though the sender is still alive.
        assert!(body.frame().await.is_none());
        drop(tx);
    }

    #[tokio::test]
    async fn full_and_empty() {
        let b = NodeBody::full(Bytes::from_static(b"xyz"));
        assert_eq!(b.size_hint().exact(), Some(3));
        assert_eq!(&b.collect().await.unwrap().to_bytes()[..], b"xyz");
        let e = NodeBody::empty();
        assert!(e.is_end_stream());
        assert_eq!(e.size_hint().exact(), Some(0));
        let e = NodeBody::full(Vec::new());
        assert!(e.is_end_stream());
    }
}
