//! Spare directories: the filesystem driver makes a new upload session's directory out of a
//! finished one, so that a push neither allocates nor frees the inodes of its session.
//!
//! Why: ext4 without a journal (this project's benchmark disk) skips, checking each one, every
//! inode freed in the last 60 s (360 s while its table block is dirty) when it allocates a new
//! one (`recently_deleted`). A registry taking many small pushes freed two inodes per push
//! (the session's directory and its `startedat`) and allocated them again for the next one, so
//! every create scanned past thousands: 35% of the server's CPU in 64 KiB pushes. With the pool,
//! 1.28x the pushes per second at 23% less CPU (`docs/benchmarks.md`, "Pushes, third pass").
//! Elsewhere it trades a mkdir, a create and two unlinks for two renames and a rewrite.
//!
//! How: a tree being deleted is first renamed into the temporary directory (in one step, as
//! before). If it is one directory holding one regular file, and the pool has room, it is kept
//! there instead of being removed. [`FilesystemDriver::put_new_unsynced`] (the `startedat` of a
//! new session) renames the spare's file to the new name and rewrites it, still in the
//! temporary directory, then renames the spare onto the new directory: a killed process leaves
//! no half-written session (`tests/crash_storm.rs`). A spare is in one process's pool only, so
//! only one writer ever rewrites it. The write is unsynced, as `put_new_unsynced` promises: until
//! `sync_new`, a power cut may leave the file empty, zeroed or with the spare's old bytes,
//! and the store answers such a session as unknown or old, never as one with acknowledged bytes.
//!
//! Spares carry the temporary-file prefix, so a sweep removes those the pool forgot (after a
//! restart). The pool only hands out spares retired in the last [`FRESH_FOR`], so a spare is
//! never taken while a sweep with any sensible cutoff removes it; older ones are deleted when
//! the next session is created, as they would have been without the pool.
//!
//! [`FilesystemDriver::put_new_unsynced`]: super::FilesystemDriver

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::vfs::{OpenMode, Vfs};

/// Spares kept at most: more than the sessions a busy server finishes between two new ones.
const CAPACITY: usize = 64;

/// A spare older than this is deleted rather than reused.
const FRESH_FOR: Duration = Duration::from_secs(10);

/// Directories retired by deletions, waiting to become new sessions' directories.
#[derive(Debug, Default)]
pub(super) struct SparePool {
    spares: Mutex<Vec<Spare>>,
}

/// One retired directory in the temporary directory, and the name of the one file it holds.
#[derive(Debug)]
struct Spare {
    dir: PathBuf,
    file: OsString,
    retired: Instant,
}

impl SparePool {
    /// Keeps `dir`, a tree just moved into the temporary directory, if it is one directory
    /// holding one regular file and the pool has room. Returns whether it was kept; if not,
    /// the caller removes it.
    pub(super) fn retire(&self, dir: &Path) -> bool {
        if self.spares.lock().len() >= CAPACITY {
            return false;
        }
        let Some(file) = only_file(dir) else {
            return false;
        };
        let mut spares = self.spares.lock();
        if spares.len() >= CAPACITY {
            return false;
        }
        spares.push(Spare {
            dir: dir.to_path_buf(),
            file,
            retired: Instant::now(),
        });
        true
    }

    /// Makes `target_dir` (which must not exist, or be empty) out of a spare, holding one file
    /// named `file_name` with `content`. Returns false, having changed nothing in the store,
    /// when no fresh spare is at hand or the spare cannot be prepared or moved there (it is
    /// then deleted); the caller creates the directory and file itself.
    pub(super) fn reuse(
        &self,
        vfs: &dyn Vfs,
        target_dir: &Path,
        file_name: &OsStr,
        content: &[u8],
    ) -> bool {
        let (fresh, stale) = self.take();
        // Deleted now, as they would have been without the pool.
        for spare in stale {
            let _ = vfs.remove_dir_all(&spare.dir);
        }
        let Some(spare) = fresh else {
            return false;
        };
        // The file is rewritten while the spare is still in the temporary directory (only this
        // pool knows it), and the directory then enters the store in one rename: a process
        // killed at any point leaves either no session or one with its whole new file, never
        // an empty `startedat` that no purge would remove.
        let prepare = || -> io::Result<()> {
            let (old, new) = (spare.dir.join(&spare.file), spare.dir.join(file_name));
            if old != new {
                vfs.rename(&old, &new)?;
            }
            vfs.open_write(&new, OpenMode::Truncate)?
                .write_all(content)?;
            vfs.rename(&spare.dir, target_dir)
        };
        let moved = prepare().is_ok();
        if !moved {
            let _ = vfs.remove_dir_all(&spare.dir);
        }
        moved
    }

    /// The newest spare if it is still fresh, and every spare too old to reuse.
    fn take(&self) -> (Option<Spare>, Vec<Spare>) {
        let mut spares = self.spares.lock();
        // Retired in order: the stale ones are at the front.
        let stale_count = spares
            .iter()
            .take_while(|s| s.retired.elapsed() > FRESH_FOR)
            .count();
        let stale = spares.drain(..stale_count).collect();
        (spares.pop(), stale)
    }

    /// Spares held now (for tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.spares.lock().len()
    }
}

