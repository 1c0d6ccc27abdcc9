//! The S3 HTTP surface: listener, routing, authentication, XML bodies and errors.
//!
//! [`S3Service::handle`] is the whole request path: authenticate (SigV4, header or query),
//! route to an [`router::Op`], call one thin handler that translates to the object layer
//! and back, and turn any error into S3's XML error document. Nothing else lives here.

pub mod auth;
pub mod body;
mod bucket;
pub mod checksum_headers;
mod copy;
mod counting;
pub mod error;
#[doc(hidden)]
pub mod fuzz;
mod headers;
mod list;
pub mod listener;
mod multipart;
mod object;
pub mod router;
mod tagging;
pub mod xml;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use self::auth::{AuthError, Credentials, Verified};
use self::body::ResponseBody;
use self::error::S3Error;
use self::router::{Op, Query};
use crate::object::{ObjectError, ObjectLayer};
use crate::transfer::TransferError;

/// Settings of the S3 listener.
#[derive(Clone)]
pub struct S3Config {
    pub region: String,
    pub credentials: Credentials,
    /// Base domains for virtual-host-style requests (`bucket.<domain>`).
    pub domains: Vec<String>,
    /// Counts the bytes exchanged with clients, when set.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// Connection, head and body limits (`[server]`).
    pub server: crate::config::ServerConfig,
}

#[derive(Clone)]
pub struct S3Service {
    inner: Arc<(ObjectLayer, S3Config)>,
}

pub type HttpResponse = Response<ResponseBody>;

/// What a handler needs besides the endpoint.
pub(crate) struct Ctx<'a> {
    pub layer: &'a ObjectLayer,
    pub cfg: &'a S3Config,
    pub parts: &'a http::request::Parts,
    pub query: &'a Query,
    pub auth: &'a Verified,
}

impl Ctx<'_> {
    /// The request's small XML body (at most `limit` bytes), checked against its signature
    /// and, with `checksums`, its declared body checksums.
    pub async fn read_xml_body(
        &self,
        body: hyper::body::Incoming,
        limit: usize,
        checksums: bool,
    ) -> Result<Vec<u8>, S3Error> {
        body::read_small_body(
            body::RequestBody::new(body, &self.cfg.server),
            self.auth,
            &self.parts.headers,
            limit,
            checksums,
        )
        .await
    }
}

impl S3Service {
    pub fn new(layer: ObjectLayer, cfg: S3Config) -> Self {
        S3Service {
            inner: Arc::new((layer, cfg)),
        }
    }

