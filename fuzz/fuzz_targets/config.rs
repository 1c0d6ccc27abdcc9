#![no_main]
//! The configuration parser: any text is a configuration or a one-line error naming a field.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = gateway::config::Config::parse(text, std::path::Path::new("/d")) {
            assert!(!e.to_string().contains('\n'), "multi-line error: {e}");
        }
    }
});
