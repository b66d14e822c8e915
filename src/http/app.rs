//! The request pipeline: parse the route, dispatch on (route, method) to a handler, turn every
//! error into the OCI error body, and stamp the headers every response carries.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW};
use hyper::{Method, Request, Response};

use super::body::Body;
use super::error::ApiError;
use super::error_code::ErrorCode;
use super::handlers::{base, blobs, listing, manifests, uploads};
use super::routes::Route;
use super::token::TokenSigner;
use crate::store::Store;

/// The header every response carries.
pub const API_VERSION_HEADER: &str = "docker-distribution-api-version";

/// Everything a handler needs, shared by all connections.
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
}

impl AppState {
    /// The state for `store` with upload tokens signed by `signer`, and the defaults: a 60 s
    /// body idle timeout and DELETE allowed. Set the public fields to change them.
    pub fn new(store: Store, signer: TokenSigner) -> Self {
        AppState {
            store,
            signer,
            body_idle_timeout: Duration::from_secs(60),
            delete_enabled: true,
        }
    }
}

/// Answers one request from the client at `peer`. Never fails: errors become OCI error
/// responses.
pub async fn handle(
    state: Arc<AppState>,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let result = match Route::parse(&path) {
        Ok(route) => dispatch(&state, route, request).await,
        Err(e) => Err(ApiError::from(e)),
    };
    let mut response = result.unwrap_or_else(ApiError::into_response);
    tracing::debug!(%method, %path, %peer, status = response.status().as_u16(), "request");
    response
        .headers_mut()
        .insert(API_VERSION_HEADER, HeaderValue::from_static("registry/2.0"));
    response
}

async fn dispatch(
    state: &Arc<AppState>,
    route: Route,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let method = request.method().clone();
    match (route, method) {
        (Route::Base, Method::GET | Method::HEAD) => Ok(base::version_check()),
        (Route::Blob { name, digest }, Method::GET | Method::HEAD) => {
            blobs::get(state, name, digest, request).await
        }
        (Route::Blob { name, digest }, Method::DELETE) => blobs::delete(state, name, digest).await,
        (Route::UploadStart { name }, Method::POST) => uploads::start(state, name, request).await,
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
