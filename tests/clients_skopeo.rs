//! skopeo 1.9 (containers/image) against a real layerstore server: push an OCI layout built by
//! hand, pull it back and compare every digest; registry-to-registry copies, a multi-arch
//! index with `--all`; `inspect --raw`, `list-tags` and `delete`.
//!
//! Needs `skopeo` on PATH: skipped without it, except in CI (`CI` set), where it fails.

mod clients_support;
mod common;

use clients_support::oci::{assert_same_image, Layout};
use clients_support::{require_tool, skopeo, skopeo_copy};
use common::TestServer;

fn have_skopeo() -> bool {
    require_tool("skopeo").is_some()
}

/// A layout at `dir` holding one image tagged `tag`.
fn single_image_layout(dir: &std::path::Path, seed: u8, tag: &str) -> Layout {
    let layout = Layout::create(dir);
    let image = layout.add_image(seed, "amd64");
    layout.tag(tag, &image);
    layout
}

#[test]
fn push_and_pull_back_keep_every_digest() {
    if !have_skopeo() {
        return;
    }
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let source = single_image_layout(&work.path().join("src"), 1, "v1");
    let registry = format!("docker://{}/skopeo/app:v1", server.addr);

    skopeo_copy(&format!("oci:{}:v1", source.dir.display()), &registry, &[]);
    let out = work.path().join("out");
    skopeo_copy(&registry, &format!("oci:{}:v1", out.display()), &[]);
    assert_same_image(&source, &Layout::open(&out), "v1", "v1");

    // `inspect --raw` gives back the exact manifest bytes that were pushed.
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &registry], true);
    let digest = source.resolve("v1");
    assert_eq!(raw.stdout, source.blob(&digest));
    // And the server names them by that digest.
    let head = server.request(
        "HEAD",
        "/v2/skopeo/app/manifests/v1",
        &[("accept", clients_support::oci::OCI_MANIFEST)],
        b"",
    );
    assert_eq!(head.status, 200);
    assert_eq!(head.header("docker-content-digest"), Some(digest.as_str()));
}

#[test]
fn registry_to_registry_copies_single_and_multi_arch() {
    if !have_skopeo() {
        return;
    }
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let host = server.addr;

    // A single image, copied between two repositories of the same server.
    let single = single_image_layout(&work.path().join("single"), 3, "v1");
    skopeo_copy(
        &format!("oci:{}:v1", single.dir.display()),
        &format!("docker://{host}/skopeo/one:v1"),
        &[],
    );
    skopeo_copy(
        &format!("docker://{host}/skopeo/one:v1"),
        &format!("docker://{host}/skopeo/copies/one:v1"),
        &[],
    );
    let out = work.path().join("single-out");
    skopeo_copy(
        &format!("docker://{host}/skopeo/copies/one:v1"),
        &format!("oci:{}:v1", out.display()),
        &[],
    );
    assert_same_image(&single, &Layout::open(&out), "v1", "v1");

    // A multi-arch index over two platform manifests, copied with --all.
    let multi = Layout::create(&work.path().join("multi"));
    let amd64 = multi.add_image(4, "amd64");
    let arm64 = multi.add_image(5, "arm64");
    let index = multi.add_index(&[amd64, arm64]);
    multi.tag("latest", &index);
    skopeo_copy(
        &format!("oci:{}:latest", multi.dir.display()),
        &format!("docker://{host}/skopeo/multi:latest"),
        &["--all"],
    );
    skopeo_copy(
        &format!("docker://{host}/skopeo/multi:latest"),
        &format!("docker://{host}/skopeo/mirror/multi:latest"),
        &["--all"],
    );
    let out = work.path().join("multi-out");
    skopeo_copy(
        &format!("docker://{host}/skopeo/mirror/multi:latest"),
        &format!("oci:{}:latest", out.display()),
        &["--all"],
    );
    assert_same_image(&multi, &Layout::open(&out), "latest", "latest");

    // The index itself comes back byte for byte.
    let raw = skopeo(
        &[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{host}/skopeo/mirror/multi:latest"),
        ],
        true,
    );
    assert_eq!(raw.stdout, multi.blob(&index.digest));
}

