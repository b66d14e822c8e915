//! Who may do what: the scopes each request needs, asked of the configured
//! [`Authenticator`](crate::auth::Authenticator) before any handler runs, and the 401 that
//! answers a refusal.
//!
//! The scopes follow distribution's rule, by method: `GET`/`HEAD` need `pull`,
//! `POST`/`PUT`/`PATCH` need `pull` and `push`, `DELETE` needs `delete`, all on
//! `repository:<name>`; the catalog needs `registry:catalog:*`; `/v2/` needs valid credentials
//! and no scope. Every repository route is refused the same way before the store is touched,
//! so a client without access learns nothing about what the registry holds.

use hyper::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::{Method, Request};
use serde_json::json;

use super::access_control::{AccessRequest, Decision};
use super::app::AppState;
use super::error::ApiError;
use super::error_code::ErrorCode;
use super::routes::Route;
use crate::auth::{Action, AuthError, Challenge, Identity, Scope};

/// The scopes a request with `method` on `route` needs (none for `/v2/`, and none for a
/// method the route does not have: any valid credential then gets the 405).
///
/// ```
/// use hyper::Method;
/// use layerstore::http::access::needed_scopes;
/// use layerstore::http::routes::Route;
/// let route = Route::parse("/v2/a/b/blobs/uploads/").unwrap();
/// let scopes = needed_scopes(&route, &Method::POST);
/// assert_eq!(scopes[0].to_string(), "repository:a/b:pull,push");
/// assert!(needed_scopes(&Route::Base, &Method::GET).is_empty());
/// assert_eq!(needed_scopes(&Route::Catalog, &Method::GET)[0].to_string(), "registry:catalog:*");
/// ```
pub fn needed_scopes(route: &Route, method: &Method) -> Vec<Scope> {
    let name = match route {
        Route::Base => return Vec::new(),
        Route::Catalog => return vec![Scope::catalog()],
        route => match route.name() {
            Some(name) => name,
            None => return Vec::new(),
        },
    };
    let actions: &[Action] = match *method {
        Method::GET | Method::HEAD => &[Action::Pull],
        Method::POST | Method::PUT | Method::PATCH => &[Action::Pull, Action::Push],
        Method::DELETE => &[Action::Delete],
        _ => return Vec::new(),
    };
    vec![Scope::repository(name.as_str(), actions)]
}

/// Who sent the request, once its credentials are checked and the access decision
/// ([`AccessControl`](super::AccessControl)) allowed what it needs on `route`; else the 401 (no
/// or refused credentials, or scopes another token could grant) or the 403 `DENIED`. The
/// refusal's reason is logged at debug level; it never holds a credential.
pub async fn authorize<B>(
    state: &AppState,
    route: &Route,
    request: &Request<B>,
) -> Result<Identity, ApiError> {
    let needed = needed_scopes(route, request.method());
    let identity = match &state.auth {
        None => Identity::anonymous(),
        Some(authenticator) => {
            let header = request
                .headers()
                .get(AUTHORIZATION)
                .map(HeaderValue::as_bytes);
            authenticator
                .authenticate(header, &needed)
                .await
                .map_err(refused)?
        }
    };
    match decide(state, &identity, &needed).await {
        Decision::Allow => Ok(identity),
        Decision::Deny(reason) => {
            tracing::debug!(%reason, "request denied");
            Err(ApiError::with_message(ErrorCode::Denied, reason))
        }
        Decision::Unauthorized => Err(match &state.auth {
            Some(authenticator) => refused(authenticator.insufficient_scope(&needed)),
            None => ApiError::new(ErrorCode::Denied, None),
        }),
    }
}

fn refused(e: AuthError) -> ApiError {
    tracing::debug!(reason = %e, "request not authorized");
    ApiError::from(e)
}

async fn decide(state: &AppState, identity: &Identity, needed: &[Scope]) -> Decision {
    let request = AccessRequest { identity, needed };
    state.access.decide(request).await
}

/// Whether `identity` may mount a blob from `from`: the access decision must allow `pull`
/// there. A mount with no `from` (the registry looks in every repository) needs what the
/// catalog needs (`registry:catalog:*`, seeing the whole registry), since it would link a blob
/// from a repository the client may not read.
pub async fn may_mount_from(state: &AppState, identity: &Identity, from: Option<&str>) -> bool {
    let needed = match from {
        Some(from) => Scope::repository(from, &[Action::Pull]),
        None => Scope::catalog(),
    };
    decide(state, identity, &[needed]).await == Decision::Allow
}

