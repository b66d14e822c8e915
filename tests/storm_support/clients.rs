//! What pushes during a storm: the HTTP [`Client`]s (monolithic, chunked and resumed uploads,
//! cross-repository mounts, manifests), the `layerstore crash-worker` ([`Worker`]), the
//! [`Ledger`] of what they were told was stored, and the blob contents both push.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::{sha256, try_request, Reply};
use layerstore::names::{RepositoryName, UploadId};

use super::backend::Backend;

/// What the clients were told was stored, and what they had in flight.
#[derive(Default)]
pub struct Ledger {
    /// (repo, digest) -> content seed, for every blob acknowledged with 201 or by the worker.
    pub blobs: HashMap<(String, String), u64>,
    /// (repo, tag) -> manifest bytes, for every manifest acknowledged with 201.
    pub manifests: HashMap<(String, String), Vec<u8>>,
    /// HTTP uploads interrupted by a kill: (repo, location path, content seed).
    pub interrupted: Vec<(String, String, u64)>,
    /// Keys of the blobs and manifests acknowledged since the last check.
    pub fresh_blobs: Vec<(String, String)>,
    pub fresh_manifests: Vec<(String, String)>,
}

impl Ledger {
    pub fn add_blob(&mut self, repo: &str, digest: String, seed: u64) {
        let key = (repo.to_owned(), digest);
        if self.blobs.insert(key.clone(), seed).is_none() {
            self.fresh_blobs.push(key);
        }
    }

    pub fn add_manifest(&mut self, repo: &str, tag: String, body: Vec<u8>) {
        let key = (repo.to_owned(), tag);
        if self.manifests.insert(key.clone(), body).is_none() {
            self.fresh_manifests.push(key);
        }
    }
}

/// Content for a seed: sizes from 1 byte to ~600 KiB, unique per seed.
pub fn blob_content(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let len = 1 + (x % 600_000) as usize;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out.extend_from_slice(&seed.to_le_bytes()); // never two equal blobs
    out
}

pub struct Client {
    pub addr: SocketAddr,
    pub ledger: Arc<Mutex<Ledger>>,
    pub seeds: Arc<AtomicU64>,
    pub stop: Arc<AtomicBool>,
    pub id: usize,
}

impl Client {
    fn request(&self, method: &str, path: &str, body: &[u8]) -> Option<Reply> {
        try_request(self.addr, method, path, &[], body).ok()
    }

    /// Pushes until the server dies or `stop` is set.
    pub fn run(self) {
        while !self.stop.load(Ordering::Relaxed) {
            let seed = self.seeds.fetch_add(1, Ordering::Relaxed);
            let repo = format!("storm/c{}-{}", self.id, seed % 3);
            // The kind follows the global seed, so every kind runs whatever the kill timing.
            let alive = match seed % 4 {
                0 => self.monolithic(&repo, seed),
                1 => self.chunked(&repo, seed),
                2 => self.mount(&repo, seed),
                _ => self.manifest(&repo, seed),
            };
            if !alive {
                return;
            }
        }
    }

