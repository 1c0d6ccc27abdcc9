#![no_main]
//! See `gateway::s3::fuzz::headers`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gateway::s3::fuzz::headers(data));
