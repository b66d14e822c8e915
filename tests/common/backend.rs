//! Which storage a [`TestServer`](super::TestServer) runs on. The HTTP suites run twice: as
//! their own test binaries on the filesystem, and again inside `tests/http_suite_s3.rs` (which
//! includes the same files) on S3, on one Garage cluster shared by the whole test process.
//! Each server there gets its own key prefix, so servers started on one root share one prefix.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use layerstore::storage::s3::{S3Config, S3Driver};
use layerstore::store::Store;

use super::garage::GarageCluster;

/// True inside `tests/http_suite_s3.rs`: this module's path starts with that crate's name.
pub fn on_s3() -> bool {
    module_path!().starts_with("http_suite_s3")
}

/// How to reach the shared cluster.
#[derive(Clone)]
pub struct SharedS3 {
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub bucket: String,
}

impl SharedS3 {
    /// The driver config for `prefix` (5 MiB parts, so tests cross part boundaries cheaply).
    pub fn config(&self, prefix: &str) -> S3Config {
        let mut config = S3Config::new(&self.bucket, prefix);
        config.endpoint = Some(self.endpoint.clone());
        config.region = Some(self.region.clone());
        config.access_key_id = Some(self.access_key_id.clone());
        config.secret_access_key = Some(self.secret_access_key.clone());
        config.part_size = 5 << 20;
        config
    }
}

/// The cluster, kept until the process exits (then killed by [`stop_shared`]).
static CLUSTER: Mutex<Option<GarageCluster>> = Mutex::new(None);
static SHARED: OnceLock<Option<SharedS3>> = OnceLock::new();

/// The process's Garage cluster, started on first use; `None` when Garage is missing outside CI.
pub fn shared_s3() -> Option<SharedS3> {
    SHARED
        .get_or_init(|| {
            let cluster = GarageCluster::start()?;
            let shared = SharedS3 {
                endpoint: cluster.endpoint.clone(),
                region: cluster.region.clone(),
                access_key_id: cluster.access_key_id.clone(),
                secret_access_key: cluster.secret_access_key.clone(),
                bucket: cluster.bucket.clone(),
            };
            *CLUSTER.lock().unwrap() = Some(cluster);
            // Statics are never dropped: kill the nodes when the test process exits.
            // SAFETY: registers a plain `extern "C" fn` with no arguments.
            unsafe { libc::atexit(stop_shared) };
            Some(shared)
        })
        .clone()
}

extern "C" fn stop_shared() {
    if let Ok(mut cluster) = CLUSTER.lock() {
        drop(cluster.take());
    }
}

/// A store for a test server on `root`: the filesystem, or on S3 a prefix named after `root`.
pub fn store_for(root: &Path) -> Store {
    if !on_s3() {
        return Store::filesystem(root);
    }
    let Some(s3) = shared_s3() else {
        eprintln!("garage missing: this S3 suite runs on the filesystem");
        return Store::filesystem(root);
    };
    let name = root.file_name().and_then(|n| n.to_str()).unwrap_or("root");
    let prefix: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let driver = S3Driver::connect(s3.config(&prefix)).expect("the shared bucket answers");
    Store::new(Arc::new(driver))
}
