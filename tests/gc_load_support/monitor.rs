//! Watches the base layers' data files through the store while the load runs, to show the
//! race the test is for did happen: a base layer deleted by a collection and pushed again
//! later, and old base layers touched by pushes that relied on them. Its history of a layer is
//! the evidence printed when a push lost that layer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use layerstore::storage::{PathSpec, StorageError};
use layerstore::store::Store;
use layerstore::Digest;

/// How often the files are looked at.
const TICK: Duration = Duration::from_millis(250);

/// What one base layer's file did: (seconds since the start, what was seen).
pub type History = Vec<(f64, String)>;

/// What the watcher saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// A layer's file went (a collection deleted it).
    pub deletions: usize,
    /// A layer's file came back after it went (pushed again).
    pub returns: usize,
    /// A layer's modification time moved on while it was older than the touch interval (a
    /// push touched it, or published new bytes onto it).
    pub old_touched: usize,
    pub histories: Vec<History>,
}

/// The watcher's thread.
pub struct Monitor {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Seen>,
}

impl Monitor {
    /// Watches blobs `digests`; a modification of one older than `touch_after` counts as a
    /// touch.
    pub fn start(
        store: Store,
        digests: Vec<String>,
        started: Instant,
        touch_after: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread =
            std::thread::spawn(move || watch(&store, &digests, started, touch_after, &flag));
        Monitor { stop, thread }
    }

    pub fn finish(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

fn watch(
    store: &Store,
    digests: &[String],
    started: Instant,
    touch_after: Duration,
    stop: &AtomicBool,
) -> Seen {
    let mut seen = Seen {
        histories: vec![Vec::new(); digests.len()],
        ..Seen::default()
    };
    let mut last: Vec<Option<Option<SystemTime>>> = vec![None; digests.len()];
    while !stop.load(Ordering::Relaxed) {
        for (i, digest) in digests.iter().enumerate() {
            let now = modified(store, digest);
            let at = started.elapsed().as_secs_f64();
            record(&mut seen, (i, at, touch_after), &last[i], &now);
            last[i] = Some(now);
        }
        std::thread::sleep(TICK);
    }
    seen
}

/// Compares what was seen of layer `i` before with `now` (`None`: no file).
fn record(
    seen: &mut Seen,
    (i, at, touch_after): (usize, f64, Duration),
    before: &Option<Option<SystemTime>>,
    now: &Option<SystemTime>,
) {
    let age = |t: &SystemTime| SystemTime::now().duration_since(*t).unwrap_or_default();
    let event = match (before, now) {
        (Some(Some(_)), None) => {
            seen.deletions += 1;
            "deleted".to_owned()
        }
        (Some(None), Some(t)) if seen.histories[i].iter().any(|(_, e)| e == "deleted") => {
            seen.returns += 1;
            format!("back (modified {:.1} s ago)", age(t).as_secs_f64())
        }
        (None | Some(None), Some(t)) => {
            format!("present (modified {:.1} s ago)", age(t).as_secs_f64())
        }
        (Some(Some(old)), Some(new)) if new > old => {
            let was = new.duration_since(*old).unwrap_or_default();
            if was > touch_after {
                seen.old_touched += 1;
            }
            format!("modified again (was {:.1} s old)", was.as_secs_f64())
        }
        _ => return,
    };
    seen.histories[i].push((at, event));
}

/// The modification time of blob `digest`'s data, `None` if there is none.
fn modified(store: &Store, digest: &str) -> Option<SystemTime> {
    let digest = Digest::parse(digest).unwrap();
    let path = PathSpec::BlobData { digest: &digest }.to_path().unwrap();
    match store.driver().stat(&path) {
        Ok(info) => Some(info.modified),
        Err(StorageError::NotFound(_)) => None,
        Err(e) => panic!("stat {path}: {e}"),
    }
}
