//! [`RemoteNode`]: the gateway's [`NodeStore`] for `gateway node` servers (see
//! [`super::protocol`]).
//!
//! Contract, on top of the [`NodeStore`] one:
//! - An `http://` address is reached in plain HTTP/1.1. An `https://` address is reached only
//!   over TLS, in HTTP/1.1 (no ALPN is offered, so a node serves HTTP/1.1), trusting exactly
//!   the certificates of [`RemoteOptions::ca_file`] when set, else the system roots, and
//!   checking the address's host (DNS name or IP) against the certificate. A certificate that
//!   does not verify fails the request like an unreachable node ([`NodeError::Unavailable`],
//!   the reason naming the certificate problem). Requests are signed the same way on both (see
//!   [`super::protocol`]).
//! - [`RemoteNode::new`] does no network I/O but reads the trust roots: an unreadable or empty
//!   CA file, or missing system roots for an https address, fail it with [`NodeError::Io`]
//!   whose source wraps the [`TlsError`] naming the file; a CA file for an `http://` address
//!   fails it too (the operator meant TLS and would not get it).
//! - Connections are pooled per node (HTTP/1.1 keep-alive) and closed after
//!   [`POOL_IDLE_TIMEOUT`] idle, before the server's own idle limit.
//! - `connect_timeout` bounds opening a connection. `read_timeout` bounds each wait on the
//!   node: a response head, each frame of a response body, the node taking the next chunk of an
//!   upload, and the answer to a commit.
//! - Idempotent requests (GET, HEAD, DELETE, status, listing) are retried up to `retries`
//!   times, with exponential backoff and jitter, after connection errors, timeouts and 5xx
//!   answers other than 507. A PUT is never retried: its body is streamed once.
//! - A writer streams each `write` as it comes through a channel of [`UPLOAD_QUEUE`] chunks
//!   (memory is bounded by it), hashing it with BLAKE3 on the way; [`PieceWriter::commit`]
//!   ends the body with the `x-gw-blake3` trailer (chunked HTTP/1.1 with `Trailer:
//!   x-gw-blake3`, or h2 trailers; see [`super::protocol`]) and returns once the node answered
//!   201, i.e. the piece arrived intact and is durable. A node that received other bytes than
//!   were hashed answers 400, which the commit returns as [`NodeError::Refused`] with the
//!   node's reason ("piece body does not match its BLAKE3 digest"). A writer aborted or
//!   dropped before commit breaks its body off, and the server discards the upload.
//! - Errors name the node and the cause: 404 is [`NodeError::NotFound`], 416
//!   [`NodeError::ShortRead`], other 4xx and 507 [`NodeError::Refused`] (with the node's
//!   one-line reason), connection failures, timeouts and other 5xx [`NodeError::Unavailable`].
//!   An unreachable node is not an error until it is used.

use super::http::{backoff, error_chain};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, RANGE, TRAILER};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body::Body;
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::body::{BodyMsg, NodeBody};
use super::protocol::{
    digest_trailers, list_target, piece_target, status_target, unix_now, NodeStatus, NodeToken,
    PieceList, DATE_HEADER, DIGEST_TRAILER, MAX_LIST_LIMIT,
};
use super::{BoxFuture, NodeError, NodeStore, PieceId, PieceWriter, Space};
use crate::tls::{client_config, TlsError};

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_RETRIES: u32 = 2;
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// Chunks of an upload buffered between the writer and the connection.
pub const UPLOAD_QUEUE: usize = 2;
/// Bytes of an error body kept for the message.
const ERROR_BODY_MAX: usize = 4096;
/// Largest JSON answer (a full listing page is ~0.7 MB).
const JSON_BODY_MAX: usize = 4 << 20;

/// How to reach one node server.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// `http://host:port` or `https://host:port`.
    pub address: String,
    pub token: NodeToken,
    /// For `https://` addresses: a PEM bundle whose certificates are the only ones trusted
    /// (a self-signed node certificate, or a private CA). `None` trusts the system roots.
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Retries of an idempotent request after the first attempt.
    pub retries: u32,
}

impl RemoteOptions {
    /// Options with the default timeouts and retries.
    pub fn new(address: impl Into<String>, token: NodeToken) -> Self {
        RemoteOptions {
            address: address.into(),
            token,
            ca_file: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            retries: DEFAULT_RETRIES,
        }
    }
}

