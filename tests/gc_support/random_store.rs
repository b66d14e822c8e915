//! A randomized store for comparing layerstore's collector with distribution 2.8's
//! `garbage-collect`, pushed through the store API, and beside it a [`Model`] of what was pushed.
//!
//! The store has many repositories (some nested, one inside another), Docker schema 2 and OCI
//! images whose layers are shared within and across repositories, tags that move (so their
//! history has several entries), untagged and deleted manifests, deleted tags, OCI indexes and
//! Docker manifest lists (tagged or not, with tagged or untagged children), referrers (untagged
//! OCI manifests with a `subject` that is live, dead, deleted or absent), copies of an image in
//! several repositories and orphan blobs.
//!
//! The model knows, without asking either collector, what each set of rules keeps
//! ([`Model::collected`]): so a test can say what distribution should delete, and what
//! layerstore's extra rules keep on top of it.

use std::collections::{BTreeMap, BTreeSet};

use layerstore::names::Tag;
use layerstore::store::Store;
use layerstore::Digest;
use serde_json::{json, Value};

use crate::gc_support::{put_blob, put_manifest, repo, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};

#[path = "random_model.rs"]
mod model;
pub use model::{Collected, Model, Pushed, RepoModel, Rules};

pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const SIGNATURE: &str = "application/vnd.example.signature.v1";

/// The tags random steps reuse, so that tags move and their history grows.
const TAGS: [&str; 5] = ["latest", "v1", "v2", "stable", "dev"];
/// Layers any image of the store may share.
const SHARED_LAYERS: usize = 10;

/// What the store may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Everything: referrers, untagged children of indexes.
    Full,
    /// No referrers, and every index child keeps a tag of its own that no step moves or
    /// deletes: the two collectors' rules agree on such a store.
    Plain,
}

use crate::common::rng::Rng;

/// Builds a random store of `shape` from `seed` in `store` (which must be empty).
pub fn build(store: &Store, seed: u64, shape: Shape) -> Model {
    let mut generator = Generator {
        store,
        rng: Rng::new(seed),
        shape,
        counter: 0,
        model: Model {
            seed,
            repos: Vec::new(),
            manifests: BTreeMap::new(),
            blobs: BTreeSet::new(),
            orphans: BTreeSet::new(),
        },
    };
    let repositories = generator.rng.between(8, 14);
    for i in 0..repositories {
        generator.add_repository(&repo_name(i));
        let steps = generator.rng.between(5, 12);
        for _ in 0..steps {
            generator.step(i);
        }
    }
    generator.fixture();
    generator.model
}

/// Flat, nested, and nested inside another repository (`r4` and `r4/5sub`: a digit sorts
/// before `_layers`, so a walk meets the inner repository before the outer one's links).
fn repo_name(i: usize) -> String {
    match i % 4 {
        0 => format!("r{i}"),
        1 => format!("r{}/{i}sub", i - 1),
        2 => format!("team{i}/app"),
        _ => format!("org/team{i}/svc"),
    }
}

struct Generator<'a> {
    store: &'a Store,
    rng: Rng,
    shape: Shape,
    /// Makes every fresh blob and pinned tag unique.
    counter: u64,
    model: Model,
}

