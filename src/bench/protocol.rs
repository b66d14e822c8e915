//! The OCI distribution requests a benchmark makes, each verifying the answer the spec
//! requires: start an upload, send a chunk, complete with `?digest=`, check a blob's head.
//! Scenarios compose these; the checks live here once so a fast wrong server fails everywhere.

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{header, Method, Response};

use super::client::{self, Connection, RequestBody};
use super::error::BenchError;
use crate::digest::Digest;

/// Largest body read from a status reply (error JSON, empty 201/202 bodies).
const SMALL_REPLY_LIMIT: usize = 64 * 1024;

/// An upload session: the resolved path (and query) to send the next request to, on
/// whichever server's turn it is (only a path is kept, so the upload can move between servers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Path and query from the last `Location`.
    pub location: String,
}

/// `POST /v2/REPO/blobs/uploads/`: expects 202 and a `Location`.
pub async fn start_upload(conn: &mut Connection, repository: &str) -> Result<Session, BenchError> {
    const STEP: &str = "start upload (POST)";
    let path = conn.api_path(&format!("{repository}/blobs/uploads/"));
    let request = client::request(Method::POST, &path)
        .header(header::CONTENT_LENGTH, 0)
        .body(client::empty())
        .map_err(|source| BenchError::Request { step: STEP, source })?;
    let response = conn.send(STEP, request).await?;
    let session = next_session(conn, STEP, &path, &response, 202)?;
    client::read_body(STEP, response.into_body(), SMALL_REPLY_LIMIT).await?;
    Ok(session)
}

/// `PATCH` of `len` bytes at `start` with `Content-Range: START-END`: expects 202, a
/// `Location`, and `Range: 0-END` confirming everything so far was received.
pub async fn send_chunk(
    conn: &mut Connection,
    session: &Session,
    start: u64,
    len: u64,
    body: RequestBody,
) -> Result<Session, BenchError> {
    const STEP: &str = "chunk (PATCH)";
    let end = start + len - 1;
    let request = client::request(Method::PATCH, &session.location)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, len)
        .header(header::CONTENT_RANGE, format!("{start}-{end}"))
        .body(body)
        .map_err(|source| BenchError::Request { step: STEP, source })?;
    let response = conn.send(STEP, request).await?;
    let next = next_session(conn, STEP, &session.location, &response, 202)?;
    expect_header(STEP, &response, "range", &format!("0-{end}"))?;
    client::read_body(STEP, response.into_body(), SMALL_REPLY_LIMIT).await?;
    Ok(next)
}

/// `GET` on an upload: expects 204, a `Location`, and `Range: 0-END` where `END + 1` is
/// `offset`, the number of bytes this client sent (so it must be at least 1).
pub async fn upload_status(
    conn: &mut Connection,
    session: &Session,
    offset: u64,
) -> Result<Session, BenchError> {
    const STEP: &str = "upload status (GET)";
    let request = client::request(Method::GET, &session.location)
        .body(client::empty())
        .map_err(|source| BenchError::Request { step: STEP, source })?;
    let response = conn.send(STEP, request).await?;
    let next = next_session(conn, STEP, &session.location, &response, 204)?;
    let end = offset.saturating_sub(1);
    expect_header(STEP, &response, "range", &format!("0-{end}"))?;
    client::read_body(STEP, response.into_body(), SMALL_REPLY_LIMIT).await?;
    Ok(next)
}

