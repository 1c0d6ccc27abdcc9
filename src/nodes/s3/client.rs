//! The HTTP exchange of [`super::S3Node`]: one signed request, its answer read whole within
//! the timeouts, retries of idempotent requests, and S3 error answers mapped to
//! [`NodeError`]s, all as the parent module's contract states.

use super::super::http::{backoff, error_chain};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, RANGE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use md5::{Digest, Md5};

use super::{sign, xml, Inner};
use crate::nodes::NodeError;

/// Bytes of an error answer kept (S3 error documents are well under 1 KiB).
pub(super) const ERROR_BODY_MAX: usize = 16 << 10;
/// Largest XML answer (a listing page of 1000 keys is ~350 KB).
pub(super) const XML_BODY_MAX: usize = 4 << 20;
/// Request-body bytes handed to hyper at a time (see [`SendBody`]).
const FRAME: usize = 64 << 10;
/// Characters of an S3 error message kept in a reason.
const MESSAGE_MAX: usize = 300;
/// Error codes that say "try again later" whatever the status.
const TRANSIENT_CODES: [&str; 4] = [
    "SlowDown",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
];
const CONTENT_MD5: HeaderName = HeaderName::from_static("content-md5");

/// One S3 request, kept whole so that a retry can sign and send it again.
pub(super) struct Req {
    /// The operation, for messages.
    pub(super) what: &'static str,
    pub(super) method: Method,
    /// Encoded, as sent and signed.
    pub(super) path: String,
    /// Encoded and sorted, as sent and signed.
    pub(super) query: String,
    pub(super) range: Option<(u64, u64)>,
    pub(super) body: Bytes,
    pub(super) md5: Option<HeaderValue>,
}

impl Req {
    pub(super) fn new(what: &'static str, method: Method, path: &str) -> Req {
        Req {
            what,
            method,
            path: path.to_string(),
            query: String::new(),
            range: None,
            body: Bytes::new(),
            md5: None,
        }
    }

    pub(super) fn query(mut self, params: &[(&str, &str)]) -> Req {
        self.query = sign::encode_query(params);
        self
    }

    pub(super) fn range(mut self, first: u64, last: u64) -> Req {
        self.range = Some((first, last));
        self
    }

    /// Sets a small body (an XML document) and its `Content-MD5`.
    pub(super) fn body(self, body: Bytes) -> Req {
        let digest = Md5::digest(&body);
        self.with_md5(body, &digest)
    }

    /// Sets a piece-sized body and its `Content-MD5`, computed on the blocking pool.
    pub(super) async fn large_body(self, body: Bytes) -> Req {
        let data = body.clone();
        match tokio::task::spawn_blocking(move || Md5::digest(&data)).await {
            Ok(digest) => self.with_md5(body, &digest),
            // Only a panic in the task (none can come from MD5) gets here: do it in place.
            Err(_) => self.body(body),
        }
    }

    fn with_md5(mut self, body: Bytes, digest: &[u8]) -> Req {
        self.md5 = HeaderValue::from_str(&crate::checksum::base64_encode(digest)).ok();
        self.body = body;
        self
    }
}

/// A complete answer.
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

impl Inner {
    pub(super) fn unavailable(&self, reason: impl Into<String>) -> NodeError {
        NodeError::Unavailable {
            node: self.id.clone(),
            reason: reason.into(),
        }
    }

    pub(super) fn refused(&self, reason: impl Into<String>) -> NodeError {
        NodeError::Refused {
            node: self.id.clone(),
            reason: reason.into(),
        }
    }

    /// The error for an answer that is not the expected success (see the parent module's doc).
    pub(super) fn failure(&self, what: &str, r: &Reply) -> NodeError {
        let e = xml::error_of(&r.body).unwrap_or_default();
        let mut reason = format!("{what}: HTTP {}", r.status.as_u16());
        if !e.code.is_empty() {
            reason.push(' ');
            reason.push_str(&e.code);
        }
        if !e.message.is_empty() {
            reason.push_str(": ");
            reason.extend(e.message.chars().take(MESSAGE_MAX));
        }
        if is_transient(r.status) || TRANSIENT_CODES.contains(&e.code.as_str()) {
            return self.unavailable(reason);
        }
        match r.status {
            StatusCode::NOT_FOUND
                if !matches!(e.code.as_str(), "NoSuchBucket" | "NoSuchUpload") =>
            {
                NodeError::NotFound {
                    node: self.id.clone(),
                }
            }
            StatusCode::RANGE_NOT_SATISFIABLE => NodeError::ShortRead {
                node: self.id.clone(),
            },
            s if s.is_client_error() => self.refused(reason),
            _ => self.unavailable(format!("{reason} (unexpected)")),
        }
    }

