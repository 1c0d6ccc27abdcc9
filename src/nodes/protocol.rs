//! The HTTP protocol between the gateway ([`super::RemoteNode`]) and a `gateway node` server
//! ([`super::server`]), version 2.
//!
//! Endpoints (all under [`API_PREFIX`]):
//! ```text
//! PUT    /v1/pieces/<64 hex>      body = the piece, then the x-gw-blake3 trailer; 201 once
//!                                 verified, committed and fsynced
//! GET    /v1/pieces/<64 hex>      200 whole piece, or 206 for `Range: bytes=a-b` / `bytes=a-`
//! HEAD   /v1/pieces/<64 hex>      200 with Content-Length = piece size
//! DELETE /v1/pieces/<64 hex>      204, also when the piece does not exist
//! GET    /v1/pieces?after=<hex>&limit=N   JSON [`PieceList`], ids in ascending order
//! GET    /v1/status                       JSON [`NodeStatus`]
//! ```
//! Unlike RFC 9110, a range reaching past the end of a piece is refused (416), never clamped:
//! a node returns exactly the bytes asked for or an error. Error bodies are one line of text.
//!
//! Piece digest (new in version 2): a piece PUT ends with the trailer field
//! `x-gw-blake3: <64 lowercase hex>` ([`DIGEST_TRAILER`]), the unkeyed BLAKE3 hash of every
//! body byte. Over HTTP/1.1 the body is therefore chunked and the request names the field in
//! its head (`Trailer: x-gw-blake3`; hyper's client only sends trailer fields named there);
//! over h2 the trailer is the HEADERS frame that ends the stream. The server hashes the bytes
//! as it reads them and, once the body is complete and before anything is committed, compares
//! the hash with the trailer in constant time ([`verify_digest`]): a missing, malformed or
//! different digest is refused with 400 and one of the [`DigestFailure`] lines, and the upload
//! is discarded. Over HTTP/1.1 a PUT with a Content-Length cannot carry trailers, so it is
//! always refused.
//!
//! Authentication: every request carries `x-gw-date: <unix seconds>` and
//! `Authorization: GW-HMAC <64 hex>`, the HMAC-SHA256 under the node's [`NodeToken`] of
//! `method \n path-and-query \n x-gw-date \n content-length`, where content-length is the
//! decimal Content-Length header when the request has a non-empty declared body and empty
//! otherwise (streamed PUTs use chunked transfer encoding). The server accepts a date within
//! [`MAX_CLOCK_SKEW_SECS`] of its clock and compares tags in constant time.
//!
//! The HMAC authenticates the gateway to the node and binds method, target, date and declared
//! length; it does not cover bodies, trailers or answers. The piece digest is not keyed either:
//! it catches bytes damaged or lost between the gateway's writer and the node's disk writes
//! (a faulty link, middlebox or buffer), not tampering. Over plain `http://` a network attacker
//! can still read and alter bodies (recomputing the digest) and answers, and replay a captured
//! request within the skew window. Pieces are encrypted and carry keyed chunk MACs the gateway
//! verifies on read, so such an attacker can at worst destroy pieces (or learn their sizes and
//! access times), which the erasure code and repair are there for.
//!
//! Transport: a node started with a certificate (`--tls-cert`/`--tls-key`) speaks only TLS 1.2
//! or 1.3 (ALPN `h2` and `http/1.1`), and the gateway reaches it at `https://host:port`,
//! verifying the certificate against its configured CA file (or the system roots) and the host
//! in the address (see [`crate::tls`]). TLS adds confidentiality and integrity of every request
//! and answer, bodies included, and authenticates the node to the gateway, so no one without
//! the node's key can read, alter, replay or answer in its place. The same HMAC is sent inside
//! TLS unchanged: TLS does not authenticate the gateway (no client certificates).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use super::PieceId;

pub const API_PREFIX: &str = "/v1";
/// 2: piece PUTs carry the [`DIGEST_TRAILER`].
pub const PROTOCOL_VERSION: u32 = 2;
pub const AUTH_SCHEME: &str = "GW-HMAC";
pub const DATE_HEADER: &str = "x-gw-date";
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;
/// The trailer field of a piece PUT holding the BLAKE3 hash of its body.
pub const DIGEST_TRAILER: &str = "x-gw-blake3";
/// The largest piece a node accepts: a 1 GiB segment (the largest allowed) at `k = 1`, plus
/// room for the piece header, chunk MACs and AEAD tags.
pub const MAX_PIECE_LEN: u64 = (1 << 30) + (64 << 20);
pub const DEFAULT_LIST_LIMIT: usize = 1000;
pub const MAX_LIST_LIMIT: usize = 10_000;

