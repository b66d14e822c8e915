//! `layerstore serve` over TLS, as a real process: TLS 1.3 and 1.2, HTTP/2 by ALPN (a blob
//! pushed and pulled back over it), the certificate reloaded on SIGHUP while an older
//! connection goes on, start-up failures for bad files, skopeo with a CA in `--cert-dir`,
//! `layerstore bench` over https, and (in process) a client stalling mid-handshake. Certificates
//! are made at run time (`common::certs`).

mod clients_support;
mod common;
mod tls_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use clients_support::oci::{assert_same_image, Layout};
use clients_support::{require_tool, run_with_timeout, skopeo};
use common::certs::TestPki;
use rustls::version::{TLS12, TLS13};
use rustls::ProtocolVersion;
use tls_support::{
    block_on, client_config, connect, negotiated, serve_command, Client, HttpsServer,
};

/// A server with the PKI's current certificate, given by flags.
fn https_server(pki: &TestPki) -> HttpsServer {
    HttpsServer::start(|command| {
        command
            .arg("--tls-cert")
            .arg(pki.server_cert())
            .arg("--tls-key")
            .arg(pki.server_key());
    })
}

#[test]
fn tls13_and_forced_tls12_both_answer() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path());
    let server = https_server(&pki);
    for (version, expected) in [
        (&TLS13, ProtocolVersion::TLSv1_3),
        (&TLS12, ProtocolVersion::TLSv1_2),
    ] {
        let config = client_config(&pki.ca(), &[version], &[b"http/1.1"]);
        block_on(async {
            let stream = connect(server.addr, &config).await.unwrap();
            let negotiated = negotiated(&stream);
            assert_eq!(negotiated.version, expected);
            assert_eq!(negotiated.alpn.as_deref(), Some(&b"http/1.1"[..]));
            let answer = Client::start(stream)
                .await
                .send("GET", "/v2/", vec![])
                .await;
            assert_eq!(answer.status, 200);
            assert_eq!(answer.version, hyper::Version::HTTP_11);
        });
    }
    // Plain HTTP on the TLS port is not served.
    let plain = common::try_request(server.addr, "GET", "/v2/", &[], b"");
    assert!(plain.is_err(), "{plain:?}");
}

#[test]
fn http2_by_alpn_pushes_and_pulls_a_blob() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path());
    // This one takes its files from the config file's [tls] table.
    let config_file = dir.path().join("layerstore.toml");
    let table = format!(
        "[tls]\ncert = {:?}\nkey = {:?}\n",
        pki.server_cert(),
        pki.server_key()
    );
    std::fs::write(&config_file, table).unwrap();
    let server = HttpsServer::start(|command| {
        command.arg("--config").arg(&config_file);
    });
    // Larger than the HTTP/2 windows, so flow control must keep granting credit.
    let blob = common::content(24 << 20, 9);
    let digest = common::sha256(&blob);
    let config = client_config(&pki.ca(), &[&TLS13], &[b"h2", b"http/1.1"]);
    block_on(async {
        let stream = connect(server.addr, &config).await.unwrap();
        assert_eq!(negotiated(&stream).alpn.as_deref(), Some(&b"h2"[..]));
        let mut client = Client::start(stream).await;
        let start = client
            .send("POST", "/v2/tls/h2/blobs/uploads/", vec![])
            .await;
        assert_eq!(
            (start.status.as_u16(), start.version),
            (202, hyper::Version::HTTP_2)
        );
        let location = start.location.unwrap();
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{separator}digest={digest}");
        let put = client.send("PUT", &put, blob.clone()).await;
        assert_eq!(put.status, 201, "{:?}", put.body);
        let get = client
            .send("GET", &format!("/v2/tls/h2/blobs/{digest}"), vec![])
            .await;
        assert_eq!(
            (get.status.as_u16(), get.version),
            (200, hyper::Version::HTTP_2)
        );
        assert_eq!(get.body.len(), blob.len());
        assert_eq!(common::sha256(&get.body), digest);
    });
}

