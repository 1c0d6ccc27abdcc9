use super::*;
use ChecksumAlgorithm::*;

/// 1 MiB of a non-repeating-looking byte pattern; the expected values below were computed
/// independently (Python zlib/hashlib and a bitwise CRC32C/CRC64-NVME).
fn pattern() -> Vec<u8> {
    (0..1u32 << 20)
        .map(|i| ((i * 31 + 7) % 251) as u8)
        .collect()
}

fn b64(a: ChecksumAlgorithm, data: &[u8]) -> String {
    checksum_of(a, data).to_base64()
}

#[test]
fn known_vectors() {
    let cases: [(&[u8], [&str; 5]); 4] = [
        (
            b"",
            [
                "AAAAAA==",
                "AAAAAA==",
                "AAAAAAAAAAA=",
                "2jmj7l5rSw0yVb/vlWAYkK/YBwk=",
                "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            ],
        ),
        (
            b"hello world",
            [
                "DUoRhQ==",
                "yZRlqg==",
                "jSnVw/bqjr4=",
                "Kq5sNclPz7QV2+lfQIuc6R7oRu0=",
                "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=",
            ],
        ),
        // Values S3-compatible test suites expect for these bodies.
        (
            b"abcdefg",
            [
                "MSpqpg==",
                "5if0QQ==",
                "SmzZ/LTp1CA=",
                "L7XhNBn8iSRoZeejJPR27GJOh0A=",
                "fRpUEnsiJQL1t5tfsIAwYRUqRPkrN+I8ZSe69mXU2po=",
            ],
        ),
        (
            b"dummy data",
            [
                "QWaN2w==",
                "R/I7iQ==",
                "dPVWc2vU1+Q=",
                "YR/1TvTYOJz5gtqVFoBJBtmTibY=",
                "eXuwq/95jXIAr3aF3KeQHt/8Ur8mUA1b2XKCZY7iQVI=",
            ],
        ),
    ];
    for (data, expected) in cases {
        for (a, want) in ChecksumAlgorithm::ALL.into_iter().zip(expected) {
            assert_eq!(
                b64(a, data),
                want,
                "{a} of {:?}",
                String::from_utf8_lossy(data)
            );
            assert_eq!(checksum_of(a, data).bytes.len(), a.digest_len());
        }
    }
}

#[test]
fn one_mebibyte_pattern_in_any_split() {
    let data = pattern();
    let expected = [
        "Mb1fgA==",
        "ZFYo4Q==",
        "1QFIuLEmn7w=",
        "3Vy6xhmgyzgK+Ru3rgR67OZSPBo=",
        "HFm4ZwAnOEFDeBqKi/8vO0S9iBjQ9TsTsGTCN1oa/jg=",
    ];
    for (a, want) in ChecksumAlgorithm::ALL.into_iter().zip(expected) {
        assert_eq!(b64(a, &data), want, "{a}");
        // Uneven update sizes, including empty ones, give the same digest.
        let mut h = Hasher::new(a);
        let mut rest = data.as_slice();
        for size in [0usize, 1, 3, 4096, 0, 65_537, 7].into_iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (head, tail) = rest.split_at(size.min(rest.len()));
            h.update(head);
            rest = tail;
        }
        let cloned = h.clone();
        assert_eq!(h.finish().to_base64(), want, "{a} split");
        assert_eq!(cloned.finish().to_base64(), want, "{a} clone");
    }
}

