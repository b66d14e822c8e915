//! Blob pushes: existence check, cross-repository mount, monolithic and chunked uploads, and
//! resuming an upload from the offset the registry reports (after a dropped connection, or in
//! a later process that kept the upload's URL).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use hyper::{Method, Response, StatusCode};

use super::auth::Scopes;
use super::blobs::repo_path;
use super::error::ClientError;
use super::registry::{Call, Registry};
use super::transport::Payload;
use crate::digest::Digest;

/// Bytes per frame of a file being sent.
const FILE_FRAME: usize = 256 << 10;
/// Failed chunks (or commits) of one push retried after asking the registry where it stands.
const MAX_CHUNK_FAILURES: u32 = 5;
/// Pause before asking again, times the failures so far.
const RECHECK_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

/// True when the registry refused a request because the upload session is in use or in an
/// unexpected state, as right after an interrupted request (layerstore holds a session until
/// the aborted request has saved what it received): worth asking the status and going on.
fn is_busy(error: &ClientError) -> bool {
    matches!(error, ClientError::Status { code: Some(code), .. } if code == "BLOB_UPLOAD_INVALID")
}

/// The registry no longer knows the upload session (404 `BLOB_UPLOAD_UNKNOWN`).
fn is_upload_unknown(error: &ClientError) -> bool {
    matches!(error, ClientError::Status { code: Some(code), .. } if code == "BLOB_UPLOAD_UNKNOWN")
}

/// Told an upload session's URL (to keep for a resume).
pub type SessionHook = Arc<dyn Fn(&str) + Send + Sync>;
/// Told the bytes done so far.
pub type ProgressHook = Arc<dyn Fn(u64) + Send + Sync>;

/// How a file is pushed.
#[derive(Clone, Default)]
pub struct PushOptions {
    /// Send the blob in `PATCH` requests of this many bytes, so an interruption costs at most
    /// one chunk; `None` sends it in one request.
    pub chunk_size: Option<u64>,
    /// Try a cross-repository mount from this repository first.
    pub mount_from: Option<String>,
    /// Continue the upload at this URL (from an earlier, interrupted push) when the registry
    /// still has it.
    pub resume_location: Option<String>,
    /// Told the upload's URL when the session opens and after each chunk, to keep for a later
    /// resume.
    pub on_session: Option<SessionHook>,
    /// Told the bytes the registry holds so far.
    pub progress: Option<ProgressHook>,
}

impl std::fmt::Debug for PushOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushOptions")
            .field("chunk_size", &self.chunk_size)
            .field("mount_from", &self.mount_from)
            .finish_non_exhaustive()
    }
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The repository already had the blob: nothing sent.
    Exists,
    /// Mounted from another repository: nothing sent.
    Mounted,
    /// Uploaded; `resumed_from` bytes were already in the registry.
    Uploaded {
        /// Bytes the registry held before this push sent anything.
        resumed_from: u64,
    },
}

fn push_scope(repo: &str) -> Scopes {
    Scopes::repository(repo, "pull,push")
}

impl Registry {
    /// Pushes bytes held in memory as a blob (one `POST ?digest=` request) and returns their
    /// digest; a blob the repository has is not sent again.
    pub async fn push_blob_bytes(&self, repo: &str, bytes: Bytes) -> Result<Digest, ClientError> {
        let digest = Digest::sha256(&bytes);
        if self.blob_size(repo, &digest).await? == Some(bytes.len() as u64) {
            return Ok(digest);
        }
        let call = Call::new(
            Method::POST,
            repo_path(repo, &format!("blobs/uploads/?digest={digest}"))?,
            push_scope(repo),
        )
        .header(CONTENT_TYPE, "application/octet-stream")
        .payload(Payload::Bytes(bytes));
        let response = self
            .send(call, &[StatusCode::CREATED, StatusCode::ACCEPTED])
            .await?;
        if response.status() == StatusCode::CREATED {
            return Ok(digest);
        }
        // A registry without single-request uploads opened a session instead: finish it.
        let location = location_header(&response)?;
        self.commit_upload(repo, &location, &digest).await?;
        Ok(digest)
    }

    /// Mounts `digest` from repository `from` into `repo`. `false` when the registry declined
    /// (it does not have the blob there, or the credentials may not read `from`); the session
    /// it opened instead is cancelled.
    pub async fn mount_blob(
        &self,
        repo: &str,
        digest: &Digest,
        from: &str,
    ) -> Result<bool, ClientError> {
        let query = format!("blobs/uploads/?mount={digest}&from={from}");
        let scopes = push_scope(repo).and_repository(from, "pull");
        let call = Call::new(Method::POST, repo_path(repo, &query)?, scopes);
        let response = self
            .send(call, &[StatusCode::CREATED, StatusCode::ACCEPTED])
            .await?;
        if response.status() == StatusCode::CREATED {
            return Ok(true);
        }
        if let Ok(location) = location_header(&response) {
            let cancel = Call::new(Method::DELETE, location, push_scope(repo));
            let _ = self.execute(cancel).await;
        }
        Ok(false)
    }

