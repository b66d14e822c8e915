//! The blob store on real files (and on the in-memory driver): uploads, resume, commit,
//! verification, links, ranges, mounts, concurrency, purge and fsck.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use layerstore::digest::{Digest, HashAlgorithm};
use layerstore::hash::Hasher;
use layerstore::names::{RepositoryName, UploadId};
use layerstore::storage::{DriverPath, PathSpec, StorageDriver};
use layerstore::store::{BlobBody, ByteRange, Store, StoreError};

fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

fn sha512(bytes: &[u8]) -> Digest {
    let mut h = Hasher::new(HashAlgorithm::Sha512);
    h.update(bytes);
    h.digest()
}

/// Deterministic pseudo-random bytes (xorshift), so tests need no data files.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn read_blob(store: &Store, r: Option<&RepositoryName>, d: &Digest) -> Vec<u8> {
    let (_, body) = store.open_blob(r, d).unwrap();
    let mut out = Vec::new();
    body.write_to(None, &mut out).unwrap();
    out
}

fn exists(driver: &dyn StorageDriver, path: DriverPath) -> bool {
    driver.stat(&path).is_ok()
}

// ---- behaviour run on both drivers ------------------------------------------------------

fn upload_resume_commit(store: &Store) {
    let r = repo("library/app");
    let data = bytes(1, 3 << 20);
    let mut up = store.create_upload(&r).unwrap();
    let id = up.id().clone();
    up.append(&data[..1000]).unwrap();
    up.checkpoint().unwrap();
    up.append(&data[1000..1_500_000]).unwrap(); // not checkpointed: resume hashes the gap
    drop(up);
    assert_eq!(store.upload_status(&r, &id).unwrap().offset, 1_500_000);

    let mut up = store.resume_upload(&r, &id).unwrap();
    assert_eq!(up.offset(), 1_500_000);
    up.append_from(&mut &data[1_500_000..]).unwrap();
    let d = Digest::sha256(&data);
    let info = up.commit(&d, Some(data.len() as u64)).unwrap();
    assert_eq!(
        (info.digest.clone(), info.size),
        (d.clone(), data.len() as u64)
    );

    assert_eq!(read_blob(store, Some(&r), &d), data);
    assert_eq!(store.stat_blob(&r, &d).unwrap(), info);
    let session = PathSpec::UploadDir { repo: &r, id: &id }.to_path().unwrap();
    assert!(
        !exists(&**store.driver(), session),
        "session deleted after commit"
    );
    assert!(matches!(
        store.resume_upload(&r, &id),
        Err(StoreError::BlobUploadUnknown(_))
    ));
}

fn wrong_digest_publishes_nothing(store: &Store) {
    let r = repo("a/b");
    let data = b"some bytes".to_vec();
    let wrong = Digest::sha256(b"other bytes");
    let mut up = store.create_upload(&r).unwrap();
    let id = up.id().clone();
    up.append(&data).unwrap();
    match up.commit(&wrong, None) {
        Err(StoreError::DigestInvalid { expected, actual }) => {
            assert_eq!(expected, wrong);
            assert_eq!(actual, Digest::sha256(&data));
        }
        other => panic!("expected DigestInvalid, got {other:?}"),
    }
    for d in [&wrong, &Digest::sha256(&data)] {
        assert!(matches!(
            store.stat_global(d),
            Err(StoreError::BlobUnknown(_))
        ));
        assert!(matches!(
            store.stat_blob(&r, d),
            Err(StoreError::BlobUnknown(_))
        ));
    }
    // The session is kept and still commits with the right digest.
    let up = store.resume_upload(&r, &id).unwrap();
    assert_eq!(up.offset(), data.len() as u64);
    let up2 = up;
    assert!(matches!(
        store.resume_upload(&r, &id),
        Err(StoreError::BlobUploadBusy(_))
    ));
    match up2.commit(&Digest::sha256(&data), Some(3)) {
        Err(StoreError::SizeInvalid {
            expected: 3,
            actual: 10,
        }) => {}
        other => panic!("expected SizeInvalid, got {other:?}"),
    }
    assert!(matches!(
        store.stat_global(&Digest::sha256(&data)),
        Err(StoreError::BlobUnknown(_))
    ));
    let up = store.resume_upload(&r, &id).unwrap();
    up.commit(&Digest::sha256(&data), Some(10)).unwrap();
    assert_eq!(read_blob(store, Some(&r), &Digest::sha256(&data)), data);
}

