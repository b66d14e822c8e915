//! `layerstore bench` against real servers: a layerstore TestServer (everything verifies), the
//! same server behind an honest proxy that makes every `Location` absolute (still verifies),
//! and behind a lying proxy that corrupts one byte of every GET body (must report FAILURE);
//! then several servers sharing one store, each request going to the next one in turn.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::TestServer;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, HOST, LOCATION, RANGE};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use layerstore::bench::{self, BenchOptions, BenchReport, Outcome, Scenario};

fn tiny_options(addr: SocketAddr) -> BenchOptions {
    let mut options = BenchOptions::new(format!("http://{addr}"));
    options.blob_size = 300 * 1024 + 17; // not a multiple of the chunk or piece size
    options.chunk_size = 64 * 1024;
    options.range_size = 4096;
    options.range_connections = 4;
    options.range_duration = Duration::from_millis(300);
    options.small_size = 8 * 1024;
    options.small_workers = 3;
    options.small_duration = Duration::from_millis(300);
    options
}

fn run(options: BenchOptions) -> BenchReport {
    runtime().block_on(bench::run(options)).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn outcome(report: &BenchReport, scenario: Scenario) -> &Outcome {
    &report
        .scenarios
        .iter()
        .find(|s| s.scenario == scenario)
        .unwrap_or_else(|| panic!("{scenario:?} missing"))
        .outcome
}

#[test]
fn every_scenario_passes_against_layerstore() {
    let server = TestServer::start();
    let mut options = tiny_options(server.addr);
    options.server_pid = Some(std::process::id()); // the server runs in this process
    let report = run(options);
    assert!(report.passed(), "{}", report.to_table());
    assert_eq!(report.scenarios.len(), 6);
    for scenario in Scenario::ALL {
        let Outcome::Passed(metrics) = outcome(&report, scenario) else {
            panic!("{scenario:?} did not pass");
        };
        assert!(
            metrics.operations > 0 && metrics.bytes > 0,
            "{scenario:?}: {metrics:?}"
        );
        // The resume scenario's untimed setup would swamp the server's figures: none taken.
        assert_eq!(
            metrics.server.is_some(),
            scenario != Scenario::PushResume,
            "{scenario:?}"
        );
    }
    let Outcome::Passed(resume) = outcome(&report, Scenario::PushResume) else {
        unreachable!()
    };
    assert_eq!((resume.operations, resume.bytes), (20, 20 * 4096));
    assert!(resume.latency.is_some());
    let Outcome::Passed(chunked) = outcome(&report, Scenario::PushChunked) else {
        unreachable!()
    };
    assert_eq!(chunked.operations, 5, "300 KiB + 17 in 64 KiB PATCHes");
    // The blobs really are in the store, under the run's random prefix.
    let repositories = server
        .v2()
        .join("repositories")
        .join(&report.repository_prefix);
    assert!(repositories.join("large").is_dir());
    assert!(repositories.join("chunked").is_dir());
    assert!(repositories.join("small").is_dir());
    assert!(repositories.join("resume").is_dir());
    // Two runs never push the same bytes.
    let again = run(tiny_options(server.addr));
    assert_ne!(again.seed, report.seed);
    let json: serde_json::Value = serde_json::from_str(&again.to_json()).unwrap();
    assert_eq!(json["scenarios"][0]["scenario"], "push-monolithic");
    assert_eq!(json["scenarios"][0]["status"], "passed");
}

#[test]
fn absolute_locations_are_followed() {
    let server = TestServer::start();
    let proxy = Proxy::start(server.addr, Mode::AbsoluteLocations);
    let mut options = tiny_options(proxy.addr);
    options.scenarios = vec![Scenario::PushChunked, Scenario::SmallPush];
    let report = run(options);
    assert!(report.passed(), "{}", report.to_table());
}

#[test]
fn wrong_bytes_are_reported_as_failure() {
    let server = TestServer::start();
    let proxy = Proxy::start(server.addr, Mode::CorruptGets);
    let report = run(tiny_options(proxy.addr));
    assert!(!report.passed());
    assert!(report.to_table().contains("FAILURE"));
    // Pushes go through untouched; every read is caught.
    assert!(matches!(
        outcome(&report, Scenario::PushMonolithic),
        Outcome::Passed(_)
    ));
    assert!(matches!(
        outcome(&report, Scenario::SmallPush),
        Outcome::Passed(_)
    ));
    match outcome(&report, Scenario::Pull) {
        Outcome::Failed { error } => assert!(error.contains("digest"), "{error}"),
        other => panic!("pull: {other:?}"),
    }
    match outcome(&report, Scenario::RangeGet) {
        Outcome::Failed { error } => assert!(error.contains("differ"), "{error}"),
        other => panic!("range-get: {other:?}"),
    }
}

#[test]
fn a_wrong_upload_status_fails_the_resume_scenario() {
    let server = TestServer::start();
    let proxy = Proxy::start(server.addr, Mode::ZeroUploadStatus);
    let mut options = tiny_options(proxy.addr);
    options.scenarios = vec![Scenario::PushResume, Scenario::PushChunked];
    let report = run(options);
    match outcome(&report, Scenario::PushResume) {
        Outcome::Failed { error } => assert!(error.contains("range"), "{error}"),
        other => panic!("push-resume: {other:?}"),
    }
    // The chunked push never asks for a status, so it passes through the same proxy.
    assert!(matches!(
        outcome(&report, Scenario::PushChunked),
        Outcome::Passed(_)
    ));
}

#[test]
fn a_resume_needs_a_blob_larger_than_its_tail() {
    let server = TestServer::start();
    let mut options = tiny_options(server.addr);
    options.blob_size = 80 * 1024;
    options.scenarios = vec![Scenario::PushResume];
    match outcome(&run(options), Scenario::PushResume) {
        Outcome::Failed { error } => assert!(error.contains("80 KiB"), "{error}"),
        other => panic!("push-resume: {other:?}"),
    }
}

#[test]
fn a_dependent_scenario_is_skipped_when_the_push_fails() {
    let server = TestServer::start();
    let proxy = Proxy::start(server.addr, Mode::RejectPuts);
    let mut options = tiny_options(proxy.addr);
    options.scenarios = vec![Scenario::Pull];
    let report = run(options);
    assert!(!report.passed());
    match outcome(&report, Scenario::Pull) {
        Outcome::Skipped { reason } => assert!(reason.contains("expected status 201"), "{reason}"),
        other => panic!("pull: {other:?}"),
    }
}

#[test]
fn setup_errors_are_errors() {
    let runtime = runtime();
    let error = runtime
        .block_on(bench::run(BenchOptions::new("https://127.0.0.1:1")))
        .unwrap_err();
    assert!(error.to_string().contains("https"), "{error}");
    let mut options = BenchOptions::new("http://127.0.0.1:1");
    options.chunk_size = 0;
    assert!(runtime.block_on(bench::run(options)).is_err());
    let mut options = BenchOptions::new("http://127.0.0.1:1");
    options.server_pid = Some(u32::MAX);
    assert!(runtime.block_on(bench::run(options)).is_err());
}

#[test]
fn requests_rotate_among_instances_sharing_a_store() {
    let root = tempfile::tempdir().unwrap();
    let servers: Vec<TestServer> = (0..3)
        .map(|_| TestServer::start_on(root.path(), "shared-secret"))
        .collect();
    // Counting proxies in front; the first makes its `Location`s absolute, whose path must
    // still be sent on to the next instance.
    let modes = [Mode::AbsoluteLocations, Mode::Pass, Mode::Pass];
    let proxies: Vec<Proxy> = servers
        .iter()
        .zip(modes)
        .map(|(server, mode)| Proxy::start(server.addr, mode))
        .collect();
    let mut options = tiny_options(proxies[0].addr);
    options.urls = proxies
        .iter()
        .map(|p| format!("http://{}", p.addr))
        .collect();
    let report = run(options);
    assert!(report.passed(), "{}", report.to_table());
    assert_eq!(report.scenarios.len(), 6);
    assert_eq!(report.urls.len(), 3);
    assert!(report.to_table().contains("round robin"));
    // Every instance took part in uploads started elsewhere: the chunked push's five
    // consecutive PATCHes alone reach all three.
    for (i, proxy) in proxies.iter().enumerate() {
        for method in ["POST", "PATCH", "PUT", "GET"] {
            assert!(proxy.seen(method) > 0, "instance {i} saw no {method}");
        }
    }
}

#[test]
fn instances_with_different_secrets_fail_a_rotated_upload() {
    let root = tempfile::tempdir().unwrap();
    let first = TestServer::start_on(root.path(), "one secret");
    let second = TestServer::start_on(root.path(), "another secret");
    let mut options = tiny_options(first.addr);
    options.urls.push(format!("http://{}", second.addr));
    options.scenarios = vec![Scenario::PushChunked];
    // The POST went to the first, so the second cannot read the upload's signed state.
    match outcome(&run(options), Scenario::PushChunked) {
        Outcome::Failed { error } => assert!(error.contains("chunk (PATCH)"), "{error}"),
        other => panic!("push-chunked: {other:?}"),
    }
}

#[test]
fn the_cli_takes_repeated_urls() {
    let root = tempfile::tempdir().unwrap();
    let servers = [
        TestServer::start_on(root.path(), "shared-secret"),
        TestServer::start_on(root.path(), "shared-secret"),
    ];
    let urls: Vec<String> = servers
        .iter()
        .map(|s| format!("http://{}", s.addr))
        .collect();
    let output = Command::new(env!("CARGO_BIN_EXE_layerstore"))
        .args(["bench", "--url", &urls[0], "--url", &urls[1]])
        .args(["--only", "push-chunked,small-push", "--json"])
        .args(["--blob-size", "200K", "--chunk-size", "64K"])
        .args([
            "--small-size",
            "4K",
            "--workers",
            "2",
            "--small-seconds",
            "0.2",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["urls"], serde_json::json!(urls));
    for scenario in json["scenarios"].as_array().unwrap() {
        assert_eq!(scenario["status"], "passed", "{scenario}");
    }
    // At least one --url is required.
    let output = Command::new(env!("CARGO_BIN_EXE_layerstore"))
        .args(["bench", "--only", "pull"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--url"));
}

#[test]
fn each_worker_holds_exactly_one_socket() {
    let server = TestServer::start();
    let proxy = Proxy::start(server.addr, Mode::Pass);
    let mut options = tiny_options(proxy.addr);
    options.scenarios = vec![Scenario::RangeGet, Scenario::SmallPush];
    options.range_connections = 6;
    options.small_workers = 5;
    let report = run(options);
    assert!(report.passed(), "{}", report.to_table());
    // The large push (POST, PUT, HEAD) on one socket, then one per range and push worker:
    // requests follow each other on a kept-alive connection. hyper-util's pool takes a
    // connection back from a task of its own, so a request sent before that may open a
    // second one (closed once idle): rare, and never one per request.
    let workers = 1 + 6 + 5;
    let accepted = proxy.accepted.load(Ordering::SeqCst);
    let requests = proxy.seen("GET") + proxy.seen("PUT");
    assert!(requests > 10 * workers, "{requests} requests");
    assert!(
        (workers..=workers + 3).contains(&accepted),
        "{accepted} connections for {workers} workers"
    );
}

#[test]
fn nobody_listening_fails_every_scenario() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let mut options = tiny_options(addr);
    options.scenarios = vec![Scenario::PushChunked, Scenario::SmallPush];
    let report = run(options);
    assert!(!report.passed());
    for scenario in &report.scenarios {
        assert!(
            matches!(scenario.outcome, Outcome::Failed { .. }),
            "{scenario:?}"
        );
    }
}

/// How the proxy in front of the real server misbehaves (or not).
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Forwards everything unchanged.
    Pass,
    /// Rewrites every relative `Location` to an absolute URL of the proxy.
    AbsoluteLocations,
    /// Flips the last byte of every GET response body.
    CorruptGets,
    /// Answers 500 to every PUT.
    RejectPuts,
    /// Claims every upload status (`GET …/uploads/…`) holds one byte (`Range: 0-0`).
    ZeroUploadStatus,
}

/// A one-request-per-upstream-connection HTTP proxy on 127.0.0.1 (test sizes are tiny, so it
/// buffers bodies) that counts the requests it forwards.
struct Proxy {
    addr: SocketAddr,
    seen: Seen,
    /// Connections accepted from the bench.
    accepted: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

/// Requests a proxy received, by method.
type Seen = Arc<Mutex<BTreeMap<Method, usize>>>;

impl Proxy {
    fn start(upstream: SocketAddr, mode: Mode) -> Self {
        let runtime = runtime();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Seen::default();
        let counts = Arc::clone(&seen);
        let accepted = Arc::new(AtomicUsize::new(0));
        let connections = Arc::clone(&accepted);
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                connections.fetch_add(1, Ordering::SeqCst);
                let counts = Arc::clone(&counts);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        *counts
                            .lock()
                            .unwrap()
                            .entry(request.method().clone())
                            .or_default() += 1;
                        forward(request, upstream, addr, mode)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Proxy {
            addr,
            seen,
            accepted,
            _runtime: runtime,
        }
    }

    /// How many `method` requests it received.
    fn seen(&self, method: &str) -> usize {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        self.seen.lock().unwrap().get(&method).copied().unwrap_or(0)
    }
}

async fn forward(
    request: Request<Incoming>,
    upstream: SocketAddr,
    me: SocketAddr,
    mode: Mode,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let method = request.method().clone();
    if matches!(mode, Mode::RejectPuts) && method == Method::PUT {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        return Ok(response);
    }
    let (mut parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    parts
        .headers
        .insert(HOST, HeaderValue::from_str(&upstream.to_string()).unwrap());
    let stream = tokio::net::TcpStream::connect(upstream).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await?;
    let (mut parts, body) = response.into_parts();
    let mut body = body.collect().await?.to_bytes().to_vec();
    match mode {
        Mode::CorruptGets if method == Method::GET => {
            if let Some(last) = body.last_mut() {
                *last ^= 1;
            }
        }
        Mode::ZeroUploadStatus if method == Method::GET && parts.status == 204 => {
            parts.headers.insert(RANGE, HeaderValue::from_static("0-0"));
        }
        Mode::AbsoluteLocations => {
            if let Some(location) = parts.headers.get(LOCATION) {
                let relative = location.to_str().unwrap();
                assert!(relative.starts_with('/'), "{relative}");
                let absolute = format!("http://{me}{relative}");
                parts
                    .headers
                    .insert(LOCATION, HeaderValue::from_str(&absolute).unwrap());
            }
        }
        _ => {}
    }
    Ok(Response::from_parts(parts, Full::new(Bytes::from(body))))
}
