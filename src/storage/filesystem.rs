//! [`FilesystemDriver`]: the default driver, a directory tree under a root directory.
//!
//! The layout under the root is exactly distribution's `filesystem` driver layout, so either
//! program can serve the other's root. Unlike distribution, every metadata write is atomic
//! (temp file, fsync, rename, fsync of the directory), and moves, deletions and new directories
//! are made durable before returning (`docs/storage.md` has the sequences; `tests/power_loss.rs`
//! cuts them at every step). A directory is deleted by renaming it away first, so in one step.
//! Temporary files (and trees being deleted) live in `<root>/.layerstore-tmp/`, outside
//! `docker/registry/v2`, so a crash can leave one behind there but never a half-written target,
//! and distribution never sees them. (Only if that directory is on another filesystem than the
//! target is the temp file put next to the target instead; listings hide those names.)

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use super::fs_detach::metadata_if_any;
use super::fs_writer::FsFileWriter;
use super::spares::SparePool;
use super::vfs::{OpenMode, RealFs, Vfs};
use super::{DriverPath, FileInfo, FileWriter, StorageDriver, StorageError, MAX_CONTENT_LEN};

/// Prefix of the temporary files `put_content` renames into place.
pub const TEMP_PREFIX: &str = ".layerstore-tmp-";
/// Directory under the root that holds those temporary files; listings hide it.
pub const TEMP_DIR: &str = ".layerstore-tmp";

/// A storage driver over a local directory.
///
/// ```
/// use layerstore::storage::{DriverPath, FilesystemDriver, StorageDriver};
/// let dir = tempfile::tempdir().unwrap();
/// let driver = FilesystemDriver::new(dir.path());
/// let path = DriverPath::parse("/a/b/link").unwrap();
/// driver.put_content(&path, b"hello").unwrap();
/// assert_eq!(driver.get_content(&path).unwrap(), b"hello");
/// assert!(dir.path().join("a/b/link").is_file());
/// ```
#[derive(Debug, Clone)]
pub struct FilesystemDriver {
    root: PathBuf,
    /// Where the mutations go: the real filesystem, or a test's recording layer.
    vfs: Arc<dyn Vfs>,
    /// When the machine started: files last changed before may have lost unsynced bytes.
    booted_at: SystemTime,
    /// Finished session directories, reused for new ones ([`super::spares`]).
    spares: Arc<SparePool>,
}

