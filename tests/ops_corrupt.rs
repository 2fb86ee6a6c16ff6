//! The corruption drills (issue 7). "Bit rot" is made reliably by stopping one member of a
//! 3-member raftkv cluster, opening its backend with the crate's own mvcc API and rewriting
//! one stored value in place (no new revision, so Raft never repairs it), then restarting it.
//!
//! - `periodic_check_raises_corrupt`: with `--experimental-corrupt-check-time`, the leader
//!   finds the diverging follower and raises CORRUPT for it through the log: every member
//!   lists `memberID:<victim> alarm:CORRUPT`, `/health` answers `ALARM CORRUPT` with 503,
//!   writes fail with `etcdserver: corrupt cluster` while reads work; once the operator has
//!   taken the victim out, `alarm disarm` brings writes back.
//! - `initial_check_refuses_a_tampered_member`: with `--experimental-initial-corrupt-check`
//!   the tampered member refuses to start with etcd's `found data inconsistency with peers`;
//!   the other two keep serving.
//! - `healthy_members_pass_both_checks` runs on real etcd and on raftkv alike (the flag
//!   parsing differential): a healthy cluster with both checks on starts, compacts,
//!   restarts members and serves, with no alarm; `bad_flag_values_are_refused_alike`: both
//!   refuse bad values of the two flags with the same line.

use std::path::Path;
use std::time::{Duration, Instant};

mod support;
use support::binary::require_raftkv;
use support::cluster::POLL_INTERVAL;
use support::http::get as http_get;
use support::{json, Cluster, ClusterOptions, ServerBinary, ServerKind};

const CORRUPT: &str = "etcdserver: corrupt cluster";
const INCONSISTENT: &str = "found data inconsistency with peers";

fn poll(what: &str, ok: impl FnMut() -> bool) {
    support::poll_until(what, Duration::from_secs(30), ok);
}

/// Rots every stored version of `key` in the stopped member's backend, keeping its
/// revisions (`raftkvctl debug rot-value`): what flipped bits on disk look like.
fn tamper(data_dir: &Path, key: &str) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_raftkvctl"))
        .args(["debug", "rot-value", "--data-dir"])
        .arg(data_dir)
        .arg(key)
        .output()
        .expect("run raftkvctl debug rot-value");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("rotted"),
        "rot-value failed: {out:?}"
    );
}

/// Writes a few keys and waits until every member has applied them.
fn write_keys(c: &mut Cluster) -> u64 {
    for i in 0..5 {
        c.ctl_any(&["put", &format!("k{i}"), &format!("value-{i}")])
            .ok("put");
    }
    let out = c.ctl_any(&["get", "k4", "-w", "json"]).ok("get");
    let revision = json::u64_first(out.out(), "revision").expect("a revision");
    for i in 0..c.size() {
        poll("every member applied the writes", || {
            c.status(i).is_some_and(|s| s.revision >= revision)
        });
    }
    revision
}

/// Waits until every member has published its client URLs (the checks ask peers there).
fn wait_published(c: &Cluster) {
    poll("every member's client URLs published", || {
        let out = c.ctl_any(&["member", "list"]);
        out.success() && out.out().lines().count() == c.size() && !out.out().contains(", ,")
    });
}

/// Stops follower `victim`, rots `k1` in its backend and starts it again.
fn rot_follower(c: &mut Cluster, victim: usize) {
    eprintln!("tampering with m{victim}'s backend");
    c.stop(victim);
    tamper(&c.member(victim).data_dir, "k1");
}

fn a_follower(c: &mut Cluster) -> usize {
    let leader = c.wait_leader(Duration::from_secs(20));
    (leader + 1) % c.size()
}

