//! Manifests, tags, catalog and referrers over real HTTP, checked against the bytes on disk.

mod common;

use common::{sha256, TestServer};
use serde_json::{json, Value};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

fn push_blob(server: &TestServer, repo: &str, data: &[u8]) -> Value {
    let digest = sha256(data);
    let reply = server.request(
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
        &[],
        data,
    );
    assert_eq!(reply.status, 201);
    json!({ "mediaType": "application/octet-stream", "digest": digest, "size": data.len() })
}

/// An OCI image manifest whose config and layer are pushed first.
fn image(server: &TestServer, repo: &str, seed: &str) -> Vec<u8> {
    let mut config = push_blob(server, repo, format!("{{\"seed\":\"{seed}\"}}").as_bytes());
    config["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
    let mut layer = push_blob(server, repo, format!("layer {seed}").as_bytes());
    layer["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar+gzip");
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": [layer],
    }))
    .unwrap()
}

fn put_manifest(
    server: &TestServer,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) -> common::Reply {
    server.request(
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("content-type", media_type)],
        body,
    )
}

#[test]
fn push_and_pull_by_tag_and_digest() {
    let server = TestServer::start();
    let body = image(&server, "app", "1");
    let digest = sha256(&body);
    let reply = put_manifest(&server, "app", "v1", OCI_MANIFEST, &body);
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(reply.location(), format!("/v2/app/manifests/{digest}"));

    for reference in ["v1", digest.as_str()] {
        let reply = server.request(
            "GET",
            &format!("/v2/app/manifests/{reference}"),
            &[("accept", OCI_MANIFEST)],
            b"",
        );
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, body);
        assert_eq!(reply.header("content-type"), Some(OCI_MANIFEST));
        assert_eq!(reply.header("docker-content-digest"), Some(digest.as_str()));
    }
    let reply = server.request(
        "HEAD",
        "/v2/app/manifests/v1",
        &[("accept", OCI_MANIFEST)],
        b"",
    );
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert!(reply.body.is_empty());

    // distribution's layout: revision link and both tag links hold the digest, no newline.
    let hex = digest.strip_prefix("sha256:").unwrap();
    for link in [
        format!("revisions/sha256/{hex}/link"),
        "tags/v1/current/link".to_owned(),
        format!("tags/v1/index/sha256/{hex}/link"),
    ] {
        assert_eq!(
            server.read_stored(&format!("repositories/app/_manifests/{link}")),
            digest.as_bytes(),
            "{link}"
        );
    }
    let blob = format!("blobs/sha256/{}/{hex}/data", &hex[..2]);
    assert_eq!(server.read_stored(&blob), body);
}

#[test]
fn accept_negotiation_and_conditional_get() {
    let server = TestServer::start();
    let body = image(&server, "app", "2");
    put_manifest(&server, "app", "latest", OCI_MANIFEST, &body);
    let reply = server.request(
        "GET",
        "/v2/app/manifests/latest",
        &[("accept", DOCKER_MANIFEST)],
        b"",
    );
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error_code().as_deref(), Some("MANIFEST_UNKNOWN"));
    let reply = server.request("GET", "/v2/app/manifests/latest", &[], b"");
    assert_eq!(reply.status, 200, "no Accept accepts anything");
    let etag = format!("\"{}\"", sha256(&body));
    let reply = server.request(
        "GET",
        "/v2/app/manifests/latest",
        &[("if-none-match", &etag)],
        b"",
    );
    assert_eq!(reply.status, 304);
}

#[test]
fn missing_references_are_named() {
    let server = TestServer::start();
    let missing_config = sha256(b"config that was never pushed");
    let missing_layer = sha256(b"layer that was never pushed");
    let body = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": missing_config, "size": 5 },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": missing_layer, "size": 5 }],
    }))
    .unwrap();
    let reply = put_manifest(&server, "app", "broken", OCI_MANIFEST, &body);
    assert_eq!(reply.status, 400);
    let errors: Value = serde_json::from_slice(&reply.body).unwrap();
    let codes: Vec<&str> = errors["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["MANIFEST_BLOB_UNKNOWN", "MANIFEST_BLOB_UNKNOWN"]);
    assert_eq!(errors["errors"][1]["detail"], json!(missing_layer));
    assert_eq!(server.get("/v2/app/manifests/broken").status, 404);
}

