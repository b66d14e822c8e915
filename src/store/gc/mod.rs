//! Online garbage collection: mark what is reachable, sweep what is not, while the registry
//! keeps serving.
//!
//! A run ([`Store::collect_garbage`]) goes through these phases:
//!
//! 1. **Start.** Write this run's claim file ([`claims`]); its storage time is the run's start
//!    `T0`. Claim files of dead runs go.
//! 2. **Mark** (`mark`). In every repository: read every manifest revision and every tag;
//!    the roots are the tagged manifests (all revisions without `delete_untagged`, and
//!    revisions written within the grace window in any case); from them follow configs,
//!    layers, index children and referrers (manifests whose `subject` is live). The marks are
//!    global blob digests.
//! 3. **Untagged manifests** (`delete_untagged` only). Revisions not reached and older than
//!    the grace window are claimed, looked at again, and deleted with their tag-history entries
//!    and referrers-index entries, as distribution's `garbage-collect --delete-untagged` does.
//! 4. **Blobs** (`sweep`). Every blob not marked and last modified before `T0 - grace` is a
//!    candidate (`candidates`). In batches: claim, look at each blob's time again, delete
//!    the links that name it, then its bytes; a batch's deletions in sub-batches at once, each
//!    while the claim is fresh.
//! 5. **Uploads.** Upload sessions idle for longer than `upload_idle` are deleted.
//!
//! Writers keep their half of the bargain in `store::liveness`: whatever a push
//! relies on is young, or touched and checked against the claims. `docs/gc.md` has the race
//! table. A run killed at any point leaves the store consistent: links go before the bytes
//! they name, a revision goes before its bytes, and the next run finishes the job.
//!
//! ```
//! use std::time::Duration;
//! use layerstore::names::RepositoryName;
//! use layerstore::store::{GcOptions, Store};
//! use layerstore::Digest;
//!
//! let store = Store::in_memory();
//! let repo = RepositoryName::parse("app").unwrap();
//! let mut upload = store.create_upload(&repo).unwrap();
//! upload.append(b"a layer no manifest names").unwrap();
//! let digest = Digest::sha256(b"a layer no manifest names");
//! upload.commit(&digest, None).unwrap();
//!
//! // Within the grace window the blob stays; with no grace (nothing else writing), it goes.
//! let report = store.collect_garbage(&GcOptions::default()).unwrap();
//! assert!(report.blobs.is_empty());
//! let now = GcOptions { grace: Duration::ZERO, ..GcOptions::default() };
//! let report = store.collect_garbage(&now).unwrap();
//! assert_eq!(report.blobs[0].digest, digest);
//! assert!(store.stat_global(&digest).is_err());
//! ```

mod candidates;
pub mod claims;
mod mark;
mod owner;
mod pace;
mod report;
mod sweep;
mod uploads;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{Store, StoreError};
use crate::storage::DriverPath;

pub use report::{DeletedBlob, DeletedManifest, GcReport};

/// Default grace window: nothing younger is deleted.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(2 * 3600);

/// Default idle time after which an upload session is deleted.
pub const DEFAULT_UPLOAD_IDLE: Duration = Duration::from_secs(24 * 3600);

/// Where a run writes its summary when it finishes (`serve --gc-interval` reads it so that
/// several instances sharing a storage do not all collect at once).
pub const LAST_RUN_PATH: &str = "/layerstore/gc/last-run";

/// Whether the machine is busy serving, asked between a paced run's steps
/// ([`GcOptions::busy`]).
pub type BusySignal = Arc<dyn Fn() -> bool + Send + Sync>;

