//! "Same answer as distribution" (issue 16). On randomized stores that distribution 2.8 reads
//! (`gc_support/random_store.rs`), `layerstore gc --dry-run --grace 0s` deletes what
//! `docker-registry garbage-collect --dry-run` deletes, less what layerstore's extra rules keep
//! (children of live indexes and referrers of live manifests, with what they reference); the
//! generator's model says what that is, without asking either tool. Without `--delete-untagged`,
//! and on a store with no referrers and no untagged index children, the sets are equal.
//!
//! Then a real collection on a copy of each store: everything the model says is live is still
//! served, by the store API and by distribution, the rest is gone, and fsck finds nothing wrong.
//!
//! Seeds: two fixed and two from the clock per test, printed with every failure;
//! `GC_DISTRIBUTION_SEEDS=1,2,3` replays chosen ones.

mod clients_support;
mod common;
mod gc_support;
#[path = "gc_support/random_store.rs"]
mod random_store;

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use clients_support::RegistryProcess;
use clients_support::{distribution_garbage_collect, require_tool, run_with_timeout};
use gc_support::age_everything;
use layerstore::names::{Reference, Tag};
use layerstore::store::Store;
use layerstore::Digest;
use random_store::{Collected, Model, Rules, Shape};

/// Every manifest type, so distribution serves each as stored (2.8 rewrites a schema 2
/// manifest as schema 1 for a client that does not accept it).
const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

#[test]
fn layerstore_deletes_what_distribution_deletes_less_what_its_extra_rules_keep() {
    if require_tool("docker-registry").is_none() {
        return;
    }
    for seed in seeds(&[16, 2024]) {
        let started = Instant::now();
        let root = tempfile::tempdir().unwrap();
        eprintln!("seed {seed}: building a store");
        let model = random_store::build(&Store::filesystem(root.path()), seed, Shape::Full);
        eprintln!("{}", model.summary());
        let extra = extra_kept(&model, true);
        assert!(
            !extra.manifests.is_empty() && !extra.blobs.is_empty(),
            "seed {seed}: the store does not exercise layerstore's extra rules"
        );
        for delete_untagged in [false, true] {
            let dry = compare_dry_runs(&model, root.path(), delete_untagged);
            collect_for_real(&model, root.path(), delete_untagged, &dry);
        }
        eprintln!("seed {seed}: {:.1} s", started.elapsed().as_secs_f64());
    }
}

#[test]
fn without_referrers_or_untagged_index_children_both_delete_exactly_the_same() {
    if require_tool("docker-registry").is_none() {
        return;
    }
    for seed in seeds(&[7, 4242]) {
        let root = tempfile::tempdir().unwrap();
        eprintln!("seed {seed}: building a store");
        let model = random_store::build(&Store::filesystem(root.path()), seed, Shape::Plain);
        eprintln!("{}", model.summary());
        let extra = extra_kept(&model, true);
        assert_eq!(
            extra,
            Collected::default(),
            "seed {seed}: not a plain store"
        );
        for delete_untagged in [false, true] {
            compare_dry_runs(&model, root.path(), delete_untagged);
        }
    }
}

/// The seeds to run: `fixed` and two from the clock, or those of `GC_DISTRIBUTION_SEEDS`.
fn seeds(fixed: &[u64]) -> Vec<u64> {
    if let Ok(list) = std::env::var("GC_DISTRIBUTION_SEEDS") {
        return list.split(',').map(|s| s.trim().parse().unwrap()).collect();
    }
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut seeds = fixed.to_vec();
    seeds.extend([now % 1_000_000_007, now / 7 % 1_000_000_009]);
    seeds
}

/// What layerstore's extra rules keep of what distribution 2.8 deletes, by the model alone.
fn extra_kept(model: &Model, delete_untagged: bool) -> Collected {
    model
        .collected(delete_untagged, Rules::Distribution)
        .minus(&model.collected(delete_untagged, Rules::Layerstore))
}

