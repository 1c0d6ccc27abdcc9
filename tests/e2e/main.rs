//! End-to-end tests: the real gateway (in this process, or the `gateway` binary as a child
//! process) on 127.0.0.1, real node servers and a third-party S3 server as nodes, real
//! clients (aws-sdk-s3, hand-written HTTP). One test binary, one module per area, one
//! [`harness`]; fault tests (dead, hung and lying nodes, corrupt pieces, kill -9) are among them.

mod harness;

mod audit;
mod cli;
mod faults;
mod gc;
mod limits;
mod node_servers;
mod privacy;
mod recovery;
mod remote_nodes;
mod s3_buckets_listing;
mod s3_checksums;
mod s3_conditional;
mod s3_copy;
mod s3_errors;
mod s3_misc;
mod s3_multipart;
mod s3_nodes;
mod s3_objects;
mod self_healing;
