//! One load client: a thread with its own connection, seeded mix and [`Ledger`].
//!
//! The mix (percent of steps): push a tagged image 28, push one by digest (untagged) 10, tag a
//! tagged manifest again by PUT (moving a tag, maybe) 15, pull (manifest and every blob,
//! digests checked) 25, delete a tag 8, delete a manifest by digest 7, mount a base layer from
//! another client's repository 7. An image is a config and 2-4 layers of a few KiB, each layer
//! new bytes or (half the time) a base layer of the [`Pool`](super::pool::Pool)'s window; a
//! base layer is uploaded, or mounted from a repository that was told it holds it (a 202 there
//! means the mount was refused, and the bytes go into that upload session). New blobs go up in
//! one POST, or (a fifth of them) POST + PATCH + PUT.
//!
//! Every answer is checked against what the client knows exactly: its two repositories are
//! its own, tags are nine names per repository written in turn (so pushes overwrite tags and
//! leave manifests untagged for the collector), and it only relies on manifests a tag names
//! or on untagged ones younger than [`GcFlags::young`](super::GcFlags::young). Anything else
//! is an error. A `MANIFEST_BLOB_UNKNOWN` on a push or tag of blobs all acknowledged before,
//! or a failed pull, is a blob the collector lost: reported with how and when each blob of
//! the image got into the repository.

use std::sync::Arc;

use hyper::Method;

use super::http::{expect, Answer, Http};
use super::ledger::{Image, Ledger};
use super::{sha256, Blob, Counters, Rng, Shared};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCTETS: [(&str, &str); 1] = [("content-type", "application/octet-stream")];
/// Tag names per repository.
const TAG_NAMES: usize = 9;

/// One client.
pub struct Client {
    id: usize,
    http: Http,
    rng: Rng,
    ledger: Ledger,
    shared: Arc<Shared>,
    repos: [String; 2],
    /// Blobs made so far (each gets a seed of its own).
    made: u64,
    /// Tags written so far per repository: the next tag name is the next of the nine.
    tagged: [usize; 2],
}

/// How a blob of a push got into the repository (for the evidence of a lost blob).
struct Acked {
    digest: String,
    base: Option<usize>,
    how: &'static str,
    at: f64,
}

impl Client {
    pub fn new(id: usize, addr: std::net::SocketAddr, seed: u64, shared: Arc<Shared>) -> Self {
        Client {
            id,
            http: Http::connect(addr),
            rng: Rng::new(seed ^ (id as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d)),
            ledger: Ledger::default(),
            shared,
            repos: [0, 1].map(|r| format!("gcload/c{id:02}/app{r}")),
            made: 0,
            tagged: [0; 2],
        }
    }

    /// Runs the mix until the stop flag is set; returns the ledger.
    pub fn run(mut self) -> Ledger {
        while !self.shared.stop.load(std::sync::atomic::Ordering::Relaxed) {
            let which = self.rng.below(2);
            let repo = self.repos[which].clone();
            if let Err(message) = self.step(which, &repo) {
                self.shared.error(self.id, message);
            }
            self.ledger.prune(self.shared.young);
        }
        self.ledger
    }

    fn step(&mut self, which: usize, repo: &str) -> Result<(), String> {
        match self.rng.below(100) {
            0..=27 => {
                let tag = self.tag_name(which);
                self.push(repo, Some(tag))
            }
            28..=37 => self.push(repo, None),
            38..=52 => self.tag_again(which, repo),
            53..=77 => self.pull_some(repo),
            78..=85 => self.delete_tag(repo),
            86..=92 => self.delete_manifest(repo),
            _ => self.mount_alone(repo),
        }
    }

    /// The next tag name of repository `which`: the nine in turn, so that every tag is
    /// overwritten after nine more tag writes and no image lives long by chance (base layers
    /// must drop out of use).
    fn tag_name(&mut self, which: usize) -> String {
        self.tagged[which] += 1;
        format!("v{}", self.tagged[which] % TAG_NAMES)
    }

    fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Answer, String> {
        Counters::add(&self.shared.counters.requests);
        self.http.send(method, path, headers, body)
    }

    /// New bytes of `low..=high` bytes.
    fn new_blob(&mut self, low: usize, high: usize) -> Blob {
        self.made += 1;
        let len = self.rng.between(low, high);
        Blob::new(self.rng.next_u64() ^ self.made, len)
    }

