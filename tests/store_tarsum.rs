//! TarSum in the upload pipeline: computed beside SHA-256 as bytes arrive (store option),
//! checkpointed with the hash state, resumed after a restart, and used to verify a commit that
//! claims a `tarsum.*` digest without reading the data again; or, without the option, verified
//! by one pass over the stored data.

use std::io::Write;

use layerstore::digest::{HashAlgorithm, TarsumVersion};
use layerstore::names::RepositoryName;
use layerstore::store::Store;
use layerstore::tarsum::{TarSum, TarSumStream};
use layerstore::{Digest, StoreError};

fn reference_layer() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/testdata/tarsum/46af0962ab5afeb5ce6740d4d91652e69206fc991fd5328c1a94d364ad00e457/layer.tar"
    );
    std::fs::read(path).expect("../shared/testdata is beside the checkout")
}

fn gzipped(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

fn tarsum_of(data: &[u8], version: TarsumVersion) -> Digest {
    let mut stream = TarSumStream::new(TarSum::new(version, HashAlgorithm::Sha256));
    stream.update(data).unwrap();
    stream.finish().unwrap()
}

/// A store over `root`, computing TarSum `option` beside SHA-256 when given.
fn store_on(root: &std::path::Path, option: Option<TarsumVersion>) -> Store {
    let store = Store::filesystem(root);
    match option {
        Some(version) => store.with_tarsum(version),
        None => store,
    }
}

fn repo() -> RepositoryName {
    "tars/layer".parse().unwrap()
}

/// Uploads `data` in three pieces, checkpointing and "restarting" (a fresh `Store`) in between,
/// then commits under `claimed`.
fn upload_with_restarts(
    make: impl Fn() -> Store,
    data: &[u8],
    claimed: &Digest,
) -> Result<Digest, StoreError> {
    let store = make();
    let mut upload = store.create_upload(&repo()).unwrap();
    let id = upload.id().clone();
    let third = data.len() / 3;
    upload.append(&data[..third]).unwrap();
    upload.checkpoint().unwrap();
    drop(upload);
    let store = make();
    let mut upload = store.resume_upload(&repo(), &id).unwrap();
    upload.append(&data[third..2 * third]).unwrap();
    upload.checkpoint().unwrap();
    drop(upload);
    let store = make();
    let mut upload = store.resume_upload(&repo(), &id).unwrap();
    upload.append(&data[2 * third..]).unwrap();
    upload
        .commit(claimed, Some(data.len() as u64))
        .map(|info| info.digest)
}

#[test]
fn tarsum_claims_verify_with_and_without_the_option() {
    for data in [reference_layer(), gzipped(&reference_layer())] {
        for version in [TarsumVersion::V0, TarsumVersion::V1, TarsumVersion::Dev] {
            let claimed = tarsum_of(&data, version);
            for option in [None, Some(TarsumVersion::V1)] {
                let dir = tempfile::tempdir().unwrap();
                let make = || store_on(dir.path(), option);
                let canonical = upload_with_restarts(make, &data, &claimed).unwrap();
                assert_eq!(canonical, Digest::sha256(&data));
                // The blob is reachable by its TarSum digest (an alias link, as for sha512).
                let info = make().stat_blob(&repo(), &claimed).unwrap();
                assert_eq!(info.digest, canonical);
            }
        }
    }
}

#[test]
fn a_wrong_tarsum_claim_is_rejected_and_publishes_nothing() {
    let data = reference_layer();
    let mut wrong = tarsum_of(&data, TarsumVersion::V1).to_bytes();
    wrong[0] ^= 1;
    let wrong =
        Digest::from_bytes(tarsum_of(&data, TarsumVersion::V1).algorithm(), &wrong).unwrap();
    for option in [None, Some(TarsumVersion::V1)] {
        let dir = tempfile::tempdir().unwrap();
        let make = || store_on(dir.path(), option);
        let err = upload_with_restarts(make, &data, &wrong).unwrap_err();
        assert!(matches!(err, StoreError::DigestInvalid { .. }), "{err:?}");
        assert!(make().stat_blob(&repo(), &Digest::sha256(&data)).is_err());
        assert!(make().stat_blob(&repo(), &wrong).is_err());
    }
}

/// Content TarSum cannot read: plain text, a tar cut short, a gzip stream with a corrupt
/// deflate block. (A gzip tar whose CRC trailer lies is not among them: the reference stops
/// reading at the tar's end marker, before the trailer, and gives the normal sum; see
/// tarsum-spec.md.)
fn broken_archives() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let layer = reference_layer();
    let mut corrupt_deflate = gzipped(&layer);
    let middle = corrupt_deflate.len() / 2;
    corrupt_deflate[middle..middle + 16].copy_from_slice(&[0xff; 16]);
    vec![
        (
            "plain text",
            b"not a tar archive, just plain text. ".repeat(30),
            "invalid tar header at offset 0",
        ),
        (
            "a few bytes",
            b"54 bytes of plain text, shorter than one tar header!!".to_vec(),
            "unexpected end of archive",
        ),
        (
            "truncated tar",
            layer[..layer.len() / 2 + 100].to_vec(),
            "unexpected end of archive",
        ),
        ("corrupt deflate", corrupt_deflate, "compressed offset"),
    ]
}

#[test]
fn a_tarsum_claim_on_content_that_is_no_valid_archive_says_so() {
    for option in [Some(TarsumVersion::V1), None] {
        for (case, data, reason) in broken_archives() {
            let dir = tempfile::tempdir().unwrap();
            let store = store_on(dir.path(), option);
            let mut upload = store.create_upload(&repo()).unwrap();
            let id = upload.id().clone();
            upload.append(&data).unwrap();
            let claimed: Digest = format!("tarsum.v1+sha256:{}", "ab".repeat(32))
                .parse()
                .unwrap();
            let err = upload.commit(&claimed, None).unwrap_err();
            let StoreError::NotAnArchive {
                claimed: named,
                reason: found,
            } = &err
            else {
                panic!("{case} ({option:?}): {err:?}");
            };
            assert_eq!(named, &claimed);
            assert!(
                found.to_string().contains(reason),
                "{case} ({option:?}): {found}"
            );
            // Nothing published, and the session is kept for a cancel or another claim.
            assert!(store.stat_blob(&repo(), &claimed).is_err());
            let status = store.upload_status(&repo(), &id).unwrap();
            assert_eq!(status.offset, data.len() as u64, "{case}");
        }
    }
}
