//! Harness of the `watch_*` tests: a seeded random writer that keeps its own model of the
//! events it caused (the independent truth every watcher is compared with), and a watch
//! stream client that collects responses per watch id. Works against any server binary
//! (raftkv or real etcd) through gRPC.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use raftkv::proto::etcdserverpb as pb;
use raftkv::proto::etcdserverpb::kv_client::KvClient;
use raftkv::proto::etcdserverpb::watch_client::WatchClient;
use raftkv::proto::etcdserverpb::watch_request::RequestUnion;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic::Streaming;

pub const DEADLINE: Duration = Duration::from_secs(30);

/// The seed of a randomized test: `SEED=n` replays; printed either way.
pub fn seed() -> u64 {
    let seed = std::env::var("SEED").map_or_else(|_| rand::random(), |s| s.parse().unwrap());
    eprintln!("SEED={seed}");
    seed
}

/// One event as the model and the comparison see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ev {
    pub put: bool,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub revision: i64,
    /// The previous value (None: the key did not exist).
    pub prev: Option<Vec<u8>>,
}

impl Ev {
    pub fn from_pb(e: &raftkv::proto::mvccpb::Event) -> Ev {
        let kv = e.kv.clone().unwrap_or_default();
        Ev {
            put: e.r#type == 0,
            key: kv.key.to_vec(),
            value: kv.value.to_vec(),
            revision: kv.mod_revision,
            prev: e.prev_kv.as_ref().map(|p| p.value.to_vec()),
        }
    }
}

/// What a watcher asks for, mirrored for the model.
#[derive(Clone, Debug, Default)]
pub struct Want {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    pub start_revision: i64,
    pub prev_kv: bool,
    pub no_put: bool,
    pub no_delete: bool,
}

impl Want {
    pub fn request(&self, watch_id: i64) -> pb::WatchRequest {
        let mut filters = Vec::new();
        if self.no_put {
            filters.push(0);
        }
        if self.no_delete {
            filters.push(1);
        }
        pb::WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(pb::WatchCreateRequest {
                key: self.key.clone().into(),
                range_end: self.range_end.clone().into(),
                start_revision: self.start_revision,
                prev_kv: self.prev_kv,
                filters,
                watch_id,
                ..Default::default()
            })),
        }
    }

    fn contains(&self, key: &[u8]) -> bool {
        match self.range_end.as_slice() {
            [] => key == self.key.as_slice(),
            [0] => key >= self.key.as_slice(),
            end => key >= self.key.as_slice() && key < end,
        }
    }

    /// The model's events this watcher must get, in order, with prev only if asked.
    pub fn expected(&self, model: &[Ev]) -> Vec<Ev> {
        model
            .iter()
            .filter(|e| e.revision >= self.start_revision && self.contains(&e.key))
            .filter(|e| if e.put { !self.no_put } else { !self.no_delete })
            .map(|e| Ev {
                prev: if self.prev_kv { e.prev.clone() } else { None },
                ..e.clone()
            })
            .collect()
    }
}

/// A sequential random writer over keys `k0..k7` and its model of every event.
pub struct Writer {
    pub kv: KvClient<Channel>,
    pub rng: StdRng,
    pub state: BTreeMap<Vec<u8>, Vec<u8>>,
    pub events: Vec<Ev>,
    pub revision: i64,
    counter: u64,
}

impl Writer {
    pub async fn new(channel: Channel, seed: u64) -> Writer {
        let mut kv = KvClient::new(channel);
        let head = kv.range(pb::RangeRequest {
            key: "x".into(),
            ..Default::default()
        });
        let revision = head.await.unwrap().into_inner().header.unwrap().revision;
        Writer {
            kv,
            rng: StdRng::seed_from_u64(seed),
            state: BTreeMap::new(),
            events: Vec::new(),
            revision,
            counter: 0,
        }
    }

    fn key(&mut self) -> Vec<u8> {
        format!("k{}", self.rng.gen_range(0..8)).into_bytes()
    }