    /// Pushes an image to `repo` under `tag`, or by digest.
    fn push(&mut self, repo: &str, tag: Option<String>) -> Result<(), String> {
        let mut blobs = vec![(self.new_blob(100, 600), None)];
        let layers = self.rng.between(2, 4);
        let bases = self.shared.pool.pick(&mut self.rng, layers);
        for i in 0..layers {
            if self.rng.chance(50) && i < bases.len() {
                blobs.push((self.shared.pool.layers[bases[i]].clone(), Some(bases[i])));
            } else {
                blobs.push((self.new_blob(512, 16 << 10), None));
            }
        }
        let mut acked = Vec::new();
        for (blob, base) in &blobs {
            let how = self.put_blob(repo, blob, *base)?;
            acked.push(Acked {
                digest: blob.digest.clone(),
                base: *base,
                how,
                at: self.shared.now(),
            });
        }
        let manifest = manifest_json(&blobs);
        let mut image = Image {
            repo: repo.to_owned(),
            digest: sha256(&manifest),
            blobs: blobs
                .iter()
                .map(|(b, _)| (b.digest.clone(), b.bytes.len()))
                .collect(),
            manifest,
            evidence: evidence(&acked),
        };
        let reference = tag.clone().unwrap_or_else(|| image.digest.clone());
        self.put_manifest(&image, &reference)
            .map_err(|message| lost_with(message, &image.evidence))?;
        image.evidence += &format!("\n  manifest acknowledged at {:.2} s", self.shared.now());
        let counter = match tag {
            Some(_) => &self.shared.counters.pushes_tagged,
            None => &self.shared.counters.pushes_untagged,
        };
        Counters::add(counter);
        self.ledger.acknowledged(image, tag.as_deref());
        Ok(())
    }

    /// PUTs `image`'s manifest under `reference`: 201 with its digest.
    fn put_manifest(&mut self, image: &Image, reference: &str) -> Result<(), String> {
        let path = format!("/v2/{}/manifests/{reference}", image.repo);
        let started = std::time::Instant::now();
        let answer = self.send(
            Method::PUT,
            &path,
            &[("content-type", OCI_MANIFEST)],
            &image.manifest,
        )?;
        let took = started.elapsed().as_millis() as u64;
        (self.shared.counters.slowest_put_ms).fetch_max(took, std::sync::atomic::Ordering::Relaxed);
        if answer.code().as_deref() == Some("MANIFEST_BLOB_UNKNOWN") {
            return Err(format!(
                "LOST BLOB: PUT {path} answered {}",
                answer.describe()
            ));
        }
        let answer = expect(answer, 201, &format!("PUT {path}"))?;
        match answer.header("docker-content-digest") {
            Some(digest) if digest == image.digest => Ok(()),
            other => Err(format!("PUT {path}: Docker-Content-Digest {other:?}")),
        }
    }

