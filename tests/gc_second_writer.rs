//! A race tests/gc_load.rs found (MANIFEST_BLOB_UNKNOWN on pushes whose blobs were all
//! acknowledged, and acknowledged manifests whose blob was then deleted), made deterministic
//! with two writers.
//!
//! A collection has looked at an old unreferenced blob again after claiming it, found it old,
//! and is about to delete it (`GcEvent::Deleting`). Writer A relies on the blob: it touches it
//! and, seeing the claim, waits for the collection. Writer B relies on the same blob a moment
//! later, in a repository that links it: the blob is now younger than the touch interval (A's
//! touch), so B does not touch it. B must still read the claims (and wait) before its push is
//! acknowledged: before commit b806127 it did not, its push was acknowledged, and the
//! collection then deleted the blob and B's link to it under the acknowledged manifest.

mod gc_support;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use gc_support::*;
use parking_lot::Mutex;

use layerstore::names::{Reference, Tag};
use layerstore::storage::DriverPath;
use layerstore::store::gc::{GcEvent, GcObserver};
use layerstore::store::{GcOptions, Store};
use layerstore::Digest;

const LAYER: &[u8] = b"a base layer nothing references any more";

/// At the `Deleting` event naming the layer: writer A, then writer B, each on a thread; the
/// collection goes on once A has touched the layer and B has finished or had half a second
/// (enough to look at the layer and reach the claims).
struct TwoWriters {
    store: Store,
    layer: Digest,
    data: std::path::PathBuf,
    target: String,
    writers: Mutex<Vec<std::thread::JoinHandle<Option<Digest>>>>,
}

impl GcObserver for TwoWriters {
    fn event(&self, event: GcEvent<'_>) {
        let GcEvent::Deleting { paths } = event else {
            return;
        };
        if !paths.iter().any(|p: &DriverPath| p.as_str() == self.target) {
            return;
        }
        // A: uploads the layer's bytes again (the registry dedupes onto the old blob: touch,
        // then wait for the claim).
        let store = self.store.clone();
        let a = std::thread::spawn(move || {
            put_blob(&store, &repo("writer-a"), LAYER);
            None
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !is_fresh(&self.data) {
            assert!(
                Instant::now() < deadline,
                "writer A never touched the layer"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // B: a push to a repository that links the layer, relying on it.
        let (store, layer) = (self.store.clone(), self.layer.clone());
        let b = std::thread::spawn(move || push_b(&store, &layer));
        let deadline = Instant::now() + Duration::from_millis(500);
        while !b.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.writers.lock().extend([a, b]);
    }
}

/// Writer B's push: the manifest's digest if acknowledged.
fn push_b(store: &Store, layer: &Digest) -> Option<Digest> {
    let config = put_blob(store, &repo("writer-b"), b"config of B");
    let json = image_json((&config, 11), &[(layer.clone(), LAYER.len())], None);
    let tag = Reference::Tag(Tag::parse("v1").unwrap());
    store
        .put_manifest(&repo("writer-b"), &tag, Some(OCI_MANIFEST), &json, &[])
        .ok()
        .map(|stored| stored.digest)
}

fn is_fresh(file: &std::path::Path) -> bool {
    std::fs::metadata(file)
        .and_then(|m| m.modified())
        .is_ok_and(|t| {
            SystemTime::now().duration_since(t).unwrap_or_default() < Duration::from_secs(60)
        })
}

#[test]
fn a_push_relying_on_a_blob_another_writer_touched_after_the_decision_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::filesystem(dir.path()).with_touch_after(Duration::from_secs(2));
    // The layer, unreferenced, linked in writer-b's repository (an earlier push there, since
    // deleted), everything an hour old.
    let image = push_image(
        &store,
        &repo("writer-b"),
        &[b"old config", LAYER],
        Some("old"),
    );
    store
        .delete_manifest(&repo("writer-b"), &image.digest)
        .unwrap();
    age_everything(dir.path(), Duration::from_secs(3600));
    let layer = image.blobs[1].clone();
    let target = format!(
        "/docker/registry/v2/blobs/sha256/{}/{}/data",
        &layer.hex()[..2],
        layer.hex()
    );
    let hook = Arc::new(TwoWriters {
        store: store.clone(),
        layer: layer.clone(),
        data: dir.path().join(target.trim_start_matches('/')),
        target,
        writers: Mutex::new(Vec::new()),
    });
    let options = GcOptions {
        grace: Duration::from_secs(8),
        observer: Some(hook.clone() as Arc<dyn GcObserver>),
        ..GcOptions::default()
    };
    store.collect_garbage(&options).unwrap();
    let writers: Vec<_> = hook.writers.lock().drain(..).collect();
    assert_eq!(
        writers.len(),
        2,
        "the collection never got to deleting the layer"
    );
    let pushed: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    // B may be refused (the layer is going), but if it was acknowledged, its layer must stay.
    if let Some(manifest) = &pushed[1] {
        let repo = repo("writer-b");
        assert!(
            store
                .get_manifest(&repo, &Reference::Digest(manifest.clone()))
                .is_ok(),
            "the acknowledged manifest is gone"
        );
        assert!(
            store.stat_blob(&repo, &layer).is_ok(),
            "{layer}, referenced by the acknowledged {repo}@{manifest}, is gone from {repo}"
        );
    }
    assert_fsck_clean(&store);
}
