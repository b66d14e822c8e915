//! Resumable uploads: distribution's `_uploads/<id>/` sessions, hashed while they are written.
//!
//! Each byte is written to `data` and then fed to a SHA-256 state, once; large chunks are
//! written and hashed in parallel. A [`checkpoint`](Upload::checkpoint) makes `data` durable
//! first and only then stores the hash state in Go's format at
//! `hashstates/sha256/<offset>` (temp file + rename), pruning older states. So a saved state
//! never covers bytes that a crash could lose, and any process (this one, a later one, or
//! distribution) can resume: take the highest state at or below the size of `data`, hash only
//! the gap. [`commit`](Upload::commit) verifies the digest and size, then publishes the bytes
//! by renaming `data` into the blob store, then writes the links, then deletes the session.
//! See `docs/storage.md` for why each step is ordered as it is.

use std::io::Read;
use std::sync::Arc;
use std::time::SystemTime;

use crate::digest::{Algorithm, Digest, HashAlgorithm};
use crate::hash::{Hasher, ResumableSha256};
use crate::names::{RepositoryName, UploadId};
use crate::storage::{DriverPath, FileWriter, PathSpec, StorageDriver, StorageError};

use super::blobs::write_layer_link;
use super::liveness::publish_blob;
use super::session::{OpenedData, Prune, Session};
use super::stream::{fill, hash_range};
use super::upload_tarsum::{tarsum_of_data, UploadTarsum};
use super::{rfc3339, BlobInfo, Store, StoreError, UploadClaim};

pub use super::stream::CHUNK;
pub use deferred::PendingCheckpoint;

mod deferred;
pub(super) mod parked;
mod restore;

/// Below this many bytes, writing and hashing run one after the other: a thread hand-off
/// would cost more than it saves.
const PARALLEL_MIN: usize = 1 << 20;

/// Writing and hashing a batch in parallel pays only with cores to spare. On two, the other
/// core is busy with the socket (and often the client): `perf` showed the hand-off (rayon
/// waking a worker, idle workers spinning in `sched_yield`) at 5-10% of the server's CPU, and
/// one after the other measured 1.07x (monolithic) and 1.12x (16 MiB chunks) faster on tmpfs
/// with 17% less CPU per GiB on chunks, the same on disk (`docs/benchmarks.md`).
fn parallel_pays() -> bool {
    static MORE_THAN_TWO_CORES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *MORE_THAN_TWO_CORES
        .get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 2))
}

/// The state of an upload session, read without opening it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    /// Bytes received so far (the size of `data`).
    pub offset: u64,
    /// When the session started.
    pub started_at: SystemTime,
}

/// An open upload session. One handle per session per process (see
/// [`StoreError::BlobUploadBusy`]).
#[derive(Debug)]
pub struct Upload {
    driver: Arc<dyn StorageDriver>,
    repo: RepositoryName,
    id: UploadId,
    started_at: SystemTime,
    hasher: ResumableSha256,
    /// Opened on the first append; `None` until then and after a failure.
    writer: Option<Box<dyn FileWriter>>,
    /// Hash states taken at the writer's part boundaries, saved once those bytes are durable.
    part_states: Vec<ResumableSha256>,
    /// A write failed part-way: `data` and `hasher` may disagree, so the handle refuses work.
    broken: bool,
    /// TarSum beside SHA-256, when the store computes it ([`Store::with_tarsum`]).
    tarsum: Option<UploadTarsum>,
    /// The store's [`Store::touch_after`], for publishing onto an old blob.
    touch_after: std::time::Duration,
    /// Shared with the pending checkpoints ([`deferred`]), which keep the session claimed.
    claim: Arc<UploadClaim>,
    gate: deferred::SharedGate,
    /// Its writer splits syncs off ([`Upload::checkpoint_deferred`]): worth parking.
    parkable: bool,
}

