//! Black-box tests of the `raftkvctl` binary against a real etcd 3.4 (the reference raftkv
//! must match), started by each test on free loopback ports in a temp dir.
//!
//! They prove: put/get/del/status round-trip through the public API with etcdctl's output;
//! `bench` sends exactly `--total` requests (the store's revision moves by exactly that
//! much) and prints the percentiles, and `bench watch` delivers every put to every watcher;
//! `cluster start 3 --bin etcd` brings up three members that agree on a leader and stops
//! them all on SIGTERM.
//!
//! Without `etcd` on PATH the tests print a loud SKIPPED and pass, except under `CI=true`,
//! where a missing etcd fails them (CI must not go green by testing nothing). Every wait
//! polls a condition under a deadline; every child process is killed when its guard drops.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const CTL: &str = env!("CARGO_BIN_EXE_raftkvctl");
const STARTUP_DEADLINE: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Whether etcd can be run; panics under CI=true when it cannot.
fn etcd_available() -> bool {
    let found = Command::new("etcd")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "etcd is not installed, and CI=true: the raftkvctl tests must run in CI"
        );
        eprintln!("\n*** SKIPPED: `etcd` not on PATH; raftkvctl tests need a real etcd ***\n");
    }
    found
}

/// Polls `condition` until it holds, failing the test with `what` after `deadline`.
fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// `count` consecutive free loopback ports (held while checked, released on return).
fn free_ports(count: u16) -> u16 {
    for _ in 0..100 {
        let first = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if first.checked_add(count).is_none() {
            continue;
        }
        let held: Vec<_> = (first..first + count)
            .map_while(|p| TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if held.len() == usize::from(count) {
            return first;
        }
    }
    panic!("no {count} consecutive free ports on 127.0.0.1");
}

/// A child process killed (and reaped) when the test ends, however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `raftkvctl --endpoints <endpoints> <args>`.
fn ctl(endpoints: &str, args: &[&str]) -> Output {
    Command::new(CTL)
        .arg("--endpoints")
        .arg(endpoints)
        .args(args)
        .output()
        .unwrap()
}

/// Runs `raftkvctl` and returns stdout, failing the test (with stderr) if it fails.
fn ctl_ok(endpoints: &str, args: &[&str]) -> String {
    let output = ctl(endpoints, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "raftkvctl {args:?} failed: {}\nstdout: {stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The data rows of `raftkvctl status`, split into columns (see `src/ctl/status.rs`).
fn status_rows(endpoints: &str) -> Option<Vec<Vec<String>>> {
    let output = ctl(endpoints, &["status", "--dial-timeout", "1s"]);
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let rows = text
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(String::from).collect());
    Some(rows.collect())
}

/// True when every endpoint answers and all name the same non-zero leader.
fn all_agree_on_leader(endpoints: &str) -> bool {
    let Some(rows) = status_rows(endpoints) else {
        return false;
    };
    let expected = endpoints.split(',').count();
    rows.len() == expected
        && rows
            .iter()
            .all(|r| r.len() == 9 && r[2] != "0" && r[2] == rows[0][2])
}

/// One etcd member on free ports in its own temp dir.
struct Etcd {
    endpoint: String,
    _process: KillOnDrop,
    _dir: tempfile::TempDir,
}

fn start_etcd() -> Etcd {
    let dir = tempfile::tempdir().unwrap();
    let port = free_ports(2);
    let client = format!("http://127.0.0.1:{port}");
    let peer = format!("http://127.0.0.1:{}", port + 1);
    let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
    let child = Command::new("etcd")
        .args(["--name", "solo", "--data-dir"])
        .arg(dir.path().join("data"))
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .arg("--initial-cluster")
        .arg(format!("solo={peer}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let etcd = Etcd {
        endpoint: format!("127.0.0.1:{port}"),
        _process: KillOnDrop(child),
        _dir: dir,
    };
    wait_until("etcd to elect itself", STARTUP_DEADLINE, || {
        all_agree_on_leader(&etcd.endpoint)
    });
    etcd
}

fn revision(endpoint: &str) -> i64 {
    let rows = status_rows(endpoint).expect("status answers");
    rows[0][3].parse().expect("revision column is a number")
}

#[test]
fn put_get_del_status_round_trip() {
    if !etcd_available() {
        return;
    }
    let etcd = start_etcd();
    let ep = etcd.endpoint.as_str();

    eprintln!("phase 1: put then get returns the value, etcdctl style");
    assert_eq!(ctl_ok(ep, &["put", "fruit/apple", "red"]), "OK\n");
    let first_put = revision(ep);
    assert_eq!(ctl_ok(ep, &["put", "fruit/apple", "green"]), "OK\n");
    assert_eq!(ctl_ok(ep, &["put", "fruit/kiwi", "brown"]), "OK\n");
    assert_eq!(ctl_ok(ep, &["get", "fruit/apple"]), "fruit/apple\ngreen\n");

    eprintln!("phase 2: --rev reads history, --prefix reads a range");
    let old = first_put.to_string();
    assert_eq!(
        ctl_ok(ep, &["get", "fruit/apple", "--rev", &old]),
        "fruit/apple\nred\n"
    );
    let all = ctl_ok(ep, &["get", "fruit/", "--prefix"]);
    assert_eq!(all, "fruit/apple\ngreen\nfruit/kiwi\nbrown\n");
    let long = ctl_ok(ep, &["get", "fruit/apple", "--long"]);
    assert!(long.contains("version=2"), "{long}");

    eprintln!("phase 3: del --prefix deletes both keys, then get finds nothing");
    assert_eq!(ctl_ok(ep, &["del", "fruit/", "--prefix"]), "2\n");
    assert_eq!(ctl_ok(ep, &["get", "fruit/", "--prefix"]), "");
    assert_eq!(ctl_ok(ep, &["del", "fruit/apple"]), "0\n");

    eprintln!("phase 4: status shows the single member as leader, and a dead endpoint fails");
    let rows = status_rows(ep).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0][1].as_str(), rows[0][8].as_str()),
        (rows[0][2].as_str(), "*")
    );
    assert!(
        rows[0][7].starts_with("3."),
        "version column: {:?}",
        rows[0]
    );
    let dead = format!("{ep},127.0.0.1:{}", free_ports(1));
    let output = ctl(&dead, &["status", "--dial-timeout", "1s"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("error:"));
}

#[test]
fn bench_sends_exactly_total_requests_and_prints_percentiles() {
    if !etcd_available() {
        return;
    }
    let etcd = start_etcd();
    let ep = etcd.endpoint.as_str();
    let shape = [
        "--clients",
        "10",
        "--conns",
        "3",
        "--key-space",
        "50",
        "--seed",
        "7",
    ];

    eprintln!("phase 1: bench put moves the revision by exactly --total");
    let before = revision(ep);
    let args: Vec<&str> = ["bench", "--total", "300"]
        .iter()
        .chain(&shape)
        .chain(&["put"])
        .copied()
        .collect();
    let summary = ctl_ok(ep, &args);
    for expected in [
        "300 ok, 0 failed",
        "throughput:",
        "p50 ",
        "p90 ",
        "p99 ",
        "p99.9 ",
        "seed 7",
    ] {
        assert!(
            summary.contains(expected),
            "missing {expected:?} in:\n{summary}"
        );
    }
    assert_eq!(revision(ep), before + 300, "every put is one revision");

    eprintln!("phase 2: bench range reads without writing");
    let args: Vec<&str> = ["bench", "--total", "100"]
        .iter()
        .chain(&shape)
        .chain(&["range"])
        .copied()
        .collect();
    assert!(ctl_ok(ep, &args).contains("100 ok, 0 failed"));
    assert_eq!(revision(ep), before + 300);

    eprintln!("phase 3: bench txn writes only when its compare holds");
    let args: Vec<&str> = ["bench", "--total", "200"]
        .iter()
        .chain(&shape)
        .chain(&["txn"])
        .copied()
        .collect();
    let summary = ctl_ok(ep, &args);
    assert!(summary.contains("200 ok, 0 failed"), "{summary}");
    let conflicts: i64 = summary
        .lines()
        .find_map(|l| l.trim().strip_prefix("txn conflicts (compare failed): "))
        .expect("conflict count printed")
        .parse()
        .unwrap();
    assert_eq!(
        revision(ep),
        before + 300 + 200 - conflicts,
        "a failed compare writes nothing"
    );

    eprintln!("phase 4: bench watch delivers every put to every watcher");
    let args: Vec<&str> = ["bench", "--total", "100"]
        .iter()
        .chain(&shape)
        .chain(&["watch"])
        .copied()
        .collect();
    let summary = ctl_ok(ep, &args);
    assert!(
        summary.contains("events:     1000 received of 1000 expected"),
        "{summary}"
    );
    assert!(summary.contains("100 ok, 0 failed"), "{summary}");
}

#[test]
fn cluster_start_3_with_etcd_comes_up_and_stops_on_sigterm() {
    if !etcd_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = free_ports(6);
    let endpoints = format!(
        "127.0.0.1:{base},127.0.0.1:{},127.0.0.1:{}",
        base + 2,
        base + 4
    );
    let log_path = dir.path().join("cluster.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cluster = KillOnDrop(
        Command::new(CTL)
            .args([
                "cluster",
                "start",
                "3",
                "--bin",
                "etcd",
                "--base-port",
                &base.to_string(),
            ])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );

    eprintln!("phase 1: all three members answer status and agree on a leader");
    wait_until("3 members to agree on a leader", STARTUP_DEADLINE, || {
        all_agree_on_leader(&endpoints)
    });
    let log_text = || std::fs::read_to_string(&log_path).unwrap();
    wait_until("the ready line", STARTUP_DEADLINE, || {
        log_text().contains("cluster ready: 3 members")
    });
    assert!(
        log_text().contains(&format!("endpoints: {endpoints}")),
        "{}",
        log_text()
    );
    assert!(
        log_text().lines().any(|l| l.starts_with("m2 | ")),
        "member lines are prefixed"
    );

    eprintln!("phase 2: a write through m1 is read back through m3");
    let m1 = endpoints.split(',').next().unwrap();
    let m3 = endpoints.split(',').nth(2).unwrap();
    assert_eq!(ctl_ok(m1, &["put", "hello", "cluster"]), "OK\n");
    assert_eq!(ctl_ok(m3, &["get", "hello"]), "hello\ncluster\n");

    eprintln!("phase 3: SIGTERM stops every member and raftkvctl exits 0");
    sigterm(&cluster.0);
    let mut status = None;
    wait_until("raftkvctl to exit", STARTUP_DEADLINE, || {
        status = cluster.0.try_wait().unwrap();
        status.is_some()
    });
    assert!(
        status.unwrap().success(),
        "exit {status:?}; log:\n{}",
        log_text()
    );
    assert!(log_text().contains("all members stopped"));
    for endpoint in endpoints.split(',') {
        assert!(
            TcpStream::connect(endpoint).is_err(),
            "{endpoint} still listening"
        );
    }
    assert!(
        Path::new(&dir.path().join("data/m1")).is_dir(),
        "member data stays for a restart"
    );
}

fn sigterm(child: &Child) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) reads no memory of ours; `pid` is our unreaped child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
}

