//! `GET /v2/`: the API version check.

use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::Response;

use crate::http::body::{self, Body};

/// 200 with `{}`: this registry speaks the v2 API and needs no authentication.
pub fn version_check() -> Response<Body> {
    let mut response = Response::new(body::full("{}"));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(2));
    response
}
