//! Registry token authentication, as distribution's `auth.token`: a client presents
//! `Authorization: Bearer <jwt>` issued by a token server, and the registry checks it offline
//! against the token server's certificates (the root cert bundle).
//!
//! A token is accepted when, in this order: it is at most [`MAX_TOKEN_LEN`] bytes; its header
//! names a key of the bundle ([`KeyBundle::resolve`]); its `alg` is one that key's type
//! verifies; the signature verifies; `iss` is the configured issuer; `aud` (a string or an
//! array) holds the configured service; `exp` is present and not past, and `nbf`, if present,
//! not ahead, both with [`LEEWAY_SECS`] of clock skew. Its `access` claim is then the grant.
//!
//! Nothing from a token reaches an error message: [`TokenError`] says what was wrong, never
//! what the token held.

mod keys;

pub use keys::{libtrust_key_id, BundleError, KeyBundle, PublicKey, MAX_CHAIN_LEN};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::Validation;
use serde::Deserialize;

use super::challenge::{BearerError, Challenge};
use super::scope::{Grant, Scope};
use super::{AuthError, Identity, Refusal};

/// Longest token accepted, in bytes. Real ones are a few hundred bytes with a `kid`, a few
/// KiB with an `x5c` chain; anything longer is refused before it is decoded.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Clock skew allowed on `exp` and `nbf`, in seconds (distribution's leeway).
pub const LEEWAY_SECS: u64 = 60;

/// Why a token was refused. None of the variants carries anything from the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("token too long")]
    TooLong,
    /// Not three base64url parts of JSON, or a header or claims of the wrong shape.
    #[error("token malformed")]
    Malformed,
    /// The header names no key (no `x5c`, `jwk` or `kid`).
    #[error("token header names no signing key")]
    NoKeyReference,
    /// The key named is not in the root cert bundle.
    #[error("token signed by an unknown key")]
    UnknownKey,
    /// The `x5c` chain does not verify to the bundle.
    #[error("token certificate chain does not verify")]
    Chain,
    /// `alg` is not one the key's type verifies (`none`, HS*, RS* with an EC key, …).
    #[error("token algorithm not allowed for its key")]
    Algorithm,
    /// The signature does not verify.
    #[error("token signature invalid")]
    Signature,
    /// `exp` is past.
    #[error("token expired")]
    Expired,
    /// `nbf` is ahead.
    #[error("token not yet valid")]
    NotYetValid,
    /// `aud` does not hold the service.
    #[error("token for another audience")]
    Audience,
    /// `iss` is not the issuer.
    #[error("token from another issuer")]
    Issuer,
    /// A required claim is missing or of the wrong type.
    #[error("token claims missing or malformed")]
    Claims,
}

impl From<jsonwebtoken::errors::Error> for TokenError {
    fn from(e: jsonwebtoken::errors::Error) -> Self {
        match e.kind() {
            ErrorKind::InvalidSignature => TokenError::Signature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => TokenError::Algorithm,
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            ErrorKind::InvalidAudience => TokenError::Audience,
            ErrorKind::InvalidIssuer => TokenError::Issuer,
            ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
                TokenError::Claims
            }
            _ => TokenError::Malformed,
        }
    }
}

/// The claims layerstore reads (the time, audience and issuer claims are checked by
/// jsonwebtoken's validation before these are looked at).
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    /// The issuer.
    pub iss: String,
    /// The account the token was issued to, if the token server says.
    #[serde(default)]
    pub sub: Option<String>,
    /// What the token grants (`null` and absent are both nothing).
    #[serde(default)]
    pub access: Option<Vec<Scope>>,
}

/// Token authentication settings and keys.
#[derive(Debug)]
pub struct TokenAuth {
    realm: String,
    service: String,
    issuer: String,
    keys: KeyBundle,
    validation_base: Validation,
}

