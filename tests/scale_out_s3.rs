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
mod scale_out_support;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::garage::GarageCluster;
use common::process::{free_port, missing, ChildGuard};
use common::{content, request, sha256, try_request};
use scale_out_support::bench::{bench, nginx_binary, nginx_site, ALL_SCENARIOS};
use scale_out_support::requests::{
    check_blob_everywhere, offset_of, patch, push_image, status, RawRequest,
};
use scale_out_support::{
    check_after_node_loss, instances_beside_node_2, serial, Fleet, Instance, MIB, PREFIX,
};

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
        // A status may move back, never ahead of durable data: 3 MiB is the object the second
        // PATCH left at the key, seen alone when Garage's ListMultipartUploads misses the
        // unfinished upload while a part of it streams in (seen once in CI).
        let offset = offset_of(&status(instances[1].addr, &location));
        assert!(
            [3, 7, 10].map(|m| m * MIB as u64).contains(&offset),
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
                Some("TOOMANYREQUESTS"),
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
        instance.log().contains("TOOMANYREQUESTS") || instance.log().contains("unavailable"),
        "the failures are logged:\n{}",
        instance.log()
    );
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
    // The bench's few uploads can all start on the same instances (its requests come in
    // cycles of their own; one CI run saw an instance with no POST). Then one upload per
    // instance, each followed by a GET: four requests a round, so nginx's round robin starts
    // each round's upload on the next instance and every instance sees every method.
    for round in 0..upstreams.len() {
        let data = content(1000, round as u8);
        let repo = "scaleout/round-robin";
        let reply = request(
            listen,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            b"",
        );
        assert_eq!(reply.status, 202, "round {round}");
        let location = patch(listen, &reply.location(), &data, 0..data.len()).location();
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{separator}digest={}", sha256(&data));
        assert_eq!(
            request(listen, "PUT", &put, &[], b"").status,
            201,
            "round {round}"
        );
        assert_eq!(request(listen, "GET", "/v2/", &[], b"").status, 200);
    }
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
