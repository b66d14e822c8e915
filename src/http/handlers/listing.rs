//! `GET /v2/<name>/tags/list`, `GET /v2/_catalog` and `GET /v2/<name>/referrers/<digest>`.
//!
//! Lists are sorted and paginated with `n` and `last`; when more follow, a
//! `Link: <…?last=…&n=…>; rel="next"` header points at the next page.

use std::sync::Arc;

use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, LINK};
use hyper::{Request, Response};
use serde_json::json;

use super::common::{blocking, header_value, query_param};
use crate::digest::Digest;
use crate::http::app::AppState;
use crate::http::body::{self, Body, RequestBody};
use crate::http::error::ApiError;
use crate::http::error_code::ErrorCode;
use crate::manifest::media_type::OCI_INDEX;
use crate::manifest::{catalog_order, link_header, paginate, paginate_by, referrers_index, Page};
use crate::names::RepositoryName;

const OCI_FILTERS_APPLIED: &str = "oci-filters-applied";

/// The tags of a repository.
pub async fn tags(
    state: &Arc<AppState>,
    name: RepositoryName,
    request: Request<RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let (n, last) = page_params(&request)?;
    let store = state.store.clone();
    let repo = name.clone();
    let tags = blocking(move || store.tags(&repo)).await?;
    let names: Vec<String> = tags.into_iter().map(|t| t.to_string()).collect();
    let page = paginate(names, n, last.as_deref());
    let body = json!({ "name": name.to_string(), "tags": page.items });
    Ok(json_page(body, &page, request.uri().path(), n))
}

/// Every repository.
pub async fn catalog(
    state: &Arc<AppState>,
    request: Request<RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let (n, last) = page_params(&request)?;
    let store = state.store.clone();
    let repositories = blocking(move || store.repositories()).await?;
    let names: Vec<String> = repositories.into_iter().map(|r| r.to_string()).collect();
    let page = paginate_by(names, n, last.as_deref(), catalog_order);
    let body = json!({ "repositories": page.items });
    Ok(json_page(body, &page, request.uri().path(), n))
}

/// The manifests whose `subject` is `digest`, as an OCI image index (200 even when empty).
pub async fn referrers(
    state: &Arc<AppState>,
    name: RepositoryName,
    digest: Digest,
    request: Request<RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let filter = query_param(request.uri(), "artifactType");
    let store = state.store.clone();
    let subject = digest.clone();
    let records = blocking(move || store.referrers(&name, &subject)).await?;
    let index = referrers_index(&digest, records.iter(), filter.as_deref());
    let length = index.body.len();
    let mut response = Response::new(body::full(index.body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(OCI_INDEX));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    if index.filter_applied {
        headers.insert(
            OCI_FILTERS_APPLIED,
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(response)
}

/// `n` (a non-negative integer) and `last` from the query.
fn page_params(
    request: &Request<RequestBody>,
) -> Result<(Option<usize>, Option<String>), ApiError> {
    let n = match query_param(request.uri(), "n") {
        Some(text) => Some(text.parse::<usize>().map_err(|_| {
            ApiError::with_message(
                ErrorCode::PaginationNumberInvalid,
                format!("n={text:?} is not a count"),
            )
        })?),
        None => None,
    };
    Ok((n, query_param(request.uri(), "last")))
}

fn json_page(
    body: serde_json::Value,
    page: &Page<String>,
    path: &str,
    n: Option<usize>,
) -> Response<Body> {
    let text = body.to_string();
    let length = text.len();
    let mut response = Response::new(body::full(text));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    if let (Some(next), Some(n)) = (&page.next, n) {
        headers.insert(LINK, header_value(link_header(path, next, n)));
    }
    response
}