/// Runs `raftkvctl <args>` to completion under a deadline (stdout and stderr to a file).
fn ctl_with_deadline(args: &[&str], dir: &Path) -> (std::process::ExitStatus, String) {
    let log_path = dir.join("ctl.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = KillOnDrop(
        Command::new(CTL)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let mut status = None;
    wait_until("raftkvctl to exit", STARTUP_DEADLINE, || {
        status = child.0.try_wait().unwrap();
        status.is_some()
    });
    (status.unwrap(), std::fs::read_to_string(&log_path).unwrap())
}

#[test]
fn cluster_start_fails_loudly_when_a_member_dies_or_the_binary_is_missing() {
    // No etcd needed: `false` plays a member that exits at once with status 1.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let base = free_ports(2).to_string();

    eprintln!("phase 1: a member exiting on its own stops the cluster with an error");
    let args = [
        "cluster",
        "start",
        "1",
        "--bin",
        "false",
        "--base-port",
        &base,
        "--data-dir",
        data,
    ];
    let (status, log) = ctl_with_deadline(&args, dir.path());
    assert!(!status.success(), "{log}");
    assert!(log.contains("member m1 exited unexpectedly"), "{log}");

    eprintln!("phase 2: a --bin path that does not exist is named in the error");
    let missing = dir.path().join("no-such-raftkv");
    let missing = missing.to_str().unwrap();
    let args = [
        "cluster",
        "start",
        "3",
        "--bin",
        missing,
        "--base-port",
        &base,
        "--data-dir",
        data,
    ];
    let (status, log) = ctl_with_deadline(&args, dir.path());
    assert!(!status.success(), "{log}");
    assert!(
        log.contains(&format!("server binary {missing} not found")),
        "{log}"
    );
}
