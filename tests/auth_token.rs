//! Registry token authentication against the real `layerstore serve` binary and a real token
//! server (`common::token_server`): forged, expired, misdirected and insufficient tokens are
//! each refused with 401 `UNAUTHORIZED` and the exact challenge, and nothing is written; valid
//! tokens allow exactly their scopes (mounts need `pull` on the source); `x5c` and `jwk`
//! headers; RSA keys; skopeo and podman logging in through the token server. The server logs
//! at debug level to a file, and no token or password may appear in it.

mod auth_support;
mod clients_support;
mod common;

use base64::Engine as _;
use serde_json::{json, Value};

use auth_support::{assert_unauthorized, push_small_image, AuthServer};
use common::token_server::{
    claims, grant_requested, now, SigningKey, TokenServer, ISSUER, PASSWORD, SERVICE, USER,
};
use layerstore::auth::{Action, Scope};

use Action::{Delete, Pull, Push};

/// A token server with `key` and a registry trusting `key` (and `also`).
struct Setup {
    tokens: TokenServer,
    server: AuthServer,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn new(key: SigningKey, also: &[&SigningKey]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bundle = key.write_bundle(&dir.path().join("bundle.pem"), also);
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
        Setup {
            tokens,
            server,
            _dir: dir,
        }
    }

    /// The challenge this registry sends, with `scope` and `error` if given.
    fn challenge(&self, scope: Option<&str>, error: Option<&str>) -> String {
        let mut value = format!(
            "Bearer realm=\"{}\",service=\"{SERVICE}\"",
            self.tokens.realm()
        );
        if let Some(scope) = scope {
            value.push_str(&format!(",scope=\"{scope}\""));
        }
        if let Some(error) = error {
            value.push_str(&format!(",error=\"{error}\""));
        }
        value
    }

    /// `Bearer <a valid token granting access>`.
    fn bearer(&self, access: &[Scope]) -> String {
        format!("Bearer {}", self.tokens.token(access))
    }
}

fn repo(name: &str, actions: &[Action]) -> Scope {
    Scope::repository(name, actions)
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Claims of a valid token for `app` with push, changed by `changes` (`null` drops a claim).
fn changed_claims(changes: Value) -> Value {
    let mut claims = claims(&[repo("app", &[Pull, Push])]);
    for (key, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(key);
        } else {
            claims[key] = value.clone();
        }
    }
    claims
}

/// One refused request: what it is, its `Authorization`, method and path, and the scope and
/// error its challenge must name.
type Refused = (
    &'static str,
    Option<String>,
    &'static str,
    String,
    Option<&'static str>,
    Option<&'static str>,
);

/// Tokens forged, expired or misdirected in every way the registry must notice, each with what
/// it is; each is refused as `invalid_token`. `key` is the bundle's key.
fn invalid_tokens(key: &SigningKey) -> Vec<(&'static str, String)> {
    let forger = SigningKey::ec();
    let valid_claims = changed_claims(json!({}));
    let signed = |by: &SigningKey, header: jsonwebtoken::Header| by.sign(&header, &valid_claims);
    let with = |changes: Value| key.sign(&key.header(), &changed_claims(changes));
    let valid = with(json!({}));
    let parts: Vec<&str> = valid.split('.').collect();
    let more = changed_claims(json!({"access": [repo("app", &[Action::All])]}));
    let tampered = format!("{}.{}.{}", parts[0], b64(&more), parts[2]);
    let none_header = json!({"alg": "none", "typ": "JWT", "kid": key.kid});
    let alg_none = format!("{}.{}.", b64(&none_header), b64(&valid_claims));
    let mut hs256 = key.header();
    hs256.alg = jsonwebtoken::Algorithm::HS256;
    let hmac = key.hmac_with_certificate();
    let confused = jsonwebtoken::encode(&hs256, &valid_claims, &hmac).unwrap();
    let mut no_kid = key.header();
    no_kid.kid = None;
    vec![
        ("expired", with(json!({"exp": now() - 3600}))),
        ("not yet valid", with(json!({"nbf": now() + 3600}))),
        ("no exp", with(json!({"exp": null}))),
        ("wrong audience", with(json!({"aud": "another-registry"}))),
        ("wrong issuer", with(json!({"iss": "someone-else"}))),
        ("unknown signing key", signed(&forger, forger.header())),
        (
            "unknown key under the bundle's kid",
            signed(&forger, key.header()),
        ),
        ("unknown key in jwk", signed(&forger, forger.jwk_header())),
        (
            "self-signed x5c not in the bundle",
            signed(&forger, forger.x5c_header()),
        ),
        ("no key reference", signed(key, no_kid)),
        ("alg none", alg_none),
        ("HS256 keyed with the public certificate", confused),
        ("tampered payload", tampered),
        (
            "oversized (20 KiB)",
            with(json!({"pad": "x".repeat(20 * 1024)})),
        ),
        ("not a JWT", "not.a-jwt".to_owned()),
        ("a header of {} (no alg)", "e30.e30.e30".to_owned()),
    ]
}

