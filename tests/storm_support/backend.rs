//! The storage a crash storm runs on ([`Backend`]: a temporary directory or a prefix of the
//! Garage bucket), the `layerstore` commands run against it, and what is looked at directly:
//! an SDK client of the cluster for unfinished multipart uploads, and the upload files through
//! the driver.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::common::backend::{shared_s3, SharedS3};
use crate::common::process::{run_with_timeout, ServerProcess};
use layerstore::storage::s3::S3Driver;
use layerstore::storage::{DriverPath, WalkControl};
use layerstore::store::Store;

/// Where a storm keeps its data.
pub enum Backend {
    Filesystem(tempfile::TempDir),
    /// A prefix of the bucket of the test process's Garage cluster. `layerstore` processes reach
    /// it through `endpoint` (the cluster's, or a proxy in front of it).
    S3 {
        s3: SharedS3,
        prefix: String,
        endpoint: String,
    },
}

impl Backend {
    pub fn filesystem() -> Backend {
        Backend::Filesystem(tempfile::tempdir().unwrap())
    }

    /// `None` (after "skipping") when garage is missing outside CI.
    pub fn s3(prefix: &str) -> Option<Backend> {
        let s3 = shared_s3()?;
        Some(Backend::S3 {
            endpoint: s3.endpoint.clone(),
            s3,
            prefix: prefix.to_owned(),
        })
    }

    /// What `--storage` is given.
    pub fn url(&self) -> String {
        match self {
            Backend::Filesystem(dir) => dir.path().to_str().expect("a UTF-8 temp dir").to_owned(),
            Backend::S3 { s3, prefix, .. } => format!("s3://{}/{prefix}", s3.bucket),
        }
    }

    /// What a `layerstore` process needs in its environment to reach the storage.
    pub fn env(&self) -> Vec<(String, String)> {
        match self {
            Backend::Filesystem(_) => Vec::new(),
            Backend::S3 { s3, endpoint, .. } => [
                ("AWS_ACCESS_KEY_ID", &s3.access_key_id),
                ("AWS_SECRET_ACCESS_KEY", &s3.secret_access_key),
                ("AWS_REGION", &s3.region),
                ("AWS_ENDPOINT_URL", endpoint),
            ]
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.clone()))
            .collect(),
        }
    }

    /// The store, in this process, through the storage's driver (on S3, straight to the
    /// cluster).
    pub fn store(&self) -> Store {
        match self {
            Backend::Filesystem(dir) => Store::filesystem(dir.path()),
            Backend::S3 { s3, prefix, .. } => {
                let driver = S3Driver::connect(s3.config(prefix)).expect("the bucket answers");
                Store::new(Arc::new(driver))
            }
        }
    }

    pub fn start_server(&self) -> ServerProcess {
        ServerProcess::start_storage(&self.url(), &self.env())
    }

    /// `layerstore SUBCOMMAND --storage URL`, with the storage's environment.
    pub fn command(&self, subcommand: &str) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_layerstore"));
        command
            .args([subcommand, "--storage", &self.url()])
            .envs(self.env());
        command
    }

    /// Runs `layerstore SUBCOMMAND --storage URL ARGS...`, which must succeed; its stdout.
    pub fn run(&self, subcommand: &str, args: &[&str]) -> String {
        self.run_both(subcommand, args).0
    }

    /// [`run`](Self::run), with stderr too.
    pub fn run_both(&self, subcommand: &str, args: &[&str]) -> (String, String) {
        let mut command = self.command(subcommand);
        command.args(args);
        let output = run_with_timeout(command, Duration::from_secs(120));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "layerstore {subcommand} {args:?} failed ({}):\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        (stdout, String::from_utf8_lossy(&output.stderr).into_owned())
    }

    /// What only `purge-uploads` removes besides upload sessions: on S3 the unfinished multipart
    /// uploads under the prefix (asked with the SDK, not the driver), on the filesystem the
    /// temporary files of writes cut short.
    pub fn leftovers(&self) -> Vec<String> {
        match self {
            Backend::Filesystem(dir) => match std::fs::read_dir(dir.path().join(".layerstore-tmp"))
            {
                Ok(entries) => entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => panic!("reading the temporary files: {e}"),
            },
            Backend::S3 { s3, prefix, .. } => multipart_uploads(s3, &format!("{prefix}/")),
        }
    }
}

/// An SDK client of the cluster, and a runtime to drive it.
pub fn sdk(s3: &SharedS3) -> (aws_sdk_s3::Client, tokio::runtime::Runtime) {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(s3.region.clone()))
        .endpoint_url(&s3.endpoint)
        .credentials_provider(Credentials::new(
            &s3.access_key_id,
            &s3.secret_access_key,
            None,
            None,
            "crash-storm",
        ))
        .force_path_style(true)
        .build();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    (aws_sdk_s3::Client::from_conf(config), runtime)
}

/// `KEY (upload id)` of every unfinished multipart upload whose key starts with `prefix`.
pub fn multipart_uploads(s3: &SharedS3, prefix: &str) -> Vec<String> {
    let (client, runtime) = sdk(s3);
    runtime.block_on(async {
        let mut found = Vec::new();
        let (mut key_marker, mut id_marker) = (None, None);
        loop {
            let page = client
                .list_multipart_uploads()
                .bucket(&s3.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker)
                .set_upload_id_marker(id_marker)
                .send()
                .await
                .unwrap_or_else(|e| panic!("ListMultipartUploads: {e:?}"));
            for upload in page.uploads() {
                found.push(format!(
                    "{} ({})",
                    upload.key().unwrap_or_default(),
                    upload.upload_id().unwrap_or_default()
                ));
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
            if page.is_truncated() != Some(true) || key_marker.is_none() {
                return found;
            }
        }
    })
}

/// Every file below `repositories/` inside an `_uploads` directory, through the driver.
/// (Directories are implicit for the drivers: an empty one holds nothing.)
pub fn upload_files(store: &Store) -> Vec<DriverPath> {
    let root = DriverPath::parse("/docker/registry/v2/repositories").unwrap();
    let mut found = Vec::new();
    let walked = store.driver().walk(&root, &mut |info| {
        if !info.is_dir && info.path.as_str().contains("/_uploads/") {
            found.push(info.path.clone());
        }
        Ok(WalkControl::Continue)
    });
    match walked {
        Ok(()) | Err(layerstore::storage::StorageError::NotFound(_)) => {}
        Err(e) => panic!("walking repositories/: {e}"),
    }
    // Garage's listings can lag a moment behind its deletes: a listed key counts only if the
    // object is really there.
    found.retain(|path| store.driver().file_size(path).unwrap().is_some());
    found
}
