//! `gateway node run`: one [`DirNode`] served over HTTP/1.1 and h2c, or, with a certificate,
//! only over TLS with HTTP/1.1 and h2 (see [`super::protocol`] for the endpoints and the
//! authentication, [`crate::tls`] for the TLS settings).
//!
//! Guarantees:
//! - With TLS, a bad or unreadable certificate or key stops [`NodeServer::start`] with an error
//!   naming the file, before anything is bound or written. Each connection's handshake runs in
//!   its own task and is bounded by [`TLS_HANDSHAKE_TIMEOUT`]; a failed or stalled handshake is
//!   logged at debug level and closes only that connection.
//! - Every request is authenticated before it is routed; a request without a valid signature
//!   gets 401 with a one-line reason and touches nothing on disk.
//! - `PUT` answers 201 only after the whole body arrived (the declared Content-Length, or the
//!   final chunk of a chunked body), the BLAKE3 hash of every byte read matched the body's
//!   `x-gw-blake3` trailer (compared in constant time, see [`super::protocol`]), and the piece
//!   was fsynced and renamed into place. A body that breaks, stalls for [`BODY_IDLE_TIMEOUT`],
//!   exceeds its declared length or [`MAX_PIECE_LEN`](super::protocol::MAX_PIECE_LEN), or
//!   whose digest is missing, malformed or different (400 with a one-line reason) leaves no
//!   piece and no temp file. Temp files of a killed process are removed at the next start
//!   ([`DirNode::remove_stale_temp`]): one server per directory.
//! - A `PUT` is refused with 507 when it would leave less than the reserve free on the node's
//!   filesystem (checked before the first byte and again every [`SPACE_CHECK_EVERY`] bytes).
//! - Reads stream a piece in bounded windows from one open handle: a reader sees one version
//!   of a piece even if it is replaced meanwhile, and memory per request is bounded.
//! - `GET /v1/status` reports transfer counters since start: `received_bytes` counts piece PUT
//!   body bytes as they are read from the connection (failed and aborted uploads included),
//!   `sent_bytes` piece bytes as a GET answer hands them to the connection. Other bodies
//!   (status, listings, errors) are not counted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::body::NodeBody;
use super::dir::TempSweep;
use super::protocol::{
    unix_now, NodeStatus, NodeToken, PieceList, TokenError, API_PREFIX, DATE_HEADER,
    DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, PROTOCOL_VERSION,
};
use super::{DirNode, NodeError, NodeStore, PieceId};
use crate::tls::{reloadable_server_config, ReloadableCert, TlsError, TlsFiles, NODE_ALPN};

/// The default token file inside the node directory.
pub const TOKEN_FILE: &str = "token";
/// An upload that sends nothing for this long is discarded.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const SPACE_CHECK_EVERY: u64 = 64 << 20;
/// Bytes buffered before a write to disk (one blocking call per batch, not per frame).
const WRITE_BATCH: usize = 1 << 20;
/// Bytes read from disk per step of a streamed GET.
const READ_WINDOW: usize = 1 << 20;
/// How long a graceful stop waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// A connection that has not completed its TLS handshake by then is closed.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

mod piece;

/// Runs the node server's parsers of a request target and a `Range` header over arbitrary
/// input (the fuzz targets' entry point; never panics on any input).
#[doc(hidden)]
pub fn fuzz_request(target: &str, range: &str) {
    if let Ok(uri) = target.parse::<Uri>() {
        let _ = route(&uri);
    }
    let _ = piece::parse_range(range);
}

use super::dir::fs_space;
use piece::{get_piece, put_piece, CountedBody};

