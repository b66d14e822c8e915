//! Blob reads: existence, verified streams, whole small blobs (single flight), ranges, and
//! resumable downloads to a file.
//!
//! Every whole-blob read is hashed while it streams and fails with
//! [`ClientError::DigestMismatch`] if the bytes are not the digest's; a download's partial file
//! keeps its hash state beside it, so an interrupted pull continues where it stopped without
//! reading back what it already has.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, RANGE};
use hyper::{Method, StatusCode};

use super::auth::Scopes;
use super::error::ClientError;
use super::registry::{Call, Registry};
use super::transport::error_chain;
use crate::digest::{Algorithm, Digest};
use crate::hash::Hasher;
use crate::names::RepositoryName;

/// How often (in bytes) a download saves its hash state beside the partial file.
const CHECKPOINT_BYTES: u64 = 8 << 20;

/// The API path of `rest` in repository `repo` (checked, so no name can reach another path).
pub(crate) fn repo_path(repo: &str, rest: &str) -> Result<String, ClientError> {
    let name = RepositoryName::parse(repo).map_err(|e| ClientError::InvalidUrl {
        url: repo.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(format!("/v2/{}/{rest}", name.as_str()))
}

pub(crate) fn pull(repo: &str) -> Scopes {
    Scopes::repository(repo, "pull")
}

/// A hasher for `digest`, or an error for digests that cannot be checked by hashing the bytes
/// (TarSum).
pub(crate) fn verifier(digest: &Digest) -> Result<Hasher, ClientError> {
    match digest.algorithm() {
        Algorithm::Hash(hash) => Ok(Hasher::new(hash)),
        other => Err(ClientError::Protocol(format!(
            "{digest}: {other:?} digests cannot be verified while streaming"
        ))),
    }
}

/// Checks a finished hash against the digest asked for.
pub(crate) fn check_digest(hasher: &Hasher, expected: &Digest) -> Result<(), ClientError> {
    let actual = hasher.digest();
    if &actual == expected {
        Ok(())
    } else {
        Err(ClientError::DigestMismatch {
            expected: expected.clone(),
            actual,
        })
    }
}

/// A blob being read: each chunk is hashed; the end is checked against the digest and size.
#[derive(Debug)]
pub struct BlobStream {
    body: Incoming,
    hasher: Hasher,
    expected: Digest,
    size: Option<u64>,
    finished: bool,
}

impl BlobStream {
    /// The size the registry announced (`Content-Length`), if it did.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// The next piece of the blob; `None` at the end, once the whole blob matched its digest.
    /// A mismatch is [`ClientError::DigestMismatch`] instead of the end: never use bytes of a
    /// stream that did not end with `Ok(None)`.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        if self.finished {
            return Ok(None);
        }
        while let Some(frame) = self.body.frame().await {
            let frame = frame.map_err(|e| ClientError::Transport {
                method: "GET".into(),
                url: self.expected.to_string(),
                reason: error_chain(&e),
            })?;
            if let Ok(data) = frame.into_data() {
                self.hasher.update(&data);
                return Ok(Some(data));
            }
        }
        self.finished = true;
        if let Some(size) = self.size {
            if self.hasher.len() != size {
                return Err(ClientError::SizeMismatch {
                    what: self.expected.to_string(),
                    expected: size,
                    actual: self.hasher.len(),
                });
            }
        }
        check_digest(&self.hasher, &self.expected)?;
        Ok(None)
    }
}

impl Registry {
    /// `HEAD` a blob: its size when the repository has it, `None` when not.
    pub async fn blob_size(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, ClientError> {
        let call = Call::new(
            Method::HEAD,
            repo_path(repo, &format!("blobs/{digest}"))?,
            pull(repo),
        );
        let response = self
            .send(call, &[StatusCode::OK, StatusCode::NOT_FOUND])
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(content_length(&response))
    }

    /// A verified stream of a whole blob.
    pub async fn get_blob(&self, repo: &str, digest: &Digest) -> Result<BlobStream, ClientError> {
        let hasher = verifier(digest)?;
        let call = Call::new(
            Method::GET,
            repo_path(repo, &format!("blobs/{digest}"))?,
            pull(repo),
        );
        let response = self.send(call, &[StatusCode::OK]).await?;
        let size = content_length(&response);
        Ok(BlobStream {
            body: response.into_body(),
            hasher,
            expected: digest.clone(),
            size,
            finished: false,
        })
    }

    /// A whole blob in memory (configs, small files), verified; refused above `limit` bytes.
    /// Concurrent calls for the same blob make one request.
    pub async fn get_blob_bytes(
        &self,
        repo: &str,
        digest: &Digest,
        limit: usize,
    ) -> Result<Bytes, ClientError> {
        let key = format!("bytes {}/{repo}@{digest}", self.host());
        self.inner()
            .flights
            .run(&key, || async {
                let mut stream = self.get_blob(repo, digest).await?;
                let mut bytes = bytes::BytesMut::new();
                while let Some(chunk) = stream.next_chunk().await? {
                    if bytes.len() + chunk.len() > limit {
                        return Err(ClientError::Protocol(format!(
                            "{digest}: larger than {limit} bytes"
                        )));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(bytes.freeze())
            })
            .await
    }

    /// `len` bytes of a blob from `offset` (fewer at its end). A range cannot be checked
    /// against the digest; callers that need integrity read the whole blob.
    pub async fn get_blob_range(
        &self,
        repo: &str,
        digest: &Digest,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, ClientError> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let range = format!("bytes={offset}-{}", offset + len - 1);
        let call = Call::new(
            Method::GET,
            repo_path(repo, &format!("blobs/{digest}"))?,
            pull(repo),
        )
        .header(RANGE, range);
        let response = self
            .send(call, &[StatusCode::PARTIAL_CONTENT, StatusCode::OK])
            .await?;
        let whole = response.status() == StatusCode::OK;
        let limit = if whole { usize::MAX } else { len as usize };
        let body = super::transport::read_body(response, limit, "blob range").await?;
        if whole {
            // The registry ignored the range: cut it out of the whole blob.
            let start = (offset as usize).min(body.len());
            let end = (offset + len).min(body.len() as u64) as usize;
            return Ok(body.slice(start..end));
        }
        Ok(body)
    }

    /// Downloads a blob to `path`, verified. Bytes arrive in `path.partial` with the hash
    /// state saved beside it (`path.partial.state`) every few MiB; an interrupted download
    /// continues from the saved state with a range request. The file appears at `path` only
    /// once complete and verified. Concurrent calls for the same blob and path make one
    /// request. `progress` is told the bytes on disk so far.
    pub async fn download_blob(
        &self,
        repo: &str,
        digest: &Digest,
        path: &Path,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<u64, ClientError> {
        let key = format!("file {}/{repo}@{digest} {}", self.host(), path.display());
        self.inner()
            .flights
            .run(&key, || {
                super::download::download(self, repo, digest, path, progress)
            })
            .await
    }
}

/// `Content-Length` of a response.
pub(crate) fn content_length<B>(response: &hyper::Response<B>) -> Option<u64> {
    response
        .headers()
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// `PATH.partial` and `PATH.partial.state`.
pub(crate) fn partial_paths(path: &Path) -> (PathBuf, PathBuf) {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let mut state = partial.clone();
    state.push(".state");
    (PathBuf::from(partial), PathBuf::from(state))
}

pub(crate) const DOWNLOAD_CHECKPOINT_BYTES: u64 = CHECKPOINT_BYTES;
