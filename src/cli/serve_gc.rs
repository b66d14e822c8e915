//! `serve`'s garbage collection: the touch interval every server keeps (so that any
//! collection can run beside it) and, with `--gc-interval`, collections in the background.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::Args;
use serde::Deserialize;

use layerstore::metrics::{GcOutcome, Metrics};
use layerstore::storage::DriverPath;
use layerstore::store::gc::claims::{self, CLAIM_LEASE};
use layerstore::store::gc::{GcEvent, GcObserver, LAST_RUN_PATH};
use layerstore::store::{GcOptions, Store, StoreError, DEFAULT_TOUCH_AFTER, GRACE_PER_TOUCH};

use super::purge::parse_duration;

/// The garbage-collection flags of `serve`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Collect garbage every DURATION in the background (e.g. 6h), like `layerstore gc`;
    /// results go to the log and to the layerstore_gc_* metrics. Instances sharing a storage
    /// skip a run when another finished one within half the interval [default: off].
    #[arg(long, env = "LAYERSTORE_GC_INTERVAL", value_name = "DURATION", value_parser = parse_duration)]
    gc_interval: Option<Duration>,
    /// The background collection's grace window [default: 2h].
    #[arg(long, env = "LAYERSTORE_GC_GRACE", value_name = "DURATION", value_parser = parse_duration)]
    gc_grace: Option<Duration>,
    /// The background collection also deletes untagged manifests.
    #[arg(long, env = "LAYERSTORE_GC_DELETE_UNTAGGED")]
    gc_delete_untagged: bool,
    /// Pushes touch a blob they rely on once it is older than this, so collections (this
    /// server's or `layerstore gc --touch-after` elsewhere) see it in use; every collection's
    /// grace must be at least 4 times it [default: 1m].
    #[arg(long, env = "LAYERSTORE_GC_TOUCH_AFTER", value_name = "DURATION", value_parser = parse_duration)]
    gc_touch_after: Option<Duration>,
    /// While requests are arriving, the background collection works this fraction of the
    /// time and sleeps the rest, leaving the cores to them; with no requests it runs flat out
    /// (1 never sleeps) [default: 0.25].
    #[arg(long, env = "LAYERSTORE_GC_WORK_FRACTION", value_name = "FRACTION")]
    gc_work_fraction: Option<f64>,
}

/// The background collection's share of the time while the registry is busy: pushes beside
/// a collection stay above 90% of their speed without it (`docs/benchmarks.md`).
pub const DEFAULT_BUSY_WORK_FRACTION: f64 = 0.25;

/// The config file's `[gc]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcTable {
    interval: Option<String>,
    grace: Option<String>,
    delete_untagged: Option<bool>,
    touch_after: Option<String>,
    work_fraction: Option<f64>,
}

impl GcTable {
    /// No `[gc]` table: every setting from the flags or the defaults.
    const EMPTY: GcTable = GcTable {
        interval: None,
        grace: None,
        delete_untagged: None,
        touch_after: None,
        work_fraction: None,
    };
}

/// The settings, resolved.
#[derive(Debug, Clone)]
pub struct GcSettings {
    /// How often to collect, if at all.
    pub interval: Option<Duration>,
    /// What a collection does.
    pub options: GcOptions,
    /// The store's touch interval.
    pub touch_after: Duration,
}

