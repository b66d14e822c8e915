//! `layerstore digest` against coreutils' `sha256sum` / `sha512sum` on real files and stdin.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn layerstore(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_layerstore"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = stdin.unwrap_or_default().to_vec();
    let mut pipe = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || pipe.write_all(&input));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    output
}

/// The hex that coreutils prints for `path`.
fn coreutils(tool: &str, path: &Path) -> String {
    let out = Command::new(tool).arg(path).output().unwrap();
    assert!(out.status.success(), "{tool} failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn write_files(dir: &Path) -> Vec<std::path::PathBuf> {
    // Sizes around block and window boundaries, and an empty file.
    [
        0usize,
        1,
        63,
        64,
        65,
        127,
        128,
        129,
        1 << 20,
        (3 << 20) + 17,
    ]
    .iter()
    .map(|&len| {
        let path = dir.join(format!("f{len}"));
        let data: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
        std::fs::write(&path, data).unwrap();
        path
    })
    .collect()
}

#[test]
fn matches_coreutils_on_files_for_both_algorithms() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_files(dir.path());
    for (algorithm, tool) in [("sha256", "sha256sum"), ("sha512", "sha512sum")] {
        let mut args = vec!["digest", "--algorithm", algorithm];
        let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        args.extend(names.iter().map(String::as_str));
        let out = layerstore(&args, None);
        assert!(out.status.success());
        let stdout = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), files.len());
        for (line, path) in lines.iter().zip(&files) {
            let expected = format!("{algorithm}:{}  {}", coreutils(tool, path), path.display());
            assert_eq!(*line, expected);
        }
    }
}

#[test]
fn reads_standard_input_for_dash() {
    let dir = tempfile::tempdir().unwrap();
    let path = &write_files(dir.path())[9];
    let data = std::fs::read(path).unwrap();
    let out = layerstore(&["digest", "-"], Some(&data));
    assert!(out.status.success());
    let expected = format!("sha256:{}  -\n", coreutils("sha256sum", path));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
}

#[test]
fn missing_file_is_reported_after_doing_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    std::fs::write(&good, b"abc").unwrap();
    let missing = dir.path().join("missing");
    let out = layerstore(
        &["digest", missing.to_str().unwrap(), good.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("missing") && stderr.contains("No such file"),
        "{stderr}"
    );
}

#[test]
fn a_directory_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let out = layerstore(&["digest", dir.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(!out.stderr.is_empty());
}

#[test]
fn help_and_bad_arguments() {
    let out = layerstore(&["digest", "--help"], None);
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("--algorithm"));
    let out = layerstore(&["digest", "--algorithm", "md5", "x"], None);
    assert_eq!(out.status.code(), Some(2));
    let out = layerstore(&["digest"], None);
    assert_eq!(out.status.code(), Some(2));
}
