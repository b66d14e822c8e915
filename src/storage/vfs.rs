//! [`Vfs`]: the handful of filesystem mutations [`FilesystemDriver`](super::FilesystemDriver)
//! makes, behind one narrow trait, so a test can record every one of them and rebuild what a
//! power cut at any point would leave on the disk (`vfs_record`, `vfs_crash`).
//!
//! Only mutations go through it (create, write, truncate, fsync, rename, unlink, mkdir, rmdir,
//! set the modification time): reads, listings, `stat` and opening files for reading stay on `std::fs`,
//! since a recording layer passes every call through to a real directory and so reads back
//! the same bytes. [`RealFs`] is the pass-through the driver uses by default: one dynamic call
//! in front of each system call, which is noise next to the system call itself.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::SystemTime;

/// How [`Vfs::open_write`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the file if missing and append to it.
    Append,
    /// Create the file if missing and truncate it to zero bytes.
    Truncate,
    /// Create a new file; fail with `AlreadyExists` if there is one.
    CreateNew,
}

/// A file opened for writing through a [`Vfs`].
pub trait VfsFile: Write + Send + std::fmt::Debug {
    /// `fdatasync`: the bytes written so far (and the size) are durable.
    fn sync_data(&self) -> io::Result<()>;
    /// `fsync`: as `sync_data`, plus the rest of the file's metadata.
    fn sync_all(&self) -> io::Result<()>;
    /// The file's current size.
    fn len(&self) -> io::Result<u64>;
    /// True when the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// A second handle on the same open file (for a background `fdatasync`).
    fn try_clone(&self) -> io::Result<Box<dyn VfsFile>>;
    /// Cuts (or extends) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
}

/// The filesystem mutations of the filesystem driver.
pub trait Vfs: Send + Sync + std::fmt::Debug {
    /// `mkdir`: one directory, its parent must exist.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Opens `path` for writing.
    fn open_write(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>>;
    /// fsyncs a directory, which makes the entries created, renamed or removed in it durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// `rename`, replacing any file at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// `unlink`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// `rmdir` of an empty directory.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything below it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Sets a file's modification time (`futimens`).
    fn set_modified(&self, path: &Path, time: SystemTime) -> io::Result<()>;
}

/// The real filesystem: every call goes straight to `std::fs`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

impl Vfs for RealFs {
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    fn open_write(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>> {
        Ok(Box::new(open_options(mode).open(path)?))
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }

    fn set_modified(&self, path: &Path, time: SystemTime) -> io::Result<()> {
        File::open(path)?.set_modified(time)
    }
}

/// The `OpenOptions` for a mode (shared with the recording layer, which opens real files too).
pub(crate) fn open_options(mode: OpenMode) -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true);
    match mode {
        OpenMode::Append => options.create(true).append(true),
        OpenMode::Truncate => options.create(true).truncate(true),
        OpenMode::CreateNew => options.create_new(true),
    };
    options
}

impl VfsFile for File {
    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn try_clone(&self) -> io::Result<Box<dyn VfsFile>> {
        Ok(Box::new(File::try_clone(self)?))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
}
