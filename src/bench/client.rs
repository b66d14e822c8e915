//! A minimal HTTP/1.1 client on hyper: one kept-alive connection per worker and server,
//! reopened only when the server closes it, plus the base-URL parsing and `Location`
//! resolution a registry client needs. `https` URLs are reached over TLS
//! ([`super::transport`]). No pooling layer: each scenario owns its connections,
//! so the number of sockets is exactly the number asked for (times the number of servers).
//!
//! A run may name several servers (instances sharing one store and one secret, as behind a
//! load balancer): [`Targets`] hands them out in turn, one per request, so each step of an
//! upload may reach another instance than the step before.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, HOST};
use hyper::{Method, Request, Response, Uri};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use super::error::BenchError;
use super::transport::{connect, TlsTarget, NO_TRUST};

/// The body type of every request: empty, a buffer, or generated content.
pub type RequestBody = BoxBody<Bytes, Infallible>;

/// How long one request may wait for the response head (plus a second per MiB of its body).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(120);

/// A parsed `http[s]://HOST[:PORT][/PREFIX]` base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// Whether the scheme is `https`.
    pub https: bool,
    /// `HOST[:PORT]` as given: sent as `Host` and compared with absolute `Location`s.
    pub authority: String,
    /// Host name or address to resolve.
    pub host: String,
    /// TCP port (80, or 443 for https, when absent).
    pub port: u16,
    /// Path prefix before `/v2/`, without a trailing slash ("" for most registries).
    pub prefix: String,
}

impl BaseUrl {
    /// Parses the base URL (`http` or `https`).
    ///
    /// ```
    /// use layerstore::bench::client::BaseUrl;
    ///
    /// let url = BaseUrl::parse("http://127.0.0.1:5000/").unwrap();
    /// assert_eq!((url.host.as_str(), url.port, url.prefix.as_str()), ("127.0.0.1", 5000, ""));
    /// let url = BaseUrl::parse("https://registry.example/mirror").unwrap();
    /// assert_eq!((url.https, url.port, url.prefix.as_str()), (true, 443, "/mirror"));
    /// assert!(BaseUrl::parse("ftp://registry.example").is_err());
    /// ```
    pub fn parse(url: &str) -> Result<Self, BenchError> {
        let invalid = |reason| BenchError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(invalid("scheme must be http or https")),
        };
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        if uri.query().is_some() {
            return Err(invalid("a base URL has no query"));
        }
        Ok(BaseUrl {
            https,
            authority: authority.as_str().to_owned(),
            host: authority.host().to_owned(),
            port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.https {
            "https"
        } else {
            "http"
        }
    }
}

/// A resolved server: where to connect and how to name it.
#[derive(Debug)]
pub struct Target {
    /// The base URL.
    pub base: BaseUrl,
    /// The first address the host resolved to.
    pub addr: SocketAddr,
    /// `base.authority` as the `Host` header sent with every request.
    host: HeaderValue,
    /// For https URLs.
    tls: Option<TlsTarget>,
}

impl Target {
    /// Parses and resolves an `http` URL.
    pub async fn resolve(url: &str) -> Result<Arc<Self>, BenchError> {
        Self::resolve_with(url, None).await
    }

    /// Parses and resolves `url`; an `https` one needs `tls` (see
    /// [`tls_config`](super::transport::tls_config)).
    pub async fn resolve_with(
        url: &str,
        tls: Option<&Arc<ClientConfig>>,
    ) -> Result<Arc<Self>, BenchError> {
        let base = BaseUrl::parse(url)?;
        let invalid = |reason| BenchError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let host_header = HeaderValue::from_str(&base.authority)
            .map_err(|_| invalid("the host is not a valid Host header"))?;
        let tls = match (base.https, tls) {
            (false, _) => None,
            (true, None) => return Err(invalid(NO_TRUST)),
            (true, Some(config)) => {
                let bare = base.host.trim_start_matches('[').trim_end_matches(']');
                let name = ServerName::try_from(bare.to_owned())
                    .map_err(|_| invalid("the host is not a valid TLS server name"))?;
                Some(TlsTarget {
                    config: Arc::clone(config),
                    name,
                })
            }
        };
        let host = format!("{}:{}", base.host, base.port);
        let first = match tokio::net::lookup_host(host.clone()).await {
            Ok(mut addrs) => addrs.next(),
            Err(source) => return Err(BenchError::Resolve { host, source }),
        };
        let addr = first.ok_or_else(|| BenchError::Resolve {
            host,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
        })?;
        Ok(Arc::new(Target {
            base,
            addr,
            host: host_header,
            tls,
        }))
    }

