//! Metadata blobs: how a log batch, a snapshot part or the head record becomes one piece per
//! node, and back.
//!
//! Contract:
//! - A blob is named by ([`BlobKind`], number, part). Its piece on a node is stored under a
//!   [`PieceId`] keyed by that node's piece-id key (log and snapshot blobs), so nodes cannot
//!   tell which blob a piece belongs to nor link the pieces of one blob; the head record's id
//!   is derived from the node id alone ([`head_piece_id`]) so that a gateway with the wrong
//!   root key still finds it and can refuse to start instead of ignoring it.
//! - Sealing: XChaCha20-Poly1305 under the root key's metadata key with a fresh random
//!   24-byte nonce per write (so a blob rewritten under the same name never reuses a
//!   (key, nonce) pair), associated data binding the kind, number and part: a piece copied
//!   under another name, or from another gateway, fails authentication.
//! - The sealed bytes are erasure-coded with the data path's stripe coder (`erasure`): any `k`
//!   of the `n` pieces rebuild the blob, stripe by stripe; every chunk carries a keyed BLAKE3
//!   MAC whose key binds the nonce, name and geometry, so a corrupted or altered piece is an
//!   erasure, never used.
//! - Piece format version [`BLOB_FORMAT`]: a [`BLOB_HEADER_LEN`]-byte header
//!   (`"GWMB" | version u16 | k u16 | n u16 | index u16 | chunk_size u32 | sealed_len u64 |
//!   nonce [24] | 10 zero bytes`, big-endian) followed by the stripe records (chunk | MAC).
//!   The header tells a node only the geometry and the size.
//! - Pieces of different writes of one name (a rewrite after a crash) never mix: pieces are
//!   grouped by nonce and each group decodes on its own ([`open_blob`] returns every group
//!   that authenticates).

use std::collections::BTreeMap;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::crypto::random_bytes;
use crate::erasure::piece::verify_record;
use crate::erasure::{Layout, StripeDecoder, StripeEncoder, CHUNK_MAC_LEN};
use crate::nodes::PieceId;

use super::ReplicationError;

pub const BLOB_FORMAT: u16 = 1;
pub const BLOB_HEADER_LEN: usize = 64;
const MAGIC: &[u8; 4] = b"GWMB";
const NONCE_LEN: usize = 24;
/// Largest sealed blob accepted, so a node cannot make a reader buffer more than this (over
/// `k`) per piece. Snapshot parts and batches are about 4 MiB; a batch holding one huge
/// change (a 5 TiB object of 64 MiB segments is a ~40 MB record) may be larger.
const MAX_SEALED: u64 = 64 << 20;
/// Largest chunk per stripe: blobs are read whole, so this only bounds the coder's buffers.
const MAX_CHUNK: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BlobKind {
    Head = 1,
    Log = 2,
    Snapshot = 3,
}

impl BlobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BlobKind::Head => "head record",
            BlobKind::Log => "log batch",
            BlobKind::Snapshot => "snapshot",
        }
    }
}

/// The name of one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobName {
    pub kind: BlobKind,
    pub number: u64,
    pub part: u32,
}

impl std::fmt::Display for BlobName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            BlobKind::Head => f.write_str("head record"),
            BlobKind::Log => write!(f, "log batch {}", self.number),
            BlobKind::Snapshot => write!(f, "snapshot {} part {}", self.number, self.part),
        }
    }
}

impl BlobName {
    pub const HEAD: BlobName = BlobName {
        kind: BlobKind::Head,
        number: 0,
        part: 0,
    };

    pub fn log(batch: u64) -> BlobName {
        BlobName {
            kind: BlobKind::Log,
            number: batch,
            part: 0,
        }
    }

    pub fn snapshot(number: u64, part: u32) -> BlobName {
        BlobName {
            kind: BlobKind::Snapshot,
            number,
            part,
        }
    }

    fn encode(&self) -> [u8; 13] {
        let mut out = [0u8; 13];
        out[0] = self.kind as u8;
        out[1..9].copy_from_slice(&self.number.to_be_bytes());
        out[9..].copy_from_slice(&self.part.to_be_bytes());
        out
    }

