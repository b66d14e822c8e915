//! Moving whole images: push an OCI layout to a registry, pull one into a layout, copy
//! between registries (mounting when both repositories are on the same registry).
//!
//! Blobs move in parallel (`jobs` at once); manifests follow, children before parents, the
//! tagged one last, so a registry never holds a tag whose content is incomplete. Each blob
//! resumes: a push continues the upload the registry still holds (its URL is kept in
//! `resume_dir`), a pull continues its partial file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::task::JoinSet;

use super::error::ClientError;
use super::image::{read_layout, read_remote, ManifestNode, PlatformFilter};
use super::layout::OciLayout;
use super::registry::Registry;
use super::upload::{PushOptions, PushOutcome};
use crate::digest::Digest;
use crate::manifest::Descriptor;

/// What happened to one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobOutcome {
    /// The destination had it.
    Present,
    /// Mounted from another repository of the same registry.
    Mounted,
    /// Sent; `resumed_from` bytes were already at the destination.
    Transferred {
        /// Bytes an earlier, interrupted transfer had already moved.
        resumed_from: u64,
    },
}

impl From<PushOutcome> for BlobOutcome {
    fn from(outcome: PushOutcome) -> Self {
        match outcome {
            PushOutcome::Exists => BlobOutcome::Present,
            PushOutcome::Mounted => BlobOutcome::Mounted,
            PushOutcome::Uploaded { resumed_from } => BlobOutcome::Transferred { resumed_from },
        }
    }
}

/// Hears about each blob's progress (a progress bar, a log).
pub trait Progress: Send + Sync {
    /// A blob of `size` bytes starts.
    fn start(&self, _digest: &Digest, _size: u64) {}
    /// `done` bytes of it are at the destination.
    fn advance(&self, _digest: &Digest, _done: u64) {}
    /// It finished.
    fn finish(&self, _digest: &Digest, _outcome: BlobOutcome) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// How an image moves.
#[derive(Clone)]
pub struct TransferOptions {
    /// Blobs moved at once.
    pub jobs: usize,
    /// Move one platform of an index instead of all.
    pub platform: Option<PlatformFilter>,
    /// Push blobs in chunks of this size (`None`: one request per blob).
    pub chunk_size: Option<u64>,
    /// Where a push keeps each blob's upload URL until it completes, so a rerun resumes it.
    pub resume_dir: Option<PathBuf>,
    /// Progress reports.
    pub progress: Arc<dyn Progress>,
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            jobs: 4,
            platform: None,
            chunk_size: Some(64 << 20),
            resume_dir: None,
            progress: Arc::new(NoProgress),
        }
    }
}

/// What a transfer did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TransferReport {
    /// Digest of the tagged (top) manifest.
    pub digest: Option<Digest>,
    /// Manifests written.
    pub manifests: usize,
    /// Distinct blobs in the image.
    pub blobs: usize,
    /// Blobs sent.
    pub blobs_transferred: usize,
    /// Blobs the destination already had.
    pub blobs_present: usize,
    /// Blobs mounted.
    pub blobs_mounted: usize,
    /// Bytes of the blobs sent (whole blobs, including resumed parts).
    pub bytes: u64,
    /// Bytes an earlier interrupted run had already moved.
    pub bytes_resumed: u64,
    /// Wall time.
    pub seconds: f64,
}

impl TransferReport {
    fn record(&mut self, size: u64, outcome: BlobOutcome) {
        match outcome {
            BlobOutcome::Present => self.blobs_present += 1,
            BlobOutcome::Mounted => self.blobs_mounted += 1,
            BlobOutcome::Transferred { resumed_from } => {
                self.blobs_transferred += 1;
                self.bytes += size;
                self.bytes_resumed += resumed_from;
            }
        }
    }
}

