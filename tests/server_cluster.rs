//! In-process three-member clusters over an in-memory channel transport (see
//! `server_support`): what `EtcdServer` promises with peers, without gRPC.
//!
//! - writes through a follower; the leader stops; a new leader is elected; writes resume;
//!   every acknowledged write is on every live member;
//! - a member that missed more than the log keeps catches up from a snapshot image;
//! - a member without quorum fails fast with `no leader`;
//! - concurrent writes share fsyncs and all apply.
//!
//! Every wait is a condition polled against a deadline; nothing sleeps for synchronisation.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use raftkv::proto::etcdserverpb as pb;
use raftkv::server::{EtcdServer, ServerConfig, ServerError};

mod server_support;
use server_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_survive_leader_stop_and_keep_acked_writes() {
    let dir = tempfile::tempdir().unwrap();
    let net = Arc::new(Net::default());
    let names = ["n1", "n2", "n3"];
    let members: Vec<EtcdServer> = names
        .iter()
        .map(|n| start(&net, config(n, dir.path(), &names, 10_000)))
        .collect();
    let all: Vec<&EtcdServer> = members.iter().collect();
    let leader = wait_leader(&all).await;

    eprintln!("phase: writes through a follower");
    let follower = members.iter().find(|m| m.member_id() != leader).unwrap();
    let mut acked = Vec::new();
    for i in 0..10 {
        put_retrying(follower, &format!("a{i}"), "1").await;
        acked.push(format!("a{i}"));
    }
    let got = follower.range(get_req("a9", false)).await.unwrap();
    assert_eq!(
        got.kvs.len(),
        1,
        "a follower's linearizable read sees its write"
    );

    eprintln!("phase: stop the leader");
    let old = members.iter().find(|m| m.member_id() == leader).unwrap();
    net.down.lock().unwrap().insert(leader);
    old.stop();
    let live: Vec<&EtcdServer> = members.iter().filter(|m| m.member_id() != leader).collect();
    let new_leader = wait_leader(&live).await;
    assert_ne!(new_leader, leader);

    eprintln!("phase: writes resume on both survivors");
    for (i, m) in live.iter().enumerate().cycle().take(10) {
        let key = format!("b{i}-{}", acked.len());
        put_retrying(m, &key, "2").await;
        acked.push(key);
    }

    eprintln!("phase: every acknowledged write is on every live member");
    for m in &live {
        m.linearizable_barrier().await.expect("barrier");
        for key in &acked {
            assert!(
                value_of(m, key).await.is_some(),
                "{key} missing on {:x}",
                m.member_id()
            );
        }
    }
    for m in live {
        m.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_member_catches_up_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let net = Arc::new(Net::default());
    let names = ["n1", "n2", "n3"];
    let cfgs: Vec<ServerConfig> = names
        .iter()
        .map(|n| config(n, dir.path(), &names, 10))
        .collect();
    let mut members: Vec<EtcdServer> = cfgs.iter().map(|c| start(&net, c.clone())).collect();
    let all: Vec<&EtcdServer> = members.iter().collect();
    let leader = wait_leader(&all).await;

    eprintln!("phase: stop a follower, write far past the log the leader keeps");
    let lag_at = members
        .iter()
        .position(|m| m.member_id() != leader)
        .unwrap();
    let lag_id = members[lag_at].member_id();
    net.down.lock().unwrap().insert(lag_id);
    members[lag_at].stop();
    let writer = members
        .iter()
        .find(|m| m.member_id() == leader)
        .unwrap()
        .clone();
    for i in 0..60 {
        put_retrying(&writer, &format!("k{i:02}"), &format!("v{i}")).await;
    }

    eprintln!("phase: restart it; it catches up from an image");
    members[lag_at] = start(&net, cfgs[lag_at].clone());
    let lagger = members[lag_at].clone();
    wait_for("the lagging member to hold the last write", || async {
        value_of(&lagger, "k59").await
    })
    .await;
    // The counter rises just after the image is installed (which is what made k59 visible).
    wait_for("the snapshot transfer to be counted", || async {
        (net.snapshots_delivered.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    // And the install shows in etcd's metrics: timed, and no longer in progress.
    let saves = "etcd_snap_db_save_total_duration_seconds";
    wait_for("the image install to be timed", || async {
        let text = lagger.metrics().encode_text();
        (histogram_count(&text, saves) >= 1).then_some(())
    })
    .await;
    let text = lagger.metrics().encode_text();
    let in_progress = "etcd_server_snapshot_apply_in_progress_total ";
    let line = text.lines().find(|l| l.starts_with(in_progress));
    assert_eq!(
        line.map(|l| l[in_progress.len()..].trim()),
        Some("0"),
        "{text}"
    );
    for i in 0..60 {
        assert_eq!(
            value_of(&lagger, &format!("k{i:02}")).await,
            Some(format!("v{i}").into_bytes())
        );
    }
    assert_eq!(lagger.header().revision, writer.header().revision);

    eprintln!("phase: it keeps following after the snapshot");
    put_retrying(&writer, "after", "snap").await;
    wait_for("the write after the snapshot", || async {
        value_of(&lagger, "after").await
    })
    .await;
    for m in &members {
        m.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_without_quorum_fails_fast_with_no_leader() {
    let dir = tempfile::tempdir().unwrap();
    let net = Arc::new(Net::default());
    let names = ["n1", "n2", "n3"];
    let members: Vec<EtcdServer> = names
        .iter()
        .map(|n| start(&net, config(n, dir.path(), &names, 10_000)))
        .collect();
    let all: Vec<&EtcdServer> = members.iter().collect();
    wait_leader(&all).await;
    put_retrying(&members[0], "before", "1").await;

    eprintln!("phase: two of three members stop; the survivor loses its leader");
    for m in &members[1..] {
        net.down.lock().unwrap().insert(m.member_id());
        m.stop();
    }
    let survivor = &members[0];
    let err = wait_for("the survivor to refuse with no leader", || async {
        match survivor.put(put_req("k", "v")).await {
            Err(ServerError::NoLeader) => Some(ServerError::NoLeader),
            Err(ServerError::Timeout) => None,
            Ok(_) => None,
            Err(e) => panic!("unexpected error {e}"),
        }
    })
    .await;
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert_eq!(err.message(), "etcdserver: no leader");
    let err = survivor.linearizable_barrier().await.unwrap_err();
    assert_eq!(err.message(), "etcdserver: no leader");
    assert_eq!(
        value_of(survivor, "before").await.as_deref(),
        Some(&b"1"[..]),
        "serializable reads still answer"
    );
    survivor.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_fsyncs_and_all_apply_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let net = Arc::new(Net::default());
    let names = ["n1", "n2", "n3"];
    let members: Vec<EtcdServer> = names
        .iter()
        .map(|n| start(&net, config(n, dir.path(), &names, 10_000)))
        .collect();
    let all: Vec<&EtcdServer> = members.iter().collect();
    let leader_id = wait_leader(&all).await;
    put_retrying(&members[0], "warmup", "1").await;
    let leader = members.iter().find(|m| m.member_id() == leader_id).unwrap();
    let fsync = "etcd_disk_wal_fsync_duration_seconds";
    let text = leader.metrics().encode_text();
    assert!(text.contains("etcd_server_is_leader 1"), "{text}");
    assert!(text.contains("etcd_server_has_leader 1"), "{text}");
    let fsyncs_before = histogram_count(&text, fsync);

    eprintln!("phase: 300 writes in flight at once, through every member");
    const WRITES: usize = 300;
    let mut tasks = Vec::new();
    for i in 0..WRITES {
        let m = members[i % members.len()].clone();
        tasks.push(tokio::spawn(async move {
            m.put(put_req(&format!("c{i:03}"), "x")).await
        }));
    }
    let mut revisions = Vec::new();
    for t in tasks {
        let r = t
            .await
            .unwrap()
            .expect("a write with a leader and quorum succeeds");
        revisions.push(r.header.unwrap().revision);
    }
    revisions.sort_unstable();
    revisions.dedup();
    assert_eq!(revisions.len(), WRITES, "every write got its own revision");

    eprintln!("phase: the leader fsynced far fewer times than it took writes");
    let fsyncs = histogram_count(&leader.metrics().encode_text(), fsync) - fsyncs_before;
    eprintln!("leader fsyncs for {WRITES} writes: {fsyncs}");
    assert!(fsyncs >= 1, "the writes were made durable");
    assert!(
        fsyncs < WRITES as u64,
        "{fsyncs} fsyncs for {WRITES} writes: no batching"
    );

    eprintln!("phase: every member holds every write");
    for m in &members {
        m.linearizable_barrier().await.unwrap();
        let all_c = m
            .range(pb::RangeRequest {
                key: Bytes::from_static(b"c"),
                range_end: Bytes::from_static(b"d"),
                count_only: true,
                serializable: true,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(all_c.count, WRITES as i64);
    }
    for m in &members {
        m.stop();
    }
}

/// Throughput report, not a check (tests never assert speed): `cargo test --release --test
/// server_cluster throughput -- --ignored --nocapture`. In-process 3 members over channels,
/// on real disks (tempdir): what the driver's batching gives before gRPC is involved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput_report() {
    let dir = tempfile::tempdir().unwrap();
    let net = Arc::new(Net::default());
    let names = ["n1", "n2", "n3"];
    let members: Vec<EtcdServer> = names
        .iter()
        .map(|n| start(&net, config(n, dir.path(), &names, 10_000)))
        .collect();
    let all: Vec<&EtcdServer> = members.iter().collect();
    let leader_id = wait_leader(&all).await;
    let leader = members
        .iter()
        .find(|m| m.member_id() == leader_id)
        .unwrap()
        .clone();
    put_retrying(&leader, "warmup", "1").await;
    for clients in [1usize, 16, 256] {
        let writes = 2000usize;
        let started = std::time::Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let m = leader.clone();
            tasks.push(tokio::spawn(async move {
                for i in (c..writes).step_by(clients) {
                    m.put(put_req(&format!("t{clients}-{i}"), "0123456789abcdef"))
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "{clients:>4} clients: {writes} puts in {secs:.2}s = {:.0} puts/s",
            writes as f64 / secs
        );
    }
    for m in &members {
        m.stop();
    }
}
