//! The filesystem driver's [`FileWriter`]: a file opened for appending, with write-behind.
//!
//! Large uploads would otherwise pile up dirty pages until the final fsync, and then wait for
//! all of them at once. Every [`WRITE_BEHIND`] bytes the writer starts an `fdatasync` on a
//! second handle in a helper thread, so the disk works while the caller keeps writing and
//! hashing; [`sync`](FileWriter::sync) waits for that helper and then syncs the rest. Errors
//! from a helper are reported by the next `sync`, so durability is never claimed falsely.

use std::io::{self, Write};
use std::path::PathBuf;
use std::thread::JoinHandle;

use super::vfs::VfsFile;
use super::{DeferredSync, DriverPath, FileWriter, FilesystemDriver, StorageError};

/// Bytes written between two background flushes.
pub const WRITE_BEHIND: u64 = 64 << 20;

#[derive(Debug)]
pub(super) struct FsFileWriter {
    file: Box<dyn VfsFile>,
    size: u64,
    path: DriverPath,
    local: PathBuf,
    /// The file did not exist before: its directory entry needs an fsync of the parent too.
    new_entry: bool,
    driver: FilesystemDriver,
    /// Bytes written since the last flush was started.
    unflushed: u64,
    /// The background flush in progress, if any.
    flusher: Option<JoinHandle<io::Result<()>>>,
    /// A finished background flush's error, reported by the next `sync`.
    flush_error: Option<io::Error>,
}

impl FsFileWriter {
    pub(super) fn new(
        file: Box<dyn VfsFile>,
        size: u64,
        path: DriverPath,
        local: PathBuf,
        new_entry: bool,
        driver: FilesystemDriver,
    ) -> Self {
        FsFileWriter {
            file,
            size,
            path,
            local,
            new_entry,
            driver,
            unflushed: 0,
            flusher: None,
            flush_error: None,
        }
    }

    /// Starts a background `fdatasync` if enough was written and none is running.
    fn maybe_flush_behind(&mut self) {
        if self.unflushed < WRITE_BEHIND || self.flusher.as_ref().is_some_and(|h| !h.is_finished())
        {
            return;
        }
        if let Err(e) = self.join_flusher() {
            self.flush_error.get_or_insert(e);
        }
        // Write-behind is an optimisation: if no handle or thread can be had, the final sync
        // does all the work instead.
        let Ok(handle) = self.file.try_clone() else {
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("layerstore-flush".into())
            .spawn(move || handle.sync_data());
        if let Ok(flusher) = spawned {
            self.unflushed = 0;
            self.flusher = Some(flusher);
        }
    }

    /// Waits for the background flush and returns its outcome (or an earlier one's error).
    fn join_flusher(&mut self) -> io::Result<()> {
        if let Some(e) = self.flush_error.take() {
            return Err(e);
        }
        match self.flusher.take() {
            Some(handle) => handle
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("background flush panicked"))),
            None => Ok(()),
        }
    }
}

impl Write for FsFileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.size += n as u64;
        self.unflushed += n as u64;
        self.maybe_flush_behind();
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl FileWriter for FsFileWriter {
    fn size(&self) -> u64 {
        self.size
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        let path = self.path.clone();
        let fsync = |e| StorageError::io("fsync", &path, e);
        self.join_flusher().map_err(fsync)?;
        self.file.sync_data().map_err(fsync)?;
        self.unflushed = 0;
        if self.new_entry {
            self.driver.sync_parent(&self.path)?;
            self.new_entry = false;
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<(), StorageError> {
        self.sync()
    }

    fn deferred_sync(&mut self) -> Option<Box<dyn DeferredSync>> {
        // A write-behind failure must be reported by a sync in place.
        if self.flush_error.is_some() {
            return None;
        }
        let file = self.file.try_clone().ok()?;
        // The deferred sync makes the new name durable too; from here on the writer's own
        // syncs need not (if the deferred one fails, the upload stops using this writer).
        let parent = std::mem::take(&mut self.new_entry).then(|| self.driver.clone());
        self.unflushed = 0;
        Some(Box::new(FsDeferredSync {
            file,
            path: self.path.clone(),
            parent,
        }))
    }

    fn commit_before_move(mut self: Box<Self>) -> Result<(), StorageError> {
        // The move fsyncs both directories; until then a crash may forget this name, which
        // leaves a session without data: nothing of it was acknowledged.
        self.new_entry = false;
        self.sync()
    }

    fn cancel(mut self: Box<Self>) -> Result<(), StorageError> {
        let _ = self.join_flusher();
        // Unlinking an open file is fine on Unix; the handle closes when `self` drops.
        self.driver
            .vfs()
            .remove_file(&self.local)
            .map_err(|e| StorageError::io("delete", &self.path, e))
    }
}

/// `fdatasync` on a second handle of the file, then the parent directory's fsync when the file
/// is new.
struct FsDeferredSync {
    file: Box<dyn VfsFile>,
    path: DriverPath,
    parent: Option<FilesystemDriver>,
}

impl DeferredSync for FsDeferredSync {
    fn run(self: Box<Self>) -> Result<(), StorageError> {
        self.file
            .sync_data()
            .map_err(|e| StorageError::io("fsync", &self.path, e))?;
        match &self.parent {
            Some(driver) => driver.sync_parent(&self.path),
            None => Ok(()),
        }
    }
}

impl Drop for FsFileWriter {
    fn drop(&mut self) {
        // Do not leave a helper thread holding the file after the writer is gone.
        let _ = self.join_flusher();
    }
}
