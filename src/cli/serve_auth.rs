//! `layerstore serve`'s authentication settings: an htpasswd file (`--htpasswd`, or the config
//! file's `[auth.htpasswd]` table) or registry tokens (`--auth-token-*`, or `[auth.token]`),
//! with distribution's words for the keys. Each setting comes from the command line, else the
//! environment (clap merges those two), else the config file.
//!
//! Usage errors (exit 2): both methods at once, a token setting without the other three, a
//! Basic realm without a file, and Basic credentials over plain HTTP without `--insecure-auth`.
//! A file that cannot be read or used stops serve with one line (exit 1).

use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;

use layerstore::auth::htpasswd::HtpasswdAuth;
use layerstore::auth::token::{KeyBundle, TokenAuth};
use layerstore::auth::Authenticator;

/// The Basic realm when none is configured.
const DEFAULT_REALM: &str = "layerstore";

const BOTH: &str = "htpasswd and token authentication cannot be used together: choose \
     --htpasswd or the --auth-token-* settings";
const REALM_WITH_TOKEN: &str = "--auth-realm (or realm in [auth.htpasswd]) is the Basic realm, \
     for --htpasswd; the token server's URL is --auth-token-realm";
const REALM_ALONE: &str = "--auth-realm (or realm in [auth.htpasswd]) needs --htpasswd FILE (or \
     path in [auth.htpasswd])";
const BASIC_WITHOUT_TLS: &str = "--htpasswd sends passwords in Basic credentials, readable by \
     anyone on the path without TLS: configure TLS (--tls-cert and --tls-key) or pass \
     --insecure-auth";

/// The authentication flags of `layerstore serve`.
#[derive(Debug, Args)]
pub struct AuthArgs {
    /// Require Basic credentials of a user of this htpasswd file (bcrypt hashes, as
    /// `htpasswd -Bbn USER PASSWORD` writes them); a user may do everything. The file is read
    /// again when it changes. Needs TLS (--tls-cert/--tls-key) unless --insecure-auth.
    #[arg(long, env = "LAYERSTORE_HTPASSWD", value_name = "FILE")]
    htpasswd: Option<PathBuf>,
    /// The realm of the Basic challenge [default: layerstore].
    #[arg(long, env = "LAYERSTORE_AUTH_REALM", value_name = "REALM")]
    auth_realm: Option<String>,
    /// Accept Basic credentials over plain HTTP, where anyone on the path can read them (a
    /// warning is logged at start). The variable takes true/false, 1/0, yes/no or on/off.
    #[arg(
        long,
        env = "LAYERSTORE_INSECURE_AUTH",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    insecure_auth: bool,
    /// Require registry tokens (Bearer JWTs, as distribution's auth.token) from the token
    /// server at this URL; needs the other three --auth-token-* settings.
    #[arg(long, env = "LAYERSTORE_AUTH_TOKEN_REALM", value_name = "URL")]
    auth_token_realm: Option<String>,
    /// This registry's name at the token server: a token's `aud` must hold it.
    #[arg(long, env = "LAYERSTORE_AUTH_TOKEN_SERVICE", value_name = "S")]
    auth_token_service: Option<String>,
    /// The token server's name: a token's `iss` must be it.
    #[arg(long, env = "LAYERSTORE_AUTH_TOKEN_ISSUER", value_name = "I")]
    auth_token_issuer: Option<String>,
    /// PEM certificates of the keys that sign tokens (a token names its key by libtrust key
    /// id in `kid`, by `jwk`, or by an `x5c` chain that ends at one of them).
    #[arg(
        long,
        env = "LAYERSTORE_AUTH_TOKEN_ROOTCERTBUNDLE",
        value_name = "FILE"
    )]
    auth_token_rootcertbundle: Option<PathBuf>,
}

/// The config file's `[auth]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthTable {
    htpasswd: Option<HtpasswdTable>,
    token: Option<TokenTable>,
}

/// `[auth.htpasswd]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HtpasswdTable {
    path: Option<PathBuf>,
    realm: Option<String>,
}

/// `[auth.token]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenTable {
    realm: Option<String>,
    service: Option<String>,
    issuer: Option<String>,
    rootcertbundle: Option<PathBuf>,
}

/// What to authenticate with, resolved but not yet read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthSettings {
    /// An htpasswd file.
    Htpasswd {
        path: PathBuf,
        realm: String,
        /// Basic credentials over plain HTTP (allowed by --insecure-auth).
        insecure: bool,
    },
    /// Registry tokens.
    Token {
        realm: String,
        service: String,
        issuer: String,
        bundle: PathBuf,
    },
}