#[derive(Debug, Clone)]
pub struct NodeServerOptions {
    /// The node directory; initialised when absent or empty.
    pub dir: PathBuf,
    pub listen: SocketAddr,
    /// The token file; `None` means `dir/token`, created on first start.
    pub token_file: Option<PathBuf>,
    /// Free bytes to keep on the filesystem.
    pub reserve: u64,
    /// Serve only TLS with this certificate and key; `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeServerError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The certificate or key cannot be used. Not a `source`: the message already carries the
    /// cause, and a chain would print it twice.
    #[error("TLS: {0}")]
    Tls(TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A running node server.
pub struct NodeServer {
    addr: SocketAddr,
    cert: Option<Arc<ReloadableCert>>,
    token_file: PathBuf,
    token_created: bool,
    stale_temp_removed: TempSweep,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl NodeServer {
    /// Loads the TLS certificate and key (when set), opens (or initialises) the directory,
    /// loads or creates the token, removes stale temp files, binds and starts serving.
    pub async fn start(opts: &NodeServerOptions) -> Result<NodeServer, NodeServerError> {
        let cert = match &opts.tls {
            Some(files) => Some(ReloadableCert::load(files).map_err(NodeServerError::Tls)?),
            None => None,
        };
        let tls = match &cert {
            Some(cert) => Some(TlsAcceptor::from(
                reloadable_server_config(cert.clone(), NODE_ALPN).map_err(NodeServerError::Tls)?,
            )),
            None => None,
        };
        let node = DirNode::open("local", &opts.dir, true)?;
        let token_file = opts
            .token_file
            .clone()
            .unwrap_or_else(|| opts.dir.join(TOKEN_FILE));
        let (token, token_created) = NodeToken::load_or_create(&token_file)?;
        let stale_temp_removed = node.remove_stale_temp()?;
        let listener =
            TcpListener::bind(opts.listen)
                .await
                .map_err(|source| NodeServerError::Listen {
                    addr: opts.listen,
                    source,
                })?;
        let addr = listener
            .local_addr()
            .map_err(|source| NodeServerError::Listen {
                addr: opts.listen,
                source,
            })?;
        let state = Arc::new(State {
            node,
            token,
            reserve: opts.reserve,
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
        });
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(serve(listener, state, tls, rx));
        Ok(NodeServer {
            addr,
            cert,
            token_file,
            token_created,
            stale_temp_removed,
            shutdown: Some(tx),
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn token_file(&self) -> &Path {
        &self.token_file
    }

    /// Re-reads the TLS certificate and key (SIGHUP); on an error the pair in use stays.
    /// Returns whether there was one to reload.
    pub fn reload_tls(&self) -> Result<bool, NodeServerError> {
        match &self.cert {
            Some(cert) => cert.reload().map(|()| true).map_err(NodeServerError::Tls),
            None => Ok(false),
        }
    }

    /// Whether this start created the token file.
    pub fn token_created(&self) -> bool {
        self.token_created
    }

    /// Temp files of unfinished uploads removed at start, and their bytes.
    pub fn stale_temp_removed(&self) -> TempSweep {
        self.stale_temp_removed
    }

    /// Stops accepting and waits (up to 30 s) for requests in flight.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Waits until the server ends (only through [`NodeServer::stop`]).
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }

    /// Drops every connection at once, uploads in flight included (their temp files are
    /// removed, nothing is committed): what clients see when a node dies.
    pub fn kill(self) {
        self.task.abort();
    }
}

struct State {
    node: DirNode,
    token: NodeToken,
    reserve: u64,
    /// The transfer counters of [`NodeStatus`].
    received: AtomicU64,
    sent: AtomicU64,
}

type ConnBuilder = hyper_util::server::conn::auto::Builder<TokioExecutor>;

async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    tls: Option<TlsAcceptor>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = ConnBuilder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    // Connections live in this set so that aborting the server task (`kill`) drops them all.
    let mut conns = JoinSet::new();
    while let Some((stream, peer)) =
        crate::serve::next_connection(&listener, &mut shutdown, "node").await
    {
        while conns.try_join_next().is_some() {}
        // Watched from accept on, so a graceful stop also waits for (bounded) handshakes.
        let conn = connection(
            stream,
            peer,
            state.clone(),
            builder.clone(),
            tls.clone(),
            graceful.watcher(),
        );
        conns.spawn(conn);
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after the shutdown grace period; dropping them");
    }
}

/// Serves one accepted connection to its end: the TLS handshake first when `tls` is set.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<State>,
    builder: Arc<ConnBuilder>,
    tls: Option<TlsAcceptor>,
    watcher: Watcher,
) {
    let Some(acceptor) = tls else {
        return serve_http(stream, peer, state, &builder, watcher).await;
    };
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => serve_http(stream, peer, state, &builder, watcher).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(
            %peer,
            "no TLS handshake within {} s; connection closed",
            TLS_HANDSHAKE_TIMEOUT.as_secs()
        ),
    }
}

async fn serve_http<I>(
    io: I,
    peer: SocketAddr,
    state: Arc<State>,
    builder: &ConnBuilder,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(state, req, peer).await) }
    });
    let conn = builder.serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// A request that cannot be served: its status and a one-line reason for the body.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    message: String,
    piece_size: Option<u64>,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
            piece_size: None,
        }
    }

    fn into_response(self, is_head: bool) -> Response<NodeBody> {
        let body = if is_head {
            NodeBody::empty()
        } else {
            NodeBody::full(format!("{}\n", self.message))
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = self.status;
        resp.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Some(size) = self.piece_size {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut().insert(CONTENT_RANGE, v);
            }
        }
        resp
    }
}

