//! [`DriverPath`]: the only kind of path a storage driver accepts.
//!
//! Drivers map these paths onto a directory tree, an object-store key space or a map. Checking
//! them once, here, is what guarantees that no input can name a file outside the driver's root:
//! a `DriverPath` is absolute, `/`-separated, has no empty, `.` or `..` component, no NUL and
//! only characters that are safe in file names and S3 keys alike.

use std::fmt;

/// Longest driver path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 4096;
/// Longest path component accepted, in bytes (the usual file-name limit).
pub const MAX_COMPONENT_LEN: usize = 255;

/// Why a string is not a valid [`DriverPath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path does not start with `/`.
    #[error("path is not absolute")]
    NotAbsolute,
    /// Longer than [`MAX_PATH_LEN`].
    #[error("path is {0} bytes long, the limit is {MAX_PATH_LEN}")]
    TooLong(usize),
    /// Two slashes in a row, or a trailing slash.
    #[error("path has an empty component")]
    EmptyComponent,
    /// A `.` or `..` component.
    #[error("path has a '.' or '..' component")]
    DotComponent,
    /// A component longer than [`MAX_COMPONENT_LEN`].
    #[error("path component is {0} bytes long, the limit is {MAX_COMPONENT_LEN}")]
    ComponentTooLong(usize),
    /// A character outside `[A-Za-z0-9._:+=-]`.
    #[error("path has invalid character {found:?} at byte {position}")]
    InvalidChar {
        /// The offending character.
        found: char,
        /// Its byte offset.
        position: usize,
    },
}

/// A validated, absolute, `/`-separated storage path such as `/docker/registry/v2/blobs`.
///
/// `/` itself is the root. Components use only `[A-Za-z0-9._:+=-]` and `_`; `.` and `..` are
/// rejected, so joining a `DriverPath` onto a driver root never leaves it.
///
/// ```
/// use layerstore::storage::DriverPath;
/// let p = DriverPath::parse("/docker/registry/v2").unwrap();
/// assert_eq!(p.join("blobs").unwrap().as_str(), "/docker/registry/v2/blobs");
/// assert_eq!(p.name(), "v2");
/// assert!(DriverPath::parse("/a/../b").is_err());
/// assert!(DriverPath::parse("relative").is_err());
/// assert!(p.join("x/y").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DriverPath(String);

impl DriverPath {
    /// The root path `/`.
    pub fn root() -> Self {
        DriverPath("/".to_owned())
    }

    /// Parses and validates an absolute path.
    pub fn parse(s: &str) -> Result<Self, PathError> {
        if s.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong(s.len()));
        }
        let rest = s.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
        if rest.is_empty() {
            return Ok(Self::root());
        }
        let mut offset = 1;
        for component in rest.split('/') {
            check_component(component, offset)?;
            offset += component.len() + 1;
        }
        Ok(DriverPath(s.to_owned()))
    }

    /// This path with one more component. `component` must be a single valid component.
    pub fn join(&self, component: &str) -> Result<Self, PathError> {
        check_component(component, self.0.len() + 1)?;
        let mut s = String::with_capacity(self.0.len() + 1 + component.len());
        s.push_str(&self.0);
        if !self.is_root() {
            s.push('/');
        }
        s.push_str(component);
        if s.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong(s.len()));
        }
        Ok(DriverPath(s))
    }

    /// This path with several more components, each checked.
    pub fn join_all<'a>(
        &self,
        components: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, PathError> {
        components
            .into_iter()
            .try_fold(self.clone(), |path, c| path.join(c))
    }

    /// True for `/`.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The path as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path without its leading `/` (empty for the root): the relative form drivers join
    /// onto their own root directory or key prefix.
    pub fn relative(&self) -> &str {
        &self.0[1..]
    }

    /// The last component (empty for the root).
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// The parent path; `None` for the root.
    pub fn parent(&self) -> Option<Self> {
        if self.is_root() {
            return None;
        }
        let cut = self.0.rfind('/').unwrap_or(0);
        Some(if cut == 0 {
            Self::root()
        } else {
            DriverPath(self.0[..cut].to_owned())
        })
    }

    /// The components, in order (none for the root).
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.relative().split('/').filter(|c| !c.is_empty())
    }

    /// True when `self` is `ancestor` or lies below it.
    pub fn starts_with(&self, ancestor: &DriverPath) -> bool {
        ancestor.is_root()
            || self.0 == ancestor.0
            || (self.0.starts_with(&ancestor.0)
                && self.0.as_bytes().get(ancestor.0.len()) == Some(&b'/'))
    }
}

