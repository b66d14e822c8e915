//! Latency percentiles and rates: the pure arithmetic of the report, tested on its own.
//!
//! Samples are kept exactly (microseconds as `u32`, 4 bytes each: a 10 s run at 100 000
//! requests/s holds 4 MB) rather than in a histogram, so p99 is exact, not bucketed.

use std::time::Duration;

use serde::Serialize;

/// Latencies of one scenario, in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    micros: Vec<u32>,
}

impl Latencies {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one latency (saturating at about 71 minutes).
    pub fn record(&mut self, latency: Duration) {
        self.micros
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
    }

    /// Adds another worker's samples.
    pub fn merge(&mut self, other: Latencies) {
        self.micros.extend(other.micros);
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.micros.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    /// p50, p99 and max, or `None` without samples.
    pub fn summary(mut self) -> Option<LatencySummary> {
        self.micros.sort_unstable();
        Some(LatencySummary {
            p50_ms: millis(percentile(&self.micros, 50.0)?),
            p99_ms: millis(percentile(&self.micros, 99.0)?),
            max_ms: millis(*self.micros.last()?),
        })
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// Nearest-rank percentile of sorted samples: the smallest sample such that at least `p`
/// percent of the samples are at or below it. `None` when empty.
///
/// ```
/// use layerstore::bench::stats::percentile;
///
/// let samples: Vec<u32> = (1..=100).collect();
/// assert_eq!(percentile(&samples, 50.0), Some(50));
/// assert_eq!(percentile(&samples, 99.0), Some(99));
/// assert_eq!(percentile(&[7], 99.0), Some(7));
/// ```
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = ((p / 100.0) * n as f64).ceil() as usize; // 1-based; `as` saturates
    sorted.get(rank.clamp(1, n) - 1).copied()
}

fn millis(micros: u32) -> f64 {
    f64::from(micros) / 1000.0
}

/// Decimal megabytes per second (10^6 bytes, as curl and wrk print).
pub fn megabytes_per_second(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9)
}

/// Events per second.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn summary_of_known_samples() {
        let mut latencies = Latencies::new();
        for ms in 1..=1000u64 {
            latencies.record(Duration::from_millis(ms));
        }
        let summary = latencies.summary().unwrap();
        assert_eq!(summary.p50_ms, 500.0);
        assert_eq!(summary.p99_ms, 990.0);
        assert_eq!(summary.max_ms, 1000.0);
        assert!(Latencies::new().summary().is_none());
    }

    #[test]
    fn rates() {
        assert_eq!(megabytes_per_second(3_000_000, Duration::from_secs(2)), 1.5);
        assert_eq!(per_second(10, Duration::from_millis(500)), 20.0);
    }

    proptest! {
        #[test]
        fn percentile_is_a_sample_with_enough_below(mut samples in proptest::collection::vec(any::<u32>(), 1..200), p in 0.0f64..=100.0) {
            samples.sort_unstable();
            let value = percentile(&samples, p).unwrap();
            prop_assert!(samples.contains(&value));
            let at_or_below = samples.iter().filter(|&&s| s <= value).count();
            prop_assert!(at_or_below as f64 >= p / 100.0 * samples.len() as f64);
            let below = samples.iter().filter(|&&s| s < value).count();
            prop_assert!((below as f64) < (p / 100.0 * samples.len() as f64).max(1.0));
        }
    }
}
