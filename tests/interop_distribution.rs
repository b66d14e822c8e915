//! Interoperability with distribution 2.8 (`docker-registry serve`) on one storage root:
//!
//! - an image pushed to distribution (with skopeo) is served intact by `layerstore serve` over
//!   the same root, and the reverse;
//! - an upload begun on one registry is finished on the other, each accepting the other's
//!   `_state` token (same root, same secret) and resuming the other's saved hash state.
//!
//! Needs `docker-registry` and `skopeo`: skipped without them, except in CI (`CI` set).

mod clients_support;
mod common;

use std::net::SocketAddr;
use std::path::Path;

use clients_support::interop::{
    expect, path_and_query, pull_and_compare, push_source, source_layout, upload_across,
};
use clients_support::oci::{assert_same_image, Layout};
use clients_support::{
    distribution_garbage_collect, require_tool, skopeo, skopeo_copy, RegistryProcess, Storage,
    OCTET,
};
use common::{content, request, sha256, Reply};

const SECRET: &str = "interop-secret";

fn have_tools() -> bool {
    // Both checked, so a CI run names every missing tool at once.
    let registry = require_tool("docker-registry").is_some();
    let skopeo = require_tool("skopeo").is_some();
    registry && skopeo
}

#[test]
fn layerstore_serves_what_distribution_stored() {
    if !have_tools() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let layout = source_layout(&work.path().join("src"));
    {
        let distribution = RegistryProcess::distribution(root.path(), SECRET).unwrap();
        push_source(&layout, &distribution.host(), "interop/from-dist");
    } // distribution stops here
    let layerstore = RegistryProcess::layerstore(root.path(), SECRET);
    pull_and_compare(
        &layout,
        &layerstore.host(),
        "interop/from-dist",
        &work.path().join("out"),
    );
    let tags = request(
        layerstore.addr,
        "GET",
        "/v2/interop/from-dist/tags/list",
        &[],
        b"",
    );
    assert_eq!(tags.status, 200);
    let tags: serde_json::Value = serde_json::from_slice(&tags.body).unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["multi", "v1"]));
    let catalog = request(layerstore.addr, "GET", "/v2/_catalog", &[], b"");
    let catalog: serde_json::Value = serde_json::from_slice(&catalog.body).unwrap();
    assert_eq!(
        catalog["repositories"],
        serde_json::json!(["interop/from-dist"])
    );
}

#[test]
fn distribution_serves_what_layerstore_stored() {
    if !have_tools() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let layout = source_layout(&work.path().join("src"));
    {
        let layerstore = RegistryProcess::layerstore(root.path(), SECRET);
        push_source(&layout, &layerstore.host(), "interop/from-layerstore");
    } // layerstore stops here
    let distribution = RegistryProcess::distribution(root.path(), SECRET).unwrap();
    pull_and_compare(
        &layout,
        &distribution.host(),
        "interop/from-layerstore",
        &work.path().join("out"),
    );
    let catalog = request(distribution.addr, "GET", "/v2/_catalog", &[], b"");
    let catalog: serde_json::Value = serde_json::from_slice(&catalog.body).unwrap();
    assert_eq!(
        catalog["repositories"],
        serde_json::json!(["interop/from-layerstore"])
    );
}

/// POST on `first`, one PATCH on `first`, then a PATCH and the closing PUT (with the last
/// bytes) on `second`; the blob must then read back intact from both.
fn move_upload(root: &Path, first: SocketAddr, second: SocketAddr, repo: &str, seed: u8) {
    let data = content(700_000, seed);
    upload_across(
        Storage::Root(root),
        repo,
        &data,
        first,
        &[(first, 300_000), (second, 250_000)],
        second,
        &[first, second],
    );
}

