//! The writer's half of online garbage collection: before a push relies on stored files (the
//! blobs a manifest references, a blob a commit deduplicates against, a blob a mount links),
//! it makes sure a collection running at the same moment cannot delete them.
//!
//! A collection deletes only files older than its grace window (by modification time) that
//! its mark did not reach, and it looks at each one's time again after claiming it
//! ([`claims`](super::gc::claims)). So a writer:
//!
//! 1. looks at each file it relies on ([`Dependency`]: path and modification time);
//! 2. touches those older than the store's `touch_after` (one minute by default), so they are
//!    young again for every collection whose grace is at least four times that;
//! 3. reads the claim files: a claim on one of them means a collection may have decided before
//!    the touch (this writer's or another's), so the writer waits for the decision and starts
//!    again;
//! 4. looks at each file once more: one deleted between the first look and the claims read is
//!    seen here.
//!
//! `docs/gc.md` shows why this closes every race, row by row.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use super::gc::claims::wait_unclaimed;
use super::{Store, StoreError};
use crate::digest::Digest;
use crate::manifest::{Manifest, ReferenceTarget};
use crate::names::RepositoryName;
use crate::storage::{DriverPath, PathSpec, StorageDriver, StorageError};

/// How old a file may be before a writer relying on it touches it. A collection's grace
/// window must be at least [`GRACE_PER_TOUCH`] times the `touch_after` of every writer.
pub const DEFAULT_TOUCH_AFTER: Duration = Duration::from_secs(60);

/// The smallest ratio of a collection's grace window to the writers' `touch_after`: a file a
/// writer relied on without touching it is at most `touch_after` old then, and the writes that
/// make it reachable must land within the rest of the window (three `touch_after`s).
pub const GRACE_PER_TOUCH: u32 = 4;

/// Most files one manifest push may rely on (an index's children, their layers, referrers):
/// far above any real image, low enough that a hostile graph cannot make a push walk forever.
const MAX_DEPENDENCIES: usize = 100_000;

/// A stored file an operation relies on, with its modification time when it was looked at.
#[derive(Debug, Clone)]
pub(crate) struct Dependency {
    pub(crate) path: DriverPath,
    pub(crate) modified: SystemTime,
    /// Its size when looked at.
    pub(crate) size: u64,
}

