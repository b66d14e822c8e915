//! Registry credentials, found where docker and podman keep them, and written as `podman login`
//! writes them.
//!
//! Search order (podman's, then docker's): `$REGISTRY_AUTH_FILE`,
//! `$XDG_RUNTIME_DIR/containers/auth.json`, `$XDG_CONFIG_HOME/containers/auth.json` (else
//! `~/.config/containers/auth.json`), `$DOCKER_CONFIG/config.json` (else
//! `~/.docker/config.json`). In each file a `credHelpers` entry for the host wins, then an
//! `auths` entry, then the file's `credsStore`. Keys of `auths` match by host whatever their
//! scheme or path (`https://reg.example/v1/` matches `reg.example`), as docker and podman match.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde::Deserialize;

use super::reference::DOCKER_HUB;

/// What a client presents to a registry or its token server.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (HTTP Basic, or exchanged for a token).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken`, or a helper's `<token>` user).
    IdentityToken(String),
}

impl std::fmt::Debug for Credential {
    /// Never prints a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credential::IdentityToken(_) => f.write_str("IdentityToken(***)"),
        }
    }
}

/// Why credentials could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// A file exists but cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not the JSON docker and podman write.
    #[error("{path}: not a valid auth file: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong (never a secret).
        reason: String,
    },
    /// A `docker-credential-*` helper failed.
    #[error("credential helper docker-credential-{helper}: {reason}")]
    Helper {
        /// The helper's name.
        helper: String,
        /// What went wrong.
        reason: String,
    },
}

/// The auth files to search, in order.
#[derive(Debug, Clone)]
pub struct AuthFiles {
    files: Vec<PathBuf>,
}

/// One auth file, as far as lookups read it (login keeps every other key as it is).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

impl AuthFiles {
    /// The files docker and podman use, from the process environment.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var_os(name))
    }

    /// The files named by an environment given as a lookup function.
    ///
    /// ```
    /// use std::path::PathBuf;
    /// use layerstore::client::credentials::AuthFiles;
    ///
    /// let files = AuthFiles::from_vars(|name| match name {
    ///     "XDG_RUNTIME_DIR" => Some("/run/user/1000".into()),
    ///     "HOME" => Some("/home/me".into()),
    ///     _ => None,
    /// });
    /// assert_eq!(files.login_file(), PathBuf::from("/run/user/1000/containers/auth.json"));
    /// assert_eq!(files.files().last().unwrap(), &PathBuf::from("/home/me/.docker/config.json"));
    /// ```
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Self {
        let home = var("HOME").map(PathBuf::from);
        let mut files = Vec::new();
        if let Some(file) = var("REGISTRY_AUTH_FILE") {
            files.push(PathBuf::from(file));
        }
        if let Some(dir) = var("XDG_RUNTIME_DIR") {
            files.push(Path::new(&dir).join("containers/auth.json"));
        }
        match (var("XDG_CONFIG_HOME"), &home) {
            (Some(dir), _) => files.push(Path::new(&dir).join("containers/auth.json")),
            (None, Some(home)) => files.push(home.join(".config/containers/auth.json")),
            (None, None) => {}
        }
        match (var("DOCKER_CONFIG"), &home) {
            (Some(dir), _) => files.push(Path::new(&dir).join("config.json")),
            (None, Some(home)) => files.push(home.join(".docker/config.json")),
            (None, None) => {}
        }
        AuthFiles { files }
    }

    /// Exactly these files, in this order.
    pub fn new(files: Vec<PathBuf>) -> Self {
        AuthFiles { files }
    }

    /// The files searched, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Where a login is written: the first file of the search order (podman's choice).
    pub fn login_file(&self) -> PathBuf {
        self.files
            .first()
            .cloned()
            .unwrap_or_else(|| PathBuf::from("auth.json"))
    }

    /// The credential for `host` (`reg.example:5000`), or `None` when no file has one.
    pub fn lookup(&self, host: &str) -> Result<Option<Credential>, CredentialError> {
        let host = normalize_host(host);
        for path in &self.files {
            let Some(file) = read_auth_file(path)? else {
                continue;
            };
            let answer = file
                .answer(&host)
                .map_err(|reason| CredentialError::Format {
                    path: path.to_owned(),
                    reason,
                })?;
            match answer {
                FileAnswer::Helper(helper) => return run_helper(&helper, &host),
                FileAnswer::Credential(credential) => return Ok(Some(credential)),
                FileAnswer::Store(store) => {
                    if let Some(credential) = run_helper(&store, &host)? {
                        return Ok(Some(credential));
                    }
                }
                FileAnswer::Nothing => {}
            }
        }
        Ok(None)
    }
}

/// What one auth file says about a host, before any helper program runs (the pure part of a
/// lookup, which the `auth_json` fuzz target checks against what login writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileAnswer {
    /// A `credHelpers` entry names this helper: its answer is final.
    Helper(String),
    /// An `auths` entry holds this credential.
    Credential(Credential),
    /// Only the file's `credsStore` helper may know; if it does not, the next file is asked.
    Store(String),
    /// Nothing here: the next file is asked.
    Nothing,
}