impl From<AuthError> for ApiError {
    /// 401 `UNAUTHORIZED` with the challenge, and, as distribution sends, the access the
    /// request needed as the detail.
    fn from(e: AuthError) -> Self {
        let detail = match e.challenge() {
            Challenge::Bearer { scopes, .. } if !scopes.is_empty() => Some(access_detail(scopes)),
            _ => None,
        };
        let challenge = HeaderValue::try_from(e.challenge().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("Basic realm=\"registry\""));
        ApiError::new(ErrorCode::Unauthorized, detail).header(WWW_AUTHENTICATE, challenge)
    }
}

/// Distribution's detail: one `{Type, Class, Name, Action}` record per action.
fn access_detail(scopes: &[Scope]) -> serde_json::Value {
    let records: Vec<serde_json::Value> = scopes
        .iter()
        .flat_map(|scope| {
            scope.actions.iter().map(|action| {
                json!({
                    "Type": scope.resource_type,
                    "Class": "",
                    "Name": scope.name,
                    "Action": action.as_str(),
                })
            })
        })
        .collect();
    serde_json::Value::Array(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> Route {
        Route::parse(path).unwrap()
    }

    #[test]
    fn scopes_by_route_and_method() {
        const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let id = "0b5e8f3c-1111-4c4c-8d8d-123456789abc";
        let cases: Vec<(String, Method, &str)> = vec![
            (format!("/v2/a/blobs/{D}"), Method::GET, "repository:a:pull"),
            (
                format!("/v2/a/blobs/{D}"),
                Method::HEAD,
                "repository:a:pull",
            ),
            (
                format!("/v2/a/blobs/{D}"),
                Method::DELETE,
                "repository:a:delete",
            ),
            (
                "/v2/a/b/blobs/uploads/".into(),
                Method::POST,
                "repository:a/b:pull,push",
            ),
            (
                format!("/v2/a/blobs/uploads/{id}"),
                Method::PATCH,
                "repository:a:pull,push",
            ),
            (
                format!("/v2/a/blobs/uploads/{id}"),
                Method::PUT,
                "repository:a:pull,push",
            ),
            (
                format!("/v2/a/blobs/uploads/{id}"),
                Method::GET,
                "repository:a:pull",
            ),
            (
                format!("/v2/a/blobs/uploads/{id}"),
                Method::DELETE,
                "repository:a:delete",
            ),
            (
                "/v2/a/manifests/v1".into(),
                Method::PUT,
                "repository:a:pull,push",
            ),
            (
                "/v2/a/manifests/v1".into(),
                Method::DELETE,
                "repository:a:delete",
            ),
            ("/v2/a/tags/list".into(), Method::GET, "repository:a:pull"),
            (
                format!("/v2/a/referrers/{D}"),
                Method::GET,
                "repository:a:pull",
            ),
            ("/v2/_catalog".into(), Method::GET, "registry:catalog:*"),
            ("/v2/_catalog".into(), Method::POST, "registry:catalog:*"),
        ];
        for (path, method, expected) in cases {
            let scopes = needed_scopes(&route(&path), &method);
            let printed: Vec<String> = scopes.iter().map(Scope::to_string).collect();
            assert_eq!(printed, [expected], "{method} {path}");
        }
        assert!(needed_scopes(&route("/v2/"), &Method::GET).is_empty());
        assert!(needed_scopes(&route("/v2/a/tags/list"), &Method::OPTIONS).is_empty());
    }

    #[test]
    fn refusals_are_401_with_the_challenge_and_the_access_needed() {
        let challenge = Challenge::Bearer {
            realm: "http://t/token".into(),
            service: "s".into(),
            scopes: vec![Scope::repository("a", &[Action::Pull, Action::Push])],
            error: None,
        };
        let response = ApiError::from(AuthError::Missing(challenge.clone())).into_response();
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            challenge.to_string().as_str()
        );
        let basic = ApiError::from(AuthError::Missing(Challenge::Basic { realm: "r".into() }));
        assert_eq!(basic.status(), 401);
        let detail = access_detail(&[Scope::repository("a", &[Action::Pull, Action::Push])]);
        assert_eq!(detail[1]["Action"], "push");
        assert_eq!(detail[0]["Name"], "a");
    }
}
