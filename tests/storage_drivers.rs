//! One driver test suite, run against every driver: the filesystem driver on a real temporary
//! directory and the in-memory driver. Both must behave identically, which is also what lets
//! the store be tested on either.

use std::io::{Read, Write};
use std::sync::Arc;

use layerstore::storage::s3::{S3Config, S3Driver};
use layerstore::storage::{
    DriverPath, FilesystemDriver, InMemoryDriver, StorageDriver, StorageError, WalkControl,
    MAX_CONTENT_LEN,
};

fn p(s: &str) -> DriverPath {
    DriverPath::parse(s).unwrap()
}

fn read_all(driver: &dyn StorageDriver, path: &str, offset: u64) -> Vec<u8> {
    let mut out = Vec::new();
    driver
        .reader(&p(path), offset)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn content_round_trip(d: &dyn StorageDriver) {
    d.put_content(&p("/a/b/c"), b"one").unwrap();
    assert_eq!(d.get_content(&p("/a/b/c")).unwrap(), b"one");
    d.put_content(&p("/a/b/c"), b"two!").unwrap();
    assert_eq!(d.get_content(&p("/a/b/c")).unwrap(), b"two!");
    d.put_content(&p("/a/empty"), b"").unwrap();
    assert_eq!(d.get_content(&p("/a/empty")).unwrap(), b"");
    assert!(matches!(
        d.get_content(&p("/a/missing")),
        Err(StorageError::NotFound(_))
    ));
    assert!(matches!(
        d.get_content(&p("/a/b")),
        Err(StorageError::IsDirectory(_))
    ));
}

fn readers_at_offsets(d: &dyn StorageDriver) {
    d.put_content(&p("/f"), b"0123456789").unwrap();
    assert_eq!(read_all(d, "/f", 0), b"0123456789");
    assert_eq!(read_all(d, "/f", 7), b"789");
    assert_eq!(read_all(d, "/f", 10), b"");
    assert!(matches!(
        d.reader(&p("/f"), 11),
        Err(StorageError::InvalidOffset {
            offset: 11,
            size: 10,
            ..
        })
    ));
    assert!(matches!(
        d.reader(&p("/nope"), 0),
        Err(StorageError::NotFound(_))
    ));
}

fn range_readers(d: &dyn StorageDriver) {
    d.put_content(&p("/f"), b"0123456789").unwrap();
    let range = |offset, len| {
        let mut out = Vec::new();
        d.reader_range(&p("/f"), offset, len)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    };
    assert_eq!(range(0, 4), b"0123");
    assert_eq!(range(3, 1), b"3");
    assert_eq!(range(7, 3), b"789");
    assert_eq!(
        range(7, 100),
        b"789",
        "a range past the end stops at the end"
    );
    assert_eq!(range(4, 0), b"");
    assert_eq!(range(10, 5), b"");
    assert!(matches!(
        d.reader_range(&p("/f"), 11, 1),
        Err(StorageError::InvalidOffset { offset: 11, .. })
    ));
    assert!(matches!(
        d.reader_range(&p("/nope"), 0, 1),
        Err(StorageError::NotFound(_))
    ));
}

fn writers_append_and_resume(d: &dyn StorageDriver) {
    let path = p("/up/data");
    let mut w = d.writer(&path, true).unwrap();
    assert_eq!(w.size(), 0);
    w.write_all(b"hello ").unwrap();
    w.sync().unwrap();
    assert_eq!(w.size(), 6);
    w.commit().unwrap();
    let mut w = d.writer(&path, true).unwrap();
    assert_eq!(w.size(), 6, "reopening resumes at the end");
    w.write_all(b"world").unwrap();
    assert_eq!(w.size(), 11);
    w.commit().unwrap();
    assert_eq!(d.get_content(&path).unwrap(), b"hello world");
    assert_eq!(d.stat(&path).unwrap().size, 11);
    let mut w = d.writer(&path, false).unwrap();
    assert_eq!(w.size(), 0, "without append the file starts over");
    w.write_all(b"x").unwrap();
    w.commit().unwrap();
    assert_eq!(d.get_content(&path).unwrap(), b"x");
    let mut w = d.writer(&path, true).unwrap();
    w.write_all(b"yz").unwrap();
    w.cancel().unwrap();
    assert!(matches!(d.stat(&path), Err(StorageError::NotFound(_))));
}

/// A writer dropped after `sync` (a request that ended) is continued by a new one (the next
/// request, maybe on another instance), across part boundaries and after a read in between.
fn unfinished_files_resume(d: &dyn StorageDriver) {
    let path = p("/u/data");
    let pattern = |n: usize, seed: u8| -> Vec<u8> { (0..n).map(|i| (i as u8) ^ seed).collect() };
    let mut expected = Vec::new();
    for (len, seed, read_back) in [
        ((6 << 20) + 10, 1, false), // a whole part and a small tail
        (3, 2, false),              // small writes after a small last part
        ((5 << 20) + 1, 3, true),   // then read the unfinished file, then go on
        (7, 4, false),
    ] {
        let mut w = d.writer(&path, true).unwrap();
        assert_eq!(w.size(), expected.len() as u64);
        let bytes = pattern(len, seed);
        w.write_all(&bytes).unwrap();
        w.sync().unwrap();
        expected.extend_from_slice(&bytes);
        drop(w);
        assert_eq!(d.append_size(&path).unwrap(), expected.len() as u64);
        if read_back {
            d.finish_appends(&path).unwrap();
            assert!(
                read_all(d, "/u/data", 0) == expected,
                "unfinished file reads back"
            );
        }
    }
    let w = d.writer(&path, true).unwrap();
    assert_eq!(w.size(), expected.len() as u64);
    w.commit().unwrap();
    assert_eq!(d.stat(&path).unwrap().size, expected.len() as u64);
    assert!(
        read_all(d, "/u/data", 0) == expected,
        "committed file is whole"
    );
    d.delete(&p("/u")).unwrap();
    assert!(matches!(
        d.append_size(&path),
        Err(StorageError::NotFound(_))
    ));
}

fn stat_and_list(d: &dyn StorageDriver) {
    for f in ["/r/b/x", "/r/a", "/r/b-c/y", "/r/b.c", "/r/c/d/e"] {
        d.put_content(&p(f), f.as_bytes()).unwrap();
    }
    let names: Vec<String> = d
        .list(&p("/r"))
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(names, ["/r/a", "/r/b", "/r/b-c", "/r/b.c", "/r/c"]);
    let info = d.stat(&p("/r/a")).unwrap();
    assert_eq!((info.size, info.is_dir), (4, false));
    assert!(d.stat(&p("/r/c")).unwrap().is_dir);
    assert!(matches!(
        d.stat(&p("/r/zz")),
        Err(StorageError::NotFound(_))
    ));
    assert!(matches!(
        d.list(&p("/r/zz")),
        Err(StorageError::NotFound(_))
    ));
    assert!(matches!(
        d.list(&p("/r/a")),
        Err(StorageError::NotADirectory(_))
    ));
    assert_eq!(d.list(&DriverPath::root()).unwrap(), [p("/r")]);
}

fn move_and_delete(d: &dyn StorageDriver) {
    d.put_content(&p("/m/src"), b"payload").unwrap();
    d.move_to(&p("/m/src"), &p("/m/deep/er/dst")).unwrap();
    assert_eq!(d.get_content(&p("/m/deep/er/dst")).unwrap(), b"payload");
    assert!(matches!(
        d.stat(&p("/m/src")),
        Err(StorageError::NotFound(_))
    ));
    d.put_content(&p("/m/other"), b"new").unwrap();
    d.move_to(&p("/m/other"), &p("/m/deep/er/dst")).unwrap();
    assert_eq!(
        d.get_content(&p("/m/deep/er/dst")).unwrap(),
        b"new",
        "move replaces"
    );
    assert!(matches!(
        d.move_to(&p("/m/gone"), &p("/m/x")),
        Err(StorageError::NotFound(_))
    ));
    d.put_content(&p("/m/deep/sibling"), b"s").unwrap();
    d.delete(&p("/m/deep")).unwrap();
    assert!(matches!(
        d.stat(&p("/m/deep")),
        Err(StorageError::NotFound(_))
    ));
    assert!(matches!(
        d.stat(&p("/m/deep/sibling")),
        Err(StorageError::NotFound(_))
    ));
    assert!(matches!(
        d.delete(&p("/m/deep")),
        Err(StorageError::NotFound(_))
    ));
    // A sibling whose name extends the deleted one survives.
    d.put_content(&p("/n/a-b"), b"keep").unwrap();
    d.put_content(&p("/n/a/x"), b"drop").unwrap();
    d.delete(&p("/n/a")).unwrap();
    assert_eq!(d.get_content(&p("/n/a-b")).unwrap(), b"keep");
}

fn walk_visits_everything_sorted(d: &dyn StorageDriver) {
    for f in ["/w/b/2", "/w/a", "/w/b/1", "/w/skip/x"] {
        d.put_content(&p(f), b"").unwrap();
    }
    let mut seen = Vec::new();
    d.walk(&p("/w"), &mut |info| {
        seen.push((info.path.to_string(), info.is_dir));
        Ok(if info.path.name() == "skip" {
            WalkControl::SkipDir
        } else {
            WalkControl::Continue
        })
    })
    .unwrap();
    let expected = [
        ("/w/a", false),
        ("/w/b", true),
        ("/w/b/1", false),
        ("/w/b/2", false),
        ("/w/skip", true),
    ];
    let expected: Vec<(String, bool)> = expected.iter().map(|(s, b)| (s.to_string(), *b)).collect();
    assert_eq!(seen, expected);
}

/// `touch` renews the modification time and keeps the content; a missing file is not found.
fn touch_renews_the_time(d: &dyn StorageDriver) {
    d.put_content(&p("/t/file"), b"kept as it is").unwrap();
    let before = d.stat(&p("/t/file")).unwrap().modified;
    // Object stores keep times in whole seconds.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    d.touch(&p("/t/file")).unwrap();
    let after = d.stat(&p("/t/file")).unwrap();
    assert!(
        after.modified > before,
        "{:?} !> {before:?}",
        after.modified
    );
    assert_eq!(d.get_content(&p("/t/file")).unwrap(), b"kept as it is");
    assert!(matches!(
        d.touch(&p("/t/missing")),
        Err(StorageError::NotFound(_))
    ));
}

/// `delete_files` deletes the files named, tolerates missing ones and leaves the rest.
fn delete_files_in_bulk(d: &dyn StorageDriver) {
    for name in ["a/link", "b/link", "c/link"] {
        d.put_content(&p(&format!("/del/{name}")), b"x").unwrap();
    }
    d.delete_files(&[p("/del/a/link"), p("/del/c/link"), p("/del/missing/link")])
        .unwrap();
    assert!(matches!(
        d.get_content(&p("/del/a/link")),
        Err(StorageError::NotFound(_))
    ));
    assert!(d.get_content(&p("/del/c/link")).is_err());
    assert_eq!(d.get_content(&p("/del/b/link")).unwrap(), b"x");
    assert_eq!(d.list(&p("/del")).unwrap(), vec![p("/del/b")]);
    // A file put back where its directory went is written (the directory is made again).
    d.put_content(&p("/del/a/link"), b"back").unwrap();
    assert_eq!(d.get_content(&p("/del/a/link")).unwrap(), b"back");
}

fn big_content_is_refused(d: &dyn StorageDriver) {
    let path = p("/big");
    let mut w = d.writer(&path, false).unwrap();
    let chunk = vec![7u8; 1 << 20];
    for _ in 0..=(MAX_CONTENT_LEN >> 20) {
        w.write_all(&chunk).unwrap();
    }
    w.commit().unwrap();
    assert!(matches!(
        d.get_content(&path),
        Err(StorageError::TooLarge { .. })
    ));
    d.delete(&path).unwrap();
}

fn concurrent_writers_and_readers(d: Arc<dyn StorageDriver>) {
    std::thread::scope(|s| {
        for t in 0..8 {
            let d = Arc::clone(&d);
            s.spawn(move || {
                for i in 0..50 {
                    let path = p(&format!("/c/{t}/{i}"));
                    let body = format!("{t}-{i}").into_bytes();
                    d.put_content(&path, &body).unwrap();
                    assert_eq!(d.get_content(&path).unwrap(), body);
                    // Atomic replace: a concurrent reader of a shared file sees whole values.
                    let shared = p("/c/shared");
                    d.put_content(&shared, &[t as u8; 64]).unwrap();
                    let seen = d.get_content(&shared).unwrap();
                    assert_eq!(seen.len(), 64);
                    assert!(seen.iter().all(|&b| b == seen[0]));
                }
            });
        }
    });
    assert_eq!(d.list(&p("/c")).unwrap().len(), 9);
}

macro_rules! driver_suite {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn content_round_trip() {
                let (_keep, d) = $make;
                super::content_round_trip(&*d);
            }
            #[test]
            fn readers_at_offsets() {
                let (_keep, d) = $make;
                super::readers_at_offsets(&*d);
            }
            #[test]
            fn range_readers() {
                let (_keep, d) = $make;
                super::range_readers(&*d);
            }
            #[test]
            fn writers_append_and_resume() {
                let (_keep, d) = $make;
                super::writers_append_and_resume(&*d);
            }
            #[test]
            fn unfinished_files_resume() {
                let (_keep, d) = $make;
                super::unfinished_files_resume(&*d);
            }
            #[test]
            fn stat_and_list() {
                let (_keep, d) = $make;
                super::stat_and_list(&*d);
            }
            #[test]
            fn move_and_delete() {
                let (_keep, d) = $make;
                super::move_and_delete(&*d);
            }
            #[test]
            fn walk_visits_everything_sorted() {
                let (_keep, d) = $make;
                super::walk_visits_everything_sorted(&*d);
            }
            #[test]
            fn touch_renews_the_time() {
                let (_keep, d) = $make;
                super::touch_renews_the_time(&*d);
            }
            #[test]
            fn delete_files_in_bulk() {
                let (_keep, d) = $make;
                super::delete_files_in_bulk(&*d);
            }
            #[test]
            fn big_content_is_refused() {
                let (_keep, d) = $make;
                super::big_content_is_refused(&*d);
            }
            #[test]
            fn concurrent_writers_and_readers() {
                let (_keep, d) = $make;
                super::concurrent_writers_and_readers(d);
            }
        }
    };
}