/// Checks a node address: `http://host[:port]` or `https://host[:port]` with no path.
/// Returns the reason it is not.
pub fn validate_address(address: &str) -> Result<(), String> {
    base_url(address).map(|_| ())
}

/// The address without a trailing slash, and whether it is `https`.
fn base_url(address: &str) -> Result<(String, bool), String> {
    let uri: Uri = address
        .parse()
        .map_err(|_| format!("{address:?} is not a URL like http://127.0.0.1:7001"))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(format!("{address:?} must start with http:// or https://")),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{address:?} has no host"))?;
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!("{address:?} must not have a path or query"));
    }
    let scheme = if tls { "https" } else { "http" };
    Ok((format!("{scheme}://{authority}"), tls))
}

pub struct RemoteNode {
    inner: Arc<Inner>,
}

struct Inner {
    id: String,
    base: String,
    token: NodeToken,
    client: Transport,
    read_timeout: Duration,
    retries: u32,
}

/// The pooled client of one node, plain or TLS.
enum Transport {
    Plain(Client<HttpConnector, NodeBody>),
    Tls(Client<HttpsConnector<HttpConnector>, NodeBody>),
}

impl Transport {
    fn request(&self, req: Request<NodeBody>) -> ResponseFuture {
        match self {
            Transport::Plain(c) => c.request(req),
            Transport::Tls(c) => c.request(req),
        }
    }
}

/// A complete answer of the node.
struct Reply {
    status: StatusCode,
    content_length: Option<u64>,
    body: Bytes,
}

impl RemoteNode {
    /// A client for the node at `opts.address`. Connects lazily: an unreachable node is only
    /// noticed by the requests that use it. Fails when the address is malformed or the TLS
    /// trust roots cannot be loaded (see the module doc).
    pub fn new(id: &str, opts: RemoteOptions) -> Result<RemoteNode, NodeError> {
        Self::with_versions(id, opts, false)
    }

    /// [`RemoteNode::new`], offering h2 before HTTP/1.1 over TLS when `offer_h2` (a node
    /// server picks h2 then).
    fn with_versions(
        id: &str,
        opts: RemoteOptions,
        offer_h2: bool,
    ) -> Result<RemoteNode, NodeError> {
        let unavailable = |reason| NodeError::Unavailable {
            node: id.to_string(),
            reason,
        };
        let (base, tls) = base_url(&opts.address).map_err(unavailable)?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(opts.connect_timeout));
        connector.set_nodelay(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT);
        let client = if tls {
            let config =
                client_config(opts.ca_file.as_deref()).map_err(|e| tls_setup_error(id, e))?;
            connector.enforce_http(false);
            let https = HttpsConnectorBuilder::new()
                .with_tls_config(config)
                .https_only()
                .enable_http1();
            let https = if offer_h2 {
                https.enable_http2().wrap_connector(connector)
            } else {
                https.wrap_connector(connector)
            };
            Transport::Tls(builder.build(https))
        } else {
            if let Some(ca) = &opts.ca_file {
                return Err(unavailable(format!(
                    "a CA file ({}) is set but {} is not an https:// address",
                    ca.display(),
                    opts.address
                )));
            }
            Transport::Plain(builder.build(connector))
        };
        Ok(RemoteNode {
            inner: Arc::new(Inner {
                id: id.to_string(),
                base,
                token: opts.token,
                client,
                read_timeout: opts.read_timeout,
                retries: opts.retries,
            }),
        })
    }

    /// The node's free space and version.
    pub async fn status(&self) -> Result<NodeStatus, NodeError> {
        let r = self
            .inner
            .call(Method::GET, &status_target(), None, JSON_BODY_MAX)
            .await?;
        self.inner.json(r)
    }

    /// Up to `limit` (at most 10 000) piece ids greater than `after`, ascending.
    pub async fn list_pieces(
        &self,
        after: Option<PieceId>,
        limit: usize,
    ) -> Result<Vec<PieceId>, NodeError> {
        let target = list_target(after, limit.clamp(1, MAX_LIST_LIMIT));
        let r = self
            .inner
            .call(Method::GET, &target, None, JSON_BODY_MAX)
            .await?;
        let list: PieceList = self.inner.json(r)?;
        list.pieces
            .iter()
            .map(|h| {
                PieceId::from_hex(h).ok_or_else(|| {
                    self.inner
                        .unavailable(format!("listed a bad piece id {h:?}"))
                })
            })
            .collect()
    }
}

