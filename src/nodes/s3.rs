//! [`S3Node`]: a [`NodeStore`] that keeps each piece as one object of a bucket on an
//! S3-compatible server.
//!
//! Contract, on top of the [`NodeStore`] one:
//! - Piece `p` is the object `{prefix}{p.to_hex()}` of `bucket`, addressed path-style
//!   (`{endpoint}/{bucket}/{prefix}{hex}`). Every request is signed with SigV4 (`sign.rs`).
//!   Bodies are sent as `UNSIGNED-PAYLOAD` with a `Content-MD5`, so the server rejects a body
//!   damaged in transit.
//! - Visibility, durability and atomic replacement are the server's: a piece exists once the
//!   PUT or CompleteMultipartUpload carrying it answered success, and S3 replaces an object
//!   whole.
//! - A writer holds at most [`PART_SIZE`] bytes plus the `write` in progress. A piece of at
//!   most [`PART_SIZE`] bytes is one PUT at commit. A larger one is a multipart upload, created
//!   when the buffer is full and more data comes; each full part is uploaded (and awaited)
//!   inside `write`, the rest and CompleteMultipartUpload at commit. A writer aborted, dropped
//!   or failed before its commit succeeded aborts its multipart upload: awaited by `abort` and
//!   by a failed `commit`, in a task spawned on the current tokio runtime on drop (with no
//!   runtime the upload is left to the bucket's lifecycle rules, and a warning logged).
//! - `read(offset, len)` is a ranged GET whose answer must be exactly `len` bytes; a shorter
//!   one (S3 clamps ranges at the object's end) or a 416 is [`NodeError::ShortRead`]. The
//!   answer may be a 206, or a 200 with a `Content-Range` (rclone's), and must start at
//!   `offset`; a 200 without one is taken as the whole object, so only from offset 0. `len ==
//!   0` is a HEAD.
//! - `list` is ListObjectsV2 under `prefix`, starting after `after`, following continuation
//!   tokens until `limit` ids or the end. Keys whose rest is not a piece id are skipped; keys
//!   up to `after` are dropped client-side too, for servers that ignore `start-after`.
//! - Time: `connect_timeout` bounds opening a TCP connection; `read_timeout` bounds each wait
//!   on the server: the TLS handshake and response head (counted from the last request-body
//!   bytes hyper took, so a slow but moving upload is not cut off), and each frame of a
//!   response body.
//! - Idempotent requests (GET, HEAD, DELETE: reads, deletes, listings, bucket checks,
//!   AbortMultipartUpload) are retried up to `retries` times, with exponential backoff and
//!   jitter, after connection errors, timeouts, 5xx and 429. Uploads (PUT, UploadPart,
//!   Create/CompleteMultipartUpload) never are: the scheduler writes a failed piece elsewhere.
//! - Errors: 404 is [`NodeError::NotFound`] (but a missing bucket or upload is `Refused`), 416
//!   `ShortRead`; connection failures, timeouts, 5xx, 429 and the codes `SlowDown`,
//!   `RequestTimeout`, `InternalError`, `ServiceUnavailable` are `Unavailable`; other 4xx are
//!   `Refused`, with the S3 error code and message in the reason. The secret key is never in an
//!   error, a log line or `Debug` output.

mod client;
mod sign;
mod writer;
mod xml;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_RANGE};
use http::{HeaderValue, Method, StatusCode, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::remote::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, DEFAULT_RETRIES, POOL_IDLE_TIMEOUT,
};
use super::{BoxFuture, NodeError, NodeStore, PieceId, PieceWriter};
use client::{Req, SendBody, ERROR_BODY_MAX, XML_BODY_MAX};
use sign::Signer;
use writer::S3Writer;

/// Bytes a writer buffers before it starts a multipart upload, and the size of every part but
/// the last.
pub const PART_SIZE: usize = 8 << 20;
/// S3's largest part number (the same limit this gateway's S3 side keeps).
const MAX_PARTS: usize = crate::meta::MAX_PART_NUMBER as usize;
/// S3's largest `max-keys`.
const MAX_LIST_KEYS: usize = 1000;

