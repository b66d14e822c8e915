//! Storage drivers: the narrow interface between the blob store and the bytes' home.
//!
//! [`StorageDriver`] follows distribution's `storagedriver` so that a store written through one
//! backend has the same keys as distribution's. Three drivers ship: [`FilesystemDriver`] (the
//! default; a root directory), [`S3Driver`] (any S3-compatible bucket) and [`InMemoryDriver`]
//! (tests, caches). Every method takes a validated [`DriverPath`], so no input can address
//! anything outside the driver's root.
//!
//! | method | filesystem | S3 |
//! |---|---|---|
//! | `get_content` | read the file | `GetObject` |
//! | `put_content` | temp file, fsync, rename, fsync dir (atomic) | `PutObject` (atomic by nature) |
//! | `reader(path, offset)` | open + seek | `GetObject` with `Range: bytes=offset-` |
//! | `reader_range(path, offset, len)` | open + seek, cut at `len` | `GetObject` with `Range: bytes=offset-(offset+len-1)` |
//! | `writer(path, append)` | open for append | multipart upload; append finds it (`ListMultipartUploads`, `ListParts`) |
//! | `FileWriter::sync` | `fsync` | upload the buffered tail as the next part |
//! | `FileWriter::commit` | `fsync` | `CompleteMultipartUpload` (or one `PutObject`) |
//! | `stat` | `metadata` | `HeadObject`, else a `ListObjectsV2` prefix (a "directory") |
//! | `append_size` | `metadata` | sum of the unfinished upload's parts |
//! | `list` | `read_dir`, sorted | `ListObjectsV2` with delimiter `/` (sorted by key) |
//! | `move_to` | `rename` + fsync dirs | `CopyObject` (`UploadPartCopy` over 5 GiB) + `DeleteObject` |
//! | `delete` | unlink, or rename the tree away and remove it; fsync dir | `DeleteObjects` a page at a time, abort unfinished uploads |
//! | `delete_files` | remove each file, then its directory if empty; fsync the dirs | `DeleteObjects`, 200 keys per call |
//! | `touch` | set the modification time (`futimens`) | `CopyObject` onto itself, metadata replaced |
//! | `walk` | `list` + `stat`, depth first | `ListObjectsV2` without delimiter |
//! | `file` | `open` (positioned reads, windowed maps) | not available (`None`): callers stream |
//! | `redirect_url` | none | presigned `GetObject` URL (with `redirect`) |
//!
//! Directories are implicit, as on S3: writing a file creates its parents; a directory exists
//! while something is in it. No method relies on hard links, permissions or empty directories.

mod error;
pub mod filesystem;
mod fs_detach;
mod fs_writer;
pub mod inmemory;
pub mod location;
pub mod metered;
mod path;
pub mod paths;
pub mod s3;
pub mod secret;
pub(crate) mod spares;
pub mod vfs;
#[doc(hidden)]
pub mod vfs_crash;
#[doc(hidden)]
pub mod vfs_record;

use std::io::{Read, Write};
use std::time::SystemTime;

pub use error::StorageError;
pub use filesystem::FilesystemDriver;
pub use inmemory::InMemoryDriver;
pub use location::{
    http_secret, HttpSecret, LocationError, S3Settings, SecretSource, StorageLocation,
    HTTP_SECRET_PATH,
};
pub use metered::MeteredDriver;
pub use path::{DriverPath, PathError, MAX_COMPONENT_LEN, MAX_PATH_LEN};
pub use paths::PathSpec;
pub use s3::S3Driver;

/// Largest file [`StorageDriver::get_content`] reads whole. Links, hash states and `startedat`
/// are tiny; manifests are limited to 4 MiB by the registry. Anything larger is streamed.
pub const MAX_CONTENT_LEN: u64 = 16 << 20;

/// What [`StorageDriver::stat`] reports about a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The path.
    pub path: DriverPath,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// True for a directory (a prefix with children, on object stores).
    pub is_dir: bool,
    /// Last modification time.
    pub modified: SystemTime,
}

/// What a [`StorageDriver::walk`] callback wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkControl {
    /// Keep going (into this directory, if it is one).
    Continue,
    /// Do not descend into this directory.
    SkipDir,
}

