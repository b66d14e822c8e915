//! Claims: how a collection and a writer agree about a file neither may lose.
//!
//! Before it deletes a batch of files, a collection writes their paths to a *claim file*
//! (`/layerstore/gc/claims/<run>`, outside distribution's tree) and only then looks at each
//! file's modification time once more. A writer that relies on an old file does the mirror
//! image: it first touches the file (a write) and only then reads the claim files. With both
//! sides writing before they read, at least one sees the other (the storage is strongly
//! consistent: a filesystem, or S3 since 2020): either the collection sees the fresh time and
//! keeps the file, or the writer sees the claim and waits for the collection to decide, then
//! looks again. `docs/gc.md` has the whole protocol and its race table.
//!
//! A collection killed mid-run leaves its claim file behind. A claim is alive only while its
//! file keeps changing: the collection rewrites it for every batch and at least every half
//! [`CLAIM_LEASE`], and a writer that sees the same content for a whole lease (by its own
//! clock) stops waiting for it. The next collection deletes claim files older than two leases.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use super::owner::Owner;
use crate::storage::{missing_is_ok, DriverPath, StorageDriver, StorageError};
use crate::store::StoreError;

/// Where claim files live: beside the upload secret, outside `/docker/registry/v2`, so that
/// distribution never sees them.
pub const CLAIMS_DIR: &str = "/layerstore/gc/claims";

/// How long a claim stays alive without its file changing.
pub const CLAIM_LEASE: Duration = Duration::from_secs(30);

/// How often a waiting writer reads the claim files again.
const POLL: Duration = Duration::from_millis(20);

/// The first line of a claim file: a magic word, the run, the write's sequence number and,
/// where the machine says, the process that wrote it ([`Owner`]). The paths follow, one per
/// line. Plain lines rather than JSON: writers read claim files on
/// every push while a collection runs, and a header they have seen before spares them parsing
/// the thousand paths again ([`CLAIM_SETS`]).
const MAGIC: &str = "layerstore-claim-v1";

/// Renders a claim file.
fn render(run: &str, seq: u64, paths: &[String]) -> Vec<u8> {
    let mut text = format!("{MAGIC} {run} {seq}");
    if let Some(owner) = Owner::this_process() {
        text.push(' ');
        text.push_str(&owner.field());
    }
    text.push('\n');
    for path in paths {
        text.push_str(path);
        text.push('\n');
    }
    text.into_bytes()
}

/// The claims of one claim file: its header line and the set of paths it names.
#[derive(Debug)]
struct ClaimSet {
    header: String,
    paths: HashSet<String>,
    owner: Option<Owner>,
}

impl ClaimSet {
    /// True when this process can be sure the claim's writer is gone: it deletes nothing
    /// more, so its claim protects nothing.
    fn owner_is_dead(&self) -> bool {
        self.owner.as_ref().is_some_and(Owner::is_known_dead)
    }
}

/// Parses a claim file, reusing the set already parsed for the same header (the same run and
/// write). Content that is not a claim file claims nothing.
fn claim_set(file: &DriverPath, content: &[u8]) -> Option<Arc<ClaimSet>> {
    let text = std::str::from_utf8(content).ok()?;
    let (header, body) = text.split_once('\n')?;
    if !header.starts_with(MAGIC) {
        return None;
    }
    let cache = CLAIM_SETS.get_or_init(Mutex::default);
    if let Some(set) = cache.lock().get(file).filter(|set| set.header == header) {
        return Some(Arc::clone(set));
    }
    let set = Arc::new(ClaimSet {
        header: header.to_owned(),
        paths: body.lines().map(str::to_owned).collect(),
        owner: header.split(' ').find_map(Owner::parse_field),
    });
    cache.lock().insert(file.clone(), Arc::clone(&set));
    Some(set)
}

/// The last claim set parsed per claim file, in this process.
static CLAIM_SETS: OnceLock<Mutex<HashMap<DriverPath, Arc<ClaimSet>>>> = OnceLock::new();

/// The collection's side: one claim file, rewritten per batch.
#[derive(Debug)]
pub(crate) struct Claimer<'a> {
    driver: &'a dyn StorageDriver,
    path: DriverPath,
    run: String,
    seq: u64,
    paths: Vec<String>,
    written: Instant,
}

