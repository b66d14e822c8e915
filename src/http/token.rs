//! The upload `_state` token, in the distribution registry's exact format.
//!
//! A token is `base64url-with-padding( HMAC-SHA256(secret, json) ‖ json )` where `json` is
//! `{"Name":…,"UUID":…,"Offset":…,"StartedAt":…}` with the keys in that order, as Go's
//! `encoding/json` writes distribution's struct. Two servers that share a storage root and a
//! secret (layerstore or distribution, in any mix) accept each other's tokens, so an upload can
//! move between instances. Verification is constant-time and bounded: a token longer than
//! [`MAX_TOKEN_LEN`] is refused before it is decoded.

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Longest token accepted, in characters. A real one is about 200.
pub const MAX_TOKEN_LEN: usize = 4096;

const MAC_LEN: usize = 32;

/// What a token vouches for: which upload, and how many bytes it held when the token was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadState {
    /// Repository name.
    #[serde(rename = "Name")]
    pub name: String,
    /// Upload id.
    #[serde(rename = "UUID")]
    pub uuid: String,
    /// Bytes stored when the token was issued.
    #[serde(rename = "Offset")]
    pub offset: i64,
    /// Upload start time, RFC 3339 (kept as text: it is never checked, only carried).
    #[serde(rename = "StartedAt")]
    pub started_at: String,
}

/// Why a token was refused. Each maps to `BLOB_UPLOAD_INVALID`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("upload token too long ({0} characters)")]
    TooLong(usize),
    /// Not base64url.
    #[error("upload token is not base64url")]
    Encoding,
    /// Shorter than a MAC, or the MAC does not match: another secret or a forgery.
    #[error("invalid secret")]
    InvalidSecret,
    /// The MAC matched but the payload is not the expected JSON.
    #[error("upload token payload is not valid: {0}")]
    Payload(String),
}

/// Signs and verifies tokens with one secret.
#[derive(Clone)]
pub struct TokenSigner {
    secret: Vec<u8>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner { secret: <redacted> }")
    }
}

impl TokenSigner {
    /// A signer with a configured secret (its bytes are the HMAC key, as in distribution).
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        TokenSigner {
            secret: secret.into(),
        }
    }

    /// A signer with 32 random bytes: tokens then only work within this process.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut secret = vec![0u8; 32];
        getrandom::fill(&mut secret)?;
        Ok(TokenSigner { secret })
    }

    /// The token for `state`.
    ///
    /// ```
    /// use layerstore::http::token::{TokenSigner, UploadState};
    /// let signer = TokenSigner::new("s3cr3t");
    /// let state = UploadState {
    ///     name: "library/alpine".into(),
    ///     uuid: "0b5e8f3c-1111-4c4c-8d8d-123456789abc".into(),
    ///     offset: 1024,
    ///     started_at: "2024-01-02T03:04:05.6Z".into(),
    /// };
    /// let token = signer.sign(&state);
    /// assert!(token.starts_with("_y5E3Tqc9Qn-p7sVdtM9QAaUYH2eKr-RYHD1t4yHyx1"));
    /// assert_eq!(signer.verify(&token).unwrap(), state);
    /// assert!(TokenSigner::new("other").verify(&token).is_err());
    /// ```
    pub fn sign(&self, state: &UploadState) -> String {
        let json = serde_json::to_vec(state).expect("plain strings and integers serialize");
        let mut token = self.mac(&json).finalize().into_bytes().to_vec();
        token.extend_from_slice(&json);
        URL_SAFE.encode(token)
    }

    /// Checks a token's MAC and returns what it vouches for. The caller still compares the
    /// name and id with the request's, and the offset with the upload's size.
    pub fn verify(&self, token: &str) -> Result<UploadState, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong(token.len()));
        }
        // Padding is what distribution writes; a client or proxy that dropped it is forgiven.
        let bytes = URL_SAFE
            .decode(token)
            .or_else(|_| URL_SAFE_NO_PAD.decode(token))
            .map_err(|_| TokenError::Encoding)?;
        if bytes.len() < MAC_LEN {
            return Err(TokenError::InvalidSecret);
        }
        let (mac, json) = bytes.split_at(MAC_LEN);
        self.mac(json)
            .verify_slice(mac)
            .map_err(|_| TokenError::InvalidSecret)?;
        serde_json::from_slice(json).map_err(|e| TokenError::Payload(e.to_string()))
    }

    fn mac(&self, message: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(message);
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// distribution-reference.md section 3.1, checked there with Go and Python.
    const VECTOR: &str = "_y5E3Tqc9Qn-p7sVdtM9QAaUYH2eKr-RYHD1t4yHyx17Ik5hbWUiOiJsaWJyYXJ5L2FscGluZSIsIlVVSUQiOiIwYjVlOGYzYy0xMTExLTRjNGMtOGQ4ZC0xMjM0NTY3ODlhYmMiLCJPZmZzZXQiOjEwMjQsIlN0YXJ0ZWRBdCI6IjIwMjQtMDEtMDJUMDM6MDQ6MDUuNloifQ==";

    fn vector_state() -> UploadState {
        UploadState {
            name: "library/alpine".into(),
            uuid: "0b5e8f3c-1111-4c4c-8d8d-123456789abc".into(),
            offset: 1024,
            started_at: "2024-01-02T03:04:05.6Z".into(),
        }
    }

    #[test]
    fn reproduces_distributions_token_exactly() {
        assert_eq!(TokenSigner::new("s3cr3t").sign(&vector_state()), VECTOR);
        assert_eq!(
            TokenSigner::new("s3cr3t").verify(VECTOR).unwrap(),
            vector_state()
        );
    }

    #[test]
    fn refuses_forgeries_and_junk() {
        let signer = TokenSigner::new("s3cr3t");
        assert_eq!(
            TokenSigner::new("nope").verify(VECTOR),
            Err(TokenError::InvalidSecret)
        );
        assert_eq!(signer.verify("!!!"), Err(TokenError::Encoding));
        assert_eq!(signer.verify("AAAA"), Err(TokenError::InvalidSecret));
        assert_eq!(
            signer.verify(&"A".repeat(5000)),
            Err(TokenError::TooLong(5000))
        );
        // Change the offset in the payload without re-signing.
        let mut raw = URL_SAFE.decode(VECTOR).unwrap();
        let at = raw.windows(4).position(|w| w == b"1024").unwrap();
        raw[at] = b'9';
        assert_eq!(
            signer.verify(&URL_SAFE.encode(raw)),
            Err(TokenError::InvalidSecret)
        );
        // A validly signed payload that is not the expected JSON.
        let mut mac = signer.mac(b"[]").finalize().into_bytes().to_vec();
        mac.extend_from_slice(b"[]");
        assert!(matches!(
            signer.verify(&URL_SAFE.encode(mac)),
            Err(TokenError::Payload(_))
        ));
    }

    #[test]
    fn accepts_unpadded_tokens() {
        let signer = TokenSigner::new("s3cr3t");
        assert_eq!(
            signer.verify(VECTOR.trim_end_matches('=')).unwrap(),
            vector_state()
        );
    }

    #[test]
    fn random_signers_differ() {
        let a = TokenSigner::random().unwrap();
        let b = TokenSigner::random().unwrap();
        let token = a.sign(&vector_state());
        assert!(b.verify(&token).is_err());
        assert!(a.verify(&token).is_ok());
    }
}