impl FilesystemDriver {
    /// A driver rooted at `root` (created on first write if missing).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self::with_vfs(root, Arc::new(RealFs))
    }

    /// A driver whose writes, renames, deletions and fsyncs go through `vfs` (reads always use
    /// the real files under `root`). For the power-loss tests, which record them.
    pub fn with_vfs(root: impl Into<PathBuf>, vfs: Arc<dyn Vfs>) -> Self {
        FilesystemDriver {
            root: root.into(),
            vfs,
            booted_at: boot_time(),
            spares: Arc::default(),
        }
    }

    /// This driver, taking `at` as the instant the machine started (see
    /// [`StorageDriver::written_before_boot`]). For tests that rebuild the disk a power cut
    /// left: files written before `at` count as having lived through the cut.
    pub fn with_boot_time(mut self, at: SystemTime) -> Self {
        self.booted_at = at;
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The layer the driver's mutations go through.
    pub(super) fn vfs(&self) -> &dyn Vfs {
        &*self.vfs
    }

    /// The local file for `path`. Safe because `DriverPath` has no `..` and no separators
    /// inside components.
    fn local(&self, path: &DriverPath) -> PathBuf {
        self.root.join(path.relative())
    }

    /// Creates `dir` and its missing ancestors, fsyncing each parent a directory was added to,
    /// so the new entries survive a crash.
    fn create_dirs(&self, dir: &DriverPath) -> Result<(), StorageError> {
        let local = self.local(dir);
        if local.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            self.create_dirs(&parent)?;
        }
        match self.vfs.create_dir(&local) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && local.is_dir() => return Ok(()),
            Err(e) => return Err(StorageError::io("mkdir", dir, e)),
        }
        self.sync_parent(dir)
    }

    /// The temporary directory, made durably like any other (a tree is moved into it to be
    /// deleted, so its own entry must not be one a crash forgets).
    fn temp_dir(&self) -> Result<PathBuf, StorageError> {
        let dir = self.root.join(TEMP_DIR);
        if !dir.is_dir() {
            self.create_dirs(&DriverPath::parse(&format!("/{TEMP_DIR}"))?)?;
        }
        Ok(dir)
    }

    /// Writes `content` to a new file in `temp_dir` and renames it onto `path`'s file (through
    /// a temporary file beside it when `temp_dir` is on another device).
    fn write_via_temp(
        &self,
        temp_dir: &Path,
        path: &DriverPath,
        content: &[u8],
        sync: Durability,
    ) -> io::Result<()> {
        let (vfs, target) = (&*self.vfs, self.local(path));
        match write_and_rename(vfs, &temp_dir.join(temp_name()), &target, content, sync) {
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                let beside = target.with_file_name(temp_name());
                write_and_rename(vfs, &beside, &target, content, sync)
            }
            other => other,
        }
    }

    /// fsyncs the directory `dir`; one that is gone already has nothing to make durable.
    fn sync_dir(&self, dir: &DriverPath) -> Result<(), StorageError> {
        match self.vfs.sync_dir(&self.local(dir)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other.map_err(|e| StorageError::io("fsync dir", dir, e)),
        }
    }

    /// Removes a directory tree in one step: a rename moves it out of the store into the
    /// temporary directory, where it is deleted. The rename is atomic, so a crash leaves the
    /// whole tree or none of it: never an upload session without its `startedat` (which no
    /// purge would then remove) or a tag without its `current` link.
    fn remove_tree(&self, path: &DriverPath, local: &Path) -> Result<(), StorageError> {
        let trash = self.temp_dir()?.join(temp_name());
        match self.vfs.rename(local, &trash) {
            Ok(()) => {
                // A directory of one file is kept to become a new session's directory; what a
                // failed removal leaves here is swept with the temporary files.
                if !self.spares.retire(&trash) {
                    let _ = self.vfs.remove_dir_all(&trash);
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => self
                .vfs
                .remove_dir_all(local)
                .map_err(|e| StorageError::io("delete", path, e)),
            Err(e) => Err(StorageError::io("delete", path, e)),
        }
    }

    fn create_parent_dirs(&self, path: &DriverPath) -> Result<(), StorageError> {
        match path.parent() {
            Some(parent) => self.create_dirs(&parent),
            None => Ok(()),
        }
    }

    /// fsyncs the directory holding `path`, which makes a rename or create in it durable.
    pub(super) fn sync_parent(&self, path: &DriverPath) -> Result<(), StorageError> {
        let parent = path.parent().unwrap_or_else(DriverPath::root);
        self.vfs
            .sync_dir(&self.local(&parent))
            .map_err(|e| StorageError::io("fsync dir", &parent, e))
    }

    /// Creates `path`'s parent directories and runs `write` (a rename into that directory).
    /// The directory can vanish in between: the garbage collector removes a blob's or link's
    /// directory once it is empty, and a push may be publishing into it at that instant. The
    /// rename then fails with "not found" and is tried again with the directories made anew.
    fn with_parent(
        &self,
        path: &DriverPath,
        op: &'static str,
        mut write: impl FnMut() -> io::Result<()>,
    ) -> Result<(), StorageError> {
        let mut attempts = 0;
        loop {
            self.create_parent_dirs(path)?;
            match write() {
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 3 => attempts += 1,
                other => return other.map_err(|e| StorageError::io(op, path, e)),
            }
        }
    }

    fn open_file(&self, path: &DriverPath) -> Result<(File, u64), StorageError> {
        let file = File::open(self.local(path)).map_err(|e| StorageError::io("open", path, e))?;
        let meta = file
            .metadata()
            .map_err(|e| StorageError::io("stat", path, e))?;
        if meta.is_dir() {
            return Err(StorageError::IsDirectory(path.clone()));
        }
        Ok((file, meta.len()))
    }
}

/// Whether [`write_and_rename`] fsyncs the file before the rename.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Durability {
    Synced,
    Unsynced,
}

