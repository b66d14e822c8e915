//! [`StorageLocation`]: where a store keeps its bytes, written as a URL (`s3://BUCKET/PREFIX`,
//! `file:///DIR`) or a plain directory path, and how to open a driver on it. The HTTP
//! secret kept in the storage itself ([`http_secret`]) lives in [`super::secret`].
//!
//! The forms [`StorageLocation::parse`] accepts:
//!
//! | written | means |
//! |---|---|
//! | `s3://BUCKET` | the bucket's root: keys `docker/registry/v2/...` |
//! | `s3://BUCKET/PRE/FIX` | keys `PRE/FIX/docker/registry/v2/...` (distribution's `rootdirectory: /PRE/FIX`) |
//! | `file:///srv/registry` (or `file://localhost/srv/registry`, `file:/srv/registry`) | the directory `/srv/registry` |
//! | `/srv/registry`, `data/registry`, `.` | that directory (relative to the working directory) |
//!
//! Choices:
//!
//! - A `file:` URL's path is absolute: `file://data` would name the *host* `data`, so it is
//!   refused with a hint to give the bare path `data` instead, which is how relative directories
//!   are written.
//! - URLs are taken literally: there is no percent-decoding, so `%`, `?` and `#` are refused in
//!   them (rather than silently meaning something else). A directory whose name has one of these
//!   is given as a bare path, which is never decoded.
//! - Anything that starts like a URL scheme (`name:`) is a URL; only `s3` and `file` are known
//!   (in any case). A relative directory whose name has a colon in its first component is
//!   written `./a:b`.
//! - Bucket names follow S3's rules for general purpose buckets (3 to 63 lowercase letters,
//!   digits, `.` and `-`, ...), and the endpoint and the credentials never go in the URL: they
//!   come from [`S3Settings`] and the AWS environment.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use super::s3::{S3Config, S3Driver};
use super::{FilesystemDriver, StorageDriver, StorageError};

/// Where a store's data lives.
///
/// ```
/// use layerstore::storage::StorageLocation;
/// use std::path::PathBuf;
///
/// let s3: StorageLocation = "s3://registry/prod/eu".parse().unwrap();
/// assert_eq!(
///     s3,
///     StorageLocation::S3 { bucket: "registry".into(), prefix: "prod/eu".into() }
/// );
/// assert_eq!(s3.to_string(), "s3://registry/prod/eu");
///
/// let dir = StorageLocation::parse("file:///srv/registry").unwrap();
/// assert_eq!(dir, StorageLocation::Filesystem(PathBuf::from("/srv/registry")));
/// assert_eq!(dir.to_string(), "file:///srv/registry");
///
/// // A bare path is a directory, relative ones included.
/// assert_eq!(
///     StorageLocation::parse("data/registry").unwrap(),
///     StorageLocation::Filesystem(PathBuf::from("data/registry"))
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StorageLocation {
    /// A directory (distribution's filesystem `rootdirectory`); relative paths are relative to
    /// the working directory.
    Filesystem(PathBuf),
    /// An S3 bucket (any S3-compatible store).
    S3 {
        /// The bucket name.
        bucket: String,
        /// Key prefix without leading or trailing `/`; empty for the bucket's root.
        prefix: String,
    },
}

