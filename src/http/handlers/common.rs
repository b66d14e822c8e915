//! Small helpers shared by the handlers: query parameters, header text, blocking store calls.

use hyper::header::HeaderName;
use hyper::{HeaderMap, Uri};

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

/// Runs a blocking store call on tokio's blocking pool.
pub async fn blocking<T, E>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await?.map_err(Into::into)
}
