//! The liveness half of a chaos run: once every fault heals and every crashed member is
//! back, a leader must emerge and each new proposal must be applied on every member within
//! a bounded number of ticks.
//!
//! The bounds are generous multiples of the election timeout; a run that needs more has a
//! livelock (for example a follower stuck waiting for a snapshot the leader never sends).
//! Called by `sim::chaos::run`.

use bytes::Bytes;

use super::chaos::Chaos;
use super::network::Faults;
use crate::raft::NodeId;

impl Chaos {
    /// Heals every fault, restarts every crashed member, and requires a leader and then
    /// the commit (applied on every member) of each new proposal within bounded ticks.
    pub fn heal_and_check_liveness(&mut self) {
        self.cluster.net.heal();
        // A healed network delivers at once and in order, so the tick bounds below measure
        // the protocol's timers, not a catch-up that seeds with one-entry messages and one
        // message in flight must make a round trip per entry (seed 42256 lagged 100).
        self.cluster.net.faults = Faults::default();
        for id in self.cluster.down_ids() {
            self.cluster.restart(id);
            self.cluster.check_invariants();
        }
        let start = self.cluster.now_ticks;
        while self.stable_leader().is_none() {
            self.advance_one_tick();
            let waited = self.cluster.now_ticks - start;
            assert!(
                waited <= self.config.leader_ticks_max,
                "liveness: no leader {waited} ticks after the heal ({})",
                self.describe()
            );
        }
        for _ in 0..self.config.liveness_proposals {
            self.commit_one();
        }
    }

    /// A leader whose term a majority of the members share (not a stale one).
    fn stable_leader(&mut self) -> Option<NodeId> {
        let leader = self.cluster.leader()?;
        let term = self.cluster.node(leader).raw().term();
        let members = self.members();
        let agree = members
            .iter()
            .filter(|&&id| {
                let raw = self.cluster.nodes[&id].raw.as_ref();
                raw.is_some_and(|r| r.term() == term && r.leader() == Some(leader))
            })
            .count();
        (agree * 2 > members.len()).then_some(leader)
    }

    /// Delivers and fsyncs everything due, then ticks once.
    fn advance_one_tick(&mut self) {
        self.settle();
        self.cluster.tick();
        self.cluster.check_invariants();
    }

    fn settle(&mut self) {
        for _ in 0..100_000 {
            let busy = self.cluster.busy_ids();
            if let Some(&id) = busy.first() {
                self.cluster.finish_ready(id);
            } else if !self.cluster.deliver_one() {
                return;
            }
            self.cluster.check_invariants();
        }
        panic!(
            "liveness: the cluster never went quiet ({})",
            self.describe()
        );
    }

    fn commit_one(&mut self) {
        let start = self.cluster.now_ticks;
        let retry_ticks = 3 * u64::from(self.cluster.config.election_timeout_ticks);
        let mut proposed: Vec<Bytes> = Vec::new();
        let mut last_try = 0;
        loop {
            self.settle();
            if proposed.iter().any(|p| self.applied_everywhere(p)) {
                return;
            }
            let now = self.cluster.now_ticks;
            if proposed.is_empty() || now - last_try >= retry_ticks {
                if let Some(leader) = self.stable_leader() {
                    let payload = self.payload();
                    if self.cluster.propose(leader, payload.clone()).is_ok() {
                        proposed.push(payload);
                        last_try = now;
                    }
                    self.cluster.check_invariants();
                }
            }
            self.cluster.tick();
            self.cluster.check_invariants();
            let waited = self.cluster.now_ticks - start;
            assert!(
                waited <= self.config.commit_ticks_max,
                "liveness: proposal not applied everywhere {waited} ticks after it was made ({})",
                self.describe()
            );
        }
    }

    fn applied_everywhere(&self, payload: &[u8]) -> bool {
        let Some(index) = self.cluster.history.payload_index(payload) else {
            return false;
        };
        self.cluster
            .nodes
            .values()
            .filter(|n| !n.removed)
            .all(|n| n.app.applied >= index)
    }
}
