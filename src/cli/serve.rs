//! `layerstore serve`: the OCI distribution server on a storage (a directory or an S3 bucket).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use serde::Deserialize;

use layerstore::digest::TarsumVersion;
use layerstore::http::{Limits, RegistryBuilder, Server};
use layerstore::storage::StorageLocation;

use super::serve_auth::{AuthArgs, AuthTable};
use super::serve_gc::{start_background, wait_for, GcArgs, GcTable};
use super::serve_observe::{init_logging, LogFormat, ObserveArgs, Ops};
use super::serve_tls::{reload_on_hangup, TlsArgs, TlsTable};
use super::storage_args::{open_store, ConfigStorage, S3Table, StorageArgs};

const DEFAULT_LISTEN: &str = "127.0.0.1:5000";

/// Serve the OCI distribution API (Docker Registry HTTP API V2) over a storage.
///
/// With no arguments it listens on 127.0.0.1:5000 with its data in the user's data directory
/// ($XDG_DATA_HOME/layerstore, else ~/.local/share/layerstore). Each setting is taken from the
/// command line, else the environment, else the config file, else the default. The data is laid
/// out exactly like the distribution registry's storage (ROOT/docker/registry/v2/… in a
/// directory, PREFIX/docker/registry/v2/… in a bucket), so either can serve the other's data.
/// With --storage s3://BUCKET[/PREFIX] the bucket is checked at start: a missing bucket, refused
/// credentials or an unreachable endpoint stop serve with one line and exit status 1.
/// SIGINT/SIGTERM stop accepting, finish in-flight requests, and exit 0.
/// With --tls-cert and --tls-key it serves HTTPS (HTTP/2 or HTTP/1.1 by ALPN) and reloads both
/// files on SIGHUP; a bad certificate or key stops serve at start with one line and exit 1.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:5000].
    #[arg(long, env = "LAYERSTORE_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    storage: StorageArgs,
    /// Secret for upload tokens; instances that share a storage need the same one. When unset,
    /// the one kept in the storage (at /layerstore/http-secret, made on first start) is used,
    /// so instances sharing a storage agree without configuration.
    #[arg(
        long,
        env = "LAYERSTORE_SECRET",
        value_name = "S",
        hide_env_values = true
    )]
    secret: Option<String>,
    /// Compute this TarSum version beside SHA-256 for every upload, so a commit that claims a
    /// `tarsum.*` digest is verified without a second read (without it, such a commit reads the
    /// data once more).
    #[arg(long, env = "LAYERSTORE_TARSUM", value_name = "VERSION", value_parser = ["v0", "v1", "dev"])]
    tarsum: Option<String>,
    /// TOML config file with any of: listen, storage, root, secret, delete_enabled, tarsum,
    /// metrics_listen, log_format (text or json), a [gc] table (interval, grace,
    /// delete_untagged, touch_after), and
    /// an [s3] table (region, endpoint, access_key_id, secret_access_key, session_token,
    /// part_size, redirect) used where the AWS_* environment does not say, and a [tls] table
    /// (cert, key), and [auth.htpasswd] (path, realm) or [auth.token] (realm, service, issuer,
    /// rootcertbundle).
    #[arg(long, env = "LAYERSTORE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    observe: ObserveArgs,
    #[command(flatten)]
    gc: GcArgs,
}

/// The config file's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<SocketAddr>,
    storage: Option<String>,
    root: Option<PathBuf>,
    secret: Option<String>,
    delete_enabled: Option<bool>,
    tarsum: Option<String>,
    metrics_listen: Option<SocketAddr>,
    log_format: Option<LogFormat>,
    s3: Option<S3Table>,
    tls: Option<TlsTable>,
    auth: Option<AuthTable>,
    gc: Option<GcTable>,
}