/// How to reach one bucket.
#[derive(Clone)]
pub struct S3Options {
    /// `http://host:port` or `https://host[:port]`, no path.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    /// Prepended to every piece's object key (may be empty; e.g. "gw/n1/").
    pub prefix: String,
    pub access_key: String,
    pub secret_key: String,
    /// PEM bundle to trust for https endpoints instead of the system roots (self-signed servers).
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Retries of an idempotent request (GET, HEAD, DELETE, list) after the first attempt.
    pub retries: u32,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("ca_file", &self.ca_file)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

impl S3Options {
    /// Options with no prefix, the system roots, and the default timeouts and retries.
    pub fn new(
        endpoint: impl Into<String>,
        region: impl Into<String>,
        bucket: impl Into<String>,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> S3Options {
        S3Options {
            endpoint: endpoint.into(),
            region: region.into(),
            bucket: bucket.into(),
            prefix: String::new(),
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            ca_file: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            retries: DEFAULT_RETRIES,
        }
    }
}

/// Checks an endpoint string; returns the reason it is unusable.
pub fn validate_endpoint(endpoint: &str) -> Result<(), String> {
    Endpoint::parse(endpoint).map(|_| ())
}

struct Endpoint {
    /// `scheme://authority`.
    base: String,
    /// The authority, as the `Host` header (and so signed).
    host: String,
    https: bool,
}

impl Endpoint {
    fn parse(endpoint: &str) -> Result<Endpoint, String> {
        let example = "a URL like https://s3.example.com or http://127.0.0.1:9000";
        let uri: Uri = endpoint
            .parse()
            .map_err(|_| format!("{endpoint:?} is not {example}"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(format!("{endpoint:?} must start with http:// or https://")),
        };
        let authority = uri
            .authority()
            .filter(|a| !a.host().is_empty())
            .ok_or_else(|| format!("{endpoint:?} has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!(
                "{endpoint:?} must not carry credentials (use access_key and secret_key)"
            ));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!(
                "{endpoint:?} must not have a path or query (the bucket is configured apart)"
            ));
        }
        let scheme = if https { "https" } else { "http" };
        Ok(Endpoint {
            base: format!("{scheme}://{authority}"),
            host: authority.as_str().to_string(),
            https,
        })
    }
}

/// A bucket (and key prefix) on an S3-compatible server, as a storage node.
pub struct S3Node {
    inner: Arc<Inner>,
}

impl fmt::Debug for S3Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Node")
            .field("id", &self.inner.id)
            .field("endpoint", &self.inner.base)
            .field("bucket", &self.inner.bucket)
            .field("prefix", &self.inner.prefix)
            .field("signer", &self.inner.signer)
            .finish_non_exhaustive()
    }
}

struct Inner {
    id: String,
    base: String,
    host: HeaderValue,
    bucket: String,
    prefix: String,
    signer: Signer,
    client: Client<HttpsConnector<HttpConnector>, SendBody>,
    read_timeout: Duration,
    retries: u32,
}

impl S3Node {
    /// A client for `opts.bucket`. Reads `opts.ca_file` (or the system roots) for an https
    /// endpoint, but opens no connection: an unreachable server is only noticed by the
    /// requests that use it.
    pub fn new(id: &str, opts: S3Options) -> Result<S3Node, NodeError> {
        let bad = |reason: String| NodeError::Unavailable {
            node: id.to_string(),
            reason,
        };
        let endpoint = Endpoint::parse(&opts.endpoint).map_err(bad)?;
        check_options(&opts).map_err(bad)?;
        let host = HeaderValue::from_str(&endpoint.host)
            .map_err(|_| bad(format!("{:?} is not a valid host", endpoint.host)))?;
        let tls = tls_config(&endpoint, &opts).map_err(bad)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(opts.connect_timeout));
        http.set_nodelay(true);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Ok(S3Node {
            inner: Arc::new(Inner {
                id: id.to_string(),
                base: endpoint.base,
                host,
                signer: Signer::new(&opts.access_key, &opts.secret_key, &opts.region),
                bucket: opts.bucket,
                prefix: opts.prefix,
                client,
                read_timeout: opts.read_timeout,
                retries: opts.retries,
            }),
        })
    }

    /// HEAD bucket: Ok when the bucket is reachable with these credentials.
    pub async fn check(&self) -> Result<(), NodeError> {
        let inner = &self.inner;
        let path = sign::encode_path(&[&inner.bucket]);
        let r = inner
            .call(&Req::new("HEAD bucket", Method::HEAD, &path), 0)
            .await?;
        match r.status {
            s if s.is_success() => Ok(()),
            // A HEAD answer has no body to tell a missing bucket from a missing key.
            StatusCode::NOT_FOUND => Err(NodeError::Refused {
                node: inner.id.clone(),
                reason: format!("HEAD bucket: no bucket {:?}", inner.bucket),
            }),
            _ => Err(inner.failure("HEAD bucket", &r)),
        }
    }
}

