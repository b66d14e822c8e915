//! Fuzz entries for the server's authentication parsers: the `Authorization` header (Basic and
//! Bearer), registry tokens (JWT headers and claims) and htpasswd files.
//!
//! Tokens are checked against a fixed bundle: the P-256 test certificate of
//! `src/auth/token/testdata`, whose private key also signs the tokens the claim mode makes. What
//! is accepted is judged here, apart from the code under test: the signature with the
//! certificate's key (taken from the certificate by `x509-parser`, not by the bundle's
//! resolver), and the claims from the token's own JSON.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{json, Value};

use crate::auth::token::{Claims, KeyBundle, TokenAuth, LEEWAY_SECS};
use crate::auth::{Action, Grant, Scope};

const CERT: &str = include_str!("../auth/token/testdata/p256.pem");
const KEY: &str = include_str!("../auth/token/testdata/p256.key");
const KID: &str = include_str!("../auth/token/testdata/p256.kid");
const ISSUER: &str = "fuzz-issuer";
const SERVICE: &str = "fuzz-registry";
/// Seconds of slack for the clock moving between making a token and judging it.
const SLACK: f64 = 5.0;

/// The fixed bundle and keys, made once per process.
struct Keys {
    auth: TokenAuth,
    signing: EncodingKey,
    verifying: DecodingKey,
    cert_der: Vec<u8>,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        use rustls_pki_types::pem::PemObject;
        let bundle = KeyBundle::from_pem(CERT.as_bytes(), std::path::Path::new("fuzz.pem"))
            .expect("the test certificate is a bundle");
        let cert_der = rustls_pki_types::CertificateDer::from_pem_slice(CERT.as_bytes())
            .expect("the test certificate is PEM")
            .to_vec();
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).expect("parses");
        let point = cert
            .tbs_certificate
            .subject_pki
            .subject_public_key
            .data
            .to_vec();
        Keys {
            auth: TokenAuth::new(
                "http://fuzz.invalid/token".into(),
                SERVICE.into(),
                ISSUER.into(),
                bundle,
            ),
            signing: EncodingKey::from_ec_pem(KEY.as_bytes()).expect("the test key"),
            verifying: DecodingKey::from_ec_der(&point),
            cert_der,
        }
    })
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The server's `Authorization` header parsing: never panics; at most one scheme matches;
/// Basic credentials are taken only from a `Basic` header whose rest is the canonical base64
/// of `user:password` (re-encoding what was accepted gives back exactly what was sent, and the
/// user has no `:`); a Bearer header is accepted only for a token the bundle's key signed.
pub fn authorization_header(data: &[u8]) {
    use crate::auth::htpasswd::basic_credentials;
    use crate::auth::token::bearer_token;

    let basic = basic_credentials(data);
    let bearer = bearer_token(data);
    assert!(basic.is_none() || bearer.is_none(), "two schemes at once");
    if let Some(Some(credentials)) = basic {
        let (scheme, rest) = data.split_at(data.iter().position(|b| *b == b' ').unwrap_or(0));
        assert!(scheme.eq_ignore_ascii_case(b"basic"));
        assert!(!credentials.user.contains(':'));
        let mut joined = credentials.user.into_bytes();
        joined.push(b':');
        joined.extend_from_slice(&credentials.password);
        let encoded = base64::engine::general_purpose::STANDARD.encode(&joined);
        assert_eq!(
            encoded.as_bytes(),
            rest.trim_ascii(),
            "credentials from a malformed header"
        );
    }
    if let Some(token) = bearer {
        assert!(data.len() > 6 && data[..6].eq_ignore_ascii_case(b"bearer") && data[6] == b' ');
        assert_eq!(token, token.trim_ascii());
    }
    let read = [Scope::repository("a", &[Action::Pull])];
    if let Ok(grant) = keys().auth.authorize(Some(data), &read) {
        let token = std::str::from_utf8(bearer.expect("a grant needs a Bearer header"));
        let token = token.expect("a granted token is text").trim();
        assert_signed_by_bundle(token);
        assert!(grant.allows_all(&read));
    }
}

