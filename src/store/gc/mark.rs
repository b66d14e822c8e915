//! The mark phase: which manifests are live in each repository, and which blobs they reach.
//!
//! Per repository, every revision's manifest is read (in parallel) and reduced to what the
//! mark needs: the blobs it references, its children, its `subject`. Then liveness spreads
//! from the roots in memory:
//!
//! - roots: without `delete_untagged`, every revision (as distribution); with it, every
//!   manifest a tag's `current` link names, plus revisions written within the grace window (a
//!   push that has not tagged yet);
//! - a live index makes its children live (distribution 2.8 deletes them: its known bug);
//! - a live manifest makes live every manifest whose `subject` it is (OCI 1.1 referrers);
//! - a live manifest marks its own bytes, its config and layers, and its children's digests.
//!
//! A manifest that cannot be parsed is kept live, and every `digest` or `blobSum` in its JSON
//! is marked: the collector never deletes what it cannot rule out.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::SystemTime;

use parking_lot::Mutex;
use rayon::prelude::*;

use super::{GcEvent, GcReport, Run};
use crate::digest::{Algorithm, Digest};
use crate::manifest::{Manifest, ReferenceTarget};
use crate::names::{RepositoryName, Tag};
use crate::storage::paths::digest_from_components;
use crate::storage::{missing_is_ok, DriverPath, FileInfo, PathSpec, StorageError, WalkControl};
use crate::store::manifests::media_type_of;
use crate::store::StoreError;

/// What the mark found.
#[derive(Debug, Default)]
pub(super) struct Marks {
    /// Canonical digests of every blob a live manifest reaches, manifest bytes included.
    pub(super) blobs: HashSet<Digest>,
    /// Every repository seen.
    pub(super) repos: Vec<RepositoryName>,
    /// Manifests no root reaches, all of whose revision links are older than the cut-off.
    pub(super) dead: Vec<DeadManifest>,
}

/// A manifest the mark did not reach.
#[derive(Debug)]
pub(super) struct DeadManifest {
    pub(super) repo: RepositoryName,
    /// Its canonical digest.
    pub(super) digest: Digest,
    /// Its revision links (the canonical one, and any alias).
    pub(super) revisions: Vec<DriverPath>,
    /// Its `subject`, whose referrers index lists it.
    pub(super) subject: Option<Digest>,
    /// The repository's tags, whose history may name it.
    pub(super) tags: std::sync::Arc<Vec<Tag>>,
}

/// A revision link: where, which manifest, how old.
struct Revision {
    path: DriverPath,
    canonical: Digest,
    modified: SystemTime,
}

/// What the mark needs of one manifest.
#[derive(Default)]
struct Summary {
    blobs: Vec<Digest>,
    children: Vec<Digest>,
    subject: Option<Digest>,
}

/// Marks every repository. Repositories are marked in parallel on the run's pool.
pub(super) fn mark(run: &Run<'_>, report: &mut GcReport) -> Result<Marks, StoreError> {
    let repos = repositories(run)?;
    let total = repos.len();
    let marks = Mutex::new(Marks::default());
    let done = Mutex::new(0usize);
    let live = Mutex::new(0u64);
    run.pool.install(|| {
        repos
            .par_iter()
            .try_for_each(|repo| -> Result<(), StoreError> {
                let repo_marks = mark_repository(run, repo)?;
                run.step()?;
                *live.lock() += repo_marks.live;
                {
                    let mut marks = marks.lock();
                    marks.blobs.extend(repo_marks.blobs);
                    marks.dead.extend(repo_marks.dead);
                }
                let mut done = done.lock();
                *done += 1;
                run.tell(GcEvent::RepositoryMarked { done: *done, total });
                Ok(())
            })
    })?;
    let mut marks = marks.into_inner();
    marks.repos = repos;
    report.repositories = total as u64;
    report.manifests_live = live.into_inner();
    report.blobs_marked = marks.blobs.len() as u64;
    Ok(marks)
}

/// Every repository: a directory holding `_layers` (distribution's rule) or `_manifests`
/// (a repository whose blob links were all deleted still has manifests to keep).
pub(super) fn repositories(run: &Run<'_>) -> Result<Vec<RepositoryName>, StoreError> {
    run.store.repositories_holding(&["_layers", "_manifests"])
}

/// One repository's share of the marks.
struct RepoMarks {
    blobs: Vec<Digest>,
    dead: Vec<DeadManifest>,
    live: u64,
}