    fn value(&mut self, bytes: usize) -> Vec<u8> {
        self.counter += 1;
        let mut v = format!("v{}-", self.counter).into_bytes();
        v.resize(bytes.max(v.len()), b'.');
        v
    }

    /// One random write (put, delete, or a txn of up to 3 puts on distinct keys).
    pub async fn step(&mut self, value_bytes: usize) {
        match self.rng.gen_range(0..10) {
            0..=5 => {
                let (key, value) = (self.key(), self.value(value_bytes));
                let req = pb::PutRequest {
                    key: key.clone().into(),
                    value: value.clone().into(),
                    ..Default::default()
                };
                let rev = self
                    .kv
                    .put(req)
                    .await
                    .unwrap()
                    .into_inner()
                    .header
                    .unwrap()
                    .revision;
                self.record(rev, vec![(key, Some(value))]);
            }
            6 | 7 => {
                let key = self.key();
                let req = pb::DeleteRangeRequest {
                    key: key.clone().into(),
                    ..Default::default()
                };
                let resp = self.kv.delete_range(req).await.unwrap().into_inner();
                if resp.deleted > 0 {
                    self.record(resp.header.unwrap().revision, vec![(key, None)]);
                }
            }
            _ => {
                let mut keys: Vec<Vec<u8>> = (0..3).map(|_| self.key()).collect();
                keys.sort();
                keys.dedup();
                let writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = keys
                    .into_iter()
                    .map(|k| (k, Some(self.value(value_bytes))))
                    .collect();
                let success = writes
                    .iter()
                    .map(|(k, v)| pb::RequestOp {
                        request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                            key: k.clone().into(),
                            value: v.clone().unwrap().into(),
                            ..Default::default()
                        })),
                    })
                    .collect();
                let req = pb::TxnRequest {
                    success,
                    ..Default::default()
                };
                let rev = self
                    .kv
                    .txn(req)
                    .await
                    .unwrap()
                    .into_inner()
                    .header
                    .unwrap()
                    .revision;
                self.record(rev, writes);
            }
        }
    }

    fn record(&mut self, revision: i64, writes: Vec<(Vec<u8>, Option<Vec<u8>>)>) {
        assert_eq!(revision, self.revision + 1, "one revision per write");
        self.revision = revision;
        for (key, value) in writes {
            let prev = match &value {
                Some(v) => self.state.insert(key.clone(), v.clone()),
                None => self.state.remove(&key),
            };
            self.events.push(Ev {
                put: value.is_some(),
                key,
                value: value.unwrap_or_default(),
                revision,
                prev,
            });
        }
    }
}

/// One watch stream: requests go in through `send`, responses are collected per watch id.
pub struct Stream {
    pub tx: mpsc::Sender<pb::WatchRequest>,
    /// The response stream, once its headers arrived (etcd sends them only with the first
    /// response, so opening must not wait for them).
    rx: Option<Streaming<pb::WatchResponse>>,
    opening: Option<tokio::task::JoinHandle<Streaming<pb::WatchResponse>>>,
    /// Every response, in arrival order.
    pub all: Vec<pb::WatchResponse>,
}

impl Stream {
    pub async fn open(channel: Channel) -> Stream {
        Stream::open_with(channel, false).await
    }