#[test]
fn list_tags_and_delete() {
    if !have_skopeo() {
        return;
    }
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let host = server.addr;
    let layout = Layout::create(&work.path().join("src"));
    let v1 = layout.add_image(6, "amd64");
    let v2 = layout.add_image(7, "amd64");
    layout.tag("v1", &v1);
    layout.tag("v2", &v2);
    for tag in ["v1", "v2"] {
        skopeo_copy(
            &format!("oci:{}:{tag}", layout.dir.display()),
            &format!("docker://{host}/skopeo/tags:{tag}"),
            &[],
        );
    }
    let repo = format!("docker://{host}/skopeo/tags");
    assert_eq!(list_tags(&repo), ["v1", "v2"]);

    skopeo(
        &["delete", "--tls-verify=false", &format!("{repo}:v2")],
        true,
    );
    assert_eq!(list_tags(&repo), ["v1"]);
    let gone = skopeo(
        &[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("{repo}:v2"),
        ],
        false,
    );
    assert!(!gone.status.success(), "v2 still answers after delete");
    let by_digest = server.request(
        "GET",
        &format!("/v2/skopeo/tags/manifests/{}", v2.digest),
        &[("accept", clients_support::oci::OCI_MANIFEST)],
        b"",
    );
    assert_eq!(by_digest.status, 404);

    // v1 is untouched.
    let out = work.path().join("out");
    skopeo_copy(
        &format!("{repo}:v1"),
        &format!("oci:{}:v1", out.display()),
        &[],
    );
    assert_same_image(&layout, &Layout::open(&out), "v1", "v1");
}

fn list_tags(repo: &str) -> Vec<String> {
    let output = skopeo(&["list-tags", "--tls-verify=false", repo], true);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut tags: Vec<String> = json["Tags"]
        .as_array()
        .expect("Tags array")
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    tags.sort();
    tags
}

/// `skopeo inspect --raw` of `reference`, parsed, with its bytes.
fn inspect_raw(reference: &str) -> (Vec<u8>, serde_json::Value) {
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", reference], true);
    let json = serde_json::from_slice(&raw.stdout).unwrap();
    (raw.stdout, json)
}

#[test]
fn docker_schema2_images_and_manifest_lists() {
    if !have_skopeo() {
        return;
    }
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let host = server.addr;
    let layout = Layout::create(&work.path().join("src"));
    let amd64 = layout.add_image(8, "amd64");
    let arm64 = layout.add_image(9, "arm64");
    let index = layout.add_index(&[amd64, arm64]);
    layout.tag("multi", &index);

    // skopeo converts the OCI index and both images to Docker types on the way in.
    let (from, list_ref) = (
        format!("oci:{}:multi", layout.dir.display()),
        format!("docker://{host}/skopeo/docker:multi"),
    );
    let mut args = vec![
        "copy",
        "--dest-tls-verify=false",
        "--retry-times",
        "0",
        "--all",
        "--format",
        "v2s2",
    ];
    args.extend_from_slice(&[&from, &list_ref]);
    skopeo(&args, true);
    let (list_bytes, list) = inspect_raw(&list_ref);
    assert_eq!(
        list["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    let head = server.request("HEAD", "/v2/skopeo/docker/manifests/multi", &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("docker-content-digest"),
        Some(common::sha256(&list_bytes).as_str())
    );

    // A registry-to-registry copy keeps the list and every child byte for byte.
    let copy_ref = format!("docker://{host}/skopeo/docker-copy:multi");
    skopeo_copy(&list_ref, &copy_ref, &["--all"]);
    assert_eq!(inspect_raw(&copy_ref).0, list_bytes);
    for child in list["manifests"].as_array().unwrap() {
        let digest = child["digest"].as_str().unwrap();
        let (bytes, manifest) =
            inspect_raw(&format!("docker://{host}/skopeo/docker-copy@{digest}"));
        assert_eq!(common::sha256(&bytes), digest);
        assert_eq!(
            manifest["mediaType"],
            "application/vnd.docker.distribution.manifest.v2+json"
        );
        // Pulled into a `dir:` layout, each blob is intact and named by its digest.
        let dir = work.path().join(digest.replace(':', "-"));
        skopeo_copy(
            &format!("docker://{host}/skopeo/docker-copy@{digest}"),
            &format!("dir:{}", dir.display()),
            &[],
        );
        let layers = manifest["layers"].as_array().unwrap().iter();
        for blob in layers.chain(std::iter::once(&manifest["config"])) {
            let digest = blob["digest"].as_str().unwrap();
            let bytes = std::fs::read(dir.join(digest.trim_start_matches("sha256:"))).unwrap();
            assert_eq!(common::sha256(&bytes), digest);
            assert_eq!(bytes.len() as u64, blob["size"].as_u64().unwrap());
        }
    }
}
