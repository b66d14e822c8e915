//! TarSum v1 against plain SHA-256 over the same bytes (a 64 MiB in-memory tar of four
//! 16 MiB files), gzip TarSum, and the cost of saving and resuming a TarSum state.

use std::hint::black_box;
use std::io::Write;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use layerstore::digest::{HashAlgorithm, TarsumVersion};
use layerstore::hash::ResumableSha256;
use layerstore::tarsum::{TarSum, TarSumStream};

const FILE_LEN: usize = 16 << 20;

/// Four 16 MiB files of pseudo-random bytes, as a tar.
fn big_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut x: u64 = 0x2545f4914f6cdd1d;
    for i in 0..4 {
        let data: Vec<u8> = (0..FILE_LEN)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut h = tar::Header::new_gnu();
        h.set_size(FILE_LEN as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, format!("file{i}"), &data[..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

/// A tar of `n` small files (for state size with many sums).
fn many_files_tar(n: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..n {
        let mut h = tar::Header::new_gnu();
        h.set_size(100);
        h.set_mode(0o644);
        b.append_data(&mut h, format!("dir/file{i}"), &[7u8; 100][..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

fn throughput(c: &mut Criterion) {
    let tar = big_tar();
    let mut g = c.benchmark_group("tarsum_64MiB");
    g.throughput(Throughput::Bytes(tar.len() as u64));
    g.sample_size(10);
    g.bench_function("sha256", |b| {
        b.iter(|| {
            let mut h = ResumableSha256::new();
            h.update(black_box(&tar));
            h.finalize()
        })
    });
    for chunk in [64 << 10, 1 << 20, tar.len()] {
        g.bench_with_input(BenchmarkId::new("tarsum_v1", chunk), &chunk, |b, &chunk| {
            b.iter(|| {
                let mut t = TarSum::new(TarsumVersion::V1, HashAlgorithm::Sha256);
                for piece in black_box(&tar).chunks(chunk) {
                    t.update(piece).unwrap();
                }
                t.finish().unwrap()
            })
        });
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    g.bench_function("tarsum_v1_gzip_stream", |b| {
        b.iter(|| {
            let mut s = TarSumStream::new(TarSum::new(TarsumVersion::V1, HashAlgorithm::Sha256));
            for piece in black_box(&gz).chunks(1 << 20) {
                s.update(piece).unwrap();
            }
            s.finish().unwrap()
        })
    });
    g.finish();
}

fn save_resume(c: &mut Criterion) {
    let mut g = c.benchmark_group("tarsum_state");
    for entries in [10, 10_000] {
        let tar = many_files_tar(entries);
        // Stop inside the last entry's data.
        let cut = tar.len() - 1024 - 50;
        let mut t = TarSum::new(TarsumVersion::V1, HashAlgorithm::Sha256);
        t.update(&tar[..cut]).unwrap();
        let state = t.encode();
        g.throughput(Throughput::Bytes(state.len() as u64));
        g.bench_with_input(BenchmarkId::new("encode", entries), &t, |b, t| {
            b.iter(|| black_box(t).encode())
        });
        g.bench_with_input(BenchmarkId::new("decode", entries), &state, |b, s| {
            b.iter(|| TarSum::decode(black_box(s)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, throughput, save_resume);
criterion_main!(benches);
