#![no_main]
//! What the gateway decodes from bytes the nodes return: piece headers, metadata blob headers
//! and metadata log batches.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gateway::erasure::piece::PieceHeader::decode(data);
    let _ = gateway::replication::blob::BlobHeader::decode(data);
    let _ = gateway::meta::log::decode_batch(data);
});
