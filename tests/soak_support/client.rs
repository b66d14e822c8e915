//! One soak client: a thread with its own repositories, connection, seeded mix and
//! [`Ledger`], that outlives the server's kills.
//!
//! The mix (percent of steps): push a tagged image 30, push one by digest 10, tag a tagged
//! manifest again 12, pull one (manifest and blobs, bytes compared) 33, delete a tag 9, delete
//! a manifest by digest 6. An image is a config, one to three small layers (new bytes, or half
//! the time a base layer of the shared pool, mounted from another repository half of those
//! times) and, one push in four, a larger layer sent in three PATCHes.
//!
//! A request that gets no answer means the server was killed: the client waits for the next
//! server ([`Slot`](super::slot::Slot)) and then retries a push from its start, resumes a
//! chunked upload at the offset the new server reports (or starts it again on a 404), and
//! leaves a tag or delete it cut short out of what it relies on. Any other answer than the
//! expected one is an error, but 429 (a collection deciding about what the request needs),
//! which is retried, and `MANIFEST_BLOB_UNKNOWN` for a push that took longer than the grace
//! window (see [`Client::blob_unknown`]), which is pushed again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::Method;

use super::ledger::Ledger;
use super::verify::{read_image, settle, Read};
use super::{Shared, Stats};
use crate::gc_load_support::http::{Answer, Http};
use crate::gc_load_support::ledger::Image;
use crate::gc_load_support::{sha256, Blob, Rng};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCTETS: (&str, &str) = ("content-type", "application/octet-stream");
const TAG_NAMES: usize = 9;
/// A step slower than this is reported (it includes waits for a restarted server).
const SLOW: Duration = Duration::from_secs(30);

/// Why a step stopped.
pub enum Fail {
    /// No answer: the server was killed.
    Down,
    /// 429: retry later.
    Busy,
    /// The push took longer than the grace window: its blobs may have been collected.
    Expired,
    Error(String),
}

type Step<T = ()> = Result<T, Fail>;

pub struct Client {
    id: usize,
    shared: Arc<Shared>,
    pub ledger: Arc<Mutex<Ledger>>,
    http: Option<Http>,
    generation: u64,
    rng: Rng,
    repos: [String; 2],
    made: u64,
    tagged: [usize; 2],
}

