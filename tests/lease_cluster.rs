//! Leases in a 3-member cluster, black-box through etcdctl, against real etcd 3.4 (proving
//! the test) and raftkv (election timeout 500 ms):
//!
//! - `kept_alive_through_a_follower_stays_alive`: a 3 s lease renewed only through a
//!   follower (`lease keep-alive --once` every 500 ms, for well over 3 s) keeps its key;
//!   timetolive and list through the follower show it; once renewals stop, it expires.
//! - `expiry_survives_killing_the_leader`: keys attached (through a follower) to a 4 s
//!   lease; the leader is killed with -9 before the lease expires; the new leader still
//!   expires it, and every surviving member loses every attached key, at one and the same
//!   revision, while the unleased key and the key of a 120 s lease stay (the new leader
//!   does not expire every lease at once).

#[path = "lease_support/mod.rs"]
mod lease_support;
mod support;

use std::time::{Duration, Instant};

use lease_support::{count_local, grant, wait_for};
use support::{Cluster, ClusterOptions, ServerBinary};

server_tests!(
    kept_alive_through_a_follower_stays_alive,
    expiry_survives_killing_the_leader
);

fn three(binary: &ServerBinary) -> Cluster {
    Cluster::start(
        binary,
        &ClusterOptions {
            size: 3,
            heartbeat_interval_ms: 50,
            election_timeout_ms: 500,
            ..Default::default()
        },
    )
}

fn kept_alive_through_a_follower_stays_alive(binary: &ServerBinary) {
    let mut cluster = three(binary);
    let leader = cluster.wait_leader(Duration::from_secs(10));
    let follower = (leader + 1) % 3;
    let (id, _) = grant(&cluster, follower, 3);
    let lease = format!("--lease={id}");
    cluster
        .ctl(follower, &["put", "alive", "v", &lease])
        .ok("put");
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        let out = cluster
            .ctl(follower, &["lease", "keep-alive", "--once", &id])
            .ok("keep-alive through a follower");
        assert_eq!(
            out.stdout.trim(),
            format!("lease {id} keepalived with TTL(3)")
        );
        // Pacing between renewals, not synchronisation: each renewal is checked above.
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        count_local(&cluster, follower, "alive").map(|c| c.0),
        Some(1),
        "renewed through a follower for 8 s, the 3 s lease must still hold its key"
    );
    let ttl = cluster
        .ctl(follower, &["lease", "timetolive", &id, "--keys"])
        .ok("timetolive through a follower");
    assert!(
        ttl.stdout
            .starts_with(&format!("lease {id} granted with TTL(3s), remaining("))
            && ttl.stdout.trim_end().ends_with("attached keys([alive])"),
        "timetolive through a follower (answered by the leader): {}",
        ttl.stdout
    );
    let list = cluster.ctl(follower, &["lease", "list"]).ok("lease list");
    assert_eq!(list.stdout, format!("found 1 leases\n{id}\n"));
    wait_for(
        "the lease expires once renewals stop",
        Duration::from_secs(20),
        || count_local(&cluster, leader, "alive").filter(|c| c.0 == 0),
    );
}

fn expiry_survives_killing_the_leader(binary: &ServerBinary) {
    let mut cluster = three(binary);
    let leader = cluster.wait_leader(Duration::from_secs(10));
    let follower = (leader + 1) % 3;
    cluster.ctl(follower, &["put", "keep", "v"]).ok("put keep");
    let (long, _) = grant(&cluster, follower, 120);
    let long_lease = format!("--lease={long}");
    cluster
        .ctl(follower, &["put", "long", "v", &long_lease])
        .ok("put long");
    let (id, _) = grant(&cluster, follower, 4);
    let lease = format!("--lease={id}");
    for k in 0..10 {
        let key = format!("lk/{k}");
        cluster.ctl(follower, &["put", &key, "v", &lease]).ok("put");
    }
    let (count, before) = count_local(&cluster, follower, "lk/").expect("count");
    assert_eq!(count, 10);
    cluster.kill(leader);
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    for &i in &survivors {
        let rev = wait_for(
            "a survivor sees the leased keys gone",
            Duration::from_secs(30),
            || count_local(&cluster, i, "lk/").and_then(|(c, rev)| (c == 0).then_some(rev)),
        );
        assert_eq!(
            rev,
            before + 1,
            "member m{i}: all keys deleted in one revision"
        );
        assert_eq!(count_local(&cluster, i, "keep").map(|c| c.0), Some(1));
        assert_eq!(
            count_local(&cluster, i, "long").map(|c| c.0),
            Some(1),
            "a 120 s lease does not expire with the failover"
        );
    }
    let ttl = cluster
        .ctl(survivors[0], &["lease", "timetolive", &id])
        .ok("timetolive");
    assert_eq!(ttl.stdout.trim(), format!("lease {id} already expired"));
}
