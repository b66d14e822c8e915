//! TLS for the server (and the client config the bench uses): rustls with aws-lc-rs, TLS 1.2
//! and 1.3, HTTP/2 and HTTP/1.1 offered by ALPN.
//!
//! The certificate is reloadable: [`ServerTls`] hands rustls a resolver ([`ReloadingCert`])
//! that reads the current [`CertifiedKey`] behind a lock on every handshake, and
//! [`ServerTls::reload`] swaps it after reading and checking the files again. A handshake picks
//! the key once, so open connections keep what they negotiated and only new ones see the new
//! certificate; a reload that fails leaves the old one in place.
//!
//! Loading is strict and typed ([`TlsError`]): an unreadable file, no certificate, no key, a
//! key rustls cannot use, or a key that is not the certificate's each has its own variant
//! whose message names the file, so `layerstore serve` stops at start with one clear line.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

mod client;
mod load;

pub use client::{client_config, ServerTrust};
pub use load::{certified_key, load_certified_key, PemFile, MAX_PEM_BYTES};

/// ALPN protocol id of HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN protocol id of HTTP/1.1.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Why a certificate, key or CA bundle could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// The file is larger than any PEM file this reads ([`MAX_PEM_BYTES`]).
    #[error("{} is larger than {limit} bytes: not a PEM certificate or key", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// The file is not valid PEM (bad base64, a section without its end line, ...).
    #[error("{} is not valid PEM: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// The file holds no `CERTIFICATE` block.
    #[error("{} holds no certificate (no PEM \"CERTIFICATE\" block)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The file holds no private key.
    #[error(
        "{} holds no private key (no PEM \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \
         \"EC PRIVATE KEY\" block)",
        path.display()
    )]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The key is malformed or of a type rustls does not sign with.
    #[error("{}: unusable private key: {reason}", path.display())]
    UnusableKey {
        /// The file.
        path: PathBuf,
        /// rustls' message.
        reason: String,
    },
    /// The first certificate could not be parsed.
    #[error("{}: bad certificate: {reason}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// rustls' message.
        reason: String,
    },
    /// The key is not the one the first certificate certifies.
    #[error(
        "the private key in {} does not match the certificate in {}",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the configuration (protocol versions, a CA certificate, ...).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The crypto provider of every config made here (aws-lc-rs), named explicitly so that no
/// process-wide default needs installing.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The server's current certificate and key, swapped by [`ReloadingCert::reload`].
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingCert {
    /// Loads the pair of files (see [`certified_key`]).
    pub fn load(cert: &Path, key: &Path, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let current = load_certified_key(cert, key, &provider)?;
        Ok(ReloadingCert {
            cert_path: cert.to_path_buf(),
            key_path: key.to_path_buf(),
            provider,
            current: RwLock::new(current),
        })
    }

    /// Reads both files again; on success new handshakes use them, on failure nothing changes.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = load_certified_key(&self.cert_path, &self.key_path, &self.provider)?;
        *self.current.write() = fresh;
        Ok(())
    }

    /// The pair in use now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.read())
    }
}

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for ReloadingCert {
    /// One certificate for every client (no SNI selection).
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The server side of TLS: a rustls config over a [`ReloadingCert`]. Cheap to clone (clones
/// share the certificate, so a reload through one is seen by all).
#[derive(Debug, Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    cert: Arc<ReloadingCert>,
}

impl ServerTls {
    /// Loads `cert` (PEM chain, server certificate first) and `key` (PEM private key) and
    /// builds a config for TLS 1.2 and 1.3 offering `h2` and `http/1.1` by ALPN.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let provider = provider();
        let cert = Arc::new(ReloadingCert::load(cert, key, Arc::clone(&provider))?);
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&cert) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()];
        Ok(ServerTls {
            config: Arc::new(config),
            cert,
        })
    }

    /// Reads the certificate and key files again (see [`ReloadingCert::reload`]).
    pub fn reload(&self) -> Result<(), TlsError> {
        self.cert.reload()
    }

    /// The certificate and key in use now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.cert.current()
    }

    /// An acceptor for incoming connections.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.config))
    }
}

#[cfg(test)]
mod tests;
