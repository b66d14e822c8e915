//! A real 3-node Garage cluster (an S3-compatible object store) on loopback, for tests of the S3
//! storage. Each node is a `garage server` child process with its own metadata and data
//! directories and its own free ports; `replication_factor = 3`, so every object is on every node
//! and writes need 2 of the 3. Garage is AGPL: it only ever runs as an external process.
//!
//! The binary is `$LAYERSTORE_GARAGE`, else `garage` on `PATH`, else `~/.cargo/bin/garage`
//! (`cargo install garage --version 2.5.0 --locked`, as `.ci/run` does). A missing binary fails
//! the test in CI and skips it elsewhere. `benches/garage.sh` starts the same cluster by hand.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::process::{free_port, missing, run_with_timeout, ChildGuard};

/// How long one attempt at starting the cluster may take (it takes ~1.5 s when idle).
const START_TIMEOUT: Duration = Duration::from_secs(40);
/// How long one `garage` CLI command may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(20);

/// A running cluster; dropping it kills every node and deletes their directories.
pub struct GarageCluster {
    /// `http://127.0.0.1:PORT`: node 0's S3 API.
    pub endpoint: String,
    /// Every node's S3 API, node 0 first.
    pub endpoints: Vec<String>,
    /// `s3_region` of the nodes: the region requests must be signed for.
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// A bucket the key may read, write and own.
    pub bucket: String,
    binary: PathBuf,
    /// Bearer token of every node's admin API.
    admin_token: String,
    nodes: Vec<Node>,
    dir: Option<tempfile::TempDir>,
}

/// One `garage server` process.
struct Node {
    config: PathBuf,
    log: PathBuf,
    s3: SocketAddr,
    admin: SocketAddr,
    /// Full node id (hex public key), known once the node runs.
    id: String,
    /// `None` once killed.
    process: Option<ChildGuard>,
}

