//! `layerstore bench`: measure any OCI registry's blob throughput, verifying every answer.
//!
//! A run pushes one large blob monolithically and in chunks, pulls it back, hammers it with
//! small random range GETs over many connections, pushes many small blobs concurrently, and
//! times resuming an upload that holds nearly the large blob's size (status + next PATCH).
//! Every reply is checked (status, `Location`, `Range`, `Docker-Content-Digest`, lengths, the
//! SHA-256 of a pull, the bytes of every range), so a fast wrong server fails instead of
//! winning. Content comes from [`content::Content`], a seekable generator seeded randomly per
//! run, so nothing is ever deduplicated across runs, and repositories live under a random
//! `bench-SEED/` prefix.
//!
//! Given several base URLs (instances of one registry sharing a store and a secret), every
//! request goes to the next one in turn (see [`client::Targets`]): each POST, PATCH and PUT of
//! an upload may reach a different instance, which checks that they continue each other's
//! uploads as they must behind a load balancer.
//!
//! The monolithic PUT needs the digest in its URL before the body is sent; the digest of each
//! large blob is therefore computed in an untimed first pass over the generator (memory stays
//! flat: 256 KiB pieces), and the timed pass generates the same bytes again as the body. This
//! keeps SHA-256 out of the client's timed work for pushes, so the client is never the
//! bottleneck of a push. Pulls must hash what arrives; that runs on a separate thread fed by
//! the receiving task, so receiving and hashing overlap.

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

pub mod client;
pub mod content;
mod error;
mod large;
pub mod process;
mod protocol;
mod pull;
mod range_get;
pub mod report;
mod resume;
mod small_push;
pub mod stats;
mod workers;

/// How `https` URLs' certificates are checked ([`BenchOptions::trust`]).
pub use crate::http::tls::ServerTrust;
pub use error::BenchError;
pub use report::{BenchReport, Metrics, Outcome, ScenarioReport};

use client::{Connection, Targets};
use content::{derive_seed, Content};
use process::ServerProcess;

/// One kind of measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Scenario {
    /// POST + one PUT `?digest=` carrying the whole large blob.
    PushMonolithic,
    /// POST + PATCHes with `Content-Range` + PUT `?digest=`.
    PushChunked,
    /// GET of the large blob, SHA-256 verified.
    Pull,
    /// Small random-offset range GETs over many connections.
    RangeGet,
    /// Many small monolithic pushes from concurrent workers.
    SmallPush,
    /// Status + next PATCH of an upload holding nearly `blob_size` bytes.
    PushResume,
}

impl Scenario {
    /// All scenarios, in the order a run performs them.
    pub const ALL: [Scenario; 6] = [
        Scenario::PushMonolithic,
        Scenario::PushChunked,
        Scenario::Pull,
        Scenario::RangeGet,
        Scenario::SmallPush,
        Scenario::PushResume,
    ];

    /// The name used in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::PushMonolithic => "push-monolithic",
            Scenario::PushChunked => "push-chunked",
            Scenario::Pull => "pull",
            Scenario::RangeGet => "range-get",
            Scenario::SmallPush => "small-push",
            Scenario::PushResume => "push-resume",
        }
    }
}

/// What to measure and how hard.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Registry base URLs, `http[s]://HOST[:PORT][/PREFIX]`, all with the same `PREFIX`:
    /// requests go to each in turn (instances of one registry; one URL for most runs).
    pub urls: Vec<String>,
    /// Which certificates `https` URLs may present (`CaFile`: signed by that CA or a system
    /// one); `None` refuses `https` URLs. The client offers HTTP/1.1 only.
    pub trust: Option<ServerTrust>,
    /// Scenarios to run (run in [`Scenario::ALL`] order whatever the order here).
    pub scenarios: Vec<Scenario>,
    /// Size of the large blob.
    pub blob_size: u64,
    /// PATCH size of the chunked push.
    pub chunk_size: u64,
    /// Size of each range GET.
    pub range_size: u64,
    /// Connections for range GETs.
    pub range_connections: usize,
    /// How long range GETs run.
    pub range_duration: Duration,
    /// Size of each small blob.
    pub small_size: u64,
    /// Concurrent small-push workers.
    pub small_workers: usize,
    /// How long small pushes run.
    pub small_duration: Duration,
    /// Server process to account CPU and RSS to (Linux `/proc`).
    pub server_pid: Option<u32>,
    /// Content seed; random when `None` (set it only to reproduce a run: a repeated seed
    /// pushes blobs the server already has).
    pub seed: Option<u64>,
    /// Draw progress bars (on a terminal).
    pub progress: bool,
}

