//! Prometheus metrics: one [`Metrics`] per server, owning its own [`Registry`].
//!
//! The registry is not prometheus' global one, so that tests and embedders can run several
//! servers in one process, each with its own numbers. Every family is named `layerstore_…`
//! with its unit in the name, and has only low-cardinality labels: the route *kind*
//! (`blob`, `manifest`, …, never a repository name or digest), the method (unknown methods are
//! `other`), the status code, a storage operation's name and an error kind. Route and
//! operation labels are `&'static str`, so request data cannot become a label by accident.
//!
//! The families (see `docs/operations.md` for the table):
//!
//! - requests: `layerstore_http_requests_total` and `layerstore_http_request_duration_seconds`
//!   by route, method and status; `layerstore_http_received_bytes_total` and
//!   `layerstore_http_sent_bytes_total` by route; `layerstore_uploads_in_progress`.
//! - the open blob file cache: `layerstore_blob_cache_hits_total`, `layerstore_blob_cache_misses_total`.
//! - the storage driver: `layerstore_storage_operation_duration_seconds` and
//!   `layerstore_storage_operations_total` (by operation and outcome), and
//!   `layerstore_storage_errors_total` by operation and error kind.
//! - fsck ([`Metrics::record_fsck`]): registered on first use, so a server that never ran one
//!   does not report zeros that look like results.
//! - garbage collection ([`Metrics::record_gc`]): runs by result, deleted blobs, bytes and
//!   manifests, the last run's time and duration; registered on first use too.
//!
//! ```
//! use std::time::Duration;
//! use layerstore::metrics::{DriverOutcome, Metrics};
//!
//! let metrics = Metrics::new();
//! metrics.observe_request("blob", "GET", 200, Duration::from_millis(3));
//! metrics.add_bytes_out("blob", 4096);
//! metrics.cache_hit();
//! metrics.observe_driver("stat", Duration::from_micros(40), DriverOutcome::NotFound);
//! let text = metrics.encode();
//! assert!(text.contains(
//!     r#"layerstore_http_requests_total{method="GET",route="blob",status="200"} 1"#
//! ));
//! assert!(text.contains(r#"layerstore_http_sent_bytes_total{route="blob"} 4096"#));
//! assert!(text.contains("layerstore_blob_cache_hits_total 1"));
//! assert!(text.contains(r#"layerstore_storage_operations_total{op="stat",outcome="not_found"} 1"#));
//! ```

mod fsck;
mod gc;
mod textfile;

use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

pub use gc::GcOutcome;
pub use textfile::write_textfile;

/// The `Content-Type` of [`Metrics::encode`]'s output (text exposition format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Request latency buckets, in seconds: a cached manifest HEAD takes about a millisecond, a
/// multi-GiB layer upload or download a minute or more.
const REQUEST_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Storage operation buckets, in seconds: a filesystem `stat` takes microseconds, an S3 call
/// tens of milliseconds, a large S3 copy seconds.
const DRIVER_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// How one storage driver call ended, for [`Metrics::observe_driver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverOutcome {
    /// It succeeded.
    Ok,
    /// Nothing at the path: an answer, not a failure (most `stat`s of a registry ask whether
    /// something exists).
    NotFound,
    /// It failed; the error's kind (`io`, `unavailable`, …) labels the error counter.
    Error(&'static str),
}

impl DriverOutcome {
    fn label(self) -> &'static str {
        match self {
            DriverOutcome::Ok => "ok",
            DriverOutcome::NotFound => "not_found",
            DriverOutcome::Error(_) => "error",
        }
    }
}