impl AuthArgs {
    /// The settings, or `None` for an open registry; `Err` is a usage error. `tls` says
    /// whether serve speaks HTTPS (Basic credentials need it unless --insecure-auth).
    pub fn resolve(
        &self,
        file: Option<&AuthTable>,
        tls: bool,
    ) -> Result<Option<AuthSettings>, String> {
        let htpasswd = file.and_then(|f| f.htpasswd.as_ref());
        let token = file.and_then(|f| f.token.as_ref());
        let path = self.htpasswd.clone().or_else(|| htpasswd?.path.clone());
        let realm = self.auth_realm.clone().or_else(|| htpasswd?.realm.clone());
        let token = self.token_settings(token)?;
        match (path, token) {
            (Some(_), Some(_)) => Err(BOTH.to_owned()),
            (None, Some(_)) if realm.is_some() => Err(REALM_WITH_TOKEN.to_owned()),
            (None, Some(token)) => Ok(Some(token)),
            (None, None) if realm.is_some() => Err(REALM_ALONE.to_owned()),
            (None, None) => Ok(None),
            (Some(path), None) => {
                if !tls && !self.insecure_auth {
                    return Err(BASIC_WITHOUT_TLS.to_owned());
                }
                Ok(Some(AuthSettings::Htpasswd {
                    path,
                    realm: realm.unwrap_or_else(|| DEFAULT_REALM.to_owned()),
                    insecure: !tls,
                }))
            }
        }
    }

    /// The token settings if any is set; all four are needed then.
    fn token_settings(&self, file: Option<&TokenTable>) -> Result<Option<AuthSettings>, String> {
        let realm = self
            .auth_token_realm
            .clone()
            .or_else(|| file?.realm.clone());
        let service = self
            .auth_token_service
            .clone()
            .or_else(|| file?.service.clone());
        let issuer = self
            .auth_token_issuer
            .clone()
            .or_else(|| file?.issuer.clone());
        let bundle = self
            .auth_token_rootcertbundle
            .clone()
            .or_else(|| file?.rootcertbundle.clone());
        match (realm, service, issuer, bundle) {
            (None, None, None, None) => Ok(None),
            (Some(realm), Some(service), Some(issuer), Some(bundle)) => {
                Ok(Some(AuthSettings::Token {
                    realm,
                    service,
                    issuer,
                    bundle,
                }))
            }
            (realm, service, issuer, bundle) => {
                let missing: Vec<&str> = [
                    (realm.is_none(), "--auth-token-realm"),
                    (service.is_none(), "--auth-token-service"),
                    (issuer.is_none(), "--auth-token-issuer"),
                    (bundle.is_none(), "--auth-token-rootcertbundle"),
                ]
                .into_iter()
                .filter_map(|(missing, flag)| missing.then_some(flag))
                .collect();
                Err(format!(
                    "token authentication needs realm, service, issuer and rootcertbundle; \
                     missing: {} (or the same keys in the config file's [auth.token] table)",
                    missing.join(", ")
                ))
            }
        }
    }
}

