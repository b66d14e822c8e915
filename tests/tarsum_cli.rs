//! Runs the built `layerstore tarsum` binary on the reference archives: plain, gzip, stdin,
//! `--extra`, every version and hash, and archives the reference rejects.

mod tarsum_common;

use std::io::Write;
use std::process::{Command, Stdio};

use tarsum_common::{tarsum_data, L1, L2};

fn layerstore() -> Command {
    Command::new(env!("CARGO_BIN_EXE_layerstore"))
}

/// Runs `layerstore tarsum ARGS`, returns (success, stdout, stderr).
fn run(args: &[&str], stdin: Option<&[u8]>) -> (bool, String, String) {
    let mut cmd = layerstore();
    cmd.arg("tarsum").args(args);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn layerstore");
    if let Some(data) = stdin {
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn path(rel: &str) -> String {
    tarsum_data().join(rel).display().to_string()
}

#[test]
fn reference_layers_with_extra_every_version() {
    let layer = path(&format!("{L1}/layer.tar"));
    let json = path(&format!("{L1}/json"));
    let cases = [
        (
            "v0",
            "tarsum+sha256:4095cc12fa5fdb1ab2760377e1cd0c4ecdd3e61b4f9b82319d96fcea6c9a41c6",
        ),
        (
            "v1",
            "tarsum.v1+sha256:db56e35eec6ce65ba1588c20ba6b1ea23743b59e81fb6b7f358ccbde5580345c",
        ),
        (
            "dev",
            "tarsum.dev+sha256:db56e35eec6ce65ba1588c20ba6b1ea23743b59e81fb6b7f358ccbde5580345c",
        ),
    ];
    for (version, expected) in cases {
        let (ok, out, err) = run(&["--version", version, "--extra", &json, &layer], None);
        assert!(ok, "{err}");
        assert_eq!(out, format!("{expected}  {layer}\n"));
    }
}

#[test]
fn default_is_v1_sha256_and_stdin_works() {
    let layer = path(&format!("{L2}/layer.tar"));
    let (ok, out, _) = run(&[&layer], None);
    assert!(ok);
    assert_eq!(
        out,
        format!("tarsum.v1+sha256:324d4cf44ee7daa46266c1df830c61a7df615c0632176a339e7310e34723d67a  {layer}\n")
    );
    let data = std::fs::read(&layer).unwrap();
    let (ok, out, _) = run(&["-"], Some(&data));
    assert!(ok);
    assert!(out.starts_with("tarsum.v1+sha256:324d4cf4"));
    assert!(out.ends_with("  -\n"));
}

#[test]
fn gzip_input_is_detected_and_sha512_selectable() {
    let gz = path("generated/sized-1x1MiB-zeros.tar.gz");
    let (ok, out, _) = run(&["--version", "v0", &gz], None);
    assert!(ok);
    assert!(out.starts_with(
        "tarsum+sha256:75258b2c5dcd9adfe24ce71eeca5fc5019c7e669912f15703ede92b1a60cb11f  "
    ));
    let (ok, out, _) = run(
        &["--version", "v0", "--hash", "sha512", "-"],
        Some(&std::fs::read(&gz).unwrap()),
    );
    assert!(ok);
    assert!(out.starts_with("tarsum+sha512:7c56de40b2d1ed3863ff25d83b59cdc8f53e67d1c01c3ee8f201f8e4dec3107da976d0c0ec9109c962a152b32699fe329b2dab13966020e400c32878a0761a7e  -"));
}

#[test]
fn rejected_archives_fail_with_a_message() {
    let data = std::fs::read(path(&format!("{L1}/layer.tar"))).unwrap();
    // Cut inside the first entry's header.
    let (ok, out, err) = run(&["-"], Some(&data[..700]));
    assert!(!ok);
    assert!(out.is_empty());
    assert!(err.contains("unexpected end of archive"), "{err}");
    // A corrupted header checksum.
    let mut bad = data.clone();
    bad[0] ^= 1;
    let (ok, _, err) = run(&["-"], Some(&bad));
    assert!(!ok);
    assert!(err.contains("bad checksum"), "{err}");
    // A missing file.
    let (ok, _, err) = run(&["/nonexistent/layer.tar"], None);
    assert!(!ok);
    assert!(err.contains("/nonexistent/layer.tar"), "{err}");
}

#[test]
fn legacy_owner_names_flag() {
    let tar = path("collision/collision-0.tar");
    let (ok, out, _) = run(&["--version", "v0", "--legacy-owner-names", &tar], None);
    assert!(ok);
    assert!(out.starts_with(
        "tarsum+sha256:08653904a68d3ab5c59e65ef58c49c1581caa3c34744f8d354b3f575ea04424a  "
    ));
}
