//! Reading acknowledged items back: a manifest by tag or digest and its blobs, or a lone blob,
//! compared with what was pushed. A read answers [`Read::Same`], [`Read::Lost`] (404, or any
//! answer but 200 where the item must be), [`Read::Corrupt`] (200 with other bytes) or
//! [`Read::Down`] (no answer: the server was killed). [`check_all`] reads everything a set of
//! ledgers relies on, on a few connections at once: the checks at every restart and at the end.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::Method;

use super::ledger::{AckedBlob, Ledger};
use super::{Shared, Stats};
use crate::gc_load_support::http::Http;
use crate::gc_load_support::ledger::Image;
use crate::gc_load_support::sha256;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// How reading one item went.
#[derive(Debug)]
pub enum Read {
    /// The bytes pushed; the number of items read (a manifest and its blobs, or a blob).
    Same(u64),
    Lost(String),
    Corrupt(String),
    Down,
}

/// GETs blob `digest` of `repo`, which must hold `len` bytes with that digest.
pub fn read_blob(http: &mut Http, repo: &str, digest: &str, len: usize) -> Read {
    let path = format!("/v2/{repo}/blobs/{digest}");
    let Ok(answer) = http.send(Method::GET, &path, &[], b"") else {
        return Read::Down;
    };
    if answer.status != 200 {
        return Read::Lost(format!("GET {path}: {}", answer.describe()));
    }
    if answer.body.len() != len || sha256(&answer.body) != digest {
        return Read::Corrupt(format!(
            "GET {path}: {} bytes with digest {} (pushed {len})",
            answer.body.len(),
            sha256(&answer.body)
        ));
    }
    Read::Same(1)
}

/// GETs `image`'s manifest by `reference` and, with `blobs`, every blob it names.
pub fn read_image(http: &mut Http, image: &Image, reference: &str, blobs: bool) -> Read {
    let path = format!("/v2/{}/manifests/{reference}", image.repo);
    let Ok(answer) = http.send(Method::GET, &path, &[("accept", OCI_MANIFEST)], b"") else {
        return Read::Down;
    };
    if answer.status != 200 {
        return Read::Lost(format!("GET {path}: {}", answer.describe()));
    }
    if answer.body[..] != image.manifest[..] {
        return Read::Corrupt(format!(
            "GET {path}: other bytes ({}) than the {} pushed",
            sha256(&answer.body),
            image.digest
        ));
    }
    if !blobs {
        return Read::Same(1);
    }
    for (digest, len) in &image.blobs {
        match read_blob(http, &image.repo, digest, *len) {
            Read::Same(_) => {}
            Read::Lost(m) => return Read::Lost(format!("{m} (of {path})")),
            other => return other,
        }
    }
    Read::Same(1 + image.blobs.len() as u64)
}

/// One item a check reads: young ones are skipped once older than `young` (by then the
/// collector may have taken them).
enum Item {
    Blob(AckedBlob),
    Image {
        image: Image,
        reference: String,
        acked: Option<Instant>,
    },
}

/// Connections a check reads on.
const READERS: usize = 4;

/// Reads everything `ledgers` rely on from the server at `addr` (which must stay up): young
/// blobs and untagged manifests first, then every certain tag and the digest it names, with
/// their blobs. Lost and corrupt items are recorded in `shared`; returns the items read.
pub fn check_all(addr: SocketAddr, ledgers: &[Arc<Mutex<Ledger>>], shared: &Shared) -> u64 {
    let mut young = Vec::new();
    let mut live = Vec::new();
    for ledger in ledgers {
        let snapshot = ledger.lock().unwrap().snapshot();
        young.extend(snapshot.young_blobs.into_iter().map(Item::Blob));
        young.extend(snapshot.young_manifests.into_iter().map(|(image, at)| {
            let reference = image.digest.clone();
            Item::Image {
                image,
                reference,
                acked: Some(at),
            }
        }));
        live.extend(
            snapshot
                .live
                .into_iter()
                .map(|(reference, image)| Item::Image {
                    image,
                    reference,
                    acked: None,
                }),
        );
    }
    let young_limit = shared.settings.young();
    let mut read = read_items(addr, young, young_limit, shared);
    read += read_items(addr, live, young_limit, shared);
    read
}

fn read_items(addr: SocketAddr, items: Vec<Item>, young: Duration, shared: &Shared) -> u64 {
    let per_reader = items.len().div_ceil(READERS).max(1);
    let mut items = items;
    let mut chunks = Vec::new();
    while !items.is_empty() {
        let rest = items.split_off(per_reader.min(items.len()));
        chunks.push(std::mem::replace(&mut items, rest));
    }
    std::thread::scope(|scope| {
        let readers: Vec<_> = chunks
            .into_iter()
            .map(|chunk| scope.spawn(move || read_chunk(addr, chunk, young, shared)))
            .collect();
        readers.into_iter().map(|r| r.join().unwrap()).sum()
    })
}

fn read_chunk(addr: SocketAddr, items: Vec<Item>, young: Duration, shared: &Shared) -> u64 {
    let mut http = Http::connect(addr);
    let mut read = 0;
    for item in items {
        let outcome = match &item {
            Item::Blob(blob) if blob.at.elapsed() < young => {
                read_blob(&mut http, &blob.repo, &blob.digest, blob.len)
            }
            Item::Image {
                image,
                reference,
                acked,
            } if acked.is_none_or(|at| at.elapsed() < young) => {
                read_image(&mut http, image, reference, true)
            }
            _ => continue,
        };
        read += settle(outcome, shared, "restart check");
    }
    read
}

/// Counts a read's outcome in `shared`; returns the items read. The checks run with the
/// server up, so no answer is an error there.
pub fn settle(outcome: Read, shared: &Shared, during: &str) -> u64 {
    let stats = &shared.stats;
    match outcome {
        Read::Same(n) => {
            Stats::add(&stats.verified, n);
            Stats::add(&stats.requests_ok, n);
            n
        }
        Read::Lost(m) => {
            shared.problem(&stats.lost, format!("LOST ({during}): {m}"));
            0
        }
        Read::Corrupt(m) => {
            shared.problem(&stats.corrupt, format!("CORRUPT ({during}): {m}"));
            0
        }
        Read::Down => {
            shared.problem(&stats.errors, format!("no answer ({during})"));
            0
        }
    }
}
