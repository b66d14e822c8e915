//! A SIGKILL at any point of a garbage collection leaves the store consistent (fsck clean,
//! every live manifest readable with all its blobs, nothing deleted that a whole run keeps,
//! nothing written into the registry's tree) and a rerun finishes the job: the store ends
//! exactly as after one uninterrupted run.
//!
//! The victim is the real binary, `layerstore gc --offline --grace 0s --delete-untagged`, on
//! copies of a store holding thousands of garbage blobs, hundreds of untagged manifests and
//! idle upload sessions beside live tagged images, indexes, referrers and shared layers. It is
//! SIGKILLed at random instants spread over one uninterrupted run's duration (some copies
//! twice), then once per phase as soon as the test sees the run enter it (tried again if the
//! kill landed elsewhere), so that kills land in each of mark, manifests, blobs and uploads
//! whatever the machine's speed. Each kill prints the phase it landed in (read from what the
//! run had claimed and deleted). The seed is printed; `GC_CRASH_SEED` replays it.
//!
//! A second test does the same, smaller, on S3 (a real Garage cluster; skipped when Garage is
//! missing outside CI): three kills in a chain on one bucket, the reference being a dry run's
//! report. A key whose delete a kill cut short can stay in Garage's listings while HEAD and
//! GET find nothing: counted as deleted, and logged (see `ghosts`). A third (ignored until the
//! collector is fixed) stops a run in a window too short for random kills: between an
//! untagged referrer's revision and its referrers entry.

mod common;
mod gc_crash_support;
mod gc_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gc_crash_support::state::{deleted, listing, plan_from_report, Listing, Phase, Rng};
use gc_crash_support::victim::{
    collect_to_end, fsck_clean, layerstore, reached, show, Kill, Victim, When, GC,
};
use gc_crash_support::{build, check_live, repo_name, Fixture, Scale};
use layerstore::storage::s3::{S3Config, S3Driver};
use layerstore::store::Store;

use common::garage::GarageCluster;

/// The store on the filesystem: ~4,000 garbage blobs (3,000 orphans), ~340 garbage manifests,
/// 300 idle sessions; ~70 live manifests.
const FS_SCALE: Scale = Scale {
    repos: 8,
    tagged: 4,
    untagged: 40,
    orphans: 3000,
    idle_uploads: 300,
};
/// Copies killed at random instants, each `KILLS_PER_CHAIN` times, then finished.
const CHAINS: u32 = 6;
const KILLS_PER_CHAIN: usize = 2;
/// The phases a kill must land in (the test aims one kill at each).
const PHASES: [Phase; 4] = [Phase::Mark, Phase::Manifests, Phase::Blobs, Phase::Uploads];

/// The store on S3: small, each object costs Garage milliseconds.
const S3_SCALE: Scale = Scale {
    repos: 2,
    tagged: 2,
    untagged: 5,
    orphans: 30,
    idle_uploads: 6,
};

/// The tests measure durations and kill at fractions of them: one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A scratch directory on a memory filesystem when there is one: a SIGKILL keeps the page
/// cache, so a kill leaves the same states as on a disk, and the timings do not depend on what
/// else writes to the disk.
fn scratch() -> tempfile::TempDir {
    let mut builder = tempfile::Builder::new();
    builder.prefix("layerstore-gc-crash");
    builder
        .tempdir_in("/dev/shm")
        .or_else(|_| builder.tempdir())
        .unwrap()
}

fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success(), "cp -a failed");
}

fn root_args(root: &Path) -> Vec<String> {
    vec!["--root".to_owned(), root.display().to_string()]
}

/// Builds the filesystem store: everything aged two days (garbage and idle sessions), then a
/// few sessions still being written to (kept by every run).
fn build_on_filesystem(base: &Path) -> Fixture {
    let store = Store::filesystem(base);
    let fixture = build(&store, FS_SCALE, 4);
    gc_support::age_everything(base, Duration::from_secs(48 * 3600));
    for k in 0..3 {
        let mut upload = store.create_upload(&repo_name(k)).unwrap();
        upload.append(b"still uploading").unwrap();
        upload.checkpoint().unwrap();
    }
    fixture
}

