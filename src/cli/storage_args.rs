//! `--storage URL` / `--root DIR`: the storage options every command that opens a store shares,
//! and the one place that decides which storage a command uses and opens it.
//!
//! Each level is looked at in turn and the first that names a storage wins: the command line
//! (`--storage` or `--root`; both is an error), then the environment (`LAYERSTORE_STORAGE` or
//! `LAYERSTORE_ROOT`; both is an error), then the config file (`storage` or `root`, serve only;
//! both is an error), then the command's default (serve's data directory; the others have none).
//! The environment is read here rather than by clap, so that a command-line `--root` beats an
//! exported `LAYERSTORE_STORAGE` instead of clashing with it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde::Deserialize;

use layerstore::storage::s3::MIN_PART_SIZE;
use layerstore::storage::{S3Settings, StorageError, StorageLocation};
use layerstore::store::Store;

/// Where the data lives. `--storage` and `--root` are the same option in two spellings.
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Where the data lives: s3://BUCKET[/PREFIX], file:///DIR or a directory.
    ///
    /// s3://BUCKET/PREFIX keeps the data under PREFIX/docker/registry/v2/ in the bucket (like
    /// distribution's s3 driver with rootdirectory: /PREFIX). Credentials, region and endpoint
    /// come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION and
    /// AWS_ENDPOINT_URL (with an endpoint, requests use path-style addressing, and plain http
    /// is allowed). file:///DIR, or DIR alone, is the same as --root DIR.
    ///
    /// [env: LAYERSTORE_STORAGE]
    #[arg(long, value_name = "URL", conflicts_with = "root")]
    storage: Option<StorageLocation>,
    /// Storage root directory: the same as --storage file:///DIR.
    ///
    /// The data lives under DIR/docker/registry/v2, like distribution's filesystem
    /// rootdirectory.
    ///
    /// [env: LAYERSTORE_ROOT]
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

/// The storage keys of a config file (serve's `--config`).
#[derive(Debug, Default)]
pub struct ConfigStorage<'a> {
    /// The file, for messages.
    pub file: Option<&'a Path>,
    /// `storage = "..."`.
    pub storage: Option<&'a str>,
    /// `root = "..."`.
    pub root: Option<&'a Path>,
}

/// The config file's `[s3]` table. Each value is used only when the AWS environment does not set
/// the same thing (the environment comes before the config file, as for every setting). The
/// commands without a config file use an empty table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Table {
    region: Option<String>,
    endpoint: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    part_size: Option<ByteSize>,
    redirect: Option<bool>,
}

/// A size in bytes: an integer, or a string such as `"16MiB"`, `"8 MiB"`, `"1G"`, `"512K"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer) {
            Ok(Raw::Bytes(n)) => Ok(ByteSize(n)),
            Ok(Raw::Text(text)) => parse_size(&text)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
            Err(_) => Err(serde::de::Error::custom(
                "expected a size in bytes, or a string like \"16MiB\"",
            )),
        }
    }
}

/// `N`, `N B`, `N KiB`/`K`, `N MiB`/`M`, `N GiB`/`G`: binary units, as `bench --blob-size`
/// takes them (a space is allowed before the unit; `MB` and the like are refused as ambiguous).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a size like 16MiB, 8 MiB, 1GiB or 16777216");
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let n: u64 = text[..digits].parse().map_err(|_| bad())?;
    let unit: u64 = match text[digits..].trim_start() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(unit).ok_or_else(bad)
}

/// Largest part S3 accepts.
const MAX_PART_SIZE: u64 = 5 << 30;

impl S3Table {
    /// The driver settings, given the environment `env` (the process's, in the binary): a value
    /// from the table is dropped when the environment sets the same thing. The credentials go
    /// as a set: `AWS_ACCESS_KEY_ID` in the environment means none of the table's are used.
    pub fn settings(&self, env: impl Fn(&str) -> Option<String>) -> Result<S3Settings, String> {
        let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
        let mut settings = S3Settings::default();
        if !set("AWS_REGION") && !set("AWS_DEFAULT_REGION") {
            settings.region = self.region.clone();
        }
        // The environment's endpoint is passed on explicitly (the driver would read the same
        // variables, in the same order), so that its messages name the endpoint.
        settings.endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
            .into_iter()
            .find_map(|name| env(name).filter(|v| !v.is_empty()))
            .or_else(|| self.endpoint.clone());
        if !set("AWS_ACCESS_KEY_ID") {
            match (&self.access_key_id, &self.secret_access_key) {
                (Some(_), Some(_)) => {
                    settings.access_key_id = self.access_key_id.clone();
                    settings.secret_access_key = self.secret_access_key.clone();
                    settings.session_token = self.session_token.clone();
                }
                (None, None) if self.session_token.is_none() => {}
                _ => {
                    return Err("[s3]: access_key_id and secret_access_key go together \
                                (session_token needs both)"
                        .to_owned())
                }
            }
        }
        if let Some(ByteSize(size)) = self.part_size {
            if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&size) {
                return Err(format!(
                    "[s3]: part_size {size} is outside what S3 accepts (5 MiB to 5 GiB)"
                ));
            }
            settings.part_size = Some(size);
        }
        settings.redirect = self.redirect;
        Ok(settings)
    }
}