impl BenchOptions {
    /// The defaults of the issue: 1 GiB blob, 16 MiB chunks, 4 KiB ranges × 32 connections
    /// × 10 s, 64 KiB small blobs × 8 workers × 10 s, every scenario.
    /// More URLs to rotate among can be pushed onto [`BenchOptions::urls`].
    pub fn new(url: impl Into<String>) -> Self {
        BenchOptions {
            urls: vec![url.into()],
            trust: None,
            scenarios: Scenario::ALL.to_vec(),
            blob_size: 1 << 30,
            chunk_size: 16 << 20,
            range_size: 4096,
            range_connections: 32,
            range_duration: Duration::from_secs(10),
            small_size: 64 << 10,
            small_workers: 8,
            small_duration: Duration::from_secs(10),
            server_pid: None,
            seed: None,
            progress: false,
        }
    }

    fn validate(&self) -> Result<(), BenchError> {
        let checks: [(bool, &'static str, &'static str); 6] = [
            (self.blob_size == 0, "blob size", "must be at least 1 byte"),
            (
                self.chunk_size == 0,
                "chunk size",
                "must be at least 1 byte",
            ),
            (
                self.range_size == 0,
                "range size",
                "must be at least 1 byte",
            ),
            (
                self.small_size == 0 || self.small_size > 1 << 30,
                "small size",
                "must be 1 byte to 1 GiB (it is buffered)",
            ),
            (
                self.range_connections == 0,
                "connections",
                "must be at least 1",
            ),
            (self.small_workers == 0, "workers", "must be at least 1"),
        ];
        match checks.iter().find(|(bad, _, _)| *bad) {
            Some(&(_, option, reason)) => Err(BenchError::InvalidOption { option, reason }),
            None => Ok(()),
        }
    }

    fn wants(&self, scenario: Scenario) -> bool {
        self.scenarios.contains(&scenario)
    }
}

/// The large blob of a run and where it is pushed.
#[derive(Debug, Clone)]
struct LargeBlob {
    content: Content,
    digest: crate::digest::Digest,
    repository: String,
}

/// Everything a scenario needs.
#[derive(Debug)]
struct Run {
    options: BenchOptions,
    targets: Arc<Targets>,
    seed: u64,
    prefix: String,
    server: Option<ServerProcess>,
}

/// Runs the selected scenarios against `options.urls` and reports each one.
///
/// Setup problems (bad URL or option, unresolvable host, unreadable `--server-pid`) are
/// errors; a scenario whose answers fail verification is reported as failed and the run goes
/// on with the scenarios that do not depend on it.
///
/// ```
/// # use std::time::Duration;
/// # use layerstore::http::{app::AppState, server::{Limits, Server}, token::TokenSigner};
/// use layerstore::bench::{self, BenchOptions, Scenario};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = layerstore::store::Store::filesystem(dir.path());
/// # let state = AppState::new(store, TokenSigner::new("s"));
/// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), state, Limits::default()).await.unwrap();
/// # let addr = server.local_addr().unwrap();
/// # tokio::spawn(server.run(std::future::pending()));
/// let mut options = BenchOptions::new(format!("http://{addr}"));
/// options.blob_size = 1 << 20;
/// options.chunk_size = 256 << 10;
/// options.scenarios = vec![Scenario::PushChunked, Scenario::Pull];
/// let report = bench::run(options).await.unwrap();
/// assert!(report.passed(), "{}", report.to_table());
/// # }
/// ```
pub async fn run(options: BenchOptions) -> Result<BenchReport, BenchError> {
    options.validate()?;
    let targets = Targets::resolve(&options.urls, options.trust.as_ref()).await?;
    let server = options.server_pid.map(ServerProcess::new).transpose()?;
    let seed = match options.seed {
        Some(seed) => seed,
        None => random_seed(),
    };
    let run = Run {
        targets,
        seed,
        prefix: format!("bench-{seed:016x}"),
        server,
        options,
    };
    let scenarios = run.all_scenarios().await;
    Ok(BenchReport {
        urls: run.options.urls.clone(),
        seed: format!("{seed:016x}"),
        repository_prefix: run.prefix.clone(),
        scenarios,
    })
}

/// A fresh seed from the OS; the clock if the OS has no randomness to give.
fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        return derive_seed(nanos as u64, u64::from(std::process::id()));
    }
    u64::from_le_bytes(bytes)
}

impl Run {
    async fn all_scenarios(&self) -> Vec<ScenarioReport> {
        let mut reports = Vec::new();
        let wants_large = [Scenario::PushMonolithic, Scenario::Pull, Scenario::RangeGet]
            .iter()
            .any(|s| self.options.wants(*s));
        // Err holds why pull and range-get cannot run (never read when they are not wanted).
        let large = if wants_large {
            self.push_large(&mut reports).await
        } else {
            Err(String::new())
        };
        if self.options.wants(Scenario::PushChunked) {
            let outcome = self.chunked().await;
            reports.push(self.report(Scenario::PushChunked, outcome));
        }
        for scenario in [Scenario::Pull, Scenario::RangeGet] {
            if !self.options.wants(scenario) {
                continue;
            }
            let outcome = match &large {
                Ok(blob) => self.read_scenario(scenario, blob).await,
                Err(reason) => Outcome::Skipped {
                    reason: reason.clone(),
                },
            };
            reports.push(ScenarioReport { scenario, outcome });
        }
        if self.options.wants(Scenario::SmallPush) {
            let outcome = self
                .measured(small_push::run(
                    Arc::clone(&self.targets),
                    format!("{}/small", self.prefix),
                    derive_seed(self.seed, 2),
                    &self.options,
                    self.spinner("small pushes"),
                ))
                .await;
            reports.push(self.report(Scenario::SmallPush, outcome));
        }
        if self.options.wants(Scenario::PushResume) {
            let outcome = self.resume().await;
            reports.push(self.report(Scenario::PushResume, outcome));
        }
        reports
    }

