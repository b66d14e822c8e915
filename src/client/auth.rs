//! Authentication as real clients do it: send what worked before, and on a 401 read the
//! challenge, get what it asks for (Basic credentials, or a Bearer token from the token
//! server for the challenged scope) and retry once.
//!
//! Tokens are cached per scope set until shortly before they expire, so a pull of many layers
//! asks the token server once. Credentials never leave this module except in an
//! `Authorization` header to the registry or its token server.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use parking_lot::Mutex;
use serde::Deserialize;

use super::challenge::{parse_challenges, Challenge};
use super::credentials::Credential;
use super::error::ClientError;
use super::transport::{read_body, Payload, Transport};

/// Tokens are treated as expired this long before their stated expiry.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);
/// A token server's answer larger than this is refused.
const MAX_TOKEN_ANSWER: usize = 1 << 20;
/// How long a token lives when the answer does not say (the docker token spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// The scopes a request needs, as `repository:NAME:ACTIONS` strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Scopes(Vec<String>);

impl Scopes {
    /// No scope (`/v2/`).
    pub fn none() -> Self {
        Scopes(Vec::new())
    }

    /// `repository:NAME:ACTIONS` (`actions` like `"pull"` or `"pull,push"`).
    pub fn repository(name: &str, actions: &str) -> Self {
        Scopes(vec![format!("repository:{name}:{actions}")])
    }

    /// This set plus `repository:NAME:ACTIONS`.
    pub fn and_repository(mut self, name: &str, actions: &str) -> Self {
        self.0.push(format!("repository:{name}:{actions}"));
        self
    }

    /// `registry:catalog:*`.
    pub fn catalog() -> Self {
        Scopes(vec!["registry:catalog:*".to_owned()])
    }

    fn key(&self) -> String {
        let mut sorted = self.0.clone();
        sorted.sort();
        sorted.join(" ")
    }
}

struct CachedToken {
    value: HeaderValue,
    expires: Instant,
}