/// The file at `path` as a dependency, or `None` if there is no file.
pub(crate) fn dependency(
    driver: &dyn StorageDriver,
    path: DriverPath,
) -> Result<Option<Dependency>, StorageError> {
    match driver.stat(&path) {
        Ok(info) if !info.is_dir => Ok(Some(Dependency {
            path,
            modified: info.modified,
            size: info.size,
        })),
        Ok(_) | Err(StorageError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Touches each dependency older than `touch_after`, waits until no collection claims any of
/// them, then looks at each once more. Returns true when a claim was found or one is gone: a
/// collection may have deleted one, so the caller must look again before relying on them.
///
/// Every dependency is checked against the claims, not only the ones touched here: a file can
/// be young because another writer just touched it while a collection that decided on its old
/// time is about to delete it (that writer is waiting on the claim; this one must too). And the
/// last look closes the case where the collection deleted the file and moved on to its next
/// batch between the first look and the claims read.
pub(crate) fn hold(
    driver: &dyn StorageDriver,
    touch_after: Duration,
    deps: &mut [Dependency],
) -> Result<bool, StoreError> {
    if deps.is_empty() {
        return Ok(false);
    }
    let now = SystemTime::now();
    for dep in deps.iter_mut() {
        if is_old(now, dep.modified, touch_after) {
            match driver.touch(&dep.path) {
                Ok(()) => dep.modified = now,
                // Gone since it was looked at: the caller's next look reports it.
                Err(StorageError::NotFound(_)) => return Ok(true),
                Err(e) => return Err(e.into()),
            }
        }
    }
    let paths: Vec<DriverPath> = deps.iter().map(|d| d.path.clone()).collect();
    if wait_unclaimed(driver, &paths)? {
        return Ok(true);
    }
    for path in &paths {
        if driver.file_size(path)?.is_none() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// [`hold`], again while it leaves files older than `touch_after` behind: on a slow storage
/// a round can take so long that a file young at its look is old by its end. Afterwards every
/// dependency was modified within `touch_after`, so the links written next land in time
/// (`docs/gc.md`, the timing assumption). Returns what `hold` returns.
pub(crate) fn hold_fresh(
    driver: &dyn StorageDriver,
    touch_after: Duration,
    deps: &mut [Dependency],
) -> Result<bool, StoreError> {
    for _ in 0..MAX_ROUNDS {
        if hold(driver, touch_after, deps)? {
            return Ok(true);
        }
        let now = SystemTime::now();
        if !deps.iter().any(|d| is_old(now, d.modified, touch_after)) {
            return Ok(false);
        }
    }
    Err(StoreError::StorageTooSlow(touch_after))
}

/// Rounds of [`hold_fresh`] before giving up: each round took a whole `touch_after`.
const MAX_ROUNDS: usize = 10;

fn is_old(now: SystemTime, modified: SystemTime, touch_after: Duration) -> bool {
    now.duration_since(modified)
        .is_ok_and(|age| age > touch_after)
}

/// The writer's last step for files it (re)wrote itself, such as a manifest's revision link:
/// true if a collection had claimed one of them (it may have deleted it: write again).
pub(crate) fn claimed(
    driver: &dyn StorageDriver,
    written: &[DriverPath],
) -> Result<bool, StoreError> {
    wait_unclaimed(driver, written)
}

/// Publishes an upload's bytes (`source`) as the blob at `blob`, unless a blob of that size
/// is already there and stays there: an old one is touched first, and if a collection had
/// claimed it, looked at again (and replaced by the upload's bytes if it was deleted).
pub(crate) fn publish_blob(
    driver: &dyn StorageDriver,
    touch_after: Duration,
    source: &DriverPath,
    blob: &DriverPath,
    size: u64,
) -> Result<(), StoreError> {
    loop {
        let existing = dependency(driver, blob.clone())?.filter(|d| d.size == size);
        let Some(existing) = existing else {
            return Ok(driver.move_to(source, blob)?);
        };
        if !hold(driver, touch_after, &mut [existing])? {
            return Ok(()); // dedupe: the blob stays, the upload's copy goes
        }
    }
}

impl Store {
    /// The store with writers touching what they rely on once it is older than `after`
    /// (default [`DEFAULT_TOUCH_AFTER`], at least one second). A collection's grace must be at
    /// least [`GRACE_PER_TOUCH`] times this; tests that run collections with a grace of seconds
    /// lower it.
    pub fn with_touch_after(mut self, after: Duration) -> Self {
        self.touch_after = after.max(Duration::from_secs(1));
        self
    }

    /// How old a file may be before a writer relying on it touches it.
    pub fn touch_after(&self) -> Duration {
        self.touch_after
    }

    /// [`hold`] with this store's driver and `touch_after`.
    pub(crate) fn hold(&self, deps: &mut [Dependency]) -> Result<bool, StoreError> {
        hold(&*self.driver, self.touch_after, deps)
    }

    /// [`hold_fresh`] with this store's driver and `touch_after`.
    pub(crate) fn hold_fresh(&self, deps: &mut [Dependency]) -> Result<bool, StoreError> {
        hold_fresh(&*self.driver, self.touch_after, deps)
    }

    /// [`dependency`] on this store's driver.
    pub(crate) fn dependency(&self, path: DriverPath) -> Result<Option<Dependency>, StoreError> {
        Ok(dependency(&*self.driver, path)?)
    }

    /// Everything a live manifest `digest` of `repo` keeps alive, as dependencies: its
    /// revision link and bytes, its blobs, its children (recursively) and its referrers
    /// (recursively, as the collector's mark does). `None` if the manifest is not stored.
    pub(crate) fn manifest_dependencies(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        seen: &mut HashSet<Digest>,
        deps: &mut Vec<Dependency>,
    ) -> Result<Option<()>, StoreError> {
        if !seen.insert(digest.clone()) || deps.len() > MAX_DEPENDENCIES {
            return Ok(Some(()));
        }
        let revision = PathSpec::ManifestRevisionLink { repo, digest }.to_path()?;
        let canonical = match self.read_link(&revision)? {
            Some(canonical) => {
                deps.extend(self.dependency(revision)?);
                canonical
            }
            // A legacy `_layers` link (distribution 2.1.0) is the revision: a blob link.
            None => match self.read_link(&PathSpec::LayerLink { repo, digest }.to_path()?)? {
                Some(canonical) => canonical,
                None => return Ok(None),
            },
        };
        let data = PathSpec::BlobData { digest: &canonical }.to_path()?;
        let bytes = match self.driver.get_content(&data) {
            Ok(bytes) => bytes,
            Err(StorageError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        deps.extend(self.dependency(data)?);
        let media_type = super::manifests::media_type_of(&bytes);
        if let Ok(manifest) = Manifest::parse(Some(&media_type), &bytes) {
            for reference in manifest.references() {
                if reference.is_foreign() {
                    continue;
                }
                match reference.target {
                    ReferenceTarget::Manifest => {
                        self.manifest_dependencies(repo, reference.digest(), seen, deps)?;
                    }
                    _ => deps.extend(self.blob_dependency(repo, reference.digest())?),
                }
            }
        }
        for referrer in self.referrer_digests(repo, &canonical)? {
            self.manifest_dependencies(repo, &referrer, seen, deps)?;
        }
        Ok(Some(()))
    }

    /// The bytes of blob `digest` as seen from `repo`, as a dependency; `None` if the
    /// repository has no link to it or its bytes are gone.
    pub(crate) fn blob_dependency(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<Dependency>, StoreError> {
        let link = PathSpec::LayerLink { repo, digest }.to_path()?;
        let Some(canonical) = self.read_link(&link)? else {
            return Ok(None);
        };
        self.dependency(PathSpec::BlobData { digest: &canonical }.to_path()?)
    }
}
