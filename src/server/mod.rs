//! The etcd server: one member of a raftkv cluster, joining the Raft core ([`crate::raft`]),
//! the write-ahead log ([`crate::wal`]) and the MVCC store ([`crate::mvcc`]).
//!
//! [`EtcdServer`] owns a driver thread that is the only owner of the `RawNode`, the `Wal`
//! and the store's write side. Client requests (from the gRPC API layer, `src/api/`) are
//! validated, proposed as `raftkvpb::InternalRequest` log entries, and answered once the
//! entry is durable in the WAL and applied to the store; linearizable reads go through a
//! ReadIndex round. Peer traffic comes in through [`RaftInbox`] and leaves through
//! [`Transport`] (implemented by the gRPC peer transport in `src/peer/`, and by in-memory
//! channels in tests).
//!
//! This module must not speak gRPC or HTTP itself: the API layer maps [`ServerError`] to
//! `tonic::Status` with [`ServerError::code`] and [`ServerError::message`].

mod alarms;
mod apply;
mod compactor;
mod config;
mod convert;
mod corrupt;
mod drill;
mod driver;
mod error;
mod etcd_server;
mod ids;
mod inbox;
mod lease_apply;
mod lease_expiry;
mod lease_ops;
mod members;
mod metrics;
mod move_leader;
mod peer_metrics;
mod reads;
mod ready;
mod reconfig;
mod restore;
mod shared;
mod slow_ops;
mod snapshot;
mod snapshot_file;
mod storage;
pub mod transport;
mod watch_feed;

pub use compactor::{spawn_auto_compactor, AutoCompaction, PeriodicPolicy, RevisionPolicy};
pub use config::{ClusterState, ServerConfig};
pub use corrupt::{initial_mismatches, periodic_suspect, PeerAnswer, PeerHash};
pub use drill::rot_value;
pub use error::ServerError;
pub use etcd_server::EtcdServer;
pub use ids::{cluster_id, member_id};
pub use members::ExistingCluster;
pub use metrics::Metrics;
pub use peer_metrics::PeerMetrics;
pub use restore::{
    restore_snapshot, verify_snapshot, ProgressMeter, RestoreOptions, RestoreReport, VerifyReport,
};
pub use snapshot_file::{
    envelope_footer, envelope_len, open_image, snapshot_file_status, RehashReader,
    SnapshotFileStatus,
};
pub use transport::{RaftInbox, Transport};

/// The server version reported by Status and `/version` (etcd's version string we emulate).
pub const SERVER_VERSION: &str = "3.5.17";

/// The cluster version reported by `/version`.
pub const CLUSTER_VERSION: &str = "3.5.0";
