//! Reading PEM files: a certificate chain, a private key, and the pair checked against each
//! other. Files are read whole (with a size cap) and parsed from memory, so the parsing is pure
//! and every failure names the file it came from.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::TlsError;

/// Largest PEM file read: far above any certificate chain or CA bundle (Mozilla's whole root
/// store is about 220 KiB), small enough that a wrong path (a disk image, say) is refused
/// instead of read into memory.
pub const MAX_PEM_BYTES: u64 = 4 << 20;

/// The bytes of one PEM file and the path they came from (for messages).
#[derive(Debug, Clone)]
pub struct PemFile {
    /// Where the bytes were read (or a label, for bytes from elsewhere).
    pub path: PathBuf,
    /// The file's contents.
    pub bytes: Vec<u8>,
}

impl PemFile {
    /// Reads `path`, refusing files over [`MAX_PEM_BYTES`].
    pub fn read(path: &Path) -> Result<Self, TlsError> {
        use std::io::Read;
        let unreadable = |source| TlsError::Unreadable {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(unreadable)?;
        let mut bytes = Vec::new();
        file.take(MAX_PEM_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        if bytes.len() as u64 > MAX_PEM_BYTES {
            return Err(TlsError::TooLarge {
                path: path.to_path_buf(),
                limit: MAX_PEM_BYTES,
            });
        }
        Ok(PemFile {
            path: path.to_path_buf(),
            bytes,
        })
    }

    /// Every `CERTIFICATE` block, in file order; at least one.
    pub fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let certs = CertificateDer::pem_slice_iter(&self.bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.pem_error(e))?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificate {
                path: self.path.clone(),
            });
        }
        Ok(certs)
    }

    /// The first private key: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1
    /// (`EC PRIVATE KEY`).
    pub fn private_key(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        PrivateKeyDer::from_pem_slice(&self.bytes).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
                path: self.path.clone(),
            },
            other => self.pem_error(other),
        })
    }

    fn pem_error(&self, error: rustls::pki_types::pem::Error) -> TlsError {
        TlsError::Pem {
            path: self.path.clone(),
            reason: error.to_string(),
        }
    }
}

/// The chain of `cert` with the key of `key`, checked to belong together: the key's public half
/// must be the one in the first certificate (compared as SubjectPublicKeyInfo). Refusing a
/// mismatch here, at start or reload, beats failing every handshake later.
pub fn certified_key(
    cert: &PemFile,
    key: &PemFile,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = cert.certificates()?;
    let signing_key = provider
        .key_provider
        .load_private_key(key.private_key()?)
        .map_err(|e| TlsError::UnusableKey {
            path: key.path.clone(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                cert: cert.path.clone(),
                key: key.path.clone(),
            })
        }
        // The signing key cannot tell its public half (no aws-lc-rs key does this): the
        // handshake's own checks remain.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(e) => Err(TlsError::BadCertificate {
            path: cert.path.clone(),
            reason: e.to_string(),
        }),
    }
}

/// Reads and checks the pair of files (see [`certified_key`]).
pub fn load_certified_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert = PemFile::read(cert)?;
    let key = PemFile::read(key)?;
    certified_key(&cert, &key, provider).map(Arc::new)
}