fn mark_repository(run: &Run<'_>, repo: &RepositoryName) -> Result<RepoMarks, StoreError> {
    let revisions = revisions(run, repo)?;
    let tags = tags(run, repo)?;
    // Read each manifest once, in parallel; a revision whose bytes are gone is skipped, as
    // distribution skips it.
    let canonicals: HashSet<&Digest> = revisions.iter().map(|r| &r.canonical).collect();
    let summaries: HashMap<Digest, Summary> = canonicals
        .into_par_iter()
        .map(|digest| Ok(summarize(run, digest)?.map(|s| (digest.clone(), s))))
        .collect::<Result<Vec<_>, StoreError>>()?
        .into_iter()
        .flatten()
        .collect();
    let by_name: HashMap<Digest, Digest> = revisions
        .iter()
        .map(|r| (revision_name(repo, &r.path), r.canonical.clone()))
        .filter_map(|(name, canonical)| Some((name?, canonical)))
        .collect();
    let roots = roots(run, &revisions, &tags, &by_name);
    let live = spread(&summaries, &by_name, roots);
    let mut blobs = Vec::new();
    for digest in &live {
        let Some(summary) = summaries.get(digest) else {
            continue;
        };
        blobs.push(digest.clone());
        for blob in &summary.blobs {
            blobs.push(resolve(run, repo, blob)?);
        }
        blobs.extend(summary.children.iter().cloned());
    }
    let tag_names = std::sync::Arc::new(tags.into_iter().map(|(tag, _)| tag).collect::<Vec<_>>());
    let mut dead: HashMap<&Digest, DeadManifest> = HashMap::new();
    if run.options.delete_untagged {
        for revision in &revisions {
            let digest = &revision.canonical;
            let Some(summary) = summaries.get(digest).filter(|_| !live.contains(digest)) else {
                continue;
            };
            dead.entry(digest)
                .or_insert_with(|| DeadManifest {
                    repo: repo.clone(),
                    digest: digest.clone(),
                    revisions: Vec::new(),
                    subject: summary.subject.clone(),
                    tags: std::sync::Arc::clone(&tag_names),
                })
                .revisions
                .push(revision.path.clone());
        }
    }
    Ok(RepoMarks {
        blobs,
        dead: dead.into_values().collect(),
        live: live.len() as u64,
    })
}

/// The roots: tagged manifests, young revisions, and without `delete_untagged` every one.
fn roots(
    run: &Run<'_>,
    revisions: &[Revision],
    tags: &[(Tag, Digest)],
    by_name: &HashMap<Digest, Digest>,
) -> Vec<Digest> {
    let mut roots: Vec<Digest> = revisions
        .iter()
        .filter(|r| !run.options.delete_untagged || !run.is_old(r.modified))
        .map(|r| r.canonical.clone())
        .collect();
    roots.extend(
        tags.iter()
            .filter_map(|(_, target)| by_name.get(target).cloned()),
    );
    roots
}

/// Everything live from `roots`: children of live indexes, referrers of live manifests.
fn spread(
    summaries: &HashMap<Digest, Summary>,
    by_name: &HashMap<Digest, Digest>,
    roots: Vec<Digest>,
) -> HashSet<Digest> {
    let mut referrers: HashMap<&Digest, Vec<&Digest>> = HashMap::new();
    for (digest, summary) in summaries {
        if let Some(subject) = &summary.subject {
            referrers.entry(subject).or_default().push(digest);
        }
    }
    let mut live = HashSet::new();
    let mut queue: VecDeque<Digest> = roots.into();
    while let Some(digest) = queue.pop_front() {
        if !summaries.contains_key(&digest) || !live.insert(digest.clone()) {
            continue;
        }
        let summary = &summaries[&digest];
        for child in &summary.children {
            if let Some(canonical) = by_name.get(child) {
                queue.push_back(canonical.clone());
            }
        }
        for referrer in referrers.get(&digest).into_iter().flatten() {
            queue.push_back((*referrer).clone());
        }
    }
    live
}