fn sha512_claim_makes_alias_link(store: &Store) {
    let r = repo("alias");
    let data = bytes(2, 5000);
    let mut up = store.create_upload(&r).unwrap();
    up.append(&data).unwrap();
    let claim = sha512(&data);
    let info = up.commit(&claim, None).unwrap();
    let canonical = Digest::sha256(&data);
    assert_eq!(info.digest, canonical);
    let d = store.driver();
    for link in [
        PathSpec::LayerLink {
            repo: &r,
            digest: &canonical,
        },
        PathSpec::LayerLink {
            repo: &r,
            digest: &claim,
        },
    ] {
        assert_eq!(
            d.get_content(&link.to_path().unwrap()).unwrap(),
            canonical.to_string().as_bytes()
        );
    }
    assert!(!exists(
        &**d,
        PathSpec::BlobData { digest: &claim }.to_path().unwrap()
    ));
    assert_eq!(
        read_blob(store, Some(&r), &claim),
        data,
        "read through the alias"
    );
    // A wrong sha512 claim publishes nothing.
    let mut up = store.create_upload(&r).unwrap();
    up.append(b"zzz").unwrap();
    assert!(matches!(
        up.commit(&sha512(b"yyy"), None),
        Err(StoreError::DigestInvalid { .. })
    ));
    assert!(store.stat_global(&Digest::sha256(b"zzz")).is_err());
}

fn empty_blob(store: &Store) {
    let r = repo("empty");
    let up = store.create_upload(&r).unwrap();
    let d = Digest::sha256(b"");
    let info = up.commit(&d, Some(0)).unwrap();
    assert_eq!(info.size, 0);
    let (_, body) = store.open_blob(Some(&r), &d).unwrap();
    assert!(body.is_empty());
    assert!(body.full_range().is_none());
    assert!(matches!(
        body.reader(Some(ByteRange { start: 0, end: 0 })),
        Err(StoreError::RangeInvalid { size: 0, .. })
    ));
}

fn ranges(store: &Store) {
    let r = repo("ranges");
    let data = bytes(3, 100_000);
    let mut up = store.create_upload(&r).unwrap();
    up.append(&data).unwrap();
    let d = Digest::sha256(&data);
    up.commit(&d, None).unwrap();
    let (_, body) = store.open_blob(Some(&r), &d).unwrap();
    for (start, end) in [(0u64, 0u64), (10, 99), (99_999, 99_999), (0, 99_999)] {
        let mut out = Vec::new();
        body.write_to(Some(ByteRange { start, end }), &mut out)
            .unwrap();
        assert_eq!(out, &data[start as usize..=end as usize]);
    }
    for (start, end) in [(5u64, 4u64), (0, 100_000), (100_000, 100_001)] {
        assert!(matches!(
            body.write_to(Some(ByteRange { start, end }), &mut Vec::new()),
            Err(StoreError::RangeInvalid { .. })
        ));
    }
}

fn dedupe_mount_unlink(store: &Store) {
    let (a, b, c) = (repo("a"), repo("b"), repo("c"));
    let data = bytes(4, 2048);
    let d = Digest::sha256(&data);
    for r in [&a, &b] {
        let mut up = store.create_upload(r).unwrap();
        up.append(&data).unwrap();
        up.commit(&d, None).unwrap();
    }
    assert_eq!(read_blob(store, Some(&b), &d), data);
    assert!(matches!(
        store.stat_blob(&c, &d),
        Err(StoreError::BlobUnknown(_))
    ));
    store.mount_blob(&a, &c, &d).unwrap();
    assert_eq!(read_blob(store, Some(&c), &d), data);
    store.unlink_blob(&a, &d).unwrap();
    assert!(matches!(
        store.stat_blob(&a, &d),
        Err(StoreError::BlobUnknown(_))
    ));
    assert!(matches!(
        store.unlink_blob(&a, &d),
        Err(StoreError::BlobUnknown(_))
    ));
    assert!(matches!(
        store.mount_blob(&a, &c, &d),
        Err(StoreError::BlobUnknown(_))
    ));
    assert_eq!(read_blob(store, None, &d), data, "bytes stay until GC");
}

