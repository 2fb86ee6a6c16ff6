//! Cluster membership and the leader's per-member progress: the `ProgressTracker`, and how
//! a committed single-server change (paper §6, thesis §4.1) takes effect.
//!
//! A change is proposed as an `EntryKind::ConfChange` entry and takes effect only when the
//! application applies it and calls `RawNode::apply_conf_change`. The leader refuses a new
//! change while an earlier one is not yet applied (`Raft::pending_conf_index`), so at most
//! one is ever in flight and any two successive configurations share a majority.
//!
//! Worked example: voters {1, 2, 3}, learner 4. `AddVoter 4` is committed and applied on
//! the leader: voters {1, 2, 3, 4}, learners {}; quorum grows from 2 to 3 and 4's existing
//! progress is kept. Then `RemoveNode 1` applied on leader 1: 1 is no longer a voter, so it
//! steps down and {2, 3, 4} elect a new leader.
//!
//! Learners receive the log but are never in `voters`, so `quorum.rs` never counts them:
//! not for commit, not for elections, not for check-quorum or ReadIndex rounds, and they
//! never campaign. A node that believes it is a learner still *answers* vote requests (as
//! etcd does): it may have been promoted by a change it has not applied yet, and the
//! candidate, which only counts the voters of its own configuration, decides whether the
//! answer matters.

use std::collections::{BTreeMap, BTreeSet};

use super::node::Raft;
use super::progress::Progress;
use super::{ConfChange, ConfChangeKind, ConfState, Index, NodeId, Role};

/// The membership plus one `Progress` per member (used only while leader).
#[derive(Clone, Debug)]
pub(crate) struct ProgressTracker {
    pub(crate) voters: BTreeSet<NodeId>,
    pub(crate) learners: BTreeSet<NodeId>,
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    inflight_msgs_max: usize,
}

impl ProgressTracker {
    pub(crate) fn new(conf: &ConfState, next: Index, inflight_msgs_max: usize) -> ProgressTracker {
        let mut tracker = ProgressTracker {
            voters: BTreeSet::new(),
            learners: BTreeSet::new(),
            progress: BTreeMap::new(),
            inflight_msgs_max,
        };
        tracker.set_conf(conf, next);
        tracker
    }

    /// Replaces the membership (snapshot install), with fresh progress for everyone.
    pub(crate) fn set_conf(&mut self, conf: &ConfState, next: Index) {
        self.voters = conf.voters.clone();
        self.learners = conf.learners.clone();
        self.progress.clear();
        for &id in self.voters.iter().chain(self.learners.iter()) {
            self.progress
                .insert(id, Progress::new(next, self.inflight_msgs_max));
        }
    }

    pub(crate) fn conf_state(&self) -> ConfState {
        ConfState {
            voters: self.voters.clone(),
            learners: self.learners.clone(),
        }
    }

    pub(crate) fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    /// Resets every member's progress for a new leadership term.
    pub(crate) fn reset_progress(&mut self, next: Index) {
        for pr in self.progress.values_mut() {
            *pr = Progress::new(next, self.inflight_msgs_max);
        }
    }

    /// Applies one change; `next` is where a newly added member's replication starts.
    pub(crate) fn apply(&mut self, cc: &ConfChange, next: Index) {
        let id = cc.node;
        match cc.kind {
            ConfChangeKind::AddVoter => {
                self.learners.remove(&id);
                self.voters.insert(id);
            }
            ConfChangeKind::AddLearner => {
                self.voters.remove(&id);
                self.learners.insert(id);
            }
            ConfChangeKind::RemoveNode => {
                self.voters.remove(&id);
                self.learners.remove(&id);
                self.progress.remove(&id);
                return;
            }
        }
        let inflight_msgs_max = self.inflight_msgs_max;
        self.progress.entry(id).or_insert_with(|| {
            let mut pr = Progress::new(next, inflight_msgs_max);
            // A member that just joined has had no chance to be heard from; do not let
            // check-quorum count it against the leader in the current window.
            pr.recent_active = true;
            pr
        });
    }

    pub(crate) fn check_invariants(&self) {
        assert!(
            self.voters.is_disjoint(&self.learners),
            "a member is both voter and learner: {:?} / {:?}",
            self.voters,
            self.learners
        );
        for id in self.voters.iter().chain(self.learners.iter()) {
            assert!(
                self.progress.contains_key(id),
                "member {id} has no progress"
            );
        }
        for (id, pr) in &self.progress {
            assert!(
                self.voters.contains(id) || self.learners.contains(id),
                "progress for non-member {id}"
            );
            pr.check_invariants();
        }
    }
}

impl Raft {
    /// Whether this node may campaign: it is a voter (learners and removed nodes never do).
    pub(crate) fn promotable(&self) -> bool {
        self.tracker.is_voter(self.id)
    }

    /// Makes a committed change take effect; called as the application applies it.
    pub(crate) fn apply_conf_change(&mut self, cc: &ConfChange) -> ConfState {
        let next = self.log.last_index().next();
        self.tracker.apply(cc, next);
        if self.role == Role::Leader {
            self.after_leader_conf_change(cc.node);
        }
        self.tracker.conf_state()
    }

    fn after_leader_conf_change(&mut self, changed: NodeId) {
        if !self.tracker.is_voter(self.id) {
            // A leader that removed (or demoted) itself no longer belongs to the quorum
            // it leads; it steps down and lets the remaining voters elect a leader.
            self.become_follower(self.term, None);
            return;
        }
        if self
            .lead_transferee
            .is_some_and(|t| !self.tracker.is_voter(t))
        {
            self.lead_transferee = None;
        }
        // Removing a voter can shrink the quorum enough to commit pending entries.
        if self.maybe_commit() {
            self.bcast_append();
        } else if changed != self.id && self.tracker.progress.contains_key(&changed) {
            self.maybe_send_append(changed, true);
        }
    }

    /// Whether committed-but-unapplied entries include a membership change; campaigning
    /// before it is applied would use a stale configuration.
    pub(crate) fn has_unapplied_conf_change(&self) -> bool {
        let lo = self.log.applied.max(self.log.snapshot_index()).next();
        if lo > self.log.committed {
            return false;
        }
        self.log
            .entries(lo, self.log.committed.next(), u64::MAX)
            .iter()
            .any(|e| e.kind == super::EntryKind::ConfChange)
    }
}