fn filesystem() -> (tempfile::TempDir, Arc<dyn StorageDriver>) {
    let dir = tempfile::tempdir().unwrap();
    let driver = FilesystemDriver::new(dir.path().join("root"));
    (dir, Arc::new(driver))
}

fn inmemory() -> ((), Arc<dyn StorageDriver>) {
    ((), Arc::new(InMemoryDriver::new()))
}

driver_suite!(filesystem_driver, filesystem());
driver_suite!(inmemory_driver, inmemory());

#[test]
fn filesystem_stays_inside_its_root_and_hides_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let driver = FilesystemDriver::new(dir.path().join("root"));
    driver.put_content(&p("/x/link"), b"v").unwrap();
    std::fs::write(dir.path().join("root/x/.layerstore-tmp-0011"), b"junk").unwrap();
    assert_eq!(driver.list(&p("/x")).unwrap(), [p("/x/link")]);
    // Nothing was written next to the root.
    let outside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, ["root"]);
    assert!(DriverPath::parse("/../escape").is_err());
    // Temporary files are staged outside the layout, and none is left after a put.
    assert_eq!(driver.list(&DriverPath::root()).unwrap(), [p("/x")]);
    let staged = std::fs::read_dir(dir.path().join("root/.layerstore-tmp"))
        .unwrap()
        .count();
    assert_eq!(staged, 0);
}

