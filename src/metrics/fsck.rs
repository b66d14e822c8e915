//! The fsck families: the result of the last `layerstore fsck`, for alerting on a storage that
//! went bad (through `fsck --metrics-textfile` and node_exporter's textfile collector).
//!
//! All are gauges describing one run, so they are set, not added to. `problems` has a series for
//! every kind, zeros included, so an alert on `layerstore_fsck_problems > 0` has data to compare
//! even after a clean run.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{Gauge, IntGauge, IntGaugeVec, Opts, Registry};

use super::Metrics;
use crate::store::{FsckProblem, FsckReport};

/// Every problem kind, as labelled.
const KINDS: [&str; 6] = [
    "corrupt_blob",
    "unreadable_blob",
    "stray_blob_file",
    "unreadable_link",
    "dangling_link",
    "link_mismatch",
];

/// The families, registered on first use.
#[derive(Debug)]
pub(super) struct FsckFamilies {
    timestamp: Gauge,
    duration: Gauge,
    success: IntGauge,
    blobs: IntGauge,
    links: IntGauge,
    problems: IntGaugeVec,
}

impl FsckFamilies {
    fn new(registry: &Registry) -> Self {
        let families = FsckFamilies {
            timestamp: Gauge::new(
                "layerstore_fsck_last_run_timestamp_seconds",
                "When the last fsck ended (Unix time).",
            )
            .expect("valid metric"),
            duration: Gauge::new(
                "layerstore_fsck_last_run_duration_seconds",
                "How long the last fsck took.",
            )
            .expect("valid metric"),
            success: IntGauge::new(
                "layerstore_fsck_last_run_success",
                "1 if the last fsck examined the whole storage, 0 if a storage error stopped it.",
            )
            .expect("valid metric"),
            blobs: IntGauge::new(
                "layerstore_fsck_blobs_checked",
                "Blob data files the last fsck re-hashed.",
            )
            .expect("valid metric"),
            links: IntGauge::new(
                "layerstore_fsck_links_checked",
                "Link files the last fsck checked.",
            )
            .expect("valid metric"),
            problems: IntGaugeVec::new(
                Opts::new(
                    "layerstore_fsck_problems",
                    "Problems the last fsck found, by kind.",
                ),
                &["kind"],
            )
            .expect("valid metric"),
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 6] = [
            Box::new(families.timestamp.clone()),
            Box::new(families.duration.clone()),
            Box::new(families.success.clone()),
            Box::new(families.blobs.clone()),
            Box::new(families.links.clone()),
            Box::new(families.problems.clone()),
        ];
        for collector in collectors {
            registry
                .register(collector)
                .expect("metric names are distinct");
        }
        families
    }

    fn finished(&self, duration: Duration, success: bool) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.timestamp.set(now.as_secs_f64());
        self.duration.set(duration.as_secs_f64());
        self.success.set(i64::from(success));
    }
}

/// The label of a problem.
fn kind(problem: &FsckProblem) -> &'static str {
    match problem {
        FsckProblem::CorruptBlob { .. } => "corrupt_blob",
        FsckProblem::UnreadableBlob { .. } => "unreadable_blob",
        FsckProblem::StrayBlobFile { .. } => "stray_blob_file",
        FsckProblem::UnreadableLink { .. } => "unreadable_link",
        FsckProblem::DanglingLink { .. } => "dangling_link",
        FsckProblem::LinkMismatch { .. } => "link_mismatch",
    }
}

impl Metrics {
    fn fsck_families(&self) -> &FsckFamilies {
        self.fsck.get_or_init(|| FsckFamilies::new(&self.registry))
    }

    /// Records a completed fsck that took `duration`: what it checked and what it found.
    ///
    /// ```
    /// use std::time::Duration;
    /// use layerstore::metrics::Metrics;
    /// use layerstore::store::FsckReport;
    ///
    /// let metrics = Metrics::new();
    /// assert!(!metrics.encode().contains("layerstore_fsck"));
    /// let report = FsckReport { blobs_checked: 3, links_checked: 5, ..Default::default() };
    /// metrics.record_fsck(&report, Duration::from_secs(2));
    /// let text = metrics.encode();
    /// assert!(text.contains("layerstore_fsck_blobs_checked 3"));
    /// assert!(text.contains("layerstore_fsck_last_run_success 1"));
    /// assert!(text.contains(r#"layerstore_fsck_problems{kind="corrupt_blob"} 0"#));
    /// ```
    pub fn record_fsck(&self, report: &FsckReport, duration: Duration) {
        let families = self.fsck_families();
        families.blobs.set(saturating_i64(report.blobs_checked));
        families.links.set(saturating_i64(report.links_checked));
        for label in KINDS {
            let count = report.problems.iter().filter(|p| kind(p) == label).count();
            families
                .problems
                .with_label_values(&[label])
                .set(saturating_i64(count as u64));
        }
        families.finished(duration, true);
    }

    /// Records an fsck that a storage error stopped after `duration`: only the time and
    /// `layerstore_fsck_last_run_success 0`, since its counts would be partial.
    pub fn record_fsck_failure(&self, duration: Duration) {
        self.fsck_families().finished(duration, false);
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::storage::DriverPath;

    #[test]
    fn problems_are_counted_by_kind() {
        let path = DriverPath::parse("/docker/registry/v2/blobs/x").unwrap();
        let report = FsckReport {
            blobs_checked: 2,
            links_checked: 1,
            problems: vec![
                FsckProblem::StrayBlobFile { path: path.clone() },
                FsckProblem::StrayBlobFile { path: path.clone() },
                FsckProblem::DanglingLink {
                    path,
                    target: Digest::sha256(b"x"),
                },
            ],
        };
        let metrics = Metrics::new();
        metrics.record_fsck(&report, Duration::from_millis(5));
        let text = metrics.encode();
        assert!(text.contains(r#"layerstore_fsck_problems{kind="stray_blob_file"} 2"#));
        assert!(text.contains(r#"layerstore_fsck_problems{kind="dangling_link"} 1"#));
        assert!(text.contains(r#"layerstore_fsck_problems{kind="link_mismatch"} 0"#));
    }

    #[test]
    fn a_failed_run_says_so() {
        let metrics = Metrics::new();
        metrics.record_fsck_failure(Duration::from_secs(1));
        let text = metrics.encode();
        assert!(text.contains("layerstore_fsck_last_run_success 0"));
        assert!(!text.contains("layerstore_fsck_problems"));
    }
}
