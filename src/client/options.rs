//! How a [`Registry`](super::Registry) connects: scheme, TLS trust, credentials, timeouts and
//! retries.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::RootCertStore;

use super::credentials::{AuthFiles, Credential};
use super::error::ClientError;
use crate::http::tls::{client_config, provider, PemFile, ServerTrust};

/// Connection settings. `ClientOptions::default()` is what docker and podman do for a remote
/// registry: HTTPS with the system's CAs, credentials from the usual auth files.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Speak plain HTTP (a registry on a trusted network or loopback).
    pub plain_http: bool,
    /// Accept any server certificate (tests only: the server is not authenticated).
    pub insecure: bool,
    /// Extra CA certificates (PEM files) trusted beside the system's.
    pub ca_files: Vec<PathBuf>,
    /// A docker-style certificate directory (`certs.d/HOST`): every `*.crt` in it is a CA.
    pub cert_dir: Option<PathBuf>,
    /// Credentials to present; when `None`, they are looked up in `auth_files`.
    pub credential: Option<Credential>,
    /// Where credentials are looked up.
    pub auth_files: AuthFiles,
    /// Longest wait for a response head.
    pub timeout: Duration,
    /// Longest wait for a TCP connection.
    pub connect_timeout: Duration,
    /// Attempts after the first for requests that can be repeated (429, 5xx, resets).
    pub retries: u32,
    /// First backoff between attempts (doubled each time, at most 10 s; `Retry-After` wins).
    pub backoff: Duration,
    /// Idle connections the pool keeps per host (more may be open while requests are in
    /// flight; those beyond this are closed when they go idle).
    pub max_idle_per_host: usize,
    /// Offer HTTP/2 by ALPN on https (plain http is always HTTP/1.1); `false` speaks HTTP/1.1
    /// only, as most registry clients do (the benchmark measures that).
    pub http2: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            plain_http: false,
            insecure: false,
            ca_files: Vec::new(),
            cert_dir: None,
            credential: None,
            auth_files: AuthFiles::from_env(),
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(30),
            retries: 4,
            backoff: Duration::from_millis(250),
            max_idle_per_host: 32,
            http2: true,
        }
    }
}

impl ClientOptions {
    /// Options for a plain-HTTP registry (loopback tests, trusted networks), with no
    /// credentials looked up.
    ///
    /// ```
    /// let options = layerstore::client::ClientOptions::plain_http();
    /// assert!(options.plain_http && options.credential.is_none());
    /// ```
    pub fn plain_http() -> Self {
        ClientOptions {
            plain_http: true,
            auth_files: AuthFiles::new(Vec::new()),
            ..ClientOptions::default()
        }
    }

    /// The rustls configuration these options ask for.
    pub(crate) fn tls_config(&self) -> Result<rustls::ClientConfig, ClientError> {
        let tls = |e: crate::http::tls::TlsError| ClientError::Tls(e.to_string());
        if self.insecure {
            return client_config(&ServerTrust::AnyCertificate).map_err(tls);
        }
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
        let mut ca_files = self.ca_files.clone();
        if let Some(dir) = &self.cert_dir {
            ca_files.extend(crt_files(dir)?);
        }
        for file in &ca_files {
            for cert in PemFile::read(file)
                .map_err(tls)?
                .certificates()
                .map_err(tls)?
            {
                roots
                    .add(cert)
                    .map_err(|e| ClientError::Tls(format!("{}: {e}", file.display())))?;
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| ClientError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(config)
    }
}

/// The `*.crt` files of a certificate directory, sorted.
fn crt_files(dir: &Path) -> Result<Vec<PathBuf>, ClientError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| ClientError::io(dir.display().to_string(), e))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "crt"))
        .collect();
    files.sort();
    Ok(files)
}
