//! `layerstore push`, `pull` and `copy`: whole images between OCI layouts and registries, in
//! parallel, resumable, with progress bars on a terminal and a `--json` summary.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use layerstore::client::layout::OciLayout;
use layerstore::client::reference::Reference;
use layerstore::client::{
    copy_image, pull_image, push_image, ClientError, PlatformFilter, TransferOptions,
    TransferReport,
};

use super::bench::parse_size;
use super::output::outln;
use super::registry_args::RegistryArgs;

/// Options every transfer takes.
#[derive(Debug, Args)]
pub struct TransferArgs {
    #[command(flatten)]
    registry: RegistryArgs,
    /// Blobs moved at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    jobs: usize,
    /// Only this platform of a multi-platform index (OS/ARCH[/VARIANT]).
    #[arg(long, value_name = "OS/ARCH")]
    platform: Option<PlatformFilter>,
    /// Push blobs in requests of this size, so an interruption costs at most one (0: one
    /// request per blob).
    #[arg(long, value_parser = parse_size, default_value = "64M", value_name = "SIZE")]
    chunk_size: u64,
    /// Print a JSON summary on stdout (and no progress bars).
    #[arg(long)]
    json: bool,
}

/// Push an image from an OCI layout (as `skopeo copy … oci:DIR:TAG` writes it) to a registry.
///
/// Blobs the registry has are skipped; an interrupted push, run again, continues each blob's
/// upload from where the registry holds it.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The layout directory, with the image's tag in it (`DIR:TAG`; without it, the layout's
    /// only image).
    #[arg(value_name = "DIR[:TAG]")]
    source: String,
    /// Where to push: HOST[:PORT]/REPO[:TAG] (TAG defaults to latest).
    #[arg(value_name = "HOST/REPO:TAG")]
    destination: String,
    #[command(flatten)]
    transfer: TransferArgs,
}

/// Pull an image from a registry into an OCI layout directory.
///
/// Blobs the layout has are skipped; an interrupted pull, run again, continues each partial
/// blob from its saved hash state.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// What to pull: HOST[:PORT]/REPO[:TAG|@DIGEST].
    #[arg(value_name = "HOST/REPO[:TAG|@DIGEST]")]
    source: String,
    /// The layout directory (created if missing), and the tag to give the image there
    /// (default: the source's tag).
    #[arg(value_name = "DIR[:TAG]")]
    destination: String,
    #[command(flatten)]
    transfer: TransferArgs,
}

/// Copy an image between repositories or registries (blobs are mounted when both are on the
/// same registry, else streamed through without touching the disk).
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// HOST[:PORT]/REPO[:TAG|@DIGEST].
    #[arg(value_name = "SRC")]
    source: String,
    /// HOST[:PORT]/REPO[:TAG].
    #[arg(value_name = "DST")]
    destination: String,
    #[command(flatten)]
    transfer: TransferArgs,
}

pub fn push(args: PushArgs) -> ExitCode {
    finish("push", run_push(args))
}

pub fn pull(args: PullArgs) -> ExitCode {
    finish("pull", run_pull(args))
}

pub fn copy(args: CopyArgs) -> ExitCode {
    finish("copy", run_copy(args))
}

