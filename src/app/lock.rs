//! The data directory lock: one process at a time works on a data directory.
//!
//! Contract:
//! - [`DataDirLock::acquire`] opens (or creates) `DATA_DIR/gateway.lock` and takes a
//!   non-blocking exclusive `flock` on it. The lock lives exactly as long as the returned
//!   value (or the process): the kernel releases it on close and on any exit, `kill -9`
//!   included, so a lock file left behind by a dead process never blocks. Two opens conflict
//!   even within one process.
//! - The file's contents only describe the holder, for the message of the one who is refused:
//!   `gateway-lock v1`, `pid N`, and once [`DataDirLock::record_listeners`] was called
//!   `s3 ADDR` and `admin ADDR|off`. They mean something only while the file is locked; the
//!   holder rewrites them in place after locking (never before), and empties them on drop.
//! - The file is never deleted: unlinking a lock file races with a process that has it open
//!   and would let two processes each hold "the" lock on different inodes.
//! - A refused [`DataDirLock::acquire`] is [`LockError::InUse`], whose message names the
//!   holder: `data directory /x is in use by gateway pid 1234 (S3 127.0.0.1:7777, admin
//!   127.0.0.1:7778)`.
//! - The lock is advisory: it protects against a second gateway (`run`, `recover`), not
//!   against other programs writing into the directory.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "gateway.lock";
const HEADER: &str = "gateway-lock v1";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("data directory {} is in use by {holder}", dir.display())]
    InUse { dir: PathBuf, holder: LockHolder },
    // The cause is in the message, not also `source()`: printed whole, it says it once.
    #[error("lock file {}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// What a lock file says about the process holding it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockHolder {
    pub pid: Option<u32>,
    /// The S3 listener, once the holder recorded it.
    pub s3: Option<String>,
    /// The admin listener (`off` when disabled), once the holder recorded it.
    pub admin: Option<String>,
}

impl LockHolder {
    /// Reads the description from a lock file's text; unknown lines are ignored, so a newer
    /// holder's file still names its pid.
    pub fn parse(text: &str) -> LockHolder {
        let mut h = LockHolder::default();
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("pid", v)) => h.pid = v.trim().parse().ok(),
                Some(("s3", v)) => h.s3 = Some(v.trim().to_string()),
                Some(("admin", v)) => h.admin = Some(v.trim().to_string()),
                _ => {}
            }
        }
        h
    }

    fn render(&self) -> String {
        let mut s = format!("{HEADER}\n");
        if let Some(pid) = self.pid {
            s.push_str(&format!("pid {pid}\n"));
        }
        if let Some(a) = &self.s3 {
            s.push_str(&format!("s3 {a}\n"));
        }
        if let Some(a) = &self.admin {
            s.push_str(&format!("admin {a}\n"));
        }
        s
    }
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "gateway pid {pid}")?,
            // The holder is between locking and writing its pid (a tiny window).
            None => f.write_str("another gateway process (pid not yet recorded)")?,
        }
        match (&self.s3, &self.admin) {
            (Some(s3), Some(admin)) => write!(f, " (S3 {s3}, admin {admin})"),
            (Some(s3), None) => write!(f, " (S3 {s3})"),
            _ => Ok(()),
        }
    }
}

/// An exclusive lock on a data directory, held until dropped.
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
    path: PathBuf,
    holder: LockHolder,
}

