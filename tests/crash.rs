//! Crash safety, proven on the real binary: a `layerstore crash-worker` process uploads and
//! commits blobs with a checkpoint after every chunk, and is SIGKILLed at a random instant,
//! again and again, on one storage root. After every kill:
//!
//! - fsck is clean (every published blob hashes to its path, no dangling or bad link);
//! - every blob whose commit was acknowledged (printed) by any earlier worker is still linked
//!   and has exactly the bytes that were uploaded;
//! - the upload that was interrupted resumes (in this process) at an offset no larger than
//!   what was sent, takes the rest of the bytes and commits to the right digest.
//!
//! The seed is printed; set `CRASH_SEED` to replay a run.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use layerstore::digest::Digest;
use layerstore::names::{RepositoryName, UploadId};
use layerstore::store::{Store, StoreError};

const KILLS: usize = 60;
/// Stop early (after at least the minimum of kills) if the machine is very slow.
const TIME_BUDGET: Duration = Duration::from_secs(50);
const MIN_KILLS: usize = 50;
/// Kill no later than this after the start (the worker needs longer to finish all inputs).
const MAX_DELAY_MS: u64 = 400;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn make_inputs(dir: &Path, rng: &mut Rng) -> HashMap<String, Vec<u8>> {
    std::fs::create_dir_all(dir).unwrap();
    let mut files = HashMap::new();
    for i in 0..16 {
        // Sizes from empty to ~600 KiB, some on chunk boundaries.
        let len = match i {
            0 => 0,
            1 => 65_536,
            _ => rng.below(600_000) as usize + 1,
        };
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let name = format!("blob{i:02}");
        std::fs::write(dir.join(&name), &bytes).unwrap();
        files.insert(name, bytes);
    }
    files
}

/// What the worker printed before it died.
#[derive(Default)]
struct Transcript {
    started: Vec<(UploadId, String)>,
    committed: Vec<(String, Digest)>,
}

fn parse_transcript(out: &str) -> Transcript {
    let mut t = Transcript::default();
    for line in out.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["started", id, name] => t
                .started
                .push((UploadId::parse(id).unwrap(), name.to_string())),
            ["committed", name, digest] => t
                .committed
                .push((name.to_string(), digest.parse().unwrap())),
            _ => {} // a line cut short by the kill
        }
    }
    t
}

fn worker(root: &Path, repo: &str, inputs: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_layerstore"));
    command
        .args(["crash-worker", "--root"])
        .arg(root)
        .args(["--repo", repo, "--chunk", "16384", "--inputs"])
        .arg(inputs)
        .stderr(Stdio::null());
    command
}

#[test]
fn sigkill_at_random_instants_loses_nothing_acknowledged() {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let inputs = dir.path().join("inputs");
    let files = make_inputs(&inputs, &mut rng);
    let store = Store::filesystem(&root);
    // Kill instants are drawn below this; it halves whenever a worker finishes before its
    // kill, so on a fast machine the kills still land inside the run.
    let mut max_delay_ms = MAX_DELAY_MS;
    let mut acknowledged: Vec<(RepositoryName, String, Digest)> = Vec::new();
    let began = Instant::now();
    let mut kills = 0;
    let mut mid_commit_finishes = 0;
    let mut resumed_nonzero = 0;
    let mut interrupted = 0;

    for round in 0..KILLS * 2 {
        if kills >= KILLS || (kills >= MIN_KILLS && began.elapsed() > TIME_BUDGET) {
            break;
        }
        let repo = RepositoryName::parse(&format!("crash/round{round}")).unwrap();
        let mut child = worker(&root, repo.as_str(), &inputs)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1 + rng.below(max_delay_ms)));
        let killed = child.try_wait().unwrap().is_none();
        if killed {
            child.kill().unwrap(); // SIGKILL
        }
        child.wait().unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let transcript = parse_transcript(&out);
        if killed {
            kills += 1;
        } else {
            max_delay_ms = (max_delay_ms / 2).max(5);
        }

        // 1. fsck clean right after the kill.
        let report = store.fsck(&|_| {}).unwrap();
        assert!(
            report.is_clean(),
            "round {round}, seed {seed}: {:#?}",
            report.problems
        );

        // 2. the interrupted upload, if any, resumes and commits to the right digest.
        let committed_names: Vec<&String> = transcript.committed.iter().map(|(n, _)| n).collect();
        if let Some((id, name)) = transcript
            .started
            .last()
            .filter(|(_, n)| !committed_names.contains(&n))
        {
            interrupted += 1;
            let bytes = &files[name];
            let digest = Digest::sha256(bytes);
            match store.resume_upload(&repo, id) {
                Ok(mut upload) => {
                    let offset = upload.offset();
                    assert!(
                        offset <= bytes.len() as u64,
                        "seed {seed}: offset past the data"
                    );
                    if offset > 0 {
                        resumed_nonzero += 1;
                    }
                    upload.append(&bytes[offset as usize..]).unwrap();
                    let info = upload.commit(&digest, Some(bytes.len() as u64)).unwrap();
                    assert_eq!(info.digest, digest);
                }
                // The commit finished (session deleted) but the worker died before saying so.
                Err(StoreError::BlobUploadUnknown(_)) => {
                    mid_commit_finishes += 1;
                    store.stat_blob(&repo, &digest).unwrap();
                }
                Err(e) => panic!("round {round}, seed {seed}: resume failed: {e}"),
            }
            acknowledged.push((repo.clone(), name.clone(), digest));
        }
        for (name, digest) in transcript.committed {
            assert_eq!(digest, Digest::sha256(&files[&name]));
            acknowledged.push((repo.clone(), name, digest));
        }

        // 3. nothing acknowledged so far is lost or altered: every link still resolves to a
        // blob of the right size, and (fsck above and below) every blob hashes to its digest.
        for (repo, name, digest) in &acknowledged {
            let info = store.stat_blob(repo, digest).unwrap();
            assert_eq!(
                info.size,
                files[name].len() as u64,
                "round {round}, seed {seed}"
            );
        }
    }
    assert!(store.fsck(&|_| {}).unwrap().is_clean(), "seed {seed}");
    // And byte for byte, once per distinct blob.
    let mut seen = std::collections::HashSet::new();
    for (repo, name, digest) in &acknowledged {
        if seen.insert(digest.clone()) {
            let (_, body) = store.open_blob(Some(repo), digest).unwrap();
            let mut bytes = Vec::new();
            body.write_to(None, &mut bytes).unwrap();
            assert!(bytes == files[name], "seed {seed}: {digest} altered");
        }
    }
    println!(
        "{kills} kills in {:?}; {} acknowledged blobs checked; {interrupted} uploads interrupted, \
         {resumed_nonzero} resumed at a non-zero offset, {mid_commit_finishes} commits finished \
         just before the kill",
        began.elapsed(),
        acknowledged.len()
    );
    assert!(
        kills >= MIN_KILLS,
        "only {kills} kills landed (seed {seed})"
    );
}
