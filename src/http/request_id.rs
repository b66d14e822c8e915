//! Request ids: the client's `X-Request-Id` when it is a safe token, else a fresh one.
//!
//! A proxy in front (nginx's `$request_id`, a load balancer) often sets the header already; its
//! id then ties the proxy's log line to ours. An id from outside goes into log lines and a
//! response header, so only 1 to [`MAX_LEN`] characters of `[A-Za-z0-9._:-]` are taken: no
//! spaces, quotes or control characters that could forge or break a log line.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use hyper::header::{HeaderName, HeaderValue};
use hyper::HeaderMap;

/// The request and response header.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest id taken from a client.
pub const MAX_LEN: usize = 64;

/// A validated or generated request id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// The id `text` if it is acceptable from a client (see the module documentation).
    ///
    /// ```
    /// use layerstore::http::request_id::RequestId;
    /// assert!(RequestId::parse("a1b2-c3.d4:e5_F6").is_some());
    /// assert!(RequestId::parse("").is_none());
    /// assert!(RequestId::parse("two words").is_none());
    /// assert!(RequestId::parse(&"x".repeat(65)).is_none());
    /// ```
    pub fn parse(text: &str) -> Option<RequestId> {
        let valid = (1..=MAX_LEN).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        valid.then(|| RequestId(text.to_owned()))
    }

    /// The client's id from `headers`, else a new one.
    pub fn from_headers(headers: &HeaderMap) -> RequestId {
        headers
            .get(&HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(RequestId::parse)
            .unwrap_or_else(RequestId::generate)
    }

    /// A new id: 16 lowercase hex digits, unique in this process and unpredictable across
    /// processes (SipHash of a counter under keys chosen at random once per process, so no
    /// system call per request).
    pub fn generate() -> RequestId {
        static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut hasher = KEYS.get_or_init(Default::default).build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        RequestId(format!("{:016x}", hasher.finish()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as a header value.
    pub fn header_value(&self) -> HeaderValue {
        // Only visible ASCII reaches here (parse or hex), so this cannot fail.
        HeaderValue::from_str(&self.0).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_checked() {
        for good in ["a", "0123456789abcdef", "req:1.2_3-4", &"Z".repeat(MAX_LEN)] {
            assert_eq!(RequestId::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            " ",
            "a b",
            "a\"b",
            "a\nb",
            "a=b",
            "a/b",
            "é",
            &"Z".repeat(MAX_LEN + 1),
        ] {
            assert!(RequestId::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn headers_give_the_client_id_or_a_fresh_one() {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, HeaderValue::from_static("from-proxy-42"));
        assert_eq!(RequestId::from_headers(&headers).as_str(), "from-proxy-42");
        headers.insert(HEADER, HeaderValue::from_static("bad id"));
        let fresh = RequestId::from_headers(&headers);
        assert_ne!(fresh.as_str(), "bad id");
        assert_eq!(fresh.as_str().len(), 16);
    }

    #[test]
    fn generated_ids_are_hex_and_distinct() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| RequestId::generate().0).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids
            .iter()
            .all(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())));
    }
}
