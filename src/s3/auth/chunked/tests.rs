use std::time::{Duration, UNIX_EPOCH};

use aws_sigv4::sign::v4;
use bytes::Bytes;

use super::super::signing::{parse_hex32, scope, signing_key};
use super::*;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const MAX: usize = 1 << 20;

// AWS's published streaming examples (sigv4-streaming, sigv4-streaming-trailers): 66560 × 'a'
// in chunks of 65536 and 1024 bytes, 20130524T000000Z, us-east-1.
const SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
const SIGNATURES: [&str; 3] = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
];
const TRAILER_SEED: &str = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e";
const TRAILER_SIGNATURES: [&str; 3] = [
    "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
    "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
    "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
];
// The trailer signature chained from the final chunk above over `x-amz-checksum-crc32c:sOO8/Q==\n`.
const TRAILER_SIGNATURE_VALUE: &str =
    "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435";

fn example_signing(seed: &str) -> ChunkSigning {
    ChunkSigning::new(
        signing_key(SECRET, "20130524", "us-east-1"),
        "20130524T000000Z".to_owned(),
        scope("20130524", "us-east-1"),
        parse_hex32(seed).unwrap(),
    )
}

/// The example body: two data chunks and the final one, then `tail` (trailers and the end).
fn example_body(signatures: [&str; 3], tail: &[u8]) -> Vec<u8> {
    let mut body = format!("10000;chunk-signature={}\r\n", signatures[0]).into_bytes();
    body.extend_from_slice(&[b'a'; 65_536]);
    body.extend_from_slice(format!("\r\n400;chunk-signature={}\r\n", signatures[1]).as_bytes());
    body.extend_from_slice(&[b'a'; 1024]);
    body.extend_from_slice(format!("\r\n0;chunk-signature={}\r\n", signatures[2]).as_bytes());
    body.extend_from_slice(tail);
    body
}

fn decoder(mode: PayloadMode, signing: Option<&ChunkSigning>) -> ChunkedDecoder {
    ChunkedDecoder::new(&mode, signing, MAX).unwrap()
}

type Trailers = Vec<(String, String)>;

/// Feeds `body` in pieces of `split` bytes; returns the output and the outcome.
fn decode(
    mut decoder: ChunkedDecoder,
    body: &[u8],
    split: usize,
) -> (Vec<u8>, Result<Trailers, ChunkedError>) {
    let mut out = Vec::new();
    for piece in body.chunks(split) {
        if let Err(error) = decoder.feed(piece, &mut out) {
            return (out, Err(error));
        }
    }
    (out, decoder.finish())
}

#[test]
fn the_aws_signed_example_decodes_in_any_split() {
    let signing = example_signing(SEED);
    let body = example_body(SIGNATURES, b"\r\n");
    for split in [1, 2, 7, 100, 65_536, body.len()] {
        let (out, result) = decode(
            decoder(PayloadMode::StreamingSigned, Some(&signing)),
            &body,
            split,
        );
        assert_eq!(result, Ok(vec![]), "split {split}");
        assert!(out == vec![b'a'; 66_560], "split {split}");
    }
}

#[test]
fn decoded_len_counts_released_bytes() {
    let signing = example_signing(SEED);
    let body = example_body(SIGNATURES, b"\r\n");
    let mut d = decoder(PayloadMode::StreamingSigned, Some(&signing));
    let mut out = Vec::new();
    d.feed(&body[..66_000], &mut out).unwrap();
    assert_eq!(d.decoded_len(), 65_536);
    d.feed(&body[66_000..], &mut out).unwrap();
    assert_eq!(d.decoded_len(), 66_560);
}

#[test]
fn no_byte_of_a_tampered_chunk_is_released() {
    let signing = example_signing(SEED);
    let mut body = example_body(SIGNATURES, b"\r\n");
    // Flip a byte inside the second chunk's data, which starts after two 88- and 86-byte
    // chunk lines, the first chunk and its CRLF.
    let second = 88 + 65_536 + 2 + 86 + 10;
    assert_eq!(body[second - 12..second - 10], *b"\r\n");
    body[second] = b'b';
    for split in [1, 4096, body.len()] {
        let (out, result) = decode(
            decoder(PayloadMode::StreamingSigned, Some(&signing)),
            &body,
            split,
        );
        assert_eq!(result, Err(ChunkedError::ChunkSignatureMismatch));
        assert_eq!(
            out,
            vec![b'a'; 65_536],
            "only the first, verified chunk is out"
        );
    }
}