    /// The error an `<Error>` document reports in a `200 OK` answer.
    pub(super) fn error_document(&self, what: &str, e: &xml::S3Error) -> NodeError {
        let message: String = e.message.chars().take(MESSAGE_MAX).collect();
        let reason = format!("{what}: {}: {message}", e.code);
        if TRANSIENT_CODES.contains(&e.code.as_str()) {
            self.unavailable(reason)
        } else {
            self.refused(reason)
        }
    }

    fn build(&self, req: &Req, progress: Arc<Progress>) -> Result<Request<SendBody>, NodeError> {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, self.host.clone());
        if let Some((first, last)) = req.range {
            headers.insert(
                RANGE,
                HeaderValue::from_str(&format!("bytes={first}-{last}"))
                    .map_err(|e| self.unavailable(format!("{}: {e}", req.what)))?,
            );
        }
        if !req.body.is_empty() || matches!(req.method, Method::PUT | Method::POST) {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(req.body.len()));
        }
        if let Some(md5) = &req.md5 {
            headers.insert(CONTENT_MD5, md5.clone());
        }
        self.signer
            .sign(
                &req.method,
                &req.path,
                &req.query,
                &mut headers,
                SystemTime::now(),
            )
            .map_err(|e| self.refused(format!("{}: cannot sign: {e}", req.what)))?;
        let uri = if req.query.is_empty() {
            format!("{}{}", self.base, req.path)
        } else {
            format!("{}{}?{}", self.base, req.path, req.query)
        };
        let mut request = Request::builder()
            .method(req.method.clone())
            .uri(uri)
            .body(SendBody {
                data: req.body.clone(),
                progress,
            })
            .map_err(|e| self.unavailable(format!("{}: cannot build request: {e}", req.what)))?;
        *request.headers_mut() = headers;
        Ok(request)
    }

    /// Sends `req`, retried as the parent module's doc says when it is idempotent. `max_body`
    /// bounds a successful answer's body.
    pub(super) async fn call(&self, req: &Req, max_body: usize) -> Result<Reply, NodeError> {
        let retries = if matches!(req.method, Method::GET | Method::HEAD | Method::DELETE) {
            self.retries
        } else {
            0
        };
        let mut attempt = 0;
        loop {
            let result = self.once(req, max_body).await;
            let transient = match &result {
                Ok(r) => is_transient(r.status),
                Err(_) => true,
            };
            if !transient || attempt >= retries {
                return result;
            }
            let cause = match &result {
                Err(e) => e.to_string(),
                Ok(r) => format!("HTTP {}", r.status),
            };
            tracing::debug!(node = %self.id, op = req.what, %cause, attempt, "retrying");
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }

    async fn once(&self, req: &Req, max_body: usize) -> Result<Reply, NodeError> {
        let progress = Progress::new();
        let request = self.build(req, progress.clone())?;
        let resp = self
            .send(request, &progress)
            .await
            .map_err(|reason| self.unavailable(format!("{}: {reason}", req.what)))?;
        let status = resp.status();
        let (parts, body) = resp.into_parts();
        let body = if status.is_success() {
            self.collect(req.what, body, max_body, false).await?
        } else {
            self.collect(req.what, body, ERROR_BODY_MAX, true).await?
        };
        Ok(Reply {
            status,
            headers: parts.headers,
            body,
        })
    }

    /// Waits for the answer's head, at most `read_timeout` after the request body last moved.
    async fn send(
        &self,
        request: Request<SendBody>,
        progress: &Progress,
    ) -> Result<Response<Incoming>, String> {
        let mut answer = std::pin::pin!(self.client.request(request));
        loop {
            let wait = self.read_timeout.saturating_sub(progress.idle());
            if wait.is_zero() {
                return Err(format!("no answer within {:?}", self.read_timeout));
            }
            if let Ok(result) = tokio::time::timeout(wait, answer.as_mut()).await {
                return result.map_err(|e| error_chain(&e));
            }
        }
    }

    /// Reads an answer's body of at most `max` bytes (cut there when `truncate`, else an
    /// error), waiting at most the read timeout for each frame.
    async fn collect(
        &self,
        what: &str,
        body: Incoming,
        max: usize,
        truncate: bool,
    ) -> Result<Bytes, NodeError> {
        super::super::http::collect(body, self.read_timeout, max, truncate)
            .await
            .map_err(|r| self.unavailable(format!("{what}: {r}")))
    }
}

