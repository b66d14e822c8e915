//! The sweep: untagged manifests, then blobs, each in claimed batches.
//!
//! For every batch: write the claim, look at each file's modification time again (a writer
//! may have touched it since the mark), and delete only what is still older than the cut-off,
//! while the claim is fresh. Links go before the bytes they name, so a run killed between the
//! two leaves an unreferenced blob (the next run takes it), never a dangling link.
//!
//! A batch's deletions are issued in sub-batches at once on the run's deleting pool: on a
//! filesystem each unlink waits for the disk (on ext4 mounted with `discard`, a synchronous
//! trim of every freed block), and on an object store each `DeleteObjects` for the network,
//! so one after another they are most of a run. Each sub-batch keeps the order (links, then
//! the bytes they name), and starts only while the claim is fresh; one that finds it stale is
//! claimed and looked at again with the rest left over.

use rayon::prelude::*;

use super::candidates::{candidates, links_naming, Candidate};
use super::mark::{DeadManifest, Marks};
use super::{DeletedBlob, DeletedManifest, GcEvent, GcReport, Run};
use crate::storage::{DriverPath, PathSpec, StorageError};
use crate::store::StoreError;

/// Sub-batches per deleting thread: enough that threads finishing early find more work.
const CHUNKS_PER_THREAD: usize = 4;

/// Deletes the manifests the mark found dead (`delete_untagged`): for each, its tag-history
/// entries and its referrers-index entry, then its revision links. Its bytes go with the blobs.
pub(super) fn delete_manifests(
    run: &mut Run<'_>,
    marks: &Marks,
    report: &mut GcReport,
) -> Result<(), StoreError> {
    for batch in marks.dead.chunks(run.options.batch_size.max(1)) {
        if run.options.dry_run {
            report.manifests.extend(batch.iter().map(deleted_manifest));
            continue;
        }
        let mut pending: Vec<&DeadManifest> = batch.iter().collect();
        while !pending.is_empty() {
            let claimed: Vec<DriverPath> =
                pending.iter().flat_map(|d| d.revisions.clone()).collect();
            let old = |run: &Run<'_>, dead: &&DeadManifest| still_old(run, &dead.revisions);
            let doomed = decide(run, &claimed, report, old, &pending)?;
            let doomed = doomed.into_iter().copied().collect();
            let (deleted, left) = delete_while_fresh(run, doomed, delete_dead_manifests)?;
            tell_deleted(run, 0, deleted.len());
            report
                .manifests
                .extend(deleted.into_iter().map(deleted_manifest));
            pending = left;
        }
        run.step()?;
    }
    Ok(())
}

/// Everything that names each revision first, the revisions last: a run stopped in between
/// leaves a revision the next run finds and finishes.
fn delete_dead_manifests(run: &Run<'_>, dead: &[&DeadManifest]) -> Result<(), StoreError> {
    let mut naming = Vec::new();
    for dead in dead {
        naming.extend(history_entries(dead)?);
        if let Some(subject) = &dead.subject {
            let referrer = PathSpec::ReferrerDescriptor {
                repo: &dead.repo,
                subject,
                referrer: &dead.digest,
            };
            naming.push(referrer.to_path()?);
        }
    }
    run.store.driver.delete_files(&naming)?;
    let revisions: Vec<DriverPath> = dead.iter().flat_map(|d| d.revisions.clone()).collect();
    Ok(run.store.driver.delete_files(&revisions)?)
}

fn deleted_manifest(dead: &DeadManifest) -> DeletedManifest {
    DeletedManifest {
        repository: dead.repo.clone(),
        digest: dead.digest.clone(),
    }
}

/// The tag-history links that may name a dead manifest, in every tag of its repository.
fn history_entries(dead: &DeadManifest) -> Result<Vec<DriverPath>, StoreError> {
    let mut paths = Vec::new();
    for tag in dead.tags.iter() {
        let entry = PathSpec::TagIndexEntryLink {
            repo: &dead.repo,
            tag,
            digest: &dead.digest,
        };
        paths.push(entry.to_path()?);
    }
    Ok(paths)
}

