//! Hand-written HTTP/1.1 for end-to-end tests that need what an SDK will not send: unsigned
//! requests, bodies shorter than their Content-Length, virtual-host-style `Host` headers,
//! presigned URLs fetched without any SDK.
//!
//! [`send`] writes the request bytes verbatim on a fresh connection to the gateway and reads
//! one response (status line, headers, and a body framed by Content-Length, chunked encoding
//! or connection close). [`send_truncated`] does the same but shuts the write half down after
//! the given bytes, so the server sees the body end early. [`sign_headers`] signs a request
//! with SigV4 (aws-sigv4) using the test credentials and returns the headers to add.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{ACCESS_KEY, SECRET_KEY};

/// Every raw exchange must finish within this.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `<Code>` of an S3 error document, if the body is one.
    pub fn code(&self) -> Option<String> {
        let text = self.body_text();
        let start = text.find("<Code>")? + "<Code>".len();
        let end = start + text[start..].find("</Code>")?;
        Some(text[start..end].to_string())
    }
}

/// A request head: `METHOD target HTTP/1.1`, then the headers, then an empty line.
pub fn head(method: &str, target: &str, headers: &[(String, String)]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Sends `request` verbatim and reads the response. `is_head` says the response has no body.
pub async fn send(addr: SocketAddr, request: &[u8], is_head: bool) -> std::io::Result<RawResponse> {
    tokio::time::timeout(TIMEOUT, async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(request).await?;
        read_response(&mut s, is_head).await
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "raw exchange timed out"))?
}

/// Sends `request` and then closes the write half, so a body shorter than its declared length
/// ends early. The server may answer with an error or just close: `Ok(None)` is the latter.
pub async fn send_truncated(
    addr: SocketAddr,
    request: &[u8],
) -> std::io::Result<Option<RawResponse>> {
    tokio::time::timeout(TIMEOUT, async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(request).await?;
        s.shutdown().await?;
        match read_response(&mut s, false).await {
            Ok(r) => Ok(Some(r)),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "raw exchange timed out"))?
}

fn bad(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

pub async fn read_response(s: &mut TcpStream, is_head: bool) -> std::io::Result<RawResponse> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before a response head",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head_text =
        String::from_utf8(buf[..head_end].to_vec()).map_err(|_| bad("non-UTF-8 head"))?;
    let mut rest = buf[head_end + 4..].to_vec();
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut resp = RawResponse {
        status,
        headers,
        body: Vec::new(),
    };
    if is_head || status == 204 || status == 304 {
        return Ok(resp);
    }
    if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().map_err(|_| bad("bad content-length"))?;
        while rest.len() < len {
            let mut chunk = vec![0u8; 64 << 10];
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("body ended after {} of {len} bytes", rest.len()),
                ));
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        rest.truncate(len);
        resp.body = rest;
    } else {
        s.read_to_end(&mut rest).await?;
        resp.body = if resp
            .header("transfer-encoding")
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
        {
            decode_chunked(&rest)?
        } else {
            rest
        };
    }
    Ok(resp)
}

fn decode_chunked(mut b: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("chunk size line"))?;
        let line = std::str::from_utf8(&b[..eol]).map_err(|_| bad("chunk size line"))?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad("chunk size"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err(bad("truncated chunk"));
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// What the signature says about the body.
pub enum Payload<'a> {
    /// `x-amz-content-sha256: UNSIGNED-PAYLOAD`.
    Unsigned,
    /// The SHA-256 of these bytes (which need not be the bytes sent).
    Bytes(&'a [u8]),
}

/// SigV4 headers (`authorization`, `x-amz-date`, `x-amz-content-sha256`) for a request to
/// `url` (already percent-encoded, including scheme and authority) carrying `headers`, signed
/// with the test credentials at `time` for region us-east-1. `headers` must include `host`
/// when it differs from the URL's authority.
pub fn sign_headers(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    payload: Payload<'_>,
    time: SystemTime,
) -> Vec<(String, String)> {
    sign_headers_with(method, url, headers, payload, time, ACCESS_KEY, SECRET_KEY)
}

/// [`sign_headers`] with other credentials.
pub fn sign_headers_with(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    payload: Payload<'_>,
    time: SystemTime,
    access_key: &str,
    secret_key: &str,
) -> Vec<(String, String)> {
    let identity = Credentials::new(access_key, secret_key, None, None, "raw").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let body = match payload {
        Payload::Unsigned => SignableBody::UnsignedPayload,
        Payload::Bytes(b) => SignableBody::Bytes(b),
    };
    let req = SignableRequest::new(
        method,
        url,
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        body,
    )
    .expect("signable request");
    let (instructions, _signature) = sign(req, &params).expect("sign").into_parts();
    instructions
        .headers()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Fetches an absolute `http://host:port/path?query` URL (as a presigned request gives) with
/// the given method, extra headers and body, connecting to `addr`.
pub async fn fetch_url(
    addr: SocketAddr,
    method: &str,
    url: &str,
    extra_headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<RawResponse> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad(format!("not an http URL: {url}")))?;
    let (authority, target) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut headers = vec![("host".to_string(), authority.to_string())];
    headers.extend(extra_headers.iter().cloned());
    if !body.is_empty() || method == "PUT" {
        headers.push(("content-length".into(), body.len().to_string()));
    }
    headers.push(("connection".into(), "close".into()));
    let mut req = head(method, target, &headers);
    req.extend_from_slice(body);
    send(addr, &req, method == "HEAD").await
}

/// Sends a SigV4-signed (payload hash of `body`) path-style request for `target` (path and
/// query, already percent-encoded) with `extra_headers`, and reads the response.
pub async fn signed(
    addr: SocketAddr,
    method: &str,
    target: &str,
    extra_headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<RawResponse> {
    let mut headers = vec![
        ("host".to_string(), addr.to_string()),
        ("connection".to_string(), "close".to_string()),
    ];
    headers.extend(extra_headers.iter().cloned());
    if !body.is_empty() || method == "PUT" || method == "POST" {
        headers.push(("content-length".into(), body.len().to_string()));
    }
    let url = format!("http://{addr}{target}");
    let auth = sign_headers(
        method,
        &url,
        &headers,
        Payload::Bytes(body),
        SystemTime::now(),
    );
    headers.extend(auth);
    let mut req = head(method, target, &headers);
    req.extend_from_slice(body);
    send(addr, &req, method == "HEAD").await
}
