//! `layerstore gc` and `serve --gc-interval` as an operator runs them: the printed report, the
//! JSON report, the refusals, and a background collection seen in the log and the metrics.

mod common;
mod gc_support;

use std::process::Command;
use std::time::{Duration, Instant};

use common::process::{log_field, ServerProcess};
use common::request;
use gc_support::*;
use layerstore::store::Store;

fn layerstore(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_layerstore"))
        .args(args)
        .output()
        .unwrap()
}

/// A root with one tagged image, one untagged image and one orphan blob, all a day old.
fn root_with_garbage() -> (tempfile::TempDir, gc_support::Image, gc_support::Image) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::filesystem(dir.path());
    let app = repo("team/app");
    let live = push_image(&store, &app, &[b"cfg live", b"layer live"], Some("v1"));
    let untagged = push_image(&store, &app, &[b"cfg old", b"layer old"], None);
    put_blob(&store, &app, b"orphan");
    age_everything(dir.path(), Duration::from_secs(86_400));
    (dir, live, untagged)
}

#[test]
fn gc_prints_what_it_deletes_and_a_summary() {
    let (dir, live, untagged) = root_with_garbage();
    let root = dir.path().to_str().unwrap();
    let out = layerstore(&["gc", "--root", root, "--delete-untagged"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("deleted manifest team/app@{}", untagged.digest)),
        "{text}"
    );
    for blob in &untagged.blobs {
        assert!(text.contains(&format!("deleted blob {blob} (")), "{text}");
    }
    assert!(text.contains("/_layers/sha256/"), "{text}");
    let summary = text.lines().last().unwrap();
    assert!(
        summary.contains("deleted 4 blobs (") && summary.contains("1 manifests"),
        "{summary}"
    );
    let store = Store::filesystem(dir.path());
    assert!(live.blobs.iter().all(|b| stored(&store, b)));
    assert_fsck_clean(&store);
}

#[test]
fn gc_json_dry_run_reports_without_deleting() {
    let (dir, _live, untagged) = root_with_garbage();
    let root = dir.path().to_str().unwrap();
    let out = layerstore(&[
        "gc",
        "--root",
        root,
        "--dry-run",
        "--delete-untagged",
        "--json",
    ]);
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["manifests"][0]["repository"], "team/app");
    assert_eq!(
        report["manifests"][0]["digest"],
        untagged.digest.to_string()
    );
    assert_eq!(report["blobs"].as_array().unwrap().len(), 4);
    assert!(report["bytes_freed"].as_u64().unwrap() > 0);
    let store = Store::filesystem(dir.path());
    assert!(
        untagged.blobs.iter().all(|b| stored(&store, b)),
        "a dry run deleted"
    );
}

