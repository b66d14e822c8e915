//! A TCP proxy in front of the S3 endpoint that cuts one UploadPart request short, for the
//! crash case of a part upload killed midway.

use std::io::Read;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A TCP proxy in front of the S3 endpoint that forwards every byte both ways, except that the
/// body of the `nth` UploadPart request stops after `keep` bytes: the rest is swallowed, and the
/// request's upstream connection is closed when the client's closes (the client was killed).
pub struct StallingProxy {
    pub addr: SocketAddr,
    stalled: Arc<(Mutex<bool>, Condvar)>,
}

impl StallingProxy {
    pub fn start(upstream: SocketAddr, nth: usize, keep: u64) -> StallingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stalled = Arc::new((Mutex::new(false), Condvar::new()));
        let part_uploads = Arc::new(AtomicUsize::new(0));
        let flag = Arc::clone(&stalled);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let (flag, part_uploads) = (Arc::clone(&flag), Arc::clone(&part_uploads));
                std::thread::spawn(move || {
                    let server = TcpStream::connect(upstream).unwrap();
                    let mut from_server = server.try_clone().unwrap();
                    let mut to_client = client.try_clone().unwrap();
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from_server, &mut to_client);
                        let _ = to_client.shutdown(Shutdown::Both);
                    });
                    let stall = |n: usize| n == nth;
                    forward_requests(client, server, &part_uploads, stall, keep, &flag);
                });
            }
        });
        StallingProxy { addr, stalled }
    }

    /// Waits until the chosen part upload has stalled.
    pub fn wait_stalled(&self) {
        let (flag, changed) = &*self.stalled;
        let (stalled, _) = changed
            .wait_timeout_while(flag.lock().unwrap(), Duration::from_secs(60), |s| !*s)
            .unwrap();
        assert!(*stalled, "the part upload never came");
    }
}

/// Forwards requests from `client` to `server` one at a time: the head, then `Content-Length`
/// bytes of body. The UploadPart requests are counted; the one `stall` picks gets `keep` bytes.
fn forward_requests(
    client: TcpStream,
    mut server: TcpStream,
    part_uploads: &AtomicUsize,
    stall: impl Fn(usize) -> bool,
    keep: u64,
    stalled: &(Mutex<bool>, Condvar),
) {
    use std::io::{BufRead, BufReader, Write};
    let mut reader = BufReader::new(client);
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => {
                    let _ = server.shutdown(Shutdown::Both);
                    return;
                }
                Ok(_) => head.extend_from_slice(&line),
            }
            if line == b"\r\n" {
                break;
            }
        }
        let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(!text.contains("transfer-encoding: chunked"), "{text}");
        let length: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        let request_line = text.lines().next().unwrap_or_default();
        let part_upload = request_line.starts_with("put ") && request_line.contains("partnumber=");
        if server.write_all(&head).is_err() {
            return;
        }
        if part_upload && stall(part_uploads.fetch_add(1, Ordering::SeqCst) + 1) {
            let _ = std::io::copy(&mut (&mut reader).take(keep), &mut server);
            let (flag, changed) = stalled;
            *flag.lock().unwrap() = true;
            changed.notify_all();
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
            let _ = server.shutdown(Shutdown::Both);
            return;
        }
        if std::io::copy(&mut (&mut reader).take(length), &mut server).is_err() {
            return;
        }
    }
}