impl Client {
    pub fn new(id: usize, shared: Arc<Shared>) -> Self {
        let seed = shared.settings.seed ^ (id as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
        Client {
            id,
            shared,
            ledger: Arc::new(Mutex::new(Ledger::default())),
            http: None,
            generation: 0,
            rng: Rng::new(seed),
            repos: [0, 1].map(|r| format!("soak/c{id:02}/app{r}")),
            made: 0,
            tagged: [0; 2],
        }
    }

    /// Runs the mix until the soak is over.
    pub fn run(mut self) {
        if !self.reconnect() {
            return;
        }
        while !self.shared.slot.is_done() {
            let which = self.rng.below(2);
            let started = std::time::Instant::now();
            let outcome = self.step(which);
            if started.elapsed() > SLOW {
                eprintln!(
                    "{}: client {} took {:.1?} for one step",
                    self.shared.settings.label,
                    self.id,
                    started.elapsed()
                );
            }
            match outcome {
                Ok(()) => {}
                Err(Fail::Down) => {
                    Stats::add(&self.shared.stats.interrupted, 1);
                    if !self.reconnect() {
                        return;
                    }
                }
                Err(Fail::Busy) => self.busy(),
                Err(Fail::Expired) => Stats::add(&self.shared.stats.expired, 1),
                Err(Fail::Error(m)) => {
                    let stats = &self.shared.stats;
                    self.shared
                        .problem(&stats.errors, format!("client {}: {m}", self.id));
                }
            }
            let young = self.shared.settings.young();
            self.ledger.lock().unwrap().prune(young);
        }
    }

    fn busy(&self) {
        Stats::add(&self.shared.stats.throttled, 1);
        std::thread::sleep(Duration::from_millis(200));
    }

    /// Waits for the next server; false once the soak is over.
    fn reconnect(&mut self) -> bool {
        self.http = None;
        let Some((generation, addr)) = self.shared.slot.wait_past(self.generation) else {
            return false;
        };
        self.generation = generation;
        self.http = Some(Http::connect(addr));
        true
    }

    fn step(&mut self, which: usize) -> Step {
        let repo = self.repos[which].clone();
        match self.rng.below(100) {
            0..=29 => {
                let tag = self.tag_name(which);
                self.push(&repo, Some(tag))
            }
            30..=39 => self.push(&repo, None),
            40..=51 => self.tag_again(which, &repo),
            52..=84 => self.pull(&repo),
            85..=93 => self.delete_tag(&repo),
            _ => self.delete_manifest(&repo),
        }
    }

    fn tag_name(&mut self, which: usize) -> String {
        self.tagged[which] += 1;
        format!("v{}", self.tagged[which] % TAG_NAMES)
    }

    fn http(&mut self) -> &mut Http {
        self.http.as_mut().expect("connected")
    }

    /// Sends a request; no answer is [`Fail::Down`].
    fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Step<Answer> {
        self.http()
            .send(method, path, headers, body)
            .map_err(|_| Fail::Down)
    }

    /// `answer` if its status is `expected` (counted as a request answered well), else 429 is
    /// [`Fail::Busy`] and anything else an error naming `what`.
    fn expect(&self, answer: Answer, expected: u16, what: &str) -> Step<Answer> {
        match answer.status {
            s if s == expected => {
                Stats::add(&self.shared.stats.requests_ok, 1);
                Ok(answer)
            }
            429 => Err(Fail::Busy),
            _ => Err(Fail::Error(format!(
                "{what}: expected {expected}, got {}",
                answer.describe()
            ))),
        }
    }

    fn new_blob(&mut self, low: usize, high: usize) -> Blob {
        self.made += 1;
        let len = self.rng.between(low, high);
        Blob::new(self.rng.next_u64() ^ self.made, len)
    }

    /// Pushes an image, again from the start after a kill or a 429 (the blobs already sent
    /// are sent or mounted again: the new answers are what counts).
    fn push(&mut self, repo: &str, tag: Option<String>) -> Step {
        let mut blobs = vec![(self.new_blob(100, 600), None)];
        let layers = self.rng.between(1, 3);
        for index in self.shared.pool.pick(&mut self.rng, layers) {
            if self.rng.chance(50) {
                blobs.push((self.shared.pool.layers[index].clone(), Some(index)));
            } else {
                blobs.push((self.new_blob(512, 32 << 10), None));
            }
        }
        if self.rng.chance(25) {
            blobs.push((self.new_blob(64 << 10, 512 << 10), None));
        }
        let image = image_of(repo, &blobs);
        for _ in 0..100 {
            match self.push_once(&image, &blobs, tag.as_deref()) {
                Err(Fail::Down) => {
                    if let Some(tag) = &tag {
                        self.ledger.lock().unwrap().forget_tag(repo, tag);
                    }
                    Stats::add(&self.shared.stats.interrupted, 1);
                    if !self.reconnect() {
                        return Err(Fail::Down);
                    }
                }
                Err(Fail::Busy) => self.busy(),
                Err(Fail::Expired) => Stats::add(&self.shared.stats.expired, 1),
                other => return other,
            }
        }
        Err(Fail::Error(format!(
            "push to {repo}: no end after 100 tries"
        )))
    }

    fn push_once(
        &mut self,
        image: &Image,
        blobs: &[(Blob, Option<usize>)],
        tag: Option<&str>,
    ) -> Step {
        let mut first_ack = None;
        for (blob, base) in blobs {
            self.put_blob(&image.repo, blob, *base)?;
            first_ack.get_or_insert_with(Instant::now);
        }
        let reference = tag.map_or_else(|| image.digest.clone(), str::to_owned);
        match self.put_manifest(image, &reference) {
            Err(Fail::Error(m)) if m.contains("MANIFEST_BLOB_UNKNOWN") => {
                let age = first_ack.map_or(Duration::ZERO, |at| at.elapsed());
                return Err(self.blob_unknown(m, age));
            }
            other => other?,
        }
        Stats::add(&self.shared.stats.pushes, 1);
        self.ledger.lock().unwrap().acknowledged(image.clone(), tag);
        Ok(())
    }

    /// A manifest PUT answered `MANIFEST_BLOB_UNKNOWN` `age` after the push's first blob was
    /// acknowledged. The collector may take a blob no manifest references once it is older
    /// than the grace window, so if the push took longer than the grace window (less the touch
    /// interval: a blob already stored is only touched when older than that) the answer is
    /// right and the push is made again ([`Fail::Expired`]); otherwise a blob was lost.
    fn blob_unknown(&self, message: String, age: Duration) -> Fail {
        let gc = self.shared.settings.gc;
        if age >= gc.grace.saturating_sub(gc.touch_after) {
            Fail::Expired
        } else {
            Fail::Error(format!(
                "LOST BLOB ({age:.1?} after the first 201): {message}"
            ))
        }
    }

    fn put_manifest(&mut self, image: &Image, reference: &str) -> Step {
        let path = format!("/v2/{}/manifests/{reference}", image.repo);
        let headers = [("content-type", OCI_MANIFEST)];
        let answer = self.send(Method::PUT, &path, &headers, &image.manifest)?;
        let answer = self.expect(answer, 201, &format!("PUT {path}"))?;
        match answer.header("docker-content-digest") {
            Some(digest) if digest == image.digest => Ok(()),
            other => Err(Fail::Error(format!(
                "PUT {path}: Docker-Content-Digest {other:?}"
            ))),
        }
    }

    /// Gets `blob` into `repo`: a base layer is mounted half the time, a large blob goes up in
    /// three PATCHes, any other in one POST.
    fn put_blob(&mut self, repo: &str, blob: &Blob, base: Option<usize>) -> Step {
        match base {
            Some(index) if self.rng.chance(50) => self.mount(repo, blob, index)?,
            _ if blob.bytes.len() >= 64 << 10 => self.upload_chunked(repo, blob)?,
            _ => self.upload_monolithic(repo, blob)?,
        }
        if let Some(index) = base {
            self.shared.pool.hold(index, repo);
        }
        let mut ledger = self.ledger.lock().unwrap();
        ledger.blob_acknowledged(repo, &blob.digest, blob.bytes.len());
        Ok(())
    }

    fn upload_monolithic(&mut self, repo: &str, blob: &Blob) -> Step {
        let path = format!("/v2/{repo}/blobs/uploads/?digest={}", blob.digest);
        let answer = self.send(Method::POST, &path, &[OCTETS], &blob.bytes)?;
        self.expect(answer, 201, &format!("POST {path}"))?;
        Ok(())
    }

    /// Mounts base layer `index` from a repository told it holds it; on 202 (not there any
    /// more) the bytes go into the session the answer opened.
    fn mount(&mut self, repo: &str, blob: &Blob, index: usize) -> Step {
        let Some(from) = self.shared.pool.holder(index, &mut self.rng, repo) else {
            return self.upload_monolithic(repo, blob);
        };
        let path = format!(
            "/v2/{repo}/blobs/uploads/?mount={}&from={from}",
            blob.digest
        );
        let answer = self.send(Method::POST, &path, &[], b"")?;
        if answer.status == 201 {
            Stats::add(&self.shared.stats.mounts, 1);
            return self.expect(answer, 201, "mount").map(drop);
        }
        let answer = self.expect(answer, 202, &format!("POST {path}"))?;
        let location = self.location(&path, &answer)?;
        self.finish_upload(&location, blob, &blob.bytes)
    }

    fn location(&mut self, path: &str, answer: &Answer) -> Step<String> {
        self.http().location(path, answer).map_err(Fail::Error)
    }

    /// The PUT that ends an upload session, with the last `body` bytes: 201.
    fn finish_upload(&mut self, location: &str, blob: &Blob, body: &[u8]) -> Step {
        let (path, answer) = self.put_final(location, blob, body)?;
        self.expect(answer, 201, &format!("PUT {path}")).map(drop)
    }

    /// Sends the PUT that ends an upload session; its path and answer.
    fn put_final(&mut self, location: &str, blob: &Blob, body: &[u8]) -> Step<(String, Answer)> {
        let separator = if location.contains('?') { '&' } else { '?' };
        let path = format!("{location}{separator}digest={}", blob.digest);
        let answer = self.send(Method::PUT, &path, &[OCTETS], body)?;
        Ok((path, answer))
    }

    /// POST, three PATCHes, PUT; after a kill, resumes where the new server says the session
    /// is (or starts again if it does not know it).
    fn upload_chunked(&mut self, repo: &str, blob: &Blob) -> Step {
        Stats::add(&self.shared.stats.chunked, 1);
        let mut session: Option<String> = None;
        for _ in 0..100 {
            match self.chunked_once(repo, blob, &mut session) {
                Err(Fail::Down) => {
                    Stats::add(&self.shared.stats.interrupted, 1);
                    if !self.reconnect() {
                        return Err(Fail::Down);
                    }
                }
                // 429, or 416 after a resume (an object store had listed a part that the kill
                // cut short): ask the session's offset again.
                Err(Fail::Busy) if session.is_some() => self.busy(),
                other => return other,
            }
        }
        Err(Fail::Error(format!(
            "chunked upload to {repo}: no end after 100 tries"
        )))
    }

    fn chunked_once(&mut self, repo: &str, blob: &Blob, session: &mut Option<String>) -> Step {
        let (mut location, mut offset) = match session.take() {
            Some(location) => self.resume(repo, &location)?,
            None => (self.open_session(repo)?, 0),
        };
        *session = Some(location.clone());
        let len = blob.bytes.len();
        let third = len / 3 + 1;
        while offset < len {
            let end = (offset + third).min(len);
            let range = format!("{offset}-{}", end - 1);
            let headers = [OCTETS, ("content-range", range.as_str())];
            let body = &blob.bytes[offset..end];
            let answer = self.send(Method::PATCH, &location, &headers, body)?;
            if answer.status == 416 && offset > 0 {
                return Err(Fail::Busy);
            }
            let answer = self.expect(answer, 202, &format!("PATCH {location}"))?;
            location = self.location(&location, &answer)?;
            *session = Some(location.clone());
            offset = end;
        }
        // The PUT's token names the end. A new server whose object store lists fewer bytes
        // (Garage's ListMultipartUploads can miss an unfinished upload for a moment) answers
        // 416 with where it stands: ask again and go on, as after a PATCH.
        let (path, answer) = self.put_final(&location, blob, b"")?;
        if answer.status == 416 {
            return Err(Fail::Busy);
        }
        self.expect(answer, 201, &format!("PUT {path}")).map(drop)
    }

    fn open_session(&mut self, repo: &str) -> Step<String> {
        let path = format!("/v2/{repo}/blobs/uploads/");
        let answer = self.send(Method::POST, &path, &[], b"")?;
        let answer = self.expect(answer, 202, &format!("POST {path}"))?;
        self.location(&path, &answer)
    }

    /// Asks the new server where session `location` is: its location and offset, or a new
    /// session if the kill came before the session was stored or after its commit.
    fn resume(&mut self, repo: &str, location: &str) -> Step<(String, usize)> {
        let answer = self.send(Method::GET, location, &[], b"")?;
        if answer.status == 404 {
            Stats::add(&self.shared.stats.restarted, 1);
            return Ok((self.open_session(repo)?, 0));
        }
        let answer = self.expect(answer, 204, &format!("GET {location}"))?;
        let end: usize = answer
            .header("range")
            .and_then(|r| r.strip_prefix("0-"))
            .and_then(|end| end.parse().ok())
            .ok_or_else(|| Fail::Error(format!("GET {location}: no Range")))?;
        let offset = if end == 0 { 0 } else { end + 1 };
        if offset > 0 {
            Stats::add(&self.shared.stats.resumed, 1);
        }
        Ok((self.location(location, &answer)?, offset))
    }

    /// Tags a manifest a certain tag names with the next tag name (201).
    fn tag_again(&mut self, which: usize, repo: &str) -> Step {
        let tags = self.ledger.lock().unwrap().tags_in(repo);
        let tag = self.tag_name(which);
        if tags.is_empty() {
            return self.push(repo, Some(tag));
        }
        let (_, digest) = &tags[self.rng.below(tags.len())];
        let image = self.ledger.lock().unwrap().images[digest].clone();
        if let Err(fail) = self.put_manifest(&image, &tag) {
            self.ledger.lock().unwrap().forget_tag(repo, &tag);
            return Err(fail);
        }
        Stats::add(&self.shared.stats.tags, 1);
        self.ledger.lock().unwrap().acknowledged(image, Some(&tag));
        Ok(())
    }

    /// Pulls a manifest a certain tag names (by tag or digest), or a young untagged one.
    fn pull(&mut self, repo: &str) -> Step {
        let young = self.shared.settings.young();
        let (tags, untagged) = {
            let ledger = self.ledger.lock().unwrap();
            (ledger.tags_in(repo), ledger.young_untagged(repo, young))
        };
        let Some((reference, digest)) = self.rng.pull_reference(&tags, &untagged) else {
            return Ok(());
        };
        let image = self.ledger.lock().unwrap().images[&digest].clone();
        match read_image(self.http(), &image, &reference, true) {
            Read::Down => Err(Fail::Down),
            outcome => {
                if settle(outcome, &self.shared, "pull") > 0 {
                    Stats::add(&self.shared.stats.pulls, 1);
                }
                Ok(())
            }
        }
    }

    /// Deletes a certain tag (202).
    fn delete_tag(&mut self, repo: &str) -> Step {
        let tags = self.ledger.lock().unwrap().tags_in(repo);
        let Some((tag, _)) = self.rng.pick(&tags) else {
            return Ok(());
        };
        // Whatever the answer, the tag is not relied on any more.
        self.ledger.lock().unwrap().forget_tag(repo, &tag);
        let path = format!("/v2/{repo}/manifests/{tag}");
        let answer = self.send(Method::DELETE, &path, &[], b"")?;
        self.expect(answer, 202, &format!("DELETE {path}"))?;
        Stats::add(&self.shared.stats.deletes, 1);
        Ok(())
    }

    /// Deletes by digest a manifest a certain tag names, or a young untagged one (202).
    fn delete_manifest(&mut self, repo: &str) -> Step {
        let young = self.shared.settings.young();
        let candidates: Vec<String> = {
            let ledger = self.ledger.lock().unwrap();
            let tagged = ledger.tags_in(repo).into_iter().map(|(_, d)| d);
            tagged.chain(ledger.young_untagged(repo, young)).collect()
        };
        let Some(digest) = self.rng.pick(&candidates) else {
            return Ok(());
        };
        self.ledger.lock().unwrap().forget_manifest(repo, &digest);
        let path = format!("/v2/{repo}/manifests/{digest}");
        let answer = self.send(Method::DELETE, &path, &[], b"")?;
        self.expect(answer, 202, &format!("DELETE {path}"))?;
        Stats::add(&self.shared.stats.deletes, 1);
        Ok(())
    }
}

/// The image of `blobs` (config first) in `repo`.
fn image_of(repo: &str, blobs: &[(Blob, Option<usize>)]) -> Image {
    let descriptor = |blob: &Blob, media_type: &str| serde_json::json!({ "mediaType": media_type, "digest": blob.digest, "size": blob.bytes.len() });
    let layers: Vec<_> = blobs[1..]
        .iter()
        .map(|(b, _)| descriptor(b, "application/vnd.oci.image.layer.v1.tar+gzip"))
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(&blobs[0].0, "application/vnd.oci.image.config.v1+json"),
        "layers": layers,
    }))
    .unwrap();
    Image {
        repo: repo.to_owned(),
        digest: sha256(&manifest),
        blobs: blobs
            .iter()
            .map(|(b, _)| (b.digest.clone(), b.bytes.len()))
            .collect(),
        manifest,
        evidence: String::new(),
    }
}