/// The metric families of one server, in their own registry. Shared behind an `Arc`; every
/// method takes `&self` and costs a few atomic operations.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    received: IntCounterVec,
    sent: IntCounterVec,
    uploads: IntGauge,
    cache_hits: IntCounter,
    cache_misses: IntCounter,
    events_dropped: IntCounter,
    driver_duration: HistogramVec,
    driver_ops: IntCounterVec,
    driver_errors: IntCounterVec,
    fsck: OnceLock<fsck::FsckFamilies>,
    gc: OnceLock<gc::GcFamilies>,
    /// Requests answered plus upload bodies started: moves whenever the server is working.
    activity: std::sync::atomic::AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh families, all at zero, in a new registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let metrics = Metrics {
            requests: counter_vec(
                "layerstore_http_requests_total",
                "Requests answered, by route kind, method and status.",
                &["route", "method", "status"],
            ),
            request_duration: histogram_vec(
                "layerstore_http_request_duration_seconds",
                "Time from the request head to the last byte of the response.",
                &["route", "method", "status"],
                REQUEST_BUCKETS,
            ),
            received: counter_vec(
                "layerstore_http_received_bytes_total",
                "Request body bytes received (uploads, manifests), by route kind.",
                &["route"],
            ),
            sent: counter_vec(
                "layerstore_http_sent_bytes_total",
                "Response body bytes sent, by route kind.",
                &["route"],
            ),
            uploads: IntGauge::new(
                "layerstore_uploads_in_progress",
                "Requests currently streaming an upload body into the store.",
            )
            .expect("valid metric"),
            cache_hits: IntCounter::new(
                "layerstore_blob_cache_hits_total",
                "Blob reads served from an already open blob file.",
            )
            .expect("valid metric"),
            cache_misses: IntCounter::new(
                "layerstore_blob_cache_misses_total",
                "Blob reads that had to open the blob file (filesystem storage only).",
            )
            .expect("valid metric"),
            events_dropped: IntCounter::new(
                "layerstore_events_dropped_total",
                "Events not delivered because the event sink's queue was full.",
            )
            .expect("valid metric"),
            driver_duration: histogram_vec(
                "layerstore_storage_operation_duration_seconds",
                "Time of each storage driver call, by operation.",
                &["op"],
                DRIVER_BUCKETS,
            ),
            driver_ops: counter_vec(
                "layerstore_storage_operations_total",
                "Storage driver calls, by operation and outcome (ok, not_found, error).",
                &["op", "outcome"],
            ),
            driver_errors: counter_vec(
                "layerstore_storage_errors_total",
                "Failed storage driver calls, by operation and error kind.",
                &["op", "kind"],
            ),
            fsck: OnceLock::new(),
            gc: OnceLock::new(),
            activity: Default::default(),
            registry,
        };
        metrics.register_all();
        metrics
    }

    fn register_all(&self) {
        let collectors: [Box<dyn prometheus::core::Collector>; 11] = [
            Box::new(self.requests.clone()),
            Box::new(self.request_duration.clone()),
            Box::new(self.received.clone()),
            Box::new(self.sent.clone()),
            Box::new(self.uploads.clone()),
            Box::new(self.cache_hits.clone()),
            Box::new(self.cache_misses.clone()),
            Box::new(self.events_dropped.clone()),
            Box::new(self.driver_duration.clone()),
            Box::new(self.driver_ops.clone()),
            Box::new(self.driver_errors.clone()),
        ];
        for collector in collectors {
            self.registry
                .register(collector)
                .expect("metric names are distinct");
        }
    }

    /// The registry, for embedders that add families of their own.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Everything, in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Only a family without samples can fail to encode, and gather() leaves those out.
        if let Err(e) = TextEncoder::new().encode_utf8(&self.registry.gather(), &mut text) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        text
    }

    /// One answered request: `route` is the route kind, `method` the request method (anything
    /// but the standard methods is counted as `other`), `duration` up to the last body byte.
    pub fn observe_request(
        &self,
        route: &'static str,
        method: &str,
        status: u16,
        duration: Duration,
    ) {
        self.activity.fetch_add(1, Ordering::Relaxed);
        let status = status_label(status);
        let labels = [route, method_label(method), status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.request_duration
            .with_label_values(&labels)
            .observe(duration.as_secs_f64());
    }

    /// Request body bytes received on a route kind.
    pub fn add_bytes_in(&self, route: &'static str, bytes: u64) {
        if bytes > 0 {
            self.received.with_label_values(&[route]).inc_by(bytes);
        }
    }

    /// Response body bytes sent on a route kind.
    pub fn add_bytes_out(&self, route: &'static str, bytes: u64) {
        if bytes > 0 {
            self.sent.with_label_values(&[route]).inc_by(bytes);
        }
    }

    /// Counts an upload body in progress until the guard is dropped.
    pub fn upload_in_progress(&self) -> UploadGuard {
        self.activity.fetch_add(1, Ordering::Relaxed);
        self.uploads.inc();
        UploadGuard(self.uploads.clone())
    }

    /// A count that moves with every answered request and every upload body started: two
    /// looks that differ, or an upload in progress, mean the server is busy (the background
    /// collector paces itself by it).
    ///
    /// ```
    /// let metrics = layerstore::metrics::Metrics::new();
    /// let before = metrics.activity();
    /// let _upload = metrics.upload_in_progress();
    /// assert_ne!(metrics.activity(), before);
    /// assert!(metrics.uploads_in_progress() > 0);
    /// ```
    pub fn activity(&self) -> u64 {
        self.activity.load(Ordering::Relaxed)
    }

    /// Upload bodies being received now.
    pub fn uploads_in_progress(&self) -> i64 {
        self.uploads.get()
    }

    /// A blob read found its open file in the cache.
    pub fn cache_hit(&self) {
        self.cache_hits.inc();
    }

    /// A blob read had to open the blob file.
    pub fn cache_miss(&self) {
        self.cache_misses.inc();
    }

    /// An event was dropped: the event sink's queue was full.
    pub fn event_dropped(&self) {
        self.events_dropped.inc();
    }

    /// One storage driver call `op` (the trait method's name) that took `duration`.
    pub fn observe_driver(&self, op: &'static str, duration: Duration, outcome: DriverOutcome) {
        self.driver_duration
            .with_label_values(&[op])
            .observe(duration.as_secs_f64());
        self.driver_ops
            .with_label_values(&[op, outcome.label()])
            .inc();
        if let DriverOutcome::Error(kind) = outcome {
            self.driver_errors.with_label_values(&[op, kind]).inc();
        }
    }
}

