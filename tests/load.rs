//! Load: 64 concurrent clients on loopback push and pull blobs of mixed sizes for a while, many
//! of them pushing and pulling the same blobs at once, with deletes racing reads. Every answer
//! is checked: 0 errors, 0 corrupt reads (each pull is hashed and its length compared).
//! Afterwards the server's file descriptors and memory must be back near where they started.
//! Memory means anonymous memory (heap, stacks): pages of the blob windows mapped while they
//! are sent are the kernel's page cache, reported separately.
//!
//! Blobs stream from the bench's seekable generator and pulls are hashed as they arrive, so
//! the clients hold no blob in memory and the sizes can go up to 256 MiB. The four shared
//! "popular" blobs are the largest (`max`, `max/4`, `max/16`, `max/64`): many clients push
//! and pull the same large blob at once, and the store holds one copy. Each client's own
//! blobs, new bytes every time, go up to `max/8` so the disk is not filled.
//!
//! CI runs a short version. The long one:
//! `LOAD_SECONDS=300 LOAD_MAX_SIZE=268435456 cargo test --release --test load -- --include-ignored --nocapture`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::Method;
use layerstore::bench::client::{self, Connection, Target};
use layerstore::bench::content::{derive_seed, Content};
use layerstore::digest::{Digest, HashAlgorithm};
use layerstore::hash::Hasher;

use common::process::ServerProcess;
use common::try_request;

const CLIENTS: usize = 64;

/// A generated blob and its digest.
struct Blob {
    content: Content,
    digest: Digest,
}

impl Blob {
    fn new(seed: u64, len: u64) -> Self {
        let content = Content::new(seed, len);
        let digest = content.sha256();
        Blob { content, digest }
    }

    fn len(&self) -> u64 {
        self.content.len()
    }
}

#[derive(Default)]
struct Counters {
    pushes: AtomicU64,
    pulls: AtomicU64,
    deletes: AtomicU64,
    bytes: AtomicU64,
    largest: AtomicU64,
}