fn cancel_and_unknown(store: &Store) {
    let r = repo("cancel");
    let mut up = store.create_upload(&r).unwrap();
    up.append(b"abc").unwrap();
    let id = up.id().clone();
    up.cancel().unwrap();
    assert!(matches!(
        store.upload_status(&r, &id),
        Err(StoreError::BlobUploadUnknown(_))
    ));
    assert!(matches!(
        store.cancel_upload(&r, &id),
        Err(StoreError::BlobUploadUnknown(_))
    ));
    let other = UploadId::generate().unwrap();
    assert!(matches!(
        store.resume_upload(&r, &other),
        Err(StoreError::BlobUploadUnknown(_))
    ));
}

fn purge_by_age(store: &Store) {
    let r = repo("purge/me");
    let old = store.create_upload(&r).unwrap();
    let young = store.create_upload(&r).unwrap();
    let (old_id, young_id) = (old.id().clone(), young.id().clone());
    drop((old, young));
    let d = store.driver();
    let started = PathSpec::UploadStartedAt {
        repo: &r,
        id: &old_id,
    }
    .to_path()
    .unwrap();
    d.put_content(&started, b"2001-01-01T00:00:00Z").unwrap();
    // Not a UUID, and a UUID without startedat: never purged.
    let uploads = PathSpec::UploadsDir { repo: &r }.to_path().unwrap();
    d.put_content(
        &uploads
            .join("not-a-uuid")
            .unwrap()
            .join("startedat")
            .unwrap(),
        b"2001-01-01T00:00:00Z",
    )
    .unwrap();
    let orphan = uploads
        .join("00000000-0000-4000-8000-000000000000")
        .unwrap();
    d.put_content(&orphan.join("data").unwrap(), b"x").unwrap();

    let dry = store
        .purge_uploads(Duration::from_secs(3600), SystemTime::now(), true)
        .unwrap();
    assert_eq!(dry.deleted.len(), 1);
    assert!(exists(&**d, started.clone()));
    let report = store
        .purge_uploads(Duration::from_secs(3600), SystemTime::now(), false)
        .unwrap();
    assert_eq!(
        report.deleted,
        [PathSpec::UploadDir {
            repo: &r,
            id: &old_id
        }
        .to_path()
        .unwrap()]
    );
    assert_eq!(report.kept, 1);
    assert_eq!(report.unreadable, std::slice::from_ref(&orphan));
    assert!(!exists(&**d, started));
    assert!(store.upload_status(&r, &young_id).is_ok());
    assert!(exists(&**d, orphan));
    assert!(exists(&**d, uploads.join("not-a-uuid").unwrap()));
}

