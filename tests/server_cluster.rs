//! In-process raftkv clusters over an in-memory channel transport: what `EtcdServer`
//! promises end to end, without gRPC.
//!
//! - a single member serves put/range/txn/delete/compact with etcd's headers;
//! - three members: writes through a follower, the leader stops, a new leader is elected,
//!   writes resume, and every acknowledged write is on every live member;
//! - a member restarted from its data dir keeps its data and revision;
//! - a member that missed more than the log keeps catches up from a snapshot image.
//!
//! Every wait is a condition polled against a deadline; nothing sleeps for synchronisation.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use raftkv::proto::etcdserverpb as pb;
use raftkv::raft::{Message, NodeId};
use raftkv::server::{member_id, EtcdServer, RaftInbox, ServerConfig, ServerError, Transport};

const TOKEN: &str = "test-cluster";
const DEADLINE: Duration = Duration::from_secs(30);

/// The wires between in-process members: inboxes by member id, and who is cut off.
#[derive(Default)]
struct Net {
    inboxes: Mutex<HashMap<u64, Arc<dyn RaftInbox>>>,
    down: Mutex<HashSet<u64>>,
    snapshots_delivered: AtomicU64,
}

impl Net {
    fn inbox(&self, id: u64) -> Option<Arc<dyn RaftInbox>> {
        if self.down.lock().unwrap().contains(&id) {
            return None;
        }
        self.inboxes.lock().unwrap().get(&id).cloned()
    }
}

struct MemTransport {
    from: u64,
    net: Arc<Net>,
}

impl Transport for MemTransport {
    fn send(&self, msgs: Vec<Message>) {
        if self.net.inbox(self.from).is_none() {
            return;
        }
        for m in msgs {
            if let Some(inbox) = self.net.inbox(m.to.0) {
                inbox.step(m);
            }
        }
    }

    fn send_snapshot(&self, msg: Message, image: Box<dyn Read + Send>) {
        let net = self.net.clone();
        let from = self.from;
        std::thread::spawn(move || {
            let to = msg.to;
            let mut image = image;
            let ok = match net.inbox(to.0) {
                Some(inbox) => inbox.install_snapshot(msg, &mut image).is_ok(),
                None => false,
            };
            if ok {
                net.snapshots_delivered.fetch_add(1, Ordering::SeqCst);
            }
            if let Some(me) = net.inbox(from) {
                me.report_snapshot(to, ok);
            }
        });
    }

    fn set_peer(&self, _id: NodeId, _peer_urls: Vec<String>) {}

    fn remove_peer(&self, _id: NodeId) {}
}

fn peer_urls(name: &str) -> Vec<String> {
    vec![format!("http://{name}.test:2380")]
}

fn config(name: &str, dir: &Path, names: &[&str], snapshot_count: u64) -> ServerConfig {
    let mut cfg = ServerConfig::new(name, dir.join(name));
    cfg.initial_cluster = names
        .iter()
        .map(|n| (n.to_string(), peer_urls(n)))
        .collect();
    cfg.initial_cluster_token = TOKEN.to_string();
    cfg.advertise_peer_urls = peer_urls(name);
    cfg.advertise_client_urls = vec![format!("http://{name}.test:2379")];
    cfg.heartbeat_interval = Duration::from_millis(20);
    cfg.election_timeout = Duration::from_millis(200);
    cfg.snapshot_count = snapshot_count;
    cfg
}

fn start(net: &Arc<Net>, cfg: ServerConfig) -> EtcdServer {
    let id = member_id(&cfg.advertise_peer_urls, TOKEN);
    let transport = Arc::new(MemTransport {
        from: id,
        net: net.clone(),
    });
    let server = EtcdServer::start(cfg, transport).expect("member starts");
    net.inboxes.lock().unwrap().insert(id, server.inbox());
    net.down.lock().unwrap().remove(&id);
    server
}

/// Polls `check` until it yields a value or the deadline passes.
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_leader(members: &[&EtcdServer]) -> u64 {
    wait_for("a leader all members agree on", || async {
        let leaders: HashSet<Option<u64>> = members.iter().map(|m| m.leader()).collect();
        match leaders.into_iter().collect::<Vec<_>>()[..] {
            [Some(l)] if members.iter().any(|m| m.member_id() == l) => Some(l),
            _ => None,
        }
    })
    .await
}

fn put_req(key: &str, value: &str) -> pb::PutRequest {
    pb::PutRequest {
        key: Bytes::from(key.to_string()),
        value: Bytes::from(value.to_string()),
        ..Default::default()
    }
}

fn get_req(key: &str, serializable: bool) -> pb::RangeRequest {
    pb::RangeRequest {
        key: Bytes::from(key.to_string()),
        serializable,
        ..Default::default()
    }
}

/// Retries a put while the cluster has no leader yet (a client's retry loop).
async fn put_retrying(m: &EtcdServer, key: &str, value: &str) -> pb::PutResponse {
    wait_for("a put to succeed", || async {
        match m.put(put_req(key, value)).await {
            Ok(r) => Some(r),
            Err(ServerError::NoLeader | ServerError::Timeout | ServerError::LeaderChanged) => None,
            Err(e) => panic!("put {key}: {e}"),
        }
    })
    .await
}

