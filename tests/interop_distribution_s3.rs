//! Interoperability with distribution 2.8 on one S3 bucket: both registries serve the same key
//! prefix of a real 3-node Garage cluster, with the same `http.secret`, at the same time.
//!
//! - an image (a single image and a two-platform index) pushed to distribution with skopeo is
//!   served intact by layerstore, and the reverse;
//! - an upload begun on one registry is continued and finished on the other, both directions:
//!   chunks of a few hundred KB (each request after the first finds a multipart upload whose
//!   last part is below S3's 5 MiB minimum, and must complete it, start a new one and copy the
//!   bytes over), a chunk of 6.5 MiB followed by small chunks, and small, big, small; after
//!   every PATCH the exact-size hash state must be in the bucket, and the blob must read back
//!   with its digest from both;
//! - after the commits nothing is left of the sessions: no object under any `_uploads/` and no
//!   unfinished multipart upload anywhere under the prefix.
//!
//! Needs `docker-registry`, `skopeo` and Garage: skipped without them, except in CI (`CI` set).

mod clients_support;
mod common;

use clients_support::interop::{pull_and_compare, push_source, source_layout, upload_across};
use clients_support::{require_tool, RegistryProcess, Storage};
use common::garage::GarageCluster;
use common::{content, request};

const SECRET: &str = "interop-s3-secret";
const PREFIX: &str = "shared/registry";

/// The cluster, once both tools are known to be there (every missing one is named).
fn cluster_and_tools() -> Option<GarageCluster> {
    let registry = require_tool("docker-registry").is_some();
    let skopeo = require_tool("skopeo").is_some();
    if !(registry && skopeo) {
        return None;
    }
    GarageCluster::start()
}

