//! [`RaftPeerService`]: the receiving end of the peer protocol (the tonic implementation of
//! `raftkvpb::raft_peer_server::RaftPeer`), and [`serve`], which runs it on the peer
//! listener.
//!
//! `Send` streams: each `MessageBatch` is checked for the cluster id, each message decoded
//! and validated (`super::convert`), then handed to `RaftInbox::step` (non-blocking). A
//! batch from another cluster or a malformed message ends the stream with an error status
//! the sender logs; nothing malformed reaches the Raft core. `InstallSnapshot` streams are
//! handled by `super::snapshot_recv`.
//!
//! The service holds no Raft state and never blocks the runtime: stepping only enqueues, and
//! snapshot installation runs on a blocking thread.
//!
//! Called by tonic; served by the binary on `--listen-peer-urls` (via [`serve`], or by adding
//! [`RaftPeerService::into_server`] to its own router).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic::{Request, Response, Status, Streaming};

use super::connect::{CONNECTION_WINDOW_BYTES, STREAM_WINDOW_BYTES};
use super::convert::message_from_pb;
use super::snapshot_recv::{check_cluster, receive};
use crate::proto::raftkvpb::raft_peer_server::{RaftPeer, RaftPeerServer};
use crate::proto::raftkvpb::{
    InstallSnapshotResponse, MembersRequest, MembersResponse, MessageBatch, SendResponse,
    SnapshotChunk,
};
use crate::raft::MessageKind;
use crate::server::{PeerMetrics, RaftInbox};
use prost::Message as _;

/// The largest `MessageBatch` or `SnapshotChunk` accepted. Senders cap batches at a few MiB
/// (`TransportOptions::batch_bytes_max`), but one message may carry entries up to Raft's
/// `max_size_per_msg` plus one maximal request.
pub const MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// HTTP/2 keepalive of the peer listener: a dead sender's stream is noticed within
/// interval + timeout.
const KEEPALIVE: Duration = Duration::from_secs(5);

/// The `RaftPeer` gRPC service. Cheap to clone.
#[derive(Clone)]
pub struct RaftPeerService {
    inbox: Arc<dyn RaftInbox>,
    /// Counts received bytes (`etcd_network_peer_received_bytes_total`).
    metrics: PeerMetrics,
    /// Set to true by [`RaftPeerService::close_streams`]; open `Send` streams watch it.
    stop: Arc<watch::Sender<bool>>,
}

impl RaftPeerService {
    /// A service delivering into `inbox` (from `EtcdServer::inbox`).
    pub fn new(inbox: Arc<dyn RaftInbox>) -> RaftPeerService {
        RaftPeerService {
            metrics: inbox.peer_metrics(),
            inbox,
            stop: Arc::new(watch::channel(false).0),
        }
    }

    /// The tonic server for this service, with peer-sized message limits.
    pub fn into_server(self) -> RaftPeerServer<RaftPeerService> {
        RaftPeerServer::new(self)
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX)
    }

    /// Ends every open `Send` stream with `Unavailable` (and refuses new ones), so that a
    /// graceful server shutdown need not wait for peers' long-lived streams.
    pub fn close_streams(&self) {
        self.stop.send_replace(true);
    }

    /// Steps every message of `batch`, or refuses the batch.
    fn deliver(&self, batch: MessageBatch) -> Result<(), Status> {
        check_cluster(&*self.inbox, batch.cluster_id)?;
        for pb in batch.messages {
            let bytes = pb.encoded_len() as u64;
            let m = message_from_pb(pb).map_err(|e| Status::invalid_argument(e.to_string()))?;
            self.metrics.received(m.from, bytes);
            if self.inbox.is_removed(m.from) {
                return Err(Status::permission_denied(super::join::MEMBER_REMOVED));
            }
            if m.kind == MessageKind::InstallSnapshot {
                return Err(Status::invalid_argument(
                    "InstallSnapshot on the Send stream (snapshots use InstallSnapshot)",
                ));
            }
            self.inbox.step(m);
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl RaftPeer for RaftPeerService {
    async fn send(
        &self,
        request: Request<Streaming<MessageBatch>>,
    ) -> Result<Response<SendResponse>, Status> {
        let remote = request.remote_addr();
        let mut stream = request.into_inner();
        let mut stop = self.stop.subscribe();
        loop {
            let next = tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => {
                    return Err(Status::unavailable("member is stopping"));
                }
                next = stream.message() => next?,
            };
            let Some(batch) = next else {
                return Ok(Response::new(SendResponse {}));
            };
            if let Err(status) = self.deliver(batch) {
                tracing::warn!(?remote, error = %status.message(), "peer stream refused");
                return Err(status);
            }
        }
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<InstallSnapshotResponse>, Status> {
        let remote = request.remote_addr();
        match receive(self.inbox.clone(), request.into_inner()).await {
            Ok(received_bytes) => {
                tracing::info!(?remote, received_bytes, "snapshot received and installed");
                Ok(Response::new(InstallSnapshotResponse { received_bytes }))
            }
            Err(status) => {
                tracing::warn!(?remote, error = %status.message(), "snapshot refused");
                Err(status)
            }
        }
    }

    async fn members(
        &self,
        _request: Request<MembersRequest>,
    ) -> Result<Response<MembersResponse>, Status> {
        Ok(Response::new(super::join::members_response(&*self.inbox)))
    }
}

/// Serves the `RaftPeer` service for `inbox` on `listener` until `shutdown` completes;
/// then closes open peer streams and returns once in-flight calls have finished.
pub async fn serve(
    listener: TcpListener,
    inbox: Arc<dyn RaftInbox>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let service = RaftPeerService::new(inbox);
    let closer = service.clone();
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE))
        .http2_keepalive_timeout(Some(KEEPALIVE))
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .add_service(service.into_server())
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown.await;
            closer.close_streams();
        })
        .await
}