/// Decrements `layerstore_uploads_in_progress` when dropped.
#[derive(Debug)]
pub struct UploadGuard(IntGauge);

impl Drop for UploadGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The method as a label: the standard ones by name, anything else `other` (a client may send
/// any token as a method; each would otherwise become a new series).
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("other")
}

/// Status codes are the server's own (a few dozen at most); anything outside 100..=599 is not.
fn status_label(status: u16) -> String {
    if (100..=599).contains(&status) {
        status.to_string()
    } else {
        "other".to_owned()
    }
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
}

fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    HistogramVec::new(opts, labels).expect("valid metric")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        let metrics = Metrics::new();
        metrics.observe_request("base", "BREW", 405, Duration::ZERO);
        metrics.observe_request("base", "WHEN", 405, Duration::ZERO);
        let text = metrics.encode();
        assert!(text.contains(
            r#"layerstore_http_requests_total{method="other",route="base",status="405"} 2"#
        ));
    }

    #[test]
    fn upload_guard_counts_while_held() {
        let metrics = Metrics::new();
        let first = metrics.upload_in_progress();
        let second = metrics.upload_in_progress();
        assert!(metrics
            .encode()
            .contains("layerstore_uploads_in_progress 2"));
        drop(first);
        drop(second);
        assert!(metrics
            .encode()
            .contains("layerstore_uploads_in_progress 0"));
    }

    #[test]
    fn driver_errors_are_counted_by_kind() {
        let metrics = Metrics::new();
        metrics.observe_driver("put_content", Duration::ZERO, DriverOutcome::Error("io"));
        metrics.observe_driver("stat", Duration::ZERO, DriverOutcome::NotFound);
        let text = metrics.encode();
        assert!(text.contains(r#"layerstore_storage_errors_total{kind="io",op="put_content"} 1"#));
        assert!(!text
            .lines()
            .any(|l| l.starts_with("layerstore_storage_errors_total") && l.contains("stat")));
        assert!(
            text.contains(r#"layerstore_storage_operation_duration_seconds_count{op="stat"} 1"#)
        );
    }

    #[test]
    fn buckets_are_increasing() {
        for buckets in [REQUEST_BUCKETS, DRIVER_BUCKETS] {
            assert!(buckets.windows(2).all(|w| w[0] < w[1]));
            assert!(*buckets.last().unwrap() >= 60.0);
        }
    }
}
