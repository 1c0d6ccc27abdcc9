//! AWS's published SigV2 examples, botocore-generated requests, and the refusals.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::super::verify_request;
use super::*;

const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn creds() -> Credentials {
    Credentials {
        access_key: ACCESS_KEY.to_owned(),
        secret_key: SECRET.to_owned(),
    }
}

fn at(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap())
}

fn head(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

fn auth(signature: &str) -> String {
    format!("AWS {ACCESS_KEY}:{signature}")
}

/// Verifies through the public entry point, so the mechanism choice is covered too.
fn check(parts: &Parts, now: i64, vhost_bucket: Option<&str>) -> Result<Verified, AuthError> {
    verify_request(parts, &creds(), at(now), vhost_bucket)
}

#[track_caller]
fn assert_ok(parts: &Parts, now: i64, vhost_bucket: Option<&str>) {
    let verified = check(parts, now, vhost_bucket).unwrap();
    assert_eq!(verified.access_key, ACCESS_KEY);
    assert_eq!(verified.region, "us-east-1");
    assert_eq!(verified.payload, PayloadMode::Unsigned);
    assert!(verified.chunk_signing.is_none());
}

fn unix(date: &str) -> i64 {
    parse_date(date).unwrap()
}

// ---- AWS's published examples (RESTAuthentication). The page now says "awsexamplebucket1",
// ---- but its signatures were computed with the bucket "johnsmith", which is used here.

#[test]
fn aws_example_object_get() {
    let date = "Tue, 27 Mar 2007 19:36:42 +0000";
    let parts = head(
        "GET",
        "/photos/puppy.jpg",
        &[
            ("host", "johnsmith.s3.amazonaws.com"),
            ("date", date),
            ("authorization", &auth("bWq2s1WEIj+Ydj0vQ697zp+IXMU=")),
        ],
    );
    assert_ok(&parts, unix(date), Some("johnsmith"));
    // The resource includes the bucket: without it (path style) nothing matches.
    assert_eq!(
        check(&parts, unix(date), None).unwrap_err(),
        AuthError::SignatureDoesNotMatch
    );
}

#[test]
fn aws_example_object_put() {
    let date = "Tue, 27 Mar 2007 21:15:45 +0000";
    let parts = head(
        "PUT",
        "/photos/puppy.jpg",
        &[
            ("content-type", "image/jpeg"),
            ("content-length", "94328"),
            ("host", "johnsmith.s3.amazonaws.com"),
            ("date", date),
            ("authorization", &auth("MyyxeRY7whkBe+bq8fHCL/2kKUg=")),
        ],
    );
    assert_ok(&parts, unix(date), Some("johnsmith"));
}

#[test]
fn aws_example_list_and_acl() {
    let date = "Tue, 27 Mar 2007 19:42:41 +0000";
    let list = head(
        "GET",
        "/?prefix=photos&max-keys=50&marker=puppy",
        &[
            ("user-agent", "Mozilla/5.0"),
            ("host", "johnsmith.s3.amazonaws.com"),
            ("date", date),
            ("authorization", &auth("htDYFYduRNen8P9ZfE/s9SuKy0U=")),
        ],
    );
    assert_ok(&list, unix(date), Some("johnsmith"));

    let date = "Tue, 27 Mar 2007 19:44:46 +0000";
    let acl = head(
        "GET",
        "/?acl",
        &[
            ("host", "johnsmith.s3.amazonaws.com"),
            ("date", date),
            ("authorization", &auth("c2WLPFtWHVgbEmeEG93a4cG37dM=")),
        ],
    );
    assert_ok(&acl, unix(date), Some("johnsmith"));
}

#[test]
fn aws_example_delete_with_x_amz_date() {
    let parts = head(
        "DELETE",
        "/johnsmith/photos/puppy.jpg",
        &[
            ("user-agent", "dotnet"),
            ("host", "s3.amazonaws.com"),
            ("date", "Tue, 27 Mar 2007 21:20:27 +0000"),
            ("x-amz-date", "Tue, 27 Mar 2007 21:20:26 +0000"),
            ("authorization", &auth("lx3byBScXR6KzyMaifNkardMwNk=")),
        ],
    );
    let now = unix("Tue, 27 Mar 2007 21:20:26 +0000");
    assert_ok(&parts, now, None);
    // The time checked is x-amz-date's, not Date's.
    assert_ok(&parts, now + 900, None);
    assert_eq!(
        check(&parts, now + 901, None).unwrap_err(),
        AuthError::RequestTimeTooSkewed
    );
}

#[test]
fn aws_example_upload_with_amz_headers() {
    let date = "Tue, 27 Mar 2007 21:06:08 +0000";
    let parts = head(
        "PUT",
        "/db-backup.dat.gz",
        &[
            ("user-agent", "curl/7.15.5"),
            ("host", "static.johnsmith.net:8080"),
            ("date", date),
            ("x-amz-acl", "public-read"),
            ("content-type", "application/x-download"),
            ("content-md5", "4gJE4saaMU4BqNR0kLY+lw=="),
            ("x-amz-meta-reviewedby", "joe@johnsmith.net"),
            ("x-amz-meta-reviewedby", "jane@johnsmith.net"),
            ("x-amz-meta-filechecksum", "0x02661779"),
            ("x-amz-meta-checksumalgorithm", "crc32"),
            ("content-disposition", "attachment; filename=database.dat"),
            ("content-encoding", "gzip"),
            ("content-length", "5913339"),
            ("authorization", &auth("ilyl83RwaSoYIEdixDQcA4OnAnc=")),
        ],
    );
    assert_ok(&parts, unix(date), Some("static.johnsmith.net"));
    // Values are trimmed; a changed amz header value is a different request.
    let mut tampered = parts.clone();
    tampered
        .headers
        .insert("x-amz-acl", http::HeaderValue::from_static("private"));
    assert_eq!(
        check(&tampered, unix(date), Some("static.johnsmith.net")).unwrap_err(),
        AuthError::SignatureDoesNotMatch
    );
}

#[test]
fn aws_example_list_buckets_and_unicode_keys() {
    let date = "Wed, 28 Mar 2007 01:29:59 +0000";
    let service = head(
        "GET",
        "/",
        &[
            ("host", "s3.amazonaws.com"),
            ("date", date),
            ("authorization", &auth("qGdzdERIC03wnaRNKh6OqZehG9s=")),
        ],
    );
    assert_ok(&service, unix(date), None);

    let date = "Wed, 28 Mar 2007 01:49:49 +0000";
    // The path is signed exactly as sent, escapes in mixed case included.
    let unicode = head(
        "GET",
        "/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re",
        &[
            ("host", "s3.amazonaws.com"),
            ("date", date),
            ("authorization", &auth("DNEZGsoieTZ92F3bUfSPQcbGmlM=")),
        ],
    );
    assert_ok(&unicode, unix(date), None);
    let normalized = head(
        "GET",
        "/dictionary/fran%C3%A7ais/pr%C3%A9f%C3%A8re",
        &[
            ("host", "s3.amazonaws.com"),
            ("date", date),
            ("authorization", &auth("DNEZGsoieTZ92F3bUfSPQcbGmlM=")),
        ],
    );
    assert_eq!(
        check(&normalized, unix(date), None).unwrap_err(),
        AuthError::SignatureDoesNotMatch
    );
}

#[test]
fn aws_example_query_string_auth() {
    let parts = head(
        "GET",
        "/photos/puppy.jpg?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D&Expires=1175139620",
        &[("host", "johnsmith.s3.amazonaws.com")],
    );
    assert_ok(&parts, 1_175_139_620, Some("johnsmith"));
    assert_ok(&parts, 1_000_000_000, Some("johnsmith"));
    let expired = check(&parts, 1_175_139_621, Some("johnsmith")).unwrap_err();
    assert_eq!(expired, AuthError::Expired);
    assert_eq!(
        (
            expired.s3_code().as_str(),
            expired.s3_code().status().as_u16(),
            expired.to_string().as_str()
        ),
        ("AccessDenied", 403, "Request has expired")
    );
    // An unencoded `+` in the signature (decoded as a space) still verifies.
    let raw_plus = head(
        "GET",
        "/photos/puppy.jpg?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=NpgCjnDzrM+WFzoENXmpNDUsSn8%3D&Expires=1175139620",
        &[("host", "johnsmith.s3.amazonaws.com")],
    );
    assert_ok(&raw_plus, 1_175_139_620, Some("johnsmith"));
}

// ---- Requests produced by botocore 1.43 (signature_version="s3"), time frozen at
// ---- 1700000000 (Tue, 14 Nov 2023 22:13:20 GMT), path and virtual-host style.

const BOTO_TIME: i64 = 1_700_000_000;
const BOTO_DATE: &str = "Tue, 14 Nov 2023 22:13:20 GMT";

/// `(path-style URI, virtual-host URI)` of each presigned URL.
const BOTO_PRESIGNED: &[(&str, &str)] = &[
    (
        "/photos/2024/%C3%A9t%C3%A9%20%E2%9C%93.jpg?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=VxLGx3g4iOXbd9ivxULRnzsy%2BHU%3D&Expires=1700000600",
        "/2024/%C3%A9t%C3%A9%20%E2%9C%93.jpg?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=VxLGx3g4iOXbd9ivxULRnzsy%2BHU%3D&Expires=1700000600",
    ),
    (
        "/photos/a%20b%2Bc?response-content-disposition=attachment%3B%20filename%3D%22x%20y.jpg%22&response-content-type=image%2Fjpeg&AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=eLNC4Xf2s8p2iAMpNWEekDAB5E4%3D&Expires=1700003600",
        "/a%20b%2Bc?response-content-disposition=attachment%3B%20filename%3D%22x%20y.jpg%22&response-content-type=image%2Fjpeg&AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=eLNC4Xf2s8p2iAMpNWEekDAB5E4%3D&Expires=1700003600",
    ),
    (
        "/photos/up.txt?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=iFSEO7R3x87Sw6UratpkWjUYdRI%3D&content-type=text%2Fplain&x-amz-meta-owner=ann&Expires=1700000900",
        "/up.txt?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=iFSEO7R3x87Sw6UratpkWjUYdRI%3D&content-type=text%2Fplain&x-amz-meta-owner=ann&Expires=1700000900",
    ),
    (
        "/photos/big?uploadId=abc123&partNumber=2&AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=palXLAXnwGFTLX8fgfpWZd93dvw%3D&Expires=1700000900",
        "/big?uploadId=abc123&partNumber=2&AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=palXLAXnwGFTLX8fgfpWZd93dvw%3D&Expires=1700000900",
    ),
    (
        "/photos?list-type=2&prefix=2024%2F&encoding-type=url&AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=A7WVdn%2F1r44tcasBqNKJcadTQl0%3D&Expires=1700000900",
        "/?list-type=2&prefix=2024%2F&encoding-type=url&AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=A7WVdn%2F1r44tcasBqNKJcadTQl0%3D&Expires=1700000900",
    ),
];

#[test]
fn botocore_presigned_urls() {
    for (path_style, virtual_host) in BOTO_PRESIGNED {
        let method = if path_style.contains("up.txt") || path_style.contains("uploadId") {
            "PUT"
        } else {
            "GET"
        };
        let parts = head(method, path_style, &[("host", "127.0.0.1:9000")]);
        assert_ok(&parts, BOTO_TIME, None);
        let parts = head(
            method,
            virtual_host,
            &[("host", "photos.s3.example.com:9000")],
        );
        assert_ok(&parts, BOTO_TIME, Some("photos"));
        // The presigned method is part of what was signed.
        let other = if method == "GET" { "DELETE" } else { "GET" };
        let parts = head(other, path_style, &[("host", "127.0.0.1:9000")]);
        assert_eq!(
            check(&parts, BOTO_TIME, None).unwrap_err(),
            AuthError::SignatureDoesNotMatch,
            "{path_style}"
        );
    }
}

#[test]
fn presigned_query_headers_stand_for_headers() {
    // botocore moved Content-Type and x-amz-meta-owner into the query; a client that also
    // sends them as headers signs the same thing.
    let uri = BOTO_PRESIGNED[2].0;
    let parts = head(
        "PUT",
        uri,
        &[
            ("host", "127.0.0.1:9000"),
            ("content-type", "text/plain"),
            ("x-amz-meta-owner", "ann"),
        ],
    );
    assert_ok(&parts, BOTO_TIME, None);
    // Changing the value in the query is tampering.
    let tampered = uri.replace("x-amz-meta-owner=ann", "x-amz-meta-owner=bob");
    let parts = head("PUT", &tampered, &[("host", "127.0.0.1:9000")]);
    assert_eq!(
        check(&parts, BOTO_TIME, None).unwrap_err(),
        AuthError::SignatureDoesNotMatch
    );
}

#[test]
fn presigned_tampering_is_refused() {
    let (uri, _) = BOTO_PRESIGNED[3];
    for tampered in [
        uri.replace("partNumber=2", "partNumber=3"),
        uri.replace("uploadId=abc123", "uploadId=abc124"),
        uri.replace("Expires=1700000900", "Expires=1700009999"),
        uri.replace("/photos/big", "/photos/bigger"),
        uri.replace("palXLAXnwGFTLX8fgfpWZd93dvw", "palXLAXnwGFTLX8fgfpWZd93dvW"),
        uri.replace(
            "Signature=palXLAXnwGFTLX8fgfpWZd93dvw%3D",
            "Signature=%21%21",
        ),
    ] {
        let parts = head("PUT", &tampered, &[("host", "127.0.0.1:9000")]);
        assert_eq!(
            check(&parts, BOTO_TIME, None).unwrap_err(),
            AuthError::SignatureDoesNotMatch,
            "{tampered}"
        );
    }
    // A plain parameter is not signed in SigV2, as on AWS.
    let extra = format!("{uri}&x-id=UploadPart");
    assert_ok(
        &head("PUT", &extra, &[("host", "127.0.0.1:9000")]),
        BOTO_TIME,
        None,
    );
}

/// `(method, path-style URI, virtual-host URI, extra headers, signature)` of header-signed
/// requests.
type BotoRequest = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

const BOTO_SIGNED: &[BotoRequest] = &[
    (
        "PUT",
        "/photos/notes/%C3%A4.txt",
        "/notes/%C3%A4.txt",
        &[
            ("content-type", "text/plain"),
            ("x-amz-meta-Owner", "ann"),
            ("content-md5", "XUFAKrxLKna5cZ2REBfFkg=="),
            ("expect", "100-continue"),
        ],
        "S8DFpoBcqe0COE6daNJA38Y4wAs=",
    ),
    (
        "HEAD",
        "/photos/k?versionId=null",
        "/k?versionId=null",
        &[],
        "ZYt9Hnz6yEHEGJrpVq99UB9sjs8=",
    ),
    (
        "POST",
        "/photos?delete",
        "/?delete",
        &[
            ("x-amz-checksum-crc32", "CEaAGw=="),
            ("x-amz-sdk-checksum-algorithm", "CRC32"),
        ],
        "ajrVscqqUJMngYzd9MTp3S4WZAc=",
    ),
    (
        "POST",
        "/photos/big?uploads",
        "/big?uploads",
        &[],
        "ytr40SCUZ1NAFzLKhLx7sOlmp6Y=",
    ),
];

fn boto_head(
    method: &str,
    uri: &str,
    host: &str,
    extra: &[(&str, &str)],
    signature: &str,
) -> Parts {
    let authorization = auth(signature);
    let mut headers = vec![
        ("host", host),
        ("date", BOTO_DATE),
        ("authorization", authorization.as_str()),
    ];
    headers.extend_from_slice(extra);
    head(method, uri, &headers)
}

#[test]
fn botocore_signed_headers() {
    for (method, path_style, virtual_host, extra, signature) in BOTO_SIGNED {
        let parts = boto_head(method, path_style, "127.0.0.1:9000", extra, signature);
        assert_ok(&parts, BOTO_TIME, None);
        let parts = boto_head(
            method,
            virtual_host,
            "photos.s3.example.com:9000",
            extra,
            signature,
        );
        assert_ok(&parts, BOTO_TIME, Some("photos"));
    }
    let list_buckets = boto_head(
        "GET",
        "/",
        "127.0.0.1:9000",
        &[],
        "AD2dmWBxCpTLJ1JDqEeapz5jtuc=",
    );
    assert_ok(&list_buckets, BOTO_TIME, None);
}

#[test]
fn header_tampering_is_refused() {
    let (method, uri, _, extra, signature) = BOTO_SIGNED[0];
    type Variant<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);
    let variants: [Variant<'_>; 5] = [
        ("POST", uri, extra.to_vec()),
        (method, "/photos/notes/%C3%A5.txt", extra.to_vec()),
        (method, uri, [extra, &[("x-amz-meta-extra", "1")]].concat()),
        (
            method,
            uri,
            vec![
                ("content-type", "text/html"),
                ("x-amz-meta-Owner", "ann"),
                ("content-md5", "XUFAKrxLKna5cZ2REBfFkg=="),
            ],
        ),
        (
            method,
            uri,
            vec![("content-type", "text/plain"), ("x-amz-meta-Owner", "ann")],
        ),
    ];
    for (method, uri, extra) in variants {
        let parts = boto_head(method, uri, "127.0.0.1:9000", &extra, signature);
        assert_eq!(
            check(&parts, BOTO_TIME, None).unwrap_err(),
            AuthError::SignatureDoesNotMatch,
            "{method} {uri} {extra:?}"
        );
    }
    // Another date is another string to sign.
    let mut parts = boto_head(method, uri, "127.0.0.1:9000", extra, signature);
    parts.headers.insert(
        DATE,
        http::HeaderValue::from_static("Tue, 14 Nov 2023 22:13:21 GMT"),
    );
    assert_eq!(
        check(&parts, BOTO_TIME, None).unwrap_err(),
        AuthError::SignatureDoesNotMatch
    );
}