/// The request target of a piece.
pub fn piece_target(piece: &PieceId) -> String {
    format!("{API_PREFIX}/pieces/{}", piece.to_hex())
}

/// The request target of a listing page.
pub fn list_target(after: Option<PieceId>, limit: usize) -> String {
    match after {
        Some(a) => format!("{API_PREFIX}/pieces?after={}&limit={limit}", a.to_hex()),
        None => format!("{API_PREFIX}/pieces?limit={limit}"),
    }
}

pub fn status_target() -> String {
    format!("{API_PREFIX}/status")
}

/// The trailers ending a piece PUT whose body hashes to `hash`.
pub fn digest_trailers(hash: &blake3::Hash) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    // 64 hex digits are always a valid header value.
    if let Ok(value) = HeaderValue::from_str(hash.to_hex().as_str()) {
        trailers.insert(HeaderName::from_static(DIGEST_TRAILER), value);
    }
    trailers
}

/// Why a piece PUT's digest was refused (sent back as the 400 body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestFailure {
    #[error("missing {DIGEST_TRAILER} trailer")]
    Missing,
    #[error("malformed {DIGEST_TRAILER} trailer (expected one value of 64 hex digits)")]
    Malformed,
    #[error("piece body does not match its BLAKE3 digest")]
    Mismatch,
}

/// Checks the received trailers (`None` when the body had none) against the hash of the
/// received body. Exactly one [`DIGEST_TRAILER`] value is accepted, hex in either case.
pub fn verify_digest(
    trailers: Option<&HeaderMap>,
    hash: &blake3::Hash,
) -> Result<(), DigestFailure> {
    let mut values = trailers.into_iter().flat_map(|t| t.get_all(DIGEST_TRAILER));
    let value = values.next().ok_or(DigestFailure::Missing)?;
    if values.next().is_some() {
        return Err(DigestFailure::Malformed);
    }
    let digest = value
        .to_str()
        .ok()
        .and_then(|v| crate::crypto::decode_hex32(v.trim()))
        .ok_or(DigestFailure::Malformed)?;
    // `blake3::Hash` equality is constant-time.
    if blake3::Hash::from_bytes(digest) == *hash {
        Ok(())
    } else {
        Err(DigestFailure::Mismatch)
    }
}

/// The answer of `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The server's crate version.
    pub version: String,
    pub protocol: u32,
    /// Bytes available to the server on the node's filesystem.
    pub free_bytes: u64,
    pub total_bytes: u64,
    /// Free bytes the node keeps: a PUT that would leave less is refused with 507.
    pub reserve_bytes: u64,
    /// Request body bytes of piece PUTs the server read since it started, failed and aborted
    /// uploads included. Absent (0) from servers older than this field.
    #[serde(default)]
    pub received_bytes: u64,
    /// Piece bytes the server handed to connections in GET answers since it started.
    #[serde(default)]
    pub sent_bytes: u64,
}

/// The answer of `GET /v1/pieces`: piece ids in hex, ascending. `next_after` is set when the
/// page is full; pass it as `after` for the next page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceList {
    pub pieces: Vec<String>,
    pub next_after: Option<String>,
}

/// The secret shared by a node server and the gateway: 32 random bytes, written as 64 hex
/// digits. `Debug` never shows it and equality is constant-time.
#[derive(Clone)]
pub struct NodeToken([u8; 32]);

impl std::fmt::Debug for NodeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeToken(..)")
    }
}

impl PartialEq for NodeToken {
    fn eq(&self, other: &Self) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.0, &other.0).is_ok()
    }
}

impl Eq for NodeToken {}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("node token {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("node token{}: expected 64 hex digits (32 bytes)", .path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Malformed { path: Option<PathBuf> },
    #[error("system random number generator failed")]
    Random,
}

impl NodeToken {
    pub fn generate() -> Result<NodeToken, TokenError> {
        let mut t = [0u8; 32];
        crate::crypto::random_bytes(&mut t).map_err(|_| TokenError::Random)?;
        Ok(NodeToken(t))
    }

    /// Parses 64 hex digits (either case; surrounding whitespace ignored).
    pub fn from_hex(s: &str) -> Result<NodeToken, TokenError> {
        crate::crypto::decode_hex32(s.trim())
            .map(NodeToken)
            .ok_or(TokenError::Malformed { path: None })
    }

    pub fn to_hex(&self) -> String {
        crate::crypto::encode_hex(&self.0)
    }

