//! Manifests in distribution's layout: the exact bytes as a blob, a revision link per
//! repository, tags as `current` + `index` links, and layerstore's referrers index.
//!
//! Writes go in an order that keeps every crash state consistent: blob bytes (atomic), then the
//! revision link, then the referrer descriptor, then the tag's index entry, then its `current`
//! link (each an atomic temp-file-and-rename). A crash leaves at worst a stored manifest that no
//! tag names yet, which is invisible to readers and harmless to keep.

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::liveness::Dependency;
use super::{Store, StoreError};

/// How often a manifest push looks again after a collection claimed what it relies on before
/// giving up with [`StoreError::CollectionBusy`]. Each claim is decided within half a lease,
/// so a second look normally succeeds.
const MAX_STORE_ATTEMPTS: usize = 5;
use crate::digest::{Algorithm, Digest, HashAlgorithm};
use crate::hash::Hasher;
use crate::manifest::media_type::{DOCKER_SCHEMA1_SIGNED, OCI_INDEX, OCI_MANIFEST};
use crate::manifest::{Manifest, ParsedManifest, ReferenceTarget, ReferrerRecord};
use crate::names::{Reference, RepositoryName, Tag};
use crate::storage::{missing_is_ok, PathSpec, StorageError};

/// What a manifest PUT stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    /// The sha256 of the exact bytes (the canonical digest).
    pub digest: Digest,
    /// The `subject` the manifest refers to, if any (answer with `OCI-Subject`).
    pub subject: Option<Digest>,
}

/// A manifest read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestContent {
    /// The canonical digest of the bytes.
    pub digest: Digest,
    /// The media type to serve it as (`Content-Type`).
    pub media_type: String,
    /// The exact bytes that were pushed.
    pub bytes: Vec<u8>,
}