/// The revision links of `repo`, with the canonical digest each holds.
fn revisions(run: &Run<'_>, repo: &RepositoryName) -> Result<Vec<Revision>, StoreError> {
    let dir = PathSpec::ManifestRevisionsDir { repo }.to_path()?;
    let mut links = Vec::new();
    let mut visit = |info: &FileInfo| {
        if !info.is_dir && info.path.name() == "link" {
            links.push((info.path.clone(), info.modified));
        }
        Ok(WalkControl::Continue)
    };
    missing_is_ok(run.store.driver.walk(&dir, &mut visit))?;
    let mut revisions = Vec::with_capacity(links.len());
    for (path, modified) in links {
        // A sha256 link holds the digest its path names; only aliases need reading.
        let canonical = match revision_name(repo, &path) {
            Some(name) if name.algorithm() == Algorithm::SHA256 => Some(name),
            _ => run.store.read_link(&path).ok().flatten(),
        };
        if let Some(canonical) = canonical {
            revisions.push(Revision {
                path,
                canonical,
                modified,
            });
        }
    }
    Ok(revisions)
}

/// The digest a revision link's path names (`.../revisions/<alg>/<hex>/link`).
fn revision_name(repo: &RepositoryName, path: &DriverPath) -> Option<Digest> {
    let dir = PathSpec::ManifestRevisionsDir { repo }.to_path().ok()?;
    let relative = path.as_str().get(dir.as_str().len() + 1..)?;
    let parts: Vec<&str> = relative.split('/').collect();
    match parts.as_slice() {
        [alg @ .., hex, "link"] => digest_from_components(alg, hex).ok(),
        _ => None,
    }
}

/// Each tag of `repo` with the digest its `current` link holds.
fn tags(run: &Run<'_>, repo: &RepositoryName) -> Result<Vec<(Tag, Digest)>, StoreError> {
    let dir = PathSpec::TagsDir { repo }.to_path()?;
    let entries = match run.store.driver.list(&dir) {
        Ok(entries) => entries,
        Err(StorageError::NotFound(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut tags = Vec::new();
    for tag in entries.iter().filter_map(|p| Tag::parse(p.name()).ok()) {
        let current = PathSpec::TagCurrentLink { repo, tag: &tag }.to_path()?;
        if let Ok(Some(target)) = run.store.read_link(&current) {
            tags.push((tag, target));
        }
    }
    Ok(tags)
}

/// Reads the manifest `digest` and keeps what the mark needs; `None` if its bytes are gone.
fn summarize(run: &Run<'_>, digest: &Digest) -> Result<Option<Summary>, StoreError> {
    let path = PathSpec::BlobData { digest }.to_path()?;
    let bytes = match run.store.driver.get_content(&path) {
        Ok(bytes) => bytes,
        Err(StorageError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let media_type = media_type_of(&bytes);
    let Ok(manifest) = Manifest::parse(Some(&media_type), &bytes) else {
        return Ok(Some(summarize_leniently(&bytes)));
    };
    let mut summary = Summary {
        subject: manifest.subject().map(|s| s.digest.clone()),
        ..Summary::default()
    };
    for reference in manifest.references() {
        match reference.target {
            ReferenceTarget::Manifest => summary.children.push(reference.digest().clone()),
            _ => summary.blobs.push(reference.digest().clone()),
        }
    }
    Ok(Some(summary))
}

/// Every `digest` and `blobSum` string anywhere in a manifest that does not parse (a schema 1
/// manifest, or one from a newer spec): all marked, and children if they are manifests here.
fn summarize_leniently(bytes: &[u8]) -> Summary {
    fn collect(value: &serde_json::Value, out: &mut Vec<Digest>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    if let (true, Some(text)) =
                        (key == "digest" || key == "blobSum", value.as_str())
                    {
                        out.extend(Digest::parse(text).ok());
                    }
                    collect(value, out);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    let mut digests = Vec::new();
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
        collect(&value, &mut digests);
    }
    Summary {
        blobs: digests.clone(),
        children: digests,
        subject: None,
    }
}

/// The canonical digest of a referenced blob: itself for sha256, else what the repository's
/// layer link for it holds (a sha512 reference is stored under its sha256).
fn resolve(run: &Run<'_>, repo: &RepositoryName, digest: &Digest) -> Result<Digest, StoreError> {
    if digest.algorithm() == Algorithm::SHA256 {
        return Ok(digest.clone());
    }
    let link = PathSpec::LayerLink { repo, digest }.to_path()?;
    Ok(run
        .store
        .read_link(&link)
        .ok()
        .flatten()
        .unwrap_or_else(|| digest.clone()))
}