    /// The resume scenario on a blob of its own (server CPU and RSS are not sampled: the
    /// untimed setup would dominate them).
    async fn resume(&self) -> Result<Metrics, BenchError> {
        let blob = self.prepare_blob(4, "resume").await?;
        let mut conn = Connection::rotating(Arc::clone(&self.targets));
        let bar = self.bar(blob.content.len(), "resume (setup)");
        resume::run(&mut conn, &blob, self.options.chunk_size, bar).await
    }

    /// Prepares and pushes the large blob, timed when `push-monolithic` was asked for.
    async fn push_large(&self, reports: &mut Vec<ScenarioReport>) -> Result<LargeBlob, String> {
        let blob = self
            .prepare_blob(0, "large")
            .await
            .map_err(|e| e.to_string())?;
        let timed = self.options.wants(Scenario::PushMonolithic);
        let mut conn = Connection::rotating(Arc::clone(&self.targets));
        let bar = self.bar(blob.content.len(), "monolithic push");
        let result = if timed {
            self.measured(large::monolithic(&mut conn, &blob, bar))
                .await
        } else {
            large::monolithic(&mut conn, &blob, bar).await
        };
        let pushed = result
            .as_ref()
            .map(|_| ())
            .map_err(|e| format!("the large blob was not pushed: {e}"));
        if timed {
            reports.push(self.report(Scenario::PushMonolithic, result));
        }
        pushed.map(|()| blob)
    }

    async fn chunked(&self) -> Result<Metrics, BenchError> {
        let blob = self.prepare_blob(1, "chunked").await?;
        let mut conn = Connection::rotating(Arc::clone(&self.targets));
        let bar = self.bar(blob.content.len(), "chunked push");
        self.measured(large::chunked(
            &mut conn,
            &blob,
            self.options.chunk_size,
            bar,
        ))
        .await
    }

    async fn read_scenario(&self, scenario: Scenario, blob: &LargeBlob) -> Outcome {
        let result = if scenario == Scenario::Pull {
            let mut conn = Connection::rotating(Arc::clone(&self.targets));
            let bar = self.bar(blob.content.len(), "pull");
            self.measured(pull::run(&mut conn, blob, bar)).await
        } else {
            self.measured(range_get::run(
                Arc::clone(&self.targets),
                blob.clone(),
                derive_seed(self.seed, 3),
                &self.options,
                self.spinner("range GETs"),
            ))
            .await
        };
        outcome(result)
    }

    /// The blob of sub-seed `index`, with its digest computed off the async threads.
    async fn prepare_blob(&self, index: u64, name: &str) -> Result<LargeBlob, BenchError> {
        let content = Content::new(derive_seed(self.seed, index), self.options.blob_size);
        let digest = tokio::task::spawn_blocking(move || content.sha256()).await?;
        Ok(LargeBlob {
            content,
            digest,
            repository: format!("{}/{name}", self.prefix),
        })
    }

    /// Runs a scenario and, with `--server-pid`, adds the server's CPU and peak RSS.
    /// (Futures do nothing until polled, so the scenario starts after the first sample.)
    async fn measured(
        &self,
        scenario: impl std::future::Future<Output = Result<Metrics, BenchError>>,
    ) -> Result<Metrics, BenchError> {
        let Some(server) = self.server else {
            return scenario.await;
        };
        let peak_reset = server.reset_peak();
        let before = server.sample()?;
        let mut metrics = scenario.await?;
        metrics.server = Some(server.usage_since(before, metrics.bytes, peak_reset)?);
        Ok(metrics)
    }

    fn report(&self, scenario: Scenario, result: Result<Metrics, BenchError>) -> ScenarioReport {
        ScenarioReport {
            scenario,
            outcome: outcome(result),
        }
    }

    fn bar(&self, len: u64, message: &'static str) -> ProgressBar {
        if !self.options.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len).with_message(message);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:>16} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    }

    fn spinner(&self, message: &'static str) -> ProgressBar {
        if !self.options.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner().with_message(message);
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} {msg:>16} {pos} requests {per_sec}")
        {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}

fn outcome(result: Result<Metrics, BenchError>) -> Outcome {
    match result {
        Ok(metrics) => Outcome::Passed(metrics),
        Err(error) => Outcome::Failed {
            error: error.to_string(),
        },
    }
}