/// Every file of the registry's tree, with its bytes, is the same below both roots.
fn assert_same_files(reference: &Path, reference_files: &Listing, root: &Path, files: &Listing) {
    let missing: Vec<_> = reference_files
        .keys()
        .filter(|p| !files.contains_key(*p))
        .collect();
    let extra: Vec<_> = files
        .keys()
        .filter(|p| !reference_files.contains_key(*p))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "GC BUG: the finished store differs from one uninterrupted run's: \
         missing {missing:?}, left over {extra:?}"
    );
    for path in reference_files.keys() {
        let read = |root: &Path| std::fs::read(root.join(&path[1..])).unwrap();
        assert!(read(reference) == read(root), "{path} has other bytes");
    }
    // Not files: a kill between a file's deletion and its directory's leaves the directory
    // empty, and nothing removes it later. Harmless (nothing reads an empty directory as a
    // blob, link or session), so only told.
    let v2 = Path::new("docker/registry/v2");
    let extra_dirs: Vec<_> = directories(&root.join(v2))
        .difference(&directories(&reference.join(v2)))
        .cloned()
        .collect();
    if !extra_dirs.is_empty() {
        eprintln!(
            "note: {} empty directories left over, e.g. {}",
            extra_dirs.len(),
            extra_dirs[0].display()
        );
    }
}

/// Every directory below `root`, relative to it.
fn directories(root: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                found.insert(entry.path().strip_prefix(root).unwrap().to_path_buf());
                stack.push(entry.path());
            }
        }
    }
    found
}

/// Prints each kill; returns the phases hit.
fn summarize(kills: &[Kill], plan: &BTreeSet<String>) -> BTreeSet<Phase> {
    for kill in kills {
        let at = match kill.killed {
            true => format!("kill at {:.1?}", kill.at),
            false => format!("exited at {:.1?}", kill.at),
        };
        eprintln!(
            "{at:>20}: {:?}, {} of {} files deleted by then",
            kill.phase(plan),
            plan.iter().filter(|p| !kill.now.contains_key(*p)).count(),
            plan.len()
        );
    }
    kills.iter().map(|k| k.phase(plan)).collect()
}

/// Where to kill a run.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// At this fraction of an uninterrupted run's duration.
    Fraction(f64),
    /// As soon as it enters this phase.
    Phase(Phase),
}

/// Each copy's kills: the first at a random instant in a slice of the run of its own (the
/// slices cover the run), the others in its first half (a rerun has less to do).
fn random_targets(rng: &mut Rng) -> Vec<Vec<Target>> {
    (0..CHAINS)
        .map(|c| {
            let first = (c as f64 + rng.fraction()) / CHAINS as f64;
            let mut kills = vec![Target::Fraction(first)];
            for _ in 1..KILLS_PER_CHAIN {
                kills.push(Target::Fraction(rng.fraction() / 2.0));
            }
            kills
        })
        .collect()
}

/// The filesystem store before any run, and after one uninterrupted run on a copy of it.
struct FsCase {
    dir: tempfile::TempDir,
    base: PathBuf,
    base_files: Listing,
    reference: PathBuf,
    reference_files: Listing,
    /// What the uninterrupted run deleted.
    plan: BTreeSet<String>,
    fixture: Fixture,
    /// How long an uninterrupted run takes: the reference's, or less if a later one was
    /// quicker (the machine is shared).
    duration: Duration,
    copies: usize,
}

