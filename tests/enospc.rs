//! A real full filesystem: the server's root is a 6 MiB tmpfs, and an upload runs it out of
//! space midway. The client must get a JSON error (503 `TOOMANYREQUESTS` when the write fails,
//! 500 if a metadata write is the one that fails), everything already stored must stay readable,
//! and once the upload is cancelled and the space is back, pushes work again with fsck clean.
//!
//! Needs root (to mount tmpfs). Outside CI the test is skipped with a message when mounting is
//! not permitted; with `CI` set it fails instead.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{content, sha256, TestServer};
use layerstore::store::Store;

/// A tmpfs mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fs");
        std::fs::create_dir(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status();
        match status {
            Ok(s) if s.success() => Some(Tmpfs { path, _dir: dir }),
            _ if std::env::var_os("CI").is_some() => {
                panic!("CI: cannot mount a tmpfs for the ENOSPC test (needs root)")
            }
            _ => {
                eprintln!("skipping: cannot mount a tmpfs here (needs root)");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

#[test]
fn a_full_filesystem_mid_upload_is_an_error_and_loses_nothing() {
    let Some(fs) = Tmpfs::mount("6m") else {
        return;
    };
    let server = TestServer::start_on(fs.path(), "enospc");
    let kept = content(1 << 20, 1);
    let reply = server.request(
        "POST",
        &format!("/v2/r/blobs/uploads/?digest={}", sha256(&kept)),
        &[],
        &kept,
    );
    assert_eq!(reply.status, 201);

    // 8 MiB into what is left of 6 MiB.
    let reply = server.request("POST", "/v2/r/blobs/uploads/", &[], b"");
    assert_eq!(reply.status, 202);
    let location = reply.location();
    let big = content(8 << 20, 2);
    let reply = server.request("PATCH", &location, &[], &big);
    assert!(
        reply.status == 503 || reply.status == 500,
        "got {}",
        reply.status
    );
    let code = reply.error_code().expect("a JSON error body");
    assert!(code == "TOOMANYREQUESTS" || code == "UNSUPPORTED", "{code}");

    // What was stored before is still served, byte for byte.
    assert_eq!(
        server.get(&format!("/v2/r/blobs/{}", sha256(&kept))).body,
        kept
    );

    // Cancel the upload: the space comes back and pushes work again.
    let reply = server.request("DELETE", &location, &[], b"");
    assert_eq!(reply.status, 204);
    let more = content(1 << 20, 3);
    let reply = server.request(
        "POST",
        &format!("/v2/r/blobs/uploads/?digest={}", sha256(&more)),
        &[],
        &more,
    );
    assert_eq!(reply.status, 201);
    assert_eq!(
        server.get(&format!("/v2/r/blobs/{}", sha256(&more))).body,
        more
    );
    drop(server);
    let report = Store::filesystem(fs.path()).fsck(&|_| {}).unwrap();
    assert!(report.is_clean(), "{report:?}");
}
