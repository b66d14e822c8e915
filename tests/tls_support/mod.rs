//! Support for the TLS tests: `layerstore serve` with TLS as a child process (its log kept for
//! the test to wait on), and rustls clients (HTTP/1.1 and HTTP/2 on hyper) with a chosen TLS
//! version and ALPN, reporting what was negotiated and which certificate the server showed.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper::{Request, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// `layerstore serve` over a temporary root, killed when dropped.
pub struct HttpsServer {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    _root: tempfile::TempDir,
}

/// `layerstore serve --listen 127.0.0.1:0 --root DIR --secret tls`, to add arguments to.
pub fn serve_command(root: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_layerstore"));
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--secret",
            "tls",
            "--root",
        ])
        .arg(root)
        .env("RUST_LOG", "info")
        .env_remove("LAYERSTORE_TLS_CERT")
        .env_remove("LAYERSTORE_TLS_KEY")
        .env_remove("LAYERSTORE_CONFIG");
    command
}

impl HttpsServer {
    /// Starts `serve_command(root)` changed by `configure`, and waits until it listens.
    pub fn start(configure: impl FnOnce(&mut Command)) -> Self {
        let root = tempfile::tempdir().unwrap();
        let mut command = serve_command(root.path());
        configure(&mut command);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start layerstore serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut printed = Vec::new();
        let addr = loop {
            let Some(Ok(line)) = lines.next() else {
                panic!("serve exited before listening:\n{}", printed.join("\n"));
            };
            if let Some(rest) = line.split("address=").nth(1) {
                assert!(line.contains("https=true"), "not serving https: {line}");
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
            printed.push(line);
        };
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        HttpsServer {
            child,
            addr,
            log,
            _root: root,
        }
    }

    /// Sends SIGHUP and waits for the log line saying how this reload went.
    pub fn hangup_and_wait(&self) -> String {
        let reloads = |log: &str| -> Vec<String> {
            log.lines()
                .filter(|l| l.contains("TLS certificate"))
                .map(str::to_owned)
                .collect()
        };
        let before = reloads(&self.log.lock().unwrap()).len();
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log.lock().unwrap().clone();
            if let Some(line) = reloads(&log).get(before) {
                return line.clone();
            }
            assert!(Instant::now() < deadline, "no reload logged:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client config trusting the CAs in `ca`, for `versions`, offering `alpn`, without
/// session resumption.
pub fn client_config(
    ca: &Path,
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // Every connection makes a full handshake: a resumed session shows no certificate, and
    // rustls would report the one of the session it resumed.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// A TLS connection to `addr` (checked against the name `127.0.0.1`).
pub async fn connect(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(Arc::clone(config))
        .connect(name, tcp)
        .await
}

/// What a TLS connection negotiated.
#[derive(Debug)]
pub struct Negotiated {
    pub version: rustls::ProtocolVersion,
    pub alpn: Option<Vec<u8>>,
    /// DER of the server's certificate.
    pub certificate: Vec<u8>,
}

pub fn negotiated(stream: &TlsStream<TcpStream>) -> Negotiated {
    let (_, connection) = stream.get_ref();
    Negotiated {
        version: connection.protocol_version().unwrap(),
        alpn: connection.alpn_protocol().map(<[u8]>::to_vec),
        certificate: connection.peer_certificates().unwrap()[0].to_vec(),
    }
}

/// A complete answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub version: Version,
    pub location: Option<String>,
    pub body: Bytes,
}

type Body = Full<Bytes>;

/// An HTTP/1.1 or HTTP/2 client on one TLS connection.
pub enum Client {
    Http1(http1::SendRequest<Body>),
    Http2(http2::SendRequest<Body>),
}

impl Client {
    /// Starts HTTP/2 if ALPN chose `h2`, else HTTP/1.1, driving the connection on a task.
    pub async fn start(stream: TlsStream<TcpStream>) -> Self {
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(stream);
        if h2 {
            let (sender, connection) = http2::handshake(TokioExecutor::new(), io).await.unwrap();
            tokio::spawn(connection);
            Client::Http2(sender)
        } else {
            let (sender, connection) = http1::handshake(io).await.unwrap();
            tokio::spawn(connection);
            Client::Http1(sender)
        }
    }

    /// Sends `method path` with `body` and reads the whole answer.
    pub async fn send(&mut self, method: &str, path: &str, body: Vec<u8>) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("https://127.0.0.1{path}"))
            .header("content-type", "application/octet-stream");
        if let Client::Http1(_) = self {
            request = request.uri(path).header("host", "127.0.0.1");
        }
        let request = request.body(Full::new(Bytes::from(body))).unwrap();
        // An HTTP/1.1 connection takes the next request only once the last answer is read.
        let response = match self {
            Client::Http1(sender) => {
                sender.ready().await.unwrap();
                sender.send_request(request).await
            }
            Client::Http2(sender) => sender.send_request(request).await,
        }
        .unwrap();
        let (status, version) = (response.status(), response.version());
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            version,
            location,
            body,
        }
    }
}

/// Runs `future` on a fresh runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}
