//! Interoperability with distribution 2.8 (tests/interop_distribution*.rs): the same image and
//! the same upload flows on a directory and on a bucket. The image is pushed and pulled with
//! skopeo and compared digest by digest; an upload moves between registries sharing a storage
//! ([`upload_across`]), checked after every PATCH.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{request, sha256, Reply};

use super::oci::{assert_same_image, Layout};
use super::{skopeo_copy, Storage, OCTET};

/// A layout with a single image tagged `v1` and a two-platform index tagged `multi`.
pub fn source_layout(dir: &Path) -> Layout {
    let layout = Layout::create(dir);
    let single = layout.add_image(11, "amd64");
    layout.tag("v1", &single);
    let amd64 = layout.add_image(12, "amd64");
    let arm64 = layout.add_image(13, "arm64");
    let index = layout.add_index(&[amd64, arm64]);
    layout.tag("multi", &index);
    layout
}

/// Pushes [`source_layout`]'s `v1` and `multi` (with `--all`) to `host`'s `repo`.
pub fn push_source(layout: &Layout, host: &str, repo: &str) {
    skopeo_copy(
        &format!("oci:{}:v1", layout.dir.display()),
        &format!("docker://{host}/{repo}:v1"),
        &[],
    );
    skopeo_copy(
        &format!("oci:{}:multi", layout.dir.display()),
        &format!("docker://{host}/{repo}:multi"),
        &["--all"],
    );
}

/// Pulls `v1` and `multi` from `host`'s `repo` into a layout at `out` and compares them with
/// [`source_layout`]'s, digest by digest.
pub fn pull_and_compare(layout: &Layout, host: &str, repo: &str, out: &Path) {
    skopeo_copy(
        &format!("docker://{host}/{repo}:v1"),
        &format!("oci:{}:v1", out.display()),
        &[],
    );
    skopeo_copy(
        &format!("docker://{host}/{repo}:multi"),
        &format!("oci:{}:multi", out.display()),
        &["--all"],
    );
    let copy = Layout::open(out);
    assert_same_image(layout, &copy, "v1", "v1");
    assert_same_image(layout, &copy, "multi", "multi");
}

/// The path and query of a `Location`, absolute (distribution) or relative (layerstore), so
/// the next request can go to the other registry.
pub fn path_and_query(location: &str) -> String {
    match location.split_once("://") {
        Some((_, rest)) => rest[rest.find('/').expect("a path after the host")..].to_owned(),
        None => location.to_owned(),
    }
}

/// `reply`, after checking its status (the body is shown if it is not `status`).
pub fn expect(reply: Reply, status: u16, what: &str) -> Reply {
    assert_eq!(
        reply.status.as_u16(),
        status,
        "{what}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    reply
}

/// The upload id at the end of a `Location`'s path.
pub fn upload_id(location: &str) -> String {
    let path = path_and_query(location);
    let path = path.split('?').next().unwrap();
    path.rsplit('/').next().unwrap().to_owned()
}

/// On S3, the session behind `location` has exactly one unfinished multipart upload at its
/// `data`, holding all `size` bytes: what distribution 2.8's S3 driver needs to append to it
/// (it takes the first multipart upload it lists at the key and fails when there is none).
/// Nothing to check on a directory. Listings may lag for a moment, so it is asked again for up
/// to 3 s before failing.
pub fn assert_appendable(storage: Storage<'_>, repo: &str, location: &str, size: usize) {
    let relative = format!("repositories/{repo}/_uploads/{}/data", upload_id(location));
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let Some(found) = storage.unfinished(&relative) else {
            return;
        };
        if found == [size as u64] {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{relative}: unfinished multipart uploads of {found:?} bytes, not one of {size}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The session behind `location` holds a Go-format sha256 state saved at exactly `data.len()`
/// (`hashstates/sha256/<size>`), the one file distribution 2.8 resumes from, and it is the state
/// of exactly those bytes. Checked after every PATCH, on either registry. layerstore saves it
/// right after answering (its checkpoint follows the 202 on a filesystem), so it is waited for
/// up to 3 s.
pub fn assert_saved_state(storage: Storage<'_>, repo: &str, location: &str, data: &[u8]) {
    let id = upload_id(location);
    let relative = format!(
        "repositories/{repo}/_uploads/{id}/hashstates/sha256/{}",
        data.len()
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    let bytes = loop {
        match storage.read(&relative) {
            Some(bytes) => break bytes,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            None => panic!("no hash state at {relative}"),
        }
    };
    let state = layerstore::hash::ResumableSha256::from_go_bytes(&bytes).unwrap();
    assert_eq!(state.len(), data.len() as u64);
    assert_eq!(state.digest().to_string(), sha256(data));
}

/// An upload that moves between registries sharing `storage` and a secret: POST on `post_on`,
/// then one PATCH per `(registry, length)` of `patches` (consecutive pieces of `data`), each
/// answered with the whole range so far, after which the storage holds the exact-size hash
/// state and (on S3) one multipart upload of all the bytes; then the closing PUT on `put_on` with the rest of `data` (maybe nothing). The blob
/// must then read back intact, under its digest, from every registry in `readers`.
pub fn upload_across(
    storage: Storage<'_>,
    repo: &str,
    data: &[u8],
    post_on: SocketAddr,
    patches: &[(SocketAddr, usize)],
    put_on: SocketAddr,
    readers: &[SocketAddr],
) {
    let digest = sha256(data);
    let post = request(
        post_on,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        b"",
    );
    let mut location = path_and_query(&expect(post, 202, "POST").location());
    let mut sent = 0;
    for (i, &(on, len)) in patches.iter().enumerate() {
        let chunk = &data[sent..sent + len];
        let patch = request(on, "PATCH", &location, &[OCTET], chunk);
        let what = format!("PATCH {i} ({len} bytes at {sent}) on {on}");
        let patch = expect(patch, 202, &what);
        sent += len;
        let range = format!("0-{}", sent - 1);
        assert_eq!(patch.header("range"), Some(range.as_str()), "{what}");
        assert_saved_state(storage, repo, &patch.location(), &data[..sent]);
        assert_appendable(storage, repo, &patch.location(), sent);
        location = path_and_query(&patch.location());
        // The next registry sees the same offset (asked with the same token).
        let next = patches.get(i + 1).map_or(put_on, |&(next, _)| next);
        let status = expect(request(next, "GET", &location, &[], b""), 204, "status");
        assert_eq!(
            status.header("range"),
            Some(range.as_str()),
            "status on {next}"
        );
    }
    let sep = if location.contains('?') { '&' } else { '?' };
    let put = request(
        put_on,
        "PUT",
        &format!("{location}{sep}digest={digest}"),
        &[OCTET],
        &data[sent..],
    );
    let put = expect(put, 201, &format!("PUT on {put_on}"));
    assert_eq!(put.header("docker-content-digest"), Some(digest.as_str()));
    for &addr in readers {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let blob = expect(request(addr, "GET", &path, &[], b""), 200, "GET");
        assert_eq!(
            blob.header("docker-content-digest"),
            Some(digest.as_str()),
            "GET on {addr}"
        );
        assert_eq!(blob.body.len(), data.len(), "GET on {addr}");
        assert!(blob.body == data, "GET on {addr}: other bytes");
    }
}
