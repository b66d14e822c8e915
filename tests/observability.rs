//! Metrics, health endpoints and access logs of a real `layerstore serve` process:
//!
//! - `/metrics` scraped after a push, pulls and a 404, and parsed with the Python
//!   `prometheus_client` parser (from `.venv-clients/`, like the other Python clients): request
//!   counters and latency histograms by route and status, bytes both ways, blob cache hits,
//!   storage driver operations.
//! - `/healthz` and `/readyz`, including a storage root that stops being a directory.
//! - access log lines in text and JSON, with the request id of the `X-Request-Id` header, and
//!   no upload state token in any line.
//! - `fsck --metrics-textfile`, parsed by the same parser.
//!
//! The Python parser is required in CI (`CI` set) and skipped elsewhere when missing.

mod clients_support;
mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clients_support::python_with;
use common::process::{log_field, run_with_stdin, ServerProcess};
use common::{content, request, sha256, Reply};
use serde_json::{json, Value};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Prints every sample of the exposition text on stdin as JSON: `[[name, {labels}, value]]`.
const PARSE_SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        samples.append([s.name, s.labels, s.value])
print(json.dumps(samples))
"#;

/// One parsed sample.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses exposition text with `prometheus_client`; panics if it is not valid.
fn parse(python: &Path, text: &str) -> Vec<Sample> {
    let mut command = Command::new(python);
    command.args(["-c", PARSE_SCRIPT]);
    let output = run_with_stdin(command, Some(text.as_bytes()));
    assert!(
        output.status.success(),
        "prometheus_client rejected the text:\n{}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: Vec<(String, BTreeMap<String, String>, f64)> =
        serde_json::from_slice(&output.stdout).unwrap();
    rows.into_iter()
        .map(|(name, labels, value)| Sample {
            name,
            labels,
            value,
        })
        .collect()
}

/// The sum of the samples named `name` whose labels include all of `labels`.
fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// A server over a fresh root with the metrics listener on a free port.
struct Observed {
    server: ServerProcess,
    ops: SocketAddr,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Observed {
    fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let mut args = vec!["--metrics-listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let server = ServerProcess::start_with_args(&root, &args);
        let line = server.wait_for_log(|l| log_field(l, "metrics_listen").is_some());
        let ops = log_field(&line, "metrics_listen").unwrap().parse().unwrap();
        Observed {
            server,
            ops,
            root,
            _dir: dir,
        }
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        request(self.server.addr, method, path, headers, body)
    }

    fn ops_get(&self, path: &str) -> Reply {
        request(self.ops, "GET", path, &[], b"")
    }

    /// The access log line of the request with this id, once it is written.
    fn access_line(&self, id: &str) -> String {
        self.server.wait_for_log(|line| {
            log_field(line, "request_id").as_deref() == Some(id)
                && line.contains("layerstore::access")
        })
    }

    fn push_blob(&self, repo: &str, data: &[u8]) -> Value {
        let digest = sha256(data);
        let path = format!("/v2/{repo}/blobs/uploads/?digest={digest}");
        assert_eq!(self.request("POST", &path, &[], data).status, 201);
        json!({ "mediaType": "application/octet-stream", "digest": digest, "size": data.len() })
    }
}

fn request_id(reply: &Reply) -> String {
    reply
        .header("x-request-id")
        .expect("X-Request-Id")
        .to_owned()
}

#[test]
fn metrics_count_requests_bytes_cache_hits_and_storage_calls() {
    let Some(python) = python_with(&["prometheus_client"]) else {
        return;
    };
    let server = Observed::start(&[]);
    let layer_data = content(300_000, 7);
    let mut config = server.push_blob("obs/app", b"{\"seed\":1}");
    config["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
    let layer = server.push_blob("obs/app", &layer_data);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer],
    }))
    .unwrap();
    let put = server.request(
        "PUT",
        "/v2/obs/app/manifests/v1",
        &[("content-type", OCI_MANIFEST)],
        &manifest,
    );
    assert_eq!(put.status, 201);
    let blob = format!("/v2/obs/app/blobs/{}", sha256(&layer_data));
    for _ in 0..2 {
        let reply = server.request("GET", &blob, &[], b"");
        assert_eq!(
            (reply.status.as_u16(), reply.body.len()),
            (200, layer_data.len())
        );
    }
    let pulled = server.request("GET", "/v2/obs/app/manifests/v1", &[], b"");
    assert_eq!(pulled.status, 200);
    let missing = format!("/v2/obs/app/blobs/{}", sha256(b"never pushed"));
    let last = server.request("GET", &missing, &[], b"");
    assert_eq!(last.status, 404);
    // Metrics are recorded with the access line, when the response is over.
    server.access_line(&request_id(&last));

    let reply = server.ops_get("/metrics");
    assert_eq!(reply.status, 200);
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let samples = parse(&python, std::str::from_utf8(&reply.body).unwrap());

    let requests = "layerstore_http_requests_total";
    let count = |route, method, status| {
        sum(
            &samples,
            requests,
            &[("route", route), ("method", method), ("status", status)],
        )
    };
    assert_eq!(count("blob_upload", "POST", "201"), 2.0);
    assert_eq!(count("manifest", "PUT", "201"), 1.0);
    assert_eq!(count("blob", "GET", "200"), 2.0);
    assert_eq!(count("manifest", "GET", "200"), 1.0);
    assert_eq!(count("blob", "GET", "404"), 1.0);
    // Labels are route kinds: no repository name or digest anywhere.
    assert!(samples.iter().all(|s| s
        .labels
        .values()
        .all(|v| !v.contains("obs/app") && !v.contains("sha256"))));

    let latency = "layerstore_http_request_duration_seconds";
    let blob_200 = [("route", "blob"), ("status", "200")];
    assert_eq!(sum(&samples, &format!("{latency}_count"), &blob_200), 2.0);
    let inf: Vec<_> = [("le", "+Inf")].into_iter().chain(blob_200).collect();
    assert_eq!(sum(&samples, &format!("{latency}_bucket"), &inf), 2.0);
    assert!(sum(&samples, &format!("{latency}_sum"), &blob_200) > 0.0);

    let size = layer_data.len() as f64;
    let sent = sum(
        &samples,
        "layerstore_http_sent_bytes_total",
        &[("route", "blob")],
    );
    assert!(sent >= 2.0 * size, "sent {sent}");
    let received = "layerstore_http_received_bytes_total";
    assert!(sum(&samples, received, &[("route", "blob_upload")]) >= size);
    let manifest_in = sum(&samples, received, &[("route", "manifest")]);
    assert_eq!(manifest_in, manifest.len() as f64);
    assert_eq!(sum(&samples, "layerstore_uploads_in_progress", &[]), 0.0);

    // The first GET mapped the blob, the second found the map.
    assert!(sum(&samples, "layerstore_blob_cache_hits_total", &[]) >= 1.0);
    assert!(sum(&samples, "layerstore_blob_cache_misses_total", &[]) >= 1.0);

    let ops = "layerstore_storage_operations_total";
    assert!(sum(&samples, ops, &[]) > 0.0);
    assert!(sum(&samples, ops, &[("op", "move_to"), ("outcome", "ok")]) >= 2.0);
    // The 404: the repository's link to the blob is not there.
    assert!(sum(&samples, ops, &[("outcome", "not_found")]) >= 1.0);
    let timed = "layerstore_storage_operation_duration_seconds_count";
    assert!(sum(&samples, timed, &[("op", "writer_commit")]) >= 2.0);
}

