//! A storage node that is a local directory (a disk, a mount).
//!
//! Layout, version 1:
//! ```text
//! DIR/NODE            "gateway-dir-node v1\n" — marks an initialised node directory
//! DIR/tmp/            pieces being written (`<hex>.<random>.tmp`)
//! DIR/pieces/ab/<hex> committed pieces, fanned out by the first byte of the id
//! ```
//! A piece is written to `tmp/`, fsynced, renamed into `pieces/`, and the directory is
//! fsynced before commit returns. A directory without the `NODE` marker is refused rather than
//! silently re-created: an unmounted disk must not look like an empty node.
//!
//! A writer dropped before commit (an aborted or broken upload) removes its temp file. Temp
//! files survive only a killed process; [`DirNode::remove_stale_temp`] clears them and must only
//! be called while no writer of this directory is open (the node server does so at start, and
//! `gateway run` for its directory nodes).
//! [`DirNode::list_pieces`] lists committed pieces in id order, page by page;
//! [`DirNode::open_piece`] reads one version of a piece even if it is replaced meanwhile.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
#[cfg(unix)]
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::{BoxFuture, NodeError, NodeStore, PieceId, PieceWriter, Space};

pub const MARKER: &str = "NODE";
const MARKER_BODY: &str = "gateway-dir-node v1\n";

#[derive(Clone)]
pub struct DirNode {
    inner: Arc<Inner>,
}

struct Inner {
    id: String,
    root: PathBuf,
}

impl DirNode {
    /// Opens the node directory at `root`, initialising it first if `init` is set and the
    /// directory is new (absent or empty).
    pub fn open(id: &str, root: &Path, init: bool) -> Result<DirNode, NodeError> {
        let io = |op, source| NodeError::Io {
            node: id.to_string(),
            op,
            source,
        };
        let marker = root.join(MARKER);
        if !marker.exists() {
            let empty = match fs::read_dir(root) {
                Ok(mut entries) => entries.next().is_none(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
                Err(e) => return Err(io("read node directory", e)),
            };
            if !init || !empty {
                return Err(NodeError::Unavailable {
                    node: id.to_string(),
                    reason: format!(
                        "{} is not an initialised node directory (no {MARKER} file)",
                        root.display()
                    ),
                });
            }
            init_dir(root).map_err(|e| io("initialise node directory", e))?;
        } else {
            let body = fs::read_to_string(&marker).map_err(|e| io("read node marker", e))?;
            if body != MARKER_BODY {
                return Err(NodeError::Unavailable {
                    node: id.to_string(),
                    reason: format!("unsupported node format: {:?}", body.trim()),
                });
            }
        }
        Ok(DirNode {
            inner: Arc::new(Inner {
                id: id.to_string(),
                root: root.to_path_buf(),
            }),
        })
    }
}

impl DirNode {
    /// The node directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Up to `limit` committed piece ids greater than `after` (all ids when `None`), in
    /// ascending byte order. Blocking: it reads directories.
    pub fn list_pieces(
        &self,
        after: Option<PieceId>,
        limit: usize,
    ) -> Result<Vec<PieceId>, NodeError> {
        let inner = &self.inner;
        let mut out = Vec::new();
        let first = after.map_or(0, |a| a.0[0]);
        for fan in first..=255u8 {
            if out.len() >= limit {
                break;
            }
            let dir = inner.root.join("pieces").join(format!("{fan:02x}"));
            let mut ids: Vec<PieceId> = Vec::new();
            for entry in fs::read_dir(&dir).map_err(inner.io("list pieces"))? {
                let entry = entry.map_err(inner.io("list pieces"))?;
                // Anything that is not a piece name (an editor's backup, a stray file) is
                // not a piece; listing skips it rather than failing.
                let Some(id) = entry.file_name().to_str().and_then(PieceId::from_hex) else {
                    continue;
                };
                if id.0[0] == fan && after.is_none_or(|a| id.0 > a.0) {
                    ids.push(id);
                }
            }
            ids.sort_unstable_by_key(|id| id.0);
            ids.truncate(limit - out.len());
            out.extend(ids);
        }
        Ok(out)
    }

    /// Opens a committed piece for reading. The handle keeps reading the version that was
    /// committed when it was opened, even if the piece is replaced or deleted meanwhile.
    pub async fn open_piece(&self, piece: PieceId) -> Result<OpenPiece, NodeError> {
        let inner = self.inner.clone();
        blocking(&self.inner.id, move || {
            let file = File::open(inner.piece_path(&piece)).map_err(inner.io("open piece"))?;
            let size = file.metadata().map_err(inner.io("stat piece"))?.len();
            Ok(OpenPiece {
                inner: inner.clone(),
                file: Arc::new(file),
                size,
            })
        })
        .await
    }