/// Pushes the image tagged `layout_tag` (or the only one) of `layout` to `repo:tag`.
pub async fn push_image(
    registry: &Registry,
    layout: &OciLayout,
    layout_tag: Option<&str>,
    repo: &str,
    tag: &str,
    options: &TransferOptions,
) -> Result<TransferReport, ClientError> {
    let started = Instant::now();
    let tree = {
        let (layout, layout_tag, platform) = (
            layout.clone(),
            layout_tag.map(str::to_owned),
            options.platform.clone(),
        );
        tokio::task::spawn_blocking(move || {
            read_layout(&layout, layout_tag.as_deref(), platform.as_ref())
        })
        .await
        .map_err(|e| ClientError::Protocol(format!("reading the layout: {e}")))??
    };
    let blobs = tree.all_blobs();
    for blob in &blobs {
        if !layout.has_blob(&blob.digest, blob.size) {
            return Err(ClientError::Protocol(format!(
                "{}: blob {} is missing or has the wrong size",
                layout.root().display(),
                blob.digest
            )));
        }
    }
    let report = for_each_blob(&blobs, options, {
        let (registry, layout, repo, options) = (
            registry.clone(),
            layout.clone(),
            repo.to_owned(),
            options.clone(),
        );
        move |blob| {
            let (registry, layout, repo, options) = (
                registry.clone(),
                layout.clone(),
                repo.clone(),
                options.clone(),
            );
            async move { push_one(&registry, &layout, &repo, &blob, &options).await }
        }
    })
    .await?;
    finish_manifests(registry, repo, tag, &tree, report, started).await
}

async fn push_one(
    registry: &Registry,
    layout: &OciLayout,
    repo: &str,
    blob: &Descriptor,
    options: &TransferOptions,
) -> Result<BlobOutcome, ClientError> {
    let state_file = options
        .resume_dir
        .as_ref()
        .map(|dir| dir.join(resume_key(registry.host(), repo, &blob.digest)));
    let resume_location = state_file
        .as_ref()
        .and_then(|f| std::fs::read_to_string(f).ok());
    let (progress, digest) = (Arc::clone(&options.progress), blob.digest.clone());
    let keep = state_file.clone();
    let push = PushOptions {
        chunk_size: options.chunk_size,
        mount_from: None,
        resume_location,
        on_session: Some(Arc::new(move |location: &str| {
            if let Some(file) = &keep {
                let _ = save_resume(file, location);
            }
        })),
        progress: Some(Arc::new(move |done| progress.advance(&digest, done))),
    };
    let outcome = registry
        .push_blob_file(
            repo,
            &blob.digest,
            blob.size,
            &layout.blob_path(&blob.digest),
            &push,
        )
        .await?;
    if let Some(file) = &state_file {
        let _ = std::fs::remove_file(file);
    }
    Ok(outcome.into())
}

/// Pulls `repo` at `reference` (tag or digest) into `layout`, tagging it `tag` there.
pub async fn pull_image(
    registry: &Registry,
    repo: &str,
    reference: &str,
    layout: &OciLayout,
    tag: Option<&str>,
    options: &TransferOptions,
) -> Result<TransferReport, ClientError> {
    let started = Instant::now();
    let tree = read_remote(registry, repo, reference, options.platform.as_ref()).await?;
    let blobs = tree.all_blobs();
    let mut report = for_each_blob(&blobs, options, {
        let (registry, layout, repo, progress) = (
            registry.clone(),
            layout.clone(),
            repo.to_owned(),
            Arc::clone(&options.progress),
        );
        move |blob| {
            let (registry, layout, repo, progress) = (
                registry.clone(),
                layout.clone(),
                repo.clone(),
                Arc::clone(&progress),
            );
            async move { pull_one(&registry, &layout, &repo, &blob, progress).await }
        }
    })
    .await?;
    for node in tree.manifests_bottom_up() {
        if !layout.has_blob(&node.digest, node.bytes.len() as u64) {
            let path = layout.blob_path(&node.digest);
            super::files::write_atomically(&path, &node.bytes, 0o644)
                .map_err(|e| ClientError::io(path.display().to_string(), e))?;
        }
        report.manifests += 1;
    }
    layout.add_manifest(&tree.media_type, &tree.digest, tree.bytes.len() as u64, tag)?;
    report.digest = Some(tree.digest.clone());
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

async fn pull_one(
    registry: &Registry,
    layout: &OciLayout,
    repo: &str,
    blob: &Descriptor,
    progress: Arc<dyn Progress>,
) -> Result<BlobOutcome, ClientError> {
    if layout.has_blob(&blob.digest, blob.size) {
        return Ok(BlobOutcome::Present);
    }
    let path = layout.blob_path(&blob.digest);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ClientError::io(dir.display().to_string(), e))?;
    }
    let first = Arc::new(Mutex::new(None::<u64>));
    let (seen, digest) = (Arc::clone(&first), blob.digest.clone());
    let size = registry
        .download_blob(repo, &blob.digest, &path, &move |done| {
            seen.lock().get_or_insert(done);
            progress.advance(&digest, done);
        })
        .await?;
    if size != blob.size {
        let _ = std::fs::remove_file(&path);
        return Err(ClientError::SizeMismatch {
            what: blob.digest.to_string(),
            expected: blob.size,
            actual: size,
        });
    }
    let resumed_from = first.lock().unwrap_or(0);
    Ok(BlobOutcome::Transferred { resumed_from })
}

