//! `layerstore digest`: print the digest of files or standard input.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use layerstore::digest::{Digest, HashAlgorithm};
use layerstore::filehash;
use layerstore::hash::Hasher;

/// Print `ALGORITHM:HEX  NAME` for each input, like sha256sum with a digest prefix.
///
/// Files are read 1 MiB at a time (flat memory); `-` reads standard input.
/// A file that cannot be read is reported on stderr and the other inputs are still hashed;
/// the exit status is then 1.
#[derive(Debug, Args)]
pub struct DigestArgs {
    /// Hash algorithm.
    #[arg(long, short, value_enum, default_value_t = AlgorithmArg::Sha256)]
    algorithm: AlgorithmArg,
    /// Files to hash; `-` for standard input.
    #[arg(required = true, value_name = "FILE")]
    inputs: Vec<PathBuf>,
}

/// The hash algorithms a CLI user can pick.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AlgorithmArg {
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl From<AlgorithmArg> for HashAlgorithm {
    fn from(arg: AlgorithmArg) -> Self {
        match arg {
            AlgorithmArg::Sha256 => HashAlgorithm::Sha256,
            AlgorithmArg::Sha512 => HashAlgorithm::Sha512,
        }
    }
}

pub fn run(args: DigestArgs) -> ExitCode {
    let algorithm = HashAlgorithm::from(args.algorithm);
    let mut stdout = io::stdout().lock();
    let mut failed = false;
    for input in &args.inputs {
        let name = input.display();
        match digest_input(input, algorithm) {
            Ok(digest) => {
                if writeln!(stdout, "{digest}  {name}").is_err() {
                    return ExitCode::FAILURE; // stdout closed: nothing more to say
                }
            }
            Err(e) => {
                eprintln!("layerstore digest: {name}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn digest_input(input: &Path, algorithm: HashAlgorithm) -> io::Result<Digest> {
    if input.as_os_str() == "-" {
        let mut hasher = Hasher::new(algorithm);
        filehash::hash_reader(&mut io::stdin().lock(), &mut hasher)?;
        Ok(hasher.digest())
    } else {
        filehash::digest_file(input, algorithm)
    }
}
