//! The two seams between the server and the peer network: [`Transport`] (outgoing, the
//! peer module implements it over gRPC, tests over channels) and [`RaftInbox`] (incoming,
//! the server implements it).
//!
//! Neither side may block the other: `Transport::send` and `RaftInbox::step` only enqueue
//! into bounded queues and drop when full (Raft retransmits), reporting the peer
//! unreachable so the leader slows down to probing.

use std::io::Read;

use super::{PeerMetrics, ServerError};
use crate::raft::{Message, NodeId};

/// Outgoing peer traffic. Implementations must be cheap and never block the caller (the
/// server's driver thread).
pub trait Transport: Send + Sync + 'static {
    /// Queue messages for their recipients (`msg.to`). Never blocks: a full per-peer queue
    /// drops the message and reports the peer unreachable through the inbox.
    fn send(&self, msgs: Vec<Message>);
    /// Stream `image` (an mvcc snapshot stream) together with the InstallSnapshot `msg` to
    /// `msg.to` on a background task; report the outcome with [`RaftInbox::report_snapshot`].
    fn send_snapshot(&self, msg: Message, image: Box<dyn Read + Send>);
    /// Membership: add, or replace the URLs of, peer `id`.
    fn set_peer(&self, id: NodeId, peer_urls: Vec<String>);
    /// Membership: forget peer `id` (drop its queue and connection).
    fn remove_peer(&self, id: NodeId);
    /// Since when the connection to peer `id` has been up without a failure (None: down,
    /// or never dialled). The strict reconfiguration check asks it, on the leader, as etcd
    /// asks its transport. Transports that do not track connections (in-memory test
    /// networks) report every peer as connected long enough.
    fn active_since(&self, _id: NodeId) -> Option<std::time::Instant> {
        std::time::Instant::now().checked_sub(super::reconfig::HEALTH_INTERVAL)
    }
}

/// Incoming peer traffic, implemented by the server (see [`super::EtcdServer::inbox`]).
pub trait RaftInbox: Send + Sync + 'static {
    /// The local cluster id; the transport drops traffic from other clusters.
    fn cluster_id(&self) -> u64;
    /// Enqueue a message for the Raft driver. Non-blocking: dropped when the queue is full.
    fn step(&self, msg: Message);
    /// Blocking (call on a blocking thread): install a received snapshot `image`, then step
    /// `msg` (an InstallSnapshot). An image that does not verify is refused with
    /// [`ServerError::InvalidSnapshot`] and nothing changes.
    fn install_snapshot(&self, msg: Message, image: &mut dyn Read) -> Result<(), ServerError>;
    /// Messages to `id` could not be delivered (queue full, connection failed).
    fn report_unreachable(&self, id: NodeId);
    /// The outcome of a [`Transport::send_snapshot`] to `id`.
    fn report_snapshot(&self, id: NodeId, ok: bool);
    /// Where the transport counts peer traffic (`etcd_network_*`). The default is a set
    /// nobody exports, for inboxes without metrics (tests).
    fn peer_metrics(&self) -> PeerMetrics {
        PeerMetrics::default()
    }
    /// The member records as this member knows them (served to members that join with
    /// `--initial-cluster-state existing`). Empty by default (test inboxes).
    fn members(&self) -> Vec<crate::proto::etcdserverpb::Member> {
        Vec::new()
    }
    /// Whether `id` was removed from the cluster (its messages are refused so that it
    /// learns it). False by default.
    fn is_removed(&self, _id: NodeId) -> bool {
        false
    }
    /// A peer refused our messages because this member was removed: stop (as etcd's
    /// member does when a peer answers it with "removed"). Does nothing by default.
    fn report_removed(&self) {}
}