#[test]
fn refused_tokens_get_the_exact_challenge_and_write_nothing() {
    let setup = Setup::new(SigningKey::ec(), &[]);
    let blob = b"a layer that must never be stored";
    let upload = format!("/v2/app/blobs/uploads/?digest={}", common::sha256(blob));
    let manifest = "/v2/app/manifests/v1".to_owned();
    let (push, pull) = (
        Some("repository:app:pull,push"),
        Some("repository:app:pull"),
    );
    let invalid = Some("invalid_token");
    let insufficient = Some("insufficient_scope");
    let bearer = |token: &str| Some(format!("Bearer {token}"));
    let pull_only = setup.bearer(&[repo("app", &[Pull])]);
    let pull_push = setup.bearer(&[repo("app", &[Pull, Push])]);
    let expired = bearer(&setup.tokens.key().sign(
        &setup.tokens.key().header(),
        &changed_claims(json!({"exp": now() - 3600})),
    ));

    let mut cases: Vec<Refused> = invalid_tokens(setup.tokens.key())
        .into_iter()
        .map(|(what, token)| (what, bearer(&token), "POST", upload.clone(), push, invalid))
        .collect();
    let basic = Some(auth_support::basic(USER, PASSWORD));
    // Header values lose trailing spaces: "Bearer " is the scheme alone, no token (as in
    // distribution, a challenge without an error).
    let empty = Some("Bearer ".to_owned());
    let other_repo = Some(setup.bearer(&[repo("other", &[Pull, Push])]));
    cases.extend([
        ("none: /v2/", None, "GET", "/v2/".to_owned(), None, None),
        ("none: upload", None, "POST", upload.clone(), push, None),
        ("none: pull", None, "GET", manifest.clone(), pull, None),
        ("none: HEAD", None, "HEAD", manifest.clone(), pull, None),
        (
            "Basic to a token registry",
            basic,
            "POST",
            upload.clone(),
            push,
            None,
        ),
        ("empty bearer", empty, "POST", upload.clone(), push, None),
        (
            "expired, on /v2/",
            expired,
            "GET",
            "/v2/".to_owned(),
            None,
            invalid,
        ),
        (
            "another repository's token",
            other_repo,
            "POST",
            upload.clone(),
            push,
            insufficient,
        ),
        (
            "pull-only token to push",
            Some(pull_only.clone()),
            "POST",
            upload,
            push,
            insufficient,
        ),
        (
            "pull-only token to put",
            Some(pull_only),
            "PUT",
            manifest.clone(),
            push,
            insufficient,
        ),
    ]);
    let delete = Some("repository:app:delete");
    let catalog = Some("registry:catalog:*");
    cases.push((
        "push token to delete",
        Some(pull_push.clone()),
        "DELETE",
        manifest,
        delete,
        insufficient,
    ));
    cases.push((
        "repository token for the catalog",
        Some(pull_push),
        "GET",
        "/v2/_catalog".into(),
        catalog,
        insufficient,
    ));

    let mut secrets = Vec::new();
    for (what, authorization, method, path, scope, error) in &cases {
        let before = setup.server.stored();
        let mut headers = vec![("content-type", "application/octet-stream")];
        if let Some(authorization) = authorization {
            headers.push(("authorization", authorization.as_str()));
            let token = authorization.trim_start_matches("Bearer ");
            if token.len() > 20 {
                secrets.push(token.to_owned());
            }
        }
        let body: &[u8] = if *method == "POST" || *method == "PUT" {
            blob
        } else {
            b""
        };
        let reply = setup.server.request(method, path, &headers, body);
        assert_unauthorized(&reply, &setup.challenge(*scope, *error), what);
        assert_eq!(
            setup.server.stored(),
            before,
            "{what}: something was written"
        );
    }
    assert!(
        setup.server.stored().is_empty(),
        "{:?}",
        setup.server.stored()
    );
    secrets.extend(setup.tokens.issued());
    secrets.push(PASSWORD.to_owned());
    secrets.push(format!("{USER}:{PASSWORD}"));
    setup.server.assert_log_free_of(&secrets);
}

