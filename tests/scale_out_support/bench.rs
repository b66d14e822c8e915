//! `layerstore bench` run against the scale-out instances (every answer verified), and the
//! nginx in front of them: its binary and the site configuration `docs/scale-out.md` shows.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::process::run_with_timeout;

/// Every scenario of `layerstore bench`.
pub const ALL_SCENARIOS: &[&str] = &[
    "push-monolithic",
    "push-chunked",
    "pull",
    "range-get",
    "small-push",
    "push-resume",
];

/// Runs `layerstore bench` against `urls` (requests rotate among them) with small sizes (a
/// 7 MiB blob: 5 MiB parts, 2 MiB chunks) and the `scenarios`; asserts every one passed and
/// returns the JSON report.
pub fn bench(urls: &[String], scenarios: &[&str]) -> serde_json::Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_layerstore"));
    command.args(["bench", "--only", &scenarios.join(",")]);
    for url in urls {
        command.args(["--url", url]);
    }
    command
        .args(["--blob-size", "7M", "--chunk-size", "2M"])
        .args(["--range-seconds", "0.5", "--connections", "2"])
        .args(["--small-size", "16K", "--workers", "2"])
        .args(["--small-seconds", "0.5", "--json"]);
    let started = Instant::now();
    let output = run_with_timeout(command, Duration::from_secs(300));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("bench over {} url(s): {:?}", urls.len(), started.elapsed());
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["urls"], serde_json::json!(urls));
    let ran = report["scenarios"].as_array().unwrap();
    assert_eq!(ran.len(), scenarios.len(), "{report}");
    for scenario in ran {
        assert_eq!(scenario["status"], "passed", "{scenario}");
        eprintln!(
            "  {}: {:.2} s measured, {} operations",
            scenario["scenario"],
            scenario["seconds"].as_f64().unwrap_or_default(),
            scenario["operations"]
        );
    }
    report
}

/// `nginx` on `PATH`, else `/usr/sbin/nginx`.
pub fn nginx_binary() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("nginx"))
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|candidate| candidate.is_file())
}

/// `docs/nginx-scale-out.conf` (what `docs/scale-out.md` shows) with its upstream servers and its
/// listen address replaced by `upstreams` and `listen`.
pub fn nginx_site(upstreams: &[SocketAddr], listen: SocketAddr) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/nginx-scale-out.conf");
    let example = std::fs::read_to_string(&path).unwrap();
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/scale-out.md"))
            .unwrap();
    assert!(
        doc.contains(example.trim()),
        "docs/scale-out.md must show docs/nginx-scale-out.conf as it is"
    );
    let mut servers = upstreams.iter();
    let mut listens = 0;
    let site: Vec<String> = example
        .lines()
        .map(|line| {
            let code = line.split('#').next().unwrap().trim();
            if code.starts_with("server 127.0.0.1:") {
                let upstream = servers.next().expect("as many upstream lines as instances");
                line.replace(code, &format!("server {upstream};"))
            } else if code.starts_with("listen ") {
                listens += 1;
                line.replace(code, &format!("listen {listen};"))
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert!(servers.next().is_none(), "an upstream line per instance");
    assert_eq!(listens, 1);
    site.join("\n")
}
