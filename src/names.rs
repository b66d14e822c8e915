//! Validated names: repository names, tags and upload ids.
//!
//! Every one of these ends up as one or more components of a storage path, so they are checked
//! once, here, against the OCI distribution grammar, and carried around as newtypes afterwards.
//! A value of these types can never contain `..`, `%`, `/` at the wrong place, NUL, uppercase
//! (names) or anything else that could escape the storage root. The checks are hand-written
//! scanners: linear, allocation-free until success, no regex engine.

use std::fmt;
use std::str::FromStr;

/// Longest repository name accepted (the OCI and distribution limit).
pub const MAX_NAME_LEN: usize = 255;
/// Longest tag accepted.
pub const MAX_TAG_LEN: usize = 128;
/// Length of a canonical UUID string (`8-4-4-4-12`).
pub const UPLOAD_ID_LEN: usize = 36;

/// Why a string is not a valid repository name, tag or upload id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The input was empty.
    #[error("empty {kind}")]
    Empty {
        /// What was being parsed (`repository name`, `tag`, `upload id`).
        kind: &'static str,
    },
    /// Longer than the limit for its kind.
    #[error("{kind} is {len} bytes long, the limit is {max}")]
    TooLong {
        /// What was being parsed.
        kind: &'static str,
        /// Length given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A character not allowed at that position.
    #[error("{kind} has invalid character {found:?} at byte {position}")]
    InvalidChar {
        /// What was being parsed.
        kind: &'static str,
        /// The offending character.
        found: char,
        /// Its byte offset.
        position: usize,
    },
    /// A repository name path component that breaks the component grammar (empty, or a
    /// separator at its start or end, or a bad separator run such as `___` or `.-`).
    #[error("repository name component {component:?} is not [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*")]
    BadComponent {
        /// The offending component (clipped to the name limit).
        component: String,
    },
    /// An upload id that is not a canonical lowercase UUID.
    #[error("upload id is not a canonical lowercase UUID")]
    NotUuid,
}

const NAME: &str = "repository name";
const TAG: &str = "tag";
const UPLOAD_ID: &str = "upload id";

/// A repository name such as `library/alpine`.
///
/// Grammar: components `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` joined by `/`, at most 255 bytes.
/// A component can never start with `_`, so it cannot collide with `_layers`, `_manifests` or
/// `_uploads` in the storage layout.
///
/// ```
/// use layerstore::names::RepositoryName;
/// let name: RepositoryName = "library/alpine".parse().unwrap();
/// assert_eq!(name.as_str(), "library/alpine");
/// assert_eq!(name.components().collect::<Vec<_>>(), ["library", "alpine"]);
/// assert!("Library/Alpine".parse::<RepositoryName>().is_err());
/// assert!("a/../b".parse::<RepositoryName>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(String);

