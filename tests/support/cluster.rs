//! A cluster of 1..n server processes on free loopback ports, each with its own temporary
//! data directory, driven by etcdctl.
//!
//! Members are named `m0`, `m1`, ... and started with etcd's flags (`--name`, `--data-dir`,
//! `--listen-client-urls`, `--advertise-client-urls`, `--listen-peer-urls`,
//! `--initial-advertise-peer-urls`, `--initial-cluster`, `--initial-cluster-state new`,
//! `--initial-cluster-token`, `--heartbeat-interval`, `--election-timeout`,
//! `--snapshot-count`), so etcd and raftkv run from the same command line. A restart reuses
//! the same command line: both servers ignore the `--initial-*` flags once the data
//! directory exists.
//!
//! Readiness is a successful `etcdctl endpoint health` (a linearizable read through raft) on
//! the member within [`READY_DEADLINE`]; a member that exits while we wait fails the test
//! with the tail of its log. Each member's stdout and stderr go to `<dir>/m<i>.log`.
//! `KEEP_TEST_DIRS=1` keeps the directory (data and logs) after the test and prints its path.
//!
//! Dropping a [`Cluster`] kills (SIGKILL) every member it started.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::binary::ServerBinary;
use super::etcdctl::{self, CtlOutput};
use super::json;

/// How long a member may take to become healthy after a (re)start.
pub const READY_DEADLINE: Duration = Duration::from_secs(30);
/// Pause between readiness / leader polls (polling a condition, not sleeping for one).
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How to start a cluster; `Default` is a single member with etcd's default timings.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Number of members.
    pub size: usize,
    /// `--heartbeat-interval` in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// `--election-timeout` in milliseconds.
    pub election_timeout_ms: u64,
    /// `--snapshot-count`; `None` leaves the server default.
    pub snapshot_count: Option<u64>,
    /// Extra flags appended to every member's command line.
    pub extra_args: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            size: 1,
            heartbeat_interval_ms: 100,
            election_timeout_ms: 1000,
            snapshot_count: None,
            extra_args: Vec::new(),
        }
    }
}

/// One member process and how to start it again.
#[derive(Debug)]
pub struct Member {
    /// `m<i>`.
    pub name: String,
    /// `http://127.0.0.1:<port>`.
    pub client_url: String,
    /// `http://127.0.0.1:<port>`.
    pub peer_url: String,
    /// The full command line after the program path.
    args: Vec<String>,
    log_path: PathBuf,
    child: Option<Child>,
}

/// What `etcdctl endpoint status -w json` says about one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    /// The member's own id (header.member_id).
    pub member_id: u64,
    /// The leader it knows of (0 = none).
    pub leader: u64,
    /// raftTerm.
    pub raft_term: u64,
    /// raftIndex.
    pub raft_index: u64,
    /// header.revision: the store's current revision.
    pub revision: u64,
}

/// A running cluster; see the module docs.
pub struct Cluster {
    binary: ServerBinary,
    dir: tempfile::TempDir,
    members: Vec<Member>,
    /// Member ids from `member list`, by member index.
    ids: Vec<u64>,
    /// header.cluster_id of that `member list`.
    cluster_id: u64,
}

