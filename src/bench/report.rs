//! The result of a run: per scenario passed (with figures), failed (with the verification
//! error) or skipped, printed as a table for people or JSON for scripts.

use std::fmt::Write as _;

use serde::Serialize;

use super::process::ServerUsage;
use super::stats::LatencySummary;
use super::Scenario;

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The registry's base URLs, in the order requests were sent to them (round robin).
    pub urls: Vec<String>,
    /// The run's seed (hex): content and repository names derive from it.
    pub seed: String,
    /// Repository prefix used (`bench-SEED`).
    pub repository_prefix: String,
    /// One entry per scenario run, in order.
    pub scenarios: Vec<ScenarioReport>,
}

/// One scenario's result.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// Which scenario.
    pub scenario: Scenario,
    /// What happened.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Passed with figures, failed verification, or not run.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// Every answer was verified.
    Passed(Metrics),
    /// An answer was wrong or missing.
    Failed {
        /// The first error seen.
        error: String,
    },
    /// Not run because a scenario it depends on failed.
    Skipped {
        /// Why.
        reason: String,
    },
}

/// The figures of a passed scenario.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Metrics {
    /// Wall-clock duration of the measured part.
    pub seconds: f64,
    /// Body bytes moved (sent plus received).
    pub bytes: u64,
    /// HTTP requests completed (a small push counts its POST and PUT as one push).
    pub operations: u64,
    /// Connections (or concurrent workers) used.
    pub connections: usize,
    /// Throughput in decimal MB/s.
    pub megabytes_per_second: f64,
    /// Operations per second.
    pub operations_per_second: f64,
    /// Latency percentiles per operation, when measured.
    pub latency: Option<LatencySummary>,
    /// The server's cost, with `--server-pid`.
    pub server: Option<ServerUsage>,
}

impl BenchReport {
    /// True when every scenario run passed (skipped ones count as failures: they were asked for).
    pub fn passed(&self) -> bool {
        self.scenarios
            .iter()
            .all(|s| matches!(s.outcome, Outcome::Passed(_)))
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain structs of numbers and strings cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A fixed-width table, one row per scenario.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}  seed {}", self.registries(), self.seed);
        let _ = writeln!(
            out,
            "{:<16} {:>6} {:>9} {:>10} {:>9} {:>9} {:>9} {:>12} {:>9}",
            "scenario",
            "conns",
            "MB/s",
            "ops/s",
            "p50 ms",
            "p99 ms",
            "seconds",
            "srv CPU s/GiB",
            "srv RSS MiB"
        );
        for scenario in &self.scenarios {
            let name = scenario.scenario.name();
            match &scenario.outcome {
                Outcome::Passed(m) => {
                    let (p50, p99) = m.latency.map_or(("-".into(), "-".into()), |l| {
                        (fmt2(l.p50_ms), fmt2(l.p99_ms))
                    });
                    let cpu = m
                        .server
                        .and_then(|s| s.cpu_seconds_per_gib)
                        .map_or("-".into(), fmt2);
                    let rss = m.server.map_or("-".into(), |s| {
                        format!("{:.0}", s.peak_rss_bytes as f64 / (1u64 << 20) as f64)
                    });
                    let _ = writeln!(
                        out,
                        "{name:<16} {:>6} {:>9.1} {:>10.1} {p50:>9} {p99:>9} {:>9.2} {cpu:>12} {rss:>9}",
                        m.connections, m.megabytes_per_second, m.operations_per_second, m.seconds
                    );
                }
                Outcome::Failed { error } => {
                    let _ = writeln!(out, "{name:<16} FAILED: {error}");
                }
                Outcome::Skipped { reason } => {
                    let _ = writeln!(out, "{name:<16} SKIPPED: {reason}");
                }
            }
        }
        let verdict = if self.passed() {
            "all answers verified"
        } else {
            "FAILURE"
        };
        let _ = writeln!(out, "{verdict}");
        out
    }

    /// `registry URL`, or with several URLs all of them and how they were used.
    fn registries(&self) -> String {
        match self.urls.as_slice() {
            [url] => format!("registry {url}"),
            urls => format!("registries {} (round robin per request)", urls.join(", ")),
        }
    }
}

fn fmt2(value: f64) -> String {
    format!("{value:.2}")
}
