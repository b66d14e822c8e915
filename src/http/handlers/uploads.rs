//! Blob uploads: `POST …/blobs/uploads/` (new session, single-request upload, cross-repository
//! mount), `PATCH` (streamed or chunked), `PUT` (commit), `GET`/`HEAD` (status) and `DELETE`.
//!
//! Request bodies are never buffered whole (`upload_body`: streamed in batches to a blocking
//! thread, or, when small, gathered and stored by the commit's blocking call). After every
//! request that added bytes the upload is checkpointed (data fsync'd, then hash state saved), so
//! any instance sharing the root can continue it. On a filesystem the checkpoint runs after the
//! answer and the open handle is parked for the session's next request ([`checkpoint`]). Uploads
//! follow distribution v3 and the OCI spec where 2.8 differs: an offset mismatch or an
//! out-of-order chunk is a 416 that keeps the upload, and status needs no token.

use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_RANGE, LOCATION, RANGE};
use hyper::{Request, Response, StatusCode};

use super::blobs::DOCKER_CONTENT_DIGEST;
use super::common::{blocking, header_str, header_value, query_param};
use super::upload_body::{content_length, gather, is_small, receive};
use crate::auth::Identity;
use crate::digest::Digest;
use crate::http::access;
use crate::http::app::AppState;
use crate::http::body::{self, Body, RequestBody};
use crate::http::error::ApiError;
use crate::http::error_code::ErrorCode;
use crate::http::events::{self, EventAction, Happened};
use crate::http::range::parse_content_range;
use crate::http::token::UploadState;
use crate::names::{RepositoryName, UploadId};
use crate::store::{rfc3339, StoreError, Upload};

const DOCKER_UPLOAD_UUID: &str = "docker-upload-uuid";

/// `POST /v2/<name>/blobs/uploads/`. A mount is tried only when `identity` may read the
/// source repository ([`access::may_mount_from`]); otherwise, as when the blob is not there, a
/// normal session starts.
pub async fn start(
    state: &Arc<AppState>,
    name: RepositoryName,
    request: Request<RequestBody>,
    identity: &Identity,
) -> Result<Response<Body>, ApiError> {
    let uri = request.uri().clone();
    if let Some(mount) = query_param(&uri, "mount") {
        let from = query_param(&uri, "from");
        if access::may_mount_from(state, identity, from.as_deref()).await {
            if let Some(response) = try_mount(state, &name, &mount, from).await {
                return Ok(response);
            }
        }
    }
    let digest = query_param(&uri, "digest")
        .map(|d| parse_digest(&d))
        .transpose()?;
    let store = state.store.clone();
    let repo = name.clone();
    let upload = blocking(move || store.create_upload(&repo)).await?;
    match digest {
        Some(digest) => {
            let small = is_small(&request);
            monolithic(state, upload, digest, request.into_body(), small).await
        }
        None => Ok(session_response(
            state,
            StatusCode::ACCEPTED,
            &name,
            upload.id(),
            0,
        )),
    }
}

/// `GET`/`HEAD` on an upload: where it stands. Works by id alone, as in distribution v3.
pub async fn status(
    state: &Arc<AppState>,
    name: RepositoryName,
    id: UploadId,
) -> Result<Response<Body>, ApiError> {
    let store = state.store.clone();
    let (repo, upload_id) = (name.clone(), id.clone());
    let status = blocking(move || store.upload_status(&repo, &upload_id)).await?;
    Ok(session_response(
        state,
        StatusCode::NO_CONTENT,
        &name,
        &id,
        status.offset,
    ))
}

/// `PATCH`: appends the body, streamed or as a chunk checked against `Content-Range`.
pub async fn patch(
    state: &Arc<AppState>,
    name: RepositoryName,
    id: UploadId,
    request: Request<RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let upload = open_checked(state, &name, &id, &request).await?;
    let (upload, received) = receive(state, upload, request.into_body()).await;
    // Save what arrived even when the body failed, but report the body's failure first.
    let saved = checkpoint(state, upload).await;
    received?;
    let offset = saved?;
    Ok(session_response(
        state,
        StatusCode::ACCEPTED,
        &name,
        &id,
        offset,
    ))
}

