//! The operations listener: `GET /metrics`, `/healthz` and `/readyz` on their own address
//! (`serve --metrics-listen`), apart from the registry's, so they can stay off the public
//! network and no registry client can reach them.
//!
//! - `/metrics`: [`Metrics::encode`] in the Prometheus text format 0.0.4.
//! - `/healthz` (liveness): 200 `ok` while the process answers at all.
//! - `/readyz` (readiness): 200 `ready` when a cheap storage call — a listing of the storage's
//!   root, on the blocking pool — succeeds within [`READY_TIMEOUT`], else 503 with the error. An
//!   empty storage (the root lists as "not found", as an empty S3 prefix does) is ready. One
//!   probe runs at a time: while a storage call hangs, later probes wait for it (and time out)
//!   instead of piling up blocking threads. Once [`OpsHandle::set_draining`] is called (the
//!   server is shutting down) it is 503 `shutting down`, so a load balancer stops sending
//!   new requests while in-flight ones finish.
//!
//! Anything else is 404. HTTP/1.1 only, with a header read timeout and at most
//! [`MAX_CONNECTIONS`] connections: it is a scrape target, not a public server.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};

use super::body::{self, Body};
use crate::metrics::{Metrics, CONTENT_TYPE as METRICS_CONTENT_TYPE};
use crate::storage::{DriverPath, StorageDriver, StorageError};

/// Longest a readiness probe waits for the storage.
pub const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 64;

const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound, not yet serving, operations listener.
#[derive(Debug)]
pub struct OpsServer {
    listener: TcpListener,
    state: Arc<OpsState>,
}

#[derive(Debug)]
struct OpsState {
    metrics: Arc<Metrics>,
    driver: Arc<dyn StorageDriver>,
    /// One readiness probe at a time.
    probe: tokio::sync::Mutex<()>,
    draining: AtomicBool,
}

impl OpsServer {
    /// Binds `addr` (port 0 picks a free port) for `metrics` and a storage `driver`.
    pub async fn bind(
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        driver: Arc<dyn StorageDriver>,
    ) -> io::Result<Self> {
        Ok(OpsServer {
            listener: TcpListener::bind(addr).await?,
            state: Arc::new(OpsState {
                metrics,
                driver,
                probe: tokio::sync::Mutex::new(()),
                draining: AtomicBool::new(false),
            }),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves on the current tokio runtime until [`OpsHandle::stop`] (or the handle is dropped).
    pub fn spawn(self) -> OpsHandle {
        let (stop, stopped) = oneshot::channel();
        let state = Arc::clone(&self.state);
        let task = tokio::spawn(self.run(async {
            let _ = stopped.await;
        }));
        OpsHandle {
            state,
            stop: Some(stop),
            task,
        }
    }

    async fn run(self, shutdown: impl Future<Output = ()>) {
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .keep_alive(true);
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics listener: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => return,
            };
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                continue; // over the cap: dropping the stream closes it
            };
            let state = Arc::clone(&self.state);
            let service = service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, std::convert::Infallible>(answer(&state, request).await) }
            });
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(%peer, error = %e, "metrics connection ended with an error");
                }
                drop(permit);
            });
        }
    }
}

/// A running operations listener.
#[derive(Debug)]
pub struct OpsHandle {
    state: Arc<OpsState>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl OpsHandle {
    /// From now on `/readyz` answers 503 `shutting down`.
    pub fn set_draining(&self) {
        self.state.draining.store(true, Ordering::Relaxed);
    }

    /// Stops accepting connections and waits for the accept loop to end (open connections
    /// finish on their own).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for OpsHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn answer(state: &OpsState, request: Request<Incoming>) -> Response<Body> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match request.uri().path() {
        "/metrics" => {
            let mut response = Response::new(body::full(state.metrics.encode()));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => match readiness(state).await {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, &format!("{why}\n")),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Why the server is not ready, if it is not.
async fn readiness(state: &OpsState) -> Result<(), String> {
    if state.draining.load(Ordering::Relaxed) {
        return Err("shutting down".to_owned());
    }
    let probe = async {
        let _one_at_a_time = state.probe.lock().await;
        let driver = Arc::clone(&state.driver);
        tokio::task::spawn_blocking(move || storage_reachable(driver.as_ref()))
            .await
            .map_err(|e| format!("storage probe failed: {e}"))?
    };
    match tokio::time::timeout(READY_TIMEOUT, probe).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "storage did not answer within {} s",
            READY_TIMEOUT.as_secs()
        )),
    }
}

/// A listing of the storage's root: the cheapest call that reaches the backend on every driver.
pub fn storage_reachable(driver: &dyn StorageDriver) -> Result<(), String> {
    match driver.list(&DriverPath::root()) {
        Ok(_) | Err(StorageError::NotFound(_)) => Ok(()),
        Err(e) => Err(format!("storage unreachable: {e}")),
    }
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(body::full(message.to_owned()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FilesystemDriver;

    #[test]
    fn a_root_that_is_a_file_is_not_reachable() {
        let dir = tempfile::tempdir().unwrap();
        assert!(storage_reachable(&FilesystemDriver::new(dir.path())).is_ok());
        let empty = dir.path().join("empty");
        assert!(storage_reachable(&FilesystemDriver::new(&empty)).is_ok());
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let error = storage_reachable(&FilesystemDriver::new(&file)).unwrap_err();
        assert!(error.contains("not a directory"), "{error}");
    }
}
