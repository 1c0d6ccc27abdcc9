//! SigV4 cryptography: signing-key derivation, HMAC-SHA256 signatures, hex, and the
//! [`ChunkSigning`] context that aws-chunked bodies are verified with.
//!
//! Contract:
//! - All primitives come from aws-lc-rs (`hmac`, `digest`, `constant_time`); nothing here
//!   allocates secrets beyond the derived signing key, which lives in an `hmac::Key`.
//! - [`same_signature`] compares in constant time over all 32 bytes.
//! - [`ChunkSigning`]'s `Debug` never prints the signing key. The seed signature, date and
//!   scope it does print are public (they travel in the request).
//! - The service is always `s3`: the verifier rejects any other before a key is derived.

use std::fmt;

use aws_lc_rs::{constant_time, digest, hmac};

/// The only SigV4 algorithm this gateway accepts.
pub(super) const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The service name in every credential scope.
pub(super) const SERVICE: &str = "s3";
/// The terminator of every credential scope.
pub(super) const TERMINATOR: &str = "aws4_request";

/// SHA-256 of `data`.
pub(super) fn sha256(data: &[u8]) -> [u8; 32] {
    to_array(digest::digest(&digest::SHA256, data).as_ref())
}

/// Lowercase hex of `bytes`.
pub(super) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Decodes exactly 64 hex digits (either case) into 32 bytes.
pub(super) fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let (hi, lo) = match pair {
            [hi, lo] => (hex_value(*hi)?, hex_value(*lo)?),
            _ => return None,
        };
        *slot = hi << 4 | lo;
    }
    Some(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `date/region/s3/aws4_request`.
pub(super) fn scope(date: &str, region: &str) -> String {
    format!("{date}/{region}/{SERVICE}/{TERMINATOR}")
}

/// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), "s3"), "aws4_request").
pub(super) fn signing_key(secret: &str, date: &str, region: &str) -> hmac::Key {
    let k_secret = hmac::Key::new(hmac::HMAC_SHA256, format!("AWS4{secret}").as_bytes());
    let k_date = hmac::sign(&k_secret, date.as_bytes());
    let k_region = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, k_date.as_ref()),
        region.as_bytes(),
    );
    let k_service = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, k_region.as_ref()),
        SERVICE.as_bytes(),
    );
    let k_signing = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, k_service.as_ref()),
        TERMINATOR.as_bytes(),
    );
    hmac::Key::new(hmac::HMAC_SHA256, k_signing.as_ref())
}

/// HMAC-SHA256 of `message` under `key`.
pub(super) fn sign(key: &hmac::Key, message: &[u8]) -> [u8; 32] {
    to_array(hmac::sign(key, message).as_ref())
}

/// Constant-time equality of two signatures.
pub(super) fn same_signature(a: &[u8; 32], b: &[u8; 32]) -> bool {
    constant_time::verify_slices_are_equal(a, b).is_ok()
}

fn to_array(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (slot, b) in out.iter_mut().zip(bytes) {
        *slot = *b;
    }
    out
}

/// Everything needed to verify the chunk and trailer signatures of an aws-chunked body:
/// the request's signing key, its `X-Amz-Date`, its credential scope and the seed signature
/// (the signature of the request itself, which the first chunk signature chains from).
#[derive(Clone)]
pub struct ChunkSigning {
    key: hmac::Key,
    amz_date: String,
    scope: String,
    seed: [u8; 32],
}

impl ChunkSigning {
    pub(super) fn new(key: hmac::Key, amz_date: String, scope: String, seed: [u8; 32]) -> Self {
        Self {
            key,
            amz_date,
            scope,
            seed,
        }
    }

    /// The request signature the first chunk signature chains from.
    pub fn seed_signature(&self) -> [u8; 32] {
        self.seed
    }

    /// Signature of a chunk whose data hashes to `data_sha256`, chained from `previous`:
    /// HMAC over "AWS4-HMAC-SHA256-PAYLOAD\n" date "\n" scope "\n" previous "\n"
    /// sha256("") "\n" sha256(data).
    pub(super) fn chunk_signature(&self, previous: &[u8; 32], data_sha256: &[u8; 32]) -> [u8; 32] {
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{}\n{}",
            self.amz_date,
            self.scope,
            hex(previous),
            hex(&sha256(b"")),
            hex(data_sha256)
        );
        sign(&self.key, string_to_sign.as_bytes())
    }

    /// Signature of the trailer section whose canonical form hashes to `trailers_sha256`,
    /// chained from the final chunk's signature `previous`: HMAC over
    /// "AWS4-HMAC-SHA256-TRAILER\n" date "\n" scope "\n" previous "\n" sha256(trailers).
    pub(super) fn trailer_signature(
        &self,
        previous: &[u8; 32],
        trailers_sha256: &[u8; 32],
    ) -> [u8; 32] {
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{}\n{}",
            self.amz_date,
            self.scope,
            hex(previous),
            hex(trailers_sha256)
        );
        sign(&self.key, string_to_sign.as_bytes())
    }
}

impl fmt::Debug for ChunkSigning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkSigning")
            .field("amz_date", &self.amz_date)
            .field("scope", &self.scope)
            .field("seed", &hex(&self.seed))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    #[test]
    fn hex_round_trips_and_rejects_bad_input() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        let text = hex(&bytes);
        assert_eq!(text.len(), 64);
        assert_eq!(parse_hex32(&text), Some(bytes));
        assert_eq!(parse_hex32(&text.to_uppercase()), Some(bytes));
        assert_eq!(parse_hex32(&text[..62]), None);
        assert_eq!(parse_hex32(&format!("{}zz", &text[..62])), None);
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }

    #[test]
    fn sha256_of_empty_is_the_well_known_value() {
        assert_eq!(
            hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    // AWS's published streaming example: the first chunk (65536 × 'a') chained from the seed.
    #[test]
    fn chunk_signature_matches_the_aws_example() {
        let key = signing_key(SECRET, "20130524", "us-east-1");
        let seed = parse_hex32("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9")
            .unwrap();
        let signing = ChunkSigning::new(
            key,
            "20130524T000000Z".into(),
            scope("20130524", "us-east-1"),
            seed,
        );
        let sig = signing.chunk_signature(&seed, &sha256(&[b'a'; 65536]));
        assert_eq!(
            hex(&sig),
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
        );
    }

    #[test]
    fn signing_key_matches_aws_sigv4() {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_369_353_600);
        let theirs = aws_sigv4::sign::v4::generate_signing_key(SECRET, time, "eu-west-3", "s3");
        let message = b"string to sign";
        assert_eq!(
            hex(&sign(
                &signing_key(SECRET, "20130524", "eu-west-3"),
                message
            )),
            aws_sigv4::sign::v4::calculate_signature(theirs, message)
        );
    }

    #[test]
    fn same_signature_compares_every_byte() {
        let a = [7u8; 32];
        let mut b = a;
        assert!(same_signature(&a, &b));
        b[31] ^= 1;
        assert!(!same_signature(&a, &b));
        b = a;
        b[0] ^= 0x80;
        assert!(!same_signature(&a, &b));
    }

    #[test]
    fn debug_does_not_leak_the_key() {
        let signing = ChunkSigning::new(
            signing_key(SECRET, "20130524", "us-east-1"),
            "20130524T000000Z".into(),
            scope("20130524", "us-east-1"),
            [0u8; 32],
        );
        let shown = format!("{signing:?}");
        assert!(shown.contains("20130524/us-east-1/s3/aws4_request"));
        assert!(!shown.contains(SECRET));
    }
}
