//! A blob corrupted in the registry's store is caught by `layerstore pull`'s verified read: the
//! command exits 1 saying what the blob hashed to, and nothing appears at the blob's path in the
//! layout (a later pull cannot take the bad bytes for the blob).

mod clients_support;
mod common;
mod transfer_support;

use common::TestServer;
use transfer_support::{large_layout, run, transfer};

#[test]
fn a_corrupted_layer_fails_the_pull_and_is_not_kept() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let source = large_layout(&work.path().join("source"), 3 << 20);
    let server = TestServer::start();
    let host = server.addr.to_string();
    let from = format!("{}:big", source.dir.display());
    transfer(
        &cache,
        &["push", "--plain-http", &from, &format!("{host}/bad/app:v1")],
    );

    let manifest: serde_json::Value =
        serde_json::from_slice(&source.blob(&source.resolve("big"))).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
    let hex = layer.strip_prefix("sha256:").unwrap();
    let data = format!("blobs/sha256/{}/{hex}/data", &hex[..2]);
    let mut bytes = server.read_stored(&data);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    server.write_stored(&data, &bytes);

    let out = work.path().join("out");
    let output = run(
        &cache,
        &[
            "pull",
            "--plain-http",
            &format!("{host}/bad/app:v1"),
            out.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("layerstore pull: ") && stderr.contains(&layer),
        "the message names the blob: {stderr}"
    );
    assert!(
        stderr.contains("hashed to sha256:") && stderr.contains("corrupt"),
        "the message says the content does not match its digest: {stderr}"
    );
    assert!(
        !out.join("blobs/sha256").join(hex).exists(),
        "the corrupted layer was kept"
    );
    assert!(
        output.stdout.is_empty(),
        "no JSON summary for a failed pull"
    );
}
