//! `Raft`: the state machine behind [`RawNode`](super::RawNode). It holds the term, vote,
//! role, log and membership; `step.rs` dispatches each message to the file that owns the
//! concept: `election.rs`, `replication.rs`, `snapshot.rs`, `read_only.rs`,
//! `membership.rs`.
//!
//! This file owns the role transitions (paper Figure 4 plus pre-candidate: follower ->
//! pre-candidate -> candidate -> leader, and back to follower on a higher term or a lost
//! election), the logical clock (election and heartbeat timeouts, check-quorum), and the
//! outbox. It does no IO: outgoing messages are queued in `msgs` and `msgs_after_persist`
//! for the next `Ready`.

use std::collections::BTreeMap;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::membership::ProgressTracker;
use super::raft_log::RaftLog;
use super::read_only::ReadOnly;
use super::{
    Config, Error, Index, Message, MessageKind, NodeId, ReadState, RecoveredState, Role, Snapshot,
    Term,
};

/// Marks a RequestVote sent because of a leadership transfer (TimeoutNow): receivers
/// grant it even inside a leader lease (thesis §3.10).
pub(crate) const CAMPAIGN_TRANSFER: &[u8] = b"CampaignTransfer";

/// The Raft state machine. Fields are crate-visible so the concept files can share them.
pub(crate) struct Raft {
    pub(crate) id: NodeId,
    pub(crate) term: Term,
    pub(crate) vote: Option<NodeId>,
    pub(crate) role: Role,
    pub(crate) leader: Option<NodeId>,
    pub(crate) log: RaftLog,
    pub(crate) tracker: ProgressTracker,
    /// Votes (or pre-votes) received in the current election; true = granted.
    pub(crate) votes: BTreeMap<NodeId, bool>,
    /// Ticks since the last election timeout reset (followers: since hearing the leader).
    pub(crate) election_elapsed: u32,
    pub(crate) heartbeat_elapsed: u32,
    randomized_election_timeout: u32,
    pub(crate) cfg: Config,
    rng: StdRng,
    /// The member leadership is being handed to, while a transfer is in progress.
    pub(crate) lead_transferee: Option<NodeId>,
    /// Index of the last membership change proposed by this leader (or the last index when
    /// it became leader); a new change is refused until `applied` reaches it.
    pub(crate) pending_conf_index: Index,
    pub(crate) read_only: ReadOnly,
    /// Messages that may leave at once.
    pub(crate) msgs: Vec<Message>,
    /// Messages that may leave only after the next `Ready` is persisted.
    pub(crate) msgs_after_persist: Vec<Message>,
    pub(crate) read_states: Vec<ReadState>,
    /// The latest snapshot, sent to followers whose next entry was compacted away.
    pub(crate) snapshot: Option<Snapshot>,
}

impl Raft {
    pub(crate) fn new(cfg: Config, mut recovered: RecoveredState) -> Result<Raft, Error> {
        raise_term_over_torn_tail(&mut recovered);
        validate_recovered(&recovered)?;
        let hs = recovered.hard_state;
        let log = RaftLog::new(
            recovered.snapshot.index,
            recovered.snapshot.term,
            recovered.entries,
            hs.commit,
            recovered.applied,
        );
        let tracker = ProgressTracker::new(
            &recovered.conf_state,
            log.last_index().next(),
            cfg.inflight_msgs_max,
        );
        let mut raft = Raft {
            id: cfg.id,
            term: hs.term,
            vote: hs.vote,
            role: Role::Follower,
            leader: None,
            log,
            tracker,
            votes: BTreeMap::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_timeout: cfg.election_timeout_ticks,
            rng: StdRng::seed_from_u64(cfg.seed),
            cfg,
            lead_transferee: None,
            pending_conf_index: Index(0),
            read_only: ReadOnly::default(),
            msgs: Vec::new(),
            msgs_after_persist: Vec::new(),
            read_states: Vec::new(),
            snapshot: None,
        };
        raft.become_follower(hs.term, None);
        Ok(raft)
    }

    /// Queues `m` from this node. Messages a receiver may rely on as durable promises go
    /// to `msgs_after_persist`: vote grants, append and heartbeat acknowledgements, and
    /// vote requests (the candidate's new term and self-vote must be on disk first).
    pub(crate) fn send(&mut self, mut m: Message) {
        assert_ne!(m.to, self.id, "message to self: {m:?}");
        m.from = self.id;
        match m.kind {
            MessageKind::AppendResponse
            | MessageKind::RequestVote
            | MessageKind::RequestVoteResponse
            | MessageKind::HeartbeatResponse => self.msgs_after_persist.push(m),
            _ => self.msgs.push(m),
        }
    }

    /// Builds a message of `kind` to `to` in the current term.
    pub(crate) fn msg(&self, kind: MessageKind, to: NodeId) -> Message {
        Message::new(kind, self.id, to, self.term)
    }

