//! fsck: re-hash every blob in parallel and check every link.
//!
//! Blobs: every `blobs/**/data` is read in full and hashed with the algorithm its path names;
//! the digest must match the path. Links: every `link` under a repository's `_layers`,
//! `_manifests/revisions` and `_manifests/tags` must hold exactly one digest (strict parse),
//! its target's bytes must exist (else the link dangles), and a link filed under a digest of the
//! same algorithm must name that digest. An alias (a sha512 path holding a sha256 digest) is
//! checked by hashing the target with the path's algorithm. Upload sessions are not examined.
//!
//! fsck may run beside a garbage collection: a blob deleted between the listing and its read,
//! or a link deleted with its blob, is not a problem.

use rayon::prelude::*;

use crate::digest::{Algorithm, Digest};
use crate::hash::Hasher;
use crate::storage::paths::digest_from_components;
use crate::storage::{DriverPath, PathSpec, StorageError, WalkControl};

use super::stream::hash_range;
use super::{Store, StoreError};

/// One thing fsck found wrong.
#[derive(Debug)]
#[non_exhaustive]
pub enum FsckProblem {
    /// A blob's bytes do not hash to the digest of its path.
    CorruptBlob {
        /// The `data` file.
        path: DriverPath,
        /// The digest its path names.
        expected: Digest,
        /// The digest of its bytes.
        actual: Digest,
    },
    /// A blob's bytes could not be read.
    UnreadableBlob {
        /// The `data` file.
        path: DriverPath,
        /// Why.
        error: StoreError,
    },
    /// A `data` file under `blobs/` whose path is not a valid digest path.
    StrayBlobFile {
        /// The file.
        path: DriverPath,
    },
    /// A link whose content is not a digest, or that cannot be read.
    UnreadableLink {
        /// The link file.
        path: DriverPath,
        /// Why.
        error: StoreError,
    },
    /// A link whose target blob has no bytes.
    DanglingLink {
        /// The link file.
        path: DriverPath,
        /// The digest it holds.
        target: Digest,
    },
    /// A link whose content does not match the digest its path names.
    LinkMismatch {
        /// The link file.
        path: DriverPath,
        /// The digest the path names.
        named: Digest,
        /// The digest the link holds.
        target: Digest,
    },
}

impl std::fmt::Display for FsckProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FsckProblem::CorruptBlob {
                path,
                expected,
                actual,
            } => {
                write!(f, "corrupt blob {expected} at {path}: content is {actual}")
            }
            FsckProblem::UnreadableBlob { path, error } => {
                write!(f, "unreadable blob {path}: {error}")
            }
            FsckProblem::StrayBlobFile { path } => write!(f, "stray file in blob store: {path}"),
            FsckProblem::UnreadableLink { path, error } => {
                write!(f, "unreadable link {path}: {error}")
            }
            FsckProblem::DanglingLink { path, target } => {
                write!(f, "dangling link {path} -> {target}")
            }
            FsckProblem::LinkMismatch {
                path,
                named,
                target,
            } => {
                write!(f, "link {path} is filed under {named} but holds {target}")
            }
        }
    }
}

/// The outcome of [`Store::fsck`].
#[derive(Debug, Default)]
pub struct FsckReport {
    /// Blob `data` files examined.
    pub blobs_checked: u64,
    /// Link files examined.
    pub links_checked: u64,
    /// Everything wrong, in path order.
    pub problems: Vec<FsckProblem>,
}

impl FsckReport {
    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Progress notifications, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsckEvent {
    /// This many more items will be checked (announced a batch at a time).
    Planned(u64),
    /// One more item checked.
    Checked,
}

/// Jobs checked in parallel at a time: the walk pauses while a batch runs, so memory stays
/// bounded whatever the number of blobs (a bucket is never listed whole).
const BATCH: usize = 4096;

/// A check in progress: the walks queue jobs, full batches run in parallel.
struct FsckRun<'a> {
    store: &'a Store,
    progress: &'a (dyn Fn(FsckEvent) + Sync),
    batch: Vec<Job>,
    report: FsckReport,
}

impl FsckRun<'_> {
    fn push(&mut self, job: Job) {
        match job {
            Job::Blob { .. } => self.report.blobs_checked += 1,
            Job::Link { .. } => self.report.links_checked += 1,
        }
        self.batch.push(job);
        if self.batch.len() == BATCH {
            self.flush();
        }
    }

    /// Checks the queued jobs in parallel.
    fn flush(&mut self) {
        let jobs = std::mem::take(&mut self.batch);
        (self.progress)(FsckEvent::Planned(jobs.len() as u64));
        let (store, progress) = (self.store, self.progress);
        let problems: Vec<Vec<FsckProblem>> = jobs
            .into_par_iter()
            .map(|job| {
                let found = match job {
                    Job::Blob { path, digest } => store.check_blob(path, digest),
                    Job::Link { path, named } => store.check_link(path, named),
                };
                progress(FsckEvent::Checked);
                found
            })
            .collect();
        self.report.problems.extend(problems.into_iter().flatten());
    }
}

