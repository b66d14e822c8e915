//! `layerstore bench`: measure a registry's blob throughput and latency (see `layerstore::bench`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::output::{out, outln};
use layerstore::bench::{self, BenchOptions, Scenario, ServerTrust};

/// Measure any OCI registry's blob push/pull throughput and latency, verifying every answer.
///
/// Pushes a large blob monolithically and in chunks, pulls it (SHA-256 checked), runs random
/// range GETs over many connections (bytes checked), concurrent small pushes, and times the
/// status + next PATCH of an upload holding nearly the large blob's size. Content is
/// random per run, under a random `bench-SEED/` repository prefix. Exit status 1 if any answer
/// was wrong.
///
/// With several `--url`s (instances sharing one store and one secret, as behind a load
/// balancer), requests go to each in turn, so every step of an upload may reach another
/// instance.
///
/// An https URL needs --cacert FILE (the CA that signed the server's certificate, trusted
/// beside the system's) or --insecure. Over https the client speaks HTTP/1.1.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Registry base URL (http:// or https://); repeat to rotate requests among instances.
    #[arg(long, value_name = "URL", required = true)]
    url: Vec<String>,
    /// For https URLs: trust the CA certificates in this PEM file (and the system's).
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    cacert: Option<PathBuf>,
    /// For https URLs: accept any certificate, unverified (test setups only).
    #[arg(long)]
    insecure: bool,
    /// Scenarios to run (comma-separated) [default: all].
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST")]
    only: Vec<ScenarioArg>,
    /// Size of the large blob (bytes; suffixes K, M, G are powers of 1024).
    #[arg(long, value_parser = parse_size, default_value = "1G", value_name = "SIZE")]
    blob_size: u64,
    /// PATCH size of the chunked push.
    #[arg(long, value_parser = parse_size, default_value = "16M", value_name = "SIZE")]
    chunk_size: u64,
    /// Size of each range GET.
    #[arg(long, value_parser = parse_size, default_value = "4K", value_name = "SIZE")]
    range_size: u64,
    /// Connections for range GETs (each to every --url).
    #[arg(long, default_value_t = 32, value_name = "N")]
    connections: usize,
    /// Seconds of range GETs.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    range_seconds: f64,
    /// Size of each small blob.
    #[arg(long, value_parser = parse_size, default_value = "64K", value_name = "SIZE")]
    small_size: u64,
    /// Concurrent small-push workers.
    #[arg(long, default_value_t = 8, value_name = "N")]
    workers: usize,
    /// Seconds of small pushes.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    small_seconds: f64,
    /// The server's process id: report its CPU seconds per GiB and peak RSS (Linux; with
    /// several --url, of that one instance only).
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// Content seed in hex (default: random; reusing one re-pushes existing blobs).
    #[arg(long, value_parser = parse_hex, value_name = "HEX")]
    seed: Option<u64>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Scenario names on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScenarioArg {
    PushMonolithic,
    PushChunked,
    Pull,
    RangeGet,
    SmallPush,
    PushResume,
}

impl From<ScenarioArg> for Scenario {
    fn from(arg: ScenarioArg) -> Self {
        match arg {
            ScenarioArg::PushMonolithic => Scenario::PushMonolithic,
            ScenarioArg::PushChunked => Scenario::PushChunked,
            ScenarioArg::Pull => Scenario::Pull,
            ScenarioArg::RangeGet => Scenario::RangeGet,
            ScenarioArg::SmallPush => Scenario::SmallPush,
            ScenarioArg::PushResume => Scenario::PushResume,
        }
    }
}

pub fn run(args: BenchArgs) -> ExitCode {
    let json = args.json;
    let options = match options(args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("layerstore bench: {message}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("layerstore bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench::run(options)) {
        Ok(report) => {
            if json {
                outln!("{}", report.to_json());
            } else {
                out!("{}", report.to_table());
            }
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("layerstore bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn options(args: BenchArgs) -> Result<BenchOptions, String> {
    let mut options = BenchOptions {
        urls: args.url,
        ..BenchOptions::new("")
    };
    if !args.only.is_empty() {
        options.scenarios = args.only.into_iter().map(Scenario::from).collect();
    }
    options.blob_size = args.blob_size;
    options.chunk_size = args.chunk_size;
    options.range_size = args.range_size;
    options.range_connections = args.connections;
    options.range_duration = seconds(args.range_seconds, "--range-seconds")?;
    options.small_size = args.small_size;
    options.small_workers = args.workers;
    options.small_duration = seconds(args.small_seconds, "--small-seconds")?;
    options.server_pid = args.server_pid;
    options.seed = args.seed;
    options.trust = match (args.cacert, args.insecure) {
        (Some(ca), _) => Some(ServerTrust::CaFile(ca)),
        (None, true) => Some(ServerTrust::AnyCertificate),
        (None, false) => None,
    };
    options.progress = !args.json && std::io::stderr().is_terminal();
    Ok(options)
}

fn seconds(value: f64, option: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value).map_err(|_| format!("{option}: {value} is not a duration"))
}

/// `123`, `4K`, `16M`, `1G` (powers of 1024; a trailing `iB`/`B` is accepted).
pub(super) fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim_end_matches("iB").trim_end_matches('B');
    let (digits, shift) = match trimmed.char_indices().last() {
        Some((i, 'K' | 'k')) => (&trimmed[..i], 10),
        Some((i, 'M' | 'm')) => (&trimmed[..i], 20),
        Some((i, 'G' | 'g')) => (&trimmed[..i], 30),
        _ => (trimmed, 0),
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 4096, 64K, 16M, 1G)"))?;
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

fn parse_hex(text: &str) -> Result<u64, String> {
    u64::from_str_radix(text.trim_start_matches("0x"), 16)
        .map_err(|_| format!("{text:?} is not a hex number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("G").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999G").is_err());
    }
}