/// Checks one component; `offset` is its byte position in the whole path, for error messages.
pub(crate) fn check_component(component: &str, offset: usize) -> Result<(), PathError> {
    if component.is_empty() {
        return Err(PathError::EmptyComponent);
    }
    if component == "." || component == ".." {
        return Err(PathError::DotComponent);
    }
    if component.len() > MAX_COMPONENT_LEN {
        return Err(PathError::ComponentTooLong(component.len()));
    }
    match component.char_indices().find(|&(_, c)| !is_path_char(c)) {
        Some((i, found)) => Err(PathError::InvalidChar {
            found,
            position: offset + i,
        }),
        None => Ok(()),
    }
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '+' | '=' | '-')
}

impl fmt::Display for DriverPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DriverPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DriverPath({:?})", self.0)
    }
}

impl std::str::FromStr for DriverPath {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DriverPath::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_paths() {
        for p in [
            "/",
            "/a",
            "/a/b.c/d_e/f:g+h=i-j",
            "/docker/registry/v2/blobs/sha256/ab/cd/data",
        ] {
            assert_eq!(DriverPath::parse(p).unwrap().as_str(), p);
        }
    }

    #[test]
    fn invalid_paths() {
        let cases: &[(&str, PathError)] = &[
            ("", PathError::NotAbsolute),
            ("a/b", PathError::NotAbsolute),
            ("//a", PathError::EmptyComponent),
            ("/a/", PathError::EmptyComponent),
            ("/a//b", PathError::EmptyComponent),
            ("/a/../b", PathError::DotComponent),
            ("/..", PathError::DotComponent),
            ("/./a", PathError::DotComponent),
            (
                "/a\0b",
                PathError::InvalidChar {
                    found: '\0',
                    position: 2,
                },
            ),
            (
                "/a/%2e%2e",
                PathError::InvalidChar {
                    found: '%',
                    position: 3,
                },
            ),
            (
                "/a b",
                PathError::InvalidChar {
                    found: ' ',
                    position: 2,
                },
            ),
            (
                "/a\\b",
                PathError::InvalidChar {
                    found: '\\',
                    position: 2,
                },
            ),
        ];
        for (p, err) in cases {
            assert_eq!(DriverPath::parse(p).as_ref(), Err(err), "{p:?}");
        }
        assert_eq!(
            DriverPath::parse(&format!("/{}", "a".repeat(256))),
            Err(PathError::ComponentTooLong(256))
        );
        assert!(matches!(
            DriverPath::parse(&"/aaaa".repeat(1000)),
            Err(PathError::TooLong(_))
        ));
    }

    #[test]
    fn navigation() {
        let p = DriverPath::parse("/a/b/c").unwrap();
        assert_eq!(p.parent().unwrap().as_str(), "/a/b");
        assert_eq!(
            DriverPath::parse("/a").unwrap().parent(),
            Some(DriverPath::root())
        );
        assert_eq!(DriverPath::root().parent(), None);
        assert_eq!(p.components().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(DriverPath::root().components().count(), 0);
        assert_eq!(DriverPath::root().join("x").unwrap().as_str(), "/x");
        assert!(p.starts_with(&DriverPath::parse("/a/b").unwrap()));
        assert!(!DriverPath::parse("/a/bc")
            .unwrap()
            .starts_with(&DriverPath::parse("/a/b").unwrap()));
        assert!(p.join("..").is_err());
        assert!(p.join("").is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_and_never_escapes(s in "\\PC{0,80}") {
            if let Ok(p) = DriverPath::parse(&s) {
                proptest::prop_assert!(!p.components().any(|c| c == ".." || c == "."));
                proptest::prop_assert_eq!(p.as_str(), s.as_str());
            }
        }
    }
}
