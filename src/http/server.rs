//! The listener: accepts connections, serves HTTP/1.1 (and HTTP/2 over TLS) with hyper, and
//! shuts down gracefully.
//!
//! Limits that keep hostile clients from hurting others: a header read timeout (a slowloris
//! connection that never finishes its headers is dropped), a cap on the header buffer, a body
//! idle timeout (in the upload handler), and a cap on open connections beyond which new ones
//! wait in the kernel's accept queue instead of taking memory here.
//!
//! With [`Server::with_tls`], each connection's TLS handshake runs in that connection's own
//! task, bounded by the header read timeout: a client that never finishes its handshake costs
//! one task and is dropped, and cannot delay the accept loop (a handshake there would stall
//! every other client behind it). The protocol then comes from ALPN: `h2` is served as
//! HTTP/2, anything else (or no ALPN) as HTTP/1.1. Plain TCP is HTTP/1.1 only: no client of a
//! registry speaks HTTP/2 without TLS (h2c), and telling the two apart would mean reading the
//! first bytes before hyper's header timer starts, reopening the door to idle connections.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::app::ClientAddr;
use super::service::RegistryService;
use super::tls::{ServerTls, ALPN_H2};

/// Connection-level limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time a client has to send a complete request head (and, with TLS, to finish its
    /// handshake).
    pub header_read_timeout: Duration,
    /// Largest request head (request line plus headers) accepted, in bytes; a larger one is
    /// answered 431.
    pub max_header_bytes: usize,
    /// Largest read from an HTTP/1 connection, in bytes: the cap on hyper's read buffer, which
    /// grows to it only while a body streams in. Reads of 1 MiB rather than 64 KiB cut the
    /// server's CPU per GiB pushed by 15% (fewer `recv` calls and fewer ACKs on loopback;
    /// `docs/benchmarks.md`). hyper refuses a head that fills this buffer; a smaller head over
    /// `max_header_bytes` is refused with 431 before the registry sees it.
    pub read_buffer_bytes: usize,
    /// Most connections served at once.
    pub max_connections: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            read_buffer_bytes: 1 << 20,
            max_connections: 4096,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// HTTP/2 flow control for large uploads. A stream sends at most one window per round trip, so
/// hyper's 1 MiB default caps an upload at 1 MiB per RTT (34 MB/s at a 20 ms RTT); 8 MiB per
/// stream (16 MiB per connection, so two uploads at full speed do not starve each other) gave
/// 207 MB/s there. Frames of up to 64 KiB instead of 16 KiB: the upload handler passes frames
/// one by one, and on loopback a push went from 342 to 482 MB/s (HTTP/1.1 over the same TLS:
/// 491). 64 KiB is also HTTP/1.1's largest frame, which bounds an upload's queue in the handler
/// at 1 MiB (256 KiB frames pushed 586 MB/s but would make that 4 MiB). The cost of the window:
/// a connection may hold up to 16 MiB that its requests have not read yet.
const H2_STREAM_WINDOW: u32 = 8 << 20;
const H2_CONNECTION_WINDOW: u32 = 16 << 20;
const H2_MAX_FRAME: u32 = 64 << 10;
/// Concurrent requests on one HTTP/2 connection (RFC 9113 recommends at least 100). Each may
/// hold an upload writer, so this multiplies [`Limits::max_connections`].
const H2_MAX_STREAMS: u32 = 100;
/// HTTP/2 keep-alive pings, so a peer that vanished without closing frees its connection.
const H2_PING_INTERVAL: Duration = Duration::from_secs(60);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// A bound, not yet serving, registry server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    registry: RegistryService,
    limits: Limits,
    tls: Option<ServerTls>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port; see [`Server::local_addr`]) to serve
    /// `registry` (a [`RegistryService`], or the [`AppState`](super::app::AppState) to make one of).
    /// Serves plain HTTP/1.1 unless [`Server::with_tls`] is called.
    pub async fn bind(
        addr: SocketAddr,
        registry: impl Into<RegistryService>,
        limits: Limits,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Server {
            listener,
            registry: registry.into(),
            limits,
            tls: None,
        })
    }

    /// Serves HTTPS with `tls` instead (HTTP/2 or HTTP/1.1 by ALPN). Keep a clone of `tls` to
    /// [`ServerTls::reload`] the certificate while serving.
    pub fn with_tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests finish
    /// (up to the grace period) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let graceful = GracefulShutdown::new();
        let permits = Arc::new(Semaphore::new(self.limits.max_connections));
        let shared = Arc::new(Shared {
            registry: self.registry,
            http1: builder(&self.limits).http1_only(),
            http2: builder(&self.limits).http2_only(),
            tls: self.tls.as_ref().map(ServerTls::acceptor),
            handshake_timeout: self.limits.header_read_timeout,
            max_header_bytes: self.limits.max_header_bytes,
        });
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                permit = Arc::clone(&permits).acquire_owned() => permit.expect("semaphore is never closed"),
                () = &mut shutdown => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let watcher = graceful.watcher();
            tokio::spawn(Arc::clone(&shared).serve(stream, peer, watcher, permit));
        }
        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections closed"),
            () = tokio::time::sleep(self.limits.shutdown_grace) => {
                tracing::warn!("grace period over, closing remaining connections");
            }
        }
        Ok(())
    }
}

