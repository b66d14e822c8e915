//! Request paths of the OCI distribution API, parsed into typed routes with no I/O.
//!
//! Every name, tag, digest and upload id is validated here, before a handler or the store sees
//! it, so nothing unchecked can reach a storage path. A repository name may itself contain
//! `blobs` or `manifests` components (`a/blobs/b` is a valid name), so the resource is found from
//! the *end* of the path: the last `/blobs/`, `/manifests/`, … whose tail is a single segment.

use crate::digest::{Digest, DigestError};
pub use crate::names::Reference;
use crate::names::{NameError, RepositoryName, Tag, UploadId};

/// A request path of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`: the version check.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// `/v2/<name>/tags/list`.
    Tags {
        /// Repository.
        name: RepositoryName,
    },
    /// `/v2/<name>/manifests/<reference>`.
    Manifest {
        /// Repository.
        name: RepositoryName,
        /// Tag or digest.
        reference: Reference,
    },
    /// `/v2/<name>/blobs/<digest>`.
    Blob {
        /// Repository.
        name: RepositoryName,
        /// Blob digest.
        digest: Digest,
    },
    /// `/v2/<name>/blobs/uploads/`: start an upload.
    UploadStart {
        /// Repository.
        name: RepositoryName,
    },
    /// `/v2/<name>/blobs/uploads/<id>`: one upload session.
    Upload {
        /// Repository.
        name: RepositoryName,
        /// Upload id.
        id: UploadId,
    },
    /// `/v2/<name>/referrers/<digest>`.
    Referrers {
        /// Repository.
        name: RepositoryName,
        /// Subject digest.
        digest: Digest,
    },
}

/// Why a path is not a route. The HTTP layer maps each to its status and OCI code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// Not an API path at all (plain 404).
    #[error("no such route")]
    NotFound,
    /// The repository name breaks the grammar (400 `NAME_INVALID`).
    #[error("invalid repository name: {0}")]
    NameInvalid(NameError),
    /// A digest that does not parse (400 `DIGEST_INVALID`).
    #[error("invalid digest: {0}")]
    DigestInvalid(DigestError),
    /// A manifest reference that is neither a digest nor a valid tag (400 `MANIFEST_INVALID`).
    #[error("invalid tag: {0}")]
    TagInvalid(NameError),
    /// An upload id that cannot be one of ours (404 `BLOB_UPLOAD_UNKNOWN`).
    #[error("unknown upload id")]
    UploadUnknown,
}

/// Longest request path considered; longer ones are [`RouteError::NotFound`] unread.
pub const MAX_PATH_LEN: usize = 1024;

impl Route {
    /// Parses a request path (without the query string).
    ///
    /// ```
    /// use layerstore::http::routes::{Route, RouteError};
    /// let route = Route::parse("/v2/library/alpine/blobs/uploads/").unwrap();
    /// assert!(matches!(route, Route::UploadStart { ref name } if name.as_str() == "library/alpine"));
    /// assert!(matches!(Route::parse("/v2/a/manifests/latest"), Ok(Route::Manifest { .. })));
    /// assert!(matches!(Route::parse("/v2/A/tags/list"), Err(RouteError::NameInvalid(_))));
    /// assert!(matches!(Route::parse("/v2/a/../b/tags/list"), Err(RouteError::NameInvalid(_))));
    /// assert_eq!(Route::parse("/v3/"), Err(RouteError::NotFound));
    /// ```
    pub fn parse(path: &str) -> Result<Route, RouteError> {
        if path.len() > MAX_PATH_LEN {
            return Err(RouteError::NotFound);
        }
        let rest = match path {
            "/v2" | "/v2/" => return Ok(Route::Base),
            "/v2/_catalog" => return Ok(Route::Catalog),
            _ => path.strip_prefix("/v2/").ok_or(RouteError::NotFound)?,
        };
        if let Some(name) = rest.strip_suffix("/tags/list") {
            return Ok(Route::Tags {
                name: name_of(name)?,
            });
        }
        if let Some(name) = rest
            .strip_suffix("/blobs/uploads/")
            .or_else(|| rest.strip_suffix("/blobs/uploads"))
        {
            return Ok(Route::UploadStart {
                name: name_of(name)?,
            });
        }
        if let Some((name, id)) = split_last(rest, "/blobs/uploads/") {
            let id = UploadId::parse(&percent_decode(id)).map_err(|_| RouteError::UploadUnknown)?;
            return Ok(Route::Upload {
                name: name_of(name)?,
                id,
            });
        }
        if let Some((name, digest)) = split_last(rest, "/blobs/") {
            return Ok(Route::Blob {
                name: name_of(name)?,
                digest: digest_of(digest)?,
            });
        }
        if let Some((name, reference)) = split_last(rest, "/manifests/") {
            return Ok(Route::Manifest {
                name: name_of(name)?,
                reference: reference_of(reference)?,
            });
        }
        if let Some((name, digest)) = split_last(rest, "/referrers/") {
            return Ok(Route::Referrers {
                name: name_of(name)?,
                digest: digest_of(digest)?,
            });
        }
        Err(RouteError::NotFound)
    }

    /// The repository the route is about, if any.
    pub fn name(&self) -> Option<&RepositoryName> {
        match self {
            Route::Base | Route::Catalog => None,
            Route::Tags { name }
            | Route::Manifest { name, .. }
            | Route::Blob { name, .. }
            | Route::UploadStart { name }
            | Route::Upload { name, .. }
            | Route::Referrers { name, .. } => Some(name),
        }
    }
}

