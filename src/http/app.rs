//! The request pipeline: parse the route, dispatch on (route, method) to a handler, turn every
//! error into the OCI error body, and stamp the headers every response carries.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderValue, ALLOW, USER_AGENT};
use hyper::{Method, Request, Response};

use super::access;
use super::access_control::{AccessControl, GrantedAccess};
use super::access_log::RequestRecord;
use super::body::{Body, RequestBody};
use super::error::ApiError;
use super::error_code::ErrorCode;
use super::events::{EventQueue, EventRequest, Occurred};
use super::handlers::{base, blobs, listing, manifests, uploads};
use super::routes::Route;
use super::token::TokenSigner;
use crate::auth::{Authenticator, Identity};
use crate::metrics::Metrics;
use crate::store::Store;

/// The header every response carries.
pub const API_VERSION_HEADER: &str = "docker-distribution-api-version";

/// The client's address, as a request extension. [`super::Server`] adds it to every request;
/// an embedding server may add it too (it goes into the access log and the events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// Everything a handler needs, shared by all connections. Usually built by
/// [`super::RegistryBuilder`].
#[derive(Debug)]
pub struct AppState {
    /// The blob store.
    pub store: Store,
    /// Signs and checks upload `_state` tokens.
    pub signer: TokenSigner,
    /// Longest pause allowed between two pieces of a request body before the request fails
    /// (a slowly trickling upload cannot hold a writer forever).
    pub body_idle_timeout: Duration,
    /// Whether blob and manifest DELETE are allowed.
    pub delete_enabled: bool,
    /// Request, storage and cache metrics (the store reports to the same families).
    pub metrics: Arc<Metrics>,
    /// Who sent a request (`None`: an open registry, every client is
    /// [`Identity::anonymous`]).
    pub auth: Option<Arc<Authenticator>>,
    /// What each identity may do ([`GrantedAccess`] unless the embedder has its own rules).
    pub access: Arc<dyn AccessControl>,
    /// Where events go, if anywhere.
    pub(crate) events: Option<EventQueue>,
}

impl AppState {
    /// The state for `store` with upload tokens signed by `signer`, and the defaults: a 60 s
    /// body idle timeout, DELETE allowed, no authentication, the built-in access rules and no
    /// event sink. Set the public fields to change them.
    ///
    /// Metrics: those of `store` when it has some ([`Store::with_metrics`]), else fresh ones,
    /// given to the store too so its driver calls and cache hits are counted.
    pub fn new(store: Store, signer: TokenSigner) -> Self {
        let (store, metrics) = match store.metrics() {
            Some(metrics) => {
                let metrics = Arc::clone(metrics);
                (store, metrics)
            }
            None => {
                let metrics = Arc::new(Metrics::new());
                (store.with_metrics(Arc::clone(&metrics)), metrics)
            }
        };
        AppState {
            metrics,
            store,
            signer,
            body_idle_timeout: Duration::from_secs(60),
            delete_enabled: true,
            auth: None,
            access: Arc::new(GrantedAccess),
            events: None,
        }
    }
}