    /// Pushes the file at `path` (of `size` bytes, hashing to `digest`) as a blob.
    pub async fn push_blob_file(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        path: &Path,
        options: &PushOptions,
    ) -> Result<PushOutcome, ClientError> {
        if self.blob_size(repo, digest).await?.is_some() {
            return Ok(PushOutcome::Exists);
        }
        if let Some(from) = &options.mount_from {
            if self.mount_blob(repo, digest, from).await? {
                return Ok(PushOutcome::Mounted);
            }
        }
        let mut session = match &options.resume_location {
            Some(location) => self.upload_status(repo, location).await?,
            None => None,
        };
        if session.is_none() {
            session = Some(self.start_upload(repo).await?);
        }
        let (mut location, mut offset) = session.expect("a session was opened");
        if let Some(on_session) = &options.on_session {
            on_session(&location);
        }
        let resumed_from = offset;
        let report = |held: u64| {
            if let Some(progress) = &options.progress {
                progress(held);
            }
        };
        report(offset);
        let mut failures = 0;
        while offset < size {
            let len = options
                .chunk_size
                .map_or(size - offset, |c| c.max(1).min(size - offset));
            match self
                .send_chunk(repo, &location, path, offset, len, size)
                .await
            {
                Ok(next) => {
                    location = next;
                    offset += len;
                    report(offset);
                    if let Some(on_session) = &options.on_session {
                        on_session(&location);
                    }
                }
                Err(e) if (e.is_transient() || is_busy(&e)) && failures < MAX_CHUNK_FAILURES => {
                    failures += 1;
                    tokio::time::sleep(RECHECK_PAUSE * failures).await;
                    tracing::debug!(error = %e, "chunk failed; asking the registry where it stands");
                    let (next, held) =
                        self.upload_status(repo, &location).await?.ok_or_else(|| {
                            ClientError::Protocol("the upload session vanished".into())
                        })?;
                    location = next;
                    offset = held;
                }
                Err(e) => return Err(e),
            }
        }
        self.commit_upload(repo, &location, digest).await?;
        Ok(PushOutcome::Uploaded { resumed_from })
    }

    /// The final `PUT ?digest=` of an upload session at `location`. A PUT is retried after a
    /// transport failure; when the first attempt did commit and only its answer was lost, the
    /// retry finds the session gone (404 `BLOB_UPLOAD_UNKNOWN`). The blob being in `repo` under
    /// `digest` (which the registry verified when it committed) is then the answer.
    async fn commit_upload(
        &self,
        repo: &str,
        location: &str,
        digest: &Digest,
    ) -> Result<(), ClientError> {
        let call = Call::new(Method::PUT, with_digest(location, digest), push_scope(repo));
        match self.send(call, &[StatusCode::CREATED]).await {
            Ok(response) => check_returned_digest(&response, digest),
            Err(e) if is_upload_unknown(&e) => match self.blob_size(repo, digest).await {
                Ok(Some(_)) => Ok(()),
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Opens an upload session: its URL and offset (0).
    pub async fn start_upload(&self, repo: &str) -> Result<(String, u64), ClientError> {
        let call = Call::new(
            Method::POST,
            repo_path(repo, "blobs/uploads/")?,
            push_scope(repo),
        );
        let response = self.send(call, &[StatusCode::ACCEPTED]).await?;
        Ok((self.url(&location_header(&response)?)?, 0))
    }

    /// Where the upload at `location` stands: its fresh URL and the bytes the registry holds,
    /// or `None` when the registry no longer knows it.
    pub async fn upload_status(
        &self,
        repo: &str,
        location: &str,
    ) -> Result<Option<(String, u64)>, ClientError> {
        let call = Call::new(Method::GET, location, push_scope(repo));
        let response = self
            .send(call, &[StatusCode::NO_CONTENT, StatusCode::NOT_FOUND])
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let held = response
            .headers()
            .get(RANGE)
            .and_then(|r| r.to_str().ok())
            .and_then(|r| r.rsplit('-').next()?.parse::<u64>().ok())
            .map_or(0, |end| end + 1);
        let next = match response.headers().get(LOCATION) {
            Some(_) => self.url(&location_header(&response)?)?,
            None => location.to_owned(),
        };
        Ok(Some((next, held)))
    }

    /// `PATCH`es bytes `offset..offset+len` of the file; returns the next URL.
    async fn send_chunk(
        &self,
        repo: &str,
        location: &str,
        path: &Path,
        offset: u64,
        len: u64,
        size: u64,
    ) -> Result<String, ClientError> {
        let body = file_body(path.to_owned(), offset, len);
        let mut call = Call::new(Method::PATCH, location, push_scope(repo))
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, len)
            .payload(body);
        if offset > 0 || len < size {
            call = call.header(CONTENT_RANGE, format!("{offset}-{}", offset + len - 1));
        }
        let response = self
            .send(call, &[StatusCode::ACCEPTED, StatusCode::NO_CONTENT])
            .await?;
        self.url(&location_header(&response).unwrap_or_else(|_| location.to_owned()))
    }
}

/// A streamed body of `len` bytes of the file from `offset`, read on a blocking thread.
fn file_body(path: PathBuf, offset: u64, len: u64) -> Payload {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Frame<Bytes>>>(4);
    tokio::task::spawn_blocking(move || {
        let send = |item| tx.blocking_send(item).is_ok();
        let opened =
            std::fs::File::open(&path).and_then(|mut f| f.seek(SeekFrom::Start(offset)).map(|_| f));
        let mut file = match opened {
            Ok(file) => file.take(len),
            Err(e) => {
                send(Err(e));
                return;
            }
        };
        loop {
            let mut buf = vec![0u8; FILE_FRAME];
            match file.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if !send(Ok(Frame::data(Bytes::from(buf)))) {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    send(Err(e));
                    return;
                }
            }
        }
    });
    let stream = tokio_stream_of(rx);
    Payload::Stream(BodyExt::boxed(StreamBody::new(stream)))
}

/// An mpsc receiver as a `Stream`.
fn tokio_stream_of(
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Frame<Bytes>>>,
) -> impl futures_core::Stream<Item = std::io::Result<Frame<Bytes>>> + Send + Sync + Unpin {
    struct Receiver(tokio::sync::mpsc::Receiver<std::io::Result<Frame<Bytes>>>);
    impl futures_core::Stream for Receiver {
        type Item = std::io::Result<Frame<Bytes>>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            self.0.poll_recv(cx)
        }
    }
    Receiver(rx)
}

