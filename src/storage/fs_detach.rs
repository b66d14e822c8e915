//! Never writing through another name: a file with more than one name gets a copy of its own
//! before the filesystem driver opens a writer on it or truncates it.
//!
//! A commit renames an upload's `data` into the blob store, then fsyncs the blob's directory
//! and the session's. On a filesystem without a journal (ext2, ext4 with `^has_journal`), the
//! two directories reach the disk separately: a power cut between the two fsyncs leaves the
//! file under both names, and `fsck` then counts two links. The client had no answer, so it
//! sends the upload again, and the session's name must not be written through: trimming the
//! bytes a reboot cannot vouch for ([`Session::trusted_size`](crate::store)) or appending to it
//! would change the published blob under its digest. The same holds for a hard link an
//! operator made (a `cp -al` backup of the root).
//!
//! So a name whose file has other names is first given a private copy: the bytes copied to a
//! temporary file beside it, the original's modification time set on the copy (it tells
//! whether the bytes were written before the machine started), the copy fsynced and renamed
//! over the name, and the directory fsynced. The other names keep the original file. This
//! happens only after such a crash or such a backup; the usual append opens the file as it is.

use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::filesystem::temp_name;
use super::vfs::OpenMode;
use super::{DriverPath, FilesystemDriver, StorageError};

impl FilesystemDriver {
    /// Gives `path` (at `local`) a file of its own if its file has other names too; `meta` is
    /// the name's metadata (`None`: there is no file).
    pub(super) fn detach_if_shared(
        &self,
        path: &DriverPath,
        local: &Path,
        meta: Option<&Metadata>,
    ) -> Result<(), StorageError> {
        let Some(meta) = meta.filter(|m| m.is_file() && m.nlink() > 1) else {
            return Ok(());
        };
        let copy = local.with_file_name(temp_name());
        self.copy_for_detach(local, &copy, meta).map_err(|e| {
            let _ = self.vfs().remove_file(&copy);
            StorageError::io("copy a file with other names", path, e)
        })?;
        self.sync_parent(path)
    }

    /// Copies `local` to the new file `copy` with `meta`'s modification time, durably, and
    /// renames it over `local`.
    fn copy_for_detach(&self, local: &Path, copy: &Path, meta: &Metadata) -> io::Result<()> {
        let mut source = File::open(local)?;
        let mut target = self.vfs().open_write(copy, OpenMode::CreateNew)?;
        io::copy(&mut source, &mut target)?;
        // After the last write, which would move the time again; synced with the bytes.
        self.vfs().set_modified(copy, meta.modified()?)?;
        target.sync_all()?;
        drop(target);
        self.vfs().rename(copy, local)
    }
}

/// The metadata of the file or directory at `local`, `None` when there is none.
pub(super) fn metadata_if_any(local: &Path) -> io::Result<Option<Metadata>> {
    match fs::symlink_metadata(local) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::storage::StorageDriver;

    /// A driver with `data` holding `bytes` and a second name, `blob`, for the same file.
    fn shared_file(bytes: &[u8]) -> (tempfile::TempDir, FilesystemDriver, DriverPath) {
        let dir = tempfile::tempdir().unwrap();
        let driver = FilesystemDriver::new(dir.path());
        let data = DriverPath::parse("/session/data").unwrap();
        let mut writer = driver.writer(&data, false).unwrap();
        writer.write_all(bytes).unwrap();
        writer.commit().unwrap();
        fs::hard_link(dir.path().join("session/data"), dir.path().join("blob")).unwrap();
        (dir, driver, data)
    }

    /// Dates the file at `path` long before this machine started.
    fn written_before_boot(path: &Path) {
        let long_ago = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let file = File::options().append(true).open(path).unwrap();
        file.set_modified(long_ago).unwrap();
    }

    #[test]
    fn appending_to_a_file_with_two_names_leaves_the_other_name_alone() {
        let (dir, driver, data) = shared_file(b"published");
        let mut writer = driver.open_append(&data).unwrap().unwrap();
        assert_eq!(writer.size(), 9);
        writer.write_all(b" and more").unwrap();
        writer.commit().unwrap();
        assert_eq!(fs::read(dir.path().join("blob")).unwrap(), b"published");
        assert_eq!(driver.get_content(&data).unwrap(), b"published and more");
        let links = |p: &str| fs::metadata(dir.path().join(p)).unwrap().nlink();
        assert_eq!((links("blob"), links("session/data")), (1, 1));
    }

    #[test]
    fn truncating_a_file_with_two_names_keeps_its_time_and_the_other_name() {
        let (dir, driver, data) = shared_file(b"published");
        written_before_boot(&dir.path().join("session/data"));
        assert!(driver.written_before_boot(&data).unwrap());
        driver.truncate(&data, 3).unwrap();
        assert_eq!(fs::read(dir.path().join("blob")).unwrap(), b"published");
        assert_eq!(driver.get_content(&data).unwrap(), b"pub");
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("session"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec!["data"], "no temporary file left");
    }

    #[test]
    fn a_resumed_session_keeps_the_modification_time_that_decides_what_is_trusted() {
        let (dir, driver, data) = shared_file(b"published");
        written_before_boot(&dir.path().join("session/data"));
        let writer = driver.open_append(&data).unwrap().unwrap();
        drop(writer);
        let blob = fs::metadata(dir.path().join("blob")).unwrap();
        assert_eq!(blob.nlink(), 1, "not detached");
        assert!(driver.written_before_boot(&data).unwrap());
    }
}