fn fsck_finds_problems(store: &Store) {
    let r = repo("fsck");
    let good = bytes(5, 4096);
    let bad = bytes(6, 4096);
    for data in [&good, &bad] {
        let mut up = store.create_upload(&r).unwrap();
        up.append(data).unwrap();
        up.commit(&sha512(data), None).unwrap();
    }
    let report = store.fsck(&|_| {}).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!((report.blobs_checked, report.links_checked), (2, 4));

    let d = store.driver();
    let bad_digest = Digest::sha256(&bad);
    let bad_path = PathSpec::BlobData {
        digest: &bad_digest,
    }
    .to_path()
    .unwrap();
    let mut corrupted = bad.clone();
    corrupted[100] ^= 1;
    d.put_content(&bad_path, &corrupted).unwrap();
    let missing = Digest::sha256(b"missing");
    let dangling = PathSpec::LayerLink {
        repo: &r,
        digest: &missing,
    }
    .to_path()
    .unwrap();
    d.put_content(&dangling, missing.to_string().as_bytes())
        .unwrap();
    let good_digest = Digest::sha256(&good);
    let newline = PathSpec::LayerLink {
        repo: &r,
        digest: &good_digest,
    }
    .to_path()
    .unwrap();
    d.put_content(&newline, format!("{good_digest}\n").as_bytes())
        .unwrap();
    let misfiled = PathSpec::ManifestRevisionLink {
        repo: &r,
        digest: &missing,
    }
    .to_path()
    .unwrap();
    d.put_content(&misfiled, good_digest.to_string().as_bytes())
        .unwrap();

    let report = store.fsck(&|_| {}).unwrap();
    let text: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(report.problems.len(), 5, "{text:#?}");
    let has = |needle: &str| text.iter().any(|t| t.contains(needle));
    assert!(has(&format!("corrupt blob {bad_digest}")));
    assert!(has(&format!("dangling link {dangling}")));
    assert!(has(&format!("unreadable link {newline}")));
    assert!(has(&format!("link {misfiled} is filed under {missing}")));
    // The sha512 alias of the corrupted blob no longer matches either.
    assert!(has(&format!("is filed under {}", sha512(&bad))));
}

fn concurrent_uploads(store: &Store) {
    let store = Arc::new(store.clone());
    let shared = bytes(7, 300_000);
    let shared_digest = Digest::sha256(&shared);
    std::thread::scope(|s| {
        for t in 0..6u64 {
            let store = Arc::clone(&store);
            let shared = &shared;
            let shared_digest = &shared_digest;
            s.spawn(move || {
                let r = repo(&format!("team{t}/app"));
                for i in 0..4u64 {
                    // The same blob from every thread, and one of its own.
                    let own = bytes(100 + t * 10 + i, 50_000 + i as usize);
                    for data in [shared, &own] {
                        let mut up = store.create_upload(&r).unwrap();
                        for chunk in data.chunks(16_384) {
                            up.append(chunk).unwrap();
                        }
                        up.checkpoint().unwrap();
                        up.commit(&Digest::sha256(data), None).unwrap();
                    }
                    // Readers during others' commits see whole blobs.
                    assert_eq!(read_blob(&store, Some(&r), shared_digest), *shared);
                }
            });
        }
    });
    assert!(store.fsck(&|_| {}).unwrap().is_clean());
}

macro_rules! store_suite {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;
            #[test]
            fn upload_resume_commit() {
                let (_keep, s) = $make;
                super::upload_resume_commit(&s);
            }
            #[test]
            fn wrong_digest_publishes_nothing() {
                let (_keep, s) = $make;
                super::wrong_digest_publishes_nothing(&s);
            }
            #[test]
            fn sha512_claim_makes_alias_link() {
                let (_keep, s) = $make;
                super::sha512_claim_makes_alias_link(&s);
            }
            #[test]
            fn empty_blob() {
                let (_keep, s) = $make;
                super::empty_blob(&s);
            }
            #[test]
            fn ranges() {
                let (_keep, s) = $make;
                super::ranges(&s);
            }
            #[test]
            fn dedupe_mount_unlink() {
                let (_keep, s) = $make;
                super::dedupe_mount_unlink(&s);
            }
            #[test]
            fn cancel_and_unknown() {
                let (_keep, s) = $make;
                super::cancel_and_unknown(&s);
            }
            #[test]
            fn purge_by_age() {
                let (_keep, s) = $make;
                super::purge_by_age(&s);
            }
            #[test]
            fn fsck_finds_problems() {
                let (_keep, s) = $make;
                super::fsck_finds_problems(&s);
            }
            #[test]
            fn concurrent_uploads() {
                let (_keep, s) = $make;
                super::concurrent_uploads(&s);
            }
        }
    };
}

fn fs_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::filesystem(dir.path());
    (dir, store)
}

store_suite!(filesystem, fs_store());
store_suite!(inmemory, ((), Store::in_memory()));

// ---- filesystem-specific ----------------------------------------------------------------

