//! The admin listener (`--admin-listen`, default [`DEFAULT_ADMIN_LISTEN`]) and its client,
//! `gateway stats`.
//!
//! Endpoints (HTTP/1.1 and h2c, GET only; any other method on them is 405 with `Allow: GET`,
//! any other path 404; the query string is ignored):
//! - `/metrics`: [`Metrics::encode`] as `application/openmetrics-text; version=1.0.0;
//!   charset=utf-8`.
//! - `/v1/stats`: the [`StatsReport`] as JSON, computed on demand by the [`AdminSource`]; a
//!   source error is 500 with its message, a report not ready within [`STATS_TIMEOUT`] is 504.
//! - `/healthz`: `ok`.
//! - `/` (with `/status.js` and `/status.css`): the status page, self-contained (no resource
//!   from elsewhere: the machines are often offline), refreshed every [`HISTORY_INTERVAL`]
//!   from the two endpoints below; a strict `Content-Security-Policy` keeps it to its own
//!   files.
//! - `/v1/history`: the traffic counters sampled every [`HISTORY_INTERVAL`] over the last hour
//!   (at most [`HISTORY_SAMPLES`] samples, oldest first), as JSON
//!   `{"interval_ms": N, "columns": [...], "samples": [[unix_ms, node_up, node_down, s3_in,
//!   s3_out], ...]}`; the page plots their differences as rates.
//!
//! The listener has no authentication: it must never share the S3 port (where `/metrics` is a
//! bucket name, a check left to the configuration), and [`AdminServer::start`] logs a warning
//! when it listens on anything but loopback. [`AdminServer::stop`] stops accepting, closes idle
//! connections and waits at most [`SHUTDOWN_GRACE`] for requests in flight; dropping the
//! server without `stop` shuts it down the same way in the background.
//!
//! [`fetch_stats`] never waits longer than [`FETCH_TIMEOUT`] in total and reads at most
//! [`MAX_REPORT_BYTES`] of body.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CONNECTION, CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use crate::metrics::Metrics;

mod report;

pub use report::{
    human_bytes, render, AuditStats, FindingCount, HealthReport, HealthyCount, LimitsReport,
    NodeReport, OrphanReport, PiecesNotOk, RepairStats, ReplicationReport, StatsReport,
    StoredTotals,
};

/// Where the admin listener listens unless told otherwise.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:7778";
/// The content type of `/metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// How long `/v1/stats` may take to compute before the request fails with 504.
pub const STATS_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful stop waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long [`fetch_stats`] may take to connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`fetch_stats`] may take in total; longer than [`STATS_TIMEOUT`] so that the
/// server's own 504 reaches the operator rather than a bare client timeout.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(40);
/// The largest `/v1/stats` body [`fetch_stats`] accepts.
pub const MAX_REPORT_BYTES: usize = 16 << 20;

/// How often the traffic counters are sampled for the status page's plots.
pub const HISTORY_INTERVAL: Duration = Duration::from_secs(5);
/// Samples kept: one hour of intervals, and the sample the first one starts from.
pub const HISTORY_SAMPLES: usize = 721;

/// The sampled traffic counters (see the module doc).
#[derive(Debug, Default)]
struct History {
    samples: Mutex<VecDeque<[u64; 5]>>,
}