pub fn run(args: ServeArgs) -> ExitCode {
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("layerstore serve: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(message)) => {
            eprintln!("layerstore serve: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Why serve stopped: a usage error (exit status 2, like clap's) or a failure (1).
enum Failure {
    Usage(String),
    Failed(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Failed(message)
    }
}

fn serve(args: ServeArgs) -> Result<(), Failure> {
    let file = match &args.config {
        Some(path) => read_config(path)?,
        None => ConfigFile::default(),
    };
    init_logging(args.observe.log_format(file.log_format));
    super::heap::tune_for_serving();
    let metrics_listen = args.observe.metrics_listen(file.metrics_listen);
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default address"));
    let tls = args
        .tls
        .resolve(file.tls.as_ref())
        .map_err(Failure::Usage)?
        .map(|files| files.load())
        .transpose()?;
    let auth = args
        .auth
        .resolve(file.auth.as_ref(), tls.is_some())
        .map_err(Failure::Usage)?
        .map(|settings| settings.load())
        .transpose()?;
    let config_storage = ConfigStorage {
        file: args.config.as_deref(),
        storage: file.storage.as_deref(),
        root: file.root.as_deref(),
    };
    let location = args
        .storage
        .resolve(
            |name: &str| std::env::var_os(name),
            &config_storage,
            Some(default_root()),
        )
        .map_err(|e| {
            if e.is_usage() {
                Failure::Usage(e.to_string())
            } else {
                Failure::Failed(e.to_string())
            }
        })?;
    let s3 = file
        .s3
        .unwrap_or_default()
        .settings(|name| std::env::var(name).ok())
        .map_err(|e| match &args.config {
            Some(path) => format!("{}: {e}", path.display()),
            None => e,
        })?;
    if let StorageLocation::Filesystem(root) = &location {
        std::fs::create_dir_all(root).map_err(|e| format!("{}: {e}", root.display()))?;
    }
    let gc = args.gc.resolve(file.gc.as_ref()).map_err(Failure::Usage)?;
    let store = open_store(&location, s3)
        .map_err(|e| e.to_string())?
        .with_touch_after(gc.touch_after);
    let mut builder =
        RegistryBuilder::new(store).delete_enabled(file.delete_enabled.unwrap_or(true));
    if let Some(secret) = args.secret.or(file.secret) {
        builder = builder.secret(secret);
    }
    if let Some(version) = args.tarsum.or(file.tarsum) {
        builder = builder.tarsum(tarsum_version(&version)?);
    }
    if let Some(auth) = auth {
        builder = builder.authenticator(auth);
    }
    let registry = builder.build().map_err(|e| e.to_string())?;
    let state = Arc::clone(registry.state());
    let (metrics, driver) = (Arc::clone(&state.metrics), Arc::clone(state.store.driver()));
    let stop_gc = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gc_thread = start_background(
        state.store.clone(),
        gc,
        Arc::clone(&metrics),
        Arc::clone(&stop_gc),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    let served = runtime.block_on(async {
        let mut server = Server::bind(listen, registry, Limits::default())
            .await
            .map_err(|e| format!("listening on {listen}: {e}"))?;
        if let Some(tls) = &tls {
            reload_on_hangup(tls.clone())?;
            server = server.with_tls(tls.clone());
        }
        let bound = server.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(
            address = %bound,
            https = tls.is_some(),
            storage = %location,
            "layerstore serving"
        );
        let ops = Ops::start(metrics_listen, metrics, driver).await?;
        let served = server
            .run(async {
                shutdown_signal().await;
                stop_gc.store(true, std::sync::atomic::Ordering::Relaxed);
                ops.set_draining();
            })
            .await;
        ops.stop().await;
        served.map_err(|e| Failure::Failed(e.to_string()))
    });
    // A collection in progress ends at its next step and removes its claim, so that writers
    // of other instances do not wait a lease for it.
    stop_gc.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(thread) = gc_thread {
        wait_for(thread, std::time::Duration::from_secs(10));
    }
    served
}

fn tarsum_version(name: &str) -> Result<TarsumVersion, String> {
    match name {
        "v0" => Ok(TarsumVersion::V0),
        "v1" => Ok(TarsumVersion::V1),
        "dev" => Ok(TarsumVersion::Dev),
        other => Err(format!(
            "unknown TarSum version {other:?} (expected v0, v1 or dev)"
        )),
    }
}

fn read_config(path: &Path) -> Result<ConfigFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn default_root() -> PathBuf {
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".local/share")));
    match data_home {
        Some(dir) => dir.join("layerstore"),
        None => PathBuf::from("layerstore-data"),
    }
}

/// Completes on SIGINT or SIGTERM.
pub(super) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("signal received");
}