impl Inner {
    fn unavailable(&self, reason: impl Into<String>) -> NodeError {
        NodeError::Unavailable {
            node: self.id.clone(),
            reason: reason.into(),
        }
    }

    /// The error for an answer that is not the expected success.
    fn refused(&self, status: StatusCode, body: &[u8]) -> NodeError {
        let reason = String::from_utf8_lossy(body).trim().to_string();
        let reason = if reason.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {reason}")
        };
        match status {
            StatusCode::NOT_FOUND => NodeError::NotFound {
                node: self.id.clone(),
            },
            StatusCode::RANGE_NOT_SATISFIABLE => NodeError::ShortRead {
                node: self.id.clone(),
            },
            s if s.is_server_error() && s != StatusCode::INSUFFICIENT_STORAGE => {
                self.unavailable(reason)
            }
            _ => NodeError::Refused {
                node: self.id.clone(),
                reason,
            },
        }
    }

    fn json<T: serde::de::DeserializeOwned>(&self, r: Reply) -> Result<T, NodeError> {
        if r.status != StatusCode::OK {
            return Err(self.refused(r.status, &r.body));
        }
        serde_json::from_slice(&r.body)
            .map_err(|e| self.unavailable(format!("malformed answer: {e}")))
    }

    fn request(
        &self,
        method: Method,
        target: &str,
        body: NodeBody,
        range: Option<(u64, u64)>,
    ) -> Result<Request<NodeBody>, NodeError> {
        let date = unix_now();
        let content_length = body.size_hint().exact().filter(|n| *n > 0);
        let auth = self
            .token
            .authorization(method.as_str(), target, date, content_length);
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{target}", self.base))
            .header(DATE_HEADER, date)
            .header(AUTHORIZATION, auth);
        if let Some((first, last)) = range {
            b = b.header(RANGE, format!("bytes={first}-{last}"));
        }
        b.body(body)
            .map_err(|e| self.unavailable(format!("cannot build request: {e}")))
    }

    /// An idempotent request, retried as the module doc says. `max_body` bounds a successful
    /// answer's body.
    async fn call(
        &self,
        method: Method,
        target: &str,
        range: Option<(u64, u64)>,
        max_body: usize,
    ) -> Result<Reply, NodeError> {
        let mut attempt = 0;
        loop {
            let result = self.once(method.clone(), target, range, max_body).await;
            let transient = match &result {
                Ok(r) => r.status.is_server_error() && r.status != StatusCode::INSUFFICIENT_STORAGE,
                Err(_) => true,
            };
            if !transient || attempt >= self.retries {
                return result;
            }
            if let Err(e) = &result {
                tracing::debug!(node = %self.id, %method, target, error = %e, attempt, "retrying");
            }
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }

    async fn once(
        &self,
        method: Method,
        target: &str,
        range: Option<(u64, u64)>,
        max_body: usize,
    ) -> Result<Reply, NodeError> {
        let req = self.request(method, target, NodeBody::empty(), range)?;
        let resp = tokio::time::timeout(self.read_timeout, self.client.request(req))
            .await
            .map_err(|_| self.unavailable(format!("no answer within {:?}", self.read_timeout)))?
            .map_err(|e| self.unavailable(error_chain(&e)))?;
        let status = resp.status();
        let content_length = resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = if status.is_success() {
            self.collect(resp.into_body(), max_body, false).await?
        } else {
            self.collect(resp.into_body(), ERROR_BODY_MAX, true).await?
        };
        Ok(Reply {
            status,
            content_length,
            body,
        })
    }

    /// Reads a response body of at most `max` bytes (cut there when `truncate`, else an
    /// error), waiting at most the read timeout for each frame.
    async fn collect(
        &self,
        body: Incoming,
        max: usize,
        truncate: bool,
    ) -> Result<Bytes, NodeError> {
        super::http::collect(body, self.read_timeout, max, truncate)
            .await
            .map_err(|r| self.unavailable(r))
    }
}

fn tls_setup_error(node: &str, e: TlsError) -> NodeError {
    let kind = match &e {
        TlsError::Read { source, .. } | TlsError::SystemRoots { source } => source.kind(),
        _ => std::io::ErrorKind::InvalidData,
    };
    NodeError::Io {
        node: node.to_string(),
        op: "TLS trust roots",
        source: std::io::Error::new(kind, e),
    }
}

