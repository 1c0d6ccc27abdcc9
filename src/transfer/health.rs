//! Per-node health: consecutive errors with exponential backoff, smoothed latency, last error.
//!
//! Only node-level failures count (unreachable, refused, I/O errors); a missing or short piece
//! is a fact about one piece, not about the node. A node with errors is backed off for
//! `BASE × 2^(errors−1)` (at most [`MAX_BACKOFF`]); while backed off it is chosen only after
//! every healthy node. One success clears the errors.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::nodes::NodeError;

const BASE_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Weight of the newest sample in the latency average.
const LATENCY_ALPHA: f64 = 0.2;

/// How eager the scheduler is to use a node; lower is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rank {
    Healthy = 0,
    /// Recent errors, but the backoff has run out: worth a try after the healthy ones.
    Degraded = 1,
    Backoff = 2,
    /// Could not be opened at start.
    Offline = 3,
}

impl Rank {
    pub fn as_str(self) -> &'static str {
        match self {
            Rank::Healthy => "healthy",
            Rank::Degraded => "degraded",
            Rank::Backoff => "backoff",
            Rank::Offline => "offline",
        }
    }
}

#[derive(Debug, Default)]
struct State {
    consecutive_errors: u32,
    backoff_until: Option<Instant>,
    latency_ms: Option<f64>,
    last_error: Option<String>,
    /// When the current run of node-level failures began (cleared by a success).
    down_since: Option<Instant>,
}

/// A snapshot for operators.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthView {
    pub rank: Rank,
    pub consecutive_errors: u32,
    pub backoff_remaining: Duration,
    pub latency_ms: Option<f64>,
    pub last_error: Option<String>,
}

#[derive(Debug)]
pub struct Health {
    /// Why the node could not be opened at start, if it could not.
    offline: Option<String>,
    state: Mutex<State>,
}

/// Whether an error says something about the node (rather than about one piece).
pub fn is_node_failure(e: &NodeError) -> bool {
    !matches!(e, NodeError::NotFound { .. } | NodeError::ShortRead { .. })
}

impl Health {
    pub fn new(offline: Option<String>) -> Health {
        let down_since = offline.as_ref().map(|_| Instant::now());
        Health {
            offline,
            state: Mutex::new(State {
                down_since,
                ..State::default()
            }),
        }
    }

    /// How long the node has been failing without a single success in between (or offline
    /// since start); `None` when its last request succeeded.
    pub fn down_for(&self) -> Option<Duration> {
        self.lock().down_since.map(|t| t.elapsed())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request finished well after `latency`.
    pub fn success(&self, latency: Duration) {
        let mut s = self.lock();
        s.consecutive_errors = 0;
        s.backoff_until = None;
        s.down_since = None;
        let ms = latency.as_secs_f64() * 1000.0;
        s.latency_ms = Some(match s.latency_ms {
            None => ms,
            Some(avg) => avg + LATENCY_ALPHA * (ms - avg),
        });
    }

    /// A request failed; node-level failures back the node off.
    pub fn failure(&self, e: &NodeError) {
        if !is_node_failure(e) {
            return;
        }
        let mut s = self.lock();
        s.consecutive_errors = s.consecutive_errors.saturating_add(1);
        let exp = s.consecutive_errors.saturating_sub(1).min(16);
        let backoff = BASE_BACKOFF.saturating_mul(1 << exp).min(MAX_BACKOFF);
        s.backoff_until = Some(Instant::now() + backoff);
        s.last_error = Some(e.to_string());
        s.down_since.get_or_insert_with(Instant::now);
    }

    pub fn rank(&self) -> Rank {
        if self.offline.is_some() {
            return Rank::Offline;
        }
        let s = self.lock();
        match s.backoff_until {
            Some(t) if t > Instant::now() => Rank::Backoff,
            _ if s.consecutive_errors > 0 => Rank::Degraded,
            _ => Rank::Healthy,
        }
    }

    pub fn view(&self) -> HealthView {
        let rank = self.rank();
        let s = self.lock();
        HealthView {
            rank,
            consecutive_errors: s.consecutive_errors,
            backoff_remaining: s.backoff_until.map_or(Duration::ZERO, |t| {
                t.saturating_duration_since(Instant::now())
            }),
            latency_ms: s.latency_ms,
            last_error: s.last_error.clone().or_else(|| self.offline.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down() -> NodeError {
        NodeError::Unavailable {
            node: "n1".into(),
            reason: "connection refused".into(),
        }
    }

    #[test]
    fn errors_back_off_and_success_clears() {
        let h = Health::new(None);
        assert_eq!(h.rank(), Rank::Healthy);
        h.failure(&down());
        assert_eq!(h.rank(), Rank::Backoff);
        let v = h.view();
        assert_eq!(v.consecutive_errors, 1);
        assert!(v.backoff_remaining > Duration::ZERO && v.backoff_remaining <= BASE_BACKOFF);
        assert!(v.last_error.unwrap().contains("connection refused"));
        h.failure(&down());
        h.failure(&down());
        let v = h.view();
        assert!(v.backoff_remaining > BASE_BACKOFF * 3, "{v:?}");
        for _ in 0..40 {
            h.failure(&down());
        }
        assert!(h.view().backoff_remaining <= MAX_BACKOFF);
        h.success(Duration::from_millis(10));
        assert_eq!(h.rank(), Rank::Healthy);
        assert_eq!(h.view().latency_ms, Some(10.0));
        h.success(Duration::from_millis(20));
        assert_eq!(h.view().latency_ms, Some(12.0));
    }

    #[test]
    fn piece_level_errors_do_not_count() {
        let h = Health::new(None);
        h.failure(&NodeError::NotFound { node: "n1".into() });
        h.failure(&NodeError::ShortRead { node: "n1".into() });
        assert_eq!(h.rank(), Rank::Healthy);
        assert_eq!(Health::new(Some("gone".into())).rank(), Rank::Offline);
    }

    #[test]
    fn backoff_expires_to_degraded() {
        let h = Health::new(None);
        h.failure(&down());
        std::thread::sleep(BASE_BACKOFF + Duration::from_millis(50));
        assert_eq!(h.rank(), Rank::Degraded);
    }
}