/// How a collection runs.
#[derive(Clone)]
pub struct GcOptions {
    /// Only report: delete nothing, write nothing.
    pub dry_run: bool,
    /// Delete manifests that no tag reaches (and what only they reference).
    pub delete_untagged: bool,
    /// Nothing modified within this window before the run's start is deleted. With writers
    /// running, it must be at least [`GRACE_PER_TOUCH`](super::GRACE_PER_TOUCH) times their
    /// `touch_after`; zero is for stores nothing else writes to.
    pub grace: Duration,
    /// Upload sessions with no write for this long are deleted.
    pub upload_idle: Duration,
    /// Blobs claimed and deleted per batch.
    pub batch_size: usize,
    /// Storage calls in flight at once while marking and looking at candidates.
    pub parallelism: usize,
    /// Deletions in flight at once. They mostly wait (for the disk, or the network), so more
    /// of them than cores pays: on the benchmark's disk 32 at once delete a batch several
    /// times faster than one after another (`docs/benchmarks.md`).
    pub delete_parallelism: usize,
    /// The fraction of the time the run works; between steps it sleeps the rest (1.0: it
    /// never sleeps). A background collection sets less, to leave the cores to requests.
    pub work_fraction: f64,
    /// When set, the run is paced (`work_fraction`) only while this says the machine is busy,
    /// and works flat out otherwise: `serve` passes "a request arrived since the last look".
    pub busy: Option<BusySignal>,
    /// Told about each step (progress bars, tests).
    pub observer: Option<Arc<dyn GcObserver>>,
    /// Set to ask the run to stop: it ends at its next step (never between a claim and its
    /// deletions) with [`StoreError::CollectionStopped`], having removed its claim, so that no
    /// writer waits for a run that is gone (`serve` sets it on SIGTERM).
    pub stop: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            delete_untagged: false,
            grace: DEFAULT_GRACE,
            upload_idle: DEFAULT_UPLOAD_IDLE,
            batch_size: 1000,
            parallelism: 4,
            delete_parallelism: 32,
            work_fraction: 1.0,
            busy: None,
            observer: None,
            stop: None,
        }
    }
}

impl std::fmt::Debug for GcOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcOptions")
            .field("dry_run", &self.dry_run)
            .field("delete_untagged", &self.delete_untagged)
            .field("grace", &self.grace)
            .field("upload_idle", &self.upload_idle)
            .field("batch_size", &self.batch_size)
            .field("parallelism", &self.parallelism)
            .field("delete_parallelism", &self.delete_parallelism)
            .field("work_fraction", &self.work_fraction)
            .field("busy", &self.busy.is_some())
            .finish_non_exhaustive()
    }
}

/// A step of a run, as told to a [`GcObserver`].
#[derive(Debug)]
#[non_exhaustive]
pub enum GcEvent<'a> {
    /// The run started; marking begins.
    Started,
    /// One repository is marked (`done` of `total`).
    RepositoryMarked {
        /// Repositories marked so far.
        done: usize,
        /// Repositories in all.
        total: usize,
    },
    /// Marking is over.
    Marked,
    /// A batch is claimed and about to be looked at again.
    Claimed {
        /// The files claimed.
        paths: &'a [DriverPath],
    },
    /// A batch was looked at again; these files are about to be deleted.
    Deleting {
        /// The files about to go.
        paths: &'a [DriverPath],
    },
    /// Files deleted just now (a sub-batch's deletions are over): `blobs` blobs or `manifests`
    /// untagged manifests, with the links that named them. A run killed later keeps these.
    Deleted {
        /// Blobs whose bytes went.
        blobs: usize,
        /// Manifests whose revisions went.
        manifests: usize,
    },
    /// Blob candidates swept so far (`done` of `total`).
    Swept {
        /// Candidates decided so far.
        done: usize,
        /// Candidates in all.
        total: usize,
    },
}

/// Receives the steps of a run. Called on the collecting thread: the run waits for it, which
/// is what tests use to put a push at an exact point of a run.
pub trait GcObserver: Send + Sync {
    /// One step.
    fn event(&self, event: GcEvent<'_>);
}

/// What a run knows once started, shared by its phases.
pub(crate) struct Run<'a> {
    pub(crate) store: &'a Store,
    pub(crate) options: &'a GcOptions,
    /// Anything modified before this (storage time) is old enough to delete.
    pub(crate) cutoff: SystemTime,
    pub(crate) claimer: Option<claims::Claimer<'a>>,
    /// Marking, listing and looking again: `parallelism` threads.
    pub(crate) pool: rayon::ThreadPool,
    /// Deleting: `delete_parallelism` threads (one in a dry run, which deletes nothing).
    pub(crate) deleters: rayon::ThreadPool,
    pub(crate) pacer: pace::Pacer,
}

