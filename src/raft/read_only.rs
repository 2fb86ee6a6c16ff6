//! Linearizable reads without writing to the log: ReadIndex (thesis §6.4).
//!
//! The leader records its commit index when a read arrives, then confirms it is still the
//! leader by a heartbeat round acknowledged by a majority; once confirmed, the read may be
//! served as soon as the application has applied up to the recorded index.
//!
//! - A new leader does not know which entries of earlier terms are committed until it
//!   commits one of its own, so reads wait in `waiting_for_commit` until then.
//! - Reads that arrive between two `Ready`s share one heartbeat round: `flush_read_rounds`
//!   (called by `RawNode::ready`) starts one round for all of them. The round is named by a
//!   number in the heartbeat's `context`; an ack for round r confirms every round <= r.
//! - With a single voter there is nobody to ask: the read is answered at once.
//! - A follower forwards reads to the leader, which answers with ReadIndexResponse.
//!
//! Worked example: leader 1 (commit 7) gets reads A and B before its next Ready. At ready()
//! it sends Heartbeat(context = round 1) to 2 and 3; 2 acks round 1: with 1 itself that is
//! a majority, so A and B come back as ReadState(index 7).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use super::node::Raft;
use super::quorum::has_quorum;
use super::{Index, MessageKind, NodeId, ReadState, Role};

/// One read waiting for its leadership confirmation.
#[derive(Clone, Debug)]
struct ReadRequest {
    /// Who asked (this leader, or the follower that forwarded it).
    from: NodeId,
    context: Bytes,
    /// The leader's commit index when the read arrived.
    index: Index,
    /// The heartbeat round confirming it; 0 until the round is started.
    round: u64,
}

/// The leader's queue of reads. Reset whenever the role changes.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReadOnly {
    waiting_for_commit: Vec<(NodeId, Bytes)>,
    /// In arrival order; those with `round == 0` are at the back.
    requests: VecDeque<ReadRequest>,
    acks: BTreeMap<u64, BTreeSet<NodeId>>,
    last_round: u64,
}

impl ReadOnly {
    pub(crate) fn has_unsent_round(&self) -> bool {
        self.requests.back().is_some_and(|r| r.round == 0)
    }

    pub(crate) fn pending_count(&self) -> usize {
        self.waiting_for_commit.len() + self.requests.len()
    }
}

fn encode_round(round: u64) -> Bytes {
    Bytes::copy_from_slice(&round.to_be_bytes())
}

fn decode_round(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

impl Raft {
    /// A read from this node's application.
    pub(crate) fn read_index(&mut self, context: Bytes) {
        if self.role == Role::Leader {
            self.read_index_request(self.id, context);
        } else if let Some(leader) = self.leader {
            let mut m = self.msg(MessageKind::ReadIndex, leader);
            m.term = Default::default();
            m.context = context;
            self.send(m);
        } else {
            tracing::debug!(id = %self.id, "read dropped: no leader known");
        }
    }

    /// Leader: a read from `from` (itself or a follower).
    pub(crate) fn read_index_request(&mut self, from: NodeId, context: Bytes) {
        if !self.committed_in_current_term() {
            self.read_only.waiting_for_commit.push((from, context));
            return;
        }
        let index = self.log.committed;
        if self.tracker.voters.len() == 1 {
            self.respond_read(from, context, index);
            return;
        }
        self.read_only.requests.push_back(ReadRequest {
            from,
            context,
            index,
            round: 0,
        });
    }

    fn committed_in_current_term(&self) -> bool {
        self.log.term(self.log.committed) == Some(self.term)
    }

    /// Leader: the commit index moved; the first commit of the term releases waiting reads.
    pub(crate) fn on_commit_in_term(&mut self) {
        if self.read_only.waiting_for_commit.is_empty() || !self.committed_in_current_term() {
            return;
        }
        for (from, context) in std::mem::take(&mut self.read_only.waiting_for_commit) {
            self.read_index_request(from, context);
        }
    }

    /// Leader: starts one heartbeat round for every read not yet in a round.
    pub(crate) fn flush_read_rounds(&mut self) {
        if self.role != Role::Leader || !self.read_only.has_unsent_round() {
            return;
        }
        self.read_only.last_round += 1;
        let round = self.read_only.last_round;
        for r in self.read_only.requests.iter_mut().filter(|r| r.round == 0) {
            r.round = round;
        }
        self.read_only.acks.insert(round, BTreeSet::from([self.id]));
        self.bcast_heartbeat(encode_round(round));
    }

    /// Leader: `from` acknowledged the heartbeat of a round.
    pub(crate) fn read_index_ack(&mut self, from: NodeId, context: &[u8]) {
        let Some(round) = decode_round(context) else {
            return;
        };
        let Some(acks) = self.read_only.acks.get_mut(&round) else {
            return;
        };
        acks.insert(from);
        let acks = acks.clone();
        if !has_quorum(&self.tracker.voters, |v| acks.contains(&v)) {
            return;
        }
        // Leadership is confirmed as of this round, hence for every earlier round too.
        self.read_only.acks.retain(|&r, _| r > round);
        while self
            .read_only
            .requests
            .front()
            .is_some_and(|r| r.round != 0 && r.round <= round)
        {
            let r = self.read_only.requests.pop_front().unwrap();
            self.respond_read(r.from, r.context, r.index);
        }
    }

    fn respond_read(&mut self, from: NodeId, context: Bytes, index: Index) {
        if from == self.id {
            self.read_states.push(ReadState { index, context });
        } else {
            let mut m = self.msg(MessageKind::ReadIndexResponse, from);
            m.index = index;
            m.context = context;
            self.send(m);
        }
    }
}
