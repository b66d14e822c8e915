//! The store every operation starts from (an image tagged `v1`, an unreferenced blob, an
//! upload session with a checkpoint) and the checks that read it back.

use std::io::Read;

use layerstore::names::{Reference, RepositoryName, Tag, UploadId};
use layerstore::storage::{DriverPath, StorageError};
use layerstore::store::{Store, StoreError};
use layerstore::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Deterministic bytes that are never all zeros (a zero-filled tail must not pass for data).
pub fn payload(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

pub fn repo() -> RepositoryName {
    RepositoryName::parse("team/app").unwrap()
}

pub fn tag(name: &str) -> Tag {
    Tag::parse(name).unwrap()
}

pub fn put_blob(store: &Store, repo: &RepositoryName, bytes: &[u8]) -> Digest {
    let digest = Digest::sha256(bytes);
    let mut upload = store.create_upload(repo).unwrap();
    upload.append(bytes).unwrap();
    upload.commit(&digest, Some(bytes.len() as u64)).unwrap();
    digest
}

/// An image's manifest and blobs.
#[derive(Debug, Clone)]
pub struct Image {
    pub digest: Digest,
    pub json: Vec<u8>,
    pub blobs: Vec<(Digest, Vec<u8>)>,
}

/// Uploads a config and a layer and returns the manifest naming them (not stored yet).
pub fn image_blobs(store: &Store, seed: u8) -> Image {
    let blobs: Vec<(Digest, Vec<u8>)> = [payload(seed, 300), payload(seed + 1, 3000)]
        .into_iter()
        .map(|bytes| (put_blob(store, &repo(), &bytes), bytes))
        .collect();
    let descriptor = |(digest, bytes): &(Digest, Vec<u8>), media_type: &str| serde_json::json!({"mediaType": media_type, "digest": digest.to_string(), "size": bytes.len()});
    let json = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(&blobs[0], "application/vnd.oci.image.config.v1+json"),
        "layers": [descriptor(&blobs[1], "application/vnd.oci.image.layer.v1.tar+gzip")],
    }))
    .unwrap();
    Image {
        digest: Digest::sha256(&json),
        json,
        blobs,
    }
}

pub fn put_manifest(store: &Store, image: &Image, reference: Reference) {
    store
        .put_manifest(&repo(), &reference, Some(OCI_MANIFEST), &image.json, &[])
        .unwrap();
}

/// What the store holds before every operation but the first open.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub image: Image,
    pub orphan: (Digest, Vec<u8>),
    pub session: UploadId,
    /// The session's bytes: the first `acknowledged` were checkpointed.
    pub session_bytes: Vec<u8>,
    pub acknowledged: usize,
}

impl Fixture {
    pub fn build(store: &Store) -> Fixture {
        let image = image_blobs(store, 1);
        put_manifest(store, &image, Reference::Tag(tag("v1")));
        let orphan = payload(9, 2000);
        let orphan = (put_blob(store, &repo(), &orphan), orphan);
        let session_bytes = payload(20, 6000);
        let acknowledged = 2500;
        let mut upload = store.create_upload(&repo()).unwrap();
        upload.append(&session_bytes[..acknowledged]).unwrap();
        upload.checkpoint().unwrap();
        Fixture {
            image,
            orphan,
            session: upload.id().clone(),
            session_bytes,
            acknowledged,
        }
    }
}

/// Which of the fixture's items an operation may have changed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Changes {
    pub manifest: bool,
    pub tag: bool,
    pub orphan: bool,
    pub session: bool,
}

/// The fixture's items that the operation does not touch are all there, whole.
pub fn check_fixture(store: &Store, fx: &Fixture, changes: Changes) -> Result<(), String> {
    for (digest, bytes) in &fx.image.blobs {
        check_blob(store, digest, Some(bytes))?;
    }
    if !changes.manifest {
        check_manifest(store, &fx.image)?;
    }
    if !changes.tag && tag_target(store, "v1")? != Some(fx.image.digest.clone()) {
        return Err("tag v1 no longer names the image".into());
    }
    if !changes.orphan {
        check_blob(store, &fx.orphan.0, Some(&fx.orphan.1))?;
    }
    if !changes.session {
        finish_session(store, fx, fx.acknowledged)?;
    }
    check_listed_tags(store)
}