    /// Resets what every role change resets; moves to `term` (forgetting the vote) if new.
    fn reset(&mut self, term: Term) {
        if self.term != term {
            self.term = term;
            self.vote = None;
        }
        self.leader = None;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.randomized_election_timeout = self
            .rng
            .gen_range(self.cfg.election_timeout_ticks..2 * self.cfg.election_timeout_ticks);
        self.lead_transferee = None;
        self.votes.clear();
        self.tracker.reset_progress(self.log.last_index().next());
        self.read_only = ReadOnly::default();
    }

    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        self.reset(term);
        self.role = Role::Follower;
        self.leader = leader;
        tracing::debug!(id = %self.id, term = %self.term, leader = ?leader, "became follower");
    }

    pub(crate) fn become_pre_candidate(&mut self) {
        assert_ne!(
            self.role,
            Role::Leader,
            "leader cannot become pre-candidate"
        );
        // Pre-vote changes neither term nor vote: a node that cannot win disturbs nobody.
        self.votes.clear();
        self.leader = None;
        self.role = Role::PreCandidate;
    }

    pub(crate) fn become_candidate(&mut self) {
        assert_ne!(self.role, Role::Leader, "leader cannot become candidate");
        self.reset(self.term.next());
        self.vote = Some(self.id);
        self.role = Role::Candidate;
        tracing::debug!(id = %self.id, term = %self.term, "became candidate");
    }

    pub(crate) fn become_leader(&mut self) {
        assert_ne!(
            self.role,
            Role::Follower,
            "follower cannot become leader directly"
        );
        self.reset(self.term);
        self.role = Role::Leader;
        self.leader = Some(self.id);
        let persisted = self.log.persisted;
        if let Some(pr) = self.tracker.progress.get_mut(&self.id) {
            pr.maybe_update(persisted);
            pr.become_replicate();
        }
        // Entries before this index may hold a change we cannot see is applied yet; be
        // conservative and refuse new changes until everything up to here is applied.
        self.pending_conf_index = self.log.last_index();
        // The no-op of §8: committing it commits everything before it (and lets ReadIndex
        // start serving).
        self.append_entries(vec![(super::EntryKind::Normal, Bytes::new())]);
        tracing::info!(id = %self.id, term = %self.term, "became leader");
    }

    pub(crate) fn tick(&mut self) {
        if self.role == Role::Leader {
            self.tick_heartbeat();
        } else {
            self.tick_election();
        }
    }

    fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.promotable() && self.election_elapsed >= self.randomized_election_timeout {
            self.election_elapsed = 0;
            self.hup(false);
        }
    }

    fn tick_heartbeat(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.cfg.election_timeout_ticks {
            self.election_elapsed = 0;
            if self.cfg.check_quorum && !self.check_quorum_active() {
                tracing::info!(id = %self.id, term = %self.term, "no quorum contact; stepping down");
                self.become_follower(self.term, None);
                return;
            }
            // A transfer that has not finished within an election timeout is abandoned.
            self.lead_transferee = None;
        }
        if self.heartbeat_elapsed >= self.cfg.heartbeat_interval_ticks {
            self.heartbeat_elapsed = 0;
            self.bcast_heartbeat(Bytes::new());
        }
    }

    /// Check-quorum: whether a majority (counting this leader) was heard from in the last
    /// election timeout; starts a new window either way.
    fn check_quorum_active(&mut self) -> bool {
        let id = self.id;
        let active = super::quorum::has_quorum(&self.tracker.voters, |v| {
            v == id
                || self
                    .tracker
                    .progress
                    .get(&v)
                    .is_some_and(|p| p.recent_active)
        });
        for (&peer, pr) in self.tracker.progress.iter_mut() {
            if peer != id {
                pr.recent_active = false;
            }
        }
        active
    }
}

/// Encodes a member id (the transferee of a forwarded TransferLeader) as message context.
pub(crate) fn encode_node_id(id: NodeId) -> Bytes {
    Bytes::copy_from_slice(&id.0.to_be_bytes())
}

/// Decodes what `encode_node_id` produced; `None` on anything else.
pub(crate) fn decode_node_id(b: &[u8]) -> Option<NodeId> {
    let raw: [u8; 8] = b.try_into().ok()?;
    Some(NodeId(u64::from_be_bytes(raw))).filter(|id| id.0 != 0)
}

/// Storage writes a Ready's entries before its hard state, and a crash can keep the entries
/// of an unsynced batch while losing the hard state of the same batch. Entries (or a
/// snapshot) from a term above the recovered hard state term then come back. Nothing was
/// sent on the strength of that batch (vote answers wait for the sync), so it is safe to
/// take the highest term seen with no vote: this node promised nothing in that term.
fn raise_term_over_torn_tail(r: &mut RecoveredState) {
    let last_term = r.entries.last().map_or(r.snapshot.term, |e| e.term);
    let seen = last_term.max(r.snapshot.term);
    if seen > r.hard_state.term {
        tracing::warn!(
            hard_state_term = r.hard_state.term.0,
            log_term = seen.0,
            "recovered log has a term above the hard state (torn write): raising the term"
        );
        r.hard_state.term = seen;
        r.hard_state.vote = None;
    }
}

/// The gateway check on what storage handed back.
fn validate_recovered(r: &RecoveredState) -> Result<(), Error> {
    let bad = |why: String| Err(Error::InvalidRecoveredState(why));
    let mut expect = r.snapshot.index.next();
    for e in &r.entries {
        if e.index != expect {
            return bad(format!("entry {} where {} expected", e.index, expect));
        }
        if e.term > r.hard_state.term {
            return bad(format!(
                "entry {} has term {} above hard state term",
                e.index, e.term
            ));
        }
        expect = expect.next();
    }
    let last = expect.prev();
    if r.applied > last {
        return bad(format!("applied {} above last index {last}", r.applied));
    }
    if r.hard_state.commit > last {
        return bad(format!(
            "commit {} above last index {last}",
            r.hard_state.commit
        ));
    }
    Ok(())
}
