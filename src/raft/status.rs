//! Observing a node: [`Status`] for monitoring and tests, and the invariants every node
//! must satisfy at all times (`check_invariants`, run by the simulator after every step).
//!
//! Read-only: nothing here changes the node.

use std::collections::BTreeMap;

use super::node::Raft;
use super::{HardState, Index, NodeId, ProgressState, Role, SoftState};

/// The leader's view of one member, as reported by [`RawNode::status`](super::RawNode::status).
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
    /// Reads queued on this leader awaiting a commit in its term or a heartbeat round.
    pub pending_read_count: usize,
}

impl Raft {
    pub(crate) fn soft_state(&self) -> SoftState {
        SoftState {
            leader: self.leader,
            role: self.role,
        }
    }

    pub(crate) fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
        }
    }

    /// A snapshot of this node's state for monitoring and tests.
    pub(crate) fn status(&self) -> Status {
        let r = self;
        let progress = if r.role == Role::Leader {
            r.tracker
                .progress
                .iter()
                .map(|(&id, p)| {
                    let status = ProgressStatus {
                        match_index: p.matched,
                        next_index: p.next,
                        state: p.state,
                        recent_active: p.recent_active,
                        is_learner: r.tracker.learners.contains(&id),
                    };
                    (id, status)
                })
                .collect()
        } else {
            BTreeMap::new()
        };
        Status {
            id: r.id,
            hard_state: self.hard_state(),
            soft_state: self.soft_state(),
            applied: r.log.applied,
            last_index: r.log.last_index(),
            first_index: r.log.first_index(),
            progress,
            pending_read_count: r.read_only.pending_count(),
        }
    }

    /// Asserts the node's invariants (a failure is a bug in the core): snapshot <= applied
    /// <= committed <= last index, persisted <= last index, membership and progress
    /// consistent, a leader leads its own term as a voter.
    pub(crate) fn check_invariants(&self) {
        let r = self;
        r.log.check_invariants();
        r.tracker.check_invariants();
        assert!(
            r.log.last_term() <= r.term,
            "last log term {} above term {}",
            r.log.last_term(),
            r.term
        );
        match r.role {
            Role::Leader => {
                assert_eq!(r.leader, Some(r.id), "leader does not know it leads");
                assert_eq!(r.vote, Some(r.id), "leader did not vote for itself");
                assert!(r.tracker.is_voter(r.id), "leader {} is not a voter", r.id);
                let own = r.tracker.progress[&r.id].matched;
                // The leader's own copy counts toward commit only once persisted.
                assert!(own <= r.log.persisted, "leader match {own} above persisted");
            }
            Role::Candidate => assert_eq!(r.vote, Some(r.id), "candidate did not vote for itself"),
            Role::PreCandidate | Role::Follower => {}
        }
        if let Some(leader) = r.leader {
            assert!(
                r.role != Role::Leader || leader == r.id,
                "leader field wrong"
            );
        }
    }
}