/// The blob reads back as `expected`, or (`None`) is unknown or reads back whole.
pub fn check_blob(store: &Store, digest: &Digest, expected: Option<&[u8]>) -> Result<(), String> {
    match store.open_blob(Some(&repo()), digest) {
        Ok((_, body)) => {
            let mut bytes = Vec::new();
            body.reader(None)
                .and_then(|mut r| r.read_to_end(&mut bytes).map_err(StoreError::Output))
                .map_err(|e| format!("blob {digest}: {e}"))?;
            let right = expected.map_or(Digest::sha256(&bytes) == *digest, |e| e == bytes);
            match right {
                true => Ok(()),
                false => Err(format!("blob {digest} reads back other bytes")),
            }
        }
        Err(StoreError::BlobUnknown(_)) if expected.is_none() => Ok(()),
        Err(e) => Err(format!("blob {digest}: {e}")),
    }
}

pub fn check_manifest(store: &Store, image: &Image) -> Result<(), String> {
    let reference = Reference::Digest(image.digest.clone());
    match store.get_manifest(&repo(), &reference) {
        Ok(m) if m.bytes == image.json => Ok(()),
        Ok(_) => Err(format!("manifest {} reads back other bytes", image.digest)),
        Err(e) => Err(format!("manifest {}: {e}", image.digest)),
    }
}

/// Whether the manifest is stored: `Ok(false)` when unknown, an error if it reads wrong.
pub fn manifest_present(store: &Store, image: &Image) -> Result<bool, String> {
    let reference = Reference::Digest(image.digest.clone());
    match store.get_manifest(&repo(), &reference) {
        Err(StoreError::ManifestUnknown(_)) => Ok(false),
        _ => check_manifest(store, image).map(|()| true),
    }
}

/// The manifest a tag names, `None` if it names none.
pub fn tag_target(store: &Store, name: &str) -> Result<Option<Digest>, String> {
    match store.get_manifest(&repo(), &Reference::Tag(tag(name))) {
        Ok(m) => Ok(Some(m.digest)),
        Err(StoreError::ManifestUnknown(_)) => Ok(None),
        Err(e) => Err(format!("tag {name}: {e}")),
    }
}

/// Every tag the tags list shows can be read (a listed tag that 404s is a half-written one).
pub fn check_listed_tags(store: &Store) -> Result<(), String> {
    let tags = store.tags(&repo()).map_err(|e| format!("tags list: {e}"))?;
    for listed in tags {
        if tag_target(store, listed.as_str())?.is_none() {
            return Err(format!("tag {listed} is listed but unreadable"));
        }
    }
    Ok(())
}

/// A client's resume of the fixture's session: ask the offset (at least `acknowledged`), send
/// the rest from there, commit; the blob must then read back whole.
pub fn finish_session(store: &Store, fx: &Fixture, acknowledged: usize) -> Result<(), String> {
    let status = store
        .upload_status(&repo(), &fx.session)
        .map_err(|e| format!("session status: {e}"))?;
    let offset = status.offset as usize;
    if offset < acknowledged || offset > fx.session_bytes.len() {
        return Err(format!("session at {offset}, {acknowledged} acknowledged"));
    }
    finish_upload(store, &fx.session, &fx.session_bytes, offset)
}

/// Resumes the session `id` (its status said `offset`), sends the rest of `bytes`, commits,
/// and reads the blob back.
pub fn finish_upload(
    store: &Store,
    id: &UploadId,
    bytes: &[u8],
    offset: usize,
) -> Result<(), String> {
    let mut upload = store
        .resume_upload(&repo(), id)
        .map_err(|e| format!("resume: {e}"))?;
    if upload.offset() as usize != offset {
        return Err(format!(
            "resumed at {} but status said {offset}",
            upload.offset()
        ));
    }
    upload
        .append(&bytes[offset..])
        .map_err(|e| format!("append: {e}"))?;
    let digest = Digest::sha256(bytes);
    upload
        .commit(&digest, Some(bytes.len() as u64))
        .map_err(|e| format!("commit after resume at {offset}: {e}"))?;
    check_blob(store, &digest, Some(bytes))
}

/// No upload session is left in the repository.
pub fn check_no_sessions(store: &Store) -> Result<(), String> {
    let dir = DriverPath::parse("/docker/registry/v2/repositories/team/app/_uploads").unwrap();
    match store.driver().list(&dir) {
        Ok(left) if left.is_empty() => Ok(()),
        Ok(left) => Err(format!("sessions left after purge: {left:?}")),
        Err(StorageError::NotFound(_)) => Ok(()),
        Err(e) => Err(format!("list uploads: {e}")),
    }
}