    fn monolithic(&self, repo: &str, seed: u64) -> bool {
        let data = blob_content(seed);
        let path = format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(&data));
        match self.request("POST", &path, &data) {
            Some(reply) if reply.status == 201 => {
                self.ledger
                    .lock()
                    .unwrap()
                    .add_blob(repo, sha256(&data), seed);
                true
            }
            Some(reply) => panic!("monolithic push answered {}", reply.status),
            None => false,
        }
    }

    /// POST, three PATCHes, PUT. A kill in between leaves an interrupted upload to resume.
    fn chunked(&self, repo: &str, seed: u64) -> bool {
        let data = blob_content(seed);
        let Some(reply) = self.request("POST", &format!("/v2/{repo}/blobs/uploads/"), b"") else {
            return false;
        };
        let mut location = reply.location();
        let third = data.len() / 3 + 1;
        for chunk in data.chunks(third) {
            match self.request("PATCH", &location, chunk) {
                Some(reply) if reply.status == 202 => location = reply.location(),
                Some(reply) => panic!("PATCH answered {}", reply.status),
                None => return self.interrupted(repo, location, seed),
            }
        }
        let put = format!("{location}&digest={}", sha256(&data));
        match self.request("PUT", &put, b"") {
            Some(reply) if reply.status == 201 => {
                self.ledger
                    .lock()
                    .unwrap()
                    .add_blob(repo, sha256(&data), seed);
                true
            }
            Some(reply) => panic!("PUT answered {}", reply.status),
            None => self.interrupted(repo, location, seed),
        }
    }

    fn interrupted(&self, repo: &str, location: String, seed: u64) -> bool {
        self.ledger
            .lock()
            .unwrap()
            .interrupted
            .push((repo.into(), location, seed));
        false
    }

    /// Mounts a blob this client already pushed into a sibling repository.
    fn mount(&self, repo: &str, seed: u64) -> bool {
        let source = self
            .ledger
            .lock()
            .unwrap()
            .blobs
            .iter()
            .find(|((r, _), _)| r.starts_with(&format!("storm/c{}-", self.id)))
            .map(|((r, d), s)| (r.clone(), d.clone(), *s));
        let Some((from, digest, blob_seed)) = source else {
            return self.monolithic(repo, seed);
        };
        let target = format!("{repo}-mounted");
        let path = format!("/v2/{target}/blobs/uploads/?mount={digest}&from={from}");
        match self.request("POST", &path, b"") {
            Some(reply) if reply.status == 201 => {
                self.ledger
                    .lock()
                    .unwrap()
                    .add_blob(&target, digest, blob_seed);
                true
            }
            Some(reply) if reply.status == 202 => true, // not mountable now: fine
            Some(reply) => panic!("mount answered {}", reply.status),
            None => false,
        }
    }

    /// Config + layer blobs, then a manifest under a unique tag.
    fn manifest(&self, repo: &str, seed: u64) -> bool {
        let config = format!("{{\"seed\":{seed}}}").into_bytes();
        let layer = blob_content(seed);
        for blob in [&config, &layer] {
            let path = format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(blob));
            match self.request("POST", &path, blob) {
                Some(reply) if reply.status == 201 => {}
                Some(reply) => panic!("blob push answered {}", reply.status),
                None => return false,
            }
        }
        let body = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len() },
            "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len() }],
        }))
        .unwrap();
        let tag = format!("t{seed}");
        let reply = try_request(
            self.addr,
            "PUT",
            &format!("/v2/{repo}/manifests/{tag}"),
            &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
            &body,
        );
        match reply {
            Ok(reply) if reply.status == 201 => {
                self.ledger.lock().unwrap().add_manifest(repo, tag, body);
                true
            }
            Ok(reply) => panic!("manifest PUT answered {}", reply.status),
            Err(_) => false,
        }
    }
}

/// A `layerstore crash-worker` uploading this round's files through the library.
pub struct Worker {
    child: Child,
    repo: RepositoryName,
    /// File name -> content seed.
    files: HashMap<String, u64>,
    _inputs: tempfile::TempDir,
}

impl Worker {
    pub fn start(backend: &Backend, count: usize, seeds: &AtomicU64) -> Worker {
        let inputs = tempfile::tempdir().unwrap();
        let mut files = HashMap::new();
        for i in 0..count {
            let seed = seeds.fetch_add(1, Ordering::Relaxed);
            let name = format!("w{i:02}");
            std::fs::write(inputs.path().join(&name), blob_content(seed)).unwrap();
            files.insert(name, seed);
        }
        let repo = RepositoryName::parse("storm/worker").unwrap();
        let mut command = backend.command("crash-worker");
        command
            .args(["--repo", repo.as_str(), "--chunk", "65536", "--inputs"])
            .arg(inputs.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        Worker {
            child: command.spawn().expect("start layerstore crash-worker"),
            repo,
            files,
            _inputs: inputs,
        }
    }

    /// SIGKILL (unless it finished), then what it printed: the blobs whose commits it
    /// acknowledged, and the upload it had started and not committed.
    pub fn kill(mut self) -> WorkerOutcome {
        let _ = self.child.kill();
        self.child.wait().unwrap();
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let mut outcome = WorkerOutcome {
            repo: self.repo,
            committed: Vec::new(),
            interrupted: None,
        };
        for line in out.lines() {
            match line.split(' ').collect::<Vec<_>>().as_slice() {
                ["started", id, name] => {
                    let id = UploadId::parse(id).unwrap();
                    outcome.interrupted = Some((id, self.files[*name]));
                }
                ["committed", name, digest] => {
                    let seed = self.files[*name];
                    assert_eq!(*digest, sha256(&blob_content(seed)), "worker's digest");
                    outcome.committed.push(seed);
                    outcome.interrupted = None;
                }
                _ => {} // a line cut short by the kill
            }
        }
        outcome
    }
}

pub struct WorkerOutcome {
    pub repo: RepositoryName,
    /// Seeds of the acknowledged blobs.
    pub committed: Vec<u64>,
    /// The upload started and not acknowledged: id and seed.
    pub interrupted: Option<(UploadId, u64)>,
}
