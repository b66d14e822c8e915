//! The access decision: may this identity do these actions on these resources? An extension
//! point for registries that embed layerstore ([`AccessControl`]), with the built-in rules as the
//! default ([`GrantedAccess`]).
//!
//! A request goes through two steps before any handler runs ([`super::access`]):
//! 1. **authentication**: the configured [`Authenticator`](crate::auth::Authenticator) turns the
//!    `Authorization` header into an [`Identity`] (or answers 401); with none configured, every
//!    client is [`Identity::anonymous`];
//! 2. **the decision**: the [`AccessControl`] gets the identity and the scopes the request needs
//!    (`repository:<name>:pull,push`, see [`super::access::needed_scopes`]) and answers
//!    [`Decision::Allow`], [`Decision::Deny`] (403 `DENIED`) or [`Decision::Unauthorized`] (401
//!    with a challenge for those scopes, so a token client fetches a token that has them).
//!
//! The decision runs before the request's body is read or anything is stored, so a refused push
//! writes nothing.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::auth::{Identity, Scope};

/// A boxed, sendable future: what [`AccessControl::decide`] returns, so that the trait can be
/// used as `dyn AccessControl` and a decision may await a database or a policy service.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a request asks to do, as the access decision sees it.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    /// Who asks.
    pub identity: &'a Identity,
    /// What the request needs: one scope per resource (`repository:team-a/app:pull,push`,
    /// `registry:catalog:*`). Empty for `GET /v2/`, which only checks credentials.
    pub needed: &'a [Scope],
}

/// The answer to an [`AccessRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// 403 `DENIED`, with this reason as the error's message. For rules that no other
    /// credentials would change ("only `team-a/` is writable").
    Deny(String),
    /// 401 `UNAUTHORIZED` with a challenge naming the scopes: other credentials (a token with
    /// more scopes) may be allowed. Without an authenticator this is answered as a 403.
    Unauthorized,
}

/// Decides whether an identity may do what a request needs. Implement it to give an embedded
/// registry its own rules; [`GrantedAccess`] is the built-in one (the token's scopes, or
/// everything for an htpasswd user and on an open registry), and a rule of one's own usually
/// ends by asking it.
///
/// ```
/// use layerstore::auth::{Action, Identity, Scope};
/// use layerstore::http::{AccessControl, AccessRequest, BoxFuture, Decision, GrantedAccess};
///
/// /// Anyone may pull; only repositories under `team-a/` may be written.
/// #[derive(Debug)]
/// struct TeamAWrites;
///
/// impl AccessControl for TeamAWrites {
///     fn decide<'a>(&'a self, request: AccessRequest<'a>) -> BoxFuture<'a, Decision> {
///         Box::pin(async move {
///             let writes_elsewhere = request.needed.iter().any(|scope| {
///                 scope.resource_type == "repository"
///                     && !scope.name.starts_with("team-a/")
///                     && scope.actions.iter().any(|a| *a != Action::Pull)
///             });
///             if writes_elsewhere {
///                 return Decision::Deny("only repositories under team-a/ are writable".into());
///             }
///             GrantedAccess.decide(request).await
///         })
///     }
/// }
///
/// let identity = Identity::anonymous();
/// let push = [Scope::repository("team-b/app", &[Action::Pull, Action::Push])];
/// let request = AccessRequest { identity: &identity, needed: &push };
/// let decision = futures_executor_block_on(TeamAWrites.decide(request));
/// assert!(matches!(decision, Decision::Deny(_)));
/// # fn futures_executor_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub trait AccessControl: Send + Sync + fmt::Debug + 'static {
    /// The decision on `request`. It runs on the request's task: await rather than block.
    fn decide<'a>(&'a self, request: AccessRequest<'a>) -> BoxFuture<'a, Decision>;
}

/// The built-in decision: allowed when the identity's grant covers every needed scope
/// ([`Grant::allows_all`](crate::auth::Grant::allows_all)), else [`Decision::Unauthorized`]
/// (for a token, the client can ask for one with more scopes). That is distribution's rule:
/// an htpasswd user and a client of an open registry may do everything, a token exactly what
/// its `access` claim lists.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrantedAccess;

impl AccessControl for GrantedAccess {
    fn decide<'a>(&'a self, request: AccessRequest<'a>) -> BoxFuture<'a, Decision> {
        let decision = if request.identity.grant.allows_all(request.needed) {
            Decision::Allow
        } else {
            Decision::Unauthorized
        };
        Box::pin(std::future::ready(decision))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Action, Grant};

    fn decide(identity: &Identity, needed: &[Scope]) -> Decision {
        let request = AccessRequest { identity, needed };
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(GrantedAccess.decide(request))
    }

    #[test]
    fn the_default_follows_the_grant() {
        let pull_a = Identity {
            name: Some("robot".into()),
            grant: Grant::Access(vec![Scope::repository("a", &[Action::Pull])]),
        };
        let pull = [Scope::repository("a", &[Action::Pull])];
        let push = [Scope::repository("a", &[Action::Pull, Action::Push])];
        assert_eq!(decide(&pull_a, &pull), Decision::Allow);
        assert_eq!(decide(&pull_a, &push), Decision::Unauthorized);
        assert_eq!(decide(&pull_a, &[]), Decision::Allow);
        assert_eq!(decide(&Identity::anonymous(), &push), Decision::Allow);
    }
}
