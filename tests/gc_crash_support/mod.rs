//! Helpers for `tests/gc_crash.rs`: a store full of garbage built through the Store API and
//! what must survive any run (the live manifests); [`state`] reads what is stored and which
//! phase a killed run was in, [`victim`] runs, kills and checks the `layerstore` binary.

pub mod state;
pub mod victim;

use std::io::Read;

use layerstore::names::{Reference, RepositoryName, Tag};
use layerstore::store::Store;
use layerstore::Digest;

use crate::gc_support::{push_image, push_image_with_subject, push_index, put_blob, repo, Image};

/// How much to build. Every repository gets the same mix; the garbage dominates.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub repos: usize,
    /// Tagged images per repository (each with a config, a layer of its own and the shared one).
    pub tagged: usize,
    /// Untagged images per repository: garbage with `--delete-untagged`.
    pub untagged: usize,
    /// Blobs no manifest names, over all repositories.
    pub orphans: usize,
    /// Upload sessions left behind (idle), over all repositories.
    pub idle_uploads: usize,
}

/// A manifest every run must keep, with everything a client needs to pull it.
#[derive(Debug, Clone)]
pub struct Live {
    pub repo: RepositoryName,
    pub digest: Digest,
    pub tag: Option<String>,
    pub blobs: Vec<Digest>,
    /// The manifest whose referrer this is.
    pub subject: Option<Digest>,
}

/// What was built: the manifests that must survive.
#[derive(Debug, Default)]
pub struct Fixture {
    pub live: Vec<Live>,
    pub untagged: usize,
    pub orphans: usize,
    pub idle_uploads: usize,
}

impl Fixture {
    fn keep(&mut self, repo: &RepositoryName, image: &Image, tag: Option<&str>) {
        self.keep_referrer(repo, image, tag, None);
    }

    fn keep_referrer(
        &mut self,
        repo: &RepositoryName,
        image: &Image,
        tag: Option<&str>,
        subject: Option<&Image>,
    ) {
        self.live.push(Live {
            repo: repo.clone(),
            digest: image.digest.clone(),
            tag: tag.map(str::to_owned),
            blobs: image.blobs.clone(),
            subject: subject.map(|s| s.digest.clone()),
        });
    }
}

pub fn repo_name(index: usize) -> RepositoryName {
    repo(&format!("team{}/app{}", index % 3, index))
}

/// Builds the store: per repository tagged images sharing a layer across repositories, a
/// retagged `latest` (the first one becomes garbage), a tagged index of untagged children, a
/// referrer of a tagged image (live) and one of an untagged image (garbage), an untagged
/// index of untagged children (garbage), untagged images (some sharing the live layer); then
/// orphan blobs and idle upload sessions spread over the repositories, on `threads` threads.
pub fn build(store: &Store, scale: Scale, threads: usize) -> Fixture {
    let parts: Vec<Fixture> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut fixture = Fixture::default();
                    for r in (t..scale.repos).step_by(threads) {
                        build_repo(store, scale, r, &mut fixture);
                    }
                    for k in (t..scale.orphans).step_by(threads) {
                        put_blob(store, &repo_name(k % scale.repos), orphan(k).as_bytes());
                        fixture.orphans += 1;
                    }
                    for k in (t..scale.idle_uploads).step_by(threads) {
                        leave_upload(store, &repo_name(k % scale.repos), k);
                        fixture.idle_uploads += 1;
                    }
                    fixture
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut fixture = Fixture::default();
    for part in parts {
        fixture.live.extend(part.live);
        fixture.untagged += part.untagged;
        fixture.orphans += part.orphans;
        fixture.idle_uploads += part.idle_uploads;
    }
    fixture
}

fn orphan(k: usize) -> String {
    format!("orphan {k}")
}

fn build_repo(store: &Store, scale: Scale, r: usize, fixture: &mut Fixture) {
    let app = repo_name(r);
    let shared: &[u8] = b"a base layer every repository shares";
    let mut tagged = Vec::new();
    for i in 0..scale.tagged {
        let (config, layer) = (format!("config {r} {i}"), format!("layer {r} {i}"));
        let tag = format!("v{i}");
        let image = push_image(
            store,
            &app,
            &[config.as_bytes(), layer.as_bytes(), shared],
            Some(&tag),
        );
        fixture.keep(&app, &image, Some(&tag));
        tagged.push(image);
    }
    let old = format!("old latest {r}");
    push_image(
        store,
        &app,
        &[old.as_bytes(), b"old latest layer"],
        Some("latest"),
    );
    let new = format!("new latest {r}");
    let latest = push_image(store, &app, &[new.as_bytes(), shared], Some("latest"));
    fixture.keep(&app, &latest, Some("latest"));
    let (amd, arm) = (format!("amd {r}"), format!("arm {r}"));
    let amd = push_image(store, &app, &[amd.as_bytes(), b"amd layer"], None);
    let arm = push_image(store, &app, &[arm.as_bytes(), b"arm layer"], None);
    let index = push_index(store, &app, &[&amd, &arm], Some("multi"));
    fixture.keep(&app, &amd, None);
    fixture.keep(&app, &arm, None);
    fixture.keep(&app, &index, Some("multi"));
    let sig = format!("signature {r}");
    let signature =
        push_image_with_subject(store, &app, &[sig.as_bytes(), b"sig"], None, tagged.first());
    fixture.keep_referrer(&app, &signature, None, tagged.first());
    build_garbage(store, scale, r, &app, fixture);
}

