//! `layerstore purge-uploads`: delete upload sessions older than a given age.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Args;

use super::output::outln;
use super::storage_args::StorageArgs;

/// Delete upload sessions older than DURATION.
///
/// Follows distribution's rule: only UUID-named sessions with a readable `startedat` are
/// considered. Temporary files older than DURATION left by a process killed while writing are
/// deleted too: files under ROOT/.layerstore-tmp in a directory, unfinished multipart uploads
/// that belong to no session in a bucket.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    #[command(flatten)]
    storage: StorageArgs,
    /// Age limit, e.g. `168h`, `30m`, `7d`, `1h30m`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    older_than: Duration,
    /// Only list what would be deleted.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(args: PurgeArgs) -> ExitCode {
    let store = match args.storage.open_store() {
        Ok(store) => store,
        Err(e) => return e.report("purge-uploads"),
    };
    match store.purge_uploads(args.older_than, SystemTime::now(), args.dry_run) {
        Ok(report) => {
            for dir in &report.deleted {
                outln!(
                    "{}{dir}",
                    if args.dry_run {
                        "would delete "
                    } else {
                        "deleted "
                    }
                );
            }
            for dir in &report.unreadable {
                eprintln!("layerstore purge-uploads: {dir}: no readable startedat, kept");
            }
            if report.temp_files_removed > 0 {
                outln!(
                    "deleted {} stale temporary file(s)",
                    report.temp_files_removed
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("layerstore purge-uploads: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Parses `<n><unit>` groups (`s`, `m`, `h`, `d`), e.g. `168h` or `1d12h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration like 168h, 30m, 7d or 1h30m");
    let mut total: u64 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        let unit = rest[digits..].chars().next().ok_or_else(bad)?;
        let secs = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(secs)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(bad)?;
        rest = &rest[digits + unit.len_utf8()..];
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("168h"), Ok(Duration::from_secs(168 * 3600)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        for bad in [
            "",
            "h",
            "10",
            "10x",
            "-1h",
            "1.5h",
            "99999999999999999999h",
            "10h5",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
