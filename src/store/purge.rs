//! Purging abandoned upload sessions, by distribution's rule.
//!
//! Walk `repositories/`, skipping every `_*` directory except `_uploads`. Inside `_uploads`, a
//! directory whose name is a UUID is an upload session; it is deleted when its `startedat` is
//! older than the cut-off. A session without a readable `startedat`, or a directory whose name
//! is not a UUID, is never touched (distribution treats a missing start time as 10,000 hours in
//! the future).
//!
//! The same cut-off sweeps the storage driver's stale temporary files
//! ([`StorageDriver::sweep_temp_files`](crate::storage::StorageDriver::sweep_temp_files)).

use std::time::{Duration, SystemTime};

use crate::names::looks_like_uuid;
use crate::storage::{missing_is_ok, DriverPath, PathSpec, StorageError, WalkControl};

use super::{rfc3339, Store, StoreError};

/// What a purge did.
#[derive(Debug, Default)]
pub struct PurgeReport {
    /// Upload directories deleted (or that would be, in a dry run).
    pub deleted: Vec<DriverPath>,
    /// Upload directories younger than the cut-off.
    pub kept: usize,
    /// Upload directories skipped because `startedat` is missing or unreadable.
    pub unreadable: Vec<DriverPath>,
    /// The driver's temporary files older than the cut-off that were deleted (a process killed
    /// while writing a file leaves one; nothing reads them). Not touched in a dry run.
    pub temp_files_removed: u64,
}

impl Store {
    /// Deletes upload sessions that started more than `older_than` before `now`. With
    /// `dry_run`, only reports them.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use layerstore::names::RepositoryName;
    /// use layerstore::store::Store;
    ///
    /// let store = Store::in_memory();
    /// let repo = RepositoryName::parse("app").unwrap();
    /// let upload = store.create_upload(&repo).unwrap();
    /// drop(upload); // abandoned
    /// let week = Duration::from_secs(7 * 24 * 3600);
    /// // Nothing is a week old yet; eight days from now, it is.
    /// assert!(store.purge_uploads(week, SystemTime::now(), false).unwrap().deleted.is_empty());
    /// let later = SystemTime::now() + Duration::from_secs(8 * 24 * 3600);
    /// assert_eq!(store.purge_uploads(week, later, false).unwrap().deleted.len(), 1);
    /// ```
    pub fn purge_uploads(
        &self,
        older_than: Duration,
        now: SystemTime,
        dry_run: bool,
    ) -> Result<PurgeReport, StoreError> {
        let cutoff = now
            .checked_sub(older_than)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut report = PurgeReport::default();
        let sessions = self.upload_sessions()?;
        for dir in sessions {
            match self.session_start(&dir)? {
                None => report.unreadable.push(dir),
                Some(started) if started < cutoff => {
                    if !dry_run {
                        missing_is_ok(self.driver.delete(&dir))?;
                    }
                    report.deleted.push(dir);
                }
                Some(_) => report.kept += 1,
            }
        }
        if !dry_run {
            report.temp_files_removed = self.driver.sweep_temp_files(cutoff)?;
        }
        Ok(report)
    }

    /// Every upload session directory: UUID-named directories in a repository's `_uploads`.
    pub(crate) fn upload_sessions(&self) -> Result<Vec<DriverPath>, StoreError> {
        let root = PathSpec::RepositoriesRoot.to_path()?;
        let mut sessions = Vec::new();
        let walked = self.driver.walk(&root, &mut |info| {
            if !info.is_dir {
                return Ok(WalkControl::Continue);
            }
            let name = info.path.name();
            let in_uploads = info.path.parent().is_some_and(|p| p.name() == "_uploads");
            if in_uploads {
                if looks_like_uuid(name) {
                    sessions.push(info.path.clone());
                }
                return Ok(WalkControl::SkipDir);
            }
            if name.starts_with('_') && name != "_uploads" {
                return Ok(WalkControl::SkipDir);
            }
            Ok(WalkControl::Continue)
        });
        missing_is_ok(walked)?;
        Ok(sessions)
    }

    fn session_start(&self, dir: &DriverPath) -> Result<Option<SystemTime>, StoreError> {
        let path = dir.join("startedat")?;
        match self.driver.get_content(&path) {
            Ok(bytes) => Ok(std::str::from_utf8(&bytes).ok().and_then(rfc3339::parse)),
            Err(
                StorageError::NotFound(_)
                | StorageError::IsDirectory(_)
                | StorageError::TooLarge { .. },
            ) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