#[test]
fn filesystem_bodies_are_local_files_read_and_mapped_by_range() {
    let (_dir, store) = fs_store();
    let r = repo("mapped");
    let mut up = store.create_upload(&r).unwrap();
    up.append(b"0123456789").unwrap();
    let d = Digest::sha256(b"0123456789");
    up.commit(&d, None).unwrap();
    let (_, body) = store.open_blob(Some(&r), &d).unwrap();
    assert!(matches!(body, BlobBody::Local { size: 10, .. }));
    let range = ByteRange { start: 2, end: 4 };
    assert_eq!(body.read_range(range).unwrap(), b"234");
    assert_eq!(&body.map(range).unwrap().unwrap()[..], b"234");
    let past_the_end = ByteRange { start: 8, end: 10 };
    assert!(matches!(
        body.map(past_the_end),
        Some(Err(StoreError::RangeInvalid { .. }))
    ));
    // The second open is the cached file: same bytes.
    let (_, again) = store.open_blob(Some(&r), &d).unwrap();
    assert_eq!(again.read_range(range).unwrap(), b"234");
}

#[test]
fn a_crash_after_publishing_is_finished_by_resume() {
    let (_dir, store) = fs_store();
    let r = repo("crash/late");
    let data = bytes(8, 70_000);
    let d = Digest::sha256(&data);
    let mut up = store.create_upload(&r).unwrap();
    let id = up.id().clone();
    up.append(&data).unwrap();
    up.checkpoint().unwrap();
    drop(up);
    // Simulate a commit that died right after renaming data into the blob store.
    let driver = store.driver();
    let data_path = PathSpec::UploadData { repo: &r, id: &id }
        .to_path()
        .unwrap();
    driver
        .move_to(
            &data_path,
            &PathSpec::BlobData { digest: &d }.to_path().unwrap(),
        )
        .unwrap();
    assert!(matches!(
        store.stat_blob(&r, &d),
        Err(StoreError::BlobUnknown(_))
    ));

    // Status and resume agree on the offset, so a client that sends "the rest" sends nothing.
    assert_eq!(
        store.upload_status(&r, &id).unwrap().offset,
        data.len() as u64
    );
    let up = store.resume_upload(&r, &id).unwrap();
    assert_eq!(up.offset(), data.len() as u64);
    up.commit(&d, None).unwrap();
    assert_eq!(read_blob(&store, Some(&r), &d), data);
    assert!(store.fsck(&|_| {}).unwrap().is_clean());
}

#[test]
fn resume_skips_a_corrupt_state_and_rehashes() {
    let (_dir, store) = fs_store();
    let r = repo("states");
    let data = bytes(9, 10_000);
    let mut up = store.create_upload(&r).unwrap();
    let id = up.id().clone();
    up.append(&data[..4000]).unwrap();
    up.checkpoint().unwrap();
    up.append(&data[4000..]).unwrap();
    drop(up);
    let state = PathSpec::UploadHashState {
        repo: &r,
        id: &id,
        alg: HashAlgorithm::Sha256,
        offset: 4000,
    };
    store
        .driver()
        .put_content(&state.to_path().unwrap(), b"garbage")
        .unwrap();
    let up = store.resume_upload(&r, &id).unwrap();
    assert_eq!(up.offset(), 10_000);
    up.commit(&Digest::sha256(&data), None).unwrap();
}

#[test]
fn checkpoints_prune_older_states() {
    let (_dir, store) = fs_store();
    let r = repo("prune");
    let mut up = store.create_upload(&r).unwrap();
    let id = up.id().clone();
    for _ in 0..5 {
        up.append(b"0123456789").unwrap();
        up.checkpoint().unwrap();
    }
    let dir = PathSpec::UploadHashStatesDir {
        repo: &r,
        id: &id,
        alg: HashAlgorithm::Sha256,
    };
    let names: Vec<String> = store
        .driver()
        .list(&dir.to_path().unwrap())
        .unwrap()
        .iter()
        .map(|p| p.name().to_owned())
        .collect();
    assert_eq!(names, ["50"]);
}
