//! The checks after the load: every manifest a tag names pulls in full; the collections the
//! server ran (from its log); one more collection (`layerstore gc`); then the storage holds
//! exactly the clients' tags and the manifests they name, and no blob those do not reference.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use layerstore::manifest::Manifest;
use layerstore::names::{Reference, RepositoryName};
use layerstore::storage::paths::digest_from_components;
use layerstore::storage::{missing_is_ok, DriverPath, FileInfo, PathSpec, WalkControl};
use layerstore::store::Store;

use super::client::pull;
use super::http::Http;
use super::ledger::Ledger;

/// Pulls every manifest a tag names, by tag and by digest, with all its blobs, on up to
/// [`PULLERS`] connections at once. Returns how many manifests were pulled and the failures.
pub fn pull_live(addr: SocketAddr, ledgers: &[Ledger]) -> (usize, Vec<String>) {
    let chunk = ledgers.len().div_ceil(PULLERS).max(1);
    std::thread::scope(|scope| {
        let pullers: Vec<_> = ledgers
            .chunks(chunk)
            .map(|ledgers| scope.spawn(move || pull_ledgers(addr, ledgers)))
            .collect();
        let mut total = (0, Vec::new());
        for puller in pullers {
            let (pulled, failures) = puller.join().unwrap();
            total.0 += pulled;
            total.1.extend(failures);
        }
        total
    })
}

/// Connections [`pull_live`] pulls on.
const PULLERS: usize = 8;

fn pull_ledgers(addr: SocketAddr, ledgers: &[Ledger]) -> (usize, Vec<String>) {
    let mut http = Http::connect(addr);
    let mut failures = Vec::new();
    let mut pulled = 0;
    for ledger in ledgers {
        for ((_, tag), digest) in &ledger.tags {
            let image = &ledger.images[digest];
            for reference in [tag, digest] {
                match pull(&mut http, image, reference) {
                    Ok(_) => pulled += 1,
                    Err(e) => failures.push(format!("LOST: {e}\n{}", image.evidence)),
                }
            }
        }
    }
    (pulled, failures)
}

/// What the server's log says about its background collections.
#[derive(Debug, Default)]
pub struct GcRuns {
    pub started: usize,
    pub finished: usize,
    pub failed: Vec<String>,
    pub skipped: usize,
    pub deleted_blobs: u64,
    pub deleted_manifests: u64,
    /// What the per-batch lines say was deleted: finished runs' deletions and killed ones'.
    pub batches_deleted_blobs: u64,
    pub batches_deleted_manifests: u64,
    pub kept_touched: u64,
    pub longest: f64,
}

impl GcRuns {
    pub fn from_log(lines: &[String]) -> Self {
        let mut runs = GcRuns::default();
        for line in lines {
            if line.contains("garbage collection started") {
                runs.started += 1;
            } else if line.contains("garbage collection skipped") {
                runs.skipped += 1;
            } else if line.contains("garbage collection deleted a batch") {
                runs.batches_deleted_blobs += field(line, "blobs=");
                runs.batches_deleted_manifests += field(line, "manifests=");
            } else if line.contains("garbage collection failed") {
                runs.failed.push(line.clone());
            } else if line.contains("garbage collection finished") {
                runs.finished += 1;
                runs.deleted_blobs += number_before(line, " blobs (");
                runs.deleted_manifests += number_before(line, " manifests, ");
                runs.kept_touched += number_before(line, " touched");
                let seconds = line.split("candidates; ").nth(1).unwrap_or_default();
                let seconds: f64 = seconds
                    .split(' ')
                    .next()
                    .unwrap_or_default()
                    .parse()
                    .unwrap_or(0.0);
                runs.longest = runs.longest.max(seconds);
            }
        }
        runs
    }
}

/// The number after `name` (`blobs=`) in a log line's fields.
fn field(line: &str, name: &str) -> u64 {
    let Some((_, after)) = line.split_once(name) else {
        return 0;
    };
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or(0)
}

/// The number written just before the last `marker` of the summary's "deleted …" part.
fn number_before(line: &str, marker: &str) -> u64 {
    let deleted = line.split("; deleted ").nth(1).unwrap_or_default();
    let Some(at) = deleted.find(marker) else {
        return 0;
    };
    let head = &deleted[..at];
    let digits = head
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap_or_default();
    digits.parse().unwrap_or(0)
}