// ---- Time, keys and malformed requests.

#[test]
fn header_auth_clock_skew() {
    let (method, uri, _, extra, signature) = BOTO_SIGNED[1];
    let parts = boto_head(method, uri, "127.0.0.1:9000", extra, signature);
    for ok in [BOTO_TIME - 900, BOTO_TIME, BOTO_TIME + 900] {
        assert_ok(&parts, ok, None);
    }
    for skewed in [BOTO_TIME - 901, BOTO_TIME + 901, 0] {
        let error = check(&parts, skewed, None).unwrap_err();
        assert_eq!(error, AuthError::RequestTimeTooSkewed);
        assert_eq!(
            (error.s3_code().as_str(), error.s3_code().status().as_u16()),
            ("RequestTimeTooSkewed", 403)
        );
    }
    let undated = head(
        method,
        uri,
        &[("host", "h"), ("authorization", &auth(signature))],
    );
    assert_eq!(
        check(&undated, BOTO_TIME, None).unwrap_err(),
        AuthError::InvalidDate
    );
    let garbage = head(
        method,
        uri,
        &[
            ("host", "h"),
            ("date", "yesterday"),
            ("authorization", &auth(signature)),
        ],
    );
    assert_eq!(
        check(&garbage, BOTO_TIME, None).unwrap_err(),
        AuthError::InvalidDate
    );
}

