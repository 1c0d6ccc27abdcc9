//! The S3 listener's accept loop: HTTP/1.1 connections with a cap on how many are open, a
//! deadline for every request head, a cap on a head's size, and graceful shutdown.
//!
//! Contract:
//! - At most `max_connections` client connections are open. At the cap, the connection idle
//!   the longest (no request in flight: a keep-alive connection between requests, or one
//!   still sending its head) is closed outright to make room for a new one; when none is
//!   idle, the new connection is accepted but not read, and the idlest is asked again every
//!   100 ms (later connections wait in the kernel's listen backlog).
//! - A request's line and headers must arrive within `header_timeout` of the connection
//!   opening or of the previous response (hyper's header-read timeout, which on a keep-alive
//!   connection also bounds the idle time): idle and half-sent heads are closed.
//! - A head over [`MAX_HEAD_BYTES`] is refused by hyper itself (`431`, connection closed);
//!   smaller heads over S3's 8 KiB are refused by the service with S3's own error.
//! - A response must be taken by its client like a request body is sent: over every
//!   `response_timeout` window during which the connection holds a frame for the client, at
//!   least `response_min_rate` bytes per second of it (at least one byte) must leave, else the
//!   connection is closed (checked every second) and everything its request held (buffers,
//!   its share of the memory budget) freed. Time the gateway spends producing the next frame
//!   does not count.
//! - With TLS, the handshake must finish within `header_timeout` of the connection opening,
//!   and then the first request head within `header_timeout` of the handshake; a connection
//!   still in its handshake counts as idle.
//! - On shutdown, no new connection is accepted, idle connections close at once, in-flight
//!   requests get `drain_timeout` to finish.
//!
//! Memory: a connection's read buffer holds at most one head (≤ [`MAX_HEAD_BYTES`]) or one
//! body frame, so connections cost at most `max_connections × MAX_HEAD_BYTES` in heads.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// The largest request head hyper reads at all; larger ones get a bare `431`. Heads between
/// S3's 8 KiB and this get S3's `RequestHeaderSectionTooLarge`.
pub const MAX_HEAD_BYTES: usize = 128 << 10;

/// Connections the kernel completes before the gateway accepts them. Beyond it the kernel
/// drops handshakes and clients retry them with backoff (up to a minute), so it is sized for
/// bursts well past `max_client_connections` (Linux caps it at `net.core.somaxconn`).
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the S3 listener (address reuse on, so a restart never waits for old sockets).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// How the listener treats its clients.
#[derive(Debug, Clone)]
pub struct ListenerOptions {
    pub max_connections: usize,
    pub header_timeout: Duration,
    /// The window over which a client must take `response_min_rate` of a response.
    pub response_timeout: Duration,
    /// Bytes per second (0: at least one byte per window).
    pub response_min_rate: u64,
    /// How long in-flight requests may take to finish at shutdown.
    pub drain_timeout: Duration,
}

/// One open connection, as the accept loop sees it.
struct ConnState {
    /// Requests whose response has not been fully sent.
    active: AtomicUsize,
    /// When the connection last started or finished a request (ms since the listener began).
    last_active: AtomicU64,
    /// Set once the accept loop asked it to close (it is not asked twice).
    closing: std::sync::atomic::AtomicBool,
    close: Notify,
    /// Whether a response frame is waiting for the client to take it.
    waiting_client: std::sync::atomic::AtomicBool,
    /// Bytes written to the client so far.
    written: AtomicU64,
}

struct Registry {
    started: Instant,
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
    response_timeout_ms: u64,
    response_min_rate: u64,
}

impl Registry {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Bytes a client must take of a response over each window.
    fn window_bytes(&self) -> u64 {
        (self
            .response_min_rate
            .saturating_mul(self.response_timeout_ms)
            / 1000)
            .max(1)
    }