impl History {
    fn record(&self, metrics: &Metrics) {
        let t = metrics.snapshot();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let sample = [
            now,
            t.node_sent_total(),
            t.node_received_total(),
            t.s3_received_bytes,
            t.s3_sent_bytes,
        ];
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if samples.len() == HISTORY_SAMPLES {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    fn json(&self) -> Vec<u8> {
        let samples: Vec<[u64; 5]> = self
            .samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        let doc = serde_json::json!({
            "interval_ms": HISTORY_INTERVAL.as_millis() as u64,
            "columns": ["unix_ms", "node_up_bytes", "node_down_bytes", "s3_in_bytes", "s3_out_bytes"],
            "samples": samples,
        });
        doc.to_string().into_bytes()
    }
}

/// What the admin listener reports; implemented by the running gateway.
pub trait AdminSource: Send + Sync + 'static {
    fn metrics(&self) -> &Metrics;
    /// The full report for /v1/stats (computed on demand: database totals, node health).
    fn stats(&self) -> Pin<Box<dyn Future<Output = Result<StatsReport, String>> + Send + '_>>;
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid admin address {addr:?}: {reason}")]
    Address { addr: String, reason: &'static str },
    #[error("cannot connect to the admin listener at {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the admin listener at {addr} did not answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("talking to the admin listener at {addr}: {source}")]
    Http {
        addr: String,
        #[source]
        source: hyper::Error,
    },
    #[error("reading the answer of the admin listener at {addr}: {source}")]
    Body {
        addr: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the admin listener at {addr} answered {status}: {message}")]
    Status {
        addr: String,
        status: StatusCode,
        message: String,
    },
    #[error("the admin listener at {addr} sent a report that does not parse: {source}")]
    Decode {
        addr: String,
        #[source]
        source: serde_json::Error,
    },
}

/// A running admin listener.
pub struct AdminServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl AdminServer {
    /// Binds `addr` and starts serving.
    pub async fn start(
        addr: SocketAddr,
        source: Arc<dyn AdminSource>,
    ) -> Result<AdminServer, AdminError> {
        let listen_err = |source| AdminError::Listen { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(listen_err)?;
        let bound = listener.local_addr().map_err(listen_err)?;
        if !bound.ip().is_loopback() {
            tracing::warn!(
                addr = %bound,
                "the admin listener has no authentication; anyone who can reach this address \
                 can read the metrics and the stats report"
            );
        }
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(serve(listener, source, rx));
        Ok(AdminServer {
            addr: bound,
            shutdown: Some(tx),
            task,
        })
    }

    /// The bound address (the actual port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits (up to [`SHUTDOWN_GRACE`]) for requests in flight; the port
    /// is free when this returns.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

async fn serve(
    listener: TcpListener,
    source: Arc<dyn AdminSource>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let mut conns = JoinSet::new();
    let history = Arc::new(History::default());
    // The plots start from the counters at start.
    history.record(source.metrics());
    let sampler = {
        let (source, history) = (source.clone(), history.clone());
        tokio::spawn(async move {
            let mut sample = tokio::time::interval_at(
                tokio::time::Instant::now() + HISTORY_INTERVAL,
                HISTORY_INTERVAL,
            );
            sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                sample.tick().await;
                history.record(source.metrics());
            }
        })
    };
    // `shutdown` also resolves when the AdminServer is dropped without stop().
    while let Some((stream, peer)) =
        crate::serve::next_connection(&listener, &mut shutdown, "admin").await
    {
        while conns.try_join_next().is_some() {}
        let (source, history) = (source.clone(), history.clone());
        let service = hyper::service::service_fn(move |req| {
            let (source, history) = (source.clone(), history.clone());
            async move { Ok::<_, Infallible>(handle(source.as_ref(), &history, req).await) }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        conns.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "admin connection ended with an error");
            }
        });
    }
    sampler.abort();
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "admin requests still running after the shutdown grace period; dropping them"
        );
    }
}

enum Route {
    Metrics,
    Stats,
    Health,
    History,
    Page(&'static str, &'static str),
}

/// The status page's files (src/admin/status/).
const STATUS_HTML: &str = include_str!("admin/status/index.html");
const STATUS_JS: &str = include_str!("admin/status/status.js");
const STATUS_CSS: &str = include_str!("admin/status/status.css");

async fn handle(
    source: &dyn AdminSource,
    history: &History,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let route = match req.uri().path() {
        "/metrics" => Route::Metrics,
        "/v1/stats" => Route::Stats,
        "/v1/history" => Route::History,
        "/healthz" => Route::Health,
        "/" => Route::Page("text/html; charset=utf-8", STATUS_HTML),
        "/status.js" => Route::Page("text/javascript; charset=utf-8", STATUS_JS),
        "/status.css" => Route::Page("text/css; charset=utf-8", STATUS_CSS),
        _ => return text(StatusCode::NOT_FOUND, "no such endpoint\n"),
    };
    if req.method() != Method::GET {
        let mut resp = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not allowed here; use GET\n", req.method()),
        );
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return resp;
    }
    match route {
        Route::Metrics => body(
            StatusCode::OK,
            OPENMETRICS_CONTENT_TYPE,
            source.metrics().encode(),
        ),
        Route::Health => text(StatusCode::OK, "ok"),
        Route::Stats => stats(source).await,
        Route::History => body(StatusCode::OK, "application/json", history.json()),
        Route::Page(content_type, page) => {
            let mut resp = body(StatusCode::OK, content_type, page);
            let headers = resp.headers_mut();
            headers.insert(
                http::header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
                ),
            );
            headers.insert(
                http::header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            headers.insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            );
            resp
        }
    }
}

