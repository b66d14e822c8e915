//! The race table of docs/gc.md, row by row: each write that can race a collection, run at
//! each point of a collection, deterministically.
//!
//! The collection calls its observer at every step and waits for it, so a test puts the write
//! exactly there: before the mark, between mark and sweep, after a batch is claimed (before
//! the collection looks at the batch again), after it looked (just before it deletes), and
//! after the run. At the last two claimed points the write runs on its own thread, because it
//! waits for the collection's decision; the observer returns once the write has touched what
//! it relies on, so the order of the two is fixed.
//!
//! Every row checks the one invariant that matters, whatever the point: a write that was
//! acknowledged has everything it relies on stored, and fsck is clean. Then each row checks
//! the outcome the table promises at that point.

mod gc_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use gc_support::*;
use parking_lot::Mutex;

use layerstore::names::{Reference, RepositoryName, Tag};
use layerstore::store::gc::{GcEvent, GcObserver};
use layerstore::store::{GcOptions, Store, StoreError};
use layerstore::Digest;

/// Where in a collection the write happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Point {
    BeforeMark,
    AfterMark,
    AfterClaim,
    BeforeDelete,
    AfterRun,
}

const POINTS: [Point; 5] = [
    Point::BeforeMark,
    Point::AfterMark,
    Point::AfterClaim,
    Point::BeforeDelete,
    Point::AfterRun,
];

/// What a write acknowledged (manifests to check), or its error.
type Outcome = Result<Vec<(RepositoryName, Digest)>, StoreError>;

/// The write under test.
type Write = Box<dyn FnOnce() -> Outcome + Send>;

/// A store whose files are all an hour old, writers that touch after 2 s, a collection with
/// an 8 s grace: everything old is garbage unless marked or touched.
struct Scene {
    dir: tempfile::TempDir,
    store: Store,
}

impl Scene {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::filesystem(dir.path()).with_touch_after(Duration::from_secs(2));
        Scene { dir, store }
    }

    fn age(&self) {
        age_everything(self.dir.path(), Duration::from_secs(3600));
    }

    fn file(&self, path: &str) -> PathBuf {
        self.dir.path().join(path.trim_start_matches('/'))
    }

    fn blob_path(digest: &Digest) -> String {
        format!(
            "/docker/registry/v2/blobs/sha256/{}/{}/data",
            &digest.hex()[..2],
            digest.hex()
        )
    }

    fn revision_path(repo: &RepositoryName, digest: &Digest) -> String {
        format!(
            "/docker/registry/v2/repositories/{repo}/_manifests/revisions/sha256/{}/link",
            digest.hex()
        )
    }
}

/// Runs one collection with `write` at `point`; `target` is the claimed file the claimed
/// points wait on. Returns the write's outcome.
fn race(scene: &Scene, delete_untagged: bool, point: Point, target: &str, write: Write) -> Outcome {
    let hook = Arc::new(Hook {
        point,
        target: target.to_owned(),
        file: scene.file(target),
        write: Mutex::new(Some(write)),
        outcome: Mutex::new(None),
        thread: Mutex::new(None),
    });
    let options = GcOptions {
        grace: Duration::from_secs(8),
        delete_untagged,
        batch_size: 1000,
        observer: Some(hook.clone() as Arc<dyn GcObserver>),
        ..GcOptions::default()
    };
    scene.store.collect_garbage(&options).unwrap();
    if point == Point::AfterRun {
        hook.run_here();
    }
    if let Some(thread) = hook.thread.lock().take() {
        *hook.outcome.lock() = Some(thread.join().unwrap());
    }
    let outcome = hook.outcome.lock().take();
    outcome.expect("the write ran")
}

struct Hook {
    point: Point,
    target: String,
    file: PathBuf,
    write: Mutex<Option<Write>>,
    outcome: Mutex<Option<Outcome>>,
    thread: Mutex<Option<std::thread::JoinHandle<Outcome>>>,
}

impl Hook {
    fn run_here(&self) {
        if let Some(write) = self.write.lock().take() {
            *self.outcome.lock() = Some(write());
        }
    }

