//! Garbage collection under load (issue 16): a real `layerstore serve` collects in the
//! background every 2 s with `--gc-delete-untagged` while clients push, pull, tag, delete and
//! mount over HTTP. Expected: 0 errors, no referenced blob lost (every manifest a tag names
//! pulls in full, during the load and after it), many background collections finished and
//! none failed. Then, past the grace window, one more collection (`layerstore gc` with the
//! server's settings, beside it): the storage must hold exactly the clients' tags and the
//! manifests they name, and no blob these do not reference; fsck is clean.
//!
//! The mix is in `gc_load_support/client.rs`; the base layers shared by every client, which
//! drop out of use long enough to be collected and come back (the race that matters), in
//! `gc_load_support/pool.rs`.
//!
//! - Filesystem: 32 clients for 150 s (`LAYERSTORE_GC_LOAD_SECS` changes it), with
//!   `--gc-interval 2s --gc-grace 8s --gc-touch-after 2s`.
//! - S3 (the test process's Garage cluster): 8 clients for 45 s (`LAYERSTORE_GC_LOAD_S3_SECS`),
//!   with a 4 s touch interval and 16 s of grace: on Garage beside the filesystem run on two
//!   cores, a push's look at what it relies on can take more than 2 s, and the server then
//!   answers 429 (the look must be shorter than the touch interval). Skipped outside CI
//!   without Garage.
//!
//! `LAYERSTORE_GC_LOAD_SEED` sets the seed (printed at the start) of the mix and the contents.

mod common;
mod gc_load_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::process::ServerProcess;
use gc_load_support::checks::{self, GcRuns, Stored};
use gc_load_support::client::Client;
use gc_load_support::ledger::Ledger;
use gc_load_support::monitor::{Monitor, Seen};
use gc_load_support::pool::{Pool, POOL, STEP, WINDOW};
use gc_load_support::{seconds_from_env, Backend, GcFlags, Phases, Shared};

#[test]
fn thirty_two_clients_while_collections_run_on_the_filesystem() {
    let seconds = seconds_from_env("LAYERSTORE_GC_LOAD_SECS", 150);
    run(Backend::filesystem(), 32, seconds, GcFlags::FAST);
}

#[test]
fn eight_clients_while_collections_run_on_s3() {
    let Some(backend) = Backend::s3("gc-load") else {
        return;
    };
    let seconds = seconds_from_env("LAYERSTORE_GC_LOAD_S3_SECS", 45);
    let flags = GcFlags {
        interval: Duration::from_secs(2),
        grace: Duration::from_secs(16),
        touch_after: Duration::from_secs(4),
    };
    run(backend, 8, seconds, flags);
}

/// Everything a run found, printed and then checked.
struct Outcome {
    label: String,
    errors: Vec<String>,
    lost: Vec<String>,
    pulled: (usize, usize),
    seen: Seen,
    runs: GcRuns,
    /// `layerstore gc` after the load: when it started and its report.
    last_run: Result<(SystemTime, serde_json::Value), String>,
    stored: Stored,
    fsck: (bool, String),
    phases: Phases,
}

fn run(backend: Backend, clients: usize, seconds: u64, flags: GcFlags) {
    let seed = seconds_from_env("LAYERSTORE_GC_LOAD_SEED", 0x6c61_7965_7273);
    let label = format!("gc_load[{clients} clients, {seconds} s, {}]", backend.url());
    eprintln!("{label}: seed {seed}, {flags:?}");
    let mut env = backend.env();
    // The access log would fill the kept log lines long before the load ends.
    env.push(("RUST_LOG".into(), "info,layerstore::access=warn".into()));
    let args = flags.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = ServerProcess::start_storage_with(&backend.url(), &args, &env);
    let store = backend.store();
    let shared = Shared::new(Pool::new(seed), flags.young());
    let digests = shared
        .pool
        .layers
        .iter()
        .map(|l| l.digest.clone())
        .collect();
    let monitor = Monitor::start(store.clone(), digests, shared.started, flags.touch_after);

    let mut phases = Phases::start();
    let ledgers = load(&server, &shared, clients, seed, seconds);
    phases.lap("load and the clients' last requests");
    let load_over = Instant::now();
    let seen = monitor.finish();
    let errors = shared.errors.lock().unwrap().clone();
    let (pulled, mut lost) = checks::pull_live(server.addr, &ledgers);
    phases.lap("pulls");
    // Past the grace window since the last write, one more collection: then nothing the
    // clients left unreferenced may stay.
    let wait = flags.grace + Duration::from_secs(1);
    std::thread::sleep(wait.saturating_sub(load_over.elapsed()));
    phases.lap("grace");
    let last_run = checks::collect_once(&backend.url(), &backend.env(), &flags);
    phases.lap("layerstore gc");
    let repos: BTreeSet<String> = ledgers
        .iter()
        .flat_map(|l| l.images.values().map(|i| i.repo.clone()))
        .collect();
    let stored = checks::stored(&store, &repos);
    phases.lap("storage walk");
    let (pulled_after, lost_after) = checks::pull_live(server.addr, &ledgers);
    lost.extend(lost_after);
    phases.lap("pulls");
    let fsck = checks::fsck(&backend.url(), &backend.env());
    phases.lap("fsck");
    let outcome = Outcome {
        label,
        errors,
        lost,
        pulled: (pulled, pulled_after),
        seen,
        runs: GcRuns::from_log(&server.log_lines()),
        last_run,
        stored,
        fsck,
        phases,
    };
    print_outcome(&outcome, &shared, &server);
    check(&outcome, &ledgers, seconds, flags);
}

