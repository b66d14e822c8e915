//! `layerstore get`: write a blob, or a byte range of it, to standard output.

use std::io::{self, Write};
use std::process::ExitCode;
use std::str::FromStr;

use clap::Args;

use layerstore::digest::Digest;
use layerstore::names::RepositoryName;
use layerstore::store::{ByteRange, Store, StoreError};

use super::storage_args::StorageArgs;

/// Write a blob, or an inclusive byte range of it, to standard output.
///
/// With --repo the blob is read through that repository's link. An unknown digest or a range
/// outside the blob is an error (exit status 1).
#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    storage: StorageArgs,
    /// Read through this repository's link (else straight from the blob store).
    #[arg(long, value_name = "NAME")]
    repo: Option<RepositoryName>,
    /// Only bytes START to END, inclusive (as in HTTP `Range: bytes=START-END`).
    #[arg(long, value_name = "START-END")]
    range: Option<RangeArg>,
    /// The blob's digest.
    #[arg(value_name = "DIGEST")]
    digest: Digest,
}

/// `START-END`, parsed.
#[derive(Debug, Clone, Copy)]
pub struct RangeArg(ByteRange);

impl FromStr for RangeArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not START-END (decimal, inclusive)");
        let (start, end) = s.split_once('-').ok_or_else(bad)?;
        let start = start.parse().map_err(|_| bad())?;
        let end = end.parse().map_err(|_| bad())?;
        Ok(RangeArg(ByteRange { start, end }))
    }
}

pub fn run(args: GetArgs) -> ExitCode {
    let store = match args.storage.open_store() {
        Ok(store) => store,
        Err(e) => return e.report("get"),
    };
    match get(&store, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(StoreError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("layerstore get: {e}");
            ExitCode::FAILURE
        }
    }
}

fn get(store: &Store, args: &GetArgs) -> Result<(), StoreError> {
    let (_, body) = store.open_blob(args.repo.as_ref(), &args.digest)?;
    let mut out = io::stdout().lock();
    body.write_to(args.range.map(|r| r.0), &mut out)?;
    out.flush().map_err(StoreError::Output)
}
