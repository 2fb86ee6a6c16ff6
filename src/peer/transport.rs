//! [`GrpcTransport`]: the server's outgoing peer traffic over gRPC (implements
//! [`Transport`]).
//!
//! Each known peer has a bounded queue and one task (`super::peer_stream`) that drains it
//! into a long-lived `RaftPeer.Send` stream, batching whatever is queued. `send` never
//! blocks the server's driver thread: a full queue drops the message and reports the peer
//! unreachable (Raft retransmits, and the leader falls back to probing that follower).
//! Messages to peers the transport does not know are dropped. Snapshots go on their own
//! task and connection (`super::snapshot_send`) so an image never holds up heartbeats.
//!
//! Construction order (the server needs the transport, the transport needs the server's
//! inbox): `GrpcTransport::new` inside the tokio runtime, `EtcdServer::start(cfg,
//! transport.clone())`, then `transport.attach(server.inbox())`. Peer tasks wait for the
//! inbox before they send anything (the cluster id comes from it).
//!
//! This module does not interpret messages; it only routes them by `msg.to`.

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::connect::{check_peer_url, DialOptions};
use super::peer_stream::PeerStream;
use super::snapshot_send::send_snapshot;
use crate::raft::{Message, MessageKind, NodeId};
use crate::server::{RaftInbox, Transport};

/// Tuning of a [`GrpcTransport`]. The defaults suit a LAN cluster.
#[derive(Clone, Debug)]
pub struct TransportOptions {
    /// Messages queued per peer before `send` starts dropping (and reporting unreachable).
    pub queue_messages_max: usize,
    /// Messages per `MessageBatch` at most.
    pub batch_messages_max: usize,
    /// A batch stops growing once its encoded size reaches this.
    pub batch_bytes_max: usize,
    /// First wait after a failed connection; doubles per failure up to `backoff_max`.
    pub backoff_min: Duration,
    /// Longest wait between connection attempts.
    pub backoff_max: Duration,
    /// Snapshot image bytes per `SnapshotChunk`.
    pub snapshot_chunk_bytes: usize,
    /// Connection settings.
    pub dial: DialOptions,
}

impl Default for TransportOptions {
    fn default() -> TransportOptions {
        TransportOptions {
            queue_messages_max: 4096,
            batch_messages_max: 512,
            batch_bytes_max: 4 * 1024 * 1024,
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            snapshot_chunk_bytes: 1024 * 1024,
            dial: DialOptions::default(),
        }
    }
}

/// Counters of one peer's traffic since it was (re)configured by `set_peer`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Messages handed to an open stream (delivery is not confirmed).
    pub messages_sent: u64,
    /// `MessageBatch`es handed to an open stream.
    pub batches_sent: u64,
    /// Messages dropped: full queue, or stale after a connection failure.
    pub messages_dropped: u64,
    /// Connection attempts that failed, and streams that broke.
    pub failures: u64,
}

/// Lock-free counters behind [`PeerStats`], shared with the peer's task.
#[derive(Debug, Default)]
pub(super) struct PeerCounters {
    pub(super) messages_sent: AtomicU64,
    pub(super) batches_sent: AtomicU64,
    pub(super) messages_dropped: AtomicU64,
    pub(super) failures: AtomicU64,
    /// When the current unbroken connection came up (None while down).
    pub(super) active_since: std::sync::Mutex<Option<std::time::Instant>>,
}

impl PeerCounters {
    pub(super) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> PeerStats {
        PeerStats {
            messages_sent: self.messages_sent.load(Ordering::Relaxed),
            batches_sent: self.batches_sent.load(Ordering::Relaxed),
            messages_dropped: self.messages_dropped.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }
}

/// What peer tasks share with the transport.
pub(super) struct Shared {
    pub(super) opts: TransportOptions,
    /// `None` until [`GrpcTransport::attach`].
    pub(super) inbox: watch::Receiver<Option<Arc<dyn RaftInbox>>>,
}

impl Shared {
    /// The server's inbox, once attached; `None` if the transport went away first.
    pub(super) async fn attached(&self) -> Option<Arc<dyn RaftInbox>> {
        let mut rx = self.inbox.clone();
        let guard = rx.wait_for(Option::is_some).await.ok()?;
        guard.clone()
    }
}

/// One configured peer.
struct Peer {
    urls: Vec<String>,
    queue: mpsc::Sender<Message>,
    counters: Arc<PeerCounters>,
    task: JoinHandle<()>,
}

/// The gRPC implementation of [`Transport`]. Share it as `Arc<GrpcTransport>`.
pub struct GrpcTransport {
    runtime: Handle,
    shared: Arc<Shared>,
    attach_tx: watch::Sender<Option<Arc<dyn RaftInbox>>>,
    /// Peer id -> peer. Held only to look up or replace entries; never held while calling
    /// into the inbox (the inbox may call back into the transport).
    peers: Mutex<HashMap<NodeId, Peer>>,
}

impl GrpcTransport {
    /// A transport with no peers. Must be called inside a tokio runtime: peer tasks are
    /// spawned on it (`send` itself may be called from any thread).
    pub fn new(opts: TransportOptions) -> Arc<GrpcTransport> {
        let runtime = Handle::try_current()
            .expect("GrpcTransport::new must be called inside a tokio runtime");
        let (attach_tx, inbox) = watch::channel(None);
        Arc::new(GrpcTransport {
            runtime,
            shared: Arc::new(Shared { opts, inbox }),
            attach_tx,
            peers: Mutex::new(HashMap::new()),
        })
    }