impl From<NodeError> for Failure {
    fn from(e: NodeError) -> Self {
        let status = match &e {
            NodeError::NotFound { .. } => StatusCode::NOT_FOUND,
            NodeError::ShortRead { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            NodeError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => {
                StatusCode::INSUFFICIENT_STORAGE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure::new(status, e.to_string())
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<CountedBody> {
    let is_head = req.method() == Method::HEAD;
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = match respond(&state, req).await {
        Ok(resp) => resp,
        Err(f) => {
            if f.status == StatusCode::UNAUTHORIZED || f.status.is_server_error() {
                tracing::warn!(%peer, %method, %path, status = f.status.as_u16(), reason = %f.message, "request refused");
            } else {
                tracing::debug!(%peer, %method, %path, status = f.status.as_u16(), reason = %f.message, "request refused");
            }
            f.into_response(is_head)
        }
    };
    CountedBody::wrap(resp, &state)
}

enum Route {
    Status,
    List {
        after: Option<PieceId>,
        limit: usize,
    },
    Piece(PieceId),
}

async fn respond(
    state: &Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<NodeBody>, Failure> {
    authenticate(state, &req)?;
    let route = route(req.uri())?;
    match (route, req.method().clone()) {
        (Route::Status, Method::GET) => status(state),
        (Route::List { after, limit }, Method::GET) => list(state, after, limit).await,
        (Route::Piece(id), Method::PUT) => put_piece(state, id, req).await,
        (Route::Piece(id), Method::GET) => get_piece(state, id, req.headers(), false).await,
        (Route::Piece(id), Method::HEAD) => get_piece(state, id, req.headers(), true).await,
        (Route::Piece(id), Method::DELETE) => {
            state.node.delete(id).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (_, m) => Err(Failure::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{m} is not allowed on {}", req.uri().path()),
        )),
    }
}

fn authenticate(state: &State, req: &Request<Incoming>) -> Result<(), Failure> {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    state
        .token
        .verify(
            req.method().as_str(),
            target,
            header(DATE_HEADER),
            content_length(req.headers())?,
            header(http::header::AUTHORIZATION.as_str()),
            unix_now(),
        )
        .map_err(|e| Failure::new(StatusCode::UNAUTHORIZED, e.to_string()))
}

fn content_length(headers: &HeaderMap) -> Result<Option<u64>, Failure> {
    headers
        .get(CONTENT_LENGTH)
        .map(|v| {
            v.to_str().ok().and_then(|s| s.parse().ok()).ok_or_else(|| {
                Failure::new(StatusCode::BAD_REQUEST, "Content-Length is not a number")
            })
        })
        .transpose()
}

fn route(uri: &Uri) -> Result<Route, Failure> {
    let not_found = || Failure::new(StatusCode::NOT_FOUND, "no such endpoint");
    let rest = uri.path().strip_prefix(API_PREFIX).ok_or_else(not_found)?;
    match rest {
        "/status" => Ok(Route::Status),
        "/pieces" => list_query(uri.query().unwrap_or("")),
        _ => {
            let hex = rest.strip_prefix("/pieces/").ok_or_else(not_found)?;
            PieceId::from_hex(hex).map(Route::Piece).ok_or_else(|| {
                Failure::new(
                    StatusCode::BAD_REQUEST,
                    "a piece id is 64 lowercase hex digits",
                )
            })
        }
    }
}

fn list_query(query: &str) -> Result<Route, Failure> {
    let bad = |m: String| Failure::new(StatusCode::BAD_REQUEST, m);
    let mut after = None;
    let mut limit = DEFAULT_LIST_LIMIT;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "after" => {
                after = Some(PieceId::from_hex(v).ok_or_else(|| {
                    bad("after must be a piece id (64 lowercase hex digits)".into())
                })?)
            }
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIST_LIMIT).contains(n))
                    .ok_or_else(|| bad(format!("limit must be 1..={MAX_LIST_LIMIT}")))?
            }
            other => return Err(bad(format!("unknown listing parameter {other:?}"))),
        }
    }
    Ok(Route::List { after, limit })
}

fn empty(status: StatusCode) -> Response<NodeBody> {
    let mut resp = Response::new(NodeBody::empty());
    *resp.status_mut() = status;
    resp
}

fn json<T: serde::Serialize>(value: &T) -> Result<Response<NodeBody>, Failure> {
    let body = serde_json::to_vec(value)
        .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut resp = Response::new(NodeBody::full(body));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

fn status(state: &State) -> Result<Response<NodeBody>, Failure> {
    let (free_bytes, total_bytes) = fs_space(state.node.root()).map_err(|e| {
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("free space of the node directory: {e}"),
        )
    })?;
    json(&NodeStatus {
        version: env!("CARGO_PKG_VERSION").to_string(),
        protocol: PROTOCOL_VERSION,
        free_bytes,
        total_bytes,
        reserve_bytes: state.reserve,
        received_bytes: state.received.load(Ordering::Relaxed),
        sent_bytes: state.sent.load(Ordering::Relaxed),
    })
}

async fn list(
    state: &Arc<State>,
    after: Option<PieceId>,
    limit: usize,
) -> Result<Response<NodeBody>, Failure> {
    let st = state.clone();
    let ids = tokio::task::spawn_blocking(move || st.node.list_pieces(after, limit))
        .await
        .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let next_after = if ids.len() == limit {
        ids.last().map(PieceId::to_hex)
    } else {
        None
    };
    json(&PieceList {
        pieces: ids.iter().map(PieceId::to_hex).collect(),
        next_after,
    })
}

#[cfg(test)]
mod tests;