#[test]
fn invalid_oversized_and_mismatched_manifests() {
    let server = TestServer::start();
    let reply = put_manifest(&server, "app", "x", OCI_MANIFEST, b"{not json");
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code().as_deref(), Some("MANIFEST_INVALID"));
    let huge = vec![b' '; (4 << 20) + 1];
    let reply = put_manifest(&server, "app", "x", OCI_MANIFEST, &huge);
    assert_eq!(reply.status, 413);
    let body = image(&server, "app", "3");
    let wrong = sha256(b"other bytes");
    let reply = put_manifest(&server, "app", &wrong, OCI_MANIFEST, &body);
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code().as_deref(), Some("DIGEST_INVALID"));
    let reply = put_manifest(&server, "app", "bad..tag!", OCI_MANIFEST, &body);
    assert_eq!(reply.status, 400);
}

#[test]
fn index_children_must_be_pushed_first() {
    let server = TestServer::start();
    let child = image(&server, "multi", "4");
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{ "mediaType": OCI_MANIFEST, "digest": sha256(&child), "size": child.len(),
                        "platform": { "architecture": "amd64", "os": "linux" } }],
    }))
    .unwrap();
    let reply = put_manifest(&server, "multi", "latest", OCI_INDEX, &index);
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code().as_deref(), Some("MANIFEST_BLOB_UNKNOWN"));
    assert_eq!(
        put_manifest(&server, "multi", &sha256(&child), OCI_MANIFEST, &child).status,
        201
    );
    assert_eq!(
        put_manifest(&server, "multi", "latest", OCI_INDEX, &index).status,
        201
    );
    let reply = server.request(
        "GET",
        "/v2/multi/manifests/latest",
        &[("accept", OCI_INDEX)],
        b"",
    );
    assert_eq!(reply.header("content-type"), Some(OCI_INDEX));
}

#[test]
fn tags_are_sorted_and_paginated() {
    let server = TestServer::start();
    let body = image(&server, "app", "5");
    for tag in ["b", "a", "c", "1.0", "latest"] {
        assert_eq!(
            put_manifest(&server, "app", tag, OCI_MANIFEST, &body).status,
            201
        );
    }
    let reply = server.get("/v2/app/tags/list");
    let list: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        list,
        json!({ "name": "app", "tags": ["1.0", "a", "b", "c", "latest"] })
    );
    assert!(reply.header("link").is_none());
    let reply = server.get("/v2/app/tags/list?n=2&last=a");
    let list: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(list["tags"], json!(["b", "c"]));
    assert_eq!(
        reply.header("link"),
        Some("</v2/app/tags/list?last=c&n=2>; rel=\"next\"")
    );
    let reply = server.get("/v2/app/tags/list?n=0");
    assert_eq!(
        serde_json::from_slice::<Value>(&reply.body).unwrap()["tags"],
        json!([])
    );
    assert_eq!(
        server.get("/v2/app/tags/list?n=-1").error_code().as_deref(),
        Some("UNSUPPORTED")
    );
    let reply = server.get("/v2/nothing/tags/list");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error_code().as_deref(), Some("NAME_UNKNOWN"));
}

#[test]
fn catalog_lists_repositories_in_distribution_order() {
    let server = TestServer::start();
    for repo in ["a-b", "a/b", "a", "z"] {
        push_blob(&server, repo, b"x");
    }
    let reply = server.get("/v2/_catalog");
    let list: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(list, json!({ "repositories": ["a", "a/b", "a-b", "z"] }));
    let reply = server.get("/v2/_catalog?n=1&last=a");
    let list: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(list, json!({ "repositories": ["a/b"] }));
    assert!(reply.header("link").is_some());
}