impl RepositoryName {
    /// Parses and validates a repository name.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        check_len(NAME, s, MAX_NAME_LEN)?;
        for component in s.split('/') {
            check_component(s, component)?;
        }
        Ok(RepositoryName(s.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `/`-separated components, in order.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

/// Checks one component: alphanumeric runs joined by `.`, `_`, `__` or one or more `-`.
fn check_component(name: &str, component: &str) -> Result<(), NameError> {
    let bad = || NameError::BadComponent {
        component: component.chars().take(MAX_NAME_LEN).collect(),
    };
    let offset = component.as_ptr() as usize - name.as_ptr() as usize;
    let bytes = component.as_bytes();
    let mut i = 0;
    loop {
        let run_start = i;
        while i < bytes.len() && is_lower_alnum(bytes[i]) {
            i += 1;
        }
        if i == run_start {
            // Empty component, or a separator at the start / doubled separators.
            return match bytes.get(i) {
                Some(&b) if !is_separator_byte(b) => Err(invalid_char(NAME, name, offset + i)),
                _ => Err(bad()),
            };
        }
        if i == bytes.len() {
            return Ok(());
        }
        let sep_start = i;
        while i < bytes.len() && is_separator_byte(bytes[i]) {
            i += 1;
        }
        if i == sep_start {
            return Err(invalid_char(NAME, name, offset + i));
        }
        if !is_valid_separator(&bytes[sep_start..i]) || i == bytes.len() {
            return Err(bad());
        }
    }
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn is_separator_byte(b: u8) -> bool {
    matches!(b, b'.' | b'_' | b'-')
}

fn is_valid_separator(sep: &[u8]) -> bool {
    matches!(sep, b"." | b"_" | b"__") || sep.iter().all(|&b| b == b'-')
}

/// A tag such as `latest` or `v1.2.3`: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
///
/// ```
/// use layerstore::names::Tag;
/// assert!("v1.2.3-rc_1".parse::<Tag>().is_ok());
/// assert!(".hidden".parse::<Tag>().is_err());
/// assert!("a/b".parse::<Tag>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// Parses and validates a tag.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        check_len(TAG, s, MAX_TAG_LEN)?;
        for (position, b) in s.bytes().enumerate() {
            let ok = b.is_ascii_alphanumeric()
                || b == b'_'
                || (position > 0 && matches!(b, b'.' | b'-'));
            if !ok {
                return Err(invalid_char(TAG, s, position));
            }
        }
        Ok(Tag(s.to_owned()))
    }

    /// The tag as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An upload session id: a canonical lowercase UUID (`8-4-4-4-12` hex digits, 36 bytes).
///
/// [`UploadId::generate`] makes random version-4 ids. [`UploadId::parse`] accepts any canonical
/// lowercase UUID, so uploads started by another implementation (distribution writes v4 ids)
/// can be resumed whatever their version nibble.
///
/// ```
/// use layerstore::names::UploadId;
/// let id = UploadId::generate().unwrap();
/// assert_eq!(id.as_str().len(), 36);
/// assert_eq!(id.as_str().as_bytes()[14], b'4');
/// assert_eq!(UploadId::parse(id.as_str()).unwrap(), id);
/// assert!(UploadId::parse("../../etc/passwd").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UploadId(String);

impl UploadId {
    /// Parses a canonical lowercase UUID.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty { kind: UPLOAD_ID });
        }
        if s.len() != UPLOAD_ID_LEN
            || !is_uuid_shape(s.as_bytes(), |b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(NameError::NotUuid);
        }
        Ok(UploadId(s.to_owned()))
    }

    /// A fresh random version-4 id from the operating system's random source.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)?;
        bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
        bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
        let hex = crate::digest::to_hex(&bytes);
        let id = format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        );
        Ok(UploadId(id))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a manifest request names: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    /// A tag such as `latest`.
    Tag(Tag),
    /// A content digest.
    Digest(crate::digest::Digest),
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(tag) => tag.fmt(f),
            Reference::Digest(digest) => digest.fmt(f),
        }
    }
}

/// True when `s` has the `8-4-4-4-12` UUID shape in either hex case. This is the purger's rule
/// (distribution treats any such directory name as an upload id); [`UploadId::parse`] is stricter.
pub fn looks_like_uuid(s: &str) -> bool {
    s.len() == UPLOAD_ID_LEN && is_uuid_shape(s.as_bytes(), |b| b.is_ascii_hexdigit())
}

fn is_uuid_shape(bytes: &[u8], is_digit: impl Fn(u8) -> bool) -> bool {
    bytes.iter().enumerate().all(|(i, &b)| match i {
        8 | 13 | 18 | 23 => b == b'-',
        _ => is_digit(b),
    })
}

fn check_len(kind: &'static str, s: &str, max: usize) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if s.len() > max {
        return Err(NameError::TooLong {
            kind,
            len: s.len(),
            max,
        });
    }
    Ok(())
}

fn invalid_char(kind: &'static str, s: &str, position: usize) -> NameError {
    let found = s
        .get(position..)
        .and_then(|rest| rest.chars().next())
        .unwrap_or('\u{fffd}');
    NameError::InvalidChar {
        kind,
        found,
        position,
    }
}

