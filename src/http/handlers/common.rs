//! Small helpers shared by the handlers: query parameters, header text, blocking store calls.

use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Response, StatusCode, Uri};

use crate::digest::Digest;
use crate::http::body::{self, Body};

use crate::http::error::ApiError;

/// The first value of query parameter `key`, decoded.
pub fn query_param(uri: &Uri, key: &str) -> Option<String> {
    let query = uri.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// A header's value as text, when present and visible ASCII.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Runs a blocking store call on tokio's blocking pool, inside the caller's span (so what it
/// logs carries the request id).
pub async fn blocking<T, E>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await?
        .map_err(Into::into)
}

/// `If-None-Match` / `If-Range` against the digest: quoted or bare, or a list with `*`.
pub fn etag_matches(value: &str, digest: &Digest) -> bool {
    let digest = digest.to_string();
    value
        .split(',')
        .map(|tag| tag.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|tag| tag == "*" || tag == digest)
}
pub fn status_only(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = status;
    response
}
/// Header values built from digests and numbers are always visible ASCII.
pub fn header_value(text: String) -> HeaderValue {
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// 202 with an empty body, the answer to an accepted DELETE.
pub fn accepted() -> Response<Body> {
    let mut response = status_only(StatusCode::ACCEPTED);
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(0));
    response
}