/// One unit of parallel work.
enum Job {
    Blob {
        path: DriverPath,
        digest: Option<Digest>,
    },
    Link {
        path: DriverPath,
        named: Option<Digest>,
    },
}

impl Store {
    /// Checks every blob and link; see the module documentation.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = layerstore::store::Store::filesystem(dir.path());
    /// assert!(store.fsck(&|_| {}).unwrap().is_clean());
    /// ```
    pub fn fsck(&self, progress: &(dyn Fn(FsckEvent) + Sync)) -> Result<FsckReport, StoreError> {
        let mut run = FsckRun {
            store: self,
            progress,
            batch: Vec::with_capacity(BATCH),
            report: FsckReport::default(),
        };
        self.walk_blobs(&mut run)?;
        self.walk_links(&mut run)?;
        run.flush();
        Ok(run.report)
    }

    /// Queues every file under `blobs/`, with the digest its path names (if it is a digest
    /// path).
    fn walk_blobs(&self, run: &mut FsckRun<'_>) -> Result<(), StoreError> {
        let root = PathSpec::BlobsRoot.to_path()?;
        let depth = root.components().count();
        let walked = self.driver.walk(&root, &mut |info| {
            if !info.is_dir {
                let parts: Vec<&str> = info.path.components().skip(depth).collect();
                run.push(Job::Blob {
                    path: info.path.clone(),
                    digest: digest_of_blob_path(&parts),
                });
            }
            Ok(WalkControl::Continue)
        });
        ignore_missing(walked)
    }

    /// Queues every link file of every repository, with the digest its path names (none for a
    /// tag's `current/link`).
    fn walk_links(&self, run: &mut FsckRun<'_>) -> Result<(), StoreError> {
        let root = PathSpec::RepositoriesRoot.to_path()?;
        let walked = self.driver.walk(&root, &mut |info| {
            if info.is_dir {
                return Ok(if info.path.name() == "_uploads" {
                    WalkControl::SkipDir
                } else {
                    WalkControl::Continue
                });
            }
            if info.path.name() == "link" {
                let parts: Vec<&str> = info.path.components().collect();
                if let Some(named) = named_digest_of_link(&parts) {
                    run.push(Job::Link {
                        path: info.path.clone(),
                        named,
                    });
                }
            }
            Ok(WalkControl::Continue)
        });
        ignore_missing(walked)
    }

    fn check_blob(&self, path: DriverPath, digest: Option<Digest>) -> Vec<FsckProblem> {
        let Some(expected) = digest else {
            return vec![FsckProblem::StrayBlobFile { path }];
        };
        let Algorithm::Hash(algorithm) = expected.algorithm() else {
            return Vec::new(); // TarSum names a tar's entries, not its bytes: nothing to re-hash
        };
        match self.hash_file(&path, algorithm) {
            Ok(actual) if actual == expected => Vec::new(),
            Ok(actual) => vec![FsckProblem::CorruptBlob {
                path,
                expected,
                actual,
            }],
            // Deleted since the listing (a garbage collection running beside fsck).
            Err(StoreError::Storage(StorageError::NotFound(_)) | StoreError::BlobUnknown(_)) => {
                Vec::new()
            }
            Err(error) => vec![FsckProblem::UnreadableBlob { path, error }],
        }
    }

