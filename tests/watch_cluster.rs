//! Watches in a 3-member cluster: a watch opened on a follower (live and historical) sees
//! every event written through the leader, in order, with prev_kv — for raftkv and for
//! etcd 3.4 alike. Seeded (`SEED=n` replays).

mod support;
mod watch_support;

use std::time::Duration;

use support::{Cluster, ClusterOptions, ServerBinary};
use watch_support::{connect, seed, Stream, Want, Writer};

fn a_watch_on_a_follower_sees_every_event(binary: &ServerBinary) {
    let opts = ClusterOptions {
        size: 3,
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(binary, &opts);
    let leader = cluster.wait_leader(Duration::from_secs(30));
    let follower = (leader + 1) % 3;
    let seed = seed();
    let leader_url = cluster.member(leader).client_url.clone();
    let follower_url = cluster.member(follower).client_url.clone();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut w = Writer::new(connect(&leader_url).await, seed).await;
        for _ in 0..30 {
            w.step(32).await;
        }
        let mut s = Stream::open(connect(&follower_url).await).await;
        let all = |start_revision| Want {
            key: b"k".to_vec(),
            range_end: vec![0],
            start_revision,
            prev_kv: true,
            ..Default::default()
        };
        let list = [all(w.revision + 1), all(2)];
        let mut ids = Vec::new();
        for want in &list {
            ids.push(s.create(want).await);
        }
        for _ in 0..150 {
            w.step(32).await;
        }
        s.expect_events(&ids, &list, &w.events, seed).await;
    });
}

server_tests!(a_watch_on_a_follower_sees_every_event);
