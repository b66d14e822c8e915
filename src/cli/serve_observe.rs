//! `serve`'s observability settings: the metrics listener (`/metrics`, `/healthz`, `/readyz`)
//! and the log format, each from the command line, else the environment, else the config file.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use serde::Deserialize;

use layerstore::http::ops::{OpsHandle, OpsServer};
use layerstore::metrics::Metrics;
use layerstore::storage::StorageDriver;

/// The observability flags of `serve`.
#[derive(Debug, Args)]
pub struct ObserveArgs {
    /// Serve Prometheus metrics at /metrics, liveness at /healthz and readiness (the storage
    /// answers) at /readyz on this address, apart from the registry's [default: off].
    #[arg(long, env = "LAYERSTORE_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Log format on stderr: text, or json (one object per line). Each request's lines carry
    /// its id (also sent back as X-Request-Id); RUST_LOG filters as usual [default: text].
    #[arg(long, env = "LAYERSTORE_LOG_FORMAT", value_name = "FORMAT", value_enum)]
    log_format: Option<LogFormat>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (with colours on a terminal).
    #[default]
    Text,
    /// One JSON object per line: the event's fields at the top level, the request id in
    /// `span.id`.
    Json,
}

impl ObserveArgs {
    /// The metrics address: the flag (or its variable), else the config file's `metrics_listen`.
    pub fn metrics_listen(&self, file: Option<SocketAddr>) -> Option<SocketAddr> {
        self.metrics_listen.or(file)
    }

    /// The log format: the flag (or its variable), else the config file's `log_format`.
    pub fn log_format(&self, file: Option<LogFormat>) -> LogFormat {
        self.log_format.or(file).unwrap_or_default()
    }
}

/// Logs to stderr in `format`, filtered by `RUST_LOG` (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// The operations listener when one is configured.
#[derive(Debug)]
pub struct Ops(Option<OpsHandle>);

impl Ops {
    /// Binds and starts the listener on `listen`, if any, and logs its address.
    pub async fn start(
        listen: Option<SocketAddr>,
        metrics: Arc<Metrics>,
        driver: Arc<dyn StorageDriver>,
    ) -> Result<Ops, String> {
        let Some(listen) = listen else {
            return Ok(Ops(None));
        };
        let server = OpsServer::bind(listen, metrics, driver)
            .await
            .map_err(|e| format!("metrics listener on {listen}: {e}"))?;
        let bound = server.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(metrics_listen = %bound, "serving /metrics, /healthz and /readyz");
        Ok(Ops(Some(server.spawn())))
    }

    /// Readiness fails from now on: the server is shutting down.
    pub fn set_draining(&self) {
        if let Some(ops) = &self.0 {
            ops.set_draining();
        }
    }

    /// Stops the listener.
    pub async fn stop(self) {
        if let Some(ops) = self.0 {
            ops.stop().await;
        }
    }
}