/// Signs `string_to_sign` as a client would.
fn sign(string_to_sign: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, SECRET.as_bytes());
    crate::checksum::base64_encode(hmac::sign(&key, string_to_sign.as_bytes()).as_ref())
}

#[test]
fn every_x_amz_date_convention_is_accepted() {
    let date = "Tue, 14 Nov 2023 22:13:20 GMT";
    let amz_date = "Tue, 14 Nov 2023 22:13:25 GMT";
    let conventions = [
        // botocore / MinIO: Date line, x-amz-date among the amz headers.
        format!("GET\n\n\n{date}\nx-amz-date:{amz_date}\n/b/k"),
        // AWS text / boto: empty Date line.
        format!("GET\n\n\n\nx-amz-date:{amz_date}\n/b/k"),
        // AWS example: x-amz-date as the Date line.
        format!("GET\n\n\n{amz_date}\n/b/k"),
    ];
    for string_to_sign in &conventions {
        let parts = head(
            "GET",
            "/b/k",
            &[
                ("date", date),
                ("x-amz-date", amz_date),
                ("authorization", &auth(&sign(string_to_sign))),
            ],
        );
        assert_ok(&parts, BOTO_TIME, None);
    }
    // Without a Date header, x-amz-date alone dates the request.
    let parts = head(
        "GET",
        "/b/k",
        &[
            ("x-amz-date", amz_date),
            ("authorization", &auth(&sign(&conventions[1]))),
        ],
    );
    assert_ok(&parts, BOTO_TIME, None);
}

