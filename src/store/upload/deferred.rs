//! Checkpoints that finish after the answer.
//!
//! A checkpoint ([`Upload::checkpoint`]) makes the received bytes durable and then saves the
//! hash state of their offset. Done in place, a `PATCH` answers only after its fsync, and a
//! client that sends chunks one after the other waits for the disk between any two. The spec
//! does not make a 202 a durability promise: after a crash the client asks where the upload
//! stands and resends from there. So [`Upload::checkpoint_deferred`] splits the sync off the
//! writer ([`FileWriter::deferred_sync`](crate::storage::FileWriter::deferred_sync)) and
//! returns it, with the hash state of this offset, as a [`PendingCheckpoint`] that the caller
//! runs on another thread after answering.
//!
//! The rule every checkpoint keeps still holds: a state is saved only once the bytes it covers
//! are durable (a pending checkpoint syncs, then saves). After a power cut the session reports
//! what survived, which may be less than a 202 said; it never reports more than is durable
//! and hashed.
//!
//! The pending checkpoints of one handle share a [`Gate`]:
//! - they run one at a time, and one whose offset is already covered by a saved state does
//!   nothing, so they may run in any order;
//! - a deferred save removes only the lower states, never a newer one;
//! - a failed sync fails the gate: the handle refuses further work (a later fsync could
//!   succeed after the kernel dropped the failed pages, and a state saved then would cover
//!   lost bytes);
//! - commit and cancel close the gate, so that no state appears in a session after its end.
//!
//! Appends do not wait for a running checkpoint: the next `PATCH` writes and hashes while the
//! last one's fsync runs (waiting for it put the disk between every two chunks again). What
//! makes bytes durable in place (a checkpoint in place, a commit) waits for the running one
//! first and then looks at the verdict, since only one of two fsyncs of the same file learns of
//! a write-back error.
//!
//! Each pending checkpoint also holds the session's claim, so no other handle in this process
//! opens the session before they are done.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use super::Upload;
use crate::hash::ResumableSha256;
use crate::names::{RepositoryName, UploadId};
use crate::storage::{DeferredSync, StorageDriver};
use crate::store::session::{Prune, Session};
use crate::store::{StoreError, UploadClaim};

/// What the checkpoints of one upload handle agree on.
#[derive(Debug, Default)]
pub(super) struct Gate {
    /// Held while a checkpoint syncs and saves. True once committed or cancelled: pending
    /// checkpoints must not write into the session.
    closed: Mutex<bool>,
    /// The highest offset whose state a checkpoint of this handle saved.
    saved: AtomicU64,
    /// A deferred sync failed: the handle must not be used again.
    failed: AtomicBool,
}

pub(super) type SharedGate = Arc<Gate>;

/// Records a state saved in place.
pub(super) fn saved(gate: &Gate, offset: u64) {
    gate.saved.fetch_max(offset, Ordering::AcqRel);
}

/// True when a deferred sync of this handle failed (as far as the finished ones tell: a
/// running one is not waited for).
pub(super) fn failed(gate: &Gate) -> bool {
    gate.failed.load(Ordering::Acquire)
}

/// Waits for a running checkpoint and keeps others from starting while the guard lives.
pub(super) fn hold(gate: &Gate) -> MutexGuard<'_, bool> {
    gate.closed.lock()
}

/// Stops every pending checkpoint of the handle from writing; waits for one that is running.
pub(super) fn close(gate: &Gate) {
    *gate.closed.lock() = true;
}

/// A checkpoint of an upload that runs later, on any thread: [`run`](PendingCheckpoint::run).
pub struct PendingCheckpoint {
    sync: Box<dyn DeferredSync>,
    state: ResumableSha256,
    driver: Arc<dyn StorageDriver>,
    repo: RepositoryName,
    id: UploadId,
    gate: SharedGate,
    _claim: Arc<UploadClaim>,
}

impl std::fmt::Debug for PendingCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingCheckpoint")
            .field("id", &self.id)
            .field("offset", &self.state.len())
            .finish_non_exhaustive()
    }
}

impl PendingCheckpoint {
    /// The offset this checkpoint makes durable.
    pub fn offset(&self) -> u64 {
        self.state.len()
    }

    /// Makes the bytes durable, then saves their hash state (unless a newer one is saved, or
    /// the upload ended meanwhile). An error means the state was not saved; after a failed
    /// sync the upload's handle refuses further work.
    pub fn run(self) -> Result<(), StoreError> {
        let closed = hold(&self.gate);
        let offset = self.state.len();
        if *closed || failed(&self.gate) || offset <= self.gate.saved.load(Ordering::Acquire) {
            return Ok(());
        }
        if let Err(e) = self.sync.run() {
            self.gate.failed.store(true, Ordering::Release);
            return Err(e.into());
        }
        let session = Session {
            driver: &*self.driver,
            repo: &self.repo,
            id: &self.id,
        };
        session.save_state(&self.state, Prune::Below)?;
        saved(&self.gate, offset);
        Ok(())
    }
}