impl Cluster {
    /// Starts `opts.size` members of `binary`, waits until every one is healthy and records
    /// the member ids.
    pub fn start(binary: &ServerBinary, opts: &ClusterOptions) -> Cluster {
        assert!(opts.size >= 1, "a cluster needs at least one member");
        let keep = std::env::var_os("KEEP_TEST_DIRS").is_some();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-cluster-", binary.name()))
            .disable_cleanup(keep)
            .tempdir()
            .expect("create cluster temp dir");
        if keep {
            eprintln!("KEEP_TEST_DIRS: cluster dir {}", dir.path().display());
        }
        let ports = free_ports(2 * opts.size);
        let urls: Vec<(String, String)> = (0..opts.size)
            .map(|i| {
                let client = format!("http://127.0.0.1:{}", ports[2 * i]);
                let peer = format!("http://127.0.0.1:{}", ports[2 * i + 1]);
                (client, peer)
            })
            .collect();
        let initial_cluster = (0..opts.size)
            .map(|i| format!("m{i}={}", urls[i].1))
            .collect::<Vec<_>>()
            .join(",");
        let members = (0..opts.size)
            .map(|i| {
                let (client_url, peer_url) = urls[i].clone();
                let data_dir = dir.path().join(format!("m{i}.data"));
                let args =
                    member_args(i, &client_url, &peer_url, &initial_cluster, &data_dir, opts);
                let log_path = dir.path().join(format!("m{i}.log"));
                Member {
                    name: format!("m{i}"),
                    client_url,
                    peer_url,
                    args,
                    log_path,
                    child: None,
                }
            })
            .collect();
        let mut cluster = Cluster {
            binary: binary.clone(),
            dir,
            members,
            ids: Vec::new(),
            cluster_id: 0,
        };
        for i in 0..opts.size {
            cluster.spawn(i);
        }
        for i in 0..opts.size {
            cluster.wait_ready(i);
        }
        (cluster.cluster_id, cluster.ids) = cluster.read_member_ids();
        cluster
    }

    /// The binary this cluster runs.
    pub fn binary(&self) -> &ServerBinary {
        &self.binary
    }

    /// Number of members (running or not).
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// Member `i`.
    pub fn member(&self, i: usize) -> &Member {
        &self.members[i]
    }

    /// Member `i`'s id as reported by `member list` at start.
    pub fn member_id(&self, i: usize) -> u64 {
        self.ids[i]
    }

    /// The cluster id reported by `member list` at start.
    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    /// The index of the member with id `id`.
    pub fn index_of(&self, id: u64) -> Option<usize> {
        self.ids.iter().position(|&m| m == id)
    }

