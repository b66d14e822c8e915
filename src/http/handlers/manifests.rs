//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.
//!
//! A PUT body is read whole, but never more than [`MAX_MANIFEST_SIZE`] bytes: a larger one is
//! refused with 413 as soon as it is known to be larger (from `Content-Length`, or while it
//! arrives). GET serves the exact bytes that were pushed, with the digest of those bytes.

use std::sync::Arc;

use bytes::BytesMut;
use http_body_util::BodyExt;
use hyper::header::{
    HeaderName, HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION,
};
use hyper::{Method, Request, Response, StatusCode};

use super::blobs::DOCKER_CONTENT_DIGEST;
use super::common::{accepted, blocking, etag_matches, header_str, header_value, status_only};
use crate::digest::Digest;
use crate::http::access_log::count_received;
use crate::http::app::AppState;
use crate::http::body::{self, Body, RequestBody};
use crate::http::error::ApiError;
use crate::http::error_code::ErrorCode;
use crate::http::events::{self, EventAction, Happened};
use crate::manifest::{acceptable, MediaType, MAX_MANIFEST_SIZE};
use crate::names::{Reference, RepositoryName, Tag};

const OCI_SUBJECT: &str = "oci-subject";
const OCI_TAG: &str = "oci-tag";

/// Serves a manifest (GET) or its headers (HEAD).
pub async fn get(
    state: &Arc<AppState>,
    name: RepositoryName,
    reference: Reference,
    request: Request<RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let store = state.store.clone();
    let (repo, wanted) = (name.clone(), reference.clone());
    let content = blocking(move || store.get_manifest(&repo, &wanted)).await?;
    let mut pulled = Happened::new(EventAction::Pull, &name, &content.digest)
        .size(content.bytes.len() as u64)
        .media_type(content.media_type.clone());
    if let Reference::Tag(tag) = &reference {
        pulled = pulled.tag(tag.to_string());
    }
    let etag = format!("\"{}\"", content.digest);
    let mut response = if header_str(request.headers(), &IF_NONE_MATCH)
        .is_some_and(|v| etag_matches(v, &content.digest))
    {
        status_only(StatusCode::NOT_MODIFIED)
    } else {
        let accepts: Vec<&str> = request
            .headers()
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let kind = MediaType::from_exact(&content.media_type);
        if kind.is_some_and(|kind| !acceptable(&accepts, kind)) {
            return Err(ApiError::with_message(
                ErrorCode::ManifestUnknown,
                format!(
                    "manifest is {} and the request does not accept it",
                    content.media_type
                ),
            ));
        }
        let length = content.bytes.len();
        let body = if request.method() == Method::HEAD {
            body::empty()
        } else {
            body::full(content.bytes)
        };
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
        headers.insert(CONTENT_TYPE, header_value(content.media_type));
        if request.method() == Method::GET {
            events::record(&mut response, pulled);
        }
        response
    };
    let headers = response.headers_mut();
    headers.insert(
        DOCKER_CONTENT_DIGEST,
        header_value(content.digest.to_string()),
    );
    headers.insert(ETAG, header_value(etag));
    Ok(response)
}

