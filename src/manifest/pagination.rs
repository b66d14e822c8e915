//! `n`/`last` pagination for tag lists, the catalog and any other sorted listing, and the
//! `Link: <...>; rel="next"` header that points at the next page.
//!
//! OCI rules: items in lexical byte order; `last` is a value (not an index) and need not exist;
//! everything up to and including it is skipped; `n=0` gives an empty page and no link. The
//! catalog uses distribution's order instead, where `/` sorts below every other byte
//! ([`catalog_order`]), so a repository sorts right before its sub-repositories.
//!
//! A link is given only when at least one more item follows the page (we look one item ahead).
//! distribution v3 also sends one when the page is merely full; the OCI spec lets a client treat
//! a missing link as the end, so ours never sends it to an empty page.

use std::cmp::Ordering;

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items of this page, in order.
    pub items: Vec<T>,
    /// The `last` value for the next page; `None` when this is the final page.
    pub next: Option<String>,
}

/// Paginates items already sorted in lexical byte order (tags, referrer digests).
///
/// ```
/// use layerstore::manifest::paginate;
/// let tags = ["1.0", "1.1", "2.0", "latest"];
/// let page = paginate(tags, Some(2), Some("1.0"));
/// assert_eq!(page.items, ["1.1", "2.0"]);
/// assert_eq!(page.next.as_deref(), Some("2.0"));
/// assert_eq!(paginate(tags, Some(2), Some("2.0")).next, None);
/// assert!(paginate(tags, Some(0), None).items.is_empty());
/// ```
pub fn paginate<T: AsRef<str>>(
    sorted: impl IntoIterator<Item = T>,
    n: Option<usize>,
    last: Option<&str>,
) -> Page<T> {
    paginate_by(sorted, n, last, |a, b| a.cmp(b))
}

/// Paginates items already sorted by `order` (e.g. [`catalog_order`]).
pub fn paginate_by<T: AsRef<str>>(
    sorted: impl IntoIterator<Item = T>,
    n: Option<usize>,
    last: Option<&str>,
    order: impl Fn(&str, &str) -> Ordering,
) -> Page<T> {
    if n == Some(0) {
        return Page {
            items: Vec::new(),
            next: None,
        };
    }
    let mut after_last = sorted
        .into_iter()
        .filter(|item| last.is_none_or(|last| order(item.as_ref(), last) == Ordering::Greater));
    let limit = n.unwrap_or(usize::MAX);
    // Capacity from the caller's n is capped so a huge n allocates nothing up front.
    let mut items = Vec::with_capacity(limit.min(1024));
    for item in after_last.by_ref() {
        items.push(item);
        if items.len() == limit {
            break;
        }
    }
    let more = items.len() == limit && after_last.next().is_some();
    let next = more
        .then(|| items.last().map(|item| item.as_ref().to_owned()))
        .flatten();
    Page { items, next }
}

/// distribution's catalog order: byte order, except that `/` sorts below every other byte,
/// so `a/b` comes before `a-b`.
///
/// ```
/// use layerstore::manifest::catalog_order;
/// let mut repos = vec!["a-b", "a/b", "a", "a.b"];
/// repos.sort_by(|x, y| catalog_order(x, y));
/// assert_eq!(repos, ["a", "a/b", "a-b", "a.b"]);
/// ```
pub fn catalog_order(a: &str, b: &str) -> Ordering {
    let key = |c: u8| if c == b'/' { 0 } else { u16::from(c) + 1 };
    a.bytes().map(key).cmp(b.bytes().map(key))
}

/// The `Link` header value for the next page: `<{path}?last={last}&n={n}>; rel="next"`, with
/// query values escaped as Go's `url.QueryEscape` does and the path escaped outside
/// unreserved characters and `/`.
///
/// ```
/// use layerstore::manifest::link_header;
/// assert_eq!(
///     link_header("/v2/library/ubuntu/tags/list", "v1 +&", 50),
///     r#"</v2/library/ubuntu/tags/list?last=v1+%2B%26&n=50>; rel="next""#
/// );
/// ```
pub fn link_header(path: &str, last: &str, n: usize) -> String {
    let mut out = String::with_capacity(path.len() + last.len() + 32);
    out.push('<');
    escape_into(&mut out, path, Escape::Path);
    out.push_str("?last=");
    escape_into(&mut out, last, Escape::Query);
    out.push_str(&format!("&n={n}>; rel=\"next\""));
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    Path,
    Query,
}

fn escape_into(out: &mut String, s: &str, mode: Escape) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b'/' if mode == Escape::Path => out.push('/'),
            b' ' if mode == Escape::Query => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAGS: [&str; 5] = ["a", "b", "c", "d", "e"];

    #[test]
    fn pages_walk_the_whole_list_exactly_once() {
        let mut seen = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let page = paginate(TAGS, Some(2), last.as_deref());
            seen.extend(page.items);
            match page.next {
                Some(next) => last = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, TAGS);
    }

    #[test]
    fn table() {
        // (n, last, expected items, expected next)
        type Case<'a> = (
            Option<usize>,
            Option<&'a str>,
            &'a [&'a str],
            Option<&'a str>,
        );
        let cases: &[Case<'_>] = &[
            (None, None, &TAGS, None),
            (Some(0), None, &[], None),
            (Some(0), Some("a"), &[], None),
            (Some(5), None, &TAGS, None),
            (Some(6), None, &TAGS, None),
            (Some(4), None, &["a", "b", "c", "d"], Some("d")),
            (Some(1), Some("bb"), &["c"], Some("c")),
            (None, Some("c"), &["d", "e"], None),
            (Some(3), Some("e"), &[], None),
            (Some(3), Some("z"), &[], None),
            (Some(3), Some(""), &["a", "b", "c"], Some("c")),
            (Some(usize::MAX), None, &TAGS, None),
        ];
        for (n, last, items, next) in cases {
            let page = paginate(TAGS, *n, *last);
            assert_eq!(page.items, *items, "n={n:?} last={last:?}");
            assert_eq!(page.next.as_deref(), *next, "n={n:?} last={last:?}");
        }
    }

    #[test]
    fn catalog_cursor_uses_slash_lowest() {
        let mut repos = vec!["a-b", "a/b", "a", "a/b/c", "a0", "b"];
        repos.sort_by(|x, y| catalog_order(x, y));
        assert_eq!(repos, ["a", "a/b", "a/b/c", "a-b", "a0", "b"]);
        let page = paginate_by(repos.iter().copied(), Some(2), Some("a/b"), catalog_order);
        assert_eq!(page.items, ["a/b/c", "a-b"]);
        assert_eq!(page.next.as_deref(), Some("a-b"));
        // Plain byte order would put "a-b" (0x2d) before "a/b" (0x2f) and skip it.
        let lexical = paginate(["a-b", "a/b"], None, Some("a/b"));
        assert!(lexical.items.is_empty());
    }

    #[test]
    fn link_escaping() {
        assert_eq!(
            link_header("/v2/_catalog", "a/b", 2),
            "</v2/_catalog?last=a%2Fb&n=2>; rel=\"next\""
        );
        assert_eq!(
            link_header("/v2/x y/tags/list", "é", 1),
            "</v2/x%20y/tags/list?last=%C3%A9&n=1>; rel=\"next\""
        );
    }
}