    /// Whether member `i`'s process is running (as far as we started it and did not stop it).
    pub fn is_running(&mut self, i: usize) -> bool {
        let member = &mut self.members[i];
        match member.child.as_mut() {
            Some(child) => child.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    /// Comma-separated client URLs of every member (for clients that fail over).
    pub fn endpoints(&self) -> String {
        let urls: Vec<&str> = self.members.iter().map(|m| m.client_url.as_str()).collect();
        urls.join(",")
    }

    /// Runs etcdctl against member `i` only.
    pub fn ctl(&self, i: usize, args: &[&str]) -> CtlOutput {
        etcdctl::run(&self.members[i].client_url, args, None)
    }

    /// Runs etcdctl against member `i` only, with `stdin`.
    pub fn ctl_stdin(&self, i: usize, args: &[&str], stdin: &[u8]) -> CtlOutput {
        etcdctl::run(&self.members[i].client_url, args, Some(stdin))
    }

    /// Runs etcdctl against every member's endpoint (etcdctl picks and fails over).
    pub fn ctl_any(&self, args: &[&str]) -> CtlOutput {
        etcdctl::run(&self.endpoints(), args, None)
    }

    /// The last `lines` lines of member `i`'s log, for failure messages.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.members[i].log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn spawn(&mut self, i: usize) {
        let member = &mut self.members[i];
        assert!(
            member.child.is_none(),
            "member {} is already running",
            member.name
        );
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log_path)
            .expect("open member log");
        // A clean environment: no stray ETCD_* variable may change a member's flags.
        let mut command = Command::new(&self.binary.path);
        command.args(&member.args).env_clear();
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
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.binary.path.display()));
        member.child = Some(child);
    }

    /// Waits until member `i` answers `endpoint health`; panics with its log tail if it
    /// exits or the deadline passes.
    pub fn wait_ready(&mut self, i: usize) {
        let deadline = Instant::now() + READY_DEADLINE;
        let url = self.members[i].client_url.clone();
        loop {
            let health = etcdctl::run(
                &url,
                &[
                    "--dial-timeout=1s",
                    "--command-timeout=2s",
                    "endpoint",
                    "health",
                ],
                None,
            );
            if health.success() {
                return;
            }
            if !self.is_running(i) {
                panic!(
                    "{} member m{i} exited while starting; log tail:\n{}",
                    self.binary.name(),
                    self.log_tail(i, 40)
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{} member m{i} not healthy after {READY_DEADLINE:?}: {health:?}\nlog tail:\n{}",
                    self.binary.name(),
                    self.log_tail(i, 40)
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// kill -9 member `i` and reap it.
    pub fn kill(&mut self, i: usize) {
        let mut child = self.members[i]
            .child
            .take()
            .expect("kill: member not running");
        // An already exited child makes kill() fail; wait() below still reaps it.
        let _ = child.kill();
        child.wait().expect("reap killed member");
    }

    /// Graceful stop (SIGTERM), falling back to SIGKILL after 10 s.
    pub fn stop(&mut self, i: usize) {
        let mut child = self.members[i]
            .child
            .take()
            .expect("stop: member not running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill -TERM member m{i}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().expect("try_wait").is_none() {
            if Instant::now() > deadline {
                eprintln!("member m{i} ignored SIGTERM for 10 s; killing it");
                let _ = child.kill();
                child.wait().expect("reap member");
                return;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Starts member `i` again with its original command line and data directory, and waits
    /// until it is healthy.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.wait_ready(i);
    }

    /// Member `i`'s `endpoint status`, or `None` if it does not answer.
    pub fn status(&self, i: usize) -> Option<MemberStatus> {
        let out = self.ctl(
            i,
            &["--command-timeout=2s", "endpoint", "status", "-w", "json"],
        );
        if !out.success() {
            return None;
        }
        Some(MemberStatus {
            member_id: json::u64_first(&out.stdout, "member_id")?,
            leader: json::u64_first(&out.stdout, "leader").unwrap_or(0),
            raft_term: json::u64_first(&out.stdout, "raftTerm")?,
            raft_index: json::u64_first(&out.stdout, "raftIndex")?,
            revision: json::u64_first(&out.stdout, "revision")?,
        })
    }

    /// The leader's member index if a running member says it is the leader, asking running
    /// members only.
    pub fn leader(&mut self) -> Option<usize> {
        for i in 0..self.size() {
            if !self.is_running(i) {
                continue;
            }
            if let Some(status) = self.status(i) {
                if status.leader != 0 && status.leader == status.member_id {
                    return self.index_of(status.member_id);
                }
            }
        }
        None
    }

    /// Polls [`Cluster::leader`] until some running member leads; panics after `deadline`.
    pub fn wait_leader(&mut self, deadline: Duration) -> usize {
        let until = Instant::now() + deadline;
        loop {
            if let Some(leader) = self.leader() {
                return leader;
            }
            if Instant::now() > until {
                let answers: Vec<String> = (0..self.size())
                    .map(|i| {
                        format!(
                            "m{i}: {:?}",
                            self.ctl(i, &["endpoint", "status", "-w", "json"])
                        )
                    })
                    .collect();
                panic!(
                    "no leader among running members after {deadline:?}:\n{}",
                    answers.join("\n")
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// (cluster id, member ids by member index) from `member list`, polled until every
    /// member's name is listed (members publish their name and client URLs through the log
    /// after they start, so a fresh list may still show them unnamed).
    fn read_member_ids(&self) -> (u64, Vec<u64>) {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let out = self
                .ctl(0, &["member", "list", "-w", "json"])
                .ok("member list");
            if let Some(found) = self.ids_by_name(&out.stdout) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "member list never named every member: {out:?}"
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn ids_by_name(&self, member_list: &str) -> Option<(u64, Vec<u64>)> {
        let cluster_id = json::u64_first(member_list, "cluster_id")?;
        let ids = json::u64_all(member_list, "ID");
        let names = json::str_all(member_list, "name");
        if ids.len() != self.size() || names.len() != ids.len() {
            return None;
        }
        let by_index = (0..self.size())
            .map(|i| {
                names
                    .iter()
                    .position(|n| *n == format!("m{i}"))
                    .map(|at| ids[at])
            })
            .collect::<Option<Vec<u64>>>()?;
        Some((cluster_id, by_index))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            if let Some(mut child) = member.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn member_args(
    i: usize,
    client_url: &str,
    peer_url: &str,
    initial_cluster: &str,
    data_dir: &std::path::Path,
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
        ("--initial-cluster-token", "harness-cluster".to_string()),
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
