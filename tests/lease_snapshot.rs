//! A follower brought back by a snapshot image knows the leases (raftkv only: etcd keeps
//! 5000 log entries behind a snapshot, far too many writes for a quick test).
//!
//! 3 members, `--snapshot-count 50`. A follower is killed; a lease is granted and keys
//! attached (one re-put without a lease, so detached) while it is down, then 300 writes
//! push the log past a snapshot. The follower restarts and catches up by the image
//! (checked in its log). Its lessor must be rebuilt from the image: `lease list` on it
//! (a local answer) shows the lease, and when the lease is revoked through the leader the
//! follower's own apply deletes exactly the attached keys, at the leader's revision —
//! without the rebuilt attachments it would delete nothing and diverge.

#[path = "lease_support/mod.rs"]
mod lease_support;
mod support;

use std::time::Duration;

use lease_support::{count_local, grant, wait_for};
use support::{Cluster, ClusterOptions};

const FILL: usize = 300;

#[test]
fn follower_restored_from_a_snapshot_knows_the_leases() {
    let Some(binary) = support::binary::require_raftkv() else {
        return;
    };
    let mut cluster = Cluster::start(
        &binary,
        &ClusterOptions {
            size: 3,
            heartbeat_interval_ms: 50,
            election_timeout_ms: 500,
            snapshot_count: Some(50),
            ..Default::default()
        },
    );
    let leader = cluster.wait_leader(Duration::from_secs(10));
    let down = (leader + 1) % 3;
    cluster.kill(down);
    let (id, _) = grant(&cluster, leader, 600);
    let lease = format!("--lease={id}");
    for key in ["sk/a", "sk/b", "sk/c"] {
        cluster.ctl(leader, &["put", key, "v", &lease]).ok("put");
    }
    cluster
        .ctl(leader, &["put", "sk/c", "v2"])
        .ok("re-put detaches");
    std::thread::scope(|s| {
        for t in 0..4 {
            let cluster = &cluster;
            s.spawn(move || {
                for n in (t..FILL).step_by(4) {
                    let key = format!("fill/{n:04}");
                    cluster.ctl(leader, &["put", &key, "x"]).ok("fill");
                }
            });
        }
    });
    cluster.restart(down);
    wait_for(
        "the restarted follower catches up",
        Duration::from_secs(30),
        || count_local(&cluster, down, "fill/").filter(|c| c.0 == FILL as u64),
    );
    let log = cluster.log_tail(down, 400);
    assert!(
        log.contains("installed snapshot image"),
        "the follower must have caught up by a snapshot image; log tail:\n{log}"
    );
    let list = cluster.ctl(down, &["lease", "list"]).ok("lease list");
    assert_eq!(list.stdout, format!("found 1 leases\n{id}\n"));
    cluster.ctl(leader, &["lease", "revoke", &id]).ok("revoke");
    let (_, leader_rev) = count_local(&cluster, leader, "sk/").expect("leader count");
    let (count, rev) = wait_for(
        "the follower applies the revoke",
        Duration::from_secs(10),
        || count_local(&cluster, down, "sk/").filter(|c| c.1 == leader_rev),
    );
    assert_eq!(count, 1, "only the detached sk/c stays on the follower");
    assert_eq!(rev, leader_rev);
}
