//! TarSum beside SHA-256 in an upload (the store option [`Store::with_tarsum`]).
//!
//! With the option on, every appended byte also feeds a [`TarSumStream`], and each checkpoint
//! saves its state next to the SHA-256 state (`_uploads/<id>/tarsumstate`: the data offset it
//! belongs to, then the stream checkpoint). A commit that claims a `tarsum.*` digest is then
//! verified from the running state, without reading the data again. Without the option, or
//! when the claim asks for another version or hash, the commit streams the stored data once
//! ([`tarsum_of_data`]). A resume re-reads only from the stream's last checkpoint (at most a few
//! MiB back for gzip, nothing for plain tar).

use super::stream::hash_range;
use super::{Store, StoreError};
use crate::digest::{Algorithm, Digest, HashAlgorithm, TarsumVersion};
use crate::storage::{DriverPath, StorageDriver, StorageError};
use crate::tarsum::{TarSum, TarSumStream, TarsumError};

impl Store {
    /// Turns on TarSum computation for new uploads: they compute `version` (with sha256)
    /// beside SHA-256 as bytes arrive, so a commit under a TarSum digest needs no second read.
    ///
    /// ```
    /// use layerstore::digest::TarsumVersion;
    /// use layerstore::store::Store;
    /// let store = Store::in_memory().with_tarsum(TarsumVersion::V1);
    /// # let _ = store;
    /// ```
    pub fn with_tarsum(mut self, version: TarsumVersion) -> Self {
        self.tarsum = Some(version);
        self
    }
}

/// The TarSum running beside an upload's SHA-256.
#[derive(Debug)]
pub(crate) struct UploadTarsum {
    stream: TarSumStream,
}

impl UploadTarsum {
    pub(crate) fn new(version: TarsumVersion) -> Self {
        UploadTarsum {
            stream: TarSumStream::new(TarSum::new(version, HashAlgorithm::Sha256)),
        }
    }

    /// Feeds appended bytes. A stream that is not a valid archive stays failed; that only
    /// matters if the client later claims a TarSum digest (then the claim fails to verify).
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        let _ = self.stream.update(bytes);
    }

    /// Saves the stream's checkpoint for data offset `offset`.
    pub(crate) fn save(
        &self,
        driver: &dyn StorageDriver,
        path: &DriverPath,
        offset: u64,
    ) -> Result<(), StoreError> {
        let mut content = offset.to_be_bytes().to_vec();
        content.extend_from_slice(&self.stream.checkpoint().state);
        driver.put_content(path, &content)?;
        Ok(())
    }

    /// Restores the stream for a session whose `data` holds `size` bytes: from the saved
    /// checkpoint if it is usable, else from the start (reading `data` once).
    pub(crate) fn restore(
        version: TarsumVersion,
        driver: &dyn StorageDriver,
        state_path: &DriverPath,
        data_path: &DriverPath,
        size: u64,
    ) -> Result<Self, StoreError> {
        let saved = match driver.get_content(state_path) {
            Ok(bytes) => bytes,
            Err(StorageError::NotFound(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let resumed = saved.split_at_checked(8).and_then(|(offset, state)| {
            let offset = u64::from_be_bytes(offset.try_into().ok()?);
            let stream = TarSumStream::resume(state).ok()?;
            let matches = stream.tarsum().version() == version;
            (matches && offset <= size && stream.input_offset() <= offset).then_some(stream)
        });
        let mut tarsum = match resumed {
            Some(stream) => UploadTarsum { stream },
            None => UploadTarsum::new(version),
        };
        let from = tarsum.stream.input_offset();
        hash_range(driver, data_path, from, size, &mut |b| tarsum.update(b))?;
        Ok(tarsum)
    }

    /// The running TarSum, if it answers `claimed` (same hash; v1 and dev share their hex).
    pub(crate) fn digest_for(&self, claimed: &Digest) -> Option<Digest> {
        let Algorithm::Tarsum { version, hash } = claimed.algorithm() else {
            return None;
        };
        let ours = self.stream.tarsum();
        if hash != ours.hash() || !same_hex(version, ours.version()) {
            return None;
        }
        let sum = self.stream.finish().ok()?;
        Digest::from_bytes(claimed.algorithm(), &sum.to_bytes()).ok()
    }
}

/// v1 and dev select the same header fields, so their sums differ only in the label.
fn same_hex(a: TarsumVersion, b: TarsumVersion) -> bool {
    let family = |v| match v {
        TarsumVersion::V0 => 0,
        TarsumVersion::V1 | TarsumVersion::Dev => 1,
    };
    family(a) == family(b)
}

/// The TarSum `claimed` asks for, computed by streaming `size` bytes of `data` once; an
/// archive TarSum rejects gives the first error the stream met (where and why), so the client
/// learns its upload is not a tar (or a truncated or corrupt one) rather than a bare mismatch.
pub(crate) fn tarsum_of_data(
    driver: &dyn StorageDriver,
    data: &DriverPath,
    size: u64,
    version: TarsumVersion,
    hash: HashAlgorithm,
) -> Result<Result<Digest, TarsumError>, StoreError> {
    let mut stream = TarSumStream::new(TarSum::new(version, hash));
    let mut first_error = None;
    hash_range(driver, data, 0, size, &mut |b| {
        if first_error.is_none() {
            first_error = stream.update(b).err();
        }
    })?;
    Ok(match first_error {
        Some(error) => Err(error),
        None => stream.finish(),
    })
}