#[test]
fn names_ids_and_headers_round_trip() {
    let names = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"];
    for (a, name) in ChecksumAlgorithm::ALL.into_iter().zip(names) {
        assert_eq!(a.name(), name);
        assert_eq!(ChecksumAlgorithm::from_name(name), Some(a));
        assert_eq!(ChecksumAlgorithm::from_name(&name.to_lowercase()), Some(a));
        assert_eq!(
            a.header_name(),
            format!("x-amz-checksum-{}", name.to_lowercase())
        );
        assert_eq!(
            ChecksumAlgorithm::from_header_name(a.header_name()),
            Some(a)
        );
        assert_eq!(
            ChecksumAlgorithm::from_header_name(&a.header_name().to_uppercase()),
            Some(a)
        );
        assert_eq!(ChecksumAlgorithm::from_id(a.id()), Some(a));
        assert_eq!(a.is_crc(), name.starts_with("CRC"));
    }
    // Stored ids are fixed forever.
    let ids: Vec<u8> = ChecksumAlgorithm::ALL.iter().map(|a| a.id()).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    for id in [0, 6, 255] {
        assert_eq!(ChecksumAlgorithm::from_id(id), None);
    }
    for bad in ["", "MD5", "CRC", "SHA-256", " crc32"] {
        assert_eq!(ChecksumAlgorithm::from_name(bad), None, "{bad:?}");
    }
    for bad in [
        "x-amz-checksum-type",
        "x-amz-checksum-algorithm",
        "x-amz-checksum-mode",
        "x-amz-checksum-md5",
        "crc32",
    ] {
        assert_eq!(ChecksumAlgorithm::from_header_name(bad), None, "{bad:?}");
    }
    assert_eq!(
        ChecksumType::from_name("full_object"),
        Some(ChecksumType::FullObject)
    );
    assert_eq!(
        ChecksumType::from_name("COMPOSITE"),
        Some(ChecksumType::Composite)
    );
    assert_eq!(ChecksumType::FullObject.name(), "FULL_OBJECT");
    assert_eq!(ChecksumType::from_name("FULL-OBJECT"), None);
}

#[test]
fn type_support_follows_aws() {
    use ChecksumType::*;
    assert!(Crc32.supports(Composite) && Crc32.supports(FullObject));
    assert!(Crc32c.supports(Composite) && Crc32c.supports(FullObject));
    assert!(!Crc64Nvme.supports(Composite) && Crc64Nvme.supports(FullObject));
    assert!(Sha1.supports(Composite) && !Sha1.supports(FullObject));
    assert!(Sha256.supports(Composite) && !Sha256.supports(FullObject));
}

#[test]
fn from_base64_checks_encoding_and_length() {
    let c = Checksum::from_base64(Crc32, "DUoRhQ==").unwrap();
    assert_eq!(c.bytes, [0x0d, 0x4a, 0x11, 0x85]);
    assert_eq!(c, checksum_of(Crc32, b"hello world"));
    assert_eq!(
        Checksum::from_base64(Crc32, "DUoRhQ"),
        Err(ChecksumError::InvalidBase64(Crc32))
    );
    assert_eq!(
        Checksum::from_base64(Crc32, "jSnVw/bqjr4="),
        Err(ChecksumError::WrongLength {
            algorithm: Crc32,
            expected: 4,
            found: 8
        })
    );
    assert!(Checksum::from_base64(Sha256, "").is_err());
    assert!(Checksum::from_base64(Crc64Nvme, "jSnVw/bqjr4=").is_ok());
}

#[test]
fn base64_is_strict_rfc4648() {
    // RFC 4648 §10 test vectors, both ways.
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64_encode(plain.as_bytes()), encoded);
        assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
    }
    // The cases Content-MD5 parsing always relied on.
    assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
    assert_eq!(base64_decode("aGVsbG8h").unwrap(), b"hello!");
    assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
    assert_eq!(base64_decode("aA==").unwrap(), b"h");
    assert_eq!(base64_decode("1B2M2Y8AsgTpgAmY7PhCfg==").unwrap().len(), 16);
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(base64_decode(&base64_encode(&all)).unwrap(), all);
    for bad in [
        "aGk",      // missing padding
        "a=Gk",     // padding inside
        "aGk=aGk=", // padding before the end
        "a===",     // too much padding
        "====", "aGk=\n", // whitespace
        " aGk=", "aG-k", // URL-safe alphabet
        "aG_k", "aGl=", // non-zero unused bits
        "aB==", "Zm9vYmE",
    ] {
        assert_eq!(base64_decode(bad), None, "{bad:?}");
    }
}

/// The pattern split as a multipart upload: 640 KiB, 256 KiB, 128 KiB.
fn parts() -> Vec<Vec<u8>> {
    let data = pattern();
    vec![
        data[..655_360].to_vec(),
        data[655_360..917_504].to_vec(),
        data[917_504..].to_vec(),
    ]
}

