//! The piece format, version 1.
//!
//! ```text
//! header (32 bytes):  magic "GWPC" | version u16 = 1 | header_len u16 = 32 |
//!                     chunk_size u32 | mac_len u16 = 32 | 18 zero bytes      (big-endian)
//! records:            for each stripe s: chunk data (chunk_size bytes) | MAC (32 bytes)
//! MAC = BLAKE3-keyed(segment chunk-MAC key,
//!                    "gwchunk1" | piece number u16 | stripe u64 | chunk_size u32 | data)
//! ```
//! The header is not secret and not authenticated: the gateway takes the geometry from its
//! own metadata and only checks the header agrees. The MAC makes every chunk verifiable on its
//! own, so a partial (range) read is verified without reading the rest of the piece, and a
//! node cannot swap chunks between stripes or pieces.

use super::ErasureError;

pub const PIECE_HEADER_LEN: usize = 32;
pub const CHUNK_MAC_LEN: usize = 32;
const MAGIC: &[u8; 4] = b"GWPC";
pub const PIECE_FORMAT_VERSION: u16 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PieceHeader {
    pub chunk_size: u32,
}

impl PieceHeader {
    pub fn encode(&self) -> [u8; PIECE_HEADER_LEN] {
        let mut h = [0u8; PIECE_HEADER_LEN];
        h[..4].copy_from_slice(MAGIC);
        h[4..6].copy_from_slice(&PIECE_FORMAT_VERSION.to_be_bytes());
        h[6..8].copy_from_slice(&(PIECE_HEADER_LEN as u16).to_be_bytes());
        h[8..12].copy_from_slice(&self.chunk_size.to_be_bytes());
        h[12..14].copy_from_slice(&(CHUNK_MAC_LEN as u16).to_be_bytes());
        h
    }

    pub fn decode(bytes: &[u8]) -> Result<PieceHeader, ErasureError> {
        let bad = |m: &str| ErasureError::BadHeader(m.to_string());
        if bytes.len() < PIECE_HEADER_LEN {
            return Err(bad("too short"));
        }
        if &bytes[..4] != MAGIC {
            return Err(bad("bad magic"));
        }
        let version = u16::from_be_bytes([bytes[4], bytes[5]]);
        if version != PIECE_FORMAT_VERSION {
            return Err(bad(&format!("unsupported version {version}")));
        }
        let header_len = u16::from_be_bytes([bytes[6], bytes[7]]);
        let mac_len = u16::from_be_bytes([bytes[12], bytes[13]]);
        if header_len as usize != PIECE_HEADER_LEN || mac_len as usize != CHUNK_MAC_LEN {
            return Err(bad("unexpected header or MAC length"));
        }
        let chunk_size = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        Ok(PieceHeader { chunk_size })
    }
}

/// The MAC of chunk `data` of piece `piece` in stripe `stripe`.
pub fn chunk_mac(mac_key: &[u8; 32], piece: u16, stripe: u64, data: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(mac_key);
    h.update(b"gwchunk1");
    h.update(&piece.to_be_bytes());
    h.update(&stripe.to_be_bytes());
    h.update(&(data.len() as u32).to_be_bytes());
    h.update(data);
    *h.finalize().as_bytes()
}

/// Checks a chunk record (data followed by MAC); constant-time comparison via blake3's `Hash`.
pub fn verify_record(mac_key: &[u8; 32], piece: u16, stripe: u64, record: &[u8]) -> bool {
    if record.len() < CHUNK_MAC_LEN {
        return false;
    }
    let (data, mac) = record.split_at(record.len() - CHUNK_MAC_LEN);
    let Ok(mac) = <[u8; 32]>::try_from(mac) else {
        return false;
    };
    let expected = blake3::Hash::from(chunk_mac(mac_key, piece, stripe, data));
    expected == blake3::Hash::from(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_rejects() {
        let h = PieceHeader { chunk_size: 65536 };
        let bytes = h.encode();
        assert_eq!(PieceHeader::decode(&bytes).unwrap(), h);
        let mut bad = bytes;
        bad[0] = b'X';
        assert!(PieceHeader::decode(&bad).is_err());
        let mut v2 = bytes;
        v2[5] = 2;
        assert!(PieceHeader::decode(&v2).is_err());
        assert!(PieceHeader::decode(&bytes[..10]).is_err());
    }

    #[test]
    fn mac_binds_everything() {
        let key = [3u8; 32];
        let mut rec = b"chunk data".to_vec();
        rec.extend_from_slice(&chunk_mac(&key, 1, 7, b"chunk data"));
        assert!(verify_record(&key, 1, 7, &rec));
        assert!(!verify_record(&key, 2, 7, &rec));
        assert!(!verify_record(&key, 1, 8, &rec));
        assert!(!verify_record(&[4u8; 32], 1, 7, &rec));
        let mut bad = rec.clone();
        bad[0] ^= 1;
        assert!(!verify_record(&key, 1, 7, &bad));
        assert!(!verify_record(&key, 1, 7, &rec[..20]));
    }
}
