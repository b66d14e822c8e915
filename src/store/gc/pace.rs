//! Pacing: a background collection works for a fraction of the time and sleeps the rest, so
//! that it never takes a whole core from the requests beside it, however long it runs. With a
//! busy signal ([`GcOptions::busy`](super::GcOptions::busy)) it sleeps only while requests
//! are arriving, and runs flat out on an idle registry.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::BusySignal;

/// Work shorter than this goes on without a pause: sleeping for less is mostly overhead.
const SLICE: Duration = Duration::from_millis(5);

/// The smallest fraction accepted: below it a run would take a hundred times its work.
const MIN_FRACTION: f64 = 0.01;

/// Sleeps between a run's steps in proportion to the work since the last sleep.
///
/// Wall time is counted, not CPU time: a step that waited for the disk or for a core still
/// counts as work, so the run errs on the side of leaving the machine alone. The lock is held
/// while sleeping, so every thread of the run pauses at its next step too.
pub(crate) struct Pacer {
    fraction: f64,
    busy: Option<BusySignal>,
    since: Mutex<Instant>,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("fraction", &self.fraction)
            .field("busy", &self.busy.is_some())
            .finish_non_exhaustive()
    }
}

impl Pacer {
    /// Works `fraction` of the time (1.0, or anything not below it: never sleeps); with
    /// `busy`, only while it says so, and all the time otherwise.
    pub(crate) fn new(fraction: f64, busy: Option<BusySignal>) -> Self {
        let fraction = if fraction.is_nan() {
            1.0
        } else {
            fraction.clamp(MIN_FRACTION, 1.0)
        };
        Pacer {
            fraction,
            busy,
            since: Mutex::new(Instant::now()),
        }
    }

    /// Called between steps; never between a claim and its deletions (a sleep there would age
    /// the claim, and a stale claim means claiming and looking again).
    pub(crate) fn breathe(&self) {
        if self.fraction >= 1.0 {
            return;
        }
        let mut since = self.since.lock();
        let worked = since.elapsed();
        if worked < SLICE {
            return;
        }
        if self.busy.as_ref().is_some_and(|busy| !busy()) {
            // Nobody is waiting for the cores: the work so far needs no pause.
            *since = Instant::now();
            return;
        }
        std::thread::sleep(worked.mul_f64((1.0 - self.fraction) / self.fraction));
        *since = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_half_fraction_sleeps_as_long_as_it_worked() {
        let pacer = Pacer::new(0.5, None);
        std::thread::sleep(Duration::from_millis(20));
        let started = Instant::now();
        pacer.breathe();
        assert!(started.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn a_whole_fraction_or_more_never_sleeps() {
        let pacer = Pacer::new(2.0, None);
        std::thread::sleep(Duration::from_millis(20));
        let started = Instant::now();
        pacer.breathe();
        assert!(started.elapsed() < Duration::from_millis(20));
    }

    #[test]
    fn with_a_busy_signal_it_sleeps_only_while_busy() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let busy = Arc::new(AtomicBool::new(false));
        let signal = Arc::clone(&busy);
        let pacer = Pacer::new(0.5, Some(Arc::new(move || signal.load(Ordering::Relaxed))));
        std::thread::sleep(Duration::from_millis(20));
        let idle = Instant::now();
        pacer.breathe();
        assert!(
            idle.elapsed() < Duration::from_millis(20),
            "slept while idle"
        );

        busy.store(true, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(20));
        let loaded = Instant::now();
        pacer.breathe();
        assert!(
            loaded.elapsed() >= Duration::from_millis(20),
            "did not sleep while busy"
        );
    }
}