    /// Removes the temp files of uploads that never finished (a killed process); returns how
    /// many and their bytes. Only safe while no writer of this directory is open (the node
    /// server calls it at start; `gateway run`, holding its data-directory lock, for its own
    /// directory nodes). Blocking: it reads and removes files.
    pub fn remove_stale_temp(&self) -> Result<TempSweep, NodeError> {
        let inner = &self.inner;
        let mut swept = TempSweep::default();
        for entry in fs::read_dir(inner.root.join("tmp")).map_err(inner.io("list temp pieces"))? {
            let entry = entry.map_err(inner.io("list temp pieces"))?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                // Its size is only reported: a file that cannot be stat'ed still goes.
                let bytes = entry.metadata().map_or(0, |m| m.len());
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    // Gone meanwhile: nothing to remove.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(inner.io("remove temp piece")(e)),
                }
                swept.files += 1;
                swept.bytes += bytes;
            }
        }
        Ok(swept)
    }
}

/// What [`DirNode::remove_stale_temp`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TempSweep {
    pub files: u64,
    pub bytes: u64,
}

/// A committed piece opened for reading (see [`DirNode::open_piece`]).
pub struct OpenPiece {
    inner: Arc<Inner>,
    file: Arc<File>,
    size: u64,
}

impl OpenPiece {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Reads exactly `len` bytes at `offset`; a range past the end is `NodeError::ShortRead`.
    pub async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, NodeError> {
        if offset
            .checked_add(len as u64)
            .is_none_or(|end| end > self.size)
        {
            return Err(NodeError::ShortRead {
                node: self.inner.id.clone(),
            });
        }
        let inner = self.inner.clone();
        let file = self.file.clone();
        blocking(&self.inner.id, move || {
            let mut buf = vec![0u8; len];
            read_exact_at(&file, &mut buf, offset).map_err(inner.io("read piece"))?;
            Ok(Bytes::from(buf))
        })
        .await
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    file.read_exact_at(buf, offset)
}

#[cfg(not(unix))]
fn read_exact_at(mut file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

fn init_dir(root: &Path) -> std::io::Result<()> {
    fs::create_dir_all(root.join("tmp"))?;
    let pieces = root.join("pieces");
    fs::create_dir_all(&pieces)?;
    for b in 0..=255u8 {
        fs::create_dir_all(pieces.join(format!("{b:02x}")))?;
    }
    sync_dir(&pieces)?;
    let tmp_marker = root.join("NODE.tmp");
    let mut f = File::create(&tmp_marker)?;
    f.write_all(MARKER_BODY.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp_marker, root.join(MARKER))?;
    sync_dir(root)?;
    if let Some(parent) = root.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    File::open(path)?.sync_all()
}

impl Inner {
    fn piece_path(&self, piece: &PieceId) -> PathBuf {
        let hex = piece.to_hex();
        self.root.join("pieces").join(&hex[..2]).join(hex)
    }

    fn io(&self, op: &'static str) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
        move |source| {
            if source.kind() == std::io::ErrorKind::NotFound && op == "open piece" {
                NodeError::NotFound {
                    node: self.id.clone(),
                }
            } else {
                NodeError::Io {
                    node: self.id.clone(),
                    op,
                    source,
                }
            }
        }
    }
}

async fn blocking<T: Send + 'static>(
    node: &str,
    f: impl FnOnce() -> Result<T, NodeError> + Send + 'static,
) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(NodeError::Unavailable {
            node: node.to_string(),
            reason: format!("worker failed: {e}"),
        })
    })
}

/// Free and total bytes of the filesystem holding `path` (as this process's user sees them).
#[cfg(unix)]
pub fn fs_space(path: &Path) -> std::io::Result<(u64, u64)> {
    let s = rustix::fs::statvfs(path).map_err(std::io::Error::from)?;
    Ok((
        s.f_bavail.saturating_mul(s.f_frsize),
        s.f_blocks.saturating_mul(s.f_frsize),
    ))
}

/// Without statvfs the space is unknown: free is reported as unlimited, the reserve unenforced.
#[cfg(not(unix))]
pub fn fs_space(_: &Path) -> std::io::Result<(u64, u64)> {
    Ok((u64::MAX, 0))
}

impl NodeStore for DirNode {
    fn id(&self) -> &str {
        &self.inner.id
    }

