//! `layerstore put`: store a file (or standard input) as a blob of a repository.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use memmap2::MmapOptions;

use layerstore::digest::Digest;
use layerstore::names::RepositoryName;
use layerstore::store::{Store, StoreError, Upload};

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
            println!("{digest}");
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

/// Bytes mapped at once: big enough to amortise mmap calls, small enough to keep memory flat.
const WINDOW: u64 = 64 << 20;

/// Feeds a file to the upload from mapped windows (no copy into a read buffer); streams that
/// cannot be mapped (pipes, devices) are read instead.
fn append_file(upload: &mut Upload, path: &Path) -> Result<(), StoreError> {
    let file = File::open(path).map_err(StoreError::Input)?;
    let meta = file.metadata().map_err(StoreError::Input)?;
    if !meta.is_file() {
        return upload.append_from(&mut &file).map(|_| ());
    }
    let size = meta.len();
    let mut offset = 0;
    while offset < size {
        let len = (size - offset).min(WINDOW);
        // SAFETY: read-only map of the user's input file, dropped at the end of this iteration.
        // If another process truncates the file meanwhile, reads may fault (SIGBUS); that is
        // the usual contract of mapped input, as for `layerstore digest`.
        #[allow(unsafe_code)]
        let window = unsafe {
            MmapOptions::new()
                .offset(offset)
                .len(len as usize)
                .map(&file)
        }
        .map_err(StoreError::Input)?;
        let _ = window.advise(memmap2::Advice::Sequential);
        for chunk in window.chunks(layerstore::store::upload::CHUNK) {
            upload.append(chunk)?;
        }
        offset += len;
    }
    Ok(())
}
