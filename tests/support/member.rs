//! One server process of a test cluster: its command line, its log file, and the child
//! process while it runs.
//!
//! The command line uses etcd's flags only (see `member_args`), so the same member runs as
//! etcd or as raftkv. stdout and stderr are appended to `<cluster dir>/m<i>.log` across
//! restarts. The child runs with a clean environment (only `PATH`, `RUST_LOG` and
//! `RUST_BACKTRACE` pass through): a developer's `ETCD_*` variables must not change a test.
//! Dropping a `Member` kills its process. Called by `cluster.rs` only.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::cluster::{ClusterOptions, POLL_INTERVAL};

/// One member process and how to start it again.
#[derive(Debug)]
pub struct Member {
    /// `m<i>`.
    pub name: String,
    /// `http://127.0.0.1:<port>`.
    pub client_url: String,
    /// `http://127.0.0.1:<port>`.
    pub peer_url: String,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// The full command line after the program path.
    args: Vec<String>,
    log_path: PathBuf,
    child: Option<Child>,
}

impl Member {
    /// Member `i` of a cluster with the given (client, peer) URLs, keeping its data and
    /// log in `dir`. Does not start it.
    pub fn new(
        i: usize,
        (client_url, peer_url): (String, String),
        initial_cluster: &str,
        dir: &Path,
        opts: &ClusterOptions,
    ) -> Member {
        let data_dir = dir.join(format!("m{i}.data"));
        let args = member_args(i, &client_url, &peer_url, initial_cluster, &data_dir, opts);
        Member {
            name: format!("m{i}"),
            client_url,
            peer_url,
            data_dir,
            args,
            log_path: dir.join(format!("m{i}.log")),
            child: None,
        }
    }

    /// Starts `program` with this member's command line.
    pub fn spawn(&mut self, program: &Path) {
        assert!(
            self.child.is_none(),
            "member {} is already running",
            self.name
        );
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open member log");
        let mut command = Command::new(program);
        command.args(&self.args).env_clear();
        for var in ["PATH", "RUST_LOG", "RUST_BACKTRACE"] {
            if let Some(value) = std::env::var_os(var) {
                command.env(var, value);
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        self.child = Some(child);
    }

    /// Whether the process we started is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    /// kill -9 and reap.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("kill: member not running");
        // An already exited child makes kill() fail; wait() below still reaps it.
        let _ = child.kill();
        child.wait().expect("reap killed member");
    }

    /// SIGTERM, then SIGKILL if the process is still there after 10 s.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("stop: member not running");
        let pid = child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "kill -TERM {}",
            self.name
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().expect("try_wait").is_none() {
            if Instant::now() > deadline {
                eprintln!("{} ignored SIGTERM for 10 s; killing it", self.name);
                let _ = child.kill();
                child.wait().expect("reap member");
                return;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Makes the next start join a running cluster: `--initial-cluster-state existing`
    /// with `initial_cluster` (what `etcdctl member add` printed as
    /// `ETCD_INITIAL_CLUSTER`). The member must have been added with `member add`.
    pub fn set_joining(&mut self, initial_cluster: &str) {
        for arg in &mut self.args {
            if arg.starts_with("--initial-cluster=") {
                *arg = format!("--initial-cluster={initial_cluster}");
            } else if arg.starts_with("--initial-cluster-state=") {
                *arg = "--initial-cluster-state=existing".to_string();
            }
        }
    }

    /// Moves the member to `peer_url` for its next start (`--listen-peer-urls` and
    /// `--initial-advertise-peer-urls`), after a `member update`.
    pub fn set_peer_url(&mut self, peer_url: &str) {
        for arg in &mut self.args {
            for flag in ["--listen-peer-urls=", "--initial-advertise-peer-urls="] {
                if arg.starts_with(flag) {
                    *arg = format!("{flag}{peer_url}");
                }
            }
        }
        self.peer_url = peer_url.to_string();
    }

    /// The last `lines` lines of the member's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The `--initial-cluster-token` every harness cluster uses.
pub const CLUSTER_TOKEN: &str = "harness-cluster";

fn member_args(
    i: usize,
    client_url: &str,
    peer_url: &str,
    initial_cluster: &str,
    data_dir: &Path,
    opts: &ClusterOptions,
) -> Vec<String> {
    let mut args: Vec<String> = [
        ("--name", format!("m{i}")),
        ("--data-dir", data_dir.display().to_string()),
        ("--listen-client-urls", client_url.to_string()),
        ("--advertise-client-urls", client_url.to_string()),
        ("--listen-peer-urls", peer_url.to_string()),
        ("--initial-advertise-peer-urls", peer_url.to_string()),
        ("--initial-cluster", initial_cluster.to_string()),
        ("--initial-cluster-state", "new".to_string()),
        ("--initial-cluster-token", CLUSTER_TOKEN.to_string()),
        (
            "--heartbeat-interval",
            opts.heartbeat_interval_ms.to_string(),
        ),
        ("--election-timeout", opts.election_timeout_ms.to_string()),
    ]
    .into_iter()
    .map(|(flag, value)| format!("{flag}={value}"))
    .collect();
    if let Some(count) = opts.snapshot_count {
        args.push(format!("--snapshot-count={count}"));
    }
    args.extend(opts.extra_args.iter().cloned());
    args
}

/// `n` distinct free TCP ports on 127.0.0.1. Each is found by binding port 0 and releasing
/// it; ports handed out earlier in this process are never handed out again, so parallel
/// tests in one binary cannot collide with each other.
pub fn free_ports(n: usize) -> Vec<u16> {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed_out = guard.get_or_insert_with(HashSet::new);
    let mut ports = Vec::with_capacity(n);
    while ports.len() < n {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = listener.local_addr().expect("local addr").port();
        if handed_out.insert(port) {
            ports.push(port);
        }
    }
    ports
}
