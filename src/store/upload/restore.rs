//! Reopening a session: the hash brought to the size of `data` from the best saved state.

use std::io::Write;

use super::{hash_range, OpenedData, Upload};
use crate::storage::{PathSpec, StorageError};
use crate::store::StoreError;

impl Upload {
    /// Brings `hasher` to the size of `data` (see [`Store::resume_upload`]).
    pub(super) fn restore(&mut self) -> Result<(), StoreError> {
        let data = self.data_path()?;
        let OpenedData { writer, offsets } = self.session().open_data()?;
        let Some(writer) = writer else {
            return self.restore_published();
        };
        let mut size = writer.size();
        if size > 0 {
            let offsets = match offsets {
                Some(offsets) => offsets,
                None => self.session().saved_offsets()?,
            };
            let best = self.session().best_state_among(&offsets, size)?;
            self.hasher = best.unwrap_or_default();
        }
        if self.hasher.len() == size {
            // The usual case: a state covers every byte, and the writer is ready to go on.
            self.writer = Some(writer);
            return Ok(());
        }
        drop(writer);
        if self.hasher.len() < size && self.driver.written_before_boot(&data)? {
            // The bytes past the state may be zeros a power cut left (Session::trusted_size).
            self.driver.truncate(&data, self.hasher.len())?;
            return Ok(());
        }
        if self.hasher.len() < size {
            self.driver.finish_appends(&data)?;
            // An object store may have counted parts that a crash cut short and that finishing
            // leaves out (no state covers them): the bytes there now are the file.
            size = match self.driver.append_size(&data) {
                Ok(size) => size,
                Err(StorageError::NotFound(_)) => 0,
                Err(e) => return Err(e.into()),
            };
            if self.hasher.len() > size {
                self.hasher = self.session().best_state(size)?.unwrap_or_default();
            }
        }
        let from = self.hasher.len();
        let hasher = &mut self.hasher;
        hash_range(&*self.driver, &data, from, size, &mut |b| hasher.update(b))?;
        Ok(())
    }

    /// `data` is missing. If a commit moved it into the blob store and crashed before deleting
    /// the session ([`Session::published_state`]), copy the blob back so the session is whole
    /// again. Otherwise no byte was received.
    fn restore_published(&mut self) -> Result<(), StoreError> {
        let Some(state) = self.session().published_state()? else {
            return Ok(());
        };
        let digest = state.digest();
        let blob = PathSpec::BlobData { digest: &digest }.to_path()?;
        let mut writer = self.driver.writer(&self.data_path()?, false)?;
        let mut failed = None;
        hash_range(&*self.driver, &blob, 0, state.len(), &mut |b| {
            if failed.is_none() {
                failed = writer.write_all(b).err();
            }
        })?;
        if let Some(e) = failed {
            return Err(StorageError::io("write", &self.data_path()?, e).into());
        }
        writer.commit()?;
        self.hasher = state;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{self, File};
    use std::time::{Duration, SystemTime};

    use crate::digest::Digest;
    use crate::names::RepositoryName;
    use crate::store::Store;

    /// A power cut between a commit's two directory fsyncs, on a filesystem without a journal,
    /// leaves `data` under both names: the blob's and the session's (fsck counts two links).
    /// The client had no 201 and sends the push again to the same session. Reopening it trims
    /// the bytes written before the boot that no state vouches for: the blob must keep them.
    #[test]
    fn a_push_sent_again_after_a_cut_that_left_data_under_both_names_keeps_the_blob() {
        let dir = tempfile::tempdir().unwrap();
        let repo = RepositoryName::parse("team/app").unwrap();
        let body = b"a small layer";
        let digest = Digest::sha256(body);
        let store = Store::filesystem(dir.path());
        let mut upload = store.create_upload(&repo).unwrap();
        let id = upload.id().clone();
        upload.append(body).unwrap();
        upload.commit(&digest, None).unwrap();

        let v2 = dir.path().join("docker/registry/v2");
        let session = v2.join(format!("repositories/team/app/_uploads/{id}"));
        let blob = v2.join(format!(
            "blobs/sha256/{}/{}/data",
            &digest.hex()[..2],
            digest.hex()
        ));
        fs::create_dir_all(&session).unwrap();
        fs::write(session.join("startedat"), "2026-12-07T00:00:00Z").unwrap();
        fs::hard_link(&blob, session.join("data")).unwrap();
        let before_boot = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let file = File::options().append(true).open(&blob).unwrap();
        file.set_modified(before_boot).unwrap();

        let restarted = Store::filesystem(dir.path());
        let mut again = restarted.resume_upload(&repo, &id).unwrap();
        assert_eq!(fs::read(&blob).unwrap(), body, "the blob lost bytes");
        assert_eq!(again.offset(), 0, "bytes no state vouches for were trusted");
        again.append(body).unwrap();
        assert_eq!(again.commit(&digest, None).unwrap().size, body.len() as u64);
        assert_eq!(fs::read(&blob).unwrap(), body);
    }
}
