//! Stripe encoding and decoding (reed-solomon-simd), producing and consuming piece records.

use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

use super::piece::{chunk_mac, CHUNK_MAC_LEN};
use super::{ErasureError, Layout};

/// Turns stripes of ciphertext into one record (chunk + MAC) per piece.
pub struct StripeEncoder {
    layout: Layout,
    mac_key: [u8; 32],
    coder: Option<ReedSolomonEncoder>,
    padded: Vec<u8>,
}

impl StripeEncoder {
    pub fn new(layout: Layout, mac_key: [u8; 32]) -> Result<Self, ErasureError> {
        let coder = if layout.n > layout.k {
            Some(ReedSolomonEncoder::new(
                layout.k,
                layout.n - layout.k,
                layout.chunk_size,
            )?)
        } else {
            None
        };
        Ok(StripeEncoder {
            layout,
            mac_key,
            coder,
            padded: Vec::new(),
        })
    }

    /// Encodes stripe `stripe` from `data` (at most `k * chunk_size` bytes; a short final
    /// stripe is zero-padded) and appends each piece's record to `out[piece]`.
    pub fn encode(
        &mut self,
        stripe: u64,
        data: &[u8],
        out: &mut [Vec<u8>],
    ) -> Result<(), ErasureError> {
        let Layout {
            k, n, chunk_size, ..
        } = self.layout;
        debug_assert!(data.len() <= k * chunk_size && out.len() == n);
        let data = if data.len() < k * chunk_size {
            self.padded.clear();
            self.padded.extend_from_slice(data);
            self.padded.resize(k * chunk_size, 0);
            &self.padded[..]
        } else {
            data
        };
        for (i, chunk) in data.chunks_exact(chunk_size).enumerate() {
            push_record(&mut out[i], &self.mac_key, i, stripe, chunk);
        }
        if let Some(coder) = self.coder.as_mut() {
            for chunk in data.chunks_exact(chunk_size) {
                coder.add_original_shard(chunk)?;
            }
            let result = coder.encode()?;
            for (j, parity) in result.recovery_iter().enumerate() {
                push_record(&mut out[k + j], &self.mac_key, k + j, stripe, parity);
            }
        }
        Ok(())
    }
}

fn push_record(out: &mut Vec<u8>, mac_key: &[u8; 32], piece: usize, stripe: u64, chunk: &[u8]) {
    out.reserve(chunk.len() + CHUNK_MAC_LEN);
    out.extend_from_slice(chunk);
    out.extend_from_slice(&chunk_mac(mac_key, piece as u16, stripe, chunk));
}

/// Rebuilds the data chunks of stripes from any `k` verified chunks.
pub struct StripeDecoder {
    layout: Layout,
    coder: Option<ReedSolomonDecoder>,
}

impl StripeDecoder {
    pub fn new(layout: Layout) -> Self {
        StripeDecoder {
            layout,
            coder: None,
        }
    }

