//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`: whole blobs and byte ranges. A local blob's
//! small ranges are one positioned read; larger bodies go out as mapped windows, without copies
//! (see [`body`](crate::http::body)).

use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{
    HeaderValue, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, IF_RANGE, RANGE,
};
use hyper::{Method, Request, Response, StatusCode};

use super::common::{accepted, blocking, etag_matches, header_str, header_value, status_only};
use crate::digest::Digest;
use crate::http::app::AppState;
use crate::http::body::{self, Body, RequestBody};
use crate::http::error::ApiError;
use crate::http::error_code::ErrorCode;
use crate::http::events::{self, EventAction, Happened};
use crate::http::range::{resolve, RangeAnswer};
use crate::names::RepositoryName;
use crate::store::{BlobBody, ByteRange};

/// The header carrying a blob's or manifest's digest.
pub const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// Serves a blob (GET) or its headers (HEAD), honouring `Range`, `If-Range` and
/// `If-None-Match`. A GET that sends bytes (or redirects to them) is a pull event.
pub async fn get(
    state: &Arc<AppState>,
    name: RepositoryName,
    digest: Digest,
    request: Request<RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let pulled = Happened::new(EventAction::Pull, &name, &digest);
    let get = request.method() == Method::GET;
    let mut response = serve(state, name, digest, request).await?;
    let sent_bytes = matches!(
        response.status(),
        StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::TEMPORARY_REDIRECT
    );
    if get && sent_bytes {
        events::record(&mut response, pulled);
    }
    Ok(response)
}

async fn serve(
    state: &Arc<AppState>,
    name: RepositoryName,
    digest: Digest,
    request: Request<RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let store = state.store.clone();
    let lookup = digest.clone();
    let head = request.method() == Method::HEAD;
    let (blob, redirect) = blocking(move || {
        let (_, blob) = store.open_blob(Some(&name), &lookup)?;
        let redirect = if head { None } else { blob.redirect_url() };
        Ok::<_, crate::store::StoreError>((blob, redirect.transpose()?))
    })
    .await?;
    if let Some(url) = redirect {
        // As distribution's `redirect`: the client fetches (and ranges) from storage directly.
        let mut response = status_only(StatusCode::TEMPORARY_REDIRECT);
        response
            .headers_mut()
            .insert(hyper::header::LOCATION, header_value(url));
        return Ok(with_blob_headers(
            response,
            &digest,
            &format!("\"{digest}\""),
        ));
    }
    let etag = format!("\"{digest}\"");
    let headers = request.headers();
    if header_str(headers, &IF_NONE_MATCH).is_some_and(|v| etag_matches(v, &digest)) {
        return Ok(with_blob_headers(
            status_only(StatusCode::NOT_MODIFIED),
            &digest,
            &etag,
        ));
    }
    let size = blob.len();
    let range_header = header_str(headers, &RANGE)
        .filter(|_| header_str(headers, &IF_RANGE).is_none_or(|v| etag_matches(v, &digest)));
    let response = match resolve(range_header, size) {
        RangeAnswer::Full => whole(blob, head).await?,
        RangeAnswer::Single(range) => partial(blob, range, head).await?,
        // Parts are read into memory: allowed up to a bound, else the whole blob is sent.
        RangeAnswer::Multiple(ranges) if total_len(&ranges) > MULTIPART_READ_LIMIT => {
            whole(blob, head).await?
        }
        RangeAnswer::Multiple(ranges) => blocking(move || multipart(&blob, &ranges, head)).await?,
        RangeAnswer::Unsatisfiable => {
            return Ok(ApiError::new(ErrorCode::RangeNotSatisfiable, None)
                .header(CONTENT_RANGE, header_value(format!("bytes */{size}")))
                .into_response());
        }
    };
    Ok(with_blob_headers(response, &digest, &etag))
}

