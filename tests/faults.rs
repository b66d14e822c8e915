//! Fault injection: the disk fails (ENOSPC, EIO, failed rename or fsync, short writes) under a
//! real server. Each fault must give the client the right error with a JSON body, leave the
//! store consistent, keep everything else served, and lose nothing once the disk heals.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::faults::{Fault, FaultyDriver, Op};
use common::{content, sha256, Reply, TestServer};
use layerstore::http::app::AppState;
use layerstore::http::server::Limits;
use layerstore::http::token::TokenSigner;
use layerstore::names::RepositoryName;
use layerstore::storage::{FilesystemDriver, InMemoryDriver};
use layerstore::store::Store;

struct Faulty {
    server: TestServer,
    driver: FaultyDriver,
    _dir: tempfile::TempDir,
}

fn start() -> Faulty {
    let dir = tempfile::tempdir().unwrap();
    let driver = FaultyDriver::new(Arc::new(FilesystemDriver::new(dir.path())));
    let mut state = AppState::new(
        Store::new(Arc::new(driver.clone())),
        TokenSigner::new("faults"),
    );
    state.body_idle_timeout = Duration::from_secs(10);
    let server = TestServer::start_with(dir.path(), state, Limits::default());
    Faulty {
        server,
        driver,
        _dir: dir,
    }
}

fn start_session(server: &TestServer, repo: &str) -> String {
    let reply = server.request("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"");
    assert_eq!(reply.status, 202);
    reply.location()
}

fn put_url(location: &str, data: &[u8]) -> String {
    format!("{location}&digest={}", sha256(data))
}

fn assert_json_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(
        reply.status,
        status,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.error_code().as_deref(), Some(code));
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
}

/// Offset the server reports for an upload.
fn offset(server: &TestServer, location: &str) -> (usize, String) {
    let reply = server.request("GET", location, &[], b"");
    assert_eq!(reply.status, 204);
    let range = reply.header("range").unwrap();
    let end: usize = range.strip_prefix("0-").unwrap().parse().unwrap();
    let stored = if end == 0 { 0 } else { end + 1 };
    (stored, reply.location())
}

/// `reply` is the 201 of a commit, `repo` serves exactly `data` under its digest, and the
/// store is consistent.
fn assert_committed(server: &TestServer, reply: &Reply, repo: &str, data: &[u8]) {
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let path = format!("/v2/{repo}/blobs/{}", sha256(data));
    assert_eq!(server.get(&path).body, data);
    assert_fsck_clean(server);
}