#[test]
fn a_wrong_seed_or_signature_fails_before_any_output() {
    let body = example_body(SIGNATURES, b"\r\n");
    let (out, result) = decode(
        decoder(
            PayloadMode::StreamingSigned,
            Some(&example_signing(TRAILER_SEED)),
        ),
        &body,
        body.len(),
    );
    assert_eq!(result, Err(ChunkedError::ChunkSignatureMismatch));
    assert!(out.is_empty());

    // Swapping the two data chunks' signatures breaks the chain.
    let swapped = example_body([SIGNATURES[1], SIGNATURES[0], SIGNATURES[2]], b"\r\n");
    let (out, result) = decode(
        decoder(PayloadMode::StreamingSigned, Some(&example_signing(SEED))),
        &swapped,
        1000,
    );
    assert_eq!(result, Err(ChunkedError::ChunkSignatureMismatch));
    assert!(out.is_empty());

    // A bad final-chunk signature is caught too, even though it carries no data.
    let mut bad_final = SIGNATURES[2].to_owned();
    bad_final.replace_range(0..1, "c");
    let body = example_body([SIGNATURES[0], SIGNATURES[1], &bad_final], b"\r\n");
    let (_, result) = decode(
        decoder(PayloadMode::StreamingSigned, Some(&example_signing(SEED))),
        &body,
        999,
    );
    assert_eq!(result, Err(ChunkedError::ChunkSignatureMismatch));
}

#[test]
fn truncated_bodies_are_incomplete() {
    let signing = example_signing(SEED);
    let body = example_body(SIGNATURES, b"\r\n");
    for cut in [
        0,
        10,
        90,
        65_000,
        65_626,
        body.len() - 100,
        body.len() - 2,
        body.len() - 1,
    ] {
        let (_, result) = decode(
            decoder(PayloadMode::StreamingSigned, Some(&signing)),
            &body[..cut],
            1000,
        );
        assert_eq!(result, Err(ChunkedError::Incomplete), "cut at {cut}");
    }
}

#[test]
fn bytes_after_the_end_are_refused() {
    let signing = example_signing(SEED);
    let body = example_body(SIGNATURES, b"\r\nX");
    let (_, result) = decode(
        decoder(PayloadMode::StreamingSigned, Some(&signing)),
        &body,
        1000,
    );
    assert_eq!(result, Err(ChunkedError::TrailingData));
}

#[test]
fn chunks_over_the_limit_are_refused_before_their_data() {
    let signing = example_signing(SEED);
    let body = example_body(SIGNATURES, b"\r\n");
    let mut d = ChunkedDecoder::new(&PayloadMode::StreamingSigned, Some(&signing), 65_535).unwrap();
    let mut out = Vec::new();
    let error = d.feed(&body[..100], &mut out).unwrap_err();
    assert_eq!(
        error,
        ChunkedError::ChunkTooLarge {
            size: 65_536,
            max: 65_535
        }
    );
    assert_eq!(error.s3_code().as_str(), "InvalidArgument");
    // The error sticks.
    assert_eq!(d.feed(b"anything", &mut out), Err(error.clone()));
    assert_eq!(d.finish(), Err(error));
}

#[test]
fn the_aws_trailer_example_decodes_and_returns_its_trailer() {
    let signing = example_signing(TRAILER_SEED);
    let tail = format!(
        "x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:{TRAILER_SIGNATURE_VALUE}\r\n\r\n"
    );
    let body = example_body(TRAILER_SIGNATURES, tail.as_bytes());
    for split in [1, 3, 64, 65_536, body.len()] {
        let (out, result) = decode(
            decoder(PayloadMode::StreamingSignedTrailer, Some(&signing)),
            &body,
            split,
        );
        assert_eq!(
            result,
            Ok(vec![(
                "x-amz-checksum-crc32c".to_owned(),
                "sOO8/Q==".to_owned()
            )]),
            "split {split}"
        );
        assert_eq!(out.len(), 66_560);
    }
}