/// Removes the repository's link to a blob (202). The bytes stay until garbage collection.
pub async fn delete(
    state: &Arc<AppState>,
    name: RepositoryName,
    digest: Digest,
) -> Result<Response<Body>, ApiError> {
    if !state.delete_enabled {
        return Err(ApiError::new(ErrorCode::Unsupported, None));
    }
    let store = state.store.clone();
    let deleted = Happened::new(EventAction::Delete, &name, &digest);
    blocking(move || store.unlink_blob(&name, &digest)).await?;
    let mut response = accepted();
    events::record(&mut response, deleted);
    Ok(response)
}

async fn whole(blob: BlobBody, head: bool) -> Result<Response<Body>, ApiError> {
    let size = blob.len();
    let body = if head {
        body::empty()
    } else {
        body_of(blob, None).await?
    };
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(size));
    Ok(response)
}

async fn partial(blob: BlobBody, range: ByteRange, head: bool) -> Result<Response<Body>, ApiError> {
    let size = blob.len();
    let body = if head {
        body::empty()
    } else {
        body_of(blob, Some(range)).await?
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    let headers = response.headers_mut();
    headers.insert(CONTENT_LENGTH, HeaderValue::from(range.len()));
    headers.insert(CONTENT_RANGE, header_value(content_range(range, size)));
    Ok(response)
}

/// The most bytes a `multipart/byteranges` answer reads into memory; more is answered with the
/// whole blob, as RFC 9110 allows.
const MULTIPART_READ_LIMIT: u64 = 16 << 20;

fn total_len(ranges: &[ByteRange]) -> u64 {
    ranges.iter().map(|r| r.len()).sum()
}

/// A body for `range` of the blob. A small range of a local file is read right here: one
/// positioned read from the page cache costs less than the hop to a blocking thread (a cold read
/// from disk blocks this thread as long as one small read takes). Anything else is prepared on a
/// blocking thread.
async fn body_of(blob: BlobBody, range: Option<ByteRange>) -> Result<Body, ApiError> {
    if let (BlobBody::Local { .. }, Some(range)) = (&blob, range.or_else(|| blob.full_range())) {
        if range.len() <= body::SMALL_READ {
            return Ok(body::small(&blob, range)?);
        }
    }
    blocking(move || body::blob(&blob, range)).await
}

/// `multipart/byteranges`: each part's headers, then its bytes, read into memory (the caller
/// bounds their total by [`MULTIPART_READ_LIMIT`]). Runs where blocking is allowed.
fn multipart(
    blob: &BlobBody,
    ranges: &[ByteRange],
    head: bool,
) -> Result<Response<Body>, ApiError> {
    const BOUNDARY: &str = "layerstore-byteranges-7d3c1f";
    let size = blob.len();
    let mut parts: Vec<Bytes> = Vec::with_capacity(ranges.len() * 2 + 1);
    for range in ranges {
        parts.push(Bytes::from(format!(
            "\r\n--{BOUNDARY}\r\nContent-Type: application/octet-stream\r\nContent-Range: {}\r\n\r\n",
            content_range(*range, size)
        )));
        parts.push(Bytes::from(blob.read_range(*range)?));
    }
    parts.push(Bytes::from(format!("\r\n--{BOUNDARY}--\r\n")));
    let length: usize = parts.iter().map(Bytes::len).sum();
    let body = if head {
        body::empty()
    } else {
        body::frames(parts)
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    let headers = response.headers_mut();
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(
        CONTENT_TYPE,
        header_value(format!("multipart/byteranges; boundary={BOUNDARY}")),
    );
    Ok(response)
}

fn with_blob_headers(mut response: Response<Body>, digest: &Digest, etag: &str) -> Response<Body> {
    let headers = response.headers_mut();
    headers.insert(DOCKER_CONTENT_DIGEST, header_value(digest.to_string()));
    headers.insert(ETAG, header_value(etag.to_owned()));
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=31536000"));
    headers
        .entry(CONTENT_TYPE)
        .or_insert(HeaderValue::from_static("application/octet-stream"));
    response
}

fn content_range(range: ByteRange, size: u64) -> String {
    format!("bytes {}-{}/{}", range.start, range.end, size)
}
