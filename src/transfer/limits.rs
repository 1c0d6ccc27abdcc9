//! Rate limits shared by every transfer: a token bucket that lets callers go into debt.
//!
//! `take(n)` reserves `n` bytes at once and sleeps until the bucket has paid them back, so a
//! caller never waits for a refill that a later, smaller caller could steal, and bursts are
//! bounded by [`TokenBucket::burst`]. Many tasks sharing one bucket together stay within the
//! rate (plus one burst): by any time `t` after the bucket was made, callers whose wait is
//! over have reserved at most `burst + rate × t`.
//!
//! [`Pace`] holds two buckets, bytes and requests, for background work that must stay within
//! both (the audit): each request reserves one request and its bytes at once and waits for
//! the slower bucket, so both bounds hold at every instant.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A bucket of `rate` bytes per second holding at most a quarter second of traffic.
    pub fn new(rate: u64) -> TokenBucket {
        let rate = rate.max(1) as f64;
        TokenBucket::with_burst(rate, (rate / 4.0).max(64.0 * 1024.0))
    }

    /// A bucket of `rate` units per second that starts full and holds at most `burst`.
    pub fn with_burst(rate: f64, burst: f64) -> TokenBucket {
        TokenBucket {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    pub fn burst(&self) -> u64 {
        self.burst as u64
    }

    /// How long the caller must wait after reserving `n` bytes now.
    fn reserve(&self, n: u64, now: Instant) -> Duration {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, at) = *s;
        let refilled =
            (tokens + now.saturating_duration_since(at).as_secs_f64() * self.rate).min(self.burst);
        let left = refilled - n as f64;
        *s = (left, now);
        if left >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-left / self.rate)
        }
    }

    pub async fn take(&self, n: u64) {
        let wait = self.reserve(n, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// A byte rate shared by every transfer that can be changed while they run (a SIGHUP reload);
/// `None` is unlimited. A change applies to reservations made after it (with a fresh burst);
/// waits already reserved stand.
#[derive(Debug)]
pub struct Rate(RwLock<Option<(u64, Arc<TokenBucket>)>>);

impl Rate {
    pub fn new(rate: Option<u64>) -> Rate {
        Rate(RwLock::new(
            rate.map(|r| (r, Arc::new(TokenBucket::new(r)))),
        ))
    }

    /// The rate in force, in bytes per second.
    pub fn get(&self) -> Option<u64> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(r, _)| *r)
    }

    /// Sets a new rate; setting the one in force changes nothing.
    pub fn set(&self, rate: Option<u64>) {
        let mut current = self.0.write().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().map(|(r, _)| *r) != rate {
            *current = rate.map(|r| (r, Arc::new(TokenBucket::new(r))));
        }
    }

    /// Waits until `n` more bytes fit the rate in force.
    pub async fn take(&self, n: u64) {
        let bucket = self
            .0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(_, b)| b.clone());
        if let Some(b) = bucket {
            b.take(n).await;
        }
    }
}

/// A byte rate and a request rate, either of which may be unlimited (see the module docs).
#[derive(Debug)]
pub struct Pace {
    bytes: Option<TokenBucket>,
    requests: Option<TokenBucket>,
}

impl Pace {
    /// `bytes` per second (bursts of a quarter second, as [`TokenBucket::new`]) and `requests`
    /// per second, one at a time (no burst beyond a single request); `None` is unlimited.
    pub fn new(bytes: Option<u64>, requests: Option<f64>) -> Pace {
        Pace {
            bytes: bytes.map(TokenBucket::new),
            requests: requests.map(|r| TokenBucket::with_burst(r, 1.0)),
        }
    }

    /// How long the caller must wait after reserving one request of `bytes` now.
    fn reserve(&self, bytes: u64, now: Instant) -> Duration {
        let b = self
            .bytes
            .as_ref()
            .map_or(Duration::ZERO, |b| b.reserve(bytes, now));
        let r = self
            .requests
            .as_ref()
            .map_or(Duration::ZERO, |r| r.reserve(1, now));
        b.max(r)
    }