fn check_options(opts: &S3Options) -> Result<(), String> {
    if opts.bucket.is_empty() || opts.bucket.contains('/') {
        return Err(format!(
            "bucket {:?} must be a bucket name (no '/')",
            opts.bucket
        ));
    }
    if opts.region.is_empty()
        || !opts
            .region
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/')
    {
        return Err(format!("region {:?} is not a region name", opts.region));
    }
    // The access key goes into the Authorization header's `Credential=AK/scope` list.
    if opts.access_key.is_empty()
        || !opts
            .access_key
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b','))
    {
        return Err("access_key must be printable ASCII without '/' or ','".into());
    }
    if opts.secret_key.is_empty() {
        return Err("secret_key is empty".into());
    }
    Ok(())
}

/// The TLS settings of an https endpoint: exactly the certificates of `ca_file`, or the
/// system roots. A plain-http endpoint never uses them (its `ca_file` is ignored), so it gets
/// an empty root store rather than reading the system's.
fn tls_config(endpoint: &Endpoint, opts: &S3Options) -> Result<rustls::ClientConfig, String> {
    if endpoint.https {
        return crate::tls::client_config(opts.ca_file.as_deref()).map_err(|e| e.to_string());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}

impl Inner {
    fn object_path(&self, piece: &PieceId) -> String {
        sign::encode_path(&[&self.bucket, "/", &self.prefix, &piece.to_hex()])
    }

    async fn head_size(&self, path: &str) -> Result<u64, NodeError> {
        let r = self
            .call(&Req::new("HEAD piece", Method::HEAD, path), 0)
            .await?;
        if r.status != StatusCode::OK {
            return Err(self.failure("HEAD piece", &r));
        }
        r.headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| self.unavailable("HEAD piece: answer without Content-Length"))
    }

    async fn read_piece(&self, piece: PieceId, offset: u64, len: u64) -> Result<Bytes, NodeError> {
        let path = self.object_path(&piece);
        let short = || NodeError::ShortRead {
            node: self.id.clone(),
        };
        if len == 0 {
            // A Range cannot name zero bytes: ask for the size instead.
            let size = self.head_size(&path).await?;
            return if offset <= size {
                Ok(Bytes::new())
            } else {
                Err(short())
            };
        }
        let last = offset.checked_add(len - 1).ok_or_else(short)?;
        let want = usize::try_from(len).map_err(|_| short())?;
        let req = Req::new("GET piece", Method::GET, &path).range(offset, last);
        let r = self.call(&req, want).await?;
        if !matches!(r.status, StatusCode::PARTIAL_CONTENT | StatusCode::OK) {
            return Err(self.failure("GET piece", &r));
        }
        // rclone's `serve s3` answers a ranged GET with 200 and a Content-Range; a 200
        // without one is the whole object, which is the range asked for only from offset 0.
        let first = match r.headers.get(CONTENT_RANGE) {
            Some(v) => content_range_start(v)
                .ok_or_else(|| self.unavailable(format!("GET piece: bad Content-Range {v:?}")))?,
            None if r.status == StatusCode::PARTIAL_CONTENT => offset,
            None => 0,
        };
        if first != offset {
            return Err(self.unavailable(format!(
                "GET piece: answered bytes from {first} for a range from {offset}"
            )));
        }
        if r.body.len() != want {
            return Err(short());
        }
        Ok(r.body)
    }

    async fn delete_piece(&self, piece: PieceId) -> Result<(), NodeError> {
        let req = Req::new("DELETE piece", Method::DELETE, &self.object_path(&piece));
        let r = self.call(&req, ERROR_BODY_MAX).await?;
        if r.status.is_success() {
            return Ok(());
        }
        match self.failure("DELETE piece", &r) {
            NodeError::NotFound { .. } => Ok(()),
            e => Err(e),
        }
    }

    async fn list_pieces(
        &self,
        after: Option<PieceId>,
        limit: usize,
    ) -> Result<Vec<PieceId>, NodeError> {
        let mut out = Vec::new();
        let path = sign::encode_path(&[&self.bucket]);
        let start_after = after.map(|a| format!("{}{}", self.prefix, a.to_hex()));
        let mut token: Option<String> = None;
        while out.len() < limit {
            let max_keys = (limit - out.len()).min(MAX_LIST_KEYS).to_string();
            let mut params = vec![
                ("list-type", "2"),
                ("prefix", self.prefix.as_str()),
                ("max-keys", max_keys.as_str()),
            ];
            match (&token, &start_after) {
                (Some(t), _) => params.push(("continuation-token", t.as_str())),
                (None, Some(s)) => params.push(("start-after", s.as_str())),
                (None, None) => {}
            }
            let req = Req::new("ListObjectsV2", Method::GET, &path).query(&params);
            let r = self.call(&req, XML_BODY_MAX).await?;
            if r.status != StatusCode::OK {
                return Err(self.failure("ListObjectsV2", &r));
            }
            let page = xml::parse_list(&r.body)
                .map_err(|e| self.unavailable(format!("ListObjectsV2: {e}")))?;
            for entry in &page.contents {
                let Some(id) = entry
                    .key
                    .strip_prefix(self.prefix.as_str())
                    .and_then(PieceId::from_hex)
                else {
                    continue;
                };
                if after.is_some_and(|a| id.0 <= a.0) {
                    continue;
                }
                out.push(id);
            }
            if !page.is_truncated {
                break;
            }
            // A truncated page must move the listing on, or it would never end.
            token = match page.next_continuation_token {
                Some(t) if !t.is_empty() && token.as_ref() != Some(&t) => Some(t),
                _ => {
                    return Err(self.unavailable(
                        "ListObjectsV2: truncated page without a new NextContinuationToken",
                    ))
                }
            };
        }
        out.truncate(limit);
        Ok(out)
    }
}

