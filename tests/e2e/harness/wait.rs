//! Bounded waits: a condition is polled (every [`POLL`]) until it holds or its deadline
//! passes. Tests wait for what they need to see (a counter, a file gone, a report), never for
//! a fixed time.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is checked.
pub const POLL: Duration = Duration::from_millis(20);

/// Polls `probe` until it returns `Some`, and returns that; panics naming `what` once `limit`
/// has passed.
pub async fn until<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// [`until`] for a condition that needs no `await`.
pub async fn until_true(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    until(limit, what, || std::future::ready(cond().then_some(()))).await
}

/// Polls `cond` until it holds or `limit` passes; returns whether it held (for tests that
/// report the failure themselves).
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// [`eventually`] for a condition that awaits.
pub async fn eventually_async<F, Fut>(limit: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `probe` until `done` holds for what it returned or `limit` passes, and returns the
/// last value either way: for tests that then assert on what they saw, with their own message.
pub async fn observe<T, F, Fut>(limit: Duration, mut probe: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = Instant::now() + limit;
    loop {
        let v = probe().await;
        if done(&v) || Instant::now() >= deadline {
            return v;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// [`until_true`] outside a runtime (a plain `#[test]`): the thread sleeps between checks.
pub fn blocking_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}
