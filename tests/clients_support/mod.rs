//! Support for the real-client tests (skopeo, Python clients, distribution 2.8): finding the
//! tools (a missing tool fails in CI, skips elsewhere), child processes that are always killed,
//! the layerstore binary and distribution 2.8 as servers on free loopback ports, each on a
//! directory or on a prefix of a Garage bucket ([`Storage`]), the upload and image flows shared
//! by the interop tests, and OCI image layouts built by hand and compared digest by digest.

#![allow(dead_code)] // each test binary uses a different part

pub mod oci;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

// Child processes that are always killed, free ports, commands with deadlines and the CI rule for
// missing tools live in `common::process` (the Garage cluster in `common::garage` uses them too).
pub use crate::common::process::{free_port, missing, run_with_timeout, ChildGuard};

use crate::common::garage::GarageCluster;
use crate::common::{request, sha256, Reply};
use oci::{assert_same_image, Layout};

/// `Content-Type` of upload chunks.
pub const OCTET: (&str, &str) = ("content-type", "application/octet-stream");

/// The tool on `PATH`, or `None` (after saying "skipping") outside CI. In CI (`CI` set) a
/// missing tool is a failure: a green run must mean the clients really ran.
pub fn require_tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        missing(name);
    }
    found
}

/// The repository's checkout (where `.venv-clients/` lives).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python interpreter of `.venv-clients/` if it can import every module in `modules`.
pub fn python_with(modules: &[&str]) -> Option<PathBuf> {
    let python = repo_root().join(".venv-clients/bin/python");
    let imports = modules.join(", ");
    let works = python.is_file()
        && Command::new(&python)
            .args(["-c", &format!("import {imports}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !works {
        missing(&format!(".venv-clients with {imports}"));
        return None;
    }
    Some(python)
}

/// Waits until `addr` answers `GET /v2/` with 200. `Err` with the process's log if it exited
/// first (e.g. the port was taken in the meantime); panics after 20 s.
fn wait_ready(addr: SocketAddr, guard: &mut ChildGuard) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        guard.exited()?;
        if TcpStream::connect(addr).is_ok() {
            let reply = crate::common::request(addr, "GET", "/v2/", &[], b"");
            if reply.status == 200 {
                return Ok(());
            }
        }
        assert!(Instant::now() < deadline, "{addr} never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where a registry process keeps its data: the same layout either way
/// (`docker/registry/v2/...` below the root directory or below `PREFIX/` in the bucket), so
/// layerstore and distribution given the same `Storage` share their data.
#[derive(Clone, Copy)]
pub enum Storage<'a> {
    /// A directory: layerstore's `--root`, distribution's `filesystem` driver.
    Root(&'a Path),
    /// `PREFIX/` in the cluster's bucket: layerstore's `--storage s3://BUCKET/PREFIX` (with
    /// 5 MiB parts, so test bodies cross part boundaries cheaply), distribution's `s3` driver
    /// with `rootdirectory: /PREFIX`.
    S3 {
        cluster: &'a GarageCluster,
        prefix: &'a str,
    },
}

impl Storage<'_> {
    /// The stored file at `relative` (below `docker/registry/v2/`), or `None` if there is none.
    /// On S3 only complete objects count (an unfinished multipart upload is no object).
    pub fn read(&self, relative: &str) -> Option<Vec<u8>> {
        match *self {
            Storage::Root(root) => std::fs::read(root.join(V2).join(relative)).ok(),
            Storage::S3 { cluster, prefix } => {
                let key = format!("{}{relative}", s3_v2_prefix(prefix));
                let client = s3_client(cluster);
                s3_runtime().block_on(async {
                    match client
                        .get_object()
                        .bucket(&cluster.bucket)
                        .key(&key)
                        .send()
                        .await
                    {
                        Ok(object) => Some(object.body.collect().await.unwrap().to_vec()),
                        Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => None,
                        Err(e) => panic!("GetObject {key}: {e:?}"),
                    }
                })
            }
        }
    }

    /// On S3, the size of every unfinished multipart upload at exactly `relative` (below
    /// `docker/registry/v2/`), each confirmed with a `ListParts`; `None` on a directory.
    pub fn unfinished(&self, relative: &str) -> Option<Vec<u64>> {
        let Storage::S3 { cluster, prefix } = *self else {
            return None;
        };
        use aws_sdk_s3::error::ProvideErrorMetadata;
        let client = s3_client(cluster);
        let bucket = cluster.bucket.as_str();
        let key = format!("{}{relative}", s3_v2_prefix(prefix));
        Some(s3_runtime().block_on(async {
            let uploads = client
                .list_multipart_uploads()
                .bucket(bucket)
                .prefix(&key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("ListMultipartUploads {key}: {e:?}"));
            let mut sizes = Vec::new();
            for upload in uploads.uploads() {
                let (Some(found), Some(id)) = (upload.key(), upload.upload_id()) else {
                    continue;
                };
                if found != key {
                    continue;
                }
                let parts = client
                    .list_parts()
                    .bucket(bucket)
                    .key(&key)
                    .upload_id(id)
                    .send()
                    .await;
                match parts {
                    Ok(parts) => {
                        assert_ne!(parts.is_truncated(), Some(true));
                        let size = parts.parts().iter().filter_map(|p| p.size()).sum::<i64>();
                        sizes.push(size as u64);
                    }
                    Err(e)
                        if e.as_service_error().and_then(|e| e.code()) == Some("NoSuchUpload") => {}
                    Err(e) => panic!("ListParts {key}: {e:?}"),
                }
            }
            sizes
        }))
    }

    /// What is left of upload sessions: every file below a repository's `_uploads/`, and on
    /// S3 also every unfinished multipart upload anywhere under the prefix (`"multipart: KEY"`).
    /// Empty once every upload was committed or cancelled.
    ///
    /// Garage's listings may lag for a moment behind a deletion (a key whose `GetObject` already
    /// answers `NoSuchKey` can still be listed), so on S3 every listed object is confirmed with
    /// a `HeadObject` and every listed multipart upload with a `ListParts`.
    pub fn upload_leftovers(&self) -> Vec<String> {
        match *self {
            Storage::Root(root) => {
                let repositories = root.join(V2).join("repositories");
                crate::common::files_below(&repositories)
                    .into_iter()
                    .map(|path| path.display().to_string())
                    .filter(|path| path.contains("/_uploads/"))
                    .collect()
            }
            Storage::S3 { cluster, prefix } => {
                use aws_sdk_s3::error::ProvideErrorMetadata;
                let client = s3_client(cluster);
                let bucket = cluster.bucket.as_str();
                let repositories = format!("{}repositories/", s3_v2_prefix(prefix));
                let everything = s3_v2_prefix(prefix)
                    .strip_suffix("docker/registry/v2/")
                    .unwrap()
                    .to_owned();
                s3_runtime().block_on(async {
                    let mut leftovers = Vec::new();
                    let mut pages = client
                        .list_objects_v2()
                        .bucket(bucket)
                        .prefix(&repositories)
                        .into_paginator()
                        .send();
                    while let Some(page) = pages.next().await {
                        let page = page.unwrap_or_else(|e| panic!("ListObjectsV2: {e:?}"));
                        for key in page.contents().iter().filter_map(|o| o.key()) {
                            if !key.contains("/_uploads/") {
                                continue;
                            }
                            match client.head_object().bucket(bucket).key(key).send().await {
                                Ok(_) => leftovers.push(key.to_owned()),
                                Err(e)
                                    if e.as_service_error().is_some_and(|e| e.is_not_found()) => {}
                                Err(e) => panic!("HeadObject {key}: {e:?}"),
                            }
                        }
                    }
                    // Few enough here for one page (up to 1,000).
                    let uploads = client
                        .list_multipart_uploads()
                        .bucket(bucket)
                        .prefix(&everything)
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("ListMultipartUploads: {e:?}"));
                    assert_ne!(uploads.is_truncated(), Some(true));
                    for upload in uploads.uploads() {
                        let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) else {
                            continue;
                        };
                        let parts = client
                            .list_parts()
                            .bucket(bucket)
                            .key(key)
                            .upload_id(id)
                            .send()
                            .await;
                        match parts {
                            Ok(_) => leftovers.push(format!("multipart: {key}")),
                            Err(e)
                                if e.as_service_error().and_then(|e| e.code())
                                    == Some("NoSuchUpload") => {}
                            Err(e) => panic!("ListParts {key}: {e:?}"),
                        }
                    }
                    leftovers
                })
            }
        }
    }
}

