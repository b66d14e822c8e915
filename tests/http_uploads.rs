//! Upload flows over real HTTP against a real server on 127.0.0.1: every way a client can
//! push a blob, and every way that can go wrong.

mod common;

use common::{content, sha256, TestServer};

const OCTET: (&str, &str) = ("content-type", "application/octet-stream");

fn start_session(server: &TestServer, repo: &str) -> String {
    let reply = server.request("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"");
    assert_eq!(reply.status, 202);
    assert_eq!(reply.header("range"), Some("0-0"));
    assert_eq!(reply.header("content-length"), Some("0"));
    assert!(reply.header("docker-upload-uuid").is_some());
    reply.location()
}

/// `url` with `key=value` added to its query.
fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

fn assert_blob(server: &TestServer, repo: &str, data: &[u8]) {
    let reply = server.get(&format!("/v2/{repo}/blobs/{}", sha256(data)));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, data);
    assert_eq!(
        reply.header("docker-content-digest"),
        Some(sha256(data).as_str())
    );
}

#[test]
fn version_check_carries_the_api_header() {
    let server = TestServer::start();
    let reply = server.get("/v2/");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, b"{}");
    assert_eq!(
        reply.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
}

#[test]
fn single_post_upload() {
    let server = TestServer::start();
    let data = content(10_000, 1);
    let path = format!("/v2/a/blobs/uploads/?digest={}", sha256(&data));
    let reply = server.request("POST", &path, &[OCTET], &data);
    assert_eq!(reply.status, 201);
    assert_eq!(reply.location(), format!("/v2/a/blobs/{}", sha256(&data)));
    assert_blob(&server, "a", &data);
    // Nothing left behind in _uploads.
    assert!(server.stored_files("repositories/a/_uploads").is_empty());
}

#[test]
fn post_then_put_with_body() {
    let server = TestServer::start();
    let data = content(70_000, 2);
    let location = start_session(&server, "a/b");
    let reply = server.request(
        "PUT",
        &with_query(&location, "digest", &sha256(&data)),
        &[OCTET],
        &data,
    );
    assert_eq!(
        reply.status,
        201,
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(
        reply.header("docker-content-digest"),
        Some(sha256(&data).as_str())
    );
    assert_blob(&server, "a/b", &data);
}

#[test]
fn chunked_upload_survives_an_out_of_order_chunk() {
    let server = TestServer::start();
    let data = content(3 * 1024 - 5, 3);
    let (first, rest) = data.split_at(1024);
    let (second, third) = rest.split_at(1024);
    let location = start_session(&server, "chunky");

    let reply = server.request(
        "PATCH",
        &location,
        &[OCTET, ("content-range", "0-1023")],
        first,
    );
    assert_eq!(reply.status, 202);
    assert_eq!(reply.header("range"), Some("0-1023"));
    let location = reply.location();

    // Out of order: claims to start at 2048.
    let reply = server.request(
        "PATCH",
        &location,
        &[OCTET, ("content-range", "2048-3066")],
        third,
    );
    assert_eq!(reply.status, 416);
    assert_eq!(reply.error_code().as_deref(), Some("BLOB_UPLOAD_INVALID"));
    assert_eq!(reply.header("range"), Some("0-1023"));

    // Status by the previous URL still works and says where to go on.
    let reply = server.request("GET", &location, &[], b"");
    assert_eq!(reply.status, 204);
    assert_eq!(reply.header("range"), Some("0-1023"));
    let location = reply.location();

    let reply = server.request(
        "PATCH",
        &location,
        &[OCTET, ("content-range", "1024-2047")],
        second,
    );
    assert_eq!(reply.status, 202);
    let location = reply.location();
    let last = format!("2048-{}", data.len() - 1);
    let put = with_query(&location, "digest", &sha256(&data));
    let reply = server.request("PUT", &put, &[OCTET, ("content-range", &last)], third);
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_blob(&server, "chunky", &data);
}

#[test]
fn out_of_order_final_put_is_416_and_keeps_the_upload() {
    let server = TestServer::start();
    let data = content(2000, 4);
    let location = start_session(&server, "a");
    let reply = server.request(
        "PATCH",
        &location,
        &[OCTET, ("content-range", "0-999")],
        &data[..1000],
    );
    let location = reply.location();
    let put = with_query(&location, "digest", &sha256(&data));
    let reply = server.request(
        "PUT",
        &put,
        &[OCTET, ("content-range", "1500-2499")],
        &data[1000..],
    );
    assert_eq!(reply.status, 416);
    let reply = server.request("GET", &location, &[], b"");
    assert_eq!(reply.status, 204);
    assert_eq!(reply.header("range"), Some("0-999"));
}

#[test]
fn chunk_length_must_match_content_range() {
    let server = TestServer::start();
    let location = start_session(&server, "a");
    let reply = server.request(
        "PATCH",
        &location,
        &[OCTET, ("content-range", "0-99")],
        &[7u8; 50],
    );
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code().as_deref(), Some("SIZE_INVALID"));
}