    /// `PREFIX/v2/REST`: the path of an API endpoint.
    pub fn api_path(&self, rest: &str) -> String {
        format!("{}/v2/{rest}", self.base.prefix)
    }

    /// A request builder for `path_and_query` with `Host` set (to this server: a rotating
    /// [`Connection`] replaces it with the server it sends to).
    pub fn request(&self, method: Method, path_and_query: &str) -> hyper::http::request::Builder {
        request(method, path_and_query).header(HOST, self.host.clone())
    }

    /// Resolves a `Location` header of the reply to a request for `request_path` into the
    /// path and query to use next: absolute URLs must name this server; relative ones are
    /// resolved against the request's path (RFC 3986, section 5.2).
    pub fn resolve_location(&self, request_path: &str, location: &str) -> Option<String> {
        resolve_location_in(
            self.base.scheme(),
            &self.base.authority,
            request_path,
            location,
        )
    }
}

/// The servers of a run, taken in turn: each request goes to the next one, round robin over
/// every request of every scenario and worker. They must be instances of one registry (one
/// store, one secret): an upload started on one is continued on the others.
#[derive(Debug)]
pub struct Targets {
    all: Vec<Arc<Target>>,
    turn: AtomicUsize,
}

impl Targets {
    /// Parses and resolves every URL (`https` ones need `tls`). All must have the same path
    /// prefix, because the path of a `Location` returned by one server is sent as is to the
    /// next.
    pub async fn resolve(
        urls: &[String],
        tls: Option<&Arc<ClientConfig>>,
    ) -> Result<Arc<Self>, BenchError> {
        let mut all: Vec<Arc<Target>> = Vec::with_capacity(urls.len());
        for url in urls {
            let target = Target::resolve_with(url, tls).await?;
            if all
                .first()
                .is_some_and(|first| first.base.prefix != target.base.prefix)
            {
                return Err(BenchError::InvalidUrl {
                    url: url.clone(),
                    reason: "its path prefix differs from the first URL's (upload locations \
                             are passed from one server to the next)",
                });
            }
            all.push(target);
        }
        if all.is_empty() {
            return Err(BenchError::InvalidOption {
                option: "url",
                reason: "at least one registry URL is needed",
            });
        }
        Ok(Self::new(all))
    }

    fn new(all: Vec<Arc<Target>>) -> Arc<Self> {
        Arc::new(Targets {
            all,
            turn: AtomicUsize::new(0),
        })
    }

    /// `PREFIX/v2/REST`: the path of an API endpoint (the same on every server).
    pub fn api_path(&self, rest: &str) -> String {
        self.all[0].api_path(rest)
    }

