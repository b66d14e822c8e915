//! `layerstore login`, `push`, `pull` and `copy` against registries that want credentials: the
//! real `layerstore serve` binary with htpasswd over TLS (the test CA in `--cert-dir`, or
//! `--tls-verify=false`) and with token auth through a real token server (asked once per scope
//! set, not per blob); a wrong password fails with one clear line, exit 1 and the auth file
//! untouched; podman reads the auth file `layerstore login` wrote, and layerstore the one
//! `podman login` wrote; a token that expires between two uploads is fetched again.

mod auth_support;
mod clients_support;
mod common;
mod transfer_support;

use std::path::{Path, PathBuf};

use base64::Engine as _;

use auth_support::AuthServer;
use common::certs::TestPki;
use common::token_server::{grant_requested, SigningKey, TokenServer, ISSUER, SERVICE};
use transfer_support::{login, skopeo_accepts, skopeo_layout, transfer, tree};

const USER: &str = "alice";
const PASSWORD: &str = "Al1ce-client-s3cret";

/// An htpasswd file in `dir` with the test user.
fn htpasswd(dir: &Path) -> PathBuf {
    let path = dir.join("htpasswd");
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    std::fs::write(&path, format!("{USER}:{hash}\n")).unwrap();
    path
}

/// An htpasswd registry over TLS, and a `certs.d`-style directory holding its CA as `ca.crt`.
fn tls_htpasswd_server(dir: &Path) -> (AuthServer, PathBuf) {
    let pki = TestPki::new(&dir.join("pki"));
    let cert_dir = dir.join("certs.d");
    std::fs::create_dir_all(&cert_dir).unwrap();
    std::fs::copy(pki.ca(), cert_dir.join("ca.crt")).unwrap();
    let file = htpasswd(dir);
    let server = AuthServer::start(&[
        "--htpasswd",
        file.to_str().unwrap(),
        "--tls-cert",
        pki.server_cert().to_str().unwrap(),
        "--tls-key",
        pki.server_key().to_str().unwrap(),
    ]);
    (server, cert_dir)
}

/// A token server and a registry (plain HTTP) trusting it.
fn token_setup(dir: &Path) -> (TokenServer, AuthServer) {
    let key = SigningKey::ec();
    let bundle = key.write_bundle(&dir.join("bundle.pem"), &[]);
    let tokens = TokenServer::start(key, grant_requested());
    let server = AuthServer::start(&[
        "--auth-token-realm",
        &tokens.realm(),
        "--auth-token-service",
        SERVICE,
        "--auth-token-issuer",
        ISSUER,
        "--auth-token-rootcertbundle",
        bundle.to_str().unwrap(),
    ]);
    (tokens, server)
}

/// The `auth` entry an auth file holds for `host`, decoded.
fn stored_login(file: &Path, host: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let auth = json["auths"][host]["auth"].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .unwrap();
    Some(String::from_utf8(bytes).unwrap())
}

#[test]
fn htpasswd_over_tls_login_then_push_pull_and_copy() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    if !skopeo_layout(work.path(), &source) {
        return;
    }
    let (server, cert_dir) = tls_htpasswd_server(work.path());
    let host = server.addr.to_string();
    let cache = work.path().join("cache");
    let authfile = work.path().join("auth.json");
    let (authfile_s, cert_dir_s) = (authfile.to_str().unwrap(), cert_dir.to_str().unwrap());
    let trust = ["--authfile", authfile_s, "--cert-dir", cert_dir_s];

    let logged_in = login(&cache, &host, USER, PASSWORD, &trust);
    assert!(
        logged_in.status.success(),
        "{}",
        String::from_utf8_lossy(&logged_in.stderr)
    );
    assert_eq!(
        stored_login(&authfile, &host).as_deref(),
        Some(format!("{USER}:{PASSWORD}").as_str())
    );

    let from = format!("{}:v1", source.display());
    let pushed = transfer(
        &cache,
        &[&["push", &from, &format!("{host}/tls/app:v1")], &trust[..]].concat(),
    );
    assert_eq!(
        (pushed["manifests"].as_u64(), pushed["blobs"].as_u64()),
        (Some(3), Some(6)),
        "{pushed}"
    );
    let copied = transfer(
        &cache,
        &[
            &[
                "copy",
                &format!("{host}/tls/app:v1"),
                &format!("{host}/tls/copy:v1"),
            ],
            &trust[..],
        ]
        .concat(),
    );
    assert_eq!(copied["blobs_mounted"], 6, "{copied}");
    // The same credentials, with the certificate not verified this time.
    let out = work.path().join("out");
    let pulled = transfer(
        &cache,
        &[
            "pull",
            "--tls-verify=false",
            "--authfile",
            authfile_s,
            &format!("{host}/tls/copy:v1"),
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(pulled["blobs_transferred"], 6, "{pulled}");
    assert_eq!(
        tree(&out),
        tree(&source),
        "the pulled layout is byte-identical"
    );
    skopeo_accepts(&out, "v1");

    // Without the auth file the registry refuses, with a message saying why.
    let refused = transfer_support::run(
        &cache,
        &[
            "pull",
            "--cert-dir",
            cert_dir_s,
            "--authfile",
            work.path().join("none.json").to_str().unwrap(),
            &format!("{host}/tls/app:v1"),
            work.path().join("refused").to_str().unwrap(),
        ],
    );
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("layerstore login"), "{stderr}");
    server.assert_log_free_of(&[PASSWORD.to_owned()]);
}