/// Per-registry authentication state.
pub struct Auth {
    credential: Option<Credential>,
    tokens: Mutex<HashMap<String, CachedToken>>,
    basic: Mutex<bool>,
    /// The last Bearer challenge seen, so a token can be fetched before a request that
    /// cannot be repeated (a streamed upload) instead of after its 401.
    bearer: Mutex<Option<Challenge>>,
    /// Held while a token is fetched, so parallel requests challenged at once wait for one
    /// token instead of each asking the token server.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

impl Auth {
    /// State for a registry where `credential` (if any) is presented when asked.
    pub fn new(credential: Option<Credential>) -> Self {
        Auth {
            credential,
            tokens: Mutex::new(HashMap::new()),
            basic: Mutex::new(false),
            bearer: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// The credential presented when asked, if any.
    #[cfg_attr(not(feature = "bench"), allow(dead_code))] // only the benchmark client uses it
    pub fn credential(&self) -> Option<&Credential> {
        self.credential.as_ref()
    }

    /// The `Authorization` header to send with a request needing `scopes`, from what earlier
    /// challenges taught: Basic credentials, or a cached, unexpired token for these scopes.
    pub fn header_for(&self, scopes: &Scopes) -> Option<HeaderValue> {
        if *self.basic.lock() {
            return self.basic_header();
        }
        let tokens = self.tokens.lock();
        let token = tokens.get(&scopes.key())?;
        (Instant::now() < token.expires).then(|| token.value.clone())
    }

    /// Learns from a 401's `WWW-Authenticate` header (`challenge.0`) to a request that
    /// presented `challenge.1`: afterwards [`Auth::header_for`] has something new to send. A
    /// 401 to a request sent before a parallel one learned the answer just needs a retry. An
    /// error means a retry would be refused too.
    pub async fn answer_challenge(
        &self,
        transport: &Transport,
        challenge: (Option<&HeaderValue>, Option<&HeaderValue>),
        scopes: &Scopes,
        url: &str,
    ) -> Result<(), ClientError> {
        let (header, sent) = challenge;
        let unauthorized = |reason: String| ClientError::Unauthorized {
            url: url.to_owned(),
            reason,
        };
        let header = header
            .and_then(|h| h.to_str().ok())
            .ok_or_else(|| unauthorized("401 without a WWW-Authenticate challenge".into()))?;
        let challenges = parse_challenges(header)?;
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            *self.bearer.lock() = Some(bearer.clone());
            let _fetching = self.fetching.lock().await;
            let current = self.header_for(scopes);
            if current.is_some() && current.as_ref() != sent {
                return Ok(());
            }
            let token = self.fetch_token(transport, bearer, scopes).await?;
            self.tokens.lock().insert(scopes.key(), token);
            return Ok(());
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let mut basic = self.basic.lock();
            if *basic && sent.is_none() {
                return Ok(());
            }
            if *basic || !matches!(self.credential, Some(Credential::Basic { .. })) {
                return Err(unauthorized(if *basic {
                    "the registry refused the user name and password".into()
                } else {
                    "the registry wants a user name and password, and none are configured for it (layerstore login)".into()
                }));
            }
            *basic = true;
            return Ok(());
        }
        Err(unauthorized(format!(
            "no supported challenge (scheme {:?})",
            challenges[0].scheme
        )))
    }

    /// Before a request that cannot be sent twice: when the registry is known to want Bearer
    /// tokens and none is cached for `scopes` (or it expired), fetch one now.
    pub async fn prepare(&self, transport: &Transport, scopes: &Scopes) -> Result<(), ClientError> {
        if self.header_for(scopes).is_some() {
            return Ok(());
        }
        let Some(challenge) = self.bearer.lock().clone() else {
            return Ok(());
        };
        let _fetching = self.fetching.lock().await;
        if self.header_for(scopes).is_some() {
            return Ok(());
        }
        let mut challenge = challenge;
        challenge.params.remove("scope");
        let token = self.fetch_token(transport, &challenge, scopes).await?;
        self.tokens.lock().insert(scopes.key(), token);
        Ok(())
    }

    /// The request for a token: GET with Basic credentials (or anonymous), or the OAuth2
    /// refresh-token POST for an identity token.
    fn token_request(
        &self,
        realm: &str,
        challenge: &Challenge,
        scopes: &Scopes,
    ) -> Result<Request<super::transport::RequestBody>, ClientError> {
        let token_error = |reason: String| ClientError::Token {
            realm: realm.to_owned(),
            reason,
        };
        let mut all_scopes: Vec<String> = scopes.0.clone();
        if let Some(challenged) = challenge.param("scope") {
            for scope in challenged.split(' ').filter(|s| !s.is_empty()) {
                if !all_scopes.iter().any(|s| s == scope) {
                    all_scopes.push(scope.to_owned());
                }
            }
        }
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(service) = challenge.param("service") {
            query.append_pair("service", service);
        }
        for scope in &all_scopes {
            query.append_pair("scope", scope);
        }
        match &self.credential {
            Some(Credential::IdentityToken(refresh)) => {
                query.append_pair("grant_type", "refresh_token");
                query.append_pair("refresh_token", refresh);
                query.append_pair("client_id", "layerstore");
                Request::builder()
                    .method(Method::POST)
                    .uri(realm)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Payload::Bytes(query.finish().into()).body())
            }
            credential => {
                if let Some(Credential::Basic { username, .. }) = credential {
                    query.append_pair("account", username);
                }
                let separator = if realm.contains('?') { '&' } else { '?' };
                let mut builder = Request::builder()
                    .method(Method::GET)
                    .uri(format!("{realm}{separator}{}", query.finish()));
                if let Some(basic) = self.basic_header() {
                    builder = builder.header(AUTHORIZATION, basic);
                }
                builder.body(Payload::Empty.body())
            }
        }
        .map_err(|e| token_error(format!("invalid realm: {e}")))
    }

    fn basic_header(&self) -> Option<HeaderValue> {
        match &self.credential {
            Some(Credential::Basic { username, password }) => {
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                let mut value = HeaderValue::try_from(format!("Basic {encoded}")).ok()?;
                value.set_sensitive(true);
                Some(value)
            }
            _ => None,
        }
    }

    /// Asks the token server named by `challenge` for a token covering the challenge's scope
    /// and `scopes`: GET with Basic credentials (or anonymously), or the OAuth2 refresh-token
    /// POST when the credential is an identity token.
    async fn fetch_token(
        &self,
        transport: &Transport,
        challenge: &Challenge,
        scopes: &Scopes,
    ) -> Result<CachedToken, ClientError> {
        let realm = challenge
            .param("realm")
            .ok_or_else(|| ClientError::Protocol("Bearer challenge without a realm".into()))?
            .to_owned();
        let token_error = |reason: String| ClientError::Token {
            realm: realm.clone(),
            reason,
        };
        let request = self.token_request(&realm, challenge, scopes)?;
        let response = transport.send(request).await?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(ClientError::Unauthorized {
                url: realm.clone(),
                reason: format!("the token server refused the credentials ({status})"),
            });
        }
        if !status.is_success() {
            return Err(token_error(format!("answered {status}")));
        }
        let bytes = read_body(response, MAX_TOKEN_ANSWER, "token answer").await?;
        let answer: TokenAnswer = serde_json::from_slice(&bytes)
            .map_err(|e| token_error(format!("unreadable answer: {e}")))?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| token_error("the answer holds no token".into()))?;
        let mut value = HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|_| token_error("the token is not a valid header value".into()))?;
        value.set_sensitive(true);
        let lifetime = answer
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        Ok(CachedToken {
            value,
            expires: Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN),
        })
    }
}