/// Untagged images, an untagged index and a referrer of an untagged image: all garbage.
fn build_garbage(
    store: &Store,
    scale: Scale,
    r: usize,
    app: &RepositoryName,
    fixture: &mut Fixture,
) {
    let shared: &[u8] = b"a base layer every repository shares";
    let mut untagged = Vec::new();
    for j in 0..scale.untagged {
        let (config, layer) = (
            format!("untagged {r} {j}"),
            format!("untagged layer {r} {j}"),
        );
        let mut contents: Vec<&[u8]> = vec![config.as_bytes(), layer.as_bytes()];
        if j % 5 == 0 {
            contents.push(shared);
        }
        untagged.push(push_image(store, app, &contents, None));
    }
    if let [first, second, ..] = untagged.as_slice() {
        push_index(store, app, &[first, second], None);
        let stale = format!("stale signature {r}");
        push_image_with_subject(store, app, &[stale.as_bytes(), b"stale"], None, Some(first));
    }
    fixture.untagged += untagged.len();
}

/// An upload session with data and a hash state, left behind by its client.
fn leave_upload(store: &Store, app: &RepositoryName, k: usize) {
    let mut upload = store.create_upload(app).unwrap();
    upload.append(format!("abandoned {k}").as_bytes()).unwrap();
    upload.checkpoint().unwrap();
}

/// Every live manifest reads by digest (and tag), with every blob's bytes through its
/// repository; every live referrer is listed. `Err` names something missing. Four threads:
/// an object store answers slowly one request at a time.
pub fn check_live(store: &Store, fixture: &Fixture) -> Result<(), String> {
    let per_thread = fixture.live.len().div_ceil(4).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = fixture
            .live
            .chunks(per_thread)
            .map(|chunk| scope.spawn(move || chunk.iter().try_for_each(|l| check_one(store, l))))
            .collect();
        workers.into_iter().try_for_each(|w| w.join().unwrap())
    })
}

fn check_one(store: &Store, live: &Live) -> Result<(), String> {
    let what = format!("{}@{}", live.repo, live.digest);
    let by_digest = Reference::Digest(live.digest.clone());
    let manifest = store
        .get_manifest(&live.repo, &by_digest)
        .map_err(|e| format!("manifest {what}: {e}"))?;
    if Digest::sha256(&manifest.bytes) != live.digest {
        return Err(format!("manifest {what} has other bytes"));
    }
    if let Some(tag) = &live.tag {
        let by_tag = Reference::Tag(Tag::parse(tag).unwrap());
        let tagged = store
            .get_manifest(&live.repo, &by_tag)
            .map_err(|e| format!("tag {}:{tag}: {e}", live.repo))?;
        if tagged.digest != live.digest {
            return Err(format!(
                "tag {}:{tag} moved to {}",
                live.repo, tagged.digest
            ));
        }
    }
    for blob in &live.blobs {
        check_blob(store, &live.repo, blob).map_err(|e| format!("{what}: {e}"))?;
    }
    if let Some(subject) = &live.subject {
        let listed = store
            .referrers(&live.repo, subject)
            .map_err(|e| format!("referrers of {subject}: {e}"))?;
        if !listed.iter().any(|r| r.digest == live.digest) {
            return Err(format!("referrer {what} no longer listed for {subject}"));
        }
    }
    Ok(())
}

fn check_blob(store: &Store, repo: &RepositoryName, blob: &Digest) -> Result<(), String> {
    let (_, body) = store
        .open_blob(Some(repo), blob)
        .map_err(|e| format!("blob {blob}: {e}"))?;
    let mut reader = body
        .reader(None)
        .map_err(|e| format!("reading blob {blob}: {e}"))?;
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| format!("reading blob {blob}: {e}"))?;
    if Digest::sha256(&bytes) != *blob {
        return Err(format!("blob {blob} has other bytes"));
    }
    Ok(())
}