macro_rules! string_newtype_impls {
    ($ty:ident) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), self.0)
            }
        }

        impl FromStr for $ty {
            type Err = NameError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $ty::parse(s)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_newtype_impls!(RepositoryName);
string_newtype_impls!(Tag);
string_newtype_impls!(UploadId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names() {
        let good = [
            "a",
            "library/alpine",
            "a.b_c__d---e/f0",
            "0/1/2",
            "my-org/my.app",
            &"a".repeat(255),
        ];
        for name in good {
            assert_eq!(
                RepositoryName::parse(name).unwrap().as_str(),
                name,
                "{name}"
            );
        }
        let bad = [
            "",
            "..",
            "a/..",
            "a/../b",
            "%2e%2e",
            "a/%2e%2e/b",
            "a\0b",
            "Alpine",
            "library/Alpine",
            "/a",
            "a/",
            "a//b",
            "_a",
            "a_",
            "a___b",
            "a..b",
            "a.-b",
            "a-",
            ".a",
            "a b",
            "a:5000/b",
            "é",
            &"a".repeat(256),
        ];
        for name in bad {
            assert!(RepositoryName::parse(name).is_err(), "{name:?} accepted");
        }
    }

    #[test]
    fn repository_name_errors_are_precise() {
        assert_eq!(
            RepositoryName::parse(""),
            Err(NameError::Empty { kind: NAME })
        );
        assert!(matches!(
            RepositoryName::parse(&"a".repeat(256)),
            Err(NameError::TooLong {
                len: 256,
                max: 255,
                ..
            })
        ));
        assert_eq!(
            RepositoryName::parse("abC"),
            Err(NameError::InvalidChar {
                kind: NAME,
                found: 'C',
                position: 2
            })
        );
        assert_eq!(
            RepositoryName::parse("a/b\0"),
            Err(NameError::InvalidChar {
                kind: NAME,
                found: '\0',
                position: 3
            })
        );
        assert!(matches!(
            RepositoryName::parse("a/.."),
            Err(NameError::BadComponent { .. })
        ));
    }

    #[test]
    fn tags() {
        let good = ["latest", "v1.2.3", "_x", "A-b.c_d", &"t".repeat(128)];
        for tag in good {
            assert!(Tag::parse(tag).is_ok(), "{tag}");
        }
        let bad = [
            "",
            ".",
            "..",
            "-x",
            ".x",
            "a/b",
            "a\0",
            "a b",
            "%2e",
            &"t".repeat(129),
        ];
        for tag in bad {
            assert!(Tag::parse(tag).is_err(), "{tag:?} accepted");
        }
    }

    #[test]
    fn upload_ids() {
        let good = "0d3e1f6a-1b2c-4d5e-8f90-a1b2c3d4e5f6";
        assert_eq!(UploadId::parse(good).unwrap().as_str(), good);
        let bad = [
            "",
            "0D3E1F6A-1B2C-4D5E-8F90-A1B2C3D4E5F6",
            "0d3e1f6a1b2c4d5e8f90a1b2c3d4e5f6",
            "0d3e1f6a-1b2c-4d5e-8f90-a1b2c3d4e5f",
            "0d3e1f6a-1b2c-4d5e-8f90-a1b2c3d4e5f6a",
            "0d3e1f6a_1b2c-4d5e-8f90-a1b2c3d4e5f6",
            "../../../../../../../../../etc/pass",
            "0d3e1f6a-1b2c-4d5e-8f90-a1b2c3d4e5g6",
        ];
        for id in bad {
            assert!(UploadId::parse(id).is_err(), "{id:?} accepted");
        }
        assert!(looks_like_uuid("0D3E1F6A-1B2C-4D5E-8F90-A1B2C3D4E5F6"));
        assert!(!looks_like_uuid("not-a-uuid"));
    }

    #[test]
    fn generated_ids_are_v4_and_distinct() {
        let a = UploadId::generate().unwrap();
        let b = UploadId::generate().unwrap();
        assert_ne!(a, b);
        for id in [a, b] {
            assert!(UploadId::parse(id.as_str()).is_ok());
            assert_eq!(id.as_str().as_bytes()[14], b'4');
            assert!(matches!(
                id.as_str().as_bytes()[19],
                b'8' | b'9' | b'a' | b'b'
            ));
        }
    }

    proptest::proptest! {
        #[test]
        fn names_never_panic_and_round_trip(s in "\\PC{0,300}") {
            if let Ok(name) = RepositoryName::parse(&s) {
                proptest::prop_assert_eq!(name.as_str(), s.as_str());
                proptest::prop_assert!(!name.components().any(|c| c == ".." || c == "." || c.is_empty()));
            }
            let _ = Tag::parse(&s);
            let _ = UploadId::parse(&s);
        }

        #[test]
        fn generated_style_names_parse(s in "[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+){0,3}(/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+){0,3}){0,3}") {
            proptest::prop_assume!(s.len() <= MAX_NAME_LEN);
            proptest::prop_assert!(RepositoryName::parse(&s).is_ok(), "{}", s);
        }
    }
}