#[test]
fn referrers_api() {
    let server = TestServer::start();
    let subject_body = image(&server, "app", "6");
    let subject = sha256(&subject_body);
    assert_eq!(
        put_manifest(&server, "app", "v1", OCI_MANIFEST, &subject_body).status,
        201
    );
    let empty = push_blob(&server, "app", b"{}");
    let artifact = |artifact_type: &str, note: &str| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": empty["digest"], "size": 2 },
            "layers": [],
            "subject": { "mediaType": OCI_MANIFEST, "digest": subject, "size": subject_body.len() },
            "annotations": { "note": note },
        }))
        .unwrap()
    };
    let sbom = artifact("application/vnd.example.sbom", "sbom");
    let sig = artifact("application/vnd.example.signature", "sig");
    for body in [&sbom, &sig] {
        let reply = put_manifest(&server, "app", &sha256(body), OCI_MANIFEST, body);
        assert_eq!(reply.status, 201);
        assert_eq!(reply.header("oci-subject"), Some(subject.as_str()));
    }
    let reply = server.get(&format!("/v2/app/referrers/{subject}"));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some(OCI_INDEX));
    let index: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);

    let reply = server.get(&format!(
        "/v2/app/referrers/{subject}?artifactType=application/vnd.example.sbom"
    ));
    assert_eq!(reply.header("oci-filters-applied"), Some("artifactType"));
    let index: Value = serde_json::from_slice(&reply.body).unwrap();
    let only = &index["manifests"][0];
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(only["digest"], json!(sha256(&sbom)));
    assert_eq!(only["artifactType"], json!("application/vnd.example.sbom"));
    assert_eq!(only["annotations"]["note"], json!("sbom"));

    // Deleting a referrer removes it from the index; an unknown subject is an empty 200.
    assert_eq!(
        server
            .request(
                "DELETE",
                &format!("/v2/app/manifests/{}", sha256(&sbom)),
                &[],
                b""
            )
            .status,
        202
    );
    let index: Value =
        serde_json::from_slice(&server.get(&format!("/v2/app/referrers/{subject}")).body).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    let reply = server.get(&format!("/v2/app/referrers/{}", sha256(b"unknown")));
    assert_eq!(reply.status, 200);
    let index: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(index["manifests"], json!([]));
}

#[test]
fn delete_by_tag_and_by_digest() {
    let server = TestServer::start();
    let body = image(&server, "app", "7");
    let digest = sha256(&body);
    put_manifest(&server, "app", "keep", OCI_MANIFEST, &body);
    put_manifest(&server, "app", "drop", OCI_MANIFEST, &body);
    assert_eq!(
        server
            .request("DELETE", "/v2/app/manifests/drop", &[], b"")
            .status,
        202
    );
    assert_eq!(server.get("/v2/app/manifests/drop").status, 404);
    assert_eq!(
        server
            .request("DELETE", "/v2/app/manifests/drop", &[], b"")
            .status,
        404
    );
    assert_eq!(server.get("/v2/app/manifests/keep").status, 200);
    assert_eq!(
        server
            .request("DELETE", &format!("/v2/app/manifests/{digest}"), &[], b"")
            .status,
        202
    );
    assert_eq!(
        server.get("/v2/app/manifests/keep").status,
        404,
        "deleting the digest untags it"
    );
    assert_eq!(
        server.get(&format!("/v2/app/manifests/{digest}")).status,
        404
    );
    let list: Value = serde_json::from_slice(&server.get("/v2/app/tags/list").body).unwrap();
    assert_eq!(list["tags"], json!([]));
}

#[test]
fn a_half_written_tag_is_not_listed() {
    // A crash between the tag's index entry and its `current` link leaves this on disk.
    let server = TestServer::start();
    let body = image(&server, "app", "8");
    let digest = sha256(&body);
    assert_eq!(
        put_manifest(&server, "app", &digest, OCI_MANIFEST, &body).status,
        201
    );
    let hex = digest.strip_prefix("sha256:").unwrap();
    server.write_stored(
        &format!("repositories/app/_manifests/tags/half/index/sha256/{hex}/link"),
        digest.as_bytes(),
    );
    let list: Value = serde_json::from_slice(&server.get("/v2/app/tags/list").body).unwrap();
    assert_eq!(list["tags"], json!([]));
    assert_eq!(server.get("/v2/app/manifests/half").status, 404);
}
