//! The sweep: untagged manifests, then blobs, each in claimed batches.
//!
//! For every batch: write the claim, look at each file's modification time again (a writer
//! may have touched it since the mark), and delete only what is still older than the cut-off,
//! while the claim is fresh. Links go before the bytes they name, so a run killed between the
//! two leaves an unreferenced blob (the next run takes it), never a dangling link.

use std::collections::{HashMap, HashSet};

use parking_lot::Mutex;
use rayon::prelude::*;

use super::mark::{DeadManifest, Marks};
use super::{DeletedBlob, DeletedManifest, GcEvent, GcReport, Run};
use crate::digest::{Algorithm, Digest};
use crate::names::RepositoryName;
use crate::storage::paths::digest_from_components;
use crate::storage::{DriverPath, PathSpec, StorageError};
use crate::store::StoreError;

/// A blob the sweep may delete.
#[derive(Debug, Clone)]
struct Candidate {
    digest: Digest,
    data: DriverPath,
    size: u64,
}

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
        let claimed: Vec<DriverPath> = batch.iter().flat_map(|d| d.revisions.clone()).collect();
        let doomed = decide(
            run,
            &claimed,
            report,
            |run, dead: &DeadManifest| still_old(run, &dead.revisions),
            batch,
        )?;
        for dead in doomed {
            // Everything that names the revision first, the revision last: a run stopped in
            // between leaves a revision the next run finds and finishes.
            let mut naming = history_entries(dead)?;
            if let Some(subject) = &dead.subject {
                naming.push(
                    PathSpec::ReferrerDescriptor {
                        repo: &dead.repo,
                        subject,
                        referrer: &dead.digest,
                    }
                    .to_path()?,
                );
            }
            run.store.driver.delete_files(&naming)?;
            run.store.driver.delete_files(&dead.revisions)?;
            report.manifests.push(deleted_manifest(dead));
        }
    }
    Ok(())
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
    let wanted: HashSet<&Digest> = candidates.iter().map(|c| &c.digest).collect();
    let links = links_naming(run, &marks.repos, &wanted)?;
    let total = candidates.len();
    let mut done = 0;
    for batch in candidates.chunks(run.options.batch_size.max(1)) {
        done += batch.len();
        let links_of = |c: &Candidate| links.get(&c.digest).cloned().unwrap_or_default();
        if run.options.dry_run {
            for candidate in batch {
                report.links.extend(links_of(candidate));
                record_blob(report, candidate);
            }
            run.tell(GcEvent::Swept { done, total });
            continue;
        }
        let claimed: Vec<DriverPath> = batch
            .iter()
            .flat_map(|c| std::iter::once(c.data.clone()).chain(links_of(c)))
            .collect();
        let doomed = decide(
            run,
            &claimed,
            report,
            |run, c: &Candidate| still_old(run, std::slice::from_ref(&c.data)),
            batch,
        )?;
        let doomed_links: Vec<DriverPath> = doomed.iter().flat_map(|c| links_of(c)).collect();
        run.store.driver.delete_files(&doomed_links)?;
        let data: Vec<DriverPath> = doomed.iter().map(|c| c.data.clone()).collect();
        run.store.driver.delete_files(&data)?;
        report.links.extend(doomed_links);
        for candidate in doomed {
            record_blob(report, candidate);
        }
        run.tell(GcEvent::Swept { done, total });
    }
    Ok(())
}