impl Run<'_> {
    pub(crate) fn tell(&self, event: GcEvent<'_>) {
        if let Some(observer) = &self.options.observer {
            observer.event(event);
        }
    }

    /// True when `modified` is before the cut-off: old enough to delete.
    pub(crate) fn is_old(&self, modified: SystemTime) -> bool {
        modified < self.cutoff
    }

    /// True while this run's current claim is young enough to delete under.
    pub(crate) fn claim_is_fresh(&self) -> bool {
        self.claimer.as_ref().is_some_and(|c| c.is_fresh())
    }
}

impl Store {
    /// Collects garbage: see the [module documentation](self) for the phases and
    /// `docs/gc.md` for why it is safe while the store serves.
    pub fn collect_garbage(&self, options: &GcOptions) -> Result<GcReport, StoreError> {
        let clock = Instant::now();
        let run_id = run_id()?;
        let (claimer, start) = if options.dry_run {
            (None, SystemTime::now())
        } else {
            let (claimer, start) = claims::Claimer::start(&*self.driver, &run_id)?;
            claims::remove_stale(&*self.driver, start)?;
            (Some(claimer), start)
        };
        let pool = thread_pool(options.parallelism, "layerstore-gc")?;
        let deleting = if options.dry_run {
            1
        } else {
            options.delete_parallelism
        };
        let deleters = thread_pool(deleting, "layerstore-gc-delete")?;
        let mut run = Run {
            store: self,
            options,
            cutoff: start
                .checked_sub(options.grace)
                .unwrap_or(SystemTime::UNIX_EPOCH),
            claimer,
            pool,
            deleters,
            pacer: pace::Pacer::new(options.work_fraction, options.busy.clone()),
        };
        run.tell(GcEvent::Started);
        let mut report = GcReport {
            dry_run: options.dry_run,
            ..GcReport::default()
        };
        let outcome = run.phases(&mut report);
        let finished = run.claimer.take().map(|claimer| claimer.finish());
        outcome?;
        report.duration = clock.elapsed();
        if let Some(finished) = finished {
            finished?;
            self.driver
                .put_content(&DriverPath::parse(LAST_RUN_PATH)?, &report.summary_json())?;
        }
        Ok(report)
    }
}

impl Run<'_> {
    /// Mark, sweep, idle uploads. However it ends, the caller removes the claim: a run that
    /// returned deletes nothing more, so no writer needs to wait for it.
    fn phases(&mut self, report: &mut GcReport) -> Result<(), StoreError> {
        let marks = mark::mark(self, report)?;
        self.tell(GcEvent::Marked);
        if self.options.delete_untagged {
            sweep::delete_manifests(self, &marks, report)?;
        }
        sweep::delete_blobs(self, &marks, report)?;
        uploads::delete_idle_uploads(self, report)
    }

    /// Between two steps: sleeps as the pacing says, then ends the run if it was asked to stop.
    pub(crate) fn step(&self) -> Result<(), StoreError> {
        self.pacer.breathe();
        let asked = self.options.stop.as_ref();
        match asked.is_some_and(|stop| stop.load(std::sync::atomic::Ordering::Relaxed)) {
            true => Err(StoreError::CollectionStopped),
            false => Ok(()),
        }
    }
}

/// A pool of `threads` threads (at least one). Its threads are created by the calling thread,
/// so they inherit its scheduling priority (`serve` lowers its collector's).
fn thread_pool(threads: usize, name: &'static str) -> Result<rayon::ThreadPool, StoreError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(move |i| format!("{name}-{i}"))
        .build()
        .map_err(|e| StoreError::Input(std::io::Error::other(e)))
}

/// A random id for a run's claim file.
fn run_id() -> Result<String, StoreError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(StoreError::Random)?;
    Ok(crate::digest::to_hex(&bytes))
}
