//! Runtime membership (issue 7), on real etcd and on raftkv alike, through etcdctl only:
//!
//! - kubeadm's HA join: a one-member cluster grows to three, each newcomer added as a
//!   learner (`member add --learner`), started with `--initial-cluster-state existing`,
//!   and promoted once in sync (the promotion retried while it is not, as kubeadm does);
//! - the leader of three removes itself while writes go on: it exits, the other two elect
//!   a leader and keep serving; then a live follower is removed and exits too;
//! - a member loses its disk: it is removed, added again with the same URLs, started
//!   empty with `existing`, and catches up (from a snapshot: the log was compacted);
//! - a member's peer URLs change (`member update`) and it restarts on them: with the old
//!   leader stopped, the quorum needs it, so the others reach it at the new URL;
//! - the refusals: promote a voter, promote a learner that never started, a second
//!   learner, taken peer URLs, unknown ids, and the strict reconfiguration check, each
//!   with etcd's exact message; the member keeps serving. A member started with
//!   `existing` that was never added exits instead of joining.
//!
//! The growing, removing and replacing tests run a writer thread throughout; every write
//! it saw acknowledged must be readable on every remaining member at the end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod support;
use support::{etcdctl, Cluster, ClusterOptions, ServerBinary, ServerKind};

const LEADER_DEADLINE: Duration = Duration::from_secs(20);
const PROMOTE_DEADLINE: Duration = Duration::from_secs(60);

/// Puts `w/<n>` = `v<n>` through `endpoints` until stopped; returns what was acknowledged.
struct Writer {
    stop: Arc<AtomicBool>,
    /// Writes acknowledged so far (read while the writer runs).
    acked: Arc<AtomicUsize>,
    handle: JoinHandle<BTreeMap<String, String>>,
}

impl Writer {
    fn start(endpoints: String) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let acked_count = Arc::new(AtomicUsize::new(0));
        let count = acked_count.clone();
        let handle = std::thread::spawn(move || {
            let mut acked = BTreeMap::new();
            let mut n = 0u64;
            while !flag.load(Ordering::SeqCst) {
                let (key, value) = (format!("w/{n:06}"), format!("v{n}"));
                let args = ["--command-timeout=5s", "put", key.as_str(), value.as_str()];
                if etcdctl::run(&endpoints, &args, None).success() {
                    acked.insert(key, value);
                    count.fetch_add(1, Ordering::SeqCst);
                }
                n += 1;
            }
            acked
        });
        Writer {
            stop,
            acked: acked_count,
            handle,
        }
    }

    /// Waits until at least `n` writes have been acknowledged.
    fn wait_acked(&self, n: usize) {
        support::poll_until(&format!("{n} acknowledged writes"), LEADER_DEADLINE, || {
            self.acked.load(Ordering::SeqCst) >= n
        });
    }

    fn finish(self) -> BTreeMap<String, String> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("writer thread")
    }
}

/// Every `w/` key and value member `i` holds (a linearizable read there).
fn written(c: &Cluster, i: usize) -> BTreeMap<String, String> {
    let out = c.ctl(i, &["get", "--prefix", "w/"]).ok("get w/");
    let lines: Vec<&str> = out.stdout.lines().collect();
    lines
        .chunks(2)
        .map(|kv| (kv[0].to_string(), kv.get(1).unwrap_or(&"").to_string()))
        .collect()
}

/// Asserts every acknowledged write is on every member in `members`.
fn assert_acked_everywhere(c: &Cluster, members: &[usize], acked: &BTreeMap<String, String>) {
    assert!(!acked.is_empty(), "the writer never got an acknowledgement");
    for &i in members {
        let held = written(c, i);
        let missing: Vec<&String> = acked
            .iter()
            .filter(|(k, v)| held.get(*k) != Some(v))
            .map(|(k, _)| k)
            .collect();
        assert!(
            missing.is_empty(),
            "m{i} lacks {} of {} acknowledged writes, first {:?}",
            missing.len(),
            acked.len(),
            missing.first()
        );
    }
}

