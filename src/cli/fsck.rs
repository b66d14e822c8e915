//! `layerstore fsck`: re-hash every blob and check every link of a storage.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use layerstore::metrics::Metrics;
use layerstore::store::fsck::FsckEvent;
use layerstore::store::FsckReport;

use super::output::outln;
use super::storage_args::StorageArgs;

/// Re-hash every blob and check every link of a storage; exit 1 if anything is wrong.
///
/// Prints each corrupt blob and each dangling or bad link. Blobs are hashed in parallel. A
/// progress bar is shown when stderr is a terminal.
#[derive(Debug, Args)]
pub struct FsckArgs {
    #[command(flatten)]
    storage: StorageArgs,
    /// Also write the result as Prometheus text to FILE (replaced atomically), for
    /// node_exporter's textfile collector: layerstore_fsck_problems{kind}, blobs and links
    /// checked, the run's time, duration and success.
    #[arg(long, value_name = "FILE")]
    metrics_textfile: Option<PathBuf>,
}

pub fn run(args: FsckArgs) -> ExitCode {
    let store = match args.storage.open_store() {
        Ok(store) => store,
        Err(e) => return e.report("fsck"),
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed}") {
            bar.set_style(style);
        }
        bar
    });
    let progress = |event: FsckEvent| {
        if let Some(bar) = &bar {
            match event {
                FsckEvent::Planned(n) => bar.inc_length(n),
                FsckEvent::Checked => bar.inc(1),
            }
        }
    };
    let started = Instant::now();
    let result = store.fsck(&progress);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if let Some(path) = &args.metrics_textfile {
        if let Err(e) = write_metrics(path, result.as_ref().ok(), started.elapsed()) {
            eprintln!("layerstore fsck: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    match result {
        Ok(report) => {
            for problem in &report.problems {
                outln!("{problem}");
            }
            eprintln!(
                "layerstore fsck: {} blobs, {} links checked, {} problems",
                report.blobs_checked,
                report.links_checked,
                report.problems.len()
            );
            if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("layerstore fsck: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The fsck families for `report` (`None`: the run failed) as a textfile.
fn write_metrics(
    path: &Path,
    report: Option<&FsckReport>,
    duration: Duration,
) -> std::io::Result<()> {
    let metrics = Metrics::new();
    match report {
        Some(report) => metrics.record_fsck(report, duration),
        None => metrics.record_fsck_failure(duration),
    }
    metrics.write_textfile(path)
}
