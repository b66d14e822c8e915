//! Support for the soak (tests/soak.rs): how a soak runs ([`Settings`]), what its clients and
//! checks share ([`Shared`], [`Stats`]), the server the clients talk to now ([`slot`]), what
//! each client was told ([`ledger`]), the load ([`client`]), the checks at every restart and at
//! the end ([`verify`]), and the server's memory and file descriptors over time ([`sampler`]).
//!
//! It composes tests/gc_load_support: its HTTP connection, seeded content, base-layer pool and
//! collection flags.

pub mod client;
pub mod ledger;
pub mod sampler;
pub mod slot;
pub mod verify;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::gc_load_support::pool::Pool;
use crate::gc_load_support::GcFlags;

/// How one soak runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub label: String,
    pub duration: Duration,
    /// A server lives this long (seconds, drawn uniformly) before its SIGKILL.
    pub lifetime: (u64, u64),
    pub clients: usize,
    pub gc: GcFlags,
    pub sample_every: Duration,
    /// Samples taken sooner than this after a server started are left out of the flatness
    /// criterion (caches, connection pools and allocator arenas fill first).
    pub warmup: Duration,
    /// Where the samples go (CSV), if anywhere.
    pub csv: Option<PathBuf>,
    /// Whether the collections must have deleted something by the end.
    pub expect_deletions: bool,
    pub seed: u64,
}

impl Settings {
    /// An acknowledged item that no live manifest references (a blob, an untagged manifest)
    /// must still be there this long after its 201: no collection can be past its grace window
    /// (which starts at the write, up to a touch interval before the 201 for content that was
    /// already stored), with margin.
    pub fn young(&self) -> Duration {
        self.gc.grace.saturating_sub(self.gc.touch_after) * 3 / 8
    }
}

/// Counts over the whole soak (all lifetimes).
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests answered as expected.
    pub requests_ok: AtomicU64,
    pub errors: AtomicU64,
    pub kills: AtomicU64,
    pub pushes: AtomicU64,
    pub tags: AtomicU64,
    pub pulls: AtomicU64,
    pub deletes: AtomicU64,
    pub mounts: AtomicU64,
    pub chunked: AtomicU64,
    /// Chunked uploads that a kill cut short and that resumed at a non-zero offset.
    pub resumed: AtomicU64,
    /// ... that the restarted server no longer knew (404), so started again.
    pub restarted: AtomicU64,
    /// Operations a kill cut short (retried after the restart, or their outcome left open).
    pub interrupted: AtomicU64,
    /// 429 answers (a collection deciding about content the request needs), retried.
    pub throttled: AtomicU64,
    /// Pushes that took longer than the grace window and found a blob of theirs collected
    /// (`MANIFEST_BLOB_UNKNOWN`, as they should), pushed again.
    pub expired: AtomicU64,
    /// Acknowledged items read back and compared (restart checks and pulls during the load).
    pub verified: AtomicU64,
    pub lost: AtomicU64,
    pub corrupt: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn summary(&self) -> String {
        let n = Stats::get;
        format!(
            "{} requests ok, {} errors, {} kills; {} pushes, {} tags, {} pulls, {} deletes, \
             {} mounts, {} chunked uploads ({} resumed after a kill, {} started again); {} \
             operations cut by kills; {} answers 429 retried; {} pushes past the grace window \
             pushed again; {} acknowledged items verified, \
             {} lost, {} corrupt",
            n(&self.requests_ok),
            n(&self.errors),
            n(&self.kills),
            n(&self.pushes),
            n(&self.tags),
            n(&self.pulls),
            n(&self.deletes),
            n(&self.mounts),
            n(&self.chunked),
            n(&self.resumed),
            n(&self.restarted),
            n(&self.interrupted),
            n(&self.throttled),
            n(&self.expired),
            n(&self.verified),
            n(&self.lost),
            n(&self.corrupt),
        )
    }
}

/// What the clients, the checks and the sampler share.
pub struct Shared {
    pub settings: Settings,
    pub slot: slot::Slot,
    pub stats: Stats,
    pub pool: Pool,
    /// Every error, lost and corrupt item, with when.
    pub problems: Mutex<Vec<String>>,
    pub started: Instant,
}

impl Shared {
    pub fn new(settings: Settings) -> Self {
        Shared {
            pool: Pool::new(settings.seed),
            settings,
            slot: slot::Slot::default(),
            stats: Stats::default(),
            problems: Mutex::new(Vec::new()),
            started: Instant::now(),
        }
    }

    /// Records a problem of kind `counter` (errors, lost or corrupt).
    pub fn problem(&self, counter: &AtomicU64, message: String) {
        Stats::add(counter, 1);
        let line = format!("[{:.1} s] {message}", self.started.elapsed().as_secs_f64());
        eprintln!("{}: {line}", self.settings.label);
        let mut problems = self.problems.lock().unwrap();
        if problems.len() < 1000 {
            problems.push(line);
        }
    }
}