#[test]
fn sub_resources_are_sorted_and_filtered() {
    let string_to_sign =
        "GET\n\n\nTue, 14 Nov 2023 22:13:20 GMT\n/b/k?response-content-type=a+b/c&versionId=v 1";
    let parts = head(
        "GET",
        "/b/k?versionId=v%201&max-keys=3&response-content-type=a+b%2Fc&x-id=GetObject",
        &[
            ("date", BOTO_DATE),
            ("authorization", &auth(&sign(string_to_sign))),
        ],
    );
    assert_ok(&parts, BOTO_TIME, None);
    // `uploads=` may be signed with or without its `=`.
    for signed in ["/b/k?uploads=", "/b/k?uploads"] {
        let parts = head(
            "POST",
            "/b/k?uploads=",
            &[
                ("date", BOTO_DATE),
                (
                    "authorization",
                    &auth(&sign(&format!("POST\n\n\n{BOTO_DATE}\n{signed}"))),
                ),
            ],
        );
        assert_ok(&parts, BOTO_TIME, None);
    }
    // A bucket is `/b/` or `/b`, whatever the request's own spelling or style.
    for (uri, vhost) in [
        ("/b?location", None),
        ("/b/?location", None),
        ("/?location", Some("b")),
    ] {
        for signed in ["/b/?location", "/b?location"] {
            let parts = head(
                "GET",
                uri,
                &[
                    ("date", BOTO_DATE),
                    (
                        "authorization",
                        &auth(&sign(&format!("GET\n\n\n{BOTO_DATE}\n{signed}"))),
                    ),
                ],
            );
            assert_ok(&parts, BOTO_TIME, vhost);
        }
    }
    // But an object is never its bucket.
    let parts = head(
        "GET",
        "/b/k",
        &[
            ("date", BOTO_DATE),
            (
                "authorization",
                &auth(&sign(&format!("GET\n\n\n{BOTO_DATE}\n/b/k/"))),
            ),
        ],
    );
    assert_eq!(
        check(&parts, BOTO_TIME, None).unwrap_err(),
        AuthError::SignatureDoesNotMatch
    );
}

