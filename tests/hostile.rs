//! Hostile clients: slowloris headers, idle connections, stalled bodies, oversized headers and
//! bogus lengths. None may stop normal clients from being served, and none may corrupt data.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{content, sha256, TestServer};
use layerstore::http::app::AppState;
use layerstore::http::server::Limits;
use layerstore::http::token::TokenSigner;
use layerstore::store::Store;

fn strict_server(root: &Path) -> TestServer {
    let mut state = AppState::new(Store::filesystem(root), TokenSigner::new("hostile"));
    state.body_idle_timeout = Duration::from_millis(800);
    let limits = Limits {
        header_read_timeout: Duration::from_millis(800),
        max_connections: 64,
        ..Limits::default()
    };
    TestServer::start_with(root, state, limits)
}

/// True when the server closes `stream` within `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // an error response; keep reading until close
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return start.elapsed() < within,
        }
    }
}

#[test]
fn slowloris_and_idle_connections_are_dropped_and_others_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = strict_server(dir.path());
    // More idle and trickling connections than the server's connection cap.
    let mut slow: Vec<TcpStream> = (0..100)
        .map(|i| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            if i % 2 == 0 {
                s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    .unwrap();
            }
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // Normal clients are still served while those connections sit there...
    let start = Instant::now();
    for _ in 0..5 {
        assert_eq!(server.get("/v2/").status, 200);
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "served while under a slow flood"
    );
    // ...and every slow connection is closed by the header timeout.
    for (i, stream) in slow.iter_mut().enumerate() {
        assert!(
            closed_within(stream, Duration::from_secs(5)),
            "connection {i} still open"
        );
    }
}

/// A PATCH streams its body to the writer; a PUT of a small body gathers it for the commit
/// (`handlers::uploads::receive`). Either way, a body that stalls is refused and what arrived
/// is kept.
#[test]
fn a_stalled_body_fails_the_request_and_keeps_what_arrived() {
    let dir = tempfile::tempdir().unwrap();
    let server = strict_server(dir.path());
    for method in ["PATCH", "PUT"] {
        let reply = server.request("POST", "/v2/r/blobs/uploads/", &[], b"");
        let location = reply.location();
        let target = match method {
            "PUT" => format!("{location}&digest=sha256:{}", "0".repeat(64)),
            _ => location.clone(),
        };
        let mut stream = TcpStream::connect(server.addr).unwrap();
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nContent-Type: application/octet-stream\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&content(1000, 1)).unwrap();
        assert!(
            closed_within(&mut stream, Duration::from_secs(5)),
            "{method}: stalled body not timed out"
        );
        // The 1000 bytes that arrived are kept and the upload can go on.
        let reply = server.request("GET", &location, &[], b"");
        assert_eq!(reply.status, 204, "{method}");
        assert_eq!(reply.header("range"), Some("0-999"), "{method}");
    }
}

#[test]
fn oversized_headers_and_bogus_lengths_are_refused() {
    let server = TestServer::start();
    let with_header_of = |size: usize| {
        let big = "x".repeat(size);
        let mut stream = TcpStream::connect(server.addr).unwrap();
        let head =
            format!("GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {big}\r\n\r\n");
        let _ = stream.write_all(head.as_bytes());
        let mut answer = Vec::new();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    };
    // Over the 64 KiB head limit but within the read buffer (refused by the server's check),
    // and over the read buffer (refused by hyper).
    for size in [200 << 10, 2 << 20] {
        let text = with_header_of(size);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 431"),
            "{size}: {text}"
        );
    }
    let text = with_header_of(60 << 10);
    assert!(text.starts_with("HTTP/1.1 200"), "60 KiB head: {text}");

    for length in ["abc", "-1", "1, 2"] {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        let request = format!(
            "POST /v2/r/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = stream.read_to_end(&mut answer);
        assert!(
            String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 400"),
            "Content-Length {length}"
        );
    }
    assert_eq!(server.get("/v2/").status, 200);
}

#[test]
fn a_body_shorter_than_its_length_publishes_nothing() {
    let server = TestServer::start();
    let data = content(10_000, 2);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    let head = format!(
        "POST /v2/r/blobs/uploads/?digest={} HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n",
        sha256(&data)
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&data).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        server.get(&format!("/v2/r/blobs/{}", sha256(&data))).status,
        404
    );
    let uploads = server.v2().join("repositories/r/_uploads");
    assert!(
        common::files_below(&uploads).is_empty(),
        "a failed single POST leaves nothing"
    );
}