/// Runs `clients` clients for `seconds`; returns their ledgers.
fn load(
    server: &ServerProcess,
    shared: &Arc<Shared>,
    clients: usize,
    seed: u64,
    seconds: u64,
) -> Vec<Ledger> {
    let threads: Vec<_> = (0..clients)
        .map(|id| {
            let client = Client::new(id, server.addr, seed, Arc::clone(shared));
            std::thread::spawn(move || client.run())
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    shared.stop.store(true, Ordering::Relaxed);
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

fn print_outcome(outcome: &Outcome, shared: &Shared, server: &ServerProcess) {
    let label = &outcome.label;
    let (runs, seen) = (&outcome.runs, &outcome.seen);
    eprintln!(
        "{label}: {}; {} errors; {}",
        shared.counters.summary(),
        outcome.errors.len(),
        outcome.phases.summary()
    );
    eprintln!(
        "{label}: collections: {} started, {} finished, {} failed, {} skipped; deleted {} blobs \
         and {} manifests in all; {} candidates kept because touched; longest run {:.2} s",
        runs.started,
        runs.finished,
        runs.failed.len(),
        runs.skipped,
        runs.deleted_blobs,
        runs.deleted_manifests,
        runs.kept_touched,
        runs.longest
    );
    eprintln!(
        "{label}: base layers ({POOL}, {WINDOW} in use at a time, drawn every {STEP:?}): {} \
         deleted by a collection, {} pushed again after that, {} touched while older than the \
         touch interval",
        seen.deletions, seen.returns, seen.old_touched
    );
    eprintln!(
        "{label}: {} pulls of live manifests after the load, {} after the last collection; \
         server RSS {} KiB, {} fds",
        outcome.pulled.0,
        outcome.pulled.1,
        server.rss_kib(),
        server.open_fds()
    );
    if let Ok((_, report)) = &outcome.last_run {
        let n = |field: &str| report[field].as_array().map_or(0, Vec::len);
        eprintln!(
            "{label}: layerstore gc after the load: deleted {} blobs, {} manifests, {} links; \
             kept {} young",
            n("blobs"),
            n("manifests"),
            n("links"),
            report["kept_young"]
        );
    }
    let stored = &outcome.stored;
    eprintln!(
        "{label}: storage after the last collection: {} tags, {} manifests, {} blob files, \
         {} blobs referenced",
        stored.tags.len(),
        stored.revisions.len(),
        stored.blobs.len(),
        stored.referenced.len(),
    );
    let gc_lines: Vec<String> = server
        .log_lines()
        .into_iter()
        .filter(|l| l.contains("garbage collection") || l.contains("ERROR") || l.contains("WARN"))
        .collect();
    eprintln!(
        "{label}: server log (collections, warnings, errors):\n{}",
        gc_lines.join("\n")
    );
    report_errors(outcome, shared);
    assert!(server.open_fds() < 1024 && server.rss_kib() > 0);
}

fn check(outcome: &Outcome, ledgers: &[Ledger], seconds: u64, flags: GcFlags) {
    assert!(
        outcome.errors.is_empty(),
        "{} errors during the load",
        outcome.errors.len()
    );
    assert!(
        outcome.lost.is_empty(),
        "{} pulls of live manifests failed",
        outcome.lost.len()
    );
    check_collections(&outcome.runs, seconds);
    let (last_run, _) = outcome.last_run.clone().unwrap();
    check_storage(&outcome.stored, ledgers, last_run - flags.grace);
    let (clean, report) = &outcome.fsck;
    assert!(*clean, "fsck:\n{report}");
    let (pulled, pulled_after) = outcome.pulled;
    assert!(pulled > 0 && pulled_after == pulled);
    // With the settings and a load of many minutes, the race the test is for happened:
    // base layers were collected and pushed again. In the 150 s CI run it happens in most runs
    // but not all (collections slow down under load: one CI run saw none in 150 s), so there
    // it is reported, and asserted only for the long runs.
    if flags.grace == GcFlags::FAST.grace && seconds >= 100 {
        eprintln!(
            "base layers collected and pushed again: {}",
            outcome.seen.returns
        );
        assert!(
            seconds < 600 || outcome.seen.returns > 0,
            "no base layer was collected and pushed again"
        );
    }
}

/// Many collections finished (at least one per 30 s: under this load on two cores a run takes
/// up to ~35 s, and one that deletes ten thousand blobs took 92 s in a CI run where six
/// finished in 150 s), every one started finished (but one still running), none failed, and they
/// did delete: manifests or blobs. A blob outlives the manifest that last named it by at least
/// one run (it must be unreferenced when a run marks), and on S3 under a loaded box three runs
/// may be all that fit in the load (seen in CI: 5 manifests deleted, the blobs they freed left
/// to the collection after the load, which deleted 71).
fn check_collections(runs: &GcRuns, seconds: u64) {
    assert!(runs.failed.is_empty(), "failed: {:?}", runs.failed);
    let expected = (seconds / 30).max(2);
    assert!(
        runs.finished as u64 >= expected,
        "only {} collections finished in {seconds} s (expected {expected})",
        runs.finished
    );
    assert!(
        runs.started <= runs.finished + 1,
        "collections did not finish"
    );
    assert!(
        runs.deleted_blobs + runs.deleted_manifests > 0,
        "the collections deleted nothing"
    );
}

/// After the last collection: exactly the ledgers' tags and the manifests they name, and no
/// blob that those do not reference but ones modified after `cutoff` (the last collection's
/// start less the grace window).
fn check_storage(stored: &Stored, ledgers: &[Ledger], cutoff: SystemTime) {
    let tags: BTreeMap<_, _> = ledgers.iter().flat_map(|l| l.tags.clone()).collect();
    assert_eq!(
        stored.tags, tags,
        "the tags stored are not the tags acknowledged"
    );
    let live: BTreeSet<_> = ledgers.iter().flat_map(Ledger::live).collect();
    let extra: Vec<_> = stored.revisions.difference(&live).collect();
    let missing: Vec<_> = live.difference(&stored.revisions).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "manifests no tag names, not collected: {extra:?}; tagged manifests gone: {missing:?}"
    );
    let (young, old): (Vec<_>, Vec<_>) = stored
        .blobs
        .iter()
        .filter(|(digest, _)| !stored.referenced.contains(digest))
        .partition(|(_, modified)| *modified >= cutoff);
    eprintln!(
        "unreferenced blobs younger than the grace window: {}",
        young.len()
    );
    assert!(
        old.is_empty(),
        "{} unreferenced blobs older than the grace window stayed: {:?}",
        old.len(),
        old.iter().take(10).collect::<Vec<_>>()
    );
    let present: BTreeSet<&String> = stored.blobs.iter().map(|(d, _)| d).collect();
    let gone: Vec<_> = stored
        .referenced
        .iter()
        .filter(|d| !present.contains(d))
        .collect();
    assert!(gone.is_empty(), "referenced blobs gone: {gone:?}");
}

/// Prints every error and failed pull (the first 40), with the watcher's history of each base
/// layer they name.
fn report_errors(outcome: &Outcome, shared: &Shared) {
    for line in outcome.errors.iter().chain(&outcome.lost).take(40) {
        eprintln!("ERROR {line}");
        for (i, layer) in shared.pool.layers.iter().enumerate() {
            if line.contains(&layer.digest) {
                let history = &outcome.seen.histories[i];
                eprintln!("  base layer {i} {}: {history:?}", layer.digest);
            }
        }
    }
}
