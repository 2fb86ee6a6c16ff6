//! MoveLeader (issue 7), on real etcd and on raftkv alike: `etcdctl move-leader` hands
//! leadership to the chosen voter, prints etcd's line, the cluster agrees on the new
//! leader and writes go on; an unknown transferee is refused with
//! `etcdserver: bad leader transferee`.

use std::time::Duration;

mod support;
use support::{Cluster, ClusterOptions, ServerBinary};

fn move_leader(binary: &ServerBinary) {
    let opts = ClusterOptions {
        size: 3,
        ..ClusterOptions::default()
    };
    let mut c = Cluster::start(binary, &opts);
    let leader = c.wait_leader(Duration::from_secs(20));
    let target = (leader + 1) % 3;
    let (from, to) = (c.member_id(leader), c.member_id(target));
    let out = c
        .ctl_any(&["move-leader", &format!("{to:x}")])
        .ok("move-leader");
    assert!(
        out.out()
            .contains(&format!("Leadership transferred from {from:x} to {to:x}")),
        "{out:?}"
    );
    assert_eq!(c.wait_leader(Duration::from_secs(20)), target);
    c.ctl_any(&["put", "after", "move"])
        .ok("write under the new leader");

    let bad = c.ctl_any(&["move-leader", "1234"]);
    assert!(!bad.success(), "{bad:?}");
    assert!(
        bad.stderr.contains("etcdserver: bad leader transferee"),
        "{bad:?}"
    );
}

server_tests!(move_leader);
