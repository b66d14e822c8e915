//! [`GcReport`]: what a collection found and deleted (or would delete, in a dry run).

use std::time::Duration;

use serde::Serialize;

use crate::digest::Digest;
use crate::names::RepositoryName;
use crate::storage::DriverPath;

/// A blob a run deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeletedBlob {
    /// Its digest.
    #[serde(serialize_with = "as_string")]
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// A manifest revision a run deleted (`delete_untagged`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeletedManifest {
    /// The repository.
    #[serde(serialize_with = "as_string")]
    pub repository: RepositoryName,
    /// The manifest's digest.
    #[serde(serialize_with = "as_string")]
    pub digest: Digest,
}

/// What a run found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    /// Nothing was deleted: the lists say what would have been.
    pub dry_run: bool,
    /// Repositories marked.
    pub repositories: u64,
    /// Manifest revisions found live, over all repositories.
    pub manifests_live: u64,
    /// Distinct blob digests marked (manifest bytes included).
    pub blobs_marked: u64,
    /// Blobs deleted.
    pub blobs: Vec<DeletedBlob>,
    /// Manifest revisions deleted.
    pub manifests: Vec<DeletedManifest>,
    /// Links deleted with the blobs they named (layer links, tag history entries).
    #[serde(serialize_with = "paths")]
    pub links: Vec<DriverPath>,
    /// Upload sessions deleted.
    #[serde(serialize_with = "paths")]
    pub upload_dirs: Vec<DriverPath>,
    /// Bytes of the blobs deleted.
    pub bytes_freed: u64,
    /// Unmarked blobs kept because they are younger than the grace window.
    pub kept_young: u64,
    /// Candidates kept because a writer touched them during the run.
    pub kept_touched: u64,
    /// How long the run took.
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
}

impl GcReport {
    /// The one-line summary the CLI prints last and the log records.
    pub fn summary(&self) -> String {
        let verb = if self.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        format!(
            "{} repositories, {} live manifests, {} blobs marked; {verb} {} blobs ({} bytes), \
             {} manifests, {} links, {} upload sessions; kept {} young and {} touched \
             candidates; {:.2} s",
            self.repositories,
            self.manifests_live,
            self.blobs_marked,
            self.blobs.len(),
            self.bytes_freed,
            self.manifests.len(),
            self.links.len(),
            self.upload_dirs.len(),
            self.kept_young,
            self.kept_touched,
            self.duration.as_secs_f64(),
        )
    }

    /// The counts (not the lists) as JSON, for [`LAST_RUN_PATH`](super::LAST_RUN_PATH).
    pub(crate) fn summary_json(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "blobs": self.blobs.len(),
            "bytes_freed": self.bytes_freed,
            "manifests": self.manifests.len(),
            "links": self.links.len(),
            "upload_dirs": self.upload_dirs.len(),
            "duration_seconds": self.duration.as_secs_f64(),
        }))
        .expect("a summary serializes")
    }
}

fn as_string<T: std::fmt::Display, S: serde::Serializer>(
    value: &T,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

fn paths<S: serde::Serializer>(paths: &[DriverPath], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(paths.iter().map(DriverPath::as_str))
}

fn seconds<S: serde::Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(duration.as_secs_f64())
}