fn record_blob(report: &mut GcReport, candidate: &Candidate) {
    report.bytes_freed += candidate.size;
    report.blobs.push(DeletedBlob {
        digest: candidate.digest.clone(),
        size: candidate.size,
    });
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
        if !run.claimer.as_ref().is_some_and(|c| c.is_fresh()) {
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
        if !run.claimer.as_ref().is_some_and(|c| c.is_fresh()) {
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

/// Every blob in `blobs/` that is not marked: older than the cut-off ones are returned, the
/// others counted as kept young. Directories are listed, and only unmarked blobs' `data`
/// files are looked at, so marked blobs cost nothing beyond their name in a listing.
fn candidates(
    run: &Run<'_>,
    marked: &HashSet<Digest>,
    report: &mut GcReport,
) -> Result<Vec<Candidate>, StoreError> {
    let mut fanouts = Vec::new();
    for alg_dir in list(run, &PathSpec::BlobsRoot.to_path()?)? {
        for fanout in list(run, &alg_dir)? {
            fanouts.push((alg_dir.name().to_owned(), fanout));
        }
    }
    let kept_young = Mutex::new(0u64);
    let found: Vec<Vec<Candidate>> = run.pool.install(|| {
        fanouts
            .par_iter()
            .map(|(alg, fanout)| {
                let mut found = Vec::new();
                for dir in list(run, fanout)? {
                    let Ok(digest) = digest_from_components(&[alg.as_str()], dir.name()) else {
                        continue;
                    };
                    if marked.contains(&digest) {
                        continue;
                    }
                    let data = dir.join("data")?;
                    match run.store.driver.stat(&data) {
                        Ok(info) if info.is_dir => {}
                        Ok(info) if run.is_old(info.modified) => found.push(Candidate {
                            digest,
                            data,
                            size: info.size,
                        }),
                        Ok(_) => *kept_young.lock() += 1,
                        Err(StorageError::NotFound(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(found)
            })
            .collect::<Result<_, StoreError>>()
    })?;
    report.kept_young += kept_young.into_inner();
    Ok(found.into_iter().flatten().collect())
}

/// Lists a directory; a missing one is empty.
fn list(run: &Run<'_>, dir: &DriverPath) -> Result<Vec<DriverPath>, StoreError> {
    match run.store.driver.list(dir) {
        Ok(entries) => Ok(entries),
        Err(StorageError::NotFound(_)) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// The links in every repository that name one of `wanted`: layer links, tag history entries,
/// tags' `current` links and alias revision links.
fn links_naming(
    run: &Run<'_>,
    repos: &[RepositoryName],
    wanted: &HashSet<&Digest>,
) -> Result<HashMap<Digest, Vec<DriverPath>>, StoreError> {
    let found: Vec<Vec<(Digest, DriverPath)>> = run.pool.install(|| {
        repos
            .par_iter()
            .map(|repo| repository_links(run, repo, wanted))
            .collect::<Result<_, StoreError>>()
    })?;
    let mut links: HashMap<Digest, Vec<DriverPath>> = HashMap::new();
    for (digest, path) in found.into_iter().flatten() {
        links.entry(digest).or_default().push(path);
    }
    Ok(links)
}

fn repository_links(
    run: &Run<'_>,
    repo: &RepositoryName,
    wanted: &HashSet<&Digest>,
) -> Result<Vec<(Digest, DriverPath)>, StoreError> {
    let mut found = Vec::new();
    // `_layers/<alg>/<hex>/link`, and alias revisions `revisions/<alg>/<hex>/link`.
    let layers = PathSpec::LayersDir { repo }.to_path()?;
    digest_dir_links(run, &layers, wanted, true, &mut found)?;
    let revisions = PathSpec::ManifestRevisionsDir { repo }.to_path()?;
    digest_dir_links(run, &revisions, wanted, false, &mut found)?;
    for tag_dir in list(run, &PathSpec::TagsDir { repo }.to_path()?)? {
        digest_dir_links(run, &tag_dir.join("index")?, wanted, true, &mut found)?;
        let current = tag_dir.join("current")?.join("link")?;
        if let Ok(Some(target)) = run.store.read_link(&current) {
            if wanted.contains(&target) {
                found.push((target, current));
            }
        }
    }
    Ok(found)
}

/// Links below `dir` laid out as `<alg>/<hex>/link`. sha256 names are taken from the path
/// (when `sha256_too`); other algorithms' links are read for the digest they hold.
fn digest_dir_links(
    run: &Run<'_>,
    dir: &DriverPath,
    wanted: &HashSet<&Digest>,
    sha256_too: bool,
    found: &mut Vec<(Digest, DriverPath)>,
) -> Result<(), StoreError> {
    for alg_dir in list(run, dir)? {
        let is_sha256 = alg_dir.name() == Algorithm::SHA256.to_string();
        if is_sha256 && !sha256_too {
            continue;
        }
        for entry in list(run, &alg_dir)? {
            let link = entry.join("link")?;
            let target = if is_sha256 {
                digest_from_components(&["sha256"], entry.name()).ok()
            } else {
                run.store.read_link(&link).ok().flatten()
            };
            if let Some(target) = target.filter(|t| wanted.contains(t)) {
                found.push((target, link));
            }
        }
    }
    Ok(())
}