#[test]
fn uploads_move_between_distribution_and_layerstore() {
    if !have_tools() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let distribution = RegistryProcess::distribution(root.path(), SECRET).unwrap();
    let layerstore = RegistryProcess::layerstore(root.path(), SECRET);
    move_upload(
        root.path(),
        distribution.addr,
        layerstore.addr,
        "interop/up",
        21,
    );
    move_upload(
        root.path(),
        layerstore.addr,
        distribution.addr,
        "interop/down",
        22,
    );
    // Both sessions were removed by the commits.
    let leftovers = Storage::Root(root.path()).upload_leftovers();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// An untagged OCI artifact whose `subject` is `subject`, pushed by digest; returns its digest.
fn push_referrer(addr: SocketAddr, repo: &str, subject: &str, subject_size: usize) -> String {
    let config = sha256(b"{}");
    let path = format!("/v2/{repo}/blobs/uploads/?digest={config}");
    expect(request(addr, "POST", &path, &[], b"{}"), 201, "config blob");
    let body = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": clients_support::oci::OCI_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2 },
        "layers": [],
        "subject": {
            "mediaType": clients_support::oci::OCI_MANIFEST,
            "digest": subject,
            "size": subject_size,
        },
    }))
    .unwrap();
    let digest = sha256(&body);
    let put = request(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/{digest}"),
        &[("content-type", clients_support::oci::OCI_MANIFEST)],
        &body,
    );
    expect(put, 201, "referrer PUT");
    digest
}

fn referrers(addr: SocketAddr, repo: &str, subject: &str) -> serde_json::Value {
    let reply = request(
        addr,
        "GET",
        &format!("/v2/{repo}/referrers/{subject}"),
        &[],
        b"",
    );
    let reply = expect(reply, 200, "referrers");
    let index: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    index["manifests"].clone()
}

/// distribution's `garbage-collect --delete-untagged` on a root that layerstore wrote: what is
/// tagged survives intact, the deleted image's blobs go, and the untagged referrer it removes
/// leaves layerstore's referrers list.
#[test]
fn distribution_garbage_collect_on_a_layerstore_root() {
    if !have_tools() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let layout = Layout::create(&work.path().join("src"));
    let keep = layout.add_image(31, "amd64");
    let drop = layout.add_image(32, "amd64");
    layout.tag("keep", &keep);
    layout.tag("drop", &drop);
    let repo = "interop/gc";
    {
        let layerstore = RegistryProcess::layerstore(root.path(), SECRET);
        let host = layerstore.host();
        for tag in ["keep", "drop"] {
            skopeo_copy(
                &format!("oci:{}:{tag}", layout.dir.display()),
                &format!("docker://{host}/{repo}:{tag}"),
                &[],
            );
        }
        skopeo(
            &[
                "delete",
                "--tls-verify=false",
                &format!("docker://{host}/{repo}:drop"),
            ],
            true,
        );
        let referrer = push_referrer(layerstore.addr, repo, &keep.digest, keep.size as usize);
        assert_eq!(
            referrers(layerstore.addr, repo, &keep.digest)[0]["digest"],
            serde_json::json!(referrer)
        );
    } // layerstore stops: garbage-collect wants the root to itself
    distribution_garbage_collect(root.path(), &["--delete-untagged"]);

    let layerstore = RegistryProcess::layerstore(root.path(), SECRET);
    let out = work.path().join("out");
    skopeo_copy(
        &format!("docker://{}/{repo}:keep", layerstore.host()),
        &format!("oci:{}:keep", out.display()),
        &[],
    );
    assert_same_image(&layout, &Layout::open(&out), "keep", "keep");
    // The dropped image's own layers were swept from the blob store.
    let kept = layout.closure(&keep.digest);
    let swept: Vec<String> = layout
        .closure(&drop.digest)
        .difference(&kept)
        .cloned()
        .collect();
    assert!(!swept.is_empty());
    for digest in &swept {
        let hex = digest.trim_start_matches("sha256:");
        let data = root
            .path()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data");
        assert!(!data.exists(), "{digest} survived garbage-collect");
    }
    assert_eq!(
        referrers(layerstore.addr, repo, &keep.digest),
        serde_json::json!([])
    );
}

fn sha512(data: &[u8]) -> String {
    let mut hasher = layerstore::hash::Hasher::new(layerstore::digest::HashAlgorithm::Sha512);
    hasher.update(data);
    hasher.digest().to_string()
}

