//! What is stored, seen from the outside of a run: listings of the registry's tree, the claim
//! files, what a whole run deletes (the plan) and which phase a killed run was in.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use layerstore::storage::{DriverPath, WalkControl};
use layerstore::store::Store;

/// Path -> size of every file below `/docker/registry/v2` (the registry's tree: the
/// collector's bookkeeping under `/layerstore` and the filesystem driver's temporary files are
/// outside it).
pub type Listing = BTreeMap<String, u64>;

pub fn listing(store: &Store) -> Listing {
    let mut files = Listing::new();
    let root = DriverPath::parse("/docker/registry/v2").unwrap();
    store
        .driver()
        .walk(&root, &mut |info| {
            if !info.is_dir {
                files.insert(info.path.as_str().to_owned(), info.size);
            }
            Ok(WalkControl::Continue)
        })
        .unwrap();
    files
}

/// Claim files of collection runs: name -> the paths claimed.
pub type Claims = BTreeMap<String, Vec<String>>;

/// Where runs keep their claim files.
pub const CLAIMS_DIR: &str = layerstore::store::gc::claims::CLAIMS_DIR;

/// The claim files in the store.
pub fn claims(store: &Store) -> Claims {
    let dir = DriverPath::parse(CLAIMS_DIR).unwrap();
    let Ok(files) = store.driver().list(&dir) else {
        return BTreeMap::new();
    };
    let mut claims = BTreeMap::new();
    for file in files {
        let Ok(content) = store.driver().get_content(&file) else {
            continue;
        };
        // A header line (magic, run, sequence number), then one claimed path per line.
        let text = String::from_utf8(content).unwrap();
        let paths = text.lines().skip(1).map(str::to_owned).collect();
        claims.insert(file.name().to_owned(), paths);
    }
    claims
}

/// Where a run was when it was killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// No claim file yet: the process was starting.
    Start,
    /// Claim file written, nothing claimed yet.
    Mark,
    /// Untagged manifests claimed or being deleted.
    Manifests,
    /// Manifests done; blob candidates listed, claimed or being deleted.
    Blobs,
    /// Blobs done; idle upload sessions being deleted.
    Uploads,
    /// Everything deleted; the claim file removed or about to be.
    Finish,
    /// The run exited before the kill.
    Done,
}

/// Which part of the collection deletes a path.
fn category(path: &str) -> Phase {
    if path.contains("/_uploads/") {
        Phase::Uploads
    } else if path.contains("/_manifests/") {
        Phase::Manifests
    } else {
        Phase::Blobs
    }
}

/// The phase a killed run was in. `before` is the store before this run, `plan` what a whole
/// run deletes from it, `now` the store after the kill, `claims_before` the claim files before
/// this run and `claims_now` after the kill.
pub fn phase(
    before: &Listing,
    plan: &BTreeSet<String>,
    now: &Listing,
    claims_before: &Claims,
    claims_now: &Claims,
) -> Phase {
    let deleted_now = before.keys().any(|p| !now.contains_key(p));
    let mine = claims_now
        .iter()
        .find(|(name, _)| !claims_before.contains_key(*name));
    match mine {
        None if deleted_now || plan.iter().all(|p| !now.contains_key(p)) => Phase::Finish,
        None => Phase::Start,
        Some((_, claimed)) if claimed.is_empty() && !deleted_now => Phase::Mark,
        Some(_) => {
            let left = |phase| {
                plan.iter()
                    .any(|p| category(p) == phase && now.contains_key(p))
            };
            [Phase::Manifests, Phase::Blobs, Phase::Uploads]
                .into_iter()
                .find(|&phase| left(phase))
                .unwrap_or(Phase::Finish)
        }
    }
}

/// The paths of `before` that `after` lacks.
pub fn deleted(before: &Listing, after: &Listing) -> BTreeSet<String> {
    before
        .keys()
        .filter(|p| !after.contains_key(*p))
        .cloned()
        .collect()
}

/// The listing once two in a row, half a second apart, agree: an object store finishes the
/// requests it had received from a killed process after its death.
pub fn settled_listing(store: &Store) -> Listing {
    let mut last = listing(store);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = listing(store);
        if now == last {
            return now;
        }
        eprintln!("the storage still changed after the kill");
        last = now;
    }
}

/// What a whole run deletes from `base`, by a dry run's report on it: blobs' data, the links
/// it names, the files of its sessions, and below each untagged manifest's repository every
/// `_manifests` entry named after it (revision link, tag history entry, referrers entry).
pub fn plan_from_report(base: &Listing, report: &serde_json::Value) -> BTreeSet<String> {
    let list = |name: &str| report[name].as_array().unwrap().clone();
    let text = |v: &serde_json::Value| v.as_str().unwrap().to_owned();
    let mut exact: BTreeSet<String> = list("links").iter().map(text).collect();
    for blob in list("blobs") {
        let hex = text(&blob["digest"]).replace("sha256:", "");
        exact.insert(format!(
            "/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ));
    }
    let sessions: Vec<String> = list("upload_dirs").iter().map(|d| text(d) + "/").collect();
    let manifests: Vec<(String, String)> = list("manifests")
        .iter()
        .map(|m| {
            let repo = text(&m["repository"]);
            let prefix = format!("/docker/registry/v2/repositories/{repo}/_manifests/");
            (prefix, text(&m["digest"]).replace("sha256:", ""))
        })
        .collect();
    // `.../<hex>/link` or `.../<hex>/descriptor`: the manifest is the directory's name.
    let names_manifest = |path: &str| {
        let dir = path.rsplit('/').nth(1);
        manifests
            .iter()
            .any(|(prefix, hex)| path.starts_with(prefix) && dir == Some(hex.as_str()))
    };
    base.keys()
        .filter(|p| {
            exact.contains(*p) || sessions.iter().any(|s| p.starts_with(s)) || names_manifest(p)
        })
        .cloned()
        .collect()
}

/// A small deterministic generator (xorshift), seeded from `GC_CRASH_SEED` or the clock.
pub struct Rng(u64);

impl Rng {
    /// The generator and its seed, to print.
    pub fn from_env() -> (Rng, u64) {
        let seed = std::env::var("GC_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        // Xorshift never leaves zero.
        (Rng(seed | 1), seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A uniform number in `[0, 1)`.
    pub fn fraction(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniform point of `[from, to)`.
    pub fn between(&mut self, from: Duration, to: Duration) -> Duration {
        let span = to.saturating_sub(from).as_micros().max(1) as u64;
        from + Duration::from_micros(self.next() % span)
    }
}