#[test]
fn wrong_credentials_are_refused() {
    let (method, uri, _, extra, signature) = BOTO_SIGNED[1];
    let parts = boto_head(method, uri, "h", extra, signature);
    let other_key = Credentials {
        access_key: "AKIAOTHER".to_owned(),
        secret_key: SECRET.to_owned(),
    };
    let error = verify_request(&parts, &other_key, at(BOTO_TIME), None).unwrap_err();
    assert_eq!(error, AuthError::InvalidAccessKeyId(ACCESS_KEY.to_owned()));
    assert_eq!(
        (error.s3_code().as_str(), error.s3_code().status().as_u16()),
        ("InvalidAccessKeyId", 403)
    );

    let other_secret = Credentials {
        access_key: ACCESS_KEY.to_owned(),
        secret_key: "not the secret".to_owned(),
    };
    let error = verify_request(&parts, &other_secret, at(BOTO_TIME), None).unwrap_err();
    assert_eq!(error, AuthError::SignatureDoesNotMatch);
    assert!(!format!("{error:?}{error}").contains(signature));
}

#[test]
fn malformed_requests_are_refused() {
    for value in [
        "AWS",
        "AWS ",
        "AWS AKIAIOSFODNN7EXAMPLE",
        "AWS :sig",
        "AWS key:",
    ] {
        let parts = head(
            "GET",
            "/b/k",
            &[("date", BOTO_DATE), ("authorization", value)],
        );
        let error = check(&parts, BOTO_TIME, None).unwrap_err();
        assert!(
            matches!(error, AuthError::MalformedHeader(_)),
            "{value:?}: {error:?}"
        );
        assert_eq!(error.s3_code().as_str(), "AuthorizationHeaderMalformed");
    }
    for uri in [
        "/b/k?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=abc",
        "/b/k?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1",
        "/b/k?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=abc&Expires=soon",
        "/b/k?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=abc&Expires=-1",
        "/b/k?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=a&Signature=b&Expires=1",
    ] {
        let error = check(&head("GET", uri, &[]), BOTO_TIME, None).unwrap_err();
        assert!(
            matches!(error, AuthError::MalformedQuery(_)),
            "{uri}: {error:?}"
        );
        assert_eq!(
            error.s3_code().as_str(),
            "AuthorizationQueryParametersError"
        );
    }
    // Header and query mechanisms together.
    let both = head(
        "GET",
        "/b/k?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=abc&Expires=1",
        &[("date", BOTO_DATE), ("authorization", &auth("abc"))],
    );
    assert_eq!(
        check(&both, BOTO_TIME, None).unwrap_err(),
        AuthError::ConflictingMechanisms
    );
}

