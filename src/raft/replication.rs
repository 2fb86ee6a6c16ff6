//! Log replication (paper §5.3) and commitment (§5.4.2), leader and follower sides.
//!
//! The leader appends proposals to its own log, streams them to each member according to
//! its `Progress` (`progress.rs`), and commits an index once a majority of voters have it
//! *and* it belongs to the leader's current term; earlier-term entries commit only
//! indirectly (Figure 8 of the paper). Its own copy counts only once persisted: its match
//! index moves at `advance`.
//!
//! When a follower rejects an Append, it answers with a hint: the last index at or below
//! the probe whose term is at most the leader's `log_term`, and that index's term. The
//! leader then jumps back past the whole conflicting term rather than one entry at a time.
//!
//! Worked example: leader log terms `[1 1 1 4 4 5 5 6 6 6]` (indexes 1..=10), follower
//! `[1 1 1 2 2 2 3 3 3 3 3]`. Append(index 10, log_term 6) is rejected: the follower's last
//! entry at or below 10 with term <= 6 is 10@3, so hint = (10, 3). The leader's last entry
//! at or below 10 with term <= 3 is 3@1, so the next probe is Append(index 3, log_term 1),
//! which matches: two round trips instead of eight.

use bytes::Bytes;

use super::node::Raft;
use super::{Entry, EntryKind, Error, Index, Message, MessageKind, NodeId, ProgressState, Role};

impl Raft {
    /// Leader: appends proposed entries (kind, data) in the current term and sends them.
    pub(crate) fn propose_entries(
        &mut self,
        mut entries: Vec<(EntryKind, Bytes)>,
    ) -> Result<(), Error> {
        assert_eq!(self.role, Role::Leader, "only the leader appends proposals");
        if self.lead_transferee.is_some() {
            return Err(Error::ProposalDropped);
        }
        let single = entries.len() == 1;
        let first_index = self.log.last_index().next();
        for (i, (kind, data)) in entries.iter_mut().enumerate() {
            if *kind != EntryKind::ConfChange {
                continue;
            }
            if self.pending_conf_index <= self.log.applied {
                self.pending_conf_index = Index(first_index.0 + i as u64);
                continue;
            }
            tracing::info!(id = %self.id, pending = %self.pending_conf_index, "conf change refused");
            if single {
                return Err(Error::ConfChangePending);
            }
            // Inside a forwarded batch: keep the slot but make it a no-op.
            (*kind, *data) = (EntryKind::Normal, Bytes::new());
        }
        self.append_entries(entries);
        self.bcast_append();
        Ok(())
    }

    /// Leader: appends entries to its own log (not yet persisted, so not yet counted).
    pub(crate) fn append_entries(&mut self, entries: Vec<(EntryKind, Bytes)>) {
        let mut index = self.log.last_index();
        let entries: Vec<Entry> = entries
            .into_iter()
            .map(|(kind, data)| {
                index = index.next();
                Entry {
                    term: self.term,
                    index,
                    kind,
                    data,
                }
            })
            .collect();
        self.log.truncate_and_append(&entries);
    }

    /// Leader: sends what `to` needs next unless its progress is paused. An Append with no
    /// entries (it still carries the commit index) is sent only if `send_if_empty`.
    /// Returns whether a message was sent.
    pub(crate) fn maybe_send_append(&mut self, to: NodeId, send_if_empty: bool) -> bool {
        let pr = &self.tracker.progress[&to];
        if pr.is_paused() {
            return false;
        }
        let prev = pr.next.prev();
        let Some(prev_term) = self.log.term(prev) else {
            return self.send_snapshot(to);
        };
        let last = self.log.last_index();
        let entries = if pr.next > last {
            Vec::new()
        } else {
            self.log
                .entries(pr.next, last.next(), self.cfg.msg_bytes_max)
        };
        if entries.is_empty() && !send_if_empty {
            return false;
        }
        let mut m = self.msg(MessageKind::Append, to);
        m.index = prev;
        m.log_term = prev_term;
        m.commit = self.log.committed;
        let sent_last = entries.last().map_or(prev, |e| e.index);
        let count = entries.len();
        m.entries = entries;
        self.tracker
            .progress
            .get_mut(&to)
            .unwrap()
            .sent_entries(sent_last, count);
        self.send(m);
        true
    }

    /// Leader: sends the latest snapshot to `to`, whose next entry is compacted away.
    fn send_snapshot(&mut self, to: NodeId) -> bool {
        let Some(snapshot) = self.snapshot.clone() else {
            // After a restart the core has the snapshot's metadata but not its image; the
            // application must call `compact` again before lagging followers can catch up.
            tracing::warn!(id = %self.id, to = %to, "follower needs a snapshot but none is held");
            return false;
        };
        let index = snapshot.metadata.index;
        let mut m = self.msg(MessageKind::InstallSnapshot, to);
        m.snapshot = Some(snapshot);
        self.tracker
            .progress
            .get_mut(&to)
            .unwrap()
            .become_snapshot(index);
        tracing::info!(id = %self.id, to = %to, index = %index, "sending snapshot");
        self.send(m);
        true
    }

    fn peers(&self) -> Vec<NodeId> {
        self.tracker
            .progress
            .keys()
            .copied()
            .filter(|&p| p != self.id)
            .collect()
    }

    pub(crate) fn bcast_append(&mut self) {
        for to in self.peers() {
            self.maybe_send_append(to, true);
        }
    }