impl<'a> Claimer<'a> {
    /// Writes an empty claim file for `run` and returns it with the storage's time of that
    /// write: the collection's start, measured by the same clock as every file it will judge.
    pub(crate) fn start(
        driver: &'a dyn StorageDriver,
        run: &str,
    ) -> Result<(Self, SystemTime), StoreError> {
        let path = DriverPath::parse(CLAIMS_DIR)?.join(run)?;
        let mut claimer = Claimer {
            driver,
            path,
            run: run.to_owned(),
            seq: 0,
            paths: Vec::new(),
            written: Instant::now(),
        };
        claimer.write()?;
        let started = driver.stat(&claimer.path)?.modified;
        Ok((claimer, started))
    }

    /// Claims `paths` (replacing the previous claim). The caller must look at each file again
    /// after this returns, before deleting it.
    pub(crate) fn claim(&mut self, paths: &[DriverPath]) -> Result<(), StoreError> {
        self.paths = paths.iter().map(|p| p.as_str().to_owned()).collect();
        self.write()
    }

    /// True while the current claim is young enough to delete under: writers wait a whole
    /// [`CLAIM_LEASE`] for it, the collection acts only within the first half.
    pub(crate) fn is_fresh(&self) -> bool {
        self.written.elapsed() < CLAIM_LEASE / 2
    }

    /// Removes the claim file: the run is over.
    pub(crate) fn finish(self) -> Result<(), StoreError> {
        Ok(missing_is_ok(self.driver.delete(&self.path))?)
    }

    fn write(&mut self) -> Result<(), StoreError> {
        self.seq += 1;
        let content = render(&self.run, self.seq, &self.paths);
        self.driver.put_content(&self.path, &content)?;
        self.written = Instant::now();
        Ok(())
    }
}

