//! The gRPC peer transport end to end on loopback: `GrpcTransport` on one side,
//! `peer::serve` (the `RaftPeer` service) on the other, a fake `RaftInbox` recording what
//! arrives.
//!
//! Each test node runs in a tokio runtime of its own, so "crashing" a node is dropping its
//! runtime: every task, listener and connection of that node goes at once, as with a kill.
//! Waits are on conditions with a deadline (the inbox signals a condvar on every event).
//!
//! What is proved: messages arrive in order and are batched; a message to an unknown peer is
//! dropped without harm; a down peer is reported unreachable, also when its queue overflows;
//! a restarted peer is reconnected to; a multi-MiB snapshot arrives intact and is reported;
//! a corrupt, truncated or foreign transfer is refused and nothing is installed.

use std::io::{self, Cursor, Read};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftkv::peer::{self, GrpcTransport, TransportOptions};
use raftkv::proto::raftkvpb::{self, raft_peer_client::RaftPeerClient};
use raftkv::raft::{ConfState, Index, Message, MessageKind, NodeId, Snapshot, Term};
use raftkv::server::{RaftInbox, ServerError, Transport};
use sha2::{Digest, Sha256};
use tokio::runtime::Runtime;

const CLUSTER_ID: u64 = 0xc1c5;
const DEADLINE: Duration = Duration::from_secs(30);

/// Everything the transport delivered to one member.
#[derive(Default)]
struct Seen {
    stepped: Vec<Message>,
    unreachable: Vec<NodeId>,
    snapshot_reports: Vec<(NodeId, bool)>,
    installed: Vec<(Message, Vec<u8>)>,
    install_errors: Vec<String>,
}

struct FakeInbox {
    seen: Mutex<Seen>,
    changed: Condvar,
    /// Accept snapshots without reading the image, as a server whose store is already newer.
    skip_images: AtomicBool,
}

impl FakeInbox {
    fn new() -> Arc<FakeInbox> {
        Arc::new(FakeInbox {
            seen: Mutex::new(Seen::default()),
            changed: Condvar::new(),
            skip_images: AtomicBool::new(false),
        })
    }

    fn record(&self, f: impl FnOnce(&mut Seen)) {
        f(&mut self.seen.lock().unwrap());
        self.changed.notify_all();
    }

    /// What arrived so far.
    fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap()
    }

    /// Waits up to `timeout` for `done`; returns whether it held.
    fn wait_for(&self, timeout: Duration, done: impl Fn(&Seen) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut seen = self.seen();
        while !done(&seen) {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            seen = self.changed.wait_timeout(seen, deadline - now).unwrap().0;
        }
        true
    }

    /// Waits for `done` or fails the test naming `what`.
    fn wait(&self, what: &str, done: impl Fn(&Seen) -> bool) {
        if self.wait_for(DEADLINE, done) {
            return;
        }
        let seen = self.seen();
        panic!(
            "timed out waiting for {what}: stepped {}, unreachable {:?}, snapshot reports {:?}, \
             installed {}, install errors {:?}",
            seen.stepped.len(),
            seen.unreachable,
            seen.snapshot_reports,
            seen.installed.len(),
            seen.install_errors
        );
    }
}

impl RaftInbox for FakeInbox {
    fn cluster_id(&self) -> u64 {
        CLUSTER_ID
    }

    fn step(&self, msg: Message) {
        self.record(|s| s.stepped.push(msg));
    }

    fn install_snapshot(&self, msg: Message, image: &mut dyn Read) -> Result<(), ServerError> {
        let mut bytes = Vec::new();
        if self.skip_images.load(Ordering::SeqCst) {
            self.record(|s| s.installed.push((msg, bytes)));
            return Ok(());
        }
        match image.read_to_end(&mut bytes) {
            Ok(_) => {
                self.record(|s| s.installed.push((msg, bytes)));
                Ok(())
            }
            Err(e) => {
                self.record(|s| s.install_errors.push(e.to_string()));
                Err(ServerError::InvalidSnapshot(e.to_string()))
            }
        }
    }

