//! `--storage URL` on the real binary: `file:///DIR` (and a bare path, and the environment) means
//! the same as `--root DIR` for put, get, fsck and purge-uploads; the choice between the two is
//! checked; `serve` keeps its HTTP secret in the storage when none is configured, and stops at
//! once, with one line, when an S3 storage cannot be reached. With Garage installed, the same
//! commands run against a real bucket.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use layerstore::digest::Digest;

fn layerstore() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_layerstore"));
    // Nothing from the caller's environment chooses a storage or a secret here.
    for name in [
        "LAYERSTORE_STORAGE",
        "LAYERSTORE_ROOT",
        "LAYERSTORE_SECRET",
        "LAYERSTORE_CONFIG",
        "LAYERSTORE_LISTEN",
        "RUST_LOG",
    ] {
        command.env_remove(name);
    }
    command
}

fn run(command: Command, stdin: Option<&[u8]>) -> Output {
    common::process::run_with_stdin(command, stdin)
}

/// Standard output of a command that must have succeeded.
fn ok(out: &Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout.clone()
}

/// The same, as one trimmed line of text.
fn ok_line(out: &Output) -> String {
    String::from_utf8(ok(out)).unwrap().trim().to_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn file_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

#[test]
fn file_url_bare_path_and_environment_mean_the_same_as_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let url = file_url(&root);
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let digest = Digest::sha256(&data).to_string();

    // put through file:///DIR ...
    let mut put = layerstore();
    put.args(["put", "--storage", &url, "--repo", "lib/app", "-"]);
    assert_eq!(ok_line(&run(put, Some(&data))), digest);
    // ... lands where --root DIR reads it, and the other way round.
    let mut get = layerstore();
    get.args(["get", "--root"])
        .arg(&root)
        .args(["--repo", "lib/app", &digest]);
    assert!(run(get, None).stdout == data);
    let mut put = layerstore();
    put.args(["put", "--root"])
        .arg(&root)
        .args(["--repo", "lib/app", "-"]);
    let small = ok_line(&run(put, Some(b"via --root")));
    let mut get = layerstore();
    get.args(["get", "--storage", &url, small.trim()]);
    assert_eq!(run(get, None).stdout, b"via --root");

    // A bare path is a directory too; and the environment, when the command line says nothing.
    let mut get = layerstore();
    get.args(["get", "--storage"])
        .arg(&root)
        .args([&digest, "--range", "10-19"]);
    assert_eq!(run(get, None).stdout, &data[10..20]);
    let mut get = layerstore();
    get.env("LAYERSTORE_STORAGE", &url)
        .args(["get", &digest, "--range", "0-4"]);
    assert_eq!(run(get, None).stdout, &data[..5]);
    let mut get = layerstore();
    get.env("LAYERSTORE_ROOT", &root)
        .args(["get", &digest, "--range", "5-9"]);
    assert_eq!(run(get, None).stdout, &data[5..10]);

    // fsck and purge-uploads alike.
    for storage in [
        vec!["--storage", url.as_str()],
        vec!["--root", root.to_str().unwrap()],
    ] {
        let mut fsck = layerstore();
        fsck.arg("fsck").args(&storage);
        let out = run(fsck, None);
        ok(&out);
        assert!(stderr(&out).contains("2 blobs"), "{}", stderr(&out));
        let mut purge = layerstore();
        purge
            .arg("purge-uploads")
            .args(&storage)
            .args(["--older-than", "1h", "--dry-run"]);
        ok(&run(purge, None));
    }

    // An unknown digest through file:// is the same error as through --root.
    let unknown = Digest::sha256(b"absent").to_string();
    let mut get = layerstore();
    get.args(["get", "--storage", &url, "--repo", "lib/app", &unknown]);
    let out = run(get, None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("blob unknown"), "{}", stderr(&out));
}

