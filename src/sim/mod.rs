//! A deterministic, in-memory simulator of a raftkv Raft cluster.
//!
//! It runs real [`crate::raft::RawNode`]s exactly as the server does (the Ready loop of
//! `raft::Ready`), but with a simulated disk that loses unsynced writes on a crash, a
//! simulated network that drops, delays, duplicates, reorders and partitions, and a state
//! machine whose snapshots the nodes exchange. Everything is seeded: a run replays exactly
//! from its seed. After every event an invariant checker ([`history::History`]) asserts
//! Raft's safety properties over the whole history.
//!
//! Layers, bottom up: [`disk`], [`network`], [`app`] (plain data), [`node`] (the Ready
//! loop), [`cluster`] (events), then the two drivers: [`chaos`] with [`liveness`] (random
//! fault schedules for `tests/simulation.rs`) and [`script`] (the golden scenarios of
//! `tests/golden/`); [`format`] prints for both. The simulator does no IO, reads no clock
//! and uses no global RNG. It is test support: the server never calls it.

pub mod app;
pub mod chaos;
pub mod cluster;
pub mod disk;
pub mod format;
pub mod history;
pub mod liveness;
pub mod network;
pub mod node;
pub mod script;

pub use cluster::{Cluster, ClusterConfig};