    /// Starts the write on a thread and returns once it touched the target (it then waits
    /// for the collection) or finished.
    fn run_beside(&self) {
        let Some(write) = self.write.lock().take() else {
            return;
        };
        let handle = std::thread::spawn(write);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !handle.is_finished() && !is_fresh(&self.file) {
            assert!(
                Instant::now() < deadline,
                "the write never touched {}",
                self.target
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // The touch is visible; give the write the moment it needs to read the claims.
        std::thread::sleep(Duration::from_millis(100));
        *self.thread.lock() = Some(handle);
    }
}

impl GcObserver for Hook {
    fn event(&self, event: GcEvent<'_>) {
        let names_target = |paths: &[layerstore::storage::DriverPath]| {
            paths.iter().any(|p| p.as_str() == self.target)
        };
        match (self.point, event) {
            (Point::BeforeMark, GcEvent::Started) | (Point::AfterMark, GcEvent::Marked) => {
                self.run_here()
            }
            (Point::AfterClaim, GcEvent::Claimed { paths }) if names_target(paths) => {
                self.run_beside()
            }
            (Point::BeforeDelete, GcEvent::Deleting { paths }) if names_target(paths) => {
                self.run_beside()
            }
            _ => {}
        }
    }
}

fn is_fresh(file: &Path) -> bool {
    std::fs::metadata(file)
        .and_then(|m| m.modified())
        .is_ok_and(|t| {
            SystemTime::now().duration_since(t).unwrap_or_default() < Duration::from_secs(60)
        })
}

/// The invariant: every acknowledged manifest reads back, with every blob it references.
fn assert_acknowledged_intact(store: &Store, acknowledged: &[(RepositoryName, Digest)]) {
    for (repo, digest) in acknowledged {
        let content = store
            .get_manifest(repo, &Reference::Digest(digest.clone()))
            .unwrap_or_else(|e| panic!("acknowledged {repo}@{digest} is gone: {e}"));
        let json: serde_json::Value = serde_json::from_slice(&content.bytes).unwrap();
        let mut digests = Vec::new();
        if let Some(config) = json.get("config") {
            digests.push(config["digest"].as_str().unwrap().to_owned());
        }
        for key in ["layers", "manifests"] {
            for d in json
                .get(key)
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                digests.push(d["digest"].as_str().unwrap().to_owned());
            }
        }
        for d in digests {
            let d = Digest::parse(&d).unwrap();
            let present = store.stat_blob(repo, &d).is_ok()
                || store
                    .get_manifest(repo, &Reference::Digest(d.clone()))
                    .is_ok();
            assert!(
                present,
                "{d}, referenced by acknowledged {repo}@{digest}, is gone"
            );
        }
    }
    assert_fsck_clean(store);
}

fn refused_for_missing_blob(outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Err(StoreError::ManifestBlobUnknown(_)) | Err(StoreError::BlobUnknown(_))
    )
}

/// Row 1: a manifest push that relies on an old blob nothing references (the client's HEAD
/// found it, so it did not upload it again).
#[test]
fn push_of_a_manifest_relying_on_an_old_unreferenced_blob() {
    for point in POINTS {
        let scene = Scene::new();
        let app = repo("app");
        let old = push_image(&scene.store, &app, &[b"config", b"base layer"], None);
        scene.store.delete_manifest(&app, &old.digest).unwrap();
        scene.age();
        let base = old.blobs[1].clone();
        let store = scene.store.clone();
        let write: Write = Box::new(move || {
            let config = put_blob(&store, &repo("app"), b"new config");
            let json = image_json((&config, 10), &[(base, 10)], None);
            let digest = Digest::sha256(&json);
            let tag = Reference::Tag(Tag::parse("v2").unwrap());
            store.put_manifest(&repo("app"), &tag, Some(OCI_MANIFEST), &json, &[])?;
            Ok(vec![(repo("app"), digest)])
        });
        let outcome = race(
            &scene,
            false,
            point,
            &Scene::blob_path(&old.blobs[1]),
            write,
        );
        check(
            &scene,
            point,
            &outcome,
            &[Point::BeforeDelete, Point::AfterRun],
        );
    }
}