/// Writes `content` to the new file `temp`, fsyncs it (unless `Durability::Unsynced`) and renames it
/// to `target`; removes `temp` if anything fails.
fn write_and_rename(
    vfs: &dyn Vfs,
    temp: &Path,
    target: &Path,
    content: &[u8],
    sync: Durability,
) -> io::Result<()> {
    let write = || -> io::Result<()> {
        let mut file = vfs.open_write(temp, OpenMode::CreateNew)?;
        file.write_all(content)?;
        if sync == Durability::Synced {
            file.sync_all()?;
        }
        vfs.rename(temp, target)
    };
    write().inspect_err(|_| {
        let _ = vfs.remove_file(temp);
    })
}

pub(super) fn temp_name() -> String {
    let mut bytes = [0u8; 8];
    // A clash only costs a retry of the caller's write; fall back to the clock if the OS
    // random source is unavailable.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = (nanos as u64 ^ u64::from(std::process::id())).to_le_bytes();
    }
    format!("{TEMP_PREFIX}{}", crate::digest::to_hex(&bytes))
}

/// When this machine started, from `btime` in `/proc/stat` (read once). Where that is not
/// available, the epoch: then no file counts as written before the boot.
fn boot_time() -> SystemTime {
    static BOOT: OnceLock<SystemTime> = OnceLock::new();
    *BOOT.get_or_init(|| {
        let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
        let seconds = stat
            .lines()
            .find_map(|line| line.strip_prefix("btime "))
            .and_then(|s| s.trim().parse().ok());
        seconds.map_or(SystemTime::UNIX_EPOCH, |s| {
            SystemTime::UNIX_EPOCH + Duration::from_secs(s)
        })
    })
}

impl StorageDriver for FilesystemDriver {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn get_content(&self, path: &DriverPath) -> Result<Vec<u8>, StorageError> {
        let (file, size) = self.open_file(path)?;
        if size > MAX_CONTENT_LEN {
            return Err(StorageError::TooLarge {
                path: path.clone(),
                size,
                limit: MAX_CONTENT_LEN,
            });
        }
        let mut content = Vec::with_capacity(size as usize);
        file.take(MAX_CONTENT_LEN)
            .read_to_end(&mut content)
            .map_err(|e| StorageError::io("read", path, e))?;
        Ok(content)
    }

    fn put_content(&self, path: &DriverPath, content: &[u8]) -> Result<(), StorageError> {
        let temp_dir = self.temp_dir()?;
        self.with_parent(path, "put", || {
            self.write_via_temp(&temp_dir, path, content, Durability::Synced)
        })?;
        self.sync_parent(path)
    }