#[test]
fn composite_is_the_checksum_of_part_checksums() {
    let parts = parts();
    let expected = [
        (Crc32, "0WJxiQ==-3"),
        (Crc32c, "USD37Q==-3"),
        (Sha1, "xBqH9ek+0ekJIHgenk0TAcPAZ6g=-3"),
        (Sha256, "5gm/RD+ve40/uLycH5IpWZHrkYGrSVI8L0DV1MjvKik=-3"),
    ];
    for (a, want) in expected {
        let sums: Vec<Checksum> = parts.iter().map(|p| checksum_of(a, p)).collect();
        let direct: Vec<u8> = sums.iter().flat_map(|c| c.bytes.clone()).collect();
        assert_eq!(composite(a, &sums).unwrap(), want, "{a}");
        assert_eq!(
            composite(a, &sums).unwrap(),
            format!("{}-3", b64(a, &direct)),
            "{a}"
        );
    }
    // One part: still the checksum of the checksum, with "-1".
    let one = [checksum_of(Sha256, b"x")];
    assert_eq!(
        composite(Sha256, &one).unwrap(),
        format!("{}-1", b64(Sha256, &one[0].bytes))
    );
}

#[test]
fn composite_refuses_what_aws_refuses() {
    let crc = checksum_of(Crc32, b"a");
    assert_eq!(composite(Crc32, &[]), Err(ChecksumError::NoParts));
    assert_eq!(
        composite(Crc64Nvme, &[checksum_of(Crc64Nvme, b"a")]),
        Err(ChecksumError::UnsupportedType {
            algorithm: Crc64Nvme,
            checksum_type: ChecksumType::Composite
        })
    );
    assert_eq!(
        composite(Crc32c, std::slice::from_ref(&crc)),
        Err(ChecksumError::AlgorithmMismatch {
            expected: Crc32c,
            found: Crc32
        })
    );
    let short = Checksum {
        algorithm: Crc32,
        bytes: vec![1, 2, 3],
    };
    assert!(matches!(
        composite(Crc32, &[crc, short]),
        Err(ChecksumError::WrongLength { found: 3, .. })
    ));
}

#[test]
fn full_object_combine_equals_crc_of_whole_body() {
    let parts = parts();
    let whole: Vec<u8> = parts.concat();
    for a in [Crc32, Crc32c, Crc64Nvme] {
        let sums: Vec<(Checksum, u64)> = parts
            .iter()
            .map(|p| (checksum_of(a, p), p.len() as u64))
            .collect();
        assert_eq!(
            combine_full_object(a, &sums).unwrap(),
            checksum_of(a, &whole),
            "{a}"
        );
        // One part is itself; empty parts change nothing.
        assert_eq!(combine_full_object(a, &sums[..1]).unwrap(), sums[0].0);
        let with_empty = [
            sums[0].clone(),
            (checksum_of(a, b""), 0),
            sums[1].clone(),
            sums[2].clone(),
        ];
        assert_eq!(
            combine_full_object(a, &with_empty).unwrap(),
            checksum_of(a, &whole)
        );
    }
    // Known value: "hello" + " " + "world".
    let pieces: [&[u8]; 3] = [b"hello", b" ", b"world"];
    let sums: Vec<(Checksum, u64)> = pieces
        .iter()
        .map(|p| (checksum_of(Crc32, p), p.len() as u64))
        .collect();
    assert_eq!(
        combine_full_object(Crc32, &sums).unwrap().to_base64(),
        "DUoRhQ=="
    );
}

#[test]
fn full_object_refuses_shas_and_bad_parts() {
    for a in [Sha1, Sha256] {
        assert_eq!(
            combine_full_object(a, &[(checksum_of(a, b"x"), 1)]),
            Err(ChecksumError::UnsupportedType {
                algorithm: a,
                checksum_type: ChecksumType::FullObject
            })
        );
    }
    assert_eq!(combine_full_object(Crc32, &[]), Err(ChecksumError::NoParts));
    assert!(matches!(
        combine_full_object(Crc64Nvme, &[(checksum_of(Crc32, b"x"), 1)]),
        Err(ChecksumError::AlgorithmMismatch { .. })
    ));
    let long = Checksum {
        algorithm: Crc32,
        bytes: vec![0; 8],
    };
    assert!(matches!(
        combine_full_object(Crc32, &[(long, 1)]),
        Err(ChecksumError::WrongLength { found: 8, .. })
    ));
}

#[test]
fn debug_and_errors_are_readable() {
    assert_eq!(
        format!("{:?}", Hasher::new(Sha1)),
        "Hasher { algorithm: Sha1, .. }"
    );
    assert_eq!(
        ChecksumError::UnsupportedType {
            algorithm: Crc64Nvme,
            checksum_type: ChecksumType::Composite
        }
        .to_string(),
        "the COMPOSITE checksum type cannot be used with the CRC64NVME algorithm"
    );
}
