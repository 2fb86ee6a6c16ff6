//! The task that carries one peer's messages: it drains the peer's queue into a long-lived
//! `RaftPeer.Send` stream, one `MessageBatch` per wake-up holding whatever is queued, and
//! reconnects with exponential backoff when the connection fails.
//!
//! ```text
//! idle --first message--> dial --ok--> streaming --stream error--> drop queue, report
//!   ^                       |                                       unreachable, backoff
//!   |                       +--error--> drop queue, report unreachable, backoff --+
//!   +---------------------------------------------------------------------------+
//! ```
//!
//! Messages queued while a connection is down are dropped, not replayed: they are stale by
//! then and Raft retransmits what still matters. Order is kept within a connection (one
//! stream, one task), which is all Raft needs.
//!
//! Spawned by `GrpcTransport::set_peer`, aborted by `remove_peer` or a URL change. It never
//! blocks the server: its only link to the driver is the inbox's non-blocking calls.

use std::sync::Arc;
use std::time::Instant;

use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::connect::dial;
use super::convert::message_to_pb;
use super::transport::{PeerCounters, Shared};
use crate::proto::raftkvpb::{self, raft_peer_client::RaftPeerClient};
use crate::raft::{Message, NodeId};
use crate::server::{PeerMetrics, RaftInbox};

/// Batches handed to the HTTP/2 stream but not yet written; small, so that the queue (not
/// this buffer) is where back-pressure shows.
const BATCHES_IN_FLIGHT: usize = 4;

/// How a stream ended.
enum Ended {
    /// The transport dropped the queue (the peer was removed or reconfigured).
    Removed,
    /// The connection or the peer failed; the text says how.
    Failed(String),
}

/// One peer's sending side. Owned by its task.
pub(super) struct PeerStream {
    id: NodeId,
    urls: Vec<String>,
    /// Index (mod `urls.len()`) of the URL to dial; moves on when a dial fails.
    next_url: usize,
    queue: mpsc::Receiver<Message>,
    shared: Arc<Shared>,
    counters: Arc<PeerCounters>,
    /// The server's `etcd_network_*` metrics (from the inbox, once attached).
    metrics: PeerMetrics,
    /// Whether the last attempt failed (log the transition once, not every retry).
    inactive: bool,
    /// Whether a connection ever succeeded (the first one is logged too).
    connected_once: bool,
}

impl PeerStream {
    pub(super) fn new(
        id: NodeId,
        urls: Vec<String>,
        queue: mpsc::Receiver<Message>,
        shared: Arc<Shared>,
        counters: &Arc<PeerCounters>,
    ) -> PeerStream {
        PeerStream {
            id,
            urls,
            next_url: 0,
            queue,
            shared,
            counters: counters.clone(),
            metrics: PeerMetrics::default(),
            inactive: false,
            connected_once: false,
        }
    }

