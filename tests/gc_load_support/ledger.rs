//! What one client was told: every manifest the server acknowledged (201), the tags it holds
//! now, the manifests pushed untagged, what it deleted. Each client owns its repositories
//! (nobody else pushes, tags or deletes there), so its ledger is exactly what they must hold.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

/// An acknowledged manifest: where, its digest and bytes, and its blobs (config first).
#[derive(Debug, Clone)]
pub struct Image {
    pub repo: String,
    pub digest: String,
    pub manifest: Vec<u8>,
    pub blobs: Vec<(String, usize)>,
    /// How each blob got into the repository and when the manifest was acknowledged (seconds
    /// since the load started): printed when the image is found broken.
    pub evidence: String,
}

/// One client's ledger.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Every manifest acknowledged, by digest (digests are unique: each image has a config of
    /// its own).
    pub images: HashMap<String, Image>,
    /// `(repository, tag)` -> digest: the tags as the server must hold them now.
    pub tags: BTreeMap<(String, String), String>,
    /// Manifests pushed by digest, with the time of their 201.
    pub untagged: Vec<(String, Instant)>,
    /// Manifests deleted by digest (DELETE answered 202).
    pub deleted: HashSet<String>,
}

impl Ledger {
    /// Records an acknowledged push (or tag) of `image`, under `tag` if any.
    pub fn acknowledged(&mut self, image: Image, tag: Option<&str>) {
        match tag {
            Some(tag) => {
                self.tags
                    .insert((image.repo.clone(), tag.to_owned()), image.digest.clone());
            }
            None => self.untagged.push((image.digest.clone(), Instant::now())),
        }
        self.images.insert(image.digest.clone(), image);
    }

    /// The tags of `repo` and the digests they name.
    pub fn tags_in(&self, repo: &str) -> Vec<(String, String)> {
        self.tags
            .iter()
            .filter(|((r, _), _)| r == repo)
            .map(|((_, tag), digest)| (tag.clone(), digest.clone()))
            .collect()
    }

    /// Untagged manifests of `repo` acknowledged less than `young` ago and not deleted: no
    /// collection may have taken them yet.
    pub fn young_untagged(&self, repo: &str, young: Duration) -> Vec<String> {
        self.untagged
            .iter()
            .filter(|(digest, at)| {
                at.elapsed() < young
                    && !self.deleted.contains(digest)
                    && self.images[digest].repo == repo
            })
            .map(|(digest, _)| digest.clone())
            .collect()
    }

    /// Forgets untagged pushes older than `young` (they stay in `images`).
    pub fn prune(&mut self, young: Duration) {
        self.untagged.retain(|(_, at)| at.elapsed() < young);
    }

    /// A tag was deleted (202).
    pub fn tag_deleted(&mut self, repo: &str, tag: &str) {
        self.tags.remove(&(repo.to_owned(), tag.to_owned()));
    }

    /// A manifest was deleted by digest (202): it and every tag naming it are gone.
    pub fn manifest_deleted(&mut self, repo: &str, digest: &str) {
        self.tags.retain(|(r, _), d| !(r == repo && d == digest));
        self.deleted.insert(digest.to_owned());
    }

    /// `(repository, digest)` of every manifest a tag names: what must be pullable in full.
    pub fn live(&self) -> BTreeSet<(String, String)> {
        self.tags
            .iter()
            .map(|((repo, _), digest)| (repo.clone(), digest.clone()))
            .collect()
    }
}
