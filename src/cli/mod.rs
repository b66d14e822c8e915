//! Command-line front end: one file per subcommand, each a thin layer over the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod digest;
mod tarsum;

/// layerstore: a content-addressable blob store for container registries.
#[derive(Debug, Parser)]
#[command(name = "layerstore", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Digest(digest::DigestArgs),
    Tarsum(tarsum::TarsumArgs),
}

/// Parses the command line and runs the chosen subcommand.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Digest(args) => digest::run(args),
        Command::Tarsum(args) => tarsum::run(args),
    }
}