    fn report_unreachable(&self, id: NodeId) {
        self.record(|s| s.unreachable.push(id));
    }

    fn report_snapshot(&self, id: NodeId, ok: bool) {
        self.record(|s| s.snapshot_reports.push((id, ok)));
    }
}

/// One member: a runtime of its own, a transport, and the peer service on `addr`.
struct Node {
    rt: Option<Runtime>,
    inbox: Arc<FakeInbox>,
    transport: Arc<GrpcTransport>,
    addr: SocketAddr,
}

impl Node {
    /// Starts a member listening on `addr` (port 0: any free port).
    fn start(addr: SocketAddr, opts: TransportOptions) -> Node {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let inbox = FakeInbox::new();
        let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).unwrap();
        let addr = listener.local_addr().unwrap();
        let served: Arc<dyn RaftInbox> = inbox.clone();
        rt.spawn(peer::serve(listener, served, std::future::pending()));
        let transport = {
            let _entered = rt.enter();
            GrpcTransport::new(opts)
        };
        transport.attach(inbox.clone());
        Node {
            rt: Some(rt),
            inbox,
            transport,
            addr,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Crashes the member: its runtime, and with it every task and socket, goes away.
    fn kill(mut self) -> SocketAddr {
        self.rt
            .take()
            .unwrap()
            .shutdown_timeout(Duration::from_secs(5));
        self.addr
    }
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A heartbeat whose `commit` field numbers it, so order can be checked.
fn numbered(from: u64, to: u64, n: u64) -> Message {
    let mut m = Message::new(MessageKind::Heartbeat, NodeId(from), NodeId(to), Term(1));
    m.commit = Index(n);
    m
}

fn numbers(msgs: &[Message]) -> Vec<u64> {
    msgs.iter().map(|m| m.commit.0).collect()
}

#[test]
fn messages_arrive_in_order_both_ways_and_are_batched() {
    let a = Node::start(any_port(), TransportOptions::default());
    let b = Node::start(any_port(), TransportOptions::default());
    a.transport.set_peer(NodeId(2), vec![b.url()]);
    b.transport.set_peer(NodeId(1), vec![a.url()]);

    // Phase 1: 1000 messages queued in one call go out in far fewer batches.
    a.transport
        .send((0..1000).map(|n| numbered(1, 2, n)).collect());
    b.inbox
        .wait("1000 messages at b", |s| s.stepped.len() >= 1000);
    let seen = b.inbox.seen();
    assert_eq!(numbers(&seen.stepped), (0..1000).collect::<Vec<_>>());
    drop(seen);
    let stats = a.transport.peer_stats(NodeId(2)).unwrap();
    assert_eq!(stats.messages_sent, 1000);
    assert!(stats.batches_sent < 1000, "no batching: {stats:?}");

    // Phase 2: one message per call, interleaved with a message to an unknown peer, and
    // traffic the other way on b's own transport.
    for n in 1000..1200 {
        a.transport.send(vec![numbered(1, 2, n), numbered(1, 9, n)]);
        b.transport.send(vec![numbered(2, 1, n)]);
    }
    b.inbox
        .wait("1200 messages at b", |s| s.stepped.len() >= 1200);
    let seen = b.inbox.seen();
    assert_eq!(numbers(&seen.stepped), (0..1200).collect::<Vec<_>>());
    assert!(seen.stepped.iter().all(|m| m.to == NodeId(2)));
    drop(seen);
    a.inbox
        .wait("200 messages at a", |s| s.stepped.len() >= 200);
    let seen = a.inbox.seen();
    assert_eq!(numbers(&seen.stepped), (1000..1200).collect::<Vec<_>>());
    assert!(
        seen.unreachable.is_empty(),
        "unknown peer 9 reported: {:?}",
        seen.unreachable
    );
}

#[test]
fn a_down_peer_is_reported_and_a_restarted_one_reconnected() {
    let a = Node::start(any_port(), TransportOptions::default());
    let b = Node::start(any_port(), TransportOptions::default());
    a.transport.set_peer(NodeId(2), vec![b.url()]);
    a.transport.send(vec![numbered(1, 2, 0)]);
    b.inbox.wait("first message", |s| s.stepped.len() == 1);

    // Phase 1: b crashes; the broken stream (or the failed redial) is reported.
    let addr = b.kill();
    a.transport.send(vec![numbered(1, 2, 1)]);
    a.inbox.wait("b reported unreachable", |s| {
        s.unreachable.contains(&NodeId(2))
    });

    // Phase 2: b comes back on the same address; a keeps sending (as Raft would, on every
    // heartbeat) until messages flow again, still in order.
    let b = Node::start(addr, TransportOptions::default());
    let deadline = Instant::now() + DEADLINE;
    let mut n = 2;
    loop {
        a.transport.send(vec![numbered(1, 2, n)]);
        n += 1;
        if b.inbox
            .wait_for(Duration::from_millis(50), |s| !s.stepped.is_empty())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a never reconnected to the restarted b"
        );
    }
    a.transport.send(vec![numbered(1, 2, n)]);
    b.inbox.wait("message after reconnect", |s| {
        s.stepped.last().is_some_and(|m| m.commit.0 == n)
    });
    let seen = b.inbox.seen();
    let got = numbers(&seen.stepped);
    assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order: {got:?}");
}

#[test]
fn a_full_queue_drops_and_reports_unreachable() {
    let opts = TransportOptions {
        queue_messages_max: 4,
        ..TransportOptions::default()
    };
    let a = Node::start(any_port(), opts);
    // A port nobody listens on: bind, note it, close.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    a.transport
        .set_peer(NodeId(3), vec![format!("http://{dead}")]);
    a.transport
        .send((0..100).map(|n| numbered(1, 3, n)).collect());
    a.inbox
        .wait("peer 3 unreachable", |s| s.unreachable.contains(&NodeId(3)));
    let stats = a.transport.peer_stats(NodeId(3)).unwrap();
    assert_eq!(stats.messages_sent, 0);
    // 4 queued plus at most one already taken by the dialing task.
    assert!(
        stats.messages_dropped >= 95,
        "queue of 4 kept more: {stats:?}"
    );
}

/// `len` bytes of a fixed pattern that no shifted copy matches.
fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn install_snapshot_msg(from: u64, to: u64) -> Message {
    let mut m = Message::new(
        MessageKind::InstallSnapshot,
        NodeId(from),
        NodeId(to),
        Term(4),
    );
    let mut snapshot = Snapshot::default();
    snapshot.metadata.index = Index(77);
    snapshot.metadata.term = Term(3);
    snapshot.metadata.conf_state = ConfState {
        voters: [NodeId(1), NodeId(2)].into(),
        learners: Default::default(),
    };
    m.snapshot = Some(snapshot);
    m
}

#[test]
fn a_snapshot_of_several_mib_arrives_intact() {
    let a = Node::start(any_port(), TransportOptions::default());
    let b = Node::start(any_port(), TransportOptions::default());
    a.transport.set_peer(NodeId(2), vec![b.url()]);
    let bytes = image(5 * 1024 * 1024 + 123);
    let msg = install_snapshot_msg(1, 2);
    a.transport
        .send_snapshot(msg.clone(), Box::new(Cursor::new(bytes.clone())));

    b.inbox
        .wait("snapshot installed", |s| !s.installed.is_empty());
    let seen = b.inbox.seen();
    let (got_msg, got_bytes) = &seen.installed[0];
    assert_eq!(got_msg, &msg);
    assert!(
        got_bytes == &bytes,
        "image differs ({} bytes received)",
        got_bytes.len()
    );
    drop(seen);
    a.inbox.wait("snapshot reported ok", |s| {
        s.snapshot_reports == [(NodeId(2), true)]
    });
}

#[test]
fn a_snapshot_the_receiver_does_not_need_is_still_a_success() {
    let a = Node::start(any_port(), TransportOptions::default());
    let b = Node::start(any_port(), TransportOptions::default());
    b.inbox.skip_images.store(true, Ordering::SeqCst);
    a.transport.set_peer(NodeId(2), vec![b.url()]);
    let bytes = image(8 * 1024 * 1024);
    a.transport
        .send_snapshot(install_snapshot_msg(1, 2), Box::new(Cursor::new(bytes)));
    a.inbox.wait("snapshot reported ok", |s| {
        s.snapshot_reports == [(NodeId(2), true)]
    });
    assert_eq!(b.inbox.seen().installed.len(), 1);
}

/// An image that fails half way, as a disk error in the exporter would.
struct FailingImage(Cursor<Vec<u8>>);

impl Read for FailingImage {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.read(buf)? {
            0 => Err(io::Error::other("export failed")),
            n => Ok(n),
        }
    }
}