#[test]
fn filesystem_hands_out_local_files_for_positioned_reads() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let driver = FilesystemDriver::new(dir.path());
    driver.put_content(&p("/blob"), b"local bytes").unwrap();
    let file = driver.file(&p("/blob")).unwrap().unwrap();
    let mut buf = [0u8; 5];
    file.read_exact_at(&mut buf, 6).unwrap();
    assert_eq!(&buf, b"bytes");
    driver.put_content(&p("/empty"), b"").unwrap();
    assert_eq!(
        driver
            .file(&p("/empty"))
            .unwrap()
            .unwrap()
            .metadata()
            .unwrap()
            .len(),
        0
    );
    assert!(matches!(
        driver.file(&p("/none")),
        Some(Err(StorageError::NotFound(_)))
    ));
    driver.put_content(&p("/dir/x"), b"").unwrap();
    assert!(matches!(
        driver.file(&p("/dir")),
        Some(Err(StorageError::IsDirectory(_)))
    ));
    assert!(InMemoryDriver::new().file(&p("/blob")).is_none());
}

#[test]
fn filesystem_writer_flushes_behind_and_keeps_every_byte() {
    // More than the 64 MiB write-behind step, so a background flush runs during the writes.
    let dir = tempfile::tempdir().unwrap();
    let driver = FilesystemDriver::new(dir.path());
    let path = p("/big/data");
    let mut w = driver.writer(&path, true).unwrap();
    let chunk: Vec<u8> = (0..(4 << 20)).map(|i| (i % 253) as u8).collect();
    for _ in 0..20 {
        w.write_all(&chunk).unwrap();
    }
    w.sync().unwrap();
    w.write_all(b"tail").unwrap();
    w.commit().unwrap();
    let info = driver.stat(&path).unwrap();
    assert_eq!(info.size, 20 * (4 << 20) + 4);
    let mut r = driver.reader(&path, info.size - 4 - (4 << 20)).unwrap();
    let mut last = Vec::new();
    r.read_to_end(&mut last).unwrap();
    assert_eq!(&last[..4 << 20], &chunk[..]);
    assert_eq!(&last[4 << 20..], b"tail");
}

