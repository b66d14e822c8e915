//! layerstore as a library (issue 21): the three examples, run as an embedder would run them.
//!
//! - `examples/store.rs` runs to the end and finds its store clean;
//! - `examples/axum.rs` (layerstore under `/v2` of an axum app with its own `/healthz` and a
//!   rule that only `team-a/` is writable) takes a real multi-layer skopeo push and pull, refuses
//!   a push outside `team-a/` with the spec's `DENIED` and writes nothing for it, and still
//!   answers its own route;
//! - `examples/events.rs` (plain hyper) prints exactly the push events of a skopeo push, once
//!   each;
//! - the crate builds without its default features, and then neither clap nor indicatif is in
//!   its dependency tree.
//!
//! `cargo test` builds the examples; this test runs their binaries from the target directory.

mod clients_support;
mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use clients_support::oci::{assert_same_image, noise, Layout};
use clients_support::{require_tool, skopeo, skopeo_copy};
use common::{files_below, request};

/// The binary of example `name`, built by `cargo test` beside the test binaries.
fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let target = deps.parent().unwrap().parent().unwrap();
    let path = target.join("examples").join(name);
    assert!(
        path.is_file(),
        "{} not built: `cargo test` builds the examples, `cargo test --test embedding` alone does not \
         (run `cargo build --examples` first)",
        path.display()
    );
    path
}

/// A running example, killed when dropped, with its stdout read line by line.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    /// Starts example `name` with `args`; `ready_on_stderr` says which stream prints
    /// `listening on ADDR`. Returns it and the address.
    fn start(name: &str, args: &[&str], ready_on_stderr: bool) -> (Running, SocketAddr) {
        let mut child = Command::new(example(name))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = read_lines(child.stdout.take().unwrap());
        let stderr = read_lines(child.stderr.take().unwrap());
        let (ready, lines) = if ready_on_stderr {
            (stderr, stdout)
        } else {
            (stdout, stderr)
        };
        let first = ready
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("example {name} did not start"));
        let addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .parse()
            .unwrap();
        (Running { child, lines }, addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_lines(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// An image of three layers (one of 3 MiB, above axum's default body limit for extractors) in
/// an OCI layout at `dir`, tagged `v1`.
fn three_layer_image(dir: &Path) -> Layout {
    let layout = Layout::create(dir);
    let layers = [
        vec![("etc/motd", b"embedded\n".to_vec())],
        vec![("usr/lib/big.bin", noise(3 << 20, 21))],
        vec![("srv/app.bin", noise(200_000, 22))],
    ];
    let image = layout.add_image_of("amd64", "TEAM=a", &layers);
    layout.tag("v1", &image);
    layout
}

#[test]
fn the_store_example_runs_without_http() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(example("store"))
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("at offset 500000"), "{stdout}");
    assert!(stdout.contains("bytes 1000-1015"), "{stdout}");
    assert!(
        stdout.contains("fsck: 2 blobs, 2 links, 0 problems"),
        "{stdout}"
    );
    assert!(dir
        .path()
        .join("docker/registry/v2/repositories/team-a/app")
        .is_dir());
}

#[test]
fn the_axum_app_serves_skopeo_and_enforces_its_own_rule() {
    if require_tool("skopeo").is_none() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let storage = work.path().join("storage");
    let storage_arg = storage.display().to_string();
    let (_app, addr) = Running::start("axum", &[&storage_arg, "127.0.0.1:0"], false);

    let health = request(addr, "GET", "/healthz", &[], b"");
    assert_eq!(health.status, 200);
    assert_eq!(health.body, b"ok\n");

    let source = three_layer_image(&work.path().join("src"));
    let image = format!("oci:{}:v1", source.dir.display());
    skopeo_copy(&image, &format!("docker://{addr}/team-a/app:v1"), &[]);
    let out = work.path().join("out");
    let pulled = format!("oci:{}:v1", out.display());
    skopeo_copy(&format!("docker://{addr}/team-a/app:v1"), &pulled, &[]);
    assert_same_image(&source, &Layout::open(&out), "v1", "v1");

    // Outside team-a/: refused before anything is read or stored.
    let blobs_before = files_below(&storage.join("docker/registry/v2/blobs")).len();
    let refused = skopeo(
        &[
            "copy",
            "--dest-tls-verify=false",
            "--retry-times",
            "0",
            &image,
            &format!("docker://{addr}/team-b/app:v1"),
        ],
        false,
    );
    assert!(!refused.status.success(), "a push to team-b/ went through");
    let post = request(addr, "POST", "/v2/team-b/app/blobs/uploads/", &[], b"");
    assert_eq!(post.status, 403);
    assert_eq!(post.error_code().as_deref(), Some("DENIED"));
    let put = request(addr, "PUT", "/v2/team-b/app/manifests/v1", &[], b"{}");
    assert_eq!(put.status, 403);
    assert_eq!(put.error_code().as_deref(), Some("DENIED"));
    assert!(!storage
        .join("docker/registry/v2/repositories/team-b")
        .exists());
    let blobs_after = files_below(&storage.join("docker/registry/v2/blobs")).len();
    assert_eq!(blobs_before, blobs_after, "the refused push stored blobs");

    // Pulls are allowed everywhere, and the app's own route still answers.
    let manifest = request(
        addr,
        "HEAD",
        "/v2/team-a/app/manifests/v1",
        &[("accept", clients_support::oci::OCI_MANIFEST)],
        b"",
    );
    assert_eq!(manifest.status, 200);
    assert_eq!(request(addr, "GET", "/healthz", &[], b"").status, 200);
    assert_eq!(request(addr, "GET", "/v2/", &[], b"").status, 200);
}