    fn check_link(&self, path: DriverPath, named: Option<Digest>) -> Vec<FsckProblem> {
        let target = match self.read_link(&path) {
            Ok(Some(target)) => target,
            Ok(None) => return Vec::new(), // deleted while we ran
            Err(error) => return vec![FsckProblem::UnreadableLink { path, error }],
        };
        let size = match self.stat_global(&target) {
            Ok(info) => info.size,
            // A garbage collection deletes a link before its blob: a link that is gone by now
            // was deleted with its blob, not left dangling.
            Err(StoreError::BlobUnknown(_)) if matches!(self.read_link(&path), Ok(None)) => {
                return Vec::new()
            }
            Err(StoreError::BlobUnknown(_)) => {
                return vec![FsckProblem::DanglingLink { path, target }]
            }
            Err(error) => return vec![FsckProblem::UnreadableLink { path, error }],
        };
        let Some(named) = named else {
            return Vec::new();
        };
        if named == target {
            return Vec::new();
        }
        let mismatch = |path| {
            vec![FsckProblem::LinkMismatch {
                path,
                named: named.clone(),
                target: target.clone(),
            }]
        };
        match (named.algorithm(), target.algorithm()) {
            (a, b) if a == b => mismatch(path),
            (Algorithm::Hash(alias), _) => {
                let blob = match (PathSpec::BlobData { digest: &target }).to_path() {
                    Ok(blob) => blob,
                    Err(e) => {
                        return vec![FsckProblem::UnreadableLink {
                            path,
                            error: e.into(),
                        }]
                    }
                };
                let mut hasher = Hasher::new(alias);
                match hash_range(&*self.driver, &blob, 0, size, &mut |b| hasher.update(b)) {
                    Ok(()) if hasher.digest() == named => Vec::new(),
                    Ok(()) => mismatch(path),
                    Err(error) => vec![FsckProblem::UnreadableBlob { path: blob, error }],
                }
            }
            _ => Vec::new(), // a TarSum alias cannot be re-derived from the bytes
        }
    }

    fn hash_file(
        &self,
        path: &DriverPath,
        algorithm: crate::digest::HashAlgorithm,
    ) -> Result<Digest, StoreError> {
        let size = self.driver.stat(path)?.size;
        let mut hasher = Hasher::new(algorithm);
        hash_range(&*self.driver, path, 0, size, &mut |b| hasher.update(b))?;
        Ok(hasher.digest())
    }
}

fn ignore_missing(walked: Result<(), StorageError>) -> Result<(), StoreError> {
    match walked {
        Ok(()) | Err(StorageError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `[alg.., xx, hex, "data"]` (components below `blobs/`) to the digest it names.
fn digest_of_blob_path(parts: &[&str]) -> Option<Digest> {
    let [alg @ .., fan, hex, "data"] = parts else {
        return None;
    };
    if alg.is_empty() || hex.get(..2) != Some(*fan) {
        return None;
    }
    digest_from_components(alg, hex).ok()
}

/// For a link path (all components), `Some(Some(digest))` when it is filed under a digest,
/// `Some(None)` for a tag's `current/link`, `None` when it is not a link the layout defines.
fn named_digest_of_link(parts: &[&str]) -> Option<Option<Digest>> {
    let start = parts.iter().position(|c| c.starts_with('_'))?;
    let named = |rest: &[&str]| match rest {
        [alg @ .., hex, "link"] if !alg.is_empty() => {
            digest_from_components(alg, hex).ok().map(Some)
        }
        _ => None,
    };
    match parts.get(start..)? {
        ["_layers", rest @ ..] => named(rest),
        ["_manifests", "revisions", rest @ ..] => named(rest),
        ["_manifests", "tags", _tag, "current", "link"] => Some(None),
        ["_manifests", "tags", _tag, "index", rest @ ..] => named(rest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_paths_name_digests() {
        let d = Digest::sha256(b"x");
        let hex = d.hex();
        assert_eq!(
            digest_of_blob_path(&["sha256", &hex[..2], hex, "data"]),
            Some(d.clone())
        );
        assert_eq!(digest_of_blob_path(&["sha256", "zz", hex, "data"]), None);
        assert_eq!(
            digest_of_blob_path(&["sha256", &hex[..2], hex, "other"]),
            None
        );
        assert_eq!(digest_of_blob_path(&[&hex[..2], hex, "data"]), None);
    }

    #[test]
    fn link_paths_name_digests() {
        let d = Digest::sha256(b"x");
        let hex = d.hex();
        let base = ["docker", "registry", "v2", "repositories", "a", "b"];
        let with = |rest: &[&'static str]| -> Vec<String> {
            base.iter().chain(rest).map(|s| s.to_string()).collect()
        };
        let check = |parts: Vec<String>| {
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            named_digest_of_link(&refs)
        };
        let h: &'static str = Box::leak(hex.to_owned().into_boxed_str());
        assert_eq!(
            check(with(&["_layers", "sha256", h, "link"])),
            Some(Some(d.clone()))
        );
        assert_eq!(
            check(with(&["_manifests", "revisions", "sha256", h, "link"])),
            Some(Some(d.clone()))
        );
        assert_eq!(
            check(with(&["_manifests", "tags", "v1", "current", "link"])),
            Some(None)
        );
        assert_eq!(
            check(with(&[
                "_manifests",
                "tags",
                "v1",
                "index",
                "sha256",
                h,
                "link"
            ])),
            Some(Some(d))
        );
        assert_eq!(check(with(&["_layers", "link"])), None);
        assert_eq!(check(with(&["link"])), None);
    }
}