#[test]
fn a_snapshot_whose_export_fails_is_reported_and_not_installed() {
    let a = Node::start(any_port(), TransportOptions::default());
    let b = Node::start(any_port(), TransportOptions::default());
    a.transport.set_peer(NodeId(2), vec![b.url()]);
    let image = FailingImage(Cursor::new(image(3 * 1024 * 1024)));
    a.transport
        .send_snapshot(install_snapshot_msg(1, 2), Box::new(image));
    // A snapshot for a peer the transport does not know fails at once.
    a.transport.send_snapshot(
        install_snapshot_msg(1, 9),
        Box::new(Cursor::new(vec![1, 2, 3])),
    );
    a.inbox.wait("both snapshots reported failed", |s| {
        let mut reports = s.snapshot_reports.clone();
        reports.sort();
        reports == [(NodeId(2), false), (NodeId(9), false)]
    });
    b.inbox
        .wait("install refused", |s| !s.install_errors.is_empty());
    let seen = b.inbox.seen();
    assert!(seen.installed.is_empty());
}

/// Hand-made chunk streams against b's service: the receiver's own checks.
fn send_raw_snapshot(
    rt: &Runtime,
    url: String,
    chunks: Vec<raftkvpb::SnapshotChunk>,
) -> Result<u64, tonic::Status> {
    rt.block_on(async move {
        let mut client = RaftPeerClient::connect(url).await.unwrap();
        let r = client.install_snapshot(tokio_stream::iter(chunks)).await?;
        Ok(r.into_inner().received_bytes)
    })
}