impl Store {
    /// Starts an upload in `repo`: writes `startedat` and announces `data`
    /// ([`StorageDriver::start_appendable`]: nothing on a filesystem, where `data` is created by
    /// the first append; the multipart upload on S3). Hash states come with the first checkpoint
    /// (a session without them is at offset 0, for distribution too), which spares a
    /// one-request upload four fsyncs. The session itself becomes durable with that first
    /// state too ([`StorageDriver::put_new_unsynced`]): a POST acknowledges no bytes, and a
    /// session a power cut took is answered `BLOB_UPLOAD_UNKNOWN`, so the client starts again.
    /// That spares three more.
    pub fn create_upload(&self, repo: &RepositoryName) -> Result<Upload, StoreError> {
        let id = UploadId::generate().map_err(StoreError::Random)?;
        let claim = self.claim_upload(repo, &id)?;
        let started_at = SystemTime::now();
        let started = PathSpec::UploadStartedAt { repo, id: &id }.to_path()?;
        self.driver
            .put_new_unsynced(&started, rfc3339::format(started_at).as_bytes())?;
        let data = PathSpec::UploadData { repo, id: &id }.to_path()?;
        self.driver.start_appendable(&data)?;
        Ok(Upload {
            driver: Arc::clone(&self.driver),
            repo: repo.clone(),
            id,
            started_at,
            hasher: ResumableSha256::new(),
            writer: None,
            part_states: Vec::new(),
            broken: false,
            tarsum: self.tarsum.map(UploadTarsum::new),
            touch_after: self.touch_after,
            claim: Arc::new(claim),
            gate: Default::default(),
            parkable: false,
        })
    }

    /// Reopens an upload session, possibly written by another process or by distribution.
    ///
    /// The hash is restored from the highest saved state at or below the size of `data`, and
    /// only the bytes after it are read back and hashed. A session whose `data` was already
    /// moved into the blob store by a commit that crashed before finishing is restored from the
    /// blob, so committing it again completes the job.
    pub fn resume_upload(
        &self,
        repo: &RepositoryName,
        id: &UploadId,
    ) -> Result<Upload, StoreError> {
        if let Some(upload) = self.unpark(repo, id)? {
            return Ok(upload);
        }
        let claim = self.claim_upload(repo, id)?;
        let started_at = self.read_started_at(repo, id)?;
        let mut upload = Upload {
            driver: Arc::clone(&self.driver),
            repo: repo.clone(),
            id: id.clone(),
            started_at,
            hasher: ResumableSha256::new(),
            writer: None,
            part_states: Vec::new(),
            broken: false,
            tarsum: None,
            touch_after: self.touch_after,
            claim: Arc::new(claim),
            gate: Default::default(),
            parkable: false,
        };
        upload.restore()?;
        if let Some(version) = self.tarsum {
            let state = PathSpec::UploadTarsumState { repo, id }.to_path()?;
            let data = upload.data_path()?;
            let size = upload.offset();
            // Reading `data` back may complete an object store's upload: reopen after.
            upload.writer = None;
            self.driver.finish_appends(&data)?;
            upload.tarsum = Some(UploadTarsum::restore(
                version,
                &*self.driver,
                &state,
                &data,
                size,
            )?);
        }
        Ok(upload)
    }

    /// Offset and start time of an upload, without opening it or hashing anything.
    pub fn upload_status(
        &self,
        repo: &RepositoryName,
        id: &UploadId,
    ) -> Result<UploadStatus, StoreError> {
        let started_at = self.read_started_at(repo, id)?;
        let data = PathSpec::UploadData { repo, id }.to_path()?;
        let session = Session {
            driver: &*self.driver,
            repo,
            id,
        };
        let offset = match self.driver.append_size(&data) {
            Ok(size) => session.trusted_size(size)?,
            // No `data`: nothing received yet, or a commit moved it into the blob store and
            // crashed before finishing. Same answer as `resume_upload` gives (without restoring
            // anything or claiming the session), so the status agrees with the next PATCH.
            Err(StorageError::NotFound(_)) => {
                session.published_state()?.map_or(0, |state| state.len())
            }
            Err(e) => return Err(e.into()),
        };
        Ok(UploadStatus { offset, started_at })
    }

    /// Deletes an upload session and everything in it.
    pub fn cancel_upload(&self, repo: &RepositoryName, id: &UploadId) -> Result<(), StoreError> {
        self.discard_parked(repo, id);
        let _claim = self.claim_upload(repo, id)?;
        delete_session(&*self.driver, repo, id)
    }

    fn read_started_at(
        &self,
        repo: &RepositoryName,
        id: &UploadId,
    ) -> Result<SystemTime, StoreError> {
        let path = PathSpec::UploadStartedAt { repo, id }.to_path()?;
        let bytes = match self.driver.get_content(&path) {
            Ok(bytes) => bytes,
            Err(StorageError::NotFound(_)) => {
                return Err(StoreError::BlobUploadUnknown(id.clone()))
            }
            Err(e) => return Err(e.into()),
        };
        if bytes.iter().all(|&b| b == 0) {
            // Empty or zeros: a power cut took the session before its first state made it
            // durable (`create_upload`); nothing of it was acknowledged.
            return Err(StoreError::BlobUploadUnknown(id.clone()));
        }
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(rfc3339::parse)
            .ok_or(StoreError::StartedAtCorrupt(path))
    }
}

