//! Parked uploads: open handles kept between the requests of one upload.
//!
//! A chunked upload is many requests on one session. Reopening it for each one costs a claim,
//! a read of `startedat`, a listing and a read of the hash states, and an open of `data`; a
//! handle parked at the end of a request ([`Store::park_upload`]) is taken back by the next
//! [`Store::resume_upload`] of the same session instead, with its hasher, its open writer and
//! its pending checkpoints' [gate](super::deferred). It is taken back only if `data` still has
//! exactly the size the handle wrote: another instance sharing the storage may have continued
//! the session meanwhile, and then the session is opened from storage as usual.
//!
//! A parked handle keeps its session claimed (so this process's collector leaves it alone) and
//! its file open. So the park is bounded: at most [`CAPACITY`] handles, each for at most
//! [`IDLE`]; older ones are dropped whenever a handle is parked or taken, or the collector
//! looks at sessions. Dropping one loses nothing: every request ends with a checkpoint.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{deferred, Upload};
use crate::names::{RepositoryName, UploadId};
use crate::storage::StorageError;
use crate::store::{Store, StoreError};

/// At most this many parked handles per store.
pub const CAPACITY: usize = 256;

/// A parked handle not taken back within this long is dropped.
pub const IDLE: Duration = Duration::from_secs(30);

type Key = (RepositoryName, UploadId);

/// The parked handles of a store, with when each was parked.
#[derive(Debug, Default)]
pub(crate) struct Park {
    handles: Mutex<HashMap<Key, (Upload, Instant)>>,
}

impl Park {
    /// Takes out the handles parked longer than [`IDLE`] (and, to make room for one more, the
    /// oldest while full); the caller drops them outside the lock.
    fn evict(handles: &mut HashMap<Key, (Upload, Instant)>, room: bool) -> Vec<Upload> {
        let now = Instant::now();
        let stale: Vec<Key> = handles
            .iter()
            .filter(|(_, (_, at))| now.duration_since(*at) >= IDLE)
            .map(|(key, _)| key.clone())
            .collect();
        let mut evicted: Vec<Upload> = stale
            .iter()
            .filter_map(|key| handles.remove(key).map(|(upload, _)| upload))
            .collect();
        while room && handles.len() >= CAPACITY {
            let Some(oldest) = handles
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            evicted.extend(handles.remove(&oldest).map(|(upload, _)| upload));
        }
        evicted
    }

    fn take(&self, key: &Key) -> Option<Upload> {
        let mut handles = self.handles.lock();
        let evicted = Self::evict(&mut handles, false);
        let taken = handles.remove(key).map(|(upload, _)| upload);
        drop(handles);
        drop(evicted);
        taken
    }
}

impl Store {
    /// Keeps `upload` open for the next [`resume_upload`](Store::resume_upload) of its
    /// session in this process, which then skips reopening the session (its claim, `startedat`,
    /// the hash states, `data`). It is taken back only if `data` still has the size the handle
    /// wrote (another instance may have continued the session). At most 256 handles are kept,
    /// each for at most 30 s; dropping one loses nothing, since each request ends with a
    /// checkpoint. Only handles whose checkpoints can be deferred
    /// ([`Upload::checkpoint_deferred`], a filesystem's) are kept; others are dropped, which
    /// closes them.
    pub fn park_upload(&self, upload: Upload) {
        if !upload.parkable || upload.usable().is_err() {
            return;
        }
        let key = (upload.repo.clone(), upload.id.clone());
        let mut handles = self.park.handles.lock();
        let evicted = Park::evict(&mut handles, true);
        let replaced = handles.insert(key, (upload, Instant::now()));
        drop(handles);
        drop((evicted, replaced));
    }

    /// Drops the parked handles idle longer than [`IDLE`].
    pub(crate) fn expire_parked(&self) {
        let evicted = Park::evict(&mut self.park.handles.lock(), false);
        drop(evicted);
    }

