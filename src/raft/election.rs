//! Leader election (paper §5.2) with pre-vote (thesis §9.6) and leadership transfer
//! (thesis §3.10).
//!
//! An election runs in up to two phases. With `Config::pre_vote`, a node first becomes a
//! pre-candidate and asks "would you vote for me in term + 1?" without changing any state;
//! only if a majority says yes does it become a candidate, raise its term and ask for real
//! votes. A node cut off from the cluster therefore keeps its term and, when it comes
//! back, does not force the working leader to step down.
//!
//! Worked example (3 voters, pre-vote on): node 1 times out in term 5 and sends
//! RequestPreVote(term 6) to 2 and 3; its own term stays 5. Node 2 has heard no leader for
//! an election timeout and 1's log is as up to date as its own: it grants (term 6) without
//! recording a vote. With 2 of 3, node 1 becomes candidate in term 6, votes for itself and
//! sends RequestVote(term 6); 2 grants and records vote = 1; node 1 becomes leader.
//!
//! A leadership transfer asks the target (once caught up) to campaign at once with
//! TimeoutNow; its vote requests carry [`CAMPAIGN_TRANSFER`] so that voters grant them even
//! though they heard from the old leader within their lease.

use super::node::{encode_node_id, Raft, CAMPAIGN_TRANSFER};
use super::quorum::{vote_result, VoteResult};
use super::{Message, MessageKind, NodeId, Role};

impl Raft {
    /// Starts an election now (the election timeout fired, or the app asked). `transfer`:
    /// this campaign answers a TimeoutNow, so it skips pre-vote and overrides leases.
    pub(crate) fn hup(&mut self, transfer: bool) {
        if self.role == Role::Leader || !self.promotable() {
            return;
        }
        if self.has_unapplied_conf_change() {
            tracing::info!(id = %self.id, "not campaigning: a committed conf change is unapplied");
            return;
        }
        if self.cfg.pre_vote && !transfer {
            self.become_pre_candidate();
        } else {
            self.become_candidate();
        }
        self.campaign_round(transfer);
    }

    /// Votes for itself and asks every other voter.
    fn campaign_round(&mut self, transfer: bool) {
        let pre = self.role == Role::PreCandidate;
        let (kind, term) = if pre {
            (MessageKind::RequestPreVote, self.term.next())
        } else {
            (MessageKind::RequestVote, self.term)
        };
        if self.record_vote(self.id, true) {
            return;
        }
        let voters: Vec<NodeId> = self
            .tracker
            .voters
            .iter()
            .copied()
            .filter(|&v| v != self.id)
            .collect();
        for to in voters {
            let mut m = Message::new(kind, self.id, to, term);
            m.index = self.log.last_index();
            m.log_term = self.log.last_term();
            if transfer {
                m.context = bytes::Bytes::from_static(CAMPAIGN_TRANSFER);
            }
            self.send(m);
        }
    }

    /// Records a (pre-)vote and acts on the tally. Returns true if the round is decided.
    fn record_vote(&mut self, from: NodeId, granted: bool) -> bool {
        self.votes.entry(from).or_insert(granted);
        match vote_result(&self.tracker.voters, &self.votes) {
            VoteResult::Won => {
                if self.role == Role::PreCandidate {
                    self.become_candidate();
                    self.campaign_round(false);
                } else {
                    self.become_leader();
                    self.bcast_append();
                }
                true
            }
            VoteResult::Lost => {
                self.become_follower(self.term, None);
                true
            }
            VoteResult::Pending => false,
        }
    }

    /// Handles RequestVote / RequestPreVote whose term is at least ours (§5.2, §5.4.1).
    pub(crate) fn handle_vote_request(&mut self, m: Message) {
        let pre = m.kind == MessageKind::RequestPreVote;
        // We may vote again for the same candidate (a retransmission), vote afresh if we
        // have neither voted nor know a leader in this term, and always consider a
        // pre-vote for a later term (it binds us to nothing).
        let can_vote = self.vote == Some(m.from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre && m.term > self.term);
        let grant = can_vote && self.log.is_up_to_date(m.index, m.log_term);
        let kind = if pre {
            MessageKind::RequestPreVoteResponse
        } else {
            MessageKind::RequestVoteResponse
        };
        let mut resp = self.msg(kind, m.from);
        if grant {
            // A granted pre-vote answers in the term it was asked about, so the
            // pre-candidate can count it; a real vote is in our (equal) term.
            resp.term = m.term;
            if !pre {
                self.election_elapsed = 0;
                self.vote = Some(m.from);
            }
        } else {
            resp.reject = true;
        }
        tracing::debug!(id = %self.id, from = %m.from, pre, grant, "vote request");
        self.send(resp);
    }

    /// Counts a response to our (pre-)vote request.
    pub(crate) fn handle_vote_response(&mut self, m: Message) {
        let expected = match self.role {
            Role::PreCandidate => MessageKind::RequestPreVoteResponse,
            Role::Candidate => MessageKind::RequestVoteResponse,
            _ => return,
        };
        if m.kind != expected {
            return;
        }
        self.record_vote(m.from, !m.reject);
    }

    /// Leadership transfer: on the leader, catches `to` up and sends it TimeoutNow; on a
    /// follower, forwards the request (the transferee's id in `context`) to the leader.
    pub(crate) fn transfer_leader(&mut self, to: NodeId) {
        if self.role != Role::Leader {
            if let Some(leader) = self.leader {
                let mut m = Message::new(
                    MessageKind::TransferLeader,
                    self.id,
                    leader,
                    Default::default(),
                );
                m.context = encode_node_id(to);
                self.send(m);
            }
            return;
        }
        if to == self.id || !self.tracker.is_voter(to) || self.lead_transferee == Some(to) {
            return;
        }
        // The transfer must finish within one election timeout, counted from now.
        self.election_elapsed = 0;
        self.lead_transferee = Some(to);
        tracing::info!(id = %self.id, to = %to, "leadership transfer started");
        let caught_up = self.tracker.progress[&to].matched == self.log.last_index();
        if caught_up {
            self.send_timeout_now(to);
        } else {
            self.maybe_send_append(to, true);
        }
    }

    pub(crate) fn send_timeout_now(&mut self, to: NodeId) {
        let m = self.msg(MessageKind::TimeoutNow, to);
        self.send(m);
    }
}