#[test]
fn tokens_allow_exactly_their_scopes() {
    let setup = Setup::new(SigningKey::ec(), &[]);
    let pull_push = setup.bearer(&[repo("app", &[Pull, Push])]);
    let (layer, manifest) = push_small_image(&setup.server, &pull_push, "app", "v1");

    // Reads with pull; /v2/ with any valid token.
    let pull = setup.bearer(&[repo("app", &[Pull])]);
    let get = |path: &str, authorization: &str| {
        setup
            .server
            .request("GET", path, &[("authorization", authorization)], b"")
    };
    assert_eq!(get("/v2/", &setup.bearer(&[])).status, 200);
    assert_eq!(get("/v2/app/manifests/v1", &pull).status, 200);
    assert_eq!(get(&format!("/v2/app/blobs/{layer}"), &pull).status, 200);
    assert_eq!(get("/v2/app/tags/list", &pull).status, 200);
    let catalog = get("/v2/_catalog", &setup.bearer(&[Scope::catalog()]));
    assert_eq!(catalog.status, 200);
    assert!(String::from_utf8_lossy(&catalog.body).contains("\"app\""));
    // `*` grants every action on its resource.
    let all = setup.bearer(&[repo("app", &[Action::All])]);
    assert_eq!(get("/v2/app/manifests/v1", &all).status, 200);

    // A mount needs pull on the source: without it, a normal session starts and nothing is
    // linked; with it, the blob is mounted.
    let mount = format!("/v2/copy/blobs/uploads/?mount={layer}&from=app");
    let copy_only = setup.bearer(&[repo("copy", &[Pull, Push])]);
    let reply = setup
        .server
        .request("POST", &mount, &[("authorization", &copy_only)], b"");
    assert_eq!(reply.status, 202, "mount without pull on the source");
    let copy_pull = setup.bearer(&[repo("copy", &[Pull])]);
    assert_eq!(
        get(&format!("/v2/copy/blobs/{layer}"), &copy_pull).status,
        404
    );
    // No `from`: the whole registry would be searched, so only a token that may see the whole
    // registry (the catalog's scope) may.
    let no_from = format!("/v2/copy/blobs/uploads/?mount={layer}");
    let reply = setup
        .server
        .request("POST", &no_from, &[("authorization", &copy_only)], b"");
    assert_eq!(reply.status, 202, "mount without from");
    let copy_and_catalog = setup.bearer(&[repo("copy", &[Pull, Push]), Scope::catalog()]);
    let reply = setup.server.request(
        "POST",
        &no_from,
        &[("authorization", &copy_and_catalog)],
        b"",
    );
    assert_eq!(
        reply.status, 201,
        "mount without from, with the catalog's scope"
    );
    let both = setup.bearer(&[repo("copy", &[Pull, Push]), repo("app", &[Pull])]);
    let reply = setup
        .server
        .request("POST", &mount, &[("authorization", &both)], b"");
    assert_eq!(reply.status, 201, "mount with pull on the source");
    assert_eq!(
        get(&format!("/v2/copy/blobs/{layer}"), &copy_pull).status,
        200
    );

    // Delete needs delete.
    let delete = setup.bearer(&[repo("app", &[Delete])]);
    let path = format!("/v2/app/manifests/{manifest}");
    let reply = setup
        .server
        .request("DELETE", &path, &[("authorization", &delete)], b"");
    assert_eq!(reply.status, 202);

    let mut secrets = setup.tokens.issued();
    secrets.push(PASSWORD.to_owned());
    setup.server.assert_log_free_of(&secrets);
}