impl Counters {
    fn moved(&self, len: u64) {
        self.bytes.fetch_add(len, Ordering::Relaxed);
        self.largest.fetch_max(len, Ordering::Relaxed);
    }
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Sizes from 1 KiB up to `max`, log-uniform: mostly small, like real layers.
fn random_size(rng: &mut u64, max: u64) -> u64 {
    let bits = (u64::BITS - max.leading_zeros()).saturating_sub(10).max(1);
    let size = 1u64 << (10 + (xorshift(rng) % u64::from(bits)));
    (size + xorshift(rng) % size).min(max)
}

/// Single-request push (`POST ?digest=`) with the body streamed from the generator.
async fn push(conn: &mut Connection, repo: &str, blob: &Blob) -> Result<(), String> {
    let path = conn
        .target()
        .api_path(&format!("{repo}/blobs/uploads/?digest={}", blob.digest));
    let request = conn
        .target()
        .request(Method::POST, &path)
        .header(CONTENT_LENGTH, blob.len())
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(blob.content.body(0, blob.len()).boxed())
        .map_err(|e| e.to_string())?;
    let response = conn
        .send("push", request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    client::read_body("push", response.into_body(), 1 << 16)
        .await
        .map_err(|e| e.to_string())?;
    (status == 201)
        .then_some(())
        .ok_or(format!("push of {} bytes answered {status}", blob.len()))
}

/// A body-less request on `/v2/REPO/blobs/DIGEST`.
async fn blob_request(
    conn: &mut Connection,
    method: Method,
    repo: &str,
    blob: &Blob,
) -> Result<hyper::Response<hyper::body::Incoming>, String> {
    let path = conn
        .target()
        .api_path(&format!("{repo}/blobs/{}", blob.digest));
    let request = conn
        .target()
        .request(method, &path)
        .body(client::empty())
        .map_err(|e| e.to_string())?;
    conn.send("blob request", request)
        .await
        .map_err(|e| e.to_string())
}

/// GET of the blob, hashed as it streams in: `Ok(false)` for an allowed 404.
async fn pull(
    conn: &mut Connection,
    repo: &str,
    blob: &Blob,
    may_be_gone: bool,
) -> Result<bool, String> {
    let response = blob_request(conn, Method::GET, repo, blob).await?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut hasher = Hasher::new(HashAlgorithm::Sha256);
    let mut received = 0u64;
    while let Some(frame) = client::next_frame("pull", &mut body)
        .await
        .map_err(|e| e.to_string())?
    {
        if let Ok(data) = frame.into_data() {
            hasher.update(&data);
            received += data.len() as u64;
        }
    }
    match status {
        200 if received == blob.len() && hasher.digest() == blob.digest => Ok(true),
        200 => Err(format!(
            "corrupt read: {received} of {} bytes, digest {}",
            blob.len(),
            hasher.digest()
        )),
        404 if may_be_gone => Ok(false),
        other => Err(format!("pull answered {other}")),
    }
}

async fn delete(conn: &mut Connection, repo: &str, blob: &Blob) -> Result<(), String> {
    let response = blob_request(conn, Method::DELETE, repo, blob).await?;
    let status = response.status().as_u16();
    client::read_body("delete", response.into_body(), 1 << 16)
        .await
        .map_err(|e| e.to_string())?;
    match status {
        202 | 404 => Ok(()),
        other => Err(format!("delete answered {other}")),
    }
}

async fn client(
    id: u64,
    target: Arc<Target>,
    popular: Arc<Vec<Blob>>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    max: u64,
) -> Result<(), String> {
    let mut rng = 0x9e37_79b9_7f4a_7c15 ^ (id + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
    let mut conn = Connection::new(target);
    let own_repo = format!("load/c{id}");
    let mut counter = 0;
    while !stop.load(Ordering::Relaxed) {
        let shared = &popular[(xorshift(&mut rng) % popular.len() as u64) as usize];
        match xorshift(&mut rng) % 4 {
            // A blob of its own, new bytes: push, pull, verify.
            0 => {
                counter += 1;
                let size = random_size(&mut rng, (max / 8).max(1024));
                let seed = derive_seed(id << 32 | counter, 7);
                let blob = tokio::task::spawn_blocking(move || Blob::new(seed, size))
                    .await
                    .map_err(|e| e.to_string())?;
                push(&mut conn, &own_repo, &blob).await?;
                pull(&mut conn, &own_repo, &blob, false).await?;
                counters.moved(2 * blob.len());
                counters.pushes.fetch_add(1, Ordering::Relaxed);
                counters.pulls.fetch_add(1, Ordering::Relaxed);
            }
            // A popular blob: everyone pushes the same bytes into the same repository.
            1 => {
                push(&mut conn, "load/popular", shared).await?;
                counters.moved(shared.len());
                counters.pushes.fetch_add(1, Ordering::Relaxed);
            }
            // Reads racing deletes in a shared repository: 200 with the right bytes, or 404.
            2 => {
                if pull(&mut conn, "load/popular", shared, true).await? {
                    counters.moved(shared.len());
                }
                counters.pulls.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                delete(&mut conn, "load/popular", shared).await?;
                counters.deletes.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

fn run(seconds: u64, max: u64) {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let addr = server.addr;
    assert_eq!(
        try_request(addr, "GET", "/v2/", &[], b"").unwrap().status,
        200
    );
    std::thread::sleep(Duration::from_millis(200));
    let (fds_before, rss_before) = (server.open_fds(), server.rss_anon_kib());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let target = runtime
        .block_on(Target::resolve(&format!("http://{addr}")))
        .unwrap();
    let popular: Arc<Vec<Blob>> = Arc::new(
        (0..4u64)
            .map(|i| Blob::new(1000 + i, (max >> (2 * i)).max(1024)))
            .collect(),
    );
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS as u64)
        .map(|id| {
            runtime.spawn(client(
                id,
                Arc::clone(&target),
                Arc::clone(&popular),
                Arc::clone(&counters),
                Arc::clone(&stop),
                max,
            ))
        })
        .collect();
    let mut peak_rss = 0;
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(250));
        peak_rss = peak_rss.max(server.rss_anon_kib());
    }
    stop.store(true, Ordering::Relaxed);
    let errors: Vec<String> = runtime.block_on(async {
        let mut errors = Vec::new();
        for task in tasks {
            if let Err(e) = task.await.unwrap() {
                errors.push(e);
            }
        }
        errors
    });
    drop(runtime); // closes the clients' kept-alive connections
                   // The server's idle blocking threads exit after tokio's 10 s keep-alive, and their memory
                   // with them: give it that long to settle.
    let idle = Instant::now();
    let settled = |rss: u64| rss < rss_before + 64 * 1024;
    while idle.elapsed() < Duration::from_secs(15) && !settled(server.rss_anon_kib()) {
        std::thread::sleep(Duration::from_millis(500));
        eprintln!(
            "  {:.1} s idle: anonymous RSS {} KiB",
            idle.elapsed().as_secs_f64(),
            server.rss_anon_kib()
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    let (fds_after, rss_after) = (server.open_fds(), server.rss_anon_kib());
    let mapped = server.rss_kib().saturating_sub(rss_after);
    eprintln!(
        "load: {CLIENTS} clients, {seconds} s (ran {:.0} s), max blob {max} B (largest moved {} B): {} pushes, {} pulls, {} deletes, {:.1} MiB moved, {} errors; fds {fds_before} -> {fds_after}; anonymous RSS {rss_before} KiB -> peak {peak_rss} KiB -> {rss_after} KiB (plus {mapped} KiB of mapped blob pages)",
        started.elapsed().as_secs_f64(),
        counters.largest.load(Ordering::Relaxed),
        counters.pushes.load(Ordering::Relaxed),
        counters.pulls.load(Ordering::Relaxed),
        counters.deletes.load(Ordering::Relaxed),
        counters.bytes.load(Ordering::Relaxed) as f64 / (1 << 20) as f64,
        errors.len(),
    );
    assert!(errors.is_empty(), "errors: {errors:?}");
    assert!(counters.pushes.load(Ordering::Relaxed) > CLIENTS as u64);
    // The store keeps up to OPEN_BLOB_FILES blob files open for the next read.
    let bound = fds_before + layerstore::store::OPEN_BLOB_FILES + 4;
    assert!(
        fds_after <= bound,
        "file descriptors leak: {fds_before} -> {fds_after} (bound {bound})"
    );
    assert!(
        rss_after < rss_before + 64 * 1024,
        "memory not returned: {rss_before} -> {rss_after} KiB"
    );
}

#[test]
fn sixty_four_clients_short() {
    run(10, 2 << 20);
}

#[test]
#[ignore = "long run: see the module docs"]
fn sixty_four_clients_long() {
    let seconds = std::env::var("LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let max = std::env::var("LOAD_MAX_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256 << 20);
    run(seconds, max);
}
