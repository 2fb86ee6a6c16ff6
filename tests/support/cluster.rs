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
//! with the tail of its log. `KEEP_TEST_DIRS=1` keeps the cluster directory (data and
//! member logs) after the test and prints its path.
//!
//! Dropping a [`Cluster`] kills (SIGKILL) every member it started (see [`Member`]).

use std::time::{Duration, Instant};

use super::binary::ServerBinary;
use super::etcdctl::{self, CtlOutput};
use super::json;
use super::member::{free_ports, Member};

/// How long a member may take to become healthy after a (re)start.
pub const READY_DEADLINE: Duration = Duration::from_secs(30);
/// Pause between readiness / leader polls (polling a condition, not sleeping for one).
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(100);

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
    opts: ClusterOptions,
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
        Cluster::start_prepared(binary, opts, &mut |_, _| {})
    }

    /// Like [`Cluster::start`], but calls `prepare(member, initial_cluster)` for every
    /// member before any is spawned (e.g. to restore a snapshot into `member.data_dir`,
    /// with the member's name, peer URL and [`super::member::CLUSTER_TOKEN`]).
    pub fn start_prepared(
        binary: &ServerBinary,
        opts: &ClusterOptions,
        prepare: &mut dyn FnMut(&Member, &str),
    ) -> Cluster {
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
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        let initial_cluster = (0..opts.size)
            .map(|i| format!("m{i}={}", url(ports[2 * i + 1])))
            .collect::<Vec<_>>()
            .join(",");
        let members = (0..opts.size)
            .map(|i| {
                let urls = (url(ports[2 * i]), url(ports[2 * i + 1]));
                Member::new(i, urls, &initial_cluster, dir.path(), opts)
            })
            .collect();
        let mut cluster = Cluster {
            binary: binary.clone(),
            opts: opts.clone(),
            dir,
            members,
            ids: Vec::new(),
            cluster_id: 0,
        };
        for member in &cluster.members {
            prepare(member, &initial_cluster);
        }
        for member in &mut cluster.members {
            member.spawn(&binary.path);
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
        self.members[i].is_running()
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

    /// Runs a never-ending etcdctl command (`watch`) against member `i`, stopped after
    /// `lines` stdout lines (see [`etcdctl::run_lines`]).
    pub fn ctl_lines(&self, i: usize, args: &[&str], lines: usize) -> CtlOutput {
        etcdctl::run_lines(&self.members[i].client_url, args, lines)
    }

    /// Runs etcdctl against every member's endpoint (etcdctl picks and fails over).
    pub fn ctl_any(&self, args: &[&str]) -> CtlOutput {
        etcdctl::run(&self.endpoints(), args, None)
    }

    /// The last `lines` lines of member `i`'s log, for failure messages.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        self.members[i].log_tail(lines)
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
        self.members[i].kill();
    }

    /// Graceful stop (SIGTERM), falling back to SIGKILL after 10 s.
    pub fn stop(&mut self, i: usize) {
        self.members[i].stop();
    }

    /// Starts member `i` again with its original command line and data directory, and waits
    /// until it is healthy.
    pub fn restart(&mut self, i: usize) {
        self.members[i].spawn(&self.binary.path);
        self.wait_ready(i);
    }

    /// Starts member `i` again with its original command line, without waiting for it (for
    /// a start that is expected to fail: poll [`Cluster::is_running`], read the log).
    pub fn spawn(&mut self, i: usize) {
        self.members[i].spawn(&self.binary.path);
    }

    /// Member `i`'s `endpoint status`, or `None` if it does not answer.
    ///
    /// The endpoint is given as bare `host:port` here. With a URL endpoint, etcdctl's
    /// `endpoint status` dials `passthrough:///http://host:port` and sends that whole string
    /// as the HTTP/2 `:authority`; etcd accepts it, a stricter HTTP/2 server may not. Finding
    /// the leader must not depend on that quirk; the differential scripts, which use URL
    /// endpoints like operators do, are where it is checked.
    pub fn status(&self, i: usize) -> Option<MemberStatus> {
        let addr = self.members[i].client_url.trim_start_matches("http://");
        let args = ["--command-timeout=2s", "endpoint", "status", "-w", "json"];
        let out = etcdctl::run(addr, &args, None);
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

    /// A new member `m<n>` on fresh ports and an empty data dir, not started and not yet
    /// in the cluster (see [`Cluster::member_add`]); returns its index.
    pub fn prepare_member(&mut self) -> usize {
        let i = self.members.len();
        let ports = free_ports(2);
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        let member = Member::new(
            i,
            (url(ports[0]), url(ports[1])),
            "",
            self.dir.path(),
            &self.opts,
        );
        self.members.push(member);
        self.ids.push(0);
        i
    }

    /// `etcdctl member add m<i> --peer-urls=<its peer URL> [--learner]` through member
    /// `via`; records the new id and prepares member `i` to join with what etcdctl
    /// printed (`ETCD_INITIAL_CLUSTER`). Returns etcdctl's output; panics if it failed.
    pub fn member_add(&mut self, via: usize, i: usize, learner: bool) -> CtlOutput {
        let name = self.members[i].name.clone();
        let peer = format!("--peer-urls={}", self.members[i].peer_url);
        let mut args = vec!["member", "add", name.as_str(), peer.as_str()];
        if learner {
            args.push("--learner");
        }
        let out = self.ctl_reconfig(via, &args).ok("member add");
        let id = out
            .stdout
            .split_whitespace()
            .nth(1)
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .unwrap_or_else(|| panic!("no member id in {out:?}"));
        let initial_cluster = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER=\""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap_or_else(|| panic!("no ETCD_INITIAL_CLUSTER in {out:?}"))
            .to_string();
        self.ids[i] = id;
        self.members[i].set_joining(&initial_cluster);
        out
    }

    /// Runs a membership command (`member add/remove/promote/update`) through member `via`,
    /// retried while etcd answers `etcdserver: unhealthy cluster`: etcd refuses
    /// reconfiguration until every voter has been connected for 5 s (kubeadm retries
    /// the same way). raftkv has no such window and answers at once.
    pub fn ctl_reconfig(&self, via: usize, args: &[&str]) -> CtlOutput {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let out = self.ctl(via, args);
            if !out.stderr.contains("etcdserver: unhealthy cluster") || Instant::now() > deadline {
                return out;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Starts member `i` as a joining member with `initial_cluster`, without waiting for
    /// anything (for a join that must fail).
    pub fn spawn_joining(&mut self, i: usize, initial_cluster: &str) {
        self.members[i].set_joining(initial_cluster);
        self.members[i].spawn(&self.binary.path);
    }

    /// Starts member `i` (added with [`Cluster::member_add`]) and waits until it answers
    /// `endpoint status` (a learner may refuse the read `endpoint health` does).
    pub fn start_joining(&mut self, i: usize) {
        self.members[i].spawn(&self.binary.path);
        let deadline = Instant::now() + READY_DEADLINE;
        while self.status(i).is_none() {
            if !self.is_running(i) {
                panic!(
                    "{} member m{i} exited while joining; log tail:\n{}",
                    self.binary.name(),
                    self.log_tail(i, 40)
                );
            }
            assert!(
                Instant::now() < deadline,
                "member m{i} did not answer after {READY_DEADLINE:?}; log tail:\n{}",
                self.log_tail(i, 40)
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Member `i` listens on and advertises `peer_url` from its next start on.
    pub fn set_peer_url(&mut self, i: usize, peer_url: &str) {
        self.members[i].set_peer_url(peer_url);
    }

    /// Forgets member `i`'s data (after [`Cluster::kill`]): the disk-loss drill.
    pub fn wipe(&mut self, i: usize) {
        assert!(!self.is_running(i), "wipe: m{i} is running");
        let dir = &self.members[i].data_dir;
        if dir.exists() {
            std::fs::remove_dir_all(dir).expect("remove data dir");
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
