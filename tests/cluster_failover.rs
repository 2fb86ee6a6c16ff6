//! Leader failure in a 3-member cluster, black-box: kill -9 the leader under a write load and
//! check that nothing acknowledged is lost and that the killed member catches up, by log
//! and by snapshot.
//!
//! Runs against real etcd 3.4 (proving the test) and raftkv (skipped until the binary
//! exists), with `--snapshot-count 100`. Phases, each logged:
//! 1. start 3 members, find the leader;
//! 2. client threads write unique keys (`w<thread>/<n>` = `v<thread>.<n>`) through etcdctl
//!    with every member's endpoint; a write counts as acknowledged when etcdctl exits 0;
//! 3. kill -9 the leader; writes must resume (more acknowledgements) before a generous
//!    deadline; the time taken is printed, not asserted;
//! 4. keep writing while it is down, enough that a snapshot is the only way back:
//!    [`WRITES_WHILE_DOWN`] > etcd's 5000 entries kept behind a snapshot + the snapshot
//!    count (override with `FAILOVER_WRITES_WHILE_DOWN=n` for quick iterations);
//! 5. restart the killed member and wait until it is healthy (a linearizable read);
//! 6. on every member, with serializable (local) reads: every acknowledged key holds its
//!    value, every present key holds the value its writer wrote, and all members reach the
//!    same revision;
//! 7. kill -9 a follower, write a few keys through the leader, restart it: it catches up
//!    from the log, and phase 6's checks hold again.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Cluster, ClusterOptions, ServerBinary};

server_tests!(leader_kill_loses_no_acknowledged_write);

/// Writes acknowledged while the old leader is down (see the module docs).
const WRITES_WHILE_DOWN: usize = 5300;
/// Writes while a follower is down in the log catch-up phase: far fewer than any
/// server keeps in its log behind a snapshot.
const FEW_WRITES: usize = 50;
/// Concurrent writing clients.
const WRITERS: usize = 4;
/// Generous bound for writes to resume after the kill: many election timeouts (1 s each).
const RESUME_DEADLINE: Duration = Duration::from_secs(30);
/// Bound for the bulk phase and for members to converge.
const PHASE_DEADLINE: Duration = Duration::from_secs(600);

/// The writing clients and what they got acknowledged.
struct Writers {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Writers {
    fn start(endpoints: &str) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..WRITERS)
            .map(|thread| {
                let (stop, acked, endpoints) = (stop.clone(), acked.clone(), endpoints.to_string());
                std::thread::spawn(move || write_loop(thread, &endpoints, &stop, &acked))
            })
            .collect();
        Writers {
            stop,
            acked,
            threads,
        }
    }

    fn acked_count(&self) -> usize {
        self.acked.lock().expect("acked lock").len()
    }

    /// Polls until `count` writes are acknowledged; panics after `deadline`.
    fn wait_acked(&self, count: usize, deadline: Duration, what: &str) -> Duration {
        let start = Instant::now();
        while self.acked_count() < count {
            assert!(
                start.elapsed() < deadline,
                "{what}: only {} of {count} writes acknowledged after {deadline:?}",
                self.acked_count()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        start.elapsed()
    }

    fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads {
            thread.join().expect("writer thread");
        }
        Arc::try_unwrap(self.acked)
            .expect("writers joined")
            .into_inner()
            .expect("acked lock")
    }
}

fn write_loop(thread: usize, endpoints: &str, stop: &AtomicBool, acked: &Mutex<Vec<String>>) {
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let key = format!("w{thread}/{n:06}");
        let out = support::etcdctl::run(
            endpoints,
            &["--command-timeout=3s", "put", &key, &value_of(&key)],
            None,
        );
        if out.success() {
            acked.lock().expect("acked lock").push(key);
        }
        n += 1;
    }
}

/// The value the writers store under `key`.
fn value_of(key: &str) -> String {
    format!("v{}", key.replace('/', "."))
}