/// Registry tokens. The first byte picks the mode:
/// - 0: the rest is a token as sent;
/// - 1: the rest is a list of edits (`[field, length, value...]`) to the header and claims of
///   a valid token, which is then signed with the bundle's key, so claim checks see every
///   shape (`access`, `exp`, `nbf`, `aud`, `iss`, `alg`, `kid`, `jwk`, `x5c`, `crit` of odd
///   types and values);
/// - 2: the same edits under a signature the key did not make.
///
/// Never panics; a token verifies only when its signature is the bundle key's ES256 signature
/// of its first two parts, `alg` is `ES256`, `iss` is the issuer, `aud` is or holds the
/// service, `exp` is a number not past and `nbf` absent or not ahead (with the leeway), and
/// then its `access` is what `authorize` grants. The unedited token always verifies.
pub fn jwt_token(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            check_token(&String::from_utf8_lossy(rest));
        }
        signed => {
            let (header, claims) = edited_token(rest);
            let message = format!(
                "{}.{}",
                b64url(header.to_string().as_bytes()),
                b64url(claims.to_string().as_bytes())
            );
            let signature = if signed == 1 {
                jsonwebtoken::crypto::sign(message.as_bytes(), &keys().signing, Algorithm::ES256)
                    .expect("the test key signs")
            } else {
                b64url(rest)
            };
            let token = format!("{message}.{signature}");
            let verified = check_token(&token);
            if rest.is_empty() && signed == 1 {
                assert!(verified, "the unedited token verifies");
            }
        }
    }
}

/// Verifies `token` (as `authorize` does: trimmed) and, when it is accepted, checks that it
/// deserved it, and that `authorize` grants exactly its `access`. Returns whether it was
/// accepted. A token at the edge of its validity may pass one check and not the next, a
/// second later; only that difference is let through.
fn check_token(token: &str) -> bool {
    use crate::auth::token::TokenError;
    use crate::auth::{AuthError, Refusal};
    let auth = &keys().auth;
    let header = format!("Bearer {token}");
    let token = token.trim();
    let read = [Scope::repository("a", &[Action::Pull])];
    let granted = auth.authorize(Some(header.as_bytes()), &read);
    let verified = auth.verify(token);
    let clock = |e: &AuthError| {
        matches!(
            e,
            AuthError::Refused {
                reason: Refusal::Token(TokenError::Expired | TokenError::NotYetValid),
                ..
            }
        )
    };
    let claims = match verified {
        Ok(claims) => claims,
        Err(TokenError::Expired | TokenError::NotYetValid) => return false,
        Err(_) => {
            assert!(granted.is_err(), "authorize grants what verify refuses");
            return false;
        }
    };
    assert_signed_by_bundle(token);
    assert_claims_valid(token, &claims);
    let access = claims.access.unwrap_or_default();
    match granted {
        Ok(grant) => assert_eq!(grant, Grant::Access(access)),
        Err(AuthError::InsufficientScope(_)) => {
            assert!(!Grant::Access(access).allows_all(&read))
        }
        Err(e) => assert!(clock(&e), "verified, then refused: {e}"),
    }
    true
}

/// The token's signature is the bundle key's ES256 signature over its first two parts, and
/// its header says ES256.
fn assert_signed_by_bundle(token: &str) {
    let (message, signature) = token.rsplit_once('.').expect("three parts");
    let signed = jsonwebtoken::crypto::verify(
        signature,
        message.as_bytes(),
        &keys().verifying,
        Algorithm::ES256,
    );
    assert_eq!(
        signed.ok(),
        Some(true),
        "accepted without the bundle key's signature"
    );
    let header = part_json(message.split('.').next().unwrap_or_default());
    assert_eq!(header["alg"], "ES256", "accepted with another algorithm");
}

/// The claims of an accepted token, judged from its own JSON.
fn assert_claims_valid(token: &str, claims: &Claims) {
    let json = part_json(token.split('.').nth(1).unwrap_or_default());
    assert_eq!(json["iss"], ISSUER);
    assert_eq!(claims.iss, ISSUER);
    let aud = &json["aud"];
    let for_us = *aud == SERVICE
        || aud
            .as_array()
            .is_some_and(|a| a.iter().any(|v| *v == SERVICE));
    assert!(for_us, "accepted for audience {aud}");
    let leeway = LEEWAY_SECS as f64;
    let exp = json["exp"]
        .as_f64()
        .expect("accepted without a numeric exp");
    assert!(exp + leeway + SLACK >= now(), "accepted after exp {exp}");
    match &json["nbf"] {
        Value::Null => {}
        nbf => {
            let nbf = nbf.as_f64().expect("accepted with a non-numeric nbf");
            assert!(nbf - leeway - SLACK <= now(), "accepted before nbf {nbf}");
        }
    }
    let access: Option<Vec<Scope>> = serde_json::from_value(json["access"].clone()).ok();
    assert_eq!(
        claims.access.clone().unwrap_or_default(),
        access.unwrap_or_default()
    );
}

fn part_json(part: &str) -> Value {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null)
}

const HEADER_FIELDS: [&str; 10] = [
    "alg", "kid", "typ", "jwk", "x5c", "crit", "b64", "cty", "x5t", "zzz",
];
const CLAIM_FIELDS: [&str; 9] = [
    "iss", "aud", "exp", "nbf", "sub", "access", "iat", "jti", "zzz",
];

