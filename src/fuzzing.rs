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