impl NodeStore for RemoteNode {
    fn id(&self) -> &str {
        &self.inner.id
    }

    fn space<'a>(&'a self) -> BoxFuture<'a, Result<Option<Space>, NodeError>> {
        Box::pin(async move {
            let s = self.status().await?;
            Ok(Some(Space {
                free: s.free_bytes,
                total: s.total_bytes,
            }))
        })
    }

    fn create<'a>(
        &'a self,
        piece: PieceId,
    ) -> BoxFuture<'a, Result<Box<dyn PieceWriter>, NodeError>> {
        Box::pin(async move {
            let inner = self.inner.clone();
            let (tx, body) = NodeBody::channel(UPLOAD_QUEUE);
            let mut req = inner.request(Method::PUT, &piece_target(&piece), body, None)?;
            // hyper's HTTP/1.1 client sends only the trailer fields announced here.
            req.headers_mut()
                .insert(TRAILER, HeaderValue::from_static(DIGEST_TRAILER));
            let response = inner.client.request(req);
            let task_inner = inner.clone();
            let task = tokio::spawn(async move {
                let inner = task_inner;
                let resp = response
                    .await
                    .map_err(|e| inner.unavailable(format!("upload: {}", error_chain(&e))))?;
                let status = resp.status();
                if status == StatusCode::CREATED {
                    return Ok(());
                }
                let body = inner
                    .collect(resp.into_body(), ERROR_BODY_MAX, true)
                    .await
                    .unwrap_or_default();
                Err(inner.refused(status, &body))
            });
            Ok(Box::new(RemoteWriter {
                inner,
                tx: Some(tx),
                task: Some(task),
                hasher: Some(blake3::Hasher::new()),
            }) as Box<dyn PieceWriter>)
        })
    }

    fn read<'a>(
        &'a self,
        piece: PieceId,
        offset: u64,
        len: u64,
    ) -> BoxFuture<'a, Result<Bytes, NodeError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let target = piece_target(&piece);
            let short = || NodeError::ShortRead {
                node: inner.id.clone(),
            };
            if len == 0 {
                // A Range cannot name zero bytes: ask for the size instead.
                let r = inner.call(Method::HEAD, &target, None, 0).await?;
                if r.status != StatusCode::OK {
                    return Err(inner.refused(r.status, &r.body));
                }
                let size = r
                    .content_length
                    .ok_or_else(|| inner.unavailable("HEAD answer without Content-Length"))?;
                return if offset <= size {
                    Ok(Bytes::new())
                } else {
                    Err(short())
                };
            }
            let last = offset.checked_add(len - 1).ok_or_else(short)?;
            let max = usize::try_from(len).map_err(|_| short())?;
            let r = inner
                .call(Method::GET, &target, Some((offset, last)), max)
                .await?;
            if r.status != StatusCode::PARTIAL_CONTENT {
                return Err(inner.refused(r.status, &r.body));
            }
            if r.body.len() != max {
                return Err(inner.unavailable(format!(
                    "sent {} of the {len} bytes asked for",
                    r.body.len()
                )));
            }
            Ok(r.body)
        })
    }

    fn delete<'a>(&'a self, piece: PieceId) -> BoxFuture<'a, Result<(), NodeError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let r = inner
                .call(Method::DELETE, &piece_target(&piece), None, 0)
                .await?;
            match r.status {
                StatusCode::NO_CONTENT | StatusCode::OK | StatusCode::NOT_FOUND => Ok(()),
                s => Err(inner.refused(s, &r.body)),
            }
        })
    }

    fn list<'a>(
        &'a self,
        after: Option<PieceId>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<PieceId>, NodeError>> {
        Box::pin(self.list_pieces(after, limit))
    }

    /// A HEAD of the piece (its Content-Length): one small request, no body.
    fn size<'a>(&'a self, piece: PieceId) -> BoxFuture<'a, Result<u64, NodeError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let r = inner
                .call(Method::HEAD, &piece_target(&piece), None, 0)
                .await?;
            if r.status != StatusCode::OK {
                return Err(inner.refused(r.status, &r.body));
            }
            r.content_length
                .ok_or_else(|| inner.unavailable("HEAD answer without Content-Length"))
        })
    }
}