#[test]
fn signed_trailers_must_be_signed_and_untampered() {
    let signing = example_signing(TRAILER_SEED);
    let run = |tail: &str| {
        let body = example_body(TRAILER_SIGNATURES, tail.as_bytes());
        decode(
            decoder(PayloadMode::StreamingSignedTrailer, Some(&signing)),
            &body,
            4096,
        )
        .1
    };
    let tampered = format!(
        "x-amz-checksum-crc32c:AAAAAA==\r\nx-amz-trailer-signature:{TRAILER_SIGNATURE_VALUE}\r\n\r\n"
    );
    assert_eq!(run(&tampered), Err(ChunkedError::TrailerSignatureMismatch));
    assert!(matches!(
        run("x-amz-checksum-crc32c:sOO8/Q==\r\n\r\n"),
        Err(ChunkedError::MalformedTrailer(_))
    ));
    let after_signature = format!(
        "x-amz-trailer-signature:{TRAILER_SIGNATURE_VALUE}\r\nx-amz-checksum-crc32c:sOO8/Q==\r\n\r\n"
    );
    assert!(matches!(
        run(&after_signature),
        Err(ChunkedError::MalformedTrailer(_))
    ));
    // No trailer at all needs no signature.
    assert_eq!(run("\r\n"), Ok(vec![]));
    // Missing the final empty line is incomplete.
    let unterminated = format!(
        "x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:{TRAILER_SIGNATURE_VALUE}\r\n"
    );
    assert_eq!(run(&unterminated), Err(ChunkedError::Incomplete));
}

#[test]
fn a_payload_without_declared_trailers_refuses_them() {
    let signing = example_signing(SEED);
    let body = example_body(SIGNATURES, b"x-amz-checksum-crc32:AAAAAA==\r\n\r\n");
    let (_, result) = decode(
        decoder(PayloadMode::StreamingSigned, Some(&signing)),
        &body,
        4096,
    );
    assert!(matches!(result, Err(ChunkedError::MalformedTrailer(_))));
}

/// An unsigned-trailer body as aws-sdk-rust writes it.
fn unsigned_body(tail: &str) -> Vec<u8> {
    let mut body = b"2000\r\n".to_vec();
    body.extend_from_slice(&[b'x'; 8192]);
    body.extend_from_slice(b"\r\n5\r\nhello\r\n0\r\n");
    body.extend_from_slice(tail.as_bytes());
    body
}

#[test]
fn unsigned_trailer_bodies_decode_in_any_split() {
    let body = unsigned_body("x-amz-checksum-crc32:NSRBwg==\r\nX-Amz-Meta-Other : v \r\n\r\n");
    let mut expected = vec![b'x'; 8192];
    expected.extend_from_slice(b"hello");
    for split in [1, 5, 8192, body.len()] {
        let (out, result) = decode(
            decoder(PayloadMode::StreamingUnsignedTrailer, None),
            &body,
            split,
        );
        assert_eq!(
            result,
            Ok(vec![
                ("x-amz-checksum-crc32".to_owned(), "NSRBwg==".to_owned()),
                ("x-amz-meta-other".to_owned(), "v".to_owned()),
            ]),
            "split {split}"
        );
        assert!(out == expected, "split {split}");
    }
    // Bare LF line endings are tolerated on lines (not after chunk data).
    let lf = b"3\nabc\r\n0\nx-amz-checksum-crc32:AAAAAA==\n\n";
    let (out, result) = decode(decoder(PayloadMode::StreamingUnsignedTrailer, None), lf, 1);
    assert_eq!(out, b"abc");
    assert_eq!(result.unwrap().len(), 1);
}

#[test]
fn unsigned_bytes_stream_out_before_the_chunk_ends() {
    let mut d = decoder(PayloadMode::StreamingUnsignedTrailer, None);
    let mut out = Vec::new();
    d.feed(b"a\r\n01234", &mut out).unwrap();
    assert_eq!(out, b"01234");
    assert_eq!(d.decoded_len(), 5);
}

#[test]
fn unsigned_bodies_refuse_signatures() {
    let signed_chunk = format!("3;chunk-signature={}\r\nabc\r\n0\r\n\r\n", SIGNATURES[0]);
    let (_, result) = decode(
        decoder(PayloadMode::StreamingUnsignedTrailer, None),
        signed_chunk.as_bytes(),
        7,
    );
    assert!(matches!(result, Err(ChunkedError::MalformedChunk(_))));
    let signed_trailer = unsigned_body(&format!(
        "x-amz-trailer-signature:{TRAILER_SIGNATURE_VALUE}\r\n\r\n"
    ));
    let (_, result) = decode(
        decoder(PayloadMode::StreamingUnsignedTrailer, None),
        &signed_trailer,
        7,
    );
    assert!(matches!(result, Err(ChunkedError::MalformedTrailer(_))));
}

