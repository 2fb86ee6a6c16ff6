//! Lease expiry and persistence on a single member, black-box through etcdctl, against
//! real etcd 3.4 (proving the test) and raftkv.
//!
//! - `expiry_deletes_every_attached_key_in_one_revision`: 20 keys attached to a 2 s lease
//!   (election timeout 500 ms, so 2 s is above the minimum TTL) disappear with no
//!   keep-alive and no client connected while waiting (each poll is a short etcdctl run);
//!   the revision rises by exactly one, the unleased key stays, and the lease is gone.
//! - `restart_keeps_leases_and_attachments`: after kill -9 and restart the lease is still
//!   listed with its granted TTL and its keys; revoking it then deletes them.

#[path = "lease_support/mod.rs"]
mod lease_support;
mod support;

use std::time::Duration;

use lease_support::{count_at, count_local, grant, wait_for};
use support::{Cluster, ClusterOptions, ServerBinary};

server_tests!(
    expiry_deletes_every_attached_key_in_one_revision,
    restart_keeps_leases_and_attachments
);

const KEYS: usize = 20;

fn single(binary: &ServerBinary) -> Cluster {
    Cluster::start(
        binary,
        &ClusterOptions {
            heartbeat_interval_ms: 50,
            election_timeout_ms: 500,
            ..Default::default()
        },
    )
}

fn expiry_deletes_every_attached_key_in_one_revision(binary: &ServerBinary) {
    let cluster = single(binary);
    cluster.ctl(0, &["put", "keep", "v"]).ok("put keep");
    let (id, ttl) = grant(&cluster, 0, 2);
    assert_eq!(
        ttl, 2,
        "a 2 s TTL is above the minimum and granted as asked"
    );
    for k in 0..KEYS {
        let key = format!("lk/{k:02}");
        let lease = format!("--lease={id}");
        cluster
            .ctl(0, &["put", &key, "v", &lease])
            .ok("put with lease");
    }
    let (count, before) = count_local(&cluster, 0, "lk/").expect("count");
    assert_eq!(count, KEYS as u64);
    let after = wait_for("the leased keys expire", Duration::from_secs(20), || {
        count_local(&cluster, 0, "lk/").and_then(|(c, rev)| (c == 0).then_some(rev))
    });
    assert_eq!(
        after,
        before + 1,
        "every attached key is deleted in one revision"
    );
    assert_eq!(count_at(&cluster, 0, "lk/", before), KEYS as u64);
    assert_eq!(count_at(&cluster, 0, "keep", after), 1, "unleased key kept");
    let ttl = cluster
        .ctl(0, &["lease", "timetolive", &id])
        .ok("timetolive");
    assert_eq!(ttl.stdout.trim(), format!("lease {id} already expired"));
    let list = cluster.ctl(0, &["lease", "list"]).ok("lease list");
    assert_eq!(list.stdout.trim(), "found 0 leases");
}

fn restart_keeps_leases_and_attachments(binary: &ServerBinary) {
    let mut cluster = single(binary);
    let (id, _) = grant(&cluster, 0, 600);
    let lease = format!("--lease={id}");
    cluster.ctl(0, &["put", "a", "1", &lease]).ok("put a");
    cluster.ctl(0, &["put", "b", "2", &lease]).ok("put b");
    cluster
        .ctl(0, &["put", "b", "3"])
        .ok("re-put b without lease detaches it");
    cluster.kill(0);
    cluster.restart(0);
    let list = cluster.ctl(0, &["lease", "list"]).ok("lease list");
    assert_eq!(list.stdout, format!("found 1 leases\n{id}\n"));
    let ttl = cluster
        .ctl(0, &["lease", "timetolive", &id, "--keys"])
        .ok("timetolive");
    assert!(
        ttl.stdout.contains("granted with TTL(600s)") && ttl.stdout.contains("attached keys([a])"),
        "after restart: {}",
        ttl.stdout
    );
    cluster.ctl(0, &["lease", "revoke", &id]).ok("revoke");
    let all = cluster
        .ctl(0, &["get", "", "--from-key", "--keys-only"])
        .ok("get");
    assert_eq!(all.stdout, "b\n\n", "a went with its lease, b stays");
}
