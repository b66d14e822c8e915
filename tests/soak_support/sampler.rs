//! The server's memory and file descriptors over time: a thread reads `/proc/PID/status`
//! (VmRSS, VmHWM, RssAnon) and counts `/proc/PID/fd` of the running server every few seconds,
//! keeps the samples and appends them to a CSV as it goes (so that a run cut short still
//! plots); then [`flatness`] says whether they trend up.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Shared, Stats};

/// One sample of the running server.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Seconds since the soak started.
    pub time: f64,
    pub pid: u32,
    /// Which server lifetime (one per start).
    pub lifetime: u64,
    /// Seconds since this server started.
    pub uptime: f64,
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub anon_kib: u64,
    pub fds: u64,
    pub requests_ok: u64,
    pub errors: u64,
    pub kills: u64,
}

pub const CSV_HEADER: &str =
    "time_s,pid,lifetime,uptime_s,rss_kib,hwm_kib,anon_kib,fds,requests_ok,errors,kills";

impl Sample {
    fn csv(&self) -> String {
        format!(
            "{:.1},{},{},{:.1},{},{},{},{},{},{},{}",
            self.time,
            self.pid,
            self.lifetime,
            self.uptime,
            self.rss_kib,
            self.hwm_kib,
            self.anon_kib,
            self.fds,
            self.requests_ok,
            self.errors,
            self.kills
        )
    }
}

pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Sample>>,
}

impl Sampler {
    pub fn start(shared: Arc<Shared>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || sample(&shared, &flag));
        Sampler { stop, thread }
    }

    pub fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

fn sample(shared: &Shared, stop: &AtomicBool) -> Vec<Sample> {
    let mut csv = shared.settings.csv.as_deref().map(create_csv);
    let mut samples = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let Some(sample) = take(shared) {
            if let Some(file) = &mut csv {
                writeln!(file, "{}", sample.csv()).expect("writing the CSV");
                file.flush().expect("writing the CSV");
            }
            samples.push(sample);
        }
        std::thread::sleep(shared.settings.sample_every);
    }
    samples
}

fn create_csv(path: &Path) -> std::fs::File {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("the CSV's directory");
    }
    let mut file = std::fs::File::create(path).expect("creating the CSV");
    writeln!(file, "{CSV_HEADER}").expect("writing the CSV");
    file
}

/// A sample of the server running now, if one runs and can be read.
fn take(shared: &Shared) -> Option<Sample> {
    let (pid, lifetime, started) = shared.slot.process()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find_map(|l| l.strip_prefix(name))?;
        line.split_whitespace().next()?.parse().ok()
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    let stats = &shared.stats;
    Some(Sample {
        time: shared.started.elapsed().as_secs_f64(),
        pid,
        lifetime,
        uptime: started.elapsed().as_secs_f64(),
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
        anon_kib: field("RssAnon:")?,
        fds,
        requests_ok: Stats::get(&stats.requests_ok),
        errors: Stats::get(&stats.errors),
        kills: Stats::get(&stats.kills),
    })
}

