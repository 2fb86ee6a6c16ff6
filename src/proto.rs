//! Generated protobuf messages and gRPC services (from `proto/`, compiled by `build.rs`).
//!
//! - [`etcdserverpb`], [`mvccpb`], [`authpb`]: etcd's v3 client API, wire-identical to
//!   etcd 3.5 (same packages, names and field numbers), so etcdctl and etcd's client
//!   libraries work against raftkv. Each service has a `*_server` module (a trait the API
//!   layer implements) and a `*_client` module.
//! - [`raftkvpb`]: raftkv's own formats: Raft peer messages and the `RaftPeer` service
//!   (used by the peer transport), and the payloads of log entries (`InternalRequest`,
//!   `ConfChange`, written by the API layer, read by the apply loop).
//! - [`health`]: the standard `grpc.health.v1` service, from the `tonic-health` crate.
//!
//! This module holds only generated code: conversions to the Raft core's types, validation
//! and error mapping live with their callers (peer transport, API layer), where the bytes
//! are checked once on the way in.
//!
//! All `bytes` fields are [`bytes::Bytes`].

// Generated code carries the comments of the `.proto` files but not on every item, and
// prost emits patterns clippy would rewrite.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// etcd's stored key-value record and watch event (`mvccpb`).
pub mod mvccpb {
    include!(concat!(env!("OUT_DIR"), "/mvccpb.rs"));
}

/// etcd's users, roles and permissions (`authpb`).
pub mod authpb {
    include!(concat!(env!("OUT_DIR"), "/authpb.rs"));
}

/// etcd's v3 client API: KV, Watch, Lease, Cluster, Maintenance and Auth (`etcdserverpb`).
pub mod etcdserverpb {
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
}

/// raftkv's peer protocol and log payloads (`raftkvpb`).
pub mod raftkvpb {
    include!(concat!(env!("OUT_DIR"), "/raftkvpb.rs"));
}

/// The encoded `google.protobuf.FileDescriptorSet` of every file in `proto/`: what a gRPC
/// reflection service serves, and what tests read to check service and method names.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/raftkv_descriptor.bin"));

/// The standard gRPC health service (`grpc.health.v1`), served with the client API.
pub use tonic_health as health;