fn chunks(data: &[u8], sha256: &[u8], cluster_id: u64) -> Vec<raftkvpb::SnapshotChunk> {
    let msg = peer::convert::message_to_pb(install_snapshot_msg(1, 2));
    let half = data.len() / 2;
    let chunk = |offset: usize, data: &[u8]| raftkvpb::SnapshotChunk {
        cluster_id,
        message: (offset == 0).then(|| msg.clone()),
        offset: offset as u64,
        data: Bytes::copy_from_slice(data),
        last: false,
        sha256: Bytes::new(),
    };
    let mut last = chunk(data.len(), &[]);
    last.last = true;
    last.sha256 = Bytes::copy_from_slice(sha256);
    vec![chunk(0, &data[..half]), chunk(half, &data[half..]), last]
}

#[test]
fn corrupt_truncated_and_foreign_snapshots_are_refused() {
    let b = Node::start(any_port(), TransportOptions::default());
    let client_rt = Runtime::new().unwrap();
    let data = image(2 * 1024 * 1024);
    let good_sha = Sha256::digest(&data);

    let ok = send_raw_snapshot(&client_rt, b.url(), chunks(&data, &good_sha, CLUSTER_ID));
    assert_eq!(
        ok.unwrap(),
        data.len() as u64,
        "the untampered stream is accepted"
    );

    let mut flipped = data.clone();
    flipped[12345] ^= 1;
    let err = send_raw_snapshot(&client_rt, b.url(), chunks(&flipped, &good_sha, CLUSTER_ID));
    let err = err.unwrap_err();
    assert_eq!(err.code(), tonic::Code::DataLoss);
    assert_eq!(err.message(), "snapshot SHA-256 mismatch");

    let mut gap = chunks(&data, &good_sha, CLUSTER_ID);
    gap[1].offset += 1;
    let err = send_raw_snapshot(&client_rt, b.url(), gap).unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    let mut truncated = chunks(&data, &good_sha, CLUSTER_ID);
    truncated.pop();
    let err = send_raw_snapshot(&client_rt, b.url(), truncated).unwrap_err();
    assert_eq!(err.message(), "snapshot stream ended without last chunk");

    let err = send_raw_snapshot(&client_rt, b.url(), chunks(&data, &good_sha, 7)).unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);

    b.inbox
        .wait("three refused installs", |s| s.install_errors.len() == 3);
    let seen = b.inbox.seen();
    assert_eq!(seen.installed.len(), 1, "only the good image was installed");
}

