//! A small registry token server for the token-auth tests: the docker token protocol
//! (`GET /token?service=S&scope=…&account=…` with Basic credentials, answering
//! `{"token", "access_token", "expires_in", "issued_at"}`) on 127.0.0.1 port 0, on hyper.
//!
//! Tokens are real JWTs signed ES256 or RS256 by a key whose self-signed certificate (made with
//! rcgen) is the root cert bundle given to `layerstore serve`, and their header carries the
//! key's libtrust id as `kid`, as distribution-style token servers do. What a token grants is
//! a [`Policy`]'s choice; [`grant_requested`] gives the fixed user exactly what it asks for.
//! [`SigningKey`] also lets tests sign tokens of their own (forged, expired, chained).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use layerstore::auth::Scope;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::{json, Value};

/// The one account of the token server.
pub const USER: &str = "tokenuser";
/// Its password.
pub const PASSWORD: &str = "t0ken-Pa55word-xyzzy";
/// The issuer the server writes into tokens.
pub const ISSUER: &str = "layerstore-test-issuer";
/// The service (audience) the server issues tokens for.
pub const SERVICE: &str = "layerstore-test-registry";

/// What a token grants: given the authenticated account (`None`: anonymous) and the scopes
/// asked for.
pub type Policy = Arc<dyn Fn(Option<&str>, &[Scope]) -> Vec<Scope> + Send + Sync>;

/// The fixed user gets exactly what it asks for; anonymous clients get nothing.
pub fn grant_requested() -> Policy {
    Arc::new(|account, scopes| match account {
        Some(_) => scopes.to_vec(),
        None => Vec::new(),
    })
}

/// A key that signs tokens, with its certificate.
pub struct SigningKey {
    /// Its certificate, PEM.
    pub cert_pem: String,
    /// Its certificate, DER.
    pub cert_der: Vec<u8>,
    /// The libtrust id of its public key.
    pub kid: String,
    /// The algorithm it signs with.
    pub alg: Algorithm,
    encoding: EncodingKey,
    issuer: Option<Issuer<'static, KeyPair>>,
}

impl SigningKey {
    /// A P-256 key (ES256) with a self-signed certificate.
    pub fn ec() -> Self {
        Self::self_signed(KeyPair::generate().unwrap(), Algorithm::ES256, false)
    }

    /// A 2048-bit RSA key (RS256) with a self-signed certificate.
    pub fn rsa() -> Self {
        let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        Self::self_signed(key, Algorithm::RS256, false)
    }

    /// A P-256 CA that can issue [`SigningKey::leaf_of`] certificates.
    pub fn ca() -> Self {
        Self::self_signed(KeyPair::generate().unwrap(), Algorithm::ES256, true)
    }

    fn self_signed(key: KeyPair, alg: Algorithm, ca: bool) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "layerstore test token signer");
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        let cert = params.self_signed(&key).unwrap();
        let encoding = encoding_key(&key, alg);
        let cert_pem = cert.pem();
        SigningKey {
            kid: kid_of(&cert_pem),
            cert_pem,
            cert_der: cert.der().to_vec(),
            alg,
            encoding,
            issuer: ca.then(|| Issuer::new(params, key)),
        }
    }

    /// A P-256 key with a certificate issued by `ca`.
    pub fn leaf_of(ca: &SigningKey) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "layerstore test token leaf");
        let issuer = ca.issuer.as_ref().expect("a CA key");
        let cert = params.signed_by(&key, issuer).unwrap();
        let cert_pem = cert.pem();
        SigningKey {
            kid: kid_of(&cert_pem),
            encoding: encoding_key(&key, Algorithm::ES256),
            cert_pem,
            cert_der: cert.der().to_vec(),
            alg: Algorithm::ES256,
            issuer: None,
        }
    }

    /// A header with this key's algorithm and `kid`.
    pub fn header(&self) -> Header {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        header
    }

    /// A header carrying this key's certificate as a one-element `x5c` chain (and no `kid`).
    pub fn x5c_header(&self) -> Header {
        let mut header = Header::new(self.alg);
        header.x5c = Some(vec![
            base64::engine::general_purpose::STANDARD.encode(&self.cert_der)
        ]);
        header
    }

    /// A header carrying this key itself as `jwk` (and no `kid`).
    pub fn jwk_header(&self) -> Header {
        let mut header = Header::new(self.alg);
        header.jwk =
            Some(jsonwebtoken::jwk::Jwk::from_encoding_key(&self.encoding, self.alg).unwrap());
        header
    }

    /// The key for HMAC signing with this certificate's PEM bytes (algorithm confusion).
    pub fn hmac_with_certificate(&self) -> EncodingKey {
        EncodingKey::from_secret(self.cert_pem.as_bytes()).unwrap()
    }

    /// Signs `claims` under `header`.
    pub fn sign(&self, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(header, claims, &self.encoding).unwrap()
    }

    /// Writes this key's certificate (and those of `others`) as a root cert bundle.
    pub fn write_bundle(&self, path: &Path, others: &[&SigningKey]) -> PathBuf {
        let mut pem = self.cert_pem.clone();
        for other in others {
            pem.push_str(&other.cert_pem);
        }
        std::fs::write(path, pem).unwrap();
        path.to_path_buf()
    }
}