impl GarageCluster {
    /// Starts the cluster and waits until every node serves S3 with the bucket and key in place.
    /// `None` (after "skipping: garage not installed") when the binary is missing outside CI.
    /// The ports are only known to be free when picked, so a failed start is retried twice.
    pub fn start() -> Option<GarageCluster> {
        let binary = garage_binary()?;
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::try_start(&binary) {
                Ok(cluster) => return Some(cluster),
                Err(failure) => failures.push(failure),
            }
        }
        panic!(
            "the garage cluster did not start:\n{}",
            failures.join("\n\n")
        );
    }

    fn try_start(binary: &Path) -> Result<GarageCluster, String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let dir = tempfile::Builder::new()
            .prefix("layerstore-garage")
            .tempdir()
            .unwrap();
        let rpc_secret = random_hex(32);
        let admin_token = random_hex(32);
        let region = "garage".to_owned();
        // Nine distinct ports: rpc, s3 api and admin api of each node.
        let mut ports = Vec::new();
        while ports.len() < 9 {
            let port = free_port();
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        // Every node first, each guarded (killed on any early return or panic below), before
        // anything waits on them.
        let mut nodes = Vec::new();
        for (i, ports) in ports.chunks(3).enumerate() {
            let node_dir = dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(node_dir.join("meta")).unwrap();
            std::fs::create_dir_all(node_dir.join("data")).unwrap();
            let [rpc, s3, admin] = [0, 1, 2].map(|j| SocketAddr::from(([127, 0, 0, 1], ports[j])));
            let config = node_dir.join("garage.toml");
            std::fs::write(
                &config,
                node_config(
                    &node_dir,
                    [rpc, s3, admin],
                    &rpc_secret,
                    &admin_token,
                    &region,
                ),
            )
            .unwrap();
            let log = node_dir.join("garage.log");
            let log_file = std::fs::File::create(&log).unwrap();
            let mut command = Command::new(binary);
            command
                .arg("-c")
                .arg(&config)
                .arg("server")
                .env("RUST_LOG", "garage=info,warn")
                .env("NO_COLOR", "1") // plain text in the log file
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file);
            let process =
                ChildGuard::spawn(command, &format!("garage node {i}")).with_log(log.clone());
            nodes.push(Node {
                config,
                log,
                s3,
                admin,
                id: String::new(),
                process: Some(process),
            });
        }
        let mut cluster = GarageCluster {
            endpoint: format!("http://{}", nodes[0].s3),
            endpoints: nodes.iter().map(|n| format!("http://{}", n.s3)).collect(),
            region,
            access_key_id: format!("GK{}", random_hex(12)),
            secret_access_key: random_hex(32),
            bucket: "layerstore".to_owned(),
            binary: binary.to_path_buf(),
            admin_token,
            nodes,
            dir: Some(dir),
        };
        cluster
            .configure(deadline)
            .map_err(|e| format!("{e}\n{}", cluster.log_tails()))?;
        Ok(cluster)
    }

    /// Connects the nodes, applies a layout, creates the key and the bucket, and waits until
    /// every node answers.
    fn configure(&mut self, deadline: Instant) -> Result<(), String> {
        // Each node's id (its public key; `ID@ADDR` with -q) as soon as its key file exists.
        // `garage node id` only reads that file, which a node writes before its RPC listens, so
        // node 0's connection to it is retried until the node accepts it.
        let binary = self.binary.clone();
        let first = self.nodes[0].config.clone();
        for i in 0..self.nodes.len() {
            let config = self.nodes[i].config.clone();
            let id = self.poll(deadline, &format!("node {i}'s id"), || {
                run_garage(&binary, &config, &["node", "id", "-q"]).ok()
            })?;
            self.nodes[i].id = id.trim().split('@').next().unwrap().to_owned();
            if i > 0 {
                let target = id.trim().to_owned();
                self.poll(deadline, &format!("node 0 connecting to node {i}"), || {
                    run_garage(&binary, &first, &["node", "connect", &target]).ok()
                })?;
            }
        }
        // One zone, every node a storage role.
        let mut assign = vec!["layout", "assign", "-z", "dc1", "-c", "1G"];
        let ids: Vec<String> = self.nodes.iter().map(|n| n.id.clone()).collect();
        assign.extend(ids.iter().map(String::as_str));
        self.cli(&assign)?;
        self.cli(&["layout", "apply", "--version", "1"])?;
        // The admin API's /health is 200 once the node has a quorum for every partition.
        for i in 0..self.nodes.len() {
            let admin = self.nodes[i].admin;
            self.poll(deadline, &format!("node {i}'s /health"), || {
                let reply = super::try_request(admin, "GET", "/health", &[], b"").ok()?;
                (reply.status == 200).then_some(())
            })?;
        }
        let key_id = self.access_key_id.clone();
        let secret = self.secret_access_key.clone();
        self.cli(&[
            "key",
            "import",
            "--yes",
            "-n",
            "layerstore",
            &key_id,
            &secret,
        ])?;
        self.try_create_bucket(&self.bucket.clone())?;
        // Every S3 API answers (an anonymous request gets Garage's 403 AccessDenied).
        for i in 0..self.nodes.len() {
            let s3 = self.nodes[i].s3;
            self.poll(deadline, &format!("node {i}'s S3 API"), || {
                let reply = super::try_request(s3, "GET", "/", &[], b"").ok()?;
                (reply.status == 403).then_some(())
            })?;
        }
        Ok(())
    }

    /// Creates another bucket that the cluster's key may read, write and own.
    pub fn create_bucket(&self, name: &str) {
        self.try_create_bucket(name)
            .unwrap_or_else(|e| panic!("creating bucket {name}: {e}"));
    }

    fn try_create_bucket(&self, name: &str) -> Result<(), String> {
        self.cli(&["bucket", "create", name])?;
        let key = &self.access_key_id;
        self.cli(&[
            "bucket", "allow", "--read", "--write", "--owner", name, "--key", key,
        ])
    }

    /// SIGKILLs node `index` (the others keep a quorum: 2 of 3) and returns once the others
    /// know it is down. Killing it again does nothing.
    ///
    /// Garage notices a dead peer only when a send on its connection to it fails, which may take
    /// its 15 s ping interval; until then a read it routes to the dead node waits for an answer
    /// that never comes (an S3 request stalls for seconds). So each survivor is made to proxy
    /// admin requests to the dead node: the first send gets a reset, the next one fails and
    /// closes the connection.
    pub fn kill_node(&mut self, index: usize) {
        // Dropping the guard kills and reaps the process.
        let Some(process) = self.nodes[index].process.take() else {
            return;
        };
        drop(process);
        let dead = self.nodes[index].id.clone();
        let bearer = format!("Bearer {}", self.admin_token);
        let deadline = Instant::now() + START_TIMEOUT;
        for node in self.nodes.iter().filter(|n| n.process.is_some()) {
            let admin = node.admin;
            while self.sees_up(admin, &dead) {
                assert!(
                    Instant::now() < deadline,
                    "node {} still sees killed node {index} up",
                    node.id
                );
                // It waits for an answer until the connection closes: never joined.
                let (path, bearer) = (format!("/v2/GetNodeInfo?node={dead}"), bearer.clone());
                std::thread::spawn(move || {
                    let headers = [("authorization", bearer.as_str())];
                    super::try_request(admin, "GET", &path, &headers, b"")
                });
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Whether the node with admin API `admin` has a live connection to node `id`.
    fn sees_up(&self, admin: SocketAddr, id: &str) -> bool {
        let bearer = format!("Bearer {}", self.admin_token);
        let headers = [("authorization", bearer.as_str())];
        let reply = super::request(admin, "GET", "/v2/GetClusterStatus", &headers, b"");
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        let status: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|node| node["id"] == id && node["isUp"] == true)
    }

    /// The variables an S3 client in a child process needs to reach node 0 with the key.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", &self.access_key_id),
            ("AWS_SECRET_ACCESS_KEY", &self.secret_access_key),
            ("AWS_REGION", &self.region),
            ("AWS_ENDPOINT_URL", &self.endpoint),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.clone()))
        .collect()
    }

    /// `garage` CLI `args` against node 0 (or the first live node).
    fn cli(&self, args: &[&str]) -> Result<(), String> {
        let node = self
            .nodes
            .iter()
            .find(|n| n.process.is_some())
            .ok_or("every node was killed")?;
        run_garage(&self.binary, &node.config, args).map(|_| ())
    }

    /// Calls `probe` every 50 ms until it gives a value. `Err` when a node exited or at the
    /// deadline.
    fn poll<T>(
        &mut self,
        deadline: Instant,
        what: &str,
        mut probe: impl FnMut() -> Option<T>,
    ) -> Result<T, String> {
        loop {
            if let Some(value) = probe() {
                return Ok(value);
            }
            for node in &mut self.nodes {
                if let Some(process) = &mut node.process {
                    process.exited()?;
                }
            }
            if Instant::now() > deadline {
                return Err(format!("timed out waiting for {what}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines of every node's log.
    fn log_tails(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let log = std::fs::read_to_string(&node.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(20)..];
            let _ = writeln!(out, "--- node {i} ({}), last lines:", node.log.display());
            for line in tail {
                let _ = writeln!(out, "{line}");
            }
        }
        out
    }
}

impl Drop for GarageCluster {
    fn drop(&mut self) {
        // Kill (and reap) every node before their directories go.
        for node in &mut self.nodes {
            drop(node.process.take());
        }
        drop(self.dir.take());
    }
}

/// `$LAYERSTORE_GARAGE`, else `garage` on `PATH`, else `~/.cargo/bin/garage`; `None` (after
/// "skipping") outside CI when none exists, a panic in CI.
fn garage_binary() -> Option<PathBuf> {
    let explicit = std::env::var_os("LAYERSTORE_GARAGE").map(PathBuf::from);
    let on_path = || {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|dir| dir.join("garage"))
            .find(|candidate| candidate.is_file())
    };
    let in_cargo_home = || {
        let home = PathBuf::from(std::env::var_os("HOME")?);
        Some(home.join(".cargo/bin/garage")).filter(|p| p.is_file())
    };
    let found = match explicit {
        Some(path) => Some(path).filter(|p| p.is_file()),
        None => on_path().or_else(in_cargo_home),
    };
    if found.is_none() {
        missing("garage");
    }
    found
}

/// Runs `garage -c CONFIG ARGS...`; its stdout, or `Err` with its output.
fn run_garage(binary: &Path, config: &Path, args: &[&str]) -> Result<String, String> {
    let mut command = Command::new(binary);
    command
        .arg("-c")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    let output = run_with_timeout(command, CLI_TIMEOUT);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "garage {} failed ({}):\n{stdout}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// One node's `garage.toml`.
fn node_config(
    dir: &Path,
    [rpc, s3, admin]: [SocketAddr; 3],
    rpc_secret: &str,
    admin_token: &str,
    region: &str,
) -> String {
    let dir = dir.display();
    // sqlite and lmdb start the cluster equally fast (~1.4 s); fsync stays off (the default):
    // the nodes die with their test.
    format!(
        r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "sqlite"
replication_factor = 3
rpc_bind_addr = "{rpc}"
rpc_public_addr = "{rpc}"
rpc_secret = "{rpc_secret}"

[s3_api]
s3_region = "{region}"
api_bind_addr = "{s3}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "{admin}"
admin_token = "{admin_token}"
"#
    )
}

/// `bytes` random bytes in lowercase hex.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).unwrap();
    buf.iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}
