//! The victim: `layerstore gc` as a child process, SIGKILLed at an instant or as soon as the
//! test sees it reach a phase, and the checks every kill is followed by.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use layerstore::storage::{DriverPath, StorageError};
use layerstore::store::Store;

use super::state::{
    claims, deleted, listing, phase, settled_listing, Claims, Listing, Phase, CLAIMS_DIR,
};
use super::{check_live, Fixture};

/// The collection every test runs: nothing else writes, so no grace, and untagged manifests
/// go too (every phase has work).
pub const GC: [&str; 6] = [
    "gc",
    "--offline",
    "--grace",
    "0s",
    "--delete-untagged",
    "--json",
];

/// `layerstore ARGS... STORAGE...` with no storage inherited from the environment.
pub fn layerstore(args: &[&str], storage: &[String], env: &[(String, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_layerstore"));
    command
        .env_remove("LAYERSTORE_STORAGE")
        .env_remove("LAYERSTORE_ROOT")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .args(storage)
        .stdin(Stdio::null());
    command
}

pub fn show(output: &Output) -> String {
    format!(
        "{}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs the collection (`GC` and `extra`) to the end; returns its report.
pub fn collect_to_end(
    storage: &[String],
    extra: &[&str],
    env: &[(String, String)],
) -> serde_json::Value {
    let output = layerstore(&GC, storage, env).args(extra).output().unwrap();
    assert!(output.status.success(), "gc failed: {}", show(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `layerstore fsck` must exit 0.
pub fn fsck_clean(storage: &[String], env: &[(String, String)], when: &str) {
    fsck_clean_within(storage, env, when, 1);
}

/// `layerstore fsck` must exit 0 within `tries` runs a second apart: after a kill, an object
/// store may still apply a delete the killed process had started (one fsck run listed a blob
/// that its read then did not find), and a problem that is real stays.
fn fsck_clean_within(storage: &[String], env: &[(String, String)], when: &str, tries: u32) {
    for attempt in 1..=tries {
        let output = layerstore(&["fsck"], storage, env).output().unwrap();
        if output.status.success() {
            return;
        }
        assert!(
            attempt < tries,
            "GC BUG: fsck is dirty {when}: {}",
            show(&output)
        );
        eprintln!(
            "fsck {when} failed, once more in a second: {}",
            show(&output)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// When to SIGKILL a run.
pub enum When<'a> {
    /// This long after its start.
    After(Duration),
    /// This long after the test sees it reach a point (polled every half millisecond).
    Reached(&'a dyn Fn() -> bool, Duration),
}

/// Starts the collection (`GC` and `extra`) and SIGKILLs it as `when` says. Returns how long
/// after its start the kill was sent, or how long it ran if it exited first (with its status).
fn kill_run(
    storage: &[String],
    extra: &[&str],
    env: &[(String, String)],
    when: &When<'_>,
) -> Result<Duration, (ExitStatus, Duration)> {
    let mut child = layerstore(&GC, storage, env)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut exited = || child.try_wait().unwrap().map(|s| (s, started.elapsed()));
    let deadline = match when {
        When::After(delay) => started + *delay,
        When::Reached(reached, delay) => loop {
            if reached() {
                break Instant::now() + *delay;
            }
            if let Some(exit) = exited() {
                return Err(exit);
            }
            std::thread::sleep(Duration::from_micros(500));
        },
    };
    while Instant::now() < deadline {
        if let Some(exit) = exited() {
            return Err(exit);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(left.min(Duration::from_micros(500)));
    }
    if let Some(exit) = exited() {
        return Err(exit);
    }
    let at = started.elapsed();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    Ok(at)
}

/// What one kill found: when, and the store before and after it.
#[derive(Debug)]
pub struct Kill {
    /// How long after the start the kill was sent, or the run exited first.
    pub at: Duration,
    /// False when the run exited before the kill.
    pub killed: bool,
    pub before: Listing,
    pub now: Listing,
    pub claims_before: Claims,
    pub claims_now: Claims,
}

impl Kill {
    /// The phase the kill landed in, given `plan`, what a whole run deletes.
    pub fn phase(&self, plan: &BTreeSet<String>) -> Phase {
        if !self.killed {
            return Phase::Done;
        }
        phase(
            &self.before,
            plan,
            &self.now,
            &self.claims_before,
            &self.claims_now,
        )
    }
}

/// Kills runs on one store and checks it after each: fsck, live manifests, nothing written
/// into the registry's tree, nothing deleted that a whole run keeps.
pub struct Victim<'a> {
    /// A fresh store each time (nothing cached from before a kill).
    pub store: &'a dyn Fn() -> Store,
    pub storage: &'a [String],
    /// Arguments of the collection beyond `GC`.
    pub extra: &'a [&'a str],
    pub env: &'a [(String, String)],
    /// The store before any run, and what a whole run deletes from it.
    pub base: &'a Listing,
    pub plan: &'a BTreeSet<String>,
    pub fixture: &'a Fixture,
    /// An object store: wait for it to stop changing after a kill, and give fsck three tries.
    pub settle: bool,
}

impl Victim<'_> {
    pub fn kill(&self, when: &When<'_>) -> Kill {
        let store = (self.store)();
        let (before, claims_before) = (listing(&store), claims(&store));
        let (at, killed) = match kill_run(self.storage, self.extra, self.env, when) {
            Ok(at) => (at, true),
            Err((status, at)) if status.success() => (at, false),
            Err((status, _)) => panic!("gc failed on its own: {status}"),
        };
        let store = (self.store)();
        let now = match self.settle {
            true => settled_listing(&store),
            false => listing(&store),
        };
        let kill = Kill {
            at,
            killed,
            before,
            now,
            claims_before,
            claims_now: claims(&store),
        };
        let when = format!("after a kill at {at:?} ({:?})", kill.phase(self.plan));
        let tries = if self.settle { 3 } else { 1 };
        std::thread::scope(|scope| {
            let fsck = scope.spawn(|| fsck_clean_within(self.storage, self.env, &when, tries));
            if let Err(e) = check_live(&store, self.fixture) {
                panic!("GC BUG: a live manifest broke {when}: {e}");
            }
            fsck.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        });
        let created: Vec<_> = kill
            .now
            .keys()
            .filter(|p| !self.base.contains_key(*p))
            .collect();
        assert!(created.is_empty(), "files appeared {when}: {created:?}");
        let wrong: Vec<_> = deleted(self.base, &kill.now)
            .into_iter()
            .filter(|p| !self.plan.contains(p))
            .collect();
        assert!(
            wrong.is_empty(),
            "GC BUG: deleted {when} what a whole run keeps: {wrong:?}"
        );
        kill
    }
}

/// A test for a run on `store` having reached `phase`: a new claim file (mark), one claiming
/// revisions (untagged manifests) or blobs, one of the idle sessions in `plan` losing a file
/// (uploads). Cheap, so that it sees a short phase: claim files are searched, not parsed.
pub fn reached(store: Store, phase: Phase, plan: &BTreeSet<String>) -> impl Fn() -> bool {
    let dir = DriverPath::parse(CLAIMS_DIR).unwrap();
    let files = move |store: &Store| store.driver().list(&dir).unwrap_or_default();
    let before = files(&store);
    let sessions = first_file_of_each_session(&store, plan);
    move || {
        let new_claim = |needle: &str| {
            files(&store)
                .iter()
                .filter(|file| !before.contains(file))
                .filter_map(|file| store.driver().get_content(file).ok())
                .any(|claim| claim.windows(needle.len()).any(|w| w == needle.as_bytes()))
        };
        match phase {
            // Any new claim file: its first line is the magic word, and it is written before
            // the mark starts.
            Phase::Mark => new_claim("layerstore-claim-"),
            Phase::Manifests => new_claim("/_manifests/revisions/"),
            Phase::Blobs => new_claim("/blobs/sha256/"),
            Phase::Uploads => sessions
                .iter()
                .any(|file| matches!(store.driver().stat(file), Err(StorageError::NotFound(_)))),
            other => panic!("no test for reaching {other:?}"),
        }
    }
}

/// One file of each idle session in `plan` that is still in `store`.
fn first_file_of_each_session(store: &Store, plan: &BTreeSet<String>) -> Vec<DriverPath> {
    let mut sessions = BTreeMap::new();
    for path in plan {
        let Some(at) = path.find("/_uploads/").map(|at| at + "/_uploads/".len()) else {
            continue;
        };
        let Some(end) = path[at..].find('/').map(|end| end + at) else {
            continue;
        };
        sessions.entry(&path[..end]).or_insert(path);
    }
    sessions
        .into_values()
        .map(|p| DriverPath::parse(p).unwrap())
        .filter(|p| store.driver().stat(p).is_ok())
        .collect()
}