    /// Gets `blob` into `repo`: a base layer is mounted half the time; new bytes go up in one
    /// POST or in POST + PATCH + PUT. Returns how.
    fn put_blob(
        &mut self,
        repo: &str,
        blob: &Blob,
        base: Option<usize>,
    ) -> Result<&'static str, String> {
        let how = match base {
            Some(index) if self.rng.chance(50) => self.mount(repo, blob, index)?,
            _ if self.rng.chance(20) => self.upload_chunked(repo, blob)?,
            _ => self.upload_monolithic(repo, blob)?,
        };
        if let Some(index) = base {
            self.shared.pool.hold(index, repo);
        }
        Ok(how)
    }

    fn upload_monolithic(&mut self, repo: &str, blob: &Blob) -> Result<&'static str, String> {
        let path = format!("/v2/{repo}/blobs/uploads/?digest={}", blob.digest);
        let answer = self.send(Method::POST, &path, &OCTETS, &blob.bytes)?;
        expect(answer, 201, &format!("POST {path}"))?;
        Counters::add(&self.shared.counters.uploads);
        Ok("uploaded in one POST")
    }

    fn upload_chunked(&mut self, repo: &str, blob: &Blob) -> Result<&'static str, String> {
        let path = format!("/v2/{repo}/blobs/uploads/");
        let answer = self.send(Method::POST, &path, &[], b"")?;
        let answer = expect(answer, 202, &format!("POST {path}"))?;
        let location = self.http.location(&path, &answer)?;
        let range = format!("0-{}", blob.bytes.len() - 1);
        let headers = [OCTETS[0], ("content-range", range.as_str())];
        let answer = self.send(Method::PATCH, &location, &headers, &blob.bytes)?;
        let answer = expect(answer, 202, &format!("PATCH {location}"))?;
        let location = self.http.location(&location, &answer)?;
        self.finish_upload(&location, blob, b"")?;
        Ok("uploaded in POST + PATCH + PUT")
    }

    /// The PUT that ends an upload session, with the last `body` bytes: 201.
    fn finish_upload(&mut self, location: &str, blob: &Blob, body: &[u8]) -> Result<(), String> {
        let separator = if location.contains('?') { '&' } else { '?' };
        let path = format!("{location}{separator}digest={}", blob.digest);
        let answer = self.send(Method::PUT, &path, &OCTETS, body)?;
        expect(answer, 201, &format!("PUT {path}"))?;
        Counters::add(&self.shared.counters.uploads);
        Ok(())
    }

    /// Mounts base layer `index` from a repository that holds it; a 202 (not there any more,
    /// or no such repository yet) is answered by uploading the bytes into that session.
    fn mount(&mut self, repo: &str, blob: &Blob, index: usize) -> Result<&'static str, String> {
        let Some(from) = self.shared.pool.holder(index, &mut self.rng, repo) else {
            return self.upload_monolithic(repo, blob);
        };
        let path = format!(
            "/v2/{repo}/blobs/uploads/?mount={}&from={from}",
            blob.digest
        );
        let answer = self.send(Method::POST, &path, &[], b"")?;
        match answer.status {
            201 => {
                Counters::add(&self.shared.counters.mounts);
                Ok("mounted (201)")
            }
            202 => {
                let location = self.http.location(&path, &answer)?;
                self.finish_upload(&location, blob, &blob.bytes)?;
                Counters::add(&self.shared.counters.mount_fallbacks);
                Ok("mount answered 202, uploaded into the session")
            }
            _ => Err(format!("POST {path}: {}", answer.describe())),
        }
    }

    /// Mounts a base layer of the window into `repo` and stops there (201), or cancels the
    /// session a refused mount opened (202, then DELETE: 204).
    fn mount_alone(&mut self, repo: &str) -> Result<(), String> {
        let Some(&index) = self.shared.pool.pick(&mut self.rng, 1).first() else {
            return Ok(());
        };
        let Some(from) = self.shared.pool.holder(index, &mut self.rng, repo) else {
            return Ok(());
        };
        let digest = self.shared.pool.layers[index].digest.clone();
        let path = format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={from}");
        let answer = self.send(Method::POST, &path, &[], b"")?;
        match answer.status {
            201 => {
                self.shared.pool.hold(index, repo);
                Counters::add(&self.shared.counters.mounts);
                Ok(())
            }
            202 => {
                let location = self.http.location(&path, &answer)?;
                let answer = self.send(Method::DELETE, &location, &[], b"")?;
                expect(answer, 204, &format!("DELETE {location}"))?;
                Ok(())
            }
            _ => Err(format!("POST {path}: {}", answer.describe())),
        }
    }

    /// Tags a manifest that a tag names with a tag of the set (201).
    fn tag_again(&mut self, which: usize, repo: &str) -> Result<(), String> {
        let tags = self.ledger.tags_in(repo);
        let tag = self.tag_name(which);
        if tags.is_empty() {
            return self.push(repo, Some(tag));
        }
        let (_, digest) = &tags[self.rng.below(tags.len())];
        let image = self.ledger.images[digest].clone();
        self.put_manifest(&image, &tag)
            .map_err(|message| lost_with(message, &image.evidence))?;
        Counters::add(&self.shared.counters.tags);
        self.ledger.acknowledged(image, Some(&tag));
        Ok(())
    }

    /// Pulls a tagged manifest by tag (or by digest), or a young untagged one by digest.
    fn pull_some(&mut self, repo: &str) -> Result<(), String> {
        let young = self.ledger.young_untagged(repo, self.shared.young);
        let tags = self.ledger.tags_in(repo);
        let Some((reference, digest)) = self.rng.pull_reference(&tags, &young) else {
            return Ok(());
        };
        let image = self.ledger.images[&digest].clone();
        let blobs = pull(&mut self.http, &image, &reference)
            .map_err(|message| format!("LOST: {message}\n{}", image.evidence))?;
        Counters::add(&self.shared.counters.pulls);
        let counters = &self.shared.counters;
        counters
            .blob_pulls
            .fetch_add(blobs, std::sync::atomic::Ordering::Relaxed);
        counters
            .requests
            .fetch_add(blobs + 1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Deletes one of `repo`'s tags (202).
    fn delete_tag(&mut self, repo: &str) -> Result<(), String> {
        let tags = self.ledger.tags_in(repo);
        if tags.is_empty() {
            return Ok(());
        }
        let (tag, _) = &tags[self.rng.below(tags.len())];
        let path = format!("/v2/{repo}/manifests/{tag}");
        let answer = self.send(Method::DELETE, &path, &[], b"")?;
        expect(answer, 202, &format!("DELETE {path}"))?;
        Counters::add(&self.shared.counters.delete_tags);
        self.ledger.tag_deleted(repo, tag);
        Ok(())
    }

    /// Deletes by digest a manifest a tag names, or a young untagged one (202).
    fn delete_manifest(&mut self, repo: &str) -> Result<(), String> {
        let mut candidates: Vec<String> = self
            .ledger
            .tags_in(repo)
            .into_iter()
            .map(|(_, digest)| digest)
            .collect();
        candidates.extend(self.ledger.young_untagged(repo, self.shared.young));
        if candidates.is_empty() {
            return Ok(());
        }
        let digest = candidates[self.rng.below(candidates.len())].clone();
        let path = format!("/v2/{repo}/manifests/{digest}");
        let answer = self.send(Method::DELETE, &path, &[], b"")?;
        expect(answer, 202, &format!("DELETE {path}"))?;
        Counters::add(&self.shared.counters.delete_manifests);
        self.ledger.manifest_deleted(repo, &digest);
        Ok(())
    }
}

/// GETs `image`'s manifest by `reference` and every blob it names, checking every digest.
/// Returns the number of blobs read.
pub fn pull(http: &mut Http, image: &Image, reference: &str) -> Result<u64, String> {
    let path = format!("/v2/{}/manifests/{reference}", image.repo);
    let answer = http.send(Method::GET, &path, &[("accept", OCI_MANIFEST)], b"")?;
    let answer = expect(answer, 200, &format!("GET {path}"))?;
    if answer.body[..] != image.manifest[..] {
        return Err(format!(
            "GET {path}: other bytes ({}) than the {} pushed",
            sha256(&answer.body),
            image.digest
        ));
    }
    for (digest, len) in &image.blobs {
        let path = format!("/v2/{}/blobs/{digest}", image.repo);
        let answer = http.send(Method::GET, &path, &[], b"")?;
        let answer = expect(answer, 200, &format!("GET {path} (of {})", image.digest))?;
        if answer.body.len() != *len || sha256(&answer.body) != *digest {
            return Err(format!(
                "GET {path}: {} bytes with digest {}",
                answer.body.len(),
                sha256(&answer.body)
            ));
        }
    }
    Ok(image.blobs.len() as u64)
}

/// The OCI image manifest of `blobs` (config first).
fn manifest_json(blobs: &[(Blob, Option<usize>)]) -> Vec<u8> {
    let descriptor = |blob: &Blob, media_type: &str| {
        serde_json::json!({
            "mediaType": media_type,
            "digest": blob.digest,
            "size": blob.bytes.len(),
        })
    };
    let layers: Vec<_> = blobs[1..]
        .iter()
        .map(|(b, _)| descriptor(b, "application/vnd.oci.image.layer.v1.tar+gzip"))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(&blobs[0].0, "application/vnd.oci.image.config.v1+json"),
        "layers": layers,
    }))
    .unwrap()
}

/// How each blob of a push got into the repository, one line each.
fn evidence(acked: &[Acked]) -> String {
    let lines: Vec<String> = acked
        .iter()
        .map(|a| {
            let base = a
                .base
                .map(|i| format!(" (base layer {i})"))
                .unwrap_or_default();
            format!("  {}{base}: {} at {:.2} s", a.digest, a.how, a.at)
        })
        .collect();
    lines.join("\n")
}

/// `message` followed by `evidence` when it is a lost blob.
fn lost_with(message: String, evidence: &str) -> String {
    if message.starts_with("LOST BLOB") {
        format!("{message}\n{evidence}")
    } else {
        message
    }
}