impl TokenAuth {
    /// Checks tokens from `issuer` for `service` against `keys`; clients are sent to `realm`
    /// for tokens.
    pub fn new(realm: String, service: String, issuer: String, keys: KeyBundle) -> Self {
        let mut validation = Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[&service]);
        TokenAuth {
            realm,
            service,
            issuer,
            keys,
            validation_base: validation,
        }
    }

    /// The issuer tokens must come from.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The bundle's keys.
    pub fn keys(&self) -> &KeyBundle {
        &self.keys
    }

    /// Verifies a token (the text after `Bearer `) and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let key = self.keys.resolve(&header)?;
        let mut validation = self.validation_base.clone();
        validation.algorithms = key.algorithms().to_vec();
        if !validation.algorithms.contains(&header.alg) {
            return Err(TokenError::Algorithm);
        }
        let data = jsonwebtoken::decode::<Claims>(token, key.decoding_key(), &validation)?;
        Ok(data.claims)
    }

    /// The grant of the request's `Authorization` header if it holds a valid token that
    /// allows everything in `needed`.
    pub fn authorize(
        &self,
        authorization: Option<&[u8]>,
        needed: &[Scope],
    ) -> Result<Grant, AuthError> {
        let identity = self.identify(authorization, needed)?;
        if !identity.grant.allows_all(needed) {
            return Err(self.insufficient_scope(needed));
        }
        Ok(identity.grant)
    }

    /// Who the request's token was issued to and what it grants, if the header holds a valid
    /// token; whether that covers the request is the access decision's business
    /// ([`crate::http::AccessControl`]). `needed` only goes into the challenge of a refusal.
    pub fn identify(
        &self,
        authorization: Option<&[u8]>,
        needed: &[Scope],
    ) -> Result<Identity, AuthError> {
        let Some(token) = authorization.and_then(bearer_token) else {
            return Err(AuthError::Missing(self.challenge(needed, None)));
        };
        let claims = match std::str::from_utf8(token) {
            Ok(token) => self.verify(token.trim()),
            Err(_) => Err(TokenError::Malformed),
        };
        let claims = claims.map_err(|reason| AuthError::Refused {
            challenge: self.challenge(needed, Some(BearerError::InvalidToken)),
            reason: Refusal::Token(reason),
        })?;
        Ok(Identity {
            name: claims.sub.filter(|sub| !sub.is_empty()),
            grant: Grant::Access(claims.access.unwrap_or_default()),
        })
    }

    /// The 401 for a valid token that does not grant `needed`: its challenge names the scopes,
    /// so the client asks the token server for a token that does.
    pub fn insufficient_scope(&self, needed: &[Scope]) -> AuthError {
        AuthError::InsufficientScope(self.challenge(needed, Some(BearerError::InsufficientScope)))
    }

    fn challenge(&self, needed: &[Scope], error: Option<BearerError>) -> Challenge {
        Challenge::Bearer {
            realm: self.realm.clone(),
            service: self.service.clone(),
            scopes: needed.to_vec(),
            error,
        }
    }
}