impl AuthFile {
    /// What this file says about `host` (normalized or not); an error (never quoting a secret)
    /// for an `auths` entry that does not decode.
    pub(crate) fn answer(&self, host: &str) -> Result<FileAnswer, String> {
        let host = normalize_host(host);
        if let Some(helper) = self.cred_helpers.get(&host).or_else(|| {
            self.cred_helpers
                .iter()
                .find(|(key, _)| normalize_host(key) == host)
                .map(|(_, helper)| helper)
        }) {
            return Ok(FileAnswer::Helper(helper.clone()));
        }
        if let Some(entry) = find_entry(&self.auths, &host) {
            if let Some(credential) = entry_credential(entry)? {
                return Ok(FileAnswer::Credential(credential));
            }
        }
        Ok(match &self.creds_store {
            Some(store) => FileAnswer::Store(store.clone()),
            None => FileAnswer::Nothing,
        })
    }
}

/// Records `username`/`password` for `host` in the auth file at `path`, keeping every other
/// entry and key, as `podman login` does: the file is replaced atomically with mode 0600.
pub fn store_login(
    path: &Path,
    host: &str,
    username: &str,
    password: &str,
) -> Result<(), CredentialError> {
    let io = |source| CredentialError::Io {
        path: path.to_owned(),
        source,
    };
    let existing = match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(e)),
    };
    let text = login_document(existing.as_deref(), host, username, password).map_err(|reason| {
        CredentialError::Format {
            path: path.to_owned(),
            reason,
        }
    })?;
    super::files::write_atomically(path, &text, 0o600).map_err(io)
}

/// The auth file `existing` (absent or blank: a new one) with `username`/`password` recorded
/// for `host`: the pure part of [`store_login`]. Refused, so that a login never leaves a file
/// that reads back differently: a user name with `:` (the `auth` value is `user:password`, split
/// at the first `:`, as RFC 7617 and every reader split it), and a file lookups cannot read
/// (it would stay unreadable for every host).
pub(crate) fn login_document(
    existing: Option<&[u8]>,
    host: &str,
    username: &str,
    password: &str,
) -> Result<Vec<u8>, String> {
    if username.contains(':') {
        return Err("a user name cannot contain ':'".into());
    }
    let existing = existing.filter(|bytes| !bytes.iter().all(u8::is_ascii_whitespace));
    let mut document: serde_json::Value = match existing {
        Some(bytes) => {
            parse_auth_file(bytes)?;
            serde_json::from_slice(bytes).map_err(|e| e.to_string())?
        }
        None => serde_json::json!({}),
    };
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let root = document
        .as_object_mut()
        .ok_or("the top level is not an object")?;
    let auths = root.entry("auths").or_insert_with(|| serde_json::json!({}));
    let auths = auths.as_object_mut().ok_or("\"auths\" is not an object")?;
    auths.insert(normalize_host(host), serde_json::json!({ "auth": auth }));
    serde_json::to_vec_pretty(&document).map_err(|e| e.to_string())
}

fn read_auth_file(path: &Path) -> Result<Option<AuthFile>, CredentialError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CredentialError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    parse_auth_file(&bytes).map_err(|reason| CredentialError::Format {
        path: path.to_owned(),
        reason,
    })
}

/// An auth file's bytes as lookups read them; `None` for a blank file.
pub(crate) fn parse_auth_file(bytes: &[u8]) -> Result<Option<AuthFile>, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// `https://reg.example:5000/v1/` → `reg.example:5000`; Docker Hub's aliases → `docker.io`.
pub fn normalize_host(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key);
    match host {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_owned(),
        other => other.to_owned(),
    }
}

fn find_entry<'a>(auths: &'a BTreeMap<String, AuthEntry>, host: &str) -> Option<&'a AuthEntry> {
    auths.get(host).or_else(|| {
        auths
            .iter()
            .find(|(key, _)| normalize_host(key) == host)
            .map(|(_, e)| e)
    })
}

fn entry_credential(entry: &AuthEntry) -> Result<Option<Credential>, String> {
    if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential::IdentityToken(token.to_owned())));
    }
    if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Some(Credential::Basic {
            username: username.clone(),
            password: password.clone(),
        }));
    }
    let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let format = |reason: &str| reason.to_owned();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| format("an \"auth\" value is not base64"))?;
    let decoded =
        String::from_utf8(decoded).map_err(|_| format("an \"auth\" value is not UTF-8"))?;
    let (username, password) = decoded
        .split_once(':')
        .ok_or_else(|| format("an \"auth\" value has no ':' between user and password"))?;
    Ok(Some(Credential::Basic {
        username: username.to_owned(),
        password: password.to_owned(),
    }))
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// Runs `docker-credential-HELPER get` with the host on stdin. "Not found" is `None`.
fn run_helper(helper: &str, host: &str) -> Result<Option<Credential>, CredentialError> {
    let failed = |reason: String| CredentialError::Helper {
        helper: helper.to_owned(),
        reason,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(host.as_bytes())
            .map_err(|e| failed(e.to_string()))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| failed(e.to_string()))?;
    if !output.status.success() {
        let message = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        if message
            .to_ascii_lowercase()
            .contains("credentials not found")
        {
            return Ok(None);
        }
        return Err(failed(format!(
            "exit {}: {}",
            output.status,
            message.trim()
        )));
    }
    let answer: HelperAnswer = serde_json::from_slice(&output.stdout)
        .map_err(|e| failed(format!("unreadable answer: {e}")))?;
    Ok(Some(if answer.username == "<token>" {
        Credential::IdentityToken(answer.secret)
    } else {
        Credential::Basic {
            username: answer.username,
            password: answer.secret,
        }
    }))
}

#[cfg(test)]
mod tests;
