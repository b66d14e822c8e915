//! The HTTP layer under the client: one pooled hyper client (HTTP/1.1 and HTTP/2 by ALPN) over
//! rustls, a timeout on every response head, and request bodies that say whether they can be
//! sent again (a retry of a streamed upload would send nothing).
//!
//! hyper rather than reqwest: the crate already builds on hyper 1 and rustls for its server,
//! so the client adds only hyper-util's pool and hyper-rustls' connector, not a second stack.

use std::convert::Infallible;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::error::ClientError;

/// The body type of every request.
pub type RequestBody = BoxBody<Bytes, io::Error>;

/// What a request sends, and whether it can be sent twice.
pub enum Payload {
    /// No body.
    Empty,
    /// Bytes in memory: replayable, so the request can be retried.
    Bytes(Bytes),
    /// A stream (a file being uploaded): sent once; a retry is the caller's business (an upload
    /// resumes from the registry's offset instead).
    Stream(RequestBody),
}

impl Payload {
    /// True when the payload can be sent again.
    pub fn is_replayable(&self) -> bool {
        !matches!(self, Payload::Stream(_))
    }

    /// The body for one attempt; a stream is taken (later attempts get nothing).
    pub(crate) fn body(&mut self) -> RequestBody {
        match self {
            Payload::Empty => Empty::new().map_err(never).boxed(),
            Payload::Bytes(bytes) => Full::new(bytes.clone()).map_err(never).boxed(),
            Payload::Stream(_) => match std::mem::replace(self, Payload::Empty) {
                Payload::Stream(body) => body,
                _ => unreachable!("matched a stream"),
            },
        }
    }

    /// The length, when known in advance.
    pub(crate) fn len(&self) -> Option<u64> {
        match self {
            Payload::Empty => Some(0),
            Payload::Bytes(bytes) => Some(bytes.len() as u64),
            Payload::Stream(_) => None,
        }
    }
}

fn never(e: Infallible) -> io::Error {
    match e {}
}

/// A pooled HTTP(S) client.
#[derive(Clone)]
pub struct Transport {
    client: Client<HttpsConnector<HttpConnector>, RequestBody>,
    timeout: Duration,
    /// How the pool was built, so [`Transport::separate_pool`] can build another alike.
    #[cfg_attr(not(feature = "bench"), allow(dead_code))] // only the benchmark client uses it
    settings: PoolSettings,
}

/// What a pool is built from.
#[derive(Clone)]
pub(crate) struct PoolSettings {
    /// TLS for https URLs (ALPN set by the builder from `http2`).
    pub tls: rustls::ClientConfig,
    /// Longest wait for a TCP connection.
    pub connect_timeout: Duration,
    /// Idle connections kept per host.
    pub max_idle_per_host: usize,
    /// Offer HTTP/2 by ALPN (else HTTP/1.1 only).
    pub http2: bool,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A client whose pool is built as `settings` say (plain http URLs are allowed too, https
    /// ones use `settings.tls`), waiting at most `timeout` for each response head.
    pub(crate) fn with_settings(settings: PoolSettings, timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.connect_timeout));
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(settings.tls.clone())
            .https_or_http()
            .enable_http1();
        let https = if settings.http2 {
            builder.enable_http2().wrap_connector(http)
        } else {
            builder.wrap_connector(http)
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(settings.max_idle_per_host)
            .http2_initial_stream_window_size(4 << 20)
            .http2_initial_connection_window_size(8 << 20)
            .build(https);
        Transport {
            client,
            timeout,
            settings,
        }
    }

    /// A client with the same settings and a pool of its own: its connections are not
    /// shared with this one's (a benchmark worker that must own its sockets).
    #[cfg_attr(not(feature = "bench"), allow(dead_code))] // only the benchmark client uses it
    pub(crate) fn separate_pool(&self) -> Self {
        Self::with_settings(self.settings.clone(), self.timeout)
    }

    /// Sends one request and waits for its response head.
    pub async fn send(
        &self,
        request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, ClientError> {
        self.send_within(request, self.timeout).await
    }

    /// Sends one request and waits at most `timeout` for its response head (a large upload
    /// is answered only after its whole body was sent).
    pub(crate) async fn send_within(
        &self,
        request: Request<RequestBody>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, ClientError> {
        let method = request.method().to_string();
        let url = request.uri().to_string();
        match tokio::time::timeout(timeout, self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(ClientError::Transport {
                method,
                url,
                reason: error_chain(&e),
            }),
            Err(_) => Err(ClientError::Timeout {
                method,
                url,
                timeout,
            }),
        }
    }
}

/// An error and its causes, joined (hyper's top-level messages alone say little).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads a whole (small) response body, refusing more than `limit` bytes.
pub async fn read_body(
    response: Response<Incoming>,
    limit: usize,
    what: &str,
) -> Result<Bytes, ClientError> {
    let mut body = response.into_body();
    let mut bytes = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ClientError::Protocol(format!("{what}: {}", error_chain(&e))))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limit {
                return Err(ClientError::Protocol(format!(
                    "{what}: larger than {limit} bytes"
                )));
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes.freeze())
}
