//! Replays the committed TarSum fuzz seeds (`fuzz/regressions/tarsum_*`) through their entry
//! functions, and (ignored test) regenerates the seeds from the shared test data.

mod tarsum_common;

use std::fs;
use std::path::{Path, PathBuf};

use layerstore::digest::{HashAlgorithm, TarsumVersion};
use layerstore::fuzzing::{tarsum_gzip, tarsum_state, tarsum_stream};
use layerstore::tarsum::{TarSum, TarSumStream};

fn seeds_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target)
}

/// A seed directory name and the entry function it replays through.
type Target = (&'static str, fn(&[u8]));

#[test]
fn replay_tarsum_seeds() {
    let targets: [Target; 3] = [
        ("tarsum_stream", tarsum_stream),
        ("tarsum_state", tarsum_state),
        ("tarsum_gzip", tarsum_gzip),
    ];
    for (name, run) in targets {
        let mut count = 0;
        for file in fs::read_dir(seeds_dir(name)).unwrap() {
            let data = fs::read(file.unwrap().path()).unwrap();
            run(&data);
            count += 1;
        }
        assert!(count >= 3, "{name}: {count} seeds");
    }
}

/// Writes the seed files: `cargo test --test tarsum_fuzz_seeds -- --ignored`.
#[test]
#[ignore]
fn write_seeds() {
    let l2 = tarsum_common::read(&format!("{}/layer.tar", tarsum_common::L2));
    let xattr = tarsum_common::read("xattr/layer.tar");
    let iter4 = tarsum_common::read("generated/iteration-4-xattrs-key1.tar");
    let collision = tarsum_common::read("collision/collision-0.tar");
    let with = |prefix: u8, tar: &[u8]| {
        let mut v = vec![prefix];
        v.extend_from_slice(&tar[..tar.len().min(4096)]);
        v
    };
    let put = |target: &str, name: &str, data: &[u8]| {
        fs::write(seeds_dir(target).join(name), data).unwrap();
    };
    put("tarsum_stream", "l2-v0", &with(0, &l2));
    put("tarsum_stream", "xattr-v1", &with(1, &xattr));
    put("tarsum_stream", "iter4-dev-sha512", &with(0x82, &iter4));
    put("tarsum_stream", "collision-v1", &with(1, &collision));
    put("tarsum_gzip", "l2", &with(0x16, &l2));
    put("tarsum_gzip", "xattr-two-members", &with(0x96, &xattr));
    put("tarsum_gzip", "collision-level1", &with(0x21, &collision));
    // States: mid-data, mid-PAX payload, finished, and a gzip stream checkpoint.
    let state_at = |tar: &[u8], cut: usize| {
        let mut t = TarSum::new(TarsumVersion::V1, HashAlgorithm::Sha256).with_extra(&b"{}"[..]);
        t.update(&tar[..cut]).unwrap();
        t.encode()
    };
    put("tarsum_state", "xattr-in-pax", &state_at(&xattr, 600));
    put(
        "tarsum_state",
        "collision-in-data",
        &state_at(&collision, 700),
    );
    put("tarsum_state", "l2-done", &state_at(&l2, l2.len()));
    let mut gz = Vec::new();
    {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::new(1));
        let big = tarsum_common::archives::build(&[tarsum_common::archives::Item::File(
            "t".into(),
            400_000,
        )]);
        e.write_all(&big).unwrap();
        e.finish().unwrap();
    }
    let mut stream = TarSumStream::new(TarSum::new(TarsumVersion::V0, HashAlgorithm::Sha256))
        .with_checkpoint_interval(1);
    stream.update(&gz[..gz.len() / 2]).unwrap();
    let checkpoint = stream.checkpoint();
    assert!(
        checkpoint.input_offset > 0,
        "a checkpoint inside the deflate stream"
    );
    put("tarsum_state", "gzip-checkpoint", &checkpoint.state);
    let mut plain = TarSumStream::new(TarSum::new(TarsumVersion::V1, HashAlgorithm::Sha512));
    plain.update(&xattr[..1000]).unwrap();
    put(
        "tarsum_state",
        "plain-checkpoint",
        &plain.checkpoint().state,
    );
}
