//! [`Registry`]: one registry host, its connection pool, its authentication state, and the
//! request loop every API call goes through (authenticate, retry, follow redirects).

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{
    HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;

use super::auth::{Auth, Scopes};
use super::error::ClientError;
use super::options::ClientOptions;
use super::single_flight::SingleFlight;
use super::transport::{read_body, Payload, PoolSettings, RequestBody, Transport};

/// Longest error body read to find the OCI error code.
const MAX_ERROR_BODY: usize = 64 << 10;
/// Redirects followed for one GET or HEAD (a blob served from object storage).
const MAX_REDIRECTS: usize = 5;
/// Longest pause between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A client for one registry. Clones share the connection pool, the token cache and the
/// single-flight table, so clone it freely into tasks.
///
/// ```
/// # layerstore::client::doctest::with_registry(|host| async move {
/// use layerstore::client::{ClientOptions, Registry};
///
/// let registry = Registry::new(&host, ClientOptions::plain_http())?;
/// registry.ping().await?;
/// let digest = registry.push_blob_bytes("team/app", b"hello".as_slice().into()).await?;
/// let bytes = registry.get_blob_bytes("team/app", &digest, 1 << 20).await?;
/// assert_eq!(&bytes[..], b"hello");
/// # Ok(()) });
/// ```
#[derive(Clone, Debug)]
pub struct Registry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    /// `scheme://host[:port]`.
    base: String,
    host: String,
    pub(crate) transport: Transport,
    auth: Auth,
    retries: u32,
    backoff: Duration,
    pub(crate) flights: SingleFlight,
}

/// One API call: what to send and which scopes it needs.
pub(crate) struct Call {
    pub method: Method,
    /// A path on the registry (`/v2/...`) or an absolute URL (a `Location` it sent).
    pub target: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub payload: Payload,
    pub scopes: Scopes,
}

impl Call {
    pub fn new(method: Method, target: impl Into<String>, scopes: Scopes) -> Self {
        Call {
            method,
            target: target.into(),
            headers: Vec::new(),
            payload: Payload::Empty,
            scopes,
        }
    }

    pub fn header(mut self, name: HeaderName, value: impl TryInto<HeaderValue>) -> Self {
        if let Ok(value) = value.try_into() {
            self.headers.push((name, value));
        }
        self
    }

    pub fn payload(mut self, payload: Payload) -> Self {
        self.payload = payload;
        self
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    code: Option<String>,
    message: Option<String>,
}

impl Registry {
    /// A client for `host` (`HOST[:PORT]`, or a URL `http://HOST[:PORT]` / `https://…`).
    /// Credentials are taken from `options.credential`, else looked up for the host in the
    /// auth files.
    pub fn new(host: &str, options: ClientOptions) -> Result<Self, ClientError> {
        let (scheme, authority) = split_scheme(host, options.plain_http)?;
        let credential = match options.credential.clone() {
            Some(credential) => Some(credential),
            None => options.auth_files.lookup(&authority)?,
        };
        let settings = PoolSettings {
            tls: options.tls_config()?,
            connect_timeout: options.connect_timeout,
            max_idle_per_host: options.max_idle_per_host,
            http2: options.http2,
        };
        let transport = Transport::with_settings(settings, options.timeout);
        Ok(Registry {
            inner: Arc::new(Inner {
                base: format!("{scheme}://{authority}"),
                host: authority,
                transport,
                auth: Auth::new(credential),
                retries: options.retries,
                backoff: options.backoff,
                flights: SingleFlight::default(),
            }),
        })
    }

    /// The registry's `host[:port]`.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// `scheme://host[:port]`: the origin every registry path is appended to.
    #[cfg_attr(not(feature = "bench"), allow(dead_code))] // only the benchmark client uses it
    pub(crate) fn origin(&self) -> &str {
        &self.inner.base
    }

    /// A client for the same registry with a connection pool of its own (same TLS settings
    /// and credentials, fresh token cache): a benchmark worker owns its sockets this way.
    #[cfg_attr(not(feature = "bench"), allow(dead_code))] // only the benchmark client uses it
    pub(crate) fn with_own_pool(&self) -> Registry {
        let inner = &self.inner;
        Registry {
            inner: Arc::new(Inner {
                base: inner.base.clone(),
                host: inner.host.clone(),
                transport: inner.transport.separate_pool(),
                auth: Auth::new(inner.auth.credential().cloned()),
                retries: inner.retries,
                backoff: inner.backoff,
                flights: SingleFlight::default(),
            }),
        }
    }