/// A wrong password: exit 1, one line saying the registry refused it, the auth file as it was.
#[test]
fn a_wrong_password_fails_login_and_keeps_the_auth_file() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let (server, cert_dir) = tls_htpasswd_server(work.path());
    let (tokens, token_server) = token_setup(work.path());
    let authfile = work.path().join("auth.json");
    let before = br#"{"auths":{"other.example":{"auth":"dXNlcjpwYXNz"}}}"#;
    std::fs::write(&authfile, before).unwrap();
    let authfile_s = authfile.to_str().unwrap();
    let cases = [
        (
            server.addr.to_string(),
            vec!["--cert-dir", cert_dir.to_str().unwrap()],
            "the registry refused the user name and password",
        ),
        (
            token_server.addr.to_string(),
            vec!["--plain-http"],
            "the token server refused the credentials",
        ),
    ];
    for (host, flags, reason) in cases {
        let args = [&["--authfile", authfile_s][..], &flags].concat();
        let output = login(&cache, &host, USER, "not-the-password", &args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.starts_with("layerstore login: ") && stderr.contains(reason),
            "{stderr}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(!stderr.contains("not-the-password"), "{stderr}");
        assert_eq!(std::fs::read(&authfile).unwrap(), before, "{host}");
    }
    assert!(tokens.issued().is_empty(), "a token for a wrong password");
}

#[test]
fn token_auth_login_then_push_pull_and_copy_ask_once_per_scope_set() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    if !skopeo_layout(work.path(), &source) {
        return;
    }
    let (tokens, server) = token_setup(work.path());
    let host = server.addr.to_string();
    let cache = work.path().join("cache");
    let authfile = work.path().join("auth.json");
    let authfile_s = authfile.to_str().unwrap();
    let flags = ["--plain-http", "--authfile", authfile_s];
    let logged_in = login(
        &cache,
        &host,
        common::token_server::USER,
        common::token_server::PASSWORD,
        &flags,
    );
    assert!(
        logged_in.status.success(),
        "{}",
        String::from_utf8_lossy(&logged_in.stderr)
    );
    let after_login = tokens.issued().len();
    assert_eq!(after_login, 1, "login asks for one token (for /v2/)");

    let from = format!("{}:v1", source.display());
    let pushed = transfer(
        &cache,
        &[&["push", &from, &format!("{host}/tok/app:v1")], &flags[..]].concat(),
    );
    assert_eq!(pushed["blobs_transferred"], 6, "{pushed}");
    let for_push = tokens.issued().len() - after_login;
    assert_eq!(
        for_push, 2,
        "a token per scope set (pull for the checks, pull+push for the uploads), not one per \
         blob or manifest"
    );

    let out = work.path().join("out");
    transfer(
        &cache,
        &[
            &["pull", &format!("{host}/tok/app:v1"), out.to_str().unwrap()],
            &flags[..],
        ]
        .concat(),
    );
    assert_eq!(
        tree(&out),
        tree(&source),
        "the pulled layout is byte-identical"
    );
    skopeo_accepts(&out, "v1");
    let for_pull = tokens.issued().len() - after_login - for_push;
    assert_eq!(for_pull, 1, "one token for the pull");

    let copied = transfer(
        &cache,
        &[
            &[
                "copy",
                &format!("{host}/tok/app:v1"),
                &format!("{host}/tok/copy:v1"),
            ],
            &flags[..],
        ]
        .concat(),
    );
    assert_eq!(copied["blobs_mounted"], 6, "{copied}");
    let for_copy = tokens.issued().len() - after_login - for_push - for_pull;
    assert!(
        (1..=3).contains(&for_copy),
        "a copy needs at most a token per scope set (source pull, destination push, mount), \
         not one per blob: {for_copy}"
    );
    let mut secrets = tokens.issued();
    secrets.push(common::token_server::PASSWORD.to_owned());
    server.assert_log_free_of(&secrets);
}

