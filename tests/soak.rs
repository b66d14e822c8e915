//! Soak (issue 18, item 5): mixed load on the real `layerstore serve`, with garbage collection
//! running in it and SIGKILLs of it at random instants, for a set duration, on the filesystem
//! and on S3 (a real 3-node Garage cluster).
//!
//! - The load (`soak_support/client.rs`): clients push images (monolithic uploads, chunked
//!   uploads resumed after a kill, mounts), pull them with every byte compared, tag, delete
//!   tags and manifests. The server runs with `--gc-interval 5s --gc-grace 20s
//!   --gc-touch-after 2s --gc-delete-untagged` (4 s touches on S3).
//! - Kills: the server lives a random 20-60 s (10-25 s in the CI mode), is SIGKILLed and started
//!   again on the same storage. Before the clients get the new server, everything they rely
//!   on is read back and compared: every tag whose last write was acknowledged and the digest
//!   it names, with all blobs; every blob and untagged manifest acknowledged less than
//!   [`Settings::young`] ago (older unreferenced ones are the collector's). A request the kill
//!   left without an answer is not an error: it is retried on the next server (a chunked
//!   upload resumes at the offset that server reports) or, for a tag or delete, its outcome is
//!   left open. Any other unexpected answer is an error (429, the collector's back-pressure,
//!   is retried, and so is a push that took longer than the grace window and found a blob of
//!   its own collected: see `Client::blob_unknown`).
//! - At the end: the last server is killed, `layerstore fsck` runs with the server down and
//!   must be clean, a new server is started and everything is read back once more.
//! - Every second (2 s in the long mode) the server's VmRSS, VmHWM, RssAnon and open fds are
//!   sampled (to `soak-filesystem.csv` or `soak-s3.csv` in `SOAK_CSV_DIR`, if set) and must
//!   stay flat: see [`sampler::flatness`].
//!
//! Expected: 0 errors, 0 lost, 0 corrupt, fsck clean, no collection failed, collections that
//! deleted something (but in the CI mode on S3, where a collection outlasts most lifetimes),
//! flat. docs/reliability.md ("Soak") has the figures of the hour-long runs and what they found.
//!
//! `cargo test --test soak` runs 100 s on each storage (S3 is skipped with a message outside
//! CI when `garage` is missing). The long mode: `SOAK_SECS=3600 SOAK_CSV_DIR=/tmp/soak
//! cargo test --release --test soak -- --ignored --exact long_filesystem` (`long_s3` for S3);
//! `benches/soak.sh` runs both at once and plots the CSVs to docs/soak-*.png.

mod common;
#[allow(dead_code)] // the soak uses the gc_load support's plumbing, not its checks
mod gc_load_support;
mod soak_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::process::ServerProcess;
use gc_load_support::checks::{self, GcRuns};
use gc_load_support::{seconds_from_env, Backend, GcFlags, Rng};
use soak_support::client::Client;
use soak_support::sampler::{self, Sampler};
use soak_support::verify::check_all;
use soak_support::{Settings, Shared, Stats};

#[test]
fn a_hundred_seconds_of_load_kills_and_collections_on_the_filesystem() {
    run(&Backend::filesystem(), ci("soak[filesystem]", FS_GC));
}

/// Back in CI since the 416 it once saw on a chunked upload's final PUT was explained (Garage's
/// listing can miss an unfinished upload for a moment, so a new server reports fewer bytes
/// than the PUT's token names) and the client answers it by asking the session again.
#[test]
fn a_hundred_seconds_of_load_kills_and_collections_on_s3() {
    let Some(backend) = Backend::s3("soak-ci") else {
        return;
    };
    run(&backend, ci("soak[s3]", S3_GC));
}

#[test]
#[ignore = "an hour: run by benches/soak.sh"]
fn long_filesystem() {
    run(&Backend::filesystem(), long("soak[filesystem]", FS_GC));
}

