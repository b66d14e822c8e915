//! The storm's checks: the [`Tally`] of what was checked, the worker's interrupted upload
//! settled through the library with the server down ([`settle_worker`]), and after a restart
//! everything acknowledged read back and interrupted HTTP uploads resumed ([`verify`]).

use std::net::SocketAddr;
use std::sync::Mutex;

use crate::common::{sha256, try_request};
use layerstore::digest::Digest;
use layerstore::store::{Store, StoreError};

use super::clients::{blob_content, Ledger, WorkerOutcome};

#[derive(Debug, Default)]
pub struct Tally {
    pub kills: usize,
    /// HTTP uploads interrupted by a kill that resumed to their digest after the restart.
    pub resumed: usize,
    /// HTTP uploads interrupted before their session was durable (404 after the restart).
    pub unknown_after_kill: usize,
    /// Blobs the worker acknowledged (printed as committed).
    pub worker_commits: usize,
    /// Worker uploads interrupted by a kill that resumed to their digest through the library.
    pub worker_resumed: usize,
    /// ... of which resumed at a non-zero offset.
    pub worker_resumed_nonzero: usize,
    /// Worker uploads whose commit had finished when the kill came (session gone, blob linked).
    pub worker_commit_finished: usize,
    /// Interrupted uploads (HTTP or worker) that resumed below the offset their status had
    /// reported: parts an object store listed but that a crash had cut short were left out.
    pub resumed_below_status: usize,
    pub blobs_checked: usize,
    pub manifests_checked: usize,
    /// Upload sessions `purge-uploads` deleted at the end.
    pub sessions_purged: usize,
    /// Backend leftovers before that purge (S3: multipart uploads; filesystem: temp files).
    pub leftovers_purged: usize,
    /// Session directories the purge kept for want of a `startedat` (empty; see `storm`).
    pub sessions_without_startedat: usize,
    /// fsck runs, all clean (with the server down).
    pub fscks: usize,
    /// Wall time of the whole storm.
    pub seconds: f64,
}

/// With the server down: the worker's blobs are acknowledged; its interrupted upload resumes
/// through the library at the offset its status reports, or its commit had finished.
pub fn settle_worker(
    store: &Store,
    outcome: WorkerOutcome,
    ledger: &Mutex<Ledger>,
    tally: &mut Tally,
) {
    let repo = outcome.repo;
    let mut ledger = ledger.lock().unwrap();
    for seed in outcome.committed {
        ledger.add_blob(repo.as_str(), sha256(&blob_content(seed)), seed);
        tally.worker_commits += 1;
    }
    let Some((id, seed)) = outcome.interrupted else {
        return;
    };
    let data = blob_content(seed);
    let digest = Digest::sha256(&data);
    let status = store.upload_status(&repo, &id).map(|s| s.offset).ok();
    match store.resume_upload(&repo, &id) {
        Ok(mut upload) => {
            let offset = upload.offset();
            // Resuming may leave out parts an object store listed but that a crash cut short
            // (`multipart::complete_longest`): then it is below the status, never above.
            let status = status.expect("the status of a session that resumes");
            assert!(
                offset <= status,
                "{repo} {id}: resumed at {offset}, after the status {status}"
            );
            if offset < status {
                tally.resumed_below_status += 1;
            }
            assert!(
                offset <= data.len() as u64,
                "{repo} {id}: offset past the data"
            );
            upload.append(&data[offset as usize..]).unwrap();
            let info = upload.commit(&digest, Some(data.len() as u64)).unwrap();
            assert_eq!(info.digest, digest);
            tally.worker_resumed += 1;
            if offset > 0 {
                tally.worker_resumed_nonzero += 1;
            }
        }
        // `started` is printed once `startedat` is stored, so the session can only have gone
        // with a commit that finished just before the kill.
        Err(StoreError::BlobUploadUnknown(_)) => {
            let info = store.stat_blob(&repo, &digest).unwrap_or_else(|e| {
                panic!("{repo} {id}: session gone but {digest} not linked: {e}")
            });
            assert_eq!(info.size, data.len() as u64);
            tally.worker_commit_finished += 1;
        }
        Err(e) => {
            panic!("{repo} {id}: resume failed: {e}")
        }
    }
    ledger.add_blob(repo.as_str(), digest.to_string(), seed);
}

