//! The store's hot paths: mapping names to storage paths; serving byte ranges of a blob from
//! its open file (what every range GET does after routing), with and without metrics
//! (`Store::with_metrics`: each driver call timed and counted); and the push path: appending a
//! body's frames (written and hashed in parallel) and a durable small-push commit.
//!
//! Run: `cargo bench --bench store`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use layerstore::metrics::Metrics;
use layerstore::names::RepositoryName;
use layerstore::storage::{DriverPath, InMemoryDriver, MeteredDriver, PathSpec, StorageDriver};
use layerstore::store::{ByteRange, Store};
use layerstore::Digest;
use std::hint::black_box;
use std::sync::Arc;

fn path_mapping(c: &mut Criterion) {
    let repo = RepositoryName::parse("library/some-team/app").unwrap();
    let digest = Digest::sha256(b"a layer");
    let mut group = c.benchmark_group("path_mapping");
    group.bench_function("blob_data", |b| {
        b.iter(|| {
            PathSpec::BlobData {
                digest: black_box(&digest),
            }
            .to_path()
        })
    });
    group.bench_function("layer_link", |b| {
        b.iter(|| {
            PathSpec::LayerLink {
                repo: black_box(&repo),
                digest: black_box(&digest),
            }
            .to_path()
        })
    });
    group.finish();
}

/// A 64 MiB blob in a filesystem store under a temporary directory.
fn stored_blob() -> (tempfile::TempDir, Store, RepositoryName, Digest, u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::filesystem(dir.path());
    let repo = RepositoryName::parse("bench/ranges").unwrap();
    let len = 64u64 << 20;
    let data: Vec<u8> = (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761) as u8)
        .collect();
    let digest = Digest::sha256(&data);
    let mut upload = store.create_upload(&repo).unwrap();
    upload.append(&data).unwrap();
    upload.commit(&digest, Some(len)).unwrap();
    (dir, store, repo, digest, len)
}

fn range_reads(c: &mut Criterion) {
    let (dir, store, repo, digest, len) = stored_blob();
    let mut group = c.benchmark_group("range_read");
    group.throughput(Throughput::Bytes(4096));
    let mut offset = 0u64;
    let mut next_range = move || {
        // A fixed stride through the blob, like random offsets but repeatable.
        offset = (offset + 7_919 * 4096) % (len - 4096);
        ByteRange {
            start: offset,
            end: offset + 4095,
        }
    };
    // Link check + file-cache hit + positioned read: what a range GET costs below HTTP.
    group.bench_function("open_and_read_4KiB", |b| {
        b.iter(|| {
            let (_, body) = store.open_blob(Some(&repo), &digest).unwrap();
            black_box(body.read_range(next_range()).unwrap()[0]);
        })
    });
    // The same through a store whose driver calls are timed and counted (what `serve` runs).
    let metered = Store::filesystem(dir.path()).with_metrics(Arc::new(Metrics::new()));
    group.bench_function("open_and_read_4KiB_metered", |b| {
        b.iter(|| {
            let (_, body) = metered.open_blob(Some(&repo), &digest).unwrap();
            black_box(body.read_range(next_range()).unwrap()[0]);
        })
    });
    let (_, body) = store.open_blob(Some(&repo), &digest).unwrap();
    group.bench_function("read_4KiB", |b| {
        b.iter(|| black_box(body.read_range(next_range()).unwrap()[4095]))
    });
    // What a large body's window costs: map (populated) and unmap 2 MiB.
    group.bench_function("map_2MiB_window", |b| {
        b.iter(|| {
            let start = next_range().start;
            let window = ByteRange {
                start,
                end: (start + (2 << 20) - 1).min(len - 1),
            };
            black_box(body.map(window).unwrap().unwrap()[0])
        })
    });
    group.bench_function("write_to_4KiB", |b| {
        let mut out = Vec::with_capacity(4096);
        b.iter(|| {
            out.clear();
            body.write_to(Some(next_range()), &mut out).unwrap();
            black_box(out.len())
        })
    });
    group.finish();
}

/// The cost a `MeteredDriver` adds to one call: an in-memory `get_content` of a link-sized file
/// (the cheapest real call), bare and metered.
fn metered_driver(c: &mut Criterion) {
    let bare: Arc<dyn StorageDriver> = Arc::new(InMemoryDriver::new());
    let metered = MeteredDriver::new(Arc::clone(&bare), Arc::new(Metrics::new()));
    let path = DriverPath::parse("/docker/registry/v2/repositories/a/_layers/link").unwrap();
    bare.put_content(&path, Digest::sha256(b"x").to_string().as_bytes())
        .unwrap();
    let mut group = c.benchmark_group("driver_call");
    group.bench_function("get_content_bare", |b| {
        b.iter(|| black_box(bare.get_content(black_box(&path)).unwrap().len()))
    });
    group.bench_function("get_content_metered", |b| {
        b.iter(|| black_box(metered.get_content(black_box(&path)).unwrap().len()))
    });
    group.finish();
}

/// The push path below HTTP, on a filesystem store under the target directory: a 1 MiB batch
/// of 16 frames of 64 KiB appended (written and hashed on two threads, what the receiver hands
/// the store), and a whole durable small push (session, 64 KiB, commit with its fsyncs).
fn push_path(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = Store::filesystem(dir.path());
    let repo = RepositoryName::parse("bench/push").unwrap();
    let frames: Vec<Vec<u8>> = (0..16u8).map(|i| vec![i; 64 << 10]).collect();
    let mut group = c.benchmark_group("push");
    group.throughput(Throughput::Bytes(1 << 20));
    group.bench_function("append_1MiB_in_64KiB_frames", |b| {
        let mut upload = store.create_upload(&repo).unwrap();
        b.iter(|| upload.append_pieces(black_box(&frames)).unwrap());
        upload.cancel().unwrap();
    });
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    let mut content = vec![0u8; 64 << 10];
    let mut n = 0u64;
    group.bench_function("small_push_64KiB_durable", |b| {
        b.iter(|| {
            // New bytes every time: publishing onto an existing blob is another path.
            n += 1;
            content[..8].copy_from_slice(&n.to_le_bytes());
            let mut upload = store.create_upload(&repo).unwrap();
            upload.append(&content).unwrap();
            upload.commit(&Digest::sha256(&content), None).unwrap()
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    path_mapping,
    range_reads,
    metered_driver,
    push_path
);
criterion_main!(benches);
