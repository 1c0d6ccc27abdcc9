//! Keys and encryption.
//!
//! Contract:
//! - The user's [`RootKey`] (256 bits) never leaves the gateway. Everything else is derived
//!   from it with BLAKE3's key derivation under fixed context strings, one per purpose
//!   ([`RootKey::wrapping_key`], [`RootKey::piece_id_key`]).
//! - Every segment gets a fresh random [`SegmentKey`]. It is stored only wrapped
//!   ([`wrap_segment_key`]): XChaCha20-Poly1305 under the wrapping key with a random 192-bit
//!   nonce and the segment's identity (stream id, segment index) as associated data, so a
//!   wrapped key moved to another segment fails to unwrap.
//! - Segment content is encrypted by [`BlockCipher`] in blocks of a fixed plaintext size with
//!   an AEAD (AES-256-GCM from aws-lc-rs, or ChaCha20-Poly1305). The nonce is the block index;
//!   since a segment key encrypts exactly one segment, a (key, nonce) pair never repeats. The
//!   associated data binds the format version, stream id, segment index, block index and a
//!   last-block flag: reordered, dropped, duplicated or truncated blocks fail authentication.
//!   A segment always has at least one block (an empty segment is one empty block), so even
//!   total truncation is detected.
//! - Chunk MACs for pieces use a key derived from the segment key ([`SegmentKey::chunk_mac_key`]);
//!   a storage node cannot forge a chunk that verifies.
//! - Key material is never formatted: `Debug` of key types prints nothing secret.
//! - Root key backups (the plain and passphrase-wrapped key files) are [`backup`]'s, with
//!   their own contract.

pub mod backup;
mod block;
mod keys;

pub use block::{ciphertext_len, plain_block_count, BlockCipher};
pub(crate) use keys::{decode_hex, decode_hex32, encode_hex};
pub use keys::{unwrap_segment_key, wrap_segment_key, RootKey, SegmentKey};

/// Bytes of authentication tag appended to every encrypted block.
pub const TAG_LEN: usize = 16;

/// The AEAD used for an object's blocks; recorded per object so both can be read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CipherSuite {
    /// AES-256-GCM via aws-lc-rs (hardware AES where the CPU has it).
    Aes256Gcm,
    /// ChaCha20-Poly1305 (RustCrypto), the portable suite.
    ChaCha20Poly1305,
}

impl CipherSuite {
    /// The id stored in metadata.
    pub fn id(self) -> u8 {
        match self {
            CipherSuite::Aes256Gcm => 1,
            CipherSuite::ChaCha20Poly1305 => 2,
        }
    }

    pub fn from_id(id: u8) -> Result<Self, CryptoError> {
        match id {
            1 => Ok(CipherSuite::Aes256Gcm),
            2 => Ok(CipherSuite::ChaCha20Poly1305),
            other => Err(CryptoError::UnknownSuite(other)),
        }
    }

    /// Parses the config spelling (`aes-256-gcm`, `chacha20-poly1305`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "aes-256-gcm" => Some(CipherSuite::Aes256Gcm),
            "chacha20-poly1305" => Some(CipherSuite::ChaCha20Poly1305),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("authentication failed: data was corrupted or tampered with")]
    Authentication,
    #[error("unknown cipher suite id {0}")]
    UnknownSuite(u8),
    #[error("wrapped key has unsupported format version {0}")]
    WrappedKeyVersion(u8),
    #[error("wrapped key is malformed")]
    WrappedKeyMalformed,
    #[error("system random number generator failed")]
    Random,
    #[error("key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
}

/// Fills `buf` from the operating system's CSPRNG (via aws-lc-rs).
pub fn random_bytes(buf: &mut [u8]) -> Result<(), CryptoError> {
    aws_lc_rs::rand::fill(buf).map_err(|_| CryptoError::Random)
}
