//! Fuzz entry points, one per target in `fuzz/fuzz_targets/`.
//!
//! Each function takes arbitrary bytes and asserts the properties its parser promises. The fuzz
//! targets call them, and so does `tests/fuzz_regressions.rs`, which replays every committed seed
//! and crash reproducer on the stable toolchain in a plain `cargo test`.
//!
//! | file | targets |
//! |---|---|
//! | `mod.rs` | digests, hash states, ranges, upload tokens, manifests, storage names and links, uploads, TarSum, `bench` |
//! | `auth.rs` | the server's `Authorization` header, registry tokens (JWT), htpasswd files |
//! | `client.rs` | `WWW-Authenticate`, image references, auth files, OCI layouts |
//! | `s3.rs` | the S3 driver on whatever an S3 store answers (the SDK parses the XML) |

mod auth;
mod client;
mod s3;

pub use auth::{authorization_header, htpasswd_file, jwt_token};
pub use client::{auth_json, image_reference, oci_index, oci_layout, www_authenticate};
pub use s3::s3_xml;

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

/// `Range` and `Content-Range` parsing: never panics; every range returned lies inside the blob.
pub fn range_header(data: &[u8]) {
    use crate::http::range::{parse_content_range, resolve, RangeAnswer};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_content_range(text);
    for size in [0u64, 1, 2048, u64::MAX] {
        match resolve(Some(text), size) {
            RangeAnswer::Single(r) => assert!(r.start <= r.end && r.end < size),
            RangeAnswer::Multiple(ranges) => {
                assert!(ranges.len() > 1);
                assert!(ranges.iter().all(|r| r.start <= r.end && r.end < size));
            }
            RangeAnswer::Full | RangeAnswer::Unsatisfiable => {}
        }
    }
}

/// Upload `_state` tokens: verifying arbitrary text never panics, and nothing but a token
/// signed with the same secret verifies.
pub fn upload_token(data: &[u8]) {
    use crate::http::token::TokenSigner;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let signer = TokenSigner::new("fuzz-secret");
    if let Ok(state) = signer.verify(text) {
        // Only a correctly signed token can get here: re-signing gives a token that verifies.
        assert_eq!(signer.verify(&signer.sign(&state)).as_ref(), Ok(&state));
    }
}

/// Manifest parsing: never panics under any `Content-Type` (picked by the first byte); an
/// accepted manifest has the sha256 of its bytes as digest, parses the same under its own media
/// type, and, if it has a subject, yields a referrer record that round-trips and a referrers
/// index body that itself parses as an OCI index.
pub fn manifest_parse(data: &[u8]) {
    use crate::manifest::media_type::*;
    use crate::manifest::{referrers_index, Manifest, ReferrerRecord};

    const CONTENT_TYPES: [Option<&str>; 8] = [
        None,
        Some(JSON),
        Some(DOCKER_MANIFEST),
        Some(DOCKER_MANIFEST_LIST),
        Some(OCI_MANIFEST),
        Some(OCI_INDEX),
        Some(DOCKER_SCHEMA1_SIGNED),
        Some("text/plain; charset=utf-8"),
    ];
    let (selector, body) = data.split_first().map_or((0, data), |(s, rest)| (*s, rest));
    let content_type = CONTENT_TYPES
        .get(usize::from(selector) % CONTENT_TYPES.len())
        .copied()
        .flatten();
    let Ok(manifest) = Manifest::parse(content_type, body) else {
        return;
    };
    assert_eq!(manifest.digest(), &Digest::sha256(body));
    assert!(manifest.media_type().is_storable());
    let again = Manifest::parse(Some(manifest.media_type().as_str()), body);
    assert_eq!(
        again.as_ref(),
        Ok(&manifest),
        "parses the same under its own type"
    );
    assert!(manifest.references().count() >= manifest.layers().len());
    if let Some(record) = ReferrerRecord::from_manifest(&manifest) {
        assert_eq!(
            ReferrerRecord::from_json(&record.to_json()),
            Ok(record.clone())
        );
        let index = referrers_index(&record.subject, [&record], None);
        assert_eq!(index.count, 1);
        let parsed = Manifest::parse(Some(OCI_INDEX), &index.body);
        assert!(parsed.is_ok(), "referrers index parses: {parsed:?}");
    }
}