#[test]
fn x5c_chains_and_jwk_headers_name_bundle_keys() {
    let ca = SigningKey::ca();
    let direct = SigningKey::ec();
    // The bundle: the token server's key and a CA.
    let setup = Setup::new(direct, &[&ca]);
    let leaf = SigningKey::leaf_of(&ca);
    let stranger_ca = SigningKey::ca();
    let stranger = SigningKey::leaf_of(&stranger_ca);
    let pull = claims(&[repo("app", &[Pull])]);
    let try_token = |token: String| {
        let bearer = format!("Bearer {token}");
        setup.server.request(
            "GET",
            "/v2/app/tags/list",
            &[("authorization", &bearer)],
            b"",
        )
    };
    // Accepted (404: the repository is not there, but the request got past authorization).
    let accepted = [
        (
            "x5c leaf issued by a bundle CA",
            leaf.sign(&leaf.x5c_header(), &pull),
        ),
        (
            "x5c of a bundle certificate itself",
            setup
                .tokens
                .key()
                .sign(&setup.tokens.key().x5c_header(), &pull),
        ),
        (
            "jwk of a bundle key",
            setup
                .tokens
                .key()
                .sign(&setup.tokens.key().jwk_header(), &pull),
        ),
    ];
    for (what, token) in accepted {
        assert_eq!(try_token(token).status, 404, "{what}");
    }
    let challenge = setup.challenge(Some("repository:app:pull"), Some("invalid_token"));
    let refused = [
        (
            "x5c leaf of another CA",
            stranger.sign(&stranger.x5c_header(), &pull),
        ),
        (
            "kid of a leaf that is not in the bundle",
            leaf.sign(&leaf.header(), &pull),
        ),
        (
            "jwk of a leaf that is not in the bundle",
            leaf.sign(&leaf.jwk_header(), &pull),
        ),
    ];
    for (what, token) in refused {
        assert_unauthorized(&try_token(token), &challenge, what);
    }
}

#[test]
fn rsa_keys_sign_rs256_and_ps256() {
    let setup = Setup::new(SigningKey::rsa(), &[]);
    let key = setup.tokens.key();
    let pull = claims(&[repo("app", &[Pull])]);
    let bearer = |token: String| format!("Bearer {token}");
    let get = |authorization: &str| {
        setup.server.request(
            "GET",
            "/v2/app/tags/list",
            &[("authorization", authorization)],
            b"",
        )
    };
    assert_eq!(get(&bearer(key.sign(&key.header(), &pull))).status, 404);
    let mut ps256 = key.header();
    ps256.alg = jsonwebtoken::Algorithm::PS256;
    assert_eq!(get(&bearer(key.sign(&ps256, &pull))).status, 404);
    let mut hs256 = key.header();
    hs256.alg = jsonwebtoken::Algorithm::HS256;
    let confused = jsonwebtoken::encode(&hs256, &pull, &key.hmac_with_certificate()).unwrap();
    let challenge = setup.challenge(Some("repository:app:pull"), Some("invalid_token"));
    assert_unauthorized(&get(&bearer(confused)), &challenge, "HS256 with an RSA key");
}