/// Answers one request. Never fails: errors become OCI error responses.
///
/// Every response carries `X-Request-Id` (the client's, when it sent a valid one); the handling
/// runs in a `request{id=…}` span, and the access log line and the request metrics are written
/// when the response body is over ([`super::access_log`]). The events of a successful
/// operation are queued for the event sink.
pub(crate) async fn handle(state: Arc<AppState>, request: Request<RequestBody>) -> Response<Body> {
    let peer = request.extensions().get::<ClientAddr>().map(|addr| addr.0);
    let route = Route::parse(request.uri().path());
    let record = RequestRecord::start(&state.metrics, &request, &route, peer);
    let event_request = state.events.as_ref().map(|_| EventRequest {
        id: record.id().to_owned(),
        addr: peer.map(|p| p.to_string()),
        method: request.method().to_string(),
        user_agent: request
            .headers()
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
    let mut response = record
        .scope(async {
            let result = match route {
                Ok(route) => dispatch(&state, route, request).await,
                Err(e) => Err(ApiError::from(e)),
            };
            result.unwrap_or_else(ApiError::into_response)
        })
        .await;
    if let (Some(queue), Some(event_request)) = (&state.events, event_request) {
        if let Some(occurred) = response.extensions_mut().remove::<Occurred>() {
            let actor = response
                .extensions_mut()
                .remove::<Actor>()
                .and_then(|a| a.0);
            queue.send(occurred, &event_request, actor.as_deref());
        }
    }
    response
        .headers_mut()
        .insert(API_VERSION_HEADER, HeaderValue::from_static("registry/2.0"));
    record.finish(response)
}

/// Who made a request, carried from [`dispatch`] to the event queue on the response.
#[derive(Debug, Clone)]
struct Actor(Option<String>);

/// Authorizes the request for its route (before anything is read or stored), then runs the
/// handler of (route, method).
async fn dispatch(
    state: &Arc<AppState>,
    route: Route,
    request: Request<RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let identity = access::authorize(state, &route, &request).await?;
    let mut response = route_to_handler(state, route, request, &identity).await?;
    if response.extensions().get::<Occurred>().is_some() {
        response.extensions_mut().insert(Actor(identity.name));
    }
    Ok(response)
}

/// The handler of (route, method).
async fn route_to_handler(
    state: &Arc<AppState>,
    route: Route,
    request: Request<RequestBody>,
    identity: &Identity,
) -> Result<Response<Body>, ApiError> {
    let method = request.method().clone();
    match (route, method) {
        (Route::Base, Method::GET | Method::HEAD) => Ok(base::version_check()),
        (Route::Blob { name, digest }, Method::GET | Method::HEAD) => {
            blobs::get(state, name, digest, request).await
        }
        (Route::Blob { name, digest }, Method::DELETE) => blobs::delete(state, name, digest).await,
        (Route::UploadStart { name }, Method::POST) => {
            uploads::start(state, name, request, identity).await
        }
        (Route::Upload { name, id }, Method::GET | Method::HEAD) => {
            uploads::status(state, name, id).await
        }
        (Route::Upload { name, id }, Method::PATCH) => {
            uploads::patch(state, name, id, request).await
        }
        (Route::Upload { name, id }, Method::PUT) => uploads::put(state, name, id, request).await,
        (Route::Upload { name, id }, Method::DELETE) => uploads::cancel(state, name, id).await,
        (Route::Manifest { name, reference }, Method::GET | Method::HEAD) => {
            manifests::get(state, name, reference, request).await
        }
        (Route::Manifest { name, reference }, Method::PUT) => {
            manifests::put(state, name, reference, request).await
        }
        (Route::Manifest { name, reference }, Method::DELETE) => {
            manifests::delete(state, name, reference).await
        }
        (Route::Tags { name }, Method::GET | Method::HEAD) => {
            listing::tags(state, name, request).await
        }
        (Route::Catalog, Method::GET | Method::HEAD) => listing::catalog(state, request).await,
        (Route::Referrers { name, digest }, Method::GET | Method::HEAD) => {
            listing::referrers(state, name, digest, request).await
        }
        (route, _) => Err(method_not_allowed(&route)),
    }
}

fn method_not_allowed(route: &Route) -> ApiError {
    let allow = match route {
        Route::Base | Route::Catalog | Route::Tags { .. } | Route::Referrers { .. } => "GET, HEAD",
        Route::Blob { .. } => "GET, HEAD, DELETE",
        Route::Manifest { .. } => "GET, HEAD, PUT, DELETE",
        Route::UploadStart { .. } => "POST",
        Route::Upload { .. } => "GET, HEAD, PATCH, PUT, DELETE",
    };
    ApiError::new(ErrorCode::MethodNotAllowed, None).header(ALLOW, HeaderValue::from_static(allow))
}