/// Row 2: an upload of a blob whose bytes are already stored, old and unreferenced.
#[test]
fn upload_of_a_blob_already_stored_and_unreferenced() {
    for point in POINTS {
        let scene = Scene::new();
        let app = repo("app");
        let old = put_blob(&scene.store, &app, b"layer pushed long ago");
        scene.age();
        let store = scene.store.clone();
        let digest = old.clone();
        let write: Write = Box::new(move || {
            put_blob(&store, &repo("other"), b"layer pushed long ago");
            let config = put_blob(&store, &repo("other"), b"cfg");
            let json = image_json((&config, 3), &[(digest, 21)], None);
            let manifest = Digest::sha256(&json);
            let tag = Reference::Tag(Tag::parse("v1").unwrap());
            store.put_manifest(&repo("other"), &tag, Some(OCI_MANIFEST), &json, &[])?;
            Ok(vec![(repo("other"), manifest)])
        });
        let outcome = race(&scene, false, point, &Scene::blob_path(&old), write);
        // The upload brings its own copy of the bytes: accepted at every point.
        check(&scene, point, &outcome, &[]);
        assert!(scene.store.stat_global(&old).is_ok(), "{point:?}");
    }
}

/// Row 3: a cross-repository mount of an old unreferenced blob, then a manifest using it.
#[test]
fn mount_of_an_old_unreferenced_blob() {
    for point in POINTS {
        let scene = Scene::new();
        let old = put_blob(&scene.store, &repo("source"), b"mounted layer");
        scene.age();
        let store = scene.store.clone();
        let digest = old.clone();
        let write: Write = Box::new(move || {
            store.mount_blob(&repo("source"), &repo("dest"), &digest)?;
            let config = put_blob(&store, &repo("dest"), b"cfg");
            let json = image_json((&config, 3), &[(digest, 13)], None);
            let manifest = Digest::sha256(&json);
            let tag = Reference::Tag(Tag::parse("v1").unwrap());
            store.put_manifest(&repo("dest"), &tag, Some(OCI_MANIFEST), &json, &[])?;
            Ok(vec![(repo("dest"), manifest)])
        });
        let outcome = race(&scene, false, point, &Scene::blob_path(&old), write);
        check(
            &scene,
            point,
            &outcome,
            &[Point::BeforeDelete, Point::AfterRun],
        );
    }
}

/// Row 4 (`delete_untagged`): tagging an old untagged manifest.
#[test]
fn tagging_an_old_untagged_manifest() {
    for point in POINTS {
        let scene = Scene::new();
        let app = repo("app");
        let image = push_image(&scene.store, &app, &[b"cfg", b"layer"], None);
        let json = image_json((&image.blobs[0], 3), &[(image.blobs[1].clone(), 5)], None);
        scene.age();
        let store = scene.store.clone();
        let digest = image.digest.clone();
        let write: Write = Box::new(move || {
            let tag = Reference::Tag(Tag::parse("rescued").unwrap());
            store.put_manifest(&repo("app"), &tag, Some(OCI_MANIFEST), &json, &[])?;
            Ok(vec![(repo("app"), digest)])
        });
        let target = Scene::revision_path(&app, &image.digest);
        let outcome = race(&scene, true, point, &target, write);
        check(&scene, point, &outcome, &[Point::AfterRun]);
    }
}

/// Row 5 (`delete_untagged`): an index that makes old untagged manifests its children.
#[test]
fn an_index_over_old_untagged_manifests() {
    for point in POINTS {
        let scene = Scene::new();
        let app = repo("app");
        let child = push_image(&scene.store, &app, &[b"cfg", b"layer"], None);
        scene.age();
        let store = scene.store.clone();
        let child_copy = child.clone();
        let write: Write = Box::new(move || {
            let index = push_index_checked(&store, &repo("app"), &child_copy)?;
            Ok(vec![
                (repo("app"), index),
                (repo("app"), child_copy.digest.clone()),
            ])
        });
        let target = Scene::revision_path(&app, &child.digest);
        let outcome = race(&scene, true, point, &target, write);
        check(
            &scene,
            point,
            &outcome,
            &[Point::BeforeDelete, Point::AfterRun],
        );
    }
}

