//! Support for the authentication tests: the real `layerstore serve` binary with its log (at
//! debug level, so as much as possible is logged) captured to a file that the tests grep for
//! credentials, start-up failures with their exit status and message, the assertions on a 401,
//! and podman with a store of its own.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::common::process::{run_with_timeout, ChildGuard};
use crate::common::{files_below, Reply};

/// A `layerstore serve` process over a fresh root, with its stderr in a file.
pub struct AuthServer {
    pub addr: std::net::SocketAddr,
    pub root: PathBuf,
    pub log: PathBuf,
    _guard: ChildGuard,
    _dir: tempfile::TempDir,
}

/// `layerstore serve` on a free port over `root`, logging at debug level.
fn serve_command(root: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_layerstore"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--secret", "auth-tests"])
        .arg("--root")
        .arg(root)
        .args(args)
        .env("RUST_LOG", "debug")
        .env_remove("LAYERSTORE_CONFIG");
    command
}

impl AuthServer {
    /// Starts serve with `args` and waits until it listens; panics with its log if it exits.
    pub fn start(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let log = dir.path().join("serve.log");
        let file = std::fs::File::create(&log).unwrap();
        let mut command = serve_command(&root, args);
        command.stdout(file.try_clone().unwrap()).stderr(file);
        let mut guard = ChildGuard::spawn(command, "layerstore serve").with_log(log.clone());
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            if let Err(e) = guard.exited() {
                panic!("{e}");
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let found = text
                .lines()
                .filter(|line| line.contains("layerstore serving"))
                .find_map(|line| line.split("address=").nth(1))
                .and_then(|rest| rest.split([' ', '}', ',']).next())
                .and_then(|addr| addr.trim_matches('"').parse().ok());
            if let Some(addr) = found {
                break addr;
            }
            assert!(Instant::now() < deadline, "serve never listened:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        };
        AuthServer {
            addr,
            root,
            log,
            _guard: guard,
            _dir: dir,
        }
    }

    /// One request on a fresh connection.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        crate::common::request(self.addr, method, path, headers, body)
    }

    /// Every file in the storage root.
    pub fn stored(&self) -> Vec<PathBuf> {
        files_below(&self.root)
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics if any of `secrets` (or its base64 form, as in a Basic header) is in the log.
    pub fn assert_log_free_of(&self, secrets: &[String]) {
        let log = self.log_text();
        assert!(!log.is_empty(), "the log is empty: nothing was checked");
        for secret in secrets {
            assert!(!secret.is_empty());
            let encoded = base64::engine::general_purpose::STANDARD.encode(secret);
            for needle in [secret.as_str(), encoded.as_str()] {
                assert!(
                    !log.contains(needle),
                    "the log holds a credential ({} chars)",
                    needle.len()
                );
            }
        }
    }
}

/// Runs serve with `args` over a fresh root expecting it to stop at once: its exit code and
/// stderr.
pub fn start_failure(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = serve_command(&dir.path().join("root"), args);
    command.stdin(Stdio::null());
    let Output { status, stderr, .. } = run_with_timeout(command, Duration::from_secs(20));
    (status.code(), String::from_utf8_lossy(&stderr).into_owned())
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// Asserts a 401 `UNAUTHORIZED` with exactly `challenge` (a HEAD has no body to check).
pub fn assert_unauthorized(reply: &Reply, challenge: &str, what: &str) {
    assert_eq!(
        reply.status,
        401,
        "{what}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.header("www-authenticate"), Some(challenge), "{what}");
    if !reply.body.is_empty() {
        assert_eq!(
            reply.error_code().as_deref(),
            Some("UNAUTHORIZED"),
            "{what}"
        );
    }
}

/// podman with its own store (`--root`, `--runroot`, `--tmpdir` in `work/STORE`), the `vfs`
/// driver, no event log, and its auth file in `work`, run in `work`. Returns the output.
pub fn podman(work: &Path, store: &str, args: &[&str]) -> Output {
    let dir = work.join(store);
    let mut command = Command::new("podman");
    command
        .current_dir(work)
        .env("REGISTRY_AUTH_FILE", work.join("auth.json"))
        .arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("runroot"))
        .arg("--tmpdir")
        .arg(dir.join("tmp"))
        .args(["--storage-driver", "vfs", "--events-backend", "none"])
        .args(args);
    run_with_timeout(command, Duration::from_secs(120))
}

/// [`podman`], panicking with its output unless it succeeds; returns stdout.
pub fn podman_ok(work: &Path, store: &str, args: &[&str]) -> String {
    let output = podman(work, store, args);
    assert!(
        output.status.success(),
        "podman {args:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Whether podman can run here (installed, and root for its vfs store without user
/// namespaces); says why not otherwise.
pub fn podman_usable() -> bool {
    if crate::clients_support::require_tool("podman").is_none() {
        return false;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        crate::common::process::missing("root for podman (its vfs store without user namespaces)");
        return false;
    }
    true
}

/// A small image in `repo:tag` pushed with `authorization` (a config and a layer, each a
/// single-request upload, then the manifest); every step must succeed. Returns the layer's
/// digest and the manifest's digest.
pub fn push_small_image(
    server: &AuthServer,
    authorization: &str,
    repo: &str,
    tag: &str,
) -> (String, String) {
    let auth = ("authorization", authorization);
    let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"tag\":\"{tag}\"}}");
    let layer = crate::common::content(4096, tag.len() as u8);
    let mut descriptors = Vec::new();
    for blob in [config.as_bytes(), &layer] {
        let digest = crate::common::sha256(blob);
        let path = format!("/v2/{repo}/blobs/uploads/?digest={digest}");
        let reply = server.request("POST", &path, &[auth], blob);
        assert_eq!(
            reply.status,
            201,
            "upload: {}",
            String::from_utf8_lossy(&reply.body)
        );
        descriptors.push((digest, blob.len()));
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": descriptors[0].0, "size": descriptors[0].1},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": descriptors[1].0, "size": descriptors[1].1}],
    })
    .to_string();
    let path = format!("/v2/{repo}/manifests/{tag}");
    let reply = server.request(
        "PUT",
        &path,
        &[auth, ("content-type", MANIFEST_TYPE)],
        manifest.as_bytes(),
    );
    assert_eq!(
        reply.status,
        201,
        "manifest: {}",
        String::from_utf8_lossy(&reply.body)
    );
    (
        descriptors[1].0.clone(),
        crate::common::sha256(manifest.as_bytes()),
    )
}

/// The OCI manifest media type.
pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