/// A storage location that cannot be parsed. Messages quote at most 64 characters of the input,
/// and never the part of a URL that looks like credentials.
///
/// ```
/// use layerstore::storage::{LocationError, StorageLocation};
///
/// assert_eq!(StorageLocation::parse("s3://"), Err(LocationError::EmptyBucket));
/// assert!(matches!(
///     StorageLocation::parse("gs://bucket"),
///     Err(LocationError::UnknownScheme(_))
/// ));
/// let err = StorageLocation::parse("s3://my_bucket").unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "invalid S3 bucket name \"my_bucket\": only lowercase letters, digits, '.' and '-' are allowed"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LocationError {
    /// The empty string.
    #[error("empty storage location (expected s3://BUCKET[/PREFIX], file:///DIR or a directory)")]
    Empty,
    /// A scheme other than `s3` and `file`.
    #[error(
        "unknown storage scheme {0:?} (expected s3://BUCKET[/PREFIX], file:///DIR or a \
         directory; write a relative directory with a colon as ./NAME)"
    )]
    UnknownScheme(String),
    /// `s3:` not followed by `//`.
    #[error("{0:?}: expected s3://BUCKET[/PREFIX]")]
    NotS3Url(String),
    /// `s3://` with nothing before the first `/`.
    #[error("no bucket name: expected s3://BUCKET[/PREFIX]")]
    EmptyBucket,
    /// A bucket name that breaks S3's naming rules.
    #[error("invalid S3 bucket name {name:?}: {reason}")]
    InvalidBucket {
        /// The name (at most 64 characters of it).
        name: String,
        /// The rule it breaks.
        reason: String,
    },
    /// `s3://USER:PASSWORD@BUCKET`.
    #[error(
        "credentials do not belong in the storage URL: set AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY (or the config file's [s3] table) and write s3://BUCKET[/PREFIX]"
    )]
    CredentialsInUrl,
    /// `s3://HOST:PORT/...`: an endpoint written where the bucket goes.
    #[error(
        "{0:?} is not a bucket name: the endpoint goes in AWS_ENDPOINT_URL (or endpoint in the \
         config file's [s3] table), the URL is s3://BUCKET[/PREFIX]"
    )]
    EndpointInUrl(String),
    /// A key prefix with an empty, `.` or `..` component or a character that is refused.
    #[error("invalid S3 prefix {prefix:?}: {reason}")]
    InvalidPrefix {
        /// The prefix (at most 64 characters of it).
        prefix: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `file:` URL that does not name a local absolute path.
    #[error("{url:?}: {reason}")]
    InvalidFileUrl {
        /// The URL (at most 64 characters of it).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `%`, `?` or `#` in a URL.
    #[error(
        "{0:?}: storage URLs are taken literally ('%', '?' and '#' are refused); give a \
         directory with such a name as a plain path"
    )]
    Reserved(String),
}

/// Longest key prefix accepted: S3 keys are at most 1024 bytes, and the registry's own paths
/// below the prefix need most of them.
pub const MAX_PREFIX_LEN: usize = 256;

impl StorageLocation {
    /// Parses a location: see the [module documentation](self) for the accepted forms.
    ///
    /// ```
    /// use layerstore::storage::StorageLocation;
    ///
    /// for ok in ["s3://my-bucket", "s3://my.bucket/a/b/", "S3://b12", "file:///", "./a:b", "x"] {
    ///     assert!(StorageLocation::parse(ok).is_ok(), "{ok}");
    /// }
    /// for bad in ["", "s3://", "s3:bucket", "s3://ab", "s3://a..b", "s3://-ab", "s3://bucket/a//c",
    ///             "s3://key:secret@bucket", "s3://localhost:9000/bucket", "http://x",
    ///             "file://relative", "file://host/dir", "file:///a%20b", "s3://bucket?x=1"] {
    ///     assert!(StorageLocation::parse(bad).is_err(), "{bad}");
    /// }
    /// ```
    pub fn parse(s: &str) -> Result<Self, LocationError> {
        if s.is_empty() {
            return Err(LocationError::Empty);
        }
        let Some(scheme) = scheme(s) else {
            return Ok(StorageLocation::Filesystem(PathBuf::from(s)));
        };
        let rest = &s[scheme.len() + 1..];
        if scheme.eq_ignore_ascii_case("s3") {
            parse_s3(s, rest)
        } else if scheme.eq_ignore_ascii_case("file") {
            parse_file(s, rest)
        } else {
            Err(LocationError::UnknownScheme(clip(scheme)))
        }
    }

    /// The directory, for a filesystem location.
    pub fn directory(&self) -> Option<&Path> {
        match self {
            StorageLocation::Filesystem(dir) => Some(dir),
            StorageLocation::S3 { .. } => None,
        }
    }

    /// Opens a driver on this location: a [`FilesystemDriver`] (nothing is touched yet), or an
    /// [`S3Driver`] connected with `s3` (ignored for a directory), which checks the bucket
    /// answers and fails with one [`StorageError::Unavailable`] if it does not.
    pub fn open(&self, s3: S3Settings) -> Result<Arc<dyn StorageDriver>, StorageError> {
        match self {
            StorageLocation::Filesystem(dir) => Ok(Arc::new(FilesystemDriver::new(dir.clone()))),
            StorageLocation::S3 { bucket, prefix } => {
                Ok(Arc::new(S3Driver::connect(s3.to_config(bucket, prefix))?))
            }
        }
    }
}

impl FromStr for StorageLocation {
    type Err = LocationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StorageLocation::parse(s)
    }
}

