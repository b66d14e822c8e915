//! Support for the scale-out tests (tests/scale_out_s3.rs): the [`Fleet`] of `layerstore serve`
//! [`Instance`]s on one bucket, prefix and secret of a Garage cluster, the lock that runs the
//! tests one at a time, and the checks after a Garage node is lost. Requests to the instances
//! are in [`requests`], `layerstore bench` and the nginx configuration in [`bench`].

pub mod bench;
pub mod requests;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::common::garage::GarageCluster;
use crate::common::process::run_with_timeout;
use crate::common::{content, request, sha256};
use requests::check_blob_everywhere;

pub const MIB: usize = 1 << 20;
/// The key prefix every instance of a test serves.
pub const PREFIX: &str = "scale";
/// The secret every instance of a test shares (but the nginx test's, which keep theirs in the
/// bucket).
const SECRET: &str = "scale-out-secret";
/// The config file every instance reads: S3's smallest part, so a few MiB cross part
/// boundaries.
const CONFIG: &str = "[s3]\npart_size = \"5MiB\"\n";

/// One test at a time in this file.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A `layerstore serve` process on S3, SIGKILLed when dropped. Its log is kept for messages.
pub struct Instance {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

/// How the instances of a test are started.
pub struct Fleet {
    bucket: String,
    env: Vec<(String, String)>,
    config: PathBuf,
    /// `None`: no `--secret`, the one kept in the bucket is used.
    pub secret: Option<&'static str>,
    _dir: tempfile::TempDir,
}

impl Fleet {
    pub fn new(cluster: &GarageCluster) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("layerstore.toml");
        std::fs::write(&config, CONFIG).unwrap();
        Fleet {
            bucket: cluster.bucket.clone(),
            env: cluster.env(),
            config,
            secret: Some(SECRET),
            _dir: dir,
        }
    }

    fn storage(&self) -> String {
        format!("s3://{}/{PREFIX}", self.bucket)
    }

    /// An instance talking to the cluster's S3 API at `endpoint`.
    pub fn start(&self, endpoint: &str) -> Instance {
        let mut command = Command::new(env!("CARGO_BIN_EXE_layerstore"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--storage"])
            .arg(self.storage())
            .arg("--config")
            .arg(&self.config);
        if let Some(secret) = self.secret {
            command.args(["--secret", secret]);
        }
        self.clean_env(&mut command);
        command
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start layerstore serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let addr = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                panic!(
                    "layerstore serve exited before listening:\n{}",
                    log.lock().unwrap().join("\n")
                );
            };
            log.lock().unwrap().push(line.clone());
            if let Some(rest) = line.split("address=").nth(1) {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        let kept = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        Instance { child, addr, log }
    }

    /// `n` instances on node 0's S3 API, started one after the other.
    pub fn start_n(&self, n: usize, endpoint: &str) -> Vec<Instance> {
        (0..n).map(|_| self.start(endpoint)).collect()
    }

    /// The cluster's AWS variables and nothing else of the kind (the machine's own `AWS_*`,
    /// but its CA bundle, and any `LAYERSTORE_*` play no part).
    fn clean_env(&self, command: &mut Command) {
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if (name.starts_with("AWS_") && name != "AWS_CA_BUNDLE")
                || name.starts_with("LAYERSTORE_")
            {
                command.env_remove(name.as_ref());
            }
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
    }

    /// `layerstore fsck` on the bucket through `endpoint`: its exit status and output.
    pub fn fsck(&self, endpoint: &str) -> (bool, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_layerstore"));
        command.args(["fsck", "--storage", &self.storage()]);
        self.clean_env(&mut command);
        command.env("AWS_ENDPOINT_URL", endpoint);
        let output = run_with_timeout(command, Duration::from_secs(120));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }
}

impl Instance {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The instances of the Garage-node tests: two on node 0's S3 API, one on node 1's. Node 2,
/// which none of them talks to, is the one killed.
pub fn instances_beside_node_2(cluster: &GarageCluster, fleet: &Fleet) -> Vec<Instance> {
    [0, 1, 0]
        .iter()
        .map(|&node| fleet.start(&cluster.endpoints[node]))
        .collect()
}

/// After node 2 died: every instance reads `blobs` back, a new push works, fsck is clean.
pub fn check_after_node_loss(
    cluster: &GarageCluster,
    fleet: &Fleet,
    instances: &[Instance],
    repo: &str,
    blob: &[u8],
) {
    check_blob_everywhere(&instances.iter().collect::<Vec<_>>(), repo, blob);
    let after = content(3 * MIB, 77);
    let reply = request(
        instances[1].addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(&after)),
        &[],
        &after,
    );
    assert_eq!(reply.status, 201);
    check_blob_everywhere(&instances.iter().collect::<Vec<_>>(), repo, &after);
    let (clean, report) = fleet.fsck(&cluster.endpoints[1]);
    assert!(clean, "{report}");
}