    /// Asks the connection idle the longest to close; false when none is idle.
    fn close_idlest(&self) -> bool {
        let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        let idlest = conns
            .values()
            .filter(|c| c.active.load(Ordering::Acquire) == 0 && !c.closing.load(Ordering::Relaxed))
            .min_by_key(|c| c.last_active.load(Ordering::Relaxed));
        match idlest {
            Some(c) => {
                c.closing.store(true, Ordering::Relaxed);
                c.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Removes a connection from the registry when its task ends.
struct Registered {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// Marks its connection busy while a response is being produced and sent.
struct ActiveGuard {
    conn: Arc<ConnState>,
    registry: Arc<Registry>,
}

impl ActiveGuard {
    fn new(conn: Arc<ConnState>, registry: Arc<Registry>) -> ActiveGuard {
        conn.active.fetch_add(1, Ordering::AcqRel);
        conn.last_active.store(registry.now_ms(), Ordering::Relaxed);
        ActiveGuard { conn, registry }
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.conn.waiting_client.store(false, Ordering::Relaxed);
        self.conn
            .last_active
            .store(self.registry.now_ms(), Ordering::Relaxed);
        self.conn.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its connection marked busy until it is sent or dropped.
pub struct Tracked<B> {
    inner: B,
    guard: ActiveGuard,
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        // A frame handed over starts (or keeps) the client's clock; none (the gateway is still
        // producing it, or the body ended) stops it.
        let waiting = matches!(&polled, Poll::Ready(Some(Ok(frame)))
            if frame.data_ref().is_some_and(|d| !d.is_empty()));
        self.guard
            .conn
            .waiting_client
            .store(waiting, Ordering::Relaxed);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection's stream, counting what it writes to the client (for the response rate).
struct Progress<IO> {
    io: IO,
    conn: Arc<ConnState>,
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Progress<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: tokio::io::AsyncWrite + Unpin> Progress<IO> {
    fn count(&self, r: &Poll<std::io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = r {
            self.conn.written.fetch_add(*n as u64, Ordering::Relaxed);
        }
    }
}

impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Progress<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.count(&r);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.count(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// An accepted client connection: plain TCP, or TLS over it.
pub enum ClientStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientStream::Plain(s) => s.is_write_vectored(),
            ClientStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Serves HTTP/1.1 on `listener` until `shutdown` resolves, over TLS when `tls` is set. `wrap`
/// adapts each accepted stream (byte counting); `handle` answers one request.
pub async fn serve<IO, W, H, Fut, B>(
    listener: TcpListener,
    opts: ListenerOptions,
    tls: Option<TlsAcceptor>,
    wrap: W,
    handle: H,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    W: Fn(ClientStream) -> IO + Clone + Send + 'static,
    H: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let registry = Arc::new(Registry {
        started: Instant::now(),
        conns: Mutex::new(HashMap::new()),
        response_timeout_ms: opts.response_timeout.as_millis() as u64,
        response_min_rate: opts.response_min_rate,
    });
    let slots = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout)
        .max_header_size(MAX_HEAD_BYTES)
        // Also the largest body frame: what a connection buffers is bounded by it.
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    let mut tasks = JoinSet::new();
    let mut next_id = 0u64;
    tokio::pin!(shutdown);
    'accept: while let Some((stream, peer)) =
        crate::serve::next_connection(&listener, &mut shutdown, "s3").await
    {
        while tasks.try_join_next().is_some() {}
        // A connection slot for it: at the cap, close the idlest connection and wait for its
        // slot (or any other) to come back.
        // Until one comes back, the idlest connection is asked again every 100 ms: a
        // connection busy now may be idle a moment later.
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let mut logged = false;
                loop {
                    if !registry.close_idlest() && !logged {
                        logged = true;
                        tracing::debug!(
                            max = opts.max_connections,
                            "client connection cap reached with no idle connection; the new one waits"
                        );
                    }
                    tokio::select! {
                        p = slots.clone().acquire_owned() => match p {
                            Ok(p) => break p,
                            Err(_) => return Ok(()),
                        },
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = &mut shutdown => break 'accept,
                    }
                }
            }
        };
        let id = next_id;
        next_id += 1;
        let state = Arc::new(ConnState {
            active: AtomicUsize::new(0),
            last_active: AtomicU64::new(registry.now_ms()),
            closing: std::sync::atomic::AtomicBool::new(false),
            close: Notify::new(),
            waiting_client: std::sync::atomic::AtomicBool::new(false),
            written: AtomicU64::new(0),
        });
        registry
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, state.clone());
        let service = {
            let (handle, state, registry) = (handle.clone(), state.clone(), registry.clone());
            hyper::service::service_fn(move |req| {
                let guard = ActiveGuard::new(state.clone(), registry.clone());
                let fut = handle(req, peer);
                async move {
                    let resp = fut.await;
                    Ok::<_, Infallible>(resp.map(|inner| Tracked { inner, guard }))
                }
            })
        };
        let (registry, mut stop) = (registry.clone(), stop_rx.clone());
        let (builder, tls, wrap) = (builder.clone(), tls.clone(), wrap.clone());
        let header_timeout = opts.header_timeout;
        tasks.spawn(async move {
            // Leaves the registry however the task ends (a panic included).
            let registered = Registered { registry, id };
            let stream = match tls {
                None => ClientStream::Plain(stream),
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(header_timeout, acceptor.accept(stream));
                    tokio::select! {
                        r = handshake => match r {
                            Ok(Ok(s)) => ClientStream::Tls(Box::new(s)),
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "no TLS handshake within the header timeout; connection closed");
                                return;
                            }
                        },
                        // Idle until it has spoken: closed to make room, or at shutdown.
                        _ = state.close.notified() => return,
                        _ = stop.changed() => return,
                    }
                }
            };
            let io = Progress {
                io: wrap(stream),
                conn: state.clone(),
            };
            let conn = builder.serve_connection(TokioIo::new(io), service);
            tokio::pin!(conn);
            let mut closing = false;
            let mut check = tokio::time::interval(Duration::from_secs(1));
            let mut window: Option<(u64, u64)> = None;
            check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = check.tick() => {
                        // A window opens when the client is found holding up a frame and
                        // closes (judged) after `response_timeout`; the gateway producing
                        // resets it.
                        let registry = &registered.registry;
                        if !state.waiting_client.load(Ordering::Relaxed) {
                            window = None;
                            continue;
                        }
                        let (now, written) = (registry.now_ms(), state.written.load(Ordering::Relaxed));
                        match window {
                            None => window = Some((now, written)),
                            Some((since, from)) if now - since >= registry.response_timeout_ms => {
                                if written - from < registry.window_bytes() {
                                    tracing::info!(%peer, "client took too little of its response in time; connection closed");
                                    break;
                                }
                                window = Some((now, written));
                            }
                            Some(_) => {}
                        }
                    }
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(%peer, error = %e, "client connection ended with an error");
                        }
                        break;
                    }
                    _ = state.close.notified(), if !closing => {
                        // Idle (at most part of a head received): closed outright, so its
                        // slot is back at once. Its last response is out of the way: a
                        // connection that just answered is the most recently active, asked
                        // last. A request that began meanwhile is let finish.
                        if state.active.load(Ordering::Acquire) == 0 {
                            break;
                        }
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    _ = stop.changed(), if !closing => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(opts.drain_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = tasks.len(),
            "in-flight requests did not finish within {:?}",
            opts.drain_timeout
        );
        tasks.abort_all();
    }
    Ok(())
}
