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
        let identity = self.authenticate(authorization, needed).await?;
        if !identity.grant.allows_all(needed) {
            return Err(self.insufficient_scope(needed));
        }
        Ok(identity.grant)
    }

    /// Who sent the credentials in `authorization`, and what they grant, without deciding
    /// whether that covers the request (`needed` only goes into a refusal's challenge).
    pub async fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        needed: &[Scope],
    ) -> Result<Identity, AuthError> {
        match self {
            Authenticator::Htpasswd(htpasswd) => {
                let user = htpasswd.authenticate(authorization).await?;
                Ok(Identity {
                    name: Some(user),
                    grant: Grant::Everything,
                })
            }
            Authenticator::Token(token) => token.identify(authorization, needed),
        }
    }

    /// The refusal of valid credentials that do not grant `needed`: for tokens, the 401
    /// whose challenge names the scopes (the client then asks for a token that has them).
    pub fn insufficient_scope(&self, needed: &[Scope]) -> AuthError {
        match self {
            Authenticator::Htpasswd(htpasswd) => AuthError::InsufficientScope(htpasswd.challenge()),
            Authenticator::Token(token) => token.insufficient_scope(needed),
        }
    }

    /// Whether credentials travel as Basic (readable by anyone on the path without TLS).
    pub fn uses_basic(&self) -> bool {
        matches!(self, Authenticator::Htpasswd(_))
    }
}

/// Who sent a request, once its credentials were checked, and what they grant.
///
/// ```
/// use layerstore::auth::{Action, Grant, Identity, Scope};
/// let anonymous = Identity::anonymous();
/// assert_eq!(anonymous.name, None);
/// assert!(anonymous.grant.allows(&Scope::repository("any/repo", &[Action::Push])));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The account: the htpasswd user, or the token's `sub` claim. `None` for a client of an
    /// open registry (or a token without a subject).
    pub name: Option<String>,
    /// What the credentials grant: everything for an htpasswd user and on an open registry
    /// (distribution's rules), a token's `access` claim otherwise.
    pub grant: Grant,
}

impl Identity {
    /// A client of a registry with no authentication: anyone may do anything.
    pub fn anonymous() -> Self {
        Identity {
            name: None,
            grant: Grant::Everything,
        }
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
