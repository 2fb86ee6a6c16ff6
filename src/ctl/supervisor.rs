//! Runs a [`ClusterPlan`] in the foreground: spawns one server process per member, prefixes
//! each member's log lines with its name, reports when the cluster has a leader, and stops
//! every member on Ctrl-C or SIGTERM (SIGTERM to each, SIGKILL after `--stop-timeout`).
//!
//! Tasks: one per member owns its `Child` (waits for it, or stops it when told), two per
//! member copy its stdout/stderr lines, one polls `status` until a leader is known. The
//! supervisor loop owns the decision to stop; it never blocks on a member. If one member
//! exits on its own, the others are stopped too and the command fails: a half cluster
//! running unnoticed teaches nothing.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

use super::args::ClusterStartArgs;
use super::cluster::{ClusterPlan, MemberSpec};
use super::error::CtlError;
use super::status;

/// ANSI colours for member names when stdout is a terminal, m1 first.
const COLOURS: [&str; 5] = ["36", "33", "32", "35", "34"];
/// How often the readiness probe asks every member for its status.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// A member's exit, reported by the task that owns its process.
struct Exit {
    name: String,
    status: std::io::Result<ExitStatus>,
}

/// `raftkvctl cluster start N`: runs until a signal or a member's death.
pub async fn run(args: &ClusterStartArgs) -> Result<(), CtlError> {
    let plan = ClusterPlan::new(
        args.members,
        args.base_port,
        &args.data_dir,
        &args.initial_cluster_token,
    )?;
    let bin = server_binary(args.bin.as_deref())?;
    std::fs::create_dir_all(&args.data_dir).map_err(|source| CtlError::Member {
        member: "all".into(),
        action: "create data dir",
        source,
    })?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(CtlError::Signal)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(CtlError::Signal)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (exit_tx, mut exit_rx) = mpsc::channel(plan.members.len());
    spawn_all(&bin, &plan, &stop_rx, exit_tx, args.stop_timeout)?;
    say(&format!("endpoints: {}", plan.endpoints()));
    say(&format!(
        "try: etcdctl --endpoints={} endpoint status -w table",
        plan.endpoints()
    ));
    tokio::spawn(announce_leader(plan.clone(), stop_rx));

    // Each member task sends one exit and drops its sender: `None` means all have exited.
    let mut failure = None;
    loop {
        tokio::select! {
            _ = sigint.recv() => say("interrupt: stopping members"),
            _ = sigterm.recv() => say("terminated: stopping members"),
            exit = exit_rx.recv() => {
                let Some(exit) = exit else { break };
                let stopping = *stop_tx.borrow();
                if let Some(error) = describe_exit(&exit, stopping) {
                    failure.get_or_insert(error);
                }
                if stopping {
                    continue;
                }
                say(&format!("{} exited: stopping the other members", exit.name));
            }
        }
        let _ = stop_tx.send(true);
    }
    say("all members stopped");
    failure.map_or(Ok(()), Err)
}

/// Spawns every member, each owned by its own task (see [`own_member`]).
fn spawn_all(
    bin: &Path,
    plan: &ClusterPlan,
    stop: &watch::Receiver<bool>,
    exits: mpsc::Sender<Exit>,
    stop_timeout: Duration,
) -> Result<(), CtlError> {
    for (i, member) in plan.members.iter().enumerate() {
        let child = spawn_member(bin, plan, member, i)?;
        say(&format!(
            "{} pid {} client {} peer {} data {}",
            member.name,
            child.id().unwrap_or(0),
            member.client_url(),
            member.peer_url(),
            member.data_dir.display()
        ));
        let owner = own_member(
            member.name.clone(),
            child,
            stop.clone(),
            exits.clone(),
            stop_timeout,
        );
        tokio::spawn(owner);
    }
    Ok(())
}

/// The binary to run: `--bin` (a path, or a name looked up on PATH), else `raftkv` next to
/// this executable.
fn server_binary(bin: Option<&Path>) -> Result<PathBuf, CtlError> {
    let path = match bin {
        Some(path) if path.components().count() == 1 => return Ok(path.to_path_buf()),
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("raftkv")))
            .unwrap_or_else(|| PathBuf::from("raftkv")),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(CtlError::BinaryNotFound(path))
    }
}