#[test]
fn sighup_reloads_the_certificate_and_open_connections_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path());
    let first = std::fs::read(pki.server_cert()).unwrap();
    // This one takes its files from the environment.
    let server = HttpsServer::start(|command| {
        command
            .env("LAYERSTORE_TLS_CERT", pki.server_cert())
            .env("LAYERSTORE_TLS_KEY", pki.server_key());
    });
    let config = client_config(&pki.ca(), &[&TLS13], &[b"http/1.1"]);
    block_on(async {
        let old = connect(server.addr, &config).await.unwrap();
        let old_certificate = negotiated(&old).certificate;
        let mut old = Client::start(old).await;
        assert_eq!(old.send("GET", "/v2/", vec![]).await.status, 200);

        // A broken pair (a new certificate, the old key) is refused and the old one stays.
        let (new_cert, _new_key, _) = pki.server_pair(3);
        std::fs::write(pki.server_cert(), new_cert).unwrap();
        let line = server.hangup_and_wait();
        assert!(
            line.contains("not reloaded") && line.contains("does not match"),
            "{line}"
        );
        let stream = connect(server.addr, &config).await.unwrap();
        assert_eq!(negotiated(&stream).certificate, old_certificate);
        std::fs::write(pki.server_cert(), &first).unwrap();

        let new_certificate = pki.issue_server(2);
        assert_ne!(new_certificate, old_certificate);
        let line = server.hangup_and_wait();
        assert!(line.contains("TLS certificate reloaded"), "{line}");
        let fresh = connect(server.addr, &config).await.unwrap();
        assert_eq!(negotiated(&fresh).certificate, new_certificate);
        let mut fresh = Client::start(fresh).await;
        assert_eq!(fresh.send("GET", "/v2/", vec![]).await.status, 200);
        // The connection opened before the reload still works.
        assert_eq!(old.send("GET", "/v2/", vec![]).await.status, 200);
    });
}

/// Runs serve with `args` (and the environment `env`) expecting it to stop at once; returns
/// its exit code and the line it printed.
fn failed_start(args: &[&std::ffi::OsStr], env: &[(&str, &Path)]) -> (Option<i32>, String) {
    let root = tempfile::tempdir().unwrap();
    let mut command = serve_command(root.path());
    command.args(args).envs(env.iter().map(|(k, v)| (k, v)));
    let started = Instant::now();
    let output = run_with_timeout(command, Duration::from_secs(20));
    assert!(started.elapsed() < Duration::from_secs(5), "slow to fail");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("layerstore serve: "))
        .collect();
    assert_eq!(lines.len(), 1, "one message expected:\n{stderr}");
    (output.status.code(), lines[0].to_owned())
}

#[test]
fn bad_files_stop_serve_at_start_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path());
    let (_, other_key, _) = pki.server_pair(5);
    let wrong_key = dir.path().join("other.key");
    std::fs::write(&wrong_key, other_key).unwrap();
    let missing = dir.path().join("missing.pem");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "# no certificate here\n").unwrap();
    let (cert, key) = (pki.server_cert(), pki.server_key());
    // (certificate, key, what the message says, the file it names)
    let cases = [
        (
            &cert,
            &wrong_key,
            "does not match the certificate in",
            &wrong_key,
        ),
        (&missing, &key, "cannot read", &missing),
        (&cert, &missing, "cannot read", &missing),
        (&empty, &key, "holds no certificate", &empty),
        (&cert, &cert, "holds no private key", &cert),
    ];
    for (cert, key, expected, named) in cases {
        let args = [
            "--tls-cert".as_ref(),
            cert.as_os_str(),
            "--tls-key".as_ref(),
            key.as_os_str(),
        ];
        let (code, line) = failed_start(&args, &[]);
        assert_eq!(code, Some(1), "{line}");
        assert!(line.contains(expected), "{expected:?} not in {line:?}");
        assert!(line.contains(&*named.to_string_lossy()), "{line}");
    }
}

#[test]
fn a_certificate_without_a_key_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path());
    let cert = pki.server_cert();
    let (code, line) = failed_start(&["--tls-cert".as_ref(), cert.as_os_str()], &[]);
    assert_eq!(code, Some(2), "{line}");
    assert!(line.contains("--tls-key FILE"), "{line}");
    let key = pki.server_key();
    let (code, line) = failed_start(&[], &[("LAYERSTORE_TLS_KEY", &key)]);
    assert_eq!(code, Some(2), "{line}");
    assert!(line.contains("--tls-cert FILE"), "{line}");
}

