//! Helpers for the garbage-collection tests: images built through the store API, and a way to
//! make files look old (the collector judges by modification time).
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, SystemTime};

use layerstore::names::{Reference, RepositoryName, Tag};
use layerstore::store::{GcOptions, GcReport, Store};
use layerstore::Digest;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

pub fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

/// Uploads `bytes` as a blob of `repo`.
pub fn put_blob(store: &Store, repo: &RepositoryName, bytes: &[u8]) -> Digest {
    let digest = Digest::sha256(bytes);
    let mut upload = store.create_upload(repo).unwrap();
    upload.append(bytes).unwrap();
    upload.commit(&digest, Some(bytes.len() as u64)).unwrap();
    digest
}

/// The JSON of an OCI image manifest with this config and these layers (and subject).
pub fn image_json(
    config: (&Digest, usize),
    layers: &[(Digest, usize)],
    subject: Option<(&Digest, usize)>,
) -> Vec<u8> {
    let layers: Vec<_> = layers
        .iter()
        .map(|(d, size)| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": d.to_string(),
                "size": size,
            })
        })
        .collect();
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config.0.to_string(),
            "size": config.1,
        },
        "layers": layers,
    });
    if let Some((subject, size)) = subject {
        manifest["subject"] = serde_json::json!({
            "mediaType": OCI_MANIFEST,
            "digest": subject.to_string(),
            "size": size,
        });
    }
    serde_json::to_vec(&manifest).unwrap()
}

/// A pushed image: its manifest digest and size, and its blobs (config first).
#[derive(Debug, Clone)]
pub struct Image {
    pub digest: Digest,
    pub size: usize,
    pub blobs: Vec<Digest>,
}

/// Pushes an image whose config and layers are `contents` (config first), tagged or not.
pub fn push_image(
    store: &Store,
    repo: &RepositoryName,
    contents: &[&[u8]],
    tag: Option<&str>,
) -> Image {
    push_image_with_subject(store, repo, contents, tag, None)
}

pub fn push_image_with_subject(
    store: &Store,
    repo: &RepositoryName,
    contents: &[&[u8]],
    tag: Option<&str>,
    subject: Option<&Image>,
) -> Image {
    let blobs: Vec<Digest> = contents.iter().map(|c| put_blob(store, repo, c)).collect();
    let layers: Vec<(Digest, usize)> = blobs[1..]
        .iter()
        .cloned()
        .zip(contents[1..].iter().map(|c| c.len()))
        .collect();
    let json = image_json(
        (&blobs[0], contents[0].len()),
        &layers,
        subject.map(|s| (&s.digest, s.size)),
    );
    let digest = put_manifest(store, repo, OCI_MANIFEST, &json, tag);
    Image {
        digest,
        size: json.len(),
        blobs,
    }
}

/// Pushes an OCI index of `children`, tagged or not.
pub fn push_index(
    store: &Store,
    repo: &RepositoryName,
    children: &[&Image],
    tag: Option<&str>,
) -> Image {
    let manifests: Vec<_> = children
        .iter()
        .map(|c| {
            serde_json::json!({
                "mediaType": OCI_MANIFEST,
                "digest": c.digest.to_string(),
                "size": c.size,
                "platform": {"architecture": "amd64", "os": "linux"},
            })
        })
        .collect();
    let json = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    }))
    .unwrap();
    let digest = put_manifest(store, repo, OCI_INDEX, &json, tag);
    Image {
        digest,
        size: json.len(),
        blobs: Vec::new(),
    }
}

pub fn put_manifest(
    store: &Store,
    repo: &RepositoryName,
    media_type: &str,
    json: &[u8],
    tag: Option<&str>,
) -> Digest {
    let reference = match tag {
        Some(tag) => Reference::Tag(Tag::parse(tag).unwrap()),
        None => Reference::Digest(Digest::sha256(json)),
    };
    store
        .put_manifest(repo, &reference, Some(media_type), json, &[])
        .unwrap()
        .digest
}

/// Sets the modification time of every file below `root` to `age` ago.
pub fn age_everything(root: &Path, age: Duration) {
    let when = SystemTime::now() - age;
    for entry in walk(root) {
        let file = std::fs::File::options().write(true).open(&entry).unwrap();
        file.set_modified(when).unwrap();
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A collection with no grace (nothing else writes in these tests unless they say so).
pub fn collect(store: &Store, delete_untagged: bool) -> GcReport {
    store
        .collect_garbage(&GcOptions {
            grace: Duration::ZERO,
            delete_untagged,
            ..GcOptions::default()
        })
        .unwrap()
}

/// True when the blob's bytes are stored.
pub fn stored(store: &Store, digest: &Digest) -> bool {
    store.stat_global(digest).is_ok()
}

/// fsck must find nothing wrong.
pub fn assert_fsck_clean(store: &Store) {
    let report = store.fsck(&|_| {}).unwrap();
    assert!(
        report.is_clean(),
        "fsck found: {:?}",
        report
            .problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
    );
}
