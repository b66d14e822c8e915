//! Command-line front end: one file per subcommand, each a thin layer over the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod digest;
mod serve;

/// layerstore: a content-addressable blob store for container registries.
#[derive(Debug, Parser)]
#[command(name = "layerstore", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Serve(serve::ServeArgs),
    Digest(digest::DigestArgs),
}

/// Parses the command line and runs the chosen subcommand.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Digest(args) => digest::run(args),
    }
}
