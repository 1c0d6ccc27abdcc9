//! Byte-rate limits shared by every transfer: a token bucket that lets callers go into debt.
//!
//! `take(n)` reserves `n` bytes at once and sleeps until the bucket has paid them back, so a
//! caller never waits for a refill that a later, smaller caller could steal, and bursts are
//! bounded by [`TokenBucket::burst`]. Many tasks sharing one bucket together stay within the
//! rate (plus one burst).

use std::sync::Mutex;
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
        let burst = (rate / 4.0).max(64.0 * 1024.0);
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
}
