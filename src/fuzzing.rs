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
