//! [`RawNode`]: the public face of the Raft core. Skeleton; bodies arrive next.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{
    Config, ConfChange, ConfState, Entry, Error, HardState, Index, Message, NodeId, Ready,
    RecoveredState, Role, Snapshot, SoftState, Term,
};

/// How the leader is replicating to one follower (etcd's progress states).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// Sends one Append at a time until the follower's match index is known.
    Probe,
    /// Streams Appends optimistically, bounded by `Config::inflight_msgs_max`.
    Replicate,
    /// Waits for the follower to install a snapshot.
    Snapshot,
}

/// The leader's view of one member, as reported by [`RawNode::status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgressStatus {
    /// Highest index known to be replicated on the member.
    pub match_index: Index,
    /// Next index to send.
    pub next_index: Index,
    /// Replication state.
    pub state: ProgressState,
    /// Whether the member was heard from during the current check-quorum window.
    pub recent_active: bool,
    /// Whether the member is a learner.
    pub is_learner: bool,
}

/// A snapshot of a node's state for monitoring and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// Current term, vote and commit index.
    pub hard_state: HardState,
    /// Role and known leader.
    pub soft_state: SoftState,
    /// Highest index the application has applied (as of the last `advance`).
    pub applied: Index,
    /// Index of the last log entry.
    pub last_index: Index,
    /// Index of the first entry still in the log (after the compaction point).
    pub first_index: Index,
    /// Per-member progress; only filled in on the leader.
    pub progress: BTreeMap<NodeId, ProgressStatus>,
}

/// One Raft node: a deterministic state machine driven by ticks, messages and proposals.
pub struct RawNode {
    _private: (),
}

#[allow(unused_variables, missing_docs)]
impl RawNode {
    /// Builds a node from its configuration and what it recovered from storage.
    pub fn new(config: Config, recovered: RecoveredState) -> Result<RawNode, Error> {
        todo!()
    }
    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        todo!()
    }
    /// Starts an election now.
    pub fn campaign(&mut self) {
        todo!()
    }
    /// Proposes data to be appended to the log.
    pub fn propose(&mut self, data: Bytes) -> Result<(), Error> {
        todo!()
    }
    /// Proposes a membership change.
    pub fn propose_conf_change(&mut self, cc: ConfChange) -> Result<(), Error> {
        todo!()
    }
    /// Handles a message from a peer.
    pub fn step(&mut self, msg: Message) -> Result<(), Error> {
        todo!()
    }
    /// Requests a linearizable read.
    pub fn read_index(&mut self, context: Bytes) {
        todo!()
    }
    /// Asks the leader to hand leadership to `to`.
    pub fn transfer_leader(&mut self, to: NodeId) {
        todo!()
    }
    /// Applies a committed membership change.
    pub fn apply_conf_change(&mut self, cc: &ConfChange) -> ConfState {
        todo!()
    }
    /// Compacts the log up to the snapshot.
    pub fn compact(&mut self, snapshot: Snapshot) {
        todo!()
    }
    /// Reports that a message to `id` could not be delivered.
    pub fn report_unreachable(&mut self, id: NodeId) {
        todo!()
    }
    /// Reports the outcome of sending a snapshot to `id`.
    pub fn report_snapshot(&mut self, id: NodeId, success: bool) {
        todo!()
    }
    /// Whether `ready` would return something to do.
    pub fn has_ready(&self) -> bool {
        todo!()
    }
    /// Returns the next batch of work.
    pub fn ready(&mut self) -> Ready {
        todo!()
    }
    /// Acknowledges that the last Ready was fully handled.
    pub fn advance(&mut self) {
        todo!()
    }
    /// Current status.
    pub fn status(&self) -> Status {
        todo!()
    }
    /// Asserts internal invariants.
    pub fn check_invariants(&self) {
        todo!()
    }
    /// This node's id.
    pub fn id(&self) -> NodeId {
        todo!()
    }
    /// This node's role.
    pub fn role(&self) -> Role {
        todo!()
    }
    /// The known leader.
    pub fn leader(&self) -> Option<NodeId> {
        todo!()
    }
    /// Current term.
    pub fn term(&self) -> Term {
        todo!()
    }
    /// Commit index.
    pub fn commit(&self) -> Index {
        todo!()
    }
    /// Applied index.
    pub fn applied(&self) -> Index {
        todo!()
    }
    /// Last log index.
    pub fn last_index(&self) -> Index {
        todo!()
    }
    /// First index still in the log.
    pub fn first_index(&self) -> Index {
        todo!()
    }
    /// Entries in `[lo, hi)` still in the log.
    pub fn entries(&self, lo: Index, hi: Index) -> Vec<Entry> {
        todo!()
    }
    /// Term of the entry at `index`, if known.
    pub fn term_at(&self, index: Index) -> Option<Term> {
        todo!()
    }
    /// Current membership.
    pub fn conf_state(&self) -> ConfState {
        todo!()
    }
}
