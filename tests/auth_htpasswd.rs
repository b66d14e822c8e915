//! htpasswd authentication against the real `layerstore serve` binary: Basic credentials need
//! TLS or `--insecure-auth`; bad files stop serve with one line (never a hash); every refusal is
//! the same 401 with `Basic realm=…`, before anything is written; a wrong password and an
//! unknown user look alike and take as long; users added to or removed from the file count
//! without a restart; skopeo pushes and pulls over TLS with credentials. The server logs at
//! debug level to a file, and no password may appear in it.

mod auth_support;
mod clients_support;
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use auth_support::{assert_unauthorized, basic, push_small_image, start_failure, AuthServer};

const USER: &str = "alice";
const PASSWORD: &str = "Al1ce-htpasswd-s3cret";
const REALM: &str = "layerstore tests";

/// An htpasswd file in `dir` with `users` (name, password) hashed at `cost`.
fn htpasswd(dir: &Path, users: &[(&str, &str)], cost: u32) -> PathBuf {
    let path = dir.join("htpasswd");
    write_users(&path, users, cost);
    path
}

fn write_users(path: &Path, users: &[(&str, &str)], cost: u32) {
    let mut text = String::from("# layerstore test users\n\n");
    for (user, password) in users {
        text.push_str(&format!(
            "{user}:{}\n",
            bcrypt::hash(password, cost).unwrap()
        ));
    }
    std::fs::write(path, text).unwrap();
}

/// A server with `file` over plain HTTP (`--insecure-auth`) and the test realm.
fn insecure_server(file: &Path) -> AuthServer {
    AuthServer::start(&[
        "--htpasswd",
        file.to_str().unwrap(),
        "--insecure-auth",
        "--auth-realm",
        REALM,
    ])
}

fn challenge() -> String {
    format!("Basic realm=\"{REALM}\"")
}

