//! Command-line front end: one file per subcommand, each a thin layer over the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod crash_worker;
mod digest;
mod fsck;
mod gc;
mod get;
mod heap;
mod login;
mod output;
mod progress;
mod purge;
mod put;
mod registry_args;
mod serve;
mod serve_auth;
mod serve_gc;
mod serve_observe;
mod serve_tls;
mod storage_args;
mod tarsum;
mod transfer;

/// layerstore: a content-addressable blob store for container registries.
#[derive(Debug, Parser)]
#[command(name = "layerstore", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// The command line is parsed once; the size of `serve`'s many options does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    Serve(serve::ServeArgs),
    Digest(digest::DigestArgs),
    Put(put::PutArgs),
    Get(get::GetArgs),
    Fsck(fsck::FsckArgs),
    PurgeUploads(purge::PurgeArgs),
    Gc(gc::GcArgs),
    #[command(hide = true)]
    CrashWorker(crash_worker::CrashWorkerArgs),
    Tarsum(tarsum::TarsumArgs),
    Bench(bench::BenchArgs),
    Push(transfer::PushArgs),
    Pull(transfer::PullArgs),
    Copy(transfer::CopyArgs),
    Login(login::LoginArgs),
}

/// Parses the command line and runs the chosen subcommand.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Digest(args) => digest::run(args),
        Command::Put(args) => put::run(args),
        Command::Get(args) => get::run(args),
        Command::Fsck(args) => fsck::run(args),
        Command::PurgeUploads(args) => purge::run(args),
        Command::Gc(args) => gc::run(args),
        Command::CrashWorker(args) => crash_worker::run(args),
        Command::Tarsum(args) => tarsum::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Push(args) => transfer::push(args),
        Command::Pull(args) => transfer::pull(args),
        Command::Copy(args) => transfer::copy(args),
        Command::Login(args) => login::run(args),
    }
}
