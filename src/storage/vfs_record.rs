//! [`RecordingFs`]: a [`Vfs`] that performs every mutation on a real directory and appends it to
//! a trace, for the power-loss tests (`tests/power_loss.rs`).
//!
//! Files are named in the trace by a [`FileId`] (an inode of the recording, not a path), so a
//! file written under a temporary name and renamed into place keeps its history: what a power
//! cut keeps of its bytes depends on fsyncs of the file, what it keeps of its names on fsyncs
//! of their directories (`vfs_crash`). Paths in the trace are relative to the recorded root.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use super::vfs::{open_options, OpenMode, Vfs, VfsFile};
use super::vfs_crash::Trace;

/// A file of the recording (stable across renames; a new file gets a new one).
pub type FileId = u64;

/// One recorded mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsOp {
    /// A new directory entry for a new, empty file.
    Create {
        /// The file's path.
        path: PathBuf,
        /// The new file.
        file: FileId,
    },
    /// A new directory.
    Mkdir {
        /// Its path.
        path: PathBuf,
    },
    /// Bytes written into a file.
    Write {
        /// The file.
        file: FileId,
        /// Where.
        offset: u64,
        /// What.
        data: Vec<u8>,
    },
    /// A file cut to a length (opening with truncation, or `set_len`).
    SetLen {
        /// The file.
        file: FileId,
        /// The new length.
        len: u64,
    },
    /// `fsync`/`fdatasync` of a file.
    SyncFile {
        /// The file.
        file: FileId,
    },
    /// `fsync` of a directory.
    SyncDir {
        /// The directory.
        path: PathBuf,
    },
    /// A rename of a file (`file`) or of a directory (`None`).
    Rename {
        /// The old name.
        from: PathBuf,
        /// The new name (replacing any file there).
        to: PathBuf,
        /// The file moved.
        file: Option<FileId>,
    },
    /// A file's name removed.
    Unlink {
        /// The name.
        path: PathBuf,
        /// The file it named.
        file: FileId,
    },
    /// An empty directory removed.
    Rmdir {
        /// Its path.
        path: PathBuf,
    },
    /// A modification time set (not modelled after a crash: nothing relies on it for safety).
    SetTimes {
        /// The file.
        path: PathBuf,
    },
}

#[derive(Debug, Default)]
struct Recorder {
    ops: Vec<FsOp>,
    /// Inode number -> file of the recording.
    ids: HashMap<u64, FileId>,
    /// Files that existed when the recording began, with their paths then.
    base_files: HashMap<FileId, PathBuf>,
    next: FileId,
}

impl Recorder {
    fn fresh(&mut self, ino: u64) -> FileId {
        self.next += 1;
        self.ids.insert(ino, self.next);
        self.next
    }

    fn id_of(&mut self, ino: u64) -> FileId {
        match self.ids.get(&ino) {
            Some(&id) => id,
            None => self.fresh(ino),
        }
    }
}

/// A recording [`Vfs`] over the real directory `root`. Clones share one trace.
#[derive(Debug, Clone)]
pub struct RecordingFs {
    root: PathBuf,
    recorder: Arc<Mutex<Recorder>>,
}

impl RecordingFs {
    /// Records the mutations of a driver rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RecordingFs {
            root: root.into(),
            recorder: Arc::default(),
        }
    }

    /// Starts a new trace: copies the tree under the root to `baseline` (the state before the
    /// traced operation) and forgets earlier mutations.
    pub fn begin(&self, baseline: &Path) -> io::Result<()> {
        let mut recorder = self.lock();
        recorder.ops.clear();
        recorder.ids.clear();
        recorder.base_files.clear();
        fs::create_dir_all(&self.root)?;
        copy_tree(&self.root, baseline, Path::new(""), &mut recorder)
    }

    /// The mutations since [`begin`](Self::begin), with the baseline they apply to.
    pub fn finish(&self, baseline: &Path) -> Trace {
        let recorder = self.lock();
        Trace {
            baseline: baseline.to_path_buf(),
            base_files: recorder.base_files.clone(),
            ops: recorder.ops.clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Recorder> {
        self.recorder.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn relative(&self, path: &Path) -> io::Result<PathBuf> {
        path.strip_prefix(&self.root)
            .map(Path::to_path_buf)
            .map_err(|_| io::Error::other(format!("{} is outside the root", path.display())))
    }
}

/// Copies `from` to `to`, giving every file met a [`FileId`] with its relative path.
fn copy_tree(from: &Path, to: &Path, rel: &Path, recorder: &mut Recorder) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        let name = entry.file_name();
        if meta.is_dir() {
            copy_tree(&entry.path(), &to.join(&name), &rel.join(&name), recorder)?;
        } else {
            fs::copy(entry.path(), to.join(&name))?;
            let id = recorder.fresh(meta.ino());
            recorder.base_files.insert(id, rel.join(&name));
        }
    }
    Ok(())
}