    /// The id of this blob's piece on the node with piece-id key `node_key` and id `node_id`.
    pub fn piece_id(&self, node_key: &[u8; 32], node_id: &str) -> PieceId {
        if self.kind == BlobKind::Head {
            return head_piece_id(node_id);
        }
        let mut h = blake3::Hasher::new_keyed(node_key);
        h.update(b"gw-meta1");
        h.update(&self.encode());
        PieceId(*h.finalize().as_bytes())
    }
}

/// The head record's id on a node: the same for every root key (see the module contract).
pub fn head_piece_id(node_id: &str) -> PieceId {
    let mut h = blake3::Hasher::new_derive_key("gateway 2026-12 metadata head id v1");
    h.update(node_id.as_bytes());
    PieceId(*h.finalize().as_bytes())
}

/// The length of a blob piece, read from its first [`BLOB_HEADER_LEN`] bytes; `None` if they
/// are not a blob header.
pub fn piece_len_from_header(header: &[u8]) -> Option<u64> {
    BlobHeader::decode(header).map(|h| h.piece_len())
}

/// Geometry of a blob's pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobHeader {
    pub k: u16,
    pub n: u16,
    pub index: u16,
    pub chunk_size: u32,
    pub sealed_len: u64,
    pub nonce: [u8; NONCE_LEN],
}

impl BlobHeader {
    fn encode(&self) -> [u8; BLOB_HEADER_LEN] {
        let mut h = [0u8; BLOB_HEADER_LEN];
        h[..4].copy_from_slice(MAGIC);
        h[4..6].copy_from_slice(&BLOB_FORMAT.to_be_bytes());
        h[6..8].copy_from_slice(&self.k.to_be_bytes());
        h[8..10].copy_from_slice(&self.n.to_be_bytes());
        h[10..12].copy_from_slice(&self.index.to_be_bytes());
        h[12..16].copy_from_slice(&self.chunk_size.to_be_bytes());
        h[16..24].copy_from_slice(&self.sealed_len.to_be_bytes());
        h[24..48].copy_from_slice(&self.nonce);
        h
    }

    /// Parses a header; `None` if it is not one of ours (or of a newer format).
    pub fn decode(b: &[u8]) -> Option<BlobHeader> {
        if b.len() < BLOB_HEADER_LEN || &b[..4] != MAGIC {
            return None;
        }
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        if u16_at(4) != BLOB_FORMAT {
            return None;
        }
        let h = BlobHeader {
            k: u16_at(6),
            n: u16_at(8),
            index: u16_at(10),
            chunk_size: u32::from_be_bytes(b[12..16].try_into().ok()?),
            sealed_len: u64::from_be_bytes(b[16..24].try_into().ok()?),
            nonce: b[24..48].try_into().ok()?,
        };
        let sane = h.k >= 1
            && h.k <= h.n
            && h.index < h.n
            && h.chunk_size >= 2
            && h.chunk_size.is_multiple_of(2)
            && h.chunk_size as usize <= MAX_CHUNK
            && h.sealed_len <= MAX_SEALED;
        sane.then_some(h)
    }

    fn layout(&self) -> Layout {
        Layout {
            k: self.k as usize,
            n: self.n as usize,
            chunk_size: self.chunk_size as usize,
            cipher_len: self.sealed_len,
        }
    }

    /// Length of every piece of this blob.
    pub fn piece_len(&self) -> u64 {
        let l = self.layout();
        BLOB_HEADER_LEN as u64 + l.stripes() * l.record_len()
    }
}

fn aad(name: &BlobName) -> Vec<u8> {
    let mut a = b"gw-mblob1".to_vec();
    a.extend_from_slice(&name.encode());
    a
}

fn mac_key(meta_key: &[u8; 32], name: &BlobName, h: &BlobHeader) -> [u8; 32] {
    let mut m = blake3::Hasher::new_keyed(meta_key);
    m.update(b"gw-mmac1");
    m.update(&name.encode());
    m.update(&h.nonce);
    m.update(&h.k.to_be_bytes());
    m.update(&h.n.to_be_bytes());
    m.update(&h.chunk_size.to_be_bytes());
    m.update(&h.sealed_len.to_be_bytes());
    *m.finalize().as_bytes()
}

