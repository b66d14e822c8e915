//! The blob store that registries embed: distribution's layout over any [`StorageDriver`].
//!
//! - [`blobs`]: the global content-addressable store plus per-repository `_layers` links
//!   (stat, open as a [`BlobBody`], ranges, unlink, cross-repository mount).
//! - [`upload`]: resumable uploads that hash while writing, checkpoint Go-format hash states and
//!   publish atomically; uploads begun by distribution resume the same way.
//! - [`manifests`]: manifests as blobs plus revision links, tags, the referrers index; the
//!   tag list, catalog and referrers listings.
//! - [`purge`]: distribution's rule for removing old upload sessions.
//! - [`fsck`]: a parallel re-hash of every blob and a check of every link.
//!
//! A [`Store`] is cheap to clone and safe to share between threads. There is no global lock:
//! the only lock is a set of upload ids open in this process, so that two requests cannot
//! append to one upload at once.
//!
//! ```
//! use layerstore::names::RepositoryName;
//! use layerstore::store::Store;
//! use layerstore::Digest;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::filesystem(dir.path());
//! let repo = RepositoryName::parse("library/hello").unwrap();
//!
//! let mut upload = store.create_upload(&repo).unwrap();
//! upload.append(b"hello ").unwrap();
//! upload.checkpoint().unwrap();
//! let id = upload.id().clone();
//! drop(upload); // e.g. the process ends here
//!
//! let mut upload = store.resume_upload(&repo, &id).unwrap();
//! assert_eq!(upload.offset(), 6);
//! upload.append(b"world").unwrap();
//! let digest = Digest::sha256(b"hello world");
//! let info = upload.commit(&digest, Some(11)).unwrap();
//! assert_eq!(info.size, 11);
//!
//! let (_, body) = store.open_blob(Some(&repo), &digest).unwrap();
//! let mut out = Vec::new();
//! body.write_to(None, &mut out).unwrap();
//! assert_eq!(out, b"hello world");
//! ```

pub mod blobs;
pub mod body;
mod error;
mod file_cache;
pub mod fsck;
pub mod gc;
mod listing;
mod liveness;
pub mod manifests;
pub mod purge;
pub mod rfc3339;
mod session;
mod stream;
pub mod upload;
mod upload_tarsum;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::digest::Digest;
use crate::metrics::Metrics;
use crate::names::{RepositoryName, UploadId};
use crate::storage::paths::encode_link;
use crate::storage::{DriverPath, FilesystemDriver, InMemoryDriver, MeteredDriver, StorageDriver};

pub use blobs::BlobInfo;
pub use body::{BlobBody, ByteRange};
pub use error::StoreError;
pub use fsck::{FsckProblem, FsckReport};
pub use gc::{GcOptions, GcReport};
pub use liveness::{DEFAULT_TOUCH_AFTER, GRACE_PER_TOUCH};
pub use manifests::{ManifestContent, StoredManifest};
pub use purge::PurgeReport;
pub use upload::{PendingCheckpoint, Upload, UploadStatus};

/// How many blob files a store keeps open at most for reading (its cache of open blobs): a
/// server's descriptor count may exceed its connections' by this much.
pub const OPEN_BLOB_FILES: usize = file_cache::CAPACITY;

/// A blob store over a storage driver. Clones share everything.
#[derive(Debug, Clone)]
pub struct Store {
    driver: Arc<dyn StorageDriver>,
    open_uploads: Arc<Mutex<HashSet<(RepositoryName, UploadId)>>>,
    /// Compute this TarSum beside SHA-256 in uploads ([`Store::with_tarsum`]).
    tarsum: Option<crate::digest::TarsumVersion>,
    /// Open files of recently read blobs.
    files: file_cache::FileCache,
    /// Where driver calls and map-cache hits are counted ([`Store::with_metrics`]).
    metrics: Option<Arc<Metrics>>,
    /// How old a file may be before a writer relying on it touches it
    /// ([`Store::with_touch_after`]).
    touch_after: std::time::Duration,
    /// Upload handles kept open between the requests of a chunked upload.
    park: Arc<upload::parked::Park>,
}

impl Store {
    /// A store over `driver`.
    pub fn new(driver: Arc<dyn StorageDriver>) -> Self {
        Store {
            driver,
            open_uploads: Arc::default(),
            tarsum: None,
            files: file_cache::FileCache::default(),
            metrics: None,
            touch_after: DEFAULT_TOUCH_AFTER,
            park: Arc::default(),
        }
    }

    /// This store with its driver calls timed and counted ([`MeteredDriver`]) and its blob
    /// map-cache hits and misses counted, in `metrics`. Call it once: a second call would time
    /// the driver twice (the HTTP layer's `AppState::new` calls it unless the store has
    /// metrics already).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.driver = Arc::new(MeteredDriver::new(self.driver, Arc::clone(&metrics)));
        self.metrics = Some(metrics);
        self
    }

    /// The metrics given to [`Store::with_metrics`], if any.
    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.as_ref()
    }

    /// Counts a blob read that found (`hit`) or had to open its file.
    fn count_file_cache(&self, hit: bool) {
        match &self.metrics {
            Some(metrics) if hit => metrics.cache_hit(),
            Some(metrics) => metrics.cache_miss(),
            None => {}
        }
    }

    /// A store on the filesystem driver rooted at `root` (distribution's `rootdirectory`: data
    /// lives under `root/docker/registry/v2/`).
    pub fn filesystem(root: impl Into<PathBuf>) -> Self {
        Self::new(Arc::new(FilesystemDriver::new(root)))
    }

    /// A store in memory.
    pub fn in_memory() -> Self {
        Self::new(Arc::new(InMemoryDriver::new()))
    }

    /// The driver underneath.
    pub fn driver(&self) -> &Arc<dyn StorageDriver> {
        &self.driver
    }

    /// Marks an upload as open in this process; the guard releases it.
    ///
    /// A session still held is waited for up to [`CLAIM_GRACE`]: the holder is usually a
    /// request whose client just went away and which is saving what it received, and the
    /// client's retry (or, after a restart, its resumed push) comes right behind it. Only a
    /// session held longer, by a request really still writing, is [`StoreError::BlobUploadBusy`].
    /// Blocks: call it where blocking is allowed, as every store method.
    fn claim_upload(
        &self,
        repo: &RepositoryName,
        id: &UploadId,
    ) -> Result<UploadClaim, StoreError> {
        let key = (repo.clone(), id.clone());
        let deadline = std::time::Instant::now() + CLAIM_GRACE;
        while !self.open_uploads.lock().insert(key.clone()) {
            if std::time::Instant::now() >= deadline {
                return Err(StoreError::BlobUploadBusy(id.clone()));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Ok(UploadClaim {
            set: Arc::clone(&self.open_uploads),
            key,
        })
    }
}

/// How long a request waits for an upload session another request of this process holds.
pub const CLAIM_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Holds an upload id in the store's open set until dropped.
#[derive(Debug)]
struct UploadClaim {
    set: Arc<Mutex<HashSet<(RepositoryName, UploadId)>>>,
    key: (RepositoryName, UploadId),
}

impl Drop for UploadClaim {
    fn drop(&mut self) {
        self.set.lock().remove(&self.key);
    }
}

/// Writes a link file (a layer link, a manifest revision, a tag) naming `target`, atomically
/// and durably (`put_content`): every link in the store is written here.
fn write_link(
    driver: &dyn StorageDriver,
    path: &DriverPath,
    target: &Digest,
) -> Result<(), StoreError> {
    driver.put_content(path, &encode_link(target))?;
    Ok(())
}