fn encoding_key(key: &KeyPair, alg: Algorithm) -> EncodingKey {
    let pem = key.serialize_pem();
    match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        _ => EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
    }
}

/// The libtrust key id of a certificate's key, as layerstore computes it (its unit tests check
/// that computation against an independent one).
fn kid_of(cert_pem: &str) -> String {
    let bundle =
        layerstore::auth::token::KeyBundle::from_pem(cert_pem.as_bytes(), Path::new("cert.pem"))
            .unwrap();
    let kid = bundle.key_ids().next().unwrap().to_owned();
    kid
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims of a valid token from [`ISSUER`] for [`SERVICE`] granting `access`, valid for 5 min.
pub fn claims(access: &[Scope]) -> Value {
    json!({
        "iss": ISSUER,
        "sub": USER,
        "aud": SERVICE,
        "exp": now() + 300,
        "nbf": now() - 5,
        "iat": now(),
        "jti": format!("{}", now()),
        "access": access,
    })
}

struct State {
    key: SigningKey,
    policy: Policy,
    issued: Mutex<Vec<String>>,
    /// Seconds the server's tokens live (`expires_in`), 300 unless [`TokenServer::set_lifetime`].
    lifetime: std::sync::atomic::AtomicI64,
}

/// A running token server; dropping it stops it.
pub struct TokenServer {
    pub addr: SocketAddr,
    state: Arc<State>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenServer {
    /// Serves tokens signed by `key`, granting what `policy` says.
    pub fn start(key: SigningKey, policy: Policy) -> Self {
        let state = Arc::new(State {
            key,
            policy,
            issued: Mutex::new(Vec::new()),
            lifetime: std::sync::atomic::AtomicI64::new(300),
        });
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, mut shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let served = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let stream = tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok((stream, _)) => stream,
                            Err(_) => continue,
                        },
                        _ = &mut shutdown_rx => break,
                    };
                    let state = Arc::clone(&served);
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            let answer = answer(&state, request);
                            async move { Ok::<_, std::convert::Infallible>(answer) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        TokenServer {
            addr,
            state,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// The realm URL to configure the registry with.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The signing key.
    pub fn key(&self) -> &SigningKey {
        &self.state.key
    }

    /// A valid token granting `access`, signed like the server's own.
    pub fn token(&self, access: &[Scope]) -> String {
        let token = self.key().sign(&self.key().header(), &claims(access));
        self.state.issued.lock().unwrap().push(token.clone());
        token
    }

    /// Makes the tokens issued from now on live `seconds`: `expires_in` says so, and their
    /// `exp` is set back by the registry's clock-skew leeway so the registry refuses them as
    /// soon as they are past it.
    pub fn set_lifetime(&self, seconds: i64) {
        self.state
            .lifetime
            .store(seconds, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every token the server issued or [`TokenServer::token`] made.
    pub fn issued(&self) -> Vec<String> {
        self.state.issued.lock().unwrap().clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn answer(state: &State, request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    if request.uri().path() != "/token" {
        return reply(StatusCode::NOT_FOUND, json!({"error": "not found"}));
    }
    let query = request.uri().query().unwrap_or("");
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    if !pairs.iter().any(|(k, v)| k == "service" && v == SERVICE) {
        return reply(StatusCode::BAD_REQUEST, json!({"error": "unknown service"}));
    }
    let account = match request.headers().get("authorization") {
        None => None,
        Some(value) => match basic_user(value.as_bytes()) {
            Some(user) => Some(user),
            None => {
                return reply(
                    StatusCode::UNAUTHORIZED,
                    json!({"error": "wrong credentials"}),
                )
            }
        },
    };
    let scopes: Vec<Scope> = pairs
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| {
            v.split(' ')
                .filter_map(|s| Scope::parse(s).ok())
                .collect::<Vec<_>>()
        })
        .collect();
    let access = (state.policy)(account.as_deref(), &scopes);
    let lifetime = state.lifetime.load(std::sync::atomic::Ordering::SeqCst);
    let mut claims = claims(&access);
    if lifetime != 300 {
        let leeway = layerstore::auth::token::LEEWAY_SECS as i64;
        claims["exp"] = json!(now() + lifetime - leeway);
        claims["nbf"] = json!(now() - leeway);
    }
    let token = state.key.sign(&state.key.header(), &claims);
    state.issued.lock().unwrap().push(token.clone());
    let issued_at = layerstore::store::rfc3339::format(SystemTime::now());
    reply(
        StatusCode::OK,
        json!({"token": token, "access_token": token, "expires_in": lifetime, "issued_at": issued_at}),
    )
}

/// The user of Basic credentials that match the fixed account, else `None`.
fn basic_user(header: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(header).ok()?;
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    (user == USER && password == PASSWORD).then(|| user.to_owned())
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}