    /// Heartbeats carry the commit index, capped at what each follower is known to have
    /// (it cannot commit entries it may not hold), and `context` for ReadIndex rounds.
    pub(crate) fn bcast_heartbeat(&mut self, context: Bytes) {
        for to in self.peers() {
            let mut m = self.msg(MessageKind::Heartbeat, to);
            m.commit = self.tracker.progress[&to].matched.min(self.log.committed);
            m.context = context.clone();
            self.send(m);
        }
    }

    /// Leader: commits the highest index held by a majority of voters, if it is from the
    /// current term (§5.4.2). Returns whether the commit index moved.
    pub(crate) fn maybe_commit(&mut self) -> bool {
        let progress = &self.tracker.progress;
        let index = super::quorum::committed_index(&self.tracker.voters, |v| {
            progress.get(&v).map_or(Index(0), |p| p.matched)
        });
        if index <= self.log.committed || self.log.term(index) != Some(self.term) {
            return false;
        }
        self.log.commit_to(index);
        self.on_commit_in_term();
        true
    }

    /// Follower: the Append rule of Figure 2.
    pub(crate) fn handle_append(&mut self, m: Message) {
        let mut resp = self.msg(MessageKind::AppendResponse, m.from);
        if m.index < self.log.committed {
            // Everything up to our commit index already matches the leader's log.
            resp.index = self.log.committed;
        } else if self.log.match_term(m.index, m.log_term) {
            let last_new = Index(m.index.0 + m.entries.len() as u64);
            self.log.append_from_leader(&m.entries);
            self.log.commit_to(m.commit.min(last_new));
            resp.index = last_new;
        } else {
            let probe = m.index.min(self.log.last_index());
            let (hint, hint_term) = self.log.find_conflict_by_term(probe, m.log_term);
            resp.reject = true;
            resp.index = m.index;
            resp.reject_hint = hint;
            resp.log_term = hint_term;
        }
        self.send(resp);
    }

    /// Leader: an answer to an Append (or InstallSnapshot).
    pub(crate) fn handle_append_response(&mut self, m: Message) {
        let from = m.from;
        let pr = self.tracker.progress.get_mut(&from).unwrap();
        pr.recent_active = true;
        if m.reject {
            // Jump back past the follower's whole conflicting term (see module docs).
            let next_probe = if m.log_term.0 > 0 {
                self.log.find_conflict_by_term(m.reject_hint, m.log_term).0
            } else {
                m.reject_hint
            };
            let pr = self.tracker.progress.get_mut(&from).unwrap();
            if pr.maybe_decr_to(m.index, next_probe) {
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
                self.maybe_send_append(from, true);
            }
            return;
        }
        let was_paused = pr.is_paused();
        if !pr.maybe_update(m.index) {
            return;
        }
        match pr.state {
            ProgressState::Probe => pr.become_replicate(),
            ProgressState::Snapshot if pr.matched >= pr.pending_snapshot => {
                pr.become_probe();
                pr.become_replicate();
            }
            ProgressState::Snapshot => {}
            ProgressState::Replicate => pr.inflights.free_le(m.index),
        }
        if self.maybe_commit() {
            self.bcast_append();
        } else if was_paused {
            self.maybe_send_append(from, true);
        }
        while self.maybe_send_append(from, false) {}
        let caught_up = self.tracker.progress[&from].matched == self.log.last_index();
        if self.lead_transferee == Some(from) && caught_up {
            self.send_timeout_now(from);
        }
    }

    /// Follower: a heartbeat carries the commit index and maybe a ReadIndex round.
    pub(crate) fn handle_heartbeat(&mut self, m: Message) {
        self.log.commit_to(m.commit.min(self.log.last_index()));
        let mut resp = self.msg(MessageKind::HeartbeatResponse, m.from);
        resp.context = m.context;
        self.send(resp);
    }

    /// Leader: a heartbeat answer shows the member is alive; resume a stalled stream.
    pub(crate) fn handle_heartbeat_response(&mut self, m: Message) {
        let pr = self.tracker.progress.get_mut(&m.from).unwrap();
        pr.recent_active = true;
        pr.probe_sent = false;
        if pr.state == ProgressState::Replicate && pr.inflights.full() {
            // An Append may have been lost; free one slot so replication cannot stall.
            pr.inflights.free_first_one();
        }
        if pr.matched < self.log.last_index() {
            self.maybe_send_append(m.from, true);
        }
        if !m.context.is_empty() {
            self.read_index_ack(m.from, &m.context);
        }
    }

    /// Leader: what the application reported about a snapshot sent to `id`.
    pub(crate) fn report_snapshot(&mut self, id: NodeId, success: bool) {
        if self.role != Role::Leader {
            return;
        }
        let Some(pr) = self.tracker.progress.get_mut(&id) else {
            return;
        };
        if pr.state != ProgressState::Snapshot {
            return;
        }
        if !success {
            pr.pending_snapshot = Index(0);
        }
        pr.become_probe();
        // Wait for the follower's answer (or the next heartbeat) before probing.
        pr.probe_sent = true;
    }

    /// Leader: the transport could not deliver to `id`; stop streaming optimistically.
    pub(crate) fn report_unreachable(&mut self, id: NodeId) {
        if self.role != Role::Leader {
            return;
        }
        if let Some(pr) = self.tracker.progress.get_mut(&id) {
            if pr.state == ProgressState::Replicate {
                pr.become_probe();
            }
        }
    }
}