    fn space<'a>(&'a self) -> BoxFuture<'a, Result<Option<Space>, NodeError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            blocking(&self.inner.id, move || {
                let (free, total) = fs_space(&inner.root).map_err(|source| NodeError::Io {
                    node: inner.id.clone(),
                    op: "statvfs",
                    source,
                })?;
                Ok(Some(Space { free, total }))
            })
            .await
        })
    }

    fn create<'a>(
        &'a self,
        piece: PieceId,
    ) -> BoxFuture<'a, Result<Box<dyn PieceWriter>, NodeError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            blocking(&self.inner.id, move || {
                let mut rand = [0u8; 8];
                crate::crypto::random_bytes(&mut rand).map_err(|e| NodeError::Unavailable {
                    node: inner.id.clone(),
                    reason: e.to_string(),
                })?;
                let tmp = inner.root.join("tmp").join(format!(
                    "{}.{}.tmp",
                    piece.to_hex(),
                    crate::crypto::encode_hex(&rand)
                ));
                let file = File::create_new(&tmp).map_err(inner.io("create temp piece"))?;
                Ok(Box::new(DirWriter {
                    inner: inner.clone(),
                    piece,
                    tmp,
                    file: Some(file),
                }) as Box<dyn PieceWriter>)
            })
            .await
        })
    }

    fn read<'a>(
        &'a self,
        piece: PieceId,
        offset: u64,
        len: u64,
    ) -> BoxFuture<'a, Result<Bytes, NodeError>> {
        let inner = self.inner.clone();
        Box::pin(blocking(&self.inner.id, move || {
            let path = inner.piece_path(&piece);
            let mut f = File::open(&path).map_err(inner.io("open piece"))?;
            let size = f.metadata().map_err(inner.io("stat piece"))?.len();
            if offset.checked_add(len).is_none_or(|end| end > size) {
                return Err(NodeError::ShortRead {
                    node: inner.id.clone(),
                });
            }
            f.seek(SeekFrom::Start(offset))
                .map_err(inner.io("seek piece"))?;
            let mut buf = vec![0u8; len as usize];
            f.read_exact(&mut buf).map_err(inner.io("read piece"))?;
            Ok(Bytes::from(buf))
        }))
    }

    fn delete<'a>(&'a self, piece: PieceId) -> BoxFuture<'a, Result<(), NodeError>> {
        let inner = self.inner.clone();
        Box::pin(blocking(&self.inner.id, move || {
            let path = inner.piece_path(&piece);
            match fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(inner.io("delete piece")(e)),
            }
        }))
    }

    fn list<'a>(
        &'a self,
        after: Option<PieceId>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<PieceId>, NodeError>> {
        let node = self.clone();
        Box::pin(blocking(&self.inner.id, move || {
            node.list_pieces(after, limit)
        }))
    }

    fn size<'a>(&'a self, piece: PieceId) -> BoxFuture<'a, Result<u64, NodeError>> {
        let inner = self.inner.clone();
        Box::pin(blocking(&self.inner.id, move || {
            match fs::metadata(inner.piece_path(&piece)) {
                Ok(m) => Ok(m.len()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(NodeError::NotFound {
                    node: inner.id.clone(),
                }),
                Err(e) => Err(inner.io("stat piece")(e)),
            }
        }))
    }
}

struct DirWriter {
    inner: Arc<Inner>,
    piece: PieceId,
    tmp: PathBuf,
    file: Option<File>,
}

impl PieceWriter for DirWriter {
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<(), NodeError>> {
        Box::pin(async move {
            let Some(mut file) = self.file.take() else {
                return Err(NodeError::Unavailable {
                    node: self.inner.id.clone(),
                    reason: "write after a failed write".into(),
                });
            };
            let inner = self.inner.clone();
            let file = blocking(&self.inner.id, move || {
                file.write_all(&data).map_err(inner.io("write piece"))?;
                Ok(file)
            })
            .await?;
            self.file = Some(file);
            Ok(())
        })
    }

    fn commit(mut self: Box<Self>) -> BoxFuture<'static, Result<(), NodeError>> {
        Box::pin(async move {
            let file = self.file.take();
            let inner = self.inner.clone();
            let id = inner.id.clone();
            blocking(&id, move || {
                let file = file.ok_or_else(|| NodeError::Unavailable {
                    node: inner.id.clone(),
                    reason: "commit after a failed write".into(),
                })?;
                file.sync_all().map_err(inner.io("fsync piece"))?;
                drop(file);
                let dest = inner.piece_path(&self.piece);
                fs::rename(&self.tmp, &dest).map_err(inner.io("rename piece"))?;
                // Renamed: nothing left for Drop to clean up.
                self.tmp = PathBuf::new();
                if let Some(dir) = dest.parent() {
                    sync_dir(dir).map_err(inner.io("fsync piece directory"))?;
                }
                Ok(())
            })
            .await
        })
    }

    /// Returns once the temp file is gone.
    fn abort(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let _ = tokio::task::spawn_blocking(move || self.remove_temp()).await;
        })
    }
}