/// Runs `layerstore gc --delete-untagged` with the server's grace and touch interval once,
/// beside the server (whose background collection may be running too). Returns when it
/// started and its JSON report, or `Err` with its output.
pub fn collect_once(
    url: &str,
    env: &[(String, String)],
    flags: &super::GcFlags,
) -> Result<(SystemTime, serde_json::Value), String> {
    let secs = |d: Duration| format!("{}s", d.as_secs());
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_layerstore"));
    command
        .args(["gc", "--storage", url, "--delete-untagged", "--json"])
        .args(["--grace", &secs(flags.grace)])
        .args(["--touch-after", &secs(flags.touch_after)])
        .envs(env.iter().map(|(k, v)| (k, v)));
    let started = SystemTime::now();
    let output = crate::common::process::run_with_timeout(command, Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&output.stdout);
    match serde_json::from_str(&stdout) {
        Ok(report) if output.status.success() => Ok((started, report)),
        _ => Err(format!(
            "layerstore gc: {}\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )),
    }
}

/// What the storage holds, read through the store.
#[derive(Debug, Default)]
pub struct Stored {
    /// `(repository, digest)` of every manifest revision link.
    pub revisions: BTreeSet<(String, String)>,
    /// `(repository, tag)` -> digest its `current` link holds.
    pub tags: BTreeMap<(String, String), String>,
    /// Every blob the stored manifests reference, their own bytes included.
    pub referenced: HashSet<String>,
    /// Every blob data file: digest and modification time.
    pub blobs: Vec<(String, SystemTime)>,
}

/// Reads the repositories `repos` (and any other the store lists) and every blob.
pub fn stored(store: &Store, repos: &BTreeSet<String>) -> Stored {
    let mut all = repos.clone();
    all.extend(store.repositories().unwrap().iter().map(|r| r.to_string()));
    let mut stored = Stored::default();
    for name in &all {
        let repo = RepositoryName::parse(name).unwrap();
        for digest in revisions(store, &repo) {
            stored.referenced.insert(digest.clone());
            references(store, &repo, &digest, &mut stored.referenced);
            stored.revisions.insert((name.clone(), digest));
        }
        for tag in store.tags(&repo).unwrap_or_default() {
            let current = store
                .get_manifest(&repo, &Reference::Tag(tag.clone()))
                .map(|m| m.digest.to_string())
                .unwrap_or_else(|e| format!("unreadable: {e}"));
            stored
                .tags
                .insert((name.clone(), tag.as_str().to_owned()), current);
        }
    }
    stored.blobs = blob_files(store);
    stored
}

/// The digests of `repo`'s revision links.
fn revisions(store: &Store, repo: &RepositoryName) -> Vec<String> {
    let dir = PathSpec::ManifestRevisionsDir { repo }.to_path().unwrap();
    let mut found = Vec::new();
    let walked = store.driver().walk(&dir, &mut |info: &FileInfo| {
        if !info.is_dir && info.path.name() == "link" {
            found.push(digest_of(&dir, &info.path, 0));
        }
        Ok(WalkControl::Continue)
    });
    missing_is_ok(walked).unwrap();
    found
}

/// Adds what manifest `digest` of `repo` references (config and layers) to `referenced`.
fn references(
    store: &Store,
    repo: &RepositoryName,
    digest: &str,
    referenced: &mut HashSet<String>,
) {
    let reference = Reference::Digest(layerstore::Digest::parse(digest).unwrap());
    let Ok(content) = store.get_manifest(repo, &reference) else {
        return; // its bytes are gone: the comparison with the ledger reports it
    };
    let manifest = Manifest::parse(Some(&content.media_type), &content.bytes).unwrap();
    for reference in manifest.references() {
        referenced.insert(reference.digest().to_string());
    }
}

/// Every blob data file below `blobs/`, with its modification time.
fn blob_files(store: &Store) -> Vec<(String, SystemTime)> {
    let root = PathSpec::BlobsRoot.to_path().unwrap();
    let mut found = Vec::new();
    let walked = store.driver().walk(&root, &mut |info: &FileInfo| {
        if !info.is_dir && info.path.name() == "data" {
            found.push((digest_of(&root, &info.path, 1), info.modified));
        }
        Ok(WalkControl::Continue)
    });
    missing_is_ok(walked).unwrap();
    found
}

/// The digest a path `<dir>/<alg>/[<xx>/ * fanout]<hex>/<file>` names.
fn digest_of(dir: &DriverPath, path: &DriverPath, fanout: usize) -> String {
    let relative = &path.as_str()[dir.as_str().len() + 1..];
    let parts: Vec<&str> = relative.split('/').collect();
    let [alg, .., hex, _file] = parts.as_slice() else {
        panic!("unexpected path {path}");
    };
    assert_eq!(parts.len(), 3 + fanout, "unexpected path {path}");
    digest_from_components(&[alg], hex).unwrap().to_string()
}

/// `layerstore fsck` on the storage: its exit status and output.
pub fn fsck(url: &str, env: &[(String, String)]) -> (bool, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_layerstore"));
    command
        .args(["fsck", "--storage", url])
        .envs(env.iter().map(|(k, v)| (k, v)));
    let output = crate::common::process::run_with_timeout(command, Duration::from_secs(300));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}
