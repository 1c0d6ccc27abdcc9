//! The root key, its derived keys, segment keys and their wrapping.

use std::io::Write;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use super::{random_bytes, CryptoError};

pub(super) const KEY_FILE_HEADER: &str = "gateway-root-key v1";
const WRAP_VERSION: u8 = 1;
const WRAP_NONCE_LEN: usize = 24;
/// version byte + nonce + 32-byte key + 16-byte tag.
const WRAPPED_LEN: usize = 1 + WRAP_NONCE_LEN + 32 + 16;

/// The user's 256-bit root key. Everything the gateway encrypts hangs off it.
#[derive(Clone)]
pub struct RootKey([u8; 32]);

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootKey(..)")
    }
}

impl RootKey {
    pub fn generate() -> Result<Self, CryptoError> {
        let mut k = [0u8; 32];
        random_bytes(&mut k)?;
        Ok(RootKey(k))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        RootKey(bytes)
    }

    /// Reads a key file written by [`RootKey::save_new`].
    pub fn load(path: &Path) -> Result<Self, CryptoError> {
        let err = |reason: &str| CryptoError::KeyFile {
            path: path.display().to_string(),
            reason: reason.to_string(),
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(&e.to_string()))?;
        Self::from_key_file_text(&text).map_err(err)
    }

    /// Parses the text of a key file (`gateway-root-key v1`, then 64 hex digits).
    pub(super) fn from_key_file_text(text: &str) -> Result<Self, &'static str> {
        let mut lines = text.lines();
        if lines.next() != Some(KEY_FILE_HEADER) {
            return Err("not a gateway key file (unknown header)");
        }
        let hex = lines.next().unwrap_or("").trim();
        let bytes = decode_hex32(hex).ok_or("key line is not 64 hex digits")?;
        Ok(RootKey(bytes))
    }

    /// The text of a key file holding this key (what [`RootKey::save_new`] writes).
    pub(super) fn key_file_text(&self) -> String {
        format!("{KEY_FILE_HEADER}\n{}\n", encode_hex(&self.0))
    }

    /// The raw key, for the backup formats beside this module only.
    pub(super) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Writes the key to a new file with mode 0600, fsynced. Fails if the file exists:
    /// overwriting a root key would make every stored object unreadable.
    pub fn save_new(&self, path: &Path) -> Result<(), CryptoError> {
        let err = |e: std::io::Error| CryptoError::KeyFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(err)?;
        f.write_all(self.key_file_text().as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        if let Some(dir) = path.parent() {
            if let Ok(d) = std::fs::File::open(dir) {
                d.sync_all().map_err(err)?;
            }
        }
        Ok(())
    }

    /// Key that wraps segment keys.
    pub(crate) fn wrapping_key(&self) -> [u8; 32] {
        blake3::derive_key("gateway 2026-11 segment key wrapping v1", &self.0)
    }

    /// Key that seals metadata blobs (log batches, snapshots, head records) on the nodes.
    pub fn metadata_key(&self) -> [u8; 32] {
        blake3::derive_key("gateway 2026-12 metadata blob v1", &self.0)
    }

    /// A public fingerprint of this key (a one-way derivation): recorded in the metadata and
    /// the nodes' head record so a store is never opened with another key.
    pub fn key_check(&self) -> [u8; 32] {
        blake3::derive_key("gateway 2026-12 root key check v1", &self.0)
    }

    /// Key of the keyed hash that names pieces on one node. Different per node, so nodes
    /// cannot link the pieces of one segment by their names.
    pub fn piece_id_key(&self, node_id: &str) -> [u8; 32] {
        let mut material = Vec::with_capacity(32 + node_id.len());
        material.extend_from_slice(&self.0);
        material.extend_from_slice(node_id.as_bytes());
        blake3::derive_key("gateway 2026-11 piece id v1", &material)
    }
}

/// A fresh random key for exactly one segment.
#[derive(Clone)]
pub struct SegmentKey([u8; 32]);

impl std::fmt::Debug for SegmentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SegmentKey(..)")
    }
}

impl SegmentKey {
    pub fn generate() -> Result<Self, CryptoError> {
        let mut k = [0u8; 32];
        random_bytes(&mut k)?;
        Ok(SegmentKey(k))
    }

    /// The AEAD key for the segment's blocks.
    pub(crate) fn content_key(&self) -> [u8; 32] {
        blake3::derive_key("gateway 2026-11 segment content v1", &self.0)
    }

    /// The key of the MACs over piece chunks of this segment.
    pub fn chunk_mac_key(&self) -> [u8; 32] {
        blake3::derive_key("gateway 2026-11 piece chunk mac v1", &self.0)
    }
}

