//! `layerstore push`, `pull`, `copy` and `login` against distribution 2.8 (`docker-registry`), the
//! reference registry: a multi-platform image written by skopeo goes up and comes back
//! byte-identical (skopeo reads the result), plain, with distribution's htpasswd auth and with its
//! token auth (the test token server);
//! copies mount within it and stream to a layerstore server; a killed pull, run again,
//! continues where it stopped, and a killed push completes (a push killed mid-chunk starts
//! that blob again: distribution refuses the upload's saved state). Without `docker-registry`
//! the tests skip (fail in CI).

mod clients_support;
mod common;
mod transfer_support;

use std::path::Path;

use clients_support::RegistryProcess;
use common::token_server::{self, grant_requested, SigningKey, TokenServer, ISSUER, SERVICE};
use common::TestServer;
use transfer_support::{
    kill_when, large_layout, largest, login, skopeo_accepts, skopeo_layout, transfer, tree,
};

const USER: &str = "dist-user";
const PASSWORD: &str = "d1st-Pa55word";

/// Pushes the layout in `source` (tag v1) to `host/REPO:v1` and pulls it back into `out`:
/// every blob sent once, nothing the second time, the pulled layout byte-identical.
fn round_trip(cache: &Path, source: &Path, host: &str, repo: &str, out: &Path, flags: &[&str]) {
    let from = format!("{}:v1", source.display());
    let to = format!("{host}/{repo}:v1");
    let pushed = transfer(cache, &[&["push", &from, &to], flags].concat());
    assert_eq!(
        (
            pushed["manifests"].as_u64(),
            pushed["blobs_transferred"].as_u64()
        ),
        (Some(3), Some(6)),
        "{pushed}"
    );
    let again = transfer(cache, &[&["push", &from, &to], flags].concat());
    assert_eq!(
        again["blobs_present"], 6,
        "a second push sends nothing: {again}"
    );
    let pulled = transfer(
        cache,
        &[&["pull", &to, out.to_str().unwrap()], flags].concat(),
    );
    assert_eq!(pulled["blobs_transferred"], 6, "{pulled}");
    assert_eq!(
        tree(out),
        tree(source),
        "the pulled layout is byte-identical"
    );
    skopeo_accepts(out, "v1");
}

#[test]
fn round_trip_and_copies_through_distribution() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    if !skopeo_layout(work.path(), &source) {
        return;
    }
    let Some(registry) = RegistryProcess::distribution(&work.path().join("root"), "dist") else {
        return;
    };
    let host = registry.host();
    let cache = work.path().join("cache");
    let plain = ["--plain-http"];
    round_trip(
        &cache,
        &source,
        &host,
        "team/app",
        &work.path().join("out"),
        &plain,
    );

    let copy = |from: String, to: String| {
        transfer(
            &cache,
            &[&["copy", from.as_str(), to.as_str()], &plain[..]].concat(),
        )
    };
    let mounted = copy(
        format!("{host}/team/app:v1"),
        format!("{host}/other/app:v2"),
    );
    assert_eq!(mounted["blobs_mounted"], 6, "{mounted}");
    let ours = TestServer::start();
    let streamed = copy(
        format!("{host}/other/app:v2"),
        format!("{}/from/dist:v1", ours.addr),
    );
    assert_eq!(streamed["blobs_transferred"], 6, "{streamed}");
    let out = work.path().join("back");
    transfer(
        &cache,
        &[
            "pull",
            "--plain-http",
            &format!("{}/from/dist:v1", ours.addr),
            &format!("{}:v1", out.display()),
        ],
    );
    assert_eq!(tree(&out), tree(&source));
}

