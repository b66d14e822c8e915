//! Blob reads over real HTTP: whole, HEAD, single and multiple ranges, conditional requests,
//! delete, and hostile paths that must touch nothing on disk.

mod common;

use common::{content, sha256, TestServer};

fn push(server: &TestServer, repo: &str, data: &[u8]) -> String {
    let digest = sha256(data);
    let reply = server.request(
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
        &[],
        data,
    );
    assert_eq!(reply.status, 201);
    digest
}

#[test]
fn head_has_headers_and_no_body() {
    let server = TestServer::start();
    let data = content(2048, 1);
    let digest = push(&server, "r", &data);
    let reply = server.request("HEAD", &format!("/v2/r/blobs/{digest}"), &[], b"");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-length"), Some("2048"));
    assert_eq!(reply.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(reply.header("etag"), Some(format!("\"{digest}\"").as_str()));
    assert_eq!(reply.header("accept-ranges"), Some("bytes"));
    assert!(reply.body.is_empty());
}

#[test]
fn conformance_ranges_on_a_2048_byte_blob() {
    let server = TestServer::start();
    let data = content(2048, 2);
    let digest = push(&server, "r", &data);
    let path = format!("/v2/r/blobs/{digest}");
    for (range, start, end) in [
        ("bytes=500-1499", 500, 1499),
        ("bytes=500-", 500, 2047),
        ("bytes=-500", 1548, 2047),
        ("bytes=2000-5000", 2000, 2047),
    ] {
        let reply = server.request("GET", &path, &[("range", range)], b"");
        assert_eq!(reply.status, 206, "{range}");
        assert_eq!(
            reply.header("content-range"),
            Some(format!("bytes {start}-{end}/2048").as_str())
        );
        assert_eq!(reply.body, &data[start..=end], "{range}");
        assert_eq!(
            reply.header("content-length"),
            Some((end - start + 1).to_string().as_str())
        );
    }
    for range in ["bytes=500-0", "bytes=5000-10000", "pages=1-2"] {
        let reply = server.request("GET", &path, &[("range", range)], b"");
        assert_eq!(reply.status, 416, "{range}");
        assert_eq!(reply.header("content-range"), Some("bytes */2048"));
        assert_eq!(
            reply.header("content-length").unwrap(),
            reply.body.len().to_string()
        );
    }
}

/// Large bodies are sent as mapped windows of 2 MiB: whole blobs and ranges that start and end
/// inside windows, across several of them, come back byte for byte; small ranges are reads.
#[test]
fn large_bodies_and_ranges_across_map_windows() {
    const MIB: usize = 1 << 20;
    let server = TestServer::start();
    let data = content(5 * MIB + 4321, 3);
    let digest = push(&server, "r", &data);
    let path = format!("/v2/r/blobs/{digest}");
    let reply = server.request("GET", &path, &[], b"");
    assert_eq!(reply.status, 200);
    assert!(reply.body == data, "whole blob differs");
    for (start, end) in [
        (MIB + 7, 4 * MIB + 3),        // inside windows, across two boundaries
        (2 * MIB, 4 * MIB - 1),        // exactly two windows
        (4 * MIB + 1, data.len() - 1), // the short last window
        (3 * MIB - 10, 3 * MIB + 10),  // a small read across a boundary
        (0, 64 * 1024),                // one byte past the small-read limit
    ] {
        let range = format!("bytes={start}-{end}");
        let reply = server.request("GET", &path, &[("range", &range)], b"");
        assert_eq!(reply.status, 206, "{range}");
        assert!(reply.body == data[start..=end], "{range}: bytes differ");
    }
}

#[test]
fn multiple_ranges_are_multipart() {
    let server = TestServer::start();
    let data = content(10_000, 3);
    let digest = push(&server, "r", &data);
    let reply = server.request(
        "GET",
        &format!("/v2/r/blobs/{digest}"),
        &[("range", "bytes=0-9,100-119")],
        b"",
    );
    assert_eq!(reply.status, 206);
    let content_type = reply.header("content-type").unwrap();
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap();
    assert_eq!(
        reply.header("content-length").unwrap(),
        reply.body.len().to_string()
    );
    let text = reply.body.clone();
    let parts: Vec<&[u8]> = split(&text, format!("--{boundary}").as_bytes());
    // preamble, two parts, epilogue
    assert_eq!(parts.len(), 4);
    for (part, (start, end)) in parts[1..3].iter().zip([(0usize, 9usize), (100, 119)]) {
        let header_end = find(part, b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&part[..header_end]);
        assert!(
            head.contains(&format!("Content-Range: bytes {start}-{end}/10000")),
            "{head}"
        );
        let payload = &part[header_end + 4..part.len() - 2];
        assert_eq!(payload, &data[start..=end]);
    }
}

#[test]
fn conditional_requests() {
    let server = TestServer::start();
    let data = content(100, 4);
    let digest = push(&server, "r", &data);
    let path = format!("/v2/r/blobs/{digest}");
    let quoted = format!("\"{digest}\"");
    let reply = server.request("GET", &path, &[("if-none-match", &quoted)], b"");
    assert_eq!(reply.status, 304);
    assert!(reply.body.is_empty());
    // If-Range that does not match: the Range is ignored.
    let reply = server.request(
        "GET",
        &path,
        &[("range", "bytes=0-9"), ("if-range", "\"other\"")],
        b"",
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, data);
}

#[test]
fn delete_unlinks_from_one_repository_only() {
    let server = TestServer::start();
    let data = content(100, 5);
    let digest = push(&server, "one", &data);
    push(&server, "two", &data);
    let reply = server.request("DELETE", &format!("/v2/one/blobs/{digest}"), &[], b"");
    assert_eq!(reply.status, 202);
    let reply = server.get(&format!("/v2/one/blobs/{digest}"));
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error_code().as_deref(), Some("BLOB_UNKNOWN"));
    assert_eq!(server.get(&format!("/v2/two/blobs/{digest}")).status, 200);
    assert_eq!(
        server
            .request("DELETE", &format!("/v2/one/blobs/{digest}"), &[], b"")
            .status,
        404
    );
}

