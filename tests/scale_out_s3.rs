//! Scale-out on S3 (`docs/scale-out.md`): several real `layerstore serve` processes on one bucket,
//! one prefix and one secret, on a real 3-node Garage cluster, any request going to any of them.
//!
//! - A chunked upload whose PATCHes hop between three instances (5 MiB parts, chunks crossing
//!   part boundaries); one instance is SIGKILLed half-way through a PATCH body; another tells
//!   where the upload stands, the third continues it, and the blob reads back from every
//!   instance (the killed one restarted).
//! - `layerstore bench` with one `--url` per instance: every answer verified.
//! - A Garage node SIGKILLed in the middle of a monolithic push and of a chunked push: both
//!   succeed (2 of 3 nodes are a quorum), every instance reads the blobs back, fsck is clean.
//! - Every Garage node killed under a running instance: blob GET/HEAD, upload POST and manifest
//!   GET answer 503 with a JSON error body in bounded time, and the server keeps serving `/v2/`.
//! - nginx in front of three instances with the configuration `docs/scale-out.md` shows
//!   (`docs/nginx-scale-out.conf`, read from there), pushed and pulled through by `bench`.
//!
//! Each test starts its own cluster; the tests of this file run one at a time (they measure
//! times and the machine is small). Needs Garage (and nginx for the last test): a missing one
//! fails in CI and skips elsewhere.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::garage::GarageCluster;
use common::process::{free_port, missing, run_with_timeout, ChildGuard};
use common::{content, request, sha256, try_request, Reply};

const MIB: usize = 1 << 20;
/// The key prefix every instance of a test serves.
const PREFIX: &str = "scale";
/// The secret every instance of a test shares (but the nginx test's, which keep theirs in the
/// bucket).
const SECRET: &str = "scale-out-secret";
/// The config file every instance reads: S3's smallest part, so a few MiB cross part
/// boundaries.
const CONFIG: &str = "[s3]\npart_size = \"5MiB\"\n";

/// One test at a time in this file.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A `layerstore serve` process on S3, SIGKILLed when dropped. Its log is kept for messages.
struct Instance {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

/// How the instances of a test are started.
struct Fleet {
    bucket: String,
    env: Vec<(String, String)>,
    config: PathBuf,
    /// `None`: no `--secret`, the one kept in the bucket is used.
    secret: Option<&'static str>,
    _dir: tempfile::TempDir,
}

impl Fleet {
    fn new(cluster: &GarageCluster) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("layerstore.toml");
        std::fs::write(&config, CONFIG).unwrap();
        Fleet {
            bucket: cluster.bucket.clone(),
            env: cluster.env(),
            config,
            secret: Some(SECRET),
            _dir: dir,
        }
    }

    fn storage(&self) -> String {
        format!("s3://{}/{PREFIX}", self.bucket)
    }