#[test]
fn streamed_patch_then_empty_put() {
    let server = TestServer::start();
    let data = content(300_000, 5);
    let location = start_session(&server, "stream");
    let reply = server.request("PATCH", &location, &[OCTET], &data);
    assert_eq!(reply.status, 202);
    assert_eq!(
        reply.header("range"),
        Some(format!("0-{}", data.len() - 1).as_str())
    );
    let put = with_query(&reply.location(), "digest", &sha256(&data));
    let reply = server.request("PUT", &put, &[], b"");
    assert_eq!(reply.status, 201);
    assert_blob(&server, "stream", &data);
}

#[test]
fn empty_blob() {
    let server = TestServer::start();
    let location = start_session(&server, "empty");
    let reply = server.request(
        "PUT",
        &with_query(&location, "digest", &sha256(b"")),
        &[],
        b"",
    );
    assert_eq!(reply.status, 201);
    let reply = server.get(&format!("/v2/empty/blobs/{}", sha256(b"")));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-length"), Some("0"));
}

#[test]
fn wrong_or_missing_digest_publishes_nothing() {
    let server = TestServer::start();
    let data = content(5000, 6);
    let location = start_session(&server, "a");
    let reply = server.request("PUT", &location, &[], &data);
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code().as_deref(), Some("DIGEST_INVALID"));

    let location = start_session(&server, "a");
    let wrong = sha256(b"something else");
    let reply = server.request("PUT", &with_query(&location, "digest", &wrong), &[], &data);
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code().as_deref(), Some("DIGEST_INVALID"));
    assert_eq!(server.get(&format!("/v2/a/blobs/{wrong}")).status, 404);
    assert_eq!(
        server.get(&format!("/v2/a/blobs/{}", sha256(&data))).status,
        404
    );
    assert!(server.stored_files("blobs").is_empty());

    let reply = server.request("POST", "/v2/a/blobs/uploads/?digest=sha256:xyz", &[], &data);
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code().as_deref(), Some("DIGEST_INVALID"));
}

#[test]
fn sha512_digest_is_accepted_and_served_by_both_digests() {
    let server = TestServer::start();
    let data = content(777, 7);
    let sha512 = {
        let mut h = layerstore::Hasher::new(layerstore::digest::HashAlgorithm::Sha512);
        h.update(&data);
        h.digest().to_string()
    };
    let reply = server.request(
        "POST",
        &format!("/v2/a/blobs/uploads/?digest={sha512}"),
        &[],
        &data,
    );
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.header("docker-content-digest"), Some(sha512.as_str()));
    let reply = server.get(&format!("/v2/a/blobs/{sha512}"));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, data);
    assert_eq!(reply.header("docker-content-digest"), Some(sha512.as_str()));
    assert_blob(&server, "a", &data);
}

#[test]
fn cross_repository_mount() {
    let server = TestServer::start();
    let data = content(4096, 8);
    let digest = sha256(&data);
    let reply = server.request(
        "POST",
        &format!("/v2/src/blobs/uploads/?digest={digest}"),
        &[],
        &data,
    );
    assert_eq!(reply.status, 201);
    let reply = server.request(
        "POST",
        &format!("/v2/dst/blobs/uploads/?mount={digest}&from=src"),
        &[],
        b"",
    );
    assert_eq!(reply.status, 201);
    assert_eq!(reply.location(), format!("/v2/dst/blobs/{digest}"));
    assert_blob(&server, "dst", &data);
    // Missing source: a normal session instead.
    let missing = sha256(b"nope");
    let reply = server.request(
        "POST",
        &format!("/v2/dst/blobs/uploads/?mount={missing}&from=src"),
        &[],
        b"",
    );
    assert_eq!(reply.status, 202);
    // No `from`: mounted if the registry has the blob anywhere.
    let reply = server.request(
        "POST",
        &format!("/v2/other/blobs/uploads/?mount={digest}"),
        &[],
        b"",
    );
    assert_eq!(reply.status, 201);
}

#[test]
fn cancel_then_unknown() {
    let server = TestServer::start();
    let location = start_session(&server, "a");
    let reply = server.request("DELETE", &location, &[], b"");
    assert_eq!(reply.status, 204);
    let reply = server.request("GET", &location, &[], b"");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error_code().as_deref(), Some("BLOB_UPLOAD_UNKNOWN"));
    let reply = server.request("DELETE", &location, &[], b"");
    assert_eq!(reply.status, 404);
}

#[test]
fn forged_and_foreign_tokens_are_refused() {
    let server = TestServer::start();
    let location = start_session(&server, "a");
    let (path, _) = location.split_once('?').unwrap();
    let reply = server.request("PATCH", &format!("{path}?_state=AAAA"), &[], b"x");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error_code().as_deref(), Some("BLOB_UPLOAD_INVALID"));
    // A valid token of another upload.
    let other = start_session(&server, "a");
    let (_, other_query) = other.split_once('?').unwrap();
    let reply = server.request("PATCH", &format!("{path}?{other_query}"), &[], b"x");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error_code().as_deref(), Some("BLOB_UPLOAD_INVALID"));
    // A token signed with another secret.
    let dir = tempfile::tempdir().unwrap();
    let stranger = TestServer::start_on(dir.path(), "another-secret");
    let foreign = start_session(&stranger, "a");
    let (_, foreign_query) = foreign.split_once('?').unwrap();
    let reply = server.request("PATCH", &format!("{path}?{foreign_query}"), &[], b"x");
    assert_eq!(reply.status, 404);
}

