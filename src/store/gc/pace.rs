//! Pacing: a background collection works for a fraction of the time and sleeps the rest, so
//! that it never takes a whole core from the requests beside it, however long it runs.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Work shorter than this goes on without a pause: sleeping for less is mostly overhead.
const SLICE: Duration = Duration::from_millis(5);

/// The smallest fraction accepted: below it a run would take a hundred times its work.
const MIN_FRACTION: f64 = 0.01;

/// Sleeps between a run's steps in proportion to the work since the last sleep.
///
/// Wall time is counted, not CPU time: a step that waited for the disk or for a core still
/// counts as work, so the run errs on the side of leaving the machine alone. The lock is held
/// while sleeping, so every thread of the run pauses at its next step too.
#[derive(Debug)]
pub(crate) struct Pacer {
    fraction: f64,
    since: Mutex<Instant>,
}

impl Pacer {
    /// Works `fraction` of the time (1.0, or anything not below it: never sleeps).
    pub(crate) fn new(fraction: f64) -> Self {
        let fraction = if fraction.is_nan() {
            1.0
        } else {
            fraction.clamp(MIN_FRACTION, 1.0)
        };
        Pacer {
            fraction,
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
        std::thread::sleep(worked.mul_f64((1.0 - self.fraction) / self.fraction));
        *since = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_half_fraction_sleeps_as_long_as_it_worked() {
        let pacer = Pacer::new(0.5);
        std::thread::sleep(Duration::from_millis(20));
        let started = Instant::now();
        pacer.breathe();
        assert!(started.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn a_whole_fraction_or_more_never_sleeps() {
        let pacer = Pacer::new(2.0);
        std::thread::sleep(Duration::from_millis(20));
        let started = Instant::now();
        pacer.breathe();
        assert!(started.elapsed() < Duration::from_millis(20));
    }
}