impl Upload {
    /// As [`checkpoint`](Upload::checkpoint), but the sync and the state's save are returned
    /// to run later ([`PendingCheckpoint::run`]), so the caller can answer first. Checkpoints
    /// in place (and returns `None`) when the writer cannot split its sync off (an object
    /// store) or the store computes TarSum (its state is saved with the hash state's).
    ///
    /// ```
    /// # use layerstore::store::Store;
    /// # use layerstore::names::RepositoryName;
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = Store::filesystem(dir.path());
    /// let repo = RepositoryName::parse("library/demo").unwrap();
    /// let mut upload = store.create_upload(&repo).unwrap();
    /// upload.append(b"hello ").unwrap();
    /// let pending = upload.checkpoint_deferred().unwrap().expect("a file can sync later");
    /// upload.append(b"world").unwrap(); // the writer goes on meanwhile
    /// std::thread::spawn(move || pending.run()).join().unwrap().unwrap();
    /// assert_eq!(upload.offset(), 11);
    /// ```
    pub fn checkpoint_deferred(&mut self) -> Result<Option<PendingCheckpoint>, StoreError> {
        self.usable()?;
        let sync = match (&self.tarsum, self.writer.as_mut()) {
            (None, Some(writer)) => writer.deferred_sync(),
            _ => None,
        };
        let Some(sync) = sync else {
            self.checkpoint()?;
            return Ok(None);
        };
        self.parkable = true;
        self.part_states.clear();
        Ok(Some(PendingCheckpoint {
            sync,
            state: self.hasher.clone(),
            driver: Arc::clone(&self.driver),
            repo: self.repo.clone(),
            id: self.id.clone(),
            gate: Arc::clone(&self.gate),
            _claim: Arc::clone(&self.claim),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::storage::StorageError;
    use crate::store::Store;

    fn repo() -> RepositoryName {
        RepositoryName::parse("team/app").unwrap()
    }

    fn saved_offsets(store: &Store, upload: &Upload) -> Vec<u64> {
        let session = Session {
            driver: &**store.driver(),
            repo: &upload.repo,
            id: &upload.id,
        };
        session.saved_offsets().unwrap()
    }

    /// An upload with `chunks` appended, each followed by a deferred checkpoint (not run).
    fn upload_with(store: &Store, chunks: &[&[u8]]) -> (Upload, Vec<PendingCheckpoint>) {
        let mut upload = store.create_upload(&repo()).unwrap();
        let pending = chunks
            .iter()
            .map(|chunk| {
                upload.append(chunk).unwrap();
                upload.checkpoint_deferred().unwrap().unwrap()
            })
            .collect();
        (upload, pending)
    }

    #[test]
    fn the_state_is_saved_by_the_run_and_a_restart_resumes_from_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::filesystem(dir.path());
        let (upload, mut pending) = upload_with(&store, &[b"hello world"]);
        assert!(
            saved_offsets(&store, &upload).is_empty(),
            "saved before the run"
        );
        pending.remove(0).run().unwrap();
        assert_eq!(saved_offsets(&store, &upload), vec![11]);
        let id = upload.id.clone();
        drop(upload);
        let restarted = Store::filesystem(dir.path());
        let resumed = restarted.resume_upload(&repo(), &id).unwrap();
        assert_eq!(resumed.digest(), Digest::sha256(b"hello world"));
    }

    #[test]
    fn checkpoints_run_newest_first_leave_the_newest_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::filesystem(dir.path());
        let (upload, mut pending) = upload_with(&store, &[b"one ", b"two ", b"three"]);
        let newest = pending.pop().unwrap();
        newest.run().unwrap();
        for older in pending.into_iter().rev() {
            older.run().unwrap();
        }
        assert_eq!(saved_offsets(&store, &upload), vec![13]);
    }

    #[test]
    fn a_commit_or_cancel_stops_the_pending_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::filesystem(dir.path());
        let sessions = dir
            .path()
            .join("docker/registry/v2/repositories/team/app/_uploads");
        let (upload, pending) = upload_with(&store, &[b"committed"]);
        upload.commit(&Digest::sha256(b"committed"), None).unwrap();
        let (upload, more) = upload_with(&store, &[b"cancelled"]);
        upload.cancel().unwrap();
        for checkpoint in pending.into_iter().chain(more) {
            checkpoint.run().unwrap();
        }
        let left: Vec<_> = std::fs::read_dir(&sessions).unwrap().collect();
        assert!(left.is_empty(), "a session came back: {left:?}");
    }

    /// A sync that fails, as a disk's write error would.
    struct FailingSync;

    impl DeferredSync for FailingSync {
        fn run(self: Box<Self>) -> Result<(), StorageError> {
            Err(injected())
        }
    }

    /// A sync that says when it started and then waits for its verdict.
    struct HeldSync {
        started: std::sync::mpsc::Sender<()>,
        verdict: std::sync::mpsc::Receiver<Result<(), StorageError>>,
    }

    impl DeferredSync for HeldSync {
        fn run(self: Box<Self>) -> Result<(), StorageError> {
            self.started.send(()).unwrap();
            self.verdict.recv().unwrap()
        }
    }

    /// A checkpoint running on its own thread, its sync held until `verdict` says.
    struct Running {
        verdict: std::sync::mpsc::Sender<Result<(), StorageError>>,
        thread: std::thread::JoinHandle<Result<(), StoreError>>,
    }

    /// Runs `checkpoint` on a thread with its sync held; returns once the sync has started.
    fn run_held(mut checkpoint: PendingCheckpoint) -> Running {
        let (started, has_started) = std::sync::mpsc::channel();
        let (verdict, waits) = std::sync::mpsc::channel();
        checkpoint.sync = Box::new(HeldSync {
            started,
            verdict: waits,
        });
        let thread = std::thread::spawn(move || checkpoint.run());
        has_started.recv().unwrap();
        Running { verdict, thread }
    }

    fn injected() -> StorageError {
        StorageError::Io {
            op: "fsync",
            path: crate::storage::DriverPath::root(),
            source: std::io::Error::other("injected"),
        }
    }

    #[test]
    fn appends_go_on_while_a_checkpoint_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::filesystem(dir.path());
        let (mut upload, mut pending) = upload_with(&store, &[b"first "]);
        let running = run_held(pending.remove(0));
        let (done, appended) = std::sync::mpsc::channel();
        let appending = std::thread::spawn(move || {
            upload.append(b"second").unwrap();
            done.send(()).unwrap();
            upload
        });
        let waited = appended.recv_timeout(std::time::Duration::from_secs(20));
        running.verdict.send(Ok(())).unwrap();
        assert!(waited.is_ok(), "the append waited for the running sync");
        running.thread.join().unwrap().unwrap();
        let upload = appending.join().unwrap();
        assert_eq!(saved_offsets(&store, &upload), vec![6]);
        assert_eq!(upload.offset(), 12);
    }