fn spawn_member(
    bin: &Path,
    plan: &ClusterPlan,
    member: &MemberSpec,
    index: usize,
) -> Result<Child, CtlError> {
    let mut child = Command::new(bin)
        .args(plan.member_args(member))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| CtlError::Member {
            member: member.name.clone(),
            action: "spawn",
            source,
        })?;
    let prefix = log_prefix(&member.name, index);
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(copy_lines(stdout, prefix.clone()));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(copy_lines(stderr, prefix));
    }
    Ok(child)
}

/// `m1 | ` (coloured on a terminal), padded so every member's lines align.
fn log_prefix(name: &str, index: usize) -> String {
    if std::io::stdout().is_terminal() {
        format!("\x1b[{}m{name:<3}|\x1b[0m ", COLOURS[index % COLOURS.len()])
    } else {
        format!("{name:<3}| ")
    }
}

/// Copies lines from a member's output to ours, each behind the member's prefix. `println!`
/// locks stdout per call, so lines of different members never interleave mid-line.
async fn copy_lines(output: impl AsyncRead + Unpin, prefix: String) {
    let mut lines = BufReader::new(output).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        println!("{prefix}{line}");
    }
}

/// Owns one member's process: reports its exit, or stops it when `stop` turns true.
async fn own_member(
    name: String,
    mut child: Child,
    mut stop: watch::Receiver<bool>,
    exits: mpsc::Sender<Exit>,
    stop_timeout: Duration,
) {
    // The watch guard `wait_for` returns must be dropped before awaiting the stop.
    let exited = tokio::select! {
        status = child.wait() => Some(status),
        _ = stop.wait_for(|stop| *stop) => None,
    };
    let status = match exited {
        Some(status) => status,
        None => stop_child(&mut child, stop_timeout).await,
    };
    let _ = exits.send(Exit { name, status }).await;
}

/// SIGTERM (etcd and raftkv shut down gracefully on it), then SIGKILL after `timeout`.
async fn stop_child(child: &mut Child, timeout: Duration) -> std::io::Result<ExitStatus> {
    if let Some(pid) = child.id() {
        let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
        // SAFETY: kill(2) takes plain integers and touches no memory of ours; `pid` is our
        // own child that has not been reaped yet (`id()` is None after reaping), so it cannot
        // name an unrelated process.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            say("a member ignored SIGTERM: killing it");
            child.kill().await?;
            child.wait().await
        }
    }
}

/// An error for an exit that was not asked for. A member killed by SIGINT/SIGTERM while we
/// were not stopping got the terminal's Ctrl-C (it reaches the whole process group) and is
/// no failure.
fn describe_exit(exit: &Exit, stopping: bool) -> Option<CtlError> {
    use std::os::unix::process::ExitStatusExt;
    let status = match &exit.status {
        Ok(status) => *status,
        Err(error) => {
            return Some(CtlError::MemberExited {
                member: exit.name.clone(),
                status: error.to_string(),
            })
        }
    };
    say(&format!("{} exited ({status})", exit.name));
    let by_signal = matches!(status.signal(), Some(libc::SIGINT | libc::SIGTERM));
    if stopping || by_signal || status.success() {
        return None;
    }
    Some(CtlError::MemberExited {
        member: exit.name.clone(),
        status: status.to_string(),
    })
}

/// Polls every member's status until all agree on one leader, then says which it is.
async fn announce_leader(plan: ClusterPlan, mut stop: watch::Receiver<bool>) {
    let endpoints: Vec<String> = plan.members.iter().map(MemberSpec::endpoint).collect();
    let probe = Duration::from_secs(1);
    loop {
        let results = status::status_all(&endpoints, probe, probe).await;
        let leaders: Vec<u64> = results.iter().flatten().map(|s| s.leader).collect();
        if leaders.len() == endpoints.len()
            && leaders[0] != 0
            && leaders.iter().all(|l| *l == leaders[0])
        {
            let leader = results
                .iter()
                .flatten()
                .zip(&plan.members)
                .find(|(s, _)| s.header.as_ref().is_some_and(|h| h.member_id == leaders[0]));
            let name = leader.map_or("?", |(_, m)| m.name.as_str());
            say(&format!(
                "cluster ready: {} members, leader {name} ({:x})",
                endpoints.len(),
                leaders[0]
            ));
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(PROBE_INTERVAL) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// A line of our own, prefixed like the members' so it stands out in the interleaved log.
fn say(text: &str) {
    println!("raftkvctl| {text}");
}