fn location_header<B>(response: &Response<B>) -> Result<String, ClientError> {
    response
        .headers()
        .get(LOCATION)
        .and_then(|l| l.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| {
            ClientError::Protocol(format!("{} without a Location header", response.status()))
        })
}

/// The upload URL with `digest=` added to its query.
fn with_digest(location: &str, digest: &Digest) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    format!("{location}{separator}digest={digest}")
}

fn check_returned_digest<B>(response: &Response<B>, digest: &Digest) -> Result<(), ClientError> {
    let returned = response
        .headers()
        .get("docker-content-digest")
        .and_then(|d| d.to_str().ok())
        .and_then(|d| d.parse::<Digest>().ok());
    match returned {
        Some(returned) if &returned != digest => Err(ClientError::DigestMismatch {
            expected: digest.clone(),
            actual: returned,
        }),
        _ => Ok(()),
    }
}

impl Registry {
    /// Pushes a blob read from another registry ([`Registry::get_blob`]) without touching the
    /// disk: one streamed `PATCH`, then the commit. If the source stream fails its digest
    /// check, the upload is abandoned before the commit.
    pub async fn push_blob_stream(
        &self,
        repo: &str,
        digest: &Digest,
        mut source: super::blobs::BlobStream,
        progress: Option<ProgressHook>,
    ) -> Result<PushOutcome, ClientError> {
        if self.blob_size(repo, digest).await?.is_some() {
            return Ok(PushOutcome::Exists);
        }
        let (location, _) = self.start_upload(repo).await?;
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Frame<Bytes>>>(8);
        let pump = tokio::spawn(async move {
            let mut sent = 0u64;
            loop {
                match source.next_chunk().await {
                    Ok(Some(chunk)) => {
                        sent += chunk.len() as u64;
                        if tx.send(Ok(Frame::data(chunk))).await.is_err() {
                            return Err(ClientError::Protocol("the upload stopped reading".into()));
                        }
                        if let Some(progress) = &progress {
                            progress(sent);
                        }
                    }
                    Ok(None) => return Ok(sent),
                    Err(e) => {
                        let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                        return Err(e);
                    }
                }
            }
        });
        let body = Payload::Stream(BodyExt::boxed(StreamBody::new(tokio_stream_of(rx))));
        let call = Call::new(Method::PATCH, location.as_str(), push_scope(repo))
            .header(CONTENT_TYPE, "application/octet-stream")
            .payload(body);
        let sent = self
            .send(call, &[StatusCode::ACCEPTED, StatusCode::NO_CONTENT])
            .await;
        let pumped = pump
            .await
            .map_err(|e| ClientError::Protocol(format!("copy task: {e}")))?;
        let response = match (sent, pumped) {
            (_, Err(source_error)) => {
                let _ = self
                    .execute(Call::new(
                        Method::DELETE,
                        location.as_str(),
                        push_scope(repo),
                    ))
                    .await;
                return Err(source_error);
            }
            (Err(e), Ok(_)) => return Err(e),
            (Ok(response), Ok(_)) => response,
        };
        let next = self.url(&location_header(&response).unwrap_or(location))?;
        self.commit_upload(repo, &next, digest).await?;
        Ok(PushOutcome::Uploaded { resumed_from: 0 })
    }
}