    /// The index of the server whose turn it is; advances the turn.
    fn take_turn(&self) -> usize {
        self.turn.fetch_add(1, Ordering::Relaxed) % self.all.len()
    }
}

/// A request for `path_and_query` on whichever server [`Connection::send`] picks (it sets
/// `Host`): upload paths come from one server's `Location` and go to the next.
pub fn request(method: Method, path_and_query: &str) -> hyper::http::request::Builder {
    Request::builder().method(method).uri(path_and_query)
}

/// Pure form of [`Target::resolve_location`] for an `http` server.
///
/// ```
/// use layerstore::bench::client::resolve_location;
///
/// let at = "/v2/r/blobs/uploads/";
/// assert_eq!(resolve_location("h:1", at, "http://h:1/v2/r/u/1?x=y").as_deref(), Some("/v2/r/u/1?x=y"));
/// assert_eq!(resolve_location("h:1", at, "/v2/r/u/1").as_deref(), Some("/v2/r/u/1"));
/// assert_eq!(resolve_location("h:1", at, "abc?t=1").as_deref(), Some("/v2/r/blobs/uploads/abc?t=1"));
/// assert_eq!(resolve_location("h:1", at, "http://other/v2/").as_deref(), None);
/// assert_eq!(resolve_location("h:1", at, "0/..#x/5/.").as_deref(), Some("/v2/r/blobs/uploads/"));
/// assert_eq!(resolve_location("h:1", "/./.#/", "").as_deref(), Some("/"));
/// ```
pub fn resolve_location(authority: &str, request_path: &str, location: &str) -> Option<String> {
    resolve_location_in("http", authority, request_path, location)
}

/// Pure form of [`Target::resolve_location`]: absolute `Location`s must name `scheme` and
/// `authority`.
pub fn resolve_location_in(
    scheme: &str,
    authority: &str,
    request_path: &str,
    location: &str,
) -> Option<String> {
    // A fragment is never sent and takes no part in resolving (RFC 3986, sections 5.1 and
    // 5.2.2); left in, it hid dot segments from `remove_dot_segments` (found by the
    // `bench_location` fuzz target: `0/..#x/5/.` resolved to `/v2/r/blobs/uploads/0/..`, and a
    // request path `/./.#/` to `/.`).
    let (request_path, location) = (without_fragment(request_path), without_fragment(location));
    let absolute = location
        .strip_prefix(scheme)
        .and_then(|rest| rest.strip_prefix("://"));
    let resolved = if let Some(rest) = absolute.or_else(|| location.strip_prefix("//")) {
        let (host, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        if !host.eq_ignore_ascii_case(authority) {
            return None;
        }
        absolute_path(path)
    } else if location.contains("://") {
        return None; // another scheme: not this server
    } else if location.starts_with('/') {
        location.to_owned()
    } else {
        let (request_path, _query) = split_query(request_path);
        let directory = &request_path[..request_path.rfind('/').map_or(0, |i| i + 1)];
        absolute_path(&format!("{directory}{location}"))
    };
    let (path, query) = split_query(&resolved);
    let normalized = remove_dot_segments(path);
    let joined = match query {
        Some(query) => format!("{normalized}?{query}"),
        None => normalized,
    };
    let checked: hyper::http::uri::PathAndQuery = joined.parse().ok()?;
    Some(checked.as_str().to_owned())
}

fn without_fragment(uri: &str) -> &str {
    uri.split_once('#').map_or(uri, |(before, _)| before)
}

fn absolute_path(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

fn split_query(path_and_query: &str) -> (&str, Option<&str>) {
    match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    }
}

/// Removes `.` and `..` segments of an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." | ".." => {
                if *segment == ".." {
                    out.pop();
                }
                if i == last {
                    out.push(""); // "a/b/.." names the directory "a/"
                }
            }
            other => out.push(other),
        }
    }
    format!("/{}", out.join("/"))
}

/// One worker's kept-alive connection to each server (one for most runs), opened on first
/// use.
#[derive(Debug)]
pub struct Connection {
    targets: Arc<Targets>,
    senders: Vec<Option<SendRequest<RequestBody>>>,
    /// Index of the server the last request went to.
    last: usize,
}

impl Connection {
    /// A connection to one server, opened on first use.
    pub fn new(target: Arc<Target>) -> Self {
        Self::rotating(Targets::new(vec![target]))
    }

    /// Connections to every server, each request sent to the next one in turn.
    pub fn rotating(targets: Arc<Targets>) -> Self {
        let senders = targets.all.iter().map(|_| None).collect();
        Connection {
            targets,
            senders,
            last: 0,
        }
    }

    /// The server that answered the last request (the first one before any): the
    /// `Location`s of its replies are resolved against it.
    pub fn target(&self) -> &Target {
        &self.targets.all[self.last]
    }

    /// `PREFIX/v2/REST`: the path of an API endpoint.
    pub fn api_path(&self, rest: &str) -> String {
        self.targets.api_path(rest)
    }

