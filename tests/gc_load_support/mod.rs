//! Support for tests/gc_load.rs (garbage collection under load): the storage a run uses
//! ([`Backend`]), seeded content, the pool of shared base layers ([`pool`]), what each client
//! was told ([`ledger`]), the HTTP plumbing ([`http`]), the clients' mix ([`client`]), a
//! watcher of the base layers' files ([`monitor`]) and the checks after the load ([`checks`]).

pub mod checks;
pub mod client;
pub mod http;
pub mod ledger;
pub mod monitor;
pub mod pool;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::backend::{shared_s3, SharedS3};
use layerstore::storage::s3::S3Driver;
use layerstore::store::Store;

/// The background collection's settings, as given to `serve`.
#[derive(Debug, Clone, Copy)]
pub struct GcFlags {
    pub interval: Duration,
    pub grace: Duration,
    pub touch_after: Duration,
}

impl GcFlags {
    /// The settings: a collection every 2 s, 8 s of grace, touches after 2 s.
    pub const FAST: GcFlags = GcFlags {
        interval: Duration::from_secs(2),
        grace: Duration::from_secs(8),
        touch_after: Duration::from_secs(2),
    };

    /// `serve`'s flags, `--gc-delete-untagged` and an unpaced collector included.
    pub fn args(&self) -> Vec<String> {
        let secs = |d: Duration| format!("{}s", d.as_secs());
        vec![
            "--gc-interval".into(),
            secs(self.interval),
            "--gc-grace".into(),
            secs(self.grace),
            "--gc-touch-after".into(),
            secs(self.touch_after),
            "--gc-delete-untagged".into(),
            // Not paced: the load never stops, so a paced run (the default works a quarter of
            // the time while requests arrive) would take four times as long, and on Garage
            // too few collections would finish for the checks.
            "--gc-work-fraction".into(),
            "1".into(),
        ]
    }

    /// An untagged manifest younger than this (since its 201) must still be there: no
    /// collection started since it was written can be past its grace window (with margin for
    /// the push's own duration).
    pub fn young(&self) -> Duration {
        self.grace * 3 / 8
    }
}

/// Where a run keeps its data.
pub enum Backend {
    Filesystem(tempfile::TempDir),
    /// A prefix of the bucket of the test process's Garage cluster.
    S3 {
        s3: SharedS3,
        prefix: String,
    },
}

impl Backend {
    pub fn filesystem() -> Backend {
        Backend::Filesystem(tempfile::tempdir().unwrap())
    }

    /// `None` (after "skipping") when Garage is missing outside CI.
    pub fn s3(prefix: &str) -> Option<Backend> {
        Some(Backend::S3 {
            s3: shared_s3()?,
            prefix: prefix.to_owned(),
        })
    }

    /// What `--storage` is given.
    pub fn url(&self) -> String {
        match self {
            Backend::Filesystem(dir) => dir.path().to_str().expect("a UTF-8 temp dir").to_owned(),
            Backend::S3 { s3, prefix } => format!("s3://{}/{prefix}", s3.bucket),
        }
    }

    /// What a `layerstore` process needs in its environment to reach the storage.
    pub fn env(&self) -> Vec<(String, String)> {
        let Backend::S3 { s3, .. } = self else {
            return Vec::new();
        };
        [
            ("AWS_ACCESS_KEY_ID", &s3.access_key_id),
            ("AWS_SECRET_ACCESS_KEY", &s3.secret_access_key),
            ("AWS_REGION", &s3.region),
            ("AWS_ENDPOINT_URL", &s3.endpoint),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.clone()))
        .collect()
    }

    /// The store, in this process, through the storage's driver.
    pub fn store(&self) -> Store {
        match self {
            Backend::Filesystem(dir) => Store::filesystem(dir.path()),
            Backend::S3 { s3, prefix } => {
                let driver = S3Driver::connect(s3.config(prefix)).expect("the bucket answers");
                Store::new(Arc::new(driver))
            }
        }
    }
}

pub use crate::common::rng::Rng;

/// `len` bytes that follow from `seed`.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The digest string (`sha256:…`) of `data`.
pub fn sha256(data: &[u8]) -> String {
    layerstore::Digest::sha256(data).to_string()
}

/// A blob a client pushes: its bytes and their digest.
#[derive(Debug, Clone)]
pub struct Blob {
    pub digest: String,
    pub bytes: Arc<Vec<u8>>,
}

impl Blob {
    pub fn new(seed: u64, len: usize) -> Self {
        let bytes = bytes(seed, len);
        Blob {
            digest: sha256(&bytes),
            bytes: Arc::new(bytes),
        }
    }
}

/// Operations the clients completed, by kind.
#[derive(Debug, Default)]
pub struct Counters {
    pub pushes_tagged: AtomicU64,
    pub pushes_untagged: AtomicU64,
    pub tags: AtomicU64,
    pub pulls: AtomicU64,
    pub blob_pulls: AtomicU64,
    pub delete_tags: AtomicU64,
    pub delete_manifests: AtomicU64,
    pub uploads: AtomicU64,
    pub mounts: AtomicU64,
    pub mount_fallbacks: AtomicU64,
    pub requests: AtomicU64,
    /// The longest a manifest PUT took, in milliseconds.
    pub slowest_put_ms: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn summary(&self) -> String {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{} requests: {} tagged pushes, {} untagged pushes, {} tags by PUT, {} pulls \
             ({} blob GETs), {} tag deletes, {} manifest deletes, {} blob uploads, \
             {} mounts (201), {} mounts answered 202 and uploaded; slowest manifest PUT {} ms",
            n(&self.requests),
            n(&self.pushes_tagged),
            n(&self.pushes_untagged),
            n(&self.tags),
            n(&self.pulls),
            n(&self.blob_pulls),
            n(&self.delete_tags),
            n(&self.delete_manifests),
            n(&self.uploads),
            n(&self.mounts),
            n(&self.mount_fallbacks),
            n(&self.slowest_put_ms),
        )
    }
}

/// What every client shares: the base layers, the counters, the errors, the stop flag.
pub struct Shared {
    pub pool: pool::Pool,
    pub counters: Counters,
    pub errors: Mutex<Vec<String>>,
    pub stop: AtomicBool,
    pub started: Instant,
    /// See [`GcFlags::young`].
    pub young: Duration,
}

impl Shared {
    pub fn new(pool: pool::Pool, young: Duration) -> Arc<Self> {
        Arc::new(Shared {
            pool,
            young,
            counters: Counters::default(),
            errors: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            started: Instant::now(),
        })
    }

    /// Seconds since the load started, for messages.
    pub fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub fn error(&self, client: usize, message: String) {
        let line = format!("[{:.2} s, client {client}] {message}", self.now());
        eprintln!("gc_load error: {line}");
        self.errors.lock().unwrap().push(line);
    }
}

/// A duration from the environment variable `name` (whole seconds), else `default`.
pub fn seconds_from_env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// How long each phase of the checks took, for the report.
pub struct Phases {
    last: Instant,
    laps: Vec<String>,
}

impl Phases {
    pub fn start() -> Self {
        Phases {
            last: Instant::now(),
            laps: Vec::new(),
        }
    }

    /// Ends the phase `name`.
    pub fn lap(&mut self, name: &str) {
        self.laps
            .push(format!("{name} {:.1} s", self.last.elapsed().as_secs_f64()));
        self.last = Instant::now();
    }

    pub fn summary(&self) -> String {
        self.laps.join(", ")
    }
}
