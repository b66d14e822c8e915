//! The server's resource use, read from `/proc/PID/stat` and `/proc/PID/status` (Linux), so
//! a result can say what it cost the server: CPU seconds per GiB moved and peak RSS.
//!
//! CPU time is `utime + stime` in clock ticks; Linux exports these in `USER_HZ`, which is
//! 100 on every architecture it supports (the kernel converts to this fixed ABI value), so
//! no `sysconf` call (and no `libc` dependency) is needed. Peak RSS is `VmHWM`; before each
//! scenario the client writes `5` to `/proc/PID/clear_refs` to reset it (allowed for the
//! user's own processes); if that fails the peak is since the server's start, and the report
//! says so.

use std::time::Duration;

use serde::Serialize;

use super::error::BenchError;

/// Linux's fixed `USER_HZ`.
const TICKS_PER_SECOND: u64 = 100;

/// A reading of the server's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessSample {
    /// User + system CPU time, in clock ticks.
    pub cpu_ticks: u64,
}

/// What one scenario cost the server.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ServerUsage {
    /// CPU seconds (user + system) spent during the scenario.
    pub cpu_seconds: f64,
    /// CPU seconds per GiB moved (request plus response bodies).
    pub cpu_seconds_per_gib: Option<f64>,
    /// Peak resident set size, in bytes.
    pub peak_rss_bytes: u64,
    /// Whether the peak was reset at the scenario's start (else it is since process start).
    pub peak_reset: bool,
}

/// A server process being watched.
#[derive(Debug, Clone, Copy)]
pub struct ServerProcess {
    pid: u32,
}

impl ServerProcess {
    /// Watches `pid`, failing now if its counters cannot be read.
    pub fn new(pid: u32) -> Result<Self, BenchError> {
        let process = ServerProcess { pid };
        process.sample()?;
        Ok(process)
    }

    /// Resets the peak RSS; returns whether the kernel accepted it.
    pub fn reset_peak(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5").is_ok()
    }

    /// Reads the CPU counters.
    pub fn sample(&self) -> Result<ProcessSample, BenchError> {
        let text = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .map_err(|e| self.error("stat", e.to_string()))?;
        let cpu_ticks = parse_stat_cpu_ticks(&text)
            .ok_or_else(|| self.error("stat", "no utime/stime fields".to_owned()))?;
        Ok(ProcessSample { cpu_ticks })
    }

    /// Peak RSS in bytes (`VmHWM`).
    pub fn peak_rss(&self) -> Result<u64, BenchError> {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .map_err(|e| self.error("status", e.to_string()))?;
        parse_status_kib(&text, "VmHWM:")
            .map(|kib| kib.saturating_mul(1024))
            .ok_or_else(|| self.error("status", "no VmHWM line".to_owned()))
    }

    /// Usage between `before` and now, for `bytes` moved.
    pub fn usage_since(
        &self,
        before: ProcessSample,
        bytes: u64,
        peak_reset: bool,
    ) -> Result<ServerUsage, BenchError> {
        let after = self.sample()?;
        let ticks = after.cpu_ticks.saturating_sub(before.cpu_ticks);
        let cpu =
            Duration::from_millis(ticks.saturating_mul(1000) / TICKS_PER_SECOND).as_secs_f64();
        let gib = bytes as f64 / (1u64 << 30) as f64;
        Ok(ServerUsage {
            cpu_seconds: cpu,
            cpu_seconds_per_gib: (bytes > 0).then(|| cpu / gib),
            peak_rss_bytes: self.peak_rss()?,
            peak_reset,
        })
    }

    fn error(&self, file: &'static str, reason: String) -> BenchError {
        BenchError::Process {
            pid: self.pid,
            file,
            reason,
        }
    }
}

/// `utime + stime` (fields 14 and 15) of a `/proc/PID/stat` line. The command name (field 2)
/// may contain spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11); // field 3 is the first here
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// The number of a `KEY:   N kB` line of `/proc/PID/status`.
pub fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_hostile_name() {
        let stat = "1234 (a) b (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 1 0";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(287));
        assert_eq!(parse_stat_cpu_ticks("1 (x) S 1 2"), None);
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn status_peak() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    5120 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(5120));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn own_process_is_readable_and_burns_cpu() {
        let me = ServerProcess::new(std::process::id()).unwrap();
        let before = me.sample().unwrap();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let usage = me.usage_since(before, 1 << 30, false).unwrap();
        assert!(usage.cpu_seconds > 0.0, "{usage:?}");
        assert_eq!(usage.cpu_seconds_per_gib, Some(usage.cpu_seconds));
        assert!(usage.peak_rss_bytes > 1024 * 1024);
        assert!(ServerProcess::new(u32::MAX).is_err());
    }
}