#[test]
#[ignore = "an hour: run by benches/soak.sh"]
fn long_s3() {
    let Some(backend) = Backend::s3("soak") else {
        return;
    };
    // A collection on Garage under this load takes tens of seconds: servers that live 20-60 s
    // were killed before 66 of 68 runs finished (2026-12-06), so deletions racing kills went
    // unchecked on S3. Here they live 1-3 minutes.
    let settings = Settings {
        lifetime: (60, 180),
        ..long("soak[s3]", S3_GC)
    };
    run(&backend, settings);
}

const FS_GC: GcFlags = GcFlags {
    interval: Duration::from_secs(5),
    grace: Duration::from_secs(20),
    touch_after: Duration::from_secs(2),
};

/// On Garage a push's look at what it relies on can take more than 2 s on two busy cores
/// (then the server answers 429), so touches come after 4 s; grace stays 5 times that.
const S3_GC: GcFlags = GcFlags {
    touch_after: Duration::from_secs(4),
    ..FS_GC
};

fn ci(label: &str, gc: GcFlags) -> Settings {
    Settings {
        label: label.to_owned(),
        duration: Duration::from_secs(seconds_from_env("SOAK_CI_SECS", 100)),
        lifetime: (10, 25),
        clients: 6,
        gc,
        sample_every: Duration::from_secs(1),
        warmup: Duration::from_secs(3),
        csv: std::env::var_os("SOAK_CSV_DIR").map(|dir| {
            let storage = if gc.touch_after == S3_GC.touch_after {
                "s3"
            } else {
                "filesystem"
            };
            std::path::Path::new(&dir).join(format!("soak-{storage}.csv"))
        }),
        // A collection on Garage takes longer than most CI lifetimes: some finish, but those
        // that get past the grace window of what the load left may not.
        expect_deletions: gc.touch_after != S3_GC.touch_after,
        seed: seconds_from_env("SOAK_SEED", 0x736f_616b),
    }
}

fn long(label: &str, gc: GcFlags) -> Settings {
    Settings {
        duration: Duration::from_secs(seconds_from_env("SOAK_SECS", 3600)),
        lifetime: (20, 60),
        clients: 8,
        sample_every: Duration::from_secs(2),
        warmup: Duration::from_secs(10),
        expect_deletions: true,
        ..ci(label, gc)
    }
}

/// The collections the servers' logs report, over all lifetimes.
#[derive(Debug, Default)]
struct Collections {
    started: usize,
    finished: usize,
    skipped: usize,
    failed: Vec<String>,
    /// Deleted by every run, finished or killed.
    deleted_blobs: u64,
    deleted_manifests: u64,
    /// The longest finished run, in seconds.
    longest: f64,
}

impl Collections {
    fn add(&mut self, server: &ServerProcess) {
        let runs = GcRuns::from_log(&server.log_lines());
        self.started += runs.started;
        self.finished += runs.finished;
        self.skipped += runs.skipped;
        self.longest = self.longest.max(runs.longest);
        self.failed.extend(runs.failed);
        // Counted per batch, so that runs a kill cut short count too.
        self.deleted_blobs += runs.batches_deleted_blobs;
        self.deleted_manifests += runs.batches_deleted_manifests;
    }
}

fn start_server(backend: &Backend, shared: &Shared) -> ServerProcess {
    let mut env = backend.env();
    // The access log would fill the kept log lines; the collections' lines are what is read.
    env.push(("RUST_LOG".into(), "info,layerstore::access=warn".into()));
    let args = shared.settings.gc.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = ServerProcess::start_storage_with(&backend.url(), &args, &env);
    shared.slot.started(server.pid());
    server
}

