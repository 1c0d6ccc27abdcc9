//! Garbage collection of replaced and deleted bodies.
//!
//! The metadata store marks a body as garbage in the same transaction that unlinks it; this
//! task deletes the pieces from the nodes and then forgets the body. A piece that cannot be
//! deleted (node down) keeps its body in the garbage list, to be retried on the next round.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::Inner;
use crate::meta::{Garbage, StreamId};

const ROUND: usize = 64;
const RETRY_EVERY: Duration = Duration::from_secs(60);
/// Bodies whose deletion failed are remembered (up to this many) and skipped until their
/// retry time, so garbage stuck on a dead node does not hold back newer garbage.
const MAX_DEFERRED: usize = 10_000;

type Deferred = HashMap<StreamId, Instant>;

pub(super) fn spawn(inner: Weak<Inner>, wake: Arc<Notify>) {
    tokio::spawn(async move {
        let mut deferred = Deferred::new();
        loop {
            let more = {
                let Some(strong) = inner.upgrade() else {
                    return;
                };
                strong.gc_rounds.send_modify(|r| r.begun += 1);
                let more = collect_round(&strong, &mut deferred).await;
                strong.gc_rounds.send_modify(|r| r.finished += 1);
                more
            };
            if !more {
                // Woken by a delete/replace, or retry failed deletions periodically. The
                // layer is not kept alive while waiting.
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(RETRY_EVERY) => {}
                }
            }
        }
    });
}

/// How many rounds the collector has begun and finished (one task: they run one at a time),
/// so a caller can wait for a whole round that began after it asked.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Rounds {
    pub begun: u64,
    pub finished: u64,
}

/// Deletes one round of garbage; returns whether another round may find more to do now.
async fn collect_round(inner: &Inner, deferred: &mut Deferred) -> bool {
    // Ask for enough to get past the deferred bodies, which are the oldest.
    let limit = ROUND + deferred.len();
    let batch = match inner.meta.garbage(limit).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "garbage collection could not read the metadata");
            return false;
        }
    };
    let full = batch.len() == limit;
    let now = Instant::now();
    let grace_ms = inner.storage.gc_grace.as_millis() as i64;
    let mut progressed = false;
    for g in batch {
        if super::now_ms() - g.since_ms < grace_ms {
            // The body became garbage so recently that a GET may be about to take its read
            // lease; the list is ordered by age, so the rest is younger still.
            return false;
        }
        if deferred.get(&g.stream_id).is_some_and(|t| *t > now) {
            continue;
        }
        let in_use = inner
            .reading
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&g.stream_id);
        if in_use {
            // A GET that began before the overwrite is still reading it: next round.
            continue;
        }
        if delete_body(inner, &g).await {
            if let Err(e) = inner.meta.garbage_done(&g.stream_id).await {
                tracing::warn!(error = %e, "garbage collection could not update the metadata");
                return false;
            }
            deferred.remove(&g.stream_id);
            progressed = true;
        } else if deferred.len() < MAX_DEFERRED || deferred.contains_key(&g.stream_id) {
            deferred.insert(g.stream_id, now + RETRY_EVERY);
        }
    }
    full && progressed
}

async fn delete_body(inner: &Inner, g: &Garbage) -> bool {
    let mut all = true;
    for (segment, piece) in &g.pieces {
        // A node removed from the config has nothing to delete (delete_piece says Ok).
        if let Err(e) = inner
            .transfers
            .delete_piece(&piece.node, &g.stream_id.0, *segment, piece.number)
            .await
        {
            tracing::warn!(node = %piece.node, error = %e, "could not delete a garbage piece; will retry");
            all = false;
        }
    }
    all
}
