//! Save/resume properties: random archives (built with the `tar` crate), cut at random
//! offsets, saved and resumed at each cut, give the same sum as one pass; plain and gzip.

mod tarsum_common;

use std::io::Write;

use layerstore::digest::{HashAlgorithm, TarsumVersion};
use layerstore::tarsum::{TarSum, TarSumStream};
use proptest::prelude::*;
use tarsum_common::archives::{build, items};

fn one_pass(tar: &[u8], version: TarsumVersion) -> String {
    let mut t = TarSum::new(version, HashAlgorithm::Sha256).with_extra(&b"{}"[..]);
    t.update(tar).unwrap();
    t.finish().unwrap().to_string()
}

fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn version(i: u8) -> TarsumVersion {
    [TarsumVersion::V0, TarsumVersion::V1, TarsumVersion::Dev][usize::from(i % 3)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn plain_resume_at_random_cuts(
        items in items(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        v in 0u8..3,
    ) {
        let tar = build(&items);
        let expected = one_pass(&tar, version(v));
        let mut offsets: Vec<usize> = cuts.iter().map(|c| c.index(tar.len() + 1)).collect();
        offsets.sort_unstable();
        let mut t = TarSum::new(version(v), HashAlgorithm::Sha256).with_extra(&b"{}"[..]);
        let mut at = 0;
        for cut in offsets {
            t.update(&tar[at..cut]).unwrap();
            let saved = t.encode();
            t = TarSum::decode(&saved).unwrap();
            at = cut;
        }
        t.update(&tar[at..]).unwrap();
        prop_assert_eq!(t.finish().unwrap().to_string(), expected);
    }

    #[test]
    fn gzip_checkpoints_resume_to_the_same_sum(
        items in items(),
        stops in proptest::collection::vec(any::<prop::sample::Index>(), 1..6),
        chunk in 1usize..5000,
        level in 1u32..10,
        members in 1usize..3,
        v in 0u8..3,
    ) {
        let tar = build(&items);
        let expected = one_pass(&tar, version(v));
        // One or two gzip members over the same tar bytes.
        let split = tar.len() / members;
        let mut gz = gzip(&tar[..split], level);
        if members > 1 {
            gz.extend(gzip(&tar[split..], level));
        }
        let fresh = || TarSumStream::new(
            TarSum::new(version(v), HashAlgorithm::Sha256).with_extra(&b"{}"[..]),
        ).with_checkpoint_interval(300);
        let mut stops: Vec<usize> = stops.iter().map(|s| s.index(gz.len() + 1)).collect();
        stops.sort_unstable();
        let mut stream = fresh();
        let mut at = 0usize;
        for stop in stops {
            let stop = stop.max(at);
            for piece in gz[at..stop].chunks(chunk) {
                stream.update(piece).unwrap();
            }
            let checkpoint = stream.checkpoint();
            prop_assert!(checkpoint.input_offset as usize <= stop);
            stream = TarSumStream::resume(&checkpoint.state)
                .unwrap()
                .with_checkpoint_interval(300);
            at = checkpoint.input_offset as usize;
        }
        for piece in gz[at..].chunks(chunk) {
            stream.update(piece).unwrap();
        }
        prop_assert_eq!(stream.finish().unwrap().to_string(), expected);
    }
}

/// A gzip checkpoint really is at a block boundary far into the stream, and re-reading from
/// there costs at most one interval plus a block.
#[test]
fn gzip_checkpoints_advance_with_the_input() {
    let items: Vec<_> = (0..6)
        .map(|i| tarsum_common::archives::Item::File(format!("f{i}"), 200_000))
        .collect();
    let tar = build(&items);
    let gz = gzip(&tar, 6);
    let interval = 20_000u64;
    let mut stream = TarSumStream::new(TarSum::new(TarsumVersion::V1, HashAlgorithm::Sha256))
        .with_checkpoint_interval(interval);
    let mut last = 0;
    for piece in gz.chunks(4096) {
        stream.update(piece).unwrap();
        let cp = stream.checkpoint();
        assert!(cp.input_offset >= last);
        last = cp.input_offset;
        assert!(stream.input_offset() - cp.input_offset < interval + 64 * 1024);
    }
    assert!(
        last > gz.len() as u64 / 2,
        "checkpoints reached {last} of {}",
        gz.len()
    );
    let cp = stream.checkpoint();
    let mut resumed = TarSumStream::resume(&cp.state).unwrap();
    resumed.update(&gz[cp.input_offset as usize..]).unwrap();
    assert_eq!(resumed.finish().unwrap(), stream.finish().unwrap());
    assert_eq!(
        resumed.finish().unwrap().to_string(),
        one_pass_no_extra(&tar)
    );
}

fn one_pass_no_extra(tar: &[u8]) -> String {
    let mut t = TarSum::new(TarsumVersion::V1, HashAlgorithm::Sha256);
    t.update(tar).unwrap();
    t.finish().unwrap().to_string()
}

/// Corrupt or truncated stream states are errors, never panics.
#[test]
fn corrupt_stream_states_are_rejected() {
    let tar = build(&[tarsum_common::archives::Item::File("a".into(), 70_000)]);
    let gz = gzip(&tar, 6);
    let mut stream = TarSumStream::new(TarSum::new(TarsumVersion::V1, HashAlgorithm::Sha256))
        .with_checkpoint_interval(1000);
    stream.update(&gz[..gz.len() / 2]).unwrap();
    let state = stream.checkpoint().state;
    assert!(TarSumStream::resume(&state).is_ok());
    for cut in 0..state.len() {
        assert!(TarSumStream::resume(&state[..cut]).is_err(), "cut {cut}");
    }
    for i in (0..state.len()).step_by(7) {
        let mut bad = state.clone();
        bad[i] ^= 0x10;
        assert!(TarSumStream::resume(&bad).is_err(), "flip at {i}");
    }
}

/// Byte-at-a-time feeding makes input run out exactly at block ends, so the next call starts
/// at a block boundary with a checkpoint due (zlib's `Z_BLOCK` then returns at once).
#[test]
fn gzip_byte_at_a_time_with_checkpoints() {
    let items: Vec<_> = (0..3)
        .map(|i| tarsum_common::archives::Item::File(format!("f{i}"), 100_000))
        .collect();
    let tar = build(&items);
    let gz = gzip(&tar, 9);
    let mut stream = TarSumStream::new(TarSum::new(TarsumVersion::V1, HashAlgorithm::Sha256))
        .with_checkpoint_interval(1000);
    let mut checkpoints = std::collections::BTreeSet::new();
    for (i, b) in gz.iter().enumerate() {
        stream.update(std::slice::from_ref(b)).unwrap();
        if i % 101 == 0 {
            checkpoints.insert(stream.checkpoint().input_offset);
        }
    }
    assert!(checkpoints.len() > 3, "{checkpoints:?}");
    assert_eq!(
        stream.finish().unwrap().to_string(),
        one_pass_no_extra(&tar)
    );
    // Resume from every distinct checkpoint seen.
    let mut stream = TarSumStream::new(TarSum::new(TarsumVersion::V1, HashAlgorithm::Sha256))
        .with_checkpoint_interval(1000);
    for (i, piece) in gz.chunks(777).enumerate() {
        stream.update(piece).unwrap();
        if i % 16 != 5 {
            continue;
        }
        let cp = stream.checkpoint();
        let mut resumed = TarSumStream::resume(&cp.state).unwrap();
        resumed.update(&gz[cp.input_offset as usize..]).unwrap();
        assert_eq!(
            resumed.finish().unwrap().to_string(),
            one_pass_no_extra(&tar)
        );
    }
}

/// A gzip member with a wrong CRC-32 fails while the tar still needs bytes, and the stream
/// stays failed; after the end-of-archive marker the trailer is never looked at.
#[test]
fn gzip_trailer_errors_follow_the_reference() {
    let tar = build(&[tarsum_common::archives::Item::File("a".into(), 3000)]);
    let entries_only = &tar[..tar.len() - 1024]; // no end-of-archive marker
    for (data, expect_ok) in [(&tar[..], true), (entries_only, false)] {
        let mut gz = gzip(data, 6);
        let n = gz.len();
        gz[n - 8] ^= 0xff; // corrupt the CRC-32
        let mut s = TarSumStream::new(TarSum::new(TarsumVersion::V1, HashAlgorithm::Sha256));
        let result = s.update(&gz).and_then(|()| s.finish());
        assert_eq!(result.is_ok(), expect_ok, "{result:?}");
        if !expect_ok {
            assert!(matches!(
                result,
                Err(layerstore::TarsumError::GzipChecksum { .. })
            ));
            assert_eq!(s.update(b"x"), Err(layerstore::TarsumError::AlreadyFailed));
        }
    }
}