#[test]
fn bad_token_settings_stop_serve() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let token_args = |bundle: &str| {
        vec![
            "--auth-token-realm".to_owned(),
            "http://127.0.0.1:1/token".to_owned(),
            "--auth-token-service".to_owned(),
            SERVICE.to_owned(),
            "--auth-token-issuer".to_owned(),
            ISSUER.to_owned(),
            "--auth-token-rootcertbundle".to_owned(),
            bundle.to_owned(),
        ]
    };
    for (bundle, needle) in [(&missing, "missing.pem"), (&garbage, "certificate 1")] {
        let args = token_args(bundle.to_str().unwrap());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stderr) = auth_support::start_failure(&args);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    let args = token_args("unused.pem");
    let partial: Vec<&str> = args[..4].iter().map(String::as_str).collect();
    let (code, stderr) = auth_support::start_failure(&partial);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--auth-token-issuer"), "{stderr}");
}

/// skopeo copies in and out with `--dest-creds`/`--src-creds` through the token server, wrong
/// credentials are refused with nothing stored, and podman logs in, pushes and pulls back.
#[test]
fn skopeo_and_podman_log_in_through_the_token_server() {
    use clients_support::oci::{assert_same_image, Layout};
    if clients_support::require_tool("skopeo").is_none() {
        return;
    }
    let setup = Setup::new(SigningKey::ec(), &[]);
    let host = setup.server.addr;
    let work = tempfile::tempdir().unwrap();
    let creds = format!("{USER}:{PASSWORD}");

    let source = Layout::create(&work.path().join("layout"));
    let image = source.add_image(11, "amd64");
    source.tag("v1", &image);
    let refused = clients_support::skopeo(
        &[
            "copy",
            "--dest-tls-verify=false",
            "--retry-times",
            "0",
            "--dest-creds",
            &format!("{USER}:wrong-password"),
            &format!("oci:{}:v1", source.dir.display()),
            &format!("docker://{host}/e2e/app:v1"),
        ],
        false,
    );
    assert!(!refused.status.success());
    assert!(
        setup.server.stored().is_empty(),
        "{:?}",
        setup.server.stored()
    );

    clients_support::skopeo_copy(
        &format!("oci:{}:v1", source.dir.display()),
        &format!("docker://{host}/e2e/app:v1"),
        &["--dest-creds", &creds],
    );
    let out = work.path().join("out");
    clients_support::skopeo_copy(
        &format!("docker://{host}/e2e/app:v1"),
        &format!("oci:{}:v1", out.display()),
        &["--src-creds", &creds],
    );
    assert_same_image(&source, &Layout::open(&out), "v1", "v1");

    if auth_support::podman_usable() {
        let podman_dir = tempfile::tempdir().unwrap();
        let work = podman_dir.path();
        let src = Layout::create(&work.join("src"));
        let image = src.add_image(12, "amd64");
        src.tag("v1", &image);
        let host = host.to_string();
        let login = [
            "login",
            "--tls-verify=false",
            "-u",
            USER,
            "-p",
            PASSWORD,
            &host,
        ];
        auth_support::podman_ok(work, "pusher", &login);
        let id = auth_support::podman_ok(work, "pusher", &["pull", "-q", "oci:src:v1"]);
        let id = id.trim();
        let reference = format!("docker://{host}/e2e/podman:v1");
        auth_support::podman_ok(
            work,
            "pusher",
            &["push", "--tls-verify=false", id, &reference],
        );
        let pulled = auth_support::podman_ok(
            work,
            "puller",
            &["pull", "-q", "--tls-verify=false", &reference],
        );
        assert_eq!(pulled.trim(), id);
        let link = setup
            .server
            .root
            .join("docker/registry/v2/repositories/e2e/podman/_manifests/tags/v1/current/link");
        assert!(link.is_file(), "podman's push is not in the registry");
    }

    let mut secrets = setup.tokens.issued();
    assert!(
        secrets.len() >= 2,
        "the clients got no tokens: {}",
        secrets.len()
    );
    secrets.push(PASSWORD.to_owned());
    secrets.push(creds);
    setup.server.assert_log_free_of(&secrets);
}
