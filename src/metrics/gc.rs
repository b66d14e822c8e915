//! The garbage-collection families: what the collections of `serve --gc-interval` did.
//!
//! Counters add up over runs (deleted blobs, bytes, manifests; runs by result); gauges describe
//! the last finished run. Registered on first use, like the fsck families, so a server that
//! never collects shows none.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::{Gauge, IntCounter, IntCounterVec, Opts, Registry};

use super::Metrics;
use crate::store::GcReport;

/// How a scheduled collection ended.
#[derive(Debug, Clone, Copy)]
pub enum GcOutcome<'a> {
    /// It ran to the end.
    Finished(&'a GcReport),
    /// A storage error stopped it.
    Failed,
    /// Another instance had collected recently, or is collecting now.
    Skipped,
}

#[derive(Debug)]
pub(super) struct GcFamilies {
    runs: IntCounterVec,
    blobs: IntCounter,
    bytes: IntCounter,
    manifests: IntCounter,
    last_success: Gauge,
    last_duration: Gauge,
}

impl GcFamilies {
    fn new(registry: &Registry) -> Self {
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let gauge = |name: &str, help: &str| Gauge::new(name, help).expect("valid metric");
        let families = GcFamilies {
            runs: IntCounterVec::new(
                Opts::new(
                    "layerstore_gc_runs_total",
                    "Scheduled garbage collections, by result (finished, failed, skipped).",
                ),
                &["result"],
            )
            .expect("valid metric"),
            blobs: counter(
                "layerstore_gc_deleted_blobs_total",
                "Blobs deleted by garbage collection.",
            ),
            bytes: counter(
                "layerstore_gc_deleted_bytes_total",
                "Bytes of the blobs deleted by garbage collection.",
            ),
            manifests: counter(
                "layerstore_gc_deleted_manifests_total",
                "Untagged manifest revisions deleted by garbage collection.",
            ),
            last_success: gauge(
                "layerstore_gc_last_success_timestamp_seconds",
                "When the last finished collection ended (Unix time).",
            ),
            last_duration: gauge(
                "layerstore_gc_last_duration_seconds",
                "How long the last finished collection took.",
            ),
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 6] = [
            Box::new(families.runs.clone()),
            Box::new(families.blobs.clone()),
            Box::new(families.bytes.clone()),
            Box::new(families.manifests.clone()),
            Box::new(families.last_success.clone()),
            Box::new(families.last_duration.clone()),
        ];
        for collector in collectors {
            registry
                .register(collector)
                .expect("metric names are distinct");
        }
        families
    }
}

impl Metrics {
    /// Records how a scheduled collection ended.
    ///
    /// ```
    /// use layerstore::metrics::{GcOutcome, Metrics};
    /// use layerstore::store::GcReport;
    ///
    /// let metrics = Metrics::new();
    /// assert!(!metrics.encode().contains("layerstore_gc"));
    /// let report = GcReport { bytes_freed: 10, ..Default::default() };
    /// metrics.record_gc(GcOutcome::Finished(&report));
    /// let text = metrics.encode();
    /// assert!(text.contains(r#"layerstore_gc_runs_total{result="finished"} 1"#));
    /// assert!(text.contains("layerstore_gc_deleted_bytes_total 10"));
    /// ```
    pub fn record_gc(&self, outcome: GcOutcome<'_>) {
        let families = self.gc.get_or_init(|| GcFamilies::new(&self.registry));
        let result = match outcome {
            GcOutcome::Finished(report) => {
                families.blobs.inc_by(report.blobs.len() as u64);
                families.bytes.inc_by(report.bytes_freed);
                families.manifests.inc_by(report.manifests.len() as u64);
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                families.last_success.set(now.as_secs_f64());
                families.last_duration.set(report.duration.as_secs_f64());
                "finished"
            }
            GcOutcome::Failed => "failed",
            GcOutcome::Skipped => "skipped",
        };
        families.runs.with_label_values(&[result]).inc();
    }
}
