//! Property tests: random data cut at random points, the state saved and restored at every cut
//! (in either encoding), gives the same digest as one-shot `sha2`.

use layerstore::digest::HashAlgorithm;
use layerstore::hash::{Hasher, ResumableSha256, ResumableSha512};
use proptest::prelude::*;
use sha2::Digest as _;

/// Which encoding to save through.
#[derive(Debug, Clone, Copy)]
enum Encoding {
    Own,
    Go,
}

fn save_and_restore(state: &Hasher, encoding: Encoding) -> Hasher {
    match encoding {
        Encoding::Own => Hasher::decode(&state.encode()).unwrap(),
        Encoding::Go => Hasher::from_go_bytes(&state.to_go_bytes()).unwrap(),
    }
}

/// Hashes `data` in pieces ending at each of `cuts`, saving and restoring between pieces.
fn hash_with_cuts(
    algorithm: HashAlgorithm,
    data: &[u8],
    cuts: &[usize],
    encoding: Encoding,
) -> Vec<u8> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.sort_unstable();
    let mut state = Hasher::new(algorithm);
    let mut start = 0;
    for point in points.into_iter().chain([data.len()]) {
        state.update(&data[start..point]);
        start = point;
        state = save_and_restore(&state, encoding);
        assert_eq!(state.len(), point as u64);
    }
    state.digest().to_bytes()
}

fn encodings() -> impl Strategy<Value = Encoding> {
    prop_oneof![Just(Encoding::Own), Just(Encoding::Go)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sha256_resume_at_any_cut(
        data in proptest::collection::vec(any::<u8>(), 0..2000),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        encoding in encodings(),
    ) {
        let expected = sha2::Sha256::digest(&data).to_vec();
        prop_assert_eq!(hash_with_cuts(HashAlgorithm::Sha256, &data, &cuts, encoding), expected);
    }

    #[test]
    fn sha512_resume_at_any_cut(
        data in proptest::collection::vec(any::<u8>(), 0..2000),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        encoding in encodings(),
    ) {
        let expected = sha2::Sha512::digest(&data).to_vec();
        prop_assert_eq!(hash_with_cuts(HashAlgorithm::Sha512, &data, &cuts, encoding), expected);
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Hasher::decode(&bytes);
        let _ = ResumableSha256::from_go_bytes(&bytes);
        let _ = ResumableSha512::from_go_bytes(&bytes);
    }

    #[test]
    fn go_decoder_accepts_any_length_field_without_panic(
        len in any::<u64>(),
        fill in any::<u8>(),
    ) {
        // A hostile byte count with a buffer that may or may not agree with it.
        let mut bytes = ResumableSha256::new().to_go_bytes();
        bytes[36..100].fill(fill);
        bytes[100..].copy_from_slice(&len.to_be_bytes());
        if let Ok(state) = ResumableSha256::from_go_bytes(&bytes) {
            prop_assert_eq!(state.len(), len);
            prop_assert_eq!(state.to_go_bytes(), bytes);
        }
    }
}