    /// Reads a token file (64 hex digits and an optional newline).
    pub fn load(path: &Path) -> Result<NodeToken, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_hex(&text).map_err(|_| TokenError::Malformed {
            path: Some(path.to_path_buf()),
        })
    }

    /// Reads the token file, or creates it (mode 0600, fsynced) with a fresh token when it does
    /// not exist. Returns whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(NodeToken, bool), TokenError> {
        match Self::load(path) {
            Err(TokenError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                let token = Self::generate()?;
                write_private_file(path, format!("{}\n", token.to_hex()).as_bytes()).map_err(
                    |source| TokenError::Io {
                        path: path.to_path_buf(),
                        source,
                    },
                )?;
                Ok((token, true))
            }
            other => other.map(|t| (t, false)),
        }
    }

    fn key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &self.0)
    }

    /// The `Authorization` header value for a request.
    pub fn authorization(
        &self,
        method: &str,
        target: &str,
        date: u64,
        content_length: Option<u64>,
    ) -> String {
        let msg = string_to_sign(method, target, &date.to_string(), content_length);
        let tag = hmac::sign(&self.key(), msg.as_bytes());
        format!("{AUTH_SCHEME} {}", crate::crypto::encode_hex(tag.as_ref()))
    }

    /// Checks a request's credentials. `date` and `authorization` are the raw header values,
    /// `now` the server's clock in unix seconds.
    pub fn verify(
        &self,
        method: &str,
        target: &str,
        date: Option<&str>,
        content_length: Option<u64>,
        authorization: Option<&str>,
        now: u64,
    ) -> Result<(), AuthFailure> {
        let authorization = authorization.ok_or(AuthFailure::Missing)?;
        let tag = authorization
            .strip_prefix(AUTH_SCHEME)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|hex| crate::crypto::decode_hex32(hex.trim()))
            .ok_or(AuthFailure::Malformed)?;
        let date_text = date.ok_or(AuthFailure::MissingDate)?;
        let date: u64 = date_text.parse().map_err(|_| AuthFailure::MissingDate)?;
        if date.abs_diff(now) > MAX_CLOCK_SKEW_SECS {
            return Err(AuthFailure::Skew { date, now });
        }
        let msg = string_to_sign(method, target, date_text, content_length);
        hmac::verify(&self.key(), msg.as_bytes(), &tag).map_err(|_| AuthFailure::BadSignature)
    }
}

/// Why a request's credentials were refused (sent back as the 401 body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("missing Authorization header (expected \"{AUTH_SCHEME} <hex>\")")]
    Missing,
    #[error("malformed Authorization header (expected \"{AUTH_SCHEME} <64 hex>\")")]
    Malformed,
    #[error("missing or malformed {DATE_HEADER} header (expected unix seconds)")]
    MissingDate,
    #[error("{DATE_HEADER} {date} is more than {MAX_CLOCK_SKEW_SECS} s away from the node's clock ({now}); check both clocks")]
    Skew { date: u64, now: u64 },
    #[error("signature does not match: the gateway and the node do not share the same token")]
    BadSignature,
}

fn string_to_sign(method: &str, target: &str, date: &str, content_length: Option<u64>) -> String {
    let len = content_length
        .filter(|n| *n > 0)
        .map(|n| n.to_string())
        .unwrap_or_default();
    format!("{method}\n{target}\n{date}\n{len}")
}