async fn value_of(m: &EtcdServer, key: &str) -> Option<Vec<u8>> {
    let r = m
        .range(get_req(key, true))
        .await
        .expect("serializable range");
    r.kvs.first().map(|kv| kv.value.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_member_serves_kv_with_headers() {
    let dir = tempfile::tempdir().unwrap();
    let net = Arc::new(Net::default());
    let s = start(&net, config("solo", dir.path(), &["solo"], 10_000));
    wait_leader(&[&s]).await;

    eprintln!("phase: put answers with etcd's header");
    let r = put_retrying(&s, "foo", "bar").await;
    let h = r.header.unwrap();
    assert_eq!(h.revision, 2, "first write of a fresh store is revision 2");
    assert_eq!(h.member_id, s.member_id());
    assert_eq!(h.cluster_id, s.cluster_id());
    assert!(h.raft_term >= 1);

    eprintln!("phase: linearizable range sees it");
    let got = s.range(get_req("foo", false)).await.unwrap();
    assert_eq!(got.kvs.len(), 1);
    assert_eq!(&got.kvs[0].value[..], b"bar");
    assert_eq!(got.header.unwrap().revision, 2);

    eprintln!("phase: txn compares and writes");
    let txn = pb::TxnRequest {
        compare: vec![pb::Compare {
            result: pb::compare::CompareResult::Equal as i32,
            target: pb::compare::CompareTarget::Value as i32,
            key: Bytes::from_static(b"foo"),
            range_end: Bytes::new(),
            target_union: Some(pb::compare::TargetUnion::Value(Bytes::from_static(b"bar"))),
        }],
        success: vec![pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(put_req("baz", "1"))),
        }],
        failure: vec![],
    };
    let t = s.txn(txn).await.unwrap();
    assert!(t.succeeded);
    assert_eq!(t.header.unwrap().revision, 3);
    assert_eq!(value_of(&s, "baz").await.as_deref(), Some(&b"1"[..]));

    eprintln!("phase: delete, then compact, then old revisions are gone");
    let d = s
        .delete_range(pb::DeleteRangeRequest {
            key: Bytes::from_static(b"baz"),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(d.deleted, 1);
    assert_eq!(d.header.unwrap().revision, 4);
    let c = s
        .compact(pb::CompactionRequest {
            revision: 3,
            physical: false,
        })
        .await
        .unwrap();
    assert_eq!(c.header.unwrap().revision, 4);
    let mut old = get_req("foo", false);
    old.revision = 2;
    let err = s.range(old).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange);
    assert_eq!(
        err.message(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    let physical = s
        .compact(pb::CompactionRequest {
            revision: 4,
            physical: true,
        })
        .await
        .unwrap();
    assert_eq!(physical.header.unwrap().revision, 4);
    let err = s
        .compact(pb::CompactionRequest {
            revision: 9,
            physical: false,
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        "etcdserver: mvcc: required revision is a future revision"
    );

    eprintln!("phase: refused requests keep etcd's errors");
    let err = s.put(put_req("", "x")).await.unwrap_err();
    assert_eq!(err.message(), "etcdserver: key is not provided");
    let mut leased = put_req("k", "v");
    leased.lease = 42;
    let err = s.put(leased).await.unwrap_err();
    assert_eq!(err.message(), "etcdserver: requested lease not found");

    eprintln!("phase: status and member list");
    let st = s.status().await.unwrap();
    assert_eq!(st.leader, s.member_id());
    assert_eq!(st.version, "3.5.17");
    assert!(st.raft_applied_index >= 5 && st.raft_index >= st.raft_applied_index);
    assert!(st.db_size > 0);
    let published = wait_for("client URLs published", || async {
        let ml = s.member_list();
        let m = ml.members.first().cloned()?;
        (!m.client_ur_ls.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(published.name, "solo");
    assert_eq!(
        published.client_ur_ls,
        vec!["http://solo.test:2379".to_string()]
    );
    s.stop();
    let err = s.put(put_req("after", "stop")).await.unwrap_err();
    assert_eq!(err.message(), "etcdserver: server stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_data_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let net = Arc::new(Net::default());
    let cfg = config("solo", dir.path(), &["solo"], 5);
    let s = start(&net, cfg.clone());
    wait_leader(&[&s]).await;
    eprintln!("phase: 20 writes with snapshots every 5 entries");
    let mut last = 0;
    for i in 0..20 {
        last = put_retrying(&s, &format!("k{i}"), &format!("v{i}"))
            .await
            .header
            .unwrap()
            .revision;
    }
    s.stop();
    drop(s);

    eprintln!("phase: restart from the data dir");
    let s = start(&net, cfg);
    wait_leader(&[&s]).await;
    for i in 0..20 {
        assert_eq!(
            value_of(&s, &format!("k{i}")).await,
            Some(format!("v{i}").into_bytes()),
            "k{i} survives the restart"
        );
    }
    assert_eq!(s.header().revision, last);
    let r = put_retrying(&s, "after", "restart").await;
    assert_eq!(r.header.unwrap().revision, last + 1);
    s.stop();
}

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
async fn writes_beyond_the_backend_quota_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let net = Arc::new(Net::default());
    let mut cfg = config("solo", dir.path(), &["solo"], 10_000);
    cfg.quota_backend_bytes = 1;
    let s = start(&net, cfg);
    wait_leader(&[&s]).await;
    let err = wait_for("the quota to be enforced", || async {
        s.put(put_req("k", "v")).await.err()
    })
    .await;
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    assert_eq!(err.message(), "etcdserver: mvcc: database space exceeded");
    let d = s
        .delete_range(pb::DeleteRangeRequest {
            key: Bytes::from_static(b"k"),
            ..Default::default()
        })
        .await;
    assert!(d.is_ok(), "deletes stay allowed over the quota");
    s.stop();
}

/// The `_count` sample of histogram `name` in the Prometheus text exposition.
fn histogram_count(text: &str, name: &str) -> u64 {
    let prefix = format!("{name}_count ");
    let line = text
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("{name}_count missing from:\n{text}"));
    line[prefix.len()..].trim().parse().unwrap()
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
    let fsyncs_before = histogram_count(&leader.metrics().encode_text(), fsync);

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