/// Both dry runs on `root`; asserts the relation and returns what layerstore would delete.
fn compare_dry_runs(model: &Model, root: &Path, delete_untagged: bool) -> Collected {
    let seed = model.seed;
    let mode = if delete_untagged {
        "with --delete-untagged"
    } else {
        "without --delete-untagged"
    };
    let distribution = distribution_dry_run(root, delete_untagged);
    let mut args = vec!["--dry-run", "--grace", "0s"];
    if delete_untagged {
        args.push("--delete-untagged");
    }
    let layerstore = layerstore_gc(root, &args);
    let names: BTreeSet<String> = model.repos.iter().map(|r| r.name.to_string()).collect();
    assert_eq!(
        distribution.repositories, names,
        "seed {seed}: distribution's repositories"
    );
    assert_eq!(
        layerstore.repositories,
        names.len(),
        "seed {seed}: layerstore's repositories"
    );
    assert_eq!(layerstore.kept_young, 0, "seed {seed}: a file looked young");
    let extra = extra_kept(model, delete_untagged);
    if !delete_untagged {
        assert_eq!(
            extra,
            Collected::default(),
            "seed {seed}: the model's rules differ"
        );
    }
    let what = format!("seed {seed}, {mode}");
    assert_relation(
        &format!("{what}: manifests"),
        &layerstore.collected.manifests,
        &distribution.collected.manifests,
        &extra.manifests,
        |(repo, digest)| format!("in {repo}: {}", model.describe(digest)),
    );
    assert_relation(
        &format!("{what}: blobs"),
        &layerstore.collected.blobs,
        &distribution.collected.blobs,
        &extra.blobs,
        |digest| model.describe(digest),
    );
    // distribution prints digests only (the repository of each manifest line is the last
    // repository line before it): the digest sets agree too, a digest deleted in several
    // repositories counted once.
    let digests = |c: &Collected| -> BTreeSet<Digest> {
        c.manifests.iter().map(|(_, d)| d.clone()).collect()
    };
    let expected = distribution.collected.minus(&extra);
    assert_eq!(
        digests(&layerstore.collected),
        digests(&expected),
        "{what}: manifest digests"
    );
    // Only then the model against distribution: a failure here is the model's, or 2.8's.
    assert_eq!(
        distribution.collected,
        model.collected(delete_untagged, Rules::Distribution),
        "{what}: distribution does not delete what the model says 2.8 deletes"
    );
    eprintln!(
        "{what}: distribution deletes {} manifests ({} digests) and {} blobs; layerstore's \
         extra rules keep {} manifests ({} digests) and {} blobs of them",
        distribution.collected.manifests.len(),
        digests(&distribution.collected).len(),
        distribution.collected.blobs.len(),
        extra.manifests.len(),
        digests(&extra).len(),
        extra.blobs.len()
    );
    layerstore.collected
}

/// `layerstore == distribution - extra`, with what differs described.
fn assert_relation<T: Ord + Clone + Debug>(
    what: &str,
    layerstore: &BTreeSet<T>,
    distribution: &BTreeSet<T>,
    extra: &BTreeSet<T>,
    describe: impl Fn(&T) -> String,
) {
    let expected: BTreeSet<T> = distribution.difference(extra).cloned().collect();
    if *layerstore == expected {
        return;
    }
    let lines = |items: BTreeSet<&T>| -> String {
        items
            .into_iter()
            .map(|i| format!("\n  {}", describe(i)))
            .collect()
    };
    panic!(
        "{what}: layerstore gc does not delete distribution's set less its extra rules\n\
         deleted by layerstore only:{}\nkept by layerstore without an extra rule:{}",
        lines(layerstore.difference(&expected).collect()),
        lines(expected.difference(layerstore).collect()),
    );
}

/// What `docker-registry garbage-collect --dry-run` on `root` lists.
struct DistributionRun {
    repositories: BTreeSet<String>,
    collected: Collected,
}