impl From<PathBuf> for StorageLocation {
    fn from(dir: PathBuf) -> Self {
        StorageLocation::Filesystem(dir)
    }
}

/// The location as a URL that [`StorageLocation::parse`] reads back: `s3://BUCKET[/PREFIX]`,
/// `file:///ABS/DIR`; a relative directory, or one with a character a URL refuses, is shown as
/// the bare path (lossily for a path that is not UTF-8).
///
/// ```
/// use layerstore::storage::StorageLocation;
/// use std::path::PathBuf;
///
/// let shown = |p: &str| StorageLocation::Filesystem(PathBuf::from(p)).to_string();
/// assert_eq!(shown("/srv/registry"), "file:///srv/registry");
/// assert_eq!(shown("data"), "data");
/// assert_eq!(shown("/srv/100%"), "/srv/100%");
/// assert_eq!(shown("a:b"), "./a:b");
/// ```
impl fmt::Display for StorageLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageLocation::S3 { bucket, prefix } if prefix.is_empty() => {
                write!(f, "s3://{bucket}")
            }
            StorageLocation::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            StorageLocation::Filesystem(dir) => {
                let text = dir.to_string_lossy();
                if text.starts_with('/') && !text.contains(['%', '?', '#']) {
                    write!(f, "file://{text}")
                } else if !text.starts_with('/') && scheme(&text).is_some() {
                    write!(f, "./{text}")
                } else {
                    f.write_str(&text)
                }
            }
        }
    }
}

/// The scheme of `s`, if it starts with one (`ALPHA *(ALPHA / DIGIT / "+" / "-" / ".") ":"`).
fn scheme(s: &str) -> Option<&str> {
    let (head, _) = s.split_once(':')?;
    let mut chars = head.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(head)
}

/// At most 64 characters of `s`, for an error message.
fn clip(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((end, _)) => format!("{}...", &s[..end]),
        None => s.to_owned(),
    }
}

fn parse_s3(whole: &str, rest: &str) -> Result<StorageLocation, LocationError> {
    let rest = rest
        .strip_prefix("//")
        .ok_or_else(|| LocationError::NotS3Url(clip(whole)))?;
    let (authority, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    // Credentials first, so that they are never quoted back by another error.
    if authority.contains('@') {
        return Err(LocationError::CredentialsInUrl);
    }
    if rest.contains(['%', '?', '#']) {
        return Err(LocationError::Reserved(clip(whole)));
    }
    if authority.is_empty() {
        return Err(LocationError::EmptyBucket);
    }
    if authority.contains(':') {
        return Err(LocationError::EndpointInUrl(clip(authority)));
    }
    check_bucket(authority)?;
    let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
    check_prefix(prefix)?;
    Ok(StorageLocation::S3 {
        bucket: authority.to_owned(),
        prefix: prefix.to_owned(),
    })
}

/// S3's rules for general purpose bucket names.
fn check_bucket(name: &str) -> Result<(), LocationError> {
    let bad = |reason: &str| {
        Err(LocationError::InvalidBucket {
            name: clip(name),
            reason: reason.to_owned(),
        })
    };
    if !(3..=63).contains(&name.len()) {
        return bad("bucket names are 3 to 63 characters long");
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return bad("bucket names are lowercase");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return bad("only lowercase letters, digits, '.' and '-' are allowed");
    }
    let alnum = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    if !alnum(name.bytes().next()) || !alnum(name.bytes().last()) {
        return bad("a bucket name starts and ends with a letter or a digit");
    }
    if name.contains("..") {
        return bad("two adjacent periods are not allowed");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad("a bucket name is not an IP address (the endpoint goes in AWS_ENDPOINT_URL)");
    }
    for reserved in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(reserved) {
            return bad(&format!("the prefix {reserved:?} is reserved"));
        }
    }
    for reserved in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(reserved) {
            return bad(&format!("the suffix {reserved:?} is reserved"));
        }
    }
    Ok(())
}

