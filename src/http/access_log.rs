//! The access log line and the request metrics, written when a response is over.
//!
//! A response is over when hyper has taken its last body frame, or dropped the body (client
//! gone, HEAD): the response body is wrapped in an `ObservedBody` that counts the bytes
//! handed to hyper and logs then, so the bytes and the duration are those of the whole
//! transfer, not of the handler. Request body bytes are counted by the handlers that read a
//! body (`count_received`) into a counter the request's task holds (a task-local, so no
//! handler signature carries it).
//!
//! The line goes to target `layerstore::access` at INFO, inside the `request{id=…}` span that
//! wraps the whole request, so it and every other event of the request carry the id. Logged:
//! method, route kind, repository, path (without the query: it can hold upload state tokens;
//! hyper admits no space or control character in a path, so it cannot break a text line),
//! status, bytes both ways, duration, client address, the id again (so the line keeps it even
//! under a `RUST_LOG` that leaves the span out), and whether the body was sent to its end.
//! Never a header.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as _, Frame, SizeHint};
use hyper::{Method, Request, Response};
use tracing::Instrument;

use super::body::Body;
use super::request_id::{self, RequestId};
use super::routes::{Route, RouteError};
use crate::metrics::Metrics;

tokio::task_local! {
    /// Request body bytes received by the current request.
    static RECEIVED: Arc<AtomicU64>;
}

/// Adds `bytes` to the current request's received bytes (nothing outside a request).
pub(crate) fn count_received(bytes: usize) {
    let _ = RECEIVED.try_with(|received| received.fetch_add(bytes as u64, Ordering::Relaxed));
}

/// The metrics label of a route: its kind, never a name or digest.
pub fn route_kind(route: &Result<Route, RouteError>) -> &'static str {
    match route {
        Ok(Route::Base) => "base",
        Ok(Route::Catalog) => "catalog",
        Ok(Route::Tags { .. }) => "tags",
        Ok(Route::Manifest { .. }) => "manifest",
        Ok(Route::Blob { .. }) => "blob",
        Ok(Route::UploadStart { .. } | Route::Upload { .. }) => "blob_upload",
        Ok(Route::Referrers { .. }) => "referrers",
        Err(_) => "unknown",
    }
}

fn repository(route: &Result<Route, RouteError>) -> Option<String> {
    match route.as_ref().ok()? {
        Route::Base | Route::Catalog => None,
        Route::Tags { name }
        | Route::Manifest { name, .. }
        | Route::Blob { name, .. }
        | Route::UploadStart { name }
        | Route::Upload { name, .. }
        | Route::Referrers { name, .. } => Some(name.to_string()),
    }
}

/// One request being answered: what its log line and metrics will say.
#[derive(Debug)]
pub(crate) struct RequestRecord {
    id: RequestId,
    span: tracing::Span,
    method: Method,
    route: &'static str,
    repository: Option<String>,
    path: String,
    peer: Option<SocketAddr>,
    started: Instant,
    received: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
}

impl RequestRecord {
    /// Starts the record of `request` (routed as `route`) from `peer` (when known).
    pub(crate) fn start<B>(
        metrics: &Arc<Metrics>,
        request: &Request<B>,
        route: &Result<Route, RouteError>,
        peer: Option<SocketAddr>,
    ) -> Self {
        let id = RequestId::from_headers(request.headers());
        let span = tracing::info_span!(target: "layerstore::access", "request", id = %id);
        RequestRecord {
            span,
            id,
            method: request.method().clone(),
            route: route_kind(route),
            repository: repository(route),
            path: request.uri().path().to_owned(),
            peer,
            started: Instant::now(),
            received: Arc::default(),
            metrics: Arc::clone(metrics),
        }
    }

    /// The request's id (its `X-Request-Id`).
    pub(crate) fn id(&self) -> &str {
        self.id.as_str()
    }

    /// Runs the request's handling inside its span, with its received-bytes counter.
    pub(crate) async fn scope<F: std::future::Future>(&self, handling: F) -> F::Output {
        RECEIVED
            .scope(
                Arc::clone(&self.received),
                handling.instrument(self.span.clone()),
            )
            .await
    }

    /// Stamps `X-Request-Id` on the response and wraps its body so that the line is logged
    /// and the metrics recorded when the body is over.
    pub(crate) fn finish(self, mut response: Response<Body>) -> Response<Body> {
        response
            .headers_mut()
            .insert(request_id::HEADER, self.id.header_value());
        let status = response.status().as_u16();
        response.map(|inner| {
            BodyExt::boxed(ObservedBody {
                inner,
                sent: 0,
                pending: Some((self, status)),
            })
        })
    }

    fn log(self, status: u16, sent: u64, complete: bool) {
        let elapsed = self.started.elapsed();
        let received = self.received.load(Ordering::Relaxed);
        self.metrics
            .observe_request(self.route, self.method.as_str(), status, elapsed);
        self.metrics.add_bytes_out(self.route, sent);
        self.metrics.add_bytes_in(self.route, received);
        let _entered = self.span.enter();
        tracing::info!(
            target: "layerstore::access",
            method = %self.method,
            route = %self.route,
            repository = self.repository.as_deref().map(tracing::field::display),
            path = %self.path,
            status,
            bytes_out = sent,
            bytes_in = received,
            duration_ms = elapsed.as_micros() as f64 / 1000.0,
            peer = self.peer.map(tracing::field::display),
            request_id = %self.id,
            complete,
            "access"
        );
    }
}

/// A response body that logs its request when it ends or is dropped.
struct ObservedBody {
    inner: Body,
    sent: u64,
    /// The record and the status, until logged.
    pending: Option<(RequestRecord, u16)>,
}

impl ObservedBody {
    fn log(&mut self, complete: bool) {
        if let Some((record, status)) = self.pending.take() {
            record.log(status, self.sent, complete);
        }
    }
}

impl hyper::body::Body for ObservedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                }
            }
            Poll::Ready(Some(Err(_))) => this.log(false),
            Poll::Ready(None) => this.log(true),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        // hyper drops a body without polling it for HEAD, and stops polling one that says it
        // has ended: both are complete. Anything else dropped early was cut off.
        let head = matches!(&self.pending, Some((record, _)) if record.method == Method::HEAD);
        let complete = head || self.inner.is_end_stream();
        self.log(complete);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_kinds_never_carry_names() {
        for (path, kind, repo) in [
            ("/v2/", "base", None),
            ("/v2/_catalog", "catalog", None),
            ("/v2/a/b/tags/list", "tags", Some("a/b")),
            ("/v2/a/manifests/latest", "manifest", Some("a")),
            ("/v2/a/blobs/uploads/", "blob_upload", Some("a")),
            ("/v2/A/tags/list", "unknown", None),
            ("/nope", "unknown", None),
        ] {
            let route = Route::parse(path);
            assert_eq!(route_kind(&route), kind, "{path}");
            assert_eq!(repository(&route).as_deref(), repo, "{path}");
        }
    }

    #[tokio::test]
    async fn received_bytes_count_only_inside_a_request() {
        count_received(5); // outside any request: ignored
        let received = Arc::new(AtomicU64::new(0));
        RECEIVED
            .scope(Arc::clone(&received), async {
                count_received(3);
                count_received(4);
            })
            .await;
        assert_eq!(received.load(Ordering::Relaxed), 7);
    }
}