#[test]
fn skopeo_pushes_and_inspects_with_the_ca_in_its_cert_dir() {
    if require_tool("skopeo").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(&dir.path().join("pki"));
    let cert_dir = dir.path().join("certs.d");
    std::fs::create_dir_all(&cert_dir).unwrap();
    std::fs::copy(pki.ca(), cert_dir.join("ca.crt")).unwrap();
    let server = https_server(&pki);
    let layout = Layout::create(&dir.path().join("src"));
    let image = layout.add_image(11, "amd64");
    layout.tag("v1", &image);
    let reference = format!("docker://{}/tls/skopeo:v1", server.addr);
    let cert_dir = cert_dir.to_str().unwrap();

    // Without the CA, skopeo refuses the certificate (and pushes nothing).
    let source = format!("oci:{}:v1", layout.dir.display());
    let refused = skopeo(&["copy", "--retry-times", "0", &source, &reference], false);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");

    skopeo(
        &[
            "copy",
            "--retry-times",
            "0",
            "--preserve-digests",
            "--dest-cert-dir",
            cert_dir,
            &source,
            &reference,
        ],
        true,
    );
    let raw = skopeo(
        &["inspect", "--cert-dir", cert_dir, "--raw", &reference],
        true,
    );
    assert_eq!(raw.stdout, layout.blob(&image.digest));
    let out = dir.path().join("out");
    skopeo(
        &[
            "copy",
            "--retry-times",
            "0",
            "--src-cert-dir",
            cert_dir,
            &reference,
            &format!("oci:{}:v1", out.display()),
        ],
        true,
    );
    assert_same_image(&layout, &Layout::open(&out), "v1", "v1");
}

/// `layerstore bench` with `args`, its short scenarios, against `url`.
fn bench(url: &str, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_layerstore"));
    command
        .args(["bench", "--url", url, "--json", "--only"])
        .args(["push-monolithic,push-chunked,pull,small-push"])
        .args(["--blob-size", "3M", "--chunk-size", "1M"])
        .args(["--small-size", "16K", "--small-seconds", "0.3"])
        .args(args);
    run_with_timeout(command, Duration::from_secs(60))
}

#[test]
fn bench_runs_over_https_with_the_ca_and_refuses_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(&dir.path().join("pki"));
    let server = https_server(&pki);
    let url = format!("https://{}", server.addr);
    let ca = pki.ca();

    let output = bench(&url, &["--cacert", ca.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let scenarios = report["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 4, "{stdout}");

    let output = bench(&url, &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--cacert FILE") && stderr.contains("--insecure"),
        "{stderr}"
    );

    // Another CA's certificate is refused; --insecure takes any.
    let other = TestPki::new(&dir.path().join("other"));
    let output = bench(&url, &["--cacert", other.ca().to_str().unwrap()]);
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The client's connect error names the certificate rustls refused.
    assert!(stdout.contains("invalid peer certificate"), "{stdout}");
    assert!(bench(&url, &["--insecure"]).status.success());
}

/// True when the server closes `stream` within `within`.
fn closed_within(stream: &mut std::net::TcpStream, within: Duration) -> bool {
    use std::io::Read;
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // an alert; the close follows
            Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

#[test]
fn a_stalled_handshake_is_dropped_and_others_are_served() {
    use layerstore::http::app::AppState;
    use layerstore::http::server::{Limits, Server};
    use layerstore::http::tls::ServerTls;
    use layerstore::http::token::TokenSigner;
    use std::io::Write;

    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(&dir.path().join("pki"));
    let tls = ServerTls::load(&pki.server_cert(), &pki.server_key()).unwrap();
    let state = AppState::new(
        layerstore::store::Store::filesystem(dir.path().join("root")),
        TokenSigner::new("tls"),
    );
    let limits = Limits {
        header_read_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        block_on(async move {
            let server = Server::bind("127.0.0.1:0".parse().unwrap(), state, limits)
                .await
                .unwrap()
                .with_tls(tls);
            addr_tx.send(server.local_addr().unwrap()).unwrap();
            server.run(async { drop(stop_rx.await) }).await.unwrap();
        })
    });
    let addr = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();

    // One client sends nothing, another the start of a TLS record and then nothing.
    let mut silent = std::net::TcpStream::connect(addr).unwrap();
    let mut partial = std::net::TcpStream::connect(addr).unwrap();
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    // Others are served meanwhile...
    let config = client_config(&pki.ca(), &[&TLS13], &[b"http/1.1"]);
    block_on(async {
        let stream = connect(addr, &config).await.unwrap();
        let answer = Client::start(stream)
            .await
            .send("GET", "/v2/", vec![])
            .await;
        assert_eq!(answer.status, 200);
    });
    // ...and both stalled connections are closed by the timeout.
    let started = Instant::now();
    assert!(closed_within(&mut silent, Duration::from_secs(5)));
    assert!(closed_within(&mut partial, Duration::from_secs(5)));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    stop_tx.send(()).unwrap();
    thread.join().unwrap();
}