#[test]
fn mechanism_choice() {
    let v2 = |headers: &[(&str, &str)], uri: &str| applies(&head("GET", uri, headers));
    assert!(v2(&[("authorization", "AWS a:b")], "/"));
    assert!(v2(&[("authorization", "AWS")], "/"));
    assert!(v2(&[], "/?AWSAccessKeyId=a&Signature=b&Expires=1"));
    assert!(!v2(&[], "/"));
    assert!(!v2(
        &[("authorization", "AWS4-HMAC-SHA256 Credential=x")],
        "/"
    ));
    assert!(!v2(&[("authorization", "AWSX a:b")], "/"));
    // X-Amz-Algorithm means SigV4, which reports any conflict.
    assert!(!v2(
        &[("authorization", "AWS a:b")],
        "/?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    ));
    assert!(!v2(
        &[],
        "/?AWSAccessKeyId=a&X-Amz-Algorithm=AWS4-HMAC-SHA256"
    ));
    let conflict = check(
        &head(
            "GET",
            "/?X-Amz-Algorithm=AWS4-HMAC-SHA256",
            &[("authorization", "AWS a:b")],
        ),
        BOTO_TIME,
        None,
    )
    .unwrap_err();
    assert_eq!(conflict, AuthError::ConflictingMechanisms);
    // No mechanism at all is still SigV4's "no authentication".
    assert_eq!(
        check(&head("GET", "/b/k", &[]), BOTO_TIME, None).unwrap_err(),
        AuthError::MissingAuthentication
    );
}

#[test]
fn dates() {
    let t = 1_175_024_202; // Tue, 27 Mar 2007 19:36:42 UTC
    for text in [
        "Tue, 27 Mar 2007 19:36:42 +0000",
        "Tue, 27 Mar 2007 19:36:42 GMT",
        "Tue, 27 Mar 2007 19:36:42 UTC",
        "27 Mar 2007 19:36:42 GMT",
        "Tue, 27 Mar 2007 21:36:42 +0200",
        "Tue, 27 Mar 2007 12:06:42 -0730",
        "20070327T193642Z",
    ] {
        assert_eq!(parse_date(text), Some(t), "{text}");
    }
    assert_eq!(
        parse_date("Thu, 1 Mar 2007 00:00:00 GMT"),
        Some(1_172_707_200)
    );
    for bad in [
        "",
        "Tue, 27 Mar 2007 19:36:42",
        "Tue, 27 Mar 2007 19:36:42 +00",
        "Tue, 27 Mar 2007 19:36:42 +2400",
        "Tue, 27 Mar 2007 19:36:42 PST",
        "Tue, 32 Mar 2007 19:36:42 GMT",
        "Tue, 127 Mar 2007 19:36:42 GMT",
        "Tuesday, 27 Mar 2007 19:36:42 GMT",
        "Tue, 27 Mar 2007 19:36:42 GMT extra",
        "1175024202",
    ] {
        assert_eq!(parse_date(bad), None, "{bad}");
    }
}