/// The token of a `Bearer` header (scheme case-insensitive); `None` for another scheme.
pub(crate) fn bearer_token(header: &[u8]) -> Option<&[u8]> {
    let space = header.iter().position(|b| *b == b' ')?;
    let (scheme, rest) = header.split_at(space);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then_some(rest.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"bEARER  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bearer"), None);
        assert_eq!(bearer_token(b"Bearer "), Some(&b""[..]));
    }

    #[test]
    fn jsonwebtoken_errors_map_without_content() {
        let cases = [
            (ErrorKind::InvalidSignature, TokenError::Signature),
            (ErrorKind::InvalidAlgorithm, TokenError::Algorithm),
            (ErrorKind::ExpiredSignature, TokenError::Expired),
            (ErrorKind::ImmatureSignature, TokenError::NotYetValid),
            (ErrorKind::InvalidAudience, TokenError::Audience),
            (ErrorKind::InvalidIssuer, TokenError::Issuer),
            (
                ErrorKind::MissingRequiredClaim("exp".into()),
                TokenError::Claims,
            ),
            (ErrorKind::InvalidToken, TokenError::Malformed),
        ];
        for (kind, expected) in cases {
            assert_eq!(
                TokenError::from(jsonwebtoken::errors::Error::from(kind)),
                expected
            );
        }
    }

    const CERT: &str = include_str!("testdata/p256.pem");
    const KEY: &str = include_str!("testdata/p256.key");
    const KID: &str = include_str!("testdata/p256.kid");

    fn auth() -> TokenAuth {
        let keys = KeyBundle::from_pem(CERT.as_bytes(), std::path::Path::new("b.pem")).unwrap();
        TokenAuth::new("http://t/token".into(), "svc".into(), "iss".into(), keys)
    }

    fn now() -> i64 {
        jsonwebtoken::get_current_timestamp() as i64
    }

    fn claims(changes: serde_json::Value) -> serde_json::Value {
        let mut claims = serde_json::json!({
            "iss": "iss", "aud": "svc", "sub": "alice", "exp": now() + 300, "nbf": now() - 10,
            "access": [{"type": "repository", "name": "a", "actions": ["pull"]}],
        });
        for (key, value) in changes.as_object().unwrap() {
            match value {
                // `null` here means: leave the claim out.
                serde_json::Value::Null => {
                    claims.as_object_mut().unwrap().remove(key);
                }
                value => claims[key] = value.clone(),
            }
        }
        claims
    }

    fn sign(claims: &serde_json::Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(KID.trim().to_owned());
        let key = jsonwebtoken::EncodingKey::from_ec_pem(KEY.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }

    #[test]
    fn valid_tokens_give_their_access() {
        let auth = auth();
        let verified = auth.verify(&sign(&claims(serde_json::json!({})))).unwrap();
        assert_eq!(verified.sub.as_deref(), Some("alice"));
        // `aud` may be an array holding the service; `nbf` may be absent.
        let array = claims(serde_json::json!({"aud": ["other", "svc"], "nbf": null}));
        assert!(auth.verify(&sign(&array)).is_ok());
        // Within the leeway.
        let skewed = claims(serde_json::json!({"exp": now() - 30, "nbf": now() + 30}));
        assert!(auth.verify(&sign(&skewed)).is_ok());
        let header = format!("Bearer {}", sign(&claims(serde_json::json!({}))));
        let pull = Scope::repository("a", &[crate::auth::Action::Pull]);
        let grant = auth.authorize(Some(header.as_bytes()), &[pull]).unwrap();
        assert!(matches!(grant, Grant::Access(ref access) if access.len() == 1));
    }

    #[test]
    fn claims_are_checked() {
        let auth = auth();
        let cases = [
            (serde_json::json!({"exp": now() - 120}), TokenError::Expired),
            (
                serde_json::json!({"nbf": now() + 120}),
                TokenError::NotYetValid,
            ),
            (serde_json::json!({"aud": "other"}), TokenError::Audience),
            (serde_json::json!({"aud": ["a", "b"]}), TokenError::Audience),
            (serde_json::json!({"iss": "other"}), TokenError::Issuer),
            (serde_json::json!({"exp": null}), TokenError::Claims),
            (serde_json::json!({"exp": "soon"}), TokenError::Claims),
            (serde_json::json!({"iss": ["iss"]}), TokenError::Malformed),
            (
                serde_json::json!({"access": "everything"}),
                TokenError::Malformed,
            ),
        ];
        for (changes, expected) in cases {
            let token = sign(&claims(changes.clone()));
            assert_eq!(auth.verify(&token).unwrap_err(), expected, "{changes}");
        }
    }

    #[test]
    fn forged_tokens_are_refused() {
        use base64::Engine as _;
        let auth = auth();
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let body = claims(serde_json::json!({}));
        let none = format!(
            "{}.{}.",
            b64(&serde_json::json!({"alg": "none", "kid": KID.trim()})),
            b64(&body)
        );
        assert_eq!(auth.verify(&none).unwrap_err(), TokenError::Malformed);
        // HS256 keyed with the public certificate's bytes: algorithm confusion.
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(KID.trim().to_owned());
        let hmac = jsonwebtoken::EncodingKey::from_secret(CERT.as_bytes()).unwrap();
        let confused = jsonwebtoken::encode(&header, &body, &hmac).unwrap();
        assert_eq!(auth.verify(&confused).unwrap_err(), TokenError::Algorithm);
        // A changed payload under the old signature.
        let token = sign(&body);
        let parts: Vec<&str> = token.split('.').collect();
        let more = claims(serde_json::json!({"access": [
            {"type": "repository", "name": "a", "actions": ["pull", "push"]}
        ]}));
        let tampered = format!("{}.{}.{}", parts[0], b64(&more), parts[2]);
        assert_eq!(auth.verify(&tampered).unwrap_err(), TokenError::Signature);
        assert_eq!(
            auth.verify(&"a".repeat(MAX_TOKEN_LEN + 1)).unwrap_err(),
            TokenError::TooLong
        );
        assert_eq!(auth.verify("a.b").unwrap_err(), TokenError::Malformed);
    }
}
