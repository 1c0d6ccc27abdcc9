use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;
use crate::checksum::checksum_of;
use ChecksumAlgorithm::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn parse(pairs: &[(&str, &str)]) -> Result<ChecksumExpectation, S3Error> {
    parse_request_checksums(&headers(pairs))
}

#[track_caller]
fn assert_error(result: Result<impl std::fmt::Debug, S3Error>, code: S3ErrorCode, message: &str) {
    let err = result.unwrap_err();
    assert_eq!((err.code, err.message.as_str()), (code, message));
}

fn trailer(name: &str, value: &str) -> Vec<(String, String)> {
    vec![(name.to_owned(), value.to_owned())]
}

const MULTIPLE_MSG: &str =
    "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.";

#[test]
fn nothing_declared() {
    let exp = parse(&[
        ("content-type", "text/plain"),
        ("x-amz-checksum-mode", "ENABLED"),
    ])
    .unwrap();
    assert_eq!(exp, ChecksumExpectation::default());
    assert!(exp.hasher().is_none());
    assert_eq!(verify(&exp, None, &[]).unwrap(), None);
    // A checksum the server computed on its own is what gets recorded.
    let computed = checksum_of(Crc64Nvme, b"hello");
    assert_eq!(verify(&exp, Some(&computed), &[]).unwrap(), Some(computed));
}

#[test]
fn header_checksum_verified_for_every_algorithm() {
    for a in ChecksumAlgorithm::ALL {
        let good = checksum_of(a, b"hello world");
        let exp = parse(&[(a.header_name(), &good.to_base64())]).unwrap();
        assert_eq!(exp.algorithm, Some(a));
        assert_eq!(exp.header_value.as_ref(), Some(&good));
        assert_eq!(exp.trailer, None);

        let mut hasher = exp.hasher().unwrap();
        hasher.update(b"hello world");
        let computed = hasher.finish();
        assert_eq!(
            verify(&exp, Some(&computed), &[]).unwrap(),
            Some(good.clone())
        );

        let other = checksum_of(a, b"hello there");
        assert_error(
            verify(&exp, Some(&other), &[]),
            S3ErrorCode::BadDigest,
            &format!(
                "The {} you specified did not match the calculated checksum.",
                a.name()
            ),
        );
    }
}

#[test]
fn sdk_algorithm_must_match_the_header() {
    let crc = checksum_of(Crc32, b"x").to_base64();
    let exp = parse(&[
        ("x-amz-sdk-checksum-algorithm", "crc32"),
        ("x-amz-checksum-crc32", &crc),
    ])
    .unwrap();
    assert_eq!(exp.algorithm, Some(Crc32));
    assert_error(
        parse(&[
            ("x-amz-sdk-checksum-algorithm", "SHA256"),
            ("x-amz-checksum-crc32", &crc),
        ]),
        S3ErrorCode::InvalidRequest,
        "Value for x-amz-sdk-checksum-algorithm header is invalid.",
    );
    assert_error(
        parse(&[("x-amz-sdk-checksum-algorithm", "CRC32")]),
        S3ErrorCode::InvalidRequest,
        "x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or \
         x-amz-trailer headers were found.",
    );
    assert_error(
        parse(&[
            ("x-amz-sdk-checksum-algorithm", "MD5"),
            ("x-amz-checksum-crc32", &crc),
        ]),
        S3ErrorCode::InvalidRequest,
        "Checksum algorithm provided is unsupported. Please try again with any of the valid \
         types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]",
    );
}

#[test]
fn more_than_one_checksum_is_refused() {
    let crc32 = checksum_of(Crc32, b"x").to_base64();
    let sha1 = checksum_of(Sha1, b"x").to_base64();
    assert_error(
        parse(&[
            ("x-amz-checksum-crc32", &crc32),
            ("x-amz-checksum-sha1", &sha1),
        ]),
        S3ErrorCode::InvalidRequest,
        MULTIPLE_MSG,
    );
    // A header value and a trailer are two checksums too.
    assert_error(
        parse(&[
            ("x-amz-checksum-crc32", &crc32),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
        ]),
        S3ErrorCode::InvalidRequest,
        MULTIPLE_MSG,
    );
}

#[test]
fn malformed_values_are_refused() {
    for (name, value) in [
        ("x-amz-checksum-crc32", "DUoRhQ"),             // no padding
        ("x-amz-checksum-crc32", "jSnVw/bqjr4="),       // 8 bytes
        ("x-amz-checksum-crc64nvme", "DUoRhQ=="),       // 4 bytes
        ("x-amz-checksum-sha256", ""),                  // empty
        ("x-amz-checksum-sha1", "not base64 at all!!"), // alphabet
    ] {
        assert_error(
            parse(&[(name, value)]),
            S3ErrorCode::InvalidRequest,
            &format!("Value for {name} header is invalid."),
        );
    }
    // The same header twice is one unusable value.
    assert_error(
        parse(&[
            ("x-amz-checksum-crc32", "DUoRhQ=="),
            ("x-amz-checksum-crc32", "DUoRhQ=="),
        ]),
        S3ErrorCode::InvalidRequest,
        "Value for x-amz-checksum-crc32 header is invalid.",
    );
    assert_error(
        parse(&[("x-amz-checksum-md5", "1B2M2Y8AsgTpgAmY7PhCfg==")]),
        S3ErrorCode::InvalidRequest,
        "The algorithm type you specified in x-amz-checksum- header is invalid.",
    );
}