#[test]
fn a_stale_token_is_416_not_the_end_of_the_upload() {
    let server = TestServer::start();
    let location = start_session(&server, "a");
    let reply = server.request("PATCH", &location, &[], b"0123456789");
    assert_eq!(reply.status, 202);
    // Reuse the first Location (offset 0) although 10 bytes are stored.
    let reply = server.request("PATCH", &location, &[], b"more");
    assert_eq!(reply.status, 416);
    assert_eq!(reply.header("range"), Some("0-9"));
    let reply = server.request("PATCH", &reply.location(), &[], b"more");
    assert_eq!(reply.status, 202);
    assert_eq!(reply.header("range"), Some("0-13"));
}

#[test]
fn two_instances_sharing_a_root_and_secret_continue_each_others_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let data = content(200_000, 9);
    let first = TestServer::start_on(dir.path(), "shared");
    let second = TestServer::start_on(dir.path(), "shared");
    let location = start_session(&first, "moving");
    let reply = first.request("PATCH", &location, &[], &data[..120_000]);
    assert_eq!(reply.status, 202);
    drop(first); // the first instance goes away
    let reply = second.request("PATCH", &reply.location(), &[], &data[120_000..]);
    assert_eq!(
        reply.status,
        202,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let put = with_query(&reply.location(), "digest", &sha256(&data));
    assert_eq!(second.request("PUT", &put, &[], b"").status, 201);
    assert_blob(&second, "moving", &data);
}

#[test]
fn a_tarsum_digest_commits_an_archive() {
    let server = TestServer::start();
    let tar = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/testdata/tarsum/511136ea3c5a64f264b78b5433614aec563103b4d4702f3ba7d4d2698e22c158/layer.tar"
    ))
    .unwrap();
    let mut stream = layerstore::tarsum::TarSumStream::new(layerstore::tarsum::TarSum::new(
        layerstore::digest::TarsumVersion::V1,
        layerstore::digest::HashAlgorithm::Sha256,
    ));
    stream.update(&tar).unwrap();
    let tarsum = stream.finish().unwrap().to_string();
    let location = start_session(&server, "legacy");
    let reply = server.request(
        "PUT",
        &with_query(&location, "digest", &tarsum),
        &[OCTET],
        &tar,
    );
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(server.get(&format!("/v2/legacy/blobs/{tarsum}")).body, tar);
    // A wrong TarSum is a digest mismatch.
    let wrong = tarsum.replace(&tarsum[tarsum.len() - 4..], "0000");
    let location = start_session(&server, "legacy");
    let reply = server.request(
        "PUT",
        &with_query(&location, "digest", &wrong),
        &[OCTET],
        &tar,
    );
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code().as_deref(), Some("DIGEST_INVALID"));
}

/// A client whose connection broke in the middle of a PATCH retries at once: the session is
/// still held by the broken request while it saves what arrived, and the retry waits for it
/// (instead of a `BLOB_UPLOAD_INVALID` that would end the push), then continues from the
/// offset the status reports.
#[test]
fn a_retry_right_after_a_broken_patch_continues_the_upload() {
    use std::io::Write;

    let server = TestServer::start();
    let data = content(4 << 20, 6);
    let location = start_session(&server, "retry/app");
    let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n\r\n",
        data.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&data[..1 << 20]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    // Reset, not close: the server sees the connection fail mid-body.
    socket_reset(stream);

    // The status may be read before the broken request has saved its bytes (on S3 that takes
    // a part upload), and then the PATCH is a 416 naming the new offset: ask again, as a
    // client does.
    let mut patch = None;
    for _ in 0..3 {
        let status = server.request("GET", &location, &[], b"");
        assert_eq!(status.status, 204);
        let held: usize = status
            .header("range")
            .and_then(|r| r.rsplit('-').next()?.parse::<usize>().ok())
            .map_or(0, |end| end + 1);
        let range = format!("{held}-{}", data.len() - 1);
        let reply = server.request(
            "PATCH",
            &status.location(),
            &[OCTET, ("content-range", &range)],
            &data[held..],
        );
        if reply.status != 416 {
            patch = Some(reply);
            break;
        }
    }
    let patch = patch.expect("the upload continued within three tries");
    assert_eq!(
        patch.status,
        202,
        "{}",
        String::from_utf8_lossy(&patch.body)
    );
    let put = with_query(&patch.location(), "digest", &sha256(&data));
    assert_eq!(server.request("PUT", &put, &[], b"").status, 201);
    assert_blob(&server, "retry/app", &data);
}

/// Closes `stream` with a TCP reset (SO_LINGER of zero).
fn socket_reset(stream: std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::addr_of!(linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(stream);
}
