//! Cluster control: start N members of a binary that takes etcd's flags, each with its own
//! data dir and log, and stop, kill -9, restart, pause (SIGSTOP) and resume (SIGCONT) them.
//!
//! Works the same for raftkv and Debian's `etcd`: the flags used are etcd's (`--name`,
//! `--data-dir`, `--listen-*-urls`, `--advertise-client-urls`,
//! `--initial-advertise-peer-urls`, `--initial-cluster`, `--initial-cluster-state`,
//! `--initial-cluster-token`). A restarted member gets the same flags; its data dir makes it
//! rejoin rather than bootstrap. Where members live on the network is [`Net`]'s business;
//! which member to hurt and when is the nemesis's. Called by the campaign runner and the
//! nemesis.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context};

use crate::net::Net;

/// One member's identity and addresses.
#[derive(Clone, Debug)]
pub struct MemberSpec {
    /// `n1`, `n2`, ...
    pub name: String,
    /// `http://ip:port` clients connect to.
    pub client_url: String,
    /// `http://ip:port` peers connect to.
    pub peer_url: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// The network namespace to run in, if any.
    pub netns: Option<String>,
}

/// A member and its process, if running.
struct Member {
    spec: MemberSpec,
    child: Option<Child>,
    paused: bool,
}

/// N members of one binary.
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    token: String,
    server_args: Vec<String>,
    members: Vec<Member>,
}

impl Cluster {
    /// Lays out `n` members under `dir` (data dirs and logs) on `net`; starts nothing.
    pub fn new(bin: &Path, n: usize, dir: &Path, net: &Net, token: &str) -> Cluster {
        let members = (0..n)
            .map(|i| {
                let (ip, client_port, peer_port) = net.endpoint(i);
                let spec = MemberSpec {
                    name: format!("n{}", i + 1),
                    client_url: format!("http://{ip}:{client_port}"),
                    peer_url: format!("http://{ip}:{peer_port}"),
                    data_dir: dir.join(format!("n{}.data", i + 1)),
                    netns: net.netns(i),
                };
                Member {
                    spec,
                    child: None,
                    paused: false,
                }
            })
            .collect();
        Cluster {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            token: token.into(),
            server_args: Vec::new(),
            members,
        }
    }

    /// Extra arguments appended to every member's command line (e.g. raftkv's hidden
    /// fault-injection switch `--unsafe-test-stale-reads`, used to check the checker).
    pub fn with_server_args(mut self, args: &[String]) -> Cluster {
        self.server_args = args.to_vec();
        self
    }

    /// How many members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Member `i`'s identity and addresses.
    pub fn spec(&self, i: usize) -> &MemberSpec {
        &self.members[i].spec
    }

    /// Every member's client URL, by member index.
    pub fn client_urls(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| m.spec.client_url.clone())
            .collect()
    }

    /// Starts every member.
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for i in 0..self.members.len() {
            self.start(i)?;
        }
        Ok(())
    }

    fn initial_cluster(&self) -> String {
        let pairs: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.spec.name, m.spec.peer_url))
            .collect();
        pairs.join(",")
    }

    /// Starts member `i` (again, after a kill or stop); its output appends to `<name>.log`.
    pub fn start(&mut self, i: usize) -> anyhow::Result<()> {
        if self.members[i].child.is_some() {
            bail!("member {} is already running", self.members[i].spec.name);
        }
        let initial_cluster = self.initial_cluster();
        let spec = &self.members[i].spec;
        let log_path = self.dir.join(format!("{}.log", spec.name));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let mut command = match &spec.netns {
            Some(netns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", netns]).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        command
            .arg(format!("--name={}", spec.name))
            .arg(format!("--data-dir={}", spec.data_dir.display()))
            .arg(format!("--listen-client-urls={}", spec.client_url))
            .arg(format!("--advertise-client-urls={}", spec.client_url))
            .arg(format!("--listen-peer-urls={}", spec.peer_url))
            .arg(format!("--initial-advertise-peer-urls={}", spec.peer_url))
            .arg(format!("--initial-cluster={initial_cluster}"))
            .arg("--initial-cluster-state=new")
            .arg(format!("--initial-cluster-token={}", self.token))
            .args(&self.server_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = command
            .spawn()
            .with_context(|| format!("spawn {}", self.bin.display()))?;
        self.members[i].child = Some(child);
        self.members[i].paused = false;
        Ok(())
    }

    /// Sends `signal` (a `kill -SIG` name) to member `i`'s process.
    fn signal(&self, i: usize, signal: &str) -> anyhow::Result<()> {
        let Some(child) = &self.members[i].child else {
            bail!("member {} is not running", self.members[i].spec.name)
        };
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{signal} {} failed", child.id());
        }
        Ok(())
    }

    /// kill -9 member `i` and reap it. A member not running is left alone.
    pub fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(mut child) = self.members[i].child.take() {
            child.kill()?;
            child.wait()?;
        }
        self.members[i].paused = false;
        Ok(())
    }

    /// Stops member `i` politely (SIGTERM), then waits for it to exit.
    pub fn stop(&mut self, i: usize) -> anyhow::Result<()> {
        if self.members[i].paused {
            self.resume(i)?;
        }
        if self.members[i].child.is_some() {
            self.signal(i, "TERM")?;
            let mut child = self.members[i].child.take().expect("checked above");
            child.wait()?;
        }
        Ok(())
    }

    /// SIGSTOP member `i`: it keeps its sockets but answers nothing.
    pub fn pause(&mut self, i: usize) -> anyhow::Result<()> {
        self.signal(i, "STOP")?;
        self.members[i].paused = true;
        Ok(())
    }

    /// SIGCONT member `i`.
    pub fn resume(&mut self, i: usize) -> anyhow::Result<()> {
        self.signal(i, "CONT")?;
        self.members[i].paused = false;
        Ok(())
    }

    /// Whether member `i` has a live process (paused counts as running).
    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// Whether member `i` is paused.
    pub fn is_paused(&self, i: usize) -> bool {
        self.members[i].paused
    }

    /// Members whose process exited on its own (a crash), reaped; their log says why.
    pub fn crashed(&mut self) -> Vec<String> {
        let mut crashed = Vec::new();
        for member in &mut self.members {
            let exited = match &mut member.child {
                Some(child) => matches!(child.try_wait(), Ok(Some(_))),
                None => false,
            };
            if exited {
                member.child = None;
                crashed.push(member.spec.name.clone());
            }
        }
        crashed
    }

    /// Resumes paused members and restarts dead ones: the end-of-run heal.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        for i in 0..self.members.len() {
            if self.members[i].paused {
                self.resume(i)?;
            }
            if self.members[i].child.is_none() {
                self.start(i)?;
            }
        }
        Ok(())
    }
}

impl Drop for Cluster {
    /// No member outlives the harness: resume (so SIGKILL is delivered at once) and kill.
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].paused {
                let _ = self.resume(i);
            }
            let _ = self.kill(i);
        }
    }
}
