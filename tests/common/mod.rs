//! Test support: a real layerstore server on 127.0.0.1 (port 0) over a temporary root, and a
//! minimal HTTP/1.1 client built on hyper. Each test starts its own server and stops it on drop.

#![allow(dead_code)] // each test binary uses a different part

pub mod backend;
pub mod certs;
pub mod faults;
pub mod garage;
pub mod process;
pub mod rng;
pub mod token_server;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use layerstore::http::app::AppState;
use layerstore::http::server::{Limits, Server};
use layerstore::http::token::TokenSigner;
use layerstore::storage::{DriverPath, WalkControl};
use layerstore::store::Store;

/// A running server; dropping it shuts it down.
pub struct TestServer {
    pub addr: SocketAddr,
    pub root: PathBuf,
    /// The server's store (filesystem or S3), for tests that look at or change what is stored.
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// A server over a fresh temporary root.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let mut server = Self::start_on(&root, "test-secret");
        server._dir = Some(dir);
        server
    }

    /// A server over `root` with `secret` (several may share one root).
    pub fn start_on(root: &Path, secret: &str) -> Self {
        let mut state = AppState::new(backend::store_for(root), TokenSigner::new(secret));
        state.body_idle_timeout = Duration::from_secs(10);
        Self::start_with(root, state, Limits::default())
    }

    /// A server with explicit state and limits.
    pub fn start_with(root: &Path, state: AppState, limits: Limits) -> Self {
        let store = state.store.clone();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let server = Server::bind("127.0.0.1:0".parse().unwrap(), state, limits)
                    .await
                    .unwrap();
                addr_tx.send(server.local_addr().unwrap()).unwrap();
                server
                    .run(async {
                        let _ = shutdown_rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        TestServer {
            addr,
            root: root.to_path_buf(),
            store,
            _dir: None,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// Sends one request and waits for the whole answer.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        request(self.addr, method, path, headers, body)
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], b"")
    }

    /// The registry's data directory.
    pub fn v2(&self) -> PathBuf {
        self.root.join("docker/registry/v2")
    }

    /// The stored file at `relative` (below `/docker/registry/v2`), on whatever storage the
    /// server uses.
    pub fn read_stored(&self, relative: &str) -> Vec<u8> {
        self.store.driver().get_content(&v2_path(relative)).unwrap()
    }

    /// Writes a stored file below `/docker/registry/v2` (what another registry would write).
    pub fn write_stored(&self, relative: &str, content: &[u8]) {
        self.store
            .driver()
            .put_content(&v2_path(relative), content)
            .unwrap();
    }

    /// Deletes a stored file or directory below `/docker/registry/v2`.
    pub fn remove_stored(&self, relative: &str) {
        self.store.driver().delete(&v2_path(relative)).unwrap();
    }

    /// Every stored file below `relative` (below `/docker/registry/v2`; `""` for all), as paths
    /// relative to it, sorted.
    pub fn stored_files(&self, relative: &str) -> Vec<String> {
        let base = if relative.is_empty() {
            DriverPath::parse("/docker/registry/v2").unwrap()
        } else {
            v2_path(relative)
        };
        let mut files = Vec::new();
        let walked = self.store.driver().walk(&base, &mut |info| {
            if !info.is_dir {
                let full = info.path.as_str();
                files.push(full[base.as_str().len() + 1..].to_owned());
            }
            Ok(WalkControl::Continue)
        });
        layerstore::storage::missing_is_ok(walked).unwrap();
        files.sort();
        files
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn v2_path(relative: &str) -> DriverPath {
    DriverPath::parse(&format!("/docker/registry/v2/{relative}")).unwrap()
}

/// A complete response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The first OCI error code in a JSON error body.
    pub fn error_code(&self) -> Option<String> {
        let json: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        Some(json["errors"][0]["code"].as_str()?.to_owned())
    }

    /// `Location`, which must be present.
    pub fn location(&self) -> String {
        self.header("location").expect("Location header").to_owned()
    }
}

/// One request on a fresh connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    try_request(addr, method, path, headers, body).unwrap()
}

/// One request on a fresh connection; a connection failure (server gone) is an `Err`.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Reply, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let mut builder = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(path)
            .header("host", addr.to_string());
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(Bytes::copy_from_slice(body)))
            .unwrap();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok(Reply {
            status,
            headers,
            body: body.to_bytes().to_vec(),
        })
    })
}

/// sha256 digest string of `data`.
pub fn sha256(data: &[u8]) -> String {
    layerstore::Digest::sha256(data).to_string()
}

/// Deterministic test content.
pub fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(seed as u32) as u8
                ^ seed
        })
        .collect()
}

/// Every file below `dir`, relative to it.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}
