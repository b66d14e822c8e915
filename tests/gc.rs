//! Garbage collection through the store API: what is kept, what goes, and that the store is
//! consistent afterwards.

mod gc_support;

use std::time::Duration;

use gc_support::*;
use layerstore::names::{Reference, Tag};
use layerstore::store::{GcOptions, Store};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::filesystem(dir.path());
    (dir, store)
}

#[test]
fn unreferenced_blobs_and_their_links_go_and_referenced_ones_stay() {
    let (_dir, store) = store();
    let app = repo("team/app");
    let image = push_image(
        &store,
        &app,
        &[b"config", b"layer one", b"layer two"],
        Some("v1"),
    );
    let orphan = put_blob(&store, &app, b"pushed, never referenced");
    let report = collect(&store, false);
    assert_eq!(report.blobs.len(), 1, "{report:?}");
    assert_eq!(report.blobs[0].digest, orphan);
    assert_eq!(report.bytes_freed, 24);
    assert_eq!(report.links.len(), 1);
    assert!(!stored(&store, &orphan));
    assert!(store.stat_blob(&app, &orphan).is_err());
    for blob in image.blobs.iter().chain([&image.digest]) {
        assert!(stored(&store, blob), "{blob} was deleted");
    }
    assert_eq!(report.repositories, 1);
    assert_eq!(report.manifests_live, 1);
    assert_fsck_clean(&store);
}

#[test]
fn a_blob_shared_with_a_live_image_in_another_repository_stays() {
    let (_dir, store) = store();
    let (a, b) = (repo("a"), repo("b"));
    let kept = push_image(&store, &a, &[b"config a", b"shared"], Some("latest"));
    let gone = push_image(&store, &b, &[b"config b", b"shared"], Some("latest"));
    store.delete_manifest(&b, &gone.digest).unwrap();
    let report = collect(&store, false);
    let deleted: Vec<_> = report.blobs.iter().map(|b| b.digest.clone()).collect();
    assert!(deleted.contains(&gone.digest) && deleted.contains(&gone.blobs[0]));
    assert!(stored(&store, &kept.blobs[1]), "the shared layer went");
    assert!(stored(&store, &kept.blobs[0]));
    assert_fsck_clean(&store);
}

#[test]
fn nothing_within_the_grace_window_goes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::filesystem(dir.path());
    let app = repo("app");
    let young = put_blob(&store, &app, b"young");
    let old = put_blob(&store, &app, b"old");
    let old_path = dir.path().join(format!(
        "docker/registry/v2/blobs/sha256/{}/{}",
        &old.hex()[..2],
        old.hex()
    ));
    let when = std::time::SystemTime::now() - Duration::from_secs(3 * 3600);
    std::fs::File::options()
        .write(true)
        .open(old_path.join("data"))
        .unwrap()
        .set_modified(when)
        .unwrap();
    let report = store.collect_garbage(&GcOptions::default()).unwrap();
    assert_eq!(report.blobs.len(), 1);
    assert_eq!(report.blobs[0].digest, old);
    assert_eq!(report.kept_young, 1);
    assert!(stored(&store, &young));
    assert_fsck_clean(&store);
}

#[test]
fn a_dry_run_deletes_nothing_and_reports_what_would_go() {
    let (dir, store) = store();
    let app = repo("app");
    push_image(&store, &app, &[b"c", b"l"], None);
    put_blob(&store, &app, b"orphan");
    let before = files(dir.path());
    let report = store
        .collect_garbage(&GcOptions {
            dry_run: true,
            delete_untagged: true,
            grace: Duration::ZERO,
            ..GcOptions::default()
        })
        .unwrap();
    assert_eq!(
        files(dir.path()),
        before,
        "a dry run wrote or deleted something"
    );
    assert!(report.dry_run);
    assert_eq!(report.manifests.len(), 1);
    assert_eq!(report.blobs.len(), 4); // orphan, config, layer, manifest bytes
    assert!(report.links.len() >= 3);
}

#[test]
fn delete_untagged_keeps_tagged_images_children_of_tagged_indexes_and_their_referrers() {
    let (_dir, store) = store();
    let app = repo("app");
    let amd = push_image(&store, &app, &[b"cfg amd", b"amd layer"], None);
    let arm = push_image(&store, &app, &[b"cfg arm", b"arm layer"], None);
    let index = push_index(&store, &app, &[&amd, &arm], Some("multi"));
    let signature = push_image_with_subject(&store, &app, &[b"sig cfg", b"sig"], None, Some(&amd));
    let untagged = push_image(&store, &app, &[b"cfg old", b"old layer"], None);
    let stale_sig = push_image_with_subject(
        &store,
        &app,
        &[b"stale cfg", b"stale"],
        None,
        Some(&untagged),
    );
    let report = collect(&store, true);
    let deleted: Vec<_> = report.manifests.iter().map(|m| m.digest.clone()).collect();
    assert_eq!(deleted.len(), 2, "{deleted:?}");
    assert!(deleted.contains(&untagged.digest) && deleted.contains(&stale_sig.digest));
    for image in [&amd, &arm, &index, &signature] {
        assert!(stored(&store, &image.digest));
        for blob in &image.blobs {
            assert!(stored(&store, blob), "{blob} of a live image went");
        }
        let by_digest = Reference::Digest(image.digest.clone());
        assert!(store.get_manifest(&app, &by_digest).is_ok());
    }
    for image in [&untagged, &stale_sig] {
        assert!(!stored(&store, &image.digest));
        assert!(image.blobs.iter().all(|b| !stored(&store, b)));
    }
    let referrers = store.referrers(&app, &amd.digest).unwrap();
    assert_eq!(referrers.len(), 1);
    assert!(store.referrers(&app, &untagged.digest).unwrap().is_empty());
    assert_fsck_clean(&store);
}

