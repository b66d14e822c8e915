//! [`RegistryBuilder`]: everything a [`RegistryService`] is made of, with the defaults `layerstore
//! serve` uses.

use std::sync::Arc;
use std::time::Duration;

use super::access_control::AccessControl;
use super::app::AppState;
use super::events::{EventQueue, EventSink};
use super::service::RegistryService;
use super::token::TokenSigner;
use crate::auth::Authenticator;
use crate::digest::TarsumVersion;
use crate::metrics::Metrics;
use crate::storage::{http_secret, LocationError, S3Settings, SecretSource, StorageError};
use crate::storage::{StorageLocation, HTTP_SECRET_PATH};
use crate::store::Store;

/// Why a [`RegistryService`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The storage URL does not parse.
    #[error("storage location: {0}")]
    Location(#[from] LocationError),
    /// The storage could not be opened (a missing bucket, refused credentials).
    #[error("opening the storage: {0}")]
    Storage(#[from] StorageError),
    /// No random secret could be made (the system's random source failed).
    #[error("no upload secret configured, none kept in the storage, and no random one: {0}")]
    Secret(String),
    /// The event thread could not be started.
    #[error("starting the event thread: {0}")]
    EventThread(#[source] std::io::Error),
}

/// Builds a [`RegistryService`]: a store and, optionally, a secret, limits, authentication, access
/// rules, an event sink and a metrics registry.
///
/// ```
/// use std::time::Duration;
/// use layerstore::http::GrantedAccess;
///
/// let root = tempfile::tempdir().unwrap();
/// let url = format!("file://{}", root.path().display());
/// let registry = layerstore::http::RegistryBuilder::from_storage_url(&url)
///     .unwrap()
///     .body_idle_timeout(Duration::from_secs(30))
///     .delete_enabled(false)
///     .access_control(GrantedAccess)
///     .build()
///     .unwrap();
/// assert!(!registry.state().delete_enabled);
/// // No secret given: one was made and kept in the storage, for every instance on it.
/// assert!(root.path().join("layerstore/http-secret").exists());
/// ```
#[derive(Debug)]
pub struct RegistryBuilder {
    store: Store,
    secret: Option<Vec<u8>>,
    body_idle_timeout: Duration,
    delete_enabled: bool,
    authenticator: Option<Authenticator>,
    access: Option<Arc<dyn AccessControl>>,
    events: Option<Arc<dyn EventSink>>,
    metrics: Option<Arc<Metrics>>,
    tarsum: Option<TarsumVersion>,
}

impl RegistryBuilder {
    /// A builder over `store`. Defaults: the secret kept in the storage (made on first use),
    /// a 60 s body idle timeout, DELETE allowed, no authentication, the built-in access rules
    /// ([`GrantedAccess`](super::GrantedAccess)), no event sink, fresh metrics.
    pub fn new(store: Store) -> Self {
        RegistryBuilder {
            store,
            secret: None,
            body_idle_timeout: Duration::from_secs(60),
            delete_enabled: true,
            authenticator: None,
            access: None,
            events: None,
            metrics: None,
            tarsum: None,
        }
    }

    /// A builder over the storage at `url`: `file:///path` (or a plain path) or
    /// `s3://bucket[/prefix]`, configured by the `AWS_*` environment. An S3 bucket is checked
    /// now: a missing one is an error here rather than at the first request.
    pub fn from_storage_url(url: &str) -> Result<Self, BuildError> {
        let location = StorageLocation::parse(url)?;
        let driver = location.open(S3Settings::default())?;
        Ok(Self::new(Store::new(driver)))
    }

    /// The upload-token secret (an HMAC key). Instances sharing a storage need the same one;
    /// without it, the one kept in the storage is used (see [`http_secret`]).
    pub fn secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// Longest pause allowed between two pieces of a request body.
    pub fn body_idle_timeout(mut self, timeout: Duration) -> Self {
        self.body_idle_timeout = timeout;
        self
    }

    /// Whether blob and manifest `DELETE` are allowed (else 405 `UNSUPPORTED`).
    pub fn delete_enabled(mut self, enabled: bool) -> Self {
        self.delete_enabled = enabled;
        self
    }

    /// Who may connect: htpasswd users or registry tokens (see [`crate::auth`]).
    pub fn authenticator(mut self, authenticator: Authenticator) -> Self {
        self.authenticator = Some(authenticator);
        self
    }

    /// What each identity may do, instead of the built-in rules.
    pub fn access_control(mut self, access: impl AccessControl) -> Self {
        self.access = Some(Arc::new(access));
        self
    }

    /// Where events go: a thread of the registry's own hands each to `sink`.
    pub fn event_sink(mut self, sink: impl EventSink) -> Self {
        self.events = Some(Arc::new(sink));
        self
    }

    /// The metric families to report to (the embedder's, to serve beside its own).
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Computes this TarSum version beside SHA-256 for every upload.
    pub fn tarsum(mut self, version: TarsumVersion) -> Self {
        self.tarsum = Some(version);
        self
    }

    /// The registry.
    pub fn build(self) -> Result<RegistryService, BuildError> {
        let mut store = self.store;
        if let Some(version) = self.tarsum {
            store = store.with_tarsum(version);
        }
        if let Some(metrics) = self.metrics {
            store = store.with_metrics(metrics);
        }
        let signer = token_signer(self.secret, &store)?;
        let mut state = AppState::new(store, signer);
        state.body_idle_timeout = self.body_idle_timeout;
        state.delete_enabled = self.delete_enabled;
        state.auth = self.authenticator.map(Arc::new);
        if let Some(access) = self.access {
            state.access = access;
        }
        if let Some(sink) = self.events {
            let queue = EventQueue::start(sink, Arc::clone(&state.metrics))
                .map_err(BuildError::EventThread)?;
            state.events = Some(queue);
        }
        Ok(RegistryService::from(state))
    }
}

/// The upload-token signer: the configured secret, else the one kept in the storage
/// ([`http_secret`]). A storage that cannot keep one (read-only, say) gets a random secret with
/// a warning: serving pulls does not need it.
fn token_signer(configured: Option<Vec<u8>>, store: &Store) -> Result<TokenSigner, BuildError> {
    if let Some(secret) = configured {
        return Ok(TokenSigner::new(secret));
    }
    match http_secret(None, store.driver().as_ref()) {
        Ok(secret) => {
            tracing::info!(
                path = HTTP_SECRET_PATH,
                created = secret.source() == SecretSource::Created,
                "no secret configured: using the one kept in the storage, shared by every \
                 instance on it"
            );
            Ok(TokenSigner::new(secret.into_bytes()))
        }
        Err(e) => {
            tracing::warn!(
                path = HTTP_SECRET_PATH,
                error = %e,
                "no secret configured, and none can be kept in the storage: using a random \
                 one; uploads cannot move to another instance or survive a restart"
            );
            TokenSigner::random().map_err(|e| BuildError::Secret(e.to_string()))
        }
    }
}
