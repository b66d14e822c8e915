//! Fuzz entry points, one per target in `fuzz/fuzz_targets/`.
//!
//! Each function takes arbitrary bytes and asserts the properties its parser promises. The fuzz
//! targets call them, and so does `tests/fuzz_regressions.rs`, which replays every committed seed
//! and crash reproducer on the stable toolchain in a plain `cargo test`.

use crate::digest::Digest;
use crate::hash::{Hasher, ResumableSha256, ResumableSha512};

/// Digest parsing: never panics; whatever parses prints back to the same string.
pub fn digest_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(digest) = Digest::parse(text) {
        assert_eq!(
            digest.to_string(),
            text,
            "a parsed digest prints as its input"
        );
        assert_eq!(
            Digest::from_bytes(digest.algorithm(), &digest.to_bytes()),
            Ok(digest)
        );
    }
}

/// layerstore's own hash-state format: never panics; a decoded state re-encodes to the same
/// bytes and can keep hashing.
pub fn hash_state_own(data: &[u8]) {
    if let Ok(state) = Hasher::decode(data) {
        assert_eq!(state.encode(), data, "decode then encode is the identity");
        let mut state = state;
        state.update(b"more");
        let _ = state.digest();
    }
}

/// Go's `MarshalBinary` hash-state form (SHA-256 and SHA-512): never panics; a decoded state
/// re-encodes to the same bytes.
pub fn hash_state_go(data: &[u8]) {
    if let Ok(state) = ResumableSha256::from_go_bytes(data) {
        assert_eq!(state.to_go_bytes(), data);
        let _ = state.digest();
    }
    if let Ok(state) = ResumableSha512::from_go_bytes(data) {
        assert_eq!(state.to_go_bytes(), data);
        let _ = state.digest();
    }
    if let Ok(state) = Hasher::from_go_bytes(data) {
        assert_eq!(state.to_go_bytes(), data);
    }
}

/// TarSum's sans-I/O machine on arbitrary bytes: never panics, and saving and resuming the
/// state at any split point gives exactly the one-pass result (sum or error). Work is
/// bounded: at most 4 KiB of input and 64 split points.
pub fn tarsum_stream(data: &[u8]) {
    use crate::digest::{HashAlgorithm, TarsumVersion};
    use crate::tarsum::TarSum;

    let data = &data[..data.len().min(4096)];
    let Some((&selector, tar)) = data.split_first() else {
        return;
    };
    let version =
        [TarsumVersion::V0, TarsumVersion::V1, TarsumVersion::Dev][usize::from(selector % 3)];
    let hash = if selector & 0x80 == 0 {
        HashAlgorithm::Sha256
    } else {
        HashAlgorithm::Sha512
    };
    let fresh = || TarSum::new(version, hash).with_extra(&b"extra"[..]);
    let mut one = fresh();
    let one_pass = one.update(tar).and_then(|()| one.finish());
    let step = (tar.len() / 64).max(1);
    for cut in (0..=tar.len()).step_by(step) {
        let mut first = fresh();
        if let Err(e) = first.update(&tar[..cut]) {
            assert_eq!(
                Err(e),
                one_pass,
                "an error in a prefix is the one-pass error"
            );
            continue;
        }
        let saved = first.encode();
        let mut resumed = TarSum::decode(&saved).expect("a state we wrote decodes");
        assert_eq!(resumed, first, "decode(encode(x)) == x");
        let result = resumed.update(&tar[cut..]).and_then(|()| resumed.finish());
        assert_eq!(result, one_pass, "resume at {cut} equals one pass");
    }
}

/// TarSum state decoding on arbitrary bytes: never panics; a decoded state re-encodes to a
/// state that decodes to the same value, and can keep going. The same for stream states.
pub fn tarsum_state(data: &[u8]) {
    use crate::tarsum::{TarSum, TarSumStream};

    if let Ok(state) = TarSum::decode(data) {
        let again = TarSum::decode(&state.encode()).expect("re-encoded state decodes");
        assert_eq!(again, state);
        let mut state = state;
        let _ = state.update(&[0u8; 1024]);
        let _ = state.update(b"more bytes");
        let _ = state.finish();
    }
    if let Ok(mut stream) = TarSumStream::resume(data) {
        let checkpoint = stream.checkpoint();
        assert!(TarSumStream::resume(&checkpoint.state).is_ok());
        let _ = stream.update(&[0u8; 1024]);
        let _ = stream.finish();
    }
}