fn finish(command: &str, result: Result<(TransferReport, bool), String>) -> ExitCode {
    match result {
        Ok((report, json)) => {
            if json {
                outln!(
                    "{}",
                    serde_json::to_string(&report).expect("a report serializes")
                );
            } else {
                eprintln!(
                    "{command}: {} blobs ({} sent, {} present, {} mounted), {} manifests, {:.1} MiB in {:.2} s{}",
                    report.blobs,
                    report.blobs_transferred,
                    report.blobs_present,
                    report.blobs_mounted,
                    report.manifests,
                    report.bytes as f64 / (1 << 20) as f64,
                    report.seconds,
                    report.digest.map(|d| format!(" -> {d}")).unwrap_or_default()
                );
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("layerstore {command}: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run_push(args: PushArgs) -> Result<(TransferReport, bool), String> {
    let (dir, layout_tag) = split_layout(&args.source);
    let layout = OciLayout::open(&dir).map_err(|e| e.to_string())?;
    let destination = Reference::parse(&args.destination).map_err(|e| e.to_string())?;
    let tag = destination
        .tag
        .as_ref()
        .map(|t| t.as_str().to_owned())
        .ok_or("the destination needs a tag")?;
    let registry = args.transfer.registry.registry(&destination.registry)?;
    let options = args.transfer.options()?;
    let repo = destination.repository.as_str();
    let push = push_image(
        &registry,
        &layout,
        layout_tag.as_deref(),
        repo,
        &tag,
        &options,
    );
    run_transfer(args.transfer.json, push)
}

fn run_pull(args: PullArgs) -> Result<(TransferReport, bool), String> {
    let source = Reference::parse(&args.source).map_err(|e| e.to_string())?;
    let (dir, tag) = split_layout(&args.destination);
    let tag = tag.or_else(|| source.tag.as_ref().map(|t| t.as_str().to_owned()));
    let layout = OciLayout::create(&dir).map_err(|e| e.to_string())?;
    let registry = args.transfer.registry.registry(&source.registry)?;
    let options = args.transfer.options()?;
    let (repo, reference) = (source.repository.as_str(), source.manifest_reference());
    let pull = pull_image(
        &registry,
        repo,
        &reference,
        &layout,
        tag.as_deref(),
        &options,
    );
    run_transfer(args.transfer.json, pull)
}

fn run_copy(args: CopyArgs) -> Result<(TransferReport, bool), String> {
    let source = Reference::parse(&args.source).map_err(|e| e.to_string())?;
    let destination = Reference::parse(&args.destination).map_err(|e| e.to_string())?;
    let tag = destination
        .tag
        .as_ref()
        .map(|t| t.as_str().to_owned())
        .ok_or("the destination needs a tag")?;
    let from = args.transfer.registry.registry(&source.registry)?;
    let to = if destination.registry == source.registry {
        from.clone()
    } else {
        args.transfer.registry.registry(&destination.registry)?
    };
    let options = args.transfer.options()?;
    let reference = source.manifest_reference();
    let (src_repo, dst_repo) = (source.repository.as_str(), destination.repository.as_str());
    let copy = copy_image(&from, src_repo, &reference, &to, dst_repo, &tag, &options);
    run_transfer(args.transfer.json, copy)
}

/// Runs a transfer to its end on a fresh runtime; `json` rides along to the report's printer.
fn run_transfer(
    json: bool,
    transfer: impl std::future::Future<Output = Result<TransferReport, ClientError>>,
) -> Result<(TransferReport, bool), String> {
    let report = runtime()?.block_on(transfer).map_err(|e| e.to_string())?;
    Ok((report, json))
}

impl TransferArgs {
    fn options(&self) -> Result<TransferOptions, String> {
        Ok(TransferOptions {
            jobs: self.jobs.max(1),
            platform: self.platform.clone(),
            chunk_size: (self.chunk_size > 0).then_some(self.chunk_size),
            resume_dir: Some(resume_dir()),
            progress: super::progress::for_terminal(self.json, 0),
        })
    }
}

/// `DIR:TAG` → (DIR, TAG); a colon inside the directory's path is not a tag separator.
fn split_layout(text: &str) -> (PathBuf, Option<String>) {
    let last_slash = text.rfind('/').map_or(0, |i| i + 1);
    match text[last_slash..].rfind(':') {
        Some(i) if last_slash + i > 0 => {
            let at = last_slash + i;
            (
                PathBuf::from(&text[..at]),
                Some(text[at + 1..].to_owned()).filter(|t| !t.is_empty()),
            )
        }
        _ => (PathBuf::from(text), None),
    }
}

/// Where pushes keep upload URLs: `$XDG_CACHE_HOME/layerstore/uploads` (else `~/.cache/…`).
fn resume_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("layerstore/uploads")
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_arguments() {
        assert_eq!(
            split_layout("dir:v1"),
            (PathBuf::from("dir"), Some("v1".into()))
        );
        assert_eq!(split_layout("/a/b"), (PathBuf::from("/a/b"), None));
        assert_eq!(split_layout("/a:b/c"), (PathBuf::from("/a:b/c"), None));
        assert_eq!(
            split_layout("/a/c:t"),
            (PathBuf::from("/a/c"), Some("t".into()))
        );
    }
}
