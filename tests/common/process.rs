//! Child processes in tests: the real `layerstore serve` binary on 127.0.0.1 (port 0), for tests
//! that kill it or watch its file descriptors and memory; and for external tools (the real
//! clients, distribution 2.8, Garage): guards that always kill them, free ports, commands with a
//! deadline, and the rule for a missing tool (fails in CI, skips elsewhere).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A server process that is killed (SIGKILL) when dropped.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    /// Its stderr lines so far (the first [`MAX_LOG_LINES`]).
    log: Arc<Mutex<Vec<String>>>,
}

/// Stderr lines a [`ServerProcess`] keeps for [`ServerProcess::log_lines`].
const MAX_LOG_LINES: usize = 100_000;

impl ServerProcess {
    /// Starts a server over `root` and waits until it listens.
    pub fn start(root: &Path) -> Self {
        Self::spawn([OsStr::new("--root"), root.as_os_str()], &[])
    }

    /// Starts a server on `--storage URL`, with `env` added to its environment (an S3 storage's
    /// `AWS_*` settings), and waits until it listens.
    pub fn start_storage(storage: &str, env: &[(String, String)]) -> Self {
        Self::spawn(["--storage", storage].map(OsStr::new), env)
    }

    /// Starts a server over `root` with `extra` arguments for `serve` and waits until it listens.
    pub fn start_with_args(root: &Path, extra: &[&str]) -> Self {
        let args = [OsStr::new("--root"), root.as_os_str()];
        Self::spawn(args.into_iter().chain(extra.iter().map(OsStr::new)), &[])
    }

    /// Starts a server on `--storage URL` with `extra` arguments for `serve` and `env` added to
    /// its environment (which may replace `RUST_LOG`), and waits until it listens.
    pub fn start_storage_with(storage: &str, extra: &[&str], env: &[(String, String)]) -> Self {
        let args = ["--storage", storage].map(OsStr::new);
        Self::spawn(args.into_iter().chain(extra.iter().map(OsStr::new)), env)
    }

    fn spawn<'a>(storage: impl IntoIterator<Item = &'a OsStr>, env: &[(String, String)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_layerstore"))
            .args(["serve", "--listen", "127.0.0.1:0", "--secret", "storm"])
            .args(storage)
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start layerstore serve");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let mut printed = Vec::new();
        let addr = loop {
            let Some(Ok(line)) = lines.next() else {
                panic!(
                    "the server exited before listening:\n{}",
                    printed.join("\n")
                );
            };
            let addr = log_field(&line, "address");
            printed.push(line);
            if let Some(addr) = addr {
                break addr.parse().unwrap();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        let log = Arc::new(Mutex::new(printed));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                if log.len() < MAX_LOG_LINES {
                    log.push(line);
                }
            }
        });
        ServerProcess { child, addr, log }
    }

    /// The server's stderr lines so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The first stderr line that `matches`, waiting up to 10 s for it.
    pub fn wait_for_log(&self, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(line) = self.log.lock().unwrap().iter().find(|l| matches(l)) {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no such log line in:\n{}",
                self.log_lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM (a graceful stop), then waits up to 20 s for the exit; returns its status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit 20 s after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, then reap.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Open file descriptors of the server.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Resident set size of the server in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// Anonymous resident memory (heap, stacks) in KiB: what a leak would grow. File-backed
    /// pages of mapped blobs are the kernel's page cache and are left out.
    pub fn rss_anon_kib(&self) -> u64 {
        self.status_kib("RssAnon:")
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

/// The value of field `name` in a log line of either format: `name=value` in text (ended by a
/// space or `}`), a string or number under `"name"` (at the top level, in `fields` or in `span`)
/// in JSON.
pub fn log_field(line: &str, name: &str) -> Option<String> {
    if line.starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(line).ok()?;
        let value = [&json, &json["fields"], &json["span"]]
            .into_iter()
            .find_map(|object| object.get(name))?;
        return match value {
            serde_json::Value::String(text) => Some(text.clone()),
            other => Some(other.to_string()),
        };
    }
    let key = format!("{name}=");
    let mut rest = line;
    while let Some(at) = rest.find(&key) {
        let before = rest[..at].chars().next_back();
        let value = &rest[at + key.len()..];
        if matches!(before, None | Some(' ' | '{')) {
            let end = value.find([' ', '}']).unwrap_or(value.len());
            return Some(value[..end].to_owned());
        }
        rest = value;
    }
    None
}

/// Reports a missing tool: panics in CI, prints "skipping" elsewhere.
pub fn missing(what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{what} is required in CI but not installed (see the install section of .ci/run)");
    }
    eprintln!("skipping: {what} not installed");
}

/// A child process that is killed and reaped when dropped, whatever the test did.
pub struct ChildGuard {
    child: Child,
    what: String,
    log: Option<PathBuf>,
}

impl ChildGuard {
    pub fn spawn(mut command: Command, what: &str) -> Self {
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        ChildGuard {
            child,
            what: what.to_owned(),
            log: None,
        }
    }

    /// Names the file the process logs to, so a failure can show it.
    pub fn with_log(mut self, log: PathBuf) -> Self {
        self.log = Some(log);
        self
    }

    /// `Err` with the exit status and the log if the process has already exited.
    pub fn exited(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(Some(status)) => {
                let log = self
                    .log
                    .as_ref()
                    .and_then(|path| std::fs::read_to_string(path).ok())
                    .unwrap_or_default();
                Err(format!("{} exited: {status}\n{log}", self.what))
            }
            _ => Ok(()),
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port that was free a moment ago (for servers that need a port number up front).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Runs `command` to the end with `stdin` (if any) on its standard input, capturing its output.
pub fn run_with_stdin(mut command: Command, stdin: Option<&[u8]>) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        std::io::Write::write_all(&mut input, bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// Runs a command with a deadline; kills it when the deadline passes. Returns its output.
pub fn run_with_timeout(mut command: Command, timeout: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    let deadline = Instant::now() + timeout;
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut buf);
        buf
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}