/// Deletes every blob not marked and older than the cut-off, with the links that name it.
pub(super) fn delete_blobs(
    run: &mut Run<'_>,
    marks: &Marks,
    report: &mut GcReport,
) -> Result<(), StoreError> {
    let candidates = candidates(run, &marks.blobs, report)?;
    if candidates.is_empty() {
        return Ok(());
    }
    let wanted = candidates.iter().map(|c| &c.digest).collect();
    let links = links_naming(run, &marks.repos, &wanted)?;
    let links_of = |c: &Candidate| links.get(&c.digest).cloned().unwrap_or_default();
    let total = candidates.len();
    let mut done = 0;
    for batch in candidates.chunks(run.options.batch_size.max(1)) {
        done += batch.len();
        if run.options.dry_run {
            for candidate in batch {
                report.links.extend(links_of(candidate));
                record_blob(report, candidate);
            }
            run.tell(GcEvent::Swept { done, total });
            continue;
        }
        let mut pending: Vec<&Candidate> = batch.iter().collect();
        while !pending.is_empty() {
            let claimed: Vec<DriverPath> = pending
                .iter()
                .flat_map(|c| std::iter::once(c.data.clone()).chain(links_of(c)))
                .collect();
            let old = |run: &Run<'_>, c: &&Candidate| still_old(run, std::slice::from_ref(&c.data));
            let doomed = decide(run, &claimed, report, old, &pending)?;
            let doomed = doomed.into_iter().copied().collect();
            let delete = |run: &Run<'_>, blobs: &[&Candidate]| {
                let named: Vec<DriverPath> = blobs.iter().flat_map(|c| links_of(c)).collect();
                run.store.driver.delete_files(&named)?;
                let data: Vec<DriverPath> = blobs.iter().map(|c| c.data.clone()).collect();
                Ok(run.store.driver.delete_files(&data)?)
            };
            let (deleted, left) = delete_while_fresh(run, doomed, delete)?;
            tell_deleted(run, deleted.len(), 0);
            for candidate in deleted {
                report.links.extend(links_of(candidate));
                record_blob(report, candidate);
            }
            pending = left;
        }
        run.tell(GcEvent::Swept { done, total });
        run.step()?;
    }
    Ok(())
}

/// Reports a sub-batch's deletions, if it made any.
fn tell_deleted(run: &Run<'_>, blobs: usize, manifests: usize) {
    if blobs + manifests > 0 {
        run.tell(GcEvent::Deleted { blobs, manifests });
    }
}

fn record_blob(report: &mut GcReport, candidate: &Candidate) {
    report.bytes_freed += candidate.size;
    report.blobs.push(DeletedBlob {
        digest: candidate.digest.clone(),
        size: candidate.size,
    });
}

/// Deletes `doomed` in sub-batches at once on the deleting pool, each with `delete` (which
/// keeps the protocol's order within its sub-batch). A sub-batch starts only while the claim
/// is fresh: the deletions must be over before writers stop honouring it. Returns what was
/// deleted, in order, and what is left for a new claim and a new look.
fn delete_while_fresh<'b, T: Sync>(
    run: &Run<'_>,
    doomed: Vec<&'b T>,
    delete: impl Fn(&Run<'_>, &[&'b T]) -> Result<(), StoreError> + Sync,
) -> Result<(Vec<&'b T>, Vec<&'b T>), StoreError> {
    let threads = run.deleters.current_num_threads();
    let size = doomed.len().div_ceil(threads * CHUNKS_PER_THREAD).max(1);
    let outcomes: Vec<bool> = run.deleters.install(|| {
        doomed
            .par_chunks(size)
            .map(|chunk| {
                if !run.claim_is_fresh() {
                    return Ok(false);
                }
                delete(run, chunk).map(|()| true)
            })
            .collect::<Result<_, StoreError>>()
    })?;
    let (mut deleted, mut left) = (Vec::new(), Vec::new());
    for (chunk, done) in doomed.chunks(size).zip(outcomes) {
        if done {
            deleted.extend_from_slice(chunk);
        } else {
            left.extend_from_slice(chunk);
        }
    }
    Ok((deleted, left))
}