impl Store {
    /// Validates and stores a manifest pushed to `repo` under `reference`, and tags it with
    /// `reference` (if a tag) and every tag in `extra_tags`.
    ///
    /// Every config, layer and child manifest must already be in the repository; the missing
    /// ones are all named in [`StoreError::ManifestBlobUnknown`]. A `subject` may be absent, as
    /// the OCI spec requires.
    pub fn put_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: &[u8],
        extra_tags: &[Tag],
    ) -> Result<StoredManifest, StoreError> {
        let manifest = Manifest::parse(content_type, bytes)?;
        let digest = manifest.digest().clone();
        if let Reference::Digest(claimed) = reference {
            check_claimed_digest(claimed, &digest, bytes)?;
        }
        let mut revisions = vec![PathSpec::ManifestRevisionLink {
            repo,
            digest: &digest,
        }
        .to_path()?];
        if let Reference::Digest(claimed) = reference {
            if claimed != &digest {
                // A sha512 alias, read through its own revision link.
                revisions.push(
                    PathSpec::ManifestRevisionLink {
                        repo,
                        digest: claimed,
                    }
                    .to_path()?,
                );
            }
        }
        self.store_manifest(repo, &manifest, bytes, &revisions)?;
        let subject = ReferrerRecord::from_manifest(&manifest).map(|record| {
            let subject = record.subject.clone();
            (subject, record)
        });
        if let Some((subject, record)) = &subject {
            let path = PathSpec::ReferrerDescriptor {
                repo,
                subject,
                referrer: &digest,
            }
            .to_path()?;
            self.driver.put_content(&path, &record.to_json())?;
        }
        let tags = match reference {
            Reference::Tag(tag) => std::iter::once(tag).chain(extra_tags).collect::<Vec<_>>(),
            Reference::Digest(_) => extra_tags.iter().collect(),
        };
        for tag in tags {
            self.tag_manifest(repo, tag, &digest)?;
        }
        Ok(StoredManifest {
            digest,
            subject: subject.map(|(subject, _)| subject),
        })
    }

    /// Reads a manifest by tag or digest.
    pub fn get_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<ManifestContent, StoreError> {
        let unknown = || StoreError::ManifestUnknown(reference.clone());
        let digest = match reference {
            Reference::Tag(tag) => self
                .read_link(&PathSpec::TagCurrentLink { repo, tag }.to_path()?)?
                .ok_or_else(unknown)?,
            Reference::Digest(digest) => digest.clone(),
        };
        let canonical = self.manifest_revision(repo, &digest)?.ok_or_else(unknown)?;
        let path = PathSpec::BlobData { digest: &canonical }.to_path()?;
        let bytes = match self.driver.get_content(&path) {
            Ok(bytes) => bytes,
            Err(StorageError::NotFound(_)) => return Err(unknown()),
            Err(e) => return Err(e.into()),
        };
        Ok(ManifestContent {
            digest: canonical,
            media_type: media_type_of(&bytes),
            bytes,
        })
    }

    /// Deletes a manifest revision: its links (the canonical one, and a sha512 alias), its
    /// referrer descriptor, and every tag whose `current` link names it. The bytes stay until a garbage
    /// collection, as in distribution.
    pub fn delete_manifest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<(), StoreError> {
        let reference = Reference::Digest(digest.clone());
        let content = self.get_manifest(repo, &reference)?;
        if let Ok(parsed) = Manifest::parse(Some(&content.media_type), &content.bytes) {
            if let Some(subject) = parsed.subject() {
                let path = PathSpec::ReferrerDescriptor {
                    repo,
                    subject: &subject.digest,
                    referrer: &content.digest,
                };
                delete_if_present(self, &path)?;
            }
        }
        for tag in self.tags(repo).unwrap_or_default() {
            let current = self.read_link(&PathSpec::TagCurrentLink { repo, tag: &tag }.to_path()?);
            if matches!(current, Ok(Some(d)) if d == content.digest || &d == digest) {
                delete_if_present(self, &PathSpec::TagDir { repo, tag: &tag })?;
            }
        }
        // The bytes' sha512 names the alias revision a push by sha512 wrote (if any).
        let mut sha512 = Hasher::new(HashAlgorithm::Sha512);
        sha512.update(&content.bytes);
        for name in [digest, &content.digest, &sha512.digest()] {
            let link = PathSpec::ManifestRevisionLink { repo, digest: name }.to_path()?;
            if let Some(dir) = link.parent() {
                missing_is_ok(self.driver.delete(&dir))?;
            }
        }
        Ok(())
    }

    /// Removes a tag (the manifest stays).
    pub fn delete_tag(&self, repo: &RepositoryName, tag: &Tag) -> Result<(), StoreError> {
        let dir = PathSpec::TagDir { repo, tag }.to_path()?;
        match self.driver.delete(&dir) {
            Ok(()) => Ok(()),
            Err(StorageError::NotFound(_)) => {
                Err(StoreError::ManifestUnknown(Reference::Tag(tag.clone())))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The canonical digest of a manifest stored in `repo` under `digest`: its revision link,
    /// else a legacy `_layers` link (stores written by distribution 2.1.0). `None` if neither.
    pub(super) fn manifest_revision(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<Digest>, StoreError> {
        let revision = PathSpec::ManifestRevisionLink { repo, digest }.to_path()?;
        if let Some(canonical) = self.read_link(&revision)? {
            return Ok(Some(canonical));
        }
        self.read_link(&PathSpec::LayerLink { repo, digest }.to_path()?)
    }

    /// Stores the bytes and the revision links of a valid manifest, so that a garbage
    /// collection running meanwhile cannot take anything it relies on (`docs/gc.md`): every
    /// file it keeps alive is looked at and, if old, touched and checked against the
    /// collection's claims before the links are written; a claim on the links just written
    /// means they may be gone, so everything is looked at and written again.
    fn store_manifest(
        &self,
        repo: &RepositoryName,
        manifest: &ParsedManifest,
        bytes: &[u8],
        revisions: &[crate::storage::DriverPath],
    ) -> Result<(), StoreError> {
        let digest = manifest.digest();
        for _attempt in 0..MAX_STORE_ATTEMPTS {
            let mut deps = self.check_references(repo, manifest)?;
            let mut seen = std::collections::HashSet::from([digest.clone()]);
            for referrer in self.referrer_digests(repo, digest)? {
                self.manifest_dependencies(repo, &referrer, &mut seen, &mut deps)?;
            }
            deps.extend(self.store_manifest_blob(digest, bytes)?);
            if self.hold_fresh(&mut deps)? {
                continue; // a collection decided about one of them: look again
            }
            for revision in revisions {
                super::write_link(&*self.driver, revision, digest)?;
            }
            if !super::liveness::claimed(&*self.driver, revisions)? {
                return Ok(());
            }
        }
        Err(StoreError::CollectionBusy(revisions[0].clone()))
    }

    /// Every config, layer and child manifest must be in `repo` (foreign layers with `urls`
    /// excepted, as in distribution); the missing ones are all named in the error. Returns
    /// the files the manifest relies on: its blobs' bytes, and for each child manifest
    /// everything that child keeps alive.
    fn check_references(
        &self,
        repo: &RepositoryName,
        manifest: &ParsedManifest,
    ) -> Result<Vec<Dependency>, StoreError> {
        let mut missing = Vec::new();
        let mut deps = Vec::new();
        let mut seen = std::collections::HashSet::from([manifest.digest().clone()]);
        for reference in manifest.references() {
            if reference.is_foreign() {
                continue;
            }
            let digest = reference.digest();
            let present = match reference.target {
                ReferenceTarget::Manifest => self
                    .manifest_dependencies(repo, digest, &mut seen, &mut deps)?
                    .is_some(),
                _ => match self.blob_dependency(repo, digest)? {
                    Some(dep) => {
                        deps.push(dep);
                        true
                    }
                    None => false,
                },
            };
            if !present && !missing.contains(digest) {
                missing.push(digest.clone());
            }
        }
        if missing.is_empty() {
            Ok(deps)
        } else {
            Err(StoreError::ManifestBlobUnknown(missing))
        }
    }

    /// Writes the manifest bytes to the blob store unless they are already there; bytes
    /// already there are returned as a dependency.
    fn store_manifest_blob(
        &self,
        digest: &Digest,
        bytes: &[u8],
    ) -> Result<Option<Dependency>, StoreError> {
        let path = PathSpec::BlobData { digest }.to_path()?;
        let existing = self
            .dependency(path.clone())?
            .filter(|d| d.size == bytes.len() as u64);
        if existing.is_none() {
            self.driver.put_content(&path, bytes)?;
        }
        Ok(existing)
    }

    /// Points `tag` at `digest`: the history entry first, then `current`, as distribution does.
    fn tag_manifest(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        digest: &Digest,
    ) -> Result<(), StoreError> {
        self.write_link(&PathSpec::TagIndexEntryLink { repo, tag, digest }, digest)?;
        self.write_link(&PathSpec::TagCurrentLink { repo, tag }, digest)
    }

    fn write_link(&self, spec: &PathSpec<'_>, target: &Digest) -> Result<(), StoreError> {
        super::write_link(&*self.driver, &spec.to_path()?, target)
    }
}

/// A manifest pushed by digest must have that digest (sha256 or a sha512 alias).
fn check_claimed_digest(claimed: &Digest, actual: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
    let matches = match claimed.algorithm() {
        Algorithm::Hash(HashAlgorithm::Sha256) => claimed == actual,
        Algorithm::Hash(hash) => {
            let mut hasher = Hasher::new(hash);
            hasher.update(bytes);
            &hasher.digest() == claimed
        }
        Algorithm::Tarsum { .. } => false,
    };
    if matches {
        Ok(())
    } else {
        Err(StoreError::ManifestDigestMismatch {
            claimed: claimed.clone(),
            actual: actual.clone(),
        })
    }
}

fn delete_if_present(store: &Store, spec: &PathSpec<'_>) -> Result<(), StoreError> {
    Ok(missing_is_ok(store.driver.delete(&spec.to_path()?))?)
}

/// The media type of stored manifest bytes, by distribution's rule on read: the body's
/// `mediaType`, else schema 1 for `schemaVersion: 1`, else an OCI index if it has `manifests`,
/// else an OCI image manifest.
pub fn media_type_of(bytes: &[u8]) -> String {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        schema_version: Option<u64>,
        manifests: Option<IgnoredAny>,
    }
    let Ok(probe) = serde_json::from_slice::<Probe>(bytes) else {
        return OCI_MANIFEST.to_owned();
    };
    match probe {
        Probe {
            media_type: Some(t),
            ..
        } if !t.is_empty() => t,
        Probe {
            schema_version: Some(1),
            ..
        } => DOCKER_SCHEMA1_SIGNED.to_owned(),
        Probe {
            manifests: Some(_), ..
        } => OCI_INDEX.to_owned(),
        _ => OCI_MANIFEST.to_owned(),
    }
}