impl AuthSettings {
    /// Reads the htpasswd file or the certificate bundle; `Err` is one line naming the file
    /// and the problem (never a hash).
    pub fn load(&self) -> Result<Authenticator, String> {
        match self {
            AuthSettings::Htpasswd {
                path,
                realm,
                insecure,
            } => {
                let htpasswd =
                    HtpasswdAuth::load(path, realm).map_err(|e| format!("htpasswd: {e}"))?;
                if *insecure {
                    tracing::warn!(
                        "--insecure-auth: Basic credentials are accepted over plain HTTP, where \
                         anyone on the path can read them"
                    );
                }
                tracing::info!(
                    path = %path.display(),
                    users = htpasswd.users(),
                    "authentication: htpasswd"
                );
                Ok(Authenticator::Htpasswd(htpasswd))
            }
            AuthSettings::Token {
                realm,
                service,
                issuer,
                bundle,
            } => {
                let keys = KeyBundle::load(bundle).map_err(|e| format!("token auth: {e}"))?;
                if keys.unsupported() > 0 {
                    tracing::warn!(
                        certificates = keys.unsupported(),
                        "root cert bundle: certificates with keys that cannot sign tokens \
                         (only RSA, P-256, P-384 and Ed25519 can); they only anchor x5c chains"
                    );
                }
                tracing::info!(
                    realm = %realm,
                    service = %service,
                    issuer = %issuer,
                    keys = keys.key_ids().count(),
                    "authentication: registry tokens"
                );
                Ok(Authenticator::Token(Box::new(TokenAuth::new(
                    realm.clone(),
                    service.clone(),
                    issuer.clone(),
                    keys,
                ))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        auth: AuthArgs,
    }

    fn args(argv: &[&str]) -> AuthArgs {
        let mut all = vec!["serve"];
        all.extend_from_slice(argv);
        Cli::try_parse_from(all).unwrap().auth
    }

    fn table(toml_text: &str) -> AuthTable {
        #[derive(Deserialize)]
        struct File {
            auth: AuthTable,
        }
        toml::from_str::<File>(toml_text).unwrap().auth
    }

    const TOKEN_FLAGS: [&str; 8] = [
        "--auth-token-realm",
        "http://t/token",
        "--auth-token-service",
        "svc",
        "--auth-token-issuer",
        "iss",
        "--auth-token-rootcertbundle",
        "/b.pem",
    ];

    #[test]
    fn nothing_configured_is_an_open_registry() {
        assert_eq!(args(&[]).resolve(None, false), Ok(None));
        assert_eq!(args(&["--insecure-auth"]).resolve(None, false), Ok(None));
    }

    #[test]
    fn htpasswd_needs_tls_or_insecure_auth() {
        let refused = args(&["--htpasswd", "/h"])
            .resolve(None, false)
            .unwrap_err();
        assert!(
            refused.contains("--tls-cert") && refused.contains("--insecure-auth"),
            "{refused}"
        );
        let expected = |insecure| {
            Ok(Some(AuthSettings::Htpasswd {
                path: "/h".into(),
                realm: "layerstore".into(),
                insecure,
            }))
        };
        assert_eq!(
            args(&["--htpasswd", "/h"]).resolve(None, true),
            expected(false)
        );
        assert_eq!(
            args(&["--htpasswd", "/h", "--insecure-auth"]).resolve(None, false),
            expected(true)
        );
    }

    #[test]
    fn flags_win_over_the_file() {
        let file = table("[auth.htpasswd]\npath = \"/file\"\nrealm = \"from file\"\n");
        let Ok(Some(AuthSettings::Htpasswd { path, realm, .. })) =
            args(&["--htpasswd", "/flag"]).resolve(Some(&file), true)
        else {
            panic!("htpasswd settings expected");
        };
        assert_eq!(
            (path, realm.as_str()),
            (PathBuf::from("/flag"), "from file")
        );
        let file = table(
            "[auth.token]\nrealm = \"r\"\nservice = \"s\"\nissuer = \"i\"\nrootcertbundle = \"/f.pem\"\n",
        );
        let Ok(Some(AuthSettings::Token {
            service, bundle, ..
        })) = args(&["--auth-token-service", "flag"]).resolve(Some(&file), false)
        else {
            panic!("token settings expected");
        };
        assert_eq!(
            (service.as_str(), bundle),
            ("flag", PathBuf::from("/f.pem"))
        );
    }

    #[test]
    fn conflicts_and_gaps_are_usage_errors() {
        let mut both = TOKEN_FLAGS.to_vec();
        both.extend(["--htpasswd", "/h", "--insecure-auth"]);
        assert!(args(&both)
            .resolve(None, true)
            .unwrap_err()
            .contains("together"));
        let partial = args(&TOKEN_FLAGS[..4]).resolve(None, true).unwrap_err();
        assert!(
            partial.contains("--auth-token-issuer")
                && partial.contains("--auth-token-rootcertbundle"),
            "{partial}"
        );
        assert!(!partial.contains("--auth-token-service"), "{partial}");
        assert!(args(&["--auth-realm", "r"]).resolve(None, true).is_err());
        let mut realm_with_token = TOKEN_FLAGS.to_vec();
        realm_with_token.extend(["--auth-realm", "r"]);
        assert!(args(&realm_with_token).resolve(None, true).is_err());
        assert!(toml::from_str::<AuthTable>("[htpasswd]\nfile = \"/h\"\n").is_err());
    }

    #[test]
    fn unreadable_files_are_one_line_errors() {
        let htpasswd = AuthSettings::Htpasswd {
            path: "/nonexistent/htpasswd".into(),
            realm: "r".into(),
            insecure: false,
        };
        let message = htpasswd.load().unwrap_err();
        assert!(
            message.starts_with("htpasswd: /nonexistent/htpasswd"),
            "{message}"
        );
        let token = AuthSettings::Token {
            realm: "r".into(),
            service: "s".into(),
            issuer: "i".into(),
            bundle: "/nonexistent/bundle.pem".into(),
        };
        let message = token.load().unwrap_err();
        assert!(message.contains("/nonexistent/bundle.pem"), "{message}");
        assert!(!message.contains('\n'));
    }
}
