//! The storage subcommands on the real binary: put, get (with ranges), fsck, purge-uploads.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use layerstore::digest::Digest;
use layerstore::names::RepositoryName;
use layerstore::storage::PathSpec;
use layerstore::store::Store;

fn run(args: &[&str], root: &Path, stdin: Option<&[u8]>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_layerstore"));
    command
        .arg(args[0])
        .arg("--root")
        .arg(root)
        .args(&args[1..]);
    common::process::run_with_stdin(command, stdin)
}

#[test]
fn put_get_fsck_purge() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let file = dir.path().join("input");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let digest = Digest::sha256(&data);

    let out = run(
        &["put", "--repo", "lib/app", file.to_str().unwrap()],
        &root,
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        digest.to_string()
    );

    let out = run(
        &["put", "--repo", "lib/app", "-"],
        &root,
        Some(b"from stdin"),
    );
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        Digest::sha256(b"from stdin").to_string()
    );

    let wrong = Digest::sha256(b"nope").to_string();
    let out = run(
        &["put", "--repo", "lib/app", "--digest", &wrong, "-"],
        &root,
        Some(b"x"),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("digest mismatch"));

    let d = digest.to_string();
    let out = run(&["get", "--repo", "lib/app", &d], &root, None);
    assert!(out.status.success());
    assert!(out.stdout == data);
    let out = run(&["get", &d, "--range", "100-199"], &root, None);
    assert_eq!(out.stdout, &data[100..200]);
    for bad in [
        vec!["get", &d, "--range", "5-200000"],
        vec!["get", &d, "--range", "9-3"],
    ] {
        let out = run(&bad, &root, None);
        assert!(!out.status.success() && out.stdout.is_empty());
        assert!(String::from_utf8_lossy(&out.stderr).contains("not satisfiable"));
    }
    let out = run(&["get", "--repo", "other/repo", &d], &root, None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("blob unknown"));
    let out = run(&["get", "sha256:zz"], &root, None);
    assert!(!out.status.success());

    let out = run(&["fsck"], &root, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Corrupt the blob: fsck names it and fails.
    let blob = root.join(
        PathSpec::BlobData { digest: &digest }
            .to_path()
            .unwrap()
            .relative(),
    );
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let out = run(&["fsck"], &root, None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("corrupt blob {digest}")));

    // purge-uploads: the session left by the failed put (kept on mismatch) is young.
    let store = Store::filesystem(&root);
    let repo = RepositoryName::parse("lib/app").unwrap();
    let old = store.create_upload(&repo).unwrap();
    let started = PathSpec::UploadStartedAt {
        repo: &repo,
        id: old.id(),
    }
    .to_path()
    .unwrap();
    drop(old);
    store
        .driver()
        .put_content(&started, b"2000-01-01T00:00:00Z")
        .unwrap();
    // Temporary files of writers killed mid-write: a stale one goes, a fresh one (a writer
    // still at work) stays.
    let temp_dir = root.join(".layerstore-tmp");
    std::fs::create_dir_all(&temp_dir).unwrap();
    let stale = temp_dir.join(".layerstore-tmp-0000000000000001");
    let fresh = temp_dir.join(".layerstore-tmp-0000000000000002");
    std::fs::write(&stale, b"half a link").unwrap();
    std::fs::write(&fresh, b"being written").unwrap();
    let eight_days_ago = SystemTime::now() - Duration::from_secs(8 * 24 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(eight_days_ago)
        .unwrap();
    let out = run(&["purge-uploads", "--older-than", "7d"], &root, None);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(
        stdout.contains("deleted 1 stale temporary file(s)"),
        "{stdout}"
    );
    assert!(!root.join(started.relative()).exists());
    assert!(!stale.exists() && fresh.exists());
    let out = run(&["purge-uploads", "--older-than", "7x"], &root, None);
    assert!(!out.status.success());
}