    #[test]
    fn a_checkpoint_in_place_waits_for_a_running_sync_and_heeds_its_failure() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::filesystem(dir.path());
        let (mut upload, mut pending) = upload_with(&store, &[b"lost?"]);
        let running = run_held(pending.remove(0));
        let in_place = std::thread::spawn(move || {
            let outcome = upload.checkpoint();
            (upload, outcome)
        });
        // Whether or not the checkpoint has reached the gate yet, it must not pass it before
        // the running sync's verdict.
        std::thread::sleep(std::time::Duration::from_millis(50));
        running.verdict.send(Err(injected())).unwrap();
        assert!(running.thread.join().unwrap().is_err());
        let (upload, outcome) = in_place.join().unwrap();
        assert!(matches!(outcome, Err(StoreError::BlobUploadInterrupted(_))));
        assert!(saved_offsets(&store, &upload).is_empty());
    }

    #[test]
    fn a_commit_heeds_the_failure_of_a_sync_that_was_running() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::filesystem(dir.path());
        let (upload, mut pending) = upload_with(&store, &[b"lost?"]);
        let running = run_held(pending.remove(0));
        let committing = std::thread::spawn(move || upload.commit(&Digest::sha256(b"lost?"), None));
        std::thread::sleep(std::time::Duration::from_millis(50));
        running.verdict.send(Err(injected())).unwrap();
        assert!(running.thread.join().unwrap().is_err());
        let outcome = committing.join().unwrap();
        assert!(matches!(outcome, Err(StoreError::BlobUploadInterrupted(_))));
        let unknown = store.stat_global(&Digest::sha256(b"lost?"));
        assert!(matches!(unknown, Err(StoreError::BlobUnknown(_))));
    }

    #[test]
    fn a_failed_sync_saves_nothing_and_the_handle_refuses_work() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::filesystem(dir.path());
        let (mut upload, mut pending) = upload_with(&store, &[b"lost?"]);
        let mut failing = pending.remove(0);
        failing.sync = Box::new(FailingSync);
        assert!(failing.run().is_err());
        assert!(saved_offsets(&store, &upload).is_empty());
        for refused in [upload.append(b"more"), upload.checkpoint()] {
            assert!(matches!(refused, Err(StoreError::BlobUploadInterrupted(_))));
        }
        // Parked, it is not taken back: the session opens from storage.
        let id = upload.id.clone();
        store.park_upload(upload);
        let reopened = store.resume_upload(&repo(), &id).unwrap();
        assert_eq!(reopened.offset(), 5);
        assert!(!failed(&reopened.gate));
    }
}