fn assert_fsck_clean(server: &TestServer) {
    let report = Store::filesystem(&server.root).fsck(&|_| {}).unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn out_of_space_during_a_chunk_is_503_and_the_upload_goes_on_after() {
    let f = start();
    let data = content(400_000, 1);
    let location = start_session(&f.server, "full");
    let id = location
        .split('/')
        .nth(5)
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    f.driver.arm(Op::Write, &id, Fault::NoSpace);
    let reply = f.server.request("PATCH", &location, &[], &data[..200_000]);
    assert_json_error(&reply, 503, "TOOMANYREQUESTS");

    // Everything else is still served meanwhile.
    let other = content(1000, 2);
    let reply = f.server.request(
        "POST",
        &format!("/v2/other/blobs/uploads/?digest={}", sha256(&other)),
        &[],
        &other,
    );
    assert_eq!(reply.status, 201);

    f.driver.heal();
    let (stored, location) = offset(&f.server, &location);
    let reply = f.server.request("PATCH", &location, &[], &data[stored..]);
    assert_eq!(reply.status, 202);
    let reply = f
        .server
        .request("PUT", &put_url(&reply.location(), &data), &[], b"");
    assert_committed(&f.server, &reply, "full", &data);
}

#[test]
fn read_error_is_500_for_that_blob_only() {
    let f = start();
    let (bad, good) = (content(5000, 3), content(5000, 4));
    for data in [&bad, &good] {
        let reply = f.server.request(
            "POST",
            &format!("/v2/r/blobs/uploads/?digest={}", sha256(data)),
            &[],
            data,
        );
        assert_eq!(reply.status, 201);
    }
    let bad_hex = sha256(&bad).strip_prefix("sha256:").unwrap().to_owned();
    f.driver
        .arm(Op::Read, &format!("{bad_hex}/data"), Fault::Io);
    let reply = f.server.get(&format!("/v2/r/blobs/{}", sha256(&bad)));
    assert_json_error(&reply, 500, "UNSUPPORTED");
    assert!(
        !String::from_utf8_lossy(&reply.body).contains("/docker/"),
        "no internals in errors"
    );
    assert_eq!(
        f.server.get(&format!("/v2/r/blobs/{}", sha256(&good))).body,
        good
    );
    f.driver.heal();
    assert_eq!(
        f.server.get(&format!("/v2/r/blobs/{}", sha256(&bad))).body,
        bad
    );
}

#[test]
fn failed_rename_at_commit_publishes_nothing_and_a_retry_succeeds() {
    let f = start();
    let data = content(100_000, 5);
    let location = start_session(&f.server, "r");
    assert_eq!(f.server.request("PATCH", &location, &[], &data).status, 202);
    let (_, location) = offset(&f.server, &location);
    f.driver.arm(Op::Move, "/blobs/", Fault::Io);
    let reply = f
        .server
        .request("PUT", &put_url(&location, &data), &[], b"");
    assert_json_error(&reply, 500, "UNSUPPORTED");
    assert_eq!(
        f.server
            .get(&format!("/v2/r/blobs/{}", sha256(&data)))
            .status,
        404
    );
    f.driver.heal();
    let reply = f
        .server
        .request("PUT", &put_url(&location, &data), &[], b"");
    assert_committed(&f.server, &reply, "r", &data);
}

#[test]
fn failed_link_write_at_commit_is_retried_to_success() {
    let f = start();
    let data = content(50_000, 6);
    let location = start_session(&f.server, "r");
    assert_eq!(f.server.request("PATCH", &location, &[], &data).status, 202);
    let (_, location) = offset(&f.server, &location);
    f.driver.arm(Op::PutContent, "/_layers/", Fault::Io);
    let reply = f
        .server
        .request("PUT", &put_url(&location, &data), &[], b"");
    assert_json_error(&reply, 500, "UNSUPPORTED");
    assert_eq!(
        f.server
            .get(&format!("/v2/r/blobs/{}", sha256(&data)))
            .status,
        404
    );
    f.driver.heal();
    let reply = f
        .server
        .request("PUT", &put_url(&location, &data), &[], b"");
    assert_committed(&f.server, &reply, "r", &data);
}

/// A session that never saved a hash state commits without one (it spares fsyncs). If that
/// commit dies after publishing the bytes, the session reads as empty, and a client that
/// starts again from offset 0 ends on the published blob.
#[test]
fn failed_link_write_in_a_one_request_upload_restarts_from_zero() {
    let f = start();
    let data = content(70_000, 8);
    let location = start_session(&f.server, "r");
    f.driver.arm(Op::PutContent, "/_layers/", Fault::Io);
    let reply = f
        .server
        .request("PUT", &put_url(&location, &data), &[], &data);
    assert_json_error(&reply, 500, "UNSUPPORTED");
    f.driver.heal();
    let (stored, location) = offset(&f.server, &location);
    assert_eq!(stored, 0, "the moved bytes are not counted twice");
    let reply = f
        .server
        .request("PUT", &put_url(&location, &data), &[], &data);
    assert_committed(&f.server, &reply, "r", &data);
}

#[test]
fn failed_fsync_is_an_error_and_the_upload_survives() {
    let f = start();
    let data = content(300_000, 7);
    let location = start_session(&f.server, "r");
    f.driver.arm(Op::Sync, "_uploads", Fault::Io);
    let reply = f.server.request("PATCH", &location, &[], &data[..100_000]);
    assert_json_error(&reply, 500, "UNSUPPORTED");
    f.driver.heal();
    let (stored, location) = offset(&f.server, &location);
    let reply = f.server.request("PATCH", &location, &[], &data[stored..]);
    assert_eq!(reply.status, 202);
    let reply = f
        .server
        .request("PUT", &put_url(&reply.location(), &data), &[], b"");
    assert_eq!(reply.status, 201);
    assert_eq!(
        f.server.get(&format!("/v2/r/blobs/{}", sha256(&data))).body,
        data
    );
}

#[test]
fn short_writes_lose_nothing() {
    let f = start();
    f.driver.arm(Op::Write, "_uploads", Fault::ShortWrite(777));
    let data = content(250_000, 8);
    let location = start_session(&f.server, "r");
    let reply = f.server.request("PATCH", &location, &[], &data);
    assert_eq!(reply.status, 202);
    let reply = f
        .server
        .request("PUT", &put_url(&reply.location(), &data), &[], b"");
    assert_eq!(reply.status, 201);
    f.driver.heal();
    assert_eq!(
        f.server.get(&format!("/v2/r/blobs/{}", sha256(&data))).body,
        data
    );
}

/// An object store's listing that misses an upload's `data` for a moment (Garage's
/// `ListMultipartUploads` can): a resume waits for it to show the bytes the saved state vouches
/// for, instead of starting a second upload beside them. One that never shows them is given up
/// on after the wait (3 s): the upload goes on from what is there, and the client resends.
#[test]
fn a_resume_waits_for_a_lagging_listing_to_show_what_a_state_vouches_for() {
    let driver = FaultyDriver::new(Arc::new(InMemoryDriver::new()));
    let store = Store::new(Arc::new(driver.clone()));
    let repo = RepositoryName::parse("lag/app").unwrap();
    let mut upload = store.create_upload(&repo).unwrap();
    upload.append(b"vouched for").unwrap();
    upload.checkpoint().unwrap();
    let id = upload.id().clone();
    drop(upload);

    driver.arm(Op::Stat, "/data", Fault::Missing);
    let healer = {
        let driver = driver.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            driver.heal();
        })
    };
    let started = Instant::now();
    let upload = store.resume_upload(&repo, &id).unwrap();
    assert_eq!(upload.offset(), 11, "went on from a listing that lagged");
    assert!(started.elapsed() >= Duration::from_millis(400));
    healer.join().unwrap();
    drop(upload);

    driver.arm(Op::Stat, "/data", Fault::Missing);
    let started = Instant::now();
    let upload = store.resume_upload(&repo, &id).unwrap();
    assert_eq!(upload.offset(), 0);
    assert!(started.elapsed() >= Duration::from_secs(3));
}
