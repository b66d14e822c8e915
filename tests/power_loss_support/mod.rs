//! The power-loss explorer: run one store operation over a recording filesystem, then rebuild
//! the disk as a power cut at every point of its trace could leave it (strictly, and in seeded
//! reorderings), and check each state as a restarted server would find it.

pub mod fixture;
pub mod scenarios;

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use layerstore::storage::vfs_crash::{Reorder, Trace};
use layerstore::storage::vfs_record::RecordingFs;
use layerstore::storage::{http_secret, FilesystemDriver};
use layerstore::store::Store;

/// One store operation to cut: what exists before it, the operation, and what must hold after
/// a cut (`returned`: the operation had returned, so everything it did was acknowledged).
pub trait Operation {
    /// Builds the items the store holds before the operation.
    fn setup(&mut self, store: &Store);
    /// The traced operation.
    fn run(&mut self, store: &Store);
    /// Checks a crash state, reopened as a restarted server would.
    fn check(&self, store: &Store, returned: bool) -> Result<(), String>;
}

/// What exploring one operation found.
#[derive(Debug, Default)]
pub struct Explored {
    /// Mutations in the operation's trace.
    pub mutations: usize,
    /// Crash states built and checked.
    pub states: usize,
    /// Failed states: a description each.
    pub failures: Vec<String>,
    /// The trace, one mutation a line (for failure messages).
    pub trace: String,
}

/// How many reorderings to sample per cut point, and which kind.
#[derive(Debug, Clone, Copy)]
pub struct Sampling {
    /// Reorderings per cut point (beside the strict state).
    pub samples: u64,
    /// The run's seed; each state's is derived from it.
    pub seed: u64,
    /// Sample [`Reorder::Weak`] (writes land out of order or as zeros) instead of
    /// [`Reorder::Sample`].
    pub weak: bool,
}

/// A temporary directory in memory when the machine has one: the checks fsync a lot, and a
/// crash state needs no disk.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    match shm.is_dir() {
        true => tempfile::tempdir_in(shm).unwrap_or_else(|_| tempfile::tempdir().unwrap()),
        false => tempfile::tempdir().unwrap(),
    }
}

/// Runs `op` over a recording filesystem and checks every cut point: the strict state and
/// the sampled reorderings.
pub fn explore(op: &mut dyn Operation, sampling: Sampling) -> Explored {
    let work = scratch_dir();
    let (root, baseline) = (work.path().join("root"), work.path().join("baseline"));
    let recorder = RecordingFs::new(&root);
    let driver = FilesystemDriver::with_vfs(&root, Arc::new(recorder.clone()));
    let store = Store::new(Arc::new(driver));
    op.setup(&store);
    recorder.begin(&baseline).unwrap();
    op.run(&store);
    let trace = recorder.finish(&baseline);
    let mut explored = Explored {
        mutations: trace.len(),
        trace: trace.describe(),
        ..Explored::default()
    };
    for cut in 0..=trace.len() {
        let reorders = std::iter::once(Reorder::Strict).chain((0..sampling.samples).map(|n| {
            let seed = mix(sampling.seed, cut as u64, n);
            match sampling.weak {
                true => Reorder::Weak(seed),
                false => Reorder::Sample(seed),
            }
        }));
        for reorder in reorders {
            explored.states += 1;
            if let Err(failure) = check_state(op, &trace, cut, reorder) {
                explored.failures.push(failure);
            }
        }
    }
    explored
}

/// Builds one crash state and checks it; the error describes the state and what failed.
fn check_state(
    op: &dyn Operation,
    trace: &Trace,
    cut: usize,
    reorder: Reorder,
) -> Result<(), String> {
    let dir = scratch_dir();
    let dropped = trace.materialize(cut, reorder, dir.path()).unwrap();
    let returned = cut == trace.len();
    check_reopened(op, dir.path(), returned).map_err(|why| {
        format!(
            "cut {cut}/{} ({reorder:?}, dropped mutations {dropped:?}): {why}",
            trace.len()
        )
    })
}

/// What every state must satisfy, then the operation's own checks. The store is opened as after
/// the reboot that follows a power cut: every file of the state was written before the boot.
fn check_reopened(op: &dyn Operation, root: &Path, returned: bool) -> Result<(), String> {
    let driver = FilesystemDriver::new(root).with_boot_time(SystemTime::now());
    let store = Store::new(Arc::new(driver));
    // fsck first, on the state as the cut left it (the checks below write to it).
    let report = store
        .fsck(&|_| {})
        .map_err(|e| format!("fsck failed: {e}"))?;
    if !report.is_clean() {
        let problems: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        return Err(format!("fsck: {}", problems.join("; ")));
    }
    op.check(&store, returned)?;
    // What a restarted server does first: find (or make) its upload secret.
    http_secret(None, &**store.driver()).map_err(|e| format!("secret: {e}"))?;
    Ok(())
}

/// A seed per state, so one state can be rebuilt from the run's seed, its cut and sample.
fn mix(seed: u64, cut: u64, sample: u64) -> u64 {
    seed ^ cut.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ sample.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
}
