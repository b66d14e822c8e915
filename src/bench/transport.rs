//! How the bench reaches a server: a TCP connection (no Nagle delay), TLS on it for `https`
//! URLs, and an HTTP/1.1 client connection driven on its own task. The TLS config comes from
//! [`crate::http::tls::client_config`] with ALPN `http/1.1`, the one protocol this client speaks.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use super::client::RequestBody;
use super::error::BenchError;
use crate::http::tls::{client_config, ServerTrust, ALPN_HTTP1};

/// The TLS client config for `https` targets: trusting as `trust` says, offering HTTP/1.1.
pub fn tls_config(trust: &ServerTrust) -> Result<Arc<ClientConfig>, BenchError> {
    let mut config = client_config(trust)?;
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}

/// Why an https URL cannot be used without a TLS config.
pub(super) const NO_TRUST: &str = "https needs the server's CA certificate (--cacert FILE) or \
                                   --insecure (there are no built-in root certificates)";

/// How to reach an https server.
#[derive(Debug)]
pub(super) struct TlsTarget {
    pub config: Arc<ClientConfig>,
    /// The name the certificate must carry (the URL's host).
    pub name: ServerName<'static>,
}

/// Opens a connection to `addr` (with TLS when `tls` is given) and drives it on its own task.
pub(super) async fn connect(
    step: &'static str,
    addr: SocketAddr,
    tls: Option<&TlsTarget>,
) -> Result<SendRequest<RequestBody>, BenchError> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|source| BenchError::Connect { addr, source })?;
    // Small requests (POST, range GET) must not wait for Nagle's algorithm.
    stream
        .set_nodelay(true)
        .map_err(|source| BenchError::Connect { addr, source })?;
    let Some(tls) = tls else {
        return http1(step, stream).await;
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls.config));
    let stream = connector
        .connect(tls.name.clone(), stream)
        .await
        .map_err(|source| BenchError::Tls { addr, source })?;
    http1(step, stream).await
}

/// An HTTP/1.1 client connection on `io`, driven on its own task.
async fn http1<I>(step: &'static str, io: I) -> Result<SendRequest<RequestBody>, BenchError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|source| BenchError::Http { step, source })?;
    tokio::spawn(async move {
        // Errors surface on the next request through `ready`/`send_request`.
        let _ = connection.await;
    });
    Ok(sender)
}
