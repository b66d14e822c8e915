//! Real clients through `layerstore serve` keeping its data in S3 (a real 3-node Garage cluster,
//! 5 MiB parts): a multi-layer image, one layer of 9 MiB that does not compress (so its upload
//! crosses part boundaries), copied in and back out with skopeo, digest for digest; and pushed
//! and pulled back with podman (which stores images unpacked and recompresses on push), with
//! the image id and every file of every layer unchanged.
//!
//! Needs `skopeo`, `podman` (run as root: it keeps its store in temporary directories with the
//! `vfs` driver, so it needs no overlay mounts or user namespaces) and Garage: skipped without
//! them, except in CI (`CI` set), where they are required.

mod clients_support;
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use clients_support::interop::expect;
use clients_support::oci::{assert_same_image, noise, Layout, OCI_MANIFEST};
use clients_support::{
    missing, require_tool, run_with_timeout, skopeo_copy, RegistryProcess, Storage,
};
use common::garage::GarageCluster;
use common::{content, request, sha256};

const SECRET: &str = "clients-s3-secret";

/// The files of each layer of the test image: small text, a compressible file, 9 MiB of
/// noise (≥ 8 MiB gzip'd: more than one 5 MiB part), and two more files of noise.
fn layer_files() -> Vec<Vec<(&'static str, Vec<u8>)>> {
    vec![
        vec![("etc/os-release", b"ID=layerstore-test\n".to_vec())],
        vec![("usr/share/doc/README", content(300_000, 7))],
        vec![("opt/app/big.bin", noise(9 << 20, 1))],
        vec![
            ("usr/bin/tool", noise(700_000, 2)),
            ("usr/lib/libtool.so", noise(1_200_000, 3)),
        ],
    ]
}

/// A layout holding the multi-layer image, tagged `v1`; returns it and the image's config
/// digest (what podman calls the image id).
fn multi_layer_layout(dir: &Path) -> (Layout, String) {
    let layout = Layout::create(dir);
    let image = layout.add_image_of("amd64", "APP=multi-layer", &layer_files());
    layout.tag("v1", &image);
    let manifest: serde_json::Value = serde_json::from_slice(&layout.blob(&image.digest)).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 4);
    assert!(
        layers
            .iter()
            .any(|l| l["size"].as_u64().unwrap() >= 8 << 20),
        "no layer of 8 MiB or more"
    );
    let config = manifest["config"]["digest"].as_str().unwrap().to_owned();
    (layout, config)
}

