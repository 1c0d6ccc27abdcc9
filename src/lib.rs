//! `gateway`: a self-hosted, single-tenant S3 gateway.
//!
//! Objects arriving over S3 are cut into segments, encrypted with a fresh key per segment,
//! erasure-coded with Reed-Solomon and spread as pieces over storage nodes; metadata lives in
//! an embedded SQLite database. Module layout follows the data path:
//! `s3` → `object` → `crypto` / `erasure` → `transfer` → `nodes`, with `meta` beside.
#![deny(clippy::unwrap_used)]
// The API docs are built with `--document-private-items` (.ci/run): for the next developer,
// not for crate users. Public items may link to private ones there.
#![allow(rustdoc::private_intra_doc_links)]

pub mod admin;
pub mod app;
pub mod checksum;
pub mod config;
pub mod crypto;
pub mod erasure;
pub mod meta;
pub mod metrics;
pub mod nodes;
pub mod object;
pub mod progress;
pub mod replication;
pub mod s3;
pub mod serve;
pub mod timestamp;
pub mod tls;
pub mod transfer;