    /// Runs until the transport drops the queue.
    pub(super) async fn run(mut self) {
        let Some(inbox) = self.shared.attached().await else {
            return;
        };
        let cluster_id = inbox.cluster_id();
        self.metrics = inbox.peer_metrics();
        let opts = self.shared.opts.clone();
        let mut backoff = opts.backoff_min;
        loop {
            // Connect lazily: a configured peer nobody talks to costs nothing.
            let Some(first) = self.queue.recv().await else {
                return;
            };
            let url = self
                .urls
                .get(self.next_url % self.urls.len().max(1))
                .cloned();
            let Some(url) = url else {
                self.fail(&*inbox, "no peer urls configured".to_string());
                continue;
            };
            let started = Instant::now();
            let why = match dial(&url, &opts.dial).await {
                Ok(channel) => {
                    self.became_active(&url);
                    match self.stream(channel, first, cluster_id).await {
                        Ended::Removed => return,
                        Ended::Failed(why) => why,
                    }
                }
                Err(e) => {
                    // Try the member's next URL, if it has several.
                    self.next_url += 1;
                    e.to_string()
                }
            };
            self.fail(&*inbox, why);
            if started.elapsed() > opts.backoff_max {
                // The connection was good for a while: this is a fresh failure.
                backoff = opts.backoff_min;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(opts.backoff_max);
        }
    }

    /// Streams batches until the connection fails or the queue is dropped.
    async fn stream(&mut self, channel: Channel, first: Message, cluster_id: u64) -> Ended {
        let mut client = RaftPeerClient::new(channel);
        let (tx, rx) = mpsc::channel(BATCHES_IN_FLIGHT);
        let call = client.send(ReceiverStream::new(rx));
        tokio::pin!(call);
        let mut next = Some(first);
        loop {
            let m = match next.take() {
                Some(m) => m,
                None => tokio::select! {
                    r = &mut call => return Ended::Failed(call_ended(r)),
                    m = self.queue.recv() => match m {
                        Some(m) => m,
                        None => return Ended::Removed,
                    },
                },
            };
            let (batch, bytes) = self.batch(m, cluster_id);
            let n = batch.messages.len() as u64;
            tokio::select! {
                r = &mut call => return Ended::Failed(call_ended(r)),
                sent = tx.send(batch) => if sent.is_err() {
                    return Ended::Failed("stream closed".to_string());
                },
            }
            PeerCounters::add(&self.counters.messages_sent, n);
            PeerCounters::add(&self.counters.batches_sent, 1);
            self.metrics.sent(self.id, bytes);
        }
    }

    /// `first` plus whatever else is queued, within the batch limits, and the encoded size
    /// of its messages.
    fn batch(&mut self, first: Message, cluster_id: u64) -> (raftkvpb::MessageBatch, u64) {
        let opts = &self.shared.opts;
        let first = message_to_pb(first);
        let mut bytes = first.encoded_len();
        let mut messages = vec![first];
        while messages.len() < opts.batch_messages_max && bytes < opts.batch_bytes_max {
            let Ok(m) = self.queue.try_recv() else { break };
            let pb = message_to_pb(m);
            bytes += pb.encoded_len();
            messages.push(pb);
        }
        let batch = raftkvpb::MessageBatch {
            cluster_id,
            messages,
        };
        (batch, bytes as u64)
    }

    /// After a failure: drop what is queued (stale), count it, tell the server.
    fn fail(&mut self, inbox: &dyn RaftInbox, why: String) {
        let mut dropped = 0;
        while self.queue.try_recv().is_ok() {
            dropped += 1;
        }
        PeerCounters::add(&self.counters.messages_dropped, dropped);
        PeerCounters::add(&self.counters.failures, 1);
        *self.active_since() = None;
        // The queued messages and the one being sent never reached the wire.
        self.metrics.send_failed(self.id, dropped + 1);
        if !self.inactive && self.connected_once {
            self.metrics.peer_active(self.id, false);
        }
        if why.contains(super::join::MEMBER_REMOVED) {
            inbox.report_removed();
        }
        if self.inactive {
            tracing::debug!(peer = %self.id, error = %why, "peer still unreachable");
        } else {
            tracing::warn!(peer = %self.id, error = %why, "peer became inactive");
            self.inactive = true;
        }
        inbox.report_unreachable(self.id);
    }

    fn active_since(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.counters
            .active_since
            .lock()
            .expect("active_since lock poisoned")
    }

    fn became_active(&mut self, url: &str) {
        self.active_since().get_or_insert_with(Instant::now);
        if self.inactive || !self.connected_once {
            tracing::info!(peer = %self.id, url, "peer became active");
        }
        self.metrics.peer_active(self.id, true);
        self.inactive = false;
        self.connected_once = true;
    }
}

/// Describes why a `Send` call returned (it only returns when the stream is over).
fn call_ended(r: Result<tonic::Response<raftkvpb::SendResponse>, tonic::Status>) -> String {
    match r {
        Ok(_) => "peer closed the stream".to_string(),
        Err(status) => format!("{:?}: {}", status.code(), status.message()),
    }
}