#[test]
fn a_grace_too_short_for_live_writers_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let out = layerstore(&["gc", "--root", root, "--grace", "1m"]);
    assert_eq!(out.status.code(), Some(2));
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains("--offline") && message.contains("--grace 240s"),
        "{message}"
    );
    let out = layerstore(&["gc", "--root", root, "--grace", "0s", "--offline"]);
    assert!(out.status.success());
    let out = layerstore(&["gc", "--root", root, "--touch-after", "0s", "--offline"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 1s"));
    // serve, collecting hourly with one more flag: refused with a usage error naming `expect`.
    let refused = |flag: &str, value: &str, expect: &str| {
        let serve = ["serve", "--root", root, "--listen", "127.0.0.1:0"];
        let out = layerstore(&[&serve[..], &["--gc-interval", "1h", flag, value]].concat());
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let message = String::from_utf8_lossy(&out.stderr);
        assert!(message.contains(expect), "{flag} {value}: {message}");
    };
    refused("--gc-grace", "1m", "--gc-touch-after");
    for fraction in ["0", "1.5", "NaN"] {
        refused("--gc-work-fraction", fraction, "is not in (0, 1]");
    }
}

#[test]
fn a_grace_under_two_claim_leases_runs_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let short = [
        "gc",
        "--root",
        root,
        "--grace",
        "40s",
        "--touch-after",
        "10s",
    ];
    let out = layerstore(&short);
    assert!(out.status.success(), "{out:?}");
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains("warning") && message.contains("two claim leases (60s)"),
        "{message}"
    );
    let out = layerstore(&[
        "gc",
        "--root",
        root,
        "--grace",
        "60s",
        "--touch-after",
        "10s",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
}

/// serve collecting every second, with the shortest grace its touch interval allows.
const FAST_GC: [&str; 6] = [
    "--gc-interval",
    "1s",
    "--gc-grace",
    "4s",
    "--gc-touch-after",
    "1s",
];

#[test]
fn serve_collects_in_the_background_and_counts_it() {
    let (dir, live, untagged) = root_with_garbage();
    let more = ["--gc-delete-untagged", "--metrics-listen", "127.0.0.1:0"];
    let server = ServerProcess::start_with_args(dir.path(), &[&FAST_GC[..], &more].concat());
    let line = server.wait_for_log(|l| log_field(l, "metrics_listen").is_some());
    let ops = log_field(&line, "metrics_listen").unwrap().parse().unwrap();
    let finished = server.wait_for_log(|l| l.contains("garbage collection finished"));
    assert!(finished.contains("deleted 4 blobs"), "{finished}");
    // Each batch is logged as it goes, before the summary.
    let log = server.log_lines().join("\n");
    assert!(
        log.contains("garbage collection deleted a batch blobs=0 manifests=1"),
        "{log}"
    );
    assert!(
        log.contains("garbage collection deleted a batch blobs=4 manifests=0"),
        "{log}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let text = String::from_utf8(request(ops, "GET", "/metrics", &[], b"").body).unwrap();
        if text.contains("layerstore_gc_deleted_blobs_total 4") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        metrics.contains(r#"layerstore_gc_runs_total{result="finished"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("layerstore_gc_deleted_blobs_total 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("layerstore_gc_deleted_manifests_total 1"),
        "{metrics}"
    );
    let pulled = request(
        server.addr,
        "GET",
        &format!("/v2/team/app/manifests/{}", live.digest),
        &[],
        b"",
    );
    assert_eq!(pulled.status, 200);
    let gone = request(
        server.addr,
        "GET",
        &format!("/v2/team/app/manifests/{}", untagged.digest),
        &[],
        b"",
    );
    assert_eq!(gone.status, 404);
}

/// `layerstore gc | head -0`: a reader that goes away ends the report quietly (exit 141, as
/// SIGPIPE would), not with a panic.
#[test]
fn a_report_to_a_closed_pipe_ends_quietly() {
    let (dir, _, _) = root_with_garbage();
    let root = dir.path().to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_layerstore"))
        .args(["gc", "--root", root, "--dry-run", "--grace", "0s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before the first line
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}

/// A root holding `count` orphan blobs, all a day old: a collection that takes a moment.
fn root_with_orphans(count: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::filesystem(dir.path());
    let app = repo("team/app");
    for k in 0..count {
        put_blob(&store, &app, format!("orphan {k}").as_bytes());
    }
    age_everything(dir.path(), Duration::from_secs(86_400));
    dir
}

/// The claim files of collection runs in the root.
fn claim_files(root: &std::path::Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(root.join("layerstore/gc/claims"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default()
}

/// SIGTERM while serve's collection runs: the run stops at its next step and removes its claim
/// (writers of other instances would otherwise wait a lease for it), serve exits 0, and the
/// store is consistent. Up to three tries, in case a run finishes before the signal lands.
#[test]
fn a_collection_stopped_by_sigterm_removes_its_claim() {
    for attempt in 1..=3 {
        let dir = root_with_orphans(1500);
        let mut server = ServerProcess::start_with_args(dir.path(), &FAST_GC);
        server.wait_for_log(|l| l.contains("garbage collection started"));
        std::thread::sleep(Duration::from_millis(30));
        let status = server.terminate();
        assert!(status.success(), "serve exited with {status}");
        let log = server.log_lines().join("\n");
        let left = claim_files(dir.path());
        assert!(left.is_empty(), "claims left: {left:?}\n{log}");
        let fsck = layerstore(&["fsck", "--root", dir.path().to_str().unwrap()]);
        assert!(fsck.status.success(), "{fsck:?}");
        if log.contains("garbage collection stopped for the shutdown") {
            return;
        }
        eprintln!("attempt {attempt}: the run finished before the signal\n{log}");
    }
    panic!("no collection was stopped mid-run in three tries");
}

/// `layerstore gc --offline --grace 0s` on `root` (stderr piped), returned once its claim file
/// is there or it has ended.
fn gc_until_it_claims(root: &std::path::Path) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_layerstore"))
        .args(["gc", "--root", root.to_str().unwrap()])
        .args(["--offline", "--grace", "0s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while claim_files(root).is_empty() && child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "no claim file appeared");
        std::thread::sleep(Duration::from_millis(2));
    }
    child
}

/// SIGTERM to `layerstore gc` in the middle of its run: it stops at its next step, removes its
/// claim (servers would otherwise wait a lease for it) and exits 130; a rerun finishes the job.
/// Up to three tries, in case a run finishes before the signal lands.
#[test]
fn gc_stopped_by_a_signal_removes_its_claim() {
    for attempt in 1..=3 {
        let dir = root_with_orphans(1500);
        let root = dir.path().to_str().unwrap();
        let child = gc_until_it_claims(dir.path());
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let left = claim_files(dir.path());
        assert!(left.is_empty(), "a claim was left: {left:?}\n{stderr}");
        if out.status.code() == Some(130) {
            assert!(stderr.contains("stopped by a signal"), "{stderr}");
            let rerun = layerstore(&["gc", "--root", root, "--offline", "--grace", "0s"]);
            assert!(rerun.status.success(), "{rerun:?}");
            let fsck = layerstore(&["fsck", "--root", root]);
            assert!(fsck.status.success(), "{fsck:?}");
            return;
        }
        assert!(out.status.success(), "gc failed: {stderr}");
        eprintln!("attempt {attempt}: the run finished before the signal");
    }
    panic!("no run was stopped mid-way in three tries");
}

/// A SIGKILLed `layerstore gc` leaves its claim file, which names its process. A server started
/// on the same machine sees that process is gone: it collects at its first interval instead of
/// skipping for the dead claim's 30 s lease, and that run deletes the dead claim.
#[test]
#[cfg(target_os = "linux")]
fn a_claim_left_by_a_killed_process_does_not_hold_up_a_restarted_server() {
    let dir = root_with_orphans(1500);
    let mut child = gc_until_it_claims(dir.path());
    assert!(
        child.try_wait().unwrap().is_none(),
        "gc ended before its claim was seen"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let left = claim_files(dir.path());
    assert_eq!(left.len(), 1, "the killed run's claim: {left:?}");
    let claim = dir.path().join("layerstore/gc/claims").join(&left[0]);
    let header = std::fs::read_to_string(claim).unwrap();
    let header = header.lines().next().unwrap().to_owned();
    assert!(header.contains(&format!(":{}:", child.id())), "{header}");

    let server = ServerProcess::start_with_args(dir.path(), &FAST_GC);
    let first = server.wait_for_log(|l| l.contains("garbage collection s"));
    assert!(first.contains("garbage collection started"), "{first}");
    server.wait_for_log(|l| l.contains("garbage collection finished"));
    assert!(
        !claim_files(dir.path()).contains(&left[0]),
        "the dead claim stayed"
    );
}
