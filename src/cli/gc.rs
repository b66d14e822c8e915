//! `layerstore gc`: collect garbage on a storage, while registries keep serving it.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use layerstore::store::gc::{GcEvent, GcObserver};
use layerstore::store::{GcOptions, GcReport, StoreError, GRACE_PER_TOUCH};

use super::output::outln;
use super::purge::parse_duration;
use super::storage_args::StorageArgs;

/// Delete what nothing references: blobs, untagged manifests (with --delete-untagged), the
/// links that name deleted blobs, idle upload sessions.
///
/// Safe while layerstore servers write to the same storage: nothing modified within the grace
/// window is deleted, and each batch is claimed and looked at again before it goes
/// (docs/gc.md). distribution must not write to the storage meanwhile (it does not take part
/// in the protocol). Prints each item deleted (or, with --dry-run, that would be), then a
/// summary; a progress bar on a terminal. SIGINT or SIGTERM stop the run at its next step,
/// with its claim removed (exit status 130); a rerun goes on from there.
#[derive(Debug, Args)]
pub struct GcArgs {
    #[command(flatten)]
    storage: StorageArgs,
    /// Only report what would be deleted; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also delete manifests no tag reaches (keeping children of tagged indexes and referrers
    /// of live manifests), like distribution's garbage-collect --delete-untagged.
    #[arg(long)]
    delete_untagged: bool,
    /// Keep anything modified within this window, e.g. 2h, 30m. With servers writing, at least
    /// four times their touch interval (--touch-after).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2h")]
    grace: Duration,
    /// The touch interval of the servers writing to this storage (serve --gc-touch-after).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1m")]
    touch_after: Duration,
    /// Nothing writes to the storage during this run: allow any --grace, even 0s.
    #[arg(long)]
    offline: bool,
    /// Delete upload sessions with no write for this long.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "24h")]
    upload_idle: Duration,
    /// Print the report as one JSON object instead of lines.
    #[arg(long)]
    json: bool,
}

pub fn run(args: GcArgs) -> ExitCode {
    if let Err(message) = check_grace(&args) {
        eprintln!("layerstore gc: {message}");
        return ExitCode::from(2);
    }
    if let Some(warning) = super::serve_gc::short_grace_warning(args.grace) {
        if !args.offline && !args.dry_run {
            eprintln!("layerstore gc: warning: {warning}");
        }
    }
    let store = match args.storage.open_store() {
        Ok(store) => store.with_touch_after(args.touch_after),
        Err(e) => return e.report("gc"),
    };
    let bar = std::io::stderr().is_terminal().then(Bar::new).map(Arc::new);
    let options = GcOptions {
        dry_run: args.dry_run,
        delete_untagged: args.delete_untagged,
        grace: args.grace,
        upload_idle: args.upload_idle,
        observer: bar.clone().map(|b| b as Arc<dyn GcObserver>),
        stop: Some(stop_on_signal()),
        ..GcOptions::default()
    };
    let result = store.collect_garbage(&options);
    if let Some(bar) = &bar {
        bar.0.finish_and_clear();
    }
    match result {
        Ok(report) if args.json => {
            outln!(
                "{}",
                serde_json::to_string(&report).expect("a report serializes")
            );
            ExitCode::SUCCESS
        }
        Ok(report) => {
            print_report(&report);
            ExitCode::SUCCESS
        }
        Err(StoreError::CollectionStopped) => {
            eprintln!("layerstore gc: stopped by a signal; its claim is removed, a rerun goes on");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("layerstore gc: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A flag that SIGINT or SIGTERM sets: the run then ends at its next step and removes its
/// claim, so that no server waits a lease for it. A second signal ends the process at once.
fn stop_on_signal() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let watcher = move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(super::serve::shutdown_signal());
        flag.store(true, Ordering::Relaxed);
        runtime.block_on(super::serve::shutdown_signal());
        std::process::exit(130);
    };
    let spawned = std::thread::Builder::new()
        .name("layerstore-gc-signals".into())
        .spawn(watcher);
    if let Err(e) = spawned {
        eprintln!("layerstore gc: warning: signals will not stop the run cleanly: {e}");
    }
    stop
}

/// A grace window shorter than the writers' touch interval allows would let a push racing the
/// run lose a blob; refuse it unless the operator says nothing writes.
fn check_grace(args: &GcArgs) -> Result<(), String> {
    if args.touch_after < Duration::from_secs(1) {
        return Err("--touch-after must be at least 1s".into());
    }
    let minimum = args.touch_after * GRACE_PER_TOUCH;
    if args.dry_run || args.offline || args.grace >= minimum {
        return Ok(());
    }
    Err(format!(
        "--grace {}s is shorter than {GRACE_PER_TOUCH} times the servers' touch interval \
         ({}s): a push running now could lose a blob. Use --grace {}s or more, or --offline \
         if nothing writes to this storage during the run",
        args.grace.as_secs(),
        args.touch_after.as_secs(),
        minimum.as_secs()
    ))
}

fn print_report(report: &GcReport) {
    let verb = if report.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    for manifest in &report.manifests {
        outln!(
            "{verb} manifest {}@{}",
            manifest.repository,
            manifest.digest
        );
    }
    for blob in &report.blobs {
        outln!("{verb} blob {} ({} bytes)", blob.digest, blob.size);
    }
    for link in &report.links {
        outln!("{verb} link {link}");
    }
    for dir in &report.upload_dirs {
        outln!("{verb} upload {dir}");
    }
    outln!("{}", report.summary());
}

/// A progress bar: repositories while marking, candidates while sweeping.
struct Bar(ProgressBar);

impl Bar {
    fn new() -> Self {
        let bar = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template("{msg:8} {bar:40} {pos}/{len} {elapsed}") {
            bar.set_style(style);
        }
        bar.set_message("mark");
        Bar(bar)
    }
}

impl GcObserver for Bar {
    fn event(&self, event: GcEvent<'_>) {
        match event {
            GcEvent::RepositoryMarked { done, total } => {
                self.0.set_length(total as u64);
                self.0.set_position(done as u64);
            }
            GcEvent::Marked => {
                self.0.set_message("sweep");
                self.0.set_position(0);
                self.0.set_length(0);
            }
            GcEvent::Swept { done, total } => {
                self.0.set_length(total as u64);
                self.0.set_position(done as u64);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use layerstore::store::gc::{DEFAULT_GRACE, DEFAULT_UPLOAD_IDLE};
    use layerstore::store::DEFAULT_TOUCH_AFTER;

    #[test]
    fn help_defaults_match_the_library() {
        assert_eq!(parse_duration("2h").unwrap(), DEFAULT_GRACE);
        assert_eq!(parse_duration("24h").unwrap(), DEFAULT_UPLOAD_IDLE);
        assert_eq!(parse_duration("1m").unwrap(), DEFAULT_TOUCH_AFTER);
    }
}