#[test]
fn malformed_framing_is_refused() {
    let signing = example_signing(SEED);
    let signed = |body: &[u8]| {
        decode(
            decoder(PayloadMode::StreamingSigned, Some(&signing)),
            body,
            3,
        )
        .1
    };
    let unsigned = |body: &[u8]| {
        decode(
            decoder(PayloadMode::StreamingUnsignedTrailer, None),
            body,
            3,
        )
        .1
    };
    let sig = SIGNATURES[0];
    for body in [
        format!("zz;chunk-signature={sig}\r\n"),
        format!(";chunk-signature={sig}\r\n"),
        format!("10000000000000000;chunk-signature={sig}\r\n"),
        "10000\r\n".to_owned(),
        format!("10000;chunk-signature={}\r\n", &sig[..63]),
        format!("10000;signature={sig}\r\n"),
        format!("10000;chunk-signature={sig};x=y\r\n"),
    ] {
        assert!(
            matches!(
                signed(body.as_bytes()),
                Err(ChunkedError::MalformedChunk(_))
            ),
            "{body:?}"
        );
    }
    assert!(matches!(
        unsigned(b"3 \r\nabc\r\n"),
        Err(ChunkedError::MalformedChunk(_))
    ));
    assert!(matches!(
        unsigned(b"-3\r\nabc\r\n"),
        Err(ChunkedError::MalformedChunk(_))
    ));
    assert!(matches!(
        unsigned(&[b'1'; 5000]),
        Err(ChunkedError::MalformedChunk(_))
    ));
    assert_eq!(
        unsigned(b"3\r\nabcd\r\n"),
        Err(ChunkedError::MissingChunkEnd)
    );
    assert_eq!(
        unsigned(b"3\r\nabc\n0\r\n\r\n"),
        Err(ChunkedError::MissingChunkEnd)
    );
    assert!(matches!(
        unsigned(b"0\r\nno-colon\r\n\r\n"),
        Err(ChunkedError::MalformedTrailer(_))
    ));
    assert!(matches!(
        unsigned(b"0\r\n:v\r\n\r\n"),
        Err(ChunkedError::MalformedTrailer(_))
    ));
    let mut huge = b"0\r\n".to_vec();
    for i in 0..2000 {
        huge.extend_from_slice(format!("x-amz-meta-{i}:value\r\n").as_bytes());
    }
    assert!(matches!(
        unsigned(&huge),
        Err(ChunkedError::MalformedTrailer(_))
    ));
    assert_eq!(unsigned(b""), Err(ChunkedError::Incomplete));
    assert_eq!(unsigned(b"0\r\n"), Err(ChunkedError::Incomplete));
}

