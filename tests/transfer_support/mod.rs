//! Support for the tests of `layerstore push`, `pull`, `copy` and `login` as a user runs them:
//! the binary with a cache directory of its own, JSON summaries, directory trees compared byte
//! for byte, an image written by skopeo into an OCI layout, a one-large-layer layout, and
//! transfers killed part way.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::clients_support::oci::{self, Layout};
use crate::clients_support::{require_tool, skopeo};
use crate::common::process::{run_with_stdin, run_with_timeout, ChildGuard};

/// The `layerstore` binary, keeping its upload URLs in `cache` (so tests do not share them).
pub fn layerstore(cache: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_layerstore"));
    command
        .env("XDG_CACHE_HOME", cache)
        .env_remove("REGISTRY_AUTH_FILE");
    command
}

/// Runs `layerstore ARGS --json` and returns its output (whatever the exit status).
pub fn run(cache: &Path, args: &[&str]) -> Output {
    let mut command = layerstore(cache);
    command.args(args).arg("--json");
    run_with_timeout(command, Duration::from_secs(180))
}

/// Runs `layerstore ARGS --json`, which must succeed, and returns its JSON summary.
pub fn transfer(cache: &Path, args: &[&str]) -> serde_json::Value {
    let output = run(cache, args);
    assert!(
        output.status.success(),
        "layerstore {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `layerstore login HOST -u USER --password-stdin EXTRA…` with `password` on stdin.
pub fn login(cache: &Path, host: &str, user: &str, password: &str, extra: &[&str]) -> Output {
    let mut command = layerstore(cache);
    command
        .args(["login", host, "-u", user, "--password-stdin"])
        .args(extra);
    run_with_stdin(command, Some(format!("{password}\n").as_bytes()))
}

/// Every file of a directory tree, relative path to bytes.
pub fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
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

/// A multi-layer image for two platforms written by hand, then rewritten by skopeo into `dir`
/// (so the layout under test is the one real tools produce); tag `v1`. False when skopeo is
/// missing (outside CI).
pub fn skopeo_layout(work: &Path, dir: &Path) -> bool {
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

/// Asserts that `skopeo inspect` accepts the image `tag` of the layout `dir`.
pub fn skopeo_accepts(dir: &Path, tag: &str) {
    skopeo(
        &["inspect", "--raw", &format!("oci:{}:{tag}", dir.display())],
        true,
    );
}

/// A layout holding one image (tag `big`) with one large layer of `size` bytes.
pub fn large_layout(dir: &Path, size: usize) -> Layout {
    let layout = Layout::create(dir);
    let layer = layout.add_blob(oci::OCI_LAYER_GZIP, &crate::common::content(size, 42));
    let config = layout.add_blob(
        oci::OCI_CONFIG,
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::OCI_MANIFEST,
        "config": {"mediaType": config.media_type, "digest": config.digest, "size": config.size},
        "layers": [{"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}],
    });
    let manifest = layout.add_blob(oci::OCI_MANIFEST, manifest.to_string().as_bytes());
    layout.tag("big", &manifest);
    layout
}

/// Starts `layerstore ARGS`, waits until `started` says enough happened, and kills it.
pub fn kill_when(cache: &Path, args: &[&str], started: impl Fn() -> bool) {
    let mut command = layerstore(cache);
    command
        .args(args)
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
pub fn largest(dir: &Path, suffix: &str) -> u64 {
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
