//! Load: 64 concurrent clients on loopback push and pull blobs of mixed sizes for a while, many
//! of them pushing and pulling the same blobs at once, with deletes racing reads. Every answer
//! is checked: 0 errors, 0 corrupt reads. Afterwards the server's file descriptors and memory
//! must be back near where they started. Memory means anonymous memory (heap, stacks): pages of
//! blobs the server keeps mapped for reading are the kernel's page cache, reported separately.
//!
//! CI runs a short version. The long one:
//! `LOAD_SECONDS=300 LOAD_MAX_SIZE=268435456 cargo test --release --test load -- --include-ignored --nocapture`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::process::ServerProcess;
use common::{sha256, try_request};

const CLIENTS: usize = 64;

/// Shared blobs that every client pushes and pulls, to make them collide.
struct Popular {
    blobs: Vec<(Vec<u8>, String)>,
}

#[derive(Default)]
struct Counters {
    pushes: AtomicU64,
    pulls: AtomicU64,
    deletes: AtomicU64,
    bytes: AtomicU64,
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&xorshift(&mut x).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Sizes from 1 KiB up to `max`, mostly small, like real layers.
fn random_size(rng: &mut u64, max: usize) -> usize {
    let exp = 10 + (xorshift(rng) % 64) as u32 % (usize::BITS - max.leading_zeros() - 10).max(1);
    let size = 1usize << exp;
    (size + (xorshift(rng) as usize % size)).min(max)
}

fn push(addr: std::net::SocketAddr, repo: &str, data: &[u8]) -> Result<(), String> {
    let path = format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(data));
    let reply = try_request(addr, "POST", &path, &[], data)?;
    (reply.status == 201)
        .then_some(())
        .ok_or(format!("push answered {}", reply.status))
}

fn pull(
    addr: std::net::SocketAddr,
    repo: &str,
    data: &[u8],
    may_be_gone: bool,
) -> Result<bool, String> {
    let reply = try_request(
        addr,
        "GET",
        &format!("/v2/{repo}/blobs/{}", sha256(data)),
        &[],
        b"",
    )?;
    match reply.status.as_u16() {
        200 if reply.body == data => Ok(true),
        200 => Err(format!("corrupt read of {} bytes", data.len())),
        404 if may_be_gone => Ok(false),
        other => Err(format!("pull answered {other}")),
    }
}

fn client(
    id: u64,
    addr: std::net::SocketAddr,
    popular: &Popular,
    counters: &Counters,
    stop: &AtomicBool,
    max: usize,
) -> Result<(), String> {
    let mut rng = 0x9e37_79b9_7f4a_7c15 ^ (id + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
    let own_repo = format!("load/c{id}");
    while !stop.load(Ordering::Relaxed) {
        match xorshift(&mut rng) % 4 {
            // A blob of its own: push, pull, verify.
            0 => {
                let data = random_bytes(random_size(&mut rng, max), xorshift(&mut rng));
                push(addr, &own_repo, &data)?;
                pull(addr, &own_repo, &data, false)?;
                counters
                    .bytes
                    .fetch_add(2 * data.len() as u64, Ordering::Relaxed);
                counters.pushes.fetch_add(1, Ordering::Relaxed);
                counters.pulls.fetch_add(1, Ordering::Relaxed);
            }
            // A popular blob: everyone pushes the same bytes into the same repository.
            1 => {
                let (data, _) =
                    &popular.blobs[(xorshift(&mut rng) % popular.blobs.len() as u64) as usize];
                push(addr, "load/popular", data)?;
                counters.pushes.fetch_add(1, Ordering::Relaxed);
            }
            // Reads racing deletes in a shared repository: 200 with the right bytes, or 404.
            2 => {
                let (data, _) =
                    &popular.blobs[(xorshift(&mut rng) % popular.blobs.len() as u64) as usize];
                pull(addr, "load/popular", data, true)?;
                counters.pulls.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                let (data, digest) =
                    &popular.blobs[(xorshift(&mut rng) % popular.blobs.len() as u64) as usize];
                let reply = try_request(
                    addr,
                    "DELETE",
                    &format!("/v2/load/popular/blobs/{digest}"),
                    &[],
                    b"",
                )?;
                if reply.status != 202 && reply.status != 404 {
                    return Err(format!("delete answered {}", reply.status));
                }
                counters.deletes.fetch_add(1, Ordering::Relaxed);
                let _ = data;
            }
        }
    }
    Ok(())
}

fn run(seconds: u64, max: usize) {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let addr = server.addr;
    assert_eq!(
        try_request(addr, "GET", "/v2/", &[], b"").unwrap().status,
        200
    );
    std::thread::sleep(Duration::from_millis(200));
    let (fds_before, rss_before) = (server.open_fds(), server.rss_anon_kib());
    let popular = Arc::new(Popular {
        blobs: (0..4u64)
            .map(|i| {
                let data = random_bytes((max / 4).max(1024) >> i, 1000 + i);
                let digest = sha256(&data);
                (data, digest)
            })
            .collect(),
    });
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = (0..CLIENTS as u64)
        .map(|id| {
            let (popular, counters, stop) = (
                Arc::clone(&popular),
                Arc::clone(&counters),
                Arc::clone(&stop),
            );
            std::thread::spawn(move || client(id, addr, &popular, &counters, &stop, max))
        })
        .collect();
    let mut peak_rss = 0;
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(250));
        peak_rss = peak_rss.max(server.rss_anon_kib());
    }
    stop.store(true, Ordering::Relaxed);
    let errors: Vec<String> = threads
        .into_iter()
        .filter_map(|t| t.join().unwrap().err())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let (fds_after, rss_after) = (server.open_fds(), server.rss_anon_kib());
    let mapped = server.rss_kib().saturating_sub(rss_after);
    eprintln!(
        "load: {CLIENTS} clients, {seconds} s, max blob {max} B: {} pushes, {} pulls, {} deletes, {:.1} MiB moved, {} errors; fds {fds_before} -> {fds_after}; anonymous RSS {rss_before} KiB -> peak {peak_rss} KiB -> {rss_after} KiB (plus {mapped} KiB of mapped blob pages)",
        counters.pushes.load(Ordering::Relaxed),
        counters.pulls.load(Ordering::Relaxed),
        counters.deletes.load(Ordering::Relaxed),
        counters.bytes.load(Ordering::Relaxed) as f64 / (1 << 20) as f64,
        errors.len(),
    );
    assert!(errors.is_empty(), "errors: {errors:?}");
    assert!(counters.pushes.load(Ordering::Relaxed) > CLIENTS as u64);
    assert!(
        fds_after <= fds_before + 4,
        "file descriptors leak: {fds_before} -> {fds_after}"
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