#[test]
fn foreign_and_malformed_batches_end_the_stream() {
    let b = Node::start(any_port(), TransportOptions::default());
    let client_rt = Runtime::new().unwrap();
    let send = |batch: raftkvpb::MessageBatch| {
        let url = b.url();
        client_rt.block_on(async move {
            let mut client = RaftPeerClient::connect(url).await.unwrap();
            client.send(tokio_stream::iter(vec![batch])).await
        })
    };
    let good = peer::convert::message_to_pb(numbered(1, 2, 5));
    let batch = |cluster_id, messages| raftkvpb::MessageBatch {
        cluster_id,
        messages,
    };

    assert!(send(batch(CLUSTER_ID, vec![good.clone()])).is_ok());
    let err = send(batch(CLUSTER_ID + 1, vec![good.clone()])).unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    let mut bad = good.clone();
    bad.kind = 42;
    let err = send(batch(CLUSTER_ID, vec![bad])).unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "malformed peer message: unknown message kind 42"
    );

    b.inbox.wait("the good message", |s| !s.stepped.is_empty());
    let seen = b.inbox.seen();
    assert_eq!(
        numbers(&seen.stepped),
        [5],
        "only the good batch was stepped"
    );
}

/// Not a test of speed (never asserted): prints what the transport carries on loopback.
/// Run with `cargo test --release --test peer_transport -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput_report() {
    let a = Node::start(any_port(), TransportOptions::default());
    let b = Node::start(any_port(), TransportOptions::default());
    a.transport.set_peer(NodeId(2), vec![b.url()]);
    a.transport.send(vec![numbered(1, 2, 0)]);
    b.inbox.wait("first message", |s| s.stepped.len() == 1);

    // Appends of 64 entries x 128 bytes, 64 per send call, as a busy leader would produce.
    let total = 20_000u64;
    let started = Instant::now();
    for chunk in 0..total / 64 {
        let msgs = (0..64)
            .map(|i| {
                let mut m = numbered(1, 2, chunk * 64 + i + 1);
                m.kind = MessageKind::AppendResponse;
                m.context = Bytes::from(vec![7u8; 8192]);
                m
            })
            .collect();
        a.transport.send(msgs);
        // Pace the producer by what arrived, as Raft's flow control would.
        b.inbox.wait("a window of messages", |s| {
            s.stepped.len() as u64 + 4096 >= chunk * 64 + 64
        });
    }
    b.inbox
        .wait("all messages", |s| s.stepped.len() as u64 > total - 64);
    let secs = started.elapsed().as_secs_f64();
    let got = b.inbox.seen().stepped.len() as f64;
    let stats = a.transport.peer_stats(NodeId(2)).unwrap();
    println!(
        "{got} messages of 8 KiB in {secs:.2}s: {:.0} msg/s, {:.1} MiB/s, {} batches, {} dropped",
        got / secs,
        got * 8192.0 / secs / 1048576.0,
        stats.batches_sent,
        stats.messages_dropped
    );
}