    /// Appends the `k * chunk_size` data bytes of one stripe to `out`, from `chunks`:
    /// (piece number, verified chunk data) pairs, at least `k` of them.
    pub fn decode(
        &mut self,
        chunks: &[(usize, &[u8])],
        out: &mut Vec<u8>,
    ) -> Result<(), ErasureError> {
        let Layout {
            k, n, chunk_size, ..
        } = self.layout;
        let mut data: Vec<Option<&[u8]>> = vec![None; k];
        let mut have = 0;
        for &(piece, chunk) in chunks {
            if piece < k && data[piece].is_none() {
                data[piece] = Some(chunk);
                have += 1;
            }
        }
        if have == k {
            for chunk in data.into_iter().flatten() {
                out.extend_from_slice(chunk);
            }
            return Ok(());
        }
        let distinct = chunks
            .iter()
            .map(|c| c.0)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        if distinct < k || n == k {
            return Err(ErasureError::NotEnoughPieces {
                have: distinct,
                need: k,
            });
        }
        let coder = match self.coder.as_mut() {
            Some(c) => {
                c.reset(k, n - k, chunk_size)?;
                c
            }
            None => self
                .coder
                .insert(ReedSolomonDecoder::new(k, n - k, chunk_size)?),
        };
        let mut used = std::collections::BTreeSet::new();
        for &(piece, chunk) in chunks {
            if !used.insert(piece) {
                continue;
            }
            if piece < k {
                coder.add_original_shard(piece, chunk)?;
            } else if piece < n {
                coder.add_recovery_shard(piece - k, chunk)?;
            }
        }
        let result = coder.decode()?;
        for (i, slot) in data.iter().enumerate() {
            match slot {
                Some(chunk) => out.extend_from_slice(chunk),
                None => {
                    let restored =
                        result
                            .restored_original(i)
                            .ok_or(ErasureError::NotEnoughPieces {
                                have: distinct,
                                need: k,
                            })?;
                    out.extend_from_slice(restored);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::piece::verify_record;
    use super::*;

    fn encode_all(layout: Layout, data: &[u8], key: [u8; 32]) -> Vec<Vec<u8>> {
        let mut enc = StripeEncoder::new(layout, key).unwrap();
        let mut out = vec![Vec::new(); layout.n];
        for (s, stripe) in data.chunks(layout.k * layout.chunk_size).enumerate() {
            enc.encode(s as u64, stripe, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn any_k_pieces_rebuild() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let layout = Layout::fitted(3, 5, data.len() as u64, 1024);
        let key = [9u8; 32];
        let pieces = encode_all(layout, &data, key);
        let rl = layout.record_len() as usize;
        assert!(pieces
            .iter()
            .all(|p| p.len() == rl * layout.stripes() as usize));
        // Every k-subset of 5 pieces.
        for mask in 0u32..32 {
            if mask.count_ones() != 3 {
                continue;
            }
            let mut dec = StripeDecoder::new(layout);
            let mut out = Vec::new();
            for s in 0..layout.stripes() as usize {
                let chunks: Vec<(usize, &[u8])> = (0..5)
                    .filter(|p| mask & (1 << p) != 0)
                    .map(|p| {
                        let rec = &pieces[p][s * rl..(s + 1) * rl];
                        assert!(verify_record(&key, p as u16, s as u64, rec));
                        (p, &rec[..layout.chunk_size])
                    })
                    .collect();
                dec.decode(&chunks, &mut out).unwrap();
            }
            assert_eq!(&out[..data.len()], &data[..], "mask {mask:b}");
            assert!(out[data.len()..].iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn one_decoder_serves_a_different_subset_per_stripe() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 13 + i / 7) as u8).collect();
        let layout = Layout::fitted(4, 6, data.len() as u64, 512);
        let pieces = encode_all(layout, &data, [1; 32]);
        let (rl, cs) = (layout.record_len() as usize, layout.chunk_size);
        // Stripes alternate between the data pieces (no decoding) and subsets with one or two
        // data chunks missing, as per-stripe erasures produce.
        let subsets: [&[usize]; 5] = [
            &[0, 1, 2, 3],
            &[0, 1, 3, 4],
            &[1, 2, 4, 5],
            &[0, 1, 2, 3],
            &[0, 2, 3, 5],
        ];
        let mut dec = StripeDecoder::new(layout);
        let mut out = Vec::new();
        for s in 0..layout.stripes() as usize {
            let chunks: Vec<(usize, &[u8])> = subsets[s % subsets.len()]
                .iter()
                .map(|&p| (p, &pieces[p][s * rl..s * rl + cs]))
                .collect();
            dec.decode(&chunks, &mut out).unwrap();
        }
        assert_eq!(&out[..data.len()], &data[..]);
    }

    #[test]
    fn too_few_pieces_is_an_error() {
        let data = vec![1u8; 100];
        let layout = Layout::fitted(3, 5, 100, 1024);
        let pieces = encode_all(layout, &data, [0; 32]);
        let cs = layout.chunk_size;
        let mut dec = StripeDecoder::new(layout);
        let chunks = [(0usize, &pieces[0][..cs]), (4, &pieces[4][..cs])];
        assert!(matches!(
            dec.decode(&chunks, &mut Vec::new()),
            Err(ErasureError::NotEnoughPieces { have: 2, need: 3 })
        ));
    }

    #[test]
    fn no_parity_scheme() {
        let data = vec![5u8; 300];
        let layout = Layout::fitted(2, 2, 300, 64);
        let pieces = encode_all(layout, &data, [0; 32]);
        assert_eq!(pieces.len(), 2);
    }
}
