//! `Location` headers: resolving one against the URL it answered (RFC 3986, section 5.2:
//! absolute, scheme-relative, absolute-path and relative forms, dot segments removed, fragments
//! dropped), and telling whether a URL is on a given origin. The request loop follows
//! redirects with it; the benchmark passes upload locations from one instance to the next.

use super::error::ClientError;

/// Resolves `location` against `base` (an absolute `scheme://authority[/path][?query]` URL)
/// into an absolute URL whose path has no `.` or `..` segments.
///
/// ```
/// # use layerstore::client::resolve_location as resolve;
/// let base = "http://h:1/v2/r/blobs/uploads/?x=1";
/// assert_eq!(resolve(base, "id?s=2").unwrap(), "http://h:1/v2/r/blobs/uploads/id?s=2");
/// assert_eq!(resolve(base, "../u#frag").unwrap(), "http://h:1/v2/r/blobs/u");
/// assert_eq!(resolve(base, "//cdn/x/./y").unwrap(), "http://cdn/x/y");
/// ```
pub fn resolve_location(base: &str, location: &str) -> Result<String, ClientError> {
    let (base, location) = (without_fragment(base), without_fragment(location));
    let (scheme, rest) = base
        .split_once("://")
        .ok_or_else(|| ClientError::InvalidUrl {
            url: base.to_owned(),
            reason: "no scheme".into(),
        })?;
    let (authority, base_path) = split_authority(rest);
    let (origin, path) = if let Some((other_scheme, rest)) = absolute(location) {
        let (authority, path) = split_authority(rest);
        (format!("{other_scheme}://{authority}"), path.to_owned())
    } else if let Some(rest) = location.strip_prefix("//") {
        let (authority, path) = split_authority(rest);
        (format!("{scheme}://{authority}"), path.to_owned())
    } else if location.starts_with('/') {
        (format!("{scheme}://{authority}"), location.to_owned())
    } else {
        let (base_path, _query) = split_query(base_path);
        let directory = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        let joined = format!("{}{location}", absolute_path(directory));
        (format!("{scheme}://{authority}"), joined)
    };
    let (path, query) = split_query(&path);
    let normalized = remove_dot_segments(&absolute_path(path));
    Ok(match query {
        Some(query) => format!("{origin}{normalized}?{query}"),
        None => format!("{origin}{normalized}"),
    })
}

/// The path (and query) of `url` when it is on `origin` (`scheme://authority`, compared
/// without regard to case); `None` for a URL on another scheme, host or port.
#[cfg(feature = "bench")]
pub(crate) fn path_on<'u>(origin: &str, url: &'u str) -> Option<&'u str> {
    let head = url.get(..origin.len())?;
    let rest = &url[origin.len()..];
    let boundary = rest.is_empty() || rest.starts_with(['/', '?']);
    (head.eq_ignore_ascii_case(origin) && boundary).then_some(if rest.is_empty() {
        "/"
    } else {
        rest
    })
}

/// `(scheme, rest)` of an absolute URL (`scheme://rest`, the scheme made of letters, digits,
/// `+`, `-` and `.`, starting with a letter).
fn absolute(location: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = location.split_once("://")?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

/// `(authority, path and query)` of what follows `scheme://`.
fn split_authority(rest: &str) -> (&str, &str) {
    rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()))
}

/// A fragment is never sent and takes no part in resolving (RFC 3986, sections 5.1 and
/// 5.2.2); left in, it hid dot segments (found by the `bench_location` fuzz target:
/// `0/..#x/5/.` resolved to `.../uploads/0/..`).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_resolve_like_a_browser() {
        let base = "http://h:5000/v2/a/b/blobs/uploads/?q";
        let cases = [
            ("/v2/x?_state=y", "http://h:5000/v2/x?_state=y"),
            ("HTTP://H:5000/v2/x", "HTTP://H:5000/v2/x"),
            ("https://s3/x", "https://s3/x"),
            ("//h:5001/v2/x", "http://h:5001/v2/x"),
            ("http://h:5000", "http://h:5000/"),
            ("u1", "http://h:5000/v2/a/b/blobs/uploads/u1"),
            ("../u1?z", "http://h:5000/v2/a/b/blobs/u1?z"),
            ("./u1", "http://h:5000/v2/a/b/blobs/uploads/u1"),
            ("0/..#x/5/.", "http://h:5000/v2/a/b/blobs/uploads/"),
            ("../../../../../../x", "http://h:5000/x"),
        ];
        for (location, expected) in cases {
            assert_eq!(
                resolve_location(base, location).unwrap(),
                expected,
                "{location}"
            );
        }
        assert!(resolve_location("no-scheme", "x").is_err());
    }

    #[test]
    fn paths_on_an_origin() {
        let origin = "http://h:5000";
        assert_eq!(path_on(origin, "http://h:5000/v2/x?y"), Some("/v2/x?y"));
        assert_eq!(path_on(origin, "HTTP://H:5000?y"), Some("?y"));
        assert_eq!(path_on(origin, "http://h:5000"), Some("/"));
        assert_eq!(path_on(origin, "http://h:50001/v2/"), None);
        assert_eq!(path_on(origin, "http://h:5000@evil/v2/"), None);
        assert_eq!(path_on(origin, "https://h:5000/v2/"), None);
        assert_eq!(path_on(origin, "http://h"), None);
    }
}