#[test]
fn delete_untagged_clears_the_tag_history_of_what_it_deletes() {
    let (_dir, store) = store();
    let app = repo("app");
    let first = push_image(&store, &app, &[b"cfg 1", b"layer 1"], Some("latest"));
    let second = push_image(&store, &app, &[b"cfg 2", b"layer 2"], Some("latest"));
    let report = collect(&store, true);
    assert_eq!(report.manifests.len(), 1);
    assert_eq!(report.manifests[0].digest, first.digest);
    let latest = Reference::Tag(Tag::parse("latest").unwrap());
    assert_eq!(
        store.get_manifest(&app, &latest).unwrap().digest,
        second.digest
    );
    assert_fsck_clean(&store);
}

#[test]
fn without_delete_untagged_every_revision_is_kept() {
    let (_dir, store) = store();
    let app = repo("app");
    let untagged = push_image(&store, &app, &[b"cfg", b"layer"], None);
    let report = collect(&store, false);
    assert!(
        report.blobs.is_empty() && report.manifests.is_empty(),
        "{report:?}"
    );
    assert!(untagged.blobs.iter().all(|b| stored(&store, b)));
}

#[test]
fn idle_upload_sessions_go_and_active_ones_stay() {
    let (dir, store) = store();
    let app = repo("app");
    let mut idle = store.create_upload(&app).unwrap();
    idle.append(b"abandoned").unwrap();
    idle.checkpoint().unwrap();
    drop(idle);
    age_everything(
        &dir.path()
            .join("docker/registry/v2/repositories/app/_uploads"),
        Duration::from_secs(48 * 3600),
    );
    let mut active = store.create_upload(&app).unwrap();
    active.append(b"still writing").unwrap();
    active.checkpoint().unwrap();
    let report = collect(&store, false);
    assert_eq!(report.upload_dirs.len(), 1, "{report:?}");
    drop(active);
    let report = collect(&store, false);
    assert!(
        report.upload_dirs.is_empty(),
        "the active session went: {report:?}"
    );
}

#[test]
fn a_second_run_finds_nothing_left() {
    let (_dir, store) = store();
    let app = repo("app");
    push_image(&store, &app, &[b"cfg", b"layer"], None);
    put_blob(&store, &app, b"orphan");
    let first = collect(&store, true);
    assert!(!first.blobs.is_empty());
    let second = collect(&store, true);
    assert!(second.blobs.is_empty() && second.manifests.is_empty() && second.links.is_empty());
    assert_fsck_clean(&store);
}

#[test]
fn the_in_memory_driver_collects_too() {
    let store = Store::in_memory();
    let app = repo("app");
    let image = push_image(&store, &app, &[b"cfg", b"layer"], Some("v1"));
    let orphan = put_blob(&store, &app, b"orphan");
    let report = collect(&store, false);
    assert_eq!(report.blobs.len(), 1);
    assert!(!stored(&store, &orphan));
    assert!(image.blobs.iter().all(|b| stored(&store, b)));
    assert_fsck_clean(&store);
}

fn files(root: &std::path::Path) -> Vec<(std::path::PathBuf, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.clone(), entry.metadata().unwrap().modified().unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn deleting_a_manifest_pushed_by_sha512_removes_its_alias_too() {
    let (_dir, store) = store();
    let app = repo("app");
    let config = put_blob(&store, &app, b"cfg");
    let json = image_json((&config, 3), &[], None);
    let mut hasher = layerstore::hash::Hasher::new(layerstore::digest::HashAlgorithm::Sha512);
    hasher.update(&json);
    let alias = hasher.digest();
    let stored = store
        .put_manifest(
            &app,
            &Reference::Digest(alias.clone()),
            Some(OCI_MANIFEST),
            &json,
            &[],
        )
        .unwrap();
    store.delete_manifest(&app, &stored.digest).unwrap();
    assert!(store.get_manifest(&app, &Reference::Digest(alias)).is_err());
    let report = collect(&store, false);
    assert_eq!(report.blobs.len(), 2, "{report:?}"); // the manifest's bytes and its config
    assert_fsck_clean(&store);
}