/// Stores a manifest and answers 201 with its digest (plus `OCI-Subject` and `OCI-Tag` when
/// they apply).
pub async fn put(
    state: &Arc<AppState>,
    name: RepositoryName,
    reference: Reference,
    request: Request<RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let content_type = header_str(request.headers(), &CONTENT_TYPE).map(str::to_owned);
    let extra_tags = query_tags(&request)?;
    let bytes = read_limited(request).await?;
    let size = bytes.len() as u64;
    let store = state.store.clone();
    let (repo, tags, media_type) = (name.clone(), extra_tags.clone(), content_type.clone());
    let put_as = reference.clone();
    let stored =
        blocking(move || store.put_manifest(&repo, &put_as, media_type.as_deref(), &bytes, &tags))
            .await?;
    let happened = pushed(
        &name,
        &reference,
        &stored.digest,
        size,
        content_type,
        &extra_tags,
    );
    let mut response = status_only(StatusCode::CREATED);
    let headers = response.headers_mut();
    headers.insert(
        LOCATION,
        header_value(format!("/v2/{name}/manifests/{}", stored.digest)),
    );
    headers.insert(
        DOCKER_CONTENT_DIGEST,
        header_value(stored.digest.to_string()),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
    if let Some(subject) = stored.subject {
        headers.insert(OCI_SUBJECT, header_value(subject.to_string()));
    }
    for tag in extra_tags {
        headers.append(
            HeaderName::from_static(OCI_TAG),
            header_value(tag.to_string()),
        );
    }
    for event in happened {
        events::record(&mut response, event);
    }
    Ok(response)
}

/// The events of a stored manifest: the push (with its tag, when pushed by tag), then one tag
/// event per tag that now names it.
fn pushed(
    name: &RepositoryName,
    reference: &Reference,
    digest: &Digest,
    size: u64,
    media_type: Option<String>,
    extra_tags: &[Tag],
) -> Vec<Happened> {
    let mut push = Happened::new(EventAction::Push, name, digest).size(size);
    push.media_type = media_type;
    let mut tags: Vec<String> = extra_tags.iter().map(ToString::to_string).collect();
    if let Reference::Tag(tag) = reference {
        push = push.tag(tag.to_string());
        tags.insert(0, tag.to_string());
    }
    let tagged = tags.into_iter().map(|tag| {
        let mut event = Happened::new(EventAction::Tag, name, digest).tag(tag);
        event.media_type = push.media_type.clone();
        event
    });
    std::iter::once(push.clone()).chain(tagged).collect()
}

/// Deletes a manifest by digest (and the tags naming it), or a tag by name. 202.
pub async fn delete(
    state: &Arc<AppState>,
    name: RepositoryName,
    reference: Reference,
) -> Result<Response<Body>, ApiError> {
    if !state.delete_enabled {
        return Err(ApiError::new(ErrorCode::Unsupported, None));
    }
    let store = state.store.clone();
    let deleted = match &reference {
        Reference::Digest(digest) => Happened::new(EventAction::Delete, &name, digest),
        Reference::Tag(tag) => Happened::of_tag(EventAction::Delete, &name, tag.to_string()),
    };
    blocking(move || match &reference {
        Reference::Digest(digest) => store.delete_manifest(&name, digest),
        Reference::Tag(tag) => store.delete_tag(&name, tag),
    })
    .await?;
    let mut response = accepted();
    events::record(&mut response, deleted);
    Ok(response)
}

/// `?tag=a&tag=b` on a PUT by digest (OCI distribution-spec 1.1.1).
fn query_tags(request: &Request<RequestBody>) -> Result<Vec<Tag>, ApiError> {
    let Some(query) = request.uri().query() else {
        return Ok(Vec::new());
    };
    form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == "tag")
        .map(|(_, value)| {
            Tag::parse(&value)
                .map_err(|e| ApiError::with_message(ErrorCode::TagInvalid, e.to_string()))
        })
        .collect()
}

/// The request body, refused with 413 once it exceeds [`MAX_MANIFEST_SIZE`].
///
/// An oversized body is still read (and dropped) up to [`DRAIN_LIMIT`], so that a client that
/// sends the whole body before reading the answer sees the 413 instead of a broken pipe.
async fn read_limited(request: Request<RequestBody>) -> Result<Vec<u8>, ApiError> {
    let too_large = || ApiError::new(ErrorCode::ManifestTooLarge, None);
    let declared =
        header_str(request.headers(), &CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    let mut body = request.into_body();
    if declared.is_some_and(|len| len > MAX_MANIFEST_SIZE as u64) {
        if declared.is_some_and(|len| len <= DRAIN_LIMIT) {
            drain(&mut body).await;
        }
        return Err(too_large());
    }
    let mut bytes = BytesMut::with_capacity(declared.unwrap_or(0).min(64 * 1024) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::with_message(ErrorCode::ManifestInvalid, format!("reading body: {e}"))
        })?;
        if let Ok(data) = frame.into_data() {
            count_received(data.len());
            if bytes.len() + data.len() > MAX_MANIFEST_SIZE {
                drain(&mut body).await;
                return Err(too_large());
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes.to_vec())
}

/// Most bytes of an oversized manifest body read and dropped before answering 413.
const DRAIN_LIMIT: u64 = 64 << 20;

/// Reads and drops the rest of a body, up to [`DRAIN_LIMIT`] bytes.
async fn drain(body: &mut RequestBody) {
    let mut seen = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            seen += data.len() as u64;
            if seen > DRAIN_LIMIT {
                return;
            }
        }
    }
}
