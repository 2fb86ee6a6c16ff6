//! The Raft consensus core: leader election, log replication and quorum commit, as in
//! Ongaro and Ousterhout's paper, with pre-vote, check-quorum, ReadIndex, leadership
//! transfer, single-server membership changes and snapshots.
//!
//! The core is deterministic and does no IO: no tokio, files, sockets, wall clock or global
//! random number generator. Time advances only through [`RawNode::tick`]; randomness (the
//! election timeout) comes from an RNG seeded by [`Config::seed`]. Its caller (the server's
//! driver loop in production, the simulator in `tests/`) feeds it messages and ticks and
//! carries out the [`Ready`] batches it produces. See `docs/raft.md` for the map from the
//! paper to this code and for the Ready/advance contract.
//!
//! Design decisions (details in `raw_node.rs`):
//! - [`RawNode`] owns the in-memory log (etcd's `MemoryStorage` and unstable log merged
//!   into one `RaftLog`) with a `persisted` mark; `Ready.entries` is the unpersisted tail
//!   and a restarted node rebuilds from [`RecoveredState`].
//! - One `Ready` outstanding at a time; `advance()` takes no argument.
//! - Vote requests/grants and append/heartbeat acknowledgements go in
//!   `persisted_messages`; the leader's Appends go out while its own write is in flight,
//!   and its own copy counts toward commit only at `advance()`.
//! - Messages to self are never emitted.
//!
//! Map of the files, by concept:
//!
//! | file | concept |
//! |---|---|
//! | `types.rs` | the shared vocabulary: ids, entries, messages, `Ready` |
//! | `raw_node.rs` | the public API and the Ready/advance handshake |
//! | `node.rs` | the state machine struct, role transitions, timers, outbox |
//! | `step.rs` | term rules and per-role message dispatch |
//! | `election.rs` | elections, pre-vote, leadership transfer |
//! | `replication.rs` | Appends, acknowledgements, back-off, commit |
//! | `snapshot.rs` | compaction and InstallSnapshot |
//! | `read_only.rs` | ReadIndex |
//! | `membership.rs` | membership and the leader's progress tracker |
//! | `raft_log.rs`, `progress.rs`, `quorum.rs` | the log, per-follower progress, majorities |
//! | `status.rs`, `error.rs`, `conf_change.rs` | status and invariants, errors, encoding |
#![deny(missing_docs)]

mod conf_change;
mod election;
mod error;
mod membership;
mod node;
#[cfg(test)]
mod paper_tests;
mod progress;
mod quorum;
mod raft_log;
#[cfg(test)]
mod random_tests;
mod raw_node;
mod read_only;
mod replication;
mod snapshot;
mod status;
mod step;
mod types;

pub use error::Error;
pub use progress::ProgressState;
pub use raw_node::RawNode;
pub use status::{ProgressStatus, Status};
pub use types::*;

/// Settings of one Raft node. Times are in ticks: the caller decides how long a tick is.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's id; must not be 0.
    pub id: NodeId,
    /// A follower that hears no leader for this many ticks (randomised in
    /// `[election_timeout_ticks, 2 * election_timeout_ticks)`) starts an election.
    pub election_timeout_ticks: u32,
    /// A leader sends heartbeats every this many ticks; must be below the election timeout.
    pub heartbeat_interval_ticks: u32,
    /// Upper bound on the entry bytes in one Append message (at least one entry is sent).
    pub msg_bytes_max: u64,
    /// How many Append messages may be in flight to one follower in replicate state.
    pub inflight_msgs_max: usize,
    /// Run a pre-vote round before an election, so that a node that cannot win (for
    /// example one rejoining after a partition) does not raise the term and disrupt.
    pub pre_vote: bool,
    /// A leader steps down when it has not heard from a quorum for an election timeout,
    /// and followers that heard a leader recently ignore vote requests.
    pub check_quorum: bool,
    /// Seed of the RNG that randomises election timeouts.
    pub seed: u64,
}

impl Config {
    /// A configuration with etcd's defaults (heartbeat 1 tick, election 10 ticks, pre-vote
    /// and check-quorum on) for node `id`.
    pub fn new(id: NodeId) -> Config {
        Config {
            id,
            election_timeout_ticks: 10,
            heartbeat_interval_ticks: 1,
            msg_bytes_max: 1024 * 1024,
            inflight_msgs_max: 256,
            pre_vote: true,
            check_quorum: true,
            seed: id.0,
        }
    }
}