    /// Waits until one more request moving `bytes` fits both rates.
    pub async fn request(&self, bytes: u64) {
        let wait = self.reserve(bytes, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debt_is_paid_back_at_the_rate() {
        let b = TokenBucket::new(1 << 20);
        let t0 = Instant::now();
        // The burst is free, then every byte costs 1/rate seconds.
        assert_eq!(b.reserve(b.burst(), t0), Duration::ZERO);
        let w = b.reserve(1 << 20, t0);
        assert!((w.as_secs_f64() - 1.0).abs() < 1e-6, "{w:?}");
        // A second caller queues behind the first one's debt.
        let w2 = b.reserve(1 << 19, t0);
        assert!((w2.as_secs_f64() - 1.5).abs() < 1e-6, "{w2:?}");
        // Time pays the debt back.
        let w3 = b.reserve(0, t0 + Duration::from_secs(2));
        assert_eq!(w3, Duration::ZERO);
    }

    /// Runs `ops` (bytes of each request) through `p` on a simulated clock, each request going
    /// out when its wait is over, idling `idle(i)` after request `i`; checks at every request
    /// that the requests and bytes sent so far are within `1 + rate × t` and `burst + rate × t`.
    /// Returns the simulated time the whole run took.
    fn simulate(p: &Pace, ops: &[u64], idle: impl Fn(usize) -> Duration) -> Duration {
        let t0 = Instant::now();
        let mut now = t0;
        let (mut bytes, mut requests) = (0u64, 0u64);
        for (i, &n) in ops.iter().enumerate() {
            now += p.reserve(n, now);
            bytes += n;
            requests += 1;
            let t = (now - t0).as_secs_f64();
            if let Some(b) = &p.bytes {
                let allowed = b.burst + b.rate * t;
                assert!(bytes as f64 <= allowed + 1e-3, "{bytes} bytes by {t} s");
            }
            if let Some(r) = &p.requests {
                let allowed = 1.0 + r.rate * t;
                assert!(
                    requests as f64 <= allowed + 1e-9,
                    "{requests} requests by {t} s"
                );
            }
            now += idle(i);
        }
        now - t0
    }

    #[test]
    fn pace_bounds_bytes_and_requests_at_every_instant() {
        // The audit's defaults, and a mix like a pass: listing pages and re-checks (no piece
        // bytes), small and large sampled ranges, with and without pauses between requests.
        let p = Pace::new(Some(1 << 20), Some(5.0));
        let ops: Vec<u64> = (0..3000u64)
            .map(|i| match i % 5 {
                0 | 1 => 0,
                2 => 4 << 10,
                3 => 256 << 10,
                _ => 3 << 20,
            })
            .collect();
        simulate(&p, &ops, |_| Duration::ZERO);
        let p = Pace::new(Some(1 << 20), Some(5.0));
        simulate(&p, &ops, |i| Duration::from_millis((i as u64 * 37) % 900));
    }

    #[test]
    fn pace_is_no_slower_than_the_binding_rate() {
        // Requests alone: n requests take (n - 1) / rate.
        let p = Pace::new(Some(1 << 20), Some(5.0));
        let took = simulate(&p, &[0; 101], |_| Duration::ZERO);
        assert!((took.as_secs_f64() - 20.0).abs() < 1e-6, "{took:?}");
        // Bytes alone (fewer requests than the request rate allows): the last request goes out
        // once the bytes past the burst are paid at the byte rate.
        let p = Pace::new(Some(1 << 20), Some(1000.0));
        let burst = p.bytes.as_ref().unwrap().burst();
        let took = simulate(&p, &[256 << 10; 41], |_| Duration::ZERO);
        let expect = ((41 * (256 << 10)) - burst) as f64 / f64::from(1 << 20);
        assert!(
            (took.as_secs_f64() - expect).abs() < 1e-6,
            "{took:?} {expect}"
        );
        // Unlimited: never waits.
        let p = Pace::new(None, None);
        assert_eq!(
            simulate(&p, &[1 << 30; 10], |_| Duration::ZERO),
            Duration::ZERO
        );
    }

    #[tokio::test(start_paused = true)]
    async fn many_tasks_share_the_rate() {
        let b = std::sync::Arc::new(TokenBucket::new(4 << 20));
        let t0 = tokio::time::Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let b = b.clone();
            set.spawn(async move {
                for _ in 0..8 {
                    b.take(64 << 10).await;
                }
            });
        }
        while set.join_next().await.is_some() {}
        // 8 MiB at 4 MiB/s, less the initial burst (1 MiB).
        let took = t0.elapsed().as_secs_f64();
        assert!((1.70..=1.80).contains(&took), "{took}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_can_be_changed_and_lifted_while_in_use() {
        let rate = Rate::new(Some(1 << 20));
        assert_eq!(rate.get(), Some(1 << 20));
        // 1 MiB/s with a 256 KiB burst: 2.25 MiB more take 2 s.
        let t = Instant::now();
        rate.take(256 << 10).await;
        rate.take(2 << 20).await;
        let slow = t.elapsed();
        assert!((slow.as_secs_f64() - 2.0).abs() < 0.01, "{slow:?}");
        // Four times the rate (a fresh, full burst of 1 MiB): 2 MiB more take 0.25 s.
        rate.set(Some(4 << 20));
        assert_eq!(rate.get(), Some(4 << 20));
        let t = Instant::now();
        rate.take(1 << 20).await;
        rate.take(1 << 20).await;
        let fast = t.elapsed();
        assert!((fast.as_secs_f64() - 0.25).abs() < 0.01, "{fast:?}");
        // Unlimited: no wait at all.
        rate.set(None);
        assert_eq!(rate.get(), None);
        let t = Instant::now();
        rate.take(1 << 40).await;
        assert_eq!(t.elapsed(), Duration::ZERO);
    }
}