#[test]
fn unknown_blob_and_wrong_methods() {
    let server = TestServer::start();
    let reply = server.get(&format!("/v2/r/blobs/{}", sha256(b"nothing")));
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error_code().as_deref(), Some("BLOB_UNKNOWN"));
    let reply = server.request("PUT", &format!("/v2/r/blobs/{}", sha256(b"x")), &[], b"");
    assert_eq!(reply.status, 405);
    assert!(reply.header("allow").is_some());
}

#[test]
fn hostile_paths_get_spec_errors_and_create_nothing() {
    let server = TestServer::start();
    let before = (common::files_below(&server.root), server.stored_files(""));
    let digest = sha256(b"x");
    let cases: &[(&str, &str, u16, Option<&str>)] = &[
        (
            "GET",
            "/v2/../../etc/blobs/uploads/",
            400,
            Some("NAME_INVALID"),
        ),
        (
            "POST",
            "/v2/a/%2e%2e/b/blobs/uploads/",
            400,
            Some("NAME_INVALID"),
        ),
        ("POST", "/v2/A/blobs/uploads/", 400, Some("NAME_INVALID")),
        ("GET", "/v2/a/blobs/sha256:zz", 400, Some("DIGEST_INVALID")),
        (
            "GET",
            "/v2/a/blobs/uploads/..%2f..%2fx",
            404,
            Some("BLOB_UPLOAD_UNKNOWN"),
        ),
        (
            "PATCH",
            "/v2/a/blobs/uploads/00000000-0000-4000-8000-000000000000",
            404,
            Some("BLOB_UPLOAD_UNKNOWN"),
        ),
        ("GET", "/v3/", 404, None),
    ];
    for (method, path, status, code) in cases {
        let reply = server.request(method, path, &[], b"data");
        assert_eq!(reply.status, *status, "{method} {path}");
        if code.is_some() {
            assert_eq!(reply.error_code().as_deref(), *code, "{method} {path}");
        }
    }
    let long = format!("/v2/{}/blobs/{digest}", "a".repeat(300));
    assert_eq!(
        server.get(&long).error_code().as_deref(),
        Some("NAME_INVALID")
    );
    assert_eq!(
        (common::files_below(&server.root), server.stored_files("")),
        before,
        "nothing may be created"
    );
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn split<'a>(mut data: &'a [u8], separator: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    while let Some(at) = find(data, separator) {
        out.push(&data[..at]);
        data = &data[at + separator.len()..];
    }
    out.push(data);
    out
}
