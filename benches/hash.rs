//! Resumable SHA-256/512 against plain `sha2` on the same bytes, and the cost of saving and
//! resuming a state. The goal: resumable / plain throughput >= 0.98.
//!
//! Run: `cargo bench --bench hash`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use layerstore::digest::HashAlgorithm;
use layerstore::filehash::{self, FileRead};
use layerstore::hash::{Hasher, ResumableSha256, ResumableSha512};
use sha2::Digest as _;
use std::hint::black_box;

fn input(len: usize) -> Vec<u8> {
    // Cheap non-constant content; SHA speed does not depend on the bytes.
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761) as u8)
        .collect()
}

fn sha256_resumable_vs_plain(c: &mut Criterion) {
    let mut group = c.benchmark_group("sha256");
    for (label, len) in [("1MiB", 1 << 20), ("64MiB", 64 << 20)] {
        let data = input(len);
        group.throughput(Throughput::Bytes(len as u64));
        if len > 1 << 20 {
            group.sample_size(10);
        }
        group.bench_with_input(BenchmarkId::new("plain", label), &data, |b, data| {
            b.iter(|| sha2::Sha256::digest(black_box(data)))
        });
        group.bench_with_input(BenchmarkId::new("resumable", label), &data, |b, data| {
            b.iter(|| {
                let mut s = ResumableSha256::new();
                s.update(black_box(data));
                s.finalize()
            })
        });
        // The upload path feeds 64 KiB pieces: the block-boundary bookkeeping must stay free.
        group.bench_with_input(
            BenchmarkId::new("resumable_64KiB_pieces", label),
            &data,
            |b, data| {
                b.iter(|| {
                    let mut s = ResumableSha256::new();
                    for piece in black_box(data).chunks(64 * 1024 + 7) {
                        s.update(piece);
                    }
                    s.finalize()
                })
            },
        );
    }
    group.finish();
}

fn sha512_resumable_vs_plain(c: &mut Criterion) {
    let mut group = c.benchmark_group("sha512");
    let data = input(1 << 20);
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("plain/1MiB", |b| {
        b.iter(|| sha2::Sha512::digest(black_box(&data)))
    });
    group.bench_function("resumable/1MiB", |b| {
        b.iter(|| {
            let mut s = ResumableSha512::new();
            s.update(black_box(&data));
            s.finalize()
        })
    });
    group.finish();
}

fn state_save_and_resume(c: &mut Criterion) {
    let mut state = ResumableSha256::new();
    state.update(&input(1000));
    let own = state.encode();
    let go = state.to_go_bytes();
    let mut group = c.benchmark_group("state");
    group.bench_function("encode_own", |b| b.iter(|| black_box(&state).encode()));
    group.bench_function("decode_own", |b| {
        b.iter(|| ResumableSha256::decode(black_box(&own)).unwrap())
    });
    group.bench_function("encode_go", |b| b.iter(|| black_box(&state).to_go_bytes()));
    group.bench_function("decode_go", |b| {
        b.iter(|| ResumableSha256::from_go_bytes(black_box(&go)).unwrap())
    });
    group.finish();
}

/// How a file's bytes best reach the hasher: maps (plain or populated) against reads into
/// buffers of several sizes, on a 256 MiB file in the page cache. `filehash::FileRead::DEFAULT`
/// is chosen from this group; "plain" hashes a buffer already in memory (the ceiling).
fn hash_from_file(c: &mut Criterion) {
    const LEN: usize = 256 << 20;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary directory");
    let path = dir.path().join("blob");
    let data = input(LEN);
    std::fs::write(&path, &data).expect("write the test file");
    let file = std::fs::File::open(&path).expect("open the test file");
    let mut group = c.benchmark_group("file");
    group.throughput(Throughput::Bytes(LEN as u64));
    group.sample_size(10);
    group.bench_function("plain_from_memory", |b| {
        b.iter(|| sha2::Sha256::digest(black_box(&data)))
    });
    drop(data);
    let strategies = [
        ("mapped_64MiB", FileRead::Mapped(64 << 20)),
        (
            "mapped_populated_64MiB",
            FileRead::MappedPopulated(64 << 20),
        ),
        ("mapped_populated_4MiB", FileRead::MappedPopulated(4 << 20)),
        ("read_64KiB", FileRead::Buffered(64 << 10)),
        ("read_256KiB", FileRead::Buffered(256 << 10)),
        ("read_1MiB", FileRead::Buffered(1 << 20)),
        ("read_8MiB", FileRead::Buffered(8 << 20)),
    ];
    for (name, how) in strategies {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut hasher = Hasher::new(HashAlgorithm::Sha256);
                filehash::for_each_chunk(&file, how, |chunk| {
                    hasher.update(chunk);
                    Ok::<_, std::io::Error>(true)
                })
                .expect("hash the file");
                hasher.digest()
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    sha256_resumable_vs_plain,
    sha512_resumable_vs_plain,
    state_save_and_resume,
    hash_from_file
);
criterion_main!(benches);