/// Repository names, tags, upload ids and driver paths: never panic; whatever parses prints
/// back as its input and has no component that could leave a storage root.
pub fn storage_names(data: &[u8]) {
    use crate::names::{RepositoryName, Tag, UploadId};
    use crate::storage::DriverPath;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(name) = RepositoryName::parse(text) {
        assert_eq!(name.as_str(), text);
        assert!(name
            .components()
            .all(|c| !c.is_empty() && !c.starts_with(['.', '_', '-'])));
    }
    if let Ok(tag) = Tag::parse(text) {
        assert!(!tag.as_str().contains('/') && tag.as_str() != "." && tag.as_str() != "..");
    }
    if let Ok(id) = UploadId::parse(text) {
        assert_eq!(id.as_str().len(), 36);
    }
    if let Ok(path) = DriverPath::parse(text) {
        assert_eq!(path.as_str(), text);
        assert!(path
            .components()
            .all(|c| !c.is_empty() && c != "." && c != ".."));
    }
}

/// Link files and `startedat` times: strict parsing never panics; a parsed link re-encodes to
/// the same bytes; a parsed time formats and parses back to the same second.
pub fn storage_link(data: &[u8]) {
    use crate::storage::paths::{encode_link, parse_link};
    use crate::store::rfc3339;
    if let Ok(digest) = parse_link(data) {
        assert_eq!(encode_link(&digest), data);
    }
    if let Some(time) = std::str::from_utf8(data).ok().and_then(rfc3339::parse) {
        let again = rfc3339::parse(&rfc3339::format(time));
        let whole = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .ok()
        };
        if let Some(secs) = whole(time) {
            assert_eq!(again.and_then(whole), Some(secs));
        }
    }
}

/// Resumable uploads as a sequence of operations on an in-memory store (append, checkpoint,
/// reopen, damage the newest hash state, reopen): the commit always verifies against the sha256
/// of exactly the appended bytes, and the blob reads back the same.
pub fn store_upload_ops(data: &[u8]) {
    use crate::names::RepositoryName;
    use crate::storage::PathSpec;
    use crate::store::Store;
    let store = Store::in_memory();
    let Ok(repo) = RepositoryName::parse("fuzz/repo") else {
        return;
    };
    let Ok(mut upload) = store.create_upload(&repo) else {
        return;
    };
    let id = upload.id().clone();
    let mut sent = Vec::new();
    let mut ops = data.iter();
    while let Some(&op) = ops.next() {
        match op % 4 {
            0 => {
                let n = usize::from(ops.next().copied().unwrap_or(0));
                let chunk: Vec<u8> = ops.by_ref().take(n).copied().collect();
                upload
                    .append(&chunk)
                    .expect("append to an in-memory upload");
                sent.extend_from_slice(&chunk);
            }
            1 => upload.checkpoint().expect("checkpoint"),
            2 => {
                drop(upload);
                upload = store.resume_upload(&repo, &id).expect("resume");
            }
            _ => {
                let offset = upload.offset();
                drop(upload);
                let alg = crate::digest::HashAlgorithm::Sha256;
                let state = PathSpec::UploadHashState {
                    repo: &repo,
                    id: &id,
                    alg,
                    offset,
                };
                if let Ok(path) = state.to_path() {
                    // Shorter than any Go state, so always detectably damaged.
                    let _ = store
                        .driver()
                        .put_content(&path, &data[..data.len().min(107)]);
                }
                upload = store
                    .resume_upload(&repo, &id)
                    .expect("resume after damage");
            }
        }
        assert_eq!(upload.offset(), sent.len() as u64);
    }
    let digest = Digest::sha256(&sent);
    let info = upload
        .commit(&digest, Some(sent.len() as u64))
        .expect("commit verifies");
    assert_eq!(info.digest, digest);
    let (_, body) = store
        .open_blob(Some(&repo), &digest)
        .expect("blob readable");
    let mut back = Vec::new();
    body.write_to(None, &mut back).expect("read back");
    assert_eq!(back, sent);
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

/// `bench` resolution of a server's `Location` (input: `request path \n location`): never
/// panics; a resolved location is an absolute path (and query) without dot segments.
pub fn bench_location(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (request_path, location) = text
        .split_once('\n')
        .unwrap_or(("/v2/r/blobs/uploads/", text));
    if let Some(resolved) =
        crate::bench::client::resolve_location("127.0.0.1:5000", request_path, location)
    {
        assert!(resolved.starts_with('/'), "{resolved:?} is absolute");
        let path = resolved.split('?').next().unwrap_or_default();
        assert!(
            path.split('/')
                .all(|segment| segment != "." && segment != ".."),
            "{resolved:?} has no dot segments"
        );
        assert!(resolved.parse::<hyper::http::uri::PathAndQuery>().is_ok());
    }
}

/// `bench` parsing of `/proc/PID/stat` and `/proc/PID/status` text: never panics.
pub fn bench_proc_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::bench::process::parse_stat_cpu_ticks(&text);
    let _ = crate::bench::process::parse_status_kib(&text, "VmHWM:");
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