    /// An instance talking to the cluster's S3 API at `endpoint`.
    fn start(&self, endpoint: &str) -> Instance {
        let mut command = Command::new(env!("CARGO_BIN_EXE_layerstore"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--storage"])
            .arg(self.storage())
            .arg("--config")
            .arg(&self.config);
        if let Some(secret) = self.secret {
            command.args(["--secret", secret]);
        }
        self.clean_env(&mut command);
        command
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start layerstore serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let addr = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                panic!(
                    "layerstore serve exited before listening:\n{}",
                    log.lock().unwrap().join("\n")
                );
            };
            log.lock().unwrap().push(line.clone());
            if let Some(rest) = line.split("address=").nth(1) {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        let kept = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        Instance { child, addr, log }
    }

    /// `n` instances on node 0's S3 API, started one after the other.
    fn start_n(&self, n: usize, endpoint: &str) -> Vec<Instance> {
        (0..n).map(|_| self.start(endpoint)).collect()
    }

    /// The cluster's AWS variables and nothing else of the kind (the machine's own `AWS_*`,
    /// but its CA bundle, and any `LAYERSTORE_*` play no part).
    fn clean_env(&self, command: &mut Command) {
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if (name.starts_with("AWS_") && name != "AWS_CA_BUNDLE")
                || name.starts_with("LAYERSTORE_")
            {
                command.env_remove(name.as_ref());
            }
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
    }

    /// `layerstore fsck` on the bucket through `endpoint`: its exit status and output.
    fn fsck(&self, endpoint: &str) -> (bool, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_layerstore"));
        command.args(["fsck", "--storage", &self.storage()]);
        self.clean_env(&mut command);
        command.env("AWS_ENDPOINT_URL", endpoint);
        let output = run_with_timeout(command, Duration::from_secs(120));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }
}

impl Instance {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `0-<last byte>` of a status or PATCH answer, as the offset it names.
fn offset_of(reply: &Reply) -> u64 {
    let range = reply.header("range").expect("Range header");
    let last: u64 = range.strip_prefix("0-").unwrap().parse().unwrap();
    // `0-0` is distribution's way of saying "empty" (and also "one byte"): the tests here never
    // stop at one byte.
    if last == 0 {
        0
    } else {
        last + 1
    }
}

/// PATCHes `data[range]` to the upload at `location` through `addr`; checks the 202.
fn patch(addr: SocketAddr, location: &str, data: &[u8], range: std::ops::Range<usize>) -> Reply {
    let content_range = format!("{}-{}", range.start, range.end - 1);
    let reply = request(
        addr,
        "PATCH",
        location,
        &[
            ("content-type", "application/octet-stream"),
            ("content-range", &content_range),
        ],
        &data[range.clone()],
    );
    assert_eq!(
        reply.status,
        202,
        "PATCH {content_range} on {addr}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(offset_of(&reply), range.end as u64, "PATCH on {addr}");
    reply
}

/// The upload's status through `addr`.
fn status(addr: SocketAddr, location: &str) -> Reply {
    let reply = request(addr, "GET", location, &[], b"");
    assert_eq!(
        reply.status,
        204,
        "status on {addr}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    reply
}

/// GET and HEAD of the blob through every running instance: exactly `data`.
fn check_blob_everywhere(instances: &[&Instance], repo: &str, data: &[u8]) {
    let path = format!("/v2/{repo}/blobs/{}", sha256(data));
    for instance in instances {
        let reply = request(instance.addr, "GET", &path, &[], b"");
        assert_eq!(reply.status, 200, "GET {path} on {}", instance.addr);
        assert!(
            reply.body == data,
            "GET {path} on {}: {} bytes, not the {} pushed",
            instance.addr,
            reply.body.len(),
            data.len()
        );
        let reply = request(instance.addr, "HEAD", &path, &[], b"");
        assert_eq!(reply.status, 200, "HEAD {path} on {}", instance.addr);
        assert_eq!(
            reply.header("content-length"),
            Some(data.len().to_string().as_str())
        );
    }
}

/// A request whose body this test writes itself: headers now, body bytes when it likes, so it
/// can stop half-way or pace the body while something else happens.
struct RawRequest {
    stream: TcpStream,
}

impl RawRequest {
    fn start(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        length: usize,
    ) -> RawRequest {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {length}\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        RawRequest { stream }
    }

    /// Writes `body` in 256 KiB pieces, one every `pause`, adding each to `sent`.
    fn send_paced(&mut self, body: &[u8], pause: Duration, sent: &AtomicU64) {
        for piece in body.chunks(256 << 10) {
            self.stream.write_all(piece).unwrap();
            sent.fetch_add(piece.len() as u64, Ordering::SeqCst);
            std::thread::sleep(pause);
        }
    }

    /// Reads the answer: status and body (by `Content-Length`).
    fn finish(self) -> (u16, Vec<u8>) {
        let mut reader = BufReader::new(self.stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("status line {line:?}"))
            .parse()
            .unwrap();
        let mut length = 0;
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        (status, body)
    }
}

/// Every scenario of `layerstore bench`.
const ALL_SCENARIOS: &[&str] = &[
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
fn bench(urls: &[String], scenarios: &[&str]) -> serde_json::Value {
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

#[test]
fn a_chunked_upload_hops_instances_and_survives_a_sigkilled_one() {
    let _serial = serial();
    let started = Instant::now();
    let Some(cluster) = GarageCluster::start() else {
        return;
    };
    let fleet = Fleet::new(&cluster);
    let mut instances = fleet.start_n(3, &cluster.endpoint);
    eprintln!("cluster and 3 instances up in {:?}", started.elapsed());
    let repo = "scale/chunked";
    let data = content(16 * MIB + 4321, 31);
    let digest = sha256(&data);

    let reply = request(
        instances[0].addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        b"",
    );
    assert_eq!(reply.status, 202);
    let mut location = reply.location();
    // 3 MiB on instance 1 (a small last part), then 4 MiB on instance 2 (reopens it, crosses
    // the 5 MiB boundary).
    location = patch(instances[1].addr, &location, &data, 0..3 * MIB).location();
    location = patch(instances[2].addr, &location, &data, 3 * MIB..7 * MIB).location();

    // 7..15 MiB announced to instance 0, 6 MiB of it sent: the part that ends at 10 MiB fills
    // and is uploaded while the body is still coming. Then instance 0 is SIGKILLed.
    let content_range = format!("{}-{}", 7 * MIB, 15 * MIB - 1);
    let mut cut = RawRequest::start(
        instances[0].addr,
        "PATCH",
        &location,
        &[
            ("content-type", "application/octet-stream"),
            ("content-range", &content_range),
        ],
        8 * MIB,
    );
    cut.stream.write_all(&data[7 * MIB..13 * MIB]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let offset = offset_of(&status(instances[1].addr, &location));
        assert!(
            offset == 7 * MIB as u64 || offset == 10 * MIB as u64,
            "status during the PATCH: {offset}"
        );
        if offset == 10 * MIB as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no part of the PATCH reached S3:\n{}",
            instances[0].log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    instances[0].kill();
    drop(cut);
    eprintln!("instance 0 killed in the middle of a PATCH");

    // Instance 1 tells where the upload stands: the whole parts in S3, nothing of the tail the
    // killed instance held in memory.
    let reply = status(instances[1].addr, &location);
    assert_eq!(offset_of(&reply), 10 * MIB as u64);
    location = reply.location();
    // Instance 2 continues from there; instance 1 takes the last bytes with the PUT.
    location = patch(instances[2].addr, &location, &data, 10 * MIB..16 * MIB).location();
    let reply = request(
        instances[1].addr,
        "PUT",
        &format!("{location}&digest={digest}"),
        &[("content-type", "application/octet-stream")],
        &data[16 * MIB..],
    );
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.header("docker-content-digest"), Some(digest.as_str()));

    // The killed instance again, as a new process: every instance serves the blob.
    instances[0] = fleet.start(&cluster.endpoint);
    check_blob_everywhere(&instances.iter().collect::<Vec<_>>(), repo, &data);
    // The session is gone, whichever instance is asked.
    for instance in &instances {
        let reply = request(instance.addr, "GET", &location, &[], b"");
        assert_eq!(reply.status, 404);
    }
    let (clean, report) = fleet.fsck(&cluster.endpoint);
    assert!(clean, "{report}");
    eprintln!("test done in {:?}", started.elapsed());
}

#[test]
fn bench_verifies_every_answer_across_three_instances() {
    let _serial = serial();
    let started = Instant::now();
    let Some(cluster) = GarageCluster::start() else {
        return;
    };
    let fleet = Fleet::new(&cluster);
    let instances = fleet.start_n(3, &cluster.endpoint);
    let urls: Vec<String> = instances.iter().map(Instance::url).collect();
    bench(&urls, ALL_SCENARIOS);
    eprintln!("test done in {:?}", started.elapsed());
}

/// The instances of the Garage-node tests: two on node 0's S3 API, one on node 1's. Node 2,
/// which none of them talks to, is the one killed.
fn instances_beside_node_2(cluster: &GarageCluster, fleet: &Fleet) -> Vec<Instance> {
    [0, 1, 0]
        .iter()
        .map(|&node| fleet.start(&cluster.endpoints[node]))
        .collect()
}

/// After node 2 died: every instance reads `blobs` back, a new push works, fsck is clean.
fn check_after_node_loss(
    cluster: &GarageCluster,
    fleet: &Fleet,
    instances: &[Instance],
    repo: &str,
    blob: &[u8],
) {
    check_blob_everywhere(&instances.iter().collect::<Vec<_>>(), repo, blob);
    let after = content(3 * MIB, 77);
    let reply = request(
        instances[1].addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(&after)),
        &[],
        &after,
    );
    assert_eq!(reply.status, 201);
    check_blob_everywhere(&instances.iter().collect::<Vec<_>>(), repo, &after);
    let (clean, report) = fleet.fsck(&cluster.endpoints[1]);
    assert!(clean, "{report}");
}

#[test]
fn a_monolithic_push_survives_a_garage_node_killed_mid_body() {
    let _serial = serial();
    let started = Instant::now();
    let Some(mut cluster) = GarageCluster::start() else {
        return;
    };
    let fleet = Fleet::new(&cluster);
    let instances = instances_beside_node_2(&cluster, &fleet);
    let repo = "scale/monolithic";
    let data = Arc::new(content(32 * MIB + 99, 5));
    let digest = sha256(&data);

    // 32 MiB at about 25 MiB/s; node 2 is killed once 8 MiB are sent, while parts upload.
    let mut push = RawRequest::start(
        instances[0].addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
        &[("content-type", "application/octet-stream")],
        data.len(),
    );
    let sent = Arc::new(AtomicU64::new(0));
    let (body, progress) = (Arc::clone(&data), Arc::clone(&sent));
    let sender = std::thread::spawn(move || {
        push.send_paced(&body, Duration::from_millis(10), &progress);
        push.finish()
    });
    while sent.load(Ordering::SeqCst) < 8 * MIB as u64 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed = Instant::now();
    cluster.kill_node(2);
    eprintln!(
        "node 2 killed at {} MiB sent; the others saw it down after {:?}",
        8,
        killed.elapsed()
    );
    let (code, body) = sender.join().unwrap();
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
    check_after_node_loss(&cluster, &fleet, &instances, repo, &data);
    eprintln!("test done in {:?}", started.elapsed());
}

#[test]
fn a_chunked_push_survives_a_garage_node_killed_mid_patch() {
    let _serial = serial();
    let started = Instant::now();
    let Some(mut cluster) = GarageCluster::start() else {
        return;
    };
    let fleet = Fleet::new(&cluster);
    let instances = instances_beside_node_2(&cluster, &fleet);
    let repo = "scale/chunked-node-loss";
    let data = Arc::new(content(26 * MIB + 7, 9));
    let digest = sha256(&data);
    let reply = request(
        instances[0].addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        b"",
    );
    assert_eq!(reply.status, 202);
    let mut location = reply.location();
    location = patch(instances[1].addr, &location, &data, 0..6 * MIB).location();
    location = patch(instances[2].addr, &location, &data, 6 * MIB..12 * MIB).location();
    // 12..24 MiB on instance 0, paced; node 2 is killed once 4 MiB of it are sent.
    let content_range = format!("{}-{}", 12 * MIB, 24 * MIB - 1);
    let mut cut = RawRequest::start(
        instances[0].addr,
        "PATCH",
        &location,
        &[
            ("content-type", "application/octet-stream"),
            ("content-range", &content_range),
        ],
        12 * MIB,
    );
    let sent = Arc::new(AtomicU64::new(0));
    let (body, progress) = (Arc::clone(&data), Arc::clone(&sent));
    let sender = std::thread::spawn(move || {
        cut.send_paced(
            &body[12 * MIB..24 * MIB],
            Duration::from_millis(10),
            &progress,
        );
        cut.finish()
    });
    while sent.load(Ordering::SeqCst) < 4 * MIB as u64 {
        std::thread::sleep(Duration::from_millis(5));
    }
    cluster.kill_node(2);
    let (code, body) = sender.join().unwrap();
    assert_eq!(code, 202, "{}", String::from_utf8_lossy(&body));
    // Where the upload stands, from another instance (with a fresh Location).
    let reply = status(instances[1].addr, &location);
    assert_eq!(offset_of(&reply), 24 * MIB as u64);
    location = reply.location();
    let reply = request(
        instances[2].addr,
        "PUT",
        &format!("{location}&digest={digest}"),
        &[("content-type", "application/octet-stream")],
        &data[24 * MIB..],
    );
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    check_after_node_loss(&cluster, &fleet, &instances, repo, &data);
    eprintln!("test done in {:?}", started.elapsed());
}

/// An OCI image manifest over a config and a layer, both pushed to `repo` through `addr`.
fn push_image(addr: SocketAddr, repo: &str) -> Vec<u8> {
    let mut descriptors = Vec::new();
    for (media_type, bytes) in [
        ("application/vnd.oci.image.config.v1+json", b"{}".to_vec()),
        (
            "application/vnd.oci.image.layer.v1.tar",
            content(2 * MIB, 3),
        ),
    ] {
        let digest = sha256(&bytes);
        let reply = request(
            addr,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            &[],
            &bytes,
        );
        assert_eq!(reply.status, 201);
        descriptors.push(serde_json::json!({
            "mediaType": media_type, "digest": digest, "size": bytes.len()
        }));
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptors[0],
        "layers": [descriptors[1]],
    }))
    .unwrap();
    let reply = request(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/latest"),
        &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
        &manifest,
    );
    assert_eq!(reply.status, 201);
    manifest
}

#[test]
fn an_unreachable_object_store_is_a_503_with_a_json_body() {
    let _serial = serial();
    let Some(cluster) = GarageCluster::start() else {
        return;
    };
    let fleet = Fleet::new(&cluster);
    let mut instance = fleet.start(&cluster.endpoint);
    let repo = "scale/outage";
    let manifest = push_image(instance.addr, repo);
    let layer = sha256(&content(2 * MIB, 3));
    // Every Garage node goes.
    drop(cluster);

    let requests = [
        ("GET", format!("/v2/{repo}/blobs/{layer}")),
        ("HEAD", format!("/v2/{repo}/blobs/{layer}")),
        ("POST", format!("/v2/{repo}/blobs/uploads/")),
        ("GET", format!("/v2/{repo}/manifests/latest")),
        ("GET", format!("/v2/{repo}/manifests/{}", sha256(&manifest))),
    ];
    // All at once: each is timed on its own.
    let addr = instance.addr;
    let answers: Vec<_> = requests
        .iter()
        .map(|(method, path)| {
            let (method, path) = (method.to_string(), path.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let reply = request(addr, &method, &path, &[], b"");
                (method, path, reply, started.elapsed())
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for answer in answers {
        let (method, path, reply, took) = answer.join().unwrap();
        eprintln!("{method} {path}: {} in {took:?}", reply.status);
        slowest = slowest.max(took);
        assert_eq!(reply.status, 503, "{method} {path}");
        assert_eq!(reply.header("retry-after"), Some("5"), "{method} {path}");
        if method != "HEAD" {
            assert_eq!(
                reply.header("content-type"),
                Some("application/json; charset=utf-8")
            );
            assert_eq!(
                reply.error_code().as_deref(),
                Some("UNAVAILABLE"),
                "{method} {path}: {}",
                String::from_utf8_lossy(&reply.body)
            );
        }
    }
    eprintln!("slowest 503: {slowest:?}");
    // The SDK's retries (5 attempts, backoff) inside, then the answer: seconds, not minutes.
    assert!(slowest < Duration::from_secs(20), "{slowest:?}");
    // The server itself is fine: it answers what needs no storage, and keeps running.
    let started = Instant::now();
    let reply = try_request(addr, "GET", "/v2/", &[], b"").expect("the server still answers");
    assert_eq!(reply.status, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(instance.is_running(), "{}", instance.log());
    assert!(
        instance.log().contains("UNAVAILABLE") || instance.log().contains("unavailable"),
        "the failures are logged:\n{}",
        instance.log()
    );
}

/// `nginx` on `PATH`, else `/usr/sbin/nginx`.
fn nginx_binary() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("nginx"))
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|candidate| candidate.is_file())
}

/// `docs/nginx-scale-out.conf` (what `docs/scale-out.md` shows) with its upstream servers and its
/// listen address replaced by `upstreams` and `listen`.
fn nginx_site(upstreams: &[SocketAddr], listen: SocketAddr) -> String {
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

#[test]
fn nginx_round_robin_in_front_of_three_instances() {
    let _serial = serial();
    let Some(nginx) = nginx_binary() else {
        missing("nginx");
        return;
    };
    let Some(cluster) = GarageCluster::start() else {
        return;
    };
    let mut fleet = Fleet::new(&cluster);
    // No --secret: the first instance creates the one kept in the bucket, the others read it.
    fleet.secret = None;
    let instances = fleet.start_n(3, &cluster.endpoint);
    for instance in &instances {
        assert!(instance.log().contains("http-secret"), "{}", instance.log());
    }

    let dir = tempfile::tempdir().unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let upstreams: Vec<SocketAddr> = instances.iter().map(|i| i.addr).collect();
    let site = dir.path().join("layerstore.conf");
    std::fs::write(&site, nginx_site(&upstreams, listen)).unwrap();
    let d = dir.path().display();
    let access_log = dir.path().join("access.log");
    let error_log = dir.path().join("error.log");
    // The process-level settings of a test run around the site configuration: one process (no
    // master and workers), so that killing it leaves nothing behind.
    let conf = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           log_format upstreams '$request_method $status $upstream_addr';\n\
           access_log {d}/access.log upstreams;\n  include {};\n}}\n",
        site.display()
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut command = Command::new(&nginx);
    command
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(&error_log)
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut guard = ChildGuard::spawn(command, "nginx").with_log(error_log.clone());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        guard.exited().unwrap();
        if let Ok(reply) = try_request(listen, "GET", "/v2/", &[], b"") {
            assert_eq!(reply.status, 200);
            break;
        }
        assert!(Instant::now() < deadline, "nginx did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The resume scenario's many small requests are covered by the test without nginx.
    let report = bench(
        &[format!("http://{listen}")],
        &[
            "push-monolithic",
            "push-chunked",
            "pull",
            "range-get",
            "small-push",
        ],
    );
    assert_eq!(report["urls"].as_array().unwrap().len(), 1);
    // Round robin: every instance took part in the uploads.
    let log = std::fs::read_to_string(&access_log).unwrap();
    for upstream in &upstreams {
        for method in ["POST", "PATCH", "PUT", "GET"] {
            let needle = format!("{method} ");
            assert!(
                log.lines()
                    .any(|l| l.starts_with(&needle) && l.ends_with(&upstream.to_string())),
                "{upstream} saw no {method} through nginx"
            );
        }
    }
    drop(guard);
}

/// A SIGKILL while two parts of one PATCH upload at once (the S3 writer keeps two in flight)
/// can leave part N+1 in S3 without part N. Only the unbroken run of parts from 1 holds the
/// upload's bytes in order: the size an instance reports (and resumes from) must stop at the gap,
/// or the client resumes past bytes that were never stored and the upload can never complete.
#[test]
fn a_part_after_a_gap_is_not_counted() {
    use aws_sdk_s3::primitives::ByteStream;
    use layerstore::storage::s3::{S3Config, S3Driver};
    use layerstore::storage::{DriverPath, StorageDriver};

    let _serial = serial();
    let Some(cluster) = GarageCluster::start() else {
        return;
    };
    let sdk = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(cluster.region.clone()))
            .endpoint_url(&cluster.endpoint)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                &cluster.access_key_id,
                &cluster.secret_access_key,
                None,
                None,
                "test",
            ))
            .force_path_style(true)
            .build(),
    );
    let path = "/docker/registry/v2/repositories/gap/_uploads/0d1e/data";
    let key = format!("{PREFIX}{path}");
    let part = content(5 * MIB, 1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let id = sdk
            .create_multipart_upload()
            .bucket(&cluster.bucket)
            .key(&key)
            .send()
            .await
            .unwrap()
            .upload_id()
            .unwrap()
            .to_owned();
        // Parts 1 and 3 arrived; part 2 was cut off by the SIGKILL.
        for number in [1, 3] {
            sdk.upload_part()
                .bucket(&cluster.bucket)
                .key(&key)
                .upload_id(&id)
                .part_number(number)
                .body(ByteStream::from(part.clone()))
                .send()
                .await
                .unwrap();
        }
    });
    let mut config = S3Config::new(&cluster.bucket, PREFIX);
    config.endpoint = Some(cluster.endpoint.clone());
    config.region = Some(cluster.region.clone());
    config.access_key_id = Some(cluster.access_key_id.clone());
    config.secret_access_key = Some(cluster.secret_access_key.clone());
    config.part_size = 5 * MIB as u64;
    let driver = S3Driver::connect(config).unwrap();
    let path = DriverPath::parse(path).unwrap();
    assert_eq!(driver.append_size(&path).unwrap(), 5 * MIB as u64);
    // An append continues after part 1; the stray part 3 is not part of the file.
    let mut writer = driver.writer(&path, true).unwrap();
    assert_eq!(writer.size(), 5 * MIB as u64);
    writer.write_all(b"tail").unwrap();
    writer.commit().unwrap();
    let mut stored = Vec::new();
    driver
        .reader(&path, 0)
        .unwrap()
        .read_to_end(&mut stored)
        .unwrap();
    assert_eq!(stored.len(), 5 * MIB + 4);
    assert!(stored[..5 * MIB] == part[..] && &stored[5 * MIB..] == b"tail");
}