impl Generator<'_> {
    /// A new repository whose first push is tagged: distribution 2.8's `--delete-untagged`
    /// fails on a repository without a tags directory.
    fn add_repository(&mut self, name: &str) -> usize {
        self.model.repos.push(RepoModel {
            name: repo(name),
            revisions: BTreeSet::new(),
            tags: BTreeMap::new(),
            pinned: BTreeSet::new(),
        });
        let r = self.model.repos.len() - 1;
        let docker = self.rng.chance(50);
        let image = self.new_image(r, docker);
        self.put(r, image, Some("latest".to_owned()));
        r
    }

    /// One random change to repository `r`.
    fn step(&mut self, r: usize) {
        match self.rng.below(100) {
            0..=24 => {
                let docker = self.rng.chance(50);
                let image = self.new_image(r, docker);
                let tag = self.random_tag(50);
                self.put(r, image, tag);
            }
            25..=39 => {
                let docker = self.rng.chance(50);
                let tag = self.random_tag(60);
                self.push_index(r, docker, 0, tag);
            }
            40..=51 if self.shape == Shape::Full => {
                let subject = self.referrer_subject(r);
                self.push_referrer(r, &subject);
            }
            40..=59 => self.retag(r),
            60..=71 => self.delete_manifest(r),
            72..=79 => self.delete_tag(r),
            80..=87 => {
                let bytes = self.fresh("orphan");
                let digest = self.upload(r, &bytes).0;
                self.model.orphans.insert(digest);
            }
            _ => self.copy_image(r),
        }
    }

    /// The same cases every seed has, so each run meets each rule: a tagged OCI index and a
    /// tagged Docker list (with untagged children in a `Full` store), an untagged image, a
    /// deleted one and an orphan; in a `Full` store also a chain of referrers of a tagged
    /// image, an index that refers to it, and referrers of the untagged and deleted images.
    fn fixture(&mut self) {
        let r = self.add_repository("fixed/gc");
        let tagged = self.model.repos[r].tags["latest"].clone();
        self.push_index(r, false, 0, Some("multi".to_owned()));
        self.push_index(r, true, 0, Some("list".to_owned()));
        let image = self.new_image(r, false);
        let untagged = self.put(r, image, None);
        let image = self.new_image(r, true);
        let deleted = self.put(r, image, None);
        if self.shape == Shape::Full {
            let signature = self.push_referrer(r, &tagged);
            self.push_referrer(r, &signature);
            self.push_index_of(r, false, 1, None, Some(&tagged));
            self.push_referrer(r, &untagged);
            self.push_referrer(r, &deleted);
        }
        self.store
            .delete_manifest(&self.model.repos[r].name, &deleted)
            .unwrap();
        self.model.repos[r].revisions.remove(&deleted);
        let bytes = self.fresh("orphan");
        let orphan = self.upload(r, &bytes).0;
        self.model.orphans.insert(orphan);
    }

    /// Unique bytes of random length.
    fn fresh(&mut self, what: &str) -> Vec<u8> {
        self.counter += 1;
        let mut bytes =
            format!("{what} {} of seed {}\n", self.counter, self.model.seed).into_bytes();
        let padding = self.rng.below(200);
        bytes.extend((0..padding).map(|_| self.rng.next_u64() as u8));
        bytes
    }

    fn upload(&mut self, r: usize, bytes: &[u8]) -> (Digest, usize) {
        let digest = put_blob(self.store, &self.model.repos[r].name, bytes);
        self.model.blobs.insert(digest.clone());
        (digest, bytes.len())
    }

    /// Uploads a config and one to three layers (some from the store-wide shared ones) to `r`,
    /// and returns an image manifest over them, not yet pushed.
    fn new_image(&mut self, r: usize, docker: bool) -> Pushed {
        let config = self.fresh("config");
        let config = self.upload(r, &config);
        let mut layers = Vec::new();
        for _ in 0..self.rng.between(1, 3) {
            let bytes = if self.rng.chance(40) {
                let i = self.rng.below(SHARED_LAYERS);
                format!("shared layer {i} of seed {}", self.model.seed).into_bytes()
            } else {
                self.fresh("layer")
            };
            layers.push(self.upload(r, &bytes));
        }
        let (media_type, config_type, layer_type) = if docker {
            (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER)
        } else {
            (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER)
        };
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": descriptor(config_type, &config),
            "layers": layers.iter().map(|l| descriptor(layer_type, l)).collect::<Vec<_>>(),
        });
        Pushed {
            media_type,
            json: serde_json::to_vec(&manifest).unwrap(),
            blobs: std::iter::once(config)
                .chain(layers)
                .map(|(d, _)| d)
                .collect(),
            children: Vec::new(),
            subject: None,
        }
    }

    /// Pushes `pushed` to `r` (tagged `tag`, else by digest) and records it.
    fn put(&mut self, r: usize, pushed: Pushed, tag: Option<String>) -> Digest {
        let name = self.model.repos[r].name.clone();
        let digest = put_manifest(
            self.store,
            &name,
            pushed.media_type,
            &pushed.json,
            tag.as_deref(),
        );
        assert_eq!(digest, Digest::sha256(&pushed.json));
        let repo = &mut self.model.repos[r];
        repo.revisions.insert(digest.clone());
        if let Some(tag) = tag {
            repo.tags.insert(tag, digest.clone());
        }
        self.model.blobs.insert(digest.clone());
        self.model.manifests.entry(digest.clone()).or_insert(pushed);
        digest
    }

    /// One of [`TAGS`] `percent` times in a hundred, else none.
    fn random_tag(&mut self, percent: usize) -> Option<String> {
        self.rng
            .chance(percent)
            .then(|| TAGS[self.rng.below(TAGS.len())].to_owned())
    }

    /// Pushes an OCI index (or a Docker manifest list) of one to three children to `r`.
    fn push_index(&mut self, r: usize, docker: bool, depth: u32, tag: Option<String>) -> Digest {
        self.push_index_of(r, docker, depth, tag, None)
    }

    /// [`push_index`](Self::push_index), with a `subject` (OCI only): an index that is a
    /// referrer.
    fn push_index_of(
        &mut self,
        r: usize,
        docker: bool,
        depth: u32,
        tag: Option<String>,
        subject: Option<&Digest>,
    ) -> Digest {
        let mut descriptors = Vec::new();
        let mut children = Vec::new();
        for i in 0..self.rng.between(1, 3) {
            let child = self.push_child(r, docker, depth);
            let pushed = &self.model.manifests[&child];
            let architecture = ["amd64", "arm64", "s390x"][i];
            descriptors.push(json!({
                "mediaType": pushed.media_type,
                "digest": child.to_string(),
                "size": pushed.json.len(),
                "platform": {"architecture": architecture, "os": "linux"},
            }));
            children.push(child);
        }
        let media_type = if docker { DOCKER_LIST } else { OCI_INDEX };
        let mut index =
            json!({"schemaVersion": 2, "mediaType": media_type, "manifests": descriptors});
        if let Some(subject) = subject {
            index["artifactType"] = json!(SIGNATURE);
            index["subject"] = self.subject_descriptor(subject);
        }
        let pushed = Pushed {
            media_type,
            json: serde_json::to_vec(&index).unwrap(),
            blobs: Vec::new(),
            children,
            subject: subject.cloned(),
        };
        self.put(r, pushed, tag)
    }

    /// An index child: in a `Full` store sometimes an image already in `r`, or (OCI, once deep)
    /// an index; otherwise a new image. A `Plain` store pins a tag on every child.
    fn push_child(&mut self, r: usize, docker: bool, depth: u32) -> Digest {
        let media_type = if docker {
            DOCKER_MANIFEST
        } else {
            OCI_MANIFEST
        };
        let tag = match self.shape {
            Shape::Plain => {
                self.counter += 1;
                let tag = format!("child-{}", self.counter);
                self.model.repos[r].pinned.insert(tag.clone());
                Some(tag)
            }
            Shape::Full => self.random_tag(30),
        };
        if self.shape == Shape::Full && self.rng.chance(25) {
            let existing =
                self.revisions_where(r, |p| p.media_type == media_type && p.subject.is_none());
            if let Some(existing) = self.rng.pick(&existing) {
                return existing;
            }
        }
        if !docker && depth == 0 && self.rng.chance(15) {
            return self.push_index(r, false, depth + 1, tag);
        }
        let image = self.new_image(r, docker);
        self.put(r, image, tag)
    }

    /// An untagged OCI artifact whose `subject` is `subject`: mostly an image manifest
    /// sharing the empty config `{}` with every other referrer of the store, sometimes an
    /// index of new images.
    fn push_referrer(&mut self, r: usize, subject: &Digest) -> Digest {
        if self.rng.chance(20) {
            return self.push_index_of(r, false, 1, None, Some(subject));
        }
        let config = self.upload(r, b"{}");
        let signature = self.fresh("signature");
        let layer = self.upload(r, &signature);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SIGNATURE,
            "config": descriptor(OCI_EMPTY, &config),
            "layers": [descriptor(SIGNATURE, &layer)],
            "subject": self.subject_descriptor(subject),
        });
        let pushed = Pushed {
            media_type: OCI_MANIFEST,
            json: serde_json::to_vec(&manifest).unwrap(),
            blobs: vec![config.0, layer.0],
            subject: Some(subject.clone()),
            children: Vec::new(),
        };
        self.put(r, pushed, None)
    }

    /// The descriptor of `subject` (made up for a digest nothing has).
    fn subject_descriptor(&self, subject: &Digest) -> Value {
        let (media_type, size) = match self.model.manifests.get(subject) {
            Some(pushed) => (pushed.media_type, pushed.json.len()),
            None => (OCI_MANIFEST, 1234),
        };
        json!({"mediaType": media_type, "digest": subject.to_string(), "size": size})
    }

    /// Any manifest of `r` (referrers too: chains), a tagged one, one of another repository
    /// (possibly deleted here, or never here), or a digest nothing has.
    fn referrer_subject(&mut self, r: usize) -> Digest {
        let repo = &self.model.repos[r];
        let candidates: Vec<Digest> = match self.rng.below(5) {
            0 | 1 => repo.revisions.iter().cloned().collect(),
            2 => repo.tags.values().cloned().collect(),
            3 => self.model.manifests.keys().cloned().collect(),
            _ => Vec::new(),
        };
        match self.rng.pick(&candidates) {
            Some(subject) => subject,
            None => Digest::sha256(&self.fresh("absent")),
        }
    }

    /// Points one of [`TAGS`] at a manifest of `r` (pushing it again, as a client does).
    fn retag(&mut self, r: usize) {
        let revisions = &self.model.repos[r].revisions;
        let candidates = self.revisions_where(r, |p| {
            p.children.iter().all(|child| revisions.contains(child))
        });
        let Some(target) = self.rng.pick(&candidates) else {
            return;
        };
        let pushed = self.model.manifests[&target].clone();
        let tag = TAGS[self.rng.below(TAGS.len())].to_owned();
        self.put(r, pushed, Some(tag));
    }

    /// Deletes a manifest of `r` (and, as the API does, the tags naming it).
    fn delete_manifest(&mut self, r: usize) {
        let revisions: Vec<Digest> = self.model.repos[r].revisions.iter().cloned().collect();
        let Some(target) = self.rng.pick(&revisions) else {
            return;
        };
        let repo = &mut self.model.repos[r];
        self.store.delete_manifest(&repo.name, &target).unwrap();
        repo.revisions.remove(&target);
        repo.tags.retain(|_, digest| *digest != target);
    }

    /// Deletes one of the tags of `r` that is not pinned.
    fn delete_tag(&mut self, r: usize) {
        let repo = &self.model.repos[r];
        let tags: Vec<String> = repo
            .tags
            .keys()
            .filter(|t| !repo.pinned.contains(*t))
            .cloned()
            .collect();
        let Some(tag) = self.rng.pick(&tags) else {
            return;
        };
        let repo = &mut self.model.repos[r];
        self.store
            .delete_tag(&repo.name, &Tag::parse(&tag).unwrap())
            .unwrap();
        repo.tags.remove(&tag);
    }

    /// Copies an image of another repository into `r` (its blobs mounted), tagged or not: the
    /// same manifest then lives, or dies, in several repositories.
    fn copy_image(&mut self, r: usize) {
        let from = self.rng.below(self.model.repos.len());
        if from == r {
            return;
        }
        let images = self.revisions_where(from, |p| p.children.is_empty());
        let Some(image) = self.rng.pick(&images) else {
            return;
        };
        let pushed = self.model.manifests[&image].clone();
        let (source, target) = (&self.model.repos[from].name, &self.model.repos[r].name);
        for blob in &pushed.blobs {
            self.store.mount_blob(source, target, blob).unwrap();
        }
        let tag = self.random_tag(50);
        self.put(r, pushed, tag);
    }

    /// The manifests of repository `r` for which `wanted` holds.
    fn revisions_where(&self, r: usize, wanted: impl Fn(&Pushed) -> bool) -> Vec<Digest> {
        self.model.repos[r]
            .revisions
            .iter()
            .filter(|d| wanted(&self.model.manifests[*d]))
            .cloned()
            .collect()
    }
}

fn descriptor(media_type: &str, (digest, size): &(Digest, usize)) -> Value {
    json!({"mediaType": media_type, "digest": digest.to_string(), "size": size})
}
