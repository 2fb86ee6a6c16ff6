//! The peer transport: how members exchange Raft messages and snapshots over gRPC.
//!
//! - [`GrpcTransport`] (`transport`, `peer_stream`, `snapshot_send`): the sending side, the
//!   server's [`crate::server::Transport`]. One bounded queue and one streaming task per
//!   peer; snapshots on a task and connection of their own.
//! - [`RaftPeerService`] (`service`, `snapshot_recv`): the receiving side, the tonic
//!   `RaftPeer` service, delivering into the server's [`crate::server::RaftInbox`].
//! - [`convert`]: `raft::Message` <-> `raftkvpb::Message`, validating what peers send.
//! - [`connect`]: peer URL checks and connection settings.
//!
//! Wiring (in the binary):
//!
//! ```text
//! let transport = GrpcTransport::new(TransportOptions::default());   // inside the runtime
//! let server = EtcdServer::start(cfg, transport.clone())?;
//! transport.attach(server.inbox());
//! tokio::spawn(peer::serve(peer_listener, server.inbox(), shutdown));
//! ```
//!
//! This module moves bytes between members; it never interprets the Raft protocol (the
//! core does) nor touches the WAL or the store (the server does).

pub mod connect;
pub mod convert;
pub mod join;
mod peer_stream;
mod service;
mod snapshot_recv;
mod snapshot_send;
mod transport;

pub use service::{serve, RaftPeerService, MESSAGE_BYTES_MAX};
pub use transport::{GrpcTransport, PeerStats, TransportOptions};

#[cfg(test)]
mod convert_tests;