/// A key prefix: `/`-separated non-empty components, no `.` or `..`, no control characters,
/// whitespace or backslashes (`%`, `?` and `#` were refused with the whole URL).
fn check_prefix(prefix: &str) -> Result<(), LocationError> {
    let bad = |reason| {
        Err(LocationError::InvalidPrefix {
            prefix: clip(prefix),
            reason,
        })
    };
    if prefix.is_empty() {
        return Ok(());
    }
    if prefix.len() > MAX_PREFIX_LEN {
        return bad("longer than 256 bytes");
    }
    for component in prefix.split('/') {
        if component.is_empty() {
            return bad("empty component ('//')");
        }
        if component == "." || component == ".." {
            return bad("'.' and '..' are not allowed");
        }
        if component
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
        {
            return bad("control characters, whitespace and '\\' are not allowed");
        }
    }
    Ok(())
}

fn parse_file(whole: &str, rest: &str) -> Result<StorageLocation, LocationError> {
    let bad = |reason: String| {
        Err(LocationError::InvalidFileUrl {
            url: clip(whole),
            reason,
        })
    };
    if rest.contains(['%', '?', '#']) {
        return Err(LocationError::Reserved(clip(whole)));
    }
    let path = match rest.strip_prefix("//") {
        Some(after) => {
            let (host, path) = match after.find('/') {
                Some(slash) => after.split_at(slash),
                None => (after, ""),
            };
            if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
                return bad(format!(
                    "a file URL names a local absolute path, as in file:///srv/registry \
                     (here {:?} is a host name; a relative directory is given as a plain \
                     path: {})",
                    clip(host),
                    clip(after)
                ));
            }
            path
        }
        None => rest,
    };
    if path.is_empty() {
        return bad("no path: expected file:///DIR".to_owned());
    }
    if !path.starts_with('/') {
        return bad(format!(
            "a file URL's path is absolute, as in file:///srv/registry (a relative directory \
             is given as a plain path: {})",
            clip(path)
        ));
    }
    Ok(StorageLocation::Filesystem(PathBuf::from(path)))
}

/// Settings for an S3 location that do not belong in its URL; each field left `None` comes from
/// the AWS environment (`AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...), as
/// [`S3Config`] documents.
///
/// ```
/// use layerstore::storage::S3Settings;
///
/// let mut settings = S3Settings::default();
/// settings.endpoint = Some("http://127.0.0.1:3900".into());
/// settings.part_size = Some(32 << 20);
/// let config = settings.to_config("registry", "/prod/");
/// assert_eq!(config.prefix, "prod");
/// assert_eq!(config.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
/// assert_eq!(config.part_size, 32 << 20);
/// assert!(!config.redirect);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct S3Settings {
    /// Region (`AWS_REGION`).
    pub region: Option<String>,
    /// Endpoint URL, e.g. `http://127.0.0.1:3900` (`AWS_ENDPOINT_URL`); path-style addressing
    /// and plain `http` are used with an endpoint.
    pub endpoint: Option<String>,
    /// Access key id (`AWS_ACCESS_KEY_ID`); used together with `secret_access_key`.
    pub access_key_id: Option<String>,
    /// Secret access key (`AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key: Option<String>,
    /// Session token of temporary credentials (`AWS_SESSION_TOKEN`).
    pub session_token: Option<String>,
    /// Multipart part size in bytes ([`DEFAULT_PART_SIZE`](super::s3::DEFAULT_PART_SIZE) when
    /// unset; raised to [`MIN_PART_SIZE`](super::s3::MIN_PART_SIZE) if smaller).
    pub part_size: Option<u64>,
    /// Answer blob GETs with a redirect to a presigned URL (default: stream them).
    pub redirect: Option<bool>,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Settings")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("session_token", &redacted(&self.session_token))
            .field("part_size", &self.part_size)
            .field("redirect", &self.redirect)
            .finish()
    }
}

impl S3Settings {
    /// The driver configuration for `bucket` under `prefix`: [`S3Config::new`] with every field
    /// that is set here.
    pub fn to_config(&self, bucket: &str, prefix: &str) -> S3Config {
        let mut config = S3Config::new(bucket, prefix);
        config.region = self.region.clone();
        config.endpoint = self.endpoint.clone();
        config.access_key_id = self.access_key_id.clone();
        config.secret_access_key = self.secret_access_key.clone();
        config.session_token = self.session_token.clone();
        if let Some(part_size) = self.part_size {
            config.part_size = part_size;
        }
        if let Some(redirect) = self.redirect {
            config.redirect = redirect;
        }
        config
    }
}

pub use super::secret::{http_secret, HttpSecret, SecretSource, HTTP_SECRET_PATH};

#[cfg(test)]
#[path = "location_tests.rs"]
mod tests;