/// Copies `src_repo` at `reference` to `dst_repo:tag`: blobs are mounted when both are on the
/// same registry, else streamed from one to the other without touching the disk.
pub async fn copy_image(
    source: &Registry,
    src_repo: &str,
    reference: &str,
    destination: &Registry,
    dst_repo: &str,
    tag: &str,
    options: &TransferOptions,
) -> Result<TransferReport, ClientError> {
    let started = Instant::now();
    let tree = read_remote(source, src_repo, reference, options.platform.as_ref()).await?;
    let blobs = tree.all_blobs();
    let same_registry = source.host() == destination.host();
    let report = for_each_blob(&blobs, options, {
        let (source, destination) = (source.clone(), destination.clone());
        let (src_repo, dst_repo, progress) = (
            src_repo.to_owned(),
            dst_repo.to_owned(),
            Arc::clone(&options.progress),
        );
        move |blob| {
            let (source, destination, src_repo, dst_repo) = (
                source.clone(),
                destination.clone(),
                src_repo.clone(),
                dst_repo.clone(),
            );
            let progress = Arc::clone(&progress);
            async move {
                if same_registry
                    && destination
                        .mount_blob(&dst_repo, &blob.digest, &src_repo)
                        .await?
                {
                    return Ok(BlobOutcome::Mounted);
                }
                if destination
                    .blob_size(&dst_repo, &blob.digest)
                    .await?
                    .is_some()
                {
                    return Ok(BlobOutcome::Present);
                }
                let stream = source.get_blob(&src_repo, &blob.digest).await?;
                let digest = blob.digest.clone();
                let report = Arc::new(move |done| progress.advance(&digest, done));
                let outcome = destination
                    .push_blob_stream(&dst_repo, &blob.digest, stream, Some(report))
                    .await?;
                Ok(outcome.into())
            }
        }
    })
    .await?;
    finish_manifests(destination, dst_repo, tag, &tree, report, started).await
}

/// Pushes the manifests of `tree` (children by digest, the top one as `tag`).
async fn finish_manifests(
    registry: &Registry,
    repo: &str,
    tag: &str,
    tree: &ManifestNode,
    mut report: TransferReport,
    started: Instant,
) -> Result<TransferReport, ClientError> {
    for node in tree.manifests_bottom_up() {
        let is_top = node.digest == tree.digest;
        let reference = if is_top {
            tag.to_owned()
        } else {
            node.digest.to_string()
        };
        registry
            .put_manifest(repo, &reference, &node.media_type, node.bytes.clone())
            .await?;
        report.manifests += 1;
    }
    report.digest = Some(tree.digest.clone());
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Runs `transfer` for every blob, `options.jobs` at once; the first error stops the rest.
async fn for_each_blob<F, Fut>(
    blobs: &[Descriptor],
    options: &TransferOptions,
    transfer: F,
) -> Result<TransferReport, ClientError>
where
    F: Fn(Descriptor) -> Fut,
    Fut: std::future::Future<Output = Result<BlobOutcome, ClientError>> + Send + 'static,
{
    let mut report = TransferReport {
        blobs: blobs.len(),
        ..TransferReport::default()
    };
    let mut pending = blobs.iter().cloned();
    let mut running = JoinSet::new();
    loop {
        while running.len() < options.jobs.max(1) {
            let Some(blob) = pending.next() else { break };
            options.progress.start(&blob.digest, blob.size);
            let future = transfer(blob.clone());
            running.spawn(async move { (blob, future.await) });
        }
        let Some(joined) = running.join_next().await else {
            return Ok(report);
        };
        let (blob, outcome) =
            joined.map_err(|e| ClientError::Protocol(format!("transfer task: {e}")))?;
        let outcome = outcome?;
        options.progress.finish(&blob.digest, outcome);
        report.record(blob.size, outcome);
    }
}

/// The file name a push keeps a blob's upload URL under.
fn resume_key(host: &str, repo: &str, digest: &Digest) -> String {
    Digest::sha256(format!("{host}/{repo}@{digest}").as_bytes())
        .hex()
        .to_owned()
}

fn save_resume(file: &Path, location: &str) -> std::io::Result<()> {
    super::files::write_atomically(file, location.as_bytes(), 0o600)
}
