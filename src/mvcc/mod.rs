//! The multi-version concurrency control store: etcd's revisioned key-value model.
//!
//! Every write request gets the next store-wide *revision*; every version of every key is
//! kept under its revision in a [`backend::Backend`] until *compaction* removes history
//! that no read can reach any more; an in-memory [`index::Index`] of per-key *generations*
//! answers which revision of a key was visible at any revision. See `docs/mvcc.md` for the
//! concepts with worked examples and the durability rule.
//!
//! Entry points: [`Store::open`] on a [`SledBackend`] or [`MemBackend`];
//! [`Store::range`] for reads; [`Store::begin_apply`] -> [`ApplyBatch`] for writes (put,
//! delete_range, txn, compact, server records) committed with the applied Raft index;
//! [`Store::compact_step`] for physical compaction; [`Store::hash_kv`];
//! [`Store::snapshot`] / [`import_snapshot`] / [`Store::install_snapshot`];
//! [`Store::defrag`]; [`Store::db_size`];
//! [`Store::sync_durable`]; [`WatchHub`], the watchable store's watchers. This module knows nothing of Raft or of the server.
#![deny(missing_docs)]

pub mod backend;
mod compaction;
mod compare;
mod defrag;
pub mod error;
mod hash;
mod history;
pub mod index;
pub mod key_index;
pub mod kv;
#[cfg(test)]
mod persistence_tests;
mod range;
pub mod revision;
mod snapshot;
mod store;
#[cfg(test)]
mod store_tests;
mod txn;
pub mod validate;
mod watch;
mod watch_sync;
#[cfg(test)]
mod watch_tests;

pub use backend::mem::MemBackend;
pub use backend::sled::{SledBackend, SledConfig};
pub use backend::{Backend, Bucket};
pub use compaction::{CompactionProgress, COMPACTION_BATCH_KEYS};
pub use defrag::{DefragCopy, DefragReport};
pub use error::{GrpcCode, MvccError, Result};
pub use hash::{KvHash, KvHasher};
pub use kv::*;
pub use revision::Revision;
pub use snapshot::{import_snapshot, SnapshotReader, SNAPSHOT_MAGIC};
pub use store::{DbSize, DurableSyncPoint, Store};
pub use txn::{ApplyBatch, CommitOutcome, LeaseCheck};
pub use validate::{
    validate_delete_range, validate_put, validate_range, validate_txn, MAX_TXN_OPS_DEFAULT,
};
pub use watch::{SinkError, WatchBatch, WatchCounts, WatchHub, WatchSink, WatchSpec, WatcherId};
pub use watch_sync::{SYNC_EVENTS_MAX, SYNC_WATCHERS_MAX};
