//! Every error path of the HTTP API answers with one of the OCI distribution spec's codes, and
//! the status the table in docs/http-api.md promises.
//!
//! Each case provokes one error on a real server (in-process, on 127.0.0.1) and checks the
//! status, that the body is the spec's JSON shape, and that every code in it is in
//! `SPEC_CODES`. Server-side failures (500, 503) are provoked by tests/faults.rs and
//! tests/enospc.rs, which check the same list through `assert_spec_body` there.

mod common;

use common::{request, sha256, Reply, TestServer};
use layerstore::http::error_code::SPEC_CODES;

/// The status, and that every error in the body carries a spec code with a message.
fn assert_error(case: &str, reply: &Reply, status: u16, code: &str) {
    assert_eq!(
        reply.status.as_u16(),
        status,
        "{case}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    let json: serde_json::Value = serde_json::from_slice(&reply.body)
        .unwrap_or_else(|_| panic!("{case}: not JSON: {}", String::from_utf8_lossy(&reply.body)));
    let errors = json["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{case}: no errors array"));
    assert!(!errors.is_empty(), "{case}");
    for error in errors {
        let found = error["code"].as_str().unwrap_or_default();
        assert!(
            SPEC_CODES.contains(&found),
            "{case}: {found} is not a spec code"
        );
        assert!(error["message"].is_string(), "{case}: no message");
    }
    assert_eq!(errors[0]["code"], code, "{case}");
}

fn upload(server: &TestServer, repo: &str) -> String {
    let reply = request(
        server.addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        b"",
    );
    assert_eq!(reply.status, 202);
    reply.location()
}

fn with_query(location: &str, query: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}{query}")
}