/// `PUT LOCATION?digest=D` with `len` bytes of `body` (0 after chunks): expects 201 and, if the
/// server sends it, `Docker-Content-Digest: D`.
pub async fn complete_upload(
    conn: &mut Connection,
    session: &Session,
    digest: &Digest,
    len: u64,
    body: RequestBody,
) -> Result<(), BenchError> {
    const STEP: &str = "complete upload (PUT ?digest=)";
    let separator = if session.location.contains('?') {
        '&'
    } else {
        '?'
    };
    // A digest is `algorithm:hex`; ':' is allowed in a query, so no escaping is needed.
    let uri = format!("{}{separator}digest={digest}", session.location);
    let request = client::request(Method::PUT, &uri)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, len)
        .body(body)
        .map_err(|source| BenchError::Request { step: STEP, source })?;
    let response = conn.send(STEP, request).await?;
    client::expect_status(STEP, &response, 201)?;
    if client::header(&response, "docker-content-digest").is_some() {
        expect_header(
            STEP,
            &response,
            "docker-content-digest",
            &digest.to_string(),
        )?;
    }
    if client::header(&response, "location").is_none() {
        return Err(BenchError::MissingHeader {
            step: STEP,
            header: "Location",
        });
    }
    client::read_body(STEP, response.into_body(), SMALL_REPLY_LIMIT).await?;
    Ok(())
}

/// Pushes `body` (`len` bytes with digest `digest`) as POST + monolithic PUT.
pub async fn push_monolithic(
    conn: &mut Connection,
    repository: &str,
    digest: &Digest,
    len: u64,
    body: RequestBody,
) -> Result<(), BenchError> {
    let session = start_upload(conn, repository).await?;
    complete_upload(conn, &session, digest, len, body).await
}

/// `HEAD /v2/REPO/blobs/D`: expects 200, `Content-Length: LEN` and, if sent,
/// `Docker-Content-Digest: D`.
pub async fn check_blob(
    conn: &mut Connection,
    repository: &str,
    digest: &Digest,
    len: u64,
) -> Result<(), BenchError> {
    const STEP: &str = "check blob (HEAD)";
    let path = conn.api_path(&format!("{repository}/blobs/{digest}"));
    let request = client::request(Method::HEAD, &path)
        .body(client::empty())
        .map_err(|source| BenchError::Request { step: STEP, source })?;
    let response = conn.send(STEP, request).await?;
    client::expect_status(STEP, &response, 200)?;
    expect_header(STEP, &response, "content-length", &len.to_string())?;
    if client::header(&response, "docker-content-digest").is_some() {
        expect_header(
            STEP,
            &response,
            "docker-content-digest",
            &digest.to_string(),
        )?;
    }
    client::read_body(STEP, response.into_body(), 0).await?;
    Ok(())
}

/// Path of blob `digest` in `repository`.
pub fn blob_path(conn: &Connection, repository: &str, digest: &Digest) -> String {
    conn.api_path(&format!("{repository}/blobs/{digest}"))
}

/// Fails unless header `name` is exactly `expected`.
pub fn expect_header(
    step: &'static str,
    response: &Response<Incoming>,
    name: &'static str,
    expected: &str,
) -> Result<(), BenchError> {
    let got =
        client::header(response, name).ok_or(BenchError::MissingHeader { step, header: name })?;
    if got == expected {
        Ok(())
    } else {
        Err(BenchError::HeaderMismatch {
            step,
            header: name,
            expected: expected.to_owned(),
            got: got.to_owned(),
        })
    }
}

/// Checks the status and resolves the reply's `Location`, against the server that sent it
/// (so an absolute URL must name that server, whichever server the next request goes to).
fn next_session(
    conn: &Connection,
    step: &'static str,
    request_path: &str,
    response: &Response<Incoming>,
    expected: u16,
) -> Result<Session, BenchError> {
    client::expect_status(step, response, expected)?;
    let location = client::header(response, "location").ok_or(BenchError::MissingHeader {
        step,
        header: "Location",
    })?;
    let resolved = conn
        .target()
        .resolve_location(request_path, location)
        .ok_or_else(|| BenchError::BadLocation {
            step,
            location: location.to_owned(),
        })?;
    Ok(Session { location: resolved })
}

/// A buffer body (re-exported for scenarios pushing small blobs).
pub fn bytes_body(bytes: Bytes) -> RequestBody {
    client::full(bytes)
}
