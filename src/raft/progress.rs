//! The leader's per-follower replication progress (etcd's `Progress` and `Inflights`).
//!
//! A follower's progress is in one of three states ([`ProgressState`]):
//! - `Probe`: the leader does not know where the follower's log matches. It sends one
//!   Append at a time and waits (`probe_sent`) for the answer or the next heartbeat reply.
//! - `Replicate`: the match is known; Appends stream optimistically, `next` advances as
//!   they are sent, and at most `inflight_msgs_max` are unacknowledged.
//! - `Snapshot`: the entries the follower needs are compacted away; an InstallSnapshot is
//!   on its way and nothing else is sent until it is acknowledged or reported failed.
//!
//! Worked example: a new leader with last index 10 starts follower 2 at `Probe`, next 11.
//! It sends Append(index 10). 2 rejects with hint 7; next becomes 8 and another probe goes
//! out. 2 accepts up to 10: match 10, next 11, state `Replicate`. Three proposals then send
//! Appends ending at 11, 12, 13 without waiting: inflights holds [11, 12, 13] until acks.
//!
//! This file only keeps the bookkeeping; `replication.rs` decides what to send.

use std::collections::VecDeque;

use super::Index;

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

/// The ring of unacknowledged Appends to one follower in `Replicate` state, each
/// remembered by the last index it carried.
#[derive(Clone, Debug)]
pub(crate) struct Inflights {
    last_indexes: VecDeque<Index>,
    capacity: usize,
}

impl Inflights {
    pub(crate) fn new(capacity: usize) -> Inflights {
        Inflights {
            last_indexes: VecDeque::with_capacity(capacity.min(64)),
            capacity,
        }
    }

    pub(crate) fn full(&self) -> bool {
        self.last_indexes.len() >= self.capacity
    }

    pub(crate) fn add(&mut self, last_index: Index) {
        assert!(!self.full(), "inflights overflow");
        if let Some(&back) = self.last_indexes.back() {
            assert!(last_index > back, "inflight {last_index} not above {back}");
        }
        self.last_indexes.push_back(last_index);
    }

    /// Frees every message whose last index is at most `index` (acknowledged).
    pub(crate) fn free_le(&mut self, index: Index) {
        while self.last_indexes.front().is_some_and(|&i| i <= index) {
            self.last_indexes.pop_front();
        }
    }

    /// Frees the oldest slot (its message was probably lost).
    pub(crate) fn free_first_one(&mut self) {
        self.last_indexes.pop_front();
    }

    pub(crate) fn reset(&mut self) {
        self.last_indexes.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.last_indexes.len()
    }
}

/// What the leader knows about one member's log.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    /// Highest index known to match the leader's log.
    pub(crate) matched: Index,
    /// Next index to send.
    pub(crate) next: Index,
    pub(crate) state: ProgressState,
    /// In `Probe`: an Append was sent and no answer has come yet.
    pub(crate) probe_sent: bool,
    /// In `Snapshot`: the index of the snapshot being sent.
    pub(crate) pending_snapshot: Index,
    /// Heard from during the current check-quorum window.
    pub(crate) recent_active: bool,
    pub(crate) inflights: Inflights,
}

impl Progress {
    pub(crate) fn new(next: Index, inflight_msgs_max: usize) -> Progress {
        Progress {
            matched: Index(0),
            next,
            state: ProgressState::Probe,
            probe_sent: false,
            pending_snapshot: Index(0),
            recent_active: false,
            inflights: Inflights::new(inflight_msgs_max),
        }
    }

    fn reset_state(&mut self, state: ProgressState) {
        self.state = state;
        self.probe_sent = false;
        self.pending_snapshot = Index(0);
        self.inflights.reset();
    }