#[test]
fn skopeo_copies_a_multi_layer_image_in_and_out() {
    if require_tool("skopeo").is_none() {
        return;
    }
    let Some(cluster) = GarageCluster::start() else {
        return;
    };
    let storage = Storage::S3 {
        cluster: &cluster,
        prefix: "skopeo",
    };
    let layerstore = RegistryProcess::layerstore_on(storage, SECRET);
    let work = tempfile::tempdir().unwrap();
    let (layout, _) = multi_layer_layout(&work.path().join("src"));
    let host = layerstore.host();

    skopeo_copy(
        &format!("oci:{}:v1", layout.dir.display()),
        &format!("docker://{host}/s3/app:v1"),
        &[],
    );
    // And a copy inside the registry (layers mounted from the first repository).
    skopeo_copy(
        &format!("docker://{host}/s3/app:v1"),
        &format!("docker://{host}/s3/mirror:v1"),
        &[],
    );
    for repo in ["s3/app", "s3/mirror"] {
        let out = work.path().join(repo.replace('/', "-"));
        skopeo_copy(
            &format!("docker://{host}/{repo}:v1"),
            &format!("oci:{}:v1", out.display()),
            &[],
        );
        assert_same_image(&layout, &Layout::open(&out), "v1", "v1");
    }
    // Every blob is a complete object in the bucket, under distribution's path.
    for digest in layout.closure(&layout.resolve("v1")) {
        let hex = digest.trim_start_matches("sha256:");
        let stored = storage
            .read(&format!("blobs/sha256/{}/{hex}/data", &hex[..2]))
            .unwrap_or_else(|| panic!("{digest} is not in the bucket"));
        assert!(
            stored == layout.blob(&digest),
            "{digest} differs in the bucket"
        );
    }
    let leftovers = storage.upload_leftovers();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// podman with its own store (`--root`, `--runroot`, `--tmpdir` in `work/STORE`), the `vfs`
/// driver and no event log, run in `work` (podman names an image pulled from `oci:PATH` after
/// the path, which must then be lowercase: `oci:src` is, a temporary directory's may not be).
/// Panics with its output unless it succeeds; returns stdout.
fn podman(work: &Path, store: &str, args: &[&str]) -> String {
    let dir = work.join(store);
    let mut command = Command::new("podman");
    command
        .current_dir(work)
        .arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("runroot"))
        .arg("--tmpdir")
        .arg(dir.join("tmp"))
        .args(["--storage-driver", "vfs", "--events-backend", "none"])
        .args(args);
    let output = run_with_timeout(command, Duration::from_secs(120));
    assert!(
        output.status.success(),
        "podman {args:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// podman pulls the multi-layer image from an OCI layout into its store, pushes it to
/// layerstore on S3 (recompressing every layer), and a second, empty podman store pulls it
/// back: same image id (config digest), same manifest digest as the registry's, and every
/// file of every layer byte for byte.
#[test]
fn podman_push_and_pull_through_layerstore_on_s3() {
    if require_tool("podman").is_none() {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing("root for podman (its vfs store without user namespaces)");
        return;
    }
    let Some(cluster) = GarageCluster::start() else {
        return;
    };
    let storage = Storage::S3 {
        cluster: &cluster,
        prefix: "podman",
    };
    let layerstore = RegistryProcess::layerstore_on(storage, SECRET);
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    // At `src`: pulled as `oci:src` from `work`.
    let (_, config) = multi_layer_layout(&work.join("src"));
    let image_id = config.trim_start_matches("sha256:");
    let reference = format!("{}/podman/app:v1", layerstore.host());

    let pulled = podman(work, "pusher", &["pull", "-q", "oci:src:v1"]);
    assert_eq!(pulled.trim(), image_id);
    podman(
        work,
        "pusher",
        &[
            "push",
            "--tls-verify=false",
            image_id,
            &format!("docker://{reference}"),
        ],
    );

    // What the registry holds: the same config; one recompressed layer per source layer, each
    // readable under its digest.
    let accept = format!("{OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json");
    let reply = request(
        layerstore.addr,
        "GET",
        "/v2/podman/app/manifests/v1",
        &[("accept", &accept)],
        b"",
    );
    let reply = expect(reply, 200, "manifest");
    let manifest_digest = sha256(&reply.body);
    assert_eq!(
        reply.header("docker-content-digest"),
        Some(manifest_digest.as_str())
    );
    let manifest: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(manifest["config"]["digest"], serde_json::json!(config));
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), layer_files().len());
    for layer in layers {
        let digest = layer["digest"].as_str().unwrap();
        let path = format!("/v2/podman/app/blobs/{digest}");
        let blob = expect(
            request(layerstore.addr, "GET", &path, &[], b""),
            200,
            digest,
        );
        assert_eq!(sha256(&blob.body), digest);
        assert_eq!(blob.body.len() as u64, layer["size"].as_u64().unwrap());
    }
    let link = storage
        .read("repositories/podman/app/_manifests/tags/v1/current/link")
        .expect("the tag's link is in the bucket");
    assert_eq!(String::from_utf8(link).unwrap(), manifest_digest);

    // A second podman store, empty: everything comes from the registry.
    let pulled = podman(
        work,
        "puller",
        &[
            "pull",
            "-q",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ],
    );
    assert_eq!(pulled.trim(), image_id);
    let digest = podman(
        work,
        "puller",
        &["image", "inspect", "--format", "{{.Digest}}", &reference],
    );
    assert_eq!(digest.trim(), manifest_digest);
    let mount = podman(work, "puller", &["image", "mount", &reference]);
    let mount = Path::new(mount.trim());
    for (path, data) in layer_files().into_iter().flatten() {
        let found = std::fs::read(mount.join(path))
            .unwrap_or_else(|e| panic!("{path} in the pulled image: {e}"));
        assert!(found == data, "{path} differs in the pulled image");
    }
    podman(work, "puller", &["image", "unmount", &reference]);
    let leftovers = storage.upload_leftovers();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