/// The flatness criterion, over the samples taken after each server's warm-up. Memory is
/// VmRSS (what the issue names; it includes the page cache of files the server maps, which
/// grows with what it serves) and RssAnon (heap and stacks: what a leak grows).
///
/// - Within each lifetime with at least 9 such samples: the median RssAnon of its last third
///   is at most 1.5 times that of its first third plus [`SLACK_KIB`] (a heap of a few MiB
///   still grows its allocator arenas after warm-up). A leak of 1 KiB a request breaks it
///   within a minute at the soak's rate.
/// - Across the run (a kill resets a leak, so what can trend is memory that grows with what
///   is stored): the per-lifetime medians of VmRSS, RssAnon and fds, in the last quarter of
///   the lifetimes, are at most 1.5 times those of the first quarter plus the slack
///   ([`SLACK_KIB`], 8 fds plus the store's open blob files).
/// - The fd count never exceeds [`MAX_FDS`].
///
/// Returns the figures, and what broke the criterion.
pub fn flatness(samples: &[Sample], warmup: Duration) -> (String, Vec<String>) {
    let warm: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.uptime >= warmup.as_secs_f64())
        .collect();
    let mut lifetimes: Vec<Vec<&Sample>> = Vec::new();
    for sample in &warm {
        match lifetimes.last_mut() {
            Some(last) if last[0].lifetime == sample.lifetime => last.push(sample),
            _ => lifetimes.push(vec![sample]),
        }
    }
    let mut broken = Vec::new();
    if lifetimes.len() < 4 {
        broken.push(format!(
            "only {} lifetimes with samples after warm-up",
            lifetimes.len()
        ));
        return (String::new(), broken);
    }
    for lifetime in &lifetimes {
        broken.extend(lifetime_flat(lifetime));
    }
    let quarter = (lifetimes.len() / 4).max(1);
    let (first, last) = (
        &lifetimes[..quarter],
        &lifetimes[lifetimes.len() - quarter..],
    );
    let measures: [Measure; 3] = [
        ("VmRSS KiB", |s| s.rss_kib, SLACK_KIB),
        ("RssAnon KiB", |s| s.anon_kib, SLACK_KIB),
        // The cache of open blob files fills as more blobs are read: room for it.
        (
            "fds",
            |s| s.fds,
            8 + layerstore::store::OPEN_BLOB_FILES as u64,
        ),
    ];
    let mut trends = Vec::new();
    for (name, value, slack) in measures {
        let typical = |group: &[Vec<&Sample>]| {
            median(group.iter().map(|l| median(l.iter().map(|s| value(s)))))
        };
        let (before, after) = (typical(first), typical(last));
        trends.push(format!("{name} {before} -> {after}"));
        if after * 2 > before * 3 + slack * 2 {
            broken.push(format!(
                "{name} grew across the run: median per lifetime {before} in the first quarter \
                 of the lifetimes, {after} in the last"
            ));
        }
    }
    let max_fds = warm.iter().map(|s| s.fds).max().unwrap_or(0);
    if max_fds > MAX_FDS {
        broken.push(format!("{max_fds} fds open at once (bound {MAX_FDS})"));
    }
    let range = |f: fn(&Sample) -> u64| {
        let values = samples.iter().map(f);
        (values.clone().min().unwrap_or(0), values.max().unwrap_or(0))
    };
    let figures = format!(
        "{} samples ({} after warm-up) over {} lifetimes; VmRSS {:?} KiB, VmHWM max {} KiB, \
         RssAnon {:?} KiB, fds {:?}; typical per lifetime, first quarter -> last quarter: {}",
        samples.len(),
        warm.len(),
        lifetimes.len(),
        range(|s| s.rss_kib),
        range(|s| s.hwm_kib).1,
        range(|s| s.anon_kib),
        range(|s| s.fds),
        trends.join(", "),
    );
    (figures, broken)
}

/// A measure of the samples: its name, how it is read, and the growth it may show on top of
/// the 1.5 factor.
type Measure = (&'static str, fn(&Sample) -> u64, u64);

/// Open file descriptors a server may have at once: the soak keeps fewer than 20 connections
/// to it, and the store keeps up to `OPEN_BLOB_FILES` blob files open, so more would be a leak.
pub const MAX_FDS: u64 = 64 + layerstore::store::OPEN_BLOB_FILES as u64;

/// Memory growth allowed on top of the 1.5 factor.
pub const SLACK_KIB: u64 = 8 << 10;

fn lifetime_flat(samples: &[&Sample]) -> Option<String> {
    if samples.len() < 9 {
        return None;
    }
    let third = samples.len() / 3;
    let anon = |s: &[&Sample]| median(s.iter().map(|s| s.anon_kib));
    let (first, last) = (
        anon(&samples[..third]),
        anon(&samples[samples.len() - third..]),
    );
    (last * 2 > first * 3 + SLACK_KIB * 2).then(|| {
        format!(
            "RssAnon grew within lifetime {}: median {first} KiB in its first third, {last} KiB \
             in its last",
            samples[0].lifetime
        )
    })
}

fn median(values: impl Iterator<Item = u64>) -> u64 {
    let mut values: Vec<u64> = values.collect();
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}
