//! Listings: a repository's tags, the catalog of repositories, and the referrers of a subject.
//! Each returns the whole sorted list; the HTTP layer paginates it.

use super::{Store, StoreError};
use crate::digest::Digest;
use crate::manifest::{catalog_order, referrers_tag, Manifest, ReferrerRecord};
use crate::names::{Reference, RepositoryName, Tag};
use crate::storage::paths::digest_from_components;
use crate::storage::{missing_is_ok, FileInfo, PathSpec, StorageError, WalkControl};

impl Store {
    /// The tags of `repo`, sorted. A repository that does not exist is
    /// [`StoreError::NameUnknown`]; one with no tags gives an empty list.
    pub fn tags(&self, repo: &RepositoryName) -> Result<Vec<Tag>, StoreError> {
        let dir = PathSpec::TagsDir { repo }.to_path()?;
        let entries = match self.driver.list(&dir) {
            Ok(entries) => entries,
            Err(StorageError::NotFound(_)) => {
                return match self.driver.stat(&PathSpec::Repository { repo }.to_path()?) {
                    Ok(info) if info.is_dir => Ok(Vec::new()),
                    Ok(_) | Err(StorageError::NotFound(_)) => {
                        Err(StoreError::NameUnknown(repo.clone()))
                    }
                    Err(e) => Err(e.into()),
                };
            }
            Err(e) => return Err(e.into()),
        };
        // Anything that is not a valid tag name (a stray file) is not a tag, and neither is a tag
        // directory without a `current` link (a crash between writing the tag's index entry and
        // its `current` link leaves one): only tags that can be read are listed.
        let mut tags = Vec::with_capacity(entries.len());
        for tag in entries.iter().filter_map(|p| Tag::parse(p.name()).ok()) {
            match self
                .driver
                .stat(&PathSpec::TagCurrentLink { repo, tag: &tag }.to_path()?)
            {
                Ok(info) if !info.is_dir => tags.push(tag),
                Ok(_) | Err(StorageError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        tags.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(tags)
    }

    /// Every repository, in distribution's catalog order (`/` sorts lowest). A directory is a
    /// repository when it holds a `_layers` directory, as in distribution.
    pub fn repositories(&self) -> Result<Vec<RepositoryName>, StoreError> {
        let mut found = self.repositories_holding(&["_layers"])?;
        found.sort_by(|a, b| catalog_order(a.as_str(), b.as_str()));
        Ok(found)
    }

    /// The directories below `repositories/` holding a directory named one of `markers`, as
    /// repository names, in walk order, each once. Nothing below a `_` directory counts.
    pub(crate) fn repositories_holding(
        &self,
        markers: &[&str],
    ) -> Result<Vec<RepositoryName>, StoreError> {
        let root = PathSpec::RepositoriesRoot.to_path()?;
        let prefix_len = root.as_str().len() + 1;
        let mut found: Vec<RepositoryName> = Vec::new();
        let mut visit = |info: &FileInfo| {
            if !info.is_dir {
                return Ok(WalkControl::Continue);
            }
            let name = info.path.name();
            if markers.contains(&name) {
                if let Some(repo) = info.path.parent() {
                    let relative = repo.as_str().get(prefix_len..).unwrap_or_default();
                    match RepositoryName::parse(relative) {
                        Ok(repo) if found.last() != Some(&repo) => found.push(repo),
                        _ => {}
                    }
                }
            }
            Ok(if name.starts_with('_') {
                WalkControl::SkipDir
            } else {
                WalkControl::Continue
            })
        };
        missing_is_ok(self.driver.walk(&root, &mut visit))?;
        Ok(found)
    }

    /// The manifests in `repo` whose `subject` is `subject`: those layerstore indexed when they
    /// were pushed and that are still stored, plus those listed in a client-maintained
    /// referrers tag (`sha256-<hex>`).
    pub fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
    ) -> Result<Vec<ReferrerRecord>, StoreError> {
        let mut records = self.indexed_referrers(repo, subject)?;
        records.extend(self.tagged_referrers(repo, subject)?);
        Ok(records)
    }

    fn indexed_referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
    ) -> Result<Vec<ReferrerRecord>, StoreError> {
        let dir = PathSpec::ReferrersDir { repo, subject }.to_path()?;
        let mut paths = Vec::new();
        let mut visit = |info: &FileInfo| {
            if !info.is_dir && info.path.name() == "descriptor" {
                paths.push(info.path.clone());
            }
            Ok(WalkControl::Continue)
        };
        missing_is_ok(self.driver.walk(&dir, &mut visit))?;
        let mut records = Vec::with_capacity(paths.len());
        for path in paths {
            let bytes = match self.driver.get_content(&path) {
                Ok(bytes) => bytes,
                Err(StorageError::NotFound(_)) => continue, // deleted meanwhile
                Err(e) => return Err(e.into()),
            };
            let record = ReferrerRecord::from_json(&bytes)
                .map_err(|source| StoreError::ReferrerCorrupt { path, source })?;
            // The referrer may have been deleted by another registry sharing the root
            // (distribution's manifest DELETE or garbage-collect), which knows nothing of this
            // index: list only referrers that can still be fetched.
            if self.manifest_revision(repo, &record.digest)?.is_some() {
                records.push(record);
            }
        }
        Ok(records)
    }

    /// The digests of the manifests indexed as referrers of `subject` in `repo` (whether or
    /// not they are still stored): the names of the index's entries.
    pub(crate) fn referrer_digests(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
    ) -> Result<Vec<Digest>, StoreError> {
        let dir = PathSpec::ReferrersDir { repo, subject }.to_path()?;
        let base = dir.as_str().len() + 1;
        let mut found = Vec::new();
        let mut visit = |info: &FileInfo| {
            if !info.is_dir && info.path.name() == "descriptor" {
                let relative = &info.path.as_str()[base..];
                let parts: Vec<&str> = relative.split('/').collect();
                if let [alg @ .., hex, _descriptor] = parts.as_slice() {
                    if let Ok(digest) = digest_from_components(alg, hex) {
                        found.push(digest);
                    }
                }
            }
            Ok(WalkControl::Continue)
        };
        missing_is_ok(self.driver.walk(&dir, &mut visit))?;
        Ok(found)
    }

    fn tagged_referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
    ) -> Result<Vec<ReferrerRecord>, StoreError> {
        let Ok(tag) = Tag::parse(&referrers_tag(subject)) else {
            return Ok(Vec::new());
        };
        let content = match self.get_manifest(repo, &Reference::Tag(tag)) {
            Ok(content) => content,
            Err(StoreError::ManifestUnknown(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(
            match Manifest::parse(Some(&content.media_type), &content.bytes) {
                Ok(index) => ReferrerRecord::from_tag_index(subject, &index),
                Err(_) => Vec::new(), // not an index: not a referrers tag after all
            },
        )
    }
}