/// The name of the one entry of `dir` if it is a regular file and the only entry.
fn only_file(dir: &Path) -> Option<OsString> {
    let mut entries = fs::read_dir(dir).ok()?;
    let first = entries.next()?.ok()?;
    if entries.next().is_some() || !first.file_type().ok()?.is_file() {
        return None;
    }
    Some(first.file_name())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::storage::filesystem::{FilesystemDriver, TEMP_DIR};
    use crate::storage::{DriverPath, StorageDriver};

    fn path(s: &str) -> DriverPath {
        DriverPath::parse(s).unwrap()
    }

    fn inode(file: &Path) -> u64 {
        fs::metadata(file).unwrap().ino()
    }

    fn temp_entries(root: &Path) -> usize {
        fs::read_dir(root.join(TEMP_DIR)).unwrap().count()
    }

    fn new_driver() -> (tempfile::TempDir, FilesystemDriver) {
        let root = tempfile::tempdir().unwrap();
        let driver = FilesystemDriver::new(root.path());
        (root, driver)
    }

    /// Writes `file` and discards its directory.
    fn write_and_discard(driver: &FilesystemDriver, file: &str) {
        let file = path(file);
        driver.put_content(&file, b"t").unwrap();
        driver.discard(&file.parent().unwrap()).unwrap();
    }

    /// Starts a session's directory at `dir` with `content` in its `startedat`; returns what
    /// that file then holds.
    fn start_session(root: &Path, driver: &FilesystemDriver, dir: &str, content: &[u8]) -> Vec<u8> {
        let file = format!("{dir}/startedat");
        driver.put_new_unsynced(&path(&file), content).unwrap();
        fs::read(root.join(&file[1..])).unwrap()
    }

    #[test]
    fn a_finished_session_directory_becomes_the_next_one() {
        let (root, driver) = new_driver();
        start_session(root.path(), &driver, "/up/one", b"2026-12-07T00:00:00Z");
        let (dir, file) = (
            root.path().join("up/one"),
            root.path().join("up/one/startedat"),
        );
        let inodes = (inode(&dir), inode(&file));
        driver.discard(&path("/up/one")).unwrap();
        assert!(!dir.exists());
        assert_eq!(temp_entries(root.path()), 1, "kept as a spare");

        assert_eq!(
            start_session(root.path(), &driver, "/up/two", b"later"),
            b"later"
        );
        let file = root.path().join("up/two/startedat");
        assert_eq!((inode(&root.path().join("up/two")), inode(&file)), inodes);
        assert_eq!(temp_entries(root.path()), 0);
    }

    #[test]
    fn a_spare_of_another_file_name_is_renamed_and_rewritten() {
        let (root, driver) = new_driver();
        driver
            .put_content(&path("/m/rev/link"), b"sha256:a-much-longer-old-content")
            .unwrap();
        driver.delete(&path("/m/rev")).unwrap();
        assert_eq!(
            start_session(root.path(), &driver, "/up/new", b"short"),
            b"short"
        );
        let names: Vec<_> = fs::read_dir(root.path().join("up/new"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["startedat"]);
    }

    #[test]
    fn a_directory_of_more_than_one_entry_is_removed_not_kept() {
        let (root, driver) = new_driver();
        driver
            .put_content(&path("/up/one/startedat"), b"t")
            .unwrap();
        driver.put_content(&path("/up/one/data"), b"bytes").unwrap();
        driver
            .put_content(&path("/up/two/hashstates/0"), b"s")
            .unwrap();
        driver.discard(&path("/up/one")).unwrap();
        driver.discard(&path("/up/two")).unwrap();
        assert_eq!(temp_entries(root.path()), 0);
    }

    #[test]
    fn the_pool_holds_at_most_its_capacity() {
        let (root, driver) = new_driver();
        for i in 0..CAPACITY + 5 {
            write_and_discard(&driver, &format!("/up/{i}/startedat"));
        }
        assert_eq!(temp_entries(root.path()), CAPACITY);
    }

    #[test]
    fn a_spare_the_sweep_removed_is_not_missed() {
        let (root, driver) = new_driver();
        write_and_discard(&driver, "/up/one/startedat");
        let later = std::time::SystemTime::now() + Duration::from_secs(60);
        assert_eq!(driver.sweep_temp_files(later).unwrap(), 1);
        assert_eq!(
            start_session(root.path(), &driver, "/up/two", b"fresh"),
            b"fresh"
        );
    }

    /// A pool holding one spare directory (of one `startedat`), in a temporary root.
    fn pool_with_one_spare() -> (SparePool, tempfile::TempDir, PathBuf) {
        let pool = SparePool::default();
        let root = tempfile::tempdir().unwrap();
        let spare = root.path().join("spare");
        fs::create_dir(&spare).unwrap();
        fs::write(spare.join("startedat"), b"old").unwrap();
        assert!(pool.retire(&spare));
        (pool, root, spare)
    }

    #[test]
    fn a_stale_spare_is_deleted_not_reused() {
        let (pool, root, spare) = pool_with_one_spare();
        let long_ago = Instant::now().checked_sub(FRESH_FOR * 2);
        pool.spares.lock()[0].retired = long_ago.expect("the machine is up for 20 s");
        let target = root.path().join("new");
        let reused = pool.reuse(&crate::storage::vfs::RealFs, &target, "s".as_ref(), b"x");
        assert!(!reused);
        assert!(!spare.exists(), "deleted, as without the pool");
        assert!(!target.exists());
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn a_spare_is_not_moved_onto_a_directory_that_holds_files() {
        let (pool, root, _spare) = pool_with_one_spare();
        let target = root.path().join("taken");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("other"), b"keep").unwrap();
        let reused = pool.reuse(&crate::storage::vfs::RealFs, &target, "s".as_ref(), b"x");
        assert!(!reused);
        assert_eq!(fs::read(target.join("other")).unwrap(), b"keep");
    }
}