    /// `leader_required`: send etcd's `hasleader=true` metadata (as kube-apiserver does).
    pub async fn open_with(channel: Channel, leader_required: bool) -> Stream {
        let (tx, req_rx) = mpsc::channel(64);
        let mut client = WatchClient::new(channel);
        let mut requests = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(req_rx));
        if leader_required {
            requests
                .metadata_mut()
                .insert("hasleader", "true".parse().unwrap());
        }
        let opening =
            tokio::spawn(async move { client.watch(requests).await.unwrap().into_inner() });
        Stream {
            tx,
            rx: None,
            opening: Some(opening),
            all: Vec::new(),
        }
    }

    pub async fn send(&self, req: pb::WatchRequest) {
        self.tx.send(req).await.unwrap();
    }

    /// The next response or the stream's error status (panics after the deadline).
    pub async fn next_result(&mut self) -> Result<Option<pb::WatchResponse>, tonic::Status> {
        if self.rx.is_none() {
            let opening = self.opening.take().expect("a stream is opening or open");
            let rx = tokio::time::timeout(DEADLINE, opening).await;
            self.rx = Some(
                rx.expect("watch stream headers within the deadline")
                    .unwrap(),
            );
        }
        let rx = self.rx.as_mut().expect("set above");
        tokio::time::timeout(DEADLINE, rx.message())
            .await
            .expect("a reply within the deadline")
    }

    /// Reads the next response (panics after the deadline).
    pub async fn next(&mut self) -> pb::WatchResponse {
        if self.rx.is_none() {
            let opening = self.opening.take().expect("a stream is opening or open");
            let rx = tokio::time::timeout(DEADLINE, opening).await;
            self.rx = Some(
                rx.expect("watch stream headers within the deadline")
                    .unwrap(),
            );
        }
        let rx = self.rx.as_mut().expect("set above");
        let r = tokio::time::timeout(DEADLINE, rx.message()).await;
        let r = r
            .expect("no watch response within the deadline")
            .unwrap()
            .expect("stream ended");
        self.all.push(r.clone());
        r
    }

    /// Creates a watcher and returns its id from its `created` reply (events of earlier
    /// watchers that arrive first are kept).
    pub async fn create(&mut self, want: &Want) -> i64 {
        self.send(want.request(0)).await;
        loop {
            let r = self.next().await;
            if r.created {
                assert!(!r.canceled, "{r:?}");
                return r.watch_id;
            }
        }
    }

    /// Reads until `done` holds for the events collected so far.
    pub async fn read_until(&mut self, mut done: impl FnMut(&HashMap<i64, Vec<Ev>>) -> bool) {
        while !done(&self.events()) {
            self.next().await;
        }
    }

    /// Events per watch id, in arrival order.
    pub fn events(&self) -> HashMap<i64, Vec<Ev>> {
        let mut out: HashMap<i64, Vec<Ev>> = HashMap::new();
        for r in &self.all {
            out.entry(r.watch_id)
                .or_default()
                .extend(r.events.iter().map(Ev::from_pb));
        }
        out
    }

    /// Reads until each watcher `ids[i]` (created for `wants[i]`) has as many events as the
    /// writer's model says it must, then asserts it got exactly those, and that no
    /// revision's events were split over two responses.
    pub async fn expect_events(&mut self, ids: &[i64], wants: &[Want], model: &[Ev], seed: u64) {
        let expected: Vec<Vec<Ev>> = wants.iter().map(|w| w.expected(model)).collect();
        self.read_until(|got| {
            ids.iter()
                .zip(&expected)
                .all(|(id, e)| got.get(id).map_or(0, Vec::len) >= e.len())
        })
        .await;
        let got = self.events();
        for ((id, e), want) in ids.iter().zip(&expected).zip(wants) {
            assert_eq!(
                got.get(id).cloned().unwrap_or_default(),
                *e,
                "seed {seed}: {want:?}"
            );
        }
        self.assert_atomic(seed);
    }

    /// Asserts no revision's events of one watcher are split over two responses.
    pub fn assert_atomic(&self, seed: u64) {
        let mut last: HashMap<i64, i64> = HashMap::new();
        for r in &self.all {
            let Some(first) = r.events.first() else {
                continue;
            };
            let rev = first.kv.as_ref().unwrap().mod_revision;
            if let Some(prev) = last.get(&r.watch_id) {
                assert!(
                    rev > *prev,
                    "seed {seed}: revision {rev} split or reordered for watch {}",
                    r.watch_id
                );
            }
            let end = r.events.last().unwrap().kv.as_ref().unwrap().mod_revision;
            last.insert(r.watch_id, end);
        }
    }
}

/// A channel to `url` (`http://host:port`).
pub async fn connect(url: &str) -> Channel {
    Channel::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap()
}
