//! The Go `crypto/sha256` MarshalBinary vectors of distribution-reference.md section 2.5,
//! produced by Go 1.19 (`sha256.New()` + `Write` + `MarshalBinary`): layerstore must write them
//! byte for byte and resume from them to the right digest.

use layerstore::hash::{ResumableSha256, ResumableSha512};
use layerstore::Digest;

const IV: &str = "6a09e667bb67ae853c6ef372a54ff53a510e527f9b05688c1f83d9ab5be0cd19";
const FOX: &[u8] =
    b"The quick brown fox jumps over the lazy dog, and keeps running for seventy bytes";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Assembles a Go state: magic, h, 64-byte buffer, big-endian length.
fn go_state(h_hex: &str, buffer_prefix: &[u8], len: u64) -> Vec<u8> {
    let mut out = b"sha\x03".to_vec();
    out.extend(unhex(h_hex));
    let mut buffer = buffer_prefix.to_vec();
    buffer.resize(64, 0);
    out.extend(buffer);
    out.extend(len.to_be_bytes());
    out
}

fn vectors() -> Vec<(&'static [u8], Vec<u8>)> {
    vec![
        (b"".as_slice(), go_state(IV, b"", 0)),
        (b"abc".as_slice(), go_state(IV, b"abc", 3)),
        (
            [0u8; 64].as_slice(),
            go_state(
                "da5698be17b9b46962335799779fbeca8ce5d491c0d26243bafef9ea1837a9d8",
                b"",
                64,
            ),
        ),
        (
            FOX,
            go_state(
                "1e4caa1abf4eb60c7166548b020e8fcecf06225f2ef4b363914ec91c318097f0",
                b"or seventy bytes",
                80,
            ),
        ),
    ]
}

#[test]
fn fox_input_is_the_documented_80_bytes() {
    assert_eq!(FOX.len(), 80);
    assert_eq!(&FOX[64..], b"or seventy bytes");
}

#[test]
fn writes_go_states_byte_for_byte() {
    for (input, expected) in vectors() {
        let mut state = ResumableSha256::new();
        state.update(input);
        let written = state.to_go_bytes();
        assert_eq!(written.len(), 108);
        assert_eq!(written, expected, "input of {} bytes", input.len());
    }
}

#[test]
fn resumes_go_states_to_the_right_digest() {
    for (input, go_bytes) in vectors() {
        let mut state = ResumableSha256::from_go_bytes(&go_bytes).unwrap();
        assert_eq!(state.len(), input.len() as u64);
        state.update(b" and more");
        let mut whole = input.to_vec();
        whole.extend_from_slice(b" and more");
        assert_eq!(state.digest(), Digest::sha256(&whole));
    }
}

#[test]
fn go_and_own_formats_describe_the_same_state() {
    for (_, go_bytes) in vectors() {
        let from_go = ResumableSha256::from_go_bytes(&go_bytes).unwrap();
        let from_own = ResumableSha256::decode(&from_go.encode()).unwrap();
        assert_eq!(from_own.to_go_bytes(), go_bytes);
    }
}

#[test]
fn sha512_go_state_layout() {
    // Go's sha512 form: "sha\x07", 8 big-endian u64, a 128-byte buffer, big-endian length.
    let mut state = ResumableSha512::new();
    state.update(&[0x61; 130]);
    let bytes = state.to_go_bytes();
    assert_eq!(bytes.len(), 204);
    assert_eq!(&bytes[..4], b"sha\x07");
    assert_eq!(&bytes[68..70], &[0x61, 0x61]);
    assert!(bytes[70..196].iter().all(|&b| b == 0));
    assert_eq!(&bytes[196..], &130u64.to_be_bytes());
    assert_eq!(ResumableSha512::from_go_bytes(&bytes).unwrap(), state);
}