#[test]
fn basic_credentials_need_tls_or_insecure_auth() {
    let dir = tempfile::tempdir().unwrap();
    let file = htpasswd(dir.path(), &[(USER, PASSWORD)], 4);
    let (code, stderr) = start_failure(&["--htpasswd", file.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--tls-cert") && stderr.contains("--insecure-auth"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let server = insecure_server(&file);
    let log = server.log_text();
    assert!(
        log.lines()
            .any(|line| line.contains("WARN") && line.contains("--insecure-auth")),
        "no warning:\n{log}"
    );
}

#[test]
fn bad_files_stop_serve_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let (code, stderr) =
        start_failure(&["--htpasswd", missing.to_str().unwrap(), "--insecure-auth"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let not_bcrypt = dir.path().join("sha1");
    let good = bcrypt::hash(PASSWORD, 4).unwrap();
    std::fs::write(
        &not_bcrypt,
        format!("{USER}:{good}\nbob:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"),
    )
    .unwrap();
    let (code, stderr) = start_failure(&[
        "--htpasswd",
        not_bcrypt.to_str().unwrap(),
        "--insecure-auth",
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(
        !stderr.contains("W6ph5Mm5") && !stderr.contains(&good[7..]),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let (code, stderr) = start_failure(&["--auth-realm", "r"]);
    assert_eq!(code, Some(2), "{stderr}");
}

#[test]
fn refusals_look_alike_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = htpasswd(dir.path(), &[(USER, PASSWORD)], 4);
    let server = insecure_server(&file);
    let blob = b"a blob that must never be stored";
    let upload = format!("/v2/app/blobs/uploads/?digest={}", common::sha256(blob));
    let credentials = [
        ("none", None),
        ("wrong password", Some(basic(USER, "wrong-password"))),
        ("unknown user", Some(basic("mallory", PASSWORD))),
        ("empty password", Some(basic(USER, ""))),
        ("user name in another case", Some(basic("ALICE", PASSWORD))),
        ("not base64", Some("Basic !!!not-base64!!!".to_owned())),
        ("no colon", Some(format!("Basic {}", base64_of(USER)))),
        (
            "a bearer token",
            Some("Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln".to_owned()),
        ),
        ("password as the user", Some(basic(PASSWORD, PASSWORD))),
    ];
    let requests = [
        ("GET", "/v2/".to_owned()),
        ("GET", "/v2/_catalog".to_owned()),
        ("GET", "/v2/app/manifests/v1".to_owned()),
        ("HEAD", "/v2/app/manifests/v1".to_owned()),
        ("POST", upload.clone()),
        ("PUT", "/v2/app/manifests/v1".to_owned()),
        ("DELETE", "/v2/app/manifests/v1".to_owned()),
    ];
    let mut bodies = Vec::new();
    for (what, authorization) in &credentials {
        for (method, path) in &requests {
            let before = server.stored();
            let mut headers = vec![("content-type", "application/octet-stream")];
            if let Some(value) = authorization {
                headers.push(("authorization", value.as_str()));
            }
            let body: &[u8] = if *method == "POST" || *method == "PUT" {
                blob
            } else {
                b""
            };
            let reply = server.request(method, path, &headers, body);
            let case = format!("{what}: {method} {path}");
            assert_unauthorized(&reply, &challenge(), &case);
            assert_eq!(server.stored(), before, "{case}: something was written");
            if *method == "POST" {
                let length = reply.header("content-length").map(str::to_owned);
                bodies.push((case, reply.body, length));
            }
        }
    }
    // Every refusal is the same answer, whatever was wrong.
    for (case, body, length) in &bodies[1..] {
        assert_eq!((body, length), (&bodies[0].1, &bodies[0].2), "{case}");
    }
    assert!(server.stored().is_empty(), "{:?}", server.stored());
    server.assert_log_free_of(&[
        PASSWORD.to_owned(),
        format!("{USER}:{PASSWORD}"),
        format!("{USER}:wrong-password"),
        "wrong-password".to_owned(),
    ]);
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn a_user_may_do_everything() {
    let dir = tempfile::tempdir().unwrap();
    let file = htpasswd(dir.path(), &[(USER, PASSWORD), ("bob", "b0b-Secret-Qz")], 4);
    let server = insecure_server(&file);
    let alice = basic(USER, PASSWORD);
    let (layer, manifest) = push_small_image(&server, &alice, "team/app", "v1");
    let auth = [("authorization", alice.as_str())];
    for path in [
        "/v2/".to_owned(),
        "/v2/_catalog".to_owned(),
        "/v2/team/app/tags/list".to_owned(),
        "/v2/team/app/manifests/v1".to_owned(),
        format!("/v2/team/app/blobs/{layer}"),
    ] {
        assert_eq!(
            server.request("GET", &path, &auth, b"").status,
            200,
            "{path}"
        );
    }
    // Another user, and a mount with no `from` (the whole registry is looked at).
    let bob = basic("bob", "b0b-Secret-Qz");
    let mount = format!("/v2/copy/blobs/uploads/?mount={layer}");
    let reply = server.request("POST", &mount, &[("authorization", &bob)], b"");
    assert_eq!(reply.status, 201);
    let path = format!("/v2/team/app/manifests/{manifest}");
    assert_eq!(server.request("DELETE", &path, &auth, b"").status, 202);
    server.assert_log_free_of(&[
        PASSWORD.to_owned(),
        format!("{USER}:{PASSWORD}"),
        "b0b-Secret-Qz".to_owned(),
    ]);
}

/// Unknown users are checked against a stand-in hash of the file's cost: as slow as a wrong
/// password (a server that answered them at once would tell an attacker which users exist).
#[test]
fn unknown_users_take_as_long_as_wrong_passwords() {
    const COST: u32 = 10;
    let dir = tempfile::tempdir().unwrap();
    let file = htpasswd(dir.path(), &[(USER, PASSWORD)], COST);
    let server = insecure_server(&file);
    let hash = bcrypt::hash(PASSWORD, COST).unwrap();
    let one_check = (0..3)
        .map(|_| {
            let start = Instant::now();
            assert!(bcrypt::verify(PASSWORD, &hash).unwrap());
            start.elapsed()
        })
        .min()
        .unwrap();
    let timed = |authorization: String| {
        let start = Instant::now();
        let reply = server.request("GET", "/v2/", &[("authorization", &authorization)], b"");
        assert_eq!(reply.status, 401);
        start.elapsed()
    };
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..9 {
        // Different passwords each time: failures are never cached, but be sure.
        wrong.push(timed(basic(USER, &format!("wrong-{i}"))));
        unknown.push(timed(basic(&format!("nobody{i}"), &format!("wrong-{i}"))));
    }
    let median = |mut times: Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (wrong, unknown) = (median(wrong), median(unknown));
    assert!(
        unknown >= one_check / 2,
        "unknown users answered in {unknown:?}, a bcrypt check takes {one_check:?}"
    );
    let ratio = unknown.as_secs_f64() / wrong.as_secs_f64();
    assert!(
        (0.67..1.5).contains(&ratio),
        "unknown user {unknown:?} vs wrong password {wrong:?}"
    );
}

#[test]
fn the_file_is_read_again_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let file = htpasswd(dir.path(), &[(USER, PASSWORD)], 4);
    let server = insecure_server(&file);
    let get = |authorization: &str| {
        server
            .request("GET", "/v2/", &[("authorization", authorization)], b"")
            .status
    };
    let (alice, carol) = (basic(USER, PASSWORD), basic("carol", "c4rol-pw"));
    assert_eq!(get(&alice), 200);
    assert_eq!(get(&alice), 200); // now cached
    assert_eq!(get(&carol), 401);
    write_users(&file, &[("carol", "c4rol-pw")], 4);
    // Looked at at most once a second.
    wait_for(|| get(&carol) == 200, "carol, added to the file");
    // Alice was removed: her cached success does not outlive the reload.
    assert_eq!(get(&alice), 401);
    // A file that turns invalid is reported, and the users read before stay.
    std::fs::write(&file, "carol:plaintext\n").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(get(&carol), 200);
    wait_for(
        || {
            server
                .log_text()
                .contains("htpasswd file changed but cannot be used")
        },
        "the warning",
    );
    server.assert_log_free_of(&[PASSWORD.to_owned(), "c4rol-pw".to_owned()]);
}

fn wait_for(mut condition: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: never");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_config_file_names_the_file_and_the_realm() {
    let dir = tempfile::tempdir().unwrap();
    let file = htpasswd(dir.path(), &[(USER, PASSWORD)], 4);
    let config = dir.path().join("layerstore.toml");
    std::fs::write(
        &config,
        format!(
            "[auth.htpasswd]\npath = \"{}\"\nrealm = \"from the file\"\n",
            file.display()
        ),
    )
    .unwrap();
    let server = AuthServer::start(&["--config", config.to_str().unwrap(), "--insecure-auth"]);
    let reply = server.request("GET", "/v2/", &[], b"");
    assert_unauthorized(&reply, "Basic realm=\"from the file\"", "config file");
    let alice = basic(USER, PASSWORD);
    let reply = server.request("GET", "/v2/", &[("authorization", &alice)], b"");
    assert_eq!(reply.status, 200);
}

/// The deployment the flags are for: htpasswd over TLS (no --insecure-auth, no warning), with
/// skopeo pushing and pulling back with credentials and the CA in `--cert-dir`.
#[test]
fn skopeo_pushes_and_pulls_over_tls_with_credentials() {
    use clients_support::oci::{assert_same_image, Layout};
    use clients_support::skopeo;
    if clients_support::require_tool("skopeo").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = common::certs::TestPki::new(&dir.path().join("pki"));
    let cert_dir = dir.path().join("certs.d");
    std::fs::create_dir_all(&cert_dir).unwrap();
    std::fs::copy(pki.ca(), cert_dir.join("ca.crt")).unwrap();
    let file = htpasswd(dir.path(), &[(USER, PASSWORD)], 4);
    let server = AuthServer::start(&[
        "--htpasswd",
        file.to_str().unwrap(),
        "--tls-cert",
        pki.server_cert().to_str().unwrap(),
        "--tls-key",
        pki.server_key().to_str().unwrap(),
    ]);
    assert!(!server.log_text().contains("WARN"), "{}", server.log_text());

    let source = Layout::create(&dir.path().join("layout"));
    let image = source.add_image(21, "amd64");
    source.tag("v1", &image);
    let reference = format!("docker://{}/tls/app:v1", server.addr);
    let cert_dir = cert_dir.to_str().unwrap();
    let creds = format!("{USER}:{PASSWORD}");
    let copy = |creds_flag: &str, creds: &str, from: &str, to: &str, succeed: bool| {
        let cert_flag = if creds_flag == "--dest-creds" {
            "--dest-cert-dir"
        } else {
            "--src-cert-dir"
        };
        skopeo(
            &[
                "copy",
                "--retry-times",
                "0",
                cert_flag,
                cert_dir,
                creds_flag,
                creds,
                from,
                to,
            ],
            succeed,
        )
    };
    let layout_ref = format!("oci:{}:v1", source.dir.display());
    let refused = copy(
        "--dest-creds",
        &format!("{USER}:nope"),
        &layout_ref,
        &reference,
        false,
    );
    assert!(!refused.status.success());
    assert!(server.stored().is_empty(), "{:?}", server.stored());
    copy("--dest-creds", &creds, &layout_ref, &reference, true);
    let out = dir.path().join("out");
    copy(
        "--src-creds",
        &creds,
        &reference,
        &format!("oci:{}:v1", out.display()),
        true,
    );
    assert_same_image(&source, &Layout::open(&out), "v1", "v1");
    server.assert_log_free_of(&[PASSWORD.to_owned(), creds]);
}