impl DirWriter {
    /// Closes and removes the temp file of an uncommitted piece, here and now.
    fn remove_temp(&mut self) {
        if self.tmp.as_os_str().is_empty() {
            return;
        }
        self.file.take();
        let _ = fs::remove_file(std::mem::take(&mut self.tmp));
    }
}

impl Drop for DirWriter {
    /// A writer dropped without commit or abort (a cancelled upload drops its writers on a
    /// reactor thread) has its temp file removed on the blocking pool, or in place outside a
    /// runtime; the next start's sweep removes what a shutdown left.
    fn drop(&mut self) {
        if self.tmp.as_os_str().is_empty() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let (file, tmp) = (self.file.take(), std::mem::take(&mut self.tmp));
                rt.spawn_blocking(move || {
                    drop(file);
                    let _ = fs::remove_file(tmp);
                });
            }
            Err(_) => self.remove_temp(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        let node = DirNode::open("d1", &dir.path().join("n"), true).unwrap();
        super::super::conformance::run(&node).await;
        // No temp files left behind.
        let tmp: Vec<_> = fs::read_dir(dir.path().join("n/tmp")).unwrap().collect();
        assert!(tmp.is_empty());
    }

    #[test]
    fn refuses_uninitialised_non_empty_dir() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("stray"), b"x").unwrap();
        assert!(DirNode::open("d", dir.path(), true).is_err());
        let empty = dir.path().join("e");
        assert!(DirNode::open("d", &empty, false).is_err());
        assert!(DirNode::open("d", &empty, true).is_ok());
        // Reopen without init works once initialised.
        assert!(DirNode::open("d", &empty, false).is_ok());
    }

    async fn put(node: &DirNode, id: PieceId, body: &[u8]) {
        let mut w = node.create(id).await.unwrap();
        w.write(Bytes::copy_from_slice(body)).await.unwrap();
        w.commit().await.unwrap();
    }

    #[tokio::test]
    async fn list_pieces_pages_in_id_order() {
        let dir = tempfile::tempdir().unwrap();
        let node = DirNode::open("d", dir.path(), true).unwrap();
        let mut ids: Vec<PieceId> = [0x00u8, 0x10, 0x10, 0xfe, 0xff]
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut id = [*b; 32];
                id[31] = i as u8;
                PieceId(id)
            })
            .collect();
        for id in &ids {
            put(&node, *id, b"x").await;
        }
        // Strays in the fan-out directories are not pieces.
        fs::write(dir.path().join("pieces/10/notes.txt"), b"x").unwrap();
        fs::write(dir.path().join("pieces/10").join("ff".repeat(32)), b"x").unwrap();
        ids.sort_by_key(|id| id.0);
        assert_eq!(node.list_pieces(None, 100).unwrap(), ids);
        assert_eq!(node.list_pieces(None, 2).unwrap(), ids[..2]);
        assert_eq!(node.list_pieces(Some(ids[1]), 2).unwrap(), ids[2..4]);
        assert_eq!(node.list_pieces(Some(ids[3]), 2).unwrap(), ids[4..]);
        assert!(node.list_pieces(Some(ids[4]), 2).unwrap().is_empty());
        assert!(node.list_pieces(None, 0).unwrap().is_empty());
        // `after` need not exist.
        assert_eq!(
            node.list_pieces(Some(PieceId([0x10; 32])), 100).unwrap(),
            ids[3..]
        );
    }

    #[tokio::test]
    async fn open_piece_reads_one_version() {
        let dir = tempfile::tempdir().unwrap();
        let node = DirNode::open("d", dir.path(), true).unwrap();
        let id = PieceId([4; 32]);
        put(&node, id, b"first version").await;
        let open = node.open_piece(id).await.unwrap();
        put(&node, id, b"second").await;
        node.delete(id).await.unwrap();
        assert_eq!(open.size(), 13);
        assert_eq!(&open.read_at(6, 7).await.unwrap()[..], b"version");
        assert!(matches!(
            open.read_at(6, 8).await,
            Err(NodeError::ShortRead { .. })
        ));
        assert!(matches!(
            node.open_piece(id).await,
            Err(NodeError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn stale_temp_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let node = DirNode::open("d", dir.path(), true).unwrap();
        let mut w = node.create(PieceId([1; 32])).await.unwrap();
        w.write(Bytes::from_static(b"x")).await.unwrap();
        // A killed process never runs Drop.
        std::mem::forget(w);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 1);
        assert_eq!(
            node.remove_stale_temp().unwrap(),
            TempSweep { files: 1, bytes: 1 }
        );
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert!(node.list_pieces(None, 10).unwrap().is_empty());
    }
}
