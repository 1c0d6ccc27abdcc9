//! The SigV4 canonical request, built from a request exactly as it was received.
//!
//! Contract:
//! - Canonical URI: the raw path as sent (S3 neither normalizes nor re-encodes it; an empty
//!   path is `/`). [`normalized_path`] gives the one alternative the verifier also tries: the
//!   same path with every byte in RFC 3986 form (unreserved bytes literal, everything else
//!   `%XX` uppercase, `%2F` kept encoded), for clients that send a byte unencoded but sign it
//!   encoded. Both forms decode to the same bytes, so neither changes what the request names.
//! - Canonical query: every `&`-separated parameter (empty pieces skipped) is split at its first
//!   `=` (no `=` means an empty value), percent-decoded (`+` is a space, as AWS's own signers
//!   decode it; a malformed escape stays literal), re-encoded with AWS's rules (unreserved
//!   `A-Za-z0-9-_.~` literal, all else `%XX` uppercase, `/` included) and sorted by name, then
//!   value. `X-Amz-Signature` is left out when the signature travels in the query.
//! - Canonical headers: for each signed name in the order given, the values of every header
//!   with that name, each trimmed of spaces with inner runs of spaces collapsed to one, joined
//!   with `,`. `host` falls back to the URI authority (HTTP/2 has no Host header). A signed
//!   header the request does not carry canonicalizes to an empty value.
//! - Everything works on bytes: header values and query bytes need not be UTF-8.

use http::request::Parts;

/// A decoded query parameter: `(name, value)`.
pub(super) type QueryParam = (Vec<u8>, Vec<u8>);

/// Decodes a raw query string into its parameters, in order.
pub(super) fn parse_query(raw: Option<&str>) -> Vec<QueryParam> {
    let Some(raw) = raw else { return Vec::new() };
    raw.split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            (
                percent_decode(name.as_bytes(), true),
                percent_decode(value.as_bytes(), true),
            )
        })
        .collect()
}

/// The canonical query string of `params`, leaving out any parameter named `skip`.
pub(super) fn canonical_query(params: &[QueryParam], skip: Option<&[u8]>) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .filter(|(name, _)| Some(name.as_slice()) != skip)
        .map(|(name, value)| (uri_encode(name, true), uri_encode(value, true)))
        .collect();
    encoded.sort();
    let mut out = String::new();
    for (i, (name, value)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// The raw path of the request as sent (`/` when empty).
pub(super) fn raw_path(parts: &Parts) -> &str {
    match parts.uri.path() {
        "" => "/",
        path => path,
    }
}

/// `raw` with every byte in RFC 3986 form; escapes are re-encoded uppercase, never decoded
/// into a reserved character (so `%2F` stays `%2F`).
pub(super) fn normalized_path(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if let Some(decoded) = escape_at(bytes, i) {
            push_byte(&mut out, decoded, true);
            i += 3;
        } else {
            push_byte(&mut out, b, false);
            i += 1;
        }
    }
    out
}

/// The canonical header block: one `name:value\n` line per signed header.
pub(super) fn canonical_headers(parts: &Parts, signed: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for name in signed {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        let mut values = parts.headers.get_all(*name).iter().peekable();
        if *name == "host" && values.peek().is_none() {
            if let Some(authority) = parts.uri.authority() {
                push_trimmed(&mut out, authority.as_str().as_bytes());
            }
        }
        for (i, value) in values.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_trimmed(&mut out, value.as_bytes());
        }
        out.push(b'\n');
    }
    out
}

/// The canonical request:
/// method \n uri \n query \n headers \n signed-headers \n payload-hash.
pub(super) fn canonical_request(
    method: &str,
    uri: &str,
    query: &str,
    headers: &[u8],
    signed_headers: &str,
    payload_hash: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + headers.len());
    for part in [method.as_bytes(), uri.as_bytes(), query.as_bytes(), headers] {
        out.extend_from_slice(part);
        out.push(b'\n');
    }
    out.extend_from_slice(signed_headers.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash.as_bytes());
    out
}