#[test]
fn health_and_readiness_follow_the_storage() {
    let server = Observed::start(&[]);
    let healthz = server.ops_get("/healthz");
    assert_eq!(
        (healthz.status.as_u16(), healthz.body.as_slice()),
        (200, &b"ok\n"[..])
    );
    assert_eq!(server.ops_get("/readyz").status, 200);
    assert_eq!(server.ops_get("/nothing").status, 404);
    assert_eq!(server.ops_get("/v2/").status, 404);

    // The root replaced by a file (root ignores permissions, so chmod 000 would not do).
    let aside = server.root.with_extension("aside");
    std::fs::rename(&server.root, &aside).unwrap();
    std::fs::write(&server.root, b"not a directory").unwrap();
    let unready = server.ops_get("/readyz");
    let why = String::from_utf8_lossy(&unready.body);
    assert_eq!(unready.status, 503, "{why}");
    assert!(why.contains("not a directory"), "{why}");
    assert_eq!(server.ops_get("/healthz").status, 200);

    std::fs::remove_file(&server.root).unwrap();
    std::fs::rename(&aside, &server.root).unwrap();
    assert_eq!(server.ops_get("/readyz").status, 200);
}

#[test]
fn json_logs_are_lines_of_json_with_the_request_id() {
    let server = Observed::start(&["--log-format", "json"]);
    let given = server.request("GET", "/v2/", &[("x-request-id", "client-id.42")], b"");
    assert_eq!(request_id(&given), "client-id.42");
    let fresh = server.request("GET", "/v2/", &[("x-request-id", "bad id!")], b"");
    let id = request_id(&fresh);
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );

    // An upload: its Location carries a `_state` token, which must not reach the log.
    let started = server.request("POST", "/v2/obs/json/blobs/uploads/", &[], b"");
    assert_eq!(started.status, 202);
    let location = started.location();
    let token = location.split("_state=").nth(1).unwrap().to_owned();
    let patched = server.request("PATCH", &location, &[], b"some bytes");
    assert_eq!(patched.status, 202);

    for id in ["client-id.42", id.as_str()] {
        let line: Value = serde_json::from_str(&server.access_line(id)).unwrap();
        assert_eq!(line["target"], "layerstore::access");
        assert_eq!(line["span"]["id"], id);
        assert_eq!(line["method"], "GET");
        assert_eq!(line["route"], "base");
        assert_eq!(line["status"], 200);
        assert!(line["duration_ms"].is_number());
        assert!(line["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    }
    let patch_line = server.access_line(&request_id(&patched));
    let patch_line: Value = serde_json::from_str(&patch_line).unwrap();
    assert_eq!(patch_line["repository"], "obs/json");
    assert_eq!(patch_line["route"], "blob_upload");
    assert_eq!(patch_line["bytes_in"], 10);
    assert_eq!(patch_line["status"], 202);
    assert!(!patch_line["path"].as_str().unwrap().contains('?'));

    let lines = server.server.log_lines();
    assert!(lines.len() >= 5);
    for line in &lines {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(
            parsed.is_ok_and(|v| v.is_object()),
            "not a JSON object: {line}"
        );
        assert!(!line.contains(&token) && !line.contains("_state"), "{line}");
    }
}

#[test]
fn text_access_lines_carry_the_request_id() {
    let server = Observed::start(&[]);
    let reply = server.request(
        "GET",
        "/v2/obs/text/tags/list",
        &[("x-request-id", "t-1")],
        b"",
    );
    assert_eq!(reply.status, 404);
    assert_eq!(request_id(&reply), "t-1");
    let line = server.access_line("t-1");
    assert!(line.contains("request{id=t-1}"), "{line}");
    for field in [
        "method=GET",
        "route=tags",
        "repository=obs/text",
        "status=404",
        "complete=true",
    ] {
        assert!(line.contains(field), "{field} in {line}");
    }
}

#[test]
fn fsck_writes_a_textfile_the_prometheus_parser_reads() {
    let Some(python) = python_with(&["prometheus_client"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let store = layerstore::Store::filesystem(&root);
    let repo = layerstore::names::RepositoryName::parse("obs/fsck").unwrap();
    for data in [&b"good blob"[..], b"soon corrupt"] {
        let mut upload = store.create_upload(&repo).unwrap();
        upload.append(data).unwrap();
        let digest = layerstore::Digest::sha256(data);
        upload.commit(&digest, None).unwrap();
    }
    let hex = &sha256(b"soon corrupt")["sha256:".len()..];
    let data = root.join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ));
    std::fs::write(&data, b"bit rot").unwrap();

    let textfiles = dir.path().join("textfiles");
    std::fs::create_dir(&textfiles).unwrap();
    let prom = textfiles.join("layerstore_fsck.prom");
    let output = Command::new(env!("CARGO_BIN_EXE_layerstore"))
        .arg("fsck")
        .arg("--root")
        .arg(&root)
        .arg("--metrics-textfile")
        .arg(&prom)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "fsck found the corrupt blob");
    let names: Vec<_> = std::fs::read_dir(&textfiles).unwrap().collect();
    assert_eq!(names.len(), 1, "only the textfile, no temporary file");

    let samples = parse(&python, &std::fs::read_to_string(&prom).unwrap());
    let problems = "layerstore_fsck_problems";
    assert_eq!(sum(&samples, problems, &[("kind", "corrupt_blob")]), 1.0);
    assert_eq!(sum(&samples, problems, &[]), 1.0);
    assert_eq!(sum(&samples, "layerstore_fsck_blobs_checked", &[]), 2.0);
    assert_eq!(sum(&samples, "layerstore_fsck_links_checked", &[]), 2.0);
    assert_eq!(sum(&samples, "layerstore_fsck_last_run_success", &[]), 1.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let ran = sum(&samples, "layerstore_fsck_last_run_timestamp_seconds", &[]);
    assert!((now - ran).abs() < 120.0, "ran at {ran}, now {now}");
}

#[test]
fn the_config_file_turns_on_json_logs_and_the_metrics_listener() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("layerstore.toml");
    std::fs::write(
        &config,
        "metrics_listen = \"127.0.0.1:0\"\nlog_format = \"json\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let server = ServerProcess::start_with_args(&dir.path().join("root"), &["--config", config]);
    let line = server.wait_for_log(|l| log_field(l, "metrics_listen").is_some());
    let ops: SocketAddr = log_field(&line, "metrics_listen").unwrap().parse().unwrap();
    assert_eq!(request(ops, "GET", "/healthz", &[], b"").status, 200);
    for line in server.log_lines() {
        assert!(line.starts_with('{'), "not JSON: {line}");
    }
}

#[test]
fn readiness_fails_while_shutting_down() {
    use std::io::Write;
    let server = Observed::start(&[]);
    let started = server.request("POST", "/v2/obs/drain/blobs/uploads/", &[], b"");
    assert_eq!(started.status, 202);
    // An upload in flight: 4 of 8 promised bytes, so shutdown waits for it.
    let mut upload = std::net::TcpStream::connect(server.server.addr).unwrap();
    let head = format!(
        "PATCH {} HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\nhalf",
        started.location()
    );
    upload.write_all(head.as_bytes()).unwrap();
    // Wait until the server streams it (which also shows the gauge at work).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&server.ops_get("/metrics").body)
        .contains("layerstore_uploads_in_progress 1")
    {
        assert!(Instant::now() < deadline, "the upload never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.ops_get("/readyz").status, 200);

    let pid = server.server.pid().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    server.server.wait_for_log(|l| l.contains("shutting down"));
    let draining = server.ops_get("/readyz");
    assert_eq!(draining.status, 503);
    assert_eq!(draining.body, b"shutting down\n");
    assert_eq!(server.ops_get("/healthz").status, 200);
    drop(upload);
}