fn is_transient(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// When a request body last moved.
struct Progress {
    start: Instant,
    /// Milliseconds after `start`.
    last: AtomicU64,
}

impl Progress {
    fn new() -> Arc<Progress> {
        Arc::new(Progress {
            start: Instant::now(),
            last: AtomicU64::new(0),
        })
    }

    fn stamp(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// A request body of one buffer, handed to hyper [`FRAME`] bytes at a time. Hyper takes the
/// next frame only once its write buffer drains, so each frame taken stamps `progress`: the
/// wait for the answer can tell a slow upload from a stalled one.
pub(super) struct SendBody {
    data: Bytes,
    progress: Arc<Progress>,
}

impl Body for SendBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.data.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.data.len().min(FRAME);
        let chunk = self.data.split_to(n);
        self.progress.stamp();
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::s3::{S3Node, S3Options};
    use http_body_util::BodyExt;

    #[test]
    fn answers_map_to_node_errors() {
        let opts = S3Options::new("http://127.0.0.1:9", "us-east-1", "b", "ak", "sk");
        let node = S3Node::new("n1", opts).unwrap();
        let reply = |status: u16, body: &str| Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_string()),
        };
        let doc =
            |code: &str| format!("<Error><Code>{code}</Code><Message>m {code}</Message></Error>");
        let failure = |status, body: &str| node.inner.failure("op", &reply(status, body));

        assert!(matches!(
            failure(404, &doc("NoSuchKey")),
            NodeError::NotFound { .. }
        ));
        assert!(matches!(failure(404, ""), NodeError::NotFound { .. }));
        assert!(matches!(
            failure(416, &doc("InvalidRange")),
            NodeError::ShortRead { .. }
        ));
        for (status, code) in [
            (503, "SlowDown"),
            (500, "InternalError"),
            (502, ""),
            (429, ""),
            (400, "RequestTimeout"),
        ] {
            assert!(
                matches!(failure(status, &doc(code)), NodeError::Unavailable { .. }),
                "{status} {code}"
            );
        }
        match failure(403, &doc("SignatureDoesNotMatch")) {
            NodeError::Refused { reason, .. } => {
                assert_eq!(
                    reason,
                    "op: HTTP 403 SignatureDoesNotMatch: m SignatureDoesNotMatch"
                )
            }
            e => panic!("{e:?}"),
        }
        for (status, code) in [
            (404, "NoSuchBucket"),
            (404, "NoSuchUpload"),
            (400, "BadDigest"),
        ] {
            assert!(
                matches!(failure(status, &doc(code)), NodeError::Refused { .. }),
                "{status} {code}"
            );
        }
        let e = xml::S3Error {
            code: "InternalError".into(),
            message: "x".into(),
        };
        assert!(matches!(
            node.inner.error_document("op", &e),
            NodeError::Unavailable { .. }
        ));
    }

    #[tokio::test]
    async fn send_body_frames_and_stamps_progress() {
        let progress = Progress::new();
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(progress.idle() >= Duration::from_millis(30));
        let body = SendBody {
            data: Bytes::from(vec![7u8; 3 * FRAME + 1]),
            progress: progress.clone(),
        };
        assert_eq!(body.size_hint().exact(), Some(3 * FRAME as u64 + 1));
        let mut body = body;
        let mut sizes = Vec::new();
        while let Some(frame) = body.frame().await {
            sizes.push(frame.unwrap().into_data().unwrap().len());
        }
        assert_eq!(sizes, [FRAME, FRAME, FRAME, 1]);
        assert!(progress.idle() < Duration::from_millis(30));
    }
}