    /// Sends `request` to the server whose turn it is, naming it in `Host` (replaced if the
    /// request has one), and returns the response head (the body still streams).
    pub async fn send(
        &mut self,
        step: &'static str,
        mut request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, BenchError> {
        self.last = self.targets.take_turn();
        request
            .headers_mut()
            .insert(HOST, self.target().host.clone());
        // The answer comes after the whole body is sent: allow for sending it at 1 MiB/s, so a
        // 5 GiB push to a slow store is not cut short (a stall still ends the run).
        let body_len = hyper::body::Body::size_hint(request.body()).lower();
        let timeout = RESPONSE_TIMEOUT + Duration::from_secs(body_len >> 20);
        let sender = self.ready(step).await?;
        match tokio::time::timeout(timeout, sender.send_request(request)).await {
            Ok(result) => result.map_err(|source| BenchError::Http { step, source }),
            Err(_) => Err(BenchError::Timeout {
                step,
                seconds: timeout.as_secs(),
            }),
        }
    }

    /// The connection to the last request's server, reopened if it was closed.
    async fn ready(
        &mut self,
        step: &'static str,
    ) -> Result<&mut SendRequest<RequestBody>, BenchError> {
        let slot = self.last;
        let reusable = match self.senders[slot].as_mut() {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        let sender = match self.senders[slot].take() {
            Some(sender) if reusable => sender,
            _ => {
                let target = self.target();
                connect(step, target.addr, target.tls.as_ref()).await?
            }
        };
        Ok(self.senders[slot].insert(sender))
    }
}

/// An empty request body.
pub fn empty() -> RequestBody {
    Empty::new().boxed()
}

/// A request body from a buffer.
pub fn full(bytes: Bytes) -> RequestBody {
    Full::new(bytes).boxed()
}

/// The value of `name` as text, if present and valid.
pub fn header<'a>(response: &'a Response<Incoming>, name: &str) -> Option<&'a str> {
    response.headers().get(name)?.to_str().ok()
}

/// Fails with [`BenchError::Status`] unless the status is `expected`.
pub fn expect_status(
    step: &'static str,
    response: &Response<Incoming>,
    expected: u16,
) -> Result<(), BenchError> {
    let got = response.status().as_u16();
    if got == expected {
        Ok(())
    } else {
        Err(BenchError::Status {
            step,
            expected,
            got,
        })
    }
}

/// The next frame of a response body, failing if the server stalls for [`RESPONSE_TIMEOUT`]
/// (a server that stops mid-body must not hang the run).
pub async fn next_frame(
    step: &'static str,
    body: &mut Incoming,
) -> Result<Option<hyper::body::Frame<Bytes>>, BenchError> {
    match tokio::time::timeout(RESPONSE_TIMEOUT, body.frame()).await {
        Ok(Some(frame)) => frame
            .map(Some)
            .map_err(|source| BenchError::Http { step, source }),
        Ok(None) => Ok(None),
        Err(_) => Err(BenchError::Timeout {
            step,
            seconds: RESPONSE_TIMEOUT.as_secs(),
        }),
    }
}