fn delete_session(
    driver: &dyn StorageDriver,
    repo: &RepositoryName,
    id: &UploadId,
) -> Result<(), StoreError> {
    let dir = PathSpec::UploadDir { repo, id }.to_path()?;
    // A finished or cancelled session that a power cut brings back is harmless (nothing in it
    // is acknowledged; purge takes it): no fsync needed.
    match driver.discard(&dir) {
        Ok(()) => Ok(()),
        Err(StorageError::NotFound(_)) => Err(StoreError::BlobUploadUnknown(id.clone())),
        Err(e) => Err(e.into()),
    }
}

impl Upload {
    /// The session id.
    pub fn id(&self) -> &UploadId {
        &self.id
    }

    /// The repository the upload belongs to.
    pub fn repo(&self) -> &RepositoryName {
        &self.repo
    }

    /// When the session started.
    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }

    /// The sha256 digest of the bytes received so far.
    pub fn digest(&self) -> Digest {
        self.hasher.digest()
    }

    /// Bytes received so far; the next append continues here.
    pub fn offset(&self) -> u64 {
        self.hasher.len()
    }

    /// Appends `bytes`: written to `data` and hashed (in parallel for large chunks).
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.append_pieces(&[bytes])
    }

    /// Appends `pieces` in order, as one batch: the writes (one after the other) and the hashing
    /// run on two threads when the batch holds at least `PARALLEL_MIN` bytes and the machine
    /// has more than two cores. Receivers
    /// gather the small frames of a request body into such batches, so writing the page cache
    /// and hashing overlap without copying the frames together.
    pub fn append_pieces<B: AsRef<[u8]> + Sync>(&mut self, pieces: &[B]) -> Result<(), StoreError> {
        self.usable()?;
        let mut writer = self.take_writer()?;
        let boundary = writer.part_boundary();
        let start = self.hasher.len();
        let hasher = &mut self.hasher;
        let tarsum = &mut self.tarsum;
        let mut at_boundary = None;
        let snapshot = &mut at_boundary;
        let mut hash = move || {
            let mut offset = start;
            for piece in pieces {
                let bytes = piece.as_ref();
                hash_around(hasher, bytes, offset, boundary, snapshot);
                if let Some(tarsum) = tarsum.as_mut() {
                    tarsum.update(bytes);
                }
                offset += bytes.len() as u64;
            }
        };
        let mut write = || pieces.iter().try_for_each(|p| writer.write_all(p.as_ref()));
        let total: usize = pieces.iter().map(|p| p.as_ref().len()).sum();
        let written = if total >= PARALLEL_MIN && parallel_pays() {
            rayon::join(write, hash).0
        } else {
            write().map(|()| hash())
        };
        if let Err(e) = written {
            self.broken = true;
            return Err(StoreError::Storage(StorageError::Io {
                op: "write",
                path: self.data_path().unwrap_or_else(|_| DriverPath::root()),
                source: e,
            }));
        }
        self.part_states.extend(at_boundary);
        let durable = writer.durable_len();
        self.writer = Some(writer);
        self.save_part_state(durable)
    }

    /// Saves the newest hash state taken at a part boundary that the writer reports durable
    /// (object stores upload parts while the body streams), so that a crash in the middle of a
    /// long body resumes from the last part instead of reading everything back.
    fn save_part_state(&mut self, durable: u64) -> Result<(), StoreError> {
        let Some(index) = self.part_states.iter().rposition(|s| s.len() <= durable) else {
            return Ok(());
        };
        let state = self.part_states[index].clone();
        self.part_states.drain(..=index);
        self.save_hash_state(&state)
    }

    /// The open writer of `data` (opened at the hashed offset on first use), taken out of
    /// `self` while a batch is written; a successful write puts it back.
    fn take_writer(&mut self) -> Result<Box<dyn FileWriter>, StoreError> {
        if let Some(writer) = self.writer.take() {
            return Ok(writer);
        }
        let writer = self.driver.writer(&self.data_path()?, true)?;
        let expected = self.offset();
        if writer.size() != expected {
            return Err(StoreError::UploadConflict {
                expected,
                found: writer.size(),
            });
        }
        Ok(writer)
    }

    /// Appends everything `reader` yields, [`CHUNK`] bytes at a time; returns the bytes read.
    pub fn append_from(&mut self, reader: &mut dyn Read) -> Result<u64, StoreError> {
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0;
        loop {
            let n = fill(reader, &mut buf).map_err(StoreError::Input)?;
            if n == 0 {
                return Ok(total);
            }
            self.append(&buf[..n])?;
            total += n as u64;
        }
    }

    /// Makes the received bytes durable, then saves the hash state for this offset and prunes
    /// older ones. After it returns, a crash loses nothing received so far.
    pub fn checkpoint(&mut self) -> Result<(), StoreError> {
        // A deferred checkpoint's fsync may be the one that learns of a write-back error.
        let gate = Arc::clone(&self.gate);
        let _running = deferred::hold(&gate);
        self.usable()?;
        self.sync_data()?;
        self.save_state()
    }

    /// Refuses work after a failed write or deferred sync: `data` and the hasher may disagree,
    /// or bytes may be lost that a later fsync would not report.
    fn usable(&self) -> Result<(), StoreError> {
        match self.broken || deferred::failed(&self.gate) {
            true => Err(StoreError::BlobUploadInterrupted(self.id.clone())),
            false => Ok(()),
        }
    }

    /// fsyncs `data` (creating it empty if missing). Without an open writer the bytes may come
    /// from an earlier process that never synced them, so they are synced here too: a state is
    /// only ever saved for durable bytes.
    fn sync_data(&mut self) -> Result<(), StoreError> {
        match &mut self.writer {
            Some(writer) => writer.sync()?,
            // Synced, not committed: an object store keeps the upload unfinished, so that
            // distribution can still continue it.
            None => self.driver.writer(&self.data_path()?, true)?.sync()?,
        }
        Ok(())
    }

    /// Closes `data` for good: commits the open writer, or opens one (at the end) and commits
    /// it. On a filesystem that is an fsync; an object store completes the unfinished upload, so
    /// the commit can move `data` without reading it.
    fn finish_data(&mut self) -> Result<(), StoreError> {
        let writer = match self.writer.take() {
            Some(writer) => writer,
            None => self.driver.writer(&self.data_path()?, true)?,
        };
        writer.commit_before_move()?;
        Ok(())
    }

    /// Deletes the session.
    pub fn cancel(mut self) -> Result<(), StoreError> {
        deferred::close(&self.gate);
        self.writer = None;
        delete_session(&*self.driver, &self.repo, &self.id)
    }

    /// Verifies and publishes the upload as a blob of `repo`.
    ///
    /// `claimed` may be sha256 or sha512 (the bytes are stored under their sha256 and the
    /// sha512 becomes an alias link, as distribution does). On a digest or size mismatch,
    /// nothing becomes visible under either digest and the session is kept (checkpointed), so
    /// the client can still cancel it or resume it; the purger removes it if abandoned.
    pub fn commit(mut self, claimed: &Digest, size: Option<u64>) -> Result<BlobInfo, StoreError> {
        // From here the commit saves the states: pending checkpoints stand down. Closing waits
        // for a running one, whose verdict the check after it sees.
        deferred::close(&self.gate);
        self.usable()?;
        // 1. data durable and whole (also creates an empty data file for a session that never
        // had one; on an object store, completes its multipart upload).
        self.finish_data()?;
        // 2. verify, keeping the session on failure.
        let canonical = self.hasher.digest();
        let actual = match claimed.algorithm() {
            Algorithm::SHA256 => canonical.clone(),
            Algorithm::SHA512 => self.rehash(HashAlgorithm::Sha512)?,
            Algorithm::Tarsum { .. } => match self.tarsum_for(claimed) {
                Ok(sum) => sum,
                Err(e @ StoreError::NotAnArchive { .. }) => {
                    self.save_state()?;
                    return Err(e);
                }
                Err(e) => return Err(e),
            },
        };
        if actual != *claimed {
            self.save_state()?;
            return Err(StoreError::DigestInvalid {
                expected: claimed.clone(),
                actual,
            });
        }
        let uploaded = self.offset();
        if let Some(expected) = size.filter(|&s| s != uploaded) {
            self.save_state()?;
            return Err(StoreError::SizeInvalid {
                expected,
                actual: uploaded,
            });
        }
        // 3. the final state, so a crash after the move can be recognised and finished. A
        // session that never saved a state needs none: after such a crash it has neither
        // `data` nor states, so it reads as empty and a client that starts again from offset 0
        // (nothing of it was acknowledged) ends on the blob already published.
        // Deferred checkpoints count as saved states: their PATCHes were answered.
        if self.parkable || !self.session().saved_offsets()?.is_empty() {
            self.save_state()?;
        }
        // 4. publish the bytes, 5. link them, 6. drop the session.
        self.publish(&canonical, uploaded)?;
        let driver = &*self.driver;
        write_layer_link(driver, &self.repo, &canonical, &canonical)?;
        if *claimed != canonical {
            write_layer_link(driver, &self.repo, claimed, &canonical)?;
        }
        delete_session(&*self.driver, &self.repo, &self.id)?;
        Ok(BlobInfo {
            digest: canonical,
            size: uploaded,
        })
    }

    /// Renames `data` to the blob path, unless a blob of the right size is already there and
    /// stays there ([`liveness::publish_blob`]).
    fn publish(&self, canonical: &Digest, size: u64) -> Result<(), StoreError> {
        let blob = PathSpec::BlobData { digest: canonical }.to_path()?;
        let data = self.data_path()?;
        match publish_blob(&*self.driver, self.touch_after, &data, &blob, size) {
            Ok(()) => Ok(()),
            // Purged or cancelled by someone else while this handle was open.
            Err(StoreError::Storage(StorageError::NotFound(_))) => {
                Err(StoreError::BlobUploadUnknown(self.id.clone()))
            }
            Err(e) => Err(e),
        }
    }

    /// One pass over `data` with another algorithm (sha512 claims).
    fn rehash(&self, algorithm: HashAlgorithm) -> Result<Digest, StoreError> {
        let mut hasher = Hasher::new(algorithm);
        self.driver.finish_appends(&self.data_path()?)?;
        hash_range(
            &*self.driver,
            &self.data_path()?,
            0,
            self.offset(),
            &mut |b| hasher.update(b),
        )?;
        Ok(hasher.digest())
    }

    /// The TarSum a `tarsum.*` claim asks for: from the running state when the store computes
    /// that version, else by streaming the data once. Content TarSum rejects (not a tar, a
    /// truncated or corrupt one) is [`StoreError::NotAnArchive`], naming the first problem.
    fn tarsum_for(&self, claimed: &Digest) -> Result<Digest, StoreError> {
        if let Some(sum) = self.tarsum.as_ref().and_then(|t| t.digest_for(claimed)) {
            return Ok(sum);
        }
        let Algorithm::Tarsum { version, hash } = claimed.algorithm() else {
            return Err(StoreError::UnsupportedDigest(claimed.clone()));
        };
        let data = self.data_path()?;
        self.driver.finish_appends(&data)?;
        match tarsum_of_data(&*self.driver, &data, self.offset(), version, hash)? {
            Ok(sum) => Digest::from_bytes(claimed.algorithm(), &sum.to_bytes())
                .map_err(|_| StoreError::UnsupportedDigest(claimed.clone())),
            Err(reason) => Err(StoreError::NotAnArchive {
                claimed: claimed.clone(),
                reason,
            }),
        }
    }

    fn session(&self) -> Session<'_> {
        Session {
            driver: &*self.driver,
            repo: &self.repo,
            id: &self.id,
        }
    }

    fn data_path(&self) -> Result<DriverPath, StoreError> {
        self.session().data_path()
    }

    /// Writes the Go-format state for the current offset (and the TarSum state), then removes
    /// the other states.
    fn save_state(&mut self) -> Result<(), StoreError> {
        let offset = self.offset();
        if let Some(tarsum) = &self.tarsum {
            let state = PathSpec::UploadTarsumState {
                repo: &self.repo,
                id: &self.id,
            }
            .to_path()?;
            tarsum.save(&*self.driver, &state, offset)?;
        }
        self.part_states.clear();
        let hasher = self.hasher.clone();
        self.save_hash_state(&hasher)
    }

    /// Writes `state` at `hashstates/sha256/<its offset>`, then removes the other states.
    fn save_hash_state(&self, state: &ResumableSha256) -> Result<(), StoreError> {
        self.session().save_state(state, Prune::Others)?;
        deferred::saved(&self.gate, state.len());
        Ok(())
    }
}

/// Feeds `bytes` (which start at `offset`) to `hasher`, keeping a copy of the state at
/// `boundary` when the bytes cross it.
fn hash_around(
    hasher: &mut ResumableSha256,
    bytes: &[u8],
    offset: u64,
    boundary: Option<u64>,
    snapshot: &mut Option<ResumableSha256>,
) {
    match boundary {
        Some(b) if offset < b && b <= offset + bytes.len() as u64 => {
            let (head, rest) = bytes.split_at((b - offset) as usize);
            hasher.update(head);
            *snapshot = Some(hasher.clone());
            hasher.update(rest);
        }
        _ => hasher.update(bytes),
    }
}
