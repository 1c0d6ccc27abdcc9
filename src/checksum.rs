//! S3 additional checksums (`x-amz-checksum-*`): the five algorithms, incremental hashing,
//! the multipart composite and full-object forms, and the strict base64 S3 puts them in.
//!
//! Contract:
//! - [`ChecksumAlgorithm`] is the closed set S3 defines: CRC32 (ISO-HDLC, as zlib), CRC32C
//!   (Castagnoli), CRC64NVME, SHA-1 and SHA-256. Names, header names and the stored
//!   [`ChecksumAlgorithm::id`] are stable; ids are persisted and must never be renumbered.
//! - A [`Checksum`] holds the raw digest: CRCs as big-endian integers of their width (4 or 8
//!   bytes), SHAs as their output. Its base64 form is exactly what AWS SDKs send and S3 returns
//!   (CRC32 of `hello world` is `DUoRhQ==`). [`Checksum::from_base64`] accepts only a strict,
//!   padded RFC 4648 encoding of exactly [`ChecksumAlgorithm::digest_len`] bytes.
//! - [`Hasher`] gives the same digest whatever the split of the input into `update` calls.
//! - [`composite`] is S3's COMPOSITE multipart checksum: the algorithm over the concatenated raw
//!   part digests, base64, then `-<part count>`. [`combine_full_object`] is S3's FULL_OBJECT
//!   multipart checksum: the CRC of the whole object, derived from the part CRCs and lengths
//!   without the data. Which algorithm allows which type follows AWS: CRC32 and CRC32C both,
//!   CRC64NVME only full-object, SHA-1 and SHA-256 only composite; anything else is an error.
//! - [`base64_decode`] is strict RFC 4648 (standard alphabet, `=` padding required, no
//!   whitespace, unused trailing bits zero); the empty string decodes to no bytes.
//! - Nothing here panics on any input; nothing here knows about HTTP.

use std::fmt;

use aws_lc_rs::digest;
use crc_fast::CrcAlgorithm;

/// An S3 additional-checksum algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    /// Every algorithm, in S3's documentation order.
    pub const ALL: [ChecksumAlgorithm; 5] = [
        Self::Crc32,
        Self::Crc32c,
        Self::Crc64Nvme,
        Self::Sha1,
        Self::Sha256,
    ];

    /// The name S3 uses in `x-amz-checksum-algorithm`, `x-amz-sdk-checksum-algorithm` and XML.
    pub fn name(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    /// The algorithm named `s`, ignoring ASCII case.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
    }

    /// The header (and trailer) carrying a value of this algorithm: `x-amz-checksum-crc32`, ...
    pub fn header_name(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// The algorithm whose value header is `h`, ignoring ASCII case. `x-amz-checksum-type`,
    /// `x-amz-checksum-algorithm` and `x-amz-checksum-mode` are not value headers: `None`.
    pub fn from_header_name(h: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.header_name().eq_ignore_ascii_case(h))
    }

    /// Length of the raw digest in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Crc32 | Self::Crc32c => 4,
            Self::Crc64Nvme => 8,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }

    /// Whether this is a CRC (combinable into a full-object checksum).
    pub fn is_crc(self) -> bool {
        self.crc().is_some()
    }

    /// Whether S3 allows this algorithm with a multipart checksum type.
    pub fn supports(self, checksum_type: ChecksumType) -> bool {
        match checksum_type {
            ChecksumType::Composite => self != Self::Crc64Nvme,
            ChecksumType::FullObject => self.is_crc(),
        }
    }

    /// Stable identifier for metadata storage (1..=5). Never renumber.
    pub fn id(self) -> u8 {
        match self {
            Self::Crc32 => 1,
            Self::Crc32c => 2,
            Self::Crc64Nvme => 3,
            Self::Sha1 => 4,
            Self::Sha256 => 5,
        }
    }

    /// The algorithm stored as `id`.
    pub fn from_id(id: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.id() == id)
    }

    fn crc(self) -> Option<CrcAlgorithm> {
        match self {
            Self::Crc32 => Some(CrcAlgorithm::Crc32IsoHdlc),
            Self::Crc32c => Some(CrcAlgorithm::Crc32Iscsi),
            Self::Crc64Nvme => Some(CrcAlgorithm::Crc64Nvme),
            Self::Sha1 | Self::Sha256 => None,
        }
    }
}