/// A storage that could not be chosen or opened.
#[derive(Debug)]
pub struct OpenError {
    message: String,
    /// A usage error: the command line or the environment is wrong (exit status 2, like clap's
    /// own errors). Anything else, the config file included, is a failure (1).
    usage: bool,
}

impl OpenError {
    fn usage(message: impl Into<String>) -> Self {
        OpenError {
            message: message.into(),
            usage: true,
        }
    }

    fn failed(message: impl Into<String>) -> Self {
        OpenError {
            message: message.into(),
            usage: false,
        }
    }

    /// True for a usage error (exit status 2).
    pub fn is_usage(&self) -> bool {
        self.usage
    }

    /// Prints `layerstore COMMAND: message` on one line and gives the exit status.
    pub fn report(&self, command: &str) -> ExitCode {
        eprintln!("layerstore {command}: {}", self.message);
        if self.usage {
            ExitCode::from(2)
        } else {
            ExitCode::FAILURE
        }
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl StorageArgs {
    /// The storage to use: command line, else environment (`env`), else `config`, else
    /// `default`.
    pub fn resolve(
        &self,
        env: impl Fn(&str) -> Option<std::ffi::OsString>,
        config: &ConfigStorage<'_>,
        default: Option<PathBuf>,
    ) -> Result<StorageLocation, OpenError> {
        if let Some(location) = &self.storage {
            return Ok(location.clone());
        }
        if let Some(root) = &self.root {
            return Ok(StorageLocation::Filesystem(root.clone()));
        }
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        match (env("LAYERSTORE_STORAGE"), env("LAYERSTORE_ROOT")) {
            (Some(_), Some(_)) => {
                return Err(OpenError::usage(
                    "LAYERSTORE_STORAGE and LAYERSTORE_ROOT are both set: keep one \
                     (LAYERSTORE_ROOT=DIR means LAYERSTORE_STORAGE=file:///DIR)",
                ))
            }
            (Some(url), None) => {
                let url = url.into_string().map_err(|_| {
                    OpenError::usage("LAYERSTORE_STORAGE is not UTF-8 (use LAYERSTORE_ROOT)")
                })?;
                return StorageLocation::parse(&url)
                    .map_err(|e| OpenError::usage(format!("LAYERSTORE_STORAGE: {e}")));
            }
            (None, Some(root)) => return Ok(StorageLocation::Filesystem(PathBuf::from(root))),
            (None, None) => {}
        }
        let file = config
            .file
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "config file".to_owned());
        match (config.storage, config.root) {
            (Some(_), Some(_)) => {
                return Err(OpenError::failed(format!(
                    "{file}: storage and root are both set: keep one (root = \"DIR\" means \
                     storage = \"file:///DIR\")"
                )))
            }
            (Some(url), None) => {
                return StorageLocation::parse(url)
                    .map_err(|e| OpenError::failed(format!("{file}: storage: {e}")))
            }
            (None, Some(root)) => return Ok(StorageLocation::Filesystem(root.to_owned())),
            (None, None) => {}
        }
        default.map(StorageLocation::Filesystem).ok_or_else(|| {
            OpenError::usage(
                "no storage given: use --storage URL or --root DIR (or set LAYERSTORE_STORAGE \
                 or LAYERSTORE_ROOT)",
            )
        })
    }

    /// [`resolve`](Self::resolve)s with the process environment and no config file, then opens
    /// the store: what put, get, fsck and purge-uploads do.
    pub fn open_store(&self) -> Result<Store, OpenError> {
        let location = self.resolve(
            |name: &str| std::env::var_os(name),
            &ConfigStorage::default(),
            None,
        )?;
        let s3 = S3Table::default()
            .settings(|name| std::env::var(name).ok())
            .map_err(OpenError::failed)?;
        open_store(&location, s3)
    }
}

/// Opens the store at `location` (S3: connects and checks the bucket). A failure is one line
/// naming the location.
pub fn open_store(location: &StorageLocation, s3: S3Settings) -> Result<Store, OpenError> {
    match location.open(s3) {
        Ok(driver) => Ok(Store::new(driver)),
        Err(e) => Err(OpenError::failed(describe_open_error(location, &e))),
    }
}

/// `LOCATION: what went wrong`, on one line.
fn describe_open_error(location: &StorageLocation, e: &StorageError) -> String {
    let what = match e {
        // The driver's connect check already says which bucket, where, and what to check.
        StorageError::Unavailable { message, .. } | StorageError::Backend { message, .. } => {
            message.clone()
        }
        other => other.to_string(),
    };
    let one_line = what.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("{location}: {one_line}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::ffi::OsString;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        storage: StorageArgs,
    }

    fn args(argv: &[&str]) -> StorageArgs {
        Cli::try_parse_from(std::iter::once("test").chain(argv.iter().copied()))
            .unwrap()
            .storage
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    fn dir(path: &str) -> StorageLocation {
        StorageLocation::Filesystem(PathBuf::from(path))
    }

    #[test]
    fn command_line_then_environment_then_config_then_default() {
        let none = ConfigStorage::default();
        let config = ConfigStorage {
            file: Some(Path::new("ls.toml")),
            storage: Some("s3://from-config"),
            root: None,
        };
        let default = || Some(PathBuf::from("/default"));
        let env_storage = [("LAYERSTORE_STORAGE", "s3://from-env")];
        let env_root = [("LAYERSTORE_ROOT", "/env-root")];
        let s3 = |b: &str| StorageLocation::parse(&format!("s3://{b}")).unwrap();

        let cli = args(&["--storage", "s3://from-cli"]);
        assert_eq!(
            cli.resolve(env(&env_root), &config, default()).unwrap(),
            s3("from-cli")
        );
        let cli = args(&["--root", "/cli-root"]);
        assert_eq!(
            cli.resolve(env(&env_storage), &config, default()).unwrap(),
            dir("/cli-root")
        );
        let cli = args(&["--storage", "/a/dir"]);
        assert_eq!(cli.resolve(env(&[]), &none, None).unwrap(), dir("/a/dir"));
        let cli = args(&["--storage", "file:///a/dir"]);
        assert_eq!(cli.resolve(env(&[]), &none, None).unwrap(), dir("/a/dir"));

        let nothing = args(&[]);
        assert_eq!(
            nothing
                .resolve(env(&env_storage), &config, default())
                .unwrap(),
            s3("from-env")
        );
        assert_eq!(
            nothing.resolve(env(&env_root), &config, default()).unwrap(),
            dir("/env-root")
        );
        // Empty variables are unset.
        let empty = [("LAYERSTORE_STORAGE", ""), ("LAYERSTORE_ROOT", "")];
        assert_eq!(
            nothing.resolve(env(&empty), &config, default()).unwrap(),
            s3("from-config")
        );
        let root_config = ConfigStorage {
            file: None,
            storage: None,
            root: Some(Path::new("/config-root")),
        };
        assert_eq!(
            nothing.resolve(env(&[]), &root_config, default()).unwrap(),
            dir("/config-root")
        );
        assert_eq!(
            nothing.resolve(env(&[]), &none, default()).unwrap(),
            dir("/default")
        );
    }

    #[test]
    fn conflicts_and_missing_storage_are_usage_errors() {
        let both = Cli::try_parse_from(["test", "--storage", "s3://bkt", "--root", "/d"]);
        assert_eq!(
            both.unwrap_err().kind(),
            clap::error::ErrorKind::ArgumentConflict
        );
        let bad = Cli::try_parse_from(["test", "--storage", "s3://b"]).unwrap_err();
        assert!(bad.to_string().contains("3 to 63"), "{bad}");

        let nothing = args(&[]);
        let none = ConfigStorage::default();
        let err = nothing
            .resolve(
                env(&[
                    ("LAYERSTORE_STORAGE", "s3://bkt"),
                    ("LAYERSTORE_ROOT", "/d"),
                ]),
                &none,
                None,
            )
            .unwrap_err();
        assert!(err.usage && err.message.contains("both set"), "{err}");
        let err = nothing
            .resolve(env(&[("LAYERSTORE_STORAGE", "s3://")]), &none, None)
            .unwrap_err();
        assert!(
            err.usage && err.message.starts_with("LAYERSTORE_STORAGE: "),
            "{err}"
        );
        let config = ConfigStorage {
            file: Some(Path::new("ls.toml")),
            storage: Some("s3://bkt"),
            root: Some(Path::new("/d")),
        };
        let err = nothing.resolve(env(&[]), &config, None).unwrap_err();
        assert!(
            err.message.starts_with("ls.toml: storage and root"),
            "{err}"
        );
        let config = ConfigStorage {
            file: Some(Path::new("ls.toml")),
            storage: Some("gs://bkt"),
            root: None,
        };
        let err = nothing.resolve(env(&[]), &config, None).unwrap_err();
        assert!(
            err.message.starts_with("ls.toml: storage: unknown"),
            "{err}"
        );
        let err = nothing.resolve(env(&[]), &none, None).unwrap_err();
        assert!(
            err.usage && err.message.contains("--storage URL or --root DIR"),
            "{err}"
        );
    }

    fn table(text: &str) -> Result<S3Table, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    fn strings<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn s3_table_and_the_environment() {
        let t = table(
            "region = \"garage\"\nendpoint = \"http://127.0.0.1:3900\"\n\
             access_key_id = \"GK1\"\nsecret_access_key = \"shh\"\n\
             part_size = \"32MiB\"\nredirect = true\n",
        )
        .unwrap();
        let from_table = t.settings(strings(&[])).unwrap();
        assert_eq!(from_table.region.as_deref(), Some("garage"));
        assert_eq!(
            from_table.endpoint.as_deref(),
            Some("http://127.0.0.1:3900")
        );
        assert_eq!(from_table.access_key_id.as_deref(), Some("GK1"));
        assert_eq!(from_table.secret_access_key.as_deref(), Some("shh"));
        assert_eq!(from_table.session_token, None);
        assert_eq!(from_table.part_size, Some(32 << 20));
        assert_eq!(from_table.redirect, Some(true));
        // The environment comes first: the table's values are dropped, the SDK reads the
        // environment's.
        let env = [
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ENDPOINT_URL", "http://minio:9000"),
            ("AWS_ACCESS_KEY_ID", "AKIA"),
        ];
        let from_env = t.settings(strings(&env)).unwrap();
        assert_eq!(from_env.region, None);
        assert_eq!(from_env.endpoint.as_deref(), Some("http://minio:9000"));
        assert_eq!(from_env.access_key_id, None);
        assert_eq!(from_env.secret_access_key, None);
        assert_eq!(from_env.part_size, Some(32 << 20));
        let from_env = t
            .settings(strings(&[
                ("AWS_DEFAULT_REGION", "x"),
                ("AWS_ENDPOINT_URL_S3", "y"),
            ]))
            .unwrap();
        assert_eq!(
            (from_env.region, from_env.endpoint),
            (None, Some("y".to_owned()))
        );

        assert_eq!(
            table("part_size = 8388608")
                .unwrap()
                .settings(strings(&[]))
                .unwrap()
                .part_size,
            Some(8 << 20)
        );
        for bad in ["part_size = 1024", "part_size = \"6GiB\""] {
            let err = table(bad).unwrap().settings(strings(&[])).unwrap_err();
            assert!(err.contains("5 MiB to 5 GiB"), "{bad}: {err}");
        }
        let err = table("part_size = \"16 parsecs\"").unwrap_err();
        assert!(err.contains("not a size"), "{err}");
        let err = table("part_size = true").unwrap_err();
        assert!(err.contains("expected a size"), "{err}");
        let err = table("acces_key_id = \"x\"").unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        let err = table("access_key_id = \"x\"")
            .unwrap()
            .settings(strings(&[]))
            .unwrap_err();
        assert!(err.contains("go together"), "{err}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("8 MiB"), Ok(8 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("16M"), Ok(16 << 20));
        for bad in [
            "",
            "MiB",
            "16MB",
            "16mib",
            "1.5GiB",
            "-1",
            "99999999999999999999GiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn open_errors_are_one_line_naming_the_location() {
        let location = StorageLocation::parse("s3://bkt").unwrap();
        let e = StorageError::Unavailable {
            op: "HeadBucket",
            path: layerstore::storage::DriverPath::root(),
            message: "bucket \"bkt\" at http://127.0.0.1:1: cannot reach\nthe object store".into(),
        };
        assert_eq!(
            describe_open_error(&location, &e),
            "s3://bkt: bucket \"bkt\" at http://127.0.0.1:1: cannot reach the object store"
        );
    }
}