/// Appends `value` without leading/trailing spaces and with inner runs of spaces collapsed.
fn push_trimmed(out: &mut Vec<u8>, value: &[u8]) {
    let mut pending_space = false;
    let mut started = false;
    for &b in value {
        if b == b' ' {
            pending_space = started;
            continue;
        }
        if pending_space {
            out.push(b' ');
            pending_space = false;
        }
        started = true;
        out.push(b);
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// AWS URI encoding of `bytes`: unreserved bytes literal, `/` literal unless `encode_slash`,
/// everything else `%XX` with uppercase hex.
pub(super) fn uri_encode(bytes: &[u8], encode_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b == b'/' && !encode_slash {
            out.push('/');
        } else {
            push_byte(&mut out, b, true);
        }
    }
    out
}

/// Pushes `b` literally if it is unreserved (or an unescaped `/` when `from_escape` is false),
/// else as `%XX`.
fn push_byte(out: &mut String, b: u8, from_escape: bool) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    if is_unreserved(b) || (b == b'/' && !from_escape) {
        out.push(char::from(b));
    } else {
        out.push('%');
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// The byte encoded by a well-formed `%XX` escape starting at `bytes[i]`.
fn escape_at(bytes: &[u8], i: usize) -> Option<u8> {
    match bytes.get(i..i + 3)? {
        [b'%', hi, lo] => Some(hex_digit(*hi)? << 4 | hex_digit(*lo)?),
        _ => None,
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `input`; a malformed escape is kept literally.
fn percent_decode(input: &[u8], plus_as_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        if let Some(decoded) = escape_at(input, i) {
            out.push(decoded);
            i += 3;
        } else {
            out.push(if b == b'+' && plus_as_space { b' ' } else { b });
            i += 1;
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::builder().uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn query_is_decoded_reencoded_and_sorted() {
        let params = parse_query(Some("prefix=J&max-keys=2"));
        assert_eq!(canonical_query(&params, None), "max-keys=2&prefix=J");

        let params = parse_query(Some("lifecycle"));
        assert_eq!(canonical_query(&params, None), "lifecycle=");

        let params = parse_query(Some("a=1&&b=&c"));
        assert_eq!(canonical_query(&params, None), "a=1&b=&c=");

        // Same name sorts by value; `+` is a space; escapes normalize to uppercase.
        let params = parse_query(Some("k=b&k=a&s=x+y&t=%2f%7e&u=%E2%82%AC&v=a%2Bb"));
        assert_eq!(
            canonical_query(&params, None),
            "k=a&k=b&s=x%20y&t=%2F~&u=%E2%82%AC&v=a%2Bb"
        );

        // Characters AWS encodes although URLs allow them literally.
        let params = parse_query(Some("p=a/b:c*d'e(f)!$,;@"));
        assert_eq!(
            canonical_query(&params, None),
            "p=a%2Fb%3Ac%2Ad%27e%28f%29%21%24%2C%3B%40"
        );

        // A malformed escape stays literal, so its `%` is encoded.
        let params = parse_query(Some("p=%zz%4"));
        assert_eq!(canonical_query(&params, None), "p=%25zz%254");
    }

    #[test]
    fn query_skips_the_signature_parameter() {
        let params = parse_query(Some(
            "X-Amz-Signature=abc&X-Amz-Date=1&x-amz-signature=keep",
        ));
        assert_eq!(
            canonical_query(&params, Some(b"X-Amz-Signature")),
            "X-Amz-Date=1&x-amz-signature=keep"
        );
    }

    #[test]
    fn normalized_path_fixes_only_the_encoding() {
        assert_eq!(normalized_path("/test$file.text"), "/test%24file.text");
        assert_eq!(normalized_path("/test%24file.text"), "/test%24file.text");
        assert_eq!(normalized_path("/a%2fb/c%7E"), "/a%2Fb/c~");
        assert_eq!(normalized_path("/a+b c"), "/a%2Bb%20c");
        assert_eq!(normalized_path("/bad%g1"), "/bad%25g1");
        assert_eq!(normalized_path("/k/\u{e9}"), "/k/%C3%A9");
    }

    #[test]
    fn headers_are_trimmed_collapsed_and_joined() {
        let p = parts(
            "http://h.example/x",
            &[
                ("host", "h.example"),
                ("x-amz-meta-a", "  one   two  "),
                ("x-amz-meta-a", "three"),
                ("x-amz-meta-b", "   "),
            ],
        );
        let block = canonical_headers(&p, &["host", "x-amz-meta-a", "x-amz-meta-b", "x-absent"]);
        assert_eq!(
            String::from_utf8(block).unwrap(),
            "host:h.example\nx-amz-meta-a:one two,three\nx-amz-meta-b:\nx-absent:\n"
        );
    }

    #[test]
    fn host_falls_back_to_the_authority() {
        let p = parts("http://bucket.example:9000/key", &[]);
        assert_eq!(
            canonical_headers(&p, &["host"]),
            b"host:bucket.example:9000\n"
        );
        assert_eq!(raw_path(&p), "/key");
    }

    #[test]
    fn canonical_request_layout() {
        let req = canonical_request("GET", "/", "a=b", b"host:h\n", "host", "UNSIGNED-PAYLOAD");
        assert_eq!(req, b"GET\n/\na=b\nhost:h\n\nhost\nUNSIGNED-PAYLOAD");
    }
}