#[test]
fn the_trailer_limit_does_not_depend_on_the_split() {
    // Each line holds 32 content bytes and a CR, and counts 33 bytes against the 16 KiB
    // limit: 496 lines fit (16368 bytes, then the final empty line), 497 do not.
    let section = |lines: usize| {
        let mut body = b"0\r\n".to_vec();
        for i in 0..lines {
            body.extend_from_slice(format!("x-amz-meta-{i:04}:0123456789abcdef\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body
    };
    for (lines, fits) in [(496, true), (497, false)] {
        let body = section(lines);
        for split in [1, 2, 31, body.len()] {
            let (_, result) = decode(
                decoder(PayloadMode::StreamingUnsignedTrailer, None),
                &body,
                split,
            );
            assert_eq!(result.is_ok(), fits, "{lines} lines, split {split}");
        }
    }
}

#[test]
fn construction_checks_mode_and_signing() {
    let signing = example_signing(SEED);
    for mode in [PayloadMode::Unsigned, PayloadMode::Sha256([0; 32])] {
        let error = ChunkedDecoder::new(&mode, Some(&signing), MAX).unwrap_err();
        assert_eq!(error, ChunkedError::NotStreaming);
    }
    for mode in [
        PayloadMode::StreamingSigned,
        PayloadMode::StreamingSignedTrailer,
    ] {
        let error = ChunkedDecoder::new(&mode, None, MAX).unwrap_err();
        assert_eq!(
            (error.s3_code().as_str(), error.s3_code().status().as_u16()),
            ("InternalError", 500)
        );
    }
    assert!(ChunkedDecoder::new(&PayloadMode::StreamingUnsignedTrailer, None, MAX).is_ok());
}

#[test]
fn errors_map_to_s3_codes() {
    assert_eq!(
        ChunkedError::ChunkSignatureMismatch.s3_code().as_str(),
        "SignatureDoesNotMatch"
    );
    assert_eq!(
        ChunkedError::ChunkSignatureMismatch
            .s3_code()
            .status()
            .as_u16(),
        403
    );
    assert_eq!(
        ChunkedError::TrailerSignatureMismatch
            .s3_code()
            .status()
            .as_u16(),
        403
    );
    assert_eq!(
        ChunkedError::Incomplete.s3_code().as_str(),
        "IncompleteBody"
    );
    assert_eq!(
        ChunkedError::MalformedChunk("x").s3_code().as_str(),
        "IncompleteBody"
    );
    assert_eq!(ChunkedError::TrailingData.s3_code().status().as_u16(), 400);
}

/// Bodies signed by aws-sigv4's own chunk and trailer signers, for chunk layouts and trailer
/// sets the AWS examples do not cover.
#[test]
fn bodies_signed_by_aws_sigv4_decode() {
    let identity =
        aws_sdk_s3::config::Credentials::new("AKIDEXAMPLE", SECRET, None, None, "test").into();
    let time = UNIX_EPOCH + Duration::from_secs(1_795_601_472); // 20261125T101112Z
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("eu-central-1")
        .name("s3")
        .time(time)
        .settings(())
        .build()
        .unwrap();
    let seed = "9c1b5c1d6f0f4d3e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f";
    let ours = ChunkSigning::new(
        signing_key(SECRET, "20261125", "eu-central-1"),
        "20261125T101112Z".to_owned(),
        scope("20261125", "eu-central-1"),
        parse_hex32(seed).unwrap(),
    );

    let chunks: [&[u8]; 4] = [
        b"first chunk",
        &[0u8; 3000],
        b"\r\n0;chunk-signature=looks-like-framing",
        b"z",
    ];
    let mut body = Vec::new();
    let mut running = seed.to_owned();
    for chunk in chunks.iter().chain([&&b""[..]]) {
        let signature = v4::sign_chunk(&Bytes::copy_from_slice(chunk), &running, &params)
            .unwrap()
            .signature()
            .to_owned();
        body.extend_from_slice(
            format!("{:x};chunk-signature={signature}\r\n", chunk.len()).as_bytes(),
        );
        body.extend_from_slice(chunk);
        if !chunk.is_empty() {
            body.extend_from_slice(b"\r\n");
        }
        running = signature;
    }
    let mut trailers = http::HeaderMap::new();
    trailers.insert(
        "x-amz-checksum-sha256",
        "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="
            .parse()
            .unwrap(),
    );
    trailers.insert("x-amz-checksum-crc32", "NSRBwg==".parse().unwrap());
    let headers = TryFrom::try_from(trailers).unwrap();
    let trailer_signature = v4::sign_trailer(&headers, &running, &params)
        .unwrap()
        .signature()
        .to_owned();
    // Sent in reverse name order: the verifier must sort before hashing.
    body.extend_from_slice(
        format!(
            "x-amz-checksum-sha256:n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=\r\n\
             x-amz-checksum-crc32:NSRBwg==\r\nx-amz-trailer-signature:{trailer_signature}\r\n\r\n"
        )
        .as_bytes(),
    );

    let expected: Vec<u8> = chunks.concat();
    for split in [1, 13, body.len()] {
        let (out, result) = decode(
            decoder(PayloadMode::StreamingSignedTrailer, Some(&ours)),
            &body,
            split,
        );
        let trailers = result.unwrap();
        assert!(out == expected, "split {split}");
        assert_eq!(trailers.len(), 2);
        assert_eq!(
            trailers[0],
            (
                "x-amz-checksum-sha256".to_owned(),
                "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=".to_owned()
            )
        );
    }

    // An empty object: just the final chunk.
    let empty_signature = v4::sign_chunk(&Bytes::new(), seed, &params)
        .unwrap()
        .signature()
        .to_owned();
    let empty = format!("0;chunk-signature={empty_signature}\r\n\r\n");
    let (out, result) = decode(
        decoder(PayloadMode::StreamingSigned, Some(&ours)),
        empty.as_bytes(),
        1,
    );
    assert_eq!(result, Ok(vec![]));
    assert!(out.is_empty());
}