/// An upload in flight: `tx` feeds the request body, `task` waits for the node's answer,
/// `hasher` has seen every byte handed to `tx`.
struct RemoteWriter {
    inner: Arc<Inner>,
    tx: Option<mpsc::Sender<BodyMsg>>,
    task: Option<JoinHandle<Result<(), NodeError>>>,
    /// `None` while a write hashes on the blocking pool, and for good when that write was
    /// cancelled or failed: a commit then fails instead of sending a wrong digest.
    hasher: Option<blake3::Hasher>,
}

impl RemoteWriter {
    async fn send(&mut self, msg: BodyMsg) -> Result<(), NodeError> {
        // The node may have answered (401, 507...) while we were still sending.
        if self.task.as_ref().is_some_and(|t| t.is_finished()) {
            return Err(self.early_answer().await);
        }
        let Some(tx) = self.tx.as_ref() else {
            return Err(self.inner.unavailable("upload already failed"));
        };
        match tokio::time::timeout(self.inner.read_timeout, tx.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            // The connection dropped the body: the answer (or the failure) says why.
            Ok(Err(_)) => Err(self.early_answer().await),
            Err(_) => {
                self.tx = None;
                Err(self.inner.unavailable(format!(
                    "node took no upload data for {:?}",
                    self.inner.read_timeout
                )))
            }
        }
    }

    /// The reason the request ended before its body did.
    async fn early_answer(&mut self) -> NodeError {
        self.tx = None;
        let Some(mut task) = self.task.take() else {
            return self.inner.unavailable("upload already failed");
        };
        match tokio::time::timeout(self.inner.read_timeout, &mut task).await {
            Ok(Ok(Err(e))) => e,
            Ok(Ok(Ok(()))) => self
                .inner
                .unavailable("node answered before the upload was complete"),
            Ok(Err(e)) => self.inner.unavailable(format!("upload task failed: {e}")),
            Err(_) => {
                task.abort();
                self.inner.unavailable("upload refused without an answer")
            }
        }
    }
}

/// Writes smaller than this are hashed in place: cheaper than a hop to the blocking pool.
const HASH_IN_PLACE: usize = 64 << 10;

impl PieceWriter for RemoteWriter {
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<(), NodeError>> {
        Box::pin(async move {
            if data.is_empty() {
                return Ok(());
            }
            let Some(mut hasher) = self.hasher.take() else {
                return Err(self.inner.unavailable("upload already failed"));
            };
            if data.len() < HASH_IN_PLACE {
                hasher.update(&data);
                self.hasher = Some(hasher);
                return self.send(BodyMsg::Data(data)).await;
            }
            // Larger writes are hashed on the blocking pool while the bytes go out.
            let hashed = data.clone();
            let hashing = tokio::task::spawn_blocking(move || {
                hasher.update(&hashed);
                hasher
            });
            let sent = self.send(BodyMsg::Data(data)).await;
            let hasher = hashing
                .await
                .map_err(|e| self.inner.unavailable(format!("hashing failed: {e}")))?;
            self.hasher = Some(hasher);
            sent
        })
    }

    fn commit(mut self: Box<Self>) -> BoxFuture<'static, Result<(), NodeError>> {
        Box::pin(async move {
            let Some(hasher) = self.hasher.take() else {
                return Err(self.inner.unavailable("upload already failed"));
            };
            let trailers = digest_trailers(&hasher.finalize());
            self.send(BodyMsg::EndWithTrailers(trailers)).await?;
            self.tx = None;
            let Some(mut task) = self.task.take() else {
                return Err(self.inner.unavailable("upload already failed"));
            };
            match tokio::time::timeout(self.inner.read_timeout, &mut task).await {
                Ok(Ok(result)) => result,
                Ok(Err(e)) => Err(self.inner.unavailable(format!("upload task failed: {e}"))),
                Err(_) => {
                    task.abort();
                    Err(self.inner.unavailable(format!(
                        "no answer to the commit within {:?}",
                        self.inner.read_timeout
                    )))
                }
            }
        })
    }

    fn abort(self: Box<Self>) -> BoxFuture<'static, ()> {
        // Dropping the sender without `End` breaks the body off (see `Drop`).
        Box::pin(async move { drop(self) })
    }
}

impl Drop for RemoteWriter {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests;