impl FsCase {
    fn build(clock: Instant) -> FsCase {
        let dir = scratch();
        let base = dir.path().join("base");
        let fixture = build_on_filesystem(&base);
        let base_files = listing(&Store::filesystem(&base));
        eprintln!(
            "built {} files below {} in {:?}: {} live manifests, {} untagged images, {} \
             orphans, {} idle sessions",
            base_files.len(),
            dir.path().display(),
            clock.elapsed(),
            fixture.live.len(),
            fixture.untagged,
            fixture.orphans,
            fixture.idle_uploads,
        );
        let reference = dir.path().join("reference");
        copy_tree(&base, &reference);
        let started = Instant::now();
        let report = collect_to_end(&root_args(&reference), &[], &[]);
        let duration = started.elapsed();
        let reference_files = listing(&Store::filesystem(&reference));
        let plan = deleted(&base_files, &reference_files);
        let count = |list: &str| report[list].as_array().unwrap().len();
        eprintln!(
            "uninterrupted run: {duration:?}; deleted {} blobs, {} manifests, {} links, {} \
             sessions ({} files)",
            count("blobs"),
            count("manifests"),
            count("links"),
            count("upload_dirs"),
            plan.len()
        );
        assert_eq!(count("upload_dirs"), FS_SCALE.idle_uploads);
        assert!(count("manifests") > fixture.untagged);
        assert!(count("blobs") > fixture.orphans);
        fsck_clean(&root_args(&reference), &[], "after the uninterrupted run");
        check_live(&Store::filesystem(&reference), &fixture).unwrap();
        FsCase {
            dir,
            base,
            base_files,
            reference,
            reference_files,
            plan,
            fixture,
            duration,
            copies: 0,
        }
    }

    /// Kills runs on a fresh copy as `targets` say, finishes it with a rerun and compares it
    /// with the reference.
    fn kill_a_copy(&mut self, targets: &[Target], rng: &mut Rng) -> Vec<Kill> {
        let root = self.dir.path().join(format!("copy{}", self.copies));
        self.copies += 1;
        copy_tree(&self.base, &root);
        let storage = root_args(&root);
        let store = || Store::filesystem(&root);
        let victim = Victim {
            store: &store,
            storage: &storage,
            extra: &[],
            env: &[],
            base: &self.base_files,
            plan: &self.plan,
            fixture: &self.fixture,
            settle: false,
        };
        let mut kills = Vec::new();
        for &target in targets {
            let kill = match target {
                Target::Fraction(f) => victim.kill(&When::After(self.duration.mul_f64(f))),
                Target::Phase(phase) => {
                    let reached = reached(store(), phase, &self.plan);
                    let delay = rng.between(Duration::ZERO, Duration::from_millis(3));
                    victim.kill(&When::Reached(&reached, delay))
                }
            };
            if kills.is_empty() && !kill.killed {
                self.duration = self.duration.min(kill.at);
            }
            kills.push(kill);
        }
        collect_to_end(&storage, &[], &[]);
        fsck_clean(&storage, &[], "after the rerun");
        check_live(&store(), &self.fixture).unwrap();
        let files = listing(&store());
        assert_same_files(&self.reference, &self.reference_files, &root, &files);
        std::fs::remove_dir_all(&root).unwrap();
        kills
    }
}

#[test]
fn a_sigkill_anywhere_in_a_filesystem_gc_leaves_a_consistent_store_and_a_rerun_finishes() {
    let _serial = serial();
    let clock = Instant::now();
    let (mut rng, seed) = Rng::from_env();
    eprintln!("seed {seed} (GC_CRASH_SEED={seed} replays it)");
    let mut case = FsCase::build(clock);
    let mut kills = Vec::new();
    for targets in random_targets(&mut rng) {
        kills.extend(case.kill_a_copy(&targets, &mut rng));
    }
    // Then a kill aimed at each phase, again (up to twice) if it landed in another one.
    for phase in PHASES {
        for _ in 0..3 {
            let kill = case.kill_a_copy(&[Target::Phase(phase)], &mut rng);
            let landed = kill[0].phase(&case.plan);
            kills.extend(kill);
            if landed == phase {
                break;
            }
        }
    }
    let hit = summarize(&kills, &case.plan);
    eprintln!(
        "{} kills on {} copies, phases hit: {hit:?}; the test took {:?}",
        kills.len(),
        case.copies,
        clock.elapsed()
    );
    for phase in PHASES {
        assert!(hit.contains(&phase), "no kill landed in {phase:?}");
    }
}

