//! raftkv: an etcd-compatible key-value store built on Raft.
//!
//! The crate is layered one way (see `docs/architecture.md`):
//! - [`raft`]: the deterministic consensus core (no IO, no clock, no global randomness);
//! - [`wal`]: the durable Raft log on disk;
//! - [`mvcc`]: the multi-version revisioned key-value store the Raft log drives;
//! - [`proto`]: generated protobuf and gRPC code (etcd's API, the peer protocol).
//! - [`ctl`]: the `raftkvctl` tool (client side only: it speaks the public gRPC API).
//!
//! `raft` and `mvcc` know nothing of each other; the server layer joins them.

pub mod api;
pub mod ctl;
pub mod lease;
pub mod mvcc;
pub mod peer;
pub mod proto;
pub mod raft;
pub mod server;
pub mod sim;
pub mod wal;
