//! [`Session`]: read-only views of one upload session's files, shared by open uploads and by
//! status queries, so both answer the same offset for the same files.

use std::time::{Duration, Instant};

use crate::digest::HashAlgorithm;
use crate::hash::ResumableSha256;
use crate::names::{RepositoryName, UploadId};
use crate::storage::{
    missing_is_ok, DriverPath, FileWriter, PathSpec, StorageDriver, StorageError,
};

use super::StoreError;

/// How long a resume waits for an object store's listing to show the bytes a saved state
/// vouches for ([`Session::open_data`]).
pub(crate) const LISTING_LAG: Duration = Duration::from_secs(3);

/// One upload session's location.
pub(crate) struct Session<'a> {
    pub(crate) driver: &'a dyn StorageDriver,
    pub(crate) repo: &'a RepositoryName,
    pub(crate) id: &'a UploadId,
}

impl Session<'_> {
    pub(crate) fn data_path(&self) -> Result<DriverPath, StoreError> {
        Ok(PathSpec::UploadData {
            repo: self.repo,
            id: self.id,
        }
        .to_path()?)
    }

    pub(crate) fn states_dir(&self) -> Result<DriverPath, StoreError> {
        Ok(PathSpec::UploadHashStatesDir {
            repo: self.repo,
            id: self.id,
            alg: HashAlgorithm::Sha256,
        }
        .to_path()?)
    }

    /// Saved state offsets, highest first. Names that are not decimal offsets are ignored.
    pub(crate) fn saved_offsets(&self) -> Result<Vec<u64>, StoreError> {
        let mut offsets: Vec<u64> = match self.driver.list(&self.states_dir()?) {
            Ok(children) => children
                .iter()
                .filter_map(|p| parse_offset(p.name()))
                .collect(),
            Err(StorageError::NotFound(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        offsets.sort_unstable_by(|a, b| b.cmp(a));
        Ok(offsets)
    }

    /// Opens `data` to append to it ([`OpenedData`]), once the storage shows at least the
    /// bytes the highest saved state covers.
    ///
    /// A state is saved only for durable bytes, so on a storage whose listings lag
    /// ([`StorageDriver::listings_may_lag`]) fewer bytes than a state vouches for means a
    /// listing that has not caught up. Going on from it would start a second multipart upload
    /// beside the real one, or complete the real one without its newest parts: bytes lost, and
    /// with a client that sends other bytes the second time, a hash of bytes that are not the
    /// ones stored. So it looks again, every 100 ms for up to [`LISTING_LAG`]; after that it
    /// goes on with what it sees. A `data` a crashed commit moved into the blob store
    /// ([`published_state`](Self::published_state)) is not waited for.
    pub(crate) fn open_data(&self) -> Result<OpenedData, StoreError> {
        let data = self.data_path()?;
        let deadline = Instant::now() + LISTING_LAG;
        loop {
            let writer = self.driver.open_append(&data)?;
            if !self.driver.listings_may_lag() || Instant::now() >= deadline {
                return Ok(OpenedData {
                    writer,
                    offsets: None,
                });
            }
            let size = writer.as_ref().map_or(0, |w| w.size());
            let offsets = self.saved_offsets()?;
            let vouched = offsets.first().copied().unwrap_or(0);
            if size >= vouched || (writer.is_none() && self.published_state()?.is_some()) {
                return Ok(OpenedData {
                    writer,
                    offsets: Some(offsets),
                });
            }
            drop(writer);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The highest saved state at or below `limit` that decodes and agrees with its name.
    pub(crate) fn best_state(&self, limit: u64) -> Result<Option<ResumableSha256>, StoreError> {
        self.best_state_among(&self.saved_offsets()?, limit)
    }

    /// As [`best_state`](Self::best_state), among `offsets` (highest first) listed already.
    pub(crate) fn best_state_among(
        &self,
        offsets: &[u64],
        limit: u64,
    ) -> Result<Option<ResumableSha256>, StoreError> {
        for &offset in offsets.iter().filter(|&&o| o <= limit) {
            let path = self.states_dir()?.join(&offset.to_string())?;
            let bytes = match self.driver.get_content(&path) {
                Ok(bytes) => bytes,
                Err(StorageError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            match ResumableSha256::from_go_bytes(&bytes) {
                Ok(state) if state.len() == offset => return Ok(Some(state)),
                _ => continue, // unusable: fall back to a lower one
            }
        }
        Ok(None)
    }

    /// Writes `state` at `hashstates/sha256/<its offset>`, then removes the other states
    /// (`Prune::Others`) or only the lower ones (`Prune::Below`: a deferred checkpoint, which
    /// may finish after a newer state was saved).
    pub(crate) fn save_state(
        &self,
        state: &ResumableSha256,
        prune: Prune,
    ) -> Result<(), StoreError> {
        let offset = state.len();
        let dir = self.states_dir()?;
        self.driver
            .put_content(&dir.join(&offset.to_string())?, &state.to_go_bytes())?;
        let saved = self.saved_offsets()?;
        if saved.iter().all(|&o| o >= offset) {
            // The session's first state (or the lowest of two saved at once): the session
            // itself becomes durable with it (`Store::create_upload` left it unsynced).
            let started = PathSpec::UploadStartedAt {
                repo: self.repo,
                id: self.id,
            };
            self.driver.sync_new(&started.to_path()?)?;
        }
        let stale = saved.into_iter().filter(|&o| match prune {
            Prune::Others => o != offset,
            Prune::Below => o < offset,
        });
        for stale in stale {
            // Superseded: if a crash brings it back, the higher state still wins.
            missing_is_ok(self.driver.discard(&dir.join(&stale.to_string())?))?;
        }
        Ok(())
    }

    /// How many bytes of `data` (now `size` bytes) an upload can go on from. All of them,
    /// unless `data` was last written before the machine started
    /// ([`StorageDriver::written_before_boot`]): then only those the highest saved state at or
    /// below `size` covers, since states are saved only for durable bytes and the rest may be
    /// zeros. Those bytes were never acknowledged as durable: the client resends them.
    pub(crate) fn trusted_size(&self, size: u64) -> Result<u64, StoreError> {
        if size == 0 || !self.driver.written_before_boot(&self.data_path()?)? {
            return Ok(size);
        }
        Ok(self.best_state(size)?.map_or(0, |state| state.len()))
    }

    /// For a session whose `data` is missing: the highest state, if the blob it names exists
    /// with exactly that size. That is what a commit leaves when it crashes after moving `data`
    /// into the blob store and before deleting the session.
    pub(crate) fn published_state(&self) -> Result<Option<ResumableSha256>, StoreError> {
        let Some(state) = self.best_state(u64::MAX)? else {
            return Ok(None);
        };
        let digest = state.digest();
        let blob = PathSpec::BlobData { digest: &digest }.to_path()?;
        let size = self.driver.file_size(&blob)?;
        Ok(size.filter(|&s| s == state.len()).map(|_| state))
    }
}

/// What [`Session::open_data`] found: `data` opened to append to it (`None`: there is none),
/// and the saved state offsets, highest first, when its lag check listed them (so a resume
/// does not list them again: one request less per resume on an object store).
pub(crate) struct OpenedData {
    pub(crate) writer: Option<Box<dyn FileWriter>>,
    pub(crate) offsets: Option<Vec<u64>>,
}

/// Which saved states [`Session::save_state`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prune {
    /// Every other one.
    Others,
    /// Those of lower offsets.
    Below,
}

/// A state file name: a plain decimal offset. (distribution parses with base 0, but only ever
/// writes decimal.)
fn parse_offset(name: &str) -> Option<u64> {
    if name.is_empty() || name.len() > 20 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use crate::digest::Digest;
    use crate::names::RepositoryName;
    use crate::storage::FilesystemDriver;
    use crate::store::Store;

    /// A session with `checkpointed` bytes and a state for them, then `more` bytes appended
    /// (as a power cut would find it when their checkpoint did not run).
    fn session_with_gap(store: &Store, checkpointed: &[u8], more: &[u8]) -> crate::names::UploadId {
        let repo = RepositoryName::parse("team/app").unwrap();
        let mut upload = store.create_upload(&repo).unwrap();
        upload.append(checkpointed).unwrap();
        upload.checkpoint().unwrap();
        upload.append(more).unwrap();
        upload.id().clone()
    }

    #[test]
    fn after_a_reboot_a_session_goes_on_from_its_last_state_not_the_end_of_data() {
        let dir = tempfile::tempdir().unwrap();
        let repo = RepositoryName::parse("team/app").unwrap();
        let id = session_with_gap(&Store::filesystem(dir.path()), b"durable ", b"maybe zeros");
        // The same boot (a process crash): the page cache kept the gap, which is re-hashed.
        let store = Store::filesystem(dir.path());
        assert_eq!(store.upload_status(&repo, &id).unwrap().offset, 19);
        // After a reboot: only what the state covers.
        let later = SystemTime::now() + Duration::from_secs(1);
        let driver = FilesystemDriver::new(dir.path()).with_boot_time(later);
        let rebooted = Store::new(Arc::new(driver));
        assert_eq!(rebooted.upload_status(&repo, &id).unwrap().offset, 8);
        let mut upload = rebooted.resume_upload(&repo, &id).unwrap();
        assert_eq!(upload.offset(), 8);
        let data = dir.path().join(format!(
            "docker/registry/v2/repositories/team/app/_uploads/{id}/data"
        ));
        assert_eq!(std::fs::metadata(data).unwrap().len(), 8, "data cut back");
        upload.append(b"resent").unwrap();
        upload
            .commit(&Digest::sha256(b"durable resent"), None)
            .unwrap();
    }
}