/// Deletes claim files last written more than two leases before `now` (storage time): their
/// collection died. Returns how many went.
pub(crate) fn remove_stale(driver: &dyn StorageDriver, now: SystemTime) -> Result<u64, StoreError> {
    let dir = DriverPath::parse(CLAIMS_DIR)?;
    let files = match driver.list(&dir) {
        Ok(files) => files,
        Err(StorageError::NotFound(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut removed = 0;
    for file in files {
        if is_stale(driver, &file, now)? {
            missing_is_ok(driver.delete(&file))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// A claim file last written more than two leases before `now`, or by a process known dead.
fn is_stale(
    driver: &dyn StorageDriver,
    file: &DriverPath,
    now: SystemTime,
) -> Result<bool, StoreError> {
    let written = match driver.stat(file) {
        Ok(info) => info.modified,
        Err(StorageError::NotFound(_)) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    if now
        .duration_since(written)
        .is_ok_and(|age| age > 2 * CLAIM_LEASE)
    {
        return Ok(true);
    }
    Ok(read_claim(driver, file)?.is_some_and(|set| set.owner_is_dead()))
}

/// The claims of the claim file `file`; `None` when it is gone or is no claim file.
fn read_claim(
    driver: &dyn StorageDriver,
    file: &DriverPath,
) -> Result<Option<Arc<ClaimSet>>, StoreError> {
    match driver.get_content(file) {
        Ok(content) => Ok(claim_set(file, &content)),
        Err(StorageError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// True when some claim file says a collection is running: written less than a lease before
/// `now` (by the storage's time of the file) by a process not known to be dead. Read errors
/// count as no run: this only decides whether to start one, and a run's own claims keep it
/// safe.
pub fn a_run_is_alive(driver: &dyn StorageDriver, now: SystemTime) -> bool {
    let Ok(dir) = DriverPath::parse(CLAIMS_DIR) else {
        return false;
    };
    let files = driver.list(&dir).unwrap_or_default();
    files.iter().any(|file| {
        let young = driver
            .stat(file)
            .ok()
            .and_then(|info| now.duration_since(info.modified).ok())
            .is_some_and(|age| age < CLAIM_LEASE);
        young
            && read_claim(driver, file)
                .ok()
                .flatten()
                .is_some_and(|set| !set.owner_is_dead())
    })
}

/// How long ago the storage last wrote the claim `file`, by the storage's clock (zero when it
/// is gone, or when the clocks disagree). A live collection rewrites its claim at least every
/// half lease, so an age beyond a lease means a dead one. `now` caches the storage's time for
/// the caller's loop.
fn storage_age(
    driver: &dyn StorageDriver,
    file: &DriverPath,
    now: &mut Option<SystemTime>,
) -> Result<Duration, StoreError> {
    let written = match driver.stat(file) {
        Ok(info) => info.modified,
        Err(StorageError::NotFound(_)) => return Ok(Duration::ZERO),
        Err(e) => return Err(e.into()),
    };
    let now = match now {
        Some(now) => *now,
        None => *now.insert(storage_now(driver)?),
    };
    Ok(now.duration_since(written).unwrap_or(Duration::ZERO))
}

/// The storage's current time: the modification time of a file touched (or written) just now,
/// beside the claims. Claim files carry the same clock, so the comparison does not depend on
/// this machine's clock agreeing with the storage's.
fn storage_now(driver: &dyn StorageDriver) -> Result<SystemTime, StoreError> {
    let clock = DriverPath::parse(CLOCK_FILE)?;
    match driver.touch(&clock) {
        Ok(()) => {}
        Err(StorageError::NotFound(_)) => driver.put_content(&clock, b"")?,
        Err(e) => return Err(e.into()),
    }
    Ok(driver.stat(&clock)?.modified)
}

/// A file whose modification time is the storage's clock ([`storage_now`]). Outside the claims
/// directory, so that it is never read as a claim.
const CLOCK_FILE: &str = "/layerstore/gc/clock";

/// Claim files found dead (unchanged for a lease), with the header they had: skipped by every
/// later wait in this process until they change (a live run rewriting one) or go.
static DEAD_CLAIMS: OnceLock<Mutex<HashMap<DriverPath, String>>> = OnceLock::new();

/// The writer's side: waits until no live claim names any of `paths`. Returns whether one did
/// (the caller must then look at its files again: the collection may have deleted them).
///
/// A claim whose file has not changed for a whole [`CLAIM_LEASE`] is a dead collection's and
/// is not waited for. The lease counts from the claim file's last write by the storage's clock
/// (its modification time against a file written just now, [`storage_now`]), then goes on by
/// this process's clock: a process that meets a dead run's claim waits only what is left of
/// the lease, and not at all for a claim older than that. Gives up with [`StoreError::CollectionBusy`] after two leases of
/// changing claims that keep naming these paths, which a live collection never does (it
/// decides each batch within half a lease).
pub(crate) fn wait_unclaimed(
    driver: &dyn StorageDriver,
    paths: &[DriverPath],
) -> Result<bool, StoreError> {
    let dir = DriverPath::parse(CLAIMS_DIR)?;
    let dead = DEAD_CLAIMS.get_or_init(Mutex::default);
    let started = Instant::now();
    // Per claim file: the header last seen and since when (this process's clock).
    let mut seen: HashMap<DriverPath, (String, Instant)> = HashMap::new();
    // The storage's time, read once per call and only when a claim needs judging.
    let mut now = None;
    let mut waited = false;
    loop {
        let files = match driver.list(&dir) {
            Ok(files) => files,
            Err(StorageError::NotFound(_)) => return Ok(waited),
            Err(e) => return Err(e.into()),
        };
        let mut blocked = None;
        for file in files {
            let Some(set) = read_claim(driver, &file)? else {
                continue;
            };
            let names_one = paths.iter().any(|p| set.paths.contains(p.as_str()));
            if !names_one || dead.lock().get(&file) == Some(&set.header) {
                continue;
            }
            if set.owner_is_dead() {
                // Its process is gone on this machine: no lease to wait out.
                dead.lock().insert(file.clone(), set.header.clone());
                continue;
            }
            // Unchanged since when: at first sight, since the storage last wrote the file.
            let since = match seen.get(&file) {
                Some((previous, since)) if *previous == set.header => *since,
                _ => {
                    let age = storage_age(driver, &file, &mut now)?;
                    Instant::now().checked_sub(age).unwrap_or_else(Instant::now)
                }
            };
            if since.elapsed() < CLAIM_LEASE {
                blocked = Some(file.clone());
            } else {
                // Unchanged for a whole lease: its collection died. Remembered, so that no
                // later write in this process waits for it again.
                dead.lock().insert(file.clone(), set.header.clone());
            }
            seen.insert(file, (set.header.clone(), since));
        }
        let Some(file) = blocked else {
            return Ok(waited);
        };
        waited = true;
        if started.elapsed() > 2 * CLAIM_LEASE {
            return Err(StoreError::CollectionBusy(file));
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FilesystemDriver;

    fn claimed_path() -> DriverPath {
        DriverPath::parse("/docker/registry/v2/blobs/sha256/ab/abcd/data").unwrap()
    }

    /// A run `run` that claimed [`claimed_path`] and died `age` ago: its claim file was last
    /// written then. Returns the driver over `dir`.
    fn claim_written_ago(dir: &std::path::Path, run: &str, age: Duration) -> FilesystemDriver {
        let driver = FilesystemDriver::new(dir);
        let (mut claimer, _) = Claimer::start(&driver, run).unwrap();
        claimer.claim(&[claimed_path()]).unwrap();
        std::fs::File::options()
            .write(true)
            .open(dir.join("layerstore/gc/claims").join(run))
            .unwrap()
            .set_modified(SystemTime::now() - age)
            .unwrap();
        driver
    }

    #[test]
    fn a_claim_older_than_a_lease_by_the_storage_clock_is_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let driver = claim_written_ago(dir.path(), "long-dead-run", 2 * CLAIM_LEASE);
        let started = Instant::now();
        assert!(!wait_unclaimed(&driver, &[claimed_path()]).unwrap());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "waited for a dead claim"
        );
    }

    #[test]
    fn a_claim_is_waited_for_only_what_is_left_of_its_lease() {
        let dir = tempfile::tempdir().unwrap();
        // Last written a lease less one second ago: about a second is left.
        let age = CLAIM_LEASE - Duration::from_secs(1);
        let driver = claim_written_ago(dir.path(), "recently-dead-run", age);
        let started = Instant::now();
        assert!(wait_unclaimed(&driver, &[claimed_path()]).unwrap());
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(500) && waited < Duration::from_secs(10),
            "waited {waited:?} for the last second of a lease"
        );
    }

    /// A young claim on [`claimed_path`] whose writer is a process that no longer exists.
    #[cfg(target_os = "linux")]
    fn claim_of_a_dead_process(dir: &std::path::Path) -> FilesystemDriver {
        let driver = FilesystemDriver::new(dir);
        let owner = Owner::gone().unwrap().field();
        let content = format!("{MAGIC} dead-run 3 {owner}\n{}\n", claimed_path().as_str());
        let file = DriverPath::parse(CLAIMS_DIR)
            .unwrap()
            .join("dead-run")
            .unwrap();
        driver.put_content(&file, content.as_bytes()).unwrap();
        driver
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_young_claim_of_a_dead_process_is_not_waited_for_nor_counted_as_a_run() {
        let dir = tempfile::tempdir().unwrap();
        let driver = claim_of_a_dead_process(dir.path());
        let started = Instant::now();
        assert!(!wait_unclaimed(&driver, &[claimed_path()]).unwrap());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "waited for a dead process"
        );
        assert!(!a_run_is_alive(&driver, SystemTime::now()));
        assert_eq!(remove_stale(&driver, SystemTime::now()).unwrap(), 1);
    }

    #[test]
    fn a_young_claim_of_a_live_process_counts_as_a_run_and_stays() {
        let dir = tempfile::tempdir().unwrap();
        let driver = FilesystemDriver::new(dir.path());
        let (mut claimer, _) = Claimer::start(&driver, "live-run").unwrap();
        claimer.claim(&[claimed_path()]).unwrap();
        assert!(a_run_is_alive(&driver, SystemTime::now()));
        assert_eq!(remove_stale(&driver, SystemTime::now()).unwrap(), 0);
        claimer.finish().unwrap();
        assert!(!a_run_is_alive(&driver, SystemTime::now()));
    }

    #[test]
    fn a_live_claim_is_waited_for_until_it_goes() {
        let dir = tempfile::tempdir().unwrap();
        let driver = Arc::new(FilesystemDriver::new(dir.path()));
        let (mut claimer, _) = Claimer::start(&*driver, "live-run").unwrap();
        claimer.claim(&[claimed_path()]).unwrap();
        let waiter = {
            let driver = Arc::clone(&driver);
            std::thread::spawn(move || wait_unclaimed(&*driver, &[claimed_path()]).unwrap())
        };
        std::thread::sleep(Duration::from_millis(300));
        assert!(!waiter.is_finished(), "a live claim was not waited for");
        claimer.finish().unwrap();
        assert!(waiter.join().unwrap(), "the wait must say a claim was seen");
    }
}
