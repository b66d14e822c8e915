//! `layerstore login`: check credentials against a registry and keep them where podman does.

use std::io::Read;
use std::process::ExitCode;

use clap::Args;

use layerstore::client::credentials::{normalize_host, store_login, Credential};
use layerstore::client::Registry;

use super::output::outln;
use super::registry_args::RegistryArgs;

/// Check credentials against a registry and save them where podman keeps them.
///
/// The credentials are checked with GET /v2/ (through the registry's token server when it has
/// one), then written to the auth file podman uses (${XDG_RUNTIME_DIR}/containers/auth.json,
/// or --authfile), read by podman, skopeo, buildah and layerstore's own push, pull and copy.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry: HOST[:PORT].
    #[arg(value_name = "HOST")]
    host: String,
    /// User name.
    #[arg(short, long, value_name = "USER")]
    username: String,
    /// Read the password from standard input (the only way: never on the command line).
    #[arg(long, required = true)]
    password_stdin: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn run(args: LoginArgs) -> ExitCode {
    match login(args) {
        Ok(file) => {
            outln!("Login Succeeded! (credentials saved to {file})");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("layerstore login: {message}");
            ExitCode::FAILURE
        }
    }
}

fn login(args: LoginArgs) -> Result<String, String> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .map_err(|e| format!("reading the password from stdin: {e}"))?;
    let password = password.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err("empty password on stdin".into());
    }
    let credential = Credential::Basic {
        username: args.username.clone(),
        password: password.clone(),
    };
    let options = args.registry.options(Some(credential))?;
    let registry = Registry::new(&args.host, options).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    runtime
        .block_on(registry.ping())
        .map_err(|e| e.to_string())?;
    let file = args.registry.auth_files().login_file();
    store_login(
        &file,
        &normalize_host(&args.host),
        &args.username,
        &password,
    )
    .map_err(|e| e.to_string())?;
    Ok(file.display().to_string())
}