/// `PUT ?digest=`: appends an optional last chunk and commits the blob.
pub async fn put(
    state: &Arc<AppState>,
    name: RepositoryName,
    id: UploadId,
    request: Request<RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let digest = match query_param(request.uri(), "digest") {
        Some(d) => parse_digest(&d)?,
        None => {
            return Err(ApiError::with_message(
                ErrorCode::DigestInvalid,
                "digest missing",
            ))
        }
    };
    if is_small(&request) {
        return put_small(state, name, id, digest, request).await;
    }
    let upload = open_checked(state, &name, &id, &request).await?;
    let (upload, received) = receive(state, upload, request.into_body()).await;
    if let Err(e) = received {
        let _ = checkpoint(state, upload).await;
        return Err(e);
    }
    commit(upload, Vec::new(), &name, digest).await
}

/// `DELETE`: cancels the session.
pub async fn cancel(
    state: &Arc<AppState>,
    name: RepositoryName,
    id: UploadId,
) -> Result<Response<Body>, ApiError> {
    let store = state.store.clone();
    let upload_id = id.clone();
    blocking(move || store.cancel_upload(&name, &upload_id)).await?;
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
    headers.insert(DOCKER_UPLOAD_UUID, header_value(id.to_string()));
    Ok(response)
}

/// A single-request upload (`POST ?digest=`): body, commit, 201. A failed one leaves nothing.
async fn monolithic(
    state: &Arc<AppState>,
    upload: Upload,
    digest: Digest,
    mut body: RequestBody,
    small: bool,
) -> Result<Response<Body>, ApiError> {
    let name = upload.repo().clone();
    // A small body is gathered here and stored by the commit's blocking call: the upload is in
    // progress until that call ends, as in `put_small` (`receive` marks a large one itself).
    let _in_progress = small.then(|| state.metrics.upload_in_progress());
    let (upload, received) = match small {
        true => {
            let (frames, received) = gather(state, &mut body).await;
            (upload, received.map(|()| frames))
        }
        false => {
            let (upload, received) = receive(state, upload, body).await;
            (upload, received.map(|()| Vec::new()))
        }
    };
    let rest = match received {
        Ok(rest) => rest,
        Err(e) => {
            blocking(move || upload.cancel()).await?;
            return Err(e);
        }
    };
    let store = state.store.clone();
    let id = upload.id().clone();
    let result = commit(upload, rest, &name, digest).await;
    if result.is_err() {
        // The commit kept the session for a retry that a single-request client never makes.
        let _ = blocking(move || store.cancel_upload(&name, &id)).await;
    }
    result
}

/// `?mount=<digest>&from=<repo>`: links the blob when `from` has it (or, with no `from`, when
/// the registry has it at all). `None` means "start a normal session instead", as the spec says.
async fn try_mount(
    state: &Arc<AppState>,
    name: &RepositoryName,
    mount: &str,
    from: Option<String>,
) -> Option<Response<Body>> {
    let digest = parse_digest(mount).ok()?;
    let from = match from {
        Some(from) => Some(RepositoryName::parse(&from).ok()?),
        None => None,
    };
    let store = state.store.clone();
    let (to, linked) = (name.clone(), digest.clone());
    let source = from.as_ref().map(ToString::to_string);
    let mounted = blocking(move || match from {
        Some(from) => store.mount_blob(&from, &to, &linked),
        None => store.stat_global(&linked).and_then(|info| {
            store.link_blob(&to, &linked, &info.digest)?;
            Ok(info)
        }),
    })
    .await
    .ok()?;
    let mut response = blob_created(name, &digest);
    let mut happened = Happened::new(EventAction::Mount, name, &digest).size(mounted.size);
    happened.from_repository = source;
    events::record(&mut response, happened);
    Some(response)
}

/// What a request says the session holds: its upload token's offset and its `Content-Range`
/// start, each if given. Checked against the stored offset before anything is appended.
struct Expected {
    token_offset: Option<i64>,
    chunk_start: Option<u64>,
}

