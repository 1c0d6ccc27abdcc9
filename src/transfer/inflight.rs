//! The streams whose pieces are being written but are not (yet) in the metadata.
//!
//! A multi-segment PUT commits its first segments' pieces long before the metadata row that
//! references them; a multipart part is in the metadata only once UploadPart finished. Orphan
//! collection (`object::orphans`) must not mistake such pieces for orphans, however long the
//! upload takes, so every writer of new pieces registers here first:
//!
//! - [`InFlight::begin`] before the first piece of a stream is written; the returned
//!   [`InFlightGuard`] is held until the metadata commit that references the pieces has
//!   returned (committed or failed), or, for a failed upload, until its cleanup deleted what it
//!   wrote. Dropping the guard ends the registration.
//! - [`InFlightGuard::segment`] before segment `i`'s pieces are started: every piece id
//!   derivable from the stream, segments `0..=i` and piece numbers `0..numbers`, on any node,
//!   counts as expected while the guard lives.
//!
//! Ordering contract with readers ([`InFlight::snapshot`]): a reader that takes the snapshot
//! *before* it reads the metadata sees every stream either here or in the metadata, since a
//! guard is dropped only after its metadata commit returned.
//!
//! New streams have fresh random ids, so their pieces can never have the id of a piece that
//! was on a node before. Writers that re-create pieces of a stream the metadata already has
//! (repair, draining a node) can: they hold an [`InFlight::rewrite`] guard from before their
//! first piece write until their metadata switch returned. Orphan deletion runs under
//! [`InFlight::deletion_fence`], which waits for rewrites in progress and keeps new ones from
//! starting, and re-reads the metadata when [`InFlight::rewrites_done`] moved since its view.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedRwLockReadGuard, RwLock, RwLockWriteGuard};

/// Stream id → registration.
#[derive(Debug, Default)]
pub struct InFlight {
    streams: Mutex<HashMap<[u8; 16], Entry>>,
    /// Rewrites hold it shared, orphan deletion exclusively.
    fence: Arc<RwLock<()>>,
    /// Rewrites finished since start.
    rewrites: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Guards registered on the stream (normally one).
    refs: usize,
    /// Segments `0..segments` may have pieces.
    segments: u32,
    /// Piece numbers `0..numbers`.
    numbers: u16,
}

/// One stream in flight: what may exist of it on the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlightStream {
    pub stream: [u8; 16],
    /// Segments `0..segments` may have pieces.
    pub segments: u32,
    /// Piece numbers `0..numbers`.
    pub numbers: u16,
}

impl InFlight {
    pub fn new() -> Arc<InFlight> {
        Arc::new(InFlight::default())
    }

    /// Registers `stream`, whose pieces will be numbered `0..numbers`.
    pub fn begin(self: &Arc<Self>, stream: [u8; 16], numbers: u16) -> InFlightGuard {
        let mut map = self.lock();
        let e = map.entry(stream).or_insert(Entry {
            refs: 0,
            segments: 0,
            numbers,
        });
        e.refs += 1;
        e.numbers = e.numbers.max(numbers);
        InFlightGuard {
            registry: self.clone(),
            stream,
        }
    }

    /// The streams registered now.
    pub fn snapshot(&self) -> Vec<InFlightStream> {
        self.lock()
            .iter()
            .map(|(stream, e)| InFlightStream {
                stream: *stream,
                segments: e.segments,
                numbers: e.numbers,
            })
            .collect()
    }

    /// For a writer of pieces of a stream already in the metadata: waits while orphans are
    /// being deleted; hold the guard until the metadata references the new pieces (or the
    /// attempt failed).
    pub async fn rewrite(self: &Arc<Self>) -> RewriteGuard {
        RewriteGuard {
            registry: self.clone(),
            _shared: self.fence.clone().read_owned().await,
        }
    }

    /// Rewrites finished since start: a reader whose metadata view is older than a change of
    /// this number must read the metadata again.
    pub fn rewrites_done(&self) -> u64 {
        self.rewrites.load(Ordering::SeqCst)
    }

    /// Exclusive against rewrites: waits for those in progress and holds new ones back while
    /// held. For orphan deletion.
    pub async fn deletion_fence(&self) -> RwLockWriteGuard<'_, ()> {
        self.fence.write().await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 16], Entry>> {
        // The map is consistent after any panic (every update is a single assignment).
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A stream's registration; see the module docs.
#[derive(Debug)]
pub struct InFlightGuard {
    registry: Arc<InFlight>,
    stream: [u8; 16],
}

impl InFlightGuard {
    /// Segment `index` is about to get pieces: segments `0..=index` count as written.
    pub fn segment(&self, index: u32) {
        if let Some(e) = self.registry.lock().get_mut(&self.stream) {
            e.segments = e.segments.max(index.saturating_add(1));
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut map = self.registry.lock();
        if let Some(e) = map.get_mut(&self.stream) {
            e.refs -= 1;
            if e.refs == 0 {
                map.remove(&self.stream);
            }
        }
    }
}

/// A rewrite in progress; see [`InFlight::rewrite`].
#[derive(Debug)]
pub struct RewriteGuard {
    registry: Arc<InFlight>,
    _shared: OwnedRwLockReadGuard<()>,
}

impl Drop for RewriteGuard {
    fn drop(&mut self) {
        // Counted while the fence is still held, so a deletion that gets the fence next sees
        // the change.
        self.registry.rewrites.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_lives_as_long_as_its_guards() {
        let r = InFlight::new();
        assert!(r.snapshot().is_empty());
        let a = r.begin([1; 16], 6);
        assert_eq!(
            r.snapshot(),
            vec![InFlightStream {
                stream: [1; 16],
                segments: 0,
                numbers: 6
            }]
        );
        a.segment(0);
        a.segment(4);
        a.segment(2);
        assert_eq!(r.snapshot()[0].segments, 5);
        // A second guard on the same stream (e.g. a repair of it) keeps it registered.
        let b = r.begin([1; 16], 8);
        drop(a);
        assert_eq!(r.snapshot()[0].numbers, 8);
        assert_eq!(r.snapshot()[0].segments, 5);
        drop(b);
        assert!(r.snapshot().is_empty());
    }

    #[tokio::test]
    async fn rewrites_and_deletions_exclude_each_other() {
        let r = InFlight::new();
        assert_eq!(r.rewrites_done(), 0);
        let a = r.rewrite().await;
        let b = r.rewrite().await;
        // A deletion waits for the rewrites in progress.
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(50), r.deletion_fence()).await;
        assert!(waiting.is_err());
        drop(a);
        drop(b);
        assert_eq!(r.rewrites_done(), 2);
        let fence = r.deletion_fence().await;
        // A rewrite waits while orphans are deleted.
        let r2 = r.clone();
        let rewrite = tokio::spawn(async move {
            let _g = r2.rewrite().await;
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!rewrite.is_finished());
        drop(fence);
        rewrite.await.unwrap();
        assert_eq!(r.rewrites_done(), 3);
    }
}