    pub(crate) fn become_probe(&mut self) {
        // Coming back from a snapshot, the follower has at least the snapshot's entries.
        let after_snapshot = self.pending_snapshot.next();
        let was_snapshot = self.state == ProgressState::Snapshot;
        self.reset_state(ProgressState::Probe);
        self.next = if was_snapshot {
            self.matched.next().max(after_snapshot)
        } else {
            self.matched.next()
        };
    }

    pub(crate) fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next = self.matched.next();
    }

    pub(crate) fn become_snapshot(&mut self, snapshot_index: Index) {
        self.reset_state(ProgressState::Snapshot);
        self.pending_snapshot = snapshot_index;
    }

    /// Records an acknowledgement up to `index`; returns whether `matched` moved.
    pub(crate) fn maybe_update(&mut self, index: Index) -> bool {
        let updated = self.matched < index;
        if updated {
            self.matched = index;
            self.probe_sent = false;
        }
        self.next = self.next.max(index.next());
        updated
    }

    /// Records that an Append ending at `last` was sent.
    pub(crate) fn sent_entries(&mut self, last: Index, entry_count: usize) {
        match self.state {
            ProgressState::Replicate => {
                if entry_count > 0 {
                    self.next = last.next();
                    self.inflights.add(last);
                }
            }
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot => panic!("sending entries in snapshot state"),
        }
    }

    /// Handles a rejection of the Append at `rejected`; `probe_to` is the highest index
    /// that might still match. Returns false if the rejection is stale.
    pub(crate) fn maybe_decr_to(&mut self, rejected: Index, probe_to: Index) -> bool {
        if self.state == ProgressState::Replicate {
            if rejected <= self.matched {
                return false;
            }
            self.next = self.matched.next();
            return true;
        }
        if self.next.prev() != rejected {
            return false;
        }
        self.next = rejected.min(probe_to.next()).max(self.matched.next());
        self.probe_sent = false;
        true
    }

    /// Whether the leader must hold further Appends back.
    pub(crate) fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.full(),
            ProgressState::Snapshot => true,
        }
    }

    pub(crate) fn check_invariants(&self) {
        assert!(
            self.matched < self.next,
            "match {} not below next {}",
            self.matched,
            self.next
        );
        assert!(
            self.inflights.len() <= self.inflights.capacity,
            "inflights over capacity"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflights_free_up_to_acknowledged_index() {
        let mut inflights = Inflights::new(3);
        for i in [2, 4, 6] {
            inflights.add(Index(i));
        }
        assert!(inflights.full());
        inflights.free_le(Index(4));
        assert_eq!(inflights.len(), 1);
        assert!(!inflights.full());
    }

    #[test]
    fn probe_rejection_jumps_to_hint_but_not_below_match() {
        let mut pr = Progress::new(Index(11), 8);
        assert!(pr.maybe_decr_to(Index(10), Index(4)));
        assert_eq!(pr.next, Index(5));
        assert!(
            !pr.maybe_decr_to(Index(10), Index(2)),
            "stale: we no longer probe at 10"
        );
        pr.maybe_update(Index(3));
        assert!(pr.maybe_decr_to(Index(4), Index(0)));
        assert_eq!(pr.next, Index(4), "never below match + 1");
    }

    #[test]
    fn replicate_rejection_falls_back_to_match() {
        let mut pr = Progress::new(Index(1), 8);
        pr.maybe_update(Index(5));
        pr.become_replicate();
        pr.sent_entries(Index(9), 4);
        assert_eq!(pr.next, Index(10));
        assert!(
            !pr.maybe_decr_to(Index(5), Index(5)),
            "rejection at or below match is stale"
        );
        assert!(pr.maybe_decr_to(Index(7), Index(6)));
        assert_eq!(pr.next, Index(6));
    }

    #[test]
    fn snapshot_state_resumes_after_snapshot_index() {
        let mut pr = Progress::new(Index(3), 8);
        pr.become_snapshot(Index(20));
        assert!(pr.is_paused());
        pr.become_probe();
        assert_eq!(pr.next, Index(21));
    }
}