impl Expected {
    /// Reads and checks what needs no storage: the token (signature, this session), and a
    /// `Content-Range` that parses and agrees with `Content-Length`.
    fn of(
        state: &AppState,
        name: &RepositoryName,
        id: &UploadId,
        request: &Request<RequestBody>,
    ) -> Result<Expected, ApiError> {
        let token = query_param(request.uri(), "_state")
            .map(|token| state.signer.verify(&token))
            .transpose()?;
        if let Some(token) = &token {
            if token.name != name.as_str() || token.uuid != id.as_str() {
                return Err(ApiError::with_message(
                    ErrorCode::BlobUploadInvalid,
                    "upload token is for another upload",
                ));
            }
        }
        let chunk = match header_str(request.headers(), &CONTENT_RANGE) {
            Some(value) => Some(
                parse_content_range(value)
                    .map_err(|e| ApiError::with_message(ErrorCode::RangeInvalid, e.to_string()))?,
            ),
            None => None,
        };
        if let (Some(chunk), Some(length)) = (chunk, content_length(request)) {
            if chunk.len() != length {
                return Err(ApiError::new(
                    ErrorCode::SizeInvalid,
                    Some(
                        serde_json::json!({ "content_range": chunk.len(), "content_length": length }),
                    ),
                ));
            }
        }
        Ok(Expected {
            token_offset: token.map(|t| t.offset),
            chunk_start: chunk.map(|c| c.start),
        })
    }

    /// True when the session holds `offset` bytes, as the request expects.
    fn matches(&self, offset: u64) -> bool {
        let stale_token = self
            .token_offset
            .is_some_and(|t| u64::try_from(t).ok() != Some(offset));
        let out_of_order = self.chunk_start.is_some_and(|start| start != offset);
        !stale_token && !out_of_order
    }
}

/// Opens an upload for writing after checking its token (if any) and `Content-Range` (if any)
/// against the bytes it holds. A mismatch is a 416 that tells the client where it stands.
async fn open_checked(
    state: &Arc<AppState>,
    name: &RepositoryName,
    id: &UploadId,
    request: &Request<RequestBody>,
) -> Result<Upload, ApiError> {
    let expected = Expected::of(state, name, id, request)?;
    let store = state.store.clone();
    let (repo, upload_id) = (name.clone(), id.clone());
    let upload = blocking(move || store.resume_upload(&repo, &upload_id)).await?;
    match expected.matches(upload.offset()) {
        true => Ok(upload),
        false => Err(range_invalid(state, name, id, upload.offset())),
    }
}

/// How a small `PUT`'s one blocking call ended, when the store raised no error.
enum SmallPut {
    /// Committed, at this size.
    Committed(u64),
    /// The session holds another offset than the request expects.
    Mismatch(u64),
    /// The body failed with this error; what arrived is appended, the upload is to be
    /// checkpointed.
    Cut(Box<Upload>, ApiError),
}

/// `PUT ?digest=` with a body of at most one batch: the body is gathered first, then one
/// blocking call opens the session, checks the offset, appends and commits (three hand-offs
/// to a blocking thread become one). A mismatch is still a 416 with nothing appended.
async fn put_small(
    state: &Arc<AppState>,
    name: RepositoryName,
    id: UploadId,
    digest: Digest,
    request: Request<RequestBody>,
) -> Result<Response<Body>, ApiError> {
    let expected = Expected::of(state, &name, &id, &request)?;
    let _in_progress = state.metrics.upload_in_progress();
    let (frames, received) = gather(state, &mut request.into_body()).await;
    let store = state.store.clone();
    let (repo, upload_id, claimed) = (name.clone(), id.clone(), digest.clone());
    let body_error = received.err();
    let outcome = blocking(move || -> Result<SmallPut, StoreError> {
        let mut upload = store.resume_upload(&repo, &upload_id)?;
        if !expected.matches(upload.offset()) {
            return Ok(SmallPut::Mismatch(upload.offset()));
        }
        upload.append_pieces(&frames)?;
        if let Some(error) = body_error {
            return Ok(SmallPut::Cut(Box::new(upload), error));
        }
        let size = upload.offset();
        upload.commit(&claimed, None)?;
        Ok(SmallPut::Committed(size))
    })
    .await?;
    match outcome {
        SmallPut::Committed(size) => Ok(committed(&name, &digest, size)),
        SmallPut::Mismatch(offset) => Err(range_invalid(state, &name, &id, offset)),
        SmallPut::Cut(upload, error) => {
            let _ = checkpoint(state, *upload).await;
            Err(error)
        }
    }
}

