//! The bench's HTTP plumbing, on the registry client ([`crate::client`]): its transport (pooled
//! hyper over rustls), its URL and `Location` resolution, its TLS settings. What stays here is
//! what a benchmark needs beyond a client: several servers taken in turn, a connection pool per
//! worker, and the raw answers (every status and header is verified by the scenarios).
//!
//! Each [`Connection`] (one per worker) has a pool of its own per server keeping at most one
//! idle connection, and sends one request at a time, draining each answer before the next: so a
//! worker holds one kept-alive socket per server, and `--connections 32` means 32 sockets per
//! server. Not exactly at every instant: hyper-util's pool takes a connection back from a task
//! of its own, and a request sent before that task ran opens a second socket (the pool closes
//! one of the two once both are idle). `tests/bench_client.rs` sees this in about one run in
//! six with 12 workers, one extra connection per run.
//!
//! A run may name several servers (instances sharing one store and one secret, as behind a
//! load balancer): [`Targets`] hands them out in turn, one per request, so each step of an
//! upload may reach another instance than the step before.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::HOST;
use hyper::{Method, Request, Response, Uri};

use super::error::BenchError;
use crate::client::{resolve_location as resolve_url, ClientError, ClientOptions, Registry};
use crate::http::tls::ServerTrust;

/// The body type of every request: empty, a buffer, or generated content.
pub type RequestBody = BoxBody<Bytes, Infallible>;

/// How long one request may wait for the response head (plus a second per MiB of its body).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(120);

/// Why an https URL cannot be used without `--cacert` or `--insecure`.
const NO_TRUST: &str = "https needs the server's CA certificate (--cacert FILE) or --insecure";

/// One server: a registry client for its origin and the path prefix before `/v2/`.
#[derive(Debug)]
pub struct Target {
    /// The client every connection's pool is made from.
    registry: Registry,
    /// Path prefix before `/v2/`, without a trailing slash ("" for most registries).
    prefix: String,
}

impl Target {
    /// Parses an `http` URL and checks its host resolves.
    pub async fn resolve(url: &str) -> Result<Arc<Self>, BenchError> {
        Self::resolve_with(url, None).await
    }

    /// Parses `http[s]://HOST[:PORT][/PREFIX]` and checks its host resolves; an `https` one
    /// needs `trust`.
    pub async fn resolve_with(
        url: &str,
        trust: Option<&ServerTrust>,
    ) -> Result<Arc<Self>, BenchError> {
        let parsed = ParsedUrl::parse(url)?;
        let mut options = ClientOptions::plain_http();
        options.plain_http = !parsed.https;
        options.retries = 0;
        options.max_idle_per_host = 1;
        options.http2 = false;
        options.timeout = RESPONSE_TIMEOUT;
        match (parsed.https, trust) {
            (false, _) => {}
            (true, None) => return Err(parsed.invalid(NO_TRUST)),
            (true, Some(ServerTrust::CaFile(file))) => options.ca_files = vec![file.clone()],
            (true, Some(ServerTrust::AnyCertificate)) => options.insecure = true,
        }
        let registry =
            Registry::new(&parsed.origin, options).map_err(|source| BenchError::Setup {
                url: url.to_owned(),
                source: Box::new(source),
            })?;
        parsed.check_resolves().await?;
        Ok(Arc::new(Target {
            registry,
            prefix: parsed.prefix,
        }))
    }

    /// `PREFIX/v2/REST`: the path of an API endpoint.
    pub fn api_path(&self, rest: &str) -> String {
        format!("{}/v2/{rest}", self.prefix)
    }

    /// A request builder for `path_and_query` (on whichever server [`Connection::send`]
    /// picks).
    pub fn request(&self, method: Method, path_and_query: &str) -> hyper::http::request::Builder {
        request(method, path_and_query)
    }

    /// Resolves a `Location` header of the reply to a request for `request_path` into the
    /// path and query to use next: absolute URLs must name this server; relative ones are
    /// resolved against the request's path (RFC 3986, section 5.2).
    pub fn resolve_location(&self, request_path: &str, location: &str) -> Option<String> {
        on_origin(self.registry.origin(), request_path, location)
    }
}

/// A base URL taken apart: the origin the client connects to and the path prefix.
#[derive(Debug, PartialEq, Eq)]
struct ParsedUrl {
    url: String,
    https: bool,
    /// `scheme://HOST[:PORT]`.
    origin: String,
    /// `HOST:PORT` to resolve.
    host_port: String,
    prefix: String,
}

