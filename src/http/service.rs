//! [`RegistryService`]: the whole distribution API as one tower [`Service`], to serve with
//! [`super::Server`] (as `layerstore serve` does), with plain hyper, or mounted in an axum or
//! tower application beside routes of its own. [`RegistryBuilder`] makes one.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::{Request, Response};
use tower_service::Service;

use super::app::{handle, AppState};
use super::body::{request_body, Body, BoxError};

/// The OCI distribution API (`/v2/…`) over a [`Store`](crate::Store), as a cheaply cloneable
/// tower [`Service`] for requests with any body of [`Bytes`]. It answers every path: the API's
/// own, and a 404 `UNSUPPORTED` for anything else, so mount it where `/v2/` requests arrive
/// with their full path (axum: `route_service("/v2/", …)` and `route_service("/v2/{*path}", …)`,
/// or as the fallback; `nest_service` would strip the `/v2` the API's routes include).
///
/// ```
/// use layerstore::http::RegistryService;
/// use layerstore::Store;
/// use tower_service::Service;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let root = tempfile::tempdir().unwrap();
/// let mut registry = RegistryService::builder(Store::filesystem(root.path())).build().unwrap();
/// let request = hyper::Request::get("/v2/").body(http_body_util::Empty::<bytes::Bytes>::new());
/// let response = registry.call(request.unwrap()).await.unwrap();
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.headers()["docker-distribution-api-version"], "registry/2.0");
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct RegistryService {
    state: Arc<AppState>,
}

impl RegistryService {
    /// A builder over `store`, with the defaults of [`RegistryBuilder`](super::RegistryBuilder).
    pub fn builder(store: crate::Store) -> super::RegistryBuilder {
        super::RegistryBuilder::new(store)
    }

    /// The state every request shares (the store, the metrics, the settings).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Answers one request; never fails (errors are OCI error responses). The same as
    /// [`Service::call`], without needing `&mut self`.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        handle(Arc::clone(&self.state), request.map(request_body)).await
    }
}

impl From<AppState> for RegistryService {
    fn from(state: AppState) -> Self {
        RegistryService {
            state: Arc::new(state),
        }
    }
}

impl From<Arc<AppState>> for RegistryService {
    fn from(state: Arc<AppState>) -> Self {
        RegistryService { state }
    }
}

/// The future of one [`RegistryService`] response.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl<B> Service<Request<B>> for RegistryService
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    /// Always ready: back-pressure comes from the server's connection limit and each
    /// upload's bounded queue, not from the service.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let state = Arc::clone(&self.state);
        Box::pin(async move { Ok(handle(state, request.map(request_body)).await) })
    }
}