    /// Serves S3 on `listener` (over TLS with `tls`) until `shutdown` resolves, then lets
    /// in-flight requests finish (see [`listener`] for the limits on clients).
    pub async fn serve(
        self,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let server = &self.inner.1.server;
        let opts = listener::ListenerOptions {
            max_connections: server.max_client_connections,
            header_timeout: server.header_timeout,
            response_timeout: server.body_timeout,
            response_min_rate: server.body_min_rate,
            drain_timeout: server.drain_timeout,
        };
        let metrics = self.inner.1.metrics.clone();
        let svc = self.clone();
        listener::serve(
            listener,
            opts,
            tls,
            move |stream| counting::Counting::new(stream, metrics.clone()),
            move |req, peer| {
                let svc = svc.clone();
                async move { svc.handle(req, peer).await }
            },
            shutdown,
        )
        .await
    }

    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> HttpResponse {
        let request_id = request_id();
        let (parts, body) = req.into_parts();
        let resource = parts.uri.path().to_string();
        let is_head = parts.method == http::Method::HEAD;
        // An empty body with `Expect: 100-continue` is never read, so no 100 goes out; some
        // clients (botocore before 1.44) then misparse the next response on the connection.
        let close_after = parts
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
            && parts
                .headers
                .get(http::header::CONTENT_LENGTH)
                .is_some_and(|v| v.as_bytes() == b"0");
        let result = self.dispatch(&parts, body).await;
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => {
                if e.status().is_server_error() {
                    tracing::error!(%peer, method = %parts.method, %resource, code = e.code.as_str(), message = %e.message, cause = e.cause().unwrap_or(""), "request failed");
                } else {
                    tracing::debug!(%peer, method = %parts.method, %resource, code = e.code.as_str(), message = %e.message, "request refused");
                }
                error_response(&e, &resource, &request_id, is_head)
            }
        };
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-amz-request-id", v);
        }
        resp.headers_mut()
            .insert(http::header::SERVER, HeaderValue::from_static("gateway"));
        if close_after {
            resp.headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }

    async fn dispatch(
        &self,
        parts: &http::request::Parts,
        body: Incoming,
    ) -> Result<HttpResponse, S3Error> {
        let (layer, cfg) = &*self.inner;
        check_header_section(parts)?;
        let query = Query::parse(parts.uri.query())?;
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str()));
        let (bucket, key) = router::split_target(host, parts.uri.path(), &cfg.domains)?;
        // SigV2 signs a virtual-host request's bucket apart from its path: the bucket that
        // split_target found only thanks to the Host header.
        let (path_bucket, path_key) = router::split_target(None, parts.uri.path(), &cfg.domains)?;
        let vhost_bucket = bucket
            .as_deref()
            .filter(|_| path_bucket != bucket || path_key != key);
        let auth = auth::verify_request(parts, &cfg.credentials, SystemTime::now(), vhost_bucket)
            .map_err(|e| auth_error(&e))?;
        let copy_source = parts.headers.contains_key("x-amz-copy-source");
        let op = router::route(
            &parts.method,
            bucket.as_deref(),
            key.as_deref(),
            &query,
            copy_source,
        )?;
        let ctx = Ctx {
            layer,
            cfg,
            parts,
            query: &query,
            auth: &auth,
        };
        let b = bucket.as_deref().unwrap_or("");
        let k = key.as_deref().unwrap_or("");
        if op.checks_key() {
            headers::check_key(k)?;
        }
        if bucket.is_some() {
            let copy = matches!(op, Op::CopyObject | Op::UploadPartCopy);
            headers::expected_owner(&parts.headers, &bucket::owner().id, copy)?;
        }
        match op {
            Op::ListBuckets => bucket::list_buckets(&ctx).await,
            Op::CreateBucket => bucket::create_bucket(&ctx, b, body).await,
            Op::HeadBucket => bucket::head_bucket(&ctx, b).await,
            Op::DeleteBucket => bucket::delete_bucket(&ctx, b).await,
            Op::GetBucketLocation => bucket::get_location(&ctx, b).await,
            Op::GetBucketVersioning => bucket::get_versioning(&ctx, b).await,
            Op::GetBucketAcl => bucket::get_acl(&ctx, b, None).await,
            Op::PutBucketAcl => bucket::put_acl(&ctx, b, None, body).await,
            Op::GetBucketTagging => tagging::get_bucket_tagging(&ctx, b).await,
            Op::PutBucketTagging => tagging::put_bucket_tagging(&ctx, b, body).await,
            Op::DeleteBucketTagging => tagging::delete_bucket_tagging(&ctx, b).await,
            Op::ListObjects => list::list_objects_v1(&ctx, b).await,
            Op::ListObjectsV2 => list::list_objects_v2(&ctx, b).await,
            Op::ListObjectVersions => list::list_object_versions(&ctx, b).await,
            Op::ListMultipartUploads => multipart::list_uploads(&ctx, b).await,
            Op::DeleteObjects => object::delete_objects(&ctx, b, body).await,
            Op::PutObject => object::put_object(&ctx, b, k, body).await,
            Op::CopyObject => copy::copy_object(&ctx, b, k).await,
            Op::GetObject => object::get_object(&ctx, b, k, false).await,
            Op::HeadObject => object::get_object(&ctx, b, k, true).await,
            Op::DeleteObject => object::delete_object(&ctx, b, k).await,
            Op::GetObjectAcl => bucket::get_acl(&ctx, b, Some(k)).await,
            Op::PutObjectAcl => bucket::put_acl(&ctx, b, Some(k), body).await,
            Op::GetObjectAttributes => object::get_object_attributes(&ctx, b, k).await,
            Op::GetObjectTagging => tagging::get_object_tagging(&ctx, b, k).await,
            Op::PutObjectTagging => tagging::put_object_tagging(&ctx, b, k, body).await,
            Op::DeleteObjectTagging => tagging::delete_object_tagging(&ctx, b, k).await,
            Op::CreateMultipartUpload => multipart::create_upload(&ctx, b, k).await,
            Op::UploadPart => multipart::upload_part(&ctx, b, k, body).await,
            Op::UploadPartCopy => multipart::upload_part_copy(&ctx, b, k).await,
            Op::CompleteMultipartUpload => multipart::complete_upload(&ctx, b, k, body).await,
            Op::AbortMultipartUpload => multipart::abort_upload(&ctx, b, k).await,
            Op::ListParts => multipart::list_parts(&ctx, b, k).await,
            Op::NotImplemented { what } => Err(S3Error::not_implemented(format!(
                "{what} is not implemented by this gateway"
            ))),
        }
    }
}

/// What `503 SlowDown` suggests in `Retry-After`, in seconds.
const RETRY_AFTER_SECS: &str = "5";

/// S3's limit on a request's headers (AWS documents 8 KiB for a PUT's headers and answers
/// larger ones with `RequestHeaderSectionTooLarge`); applied to every request.
pub const MAX_HEADER_SECTION: usize = 8 << 10;