/// One connection builder for both protocols, with the limits applied.
fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(
            limits
                .read_buffer_bytes
                .max(limits.max_header_bytes)
                .max(8192),
        )
        .writev(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .max_frame_size(H2_MAX_FRAME)
        .max_concurrent_streams(H2_MAX_STREAMS)
        .keep_alive_interval(H2_PING_INTERVAL)
        .keep_alive_timeout(H2_PING_TIMEOUT);
    builder
}

/// What every connection task needs.
struct Shared {
    registry: RegistryService,
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
    max_header_bytes: usize,
}

impl Shared {
    /// Serves one accepted connection to its end; the permit is its slot under
    /// [`Limits::max_connections`].
    async fn serve(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        watcher: Watcher,
        _permit: OwnedSemaphorePermit,
    ) {
        let result = match &self.tls {
            None => self.http(&self.http1, stream, peer, watcher).await,
            Some(acceptor) => {
                let handshake = acceptor.accept(stream);
                let stream = match tokio::time::timeout(self.handshake_timeout, handshake).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let h2 = stream.get_ref().1.alpn_protocol() == Some(ALPN_H2);
                let builder = if h2 { &self.http2 } else { &self.http1 };
                self.http(builder, stream, peer, watcher).await
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }

    /// Serves HTTP on `io` with `builder`'s protocol until the connection ends.
    async fn http<I>(
        &self,
        builder: &auto::Builder<TokioExecutor>,
        io: I,
        peer: SocketAddr,
        watcher: Watcher,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let registry = self.registry.clone();
        let max_header_bytes = self.max_header_bytes;
        let service = service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ClientAddr(peer));
            let registry = registry.clone();
            async move {
                let response = match head_too_large(&request, max_header_bytes) {
                    true => header_fields_too_large(),
                    false => registry.handle(request).await,
                };
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let connection = builder.serve_connection(TokioIo::new(io), service);
        watcher.watch(connection).await
    }
}

/// Whether `request`'s head (request line and header fields, as sent, give or take the
/// separators) is over `limit` bytes. hyper bounds the head only by its read buffer, which is
/// larger ([`Limits::read_buffer_bytes`]).
fn head_too_large<B>(request: &hyper::Request<B>, limit: usize) -> bool {
    let target = request
        .uri()
        .path_and_query()
        .map_or(1, |p| p.as_str().len());
    let line = request.method().as_str().len() + target + 12;
    let fields: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    line + fields > limit
}

/// 431 with no body, as hyper answers a head that overflows its buffer.
fn header_fields_too_large() -> hyper::Response<super::body::Body> {
    let mut response = hyper::Response::new(super::body::empty());
    *response.status_mut() = hyper::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
    response
}
