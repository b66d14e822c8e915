//! Regressions found by real clients and by distribution 2.8 sharing a root (see
//! tests/clients_*.rs and tests/interop_distribution.rs), reproduced here with the plain HTTP
//! client so they run without those tools.

mod common;

use common::{sha256, TestServer};
use serde_json::{json, Value};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn push_blob(server: &TestServer, repo: &str, data: &[u8]) -> String {
    let digest = sha256(data);
    let path = format!("/v2/{repo}/blobs/uploads/?digest={digest}");
    assert_eq!(server.request("POST", &path, &[], data).status, 201);
    digest
}

fn put_manifest(server: &TestServer, repo: &str, reference: &str, body: &[u8]) {
    let reply = server.request(
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("content-type", OCI_MANIFEST)],
        body,
    );
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
}

fn referrer_digests(server: &TestServer, repo: &str, subject: &str) -> Vec<String> {
    let reply = server.get(&format!("/v2/{repo}/referrers/{subject}"));
    assert_eq!(reply.status, 200);
    let index: Value = serde_json::from_slice(&reply.body).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// distribution deletes a manifest (DELETE or `garbage-collect --delete-untagged`) by removing
/// its revision directory; it knows nothing of layerstore's referrers index. The referrer must
/// then leave the referrers list, or clients are sent to a manifest that answers 404.
#[test]
fn referrer_deleted_by_another_registry_is_not_listed() {
    let server = TestServer::start();
    let config = push_blob(&server, "app", b"{}");
    let subject_body = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2 },
        "layers": [],
    }))
    .unwrap();
    let subject = sha256(&subject_body);
    put_manifest(&server, "app", "v1", &subject_body);
    let referrer = |note: &str| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.sig",
            "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2 },
            "layers": [],
            "subject": { "mediaType": OCI_MANIFEST, "digest": subject, "size": subject_body.len() },
            "annotations": { "note": note },
        }))
        .unwrap()
    };
    let (kept, removed) = (referrer("kept"), referrer("removed"));
    for body in [&kept, &removed] {
        put_manifest(&server, "app", &sha256(body), body);
    }
    let mut both = vec![sha256(&kept), sha256(&removed)];
    both.sort();
    let mut listed = referrer_digests(&server, "app", &subject);
    listed.sort();
    assert_eq!(listed, both);

    // What distribution's manifest DELETE does on disk.
    let hex = sha256(&removed).trim_start_matches("sha256:").to_owned();
    server.remove_stored(&format!(
        "repositories/app/_manifests/revisions/sha256/{hex}"
    ));
    let gone = server.request(
        "GET",
        &format!("/v2/app/manifests/{}", sha256(&removed)),
        &[("accept", OCI_MANIFEST)],
        b"",
    );
    assert_eq!(gone.status, 404);
    assert_eq!(referrer_digests(&server, "app", &subject), [sha256(&kept)]);
}