/// Makes what arrived durable and resumable; returns the new offset.
///
/// Where the storage can sync later ([`Upload::checkpoint_deferred`]), the fsync and the hash
/// state's save run on a blocking thread after the answer: a 202 is not a durability promise
/// (after a crash a client asks the status and resends from there), and a client sending
/// chunks one after the other no longer waits for the disk between them. The handle is parked
/// for the session's next request either way ([`Store::park_upload`](crate::store::Store)).
async fn checkpoint(state: &Arc<AppState>, mut upload: Upload) -> Result<u64, ApiError> {
    let store = state.store.clone();
    let (offset, pending) = blocking(move || {
        let pending = upload.checkpoint_deferred()?;
        let offset = upload.offset();
        store.park_upload(upload);
        Ok::<_, StoreError>((offset, pending))
    })
    .await?;
    if let Some(pending) = pending {
        tokio::task::spawn_blocking(move || {
            let offset = pending.offset();
            if let Err(e) = pending.run() {
                tracing::warn!(error = %e, offset, "deferred upload checkpoint failed");
            }
        });
    }
    Ok(offset)
}

/// Commits `upload` after appending `rest` (a small body gathered by [`gather`]), in one
/// blocking call.
async fn commit(
    mut upload: Upload,
    rest: Vec<Bytes>,
    name: &RepositoryName,
    digest: Digest,
) -> Result<Response<Body>, ApiError> {
    let claimed = digest.clone();
    let size = blocking(move || {
        if !rest.is_empty() {
            upload.append_pieces(&rest)?;
        }
        let size = upload.offset();
        upload.commit(&claimed, None)?;
        Ok::<_, StoreError>(size)
    })
    .await?;
    Ok(committed(name, &digest, size))
}

/// The 201 for a pushed blob of `size` bytes, with its event.
fn committed(name: &RepositoryName, digest: &Digest, size: u64) -> Response<Body> {
    let mut response = blob_created(name, digest);
    events::record(
        &mut response,
        Happened::new(EventAction::Push, name, digest).size(size),
    );
    response
}

/// 201 for a blob now in the repository.
fn blob_created(name: &RepositoryName, digest: &Digest) -> Response<Body> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::CREATED;
    let headers = response.headers_mut();
    headers.insert(LOCATION, header_value(format!("/v2/{name}/blobs/{digest}")));
    headers.insert(DOCKER_CONTENT_DIGEST, header_value(digest.to_string()));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
    response
}

/// 202/204 describing a session: fresh `Location` with a token, `Range`, `Docker-Upload-UUID`.
fn session_response(
    state: &AppState,
    status: StatusCode,
    name: &RepositoryName,
    id: &UploadId,
    offset: u64,
) -> Response<Body> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = status;
    for (header, value) in session_headers(state, name, id, offset) {
        response.headers_mut().insert(header, value);
    }
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(0));
    response
}

/// 416 `BLOB_UPLOAD_INVALID` that keeps the upload and says where it stands.
fn range_invalid(state: &AppState, name: &RepositoryName, id: &UploadId, offset: u64) -> ApiError {
    session_headers(state, name, id, offset)
        .into_iter()
        .fold(ApiError::new(ErrorCode::RangeInvalid, None), |e, (h, v)| {
            e.header(h, v)
        })
}

fn session_headers(
    state: &AppState,
    name: &RepositoryName,
    id: &UploadId,
    offset: u64,
) -> Vec<(HeaderName, HeaderValue)> {
    let token = state.signer.sign(&UploadState {
        name: name.to_string(),
        uuid: id.to_string(),
        offset: i64::try_from(offset).unwrap_or(i64::MAX),
        started_at: rfc3339::format(std::time::SystemTime::now()),
    });
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("_state", &token)
        .finish();
    vec![
        (
            LOCATION,
            header_value(format!("/v2/{name}/blobs/uploads/{id}?{query}")),
        ),
        // distribution's form: `0-<last byte>`, and `0-0` for an empty upload.
        (
            RANGE,
            header_value(format!("0-{}", offset.saturating_sub(1))),
        ),
        (
            HeaderName::from_static(DOCKER_UPLOAD_UUID),
            header_value(id.to_string()),
        ),
    ]
}

/// A digest from a query parameter. Form decoding turns an unescaped `+` (as in
/// `tarsum.v1+sha256:…`, which clients often leave unescaped) into a space; no digest contains a
/// space, so it is read back as the `+` it was.
fn parse_digest(text: &str) -> Result<Digest, ApiError> {
    Digest::parse(&text.replace(' ', "+"))
        .map_err(|e| ApiError::with_message(ErrorCode::DigestInvalid, e.to_string()))
}
