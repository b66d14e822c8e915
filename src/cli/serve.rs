//! `layerstore serve`: the OCI distribution server on a filesystem root.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde::Deserialize;

use layerstore::digest::TarsumVersion;
use layerstore::http::app::AppState;
use layerstore::http::server::{Limits, Server};
use layerstore::http::token::TokenSigner;
use layerstore::store::Store;

const DEFAULT_LISTEN: &str = "127.0.0.1:5000";

/// Serve the OCI distribution API (Docker Registry HTTP API V2) over a storage root.
///
/// With no arguments it listens on 127.0.0.1:5000 with its root in the user's data directory
/// ($XDG_DATA_HOME/layerstore, else ~/.local/share/layerstore). Each setting is taken from the
/// command line, else the environment, else the config file, else the default. The root is laid
/// out exactly like the distribution registry's filesystem storage (ROOT/docker/registry/v2/…),
/// so either can serve the other's data. SIGINT/SIGTERM stop accepting, finish in-flight
/// requests, and exit 0.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:5000].
    #[arg(long, env = "LAYERSTORE_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Storage root directory (distribution's `rootdirectory`).
    #[arg(long, env = "LAYERSTORE_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,
    /// Secret for upload tokens; instances that share a root need the same one. Random per
    /// process (with a warning) when unset.
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
    /// TOML config file with any of: listen, root, secret, delete_enabled, tarsum.
    #[arg(long, env = "LAYERSTORE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

/// The config file's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<SocketAddr>,
    root: Option<PathBuf>,
    secret: Option<String>,
    delete_enabled: Option<bool>,
    tarsum: Option<String>,
}

pub fn run(args: ServeArgs) -> ExitCode {
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("layerstore serve: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    init_logging();
    super::heap::tune_for_serving();
    let file = match &args.config {
        Some(path) => read_config(path)?,
        None => ConfigFile::default(),
    };
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default address"));
    let root = args.root.or(file.root).unwrap_or_else(default_root);
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let signer = match args.secret.or(file.secret) {
        Some(secret) => TokenSigner::new(secret),
        None => {
            tracing::warn!(
                "no secret configured (--secret, LAYERSTORE_SECRET or the config file): using a \
                 random one; uploads cannot move to another instance or survive a restart"
            );
            TokenSigner::random().map_err(|e| format!("random secret: {e}"))?
        }
    };
    let mut store = Store::filesystem(&root);
    if let Some(version) = args.tarsum.or(file.tarsum) {
        store = store.with_tarsum(tarsum_version(&version)?);
    }
    let state = AppState {
        store,
        signer,
        body_idle_timeout: std::time::Duration::from_secs(60),
        delete_enabled: file.delete_enabled.unwrap_or(true),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    runtime.block_on(async {
        let server = Server::bind(listen, state, Limits::default())
            .await
            .map_err(|e| format!("listening on {listen}: {e}"))?;
        let bound = server.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(address = %bound, root = %root.display(), "layerstore serving");
        server
            .run(shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    })
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

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
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
