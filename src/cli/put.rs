//! `layerstore put`: store a file (or standard input) as a blob of a repository.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use layerstore::digest::Digest;
use layerstore::filehash::{self, FileRead};
use layerstore::names::RepositoryName;
use layerstore::store::{Store, StoreError, Upload};

use super::output::outln;
use super::storage_args::StorageArgs;

/// Store FILE (or `-` for standard input) as a blob of REPO and print its digest.
///
/// The input is streamed as an upload and committed; the bytes are hashed while they are
/// written, in one pass.
#[derive(Debug, Args)]
pub struct PutArgs {
    #[command(flatten)]
    storage: StorageArgs,
    /// Repository to link the blob into.
    #[arg(long, value_name = "NAME")]
    repo: RepositoryName,
    /// Refuse to commit unless the content has this digest (sha256 or sha512).
    #[arg(long, value_name = "DIGEST")]
    digest: Option<Digest>,
    /// The file to store; `-` reads standard input.
    #[arg(value_name = "FILE")]
    input: PathBuf,
}

pub fn run(args: PutArgs) -> ExitCode {
    let store = match args.storage.open_store() {
        Ok(store) => store,
        Err(e) => return e.report("put"),
    };
    match put(&store, &args) {
        Ok(digest) => {
            outln!("{digest}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("layerstore put: {e}");
            ExitCode::FAILURE
        }
    }
}

fn put(store: &Store, args: &PutArgs) -> Result<Digest, StoreError> {
    let mut upload = store.create_upload(&args.repo)?;
    let fed = if args.input.as_os_str() == "-" {
        upload.append_from(&mut io::stdin().lock()).map(|_| ())
    } else {
        append_file(&mut upload, &args.input)
    };
    if let Err(e) = fed {
        let _ = upload.cancel();
        return Err(e);
    }
    let claimed = args.digest.clone().unwrap_or_else(|| upload.digest());
    let size = upload.offset();
    let info = upload.commit(&claimed, Some(size))?;
    Ok(info.digest)
}

/// Feeds a file to the upload from mapped windows: the upload writes and hashes each 1 MiB
/// piece on two threads, straight from the page cache, with no read buffer in between. Streams
/// that cannot be mapped (pipes, devices) are read instead.
fn append_file(upload: &mut Upload, path: &Path) -> Result<(), StoreError> {
    let file = File::open(path).map_err(StoreError::Input)?;
    let mut appended = Ok(());
    filehash::for_each_chunk(&file, FileRead::Mapped(64 << 20), |window| {
        appended = window
            .chunks(layerstore::store::upload::CHUNK)
            .try_for_each(|piece| upload.append(piece));
        Ok::<_, io::Error>(appended.is_ok())
    })
    .map_err(StoreError::Input)?;
    appended
}