impl GcArgs {
    /// The flags, else the config file; refuses a grace shorter than the touch interval allows.
    pub fn resolve(&self, file: Option<&GcTable>) -> Result<GcSettings, String> {
        let table = file.unwrap_or(&GcTable::EMPTY);
        let parse = |text: &Option<String>| text.as_deref().map(parse_duration).transpose();
        let interval = self.gc_interval.or(parse(&table.interval)?);
        let grace = self
            .gc_grace
            .or(parse(&table.grace)?)
            .unwrap_or(GcOptions::default().grace);
        let touch_after = self
            .gc_touch_after
            .or(parse(&table.touch_after)?)
            .unwrap_or(DEFAULT_TOUCH_AFTER);
        if touch_after < Duration::from_secs(1) {
            return Err("--gc-touch-after must be at least 1s".into());
        }
        if interval.is_some_and(|i| i.is_zero()) {
            return Err("--gc-interval must be longer than 0s".into());
        }
        if interval.is_some() && grace < touch_after * GRACE_PER_TOUCH {
            return Err(format!(
                "--gc-grace {}s is shorter than {GRACE_PER_TOUCH} times --gc-touch-after ({}s)",
                grace.as_secs(),
                touch_after.as_secs()
            ));
        }
        let work_fraction = self
            .gc_work_fraction
            .or(table.work_fraction)
            .unwrap_or(DEFAULT_BUSY_WORK_FRACTION);
        if !(work_fraction > 0.0 && work_fraction <= 1.0) {
            return Err(format!(
                "--gc-work-fraction {work_fraction} is not in (0, 1]: 1 never pauses, 0.1 works \
                 a tenth of the time while requests arrive"
            ));
        }
        let delete_untagged = self.gc_delete_untagged || table.delete_untagged == Some(true);
        Ok(GcSettings {
            interval,
            options: GcOptions {
                grace,
                delete_untagged,
                // A background run shares the machine with the registry: one storage call at a
                // time, at nice 19, and paced while requests arrive (`start_background` gives
                // it the busy signal), leaves the cores to the requests.
                parallelism: 1,
                delete_parallelism: 1,
                work_fraction,
                ..GcOptions::default()
            },
            touch_after,
        })
    }
}

/// Runs collections every `settings.interval` on a thread of its own until `stop` is set; a
/// run in progress then ends at its next step and removes its claim. The caller waits for the
/// returned thread ([`wait_for`]) before the process exits.
pub fn start_background(
    store: Store,
    mut settings: GcSettings,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) -> Option<std::thread::JoinHandle<()>> {
    let interval = settings.interval?;
    settings.options.stop = Some(Arc::clone(&stop));
    settings.options.busy = Some(busy_signal(Arc::clone(&metrics)));
    settings.options.observer = Some(Arc::new(LogDeletions));
    if let Some(warning) = short_grace_warning(settings.options.grace) {
        tracing::warn!("{warning}");
    }
    let spawned = std::thread::Builder::new()
        .name("layerstore-gc".into())
        .spawn(move || {
            lower_priority();
            while sleep_unless_stopped(jittered(interval), &stop) {
                run_once(&store, &settings.options, interval, &metrics);
            }
        });
    spawned
        .inspect_err(
            |e| tracing::error!(error = %e, "could not start the garbage collection thread"),
        )
        .ok()
}

/// Logs each batch a background run deletes, as it goes: a long run's progress, and what a
/// run killed before its summary did.
struct LogDeletions;

impl GcObserver for LogDeletions {
    fn event(&self, event: GcEvent<'_>) {
        if let GcEvent::Deleted { blobs, manifests } = event {
            tracing::info!(blobs, manifests, "garbage collection deleted a batch");
        }
    }
}

/// "Busy" when a request was answered or an upload body started since the last look, or an
/// upload body is still arriving.
fn busy_signal(metrics: Arc<Metrics>) -> layerstore::store::gc::BusySignal {
    let last_seen = std::sync::atomic::AtomicU64::new(metrics.activity());
    Arc::new(move || {
        let now = metrics.activity();
        let moved = last_seen.swap(now, Ordering::Relaxed) != now;
        moved || metrics.uploads_in_progress() > 0
    })
}

/// Waits up to `limit` for the collection thread to end (a run ends at its next step, well
/// within a second); past that the process exits anyway, and a claim it leaves dies with its
/// lease.
pub fn wait_for(thread: std::thread::JoinHandle<()>, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    while !thread.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if thread.is_finished() {
        let _ = thread.join();
    }
}