fn wrap_aad(stream_id: &[u8; 16], segment: u32) -> [u8; 28] {
    let mut aad = [0u8; 28];
    aad[..8].copy_from_slice(b"gw-wrap1");
    aad[8..24].copy_from_slice(stream_id);
    aad[24..].copy_from_slice(&segment.to_be_bytes());
    aad
}

/// Wraps `key` for the segment (`stream_id`, `segment`). Output is versioned.
pub fn wrap_segment_key(
    root: &RootKey,
    key: &SegmentKey,
    stream_id: &[u8; 16],
    segment: u32,
) -> Result<Vec<u8>, CryptoError> {
    let cipher = XChaCha20Poly1305::new((&root.wrapping_key()).into());
    let mut nonce = [0u8; WRAP_NONCE_LEN];
    random_bytes(&mut nonce)?;
    let aad = wrap_aad(stream_id, segment);
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &key.0,
                aad: &aad,
            },
        )
        .map_err(|_| CryptoError::Authentication)?;
    let mut out = Vec::with_capacity(WRAPPED_LEN);
    out.push(WRAP_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Reverses [`wrap_segment_key`]; fails if the wrapped key was altered or belongs to another
/// segment.
pub fn unwrap_segment_key(
    root: &RootKey,
    wrapped: &[u8],
    stream_id: &[u8; 16],
    segment: u32,
) -> Result<SegmentKey, CryptoError> {
    let (&version, rest) = wrapped
        .split_first()
        .ok_or(CryptoError::WrappedKeyMalformed)?;
    if version != WRAP_VERSION {
        return Err(CryptoError::WrappedKeyVersion(version));
    }
    if wrapped.len() != WRAPPED_LEN {
        return Err(CryptoError::WrappedKeyMalformed);
    }
    let (nonce, ct) = rest.split_at(WRAP_NONCE_LEN);
    let cipher = XChaCha20Poly1305::new((&root.wrapping_key()).into());
    let aad = wrap_aad(stream_id, segment);
    let pt = cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
        .map_err(|_| CryptoError::Authentication)?;
    let bytes: [u8; 32] = pt
        .as_slice()
        .try_into()
        .map_err(|_| CryptoError::WrappedKeyMalformed)?;
    Ok(SegmentKey(bytes))
}

pub(crate) fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Decodes lowercase or uppercase hex; `None` on odd length or a non-hex digit.
pub(crate) fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let raw = s.as_bytes();
    if !raw.len().is_multiple_of(2) {
        return None;
    }
    raw.chunks_exact(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

pub(crate) fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    decode_hex(s)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_round_trip_and_binding() {
        let root = RootKey::generate().unwrap();
        let key = SegmentKey::generate().unwrap();
        let sid = [7u8; 16];
        let w = wrap_segment_key(&root, &key, &sid, 3).unwrap();
        let back = unwrap_segment_key(&root, &w, &sid, 3).unwrap();
        assert_eq!(back.0, key.0);
        // Another segment index, another stream, another root: all refuse.
        assert!(unwrap_segment_key(&root, &w, &sid, 4).is_err());
        assert!(unwrap_segment_key(&root, &w, &[8u8; 16], 3).is_err());
        let other = RootKey::generate().unwrap();
        assert!(unwrap_segment_key(&other, &w, &sid, 3).is_err());
        // A flipped bit anywhere refuses.
        for i in 1..w.len() {
            let mut bad = w.clone();
            bad[i] ^= 1;
            assert!(
                unwrap_segment_key(&root, &bad, &sid, 3).is_err(),
                "byte {i}"
            );
        }
        // Two wraps of the same key differ (random nonce).
        let w2 = wrap_segment_key(&root, &key, &sid, 3).unwrap();
        assert_ne!(w, w2);
    }

    #[test]
    fn key_file_round_trip_mode_and_no_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        let root = RootKey::generate().unwrap();
        root.save_new(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(RootKey::load(&path).unwrap().0, root.0);
        assert!(root.save_new(&path).is_err());
        std::fs::write(&path, "garbage\n").unwrap();
        assert!(RootKey::load(&path).is_err());
    }

    #[test]
    fn debug_hides_key_material() {
        let root = RootKey::from_bytes([0xab; 32]);
        assert!(!format!("{root:?}").contains("ab"));
        let key = SegmentKey([0xcd; 32]);
        assert!(!format!("{key:?}").contains("cd"));
    }

    #[test]
    fn piece_id_keys_differ_per_node() {
        let root = RootKey::from_bytes([1; 32]);
        assert_ne!(root.piece_id_key("n1"), root.piece_id_key("n2"));
        assert_eq!(root.piece_id_key("n1"), root.piece_id_key("n1"));
    }
}