/// A valid header and claims with `edits` applied: each edit is a field byte (high bit: the
/// header; else the claims), a length, and that many bytes: JSON to put there, else a pick
/// among the values that matter (`null` removes the field).
fn edited_token(edits: &[u8]) -> (Value, Value) {
    let now = now() as i64;
    let mut header = json!({"alg": "ES256", "typ": "JWT", "kid": KID.trim()});
    let mut claims = json!({
        "iss": ISSUER, "aud": SERVICE, "sub": "fuzz", "exp": now + 300, "nbf": now - 10,
        "access": [{"type": "repository", "name": "a", "actions": ["pull"]}],
    });
    let mut rest = edits;
    while let [field, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (bytes, next) = tail.split_at(len);
        rest = next;
        let (target, name) = if field & 0x80 != 0 {
            (
                &mut header,
                HEADER_FIELDS[usize::from(field & 0x7f) % HEADER_FIELDS.len()],
            )
        } else {
            (
                &mut claims,
                CLAIM_FIELDS[usize::from(*field) % CLAIM_FIELDS.len()],
            )
        };
        let value = serde_json::from_slice(bytes).unwrap_or_else(|_| pick(bytes, now));
        let object = target.as_object_mut().expect("an object");
        if value.is_null() {
            object.remove(name);
        } else {
            object.insert(name.to_owned(), value);
        }
    }
    (header, claims)
}

/// The values a field is worth trying with, by the first byte.
fn pick(bytes: &[u8], now: i64) -> Value {
    let keys = keys();
    let cert = base64::engine::general_purpose::STANDARD.encode(&keys.cert_der);
    let choices = [
        Value::Null,
        json!(now - 30),
        json!(now + 30),
        json!(now - 120),
        json!(now + 120),
        json!(0),
        json!(-1),
        json!(u64::MAX),
        json!(1e300),
        json!(now as f64 + 0.5),
        json!(ISSUER),
        json!(SERVICE),
        json!([SERVICE]),
        json!(["other", SERVICE]),
        json!([]),
        json!({}),
        json!("ES256"),
        json!("none"),
        json!("HS256"),
        json!("RS256"),
        json!(KID.trim()),
        json!(""),
        json!([cert]),
        json!(["b64"]),
        json!(false),
        json!([{"type": "repository", "name": "a", "actions": ["*"]}]),
        json!([{"type": "registry", "name": "catalog"}]),
        json!({"kty": "EC", "crv": "P-256", "x": "", "y": ""}),
    ];
    let index = bytes.first().map_or(0, |b| usize::from(*b));
    choices[index % choices.len()].clone()
}

/// An htpasswd file: parsing never panics and runs no bcrypt; every user of a file that parses
/// is found with the hash of its last line, nothing else is, and the highest cost is a valid
/// one; a refused file is refused at a line that is neither blank nor a comment.
pub fn htpasswd_file(data: &[u8]) {
    use crate::auth::htpasswd::Users;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    match Users::parse(text) {
        Ok(users) => {
            let mut expected = std::collections::HashMap::new();
            for line in lines
                .iter()
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
            {
                let (user, hash) = line.split_once(':').expect("a parsed line has a ':'");
                assert!(!user.is_empty());
                assert!(["$2y$", "$2a$", "$2b$"].iter().any(|p| hash.starts_with(p)));
                expected.insert(user, hash);
            }
            assert_eq!(users.len(), expected.len());
            assert_eq!(users.is_empty(), expected.is_empty());
            for (user, hash) in &expected {
                assert_eq!(users.hash(user), Some(*hash), "user {user:?}");
            }
            assert_eq!(users.hash("no such user: has a colon"), None);
            assert!((4..=31).contains(&users.max_cost()));
        }
        Err((line, _problem)) => {
            let refused = lines.get(line - 1).expect("the line exists");
            assert!(!refused.is_empty() && !refused.starts_with('#'));
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    #[test]
    fn the_unedited_token_verifies_and_a_foreign_signature_does_not() {
        super::jwt_token(&[1]);
        assert!(!super::check_token("e30.e30.e30"));
    }

    proptest! {
        /// A stable-toolchain stand-in for the fuzz targets: shaped random input through the
        /// same entry functions.
        #[test]
        fn auth_parsers_keep_their_promises(
            header in r"(Basic|basic|Bearer|BEARER|Digest)?( {0,2})[A-Za-z0-9+/=. _-]{0,40}",
            mode in 0u8..3,
            edits in proptest::collection::vec(any::<u8>(), 0..40),
            file in r"(#[ a-z]{0,5}\n|\s{0,2}\n|[a-z:]{0,4}(\$2[abxy]\$)?[0-9]{0,2}\$?[./A-Za-z0-9]{0,53}\r?\n){0,4}",
        ) {
            super::authorization_header(header.as_bytes());
            let mut token = vec![mode];
            token.extend(&edits);
            super::jwt_token(&token);
            super::htpasswd_file(file.as_bytes());
        }
    }
}