/// Retries `member promote` until the learner is in sync (kubeadm's loop); panics on any
/// other refusal or after the deadline.
fn promote_when_in_sync(c: &Cluster, via: usize, id: u64) {
    let deadline = Instant::now() + PROMOTE_DEADLINE;
    loop {
        let out = c.ctl_reconfig(via, &["member", "promote", &format!("{id:x}")]);
        if out.success() {
            assert!(out.out().contains("promoted in cluster"), "{out:?}");
            return;
        }
        assert!(
            out.stderr.contains("in sync with leader"),
            "promote refused for another reason: {out:?}"
        );
        assert!(Instant::now() < deadline, "learner never in sync: {out:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `member list` lines (the simple format) through member `via`.
fn member_lines(c: &Cluster, via: usize) -> Vec<String> {
    let out = c.ctl(via, &["member", "list"]).ok("member list");
    out.stdout.lines().map(str::to_string).collect()
}

/// Polls until member `i`'s process has exited on its own.
fn wait_exit(c: &mut Cluster, i: usize, deadline: Duration) {
    let until = Instant::now() + deadline;
    while c.is_running(i) {
        assert!(
            Instant::now() < until,
            "removed member m{i} still runs after {deadline:?}; log tail:\n{}",
            c.log_tail(i, 20)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn grow_one_to_three_through_learners(binary: &ServerBinary) {
    let mut c = Cluster::start(binary, &ClusterOptions::default());
    let writer = Writer::start(c.member(0).client_url.clone());
    for _ in 0..2 {
        let i = c.prepare_member();
        eprintln!("phase: add m{i} as a learner");
        let out = c.member_add(0, i, true);
        let peer = c.member(i).peer_url.clone();
        for line in [
            format!("ETCD_NAME=\"m{i}\""),
            format!("ETCD_INITIAL_ADVERTISE_PEER_URLS=\"{peer}\""),
            "ETCD_INITIAL_CLUSTER_STATE=\"existing\"".to_string(),
        ] {
            assert!(out.stdout.contains(&line), "{line} missing: {out:?}");
        }
        let lines = member_lines(&c, 0);
        let id = c.member_id(i);
        let unstarted = format!("{id:x}, unstarted, , {peer}, , true");
        assert!(lines.contains(&unstarted), "{lines:?}");

        eprintln!("phase: start m{i} with --initial-cluster-state existing, promote it");
        c.start_joining(i);
        // The second promotion goes through a follower, which forwards it to the leader.
        let via = c.wait_leader(LEADER_DEADLINE);
        let via = if i == 1 {
            via
        } else {
            (0..i).find(|&m| m != via).expect("a follower")
        };
        promote_when_in_sync(&c, via, id);
        c.wait_ready(i);
    }
    let acked = writer.finish();
    eprintln!(
        "phase: {} writes acknowledged; check every member",
        acked.len()
    );
    let lines = member_lines(&c, 2);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines.iter().all(|l| l.ends_with(", false")), "{lines:?}");
    assert_acked_everywhere(&c, &[0, 1, 2], &acked);

    eprintln!("phase: a member that joined restarts from its own data dir");
    c.stop(1);
    c.restart(1);
    assert_acked_everywhere(&c, &[1], &acked);
    c.ctl(1, &["put", "after-restart", "x"])
        .ok("write through the restarted member");
}

fn remove_the_leader_while_writing(binary: &ServerBinary) {
    let opts = ClusterOptions {
        size: 3,
        ..ClusterOptions::default()
    };
    let mut c = Cluster::start(binary, &opts);
    let leader = c.wait_leader(LEADER_DEADLINE);
    let writer = Writer::start(c.endpoints());
    writer.wait_acked(10);
    eprintln!("phase: m{leader} (the leader) removes itself");
    let id = c.member_id(leader);
    let out = c.ctl_reconfig(leader, &["member", "remove", &format!("{id:x}")]);
    // etcd may stop before its answer leaves (`server stopped`); the removal stands.
    assert!(
        out.out().contains("removed from cluster")
            || out.stderr.contains("etcdserver: server stopped"),
        "{out:?}"
    );
    wait_exit(&mut c, leader, Duration::from_secs(30));

    eprintln!("phase: the other two elect a leader and keep serving");
    let new_leader = c.wait_leader(LEADER_DEADLINE);
    assert_ne!(new_leader, leader);
    let rest: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let lines = member_lines(&c, rest[0]);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(!lines.iter().any(|l| l.starts_with(&format!("{id:x},"))));
    c.ctl(rest[1], &["put", "after", "removal"])
        .ok("write after the removal");
    let acked = writer.finish();
    assert_acked_everywhere(&c, &rest, &acked);

    eprintln!("phase: the leader removes the last follower, which exits too");
    let follower = *rest.iter().find(|&&i| i != new_leader).expect("two left");
    let fid = format!("{:x}", c.member_id(follower));
    c.ctl_reconfig(new_leader, &["member", "remove", &fid])
        .ok("remove the follower");
    wait_exit(&mut c, follower, Duration::from_secs(30));
    assert_eq!(member_lines(&c, new_leader).len(), 1);
    c.ctl(new_leader, &["put", "alone", "yes"])
        .ok("a single member serves");
}

fn replace_a_member_that_lost_its_disk(binary: &ServerBinary) {
    let opts = ClusterOptions {
        size: 3,
        snapshot_count: Some(100),
        ..ClusterOptions::default()
    };
    let mut c = Cluster::start(binary, &opts);
    let leader = c.wait_leader(LEADER_DEADLINE);
    let lost = (leader + 1) % 3;
    let rest: Vec<usize> = (0..3).filter(|&i| i != lost).collect();
    let endpoints = rest
        .iter()
        .map(|&i| c.member(i).client_url.clone())
        .collect::<Vec<_>>()
        .join(",");
    let writer = Writer::start(endpoints);

    eprintln!("phase: m{lost} dies and loses its data dir");
    c.kill(lost);
    c.wipe(lost);
    let old_id = c.member_id(lost);
    c.ctl_reconfig(rest[0], &["member", "remove", &format!("{old_id:x}")])
        .ok("member remove");
    // Enough entries for a snapshot and log compaction, so the newcomer needs the image.
    for n in 0..250 {
        c.ctl(rest[0], &["put", &format!("bulk/{n}"), "x"])
            .ok("bulk put");
    }

    eprintln!("phase: m{lost} is added again with the same URLs and starts empty");
    c.member_add(rest[1], lost, false);
    assert_ne!(c.member_id(lost), old_id, "a re-added member gets a new id");
    c.start_joining(lost);
    c.wait_ready(lost);
    c.ctl(lost, &["put", "after", "replacement"])
        .ok("write through the new member");
    let acked = writer.finish();
    assert_acked_everywhere(&c, &[0, 1, 2], &acked);
    let bulk = c
        .ctl(lost, &["get", "--prefix", "bulk/", "--keys-only"])
        .ok("bulk keys");
    let keys = bulk.stdout.lines().filter(|l| !l.is_empty()).count();
    assert_eq!(keys, 250, "the new member holds every bulk key");
    assert_eq!(member_lines(&c, lost).len(), 3);
    if binary.kind == ServerKind::Raftkv {
        // raftkv compacts its log at the snapshot, so the newcomer must have installed the
        // leader's image (etcd keeps 5000 entries for catch-up and sends entries instead).
        let metrics = support::http::body_http10(&c.member(lost).client_url, "/metrics")
            .expect("/metrics of the new member");
        let installs = metrics
            .lines()
            .find_map(|l| l.strip_prefix("etcd_snap_db_save_total_duration_seconds_count "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        assert!(
            installs.is_some_and(|n| n >= 1.0),
            "the new member installed no snapshot: {installs:?}"
        );
    }
}

fn update_the_peer_urls_of_a_member(binary: &ServerBinary) {
    let opts = ClusterOptions {
        size: 3,
        ..ClusterOptions::default()
    };
    let mut c = Cluster::start(binary, &opts);
    let leader = c.wait_leader(LEADER_DEADLINE);
    let moved = (leader + 1) % 3;
    let new_url = format!("http://127.0.0.1:{}", support::member::free_ports(1)[0]);
    eprintln!("phase: m{moved} gets new peer URLs, then restarts on them");
    let id = format!("{:x}", c.member_id(moved));
    let out = c
        .ctl_reconfig(
            leader,
            &["member", "update", &id, &format!("--peer-urls={new_url}")],
        )
        .ok("member update");
    assert!(out.out().contains("updated in cluster"), "{out:?}");
    c.stop(moved);
    c.set_peer_url(moved, &new_url);
    c.restart(moved);
    for i in 0..3 {
        let lines = member_lines(&c, i);
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{id}, started, m{moved}, {new_url},"))),
            "m{i}: {lines:?}"
        );
    }
    eprintln!("phase: the leader reaches it at the new URL");
    c.stop(leader);
    let _ = c.wait_leader(LEADER_DEADLINE);
    c.ctl(moved, &["put", "after", "update"])
        .ok("write with the leader gone: the moved member is part of the quorum");
}

fn refusals_keep_the_member_serving(binary: &ServerBinary) {
    let mut c = Cluster::start(binary, &ClusterOptions::default());
    let me = format!("{:x}", c.member_id(0));
    let refused = |c: &Cluster, args: &[&str], message: &str| {
        let out = c.ctl(0, args);
        assert!(!out.success(), "{args:?} succeeded: {out:?}");
        assert!(
            out.stderr.contains(&format!("Error: {message}")),
            "{args:?}: {out:?}"
        );
    };
    eprintln!("phase: promote a voter, unknown ids");
    refused(
        &c,
        &["member", "promote", &me],
        "etcdserver: can only promote a learner member",
    );
    refused(
        &c,
        &["member", "remove", "1234"],
        "etcdserver: member not found",
    );
    refused(
        &c,
        &["member", "promote", "1234"],
        "etcdserver: member not found",
    );
    let spare = support::member::free_ports(3);
    let url = |p: u16| format!("http://127.0.0.1:{p}");
    refused(
        &c,
        &[
            "member",
            "update",
            "1234",
            &format!("--peer-urls={}", url(spare[0])),
        ],
        "etcdserver: member not found",
    );

    eprintln!("phase: a learner that never starts, then a second learner and taken URLs");
    let taken = format!("--peer-urls={}", c.member(0).peer_url);
    refused(
        &c,
        &["member", "add", "dup", &taken],
        "etcdserver: Peer URLs already exists",
    );
    let learner_urls = format!("--peer-urls={}", url(spare[0]));
    let out = c
        .ctl(0, &["member", "add", "l1", "--learner", &learner_urls])
        .ok("member add --learner");
    let learner = out
        .stdout
        .split_whitespace()
        .nth(1)
        .expect("id in member add output")
        .to_string();
    refused(
        &c,
        &[
            "member",
            "add",
            "l2",
            "--learner",
            &format!("--peer-urls={}", url(spare[1])),
        ],
        "etcdserver: too many learner members in cluster",
    );
    refused(
        &c,
        &["member", "promote", &learner],
        "etcdserver: can only promote a learner member which is in sync with leader",
    );
    let lines = member_lines(&c, 0);
    assert!(
        lines.contains(&format!(
            "{learner}, unstarted, , {}, , true",
            url(spare[0])
        )),
        "{lines:?}"
    );
    c.ctl(0, &["put", "still", "serving"])
        .ok("write after refusals");

    eprintln!("phase: update the learner's URLs, then remove it");
    c.ctl(
        0,
        &[
            "member",
            "update",
            &learner,
            &format!("--peer-urls={}", url(spare[2])),
        ],
    )
    .ok("member update");
    assert!(member_lines(&c, 0)
        .iter()
        .any(|l| l.contains(&url(spare[2]))));
    c.ctl(0, &["member", "remove", &learner])
        .ok("remove the learner");
    assert_eq!(member_lines(&c, 0).len(), 1);

    eprintln!("phase: a member never added cannot join");
    let stranger = c.prepare_member();
    let initial = format!(
        "m0={},m{stranger}={}",
        c.member(0).peer_url,
        c.member(stranger).peer_url
    );
    c.spawn_joining(stranger, &initial);
    wait_exit(&mut c, stranger, Duration::from_secs(30));
    if binary.kind == support::ServerKind::Raftkv {
        let log = c.log_tail(stranger, 5);
        assert!(log.contains("is not in the existing cluster"), "{log}");
    }
    assert_eq!(member_lines(&c, 0).len(), 1, "the cluster did not change");

    eprintln!("phase: the strict reconfiguration check");
    // A second voter is allowed (etcd's exception for one started member); it never
    // starts, so a third would leave 1 started voter for a quorum of 2.
    c.ctl(
        0,
        &[
            "member",
            "add",
            "v2",
            &format!("--peer-urls={}", url(spare[1])),
        ],
    )
    .ok("member add v2");
    let v3 = format!("--peer-urls={}", url(spare[0]));
    refused(
        &c,
        &["member", "add", "v3", &v3],
        "etcdserver: re-configuration failed due to not enough started members",
    );
    assert_eq!(member_lines(&c, 0).len(), 2, "member list still answers");
}

/// A learner serves only Status and serializable reads: a write or a linearizable read on
/// it fails with `etcdserver: rpc not supported for learner` (clients then move to a voting
/// member), while `endpoint status` reports it as a learner and `get
/// --consistency=s` returns the replicated data.
fn a_learner_serves_only_status_and_serializable_reads(binary: &ServerBinary) {
    let mut c = Cluster::start(binary, &ClusterOptions::default());
    c.ctl(0, &["put", "before", "v1"]).ok("put before");
    let i = c.prepare_member();
    c.member_add(0, i, true);
    if binary.kind == ServerKind::Raftkv {
        // What a first start that crashed right after creating its store leaves: the store
        // directory without cluster records. The next start must still join.
        std::fs::create_dir_all(c.member(i).data_dir.join("member/snap/db")).unwrap();
    }
    c.start_joining(i);
    let deadline = Instant::now() + PROMOTE_DEADLINE;
    loop {
        let out = c.ctl(
            i,
            &["get", "before", "--consistency=s", "--print-value-only"],
        );
        if out.success() && out.stdout.trim() == "v1" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "learner never caught up: {out:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = c.ctl(i, &["endpoint", "status", "-w", "json"]).ok("status");
    assert!(status.stdout.contains("\"isLearner\":true"), "{status:?}");
    let put = c.ctl(i, &["put", "on-learner", "x"]);
    assert!(
        !put.success()
            && put
                .stderr
                .contains("etcdserver: rpc not supported for learner"),
        "{put:?}"
    );
    let on_voter = c.ctl(0, &["get", "on-learner"]).ok("get on voter");
    assert_eq!(on_voter.stdout, "", "a refused write landed");
}

/// etcd's connectivity check: with one voter of three down, adding a member is refused
/// with `etcdserver: unhealthy cluster` (the newcomer would join a cluster one failure away
/// from losing quorum) and so is removing a live voter, while the down voter itself may be
/// removed; after that, the two left are healthy and an add goes through.
fn reconfiguration_waits_for_a_healthy_cluster(binary: &ServerBinary) {
    let opts = ClusterOptions {
        size: 3,
        ..ClusterOptions::default()
    };
    let mut c = Cluster::start(binary, &opts);
    let leader = c.wait_leader(LEADER_DEADLINE);
    let down = (leader + 1) % 3;
    let live = (leader + 2) % 3;
    c.kill(down);
    let unhealthy = "Error: etcdserver: unhealthy cluster";
    let spare = format!("http://127.0.0.1:{}", support::member::free_ports(1)[0]);
    let peer_urls = format!("--peer-urls={spare}");
    // The leader notices the dead voter within a few heartbeats: poll until it refuses.
    support::poll_until("the add refused as unhealthy", LEADER_DEADLINE, || {
        let out = c.ctl(leader, &["member", "add", "x", &peer_urls, "--learner"]);
        assert!(
            !out.success(),
            "an add succeeded with a voter down: {out:?}"
        );
        out.stderr.contains(unhealthy)
    });
    let live_id = format!("{:x}", c.member_id(live));
    let out = c.ctl(leader, &["member", "remove", &live_id]);
    assert!(
        out.stderr.contains(unhealthy),
        "removed a live voter: {out:?}"
    );
    let down_id = format!("{:x}", c.member_id(down));
    c.ctl_reconfig(leader, &["member", "remove", &down_id])
        .ok("remove the down voter");
    let out = c.ctl_reconfig(leader, &["member", "add", "x", &peer_urls, "--learner"]);
    assert!(out.success(), "add after the cluster healed: {out:?}");
}

server_tests!(
    grow_one_to_three_through_learners,
    remove_the_leader_while_writing,
    replace_a_member_that_lost_its_disk,
    refusals_keep_the_member_serving,
    update_the_peer_urls_of_a_member,
    a_learner_serves_only_status_and_serializable_reads,
    reconfiguration_waits_for_a_healthy_cluster,
);