/// After a restart: everything acknowledged (with `full`, or else what was acknowledged since
/// the last check) is intact; interrupted uploads resume or are unknown.
pub fn verify(addr: SocketAddr, ledger: &Mutex<Ledger>, tally: &mut Tally, full: bool) {
    let mut ledger = ledger.lock().unwrap();
    let (blobs, manifests): (Vec<_>, Vec<_>) = if full {
        ledger.fresh_blobs.clear();
        ledger.fresh_manifests.clear();
        (
            ledger.blobs.keys().cloned().collect(),
            ledger.manifests.keys().cloned().collect(),
        )
    } else {
        (
            std::mem::take(&mut ledger.fresh_blobs),
            std::mem::take(&mut ledger.fresh_manifests),
        )
    };
    for (repo, digest) in blobs {
        let seed = ledger.blobs[&(repo.clone(), digest.clone())];
        let reply =
            try_request(addr, "GET", &format!("/v2/{repo}/blobs/{digest}"), &[], b"").unwrap();
        assert_eq!(reply.status, 200, "acknowledged blob {repo}@{digest} lost");
        assert!(
            reply.body == blob_content(seed),
            "acknowledged blob {repo}@{digest} corrupt"
        );
        tally.blobs_checked += 1;
    }
    for (repo, tag) in manifests {
        let body = &ledger.manifests[&(repo.clone(), tag.clone())];
        let reply = try_request(
            addr,
            "GET",
            &format!("/v2/{repo}/manifests/{tag}"),
            &[],
            b"",
        )
        .unwrap();
        assert_eq!(reply.status, 200, "acknowledged manifest {repo}:{tag} lost");
        assert_eq!(
            &reply.body, body,
            "acknowledged manifest {repo}:{tag} corrupt"
        );
        tally.manifests_checked += 1;
    }
    for (repo, location, seed) in std::mem::take(&mut ledger.interrupted) {
        let data = blob_content(seed);
        let mut reply = try_request(addr, "GET", &location, &[], b"").unwrap();
        if reply.status == 404 {
            assert_eq!(reply.error_code().as_deref(), Some("BLOB_UPLOAD_UNKNOWN"));
            tally.unknown_after_kill += 1;
            continue;
        }
        assert_eq!(reply.status, 204);
        // Send the rest from the offset the server reports, as a client does. Resuming may leave
        // out parts an object store listed but that a crash cut short: the PATCH (whose token
        // carries the offset) is then answered 416 with the real offset, once.
        for attempt in 0.. {
            let end: usize = reply
                .header("range")
                .unwrap()
                .strip_prefix("0-")
                .unwrap()
                .parse()
                .unwrap();
            let stored = if end == 0 { 0 } else { end + 1 };
            assert!(stored <= data.len());
            reply = try_request(addr, "PATCH", &reply.location(), &[], &data[stored..]).unwrap();
            if reply.status == 416 && attempt == 0 {
                tally.resumed_below_status += 1;
                continue;
            }
            assert_eq!(
                reply.status,
                202,
                "resume PATCH: {}",
                String::from_utf8_lossy(&reply.body)
            );
            break;
        }
        let put = format!("{}&digest={}", reply.location(), sha256(&data));
        let reply = try_request(addr, "PUT", &put, &[], b"").unwrap();
        assert_eq!(
            reply.status,
            201,
            "resumed upload must reach its digest: {}",
            String::from_utf8_lossy(&reply.body)
        );
        ledger.add_blob(&repo, sha256(&data), seed);
        tally.resumed += 1;
    }
    if !full {
        return;
    }
    // Every listed tag is readable.
    let catalog = try_request(addr, "GET", "/v2/_catalog", &[], b"").unwrap();
    let catalog: serde_json::Value = serde_json::from_slice(&catalog.body).unwrap();
    for repo in catalog["repositories"].as_array().unwrap() {
        let repo = repo.as_str().unwrap();
        let tags = try_request(addr, "GET", &format!("/v2/{repo}/tags/list"), &[], b"").unwrap();
        let tags: serde_json::Value = serde_json::from_slice(&tags.body).unwrap();
        for tag in tags["tags"].as_array().unwrap() {
            let path = format!("/v2/{repo}/manifests/{}", tag.as_str().unwrap());
            let reply = try_request(addr, "GET", &path, &[], b"").unwrap();
            assert_eq!(
                reply.status,
                200,
                "listed tag {path} unreadable: {}",
                String::from_utf8_lossy(&reply.body)
            );
        }
    }
}