#[test]
fn periodic_check_raises_corrupt() {
    let Some(binary) = require_raftkv() else {
        return;
    };
    let opts = ClusterOptions {
        size: 3,
        extra_args: vec!["--experimental-corrupt-check-time=500ms".to_string()],
        ..ClusterOptions::default()
    };
    let mut c = Cluster::start(&binary, &opts);
    eprintln!("phase 1: write, then rot one follower");
    write_keys(&mut c);
    let victim = a_follower(&mut c);
    let victim_id = c.member_id(victim);
    rot_follower(&mut c, victim);
    // Should the victim win an election, the two healthy followers outvote it and it is
    // still the one named (the majority rule, unit-tested in src/server/corrupt.rs).
    c.restart(victim);

    eprintln!("phase 2: the leader raises CORRUPT for m{victim}, every member lists it");
    let expected = format!("memberID:{victim_id} alarm:CORRUPT");
    for i in 0..3 {
        poll("the CORRUPT alarm on every member", || {
            c.ctl(i, &["alarm", "list"]).out().contains(&expected)
        });
    }
    let listed = c.ctl_any(&["alarm", "list"]).ok("alarm list");
    assert_eq!(listed.out().trim(), expected, "only the victim is alarmed");
    eprintln!("$ etcdctl alarm list\n{}", listed.out().trim());

    eprintln!("phase 3: unhealthy, writes refused with etcd's error, reads work");
    for i in 0..3 {
        let health = http_get(&c.member(i).client_url, "/health");
        assert!(health.starts_with("HTTP/1.1 503"), "{health}");
        assert!(
            health.contains(r#"{"health":"false","reason":"ALARM CORRUPT"}"#),
            "{health}"
        );
        let readyz = http_get(&c.member(i).client_url, "/readyz");
        assert!(readyz.starts_with("HTTP/1.1 503"), "{readyz}");
        let put = c.ctl(i, &["put", "after", "x"]);
        assert!(
            !put.success() && put.stderr.contains(CORRUPT),
            "m{i}: {put:?}"
        );
        if i == 0 {
            let status_line = health.lines().next().unwrap_or("");
            let body = health.lines().last().unwrap_or("");
            eprintln!("$ curl -i /health\n{status_line}\n{body}");
            eprintln!("$ etcdctl put after x\n{}", put.stderr.trim());
        }
    }
    let del = c.ctl_any(&["del", "k2"]);
    assert!(!del.success() && del.stderr.contains(CORRUPT), "{del:?}");
    let got = c.ctl((victim + 1) % 3, &["get", "k2", "--print-value-only"]);
    assert_eq!(got.ok("read under CORRUPT").out().trim(), "value-2");

    eprintln!("phase 4: the victim taken out, disarm brings writes back");
    c.stop(victim);
    // A round that asked the victim before it stopped must not re-raise after the disarm.
    wait_periodic_checks(&mut c, 2);
    let healthy = (victim + 1) % 3;
    let disarmed = c.ctl(healthy, &["alarm", "disarm"]).ok("disarm");
    assert!(disarmed.out().contains(&expected), "{disarmed:?}");
    poll("writes accepted after disarm", || {
        c.ctl(healthy, &["put", "after", "ok"]).success()
    });
    let listed = c.ctl(healthy, &["alarm", "list"]).ok("alarm list");
    assert_eq!(listed.out().trim(), "", "no alarm left");
    let health = http_get(&c.member(healthy).client_url, "/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}

#[test]
fn initial_check_refuses_a_tampered_member() {
    let Some(binary) = require_raftkv() else {
        return;
    };
    let opts = ClusterOptions {
        size: 3,
        extra_args: vec!["--experimental-initial-corrupt-check".to_string()],
        ..ClusterOptions::default()
    };
    let mut c = Cluster::start(&binary, &opts);
    eprintln!("phase 1: write, wait for published client URLs, rot one follower");
    write_keys(&mut c);
    wait_published(&c);
    let victim = a_follower(&mut c);
    rot_follower(&mut c, victim);

    eprintln!("phase 2: m{victim} refuses to start");
    c.spawn(victim);
    poll("the tampered member to exit", || !c.is_running(victim));
    let log = c.log_tail(victim, 40);
    assert!(log.contains(INCONSISTENT), "log tail:\n{log}");
    let id = format!("{:x}", c.member_id(victim));
    assert!(log.contains(&format!("{id} {INCONSISTENT}")), "{log}");

    eprintln!("phase 3: the other two keep serving");
    for i in (0..3).filter(|&i| i != victim) {
        c.ctl(i, &["put", &format!("after{i}"), "ok"]).ok("put");
        let got = c.ctl(i, &["get", "k1", "--print-value-only"]).ok("get");
        assert_eq!(got.out().trim(), "value-1");
    }
}

/// Both checks on a healthy cluster: no false positive, also after a compaction and across
/// restarts (the initial check then really compares with running peers). On etcd and
/// raftkv alike.
fn healthy_members_pass_both_checks(binary: &ServerBinary) {
    let opts = ClusterOptions {
        size: 3,
        extra_args: vec![
            "--experimental-initial-corrupt-check".to_string(),
            "--experimental-corrupt-check-time=500ms".to_string(),
        ],
        ..ClusterOptions::default()
    };
    let mut c = Cluster::start(binary, &opts);
    eprintln!("phase 1: write, compact, write again");
    let revision = write_keys(&mut c);
    c.ctl_any(&["compact", &(revision - 2).to_string(), "--physical"])
        .ok("compact");
    write_keys(&mut c);
    wait_published(&c);

    eprintln!("phase 2: restart each member in turn; the initial check passes");
    for i in 0..3 {
        c.stop(i);
        c.restart(i);
        if binary.kind == ServerKind::Raftkv {
            // It compared with both running peers, not skipped them.
            let log = c.log_tail(i, 100_000);
            let passed = log
                .lines()
                .rev()
                .find(|l| l.contains("initial corruption checking passed"))
                .unwrap_or_default();
            assert!(
                passed.contains("number_of_peers_checked=2"),
                "m{i}: the initial check compared with fewer than 2 peers: {passed:?}"
            );
        }
    }
    eprintln!("phase 3: the whole cluster restarts at once; no member waits forever");
    for i in 0..3 {
        c.stop(i);
    }
    for i in 0..3 {
        c.spawn(i);
    }
    for i in 0..3 {
        c.wait_ready(i);
    }
    write_keys(&mut c);
    if binary.name() == "raftkv" {
        wait_periodic_checks(&mut c, 3);
    }

    eprintln!("phase 4: no alarm, every member healthy and writable");
    for i in 0..3 {
        let listed = c.ctl(i, &["alarm", "list"]).ok("alarm list");
        assert_eq!(listed.out().trim(), "", "m{i} lists an alarm");
        let health = http_get(&c.member(i).client_url, "/health");
        assert!(health.starts_with("HTTP/1.1 200"), "m{i}: {health}");
        c.ctl(i, &["put", "last", "ok"]).ok("put");
    }
}

/// Waits until the leader's log shows `rounds` more finished periodic checks (raftkv's log
/// line, the same words as etcd's).
fn wait_periodic_checks(c: &mut Cluster, rounds: usize) {
    let leader = c.wait_leader(Duration::from_secs(20));
    let count = |c: &Cluster| {
        c.log_tail(leader, 100_000)
            .matches("finished peer corruption check")
            .count()
    };
    let before = count(c);
    poll("periodic checks on the leader", || {
        count(c) >= before + rounds
    });
}

/// Bad values of the two flags stop both servers at start with Go's flag-package line.
fn bad_flag_values_are_refused_alike(binary: &ServerBinary) {
    let cases = [
        (
            "--experimental-corrupt-check-time=soon",
            r#"invalid value "soon" for flag -experimental-corrupt-check-time: parse error"#,
        ),
        (
            "--experimental-initial-corrupt-check=yes",
            r#"invalid boolean value "yes" for -experimental-initial-corrupt-check: parse error"#,
        ),
    ];
    for (flag, message) in cases {
        let stderr = refused_start(binary, flag);
        assert!(stderr.contains(message), "{}: {stderr}", binary.name());
    }
}

/// Runs the server with `flag`, expects it to exit non-zero on its own, returns its stderr.
fn refused_start(binary: &ServerBinary, flag: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut child = std::process::Command::new(&binary.path)
        .arg(format!("--data-dir={}", dir.path().join("d").display()))
        .arg(flag)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("run the server");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{} started with {flag}", binary.name());
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    assert!(!status.success(), "{} accepted {flag}", binary.name());
    std::fs::read_to_string(&log).unwrap()
}

server_tests!(
    healthy_members_pass_both_checks,
    bad_flag_values_are_refused_alike
);

/// The drill tool refuses a data dir without a store and a key with no stored version, and
/// changes nothing then.
#[test]
fn rot_value_refuses_what_it_cannot_rot() {
    let Some(binary) = require_raftkv() else {
        return;
    };
    let rot = |dir: &Path, key: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_raftkvctl"))
            .args(["debug", "rot-value", "--data-dir"])
            .arg(dir)
            .arg(key)
            .output()
            .expect("run raftkvctl")
    };
    let empty = tempfile::tempdir().unwrap();
    let out = rot(empty.path(), "k");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no store at"),
        "{err}"
    );

    let mut c = Cluster::start(&binary, &ClusterOptions::default());
    c.ctl(0, &["put", "k", "v"]).ok("put");
    c.stop(0);
    let out = rot(&c.member(0).data_dir, "absent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("has no stored version"),
        "{err}"
    );
    c.restart(0);
    let got = c.ctl(0, &["get", "k", "--print-value-only"]).ok("get");
    assert_eq!(got.out().trim(), "v", "a refused rot changed the value");
}

/// The leader's periodic check covers a learner: a learner refuses client HashKV (`rpc not
/// supported for learner`) but answers the one a peer's corruption check sends.
#[test]
fn the_periodic_check_covers_a_learner() {
    let Some(binary) = require_raftkv() else {
        return;
    };
    let opts = ClusterOptions {
        extra_args: vec!["--experimental-corrupt-check-time=300ms".to_string()],
        ..ClusterOptions::default()
    };
    let mut c = Cluster::start(&binary, &opts);
    c.ctl(0, &["put", "k", "v"]).ok("put");
    let i = c.prepare_member();
    c.member_add(0, i, true);
    c.start_joining(i);
    wait_published(&c);
    poll("a periodic round that compared with the learner", || {
        c.log_tail(0, 100_000)
            .lines()
            .any(|l| l.contains("finished peer corruption check") && l.contains("checked=1"))
    });
    let refused = c.ctl(i, &["endpoint", "hashkv"]);
    assert!(
        refused.stderr.contains("rpc not supported for learner"),
        "a client's HashKV on a learner: {refused:?}"
    );
}