fn distribution_dry_run(root: &Path, delete_untagged: bool) -> DistributionRun {
    let mut flags = vec!["--dry-run"];
    if delete_untagged {
        flags.push("--delete-untagged");
    }
    parse_distribution(&distribution_garbage_collect(root, &flags))
}

/// 2.8 prints each repository's name alone on a line, then `REPO: marking ...` lines and
/// `manifest eligible for deletion: DIGEST` for each untagged manifest (with
/// `--delete-untagged`), then a count and `blob eligible for deletion: DIGEST` lines.
fn parse_distribution(stdout: &str) -> DistributionRun {
    let mut run = DistributionRun {
        repositories: BTreeSet::new(),
        collected: Collected::default(),
    };
    let mut repository: Option<String> = None;
    let digest = |text: &str| Digest::parse(text.trim()).unwrap();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("manifest eligible for deletion: ") {
            let repo = repository
                .clone()
                .expect("a manifest line before any repository");
            run.collected.manifests.insert((repo, digest(rest)));
        } else if let Some(rest) = line.strip_prefix("blob eligible for deletion: ") {
            run.collected.blobs.insert(digest(rest));
        } else if !line.is_empty() && !line.contains([' ', ':']) {
            run.repositories.insert(line.to_owned());
            repository = Some(line.to_owned());
        }
    }
    run
}

/// What `layerstore gc --json` reports.
struct LayerstoreRun {
    repositories: usize,
    kept_young: u64,
    kept_touched: u64,
    collected: Collected,
}

