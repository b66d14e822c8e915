//! Interoperability with distribution 2.8's filesystem layout, both ways, using hand-written
//! files (the bytes distribution writes, per docs/distribution-reference.md sections 1 and 2),
//! not layerstore's own encoders.

use std::fs;
use std::path::{Path, PathBuf};

use layerstore::digest::Digest;
use layerstore::names::{RepositoryName, UploadId};
use layerstore::store::{Store, StoreError};

const V2: &str = "docker/registry/v2";

/// SHA-256 initial chaining values, big-endian, as in every Go state of a short input.
const IV_HEX: &str = "6a09e667bb67ae853c6ef372a54ff53a510e527f9b05688c1f83d9ab5be0cd19";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A Go `crypto/sha256` MarshalBinary state: magic, h, 64-byte buffer, big-endian length.
fn go_state(h_hex: &str, pending: &[u8], len: u64) -> Vec<u8> {
    let mut out = b"sha\x03".to_vec();
    out.extend(unhex(h_hex));
    let mut block = [0u8; 64];
    block[..pending.len()].copy_from_slice(pending);
    out.extend(block);
    out.extend(len.to_be_bytes());
    assert_eq!(out.len(), 108);
    out
}

fn write(root: &Path, rel: &str, content: &[u8]) {
    let path = root.join(V2).join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// Every file under `dir`, as sorted relative paths.
fn files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path: PathBuf = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.push(
                    path.strip_prefix(base)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn reads_blobs_and_resumes_uploads_written_by_distribution() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let layer = b"layer bytes written by distribution".to_vec();
    let d = Digest::sha256(&layer);
    let h = d.hex().to_owned();
    let repo = RepositoryName::parse("library/alpine").unwrap();
    write(root, &format!("blobs/sha256/{}/{h}/data", &h[..2]), &layer);
    write(
        root,
        &format!("repositories/library/alpine/_layers/sha256/{h}/link"),
        d.to_string().as_bytes(),
    );
    // A sha512 alias link: the path names sha512, the content is the sha256.
    let alias: Digest = format!("sha512:{}", "ab".repeat(64)).parse().unwrap();
    write(
        root,
        &format!(
            "repositories/library/alpine/_layers/sha512/{}/link",
            alias.hex()
        ),
        d.to_string().as_bytes(),
    );
    // An upload distribution left after "POST" + "PATCH abc": states at 0 and 3.
    let id = "3f2a9c4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b";
    let up = format!("repositories/library/alpine/_uploads/{id}");
    write(root, &format!("{up}/startedat"), b"2024-01-02T03:04:05Z");
    write(root, &format!("{up}/data"), b"abc");
    write(
        root,
        &format!("{up}/hashstates/sha256/0"),
        &go_state(IV_HEX, b"", 0),
    );
    write(
        root,
        &format!("{up}/hashstates/sha256/3"),
        &go_state(IV_HEX, b"abc", 3),
    );
    // Another one with a full block hashed, then more data than the last state covers.
    let id2 = "8c1b4d2e-0f3a-4b5c-9d6e-7f8a9b0c1d2e";
    let up2 = format!("repositories/library/alpine/_uploads/{id2}");
    write(root, &format!("{up2}/startedat"), b"2024-01-02T03:04:05Z");
    let mut data2 = vec![0u8; 64];
    data2.extend_from_slice(b"tail not covered by a state");
    write(root, &format!("{up2}/data"), &data2);
    let h64 = "da5698be17b9b46962335799779fbeca8ce5d491c0d26243bafef9ea1837a9d8";
    write(
        root,
        &format!("{up2}/hashstates/sha256/64"),
        &go_state(h64, b"", 64),
    );

    let store = Store::filesystem(root);
    let mut out = Vec::new();
    let (info, body) = store.open_blob(Some(&repo), &d).unwrap();
    body.write_to(None, &mut out).unwrap();
    assert_eq!((out, info.size), (layer.clone(), layer.len() as u64));
    assert_eq!(
        store.stat_blob(&repo, &alias).unwrap().digest,
        d,
        "alias followed by content"
    );
    assert!(
        store
            .fsck(&|_| {})
            .unwrap()
            .problems
            .iter()
            .any(|p| p.to_string().contains("sha512")),
        "the fake alias does not hash to its path digest, and fsck says so"
    );

    let mut upload = store
        .resume_upload(&repo, &UploadId::parse(id).unwrap())
        .unwrap();
    assert_eq!(upload.offset(), 3);
    upload.append(b" and more").unwrap();
    let info = upload
        .commit(&Digest::sha256(b"abc and more"), Some(12))
        .unwrap();
    assert_eq!(info.digest, Digest::sha256(b"abc and more"));

    let mut upload = store
        .resume_upload(&repo, &UploadId::parse(id2).unwrap())
        .unwrap();
    assert_eq!(upload.offset(), data2.len() as u64);
    upload.append(b"!").unwrap();
    data2.push(b'!');
    upload.commit(&Digest::sha256(&data2), None).unwrap();
    let status = store.upload_status(&repo, &UploadId::parse(id2).unwrap());
    assert!(matches!(status, Err(StoreError::BlobUploadUnknown(_))));
}

#[test]
fn writes_exactly_distributions_paths_and_contents() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::filesystem(dir.path());
    let repo = RepositoryName::parse("my-org/app").unwrap();
    let mut upload = store.create_upload(&repo).unwrap();
    let id = upload.id().to_string();
    upload.append(b"abc").unwrap();
    upload.checkpoint().unwrap();

    let up = format!("{V2}/repositories/my-org/app/_uploads/{id}");
    assert_eq!(
        files(dir.path()),
        [
            format!("{up}/data"),
            format!("{up}/hashstates/sha256/3"),
            format!("{up}/startedat")
        ]
    );
    let base = dir.path().join(&up);
    assert_eq!(fs::read(base.join("data")).unwrap(), b"abc");
    assert_eq!(
        fs::read(base.join("hashstates/sha256/3")).unwrap(),
        go_state(IV_HEX, b"abc", 3)
    );
    let started = fs::read_to_string(base.join("startedat")).unwrap();
    let shape = started.len() == 20
        && started.ends_with('Z')
        && started.as_bytes()[10] == b'T'
        && started.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    assert!(shape, "startedat {started:?} is RFC 3339 UTC whole seconds");

    let d = Digest::sha256(b"abc");
    upload.commit(&d, None).unwrap();
    let h = d.hex();
    assert_eq!(
        files(dir.path()),
        [
            format!("{V2}/blobs/sha256/{}/{h}/data", &h[..2]),
            format!("{V2}/repositories/my-org/app/_layers/sha256/{h}/link"),
        ]
    );
    let link = dir.path().join(format!(
        "{V2}/repositories/my-org/app/_layers/sha256/{h}/link"
    ));
    assert_eq!(
        fs::read(link).unwrap(),
        d.to_string().as_bytes(),
        "no newline"
    );
}