#[test]
fn the_events_example_prints_each_push_of_a_skopeo_push_once() {
    if require_tool("skopeo").is_none() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let storage = work.path().join("storage").display().to_string();
    let (events, addr) = Running::start("events", &[&storage, "127.0.0.1:0"], true);

    let source = three_layer_image(&work.path().join("src"));
    let image = format!("oci:{}:v1", source.dir.display());
    skopeo_copy(&image, &format!("docker://{addr}/team-a/app:v1"), &[]);
    // A pull and a second push of the same image: no new push of a blob the registry has.
    skopeo_copy(
        &format!("docker://{addr}/team-a/app:v1"),
        &format!("oci:{}:v1", work.path().join("out").display()),
        &[],
    );

    let manifest = source.resolve("v1");
    let expected = source.closure(&manifest);
    let mut seen: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    while seen.len() < expected.len() {
        let line = events
            .lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("events so far: {:?}", seen.keys()));
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(event["action"], "push", "{line}");
        assert_eq!(event["target"]["repository"], "team-a/app", "{line}");
        let digest = event["target"]["digest"].as_str().unwrap().to_owned();
        assert!(seen.insert(digest, event).is_none(), "pushed twice: {line}");
    }
    assert_eq!(
        seen.keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        expected
    );
    let manifest_event = &seen[&manifest];
    assert_eq!(manifest_event["target"]["tag"], "v1");
    assert_eq!(
        manifest_event["target"]["mediaType"],
        clients_support::oci::OCI_MANIFEST
    );
    for (digest, event) in &seen {
        let size = source.blob(digest).len() as u64;
        assert_eq!(event["target"]["size"], size, "{digest}");
        assert!(event["request"]["id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()));
        assert!(event["request"]["addr"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")));
    }
    // Nothing else arrives: each push once.
    assert!(events
        .lines
        .recv_timeout(Duration::from_millis(500))
        .is_err());
}

#[test]
fn without_default_features_there_is_no_cli_in_the_dependency_tree() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = env!("CARGO_MANIFEST_DIR");
    let tree = Command::new(&cargo)
        .args([
            "tree",
            "--no-default-features",
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        tree.status.success(),
        "{}",
        String::from_utf8_lossy(&tree.stderr)
    );
    let tree = String::from_utf8_lossy(&tree.stdout);
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split(' ').next())
        .collect();
    assert!(
        crates.contains(&"hyper") && crates.contains(&"tower-service"),
        "{tree}"
    );
    for unwanted in ["clap", "indicatif", "tracing-subscriber"] {
        let direct = tree
            .lines()
            .filter(|l| l.starts_with(&format!("{unwanted} ")))
            .count();
        assert_eq!(
            direct, 0,
            "{unwanted} is in the tree without default features"
        );
    }
    // And it builds. In the same target directory: `cargo test` has released its lock by the
    // time tests run, and every dependency is already built with the same features, so this
    // compiles only layerstore itself.
    let build = Command::new(&cargo)
        .args([
            "build",
            "--lib",
            "--no-default-features",
            "--offline",
            "--quiet",
        ])
        .current_dir(root)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
}
