//! What one client was told, held so that a kill never makes it claim too much: a request the
//! kill cut short may or may not have taken effect, so what it would have changed leaves the
//! certain state ([`Ledger::tags`]) until a later acknowledged write settles it again.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::gc_load_support::ledger::Image;

/// A blob acknowledged with 201 (upload, or mount) into `repo`.
#[derive(Debug, Clone)]
pub struct AckedBlob {
    pub repo: String,
    pub digest: String,
    pub len: usize,
    pub at: Instant,
}

/// One client's ledger.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Manifests still relied on (a certain tag names them, or young untagged), by digest.
    pub images: HashMap<String, Image>,
    /// `(repository, tag)` -> digest: tags whose last write or delete was acknowledged.
    pub tags: BTreeMap<(String, String), String>,
    /// Manifests pushed by digest and not deleted, with the time of their 201.
    pub untagged: Vec<(String, Instant)>,
    /// Blobs acknowledged lately, with the time of their 201.
    pub blobs: Vec<AckedBlob>,
}

/// What must be readable now, as the checks read it.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// `(reference, image)`: every certain tag, and the digest it names.
    pub live: Vec<(String, Image)>,
    /// Untagged manifests and their 201's time.
    pub young_manifests: Vec<(Image, Instant)>,
    pub young_blobs: Vec<AckedBlob>,
}

impl Ledger {
    /// An acknowledged push (or tag) of `image`, under `tag` if any.
    pub fn acknowledged(&mut self, image: Image, tag: Option<&str>) {
        match tag {
            Some(tag) => {
                let key = (image.repo.clone(), tag.to_owned());
                self.tags.insert(key, image.digest.clone());
            }
            None => self.untagged.push((image.digest.clone(), Instant::now())),
        }
        self.images.insert(image.digest.clone(), image);
    }

    pub fn blob_acknowledged(&mut self, repo: &str, digest: &str, len: usize) {
        self.blobs.push(AckedBlob {
            repo: repo.to_owned(),
            digest: digest.to_owned(),
            len,
            at: Instant::now(),
        });
    }

    /// A tag was deleted (202), or a write or delete of it was cut short: it is not relied on.
    pub fn forget_tag(&mut self, repo: &str, tag: &str) {
        self.tags.remove(&(repo.to_owned(), tag.to_owned()));
    }

    /// A manifest was deleted by digest (202), or the delete was cut short: neither it nor any
    /// tag naming it is relied on.
    pub fn forget_manifest(&mut self, repo: &str, digest: &str) {
        self.tags.retain(|(r, _), d| !(r == repo && d == digest));
        self.untagged.retain(|(d, _)| d != digest);
    }

    /// The tags of `repo` and the digests they name.
    pub fn tags_in(&self, repo: &str) -> Vec<(String, String)> {
        self.tags
            .iter()
            .filter(|((r, _), _)| r == repo)
            .map(|((_, tag), digest)| (tag.clone(), digest.clone()))
            .collect()
    }

    /// Untagged manifests of `repo` acknowledged less than `young` ago.
    pub fn young_untagged(&self, repo: &str, young: Duration) -> Vec<String> {
        self.untagged
            .iter()
            .filter(|(digest, at)| at.elapsed() < young && self.images[digest].repo == repo)
            .map(|(digest, _)| digest.clone())
            .collect()
    }

    /// Forgets what is older than `young` and not named by a tag.
    pub fn prune(&mut self, young: Duration) {
        self.untagged.retain(|(_, at)| at.elapsed() < young);
        self.blobs.retain(|b| b.at.elapsed() < young);
        let tags = &self.tags;
        let untagged = &self.untagged;
        self.images.retain(|digest, _| {
            tags.values().any(|d| d == digest) || untagged.iter().any(|(d, _)| d == digest)
        });
    }

    /// What must be readable now.
    pub fn snapshot(&self) -> Snapshot {
        let mut live = Vec::new();
        for ((_, tag), digest) in &self.tags {
            let image = &self.images[digest];
            live.push((tag.clone(), image.clone()));
            live.push((digest.clone(), image.clone()));
        }
        Snapshot {
            live,
            young_manifests: (self.untagged.iter())
                .map(|(d, at)| (self.images[d].clone(), *at))
                .collect(),
            young_blobs: self.blobs.clone(),
        }
    }
}
