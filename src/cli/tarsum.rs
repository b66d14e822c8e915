//! `layerstore tarsum`: print the Docker TarSum of a tar or tar.gz archive.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use layerstore::digest::{Digest, HashAlgorithm, TarsumVersion};
use layerstore::filehash::{self, FileRead};
use layerstore::tarsum::{TarSum, TarSumStream, TarsumError};

use super::digest::AlgorithmArg;

/// Print `LABEL+HASH:HEX  NAME`, the legacy Docker TarSum of a tar archive.
///
/// Plain and gzip-compressed archives are both accepted (detected from the first bytes).
/// The input is streamed with flat memory. An archive Docker's reference implementation
/// rejects is reported on stderr with a non-zero exit status.
#[derive(Debug, Args)]
pub struct TarsumArgs {
    /// TarSum version (`v0` prints the label `tarsum`).
    #[arg(long = "version", value_enum, default_value_t = VersionArg::V1)]
    tarsum_version: VersionArg,
    /// Hash for the per-file and final sums.
    #[arg(long, value_enum, default_value_t = AlgorithmArg::Sha256)]
    hash: AlgorithmArg,
    /// Hash uname and gname with their values, as Docker did before March 2018.
    #[arg(long)]
    legacy_owner_names: bool,
    /// File whose bytes are hashed before the per-file sums (Docker v1: the image JSON).
    #[arg(long, value_name = "FILE")]
    extra: Option<PathBuf>,
    /// The archive; `-` for standard input.
    #[arg(value_name = "FILE")]
    input: PathBuf,
}

/// The TarSum versions a CLI user can pick.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VersionArg {
    /// `tarsum`: with mtime, without xattrs.
    V0,
    /// `tarsum.v1`: without mtime, with xattrs.
    V1,
    /// `tarsum.dev`: same digest as v1.
    Dev,
}

impl From<VersionArg> for TarsumVersion {
    fn from(arg: VersionArg) -> Self {
        match arg {
            VersionArg::V0 => TarsumVersion::V0,
            VersionArg::V1 => TarsumVersion::V1,
            VersionArg::Dev => TarsumVersion::Dev,
        }
    }
}

/// Why the sum could not be computed.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Archive(#[from] TarsumError),
    #[error("--extra {path}: {source}")]
    Extra { path: String, source: io::Error },
}

pub fn run(args: TarsumArgs) -> ExitCode {
    let name = args.input.display().to_string();
    match compute(&args) {
        Ok(digest) => {
            if writeln!(io::stdout().lock(), "{digest}  {name}").is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("layerstore tarsum: {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn compute(args: &TarsumArgs) -> Result<Digest, CliError> {
    let mut tarsum = TarSum::new(args.tarsum_version.into(), HashAlgorithm::from(args.hash));
    if args.legacy_owner_names {
        tarsum = tarsum.with_legacy_owner_names();
    }
    if let Some(path) = &args.extra {
        let extra = std::fs::read(path).map_err(|source| CliError::Extra {
            path: path.display().to_string(),
            source,
        })?;
        tarsum = tarsum.with_extra(extra);
    }
    let mut stream = TarSumStream::new(tarsum);
    if args.input.as_os_str() == "-" {
        feed(&mut io::stdin().lock(), &mut stream)?;
    } else {
        feed_file(&File::open(&args.input)?, &mut stream)?;
    }
    Ok(stream.finish()?)
}

/// Feeds a regular file the way `filehash` reads files; stops early once the tar end marker was
/// seen (nothing after it can change the sum).
fn feed_file(file: &File, stream: &mut TarSumStream) -> Result<(), CliError> {
    filehash::for_each_chunk(file, FileRead::DEFAULT, |chunk| {
        stream.update(chunk)?;
        Ok::<_, CliError>(!stream.tarsum().is_done())
    })
}

/// Streams `reader` into `stream`; stops early once the tar end marker was seen.
fn feed(reader: &mut dyn Read, stream: &mut TarSumStream) -> Result<(), CliError> {
    filehash::for_each_read(reader, |chunk| {
        stream.update(chunk)?;
        Ok::<_, CliError>(!stream.tarsum().is_done())
    })
}