fn layerstore_gc(root: &Path, args: &[&str]) -> LayerstoreRun {
    let mut command = Command::new(env!("CARGO_BIN_EXE_layerstore"));
    command
        .arg("gc")
        .arg("--root")
        .arg(root)
        .args(args)
        .arg("--json");
    let output = run_with_timeout(command, Duration::from_secs(60));
    assert!(
        output.status.success(),
        "layerstore gc {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let digest = |v: &serde_json::Value| Digest::parse(v.as_str().unwrap()).unwrap();
    let list = |name: &str| report[name].as_array().unwrap().clone();
    let manifests: Vec<(String, Digest)> = list("manifests")
        .iter()
        .map(|m| {
            (
                m["repository"].as_str().unwrap().to_owned(),
                digest(&m["digest"]),
            )
        })
        .collect();
    let blobs: Vec<Digest> = list("blobs").iter().map(|b| digest(&b["digest"])).collect();
    let collected = Collected {
        manifests: manifests.iter().cloned().collect(),
        blobs: blobs.iter().cloned().collect(),
    };
    assert_eq!(
        collected.manifests.len(),
        manifests.len(),
        "a manifest twice"
    );
    assert_eq!(collected.blobs.len(), blobs.len(), "a blob twice");
    LayerstoreRun {
        repositories: report["repositories"].as_u64().unwrap() as usize,
        kept_young: report["kept_young"].as_u64().unwrap(),
        kept_touched: report["kept_touched"].as_u64().unwrap(),
        collected,
    }
}

/// `layerstore gc --offline --grace 0s` for real on a copy of `root`: it deletes what its dry
/// run listed, what the model says is live is all there for the store API, fsck and
/// distribution, and distribution's own dry run afterwards finds only what layerstore's extra
/// rules kept.
fn collect_for_real(model: &Model, root: &Path, delete_untagged: bool, dry: &Collected) {
    let seed = model.seed;
    let copy = tempfile::tempdir().unwrap();
    copy_dir(root, copy.path());
    // The copies are new files; the run keeps anything as new as its own claim file.
    age_everything(copy.path(), Duration::from_secs(3600));
    let mut args = vec!["--offline", "--grace", "0s"];
    if delete_untagged {
        args.push("--delete-untagged");
    }
    let run = layerstore_gc(copy.path(), &args);
    let what = format!("seed {seed}, real run {args:?}");
    assert_eq!((run.kept_young, run.kept_touched), (0, 0), "{what}");
    assert_eq!(&run.collected, dry, "{what}: not what its dry run listed");

    let store = Store::filesystem(copy.path());
    assert_live_content(model, &store, delete_untagged, &what);
    for (repo, digest) in &run.collected.manifests {
        let reference = Reference::Digest(digest.clone());
        let repo = gc_support::repo(repo);
        assert!(
            store.get_manifest(&repo, &reference).is_err(),
            "{what}: {digest} in {repo} stayed"
        );
    }
    for blob in &run.collected.blobs {
        assert!(!gc_support::stored(&store, blob), "{what}: {blob} stayed");
    }
    fsck(copy.path(), &what);

    let after = distribution_dry_run(copy.path(), delete_untagged);
    let extra = extra_kept(model, delete_untagged);
    assert_eq!(
        after.collected, extra,
        "{what}: distribution's dry run afterwards"
    );
    served_by_distribution(model, copy.path(), delete_untagged, &what);
}

/// Every manifest the model says is live can be read by digest (and by each tag naming it),
/// with each of its blobs and children, through its repository.
fn assert_live_content(model: &Model, store: &Store, delete_untagged: bool, what: &str) {
    for repo in &model.repos {
        let live = model.live(repo, delete_untagged, Rules::Layerstore);
        for digest in &live {
            let pushed = &model.manifests[digest];
            let content = store
                .get_manifest(&repo.name, &Reference::Digest(digest.clone()))
                .unwrap_or_else(|e| panic!("{what}: {digest} in {}: {e}", repo.name));
            assert_eq!(content.bytes, pushed.json, "{what}");
            for blob in &pushed.blobs {
                let stat = store.stat_blob(&repo.name, blob);
                assert!(stat.is_ok(), "{what}: {}: {stat:?}", model.describe(blob));
            }
            for child in pushed
                .children
                .iter()
                .filter(|c| repo.revisions.contains(*c))
            {
                let child = store.get_manifest(&repo.name, &Reference::Digest(child.clone()));
                assert!(child.is_ok(), "{what}: a child of {digest}");
            }
        }
        for (tag, digest) in repo.tags.iter().filter(|(_, d)| live.contains(*d)) {
            let tagged = store.get_manifest(&repo.name, &Reference::Tag(Tag::parse(tag).unwrap()));
            assert_eq!(
                &tagged.unwrap().digest,
                digest,
                "{what}: {}:{tag}",
                repo.name
            );
        }
    }
}

/// distribution 2.8 serving the collected root answers for every live manifest and its first
/// blob.
fn served_by_distribution(model: &Model, root: &Path, delete_untagged: bool, what: &str) {
    let Some(registry) = RegistryProcess::distribution(root, "gc-distribution") else {
        return;
    };
    let mut checked = 0;
    for repo in &model.repos {
        for digest in model.live(repo, delete_untagged, Rules::Layerstore) {
            let pushed = &model.manifests[&digest];
            let path = format!("/v2/{}/manifests/{digest}", repo.name);
            let reply = common::request(registry.addr, "GET", &path, &[("accept", ACCEPT)], b"");
            assert_eq!(reply.status, 200, "{what}: distribution GET {path}");
            assert_eq!(reply.body, pushed.json, "{what}: distribution GET {path}");
            if let Some(blob) = pushed.blobs.first() {
                let path = format!("/v2/{}/blobs/{blob}", repo.name);
                let reply = common::request(registry.addr, "GET", &path, &[], b"");
                assert_eq!(reply.status, 200, "{what}: distribution GET {path}");
                assert_eq!(&Digest::sha256(&reply.body), blob, "{what}: GET {path}");
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "{what}: nothing live to read");
}

fn fsck(root: &Path, what: &str) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_layerstore"));
    command.arg("fsck").arg("--root").arg(root);
    let output = run_with_timeout(command, Duration::from_secs(60));
    assert!(
        output.status.success(),
        "{what}: fsck found problems:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
