//! The bench client's content generator: how fast `layerstore bench` can produce request
//! bodies (it must be far above what a registry ingests, or the client would be the
//! bottleneck), and the cost of regenerating one 4 KiB range for verification.
//!
//! Run: `cargo bench --bench bench_content`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http_body_util::BodyExt;
use layerstore::bench::content::Content;
use std::hint::black_box;

fn generator(c: &mut Criterion) {
    let mut group = c.benchmark_group("content");
    let blob = Content::new(0x5eed, 64 << 20);
    let mut buf = vec![0u8; 1 << 20];
    group.throughput(Throughput::Bytes(1 << 20));
    group.bench_function("fill 1MiB", |b| {
        b.iter(|| blob.fill(black_box(12_345), &mut buf))
    });
    group.throughput(Throughput::Bytes(4096));
    group.bench_function("range 4KiB", |b| {
        b.iter(|| blob.bytes(black_box(1_000_003), 4096))
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    group.throughput(Throughput::Bytes(64 << 20));
    group.sample_size(10);
    group.bench_function("body 64MiB", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut body = blob.body(0, 64 << 20);
                let mut total = 0;
                while let Some(frame) = body.frame().await {
                    total += frame.unwrap().into_data().unwrap().len();
                }
                total
            })
        })
    });
    group.finish();
}

criterion_group!(benches, generator);
criterion_main!(benches);
