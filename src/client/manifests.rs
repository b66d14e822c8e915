//! Manifests by tag or digest (with `Accept` negotiation), pushes and deletes.

use bytes::Bytes;
use hyper::header::{ACCEPT, CONTENT_TYPE};
use hyper::{Method, StatusCode};

use super::auth::Scopes;
use super::blobs::{check_digest, pull, repo_path, verifier};
use super::error::ClientError;
use super::registry::{Call, Registry};
use super::transport::read_body;
use crate::digest::Digest;
use crate::manifest::media_type::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};

/// The largest manifest read (distribution refuses larger ones too).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// The `Accept` list sent by default: images and indexes, OCI and Docker.
pub const DEFAULT_ACCEPT: [&str; 4] = [
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];

/// A manifest as the registry served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Its media type (`Content-Type`).
    pub media_type: String,
    /// Its digest: the one asked for, or the hash of the bytes for a tag.
    pub digest: Digest,
    /// The exact bytes (a manifest's digest covers them as sent).
    pub bytes: Bytes,
}

impl Registry {
    /// Gets a manifest by tag or digest, accepting `accept` media types (empty: the
    /// [`DEFAULT_ACCEPT`] list). A manifest fetched by digest is verified against it; one
    /// fetched by tag is checked against the `Docker-Content-Digest` the registry sent.
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
        accept: &[&str],
    ) -> Result<Manifest, ClientError> {
        let accept = if accept.is_empty() {
            &DEFAULT_ACCEPT[..]
        } else {
            accept
        };
        let call = Call::new(
            Method::GET,
            repo_path(repo, &format!("manifests/{reference}"))?,
            pull(repo),
        )
        .header(ACCEPT, accept.join(", "));
        let response = self.send(call, &[StatusCode::OK]).await?;
        let media_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|c| c.to_str().ok())
            .map(|c| c.split(';').next().unwrap_or(c).trim().to_owned())
            .unwrap_or_default();
        let announced = response
            .headers()
            .get("docker-content-digest")
            .and_then(|d| d.to_str().ok())
            .and_then(|d| d.parse::<Digest>().ok());
        let bytes = read_body(response, MAX_MANIFEST_BYTES, "manifest").await?;
        let expected = reference.parse::<Digest>().ok().or(announced);
        let digest = match expected {
            Some(expected) => {
                let mut hasher = verifier(&expected)?;
                hasher.update(&bytes);
                check_digest(&hasher, &expected)?;
                expected
            }
            None => Digest::sha256(&bytes),
        };
        Ok(Manifest {
            media_type,
            digest,
            bytes,
        })
    }

    /// The digest, media type and size of a manifest without its body (`HEAD`), or `None`
    /// when the repository does not have it.
    pub async fn head_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<(Digest, String, u64)>, ClientError> {
        let call = Call::new(
            Method::HEAD,
            repo_path(repo, &format!("manifests/{reference}"))?,
            pull(repo),
        )
        .header(ACCEPT, DEFAULT_ACCEPT.join(", "));
        let response = self
            .send(call, &[StatusCode::OK, StatusCode::NOT_FOUND])
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let digest = header("docker-content-digest")
            .and_then(|d| d.parse::<Digest>().ok())
            .or_else(|| reference.parse().ok())
            .ok_or_else(|| {
                ClientError::Protocol("manifest HEAD without Docker-Content-Digest".into())
            })?;
        let media_type = header("content-type").unwrap_or_default();
        let size = super::blobs::content_length(&response).unwrap_or(0);
        Ok(Some((digest, media_type, size)))
    }

    /// Pushes a manifest under `reference` (a tag, or its digest) and returns its digest.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest, ClientError> {
        let digest = Digest::sha256(&bytes);
        let call = Call::new(
            Method::PUT,
            repo_path(repo, &format!("manifests/{reference}"))?,
            Scopes::repository(repo, "pull,push"),
        )
        .header(CONTENT_TYPE, media_type)
        .payload(super::transport::Payload::Bytes(bytes));
        self.send(call, &[StatusCode::CREATED]).await?;
        Ok(digest)
    }

    /// Deletes a manifest by digest (or, where the registry allows it, a tag).
    pub async fn delete_manifest(&self, repo: &str, reference: &str) -> Result<(), ClientError> {
        let call = Call::new(
            Method::DELETE,
            repo_path(repo, &format!("manifests/{reference}"))?,
            Scopes::repository(repo, "delete"),
        );
        self.send(call, &[StatusCode::ACCEPTED, StatusCode::OK])
            .await
            .map(drop)
    }

    /// Deletes a blob from a repository.
    pub async fn delete_blob(&self, repo: &str, digest: &Digest) -> Result<(), ClientError> {
        let call = Call::new(
            Method::DELETE,
            repo_path(repo, &format!("blobs/{digest}"))?,
            Scopes::repository(repo, "delete"),
        );
        self.send(call, &[StatusCode::ACCEPTED, StatusCode::OK])
            .await
            .map(drop)
    }
}
