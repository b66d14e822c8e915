//! Blobs: the global content-addressable store and the per-repository links into it.
//!
//! Bytes live once, at `blobs/sha256/<xx>/<hex>/data`. A repository can see a blob only through
//! `_layers/<alg>/<hex>/link`, whose content is the canonical (sha256) digest. Readers follow the
//! link's content, not its path, so an alias link (a sha512 path holding a sha256 digest, as
//! distribution writes) reaches the same bytes.

use std::sync::Arc;

use crate::digest::Digest;
use crate::names::RepositoryName;
use crate::storage::paths::parse_link;
use crate::storage::{DriverPath, PathSpec, StorageDriver, StorageError};

use super::{BlobBody, Store, StoreError};

/// What the store knows about a committed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The canonical (sha256) digest, under which the bytes are stored.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
}

impl Store {
    /// Reads and strictly parses a link file. A missing link is `Ok(None)`.
    pub(crate) fn read_link(&self, path: &DriverPath) -> Result<Option<Digest>, StoreError> {
        match self.driver.get_content(path) {
            Ok(bytes) => parse_link(&bytes)
                .map(Some)
                .map_err(|source| StoreError::LinkCorrupt {
                    path: path.clone(),
                    source,
                }),
            Err(StorageError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The canonical digest `digest` resolves to in `repo`, through its `_layers` link.
    fn resolve(&self, repo: &RepositoryName, digest: &Digest) -> Result<Digest, StoreError> {
        let link = PathSpec::LayerLink { repo, digest }.to_path()?;
        self.read_link(&link)?
            .ok_or_else(|| StoreError::BlobUnknown(digest.clone()))
    }

    /// Size of the stored bytes of a canonical digest, ignoring repositories.
    ///
    /// `digest` is looked up under its own algorithm's path, which holds data only for sha256.
    pub fn stat_global(&self, digest: &Digest) -> Result<BlobInfo, StoreError> {
        let path = PathSpec::BlobData { digest }.to_path()?;
        match self.driver.file_size(&path)? {
            Some(size) => Ok(BlobInfo {
                digest: digest.clone(),
                size,
            }),
            None => Err(StoreError::BlobUnknown(digest.clone())),
        }
    }

    /// The blob `digest` as seen from `repo`: its canonical digest and size. A link whose data
    /// is gone (dangling) is [`StoreError::BlobUnknown`] too.
    pub fn stat_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<BlobInfo, StoreError> {
        let canonical = self.resolve(repo, digest)?;
        self.stat_canonical(&canonical, digest)
    }

    /// [`Store::stat_global`] of a link's target, reporting a missing target under the digest
    /// the caller asked for.
    fn stat_canonical(&self, canonical: &Digest, asked: &Digest) -> Result<BlobInfo, StoreError> {
        self.stat_global(canonical).map_err(|e| match e {
            StoreError::BlobUnknown(_) => StoreError::BlobUnknown(asked.clone()),
            e => e,
        })
    }

    /// Opens a blob for reading: through `repo`'s link when a repository is given, else
    /// directly by canonical digest. On the filesystem driver the body is the open file.
    pub fn open_blob(
        &self,
        repo: Option<&RepositoryName>,
        digest: &Digest,
    ) -> Result<(BlobInfo, BlobBody), StoreError> {
        // The link is read once: its target serves both the file cache and the stat.
        let canonical = match repo {
            Some(repo) => self.resolve(repo, digest)?,
            None => digest.clone(),
        };
        if let Some((file, size)) = self.files.get(&canonical) {
            self.count_file_cache(true);
            let info = BlobInfo {
                digest: canonical,
                size,
            };
            return Ok((info, BlobBody::Local { file, size }));
        }
        let info = self.stat_canonical(&canonical, digest)?;
        let path = PathSpec::BlobData {
            digest: &info.digest,
        }
        .to_path()?;
        let unknown = |e: StorageError| match e {
            StorageError::NotFound(_) => StoreError::BlobUnknown(digest.clone()),
            e => e.into(),
        };
        let body = match self.driver.file(&path) {
            Some(file) => {
                self.count_file_cache(false);
                let file = file.map_err(unknown)?;
                let size = file
                    .metadata()
                    .map_err(|e| StorageError::io("stat", &path, e))?
                    .len();
                let file = Arc::new(file);
                self.files.insert(&info.digest, (Arc::clone(&file), size));
                BlobBody::Local { file, size }
            }
            None => BlobBody::Stream {
                driver: Arc::clone(&self.driver),
                path,
                size: info.size,
            },
        };
        // The open file's own length is authoritative if the file was replaced in between.
        let info = BlobInfo {
            size: body.len(),
            ..info
        };
        Ok((info, body))
    }

    /// Writes `repo`'s link for `digest`, holding `canonical`. Atomic (the driver's
    /// `put_content`).
    pub fn link_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        canonical: &Digest,
    ) -> Result<(), StoreError> {
        write_layer_link(&*self.driver, repo, digest, canonical)
    }

    /// Removes `repo`'s link for `digest` (distribution's blob DELETE). The bytes stay until a
    /// garbage collection.
    pub fn unlink_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<(), StoreError> {
        let link = PathSpec::LayerLink { repo, digest }.to_path()?;
        match self.driver.delete(&link) {
            Ok(()) => Ok(()),
            Err(StorageError::NotFound(_)) => Err(StoreError::BlobUnknown(digest.clone())),
            Err(e) => Err(e.into()),
        }
    }

    /// Cross-repository mount: links `digest` into `to` when `from` has it and its bytes are
    /// present. Nothing is copied.
    ///
    /// ```
    /// use layerstore::names::RepositoryName;
    /// use layerstore::store::{Store, StoreError};
    /// use layerstore::Digest;
    ///
    /// let store = Store::in_memory();
    /// let (a, b) = (RepositoryName::parse("a").unwrap(), RepositoryName::parse("b").unwrap());
    /// let mut upload = store.create_upload(&a).unwrap();
    /// upload.append(b"layer").unwrap();
    /// let digest = Digest::sha256(b"layer");
    /// upload.commit(&digest, None).unwrap();
    /// assert!(matches!(store.stat_blob(&b, &digest), Err(StoreError::BlobUnknown(_))));
    /// store.mount_blob(&a, &b, &digest).unwrap();
    /// assert_eq!(store.stat_blob(&b, &digest).unwrap().size, 5);
    /// ```
    pub fn mount_blob(
        &self,
        from: &RepositoryName,
        to: &RepositoryName,
        digest: &Digest,
    ) -> Result<BlobInfo, StoreError> {
        // An old blob is touched (and a collection's claim on it waited for) before it is
        // linked, so a collection running now keeps it (`docs/gc.md`).
        let info = loop {
            let canonical = self.resolve(from, digest)?;
            let data = PathSpec::BlobData { digest: &canonical }.to_path()?;
            let Some(dep) = self.dependency(data)? else {
                return Err(StoreError::BlobUnknown(digest.clone()));
            };
            let size = dep.size;
            if !self.hold(&mut [dep])? {
                break BlobInfo {
                    digest: canonical,
                    size,
                };
            }
        };
        self.link_blob(to, digest, &info.digest)?;
        if info.digest != *digest {
            self.link_blob(to, &info.digest, &info.digest)?;
        }
        Ok(info)
    }
}

/// Writes `repo`'s `_layers` link for `digest`, holding `canonical`: shared by
/// [`Store::link_blob`] and upload commits, which hold only a driver.
pub(super) fn write_layer_link(
    driver: &dyn StorageDriver,
    repo: &RepositoryName,
    digest: &Digest,
    canonical: &Digest,
) -> Result<(), StoreError> {
    let link = PathSpec::LayerLink { repo, digest }.to_path()?;
    super::write_link(driver, &link, canonical)
}