/// podman reads the auth file `layerstore login` wrote, and `layerstore pull` uses the one
/// `podman login` wrote (podman with a store of its own, its auth file in `work`).
#[test]
fn podman_and_layerstore_read_each_others_auth_file() {
    if !auth_support::podman_usable() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let source = dir.join("source");
    if !skopeo_layout(dir, &source) {
        return;
    }
    let file = htpasswd(dir);
    let server = AuthServer::start(&["--htpasswd", file.to_str().unwrap(), "--insecure-auth"]);
    let host = server.addr.to_string();
    let cache = dir.join("cache");
    let authfile = dir.join("auth.json");
    let flags = ["--plain-http", "--authfile", authfile.to_str().unwrap()];

    let logged_in = login(&cache, &host, USER, PASSWORD, &flags);
    assert!(logged_in.status.success());
    let user = auth_support::podman_ok(dir, "store", &["login", "--get-login", &host]);
    assert_eq!(user.trim(), USER, "podman reads layerstore's auth file");
    transfer(
        &cache,
        &[
            &[
                "push",
                &format!("{}:v1", source.display()),
                &format!("{host}/pod/app:v1"),
            ],
            &flags[..],
        ]
        .concat(),
    );
    let pulled = auth_support::podman_ok(
        dir,
        "store",
        &[
            "pull",
            "-q",
            "--tls-verify=false",
            &format!("{host}/pod/app:v1"),
        ],
    );
    assert!(
        !pulled.trim().is_empty(),
        "podman pulled with layerstore's login"
    );

    std::fs::remove_file(&authfile).unwrap();
    let login_args = [
        "login",
        "--tls-verify=false",
        "-u",
        USER,
        "-p",
        PASSWORD,
        &host,
    ];
    auth_support::podman_ok(dir, "store", &login_args);
    assert_eq!(
        stored_login(&authfile, &host).as_deref(),
        Some(format!("{USER}:{PASSWORD}").as_str())
    );
    let out = dir.join("out");
    transfer(
        &cache,
        &[
            &["pull", &format!("{host}/pod/app:v1"), out.to_str().unwrap()],
            &flags[..],
        ]
        .concat(),
    );
    assert_eq!(tree(&out), tree(&source));
}

/// The library: a token that expires between two uploads is fetched again before the second
/// (a streamed upload, which cannot be repeated after a 401), and the old one is really
/// refused by then.
#[test]
fn an_expired_token_is_fetched_again() {
    use layerstore::client::credentials::Credential;
    use layerstore::client::{ClientOptions, PushOptions, PushOutcome, Registry};
    use layerstore::digest::Digest;

    let work = tempfile::tempdir().unwrap();
    let (tokens, server) = token_setup(work.path());
    // The client keeps a token until 10 s before it expires: 2 s here.
    tokens.set_lifetime(12);
    let options = ClientOptions {
        credential: Some(Credential::Basic {
            username: common::token_server::USER.into(),
            password: common::token_server::PASSWORD.into(),
        }),
        ..ClientOptions::plain_http()
    };
    let registry = Registry::new(&server.addr.to_string(), options).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (first, issued) = runtime.block_on(async {
        let first = registry
            .push_blob_bytes("exp/app", "first".into())
            .await
            .unwrap();
        (first, tokens.issued())
    });
    assert!(!issued.is_empty(), "no token was fetched");
    std::thread::sleep(std::time::Duration::from_secs(13));
    let stale = server.request(
        "HEAD",
        &format!("/v2/exp/app/blobs/{first}"),
        &[("authorization", &format!("Bearer {}", issued[0]))],
        b"",
    );
    assert_eq!(stale.status, 401, "the first token has expired");
    runtime.block_on(async {
        let data = common::content(3 << 20, 5);
        let file = work.path().join("layer");
        std::fs::write(&file, &data).unwrap();
        let digest = Digest::sha256(&data);
        let push = PushOptions {
            chunk_size: Some(1 << 20),
            ..PushOptions::default()
        };
        let outcome = registry
            .push_blob_file("exp/app", &digest, data.len() as u64, &file, &push)
            .await
            .unwrap();
        assert!(
            matches!(outcome, PushOutcome::Uploaded { .. }),
            "{outcome:?}"
        );
        assert_eq!(
            registry.blob_size("exp/app", &first).await.unwrap(),
            Some(5)
        );
    });
    assert!(
        tokens.issued().len() > issued.len(),
        "no new token was fetched"
    );
}
