//! Support for the real-client tests (skopeo, Python clients, distribution 2.8): finding the
//! tools (a missing tool fails in CI, skips elsewhere), child processes that are always killed,
//! the layerstore binary and distribution 2.8 as servers on free loopback ports, each on a
//! directory or on a prefix of a Garage bucket ([`Storage`], in [`storage`]), the upload and
//! image flows shared by the interop tests (in [`interop`]), and OCI image layouts built by hand
//! and compared digest by digest (in [`oci`]).

#![allow(dead_code)] // each test binary uses a different part

pub mod interop;
pub mod oci;
pub mod storage;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

// Child processes that are always killed, free ports, commands with deadlines and the CI rule for
// missing tools live in `common::process` (the Garage cluster in `common::garage` uses them too).
pub use crate::common::process::{free_port, missing, run_with_timeout, ChildGuard};

pub use storage::Storage;

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

/// Waits until `addr` answers `GET /v2/` with 200 (or 401). `Err` with the process's log if it exited
/// first (e.g. the port was taken in the meantime); panics after 20 s.
fn wait_ready(addr: SocketAddr, guard: &mut ChildGuard) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        guard.exited()?;
        if TcpStream::connect(addr).is_ok() {
            let reply = crate::common::request(addr, "GET", "/v2/", &[], b"");
            // 401: ready, and wanting credentials.
            if reply.status == 200 || reply.status == 401 {
                return Ok(());
            }
        }
        assert!(Instant::now() < deadline, "{addr} never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
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

    /// distribution 2.8 over `root` with `secret` and `extra` appended to its config file (e.g.
    /// an `auth:` section). `None` when the tool is missing outside CI.
    pub fn distribution_with(root: &Path, secret: &str, extra: &str) -> Option<Self> {
        let binary = require_tool("docker-registry")?;
        Some(Self::start("docker-registry serve", |addr, dir| {
            let config = dir.join("config.yml");
            let text = distribution_config(Storage::Root(root), addr, secret);
            std::fs::write(&config, format!("{text}{extra}")).unwrap();
            let mut command = Command::new(&binary);
            command.arg("serve").arg(&config);
            command
        }))
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
/// may be serving at the time. Panics with its output if it fails. Returns its standard
/// output, where it lists what it marks and what it deletes (or, with `--dry-run`, would).
pub fn distribution_garbage_collect(root: &Path, extra: &[&str]) -> String {
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
    String::from_utf8_lossy(&output.stdout).into_owned()
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