mod common;

/// The same suite on S3: one real 3-node Garage cluster, each case under its own key prefix
/// (one cluster for all cases, started once: it is the slow part).
#[test]
fn s3_driver_suite() {
    let Some(cluster) = common::garage::GarageCluster::start() else {
        return;
    };
    let driver = |prefix: &str| -> Arc<dyn StorageDriver> {
        let mut config = S3Config::new(&cluster.bucket, prefix);
        config.endpoint = Some(cluster.endpoint.clone());
        config.region = Some(cluster.region.clone());
        config.access_key_id = Some(cluster.access_key_id.clone());
        config.secret_access_key = Some(cluster.secret_access_key.clone());
        config.part_size = 5 << 20;
        Arc::new(S3Driver::connect(config).expect("the bucket answers"))
    };
    content_round_trip(&*driver("content"));
    readers_at_offsets(&*driver("readers"));
    range_readers(&*driver("ranges"));
    writers_append_and_resume(&*driver("writers"));
    unfinished_files_resume(&*driver("unfinished"));
    stat_and_list(&*driver("stat"));
    move_and_delete(&*driver("move"));
    walk_visits_everything_sorted(&*driver("walk"));
    big_content_is_refused(&*driver("big"));
    touch_renews_the_time(&*driver("touch"));
    delete_files_in_bulk(&*driver("delete-files"));
    concurrent_writers_and_readers(driver("concurrent"));
}