/// A blob committed under a sha512 digest on one registry reads back by that digest (an alias
/// link to the sha256 bytes) and by its sha256 on the other.
#[test]
fn sha512_blobs_are_shared() {
    if !have_tools() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let distribution = RegistryProcess::distribution(root.path(), SECRET).unwrap();
    let layerstore = RegistryProcess::layerstore(root.path(), SECRET);
    for (seed, writer, reader) in [
        (41, layerstore.addr, distribution.addr),
        (42, distribution.addr, layerstore.addr),
    ] {
        let data = content(5_000, seed);
        let post = request(
            writer,
            "POST",
            "/v2/interop/sha512/blobs/uploads/",
            &[],
            b"",
        );
        let location = path_and_query(&expect(post, 202, "POST").location());
        let put_path = format!("{location}&digest={}", sha512(&data));
        expect(
            request(writer, "PUT", &put_path, &[OCTET], &data),
            201,
            "PUT",
        );
        for digest in [sha512(&data), sha256(&data)] {
            let path = format!("/v2/interop/sha512/blobs/{digest}");
            let blob = expect(request(reader, "GET", &path, &[], b""), 200, &digest);
            assert_eq!(blob.body, data);
        }
    }
}

/// Sends the head of a PATCH announcing `announced` bytes, then only `body`, then closes: a
/// client that dies in mid-upload.
fn cut_patch(addr: SocketAddr, path: &str, announced: usize, body: &[u8]) {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {announced}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    stream.flush().unwrap();
    // Dropping the stream closes it: the server sees the body end early.
}

/// Polls layerstore's token-free upload status until it holds `size` bytes; returns the
/// status reply (fresh token in `Location`).
fn wait_for_size(layerstore: SocketAddr, upload_path: &str, size: usize) -> Reply {
    let bare = upload_path.split('?').next().unwrap();
    let want = format!("0-{}", size - 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let status = request(layerstore, "GET", bare, &[], b"");
        if status.status == 204 && status.header("range") == Some(want.as_str()) {
            // Let the first registry finish saving its hash state for that size.
            std::thread::sleep(std::time::Duration::from_millis(300));
            return request(layerstore, "GET", bare, &[], b"");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "upload never reached {size} bytes"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A client dies in mid-PATCH on one registry; it asks layerstore where the upload stands
/// (no token needed), and finishes on the other registry from there with a chunk that
/// continues at that offset. Both directions.
#[test]
fn interrupted_upload_resumes_on_the_other_registry() {
    if !have_tools() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let distribution = RegistryProcess::distribution(root.path(), SECRET).unwrap();
    let layerstore = RegistryProcess::layerstore(root.path(), SECRET);
    let cut = 1_234_567;
    for (seed, first, second, repo) in [
        (
            51,
            distribution.addr,
            layerstore.addr,
            "interop/cut-on-distribution",
        ),
        (
            52,
            layerstore.addr,
            distribution.addr,
            "interop/cut-on-layerstore",
        ),
    ] {
        let data = content(3_000_000, seed);
        let post = request(
            first,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            b"",
        );
        let location = path_and_query(&expect(post, 202, "POST").location());
        cut_patch(first, &location, data.len(), &data[..cut]);

        let status = wait_for_size(layerstore.addr, &location, cut);
        let location = path_and_query(&status.location());
        let range = format!("{cut}-{}", data.len() - 1);
        let patch = request(
            second,
            "PATCH",
            &location,
            &[OCTET, ("content-range", &range)],
            &data[cut..],
        );
        let patch = expect(patch, 202, "PATCH of the rest");
        assert_eq!(
            patch.header("range"),
            Some(format!("0-{}", data.len() - 1).as_str())
        );
        let location = path_and_query(&patch.location());
        let put_path = format!("{location}&digest={}", sha256(&data));
        expect(request(second, "PUT", &put_path, &[], b""), 201, "PUT");
        let blob = request(
            first,
            "GET",
            &format!("/v2/{repo}/blobs/{}", sha256(&data)),
            &[],
            b"",
        );
        assert_eq!(expect(blob, 200, "GET").body, data);
    }
}
