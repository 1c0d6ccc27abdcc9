//! Garbage collection of replaced and deleted bodies.
//!
//! The metadata store marks a body as garbage in the same transaction that unlinks it; this
//! task deletes the pieces from the nodes and then forgets the body. A piece that cannot be
//! deleted (node down) keeps its body in the garbage list, to be retried on the next round.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::Inner;
use crate::meta::Garbage;
use crate::nodes::PieceId;

const ROUND: usize = 64;
const RETRY_EVERY: Duration = Duration::from_secs(60);

pub(super) fn spawn(inner: Weak<Inner>, wake: Arc<Notify>) {
    tokio::spawn(async move {
        loop {
            let more = {
                let Some(strong) = inner.upgrade() else {
                    return;
                };
                collect_round(&strong).await
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

/// Deletes one round of garbage; returns whether a full round was done (more may wait).
async fn collect_round(inner: &Inner) -> bool {
    let batch = match inner.meta.garbage(ROUND).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "garbage collection could not read the metadata");
            return false;
        }
    };
    let full = batch.len() == ROUND;
    let mut progressed = false;
    for g in batch {
        let in_use = inner
            .reading
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&g.stream_id);
        // A GET that began before the overwrite is still reading it, or the body became
        // garbage so recently that a GET may be about to take its read lease: next round.
        let young = super::now_ms() - g.since_ms < inner.storage.gc_grace.as_millis() as i64;
        if in_use || young {
            continue;
        }
        if delete_body(inner, &g).await {
            if let Err(e) = inner.meta.garbage_done(&g.stream_id).await {
                tracing::warn!(error = %e, "garbage collection could not update the metadata");
                return false;
            }
            progressed = true;
        }
    }
    full && progressed
}

async fn delete_body(inner: &Inner, g: &Garbage) -> bool {
    let mut all = true;
    for (segment, piece) in &g.pieces {
        let Some(node) = inner.node(&piece.node) else {
            // A node removed from the config: nothing we can delete there.
            continue;
        };
        let id = PieceId::derive(&node.id_key, &g.stream_id.0, *segment, piece.number);
        if let Err(e) = node.store.delete(id).await {
            tracing::warn!(node = %piece.node, error = %e, "could not delete a garbage piece; will retry");
            all = false;
        }
    }
    all
}
