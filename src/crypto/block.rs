//! The block AEAD stream of one segment.
//!
//! Layout: the segment's plaintext is cut into blocks of `block_size` bytes (the last may be
//! shorter, and an empty segment is one empty block); block `i` becomes
//! `AEAD(content_key, nonce = i, aad, plaintext) || tag`, so ciphertext block `i` starts at
//! `i * (block_size + TAG_LEN)`. The nonce is 96 bits: four zero bytes, then `i` as a
//! big-endian u64. The associated data is
//! `"gw-blk1" || stream_id (16) || segment index (u32 BE) || block index (u64 BE) || last (u8)`.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;

use super::{CipherSuite, CryptoError, SegmentKey, TAG_LEN};

enum Engine {
    Aes(LessSafeKey),
    ChaCha(Box<ChaCha20Poly1305>),
}

/// Encrypts or decrypts the blocks of one segment.
pub struct BlockCipher {
    engine: Engine,
    stream_id: [u8; 16],
    segment: u32,
}

/// Number of plaintext blocks a segment of `plain_len` bytes has (at least one).
pub fn plain_block_count(plain_len: u64, block_size: u32) -> u64 {
    plain_len.div_ceil(u64::from(block_size)).max(1)
}

/// Ciphertext length of a segment of `plain_len` bytes.
pub fn ciphertext_len(plain_len: u64, block_size: u32) -> u64 {
    plain_len + plain_block_count(plain_len, block_size) * TAG_LEN as u64
}

impl BlockCipher {
    pub fn new(
        suite: CipherSuite,
        key: &SegmentKey,
        stream_id: [u8; 16],
        segment: u32,
    ) -> Result<Self, CryptoError> {
        let content_key = key.content_key();
        let engine = match suite {
            CipherSuite::Aes256Gcm => {
                let unbound = UnboundKey::new(&AES_256_GCM, &content_key)
                    .map_err(|_| CryptoError::Authentication)?;
                Engine::Aes(LessSafeKey::new(unbound))
            }
            CipherSuite::ChaCha20Poly1305 => {
                Engine::ChaCha(Box::new(ChaCha20Poly1305::new((&content_key).into())))
            }
        };
        Ok(BlockCipher {
            engine,
            stream_id,
            segment,
        })
    }

    fn nonce(index: u64) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&index.to_be_bytes());
        n
    }

    fn aad(&self, index: u64, last: bool) -> [u8; 36] {
        let mut a = [0u8; 36];
        a[..7].copy_from_slice(b"gw-blk1");
        a[7..23].copy_from_slice(&self.stream_id);
        a[23..27].copy_from_slice(&self.segment.to_be_bytes());
        a[27..35].copy_from_slice(&index.to_be_bytes());
        a[35] = u8::from(last);
        a
    }

    /// Appends the encryption of block `index` (plaintext `plain`) to `out`.
    pub fn seal(
        &self,
        index: u64,
        last: bool,
        plain: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        let start = out.len();
        out.extend_from_slice(plain);
        let aad = self.aad(index, last);
        let nonce = Self::nonce(index);
        let tag: [u8; TAG_LEN] = match &self.engine {
            Engine::Aes(k) => {
                let tag = k
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(&aad[..]),
                        &mut out[start..],
                    )
                    .map_err(|_| CryptoError::Authentication)?;
                let mut t = [0u8; TAG_LEN];
                t.copy_from_slice(tag.as_ref());
                t
            }
            Engine::ChaCha(c) => c
                .encrypt_in_place_detached((&nonce).into(), &aad, &mut out[start..])
                .map_err(|_| CryptoError::Authentication)?
                .into(),
        };
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// Appends the decryption of ciphertext block `index` (`sealed` = data || tag) to `out`.
    /// On failure nothing is appended.
    pub fn open(
        &self,
        index: u64,
        last: bool,
        sealed: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        if sealed.len() < TAG_LEN {
            return Err(CryptoError::Authentication);
        }
        let (ct, tag) = sealed.split_at(sealed.len() - TAG_LEN);
        let start = out.len();
        let aad = self.aad(index, last);
        let nonce = Self::nonce(index);
        let ok = match &self.engine {
            Engine::Aes(k) => {
                out.resize(start + ct.len(), 0);
                k.open_separate_gather(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(&aad[..]),
                    ct,
                    tag,
                    &mut out[start..],
                )
                .is_ok()
            }
            Engine::ChaCha(c) => {
                out.extend_from_slice(ct);
                c.decrypt_in_place_detached((&nonce).into(), &aad, &mut out[start..], tag.into())
                    .is_ok()
            }
        };
        if !ok {
            out.truncate(start);
            return Err(CryptoError::Authentication);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both() -> [CipherSuite; 2] {
        [CipherSuite::Aes256Gcm, CipherSuite::ChaCha20Poly1305]
    }

    #[test]
    fn round_trip_and_binding() {
        for suite in both() {
            let key = SegmentKey::generate().unwrap();
            let c = BlockCipher::new(suite, &key, [1; 16], 0).unwrap();
            let mut sealed = Vec::new();
            c.seal(5, true, b"hello world", &mut sealed).unwrap();
            assert_eq!(sealed.len(), 11 + TAG_LEN);
            assert_ne!(&sealed[..11], b"hello world");
            let mut out = Vec::new();
            c.open(5, true, &sealed, &mut out).unwrap();
            assert_eq!(out, b"hello world");
            // Wrong index, wrong last flag, wrong segment, wrong stream: all refused.
            let mut out = Vec::new();
            assert!(c.open(4, true, &sealed, &mut out).is_err());
            assert!(c.open(5, false, &sealed, &mut out).is_err());
            let other_seg = BlockCipher::new(suite, &key, [1; 16], 1).unwrap();
            assert!(other_seg.open(5, true, &sealed, &mut out).is_err());
            let other_stream = BlockCipher::new(suite, &key, [2; 16], 0).unwrap();
            assert!(other_stream.open(5, true, &sealed, &mut out).is_err());
            assert!(out.is_empty());
            // Any flipped bit refuses.
            for i in 0..sealed.len() {
                let mut bad = sealed.clone();
                bad[i] ^= 0x80;
                assert!(c.open(5, true, &bad, &mut out).is_err());
            }
            assert!(c.open(5, true, &sealed[..TAG_LEN - 1], &mut out).is_err());
        }
    }

    #[test]
    fn empty_block_authenticates() {
        for suite in both() {
            let key = SegmentKey::generate().unwrap();
            let c = BlockCipher::new(suite, &key, [0; 16], 9).unwrap();
            let mut sealed = Vec::new();
            c.seal(0, true, b"", &mut sealed).unwrap();
            assert_eq!(sealed.len(), TAG_LEN);
            let mut out = Vec::new();
            c.open(0, true, &sealed, &mut out).unwrap();
            assert!(out.is_empty());
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(plain_block_count(0, 16), 1);
        assert_eq!(plain_block_count(16, 16), 1);
        assert_eq!(plain_block_count(17, 16), 2);
        assert_eq!(ciphertext_len(0, 16), 16);
        assert_eq!(ciphertext_len(17, 16), 17 + 32);
    }
}