    /// Connects the transport to the server: failures are reported to `inbox`, batches
    /// carry `inbox.cluster_id()`. Call once, right after `EtcdServer::start`.
    pub fn attach(&self, inbox: Arc<dyn RaftInbox>) {
        let previous = self.attach_tx.send_replace(Some(inbox));
        assert!(previous.is_none(), "GrpcTransport::attach called twice");
    }

    /// Traffic counters of peer `id`, if it is configured.
    pub fn peer_stats(&self, id: NodeId) -> Option<PeerStats> {
        let peers = self.peers.lock().expect("peers lock poisoned");
        peers.get(&id).map(|p| p.counters.snapshot())
    }

    fn inbox(&self) -> Option<Arc<dyn RaftInbox>> {
        self.attach_tx.borrow().clone()
    }

    /// Reports a failed snapshot from a blocking thread: `report_snapshot` may block until
    /// the server's driver drains its queue, and the caller here may be that driver.
    fn report_snapshot_failed(&self, id: NodeId) {
        if let Some(inbox) = self.inbox() {
            self.runtime
                .spawn_blocking(move || inbox.report_snapshot(id, false));
        }
    }

    /// The URLs of peer `id`, if it is configured.
    fn urls(&self, id: NodeId) -> Option<Vec<String>> {
        let peers = self.peers.lock().expect("peers lock poisoned");
        peers.get(&id).map(|p| p.urls.clone())
    }
}

impl Transport for GrpcTransport {
    fn send(&self, msgs: Vec<Message>) {
        let mut unreachable = Vec::new();
        let mut dropped = Vec::new();
        let mut bad_snapshots = Vec::new();
        {
            let peers = self.peers.lock().expect("peers lock poisoned");
            for m in msgs {
                if m.kind == MessageKind::InstallSnapshot {
                    // The image travels only with send_snapshot; without it the follower
                    // could not install anything.
                    tracing::error!(to = %m.to, "InstallSnapshot given to send(), dropped");
                    bad_snapshots.push(m.to);
                    continue;
                }
                let Some(peer) = peers.get(&m.to) else {
                    tracing::debug!(to = %m.to, kind = ?m.kind, "message to unknown peer dropped");
                    continue;
                };
                if let Err(e) = peer.queue.try_send(m) {
                    PeerCounters::add(&peer.counters.messages_dropped, 1);
                    let to = match e {
                        mpsc::error::TrySendError::Full(m) => m.to,
                        mpsc::error::TrySendError::Closed(m) => m.to,
                    };
                    dropped.push(to);
                    if !unreachable.contains(&to) {
                        unreachable.push(to);
                    }
                }
            }
        }
        let Some(inbox) = self.inbox() else { return };
        if !dropped.is_empty() {
            let metrics = inbox.peer_metrics();
            for to in dropped {
                metrics.send_failed(to, 1);
            }
        }
        for id in unreachable {
            inbox.report_unreachable(id);
        }
        for id in bad_snapshots {
            self.report_snapshot_failed(id);
        }
    }

    fn send_snapshot(&self, msg: Message, image: Box<dyn Read + Send>) {
        assert_eq!(
            msg.kind,
            MessageKind::InstallSnapshot,
            "send_snapshot needs an InstallSnapshot message"
        );
        let Some(urls) = self.urls(msg.to) else {
            tracing::warn!(to = %msg.to, "snapshot to unknown peer dropped");
            self.report_snapshot_failed(msg.to);
            return;
        };
        let shared = self.shared.clone();
        self.runtime
            .spawn(async move { send_snapshot(shared, urls, msg, image).await });
    }

    fn set_peer(&self, id: NodeId, peer_urls: Vec<String>) {
        assert!(id.0 != 0, "set_peer: member id 0");
        for url in &peer_urls {
            if let Err(e) = check_peer_url(url) {
                // Configuration was validated at startup; a member added later with a bad
                // URL stays unreachable rather than taking this node down.
                tracing::error!(peer = %id, error = %e, "peer url refused");
            }
        }
        let mut peers = self.peers.lock().expect("peers lock poisoned");
        if peers.get(&id).is_some_and(|p| p.urls == peer_urls) {
            return;
        }
        let (queue, rx) = mpsc::channel(self.shared.opts.queue_messages_max);
        let counters = Arc::new(PeerCounters::default());
        let stream = PeerStream::new(id, peer_urls.clone(), rx, self.shared.clone(), &counters);
        let task = self.runtime.spawn(stream.run());
        let new = Peer {
            urls: peer_urls,
            queue,
            counters,
            task,
        };
        if let Some(old) = peers.insert(id, new) {
            old.task.abort();
        }
        tracing::info!(peer = %id, "peer configured");
    }

    fn active_since(&self, id: NodeId) -> Option<std::time::Instant> {
        let counters = self
            .peers
            .lock()
            .expect("peers lock poisoned")
            .get(&id)?
            .counters
            .clone();
        let since = *counters
            .active_since
            .lock()
            .expect("active_since lock poisoned");
        since
    }

    fn remove_peer(&self, id: NodeId) {
        let removed = self.peers.lock().expect("peers lock poisoned").remove(&id);
        if let Some(peer) = removed {
            peer.task.abort();
            tracing::info!(peer = %id, "peer removed");
        }
    }
}

impl Drop for GrpcTransport {
    fn drop(&mut self) {
        let peers = self.peers.get_mut().expect("peers lock poisoned");
        for peer in peers.values() {
            peer.task.abort();
        }
    }
}
