//! `layerstore push`, `pull` and `copy` as a user runs them, against real layerstore servers on
//! 127.0.0.1: a multi-layer, multi-platform image written by skopeo into an OCI layout goes up
//! and comes back byte-identical (skopeo reads the result); copies mount within a registry and
//! stream between two; a killed push or pull, run again, continues instead of starting over.

mod clients_support;
mod common;
mod transfer_support;

use std::path::PathBuf;

use clients_support::skopeo;
use common::TestServer;
use transfer_support::{large_layout, largest, skopeo_layout, tree};

/// Where these tests' pushes keep upload URLs between runs.
fn cache() -> PathBuf {
    std::env::temp_dir().join("layerstore-client-tests-cache")
}

/// A transfer command over plain HTTP, which must succeed: its JSON summary.
fn transfer(args: &[&str]) -> serde_json::Value {
    transfer_support::transfer(&cache(), &[args, &["--plain-http"]].concat())
}

/// Starts a transfer over plain HTTP and kills it once `started` says so.
fn kill_when(args: &[&str], started: impl Fn() -> bool) {
    transfer_support::kill_when(&cache(), &[args, &["--plain-http"]].concat(), started)
}

#[test]
fn push_then_pull_gives_back_the_same_layout() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    if !skopeo_layout(work.path(), &source) {
        return;
    }
    let server = TestServer::start();
    let host = server.addr.to_string();
    let pushed = transfer(&[
        "push",
        &format!("{}:v1", source.display()),
        &format!("{host}/team/app:v1"),
    ]);
    assert_eq!(pushed["manifests"], 3, "{pushed}");
    assert_eq!(pushed["blobs"], 6, "{pushed}");
    let again = transfer(&[
        "push",
        &format!("{}:v1", source.display()),
        &format!("{host}/team/app:v1"),
    ]);
    assert_eq!(
        again["blobs_present"], 6,
        "a second push sends nothing: {again}"
    );

    let out = work.path().join("pulled");
    let pulled = transfer(&[
        "pull",
        &format!("{host}/team/app:v1"),
        out.to_str().unwrap(),
    ]);
    assert_eq!(pulled["blobs_transferred"], 6, "{pulled}");
    assert_eq!(
        tree(&out),
        tree(&source),
        "the pulled layout is byte-identical"
    );
    skopeo(
        &["inspect", "--raw", &format!("oci:{}:v1", out.display())],
        true,
    );

    let one = work.path().join("arm64");
    let single = transfer(&[
        "pull",
        "--platform",
        "linux/arm64",
        &format!("{host}/team/app:v1"),
        &format!("{}:arm", one.display()),
    ]);
    assert_eq!(
        (single["manifests"].as_u64(), single["blobs"].as_u64()),
        (Some(1), Some(3)),
        "{single}"
    );
    let inspected = skopeo(&["inspect", &format!("oci:{}:arm", one.display())], true);
    let config: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(config["Architecture"], "arm64");
}

#[test]
fn copies_mount_within_a_registry_and_stream_between_two() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    if !skopeo_layout(work.path(), &source) {
        return;
    }
    let first = TestServer::start();
    let second = TestServer::start();
    let (a, b) = (first.addr.to_string(), second.addr.to_string());
    transfer(&[
        "push",
        &format!("{}:v1", source.display()),
        &format!("{a}/src/app:v1"),
    ]);

    let mounted = transfer(&[
        "copy",
        &format!("{a}/src/app:v1"),
        &format!("{a}/dst/app:v2"),
    ]);
    assert_eq!(mounted["blobs_mounted"], 6, "{mounted}");
    let streamed = transfer(&["copy", &format!("{a}/src/app:v1"), &format!("{b}/other:v1")]);
    assert_eq!(streamed["blobs_transferred"], 6, "{streamed}");
    let out = work.path().join("out");
    transfer(&[
        "pull",
        &format!("{b}/other:v1"),
        &format!("{}:v1", out.display()),
    ]);
    assert_eq!(tree(&out), tree(&source));
}

#[test]
fn killed_pushes_and_pulls_resume() {
    let work = tempfile::tempdir().unwrap();
    let size = 192 << 20;
    let source = large_layout(&work.path().join("source"), size);
    let server = TestServer::start();
    let host = server.addr.to_string();
    let uploads = server.v2().join("repositories/big/app/_uploads");
    let (from, to) = (
        format!("{}:big", source.dir.display()),
        format!("{host}/big/app:v1"),
    );
    let push = ["push", "--chunk-size", "4M", &from, &to];
    kill_when(&push, || largest(&uploads, "data") >= 8 << 20);
    let resumed = transfer(&push);
    // The large layer is sent (resumed); the config too if the kill came before its upload
    // ended (on a loaded machine it can: both go up at once).
    let (sent, present) = (&resumed["blobs_transferred"], &resumed["blobs_present"]);
    assert!(
        sent.as_u64().unwrap() >= 1 && sent.as_u64().unwrap() + present.as_u64().unwrap() == 2,
        "the large layer was sent, the config sent or present: {resumed}"
    );
    assert!(
        resumed["bytes_resumed"].as_u64().unwrap() >= 8 << 20,
        "the push continued: {resumed}"
    );

    let out = work.path().join("out");
    let (from, to) = (
        format!("{host}/big/app:v1"),
        format!("{}:big", out.display()),
    );
    let pull = ["pull", from.as_str(), &to];
    let blobs = out.join("blobs");
    // Past 12 MiB the layer's hash state has been saved at 8 MiB.
    kill_when(&pull, || largest(&blobs, ".partial") >= 12 << 20);
    let resumed = transfer(&pull);
    assert!(
        resumed["bytes_resumed"].as_u64().unwrap() >= 8 << 20,
        "the pull continued: {resumed}"
    );
    assert_eq!(tree(&out.join("blobs")), tree(&source.dir.join("blobs")));
}
