//! layerstore's own hash-state format, checked against bytes assembled by hand from the layout
//! documented in `src/hash/encoding.rs` (magic, version, algorithm, length, words, tail, crc32).

use layerstore::hash::{ResumableSha256, StateError};

fn hand_encoded_abc() -> Vec<u8> {
    let iv = [
        0x6a09e667u32,
        0xbb67ae85,
        0x3c6ef372,
        0xa54ff53a,
        0x510e527f,
        0x9b05688c,
        0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut bytes = b"LSHS".to_vec();
    bytes.push(1); // format version
    bytes.push(1); // sha256
    bytes.extend(3u64.to_be_bytes());
    for word in iv {
        bytes.extend(word.to_be_bytes());
    }
    bytes.extend(b"abc");
    let crc = crc32fast::hash(&bytes);
    bytes.extend(crc.to_be_bytes());
    bytes
}

#[test]
fn encodes_the_documented_layout() {
    let mut state = ResumableSha256::new();
    state.update(b"abc");
    assert_eq!(state.encode(), hand_encoded_abc());
    assert_eq!(ResumableSha256::decode(&hand_encoded_abc()).unwrap(), state);
}

#[test]
fn committed_fuzz_seed_is_a_valid_state() {
    let seed = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/regressions/hash_state_own/sha256_abc"
    ))
    .unwrap();
    assert_eq!(seed, hand_encoded_abc());
}

#[test]
fn newer_version_is_refused_by_name() {
    let mut bytes = hand_encoded_abc();
    bytes[4] = 2;
    assert_eq!(
        ResumableSha256::decode(&bytes),
        Err(StateError::UnsupportedVersion(2))
    );
}
