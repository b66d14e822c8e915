//! `layerstore serve`'s TLS settings: `--tls-cert`/`--tls-key` (or `LAYERSTORE_TLS_CERT`/
//! `LAYERSTORE_TLS_KEY`, or the config file's `[tls]` table), loading them, and reloading them
//! on SIGHUP.

use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;

use layerstore::http::tls::ServerTls;

/// The TLS flags of `layerstore serve`.
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// Serve HTTPS with this PEM certificate chain (server certificate first); needs
    /// --tls-key. TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 by ALPN. Both files are read again on
    /// SIGHUP: new connections get the new certificate, open ones keep going.
    #[arg(long, env = "LAYERSTORE_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 RSA or SEC1 EC).
    #[arg(long, env = "LAYERSTORE_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
}

/// The config file's `[tls]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsTable {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

/// The certificate and key files to serve with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsArgs {
    /// Each file from the command line, else the environment (clap merges those two), else the
    /// config file. Both or neither must be set: one alone is a usage error (`Err`).
    pub fn resolve(&self, file: Option<&TlsTable>) -> Result<Option<TlsFiles>, String> {
        let cert = self.tls_cert.clone().or_else(|| file?.cert.clone());
        let key = self.tls_key.clone().or_else(|| file?.key.clone());
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(one_alone("a certificate", "--tls-key", "key")),
            (None, Some(_)) => Err(one_alone("a key", "--tls-cert", "cert")),
        }
    }
}

fn one_alone(given: &str, flag: &str, table_key: &str) -> String {
    let env = format!("LAYERSTORE_{}", flag[2..].replace('-', "_").to_uppercase());
    format!(
        "TLS needs a certificate and its key, but only {given} is set: add {flag} FILE \
         ({env}, or {table_key} in the config file's [tls] table)"
    )
}

impl TlsFiles {
    /// Reads and checks both files (a failure is one line naming the file and the problem).
    pub fn load(&self) -> Result<ServerTls, String> {
        ServerTls::load(&self.cert, &self.key).map_err(|e| format!("TLS: {e}"))
    }
}

/// Reloads `tls` on every SIGHUP, on a task of the current runtime. A failed reload is logged
/// and the certificate in use stays. The signal handler is installed before this returns, so a
/// SIGHUP sent once serve logs that it is serving never kills the process.
#[cfg(unix)]
pub fn reload_on_hangup(tls: ServerTls) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups =
        signal(SignalKind::hangup()).map_err(|e| format!("installing the SIGHUP handler: {e}"))?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let reloading = tls.clone();
            match tokio::task::spawn_blocking(move || reloading.reload()).await {
                Ok(Ok(())) => tracing::info!("TLS certificate reloaded"),
                Ok(Err(e)) => tracing::error!(
                    error = %e,
                    "TLS certificate not reloaded: keeping the one in use"
                ),
                Err(e) => tracing::error!(error = %e, "TLS reload task failed"),
            }
        }
    });
    Ok(())
}

/// Without SIGHUP, the certificate changes only with a restart.
#[cfg(not(unix))]
pub fn reload_on_hangup(_tls: ServerTls) -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cert: Option<&str>, key: Option<&str>) -> TlsArgs {
        TlsArgs {
            tls_cert: cert.map(PathBuf::from),
            tls_key: key.map(PathBuf::from),
        }
    }

    fn table(cert: Option<&str>, key: Option<&str>) -> TlsTable {
        TlsTable {
            cert: cert.map(PathBuf::from),
            key: key.map(PathBuf::from),
        }
    }

    #[test]
    fn flags_come_before_the_file_and_both_are_needed() {
        let files = |c: &str, k: &str| {
            Some(TlsFiles {
                cert: c.into(),
                key: k.into(),
            })
        };
        assert_eq!(args(None, None).resolve(None), Ok(None));
        assert_eq!(
            args(Some("a"), Some("b")).resolve(Some(&table(Some("c"), Some("d")))),
            Ok(files("a", "b"))
        );
        assert_eq!(
            args(None, None).resolve(Some(&table(Some("c"), Some("d")))),
            Ok(files("c", "d"))
        );
        assert_eq!(
            args(Some("a"), None).resolve(Some(&table(None, Some("d")))),
            Ok(files("a", "d"))
        );
        let error = args(Some("a"), None).resolve(None).unwrap_err();
        assert!(
            error.contains("--tls-key FILE (LAYERSTORE_TLS_KEY"),
            "{error}"
        );
        let error = args(None, None)
            .resolve(Some(&table(None, Some("d"))))
            .unwrap_err();
        assert!(
            error.contains("--tls-cert FILE (LAYERSTORE_TLS_CERT"),
            "{error}"
        );
    }
}