#[test]
fn choosing_the_storage() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");

    // Both on the command line: clap's conflict error.
    let mut fsck = layerstore();
    fsck.args(["fsck", "--storage", "s3://some-bucket", "--root"])
        .arg(&root);
    let out = run(fsck, None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );

    // Neither anywhere: a usage error naming both options.
    let mut fsck = layerstore();
    fsck.arg("fsck");
    let out = run(fsck, None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--storage URL or --root DIR"),
        "{}",
        stderr(&out)
    );

    // Both in the environment: refused too.
    let mut fsck = layerstore();
    fsck.env("LAYERSTORE_STORAGE", file_url(&root))
        .env("LAYERSTORE_ROOT", &root)
        .arg("fsck");
    let out = run(fsck, None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("both set"), "{}", stderr(&out));

    // The command line beats the environment: the unreachable bucket is never tried.
    let mut fsck = layerstore();
    fsck.env("LAYERSTORE_STORAGE", "s3://never-used")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .args(["fsck", "--root"])
        .arg(&root);
    ok(&run(fsck, None));

    // Malformed URLs are refused while parsing the command line, with the reason.
    for (url, reason) in [
        ("s3://ab", "3 to 63"),
        ("s3://My-Bucket", "lowercase"),
        ("s3://key:secret@bucket", "credentials do not belong"),
        ("s3://localhost:9000/bucket", "AWS_ENDPOINT_URL"),
        ("gs://bucket", "unknown storage scheme"),
        ("file://relative", "plain path: relative"),
    ] {
        let mut fsck = layerstore();
        fsck.args(["fsck", "--storage", url]);
        let out = run(fsck, None);
        assert_eq!(out.status.code(), Some(2), "{url}");
        assert!(stderr(&out).contains(reason), "{url}: {}", stderr(&out));
    }
    // From the environment, the credentials are not repeated (a service's log keeps them).
    let mut fsck = layerstore();
    fsck.env("LAYERSTORE_STORAGE", "s3://key:hunter2@bucket")
        .arg("fsck");
    let out = run(fsck, None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("credentials do not belong"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("hunter2"), "{}", stderr(&out));
}

/// A `layerstore serve` child: killed on drop.
struct Serve {
    child: Child,
    /// Everything it printed on stderr up to its address line.
    log: String,
}

impl Serve {
    /// The address from the `address=` log line.
    fn addr(&self) -> std::net::SocketAddr {
        let rest = self.log.split("address=").nth(1).expect("address line");
        rest.split_whitespace().next().unwrap().parse().unwrap()
    }

