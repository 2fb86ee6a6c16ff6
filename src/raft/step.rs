//! Message dispatch: the term rules every message passes through first (paper Figure 2,
//! "Rules for all servers", extended by etcd for pre-vote and check-quorum), then the
//! handler for the node's role.
//!
//! Term rules, in order:
//! - a message from a later term makes us a follower of that term, except that a (pre)vote
//!   request inside a leader lease is ignored, a pre-vote request changes nothing, and a
//!   granted pre-vote response is counted rather than obeyed;
//! - a message from an earlier term is dropped, but a stale leader gets our term back (so
//!   it steps down) and a stale pre-candidate gets a rejection carrying our term;
//! - forwarded requests (Propose, ReadIndex, TransferLeader) carry term 0 and skip both.
//!
//! Worked example (check-quorum on): follower 2 heard leader 1 three ticks ago. Node 3,
//! back from a partition with a higher term, sends RequestVote(term 9): node 2 is in its
//! lease and ignores it; its term stays put and leader 1 keeps leading.

use super::node::{decode_node_id, Raft, CAMPAIGN_TRANSFER};
use super::{Error, Message, MessageKind, ReadState, Role};

impl Raft {
    /// Whether this follower heard from a leader within the election timeout; with
    /// check-quorum on, it then ignores vote requests (the leader lease of thesis §4.2.3).
    fn in_lease(&self) -> bool {
        self.cfg.check_quorum
            && self.leader.is_some()
            && self.election_elapsed < self.cfg.election_timeout_ticks
    }

    pub(crate) fn step(&mut self, m: Message) -> Result<(), Error> {
        if m.to != self.id {
            return Err(Error::WrongRecipient {
                to: m.to.0,
                me: self.id.0,
            });
        }
        if m.from == self.id || m.from.0 == 0 {
            return Ok(());
        }
        if m.term.0 == 0 {
            // Forwarded requests carry no term: they are not tied to who sent them.
            if matches!(
                m.kind,
                MessageKind::Propose | MessageKind::ReadIndex | MessageKind::TransferLeader
            ) {
                self.step_by_role(m);
            }
            return Ok(());
        }
        if m.term > self.term {
            if !self.on_higher_term(&m) {
                return Ok(());
            }
        } else if m.term < self.term {
            self.on_lower_term(&m);
            return Ok(());
        }
        match m.kind {
            MessageKind::RequestVote | MessageKind::RequestPreVote => self.handle_vote_request(m),
            _ => self.step_by_role(m),
        }
        Ok(())
    }

    /// A message from a later term. Returns false if it must be ignored.
    fn on_higher_term(&mut self, m: &Message) -> bool {
        let is_vote_request = matches!(
            m.kind,
            MessageKind::RequestVote | MessageKind::RequestPreVote
        );
        if is_vote_request && m.context != CAMPAIGN_TRANSFER && self.in_lease() {
            // We heard from a leader recently: this candidate is probably a partitioned
            // node coming back, and must not depose a working leader.
            return false;
        }
        match m.kind {
            // A pre-vote asks about a future term; it changes nothing here.
            MessageKind::RequestPreVote => {}
            // A granted pre-vote carries the term the pre-candidate would move to.
            MessageKind::RequestPreVoteResponse if !m.reject => {}
            MessageKind::Append | MessageKind::Heartbeat | MessageKind::InstallSnapshot => {
                self.become_follower(m.term, Some(m.from))
            }
            _ => self.become_follower(m.term, None),
        }
        true
    }

    /// A message from an earlier term: mostly ignored, but answered where the sender
    /// would otherwise be stuck (etcd's rules).
    fn on_lower_term(&mut self, m: &Message) {
        let stale_leader = matches!(m.kind, MessageKind::Append | MessageKind::Heartbeat);
        if stale_leader && (self.cfg.check_quorum || self.cfg.pre_vote) {
            // A node that raised its term while cut off would otherwise reject this
            // leader forever; our higher term makes the stale leader step down and the
            // cluster elect a leader that this node accepts.
            let resp = self.msg(MessageKind::AppendResponse, m.from);
            self.send(resp);
        } else if m.kind == MessageKind::RequestPreVote {
            // Tell the pre-candidate our term so it can catch up instead of retrying.
            let mut resp = self.msg(MessageKind::RequestPreVoteResponse, m.from);
            resp.reject = true;
            self.send(resp);
        }
    }

    fn step_by_role(&mut self, m: Message) {
        match self.role {
            Role::Leader => self.step_leader(m),
            Role::Candidate | Role::PreCandidate => self.step_candidate(m),
            Role::Follower => self.step_follower(m),
        }
    }

    fn step_leader(&mut self, m: Message) {
        if m.kind == MessageKind::Propose {
            let entries = m.entries.into_iter().map(|e| (e.kind, e.data)).collect();
            // A forwarded proposal the leader cannot take is dropped; the client retries.
            let _ = self.propose_entries(entries);
            return;
        }
        if m.kind == MessageKind::ReadIndex {
            self.read_index_request(m.from, m.context);
            return;
        }
        if m.kind == MessageKind::TransferLeader {
            if let Some(to) = decode_node_id(&m.context) {
                self.transfer_leader(to);
            }
            return;
        }
        if !self.tracker.progress.contains_key(&m.from) {
            return;
        }
        match m.kind {
            MessageKind::AppendResponse => self.handle_append_response(m),
            MessageKind::HeartbeatResponse => self.handle_heartbeat_response(m),
            _ => {}
        }
    }

    fn step_candidate(&mut self, m: Message) {
        match m.kind {
            MessageKind::Append => {
                self.become_follower(m.term, Some(m.from));
                self.handle_append(m);
            }
            MessageKind::Heartbeat => {
                self.become_follower(m.term, Some(m.from));
                self.handle_heartbeat(m);
            }
            MessageKind::InstallSnapshot => {
                self.become_follower(m.term, Some(m.from));
                self.handle_snapshot(m);
            }
            MessageKind::RequestVoteResponse | MessageKind::RequestPreVoteResponse => {
                self.handle_vote_response(m)
            }
            _ => {}
        }
    }

    fn step_follower(&mut self, m: Message) {
        match m.kind {
            MessageKind::Propose | MessageKind::ReadIndex | MessageKind::TransferLeader => {
                if let Some(leader) = self.leader {
                    let mut fwd = m;
                    fwd.to = leader;
                    self.send(fwd);
                }
            }
            MessageKind::Append => {
                self.election_elapsed = 0;
                self.leader = Some(m.from);
                self.handle_append(m);
            }
            MessageKind::Heartbeat => {
                self.election_elapsed = 0;
                self.leader = Some(m.from);
                self.handle_heartbeat(m);
            }
            MessageKind::InstallSnapshot => {
                self.election_elapsed = 0;
                self.leader = Some(m.from);
                self.handle_snapshot(m);
            }
            // `hup` itself refuses if this node is not a voter.
            MessageKind::TimeoutNow => self.hup(true),
            MessageKind::ReadIndexResponse => self.read_states.push(ReadState {
                index: m.index,
                context: m.context,
            }),
            _ => {}
        }
    }
}