/// A warning for a grace window under two claim leases (allowed: tests and small setups use
/// short ones). A writer that relies on a file a collection claimed waits until the claim ends,
/// up to a lease if the collection was killed; a push that spends that wait and more than the
/// grace in all can find its blobs collected (`MANIFEST_BLOB_UNKNOWN` on its manifest).
pub fn short_grace_warning(grace: Duration) -> Option<String> {
    (grace < 2 * CLAIM_LEASE).then(|| {
        format!(
            "the grace window ({}s) is shorter than two claim leases ({}s): a push that waits \
             for a collection killed mid-run (up to {}s) and takes longer than the grace in \
             all can lose its blobs",
            grace.as_secs(),
            2 * CLAIM_LEASE.as_secs(),
            CLAIM_LEASE.as_secs()
        )
    })
}

/// Gives the collecting thread the lowest normal priority (nice 19); the run's pools are
/// created by this thread and inherit it. On Linux a nice value is per thread, so the
/// server's own threads keep theirs.
///
/// Not `SCHED_IDLE`: an idle-class thread gets no CPU at all while the cores are busy, and
/// this one can be holding a claim that writers wait on (a push relying on a claimed blob
/// waits until the claim changes or ends). Starved under load, it would hold them up to the
/// whole 30 s lease: a priority inversion. Nice 19 still runs, slowly, so its claims move.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on this thread's own id; no memory is passed.
        #[allow(unsafe_code)]
        let result = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19)
        };
        if result != 0 {
            let error = std::io::Error::last_os_error();
            tracing::warn!(%error, "could not lower the garbage collection thread's priority");
        }
    }
}

/// One scheduled run, unless another instance collected recently or is collecting now.
fn run_once(store: &Store, options: &GcOptions, interval: Duration, metrics: &Metrics) {
    if let Some(reason) = busy_elsewhere(store, interval) {
        tracing::info!(reason, "garbage collection skipped");
        metrics.record_gc(GcOutcome::Skipped);
        return;
    }
    tracing::info!("garbage collection started");
    match store.collect_garbage(options) {
        Ok(report) => {
            tracing::info!(summary = %report.summary(), "garbage collection finished");
            metrics.record_gc(GcOutcome::Finished(&report));
        }
        Err(StoreError::CollectionStopped) => {
            tracing::info!("garbage collection stopped for the shutdown; its claim is removed");
        }
        Err(e) => {
            tracing::error!(error = %e, "garbage collection failed");
            metrics.record_gc(GcOutcome::Failed);
        }
    }
}

/// Why not to collect now: a run finished within half the interval (by the storage's time of
/// its summary), or a claim file younger than a lease, whose process is not known to be dead,
/// says one is running.
fn busy_elsewhere(store: &Store, interval: Duration) -> Option<&'static str> {
    let driver = store.driver();
    let now = SystemTime::now();
    let age = |path: &DriverPath| {
        driver
            .stat(path)
            .ok()
            .and_then(|info| now.duration_since(info.modified).ok())
    };
    let last_run = DriverPath::parse(LAST_RUN_PATH).ok()?;
    if age(&last_run).is_some_and(|age| age < interval / 2) {
        return Some("another run finished less than half an interval ago");
    }
    claims::a_run_is_alive(&**driver, now).then_some("another run is in progress")
}

/// The interval give or take a tenth, so instances started together drift apart.
fn jittered(interval: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    let tenth = interval / 10;
    interval - tenth + tenth * 2 * u32::from(byte[0]) / 255
}

/// Sleeps `duration` in short steps; false if `stop` was set meanwhile.
fn sleep_unless_stopped(duration: Duration, stop: &AtomicBool) -> bool {
    let deadline = std::time::Instant::now() + duration;
    while std::time::Instant::now() < deadline {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100).min(duration));
    }
    !stop.load(Ordering::Relaxed)
}