/// Reads a body of at most `limit` bytes (longer ones fail: a registry's small answers
/// must not make the client buffer without bound).
pub async fn read_body(
    step: &'static str,
    body: Incoming,
    limit: usize,
) -> Result<Bytes, BenchError> {
    let mut body = body;
    let mut out = BytesMut::new();
    while let Some(frame) = next_frame(step, &mut body).await? {
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(BenchError::LengthMismatch {
                    step,
                    expected: limit as u64,
                    got: (out.len() + data.len()) as u64,
                });
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_forms() {
        let url = BaseUrl::parse("http://localhost").unwrap();
        assert_eq!((url.port, url.prefix.as_str()), (80, ""));
        let url = BaseUrl::parse("http://[::1]:8080/mirror/").unwrap();
        assert_eq!(
            (
                url.authority.as_str(),
                url.host.as_str(),
                url.prefix.as_str()
            ),
            ("[::1]:8080", "[::1]", "/mirror")
        );
        let url = BaseUrl::parse("https://h:8443").unwrap();
        assert_eq!((url.https, url.port, url.scheme()), (true, 8443, "https"));
        for bad in [
            "",
            "localhost:5000",
            "ftp://h/",
            "http://h/?q=1",
            "https://h/?q",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn locations_resolve_like_a_browser() {
        let at = "/v2/a/b/blobs/uploads/";
        let cases = [
            (
                "/v2/a/b/blobs/uploads/u1?_state=x",
                Some("/v2/a/b/blobs/uploads/u1?_state=x"),
            ),
            ("http://H:5000/v2/x?y=1", Some("/v2/x?y=1")),
            ("//h:5000/v2/x", Some("/v2/x")),
            ("http://h:5000", Some("/")),
            ("u1", Some("/v2/a/b/blobs/uploads/u1")),
            ("../u1?z", Some("/v2/a/b/blobs/u1?z")),
            ("./u1", Some("/v2/a/b/blobs/uploads/u1")),
            ("http://h:5001/v2/x", None),
            ("https://h:5000/v2/x", None),
            ("/v2/has space", None),
        ];
        for (location, expected) in cases {
            assert_eq!(
                resolve_location("h:5000", at, location).as_deref(),
                expected,
                "{location}"
            );
        }
        // An https server's absolute Locations are https ones.
        let https = |location| resolve_location_in("https", "h:5000", at, location);
        assert_eq!(https("https://h:5000/v2/x").as_deref(), Some("/v2/x"));
        assert_eq!(https("//h:5000/v2/x").as_deref(), Some("/v2/x"));
        assert_eq!(https("http://h:5000/v2/x"), None);
    }

    #[test]
    fn fuzz_entries_survive_hostile_inputs() {
        let inputs: [&[u8]; 8] = [
            b"",
            b"\n",
            b"/a/b\n../../../../x",
            b"/\n//h:5000",
            b"/v2/x?q\nhttp://127.0.0.1:5000?a=b",
            b"/\n\xff\xfe",
            b"/a\n./../.?/..",
            b"1 (x) S 1 2 3 4 5 6 7 8 9 10 11 99999999999999999999 1\nVmHWM: 99999999999999999999999 kB",
        ];
        for input in inputs {
            crate::fuzzing::bench_location(input);
            crate::fuzzing::bench_proc_text(input);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_location_resolves_safely_or_not_at_all(request in "/[a-z/.]{0,20}", location in "\\PC{0,40}") {
            crate::fuzzing::bench_location(format!("{request}\n{location}").as_bytes());
        }
    }

    #[tokio::test]
    async fn targets_take_turns_and_share_one_prefix() {
        let urls = ["http://127.0.0.1:1/p", "http://127.0.0.1:2/p/"].map(String::from);
        let targets = Targets::resolve(&urls, None).await.unwrap();
        let turns: Vec<usize> = (0..5).map(|_| targets.take_turn()).collect();
        assert_eq!(turns, [0, 1, 0, 1, 0]);
        assert_eq!(
            targets.api_path("r/blobs/uploads/"),
            "/p/v2/r/blobs/uploads/"
        );
        let mixed = ["http://127.0.0.1:1/p", "http://127.0.0.1:2"].map(String::from);
        let error = Targets::resolve(&mixed, None).await.unwrap_err();
        assert!(error.to_string().contains("prefix"), "{error}");
        assert!(Targets::resolve(&[], None).await.is_err());
        let https = ["https://127.0.0.1:1".to_owned()];
        let error = Targets::resolve(&https, None).await.unwrap_err();
        assert!(error.to_string().contains("--cacert FILE"), "{error}");
        let trust = crate::http::tls::ServerTrust::AnyCertificate;
        let insecure = crate::bench::transport::tls_config(&trust).unwrap();
        let targets = Targets::resolve(&https, Some(&insecure)).await.unwrap();
        assert!(targets.all[0].tls.is_some());
    }

    #[test]
    fn dot_segments() {
        assert_eq!(remove_dot_segments("/a/b/../c/./d"), "/a/c/d");
        assert_eq!(remove_dot_segments("/../../a"), "/a");
        assert_eq!(remove_dot_segments("/a/b/.."), "/a/");
    }
}