fn json(addr: std::net::SocketAddr, path: &str) -> serde_json::Value {
    let reply = request(addr, "GET", path, &[], b"");
    assert_eq!(
        reply.status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    serde_json::from_slice(&reply.body).unwrap()
}

#[test]
fn images_pushed_to_either_are_served_by_the_other() {
    let Some(cluster) = cluster_and_tools() else {
        return;
    };
    let storage = Storage::S3 {
        cluster: &cluster,
        prefix: PREFIX,
    };
    let distribution = RegistryProcess::distribution_on(storage, SECRET).unwrap();
    let layerstore = RegistryProcess::layerstore_on(storage, SECRET);
    let work = tempfile::tempdir().unwrap();
    let layout = source_layout(&work.path().join("src"));

    push_source(&layout, &distribution.host(), "s3/from-dist");
    pull_and_compare(
        &layout,
        &layerstore.host(),
        "s3/from-dist",
        &work.path().join("out-layerstore"),
    );
    push_source(&layout, &layerstore.host(), "s3/from-layerstore");
    pull_and_compare(
        &layout,
        &distribution.host(),
        "s3/from-layerstore",
        &work.path().join("out-distribution"),
    );

    // Both list the same tags and repositories.
    for registry in [&distribution, &layerstore] {
        for repo in ["s3/from-dist", "s3/from-layerstore"] {
            let tags = json(registry.addr, &format!("/v2/{repo}/tags/list"));
            assert_eq!(tags["tags"], serde_json::json!(["multi", "v1"]), "{repo}");
        }
        let catalog = json(registry.addr, "/v2/_catalog");
        assert_eq!(
            catalog["repositories"],
            serde_json::json!(["s3/from-dist", "s3/from-layerstore"])
        );
    }
    // The tag layerstore wrote is in the bucket, where distribution keeps it.
    let link = storage
        .read("repositories/s3/from-layerstore/_manifests/tags/v1/current/link")
        .expect("the tag's link is in the bucket");
    assert_eq!(String::from_utf8(link).unwrap(), layout.resolve("v1"));
    let leftovers = storage.upload_leftovers();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn uploads_move_between_distribution_and_layerstore_on_s3() {
    let Some(cluster) = cluster_and_tools() else {
        return;
    };
    let storage = Storage::S3 {
        cluster: &cluster,
        prefix: PREFIX,
    };
    let distribution = RegistryProcess::distribution_on(storage, SECRET).unwrap();
    let layerstore = RegistryProcess::layerstore_on(storage, SECRET);
    const BIG: usize = 6 << 20 | 512 << 10; // 6.5 MiB: more than a part (5 MiB) on both sides
    let readers = [distribution.addr, layerstore.addr];
    let directions = [
        ("dist", distribution.addr, layerstore.addr),
        ("ls", layerstore.addr, distribution.addr),
    ];
    for (seed, (name, first, second)) in directions.into_iter().enumerate() {
        let seed = seed as u8 * 10;
        // Small chunks only: every request after the first meets a small last part. Started on
        // `first`, handed to `second`, back to `first`, finished on `second`.
        let data = content(1_100_000, seed + 1);
        upload_across(
            storage,
            &format!("s3/small-from-{name}"),
            &data,
            first,
            &[
                (first, 300_000),
                (first, 250_000),
                (second, 200_000),
                (first, 150_000),
                (second, 120_000),
            ],
            second,
            &readers,
        );
        // One big chunk first (whole parts, then a tail), then small ones.
        let data = content(BIG + 850_000, seed + 2);
        upload_across(
            storage,
            &format!("s3/big-first-from-{name}"),
            &data,
            first,
            &[
                (first, BIG),
                (first, 300_000),
                (second, 250_000),
                (second, 200_000),
            ],
            second,
            &readers,
        );
        // A big chunk appended to a small last part (copied back, then whole parts), then a
        // small one on the other side.
        let data = content(300_000 + BIG + 200_000 + 100_000, seed + 3);
        upload_across(
            storage,
            &format!("s3/big-between-from-{name}"),
            &data,
            first,
            &[(first, 300_000), (second, BIG), (first, 200_000)],
            second,
            &readers,
        );
    }
    let leftovers = storage.upload_leftovers();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

// Regressions of two bugs these tests found. Both passed on a directory (distribution's
// filesystem driver creates a missing `data` when it appends) and failed on S3, where
// distribution 2.8 can only append to an unfinished multipart upload: its `Writer(path,
// append)` lists the multipart uploads at the key and answers `PathNotFound` (HTTP 500,
// "unknown error") when there is none.

/// An upload POSTed on layerstore and continued on distribution: layerstore's POST must start
/// the multipart upload at `data` (`StorageDriver::start_appendable`), as distribution's does.
#[test]
fn upload_posted_on_layerstore_continues_on_distribution() {
    let Some(cluster) = cluster_and_tools() else {
        return;
    };
    let storage = Storage::S3 {
        cluster: &cluster,
        prefix: PREFIX,
    };
    let distribution = RegistryProcess::distribution_on(storage, SECRET).unwrap();
    let layerstore = RegistryProcess::layerstore_on(storage, SECRET);
    let data = content(600_000, 31);
    upload_across(
        storage,
        "s3/posted-on-layerstore",
        &data,
        layerstore.addr,
        &[(distribution.addr, 300_000)],
        layerstore.addr,
        &[distribution.addr, layerstore.addr],
    );
}

/// An empty PATCH on layerstore in the middle of an upload distribution holds: the checkpoint
/// without an open writer (`Upload::sync_data`) must sync `data`, not commit it (which on S3
/// completed distribution's multipart upload into a plain object, and distribution's next
/// PATCH failed with 500; `assert_appendable` checks right after the empty PATCH).
#[test]
fn empty_patch_on_layerstore_keeps_the_upload_appendable() {
    let Some(cluster) = cluster_and_tools() else {
        return;
    };
    let storage = Storage::S3 {
        cluster: &cluster,
        prefix: PREFIX,
    };
    let distribution = RegistryProcess::distribution_on(storage, SECRET).unwrap();
    let layerstore = RegistryProcess::layerstore_on(storage, SECRET);
    let data = content(600_000, 32);
    upload_across(
        storage,
        "s3/empty-patch",
        &data,
        distribution.addr,
        &[
            (distribution.addr, 200_000),
            (layerstore.addr, 0),
            (distribution.addr, 300_000),
        ],
        layerstore.addr,
        &[distribution.addr, layerstore.addr],
    );
}