async fn stats(source: &dyn AdminSource) -> Response<Full<Bytes>> {
    let report = match tokio::time::timeout(STATS_TIMEOUT, source.stats()).await {
        Ok(Ok(report)) => report,
        Ok(Err(message)) => {
            tracing::warn!(error = %message, "admin: computing the stats report failed");
            return text(StatusCode::INTERNAL_SERVER_ERROR, format!("{message}\n"));
        }
        Err(_) => {
            tracing::warn!(timeout = ?STATS_TIMEOUT, "admin: the stats report took too long");
            return text(
                StatusCode::GATEWAY_TIMEOUT,
                format!("the stats report was not ready within {STATS_TIMEOUT:?}\n"),
            );
        }
    };
    match serde_json::to_vec(&report) {
        Ok(json) => body(StatusCode::OK, "application/json", json),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the stats report: {e}\n"),
        ),
    }
}

fn body(
    status: StatusCode,
    content_type: &'static str,
    data: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(data.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn text(status: StatusCode, message: impl Into<Bytes>) -> Response<Full<Bytes>> {
    body(status, "text/plain; charset=utf-8", message)
}

/// `gateway stats`: GET http://{addr}/v1/stats and parse it. `addr` is `host:port`, with or
/// without a leading `http://`.
pub async fn fetch_stats(addr: &str) -> Result<StatsReport, AdminError> {
    fetch_stats_within(addr, CONNECT_TIMEOUT, FETCH_TIMEOUT).await
}

async fn fetch_stats_within(
    addr: &str,
    connect_timeout: Duration,
    total: Duration,
) -> Result<StatsReport, AdminError> {
    let authority = authority(addr)?;
    let (status, _, body) = tokio::time::timeout(
        total,
        request(authority, Method::GET, "/v1/stats", connect_timeout),
    )
    .await
    .map_err(|_| AdminError::Timeout {
        addr: authority.to_string(),
        timeout: total,
    })??;
    if status != StatusCode::OK {
        let message = String::from_utf8_lossy(&body);
        let message: String = message
            .trim()
            .chars()
            .take(500)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        return Err(AdminError::Status {
            addr: authority.to_string(),
            status,
            message,
        });
    }
    serde_json::from_slice(&body).map_err(|source| AdminError::Decode {
        addr: authority.to_string(),
        source,
    })
}

/// `host:port` out of `host:port`, `http://host:port` or `http://host:port/`.
fn authority(addr: &str) -> Result<&str, AdminError> {
    let bad = |reason| AdminError::Address {
        addr: addr.to_string(),
        reason,
    };
    if addr.starts_with("https://") {
        return Err(bad("the admin listener speaks plain HTTP"));
    }
    let rest = addr.strip_prefix("http://").unwrap_or(addr);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) || rest.contains(char::is_whitespace)
    {
        return Err(bad("expected host:port"));
    }
    if !rest
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
    {
        return Err(bad("expected host:port"));
    }
    Ok(rest)
}

/// One request on a fresh HTTP/1.1 connection; the body is read up to [`MAX_REPORT_BYTES`].
/// Not bounded in time by itself: callers wrap it in a timeout, and dropping it closes the
/// connection (no task is spawned).
async fn request(
    authority: &str,
    method: Method,
    path: &str,
    connect_timeout: Duration,
) -> Result<(StatusCode, HeaderMap, Bytes), AdminError> {
    let addr = || authority.to_string();
    let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(authority))
        .await
        .map_err(|_| AdminError::Timeout {
            addr: addr(),
            timeout: connect_timeout,
        })?
        .map_err(|source| AdminError::Connect {
            addr: addr(),
            source,
        })?;
    let _ = stream.set_nodelay(true);
    let http = |source| AdminError::Http {
        addr: addr(),
        source,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, authority)
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|_| AdminError::Address {
            addr: addr(),
            reason: "not usable as a Host header",
        })?;
    let exchange = async move {
        let resp = sender.send_request(req).await.map_err(http)?;
        drop(sender);
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_REPORT_BYTES)
            .collect()
            .await
            .map_err(|source| AdminError::Body {
                addr: addr(),
                source,
            })?
            .to_bytes();
        Ok((parts.status, parts.headers, body))
    };
    // The connection future drives the socket while `exchange` waits on it; it ends once the
    // response is read and the sender dropped.
    let (result, conn_result) = tokio::join!(exchange, conn);
    if let Err(e) = conn_result {
        tracing::debug!(error = %e, "admin client connection ended with an error");
    }
    result
}

#[cfg(test)]
mod tests;