impl fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the checksum of a multipart object is formed (`x-amz-checksum-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumType {
    /// A checksum of the part checksums, written `<base64>-<part count>`.
    Composite,
    /// The checksum of the whole object's bytes (CRCs only).
    FullObject,
}

impl ChecksumType {
    /// `COMPOSITE` or `FULL_OBJECT`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Composite => "COMPOSITE",
            Self::FullObject => "FULL_OBJECT",
        }
    }

    /// The id stored in metadata (`StoredChecksum::kind`); permanent.
    pub fn id(self) -> u8 {
        match self {
            Self::FullObject => 1,
            Self::Composite => 2,
        }
    }

    pub fn from_id(id: u8) -> Option<Self> {
        [Self::Composite, Self::FullObject]
            .into_iter()
            .find(|t| t.id() == id)
    }

    /// The type named `s`, ignoring ASCII case.
    pub fn from_name(s: &str) -> Option<Self> {
        [Self::Composite, Self::FullObject]
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for ChecksumType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a checksum could not be decoded or combined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    #[error("the {0} checksum is not valid base64")]
    InvalidBase64(ChecksumAlgorithm),
    #[error("a {algorithm} checksum is {expected} bytes long, not {found}")]
    WrongLength {
        algorithm: ChecksumAlgorithm,
        expected: usize,
        found: usize,
    },
    #[error("a multipart checksum needs at least one part")]
    NoParts,
    #[error("a part carries a {found} checksum where {expected} was expected")]
    AlgorithmMismatch {
        expected: ChecksumAlgorithm,
        found: ChecksumAlgorithm,
    },
    #[error("the {checksum_type} checksum type cannot be used with the {algorithm} algorithm")]
    UnsupportedType {
        algorithm: ChecksumAlgorithm,
        checksum_type: ChecksumType,
    },
}

/// A raw checksum value and its algorithm.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    /// The raw digest ([`ChecksumAlgorithm::digest_len`] bytes; CRCs big-endian).
    pub bytes: Vec<u8>,
}

impl Checksum {
    /// The value as S3 writes it in headers and XML.
    pub fn to_base64(&self) -> String {
        base64_encode(&self.bytes)
    }

    /// Decodes a header, trailer or XML value of algorithm `a`: strict base64 of exactly
    /// `a.digest_len()` bytes.
    pub fn from_base64(a: ChecksumAlgorithm, s: &str) -> Result<Self, ChecksumError> {
        let bytes = base64_decode(s).ok_or(ChecksumError::InvalidBase64(a))?;
        let checksum = Checksum {
            algorithm: a,
            bytes,
        };
        checksum.check_len()?;
        Ok(checksum)
    }

    fn check_len(&self) -> Result<(), ChecksumError> {
        let expected = self.algorithm.digest_len();
        if self.bytes.len() == expected {
            Ok(())
        } else {
            Err(ChecksumError::WrongLength {
                algorithm: self.algorithm,
                expected,
                found: self.bytes.len(),
            })
        }
    }

    /// The CRC as an integer (for combining); `None` for SHAs or a wrong length.
    fn crc_value(&self) -> Option<u64> {
        match self.bytes.len() {
            4 | 8 if self.algorithm.is_crc() => Some(
                self.bytes
                    .iter()
                    .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
            ),
            _ => None,
        }
    }
}

/// Incremental checksum computation.
#[derive(Clone)]
pub struct Hasher {
    algorithm: ChecksumAlgorithm,
    state: HasherState,
}

#[derive(Clone)]
enum HasherState {
    // Boxed: a CRC digest carries its ~300-byte parameter block.
    Crc(Box<crc_fast::Digest>),
    Sha(digest::Context),
}

impl Hasher {
    pub fn new(a: ChecksumAlgorithm) -> Self {
        let state = match (a.crc(), a) {
            (Some(crc), _) => HasherState::Crc(Box::new(crc_fast::Digest::new(crc))),
            (None, ChecksumAlgorithm::Sha1) => {
                HasherState::Sha(digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY))
            }
            (None, _) => HasherState::Sha(digest::Context::new(&digest::SHA256)),
        };
        Hasher {
            algorithm: a,
            state,
        }
    }

    pub fn algorithm(&self) -> ChecksumAlgorithm {
        self.algorithm
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            HasherState::Crc(d) => d.update(data),
            HasherState::Sha(c) => c.update(data),
        }
    }

    pub fn finish(self) -> Checksum {
        let bytes = match self.state {
            HasherState::Crc(d) => {
                let value = d.finalize();
                let be = value.to_be_bytes();
                // The CRC occupies the low `digest_len` bytes of the u64.
                let skip = be.len().saturating_sub(self.algorithm.digest_len());
                be.get(skip..).unwrap_or_default().to_vec()
            }
            HasherState::Sha(c) => c.finish().as_ref().to_vec(),
        };
        Checksum {
            algorithm: self.algorithm,
            bytes,
        }
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The checksum of `data` in one call.
pub fn checksum_of(a: ChecksumAlgorithm, data: &[u8]) -> Checksum {
    let mut h = Hasher::new(a);
    h.update(data);
    h.finish()
}

/// Multipart composite checksum as AWS defines it: hash of the concatenated raw part
/// digests, base64, then "-N".
///
/// Every part must be of algorithm `a` and of the right length; there must be at least one
/// part; `a` must allow the COMPOSITE type (not CRC64NVME).
pub fn composite(a: ChecksumAlgorithm, parts: &[Checksum]) -> Result<String, ChecksumError> {
    if !a.supports(ChecksumType::Composite) {
        return Err(ChecksumError::UnsupportedType {
            algorithm: a,
            checksum_type: ChecksumType::Composite,
        });
    }
    if parts.is_empty() {
        return Err(ChecksumError::NoParts);
    }
    let mut hasher = Hasher::new(a);
    for part in parts {
        check_part(a, part)?;
        hasher.update(&part.bytes);
    }
    Ok(format!("{}-{}", hasher.finish().to_base64(), parts.len()))
}

/// Full-object CRC of a multipart upload from the part CRCs and part lengths, in part order:
/// the CRC the whole object's bytes would have. Each pair is `(part CRC, part length)`.
///
/// Errors for SHA algorithms, for no parts, and for a part of another algorithm or length.
/// Cost is O(log(part length)) small matrix products per part, independent of the data size.
pub fn combine_full_object(
    a: ChecksumAlgorithm,
    parts: &[(Checksum, u64)],
) -> Result<Checksum, ChecksumError> {
    let Some(crc) = a.crc() else {
        return Err(ChecksumError::UnsupportedType {
            algorithm: a,
            checksum_type: ChecksumType::FullObject,
        });
    };
    let mut combined: Option<u64> = None;
    for (part, len) in parts {
        check_part(a, part)?;
        let value = part.crc_value().ok_or(ChecksumError::WrongLength {
            algorithm: a,
            expected: a.digest_len(),
            found: part.bytes.len(),
        })?;
        combined = Some(match combined {
            None => value,
            Some(acc) => crc_fast::checksum_combine(crc, acc, value, *len),
        });
    }
    let value = combined.ok_or(ChecksumError::NoParts)?;
    let be = value.to_be_bytes();
    let skip = be.len().saturating_sub(a.digest_len());
    Ok(Checksum {
        algorithm: a,
        bytes: be.get(skip..).unwrap_or_default().to_vec(),
    })
}

fn check_part(a: ChecksumAlgorithm, part: &Checksum) -> Result<(), ChecksumError> {
    if part.algorithm != a {
        return Err(ChecksumError::AlgorithmMismatch {
            expected: a,
            found: part.algorithm,
        });
    }
    part.check_len()
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with `=` padding (RFC 4648 §4).
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let index = (n >> (18 - 6 * i)) & 0x3f;
                out.push(char::from(ALPHABET[index as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Strict standard base64 (RFC 4648 §4): padding required, no whitespace, unused trailing
/// bits zero. `None` for anything else.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return None;
    }
    let quads = b.len() / 4;
    let mut out = Vec::with_capacity(quads * 3);
    for (i, quad) in b.chunks_exact(4).enumerate() {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 != quads) {
            return None;
        }
        let mut n = 0u32;
        for &c in quad.get(..4 - pad)? {
            n = (n << 6) | u32::from(sextet(c)?);
        }
        n <<= 6 * pad as u32;
        // Non-zero bits below the last whole byte mean a non-canonical encoding.
        if pad > 0 && n & ((1u32 << (8 * pad)) - 1) != 0 {
            return None;
        }
        out.extend_from_slice(n.to_be_bytes().get(1..4 - pad)?);
    }
    Some(out)
}

fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
