//! The HTTP secret kept in the storage itself ([`http_secret`]), so that instances sharing a
//! storage agree on it without configuration and uploads resume across restarts.

use std::fmt;

use super::{DriverPath, StorageDriver, StorageError};

/// Where [`http_secret`] keeps the secret in the storage: outside distribution's
/// `/docker/registry/v2` tree, so no registry route reaches it and distribution ignores it.
pub const HTTP_SECRET_PATH: &str = "/layerstore/http-secret";

/// Where an [`HttpSecret`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    /// Given by the caller (command line, environment, config file).
    Configured,
    /// Read from [`HTTP_SECRET_PATH`], where an earlier start (or another instance) put it.
    Stored,
    /// Generated now and stored at [`HTTP_SECRET_PATH`].
    Created,
}

/// The secret that signs upload tokens (the HMAC key), and where it came from. Its `Debug`
/// output does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpSecret {
    value: Vec<u8>,
    source: SecretSource,
}

impl HttpSecret {
    /// The secret's bytes (the HMAC key, as distribution uses its `http.secret`).
    pub fn as_bytes(&self) -> &[u8] {
        &self.value
    }

    /// The secret's bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.value
    }

    /// Where it came from.
    pub fn source(&self) -> SecretSource {
        self.source
    }
}

impl fmt::Debug for HttpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSecret")
            .field("value", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

/// The HTTP secret: `configured` if there is one; else the one kept in the storage at
/// [`HTTP_SECRET_PATH`]; else a new one (32 random bytes, hex-encoded: 64 characters that can
/// also be given to distribution as `http.secret`), stored there and read back, so that of
/// instances racing to create it, those that read after the last write agree.
///
/// Surrounding whitespace in the stored file is ignored (an operator may write it with `echo`);
/// an empty file counts as missing. Instances that share a storage and have no secret configured
/// thus share one, across restarts, without configuration.
///
/// Limit: the driver interface has no "create if absent", so two instances that create the
/// secret at the same instant can each keep their own (the last write wins in the storage, and
/// the next start of the other picks it up). Uploads are unaffected within one instance; an
/// upload moving between the two in that window gets a "stale token" answer and is resumed from
/// its status. Configure a secret to rule this out.
///
/// ```
/// use layerstore::storage::{http_secret, InMemoryDriver, SecretSource};
///
/// let storage = InMemoryDriver::new();
/// let first = http_secret(None, &storage).unwrap();
/// assert_eq!(first.source(), SecretSource::Created);
/// assert_eq!(first.as_bytes().len(), 64);
/// let again = http_secret(None, &storage).unwrap();
/// assert_eq!(again.source(), SecretSource::Stored);
/// assert_eq!(again.as_bytes(), first.as_bytes());
/// let configured = http_secret(Some("s3cr3t"), &storage).unwrap();
/// assert_eq!((configured.as_bytes(), configured.source()), (&b"s3cr3t"[..], SecretSource::Configured));
/// ```
pub fn http_secret(
    configured: Option<&str>,
    storage: &dyn StorageDriver,
) -> Result<HttpSecret, StorageError> {
    if let Some(secret) = configured {
        return Ok(HttpSecret {
            value: secret.as_bytes().to_vec(),
            source: SecretSource::Configured,
        });
    }
    let path = DriverPath::parse(HTTP_SECRET_PATH)?;
    if let Some(value) = read_secret(storage, &path)? {
        return Ok(HttpSecret {
            value,
            source: SecretSource::Stored,
        });
    }
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(|e| StorageError::Io {
        op: "getrandom",
        path: path.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let created = crate::digest::to_hex(&random).into_bytes();
    storage.put_content(&path, &created)?;
    // Another instance may have written its own in the meantime: the stored one is the one.
    let value = read_secret(storage, &path)?.ok_or_else(|| StorageError::NotFound(path.clone()))?;
    let source = if value == created {
        SecretSource::Created
    } else {
        SecretSource::Stored
    };
    Ok(HttpSecret { value, source })
}

/// The stored secret without surrounding whitespace; `None` if missing or empty.
fn read_secret(
    storage: &dyn StorageDriver,
    path: &DriverPath,
) -> Result<Option<Vec<u8>>, StorageError> {
    match storage.get_content(path) {
        Ok(content) => {
            let trimmed = content.trim_ascii();
            Ok((!trimmed.is_empty()).then(|| trimmed.to_vec()))
        }
        Err(StorageError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