    fn put_new_unsynced(&self, path: &DriverPath, content: &[u8]) -> Result<(), StorageError> {
        let parent = path.parent().unwrap_or_else(DriverPath::root);
        if let Some(above) = parent.parent() {
            self.create_dirs(&above)?;
        }
        let dir = self.local(&parent);
        if self
            .spares
            .reuse(&*self.vfs, &dir, path.name().as_ref(), content)
        {
            return Ok(());
        }
        match self.vfs.create_dir(&dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(StorageError::io("mkdir", &parent, e))
            }
            _ => {}
        }
        let temp_dir = self.temp_dir()?;
        self.write_via_temp(&temp_dir, path, content, Durability::Unsynced)
            .map_err(|e| StorageError::io("put", path, e))
    }

    fn sync_new(&self, path: &DriverPath) -> Result<(), StorageError> {
        self.vfs
            .open_write(&self.local(path), OpenMode::Append)
            .and_then(|file| file.sync_all())
            .map_err(|e| StorageError::io("fsync", path, e))?;
        let parent = path.parent().unwrap_or_else(DriverPath::root);
        self.sync_parent(path)?;
        self.sync_parent(&parent)
    }

    fn reader(&self, path: &DriverPath, offset: u64) -> Result<Box<dyn Read + Send>, StorageError> {
        let (mut file, size) = self.open_file(path)?;
        if offset > size {
            return Err(StorageError::InvalidOffset {
                path: path.clone(),
                offset,
                size,
            });
        }
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| StorageError::io("seek", path, e))?;
        Ok(Box::new(file))
    }

    fn writer(&self, path: &DriverPath, append: bool) -> Result<Box<dyn FileWriter>, StorageError> {
        self.create_parent_dirs(path)?;
        let local = self.local(path);
        let meta = metadata_if_any(&local).map_err(|e| StorageError::io("stat", path, e))?;
        let existed = meta.is_some();
        self.detach_if_shared(path, &local, meta.as_ref())?;
        let mode = if append {
            OpenMode::Append
        } else {
            OpenMode::Truncate
        };
        let file = self
            .vfs
            .open_write(&local, mode)
            .map_err(|e| StorageError::io("open for write", path, e))?;
        let size = if append {
            file.len().map_err(|e| StorageError::io("stat", path, e))?
        } else {
            0
        };
        Ok(Box::new(FsFileWriter::new(
            file,
            size,
            path.clone(),
            local,
            !existed,
            self.clone(),
        )))
    }

    fn stat(&self, path: &DriverPath) -> Result<FileInfo, StorageError> {
        let meta = fs::metadata(self.local(path)).map_err(|e| StorageError::io("stat", path, e))?;
        Ok(FileInfo {
            path: path.clone(),
            size: if meta.is_dir() { 0 } else { meta.len() },
            is_dir: meta.is_dir(),
            modified: meta
                .modified()
                .map_err(|e| StorageError::io("stat", path, e))?,
        })
    }

    fn written_before_boot(&self, path: &DriverPath) -> Result<bool, StorageError> {
        Ok(self.stat(path)?.modified < self.booted_at)
    }

    fn truncate(&self, path: &DriverPath, len: u64) -> Result<(), StorageError> {
        let local = self.local(path);
        let meta = metadata_if_any(&local).map_err(|e| StorageError::io("stat", path, e))?;
        self.detach_if_shared(path, &local, meta.as_ref())?;
        let file = self
            .vfs
            .open_write(&local, OpenMode::Append)
            .map_err(|e| StorageError::io("open for write", path, e))?;
        file.set_len(len)
            .and_then(|()| file.sync_data())
            .map_err(|e| StorageError::io("truncate", path, e))
    }

    fn list(&self, path: &DriverPath) -> Result<Vec<DriverPath>, StorageError> {
        let local = self.local(path);
        let entries = fs::read_dir(&local).map_err(|e| match e.kind() {
            io::ErrorKind::NotADirectory => StorageError::NotADirectory(path.clone()),
            _ => StorageError::io("list", path, e),
        })?;
        let mut children = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io("list", path, e))?;
            let name = entry.file_name();
            // Names we could not have written (temp files, foreign characters) are not part of
            // the store's key space.
            let Some(name) = name.to_str() else { continue };
            if name == TEMP_DIR || name.starts_with(TEMP_PREFIX) {
                continue;
            }
            if let Ok(child) = path.join(name) {
                children.push(child);
            }
        }
        children.sort();
        Ok(children)
    }

    fn move_to(&self, source: &DriverPath, dest: &DriverPath) -> Result<(), StorageError> {
        let from = self.local(source);
        if !from.exists() {
            return Err(StorageError::NotFound(source.clone()));
        }
        let to = self.local(dest);
        self.with_parent(dest, "rename", || self.vfs.rename(&from, &to))?;
        self.sync_parent(dest)?;
        if source.parent() != dest.parent() {
            self.sync_parent(source)?;
        }
        Ok(())
    }

    fn delete(&self, path: &DriverPath) -> Result<(), StorageError> {
        self.discard(path)?;
        // Durable when it returns: a deletion that was acknowledged must not come back, and
        // the store orders deletions (a tag before its manifest, a link before its bytes).
        self.sync_parent(path)
    }

    fn discard(&self, path: &DriverPath) -> Result<(), StorageError> {
        let local = self.local(path);
        let meta = fs::symlink_metadata(&local).map_err(|e| StorageError::io("delete", path, e))?;
        if meta.is_dir() {
            self.remove_tree(path, &local)?;
        } else {
            self.vfs
                .remove_file(&local)
                .map_err(|e| StorageError::io("delete", path, e))?;
        }
        Ok(())
    }

    /// Durable when it returns, like `delete`: each directory changed is fsynced once, at the
    /// end, so the collector's "links before the bytes they name" holds across a power cut.
    fn delete_files(&self, paths: &[DriverPath]) -> Result<(), StorageError> {
        let mut changed = std::collections::BTreeSet::new();
        for path in paths {
            match self.vfs.remove_file(&self.local(path)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StorageError::io("delete", path, e)),
            }
            // The directory of a blob or link holds nothing else; a writer that puts a file
            // back into it recreates it (`with_parent`). Not empty or gone: nothing to do.
            let Some(parent) = path.parent() else {
                continue;
            };
            let dir = match self.vfs.remove_dir(&self.local(&parent)) {
                Ok(()) => parent.parent(),
                Err(_) => Some(parent),
            };
            changed.extend(dir);
        }
        changed.iter().try_for_each(|dir| self.sync_dir(dir))
    }

    fn touch(&self, path: &DriverPath) -> Result<(), StorageError> {
        self.vfs
            .set_modified(&self.local(path), std::time::SystemTime::now())
            .map_err(|e| StorageError::io("touch", path, e))
    }

    fn sweep_temp_files(&self, cutoff: std::time::SystemTime) -> Result<u64, StorageError> {
        let dir = self.root.join(TEMP_DIR);
        let io_error = |e| StorageError::io("sweep", &DriverPath::root(), e);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_error(e)),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(io_error)?;
            let stale = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(TEMP_PREFIX))
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|modified| modified < cutoff);
            if !stale {
                continue;
            }
            // A directory is a tree `delete` moved here and could not finish removing.
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let result = match is_dir {
                true => self.vfs.remove_dir_all(&entry.path()),
                false => self.vfs.remove_file(&entry.path()),
            };
            match result {
                Ok(()) => removed += 1,
                // Gone already (its writer renamed it into place): nothing to sweep.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(e)),
            }
        }
        Ok(removed)
    }

    fn file(&self, path: &DriverPath) -> Option<Result<File, StorageError>> {
        Some(self.open_file(path).map(|(file, _)| file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> DriverPath {
        DriverPath::parse(s).unwrap()
    }

    #[test]
    fn a_deleted_tree_leaves_nothing_behind_in_the_temporary_directory() {
        let dir = tempfile::tempdir().unwrap();
        let driver = FilesystemDriver::new(dir.path());
        driver.put_content(&path("/a/b/link"), b"x").unwrap();
        driver.put_content(&path("/a/c"), b"y").unwrap();
        driver.delete(&path("/a")).unwrap();
        assert!(!dir.path().join("a").exists());
        let left: Vec<_> = fs::read_dir(dir.path().join(TEMP_DIR)).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn the_sweep_removes_a_tree_whose_deletion_was_cut_short() {
        let dir = tempfile::tempdir().unwrap();
        let driver = FilesystemDriver::new(dir.path());
        let tree = dir.path().join(TEMP_DIR).join(temp_name());
        fs::create_dir_all(tree.join("hashstates")).unwrap();
        fs::write(tree.join("hashstates/0"), b"state").unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
        assert_eq!(driver.sweep_temp_files(later).unwrap(), 1);
        assert!(!tree.exists());
    }
}
