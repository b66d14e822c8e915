//! Requests to the scale-out instances: PATCHes and status checks of chunked uploads, the
//! offset an answer names, a blob read back through every instance, a [`RawRequest`] whose body
//! the test writes itself (to cut it short or pace it), and an image pushed for the outage test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::common::{content, request, sha256, Reply};

use super::{Instance, MIB};

/// `0-<last byte>` of a status or PATCH answer, as the offset it names.
pub fn offset_of(reply: &Reply) -> u64 {
    let range = reply.header("range").expect("Range header");
    let last: u64 = range.strip_prefix("0-").unwrap().parse().unwrap();
    // `0-0` is distribution's way of saying "empty" (and also "one byte"): the tests here never
    // stop at one byte.
    if last == 0 {
        0
    } else {
        last + 1
    }
}

/// PATCHes `data[range]` to the upload at `location` through `addr`; checks the 202.
pub fn patch(
    addr: SocketAddr,
    location: &str,
    data: &[u8],
    range: std::ops::Range<usize>,
) -> Reply {
    let content_range = format!("{}-{}", range.start, range.end - 1);
    let reply = request(
        addr,
        "PATCH",
        location,
        &[
            ("content-type", "application/octet-stream"),
            ("content-range", &content_range),
        ],
        &data[range.clone()],
    );
    assert_eq!(
        reply.status,
        202,
        "PATCH {content_range} on {addr}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(offset_of(&reply), range.end as u64, "PATCH on {addr}");
    reply
}

/// The upload's status through `addr`.
pub fn status(addr: SocketAddr, location: &str) -> Reply {
    let reply = request(addr, "GET", location, &[], b"");
    assert_eq!(
        reply.status,
        204,
        "status on {addr}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    reply
}

/// GET and HEAD of the blob through every running instance: exactly `data`.
pub fn check_blob_everywhere(instances: &[&Instance], repo: &str, data: &[u8]) {
    let path = format!("/v2/{repo}/blobs/{}", sha256(data));
    for instance in instances {
        let reply = request(instance.addr, "GET", &path, &[], b"");
        assert_eq!(reply.status, 200, "GET {path} on {}", instance.addr);
        assert!(
            reply.body == data,
            "GET {path} on {}: {} bytes, not the {} pushed",
            instance.addr,
            reply.body.len(),
            data.len()
        );
        let reply = request(instance.addr, "HEAD", &path, &[], b"");
        assert_eq!(reply.status, 200, "HEAD {path} on {}", instance.addr);
        assert_eq!(
            reply.header("content-length"),
            Some(data.len().to_string().as_str())
        );
    }
}

/// A request whose body this test writes itself: headers now, body bytes when it likes, so it
/// can stop half-way or pace the body while something else happens.
pub struct RawRequest {
    pub stream: TcpStream,
}

impl RawRequest {
    pub fn start(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        length: usize,
    ) -> RawRequest {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {length}\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        RawRequest { stream }
    }

    /// Writes `body` in 256 KiB pieces, one every `pause`, adding each to `sent`.
    pub fn send_paced(&mut self, body: &[u8], pause: Duration, sent: &AtomicU64) {
        for piece in body.chunks(256 << 10) {
            self.stream.write_all(piece).unwrap();
            sent.fetch_add(piece.len() as u64, Ordering::SeqCst);
            std::thread::sleep(pause);
        }
    }

    /// Reads the answer: status and body (by `Content-Length`).
    pub fn finish(self) -> (u16, Vec<u8>) {
        let mut reader = BufReader::new(self.stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("status line {line:?}"))
            .parse()
            .unwrap();
        let mut length = 0;
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        (status, body)
    }
}

/// An OCI image manifest over a config and a layer, both pushed to `repo` through `addr`.
pub fn push_image(addr: SocketAddr, repo: &str) -> Vec<u8> {
    let mut descriptors = Vec::new();
    for (media_type, bytes) in [
        ("application/vnd.oci.image.config.v1+json", b"{}".to_vec()),
        (
            "application/vnd.oci.image.layer.v1.tar",
            content(2 * MIB, 3),
        ),
    ] {
        let digest = sha256(&bytes);
        let reply = request(
            addr,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            &[],
            &bytes,
        );
        assert_eq!(reply.status, 201);
        descriptors.push(serde_json::json!({
            "mediaType": media_type, "digest": digest, "size": bytes.len()
        }));
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptors[0],
        "layers": [descriptors[1]],
    }))
    .unwrap();
    let reply = request(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/latest"),
        &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
        &manifest,
    );
    assert_eq!(reply.status, 201);
    manifest
}
