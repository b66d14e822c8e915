//! Flags shared by the commands that talk to registries (`push`, `pull`, `copy`, `login`):
//! how to connect and whom to be, with podman's and skopeo's words where they have them.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use layerstore::client::credentials::{AuthFiles, Credential};
use layerstore::client::{ClientError, ClientOptions, Registry};

/// Connection and credential flags.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Speak plain HTTP to the registry (no TLS).
    #[arg(long)]
    plain_http: bool,
    /// Verify the registry's TLS certificate (--tls-verify=false accepts any: tests only).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    tls_verify: bool,
    /// Directory of extra CA certificates (`*.crt`), as docker's certs.d/HOST.
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<PathBuf>,
    /// Auth file to read credentials from (default: podman's and docker's usual files).
    #[arg(long, env = "REGISTRY_AUTH_FILE", value_name = "FILE")]
    authfile: Option<PathBuf>,
    /// Credentials USER:PASSWORD (instead of the auth files).
    #[arg(long, value_name = "USER:PASSWORD", hide_env_values = true)]
    creds: Option<String>,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    timeout: u64,
}

impl RegistryArgs {
    /// The auth files these flags name.
    pub fn auth_files(&self) -> AuthFiles {
        match &self.authfile {
            Some(file) => AuthFiles::new(vec![file.clone()]),
            None => AuthFiles::from_env(),
        }
    }

    /// Client options for these flags, with `credential` overriding the auth files.
    pub fn options(&self, credential: Option<Credential>) -> Result<ClientOptions, String> {
        let credential = match (credential, &self.creds) {
            (Some(c), _) => Some(c),
            (None, Some(creds)) => {
                let (username, password) = creds
                    .split_once(':')
                    .ok_or("--creds must be USER:PASSWORD")?;
                Some(Credential::Basic {
                    username: username.to_owned(),
                    password: password.to_owned(),
                })
            }
            (None, None) => None,
        };
        Ok(ClientOptions {
            plain_http: self.plain_http,
            insecure: !self.tls_verify,
            cert_dir: self.cert_dir.clone(),
            credential,
            auth_files: self.auth_files(),
            timeout: Duration::from_secs(self.timeout),
            ..ClientOptions::default()
        })
    }

    /// A client for `host`.
    pub fn registry(&self, host: &str) -> Result<Registry, String> {
        let options = self.options(None)?;
        Registry::new(host, options).map_err(|e: ClientError| e.to_string())
    }
}