/// Seconds since the unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn write_private_file(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    f.write_all(body)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_bind_every_field() {
        let t = NodeToken::generate().unwrap();
        let now = 1_800_000_000;
        let auth = t.authorization("PUT", "/v1/pieces/ab", now, Some(10));
        let ok = |m: &str, p: &str, d: &str, l: Option<u64>, a: &str, n: u64| {
            t.verify(m, p, Some(d), l, Some(a), n)
        };
        let d = now.to_string();
        assert_eq!(ok("PUT", "/v1/pieces/ab", &d, Some(10), &auth, now), Ok(()));
        // Within the skew window either way.
        assert_eq!(
            ok("PUT", "/v1/pieces/ab", &d, Some(10), &auth, now + 300),
            Ok(())
        );
        assert_eq!(
            ok("PUT", "/v1/pieces/ab", &d, Some(10), &auth, now - 300),
            Ok(())
        );
        for (m, p, l) in [
            ("GET", "/v1/pieces/ab", Some(10)),
            ("PUT", "/v1/pieces/ac", Some(10)),
            ("PUT", "/v1/pieces/ab", Some(11)),
            ("PUT", "/v1/pieces/ab", None),
        ] {
            assert_eq!(
                ok(m, p, &d, l, &auth, now),
                Err(AuthFailure::BadSignature),
                "{m} {p} {l:?}"
            );
        }
        // A different date (still in the window) breaks the signature.
        assert_eq!(
            ok(
                "PUT",
                "/v1/pieces/ab",
                &(now + 1).to_string(),
                Some(10),
                &auth,
                now
            ),
            Err(AuthFailure::BadSignature)
        );
        assert!(matches!(
            ok("PUT", "/v1/pieces/ab", &d, Some(10), &auth, now + 301),
            Err(AuthFailure::Skew { .. })
        ));
        // Another token.
        let other = NodeToken::generate().unwrap();
        assert_eq!(
            other.verify("PUT", "/v1/pieces/ab", Some(&d), Some(10), Some(&auth), now),
            Err(AuthFailure::BadSignature)
        );
        // Missing or malformed headers.
        assert_eq!(
            t.verify("GET", "/", Some(&d), None, None, now),
            Err(AuthFailure::Missing)
        );
        assert_eq!(
            t.verify("GET", "/", Some(&d), None, Some("Bearer x"), now),
            Err(AuthFailure::Malformed)
        );
        let get = t.authorization("GET", "/", now, None);
        assert_eq!(
            t.verify("GET", "/", None, None, Some(&get), now),
            Err(AuthFailure::MissingDate)
        );
        // An empty body signs like no body.
        assert_eq!(
            t.verify("GET", "/", Some(&d), Some(0), Some(&get), now),
            Ok(())
        );
    }

    #[test]
    fn token_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let (t, created) = NodeToken::load_or_create(&path).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let (again, created) = NodeToken::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(t, again);
        assert_eq!(NodeToken::from_hex(&t.to_hex().to_uppercase()).unwrap(), t);
        assert_ne!(NodeToken::generate().unwrap(), t);
        assert!(!format!("{t:?}").contains(&t.to_hex()));

        std::fs::write(&path, "abcd\n").unwrap();
        assert!(matches!(
            NodeToken::load(&path),
            Err(TokenError::Malformed { .. })
        ));
        assert!(NodeToken::load_or_create(&path).is_err());
        assert!(NodeToken::from_hex(&"g".repeat(64)).is_err());
    }

    #[test]
    fn status_of_an_older_server_parses_without_counters() {
        let old =
            r#"{"version":"0.1.0","protocol":1,"free_bytes":5,"total_bytes":9,"reserve_bytes":1}"#;
        let s: NodeStatus = serde_json::from_str(old).unwrap();
        assert_eq!((s.free_bytes, s.received_bytes, s.sent_bytes), (5, 0, 0));
        let new = NodeStatus {
            received_bytes: 7,
            sent_bytes: 3,
            ..s
        };
        let text = serde_json::to_string(&new).unwrap();
        assert_eq!(serde_json::from_str::<NodeStatus>(&text).unwrap(), new);
    }

    #[test]
    fn digests_verify_only_the_hash_they_carry() {
        let hash = blake3::hash(b"piece body");
        let trailers = digest_trailers(&hash);
        let value = trailers.get(DIGEST_TRAILER).unwrap().to_str().unwrap();
        assert_eq!(value.len(), 64);
        assert_eq!(value, value.to_lowercase());
        assert_eq!(verify_digest(Some(&trailers), &hash), Ok(()));
        assert_eq!(
            verify_digest(Some(&trailers), &blake3::hash(b"piece bodY")),
            Err(DigestFailure::Mismatch)
        );
        let with = |values: &[&str]| {
            let mut t = HeaderMap::new();
            t.insert("x-other", HeaderValue::from_static("1"));
            for v in values {
                t.append(DIGEST_TRAILER, HeaderValue::from_str(v).unwrap());
            }
            verify_digest(Some(&t), &hash)
        };
        assert_eq!(with(&[&value.to_uppercase()]), Ok(()));
        assert_eq!(with(&[]), Err(DigestFailure::Missing));
        assert_eq!(verify_digest(None, &hash), Err(DigestFailure::Missing));
        assert_eq!(with(&[&value[..62]]), Err(DigestFailure::Malformed));
        assert_eq!(with(&[&"g".repeat(64)]), Err(DigestFailure::Malformed));
        assert_eq!(with(&[value, value]), Err(DigestFailure::Malformed));
        assert_eq!(
            DigestFailure::Missing.to_string(),
            "missing x-gw-blake3 trailer"
        );
    }

    #[test]
    fn targets() {
        let id = PieceId([0xab; 32]);
        assert_eq!(piece_target(&id), format!("/v1/pieces/{}", "ab".repeat(32)));
        assert_eq!(list_target(None, 5), "/v1/pieces?limit=5");
        assert_eq!(
            list_target(Some(id), 5),
            format!("/v1/pieces?after={}&limit=5", "ab".repeat(32))
        );
    }
}