/// Refuses a request whose headers (names, values and their framing) exceed
/// [`MAX_HEADER_SECTION`]. The query string does not count (a presigned URL carries its
/// credentials, and a session token, there). Its body is not read: the answer closes the
/// connection.
fn check_header_section(parts: &http::request::Parts) -> Result<(), S3Error> {
    let headers: usize = parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if headers <= MAX_HEADER_SECTION {
        return Ok(());
    }
    Err(S3Error::new(
        error::S3ErrorCode::RequestHeaderSectionTooLarge,
        "Your request header section exceeds the maximum allowed size.",
    )
    .with_detail("MaxSizeAllowed", MAX_HEADER_SECTION.to_string())
    .with_header(http::header::CONNECTION, HeaderValue::from_static("close")))
}

fn request_id() -> String {
    let mut b = [0u8; 8];
    // A request id is not a secret; on RNG failure an all-zero id is still usable.
    let _ = crate::crypto::random_bytes(&mut b);
    crate::crypto::encode_hex(&b).to_ascii_uppercase()
}

fn auth_error(e: &AuthError) -> S3Error {
    S3Error::new(e.s3_code(), e.to_string())
}

fn error_response(e: &S3Error, resource: &str, request_id: &str, is_head: bool) -> HttpResponse {
    let body = if is_head {
        ResponseBody::empty()
    } else {
        ResponseBody::full(e.to_xml(resource, request_id))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = e.status();
    if !is_head {
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
    }
    for (name, value) in &e.headers {
        resp.headers_mut().insert(name.clone(), value.clone());
    }
    resp
}

/// An XML response with status 200.
pub(crate) fn xml_response(xml: String) -> HttpResponse {
    let mut resp = Response::new(ResponseBody::full(xml));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    resp
}

pub(crate) fn empty_response(status: StatusCode) -> HttpResponse {
    let mut resp = Response::new(ResponseBody::empty());
    *resp.status_mut() = status;
    resp
}

/// Maps object-layer errors to S3 errors (the one place this translation happens).
pub(crate) fn object_error(e: ObjectError, bucket: &str, key: &str) -> S3Error {
    use error::S3ErrorCode as C;
    match e {
        ObjectError::NoSuchBucket(b) => S3Error::no_such_bucket(if b.is_empty() { bucket } else { &b }),
        ObjectError::BucketExists(_) => S3Error::bucket_already_owned_by_you(bucket),
        ObjectError::BucketNotEmpty(_) => S3Error::bucket_not_empty(bucket),
        ObjectError::NoSuchKey => S3Error::no_such_key(key),
        ObjectError::InvalidRange { size } => S3Error::invalid_range("", size),
        ObjectError::BodyAborted => S3Error::new(C::IncompleteBody, "the request body ended early"),
        ObjectError::BodyStalled => S3Error::new(
            C::RequestTimeout,
            "Your socket connection to the server was not read from or written to within the timeout period.",
        ),
        ObjectError::BadDigest => S3Error::new(
            C::BadDigest,
            "The Content-MD5 you specified did not match what we received.",
        ),
        ObjectError::PreconditionFailed => S3Error::precondition_failed("If-Match"),
        ObjectError::ChecksumMismatch(a) => S3Error::new(
            C::BadDigest,
            format!("The {a} you specified did not match the calculated checksum."),
        ),
        ObjectError::NoSuchUpload => S3Error::no_such_upload(""),
        ObjectError::InvalidRequest(m) => S3Error::invalid_request(m),
        ObjectError::InvalidPartOrder => S3Error::new(
            C::InvalidPartOrder,
            "The list of parts was not in ascending order. The parts list must be specified in order by part number.",
        ),
        ObjectError::InvalidPart(n) => S3Error::new(
            C::InvalidPart,
            format!("One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag. (part {n})"),
        ),
        ObjectError::EntityTooSmall(n) => S3Error::new(
            C::EntityTooSmall,
            format!("Your proposed upload is smaller than the minimum allowed object size. (part {n})"),
        ),
        ObjectError::Transfer(TransferError::Busy(why)) => {
            S3Error::new(C::SlowDown, "Please reduce your request rate.")
                .with_cause(why)
                .with_header(
                    http::header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECS),
                )
        }
        e @ (ObjectError::Transfer(
            TransferError::NotEnoughDurable { .. }
            | TransferError::NotEnoughNodes { .. }
            | TransferError::NotEnoughPieces { .. },
        )
        | ObjectError::NotReplicated(_)) => {
            // A clear 5xx naming the cause; node ids are not secret in a single-tenant setup.
            S3Error::new(C::ServiceUnavailable, e.to_string())
        }
        other => S3Error::internal(other),
    }
}