/// Claims `claimed`, then keeps the items of `batch` for which `old` still holds; repeats
/// while the claim went stale during the look (a slow storage), so nothing is deleted under
/// a claim writers may have stopped honouring.
fn decide<'b, T: Sync>(
    run: &mut Run<'_>,
    claimed: &[DriverPath],
    report: &mut GcReport,
    old: impl Fn(&Run<'_>, &T) -> Result<bool, StoreError> + Sync,
    batch: &'b [T],
) -> Result<Vec<&'b T>, StoreError> {
    loop {
        let claimer = run
            .claimer
            .as_mut()
            .expect("a run that deletes holds a claim");
        claimer.claim(claimed)?;
        run.tell(GcEvent::Claimed { paths: claimed });
        let run_ref: &Run<'_> = run;
        let verdicts: Vec<bool> = run_ref.pool.install(|| {
            batch
                .par_iter()
                .map(|item| old(run_ref, item))
                .collect::<Result<_, _>>()
        })?;
        if !run.claim_is_fresh() {
            continue;
        }
        let doomed: Vec<&T> = batch
            .iter()
            .zip(&verdicts)
            .filter_map(|(item, &old)| old.then_some(item))
            .collect();
        run.tell(GcEvent::Deleting { paths: claimed });
        // Deletions follow at once; a claim gone stale meanwhile (a slow observer, a paused
        // process) is one writers may have stopped honouring: claim and look again.
        if !run.claim_is_fresh() {
            continue;
        }
        report.kept_touched += verdicts.iter().filter(|&&old| !old).count() as u64;
        return Ok(doomed);
    }
}

/// True when every one of `paths` that still exists is older than the cut-off, and one does.
/// A file gone already counts as neither (someone else deleted it).
fn still_old(run: &Run<'_>, paths: &[DriverPath]) -> Result<bool, StoreError> {
    let mut any = false;
    for path in paths {
        match run.store.driver.stat(path) {
            Ok(info) if run.is_old(info.modified) => any = true,
            Ok(_) => return Ok(false),
            Err(StorageError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(any)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::digest::Digest;
    use crate::names::RepositoryName;
    use crate::storage::PathSpec;
    use crate::store::{GcOptions, Store};

    /// Stores `count` blobs no manifest names, each with its layer link in `repo`.
    fn garbage(store: &Store, repo: &RepositoryName, count: usize) -> Vec<Digest> {
        (0..count)
            .map(|i| {
                let bytes = format!("garbage layer {i}");
                let mut upload = store.create_upload(repo).unwrap();
                upload.append(bytes.as_bytes()).unwrap();
                let digest = Digest::sha256(bytes.as_bytes());
                upload.commit(&digest, None).unwrap();
                digest
            })
            .collect()
    }

    #[test]
    fn parallel_sub_batches_delete_every_blob_and_its_link() {
        let store = Store::in_memory();
        let repo = RepositoryName::parse("app").unwrap();
        let digests = garbage(&store, &repo, 60);
        let options = GcOptions {
            grace: Duration::ZERO,
            batch_size: 7,
            delete_parallelism: 4,
            ..GcOptions::default()
        };
        let report = store.collect_garbage(&options).unwrap();
        assert_eq!(report.blobs.len(), 60);
        assert_eq!(report.links.len(), 60);
        for digest in &digests {
            assert!(store.stat_global(digest).is_err());
            let link = PathSpec::LayerLink {
                repo: &repo,
                digest,
            };
            assert!(store.driver().stat(&link.to_path().unwrap()).is_err());
        }
        let again = store.collect_garbage(&options).unwrap();
        assert!(again.blobs.is_empty() && again.links.is_empty());
    }
}