    /// Status line and body of a plain HTTP/1.1 GET.
    fn get(&self, path: &str) -> (String, Vec<u8>) {
        let mut stream = std::net::TcpStream::connect(self.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).unwrap();
        let split = reply
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete header");
        let head = String::from_utf8_lossy(&reply[..split]).into_owned();
        let status = head.lines().next().unwrap_or_default().to_owned();
        (status, reply[split + 4..].to_vec())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve` with `args` on a free port and waits for its `layerstore serving` line.
fn serve(mut command: Command, args: &[&str]) -> Serve {
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    loop {
        let line = match lines.next() {
            Some(line) => line.unwrap(),
            None => panic!("serve stopped before listening:\n{log}"),
        };
        log.push_str(&line);
        log.push('\n');
        if line.contains("address=") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Serve { child, log }
}

#[test]
fn serve_keeps_its_secret_in_the_storage() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let secret_file = root.join("layerstore/http-secret");

    let first = serve(layerstore(), &["--storage", &file_url(&root)]);
    assert!(first.log.contains("storage=file://"), "{}", first.log);
    assert!(first.log.contains("kept in the storage"), "{}", first.log);
    assert!(first.log.contains("created=true"), "{}", first.log);
    let secret = std::fs::read_to_string(&secret_file).unwrap();
    assert_eq!(secret.len(), 64);
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()), "{secret}");

    // A second instance on the same root, at the same time, uses the same one.
    let mut second = layerstore();
    second.env("LAYERSTORE_ROOT", &root);
    let second = serve(second, &[]);
    assert!(second.log.contains("created=false"), "{}", second.log);
    assert_eq!(std::fs::read_to_string(&secret_file).unwrap(), secret);
    drop((first, second));

    // A configured secret wins and leaves the stored one alone.
    let configured = serve(
        layerstore(),
        &["--root", root.to_str().unwrap(), "--secret", "s"],
    );
    assert!(
        !configured.log.contains("kept in the storage"),
        "{}",
        configured.log
    );
    assert_eq!(std::fs::read_to_string(&secret_file).unwrap(), secret);
    drop(configured);

    // A storage that cannot keep a secret (here the directory it would go in is a file) still
    // serves, with a random secret and a warning, as before secrets were stored.
    let blocked = dir.path().join("blocked");
    std::fs::create_dir_all(&blocked).unwrap();
    std::fs::write(blocked.join("layerstore"), b"not a directory").unwrap();
    let fallback = serve(layerstore(), &["--root", blocked.to_str().unwrap()]);
    assert!(
        fallback.log.contains("none can be kept in the storage"),
        "{}",
        fallback.log
    );
    drop(fallback);

    // Nothing is written when a secret is configured from the start.
    let other = dir.path().join("other");
    let mut with_secret = layerstore();
    with_secret.env("LAYERSTORE_SECRET", "from-env");
    let _served = serve(with_secret, &["--root", other.to_str().unwrap()]);
    assert!(other.is_dir());
    assert!(!other.join("layerstore").exists());
}

#[test]
fn serve_reads_storage_and_s3_from_its_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let config = dir.path().join("layerstore.toml");
    std::fs::write(
        &config,
        format!(
            "storage = \"{}\"\nsecret = \"s\"\n[s3]\nregion = \"garage\"\npart_size = \"16MiB\"\n",
            file_url(&root)
        ),
    )
    .unwrap();
    let served = serve(layerstore(), &["--config", config.to_str().unwrap()]);
    assert!(
        served.log.contains(&format!("storage={}", file_url(&root))),
        "{}",
        served.log
    );
    drop(served);

    for (text, expected) in [
        (
            format!("storage = \"s3://b\"\nroot = \"{}\"\n", root.display()),
            "storage and root are both set",
        ),
        (
            "storage = \"s3://x\"\n".to_owned(),
            "storage: invalid S3 bucket",
        ),
        ("[s3]\npart_size = \"1MiB\"\n".to_owned(), "5 MiB to 5 GiB"),
        ("[s3]\nendpont = \"x\"\n".to_owned(), "unknown field"),
    ] {
        std::fs::write(&config, &text).unwrap();
        let mut command = layerstore();
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config);
        let out = run(command, None);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(stderr(&out).contains(expected), "{text}: {}", stderr(&out));
    }
}

/// The environment of an S3 client that must not pick anything up from this machine (profiles,
/// instance metadata).
fn isolated_aws(command: &mut Command, home: &Path) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") && name != "AWS_CA_BUNDLE" {
            command.env_remove(&name);
        }
    }
    command
        .env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

#[test]
fn serve_stops_at_once_when_the_bucket_cannot_be_reached() {
    let home = tempfile::tempdir().unwrap();
    let mut command = layerstore();
    isolated_aws(&mut command, home.path());
    command
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        .env(
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        )
        .env("AWS_REGION", "us-east-1")
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--storage",
            "s3://nonexistent-bucket",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("serve still running after 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    let line = lines[0];
    assert!(
        line.starts_with("layerstore serve: s3://nonexistent-bucket: "),
        "{line}"
    );
    assert!(line.contains("http://127.0.0.1:1"), "{line}");
    assert!(line.contains("cannot reach"), "{line}");
    assert!(!line.contains("wJalrXUtnFEMI"), "{line}");

    // The other commands say the same, in their own name.
    let mut fsck = layerstore();
    isolated_aws(&mut fsck, home.path());
    fsck.env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_REGION", "us-east-1")
        .env("LAYERSTORE_STORAGE", "s3://nonexistent-bucket/prefix")
        .arg("fsck");
    let out = run(fsck, None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("layerstore fsck: s3://nonexistent-bucket/prefix: "),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}

/// put, get, fsck and serve on a real bucket (a 3-node Garage cluster), configured the way the
/// README shows: the AWS environment and an `s3://BUCKET/PREFIX` URL.
#[test]
fn commands_on_a_real_bucket() {
    let Some(cluster) = common::garage::GarageCluster::start() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let aws = |command: &mut Command| {
        isolated_aws(command, home.path());
        command
            .env("AWS_ENDPOINT_URL", &cluster.endpoint)
            .env("AWS_REGION", &cluster.region)
            .env("AWS_ACCESS_KEY_ID", &cluster.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &cluster.secret_access_key);
    };
    let url = format!("s3://{}/registry/one", cluster.bucket);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 253) as u8).collect();
    let digest = Digest::sha256(&data).to_string();

