//! Storage-level helpers for the fault and privacy tests: where an object's pieces live on the
//! node directories (derived exactly as the gateway derives them, from its root key and the
//! object's metadata), corrupting them, walking the node tree, and SDK error inspection.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use gateway::erasure::{CHUNK_MAC_LEN, PIECE_HEADER_LEN};
use gateway::meta::{ObjectRecord, Placement};
use gateway::nodes::PieceId;

use super::TestGateway;

/// HTTP status of a failed SDK call, when a response arrived.
pub fn status_of<E>(e: &SdkError<E>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// S3 error code of a failed SDK call, when the response had one.
pub fn code_of<E: ProvideErrorMetadata>(e: &SdkError<E>) -> Option<String> {
    e.code().map(str::to_string)
}

/// One stored piece of an object.
#[derive(Debug, Clone)]
pub struct PieceFile {
    pub segment: u32,
    pub number: u16,
    pub node: String,
    /// The 64-hex file name.
    pub name: String,
    pub path: PathBuf,
    pub chunk_size: usize,
}

impl PieceFile {
    /// Offset in the file of byte `i` of the chunk data of `stripe`.
    pub fn data_offset(&self, stripe: u64, i: usize) -> u64 {
        assert!(i < self.chunk_size, "byte {i} is outside a chunk");
        PIECE_HEADER_LEN as u64 + stripe * (self.chunk_size + CHUNK_MAC_LEN) as u64 + i as u64
    }

    /// Offset in the file of byte `i` of the MAC of `stripe`.
    pub fn mac_offset(&self, stripe: u64, i: usize) -> u64 {
        assert!(i < CHUNK_MAC_LEN);
        self.data_offset(stripe, 0) + (self.chunk_size + i) as u64
    }
}

/// Every piece of every segment of `rec` (none for an inline object), in (segment, number)
/// order, with the file path the gateway uses for it.
pub fn piece_files(gw: &TestGateway, rec: &ObjectRecord) -> Vec<PieceFile> {
    let mut out = Vec::new();
    let stream = &rec.parts[0].stream;
    for seg in &stream.segments {
        let Placement::Pieces {
            chunk_size, pieces, ..
        } = seg.placement.clone()
        else {
            continue;
        };
        for p in &pieces {
            let key = gw.prepared.root_key.piece_id_key(&p.node);
            let name = PieceId::derive(&key, &stream.stream_id.0, seg.index, p.number).to_hex();
            let path = gw
                .node_dir(&p.node)
                .join("pieces")
                .join(&name[..2])
                .join(&name);
            out.push(PieceFile {
                segment: seg.index,
                number: p.number,
                node: p.node.clone(),
                name,
                path,
                chunk_size: chunk_size as usize,
            });
        }
    }
    out
}

/// The piece of `rec` with this segment and number.
pub fn piece(gw: &TestGateway, rec: &ObjectRecord, segment: u32, number: u16) -> PieceFile {
    piece_files(gw, rec)
        .into_iter()
        .find(|p| p.segment == segment && p.number == number)
        .unwrap_or_else(|| panic!("no piece {number} of segment {segment}"))
}

/// Inverts every bit of the byte at `offset` of an existing file.
pub fn flip_byte(path: &Path, offset: u64) {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    assert!(
        offset < f.metadata().unwrap().len(),
        "offset {offset} past the end of {}",
        path.display()
    );
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.read_exact(&mut b).unwrap();
    b[0] ^= 0xff;
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&b).unwrap();
    f.sync_all().unwrap();
}

/// Every regular file under `dir`, recursively (empty when `dir` does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Committed piece files under a node directory (or under `nodes/` for all nodes).
/// Data piece files under `dir` (metadata blobs, which every node also holds, left out).
pub fn piece_paths(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "pieces"))
        .filter(|p| !super::is_metadata_blob(p))
        .collect()
}