impl DataDirLock {
    /// Locks `data_dir` (which must exist) for this process, or says who holds it.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, LockError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |error| LockError::Io {
            path: path.clone(),
            error,
        };
        // Not truncated on open: the contents belong to whoever holds the lock.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        if !try_lock_exclusive(&file).map_err(io)? {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            return Err(LockError::InUse {
                dir: data_dir.to_path_buf(),
                holder: LockHolder::parse(&text),
            });
        }
        let mut lock = DataDirLock {
            file,
            path,
            holder: LockHolder {
                pid: Some(std::process::id()),
                ..LockHolder::default()
            },
        };
        lock.write_holder()?;
        Ok(lock)
    }

    /// Records the listeners in the lock file, for the message of a refused second process.
    pub fn record_listeners(
        &mut self,
        s3: SocketAddr,
        admin: Option<SocketAddr>,
    ) -> Result<(), LockError> {
        self.holder.s3 = Some(s3.to_string());
        self.holder.admin = Some(admin.map_or_else(|| "off".to_string(), |a| a.to_string()));
        self.write_holder()
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rewrites the contents in place: written first, then cut to length, so a reader never
    /// sees an empty file between the two.
    fn write_holder(&mut self) -> Result<(), LockError> {
        let text = self.holder.render();
        let r = (|| {
            self.file.seek(SeekFrom::Start(0))?;
            self.file.write_all(text.as_bytes())?;
            self.file.set_len(text.len() as u64)
        })();
        r.map_err(|error| LockError::Io {
            path: self.path.clone(),
            error,
        })
    }
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        // Still locked here: nobody else can be writing. Closing the file then unlocks.
        let _ = self.file.set_len(0);
    }
}

/// `Ok(false)` when another open file description holds the lock.
#[cfg(unix)]
fn try_lock_exclusive(file: &File) -> std::io::Result<bool> {
    use rustix::fs::{flock, FlockOperation};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(unix))]
fn try_lock_exclusive(file: &File) -> std::io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = DataDirLock::acquire(dir.path()).unwrap();
        first
            .record_listeners(
                "127.0.0.1:7777".parse().unwrap(),
                Some("127.0.0.1:7778".parse().unwrap()),
            )
            .unwrap();
        let err = DataDirLock::acquire(dir.path()).unwrap_err();
        let pid = std::process::id();
        assert_eq!(
            err.to_string(),
            format!(
                "data directory {} is in use by gateway pid {pid} (S3 127.0.0.1:7777, admin 127.0.0.1:7778)",
                dir.path().display()
            )
        );
        match err {
            LockError::InUse { holder, .. } => assert_eq!(holder.pid, Some(pid)),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn the_message_before_listeners_and_with_admin_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = DataDirLock::acquire(dir.path()).unwrap();
        let pid = std::process::id();
        let msg = DataDirLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            msg.ends_with(&format!("in use by gateway pid {pid}")),
            "{msg}"
        );
        first
            .record_listeners("127.0.0.1:9".parse().unwrap(), None)
            .unwrap();
        let msg = DataDirLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(msg.ends_with("(S3 127.0.0.1:9, admin off)"), "{msg}");
    }

    #[test]
    fn dropping_releases_and_stale_contents_do_not_block() {
        let dir = tempfile::tempdir().unwrap();
        drop(DataDirLock::acquire(dir.path()).unwrap());
        // What kill -9 leaves behind: a file naming a dead process, with no lock on it.
        std::fs::write(
            dir.path().join(LOCK_FILE),
            "gateway-lock v1\npid 999999999\ns3 127.0.0.1:1\nadmin off\nmore junk than we write\n",
        )
        .unwrap();
        let lock = DataDirLock::acquire(dir.path()).unwrap();
        let text = std::fs::read_to_string(lock.path()).unwrap();
        assert_eq!(
            text,
            format!("gateway-lock v1\npid {}\n", std::process::id())
        );
        drop(lock);
        assert_eq!(std::fs::read(dir.path().join(LOCK_FILE)).unwrap(), b"");
    }

    #[test]
    fn a_missing_data_dir_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = DataDirLock::acquire(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(err, LockError::Io { .. }), "{err}");
    }

    #[test]
    fn holder_text_round_trips_and_tolerates_unknown_lines() {
        let h = LockHolder {
            pid: Some(42),
            s3: Some("[::1]:7777".into()),
            admin: Some("off".into()),
        };
        assert_eq!(LockHolder::parse(&h.render()), h);
        let newer = "gateway-lock v2\npid 7\ncommand recover\n";
        assert_eq!(LockHolder::parse(newer).pid, Some(7));
        assert_eq!(
            LockHolder::parse("").to_string(),
            "another gateway process (pid not yet recorded)"
        );
    }
}
