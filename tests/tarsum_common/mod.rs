//! Helpers shared by the TarSum integration tests (`tests/tarsum_*.rs`): where the shared test
//! data lives, and random archives for property tests.

#![allow(dead_code)]

pub mod archives;

use std::path::PathBuf;

/// `shared/testdata/tarsum`: beside the checkout in CI, else `/work/shared`.
pub fn tarsum_data() -> PathBuf {
    let sibling = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    let root = if sibling.exists() {
        sibling
    } else {
        PathBuf::from("/work/shared")
    };
    root.join("testdata/tarsum")
}

/// Reads a file under `shared/testdata/tarsum`.
pub fn read(rel: &str) -> Vec<u8> {
    let path = tarsum_data().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first id directory of the vectors.
pub const L1: &str = "46af0962ab5afeb5ce6740d4d91652e69206fc991fd5328c1a94d364ad00e457";
/// The second id directory.
pub const L2: &str = "511136ea3c5a64f264b78b5433614aec563103b4d4702f3ba7d4d2698e22c158";
