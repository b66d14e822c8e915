//! What the blob sweep may delete: the unmarked, old blobs, and the links that name them.
//!
//! Both are found by listing directories: `blobs/` (one listing per fan-out directory, a
//! `stat` of each unmarked blob's `data`), then every repository's layer links, alias
//! revisions and tag histories. Marked blobs cost nothing beyond their name in a listing.

use std::collections::{HashMap, HashSet};

use parking_lot::Mutex;
use rayon::prelude::*;

use super::{GcReport, Run};
use crate::digest::{Algorithm, Digest};
use crate::names::RepositoryName;
use crate::storage::paths::digest_from_components;
use crate::storage::{DriverPath, PathSpec, StorageError};
use crate::store::StoreError;

/// A blob the sweep may delete.
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    pub(super) digest: Digest,
    pub(super) data: DriverPath,
    pub(super) size: u64,
}

/// Every blob in `blobs/` that is not marked: older than the cut-off ones are returned, the
/// others counted as kept young. Directories are listed, and only unmarked blobs' `data`
/// files are looked at, so marked blobs cost nothing beyond their name in a listing.
pub(super) fn candidates(
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
                run.step()?;
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
pub(super) fn links_naming(
    run: &Run<'_>,
    repos: &[RepositoryName],
    wanted: &HashSet<&Digest>,
) -> Result<HashMap<Digest, Vec<DriverPath>>, StoreError> {
    let found: Vec<Vec<(Digest, DriverPath)>> = run.pool.install(|| {
        repos
            .par_iter()
            .map(|repo| {
                let links = repository_links(run, repo, wanted);
                run.step()?;
                links
            })
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
