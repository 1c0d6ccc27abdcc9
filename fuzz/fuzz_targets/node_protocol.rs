#![no_main]
//! The node protocol's server side: request targets and ranges, request authentication and
//! the body digest trailer. Input: `target\nrange\nauthorization\ndate\ndigest`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let target = lines.next().unwrap_or("");
    let range = lines.next().unwrap_or("");
    let authorization = lines.next();
    let date = lines.next();
    let digest = lines.next();
    gateway::nodes::server::fuzz_request(target, range);
    let token = gateway::nodes::protocol::NodeToken::from_hex(&"ab".repeat(32)).expect("token");
    let _ = token.verify("PUT", target, date, Some(5), authorization, 1_700_000_000);
    if let Some(d) = digest.and_then(|d| http::HeaderValue::from_str(d).ok()) {
        let mut trailers = http::HeaderMap::new();
        trailers.insert(
            http::HeaderName::from_static(gateway::nodes::protocol::DIGEST_TRAILER),
            d,
        );
        let _ = gateway::nodes::protocol::verify_digest(Some(&trailers), &blake3::hash(data));
    }
});
