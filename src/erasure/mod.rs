//! Erasure coding: schemes, the stripe layout of a segment, and the piece format.
//!
//! Contract:
//! - A segment's ciphertext (see `crypto`) is cut into stripes of `k * chunk_size` bytes (the
//!   last stripe zero-padded). Data chunk `i` of stripe `s` is ciphertext bytes
//!   `[s*k*chunk + i*chunk, +chunk)`; Reed-Solomon (reed-solomon-simd) adds `n - k` parity
//!   chunks per stripe. Piece `i` is the sequence of chunk `i` of every stripe, so a byte range
//!   of the segment needs only the matching stripes of any `k` pieces, and when all data
//!   pieces `0..k` are present nothing is decoded at all.
//! - Every chunk in a piece is followed by a 32-byte keyed BLAKE3 MAC binding the piece
//!   number, the stripe index and the chunk size (see [`piece`]); a chunk whose MAC fails is
//!   treated as an erasure, since Reed-Solomon cannot locate errors by itself.
//! - Pieces start with a versioned header ([`piece::PieceHeader`]).

pub mod codec;
pub mod piece;

pub use codec::{StripeDecoder, StripeEncoder};
pub use piece::{PieceHeader, CHUNK_MAC_LEN, PIECE_HEADER_LEN};

/// Storj-style redundancy scheme: any `minimum` pieces rebuild a segment, repair is due below
/// `repair`, an upload succeeds with `success` durable pieces and starts `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheme {
    pub minimum: u16,
    pub repair: u16,
    pub success: u16,
    pub total: u16,
}

impl Scheme {
    /// Checks `1 <= minimum <= repair <= success <= total` and the coder's limits.
    pub fn validate(&self) -> Result<(), String> {
        let Scheme {
            minimum,
            repair,
            success,
            total,
        } = *self;
        if minimum == 0 {
            return Err("minimum must be at least 1".into());
        }
        if !(minimum <= repair && repair <= success && success <= total) {
            return Err(format!(
                "must satisfy minimum <= repair <= success <= total, got {minimum}/{repair}/{success}/{total}"
            ));
        }
        if total > 255 {
            return Err(format!("total must be at most 255, got {total}"));
        }
        if total > minimum
            && !reed_solomon_simd::ReedSolomonEncoder::supports(
                minimum as usize,
                (total - minimum) as usize,
            )
        {
            return Err(format!(
                "{minimum} data + {} parity pieces is not supported by the coder",
                total - minimum
            ));
        }
        Ok(())
    }
}

/// The embedded default, 4/5/6/6: any 4 of 6 pieces rebuild a segment, repair below 5.
impl Default for Scheme {
    fn default() -> Self {
        Scheme {
            minimum: 4,
            repair: 5,
            success: 6,
            total: 6,
        }
    }
}

/// Storj notation `minimum/repair/success/total`, e.g. `4/5/6/6`, validated.
impl std::str::FromStr for Scheme {
    type Err = String;

    fn from_str(s: &str) -> Result<Scheme, String> {
        let malformed = || format!("{s:?} is not minimum/repair/success/total, e.g. \"4/5/6/6\"");
        let nums: Vec<u16> = s
            .split('/')
            .map(|p| p.trim().parse::<u16>())
            .collect::<Result<_, _>>()
            .map_err(|_| malformed())?;
        let [minimum, repair, success, total] = nums[..] else {
            return Err(malformed());
        };
        let scheme = Scheme {
            minimum,
            repair,
            success,
            total,
        };
        scheme.validate()?;
        Ok(scheme)
    }
}

/// In JSON (the admin API) a scheme is its Storj notation string.
impl serde::Serialize for Scheme {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Scheme {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.minimum, self.repair, self.success, self.total
        )
    }
}

/// Geometry of one stored segment: `k` data pieces of `n`, `chunk_size` bytes per piece per
/// stripe, `stripes` stripes covering `cipher_len` bytes of ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub k: usize,
    pub n: usize,
    pub chunk_size: usize,
    pub cipher_len: u64,
}

impl Layout {
    /// The layout for a segment whose ciphertext length is known: chunks of `max_chunk`, or
    /// smaller when the whole segment fits one stripe (small objects do not pay for a full
    /// stripe of padding). `max_chunk` must be even.
    pub fn fitted(k: usize, n: usize, cipher_len: u64, max_chunk: usize) -> Layout {
        let per_piece = cipher_len.div_ceil(k as u64) as usize;
        let chunk_size = if per_piece < max_chunk {
            // reed-solomon-simd wants even, non-zero shard sizes.
            (per_piece + per_piece % 2).max(2)
        } else {
            max_chunk
        };
        Layout {
            k,
            n,
            chunk_size,
            cipher_len,
        }
    }

    pub fn stripe_bytes(&self) -> u64 {
        (self.k * self.chunk_size) as u64
    }

    pub fn stripes(&self) -> u64 {
        self.cipher_len.div_ceil(self.stripe_bytes()).max(1)
    }

    /// Bytes of one chunk record in a piece (data followed by its MAC).
    pub fn record_len(&self) -> u64 {
        (self.chunk_size + CHUNK_MAC_LEN) as u64
    }

    /// Size of each piece file.
    pub fn piece_len(&self) -> u64 {
        PIECE_HEADER_LEN as u64 + self.stripes() * self.record_len()
    }

    /// Byte offset in a piece of the record of `stripe`.
    pub fn record_offset(&self, stripe: u64) -> u64 {
        PIECE_HEADER_LEN as u64 + stripe * self.record_len()
    }

    /// The stripes `[first, last]` holding ciphertext bytes `[start, end)` (`end > start`).
    pub fn stripes_for(&self, start: u64, end: u64) -> (u64, u64) {
        let sb = self.stripe_bytes();
        (start / sb, (end.max(start + 1) - 1) / sb)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error("reed-solomon: {0}")]
    Coder(#[from] reed_solomon_simd::Error),
    #[error("not enough intact pieces to decode: have {have}, need {need}")]
    NotEnoughPieces { have: usize, need: usize },
    #[error("piece header: {0}")]
    BadHeader(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_validation() {
        let ok = Scheme {
            minimum: 4,
            repair: 5,
            success: 6,
            total: 6,
        };
        assert!(ok.validate().is_ok());
        let storj = Scheme {
            minimum: 29,
            repair: 35,
            success: 80,
            total: 110,
        };
        assert!(storj.validate().is_ok());
        let bad = Scheme {
            minimum: 4,
            repair: 3,
            success: 6,
            total: 6,
        };
        assert!(bad.validate().is_err());
        let zero = Scheme {
            minimum: 0,
            repair: 0,
            success: 0,
            total: 1,
        };
        assert!(zero.validate().is_err());
    }

    #[test]
    fn layout_geometry() {
        let l = Layout::fitted(4, 6, 100, 65536);
        assert_eq!(l.chunk_size, 26);
        assert_eq!(l.stripes(), 1);
        let l = Layout::fitted(3, 5, 7, 65536);
        assert_eq!(l.chunk_size, 4);
        let big = Layout::fitted(4, 6, 4 * 65536 * 3 + 1, 65536);
        assert_eq!(big.chunk_size, 65536);
        assert_eq!(big.stripes(), 4);
        assert_eq!(
            big.piece_len(),
            PIECE_HEADER_LEN as u64 + 4 * (65536 + 32) as u64
        );
        assert_eq!(big.stripes_for(0, 1), (0, 0));
        assert_eq!(big.stripes_for(4 * 65536 - 1, 4 * 65536 + 1), (0, 1));
    }
}
