//! Authentication and authorization of registry requests, as distribution does them: an
//! htpasswd file of bcrypt hashes (Basic credentials; a user may do everything), or registry
//! tokens (Bearer JWTs from a token server, each granting listed actions on listed resources).
//!
//! This is the pure core: it takes the request's `Authorization` header and the [`Scope`]s the
//! request needs, and gives a [`Grant`] or an [`AuthError`] carrying the challenge for the 401.
//! Which scopes a request needs is the HTTP layer's business (`http::access`). Nothing here
//! logs or returns a password or a token: errors say what was wrong, never what was sent.
//!
//! | module | what |
//! |---|---|
//! | [`scope`] | [`Action`], [`Scope`] (`repository:name:pull,push`), [`Grant`] |
//! | [`challenge`] | the `WWW-Authenticate` value |
//! | [`htpasswd`] | the file, bcrypt checks off the async threads, the success cache, reloads |
//! | [`token`] | JWT verification: the root cert bundle, libtrust key ids, `x5c` chains |

pub mod challenge;
pub mod htpasswd;
pub mod scope;
pub mod token;

pub use challenge::{BearerError, Challenge};
pub use scope::{Action, Grant, Scope, ScopeError};

use htpasswd::HtpasswdAuth;
use token::{TokenAuth, TokenError};

/// How requests are authenticated.
#[derive(Debug)]
pub enum Authenticator {
    /// Basic credentials against an htpasswd file.
    Htpasswd(HtpasswdAuth),
    /// Bearer tokens from a token server (boxed: its keys and validation settings are much
    /// larger than the htpasswd handle).
    Token(Box<TokenAuth>),
}

impl Authenticator {
    /// What the credentials in `authorization` (the raw header value, if the request has one)
    /// allow, provided they allow everything in `needed`. An empty `needed` asks only for
    /// valid credentials (the `/v2/` check). bcrypt runs on the blocking pool, never on the
    /// calling task's thread.
    pub async fn authorize(
        &self,
        authorization: Option<&[u8]>,
        needed: &[Scope],
    ) -> Result<Grant, AuthError> {
        match self {
            Authenticator::Htpasswd(htpasswd) => htpasswd
                .authenticate(authorization)
                .await
                .map(|()| Grant::Everything),
            Authenticator::Token(token) => token.authorize(authorization, needed),
        }
    }

    /// Whether credentials travel as Basic (readable by anyone on the path without TLS).
    pub fn uses_basic(&self) -> bool {
        matches!(self, Authenticator::Htpasswd(_))
    }
}

/// Why a request is not authorized; each carries the challenge its 401 sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials of the expected scheme.
    #[error("authentication required")]
    Missing(Challenge),
    /// Credentials were sent and refused.
    #[error("credentials refused: {reason}")]
    Refused {
        /// The challenge (with `error="invalid_token"` for tokens).
        challenge: Challenge,
        /// Why.
        reason: Refusal,
    },
    /// A valid token that does not grant what the request needs.
    #[error("access not granted by the token")]
    InsufficientScope(Challenge),
}

impl AuthError {
    /// The challenge for the `WWW-Authenticate` header.
    pub fn challenge(&self) -> &Challenge {
        match self {
            AuthError::Missing(challenge)
            | AuthError::Refused { challenge, .. }
            | AuthError::InsufficientScope(challenge) => challenge,
        }
    }
}

/// Why credentials were refused (never quoting them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// A Basic header that does not decode to `user:password`.
    #[error("malformed Basic credentials")]
    Malformed,
    /// Unknown user or wrong password: one reason, as the client sees one answer.
    #[error("unknown user or wrong password")]
    WrongPassword,
    /// The token was refused.
    #[error("{0}")]
    Token(#[from] TokenError),
}