/// Row 6 (`delete_untagged`): tagging an old untagged manifest that has an old untagged
/// referrer (a signature): the referrer becomes live with it.
#[test]
fn tagging_a_manifest_brings_its_old_referrer_back_to_life() {
    for point in [Point::BeforeMark, Point::AfterMark] {
        let scene = Scene::new();
        let app = repo("app");
        let image = push_image(&scene.store, &app, &[b"cfg", b"layer"], None);
        let signature = push_image_with_subject(
            &scene.store,
            &app,
            &[b"sig cfg", b"sig"],
            None,
            Some(&image),
        );
        let json = image_json((&image.blobs[0], 3), &[(image.blobs[1].clone(), 5)], None);
        scene.age();
        let store = scene.store.clone();
        let (digest, sig) = (image.digest.clone(), signature.digest.clone());
        let write: Write = Box::new(move || {
            let tag = Reference::Tag(Tag::parse("signed").unwrap());
            store.put_manifest(&repo("app"), &tag, Some(OCI_MANIFEST), &json, &[])?;
            Ok(vec![(repo("app"), digest), (repo("app"), sig)])
        });
        let target = Scene::revision_path(&app, &image.digest);
        let outcome = race(&scene, true, point, &target, write);
        check(&scene, point, &outcome, &[]);
        assert_eq!(scene.store.referrers(&app, &image.digest).unwrap().len(), 1);
    }
}

/// Row 7: deleting a manifest while a collection runs only makes less live; what it leaves
/// unreferenced goes at the next run.
#[test]
fn deleting_during_a_run_defers_to_the_next() {
    let scene = Scene::new();
    let app = repo("app");
    let image = push_image(&scene.store, &app, &[b"cfg", b"layer"], Some("v1"));
    scene.age();
    let store = scene.store.clone();
    let digest = image.digest.clone();
    let write: Write = Box::new(move || {
        store.delete_manifest(&repo("app"), &digest)?;
        Ok(Vec::new())
    });
    race(&scene, false, Point::AfterMark, "", write).unwrap();
    assert!(image.blobs.iter().all(|b| stored(&scene.store, b)));
    let report = collect(&scene.store, false);
    assert_eq!(report.blobs.len(), 3);
    assert_fsck_clean(&scene.store);
}

/// Row 8: an upload in progress (checkpointed chunks) is not idle, so its session stays at
/// every point, and its commit after the run succeeds.
#[test]
fn an_upload_in_progress_survives_a_run() {
    let scene = Scene::new();
    let app = repo("app");
    let mut upload = scene.store.create_upload(&app).unwrap();
    upload.append(b"first chunk, ").unwrap();
    upload.checkpoint().unwrap();
    let id = upload.id().clone();
    drop(upload);
    scene.age(); // an hour idle: far below the default upload_idle of a day
    let report = collect(&scene.store, false);
    assert!(report.upload_dirs.is_empty());
    let mut upload = scene.store.resume_upload(&app, &id).unwrap();
    upload.append(b"second chunk").unwrap();
    let digest = Digest::sha256(b"first chunk, second chunk");
    upload.commit(&digest, None).unwrap();
    assert!(stored(&scene.store, &digest));
}

/// Pushes a tagged index over `child`, reporting the store's error instead of panicking.
fn push_index_checked(
    store: &Store,
    repo: &RepositoryName,
    child: &Image,
) -> Result<Digest, StoreError> {
    let json = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": child.digest.to_string(), "size": child.size}],
    }))
    .unwrap();
    let tag = Reference::Tag(Tag::parse("multi").unwrap());
    Ok(store
        .put_manifest(repo, &tag, Some(OCI_INDEX), &json, &[])?
        .digest)
}

/// The invariant, then the row's promise: refused (for a missing blob) exactly at the
/// `refused_at` points, accepted elsewhere.
fn check(scene: &Scene, point: Point, outcome: &Outcome, refused_at: &[Point]) {
    if let Ok(acknowledged) = outcome {
        assert_acknowledged_intact(&scene.store, acknowledged);
    } else {
        assert_fsck_clean(&scene.store);
    }
    if refused_at.contains(&point) {
        assert!(
            refused_for_missing_blob(outcome),
            "{point:?}: expected a refusal for a deleted blob, got {outcome:?}"
        );
    } else {
        assert!(
            outcome.is_ok(),
            "{point:?}: expected acceptance, got {outcome:?}"
        );
    }
}
