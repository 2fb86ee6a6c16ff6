//! Shared harness of the `server_*` tests: in-process members over an in-memory channel
//! [`Transport`] (`MemTransport`, with a switch to cut a member off), configs with short
//! timers, and waits that poll a condition against a deadline (never bare sleeps).
#![allow(dead_code)]

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

pub const TOKEN: &str = "test-cluster";
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The wires between in-process members: inboxes by member id, and who is cut off.
#[derive(Default)]
pub struct Net {
    pub inboxes: Mutex<HashMap<u64, Arc<dyn RaftInbox>>>,
    pub down: Mutex<HashSet<u64>>,
    pub snapshots_delivered: AtomicU64,
}

impl Net {
    pub fn inbox(&self, id: u64) -> Option<Arc<dyn RaftInbox>> {
        if self.down.lock().unwrap().contains(&id) {
            return None;
        }
        self.inboxes.lock().unwrap().get(&id).cloned()
    }
}

pub struct MemTransport {
    pub from: u64,
    pub net: Arc<Net>,
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

pub fn peer_urls(name: &str) -> Vec<String> {
    vec![format!("http://{name}.test:2380")]
}

pub fn config(name: &str, dir: &Path, names: &[&str], snapshot_count: u64) -> ServerConfig {
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

pub fn start(net: &Arc<Net>, cfg: ServerConfig) -> EtcdServer {
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
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
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

pub async fn wait_leader(members: &[&EtcdServer]) -> u64 {
    wait_for("a leader all members agree on", || async {
        let leaders: HashSet<Option<u64>> = members.iter().map(|m| m.leader()).collect();
        match leaders.into_iter().collect::<Vec<_>>()[..] {
            [Some(l)] if members.iter().any(|m| m.member_id() == l) => Some(l),
            _ => None,
        }
    })
    .await
}

pub fn put_req(key: &str, value: &str) -> pb::PutRequest {
    pb::PutRequest {
        key: Bytes::from(key.to_string()),
        value: Bytes::from(value.to_string()),
        ..Default::default()
    }
}

pub fn get_req(key: &str, serializable: bool) -> pb::RangeRequest {
    pb::RangeRequest {
        key: Bytes::from(key.to_string()),
        serializable,
        ..Default::default()
    }
}

/// Retries a put while the cluster has no leader yet (a client's retry loop).
pub async fn put_retrying(m: &EtcdServer, key: &str, value: &str) -> pb::PutResponse {
    wait_for("a put to succeed", || async {
        match m.put(put_req(key, value)).await {
            Ok(r) => Some(r),
            Err(ServerError::NoLeader | ServerError::Timeout | ServerError::LeaderChanged) => None,
            Err(e) => panic!("put {key}: {e}"),
        }
    })
    .await
}

pub async fn value_of(m: &EtcdServer, key: &str) -> Option<Vec<u8>> {
    let r = m
        .range(get_req(key, true))
        .await
        .expect("serializable range");
    r.kvs.first().map(|kv| kv.value.to_vec())
}

/// The `_count` sample of histogram `name` in the Prometheus text exposition.
pub fn histogram_count(text: &str, name: &str) -> u64 {
    let prefix = format!("{name}_count ");
    let line = text
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("{name}_count missing from:\n{text}"));
    line[prefix.len()..].trim().parse().unwrap()
}