/// A writer opened by [`StorageDriver::writer`]: bytes written are appended to the file.
///
/// Dropping it without [`commit`](FileWriter::commit) keeps what was written (as distribution
/// does), but without the durability guarantee.
pub trait FileWriter: Write + Send + std::fmt::Debug {
    /// Size of the file so far, including bytes written before this writer was opened.
    fn size(&self) -> u64;
    /// Makes everything written so far durable (fsync), keeping the writer open.
    fn sync(&mut self) -> Result<(), StorageError>;
    /// Makes everything durable and closes the writer.
    fn commit(self: Box<Self>) -> Result<(), StorageError>;
    /// As [`commit`](FileWriter::commit), for a file about to be moved: the bytes must be
    /// durable, its name need not be (the move makes the new name durable). On a filesystem
    /// this spares the fsync of a new file's directory.
    fn commit_before_move(self: Box<Self>) -> Result<(), StorageError> {
        self.commit()
    }
    /// Closes the writer and deletes the file.
    fn cancel(self: Box<Self>) -> Result<(), StorageError>;

    /// How many bytes from the start of the file are durable already, without a
    /// [`sync`](FileWriter::sync): an object store's uploaded parts. Writers that make nothing
    /// durable on their own (a local file before `fsync`) say 0.
    fn durable_len(&mut self) -> u64 {
        0
    }

    /// The file size at which the writer will next make bytes durable on its own (the end of
    /// the part being filled), if it does that. An upload saves its hash state there, so a
    /// crash in the middle of a long body resumes from the last part, not from zero.
    fn part_boundary(&self) -> Option<u64> {
        None
    }

    /// A [`sync`](FileWriter::sync) of everything written so far that can run later, on
    /// another thread, while this writer goes on writing: what lets an upload answer a `PATCH`
    /// before its bytes are durable. `None` when the writer cannot split its sync off (an
    /// object store's part must be sent before the next bytes are taken); the caller then
    /// syncs in place.
    fn deferred_sync(&mut self) -> Option<Box<dyn DeferredSync>> {
        None
    }
}

/// A sync split off a [`FileWriter`] ([`FileWriter::deferred_sync`]): once [`run`] returns
/// `Ok`, every byte the writer had written when it was split off is durable.
///
/// [`run`]: DeferredSync::run
pub trait DeferredSync: Send {
    /// Makes the bytes durable; blocks.
    fn run(self: Box<Self>) -> Result<(), StorageError>;
}

/// A storage backend. Implementations are shared between threads (`Send + Sync`); the API is
/// synchronous (an async caller runs it on a blocking thread).
pub trait StorageDriver: Send + Sync + std::fmt::Debug {
    /// A short name for messages (`filesystem`, `inmemory`).
    fn name(&self) -> &'static str;

    /// The whole content of a small file (at most [`MAX_CONTENT_LEN`] bytes).
    fn get_content(&self, path: &DriverPath) -> Result<Vec<u8>, StorageError>;

    /// Replaces the file at `path` with `content`, atomically: a reader sees the old content
    /// or the new, never a mix, and after a crash one of the two is there, complete.
    fn put_content(&self, path: &DriverPath, content: &[u8]) -> Result<(), StorageError>;

    /// Writes a small new file, creating its directory if missing, without making either
    /// durable: a power cut may lose them (or leave the file empty), a process crash does not.
    /// Atomic for readers, like [`put_content`](Self::put_content). For the start of an upload
    /// session, which nothing acknowledged relies on until its first saved hash state;
    /// [`sync_new`](Self::sync_new) makes it durable then. By default, `put_content`.
    fn put_new_unsynced(&self, path: &DriverPath, content: &[u8]) -> Result<(), StorageError> {
        self.put_content(path, content)
    }

    /// Makes a file [`put_new_unsynced`](Self::put_new_unsynced) wrote durable: its bytes,
    /// its entry, and its directory's entry. Nothing to do by default (there, it already is).
    fn sync_new(&self, path: &DriverPath) -> Result<(), StorageError> {
        let _ = path;
        Ok(())
    }

    /// A stream of the file's bytes from `offset`. An offset past the end is
    /// [`StorageError::InvalidOffset`]; exactly at the end gives an empty stream.
    fn reader(&self, path: &DriverPath, offset: u64) -> Result<Box<dyn Read + Send>, StorageError>;