/// Planned objects Garage still lists that no read finds. A delete that a SIGKILL cut short
/// can reach one replica of the object table and not the others; Garage then lists the key
/// while HEAD and GET answer 404 (seen after four more runs over 17 s, 2026-12-06). Every
/// reader, distribution's too, finds the object gone; a later delete of the key through a
/// listing (as `delete` of a directory does) clears it. Waits up to 10 s for them to clear,
/// to say in the log whether Garage repairs them by itself.
fn ghosts(store: &Store, plan: &BTreeSet<String>, finished: &BTreeSet<String>) -> BTreeSet<String> {
    let found = |path: &String| {
        let path = layerstore::storage::DriverPath::parse(path).unwrap();
        !matches!(
            store.driver().stat(&path),
            Err(layerstore::storage::StorageError::NotFound(_))
        )
    };
    let ghosts: BTreeSet<String> = plan
        .difference(finished)
        .filter(|p| !found(p))
        .cloned()
        .collect();
    if ghosts.is_empty() {
        return ghosts;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let listed = |files: &Listing| ghosts.iter().filter(|g| files.contains_key(*g)).count();
    let mut left = listed(&listing(store));
    while left > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        left = listed(&listing(store));
    }
    eprintln!(
        "{} planned objects listed but not found by HEAD: {ghosts:?}; after 10 s {left} still listed",
        ghosts.len()
    );
    ghosts
}

#[test]
fn a_sigkill_anywhere_in_an_s3_gc_leaves_a_consistent_bucket_and_a_rerun_finishes() {
    let _serial = serial();
    let Some(cluster) = GarageCluster::start() else {
        return;
    };
    let clock = Instant::now();
    let (mut rng, seed) = Rng::from_env();
    eprintln!("seed {seed} (GC_CRASH_SEED={seed} replays it)");
    let prefix = "gc-crash";
    let mut config = S3Config::new(&cluster.bucket, prefix);
    config.endpoint = Some(cluster.endpoint.clone());
    config.region = Some(cluster.region.clone());
    config.access_key_id = Some(cluster.access_key_id.clone());
    config.secret_access_key = Some(cluster.secret_access_key.clone());
    let store = || Store::new(Arc::new(S3Driver::connect(config.clone()).unwrap()));
    let fixture = build(&store(), S3_SCALE, 8);
    let base_files = listing(&store());
    let storage = vec![
        "--storage".to_owned(),
        format!("s3://{}/{prefix}", cluster.bucket),
    ];
    let env = cluster.env();
    // Garbage and sessions must be older than the run's start, which S3 gives to the second.
    std::thread::sleep(Duration::from_millis(2100));
    let extra = ["--upload-idle", "1s"];

    // The reference: what an uninterrupted run would delete, by a dry run.
    let started = Instant::now();
    let dry = layerstore(&GC, &storage, &env)
        .args(extra)
        .arg("--dry-run")
        .output()
        .unwrap();
    let duration = started.elapsed();
    assert!(dry.status.success(), "{}", show(&dry));
    let plan = plan_from_report(&base_files, &serde_json::from_slice(&dry.stdout).unwrap());
    eprintln!(
        "built {} objects in {:?}; a dry run took {duration:?}: {} to delete",
        base_files.len(),
        started - clock,
        plan.len(),
    );
    assert!(plan.iter().any(|p| p.contains("/_uploads/")));
    assert!(plan.iter().any(|p| p.contains("/_manifests/revisions/")));

    let victim = Victim {
        store: &store,
        storage: &storage,
        extra: &extra,
        env: &env,
        base: &base_files,
        plan: &plan,
        fixture: &fixture,
        settle: true,
    };
    // One chain of kills on the bucket: in the first and the second half of a run's length,
    // then as soon as the run deletes an idle session (the last phase, which the others
    // seldom reach).
    let half = duration / 2;
    let mut kills = vec![
        victim.kill(&When::After(rng.between(Duration::ZERO, half))),
        victim.kill(&When::After(rng.between(half, duration))),
    ];
    let uploads = reached(store(), Phase::Uploads, &plan);
    let delay = rng.between(Duration::ZERO, Duration::from_millis(20));
    kills.push(victim.kill(&When::Reached(&uploads, delay)));
    collect_to_end(&storage, &extra, &env);
    let mut finished = deleted(&base_files, &listing(&store()));
    finished.extend(ghosts(&store(), &plan, &finished));
    if finished != plan && finished.is_subset(&plan) {
        // Garage's listings can miss objects for a moment (`listings_may_lag`), so a rerun
        // may not see some garbage; the next one must. Deleting more is never allowed.
        eprintln!(
            "the rerun left {} planned objects; one more run",
            plan.len() - finished.len()
        );
        collect_to_end(&storage, &extra, &env);
        finished = deleted(&base_files, &listing(&store()));
        finished.extend(ghosts(&store(), &plan, &finished));
    }
    fsck_clean(&storage, &env, "after the rerun");
    check_live(&store(), &fixture).unwrap();
    assert_eq!(
        finished, plan,
        "GC BUG: the finished bucket differs from what one uninterrupted run deletes"
    );
    let hit = summarize(&kills, &plan);
    eprintln!(
        "{} kills, phases hit: {hit:?}; the test took {:?}",
        kills.len(),
        clock.elapsed()
    );
}