/// The first byte of a `Content-Range: bytes FIRST-LAST/SIZE` answer.
fn content_range_start(v: &HeaderValue) -> Option<u64> {
    let range = v.to_str().ok()?.strip_prefix("bytes ")?;
    let (first, _) = range.split_once('-')?;
    first.trim().parse().ok()
}

impl NodeStore for S3Node {
    fn id(&self) -> &str {
        &self.inner.id
    }

    fn create<'a>(
        &'a self,
        piece: PieceId,
    ) -> BoxFuture<'a, Result<Box<dyn PieceWriter>, NodeError>> {
        Box::pin(async move {
            let path = self.inner.object_path(&piece);
            Ok(Box::new(S3Writer::new(self.inner.clone(), path)) as Box<dyn PieceWriter>)
        })
    }

    fn read<'a>(
        &'a self,
        piece: PieceId,
        offset: u64,
        len: u64,
    ) -> BoxFuture<'a, Result<Bytes, NodeError>> {
        Box::pin(self.inner.read_piece(piece, offset, len))
    }

    fn delete<'a>(&'a self, piece: PieceId) -> BoxFuture<'a, Result<(), NodeError>> {
        Box::pin(self.inner.delete_piece(piece))
    }

    fn list<'a>(
        &'a self,
        after: Option<PieceId>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<PieceId>, NodeError>> {
        Box::pin(self.inner.list_pieces(after, limit))
    }

    /// A HEAD of the piece's object.
    fn size<'a>(&'a self, piece: PieceId) -> BoxFuture<'a, Result<u64, NodeError>> {
        Box::pin(async move { self.inner.head_size(&self.inner.object_path(&piece)).await })
    }
}

#[cfg(test)]
mod tests;