impl Vfs for RecordingFs {
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let rel = self.relative(path)?;
        let mut recorder = self.lock();
        fs::create_dir(path)?;
        recorder.ops.push(FsOp::Mkdir { path: rel });
        Ok(())
    }

    fn open_write(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>> {
        let rel = self.relative(path)?;
        let mut recorder = self.lock();
        let existed = fs::symlink_metadata(path).is_ok();
        let file = open_options(mode).open(path)?;
        let meta = file.metadata()?;
        let id = if existed {
            recorder.id_of(meta.ino())
        } else {
            let id = recorder.fresh(meta.ino());
            recorder.ops.push(FsOp::Create {
                path: rel,
                file: id,
            });
            id
        };
        if existed && mode == OpenMode::Truncate {
            recorder.ops.push(FsOp::SetLen { file: id, len: 0 });
        }
        let pos = if mode == OpenMode::Append {
            meta.len()
        } else {
            0
        };
        Ok(Box::new(RecordingFile {
            file,
            id,
            pos,
            recorder: Arc::clone(&self.recorder),
        }))
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let rel = self.relative(path)?;
        let mut recorder = self.lock();
        File::open(path)?.sync_all()?;
        recorder.ops.push(FsOp::SyncDir { path: rel });
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from_rel, to_rel) = (self.relative(from)?, self.relative(to)?);
        let mut recorder = self.lock();
        let meta = fs::symlink_metadata(from)?;
        fs::rename(from, to)?;
        let file = (!meta.is_dir()).then(|| recorder.id_of(meta.ino()));
        recorder.ops.push(FsOp::Rename {
            from: from_rel,
            to: to_rel,
            file,
        });
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let rel = self.relative(path)?;
        let mut recorder = self.lock();
        let meta = fs::symlink_metadata(path)?;
        fs::remove_file(path)?;
        let file = recorder.id_of(meta.ino());
        recorder.ids.remove(&meta.ino());
        recorder.ops.push(FsOp::Unlink { path: rel, file });
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let rel = self.relative(path)?;
        let mut recorder = self.lock();
        fs::remove_dir(path)?;
        recorder.ops.push(FsOp::Rmdir { path: rel });
        Ok(())
    }

    /// Depth first, one recorded unlink or rmdir per entry, as `std::fs::remove_dir_all` does.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                self.remove_dir_all(&entry.path())?;
            } else {
                self.remove_file(&entry.path())?;
            }
        }
        self.remove_dir(path)
    }

    fn set_modified(&self, path: &Path, time: SystemTime) -> io::Result<()> {
        let rel = self.relative(path)?;
        let mut recorder = self.lock();
        File::open(path)?.set_modified(time)?;
        recorder.ops.push(FsOp::SetTimes { path: rel });
        Ok(())
    }
}

/// A file opened through a [`RecordingFs`].
#[derive(Debug)]
struct RecordingFile {
    file: File,
    id: FileId,
    /// Where the next write lands (writers only append or start from zero).
    pos: u64,
    recorder: Arc<Mutex<Recorder>>,
}

impl RecordingFile {
    fn lock(&self) -> MutexGuard<'_, Recorder> {
        self.recorder.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Write for RecordingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let recorder = Arc::clone(&self.recorder);
        let mut recorder = recorder.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.file.write(buf)?;
        recorder.ops.push(FsOp::Write {
            file: self.id,
            offset: self.pos,
            data: buf[..n].to_vec(),
        });
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl VfsFile for RecordingFile {
    fn sync_data(&self) -> io::Result<()> {
        let mut recorder = self.lock();
        self.file.sync_data()?;
        recorder.ops.push(FsOp::SyncFile { file: self.id });
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        let mut recorder = self.lock();
        self.file.sync_all()?;
        recorder.ops.push(FsOp::SyncFile { file: self.id });
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut recorder = self.lock();
        self.file.set_len(len)?;
        recorder.ops.push(FsOp::SetLen { file: self.id, len });
        Ok(())
    }

    fn try_clone(&self) -> io::Result<Box<dyn VfsFile>> {
        Ok(Box::new(RecordingFile {
            file: self.file.try_clone()?,
            id: self.id,
            pos: self.pos,
            recorder: Arc::clone(&self.recorder),
        }))
    }
}