#[test]
fn every_error_path_uses_a_spec_code() {
    let server = TestServer::start();
    let addr = server.addr;
    let missing = sha256(b"never pushed");
    let get = |path: &str| request(addr, "GET", path, &[], b"");

    // Names, digests, tags and routes.
    assert_error("bad name", &get("/v2/UPPER/tags/list"), 400, "NAME_INVALID");
    assert_error(
        "bad digest",
        &get("/v2/app/blobs/sha256:xyz"),
        400,
        "DIGEST_INVALID",
    );
    assert_error(
        "bad tag",
        &get("/v2/app/manifests/-bad"),
        400,
        "MANIFEST_INVALID",
    );
    assert_error("no route", &get("/v2/app/nothing/here"), 404, "UNSUPPORTED");
    assert_error("outside /v2", &get("/v3/"), 404, "UNSUPPORTED");
    let wrong_method = request(addr, "PATCH", "/v2/app/tags/list", &[], b"");
    assert_error("method", &wrong_method, 405, "UNSUPPORTED");

    // Unknown things.
    assert_error(
        "blob",
        &get(&format!("/v2/app/blobs/{missing}")),
        404,
        "BLOB_UNKNOWN",
    );
    assert_error(
        "manifest",
        &get("/v2/app/manifests/latest"),
        404,
        "MANIFEST_UNKNOWN",
    );
    assert_error(
        "repository",
        &get("/v2/nobody/tags/list"),
        404,
        "NAME_UNKNOWN",
    );
    let no_upload = get("/v2/app/blobs/uploads/3f1e4c9a-1b2c-4d5e-8f90-123456789abc");
    assert_error("upload", &no_upload, 404, "BLOB_UPLOAD_UNKNOWN");
    assert_error(
        "upload id",
        &get("/v2/app/blobs/uploads/not-a-uuid"),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    );

    // Listings.
    assert_error("n", &get("/v2/_catalog?n=many"), 400, "UNSUPPORTED");
    assert_error(
        "n on tags",
        &get("/v2/app/tags/list?n=-1"),
        400,
        "UNSUPPORTED",
    );

    // Uploads.
    let location = upload(&server, "app");
    let wrong = request(
        addr,
        "PUT",
        &with_query(&location, &format!("digest={missing}")),
        &[],
        b"other bytes",
    );
    assert_error("digest mismatch", &wrong, 400, "DIGEST_INVALID");
    let location = upload(&server, "app");
    let no_digest = request(addr, "PUT", &location, &[], b"");
    assert_error("no digest", &no_digest, 400, "DIGEST_INVALID");
    let location = upload(&server, "app");
    let out_of_order = request(
        addr,
        "PATCH",
        &location,
        &[
            ("content-range", "5-9"),
            ("content-type", "application/octet-stream"),
        ],
        b"12345",
    );
    assert_error(
        "chunk out of order",
        &out_of_order,
        416,
        "BLOB_UPLOAD_INVALID",
    );
    assert!(out_of_order.header("range").is_some() && out_of_order.header("location").is_some());
    let bad_length = request(
        addr,
        "PATCH",
        &location,
        &[
            ("content-range", "0-9"),
            ("content-type", "application/octet-stream"),
        ],
        b"12345",
    );
    assert_error("length", &bad_length, 400, "SIZE_INVALID");
    let forged = location.replace("_state=", "_state=AAAA");
    let forged_reply = request(addr, "PATCH", &forged, &[], b"abc");
    assert_error("forged token", &forged_reply, 404, "BLOB_UPLOAD_INVALID");
    let bad_put = request(
        addr,
        "PUT",
        &with_query(&location, "digest=sha256:zz"),
        &[],
        b"",
    );
    assert_error("bad digest on PUT", &bad_put, 400, "DIGEST_INVALID");

    // A ranged GET outside the blob.
    let data = b"0123456789";
    let digest = sha256(data);
    let pushed = request(
        addr,
        "POST",
        &format!("/v2/app/blobs/uploads/?digest={digest}"),
        &[],
        data,
    );
    assert_eq!(pushed.status, 201);
    let outside = request(
        addr,
        "GET",
        &format!("/v2/app/blobs/{digest}"),
        &[("range", "bytes=50-60")],
        b"",
    );
    assert_error("range", &outside, 416, "UNSUPPORTED");
    assert_eq!(outside.header("content-range"), Some("bytes */10"));

    // Manifests.
    let oci = [("content-type", "application/vnd.oci.image.manifest.v1+json")];
    let put = |reference: &str, body: &[u8]| {
        request(
            addr,
            "PUT",
            &format!("/v2/app/manifests/{reference}"),
            &oci,
            body,
        )
    };
    assert_error(
        "unparsable",
        &put("v1", b"{not json"),
        400,
        "MANIFEST_INVALID",
    );
    let refers_to_missing = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": missing, "size": 12},
        "layers": [],
    }))
    .unwrap();
    assert_error(
        "blob unknown",
        &put("v1", &refers_to_missing),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    );
    let by_wrong_digest = put(&missing, &refers_to_missing);
    assert_error(
        "digest of manifest",
        &by_wrong_digest,
        400,
        "DIGEST_INVALID",
    );
    let huge = vec![b' '; 5 << 20];
    assert_error("too large", &put("v1", &huge), 413, "MANIFEST_INVALID");
    let bad_extra_tag = request(
        addr,
        "PUT",
        &format!("/v2/app/manifests/{}?tag=-bad", sha256(&refers_to_missing)),
        &oci,
        &refers_to_missing,
    );
    assert_error("?tag=", &bad_extra_tag, 400, "MANIFEST_INVALID");
    let delete_missing = request(
        addr,
        "DELETE",
        &format!("/v2/app/manifests/{missing}"),
        &[],
        b"",
    );
    assert_error("delete unknown", &delete_missing, 404, "MANIFEST_UNKNOWN");
    let delete_blob = request(
        addr,
        "DELETE",
        &format!("/v2/app/blobs/{missing}"),
        &[],
        b"",
    );
    assert_error("delete unknown blob", &delete_blob, 404, "BLOB_UNKNOWN");
}

/// A push that claims a TarSum for content that is no tar archive is told exactly that.
#[test]
fn a_tarsum_claim_on_a_non_archive_gets_its_own_message() {
    let server = TestServer::start();
    let claimed = format!("tarsum.v1+sha256:{}", "ab".repeat(32));
    let location = upload(&server, "app");
    let text = b"plain text, not a tar. ".repeat(40);
    let reply = request(
        server.addr,
        "PUT",
        &with_query(&location, &format!("digest={claimed}")),
        &[],
        &text,
    );
    assert_error("tarsum of text", &reply, 400, "DIGEST_INVALID");
    let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    let message = json["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("not a valid tar archive"), "{message}");
    assert!(
        message.contains("invalid tar header at offset 0"),
        "{message}"
    );
    assert_eq!(json["errors"][0]["detail"]["digest"], claimed);
}
