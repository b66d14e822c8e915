//! `layerstore push`, `pull` and `copy` as a user runs them, against real layerstore servers on
//! 127.0.0.1: a multi-layer, multi-platform image written by skopeo into an OCI layout goes up
//! and comes back byte-identical (skopeo reads the result); copies mount within a registry and
//! stream between two; a killed push or pull, run again, continues instead of starting over.

mod clients_support;
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clients_support::oci::Layout;
use clients_support::{require_tool, skopeo};
use common::process::{run_with_timeout, ChildGuard};
use common::TestServer;

fn layerstore() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_layerstore"));
    command.env(
        "XDG_CACHE_HOME",
        std::env::temp_dir().join("layerstore-client-tests-cache"),
    );
    command
}

/// Runs a transfer command with `--plain-http --json` and returns its JSON summary.
fn transfer(args: &[&str]) -> serde_json::Value {
    let mut command = layerstore();
    command.args(args).args(["--plain-http", "--json"]);
    let output = run_with_timeout(command, Duration::from_secs(120));
    assert!(
        output.status.success(),
        "layerstore {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Every file of a directory tree, relative path to bytes.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push((
                    path.strip_prefix(dir).unwrap().to_owned(),
                    std::fs::read(&path).unwrap(),
                ));
            }
        }
    }
    files.sort();
    files
}

/// An image with two platforms written by hand, then rewritten by skopeo into `dir` (so the
/// layout under test is the one real tools produce).
fn skopeo_layout(work: &Path, dir: &Path) -> bool {
    if require_tool("skopeo").is_none() {
        return false;
    }
    let hand = Layout::create(&work.join("hand"));
    let amd64 = hand.add_image(1, "amd64");
    let arm64 = hand.add_image(2, "arm64");
    let index = hand.add_index(&[amd64, arm64]);
    hand.tag("v1", &index);
    let from = format!("oci:{}:v1", hand.dir.display());
    let to = format!("oci:{}:v1", dir.display());
    skopeo(&["copy", "--all", "--preserve-digests", &from, &to], true);
    true
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

/// A layout holding one image with one large layer.
fn large_layout(dir: &Path, size: usize) -> Layout {
    let layout = Layout::create(dir);
    let layer = layout.add_blob(
        clients_support::oci::OCI_LAYER_GZIP,
        &common::content(size, 42),
    );
    let config = layout.add_blob(
        clients_support::oci::OCI_CONFIG,
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": clients_support::oci::OCI_MANIFEST,
        "config": {"mediaType": config.media_type, "digest": config.digest, "size": config.size},
        "layers": [{"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}],
    });
    let manifest = layout.add_blob(
        clients_support::oci::OCI_MANIFEST,
        manifest.to_string().as_bytes(),
    );
    layout.tag("big", &manifest);
    layout
}

/// Starts `args`, waits until `started` says enough happened, and kills the process.
fn kill_when(args: &[&str], started: impl Fn() -> bool) {
    let mut command = layerstore();
    command
        .args(args)
        .arg("--plain-http")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = ChildGuard::spawn(command, "layerstore transfer");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started() {
        assert!(Instant::now() < deadline, "the transfer never got going");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        child.exited().is_ok(),
        "the transfer finished before it could be interrupted"
    );
    drop(child);
}

/// The size of the largest file below `dir` whose name ends with `suffix`.
fn largest(dir: &Path, suffix: &str) -> u64 {
    let mut largest = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(path),
                Ok(m) if path.to_string_lossy().ends_with(suffix) => largest = largest.max(m.len()),
                _ => {}
            }
        }
    }
    largest
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
    assert_eq!(
        resumed["blobs_transferred"], 1,
        "the large layer was sent: {resumed}"
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
