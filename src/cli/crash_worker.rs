//! `layerstore crash-worker` (hidden): the victim process of `tests/crash.rs` and of the crash
//! storms (`tests/crash_storm.rs`), on any storage (`--storage URL` or `--root DIR`).
//!
//! Uploads every file of a directory, in name order, in small chunks with a checkpoint after
//! each, and commits it. Before each upload it prints `started <upload-id> <file-name>`, and
//! after each successful commit `committed <file-name> <digest>` (flushed), so the test knows
//! which blobs were acknowledged when it kills the process.

use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use layerstore::names::RepositoryName;
use layerstore::store::{Store, StoreError};

use super::storage_args::StorageArgs;

/// Test helper: upload every file of INPUTS to REPO with frequent checkpoints.
#[derive(Debug, Args)]
pub struct CrashWorkerArgs {
    #[command(flatten)]
    storage: StorageArgs,
    /// Repository.
    #[arg(long, value_name = "NAME")]
    repo: RepositoryName,
    /// Directory of files to upload.
    #[arg(long, value_name = "DIR")]
    inputs: PathBuf,
    /// Bytes per append (each followed by a checkpoint).
    #[arg(long, default_value_t = 65_536)]
    chunk: usize,
}

pub fn run(args: CrashWorkerArgs) -> ExitCode {
    let store = match args.storage.open_store() {
        Ok(store) => store,
        Err(e) => return e.report("crash-worker"),
    };
    match work(&store, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("layerstore crash-worker: {e}");
            ExitCode::FAILURE
        }
    }
}

fn work(store: &Store, args: &CrashWorkerArgs) -> Result<(), StoreError> {
    let mut names: Vec<PathBuf> = fs::read_dir(&args.inputs)
        .map_err(StoreError::Input)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    names.sort();
    let mut out = io::stdout().lock();
    for path in names {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = fs::read(&path).map_err(StoreError::Input)?;
        let mut upload = store.create_upload(&args.repo)?;
        writeln!(out, "started {} {name}", upload.id()).map_err(StoreError::Output)?;
        out.flush().map_err(StoreError::Output)?;
        for chunk in bytes.chunks(args.chunk.max(1)) {
            upload.append(chunk)?;
            upload.checkpoint()?;
        }
        let digest = upload.digest();
        let info = upload.commit(&digest, Some(bytes.len() as u64))?;
        writeln!(out, "committed {name} {}", info.digest).map_err(StoreError::Output)?;
        out.flush().map_err(StoreError::Output)?;
    }
    Ok(())
}