    /// Sends `request` once, as built, waiting at most `timeout` for the response head: no
    /// credentials, no retry, no redirect followed, any status returned. Its URI is a path
    /// on this registry (`/v2/...`, or with a path prefix) or an absolute URL. For callers that
    /// must see every answer the server gives (the benchmark verifies each one).
    #[cfg_attr(not(feature = "bench"), allow(dead_code))] // only the benchmark client uses it
    pub(crate) async fn send_once(
        &self,
        mut request: Request<RequestBody>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, ClientError> {
        let target = request.uri().to_string();
        let url = self.url(&target)?;
        *request.uri_mut() =
            url.parse()
                .map_err(|e: hyper::http::uri::InvalidUri| ClientError::InvalidUrl {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
        self.inner.transport.send_within(request, timeout).await
    }

    /// `GET /v2/`: the registry answers and speaks the distribution API (with credentials,
    /// when it asks for them).
    pub async fn ping(&self) -> Result<(), ClientError> {
        let call = Call::new(Method::GET, "/v2/", Scopes::none());
        self.send(call, &[StatusCode::OK]).await.map(drop)
    }

    /// [`Registry::execute`], then any status outside `ok` becomes [`ClientError::Status`].
    pub(crate) async fn send(
        &self,
        call: Call,
        ok: &[StatusCode],
    ) -> Result<Response<Incoming>, ClientError> {
        let method = call.method.to_string();
        let url = self.url(&call.target)?;
        let response = self.execute(call).await?;
        if ok.contains(&response.status()) {
            return Ok(response);
        }
        Err(status_error(response, method, url).await)
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Sends `call`: authenticating on a 401 (once), retrying transient failures of
    /// replayable requests with backoff (honouring `Retry-After`), following redirects of GET
    /// and HEAD. Any other status is returned for the caller to judge.
    pub(crate) async fn execute(&self, mut call: Call) -> Result<Response<Incoming>, ClientError> {
        let inner = &self.inner;
        if !call.payload.is_replayable() {
            inner.auth.prepare(&inner.transport, &call.scopes).await?;
        }
        let mut url = self.url(&call.target)?;
        let mut challenged = false;
        let mut attempt = 0;
        let mut redirects = 0;
        loop {
            let same_host = url.starts_with(&inner.base);
            // What this attempt presents, so a 401 answered meanwhile by a parallel request
            // is not answered again.
            let sent = same_host
                .then(|| inner.auth.header_for(&call.scopes))
                .flatten();
            let request = self.build(&mut call, &url, same_host)?;
            let outcome = inner.transport.send(request).await;
            let response = match outcome {
                Ok(response) => response,
                Err(e)
                    if e.is_transient()
                        && call.payload.is_replayable()
                        && attempt < inner.retries =>
                {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "retrying");
                    tokio::time::sleep(self.backoff(attempt, None)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && same_host {
                let header = response.headers().get(WWW_AUTHENTICATE).cloned();
                let challenge = (header.as_ref(), sent.as_ref());
                let answered = inner
                    .auth
                    .answer_challenge(&inner.transport, challenge, &call.scopes, &url)
                    .await;
                // Refused again after answering (or not repeatable): say why, once.
                if challenged || !call.payload.is_replayable() {
                    answered?;
                    return Ok(response);
                }
                answered?;
                challenged = true;
                continue;
            }
            if (status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error())
                && call.payload.is_replayable()
                && attempt < inner.retries
            {
                attempt += 1;
                let wait = self.backoff(attempt, retry_after(&response));
                tracing::debug!(%status, attempt, ?wait, "retrying");
                drop(response);
                tokio::time::sleep(wait).await;
                continue;
            }
            if status.is_redirection()
                && matches!(call.method, Method::GET | Method::HEAD)
                && redirects < MAX_REDIRECTS
            {
                if let Some(location) = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|l| l.to_str().ok())
                {
                    url = resolve_url(&url, location)?;
                    redirects += 1;
                    continue;
                }
            }
            return Ok(response);
        }
    }

    fn build(
        &self,
        call: &mut Call,
        url: &str,
        same_host: bool,
    ) -> Result<Request<super::transport::RequestBody>, ClientError> {
        let mut builder = Request::builder().method(call.method.clone()).uri(url);
        for (name, value) in &call.headers {
            builder = builder.header(name, value);
        }
        if let Some(len) = call.payload.len() {
            if call.method != Method::GET && call.method != Method::HEAD {
                builder = builder.header(CONTENT_LENGTH, len);
            }
        }
        // Credentials go only to the registry itself, never to a host it redirects to.
        if same_host {
            if let Some(authorization) = self.inner.auth.header_for(&call.scopes) {
                builder = builder.header(AUTHORIZATION, authorization);
            }
        }
        builder
            .body(call.payload.body())
            .map_err(|e| ClientError::InvalidUrl {
                url: url.to_owned(),
                reason: e.to_string(),
            })
    }

    /// The absolute URL of a registry path or of a URL the registry sent.
    pub(crate) fn url(&self, target: &str) -> Result<String, ClientError> {
        if target.starts_with('/') {
            Ok(format!("{}{target}", self.inner.base))
        } else {
            resolve_url(&self.inner.base, target)
        }
    }

    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(Duration::from_secs(60));
        }
        let exponential = self.inner.backoff.saturating_mul(1 << (attempt - 1).min(8));
        let jitter = Duration::from_millis(u64::from(jitter_ms()));
        exponential.min(MAX_BACKOFF) + jitter
    }
}

/// `(scheme, authority)` of a registry given as `HOST[:PORT]` or a URL.
fn split_scheme(host: &str, plain_http: bool) -> Result<(&'static str, String), ClientError> {
    let invalid = |reason: &str| ClientError::InvalidUrl {
        url: host.to_owned(),
        reason: reason.to_owned(),
    };
    let (scheme, rest) = if let Some(rest) = host.strip_prefix("https://") {
        ("https", rest)
    } else if let Some(rest) = host.strip_prefix("http://") {
        ("http", rest)
    } else if plain_http {
        ("http", host)
    } else {
        ("https", host)
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return Err(invalid("expected HOST[:PORT]"));
    }
    authority
        .parse::<hyper::http::uri::Authority>()
        .map_err(|_| invalid("not a valid host"))?;
    Ok((scheme, authority.to_owned()))
}

/// Resolves a `Location` (absolute, absolute-path or relative) against the URL it answered.
pub(crate) fn resolve_url(base: &str, location: &str) -> Result<String, ClientError> {
    super::location::resolve_location(base, location)
}

/// A URL without its query (upload URLs carry state tokens that need not be in messages).
fn strip_query(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_owned()
}

fn retry_after(response: &Response<Incoming>) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn jitter_ms() -> u16 {
    let mut bytes = [0u8; 2];
    let _ = getrandom::fill(&mut bytes);
    u16::from_le_bytes(bytes) % 100
}

/// The error for an unexpected answer, with the OCI error code of its body when present.
pub(crate) async fn status_error(
    response: Response<Incoming>,
    method: String,
    url: String,
) -> ClientError {
    let status = response.status();
    let body = read_body(response, MAX_ERROR_BODY, "error body")
        .await
        .unwrap_or_default();
    let first = serde_json::from_slice::<ErrorBody>(&body)
        .ok()
        .and_then(|b| b.errors.into_iter().next());
    ClientError::Status {
        method,
        url: strip_query(&url),
        status,
        code: first.as_ref().and_then(|e| e.code.clone()),
        message: first.and_then(|e| e.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_schemes() {
        assert_eq!(
            split_scheme("h:5000", false).unwrap(),
            ("https", "h:5000".into())
        );
        assert_eq!(
            split_scheme("h:5000", true).unwrap(),
            ("http", "h:5000".into())
        );
        assert_eq!(
            split_scheme("http://h/", false).unwrap(),
            ("http", "h".into())
        );
        assert!(split_scheme("h/x", false).is_err());
        assert!(split_scheme("", false).is_err());
        assert!(split_scheme("u@h", false).is_err());
    }

    #[test]
    fn locations_resolve() {
        let base = "http://h:1/v2/r/blobs/uploads/?x=1";
        assert_eq!(
            resolve_url(base, "/v2/r/blobs/uploads/id").unwrap(),
            "http://h:1/v2/r/blobs/uploads/id"
        );
        assert_eq!(
            resolve_url(base, "id?_state=a").unwrap(),
            "http://h:1/v2/r/blobs/uploads/id?_state=a"
        );
        assert_eq!(resolve_url(base, "https://s3/x").unwrap(), "https://s3/x");
        assert_eq!(resolve_url(base, "//cdn/x").unwrap(), "http://cdn/x");
    }
}