/// A run that dies while deleting an untagged referrer, at its entry in its subject's referrers
/// index (a failing delete there stops the run at that point, as a kill would; the random kills
/// above seldom land in so short a window), then a rerun: the store must end as after one
/// uninterrupted run. (The entry once went after the revision, so a run stopped between them
/// left an entry no rerun could see; now the revision goes last.)
#[test]
fn a_run_stopped_between_a_referrers_revision_and_its_index_entry_is_finished_by_a_rerun() {
    use common::faults::{Fault, FaultyDriver, Op};
    use layerstore::storage::filesystem::FilesystemDriver;
    use layerstore::store::GcOptions;

    let dir = scratch();
    let build = |root: &Path| {
        let store = Store::filesystem(root);
        let app = gc_support::repo("app");
        gc_support::push_image(&store, &app, &[b"cfg", b"layer"], Some("v1"));
        let untagged = gc_support::push_image(&store, &app, &[b"old cfg", b"old"], None);
        let referrer = gc_support::push_image_with_subject(
            &store,
            &app,
            &[b"sig cfg", b"sig"],
            None,
            Some(&untagged),
        );
        gc_support::age_everything(root, Duration::from_secs(3600));
        (untagged.digest, referrer.digest)
    };
    let (reference, root) = (dir.path().join("reference"), dir.path().join("killed"));
    build(&reference);
    gc_support::collect(&Store::filesystem(&reference), true);
    let (subject, referrer) = build(&root);
    let entry = root.join(format!(
        "docker/registry/v2/repositories/app/_manifests/referrers/sha256/{}/sha256/{}/descriptor",
        subject.hex(),
        referrer.hex()
    ));
    let revision = root.join(format!(
        "docker/registry/v2/repositories/app/_manifests/revisions/sha256/{}/link",
        referrer.hex()
    ));
    let driver = FaultyDriver::new(Arc::new(FilesystemDriver::new(&root)));
    driver.arm(Op::Delete, "/_manifests/referrers/", Fault::Io);
    let store = Store::new(Arc::new(driver.clone()));
    let options = GcOptions {
        grace: Duration::ZERO,
        delete_untagged: true,
        ..GcOptions::default()
    };
    assert!(
        store.collect_garbage(&options).is_err(),
        "the fault did not stop the run"
    );
    // Stopped before the revision, which the rerun finds and finishes.
    assert!(revision.exists() && entry.exists());
    driver.heal();
    store.collect_garbage(&options).unwrap();
    gc_support::assert_fsck_clean(&store);
    let files = |root: &Path| listing(&Store::filesystem(root));
    let (finished, expected) = (files(&root), files(&reference));
    assert_eq!(
        deleted(&finished, &expected),
        BTreeSet::new(),
        "the rerun left what an uninterrupted run deletes"
    );
    assert_eq!(deleted(&expected, &finished), BTreeSet::new());
}
