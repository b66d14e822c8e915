//! The model of a [random store](super): what was pushed where, and what each collector's
//! rules keep, worked out from that alone, without asking either collector.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use layerstore::names::RepositoryName;
use layerstore::Digest;

/// Whose rules decide which manifests are live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// distribution 2.8: with `--delete-untagged`, exactly the manifests a tag names.
    Distribution,
    /// layerstore: also the children of live indexes and the referrers of live manifests.
    Layerstore,
}

/// A manifest as pushed.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub media_type: &'static str,
    pub json: Vec<u8>,
    /// Config and layers.
    pub blobs: Vec<Digest>,
    /// Index children.
    pub children: Vec<Digest>,
    pub subject: Option<Digest>,
}

/// One repository as the model sees it.
#[derive(Debug, Clone)]
pub struct RepoModel {
    pub name: RepositoryName,
    /// Manifests with a revision link here.
    pub revisions: BTreeSet<Digest>,
    /// Each tag's current manifest.
    pub tags: BTreeMap<String, Digest>,
    /// Tags no step may move or delete (children of a `Shape::Plain` store's indexes).
    pub(super) pinned: BTreeSet<String>,
}

/// What was pushed, and so what each collector should find.
#[derive(Debug)]
pub struct Model {
    pub seed: u64,
    pub repos: Vec<RepoModel>,
    pub manifests: BTreeMap<Digest, Pushed>,
    /// Every blob in the blob store, manifests' bytes included (nothing was collected yet).
    pub blobs: BTreeSet<Digest>,
    /// Blobs pushed that no manifest ever referenced.
    pub(super) orphans: BTreeSet<Digest>,
}

/// What a collection deletes: manifests (with `--delete-untagged`) by repository, and blobs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Collected {
    pub manifests: BTreeSet<(String, Digest)>,
    pub blobs: BTreeSet<Digest>,
}

impl Collected {
    /// What `self` deletes and `other` keeps.
    pub fn minus(&self, other: &Collected) -> Collected {
        Collected {
            manifests: self
                .manifests
                .difference(&other.manifests)
                .cloned()
                .collect(),
            blobs: self.blobs.difference(&other.blobs).cloned().collect(),
        }
    }
}

impl Model {
    /// The manifests of `repo` that `rules` keep.
    pub fn live(&self, repo: &RepoModel, delete_untagged: bool, rules: Rules) -> BTreeSet<Digest> {
        let roots: Vec<&Digest> = if delete_untagged {
            repo.tags.values().collect()
        } else {
            repo.revisions.iter().collect()
        };
        let mut live = BTreeSet::new();
        let mut queue: VecDeque<&Digest> = roots.into();
        while let Some(digest) = queue.pop_front() {
            if !repo.revisions.contains(digest) || !live.insert(digest.clone()) {
                continue;
            }
            if rules == Rules::Distribution {
                continue;
            }
            queue.extend(&self.manifests[digest].children);
            queue.extend(
                repo.revisions
                    .iter()
                    .filter(|r| self.manifests[*r].subject.as_ref() == Some(digest)),
            );
        }
        live
    }

    /// What a collection under `rules` deletes: the manifests not live (with
    /// `delete_untagged`), and every blob no live manifest reaches. A live manifest reaches its
    /// own bytes, its config and layers, and its children's bytes (not their layers).
    pub fn collected(&self, delete_untagged: bool, rules: Rules) -> Collected {
        let mut marked = BTreeSet::new();
        let mut collected = Collected::default();
        for repo in &self.repos {
            let live = self.live(repo, delete_untagged, rules);
            for digest in &live {
                let pushed = &self.manifests[digest];
                marked.insert(digest.clone());
                marked.extend(pushed.blobs.iter().cloned());
                marked.extend(pushed.children.iter().cloned());
            }
            if delete_untagged {
                for digest in repo.revisions.difference(&live) {
                    collected
                        .manifests
                        .insert((repo.name.to_string(), digest.clone()));
                }
            }
        }
        collected.blobs = self.blobs.difference(&marked).cloned().collect();
        collected
    }

    /// Everything the model knows about `digest`, for failure messages.
    pub fn describe(&self, digest: &Digest) -> String {
        let mut roles = Vec::new();
        if let Some(pushed) = self.manifests.get(digest) {
            roles.push(format!("a manifest ({})", pushed.media_type));
        }
        for repo in &self.repos {
            if repo.revisions.contains(digest) {
                let tags: Vec<&String> = repo
                    .tags
                    .iter()
                    .filter(|(_, d)| *d == digest)
                    .map(|(t, _)| t)
                    .collect();
                roles.push(format!("a revision of {} tagged {tags:?}", repo.name));
            }
        }
        for (parent, pushed) in &self.manifests {
            let short = &parent.hex()[..12];
            if pushed.blobs.contains(digest) {
                roles.push(format!("a blob of {short}"));
            }
            if pushed.children.contains(digest) {
                roles.push(format!("a child of {short}"));
            }
            if pushed.subject.as_ref() == Some(digest) {
                roles.push(format!("the subject of {short}"));
            }
        }
        if self.orphans.contains(digest) {
            roles.push("an orphan blob".to_owned());
        }
        format!("{digest}: {}", roles.join(", "))
    }

    /// Counts, for the test's log.
    pub fn summary(&self) -> String {
        let revisions: usize = self.repos.iter().map(|r| r.revisions.len()).sum();
        let tags: usize = self.repos.iter().map(|r| r.tags.len()).sum();
        let count = |f: &dyn Fn(&Pushed) -> bool| self.manifests.values().filter(|p| f(p)).count();
        format!(
            "seed {}: {} repositories, {revisions} manifest revisions ({} manifests: {} indexes, \
             {} referrers), {tags} tags, {} blobs",
            self.seed,
            self.repos.len(),
            self.manifests.len(),
            count(&|p| !p.children.is_empty()),
            count(&|p| p.subject.is_some()),
            self.blobs.len()
        )
    }
}
