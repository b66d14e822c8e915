#![allow(clippy::duplicate_mod)] // each included suite declares `mod common;`
//! The HTTP suites again, unchanged, on the S3 driver: every server that `TestServer` starts
//! in these modules keeps its data on one real 3-node Garage cluster (`common::backend`), so
//! blobs, uploads (monolithic, chunked, resumed, cancelled, cross-repository mounts), manifests,
//! tags, the catalog, referrers and every error path behave the same on object storage.
//!
//! Needs Garage (`.ci/run` installs it): a missing binary fails in CI, and elsewhere the suite
//! runs on the filesystem with a message.

mod common;

#[path = "http_blobs.rs"]
mod http_blobs;
#[path = "http_manifests.rs"]
mod http_manifests;
#[path = "http_regressions.rs"]
mod http_regressions;
#[path = "http_uploads.rs"]
mod http_uploads;

/// Guards against the suite silently running on the filesystem.
#[test]
fn servers_here_use_s3() {
    assert!(common::backend::on_s3());
}