#[test]
fn content_md5() {
    let exp = parse(&[("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==")]).unwrap();
    assert_eq!(
        exp.content_md5,
        Some([
            0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04, 0xe9, 0x80, 0x09, 0x98, 0xec, 0xf8,
            0x42, 0x7e
        ])
    );
    assert_eq!(exp.algorithm, None);
    for bad in ["", "1B2M2Y8AsgTpgAmY7PhCfg", "DUoRhQ==", "zzzz!zzz"] {
        assert_error(
            parse(&[("content-md5", bad)]),
            S3ErrorCode::InvalidDigest,
            "The Content-MD5 you specified is not valid.",
        );
    }
    assert_error(
        parse(&[
            ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
            ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
        ]),
        S3ErrorCode::InvalidDigest,
        "The Content-MD5 you specified is not valid.",
    );
}

#[test]
fn trailer_checksum_verified() {
    let body = b"hello world";
    for a in ChecksumAlgorithm::ALL {
        let exp = parse(&[
            ("x-amz-sdk-checksum-algorithm", a.name()),
            ("x-amz-trailer", a.header_name()),
        ])
        .unwrap();
        assert_eq!((exp.algorithm, exp.trailer), (Some(a), Some(a)));
        assert_eq!(exp.header_value, None);
        let computed = checksum_of(a, body);
        let value = computed.to_base64();
        assert_eq!(
            verify(&exp, Some(&computed), &trailer(a.header_name(), &value)).unwrap(),
            Some(computed.clone())
        );
        let wrong = checksum_of(a, b"other").to_base64();
        assert_error(
            verify(&exp, Some(&computed), &trailer(a.header_name(), &wrong)),
            S3ErrorCode::BadDigest,
            &format!(
                "The {} you specified did not match the calculated checksum.",
                a.name()
            ),
        );
        assert_error(
            verify(
                &exp,
                Some(&computed),
                &trailer(a.header_name(), "invalid_checksum"),
            ),
            S3ErrorCode::InvalidRequest,
            &format!("Value for {} trailing header is invalid.", a.header_name()),
        );
    }
}

#[test]
fn trailer_must_be_the_announced_one() {
    const MALFORMED: &str = "The request contained trailing data that was not well-formed or \
                             did not conform to our published schema.";
    let exp = parse(&[("x-amz-trailer", "x-amz-checksum-crc64nvme")]).unwrap();
    let computed = checksum_of(Crc64Nvme, b"hello");
    let value = computed.to_base64();
    assert_eq!(value, "M3eFcAZSQlc=");
    // Announced but missing.
    assert_error(
        verify(&exp, Some(&computed), &[]),
        S3ErrorCode::InvalidRequest,
        MALFORMED,
    );
    // Another name.
    assert_error(
        verify(&exp, Some(&computed), &trailer("invalid_trailer", &value)),
        S3ErrorCode::InvalidRequest,
        MALFORMED,
    );
    // Twice.
    let twice = [
        trailer("x-amz-checksum-crc64nvme", &value),
        trailer("x-amz-checksum-crc64nvme", &value),
    ]
    .concat();
    assert_error(
        verify(&exp, Some(&computed), &twice),
        S3ErrorCode::InvalidRequest,
        MALFORMED,
    );
    // Not announced at all.
    let none = parse(&[]).unwrap();
    assert_error(
        verify(
            &none,
            Some(&computed),
            &trailer("x-amz-checksum-crc64nvme", &value),
        ),
        S3ErrorCode::InvalidRequest,
        MALFORMED,
    );
    // The right one passes.
    assert_eq!(
        verify(
            &exp,
            Some(&computed),
            &trailer("x-amz-checksum-crc64nvme", &value)
        )
        .unwrap(),
        Some(computed)
    );
}

#[test]
fn trailer_header_must_name_one_checksum() {
    for bad in [
        "x-amz-checksum-md5",
        "content-md5",
        "x-amz-checksum-crc32,x-amz-checksum-sha1",
        "",
    ] {
        assert_error(
            parse(&[("x-amz-trailer", bad)]),
            S3ErrorCode::InvalidRequest,
            "The value specified in the x-amz-trailer header is not supported",
        );
    }
    assert_error(
        parse(&[
            ("x-amz-sdk-checksum-algorithm", "SHA1"),
            ("x-amz-trailer", "x-amz-checksum-crc64nvme"),
        ]),
        S3ErrorCode::InvalidRequest,
        "Value for x-amz-sdk-checksum-algorithm header is invalid.",
    );
    // Case and surrounding spaces do not matter.
    let exp = parse(&[("x-amz-trailer", " X-Amz-Checksum-CRC32C ")]).unwrap();
    assert_eq!(exp.trailer, Some(Crc32c));
}

#[test]
fn a_missing_or_mismatched_computation_is_an_internal_error() {
    let value = checksum_of(Crc32, b"x");
    let exp = parse(&[("x-amz-checksum-crc32", &value.to_base64())]).unwrap();
    for computed in [None, Some(checksum_of(Sha256, b"x"))] {
        let err = verify(&exp, computed.as_ref(), &[]).unwrap_err();
        assert_eq!(err.code, S3ErrorCode::InternalError);
    }
}