fn leader_kill_loses_no_acknowledged_write(binary: &ServerBinary) {
    let writes_while_down: usize = std::env::var("FAILOVER_WRITES_WHILE_DOWN")
        .map(|v| v.parse().expect("FAILOVER_WRITES_WHILE_DOWN is a number"))
        .unwrap_or(WRITES_WHILE_DOWN);
    let opts = ClusterOptions {
        size: 3,
        snapshot_count: Some(100),
        ..ClusterOptions::default()
    };
    eprintln!("phase 1: start 3 {} members", binary.name());
    let mut cluster = Cluster::start(binary, &opts);
    let leader = cluster.wait_leader(Duration::from_secs(10));
    eprintln!("phase 1: leader is m{leader}");

    eprintln!("phase 2: {WRITERS} writers through every endpoint");
    let writers = Writers::start(&cluster.endpoints());
    writers.wait_acked(50, PHASE_DEADLINE, "before the kill");

    eprintln!("phase 3: kill -9 the leader m{leader}");
    cluster.kill(leader);
    let acked_at_kill = writers.acked_count();
    let resumed = writers.wait_acked(acked_at_kill + 20, RESUME_DEADLINE, "after the kill");
    let new_leader = cluster.wait_leader(RESUME_DEADLINE);
    eprintln!(
        "phase 3: 20 more writes acknowledged {resumed:?} after the kill; m{new_leader} leads"
    );

    eprintln!("phase 4: {writes_while_down} writes while m{leader} is down");
    writers.wait_acked(
        acked_at_kill + writes_while_down,
        PHASE_DEADLINE,
        "while down",
    );
    let acked = writers.stop();
    eprintln!("phase 4: {} writes acknowledged in total", acked.len());

    eprintln!("phase 5: restart m{leader}");
    cluster.restart(leader);

    eprintln!("phase 6: every member holds every acknowledged write");
    for member in 0..cluster.size() {
        check_member(&cluster, member, &acked);
    }
    wait_same_revision(&cluster);

    let mut acked = acked;
    let leader = cluster.wait_leader(RESUME_DEADLINE);
    let follower = (leader + 1) % cluster.size();
    eprintln!("phase 7: kill -9 follower m{follower}, {FEW_WRITES} writes, restart (log catch-up)");
    cluster.kill(follower);
    for n in 0..FEW_WRITES {
        let key = format!("f/{n:03}");
        cluster
            .ctl(leader, &["put", &key, &value_of(&key)])
            .ok("put with one follower down");
        acked.push(key);
    }
    cluster.restart(follower);
    for member in 0..cluster.size() {
        check_member(&cluster, member, &acked);
    }
    wait_same_revision(&cluster);
}

/// Member `member`'s keys by serializable read, polled until every acknowledged key is
/// there (a follower may still be applying); then checks every value.
fn check_member(cluster: &Cluster, member: usize, acked: &[String]) {
    let start = Instant::now();
    loop {
        let kvs = local_keys(cluster, member);
        let missing: Vec<&String> = acked.iter().filter(|k| !kvs.contains_key(*k)).collect();
        if missing.is_empty() {
            for (key, value) in &kvs {
                assert_eq!(
                    *value,
                    value_of(key),
                    "m{member}: {key} holds a value never written"
                );
            }
            eprintln!(
                "m{member}: all {} acknowledged keys present ({} keys)",
                acked.len(),
                kvs.len()
            );
            return;
        }
        assert!(
            start.elapsed() < PHASE_DEADLINE,
            "m{member} misses {} acknowledged keys, e.g. {:?}\nlog tail:\n{}",
            missing.len(),
            &missing[..missing.len().min(5)],
            cluster.log_tail(member, 30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The member's own view of every key (serializable: no raft round, no forwarding).
fn local_keys(cluster: &Cluster, member: usize) -> BTreeMap<String, String> {
    let out = cluster
        .ctl(
            member,
            &[
                "--command-timeout=30s",
                "get",
                "",
                "--from-key",
                "--consistency=s",
            ],
        )
        .ok("serializable get");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines.len().is_multiple_of(2),
        "m{member}: odd key/value output"
    );
    lines
        .chunks(2)
        .map(|kv| (kv[0].to_string(), kv[1].to_string()))
        .collect()
}

/// Polls until all members report the same store revision (serializable reads).
fn wait_same_revision(cluster: &Cluster) {
    let start = Instant::now();
    loop {
        let revisions: Vec<Option<u64>> = (0..cluster.size())
            .map(|m| {
                let out = cluster.ctl(m, &["get", "none", "--consistency=s", "-w", "json"]);
                support::json::u64_first(&out.stdout, "revision")
            })
            .collect();
        if revisions[0].is_some() && revisions.iter().all(|r| *r == revisions[0]) {
            eprintln!("all members at revision {:?}", revisions[0]);
            return;
        }
        assert!(
            start.elapsed() < PHASE_DEADLINE,
            "members disagree: {revisions:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