/// Seals `plain` as blob `name` and codes it into `n` pieces of which any `k` rebuild it.
pub fn seal_blob(
    meta_key: &[u8; 32],
    name: &BlobName,
    plain: &[u8],
    k: u16,
    n: u16,
) -> Result<Vec<Vec<u8>>, ReplicationError> {
    let mut nonce = [0u8; NONCE_LEN];
    random_bytes(&mut nonce).map_err(|e| ReplicationError::Crypto(e.to_string()))?;
    let sealed = XChaCha20Poly1305::new(meta_key.into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: &aad(name),
            },
        )
        .map_err(|_| ReplicationError::Crypto("sealing failed".into()))?;
    let layout = Layout::fitted(k as usize, n as usize, sealed.len() as u64, MAX_CHUNK);
    let template = BlobHeader {
        k,
        n,
        index: 0,
        chunk_size: layout.chunk_size as u32,
        sealed_len: sealed.len() as u64,
        nonce,
    };
    let mut pieces: Vec<Vec<u8>> = (0..n)
        .map(|index| {
            let mut p = Vec::with_capacity(template.piece_len() as usize);
            p.extend_from_slice(&BlobHeader { index, ..template }.encode());
            p
        })
        .collect();
    let mut encoder = StripeEncoder::new(layout, mac_key(meta_key, name, &template))
        .map_err(|e| ReplicationError::Crypto(e.to_string()))?;
    let stripe = layout.stripe_bytes() as usize;
    if sealed.is_empty() {
        encoder
            .encode(0, &[], &mut pieces)
            .map_err(|e| ReplicationError::Crypto(e.to_string()))?;
    }
    for (s, chunk) in sealed.chunks(stripe).enumerate() {
        encoder
            .encode(s as u64, chunk, &mut pieces)
            .map_err(|e| ReplicationError::Crypto(e.to_string()))?;
    }
    Ok(pieces)
}

/// One decoded write of a blob.
#[derive(Debug)]
pub struct Opened {
    pub plain: Vec<u8>,
    /// Pieces of this write whose every record verified.
    pub intact: usize,
}

/// What [`open_blob`] made of the pieces found.
#[derive(Debug, Default)]
pub struct OpenReport {
    /// Every write that authenticated (usually one).
    pub opened: Vec<Opened>,
    /// Pieces that were not usable: not a blob piece, or failing authentication.
    pub rejected: usize,
    /// The most pieces any write that did not decode had (0 if none).
    pub short_write_pieces: usize,
}

/// Rebuilds blob `name` from pieces found on the nodes (any order, any subset).
pub fn open_blob(meta_key: &[u8; 32], name: &BlobName, pieces: &[Vec<u8>]) -> OpenReport {
    let mut report = OpenReport::default();
    let mut groups: BTreeMap<[u8; NONCE_LEN], (BlobHeader, Vec<&Vec<u8>>)> = BTreeMap::new();
    for p in pieces {
        match BlobHeader::decode(p) {
            Some(h) if p.len() as u64 == h.piece_len() => {
                let g = groups.entry(h.nonce).or_insert((h, Vec::new()));
                // Every piece of one write has the same geometry; a mismatch is an alteration.
                if (g.0.k, g.0.n, g.0.chunk_size, g.0.sealed_len)
                    == (h.k, h.n, h.chunk_size, h.sealed_len)
                {
                    g.1.push(p);
                } else {
                    report.rejected += 1;
                }
            }
            _ => report.rejected += 1,
        }
    }
    for (header, group) in groups.into_values() {
        match open_group(meta_key, name, &header, &group) {
            Ok(opened) => {
                report.rejected += group.len() - opened.intact;
                report.opened.push(opened);
            }
            Err(()) => {
                report.rejected += group.len();
                report.short_write_pieces = report.short_write_pieces.max(group.len());
            }
        }
    }
    report
}