impl ParsedUrl {
    fn parse(url: &str) -> Result<Self, BenchError> {
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
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(ParsedUrl {
            url: url.to_owned(),
            https,
            origin: format!("{}://{authority}", if https { "https" } else { "http" }),
            host_port: format!("{}:{port}", authority.host()),
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    fn invalid(&self, reason: &'static str) -> BenchError {
        BenchError::InvalidUrl {
            url: self.url.clone(),
            reason,
        }
    }

    /// An unresolvable host is a setup error, not a failed scenario.
    async fn check_resolves(&self) -> Result<(), BenchError> {
        let host = self.host_port.clone();
        match tokio::net::lookup_host(host.clone()).await {
            Ok(mut addrs) => match addrs.next() {
                Some(_) => Ok(()),
                None => Err(BenchError::Resolve {
                    host,
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
                }),
            },
            Err(source) => Err(BenchError::Resolve { host, source }),
        }
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
    /// Parses every URL (`https` ones need `trust`) and checks the hosts resolve. All must
    /// have the same path prefix, because the path of a `Location` returned by one server is
    /// sent as is to the next.
    pub async fn resolve(
        urls: &[String],
        trust: Option<&ServerTrust>,
    ) -> Result<Arc<Self>, BenchError> {
        let mut all: Vec<Arc<Target>> = Vec::with_capacity(urls.len());
        for url in urls {
            let target = Target::resolve_with(url, trust).await?;
            if all
                .first()
                .is_some_and(|first| first.prefix != target.prefix)
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

/// A request for `path_and_query` on whichever server [`Connection::send`] picks (the client
/// sets `Host`): upload paths come from one server's `Location` and go to the next.
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
    on_origin(&format!("{scheme}://{authority}"), request_path, location)
}

/// `location`, answered to a request for `request_path` on `origin`, as a path and query on
/// that origin (`None` when it names another server or is not a valid request target).
fn on_origin(origin: &str, request_path: &str, location: &str) -> Option<String> {
    if !request_path.starts_with('/') {
        return None;
    }
    let url = resolve_url(&format!("{origin}{request_path}"), location).ok()?;
    let path = crate::client::path_on(origin, &url)?;
    let checked: hyper::http::uri::PathAndQuery = path.parse().ok()?;
    Some(checked.as_str().to_owned())
}

/// One worker's connections: to each server, a pool of its own holding one kept-alive
/// connection (opened on first use, reopened when the server closes it).
#[derive(Debug)]
pub struct Connection {
    targets: Arc<Targets>,
    pools: Vec<Registry>,
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
        let pools = targets
            .all
            .iter()
            .map(|target| target.registry.with_own_pool())
            .collect();
        Connection {
            targets,
            pools,
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

    /// Sends `request` (its URI a path and query) to the server whose turn it is and returns
    /// the response head (the body still streams). Read each body to its end before the next
    /// request, or the pool opens another connection.
    pub async fn send(
        &mut self,
        step: &'static str,
        request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, BenchError> {
        self.last = self.targets.take_turn();
        // The answer comes after the whole body is sent: allow for sending it at 1 MiB/s, so a
        // 5 GiB push to a slow store is not cut short (a stall still ends the run).
        let body_len = hyper::body::Body::size_hint(request.body()).lower();
        let timeout = RESPONSE_TIMEOUT + Duration::from_secs(body_len >> 20);
        let mut request = request.map(|body| body.map_err(|never| match never {}).boxed());
        request.headers_mut().remove(HOST); // the client names the server it sends to
        self.pools[self.last]
            .send_once(request, timeout)
            .await
            .map_err(|source| match source {
                ClientError::Timeout { timeout, .. } => BenchError::Timeout {
                    step,
                    seconds: timeout.as_secs(),
                },
                source => BenchError::Client {
                    step,
                    source: Box::new(source),
                },
            })
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

/// The next frame of a response body, failing if the server stalls for `RESPONSE_TIMEOUT`
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
        let url = ParsedUrl::parse("http://localhost").unwrap();
        assert_eq!(
            (url.host_port.as_str(), url.prefix.as_str()),
            ("localhost:80", "")
        );
        let url = ParsedUrl::parse("http://[::1]:8080/mirror/").unwrap();
        assert_eq!(
            (
                url.origin.as_str(),
                url.host_port.as_str(),
                url.prefix.as_str()
            ),
            ("http://[::1]:8080", "[::1]:8080", "/mirror")
        );
        let url = ParsedUrl::parse("https://h").unwrap();
        assert_eq!((url.https, url.host_port.as_str()), (true, "h:443"));
        for bad in [
            "",
            "localhost:5000",
            "ftp://h/",
            "http://h/?q=1",
            "https://h/?q",
        ] {
            assert!(ParsedUrl::parse(bad).is_err(), "{bad}");
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
        let trust = ServerTrust::AnyCertificate;
        let targets = Targets::resolve(&https, Some(&trust)).await.unwrap();
        assert_eq!(targets.all[0].registry.origin(), "https://127.0.0.1:1");
        let missing = ServerTrust::CaFile("/nonexistent/ca.pem".into());
        let error = Targets::resolve(&https, Some(&missing)).await.unwrap_err();
        assert!(error.to_string().contains("ca.pem"), "{error}");
    }
}