/// distribution's htpasswd auth (which 2.8 serves over plain HTTP too): `layerstore login`
/// checks the password and saves it, push and pull use the auth file.
#[test]
fn round_trip_through_distribution_with_htpasswd() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    if !skopeo_layout(work.path(), &source) {
        return;
    }
    let users = work.path().join("htpasswd");
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    std::fs::write(&users, format!("{USER}:{hash}\n")).unwrap();
    let auth = format!(
        "auth:\n  htpasswd:\n    realm: dist-tests\n    path: {}\n",
        users.display()
    );
    let root = work.path().join("root");
    let Some(registry) = RegistryProcess::distribution_with(&root, "dist", &auth) else {
        return;
    };
    let host = registry.host();
    let cache = work.path().join("cache");
    let authfile = work.path().join("auth.json");
    let flags = ["--plain-http", "--authfile", authfile.to_str().unwrap()];

    let refused = login(&cache, &host, USER, "wrong", &flags);
    assert_eq!(refused.status.code(), Some(1));
    assert!(!authfile.exists(), "a refused login wrote the auth file");
    let refused_push = transfer_support::run(
        &cache,
        &[
            &[
                "push",
                &format!("{}:v1", source.display()),
                &format!("{host}/a/b:v1"),
            ],
            &flags[..],
        ]
        .concat(),
    );
    assert_eq!(refused_push.status.code(), Some(1));
    let logged_in = login(&cache, &host, USER, PASSWORD, &flags);
    assert!(
        logged_in.status.success(),
        "{}",
        String::from_utf8_lossy(&logged_in.stderr)
    );
    round_trip(
        &cache,
        &source,
        &host,
        "auth/app",
        &work.path().join("out"),
        &flags,
    );
}

/// distribution's token auth, trusting the test token server's key (the libtrust `kid` of its
/// certificate): `layerstore login` goes through the token server, push and pull fetch tokens
/// per scope set.
#[test]
fn round_trip_through_distribution_with_token_auth() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    if !skopeo_layout(work.path(), &source) {
        return;
    }
    let key = SigningKey::ec();
    let bundle = key.write_bundle(&work.path().join("bundle.pem"), &[]);
    let tokens = TokenServer::start(key, grant_requested());
    let auth = format!(
        "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
        tokens.realm(),
        bundle.display()
    );
    let root = work.path().join("root");
    let Some(registry) = RegistryProcess::distribution_with(&root, "dist", &auth) else {
        return;
    };
    let host = registry.host();
    let cache = work.path().join("cache");
    let authfile = work.path().join("auth.json");
    let flags = ["--plain-http", "--authfile", authfile.to_str().unwrap()];
    let refused = login(&cache, &host, token_server::USER, "wrong", &flags);
    assert_eq!(refused.status.code(), Some(1));
    let logged_in = login(
        &cache,
        &host,
        token_server::USER,
        token_server::PASSWORD,
        &flags,
    );
    assert!(
        logged_in.status.success(),
        "{}",
        String::from_utf8_lossy(&logged_in.stderr)
    );
    round_trip(
        &cache,
        &source,
        &host,
        "token/app",
        &work.path().join("out"),
        &flags,
    );
    assert!(!tokens.issued().is_empty());
}

#[test]
fn killed_pushes_and_pulls_to_distribution_resume() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    let Some(registry) = RegistryProcess::distribution(&root, "dist") else {
        return;
    };
    let host = registry.host();
    let cache = work.path().join("cache");
    let source = large_layout(&work.path().join("source"), 192 << 20);
    let uploads = root.join("docker/registry/v2/repositories/big/app/_uploads");
    let (from, to) = (
        format!("{}:big", source.dir.display()),
        format!("{host}/big/app:v1"),
    );
    let push = ["push", "--plain-http", "--chunk-size", "4M", &from, &to];
    kill_when(&cache, &push, || largest(&uploads, "data") >= 8 << 20);
    // distribution 2.8 keeps the bytes of a PATCH cut short, and then refuses the saved
    // upload URL (its `_state` offset no longer matches the file: BLOB_UPLOAD_INVALID, 404),
    // so a push killed mid-chunk starts the blob again there; it must still end right.
    let resumed = transfer(&cache, &push);
    assert_eq!(resumed["blobs_transferred"], 1, "{resumed}");

    let out = work.path().join("out");
    let into = format!("{}:big", out.display());
    let pull = ["pull", "--plain-http", to.as_str(), &into];
    // Past 12 MiB the layer's hash state has been saved at 8 MiB.
    kill_when(&cache, &pull, || {
        largest(&out.join("blobs"), ".partial") >= 12 << 20
    });
    let resumed = transfer(&cache, &pull);
    assert!(
        resumed["bytes_resumed"].as_u64().unwrap() >= 8 << 20,
        "the pull continued: {resumed}"
    );
    assert_eq!(tree(&out.join("blobs")), tree(&source.dir.join("blobs")));
}