fn open_group(
    meta_key: &[u8; 32],
    name: &BlobName,
    header: &BlobHeader,
    group: &[&Vec<u8>],
) -> Result<Opened, ()> {
    let layout = header.layout();
    let key = mac_key(meta_key, name, header);
    let rl = layout.record_len() as usize;
    let mut bad = vec![false; group.len()];
    let mut decoder = StripeDecoder::new(layout);
    let mut sealed =
        Vec::with_capacity(header.sealed_len as usize + layout.stripe_bytes() as usize);
    for s in 0..layout.stripes() {
        let at = BLOB_HEADER_LEN + s as usize * rl;
        let mut chunks: Vec<(usize, &[u8])> = Vec::with_capacity(layout.k);
        for (i, p) in group.iter().enumerate() {
            let index = BlobHeader::decode(p).map(|h| h.index).ok_or(())?;
            let record = &p[at..at + rl];
            if verify_record(&key, index, s, record) {
                chunks.push((index as usize, &record[..rl - CHUNK_MAC_LEN]));
            } else {
                bad[i] = true;
            }
        }
        decoder.decode(&chunks, &mut sealed).map_err(|_| ())?;
    }
    sealed.truncate(header.sealed_len as usize);
    let plain = XChaCha20Poly1305::new(meta_key.into())
        .decrypt(
            XNonce::from_slice(&header.nonce),
            Payload {
                msg: &sealed,
                aad: &aad(name),
            },
        )
        .map_err(|_| ())?;
    Ok(Opened {
        plain,
        intact: bad.iter().filter(|b| !**b).count(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn any_k_pieces_open_and_damage_is_an_erasure() {
        let name = BlobName::log(5);
        let plain: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        let pieces = seal_blob(&KEY, &name, &plain, 2, 4).unwrap();
        assert_eq!(pieces.len(), 4);
        for (a, b) in [(0, 1), (0, 3), (2, 3), (1, 2)] {
            let r = open_blob(&KEY, &name, &[pieces[a].clone(), pieces[b].clone()]);
            assert_eq!(r.opened.len(), 1);
            assert_eq!(r.opened[0].plain, plain);
        }
        // Flip a byte in one stripe of piece 0 and another stripe of piece 1: each stripe
        // still has two good chunks of four.
        let mut damaged = pieces.clone();
        damaged[0][BLOB_HEADER_LEN + 10] ^= 1;
        let last = damaged[1].len() - 40;
        damaged[1][last] ^= 1;
        let r = open_blob(&KEY, &name, &damaged);
        assert_eq!(r.opened[0].plain, plain);
        assert_eq!(r.opened[0].intact, 2);
        assert_eq!(r.rejected, 2);
        // One piece is not enough.
        let r = open_blob(&KEY, &name, &pieces[..1]);
        assert!(r.opened.is_empty());
        assert_eq!(r.short_write_pieces, 1);
    }

    #[test]
    fn wrong_key_name_or_geometry_fails_authentication() {
        let name = BlobName::snapshot(3, 1);
        let pieces = seal_blob(&KEY, &name, b"metadata", 1, 3).unwrap();
        assert_eq!(open_blob(&KEY, &name, &pieces).opened[0].plain, b"metadata");
        assert!(open_blob(&[8; 32], &name, &pieces).opened.is_empty());
        assert!(open_blob(&KEY, &BlobName::snapshot(3, 2), &pieces)
            .opened
            .is_empty());
        let mut altered = pieces[0].clone();
        altered[6..8].copy_from_slice(&2u16.to_be_bytes()); // claims k = 2
        assert!(open_blob(&KEY, &name, &[altered]).opened.is_empty());
    }

    #[test]
    fn rewrites_of_one_name_decode_separately() {
        let name = BlobName::log(1);
        let first = seal_blob(&KEY, &name, b"first", 2, 3).unwrap();
        let second = seal_blob(&KEY, &name, b"second, longer", 2, 3).unwrap();
        // Nodes 0 and 1 got the second write, node 2 kept the first.
        let found = vec![second[0].clone(), second[1].clone(), first[2].clone()];
        let r = open_blob(&KEY, &name, &found);
        assert_eq!(r.opened.len(), 1);
        assert_eq!(r.opened[0].plain, b"second, longer");
        assert_eq!(r.short_write_pieces, 1);
    }

    #[test]
    fn ids_differ_per_node_and_name_but_head_is_key_independent() {
        let a = BlobName::log(1).piece_id(&[1; 32], "n1");
        assert_ne!(a, BlobName::log(1).piece_id(&[2; 32], "n2"));
        assert_ne!(a, BlobName::log(2).piece_id(&[1; 32], "n1"));
        assert_eq!(
            BlobName::HEAD.piece_id(&[1; 32], "n1"),
            BlobName::HEAD.piece_id(&[9; 32], "n1")
        );
        assert_ne!(head_piece_id("n1"), head_piece_id("n2"));
    }
}