    let mut put = layerstore();
    aws(&mut put);
    put.args(["put", "--storage", &url, "--repo", "lib/app", "-"]);
    assert_eq!(ok_line(&run(put, Some(&data))), digest);
    let mut get = layerstore();
    aws(&mut get);
    get.args(["get", "--storage", &url, "--repo", "lib/app", &digest]);
    assert!(ok(&run(get, None)) == data);
    let mut get = layerstore();
    aws(&mut get);
    get.env("LAYERSTORE_STORAGE", &url)
        .args(["get", &digest, "--range", "100-199"]);
    assert_eq!(ok(&run(get, None)), &data[100..200]);
    let mut fsck = layerstore();
    aws(&mut fsck);
    fsck.args(["fsck", "--storage", &url]);
    let out = run(fsck, None);
    ok(&out);
    assert!(stderr(&out).contains("1 blobs"), "{}", stderr(&out));
    // Another prefix of the same bucket is another store.
    let mut get = layerstore();
    aws(&mut get);
    get.args([
        "get",
        "--storage",
        &format!("s3://{}/registry/two", cluster.bucket),
        &digest,
    ]);
    assert_eq!(run(get, None).status.code(), Some(1));

    // serve: the secret goes into the bucket under the prefix; a second instance shares it.
    let mut first = layerstore();
    aws(&mut first);
    let first = serve(first, &["--storage", &url]);
    assert!(
        first.log.contains(&format!("storage={url}")),
        "{}",
        first.log
    );
    assert!(first.log.contains("created=true"), "{}", first.log);
    let mut second = layerstore();
    aws(&mut second);
    let second = serve(second, &["--storage", &url]);
    assert!(second.log.contains("created=false"), "{}", second.log);
    // It serves what put stored (streamed from the bucket; not chunked: the length is known).
    let (status, body) = second.get(&format!("/v2/lib/app/blobs/{digest}"));
    assert!(status.contains(" 200 "), "{status}");
    assert!(body == data);
    drop((first, second));
    // The secret lives under the prefix: another prefix of the bucket makes its own.
    let mut third = layerstore();
    aws(&mut third);
    let other = format!("s3://{}/registry/two", cluster.bucket);
    let third = serve(third, &["--storage", &other]);
    assert!(third.log.contains("created=true"), "{}", third.log);
    drop(third);

    // A bucket that does not exist: one line, at once.
    let mut missing = layerstore();
    aws(&mut missing);
    missing.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--storage",
        "s3://no-such-bucket-here",
    ]);
    let started = Instant::now();
    let out = run(missing, None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));

    // Wrong credentials: one line, at once, naming what to check.
    let mut refused = layerstore();
    aws(&mut refused);
    refused.env("AWS_SECRET_ACCESS_KEY", "0".repeat(64)).args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--storage",
        &url,
    ]);
    let started = Instant::now();
    let out = run(refused, None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("access denied"), "{}", stderr(&out));
}