    /// A stream of `len` bytes of the file from `offset` (fewer if the file ends first). An
    /// object store asks for just those bytes (a ranged `GetObject`), so a 4 KiB range of a
    /// large blob neither starts the rest of the object's transfer nor costs the connection
    /// that an unfinished body would. By default, [`reader`](Self::reader) cut at `len`.
    fn reader_range(
        &self,
        path: &DriverPath,
        offset: u64,
        len: u64,
    ) -> Result<Box<dyn Read + Send>, StorageError> {
        Ok(Box::new(self.reader(path, offset)?.take(len)))
    }

    /// A writer to `path`: with `append` it continues an existing file (or starts an empty
    /// one), without it the file is truncated first.
    fn writer(&self, path: &DriverPath, append: bool) -> Result<Box<dyn FileWriter>, StorageError>;

    /// Size, kind and modification time of a file or directory.
    fn stat(&self, path: &DriverPath) -> Result<FileInfo, StorageError>;

    /// The size of the complete file at `path`, or `None` when there is none (nothing, or a
    /// directory): one `HeadObject` on S3, where [`stat`](Self::stat) also looks for a
    /// directory.
    fn file_size(&self, path: &DriverPath) -> Result<Option<u64>, StorageError> {
        match self.stat(path) {
            Ok(info) if !info.is_dir => Ok(Some(info.size)),
            Ok(_) | Err(StorageError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A writer appending to the file at `path` ([`FileWriter::size`] tells where it starts), or
    /// `None` when there is no file (nothing is created then).
    fn open_append(&self, path: &DriverPath) -> Result<Option<Box<dyn FileWriter>>, StorageError> {
        match self.append_size(path) {
            Ok(_) => self.writer(path, true).map(Some),
            Err(StorageError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The size a writer opened on `path` with `append` would start at. Same as `stat`'s size
    /// on a filesystem; an object store also counts an unfinished multipart upload there,
    /// which is what an upload's `data` is until it is committed.
    fn append_size(&self, path: &DriverPath) -> Result<u64, StorageError> {
        let info = self.stat(path)?;
        if info.is_dir {
            return Err(StorageError::IsDirectory(path.clone()));
        }
        Ok(info.size)
    }

    /// Announces a file that writers will append to, before the first byte. A filesystem needs
    /// nothing (appending creates the file). An object store starts the multipart upload now,
    /// as distribution 2.8 does at an upload's POST, so that distribution (which can only
    /// continue an upload it finds) may take over a session from its very first request.
    fn start_appendable(&self, path: &DriverPath) -> Result<(), StorageError> {
        let _ = path;
        Ok(())
    }

    /// Makes a file that writers append to readable as a whole, before it is read: an object
    /// store completes its unfinished multipart upload (when that holds the newest bytes), since
    /// parts cannot be read until then. Where files are always readable, nothing to do.
    fn finish_appends(&self, path: &DriverPath) -> Result<(), StorageError> {
        let _ = path;
        Ok(())
    }

    /// True when the file at `path` was last changed before this machine started: a power cut
    /// or a kernel crash came in between, and whatever of it was not fsynced may have been
    /// lost, or kept as zeros (a filesystem may persist a file's new size before its data, as
    /// ext4 without a journal does). An upload then trusts only the bytes a saved state
    /// vouches for ([`truncate`](Self::truncate)s the rest). False where every stored byte is
    /// durable (object stores: what is listed was uploaded whole), and by default.
    fn written_before_boot(&self, path: &DriverPath) -> Result<bool, StorageError> {
        let _ = path;
        Ok(false)
    }

    /// True when a listing (and so [`append_size`](Self::append_size) and
    /// [`open_append`](Self::open_append), which list an object store's unfinished uploads and
    /// their parts) can miss, for a moment, what was just written: Garage's
    /// `ListMultipartUploads` and `ListParts` can. An upload that finds fewer bytes than a
    /// saved state vouches for then waits for the listing to catch up. False by default.
    fn listings_may_lag(&self) -> bool {
        false
    }

    /// Cuts the file at `path` to `len` bytes, durably. Needed only by drivers whose
    /// [`written_before_boot`](Self::written_before_boot) can be true; the default refuses.
    fn truncate(&self, path: &DriverPath, len: u64) -> Result<(), StorageError> {
        let _ = len;
        Err(StorageError::io(
            "truncate",
            path,
            std::io::Error::from(std::io::ErrorKind::Unsupported),
        ))
    }

    /// The direct children of a directory, sorted by path.
    fn list(&self, path: &DriverPath) -> Result<Vec<DriverPath>, StorageError>;

    /// Moves a file from `source` to `dest`, creating `dest`'s parents and replacing any file
    /// there. Durable when it returns.
    fn move_to(&self, source: &DriverPath, dest: &DriverPath) -> Result<(), StorageError>;

    /// Deletes a file, or a directory and everything below it.
    fn delete(&self, path: &DriverPath) -> Result<(), StorageError>;

    /// Deletes these files (not directories); those already gone are fine. A directory left
    /// empty may go too, as on an object store. The garbage collector deletes through this, so
    /// an object store can delete hundreds of keys per request.
    fn delete_files(&self, paths: &[DriverPath]) -> Result<(), StorageError> {
        for path in paths {
            missing_is_ok(self.delete(path))?;
        }
        Ok(())
    }

    /// [`delete`](Self::delete) for what nobody relies on staying deleted after a crash (an
    /// upload's superseded hash states, a finished session): as atomic, but a filesystem skips
    /// the directory fsync that makes `delete` durable, which is one fsync per checkpoint saved.
    fn discard(&self, path: &DriverPath) -> Result<(), StorageError> {
        self.delete(path)
    }

    /// Sets the file's modification time to now, keeping its content (a missing file is
    /// [`StorageError::NotFound`]). Writers touch an old blob they are about to rely on, so that
    /// a garbage collection running at the same time sees it as in use (`docs/gc.md`).
    fn touch(&self, path: &DriverPath) -> Result<(), StorageError>;

    /// Deletes the driver's own temporary files last modified before `cutoff` (left by a
    /// process killed mid-write) and returns how many went. Drivers that stage nothing on the
    /// side have nothing to do.
    fn sweep_temp_files(&self, cutoff: std::time::SystemTime) -> Result<u64, StorageError> {
        let _ = cutoff;
        Ok(0)
    }

    /// The file opened for reading, when the backend keeps files on a local filesystem: readers
    /// then use positioned reads and map windows of it (zero copy) instead of a stream. `None`
    /// means "not supported here": stream with [`reader`](StorageDriver::reader).
    fn file(&self, path: &DriverPath) -> Option<Result<std::fs::File, StorageError>> {
        let _ = path;
        None
    }

    /// A URL a client can fetch the file from directly (an object store's presigned URL), when
    /// the driver is configured to hand them out. `None`: serve the bytes.
    fn redirect_url(&self, path: &DriverPath) -> Option<Result<String, StorageError>> {
        let _ = path;
        None
    }

    /// Visits everything below `path` depth first, in sorted order, calling `visit` for each
    /// file and directory (not for `path` itself).
    fn walk(
        &self,
        path: &DriverPath,
        visit: &mut dyn FnMut(&FileInfo) -> Result<WalkControl, StorageError>,
    ) -> Result<(), StorageError> {
        for child in self.list(path)? {
            let info = match self.stat(&child) {
                Ok(info) => info,
                // Deleted between list and stat: nothing to visit.
                Err(StorageError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            if visit(&info)? == WalkControl::Continue && info.is_dir {
                match self.walk(&child, visit) {
                    Ok(()) | Err(StorageError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

/// Treats "not found" as success, for deleting or walking what may already be gone (another
/// request, a purge or a crash got there first).
///
/// ```
/// use layerstore::storage::{missing_is_ok, DriverPath, StorageError};
///
/// let gone = Err(StorageError::NotFound(DriverPath::parse("/a").unwrap()));
/// assert!(missing_is_ok(gone).is_ok());
/// ```
pub fn missing_is_ok(result: Result<(), StorageError>) -> Result<(), StorageError> {
    match result {
        Err(StorageError::NotFound(_)) => Ok(()),
        other => other,
    }
}
