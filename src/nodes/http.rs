//! HTTP client pieces shared by the node clients that speak HTTP ([`super::remote`] and
//! [`super::s3`]): reading an answer's body within a per-frame timeout and a size cap, retry
//! backoff with jitter, and error messages that keep their causes.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// Largest buffer reserved up front for an answer; larger answers grow as data arrives.
const PREALLOC_MAX: usize = 16 << 20;
const BACKOFF_BASE: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Reads an answer's body of at most `max` bytes (cut there when `truncate`, else an error),
/// waiting at most `read_timeout` for each frame. The error is a reason for the caller's
/// "node unavailable" error.
pub async fn collect(
    mut body: Incoming,
    read_timeout: Duration,
    max: usize,
    truncate: bool,
) -> Result<Bytes, String> {
    let hint = body.size_hint().exact().unwrap_or(0);
    let hint = usize::try_from(hint).unwrap_or(usize::MAX);
    let mut buf = BytesMut::with_capacity(hint.min(max).min(PREALLOC_MAX));
    loop {
        let frame = tokio::time::timeout(read_timeout, body.frame())
            .await
            .map_err(|_| {
                format!(
                    "answer stalled for {read_timeout:?} after {} bytes",
                    buf.len()
                )
            })?;
        let Some(frame) = frame else {
            return Ok(buf.freeze());
        };
        let frame = frame.map_err(|e| {
            format!(
                "answer broken after {} bytes: {}",
                buf.len(),
                error_chain(&e)
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buf.len() + data.len() > max {
            if truncate {
                buf.extend_from_slice(&data[..max - buf.len()]);
                return Ok(buf.freeze());
            }
            return Err(format!("answer longer than the {max} bytes expected"));
        }
        buf.extend_from_slice(&data);
    }
}

/// `e` and its sources, joined (hyper's own messages say little without their causes).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Exponential backoff with "equal jitter": half the step fixed, half random, so retries of
/// many requests spread out.
pub fn backoff(attempt: u32) -> Duration {
    let step = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_MAX);
    let half = step / 2;
    let mut r = [0u8; 8];
    // Jitter is not security-relevant; without randomness the fixed half still backs off.
    let _ = crate::crypto::random_bytes(&mut r);
    let half_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    half + Duration::from_millis(u64::from_le_bytes(r) % (half_ms + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        for attempt in 0..20 {
            let step = BACKOFF_BASE
                .saturating_mul(1u32 << attempt.min(16))
                .min(BACKOFF_MAX);
            let b = backoff(attempt);
            assert!(b >= step / 2 && b <= step, "{attempt}: {b:?}");
        }
    }

    #[test]
    fn error_chain_keeps_causes() {
        let inner = std::io::Error::other("refused");
        let outer = std::io::Error::other(inner);
        assert!(error_chain(&outer).contains("refused"));
    }
}