/// Where distribution's storage tree starts below a root.
const V2: &str = "docker/registry/v2";

/// `PREFIX/docker/registry/v2/` (or without `PREFIX/` for an empty prefix).
fn s3_v2_prefix(prefix: &str) -> String {
    match prefix.trim_matches('/') {
        "" => format!("{V2}/"),
        prefix => format!("{prefix}/{V2}/"),
    }
}

/// A client of the cluster's node 0 with its key, configured explicitly (nothing from this
/// process's `AWS_*` environment), path-style addressing.
fn s3_client(cluster: &GarageCluster) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(cluster.region.clone()))
        .endpoint_url(&cluster.endpoint)
        .credentials_provider(Credentials::new(
            &cluster.access_key_id,
            &cluster.secret_access_key,
            None,
            None,
            "clients-support",
        ))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

fn s3_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A registry process (layerstore's binary or distribution 2.8) serving a [`Storage`].
pub struct RegistryProcess {
    pub addr: SocketAddr,
    _guard: ChildGuard,
    _dir: tempfile::TempDir,
}

impl RegistryProcess {
    /// Starts `command_for(addr, dir)` on a free port and waits until it serves. The port is
    /// only known to be free when picked, so a process that exits at once is retried on another.
    fn start(what: &str, command_for: impl Fn(SocketAddr, &Path) -> Command) -> Self {
        let mut failures = Vec::new();
        for _ in 0..3 {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let dir = tempfile::tempdir().unwrap();
            // The log goes to a file (distribution logs every 404 as an error), shown on failure.
            let log_path = dir.path().join("server.log");
            let log = std::fs::File::create(&log_path).unwrap();
            let mut command = command_for(addr, dir.path());
            command.stdout(log.try_clone().unwrap()).stderr(log);
            let mut guard = ChildGuard::spawn(command, what).with_log(log_path);
            match wait_ready(addr, &mut guard) {
                Ok(()) => {
                    return RegistryProcess {
                        addr,
                        _guard: guard,
                        _dir: dir,
                    }
                }
                Err(e) => failures.push(e),
            }
        }
        panic!("{what} did not start: {failures:#?}");
    }

    /// `layerstore serve` (the real binary) over `root` with `secret`.
    pub fn layerstore(root: &Path, secret: &str) -> Self {
        Self::layerstore_on(Storage::Root(root), secret)
    }

    /// `layerstore serve` (the real binary) on `storage` with `secret`. On S3 it is configured
    /// as the README says (the `AWS_*` environment and an `s3://` URL), with nothing of this
    /// process's own AWS environment or profiles, and a config file setting 5 MiB parts.
    pub fn layerstore_on(storage: Storage<'_>, secret: &str) -> Self {
        Self::start("layerstore serve", |addr, dir| {
            let mut command = Command::new(env!("CARGO_BIN_EXE_layerstore"));
            command
                .arg("serve")
                .arg("--listen")
                .arg(addr.to_string())
                .arg("--secret")
                .arg(secret)
                .env("RUST_LOG", "warn");
            match storage {
                Storage::Root(root) => {
                    command.arg("--root").arg(root);
                }
                Storage::S3 { cluster, prefix } => {
                    let config = dir.join("layerstore.toml");
                    std::fs::write(&config, "[s3]\npart_size = \"5MiB\"\n").unwrap();
                    for (name, _) in std::env::vars_os() {
                        if name.to_string_lossy().starts_with("AWS_") && name != "AWS_CA_BUNDLE" {
                            command.env_remove(&name);
                        }
                    }
                    command
                        .arg("--storage")
                        .arg(format!("s3://{}/{prefix}", cluster.bucket))
                        .arg("--config")
                        .arg(&config)
                        .envs(cluster.env())
                        .env("HOME", dir)
                        .env("AWS_EC2_METADATA_DISABLED", "true");
                }
            }
            command
        })
    }

    /// distribution 2.8 (`docker-registry serve`) over `root` with `secret`.
    pub fn distribution(root: &Path, secret: &str) -> Option<Self> {
        Self::distribution_on(Storage::Root(root), secret)
    }

    /// distribution 2.8 (`docker-registry serve`) on `storage` with `secret`: deletes on, no
    /// auth, no blob descriptor cache, no upload purging, no redirects to the bucket, errors
    /// only. `None` when the tool is missing outside CI.
    pub fn distribution_on(storage: Storage<'_>, secret: &str) -> Option<Self> {
        let binary = require_tool("docker-registry")?;
        Some(Self::start("docker-registry serve", |addr, dir| {
            let config = dir.join("config.yml");
            std::fs::write(&config, distribution_config(storage, addr, secret)).unwrap();
            let mut command = Command::new(&binary);
            command.arg("serve").arg(&config);
            // Its S3 driver takes everything from the config file; with AWS_CA_BUNDLE set (as
            // on some machines) it panics at start.
            for (name, _) in std::env::vars_os() {
                if name.to_string_lossy().starts_with("AWS_") {
                    command.env_remove(&name);
                }
            }
            command
        }))
    }

    /// `127.0.0.1:PORT`, as clients name the registry.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }
}

/// Runs `docker-registry garbage-collect` (with `extra` flags) over `root`, which no registry
/// may be serving at the time. Panics with its output if it fails.
pub fn distribution_garbage_collect(root: &Path, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yml");
    let addr = "127.0.0.1:0".parse().unwrap();
    std::fs::write(
        &config,
        distribution_config(Storage::Root(root), addr, "unused"),
    )
    .unwrap();
    let mut command = Command::new("docker-registry");
    command.arg("garbage-collect").args(extra).arg(&config);
    let output = run_with_timeout(command, Duration::from_secs(60));
    assert!(
        output.status.success(),
        "garbage-collect failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn distribution_config(storage: Storage<'_>, addr: SocketAddr, secret: &str) -> String {
    let driver = match storage {
        Storage::Root(root) => format!(
            "  filesystem:\n    rootdirectory: {root}\n",
            root = root.display()
        ),
        // The driver forces path-style requests itself with a `regionendpoint`.
        Storage::S3 { cluster, prefix } => format!(
            "  s3:\n    region: {region}\n    regionendpoint: {endpoint}\n    \
             bucket: {bucket}\n    accesskey: {key}\n    secretkey: {secret_key}\n    \
             secure: false\n    v4auth: true\n    rootdirectory: /{prefix}\n  \
             redirect:\n    disable: true\n",
            region = cluster.region,
            endpoint = cluster.endpoint,
            bucket = cluster.bucket,
            key = cluster.access_key_id,
            secret_key = cluster.secret_access_key,
            prefix = prefix.trim_matches('/'),
        ),
    };
    format!(
        "version: 0.1\n\
         log:\n  level: error\n  accesslog:\n    disabled: true\n\
         storage:\n{driver}  delete:\n    enabled: true\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: {addr}\n  secret: {secret}\n",
    )
}

/// Runs skopeo (no signature policy, no TLS to our plain-HTTP registries) and returns its
/// output; panics with skopeo's stderr when it fails and `expect_success` is set.
pub fn skopeo(args: &[&str], expect_success: bool) -> Output {
    let mut command = Command::new("skopeo");
    command.arg("--insecure-policy").args(args);
    let output = run_with_timeout(command, Duration::from_secs(60));
    if expect_success {
        assert!(
            output.status.success(),
            "skopeo {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output
}

/// `skopeo copy` between two transports, plain HTTP on both registry sides.
pub fn skopeo_copy(from: &str, to: &str, extra: &[&str]) {
    let mut args = vec![
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--retry-times",
        "0",
        // Fail rather than silently convert: every digest must survive the trip.
        "--preserve-digests",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[from, to]);
    skopeo(&args, true);
}

// Interoperability with distribution 2.8 (tests/interop_distribution*.rs): the same image and
// the same upload flows on a directory and on a bucket.

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
/// of exactly those bytes. Checked after every PATCH, on either registry.
pub fn assert_saved_state(storage: Storage<'_>, repo: &str, location: &str, data: &[u8]) {
    let id = upload_id(location);
    let relative = format!(
        "repositories/{repo}/_uploads/{id}/hashstates/sha256/{}",
        data.len()
    );
    let bytes = storage
        .read(&relative)
        .unwrap_or_else(|| panic!("no hash state at {relative}"));
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
