//! The client side: a rustls `ClientConfig` that trusts either the CA certificates of one PEM
//! file or, on request, any certificate at all. There are no built-in roots (the crate carries
//! no root store), so a client must say which of the two it wants. Used by `layerstore bench`;
//! kept here, apart from the bench, so any client of the crate can reuse it.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::{provider, PemFile, TlsError};

/// Which server certificates a client accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerTrust {
    /// Certificates that chain to a CA of this PEM file and name the host connected to.
    CaFile(PathBuf),
    /// Any certificate, for any name (the handshake's signatures are still checked, so the
    /// traffic is encrypted, but the server is not authenticated): test setups only.
    AnyCertificate,
}

/// A TLS 1.2/1.3 client config for `trust`, without ALPN (the caller sets
/// `alpn_protocols` for the protocol its HTTP client speaks).
pub fn client_config(trust: &ServerTrust) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let config = match trust {
        ServerTrust::CaFile(path) => {
            let mut roots = RootCertStore::empty();
            for cert in PemFile::read(path)?.certificates()? {
                roots.add(cert).map_err(|e| TlsError::BadCertificate {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        ServerTrust::AnyCertificate => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate { provider }))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// Accepts every certificate chain, but checks that the server holds the key of the
/// certificate it sent (the handshake signatures), as `curl --insecure` does.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