    /// The parked handle of a session, if there is one that is still right: unbroken, and
    /// `data` of the size it wrote. A handle that is not is dropped.
    pub(super) fn unpark(
        &self,
        repo: &RepositoryName,
        id: &UploadId,
    ) -> Result<Option<Upload>, StoreError> {
        let Some(upload) = self.park.take(&(repo.clone(), id.clone())) else {
            return Ok(None);
        };
        if upload.usable().is_err() {
            return Ok(None);
        }
        match self.driver.append_size(&upload.data_path()?) {
            Ok(size) if size == upload.offset() => Ok(Some(upload)),
            Ok(_) | Err(StorageError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Takes a session's parked handle out for good (a cancel), closing its pending
    /// checkpoints.
    pub(super) fn discard_parked(&self, repo: &RepositoryName, id: &UploadId) {
        if let Some(upload) = self.park.take(&(repo.clone(), id.clone())) {
            deferred::close(&upload.gate);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    fn repo() -> RepositoryName {
        RepositoryName::parse("team/app").unwrap()
    }

    /// A session with `bytes` received by one request: checkpointed (deferred, run) and parked.
    fn parked_session(store: &Store, bytes: &[u8]) -> UploadId {
        let mut upload = store.create_upload(&repo()).unwrap();
        upload.append(bytes).unwrap();
        upload
            .checkpoint_deferred()
            .unwrap()
            .unwrap()
            .run()
            .unwrap();
        let id = upload.id().clone();
        store.park_upload(upload);
        id
    }

    fn started_at(root: &std::path::Path, id: &UploadId) -> std::path::PathBuf {
        root.join(format!(
            "docker/registry/v2/repositories/team/app/_uploads/{id}/startedat"
        ))
    }

    #[test]
    fn the_next_request_takes_the_parked_handle_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::filesystem(dir.path());
        let id = parked_session(&store, b"first ");
        // Opening from storage would read `startedat`; the parked handle needs nothing.
        std::fs::write(started_at(dir.path(), &id), "not a time").unwrap();
        let mut upload = store.resume_upload(&repo(), &id).unwrap();
        upload.append(b"second").unwrap();
        let blob = upload
            .commit(&Digest::sha256(b"first second"), None)
            .unwrap();
        assert_eq!(blob.size, 12);
    }

    #[test]
    fn a_session_another_instance_continued_is_opened_from_storage() {
        let dir = tempfile::tempdir().unwrap();
        let (here, there) = (Store::filesystem(dir.path()), Store::filesystem(dir.path()));
        let id = parked_session(&here, b"one ");
        let mut elsewhere = there.resume_upload(&repo(), &id).unwrap();
        elsewhere.append(b"two ").unwrap();
        elsewhere.checkpoint().unwrap();
        drop(elsewhere);
        let mut upload = here.resume_upload(&repo(), &id).unwrap();
        assert_eq!(upload.offset(), 8);
        upload.append(b"three").unwrap();
        upload
            .commit(&Digest::sha256(b"one two three"), None)
            .unwrap();
    }

    #[test]
    fn a_cancel_drops_the_parked_handle() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::filesystem(dir.path());
        let id = parked_session(&store, b"bytes");
        store.cancel_upload(&repo(), &id).unwrap();
        assert!(matches!(
            store.resume_upload(&repo(), &id),
            Err(StoreError::BlobUploadUnknown(_))
        ));
    }

    #[test]
    fn the_park_holds_at_most_its_capacity_dropping_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::filesystem(dir.path());
        let first = parked_session(&store, b"oldest");
        for _ in 0..CAPACITY {
            parked_session(&store, b"newer");
        }
        let handles = store.park.handles.lock();
        assert_eq!(handles.len(), CAPACITY);
        assert!(!handles.contains_key(&(repo(), first)));
    }

    #[test]
    fn an_upload_whose_writer_cannot_defer_is_not_parked() {
        let store = Store::in_memory();
        let mut upload = store.create_upload(&repo()).unwrap();
        upload.append(b"bytes").unwrap();
        assert!(upload.checkpoint_deferred().unwrap().is_none());
        store.park_upload(upload);
        assert!(store.park.handles.lock().is_empty());
    }
}
