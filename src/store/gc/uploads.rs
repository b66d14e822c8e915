//! Idle upload sessions: deleted once nothing has been written to them for `upload_idle`.
//!
//! Idleness is the newest modification time of the session's files (`data`, `startedat`,
//! hash states, which every checkpoint and every object-store part renews), not its start:
//! a slow upload of a large layer that keeps writing is never cut off. Sessions open in this
//! process (parked handles included, once those idle too long are dropped) are skipped. A session resumed by another instance at the very instant it is
//! deleted fails with `BLOB_UPLOAD_UNKNOWN` and the client starts the blob again, after a
//! whole `upload_idle` of silence; nothing acknowledged is lost (`docs/gc.md`).

use std::collections::HashSet;
use std::time::SystemTime;

use super::{GcReport, Run};
use crate::storage::{missing_is_ok, DriverPath, FileInfo, PathSpec, WalkControl};
use crate::store::StoreError;

pub(super) fn delete_idle_uploads(run: &Run<'_>, report: &mut GcReport) -> Result<(), StoreError> {
    let store = run.store;
    let cutoff = SystemTime::now()
        .checked_sub(run.options.upload_idle)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    // Handles parked longer than their idle time would otherwise keep sessions "open".
    store.expire_parked();
    let open: HashSet<String> = store
        .open_uploads
        .lock()
        .iter()
        .filter_map(|(repo, id)| PathSpec::UploadDir { repo, id }.to_path().ok())
        .map(|p| p.as_str().to_owned())
        .collect();
    for dir in store.upload_sessions()? {
        if open.contains(dir.as_str()) || last_write(run, &dir)?.is_none_or(|t| t >= cutoff) {
            continue;
        }
        if !run.options.dry_run {
            missing_is_ok(store.driver.delete(&dir))?;
        }
        report.upload_dirs.push(dir);
    }
    Ok(())
}

/// The newest modification time of the files in a session directory; `None` if it has none.
fn last_write(run: &Run<'_>, dir: &DriverPath) -> Result<Option<SystemTime>, StoreError> {
    let mut newest = None;
    let mut visit = |info: &FileInfo| {
        if !info.is_dir {
            newest = newest.max(Some(info.modified));
        }
        Ok(WalkControl::Continue)
    };
    missing_is_ok(run.store.driver.walk(dir, &mut visit))?;
    Ok(newest)
}
