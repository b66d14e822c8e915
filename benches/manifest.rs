//! Manifest parsing against its two unavoidable parts (serde_json reading the same bytes into a
//! generic `Value`, and the sha256 of the bytes), plus referrers index building and pagination.
//!
//! Run: `cargo bench --bench manifest`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use layerstore::manifest::{paginate, referrers_index, Manifest, ReferrerRecord};
use layerstore::Digest;
use std::hint::black_box;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn descriptor(i: usize) -> String {
    format!(
        r#"{{"mediaType":"{OCI_MANIFEST}","size":{},"digest":"{}","platform":{{"architecture":"arch{i}","os":"linux"}},"annotations":{{"org.example.n":"{i}"}}}}"#,
        1000 + i,
        Digest::sha256(i.to_string().as_bytes())
    )
}

/// A typical image manifest: config and five layers.
fn image_manifest() -> Vec<u8> {
    let layer = |i: usize| {
        format!(
            r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":{},"digest":"{}"}}"#,
            i * 1_000_000,
            Digest::sha256(&[i as u8])
        )
    };
    let layers: Vec<String> = (1..=5).map(layer).collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":1470,"digest":"{}"}},"layers":[{}]}}"#,
        Digest::sha256(b"config"),
        layers.join(",")
    )
    .into_bytes()
}

/// An index with `n` children (about 330 bytes each).
fn big_index(n: usize) -> Vec<u8> {
    let children: Vec<String> = (0..n).map(descriptor).collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
        children.join(",")
    )
    .into_bytes()
}

fn parse_vs_parts(c: &mut Criterion) {
    let mut group = c.benchmark_group("manifest_parse");
    group.sample_size(30);
    for (label, bytes) in [
        ("image_6_descriptors", image_manifest()),
        ("index_10000_children", big_index(10_000)),
    ] {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("parse/{label}"), |b| {
            b.iter(|| Manifest::parse(None, black_box(&bytes)).unwrap())
        });
        group.bench_function(format!("serde_json_value/{label}"), |b| {
            b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&bytes)).unwrap())
        });
        group.bench_function(format!("sha256_only/{label}"), |b| {
            b.iter(|| Digest::sha256(black_box(&bytes)))
        });
    }
    group.finish();
}

fn referrers_and_pages(c: &mut Criterion) {
    let subject = Digest::sha256(b"subject");
    let records: Vec<ReferrerRecord> = (0..1000)
        .map(|i| {
            let body = format!(
                r#"{{"schemaVersion":2,"artifactType":"application/x{}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","size":2,"digest":"{}"}},"layers":[],"subject":{{"mediaType":"{OCI_MANIFEST}","size":1,"digest":"{subject}"}}}}"#,
                i % 3,
                Digest::sha256(b"{}")
            );
            ReferrerRecord::from_manifest(&Manifest::parse(None, body.as_bytes()).unwrap()).unwrap()
        })
        .collect();
    let mut group = c.benchmark_group("referrers");
    group.bench_function("index_1000_records", |b| {
        b.iter(|| referrers_index(&subject, black_box(&records), None))
    });
    group.bench_function("index_1000_records_filtered", |b| {
        b.iter(|| referrers_index(&subject, black_box(&records), Some("application/x1")))
    });
    group.finish();

    let tags: Vec<String> = (0..100_000).map(|i| format!("v{i:06}")).collect();
    c.bench_function("paginate/100000_tags_last_page_n100", |b| {
        b.iter(|| paginate(black_box(&tags), Some(100), Some("v099900")))
    });
}

criterion_group!(benches, parse_vs_parts, referrers_and_pages);
criterion_main!(benches);