/// Splits at the last `marker` whose tail is one non-empty path segment.
fn split_last<'a>(rest: &'a str, marker: &str) -> Option<(&'a str, &'a str)> {
    let at = rest.rfind(marker)?;
    let (name, tail) = (&rest[..at], &rest[at + marker.len()..]);
    (!tail.is_empty() && !tail.contains('/')).then_some((name, tail))
}

fn name_of(raw: &str) -> Result<RepositoryName, RouteError> {
    // Names are never percent-decoded: `%` is outside the grammar, so an encoded traversal
    // (`%2e%2e`) is refused as it stands.
    RepositoryName::parse(raw).map_err(RouteError::NameInvalid)
}

fn digest_of(raw: &str) -> Result<Digest, RouteError> {
    Digest::parse(&percent_decode(raw)).map_err(RouteError::DigestInvalid)
}

fn reference_of(raw: &str) -> Result<Reference, RouteError> {
    let decoded = percent_decode(raw);
    if decoded.contains(':') {
        return Digest::parse(&decoded)
            .map(Reference::Digest)
            .map_err(RouteError::DigestInvalid);
    }
    Tag::parse(&decoded)
        .map(Reference::Tag)
        .map_err(RouteError::TagInvalid)
}

/// Decodes `%XX` escapes in one path segment (clients may send `sha256%3A…`). Invalid escapes
/// are kept as they are, and the strict grammar checks that follow refuse them.
fn percent_decode(segment: &str) -> String {
    if !segment.contains('%') {
        return segment.to_owned();
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escape {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ID: &str = "0b5e8f3c-1111-4c4c-8d8d-123456789abc";

    fn name(s: &str) -> RepositoryName {
        s.parse().unwrap()
    }

    #[test]
    fn every_route() {
        let digest: Digest = D.parse().unwrap();
        let cases = [
            ("/v2/", Route::Base),
            ("/v2", Route::Base),
            ("/v2/_catalog", Route::Catalog),
            ("/v2/a/b/tags/list", Route::Tags { name: name("a/b") }),
            (
                "/v2/a/manifests/latest",
                Route::Manifest {
                    name: name("a"),
                    reference: Reference::Tag("latest".parse().unwrap()),
                },
            ),
            (
                &format!("/v2/a/manifests/{D}"),
                Route::Manifest {
                    name: name("a"),
                    reference: Reference::Digest(digest.clone()),
                },
            ),
            (
                &format!("/v2/a/blobs/{D}"),
                Route::Blob {
                    name: name("a"),
                    digest: digest.clone(),
                },
            ),
            (
                &format!("/v2/a/blobs/{}", D.replace(':', "%3A")),
                Route::Blob {
                    name: name("a"),
                    digest: digest.clone(),
                },
            ),
            (
                "/v2/a/blobs/uploads/",
                Route::UploadStart { name: name("a") },
            ),
            (
                "/v2/a/blobs/uploads",
                Route::UploadStart { name: name("a") },
            ),
            (
                &format!("/v2/a/blobs/uploads/{ID}"),
                Route::Upload {
                    name: name("a"),
                    id: ID.parse().unwrap(),
                },
            ),
            (
                &format!("/v2/a/referrers/{D}"),
                Route::Referrers {
                    name: name("a"),
                    digest: digest.clone(),
                },
            ),
            // Names containing the resource words.
            (
                &format!("/v2/x/blobs/y/blobs/{D}"),
                Route::Blob {
                    name: name("x/blobs/y"),
                    digest: digest.clone(),
                },
            ),
            (
                "/v2/manifests/tags/list",
                Route::Tags {
                    name: name("manifests"),
                },
            ),
        ];
        for (path, expected) in cases {
            assert_eq!(Route::parse(path).unwrap(), expected, "{path}");
        }
    }

    #[test]
    fn hostile_paths_are_refused_before_the_store() {
        let invalid_name = [
            "/v2/../etc/tags/list",
            "/v2/a/%2e%2e/b/tags/list",
            "/v2/a//b/tags/list",
            "/v2/Upper/tags/list",
            "/v2/a\0b/tags/list",
            "/v2//tags/list",
        ];
        for path in invalid_name {
            assert!(
                matches!(Route::parse(path), Err(RouteError::NameInvalid(_))),
                "{path}"
            );
        }
        assert!(matches!(
            Route::parse("/v2/a/blobs/sha256:00"),
            Err(RouteError::DigestInvalid(_))
        ));
        assert!(matches!(
            Route::parse("/v2/a/manifests/sha256:bad"),
            Err(RouteError::DigestInvalid(_))
        ));
        assert!(matches!(
            Route::parse("/v2/a/manifests/-bad"),
            Err(RouteError::TagInvalid(_))
        ));
        assert!(matches!(
            Route::parse("/v2/a/manifests/..%2f"),
            Err(RouteError::TagInvalid(_))
        ));
        assert_eq!(
            Route::parse("/v2/a/blobs/uploads/..%2f..%2fx"),
            Err(RouteError::UploadUnknown)
        );
        assert_eq!(
            Route::parse("/v2/a/blobs/uploads/not-a-uuid"),
            Err(RouteError::UploadUnknown)
        );
        for path in [
            "/",
            "/v1/",
            "/v2/a",
            "/v2/a/blobs/",
            "/v2/a/unknown/x",
            "/v2/a/blobs/x/y",
        ] {
            assert!(Route::parse(path).is_err(), "{path}");
        }
        assert_eq!(
            Route::parse(&format!("/v2/{}", "a/".repeat(600))),
            Err(RouteError::NotFound)
        );
    }

    #[test]
    fn percent_decoding_is_total() {
        assert_eq!(percent_decode("a%3Ab"), "a:b");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }
}