fn run(backend: &Backend, settings: Settings) {
    let label = settings.label.clone();
    eprintln!("{label}: {settings:?}, young {:?}", settings.young());
    let shared = Arc::new(Shared::new(settings));
    let settings = &shared.settings;
    let sampler = Sampler::start(Arc::clone(&shared));
    let clients: Vec<Client> = (0..settings.clients)
        .map(|id| Client::new(id, Arc::clone(&shared)))
        .collect();
    let ledgers: Vec<_> = clients.iter().map(|c| Arc::clone(&c.ledger)).collect();
    let threads: Vec<_> = (clients.into_iter())
        .map(|client| std::thread::spawn(move || client.run()))
        .collect();
    let mut collections = Collections::default();
    let mut rng = Rng::new(settings.seed ^ 0x6b69_6c6c);
    let deadline = Instant::now() + settings.duration;
    loop {
        let server = start_server(backend, &shared);
        check_all(server.addr, &ledgers, &shared);
        shared.slot.open(server.addr);
        let (low, high) = settings.lifetime;
        let life = Duration::from_secs(rng.between(low as usize, high as usize) as u64);
        std::thread::sleep(life.min(deadline.saturating_duration_since(Instant::now())));
        let last = Instant::now() >= deadline;
        if last {
            shared.slot.finish();
        } else {
            shared.slot.close();
        }
        collections.add(&server);
        server.kill();
        Stats::add(&shared.stats.kills, 1);
        eprintln!(
            "{label}: kill at {:.0} s: {}",
            shared.started.elapsed().as_secs_f64(),
            shared.stats.summary()
        );
        if last {
            break;
        }
    }
    for thread in threads {
        thread.join().expect("client thread");
    }
    let fsck = checks::fsck(&backend.url(), &backend.env());
    let server = start_server(backend, &shared);
    let read_at_end = check_all(server.addr, &ledgers, &shared);
    collections.add(&server);
    server.kill();
    let samples = sampler.finish();
    let (figures, broken) = sampler::flatness(&samples, settings.warmup);
    report(&shared, &collections, &fsck, read_at_end, &figures, &broken);
    check(&shared, &collections, &fsck, read_at_end, &broken);
}

fn report(
    shared: &Shared,
    collections: &Collections,
    fsck: &(bool, String),
    read_at_end: u64,
    figures: &str,
    broken: &[String],
) {
    let label = &shared.settings.label;
    eprintln!("{label}: {}", shared.stats.summary());
    eprintln!("{label}: {read_at_end} items read back after the last restart");
    eprintln!("{label}: collections: {collections:?}");
    eprintln!("{label}: fsck clean: {}", fsck.0);
    eprintln!("{label}: memory and fds: {figures}");
    for line in broken {
        eprintln!("{label}: NOT FLAT: {line}");
    }
    for line in shared.problems.lock().unwrap().iter().take(50) {
        eprintln!("{label}: PROBLEM {line}");
    }
}

fn check(
    shared: &Shared,
    collections: &Collections,
    fsck: &(bool, String),
    read_at_end: u64,
    broken: &[String],
) {
    let stats = &shared.stats;
    assert_eq!(Stats::get(&stats.lost), 0, "acknowledged items lost");
    assert_eq!(Stats::get(&stats.corrupt), 0, "corrupt reads");
    assert_eq!(Stats::get(&stats.errors), 0, "errors");
    assert!(fsck.0, "fsck after the soak:\n{}", fsck.1);
    assert!(collections.failed.is_empty(), "{:?}", collections.failed);
    assert!(collections.finished > 0, "no collection finished");
    assert!(
        collections.deleted_blobs + collections.deleted_manifests > 0
            || !shared.settings.expect_deletions,
        "the collections deleted nothing"
    );
    let seconds = shared.settings.duration.as_secs();
    let kills = Stats::get(&stats.kills);
    assert!(
        kills >= seconds / shared.settings.lifetime.1,
        "only {kills} kills"
    );
    assert!(read_at_end > 0 && Stats::get(&stats.pushes) > 0 && Stats::get(&stats.pulls) > 0);
    assert!(broken.is_empty(), "not flat: {broken:#?}");
}