/// The gzip front end: the fuzz input (first byte: options, rest: the tar bytes) is gzipped
/// in one or two members with tiny deflate blocks, then fed in chunks; resuming from every
/// checkpoint gives the one-pass result. At most 16 KiB of payload.
pub fn tarsum_gzip(data: &[u8]) {
    use crate::digest::{HashAlgorithm, TarsumVersion};
    use crate::tarsum::{TarSum, TarSumStream};

    let data = &data[..data.len().min(16 << 10)];
    let Some((&options, payload)) = data.split_first() else {
        return;
    };
    let level = i32::from(options % 10);
    let members = if options & 0x80 != 0 { 2 } else { 1 };
    let chunk = usize::from(options >> 4 & 0x7) * 97 + 1;
    let mut gz = Vec::new();
    let split = payload.len() / members;
    gz.extend(gzip_member(&payload[..split], level));
    if members == 2 {
        gz.extend(gzip_member(&payload[split..], level));
    }
    let fresh = || {
        TarSumStream::new(TarSum::new(TarsumVersion::V1, HashAlgorithm::Sha256))
            .with_checkpoint_interval(1)
    };
    let mut one = fresh();
    let one_pass = one.update(&gz).and_then(|()| one.finish());
    let mut stream = fresh();
    let mut at = 0;
    let mut resumes = 0;
    while at < gz.len() && resumes < 64 {
        let end = (at + chunk).min(gz.len());
        if stream.update(&gz[at..end]).is_err() {
            assert!(
                one_pass.is_err(),
                "chunked run fails only if one pass fails"
            );
            return;
        }
        let checkpoint = stream.checkpoint();
        assert!(checkpoint.input_offset <= end as u64);
        stream = TarSumStream::resume(&checkpoint.state)
            .expect("a checkpoint we wrote resumes")
            .with_checkpoint_interval(1);
        at = usize::try_from(checkpoint.input_offset).unwrap_or(usize::MAX);
        // Always move forward: feed the next chunk before the next checkpoint.
        let next = (end + chunk).min(gz.len());
        if stream.update(&gz[at..next]).is_err() {
            assert!(
                one_pass.is_err(),
                "resumed run fails only if one pass fails"
            );
            return;
        }
        at = next;
        resumes += 1;
    }
    let result = stream.update(&gz[at..]).and_then(|()| stream.finish());
    match (&result, &one_pass) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "resumed gzip sum equals one pass"),
        _ => assert_eq!(result.is_ok(), one_pass.is_ok()),
    }
}

/// A gzip member of `payload`, with the smallest deflate blocks zlib makes (`mem_level` 1),
/// so even small inputs have many block boundaries to checkpoint at.
fn gzip_member(payload: &[u8], level: i32) -> Vec<u8> {
    let config = zlib_rs::DeflateConfig {
        level,
        method: zlib_rs::Method::Deflated,
        window_bits: -15, // raw deflate: the gzip framing is written here
        mem_level: 1,
        strategy: zlib_rs::Strategy::Default,
    };
    let mut deflate = zlib_rs::Deflate::new_with_config(config);
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    let mut raw = vec![0u8; zlib_rs::compress_bound(payload.len()) + 64];
    let _ = deflate.compress(payload, &mut raw, zlib_rs::DeflateFlush::Finish);
    let produced = usize::try_from(deflate.total_out())
        .unwrap_or(0)
        .min(raw.len());
    out.extend_from_slice(&raw[..produced]);
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out
}

#[cfg(test)]
mod tarsum_fuzz_tests {
    use super::gzip_member;
    use crate::digest::{HashAlgorithm, TarsumVersion};
    use crate::tarsum::{TarSum, TarSumStream};

    /// The fuzzer's gzip builder makes valid gzip with many block boundaries, so
    /// `tarsum_gzip` really exercises mid-stream checkpoints.
    #[test]
    fn fuzz_gzip_builder_is_valid_and_checkpointable() {
        let mut tar = Vec::new();
        let mut header = [0u8; 512];
        header[..4].copy_from_slice(b"file");
        header[100..108].copy_from_slice(b"0000644\0");
        header[124..136].copy_from_slice(b"00000010000\0"); // 4096 bytes
        header[156] = b'0';
        header[148..156].fill(b' ');
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        tar.extend_from_slice(&header);
        tar.extend((0..4096u32).map(|i| (i * 7 % 251) as u8));
        tar.extend_from_slice(&[0u8; 1024]);
        let gz = gzip_member(&tar, 6);
        let new = || {
            TarSumStream::new(TarSum::new(TarsumVersion::V1, HashAlgorithm::Sha256))
                .with_checkpoint_interval(1)
        };
        let mut plain = new();
        plain.update(&tar).unwrap();
        let mut stream = new();
        let mut furthest = 0;
        for piece in gz.chunks(50) {
            stream.update(piece).unwrap();
            furthest = furthest.max(stream.checkpoint().input_offset);
        }
        assert_eq!(stream.finish().unwrap(), plain.finish().unwrap());
        assert!(furthest > 0, "no checkpoint inside the deflate stream");
    }
}
