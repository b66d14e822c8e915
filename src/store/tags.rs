//! Tags: `_manifests/tags/<tag>/current/link` (what the tag names now) and
//! `_manifests/tags/<tag>/index/<alg>/<hex>/link` (every manifest it has named), as distribution
//! writes them. Only the links live here; manifests themselves are another module's concern.

use crate::digest::Digest;
use crate::names::{RepositoryName, Tag};
use crate::storage::paths::encode_link;
use crate::storage::{PathSpec, StorageError};

use super::{Store, StoreError};

impl Store {
    /// Points `tag` at `digest`: writes the history entry first and the current link after, as
    /// distribution does, so a crash in between leaves the old target current.
    ///
    /// ```
    /// use layerstore::names::{RepositoryName, Tag};
    /// use layerstore::store::Store;
    /// use layerstore::Digest;
    ///
    /// let store = Store::in_memory();
    /// let repo = RepositoryName::parse("app").unwrap();
    /// let latest = Tag::parse("latest").unwrap();
    /// let manifest = Digest::sha256(b"{}");
    /// store.tag(&repo, &latest, &manifest).unwrap();
    /// assert_eq!(store.resolve_tag(&repo, &latest).unwrap(), manifest);
    /// assert_eq!(store.tags(&repo).unwrap(), [latest.clone()]);
    /// store.untag(&repo, &latest).unwrap();
    /// assert!(store.resolve_tag(&repo, &latest).is_err());
    /// ```
    pub fn tag(&self, repo: &RepositoryName, tag: &Tag, digest: &Digest) -> Result<(), StoreError> {
        let index = PathSpec::TagIndexEntryLink { repo, tag, digest }.to_path()?;
        self.driver.put_content(&index, &encode_link(digest))?;
        let current = PathSpec::TagCurrentLink { repo, tag }.to_path()?;
        self.driver.put_content(&current, &encode_link(digest))?;
        Ok(())
    }

    /// The manifest digest `tag` currently names ([`StoreError::TagUnknown`] if none).
    pub fn resolve_tag(&self, repo: &RepositoryName, tag: &Tag) -> Result<Digest, StoreError> {
        let current = PathSpec::TagCurrentLink { repo, tag }.to_path()?;
        self.read_link(&current)?
            .ok_or_else(|| StoreError::TagUnknown(tag.clone()))
    }

    /// The repository's tags, sorted (v3 behaviour; 2.8 returned directory order). A repository
    /// without a tags directory is [`StoreError::NameUnknown`], as in distribution. Entries that
    /// are not valid tags are skipped.
    pub fn tags(&self, repo: &RepositoryName) -> Result<Vec<Tag>, StoreError> {
        let dir = PathSpec::TagsDir { repo }.to_path()?;
        let children = match self.driver.list(&dir) {
            Ok(children) => children,
            Err(StorageError::NotFound(_)) => return Err(StoreError::NameUnknown(repo.clone())),
            Err(e) => return Err(e.into()),
        };
        let mut tags: Vec<Tag> = children
            .iter()
            .filter_map(|p| Tag::parse(p.name()).ok())
            .collect();
        tags.sort();
        Ok(tags)
    }

    /// Deletes the tag and its history (v3 untag). The manifests stay.
    pub fn untag(&self, repo: &RepositoryName, tag: &Tag) -> Result<(), StoreError> {
        let dir = PathSpec::TagDir { repo, tag }.to_path()?;
        match self.driver.delete(&dir) {
            Ok(()) => Ok(()),
            Err(StorageError::NotFound(_)) => Err(StoreError::TagUnknown(tag.clone())),
            Err(e) => Err(e.into()),
        }
    }
}
