//! Image references: `HOST[:PORT]/REPO[:TAG][@DIGEST]`, read as docker and podman read them.
//!
//! The first path component is a registry host when it holds a `.` or a `:`, or is
//! `localhost`; otherwise the reference names Docker Hub (`docker.io`), where one-component
//! names live under `library/`. Pure: text in, values out.

use std::fmt;

use crate::digest::Digest;
use crate::names::{RepositoryName, Tag};

/// The registry host Docker Hub references resolve to.
pub const DOCKER_HUB: &str = "docker.io";

/// Where an image is: registry, repository, and a tag or digest (or both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]` of the registry.
    pub registry: String,
    /// Repository name within the registry.
    pub repository: RepositoryName,
    /// Tag, when given (`latest` when neither a tag nor a digest is).
    pub tag: Option<Tag>,
    /// Digest, when given (it wins over the tag when both are).
    pub digest: Option<Digest>,
}

/// Why a reference could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Empty text.
    #[error("empty image reference")]
    Empty,
    /// The repository part is not a valid repository name.
    #[error("invalid repository name {0:?}")]
    Repository(String),
    /// The tag breaks `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
    #[error("invalid tag {0:?}")]
    Tag(String),
    /// The part after `@` is not a digest.
    #[error("invalid digest {0:?}")]
    Digest(String),
}

impl Reference {
    /// Parses a reference.
    ///
    /// ```
    /// use layerstore::client::reference::Reference;
    ///
    /// let r = Reference::parse("127.0.0.1:5000/team/app:v1").unwrap();
    /// assert_eq!((r.registry.as_str(), r.repository.as_str()), ("127.0.0.1:5000", "team/app"));
    /// assert_eq!(r.tag.unwrap().as_str(), "v1");
    ///
    /// let hub = Reference::parse("alpine").unwrap();
    /// assert_eq!(hub.to_string(), "docker.io/library/alpine:latest");
    /// ```
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        if text.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (
                rest,
                Some(
                    digest
                        .parse::<Digest>()
                        .map_err(|_| ReferenceError::Digest(digest.to_owned()))?,
                ),
            ),
            None => (text, None),
        };
        let (registry, path) = split_registry(rest);
        let (path, tag) = split_tag(path);
        let tag = tag
            .map(|t| Tag::parse(t).map_err(|_| ReferenceError::Tag(t.to_owned())))
            .transpose()?;
        let path = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_owned()
        };
        let repository =
            RepositoryName::parse(&path).map_err(|_| ReferenceError::Repository(path.clone()))?;
        let tag = match (tag, &digest) {
            (None, None) => Some(Tag::parse("latest").expect("a valid tag")),
            (tag, _) => tag,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// What a manifest request names: the digest when there is one, else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.as_str().to_owned(),
            (None, None) => "latest".to_owned(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository.as_str())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{}", tag.as_str())?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `(registry, rest)`: the first component when it looks like a host, else Docker Hub.
fn split_registry(text: &str) -> (String, &str) {
    match text.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            let host = if first == "index.docker.io" || first == "registry-1.docker.io" {
                DOCKER_HUB
            } else {
                first
            };
            (host.to_owned(), rest)
        }
        _ => (DOCKER_HUB.to_owned(), text),
    }
}

/// `(path, tag)`: a tag is after the last `:` of the last path component.
fn split_tag(path: &str) -> (&str, Option<&str>) {
    let last_slash = path.rfind('/').map_or(0, |i| i + 1);
    match path[last_slash..].rfind(':') {
        Some(colon) => {
            let at = last_slash + colon;
            (&path[..at], Some(&path[at + 1..]))
        }
        None => (path, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Reference {
        Reference::parse(text).unwrap()
    }

    #[test]
    fn hosts_are_recognised() {
        assert_eq!(parse("localhost/a").registry, "localhost");
        assert_eq!(parse("localhost:5000/a").registry, "localhost:5000");
        assert_eq!(parse("reg.example/a/b").repository.as_str(), "a/b");
        assert_eq!(parse("team/app").registry, DOCKER_HUB);
        assert_eq!(parse("team/app").repository.as_str(), "team/app");
        assert_eq!(parse("index.docker.io/library/x").registry, DOCKER_HUB);
    }

    #[test]
    fn tags_and_digests() {
        let d = "sha256:".to_owned() + &"a".repeat(64);
        let r = parse(&format!("h:1/r@{d}"));
        assert_eq!((r.tag, r.digest.unwrap().to_string()), (None, d.clone()));
        let r = parse(&format!("h:1/r:t@{d}"));
        assert_eq!(r.tag.as_ref().unwrap().as_str(), "t");
        assert_eq!(r.manifest_reference(), d);
        assert_eq!(parse("h:1/r").manifest_reference(), "latest");
        assert_eq!(parse("h:1/r").to_string(), "h:1/r:latest");
    }

    #[test]
    fn errors() {
        assert_eq!(Reference::parse(""), Err(ReferenceError::Empty));
        assert!(matches!(
            Reference::parse("h:1/R"),
            Err(ReferenceError::Repository(_))
        ));
        assert!(matches!(
            Reference::parse("h:1/r:-x"),
            Err(ReferenceError::Tag(_))
        ));
        assert!(matches!(
            Reference::parse("h:1/r@sha256:zz"),
            Err(ReferenceError::Digest(_))
        ));
    }
}
