//! [`RawNode`]: the public face of the Raft core, and the `Ready`/`advance` handshake.
//!
//! The caller drives a `RawNode` with [`tick`](RawNode::tick), [`step`](RawNode::step) and
//! the request methods, then repeatedly takes a [`Ready`] and calls
//! [`advance`](RawNode::advance) once it has carried it out (see [`Ready`] for the order).
//!
//! Design decisions:
//! - The node owns its in-memory log (etcd's `MemoryStorage` and unstable log merged, see
//!   `raft_log.rs`). `Ready.entries` is the unpersisted tail; `advance` marks it persisted.
//!   A restarted node rebuilds everything from [`RecoveredState`].
//! - At most one `Ready` is outstanding; `advance` takes no argument because the node
//!   remembers what it handed out: after it, those entries are persisted, the snapshot is
//!   installed and the committed entries are applied. `has_ready` is false in between.
//! - `Ready.committed_entries` may overlap `Ready.entries` (the caller persists first).
//! - Vote requests and grants, and append and heartbeat acknowledgements, go in
//!   `persisted_messages`; everything else (the leader's Appends, heartbeats, snapshots,
//!   forwarded requests, pre-votes) in `messages`. The leader sends Appends while its own
//!   write is in flight; its own match index moves only at `advance`, so a single-voter
//!   cluster commits on its own persist.
//! - Messages to self are never emitted.
//! - Reads that arrive between two `Ready`s share one heartbeat round, started by `ready`.
//!
//! Who calls it: the server's driver loop, the simulator in `src/sim/`, and the tests.

use bytes::Bytes;

use super::node::Raft;
use super::{
    ConfChange, ConfState, Config, Entry, EntryKind, Error, HardState, Index, Message, NodeId,
    Ready, RecoveredState, Role, Snapshot, SoftState, Status, Term,
};

/// One Raft node: a deterministic state machine driven by ticks, messages and requests.
/// See the module docs for the Ready/advance contract.
pub struct RawNode {
    raft: Raft,
    /// The hard state handed out last (or recovered): a `Ready` carries it only if changed.
    prev_hard_state: HardState,
    prev_soft_state: SoftState,
    /// A `Ready` was handed out and not yet advanced.
    outstanding: bool,
}

impl RawNode {
    /// Builds a node from its configuration and what it recovered from storage.
    ///
    /// Errors: [`Error::InvalidConfig`] for id 0, a zero heartbeat interval, a heartbeat
    /// interval not below the election timeout, or zero inflight messages or message
    /// bytes; [`Error::InvalidRecoveredState`] if the recovered entries are not contiguous
    /// after the snapshot or the commit or applied index lies beyond them.
    ///
    /// Entries (or a snapshot) from a term above `hard_state.term` are accepted: a crash
    /// can keep a Ready's entries and lose the hard state written after them. The node then
    /// starts in the highest term its log shows, with no vote (it promised nothing in that
    /// term: vote answers leave only after the sync), and its first `Ready` persists that.
    pub fn new(config: Config, recovered: RecoveredState) -> Result<RawNode, Error> {
        validate_config(&config)?;
        let prev_hard_state = recovered.hard_state;
        let raft = Raft::new(config, recovered)?;
        let prev_soft_state = SoftState {
            leader: raft.leader,
            role: raft.role,
        };
        Ok(RawNode {
            raft,
            prev_hard_state,
            prev_soft_state,
            outstanding: false,
        })
    }

    /// Advances logical time by one tick: followers may start an election, leaders send
    /// heartbeats and run the check-quorum and transfer timeouts.
    pub fn tick(&mut self) {
        self.raft.tick();
    }

    /// Starts an election now (a pre-vote first if enabled). Ignored on a leader, a learner
    /// or a removed node.
    pub fn campaign(&mut self) {
        self.raft.hup(false);
    }

    /// Proposes `data` for the log. On a follower it is forwarded to the leader; there is
    /// no guarantee it gets committed, the application watches `committed_entries`.
    ///
    /// Errors: [`Error::ProposalDropped`] when no leader is known or a leadership transfer
    /// is in progress on this leader.
    pub fn propose(&mut self, data: Bytes) -> Result<(), Error> {
        self.propose_entry(EntryKind::Normal, data)
    }

    /// Proposes several entries at once, in order: the batch form of
    /// [`propose`](RawNode::propose). A leader appends them all and sends one Append per
    /// follower (not one per entry); a follower forwards them in one Propose message. The
    /// batch is taken or refused as a whole. An empty batch does nothing.
    ///
    /// Errors: as [`propose`](RawNode::propose).
    pub fn propose_batch(&mut self, batch: Vec<Bytes>) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        let entries: Vec<(EntryKind, Bytes)> =
            batch.into_iter().map(|d| (EntryKind::Normal, d)).collect();
        self.propose_entries_of(entries)
    }

    /// Proposes a membership change (one server at a time).
    ///
    /// Errors: as [`propose`](RawNode::propose), plus [`Error::ConfChangePending`] on the
    /// leader if an earlier change is not yet applied. A follower forwards the change and
    /// the leader silently drops it in that case.
    pub fn propose_conf_change(&mut self, cc: ConfChange) -> Result<(), Error> {
        self.propose_entry(EntryKind::ConfChange, cc.encode())
    }

    fn propose_entry(&mut self, kind: EntryKind, data: Bytes) -> Result<(), Error> {
        self.propose_entries_of(vec![(kind, data)])
    }

    /// The leader appends `entries`; a follower forwards them in one Propose message.
    fn propose_entries_of(&mut self, entries: Vec<(EntryKind, Bytes)>) -> Result<(), Error> {
        if self.raft.role == Role::Leader {
            return self.raft.propose_entries(entries);
        }
        let Some(leader) = self.raft.leader else {
            return Err(Error::ProposalDropped);
        };
        let mut m = Message::new(super::MessageKind::Propose, self.raft.id, leader, Term(0));
        m.entries = entries
            .into_iter()
            .map(|(kind, data)| Entry {
                term: Term(0),
                index: Index(0),
                kind,
                data,
            })
            .collect();
        self.raft.send(m);
        Ok(())
    }

    /// Handles a message from a peer.
    ///
    /// Errors: [`Error::WrongRecipient`] if `msg.to` is not this node.
    pub fn step(&mut self, msg: Message) -> Result<(), Error> {
        self.raft.step(msg)
    }

    /// Requests a linearizable read; a [`ReadState`](super::ReadState) carrying `context`
    /// comes back in a later `Ready` once leadership is confirmed. Dropped silently when no
    /// leader is known or leadership changes first (the caller times out and retries).
    pub fn read_index(&mut self, context: Bytes) {
        self.raft.read_index(context);
    }

    /// Hands leadership to `to`: the leader catches it up, then tells it to campaign.
    /// A follower forwards the request. Aborted after an election timeout; proposals are
    /// refused meanwhile.
    pub fn transfer_leader(&mut self, to: NodeId) {
        self.raft.transfer_leader(to);
    }

    /// Makes a committed membership change take effect; the application calls it when it
    /// applies the `ConfChange` entry. Returns the new membership (store it with the
    /// applied index: it is `RecoveredState::conf_state` after a restart).
    pub fn apply_conf_change(&mut self, cc: &ConfChange) -> ConfState {
        self.raft.apply_conf_change(cc)
    }

    /// The application has applied up to `snapshot.metadata.index` and taken this image:
    /// drop log entries up to it and keep the snapshot for lagging followers. After a
    /// restart, call it once with the snapshot the node recovered from: `RecoveredState`
    /// carries only its metadata, and a leader needs the image to catch followers up.
    /// Panics if the index is beyond what the application has applied (its bug).
    pub fn compact(&mut self, snapshot: Snapshot) {
        self.raft.compact(snapshot);
    }

    /// The transport failed to deliver to `id`: the leader stops streaming to it and
    /// probes instead.
    pub fn report_unreachable(&mut self, id: NodeId) {
        self.raft.report_unreachable(id);
    }

    /// The outcome of sending the snapshot to `id`; the leader resumes probing either way.
    /// The transport must report every InstallSnapshot it fails to deliver: until the
    /// follower acknowledges the snapshot or a failure is reported, the leader sends that
    /// follower nothing but heartbeats (as in etcd).
    pub fn report_snapshot(&mut self, id: NodeId, success: bool) {
        self.raft.report_snapshot(id, success);
    }

    fn soft_state(&self) -> SoftState {
        self.raft.soft_state()
    }

    fn hard_state(&self) -> HardState {
        self.raft.hard_state()
    }

    /// Whether [`ready`](RawNode::ready) has something to hand out. False while a `Ready`
    /// is outstanding.
    pub fn has_ready(&self) -> bool {
        if self.outstanding {
            return false;
        }
        let r = &self.raft;
        self.soft_state() != self.prev_soft_state
            || self.hard_state() != self.prev_hard_state
            || !r.log.unpersisted_entries().is_empty()
            || r.log.pending_snapshot.is_some()
            || !r.msgs.is_empty()
            || !r.msgs_after_persist.is_empty()
            || r.log.committed > r.log.applying
            || !r.read_states.is_empty()
            || (r.role == Role::Leader && r.read_only.has_unsent_round())
    }

    /// Hands out the next batch of work. At most one may be outstanding: call
    /// [`advance`](RawNode::advance) before the next `ready` (a bug otherwise: panics).
    pub fn ready(&mut self) -> Ready {
        assert!(
            !self.outstanding,
            "ready() called before advance() of the previous Ready"
        );
        self.raft.flush_read_rounds();
        let log = &mut self.raft.log;
        let snapshot = log.pending_snapshot.take();
        if let Some(s) = &snapshot {
            let index = s.metadata.index;
            log.snapshot_in_progress = Some(index);
            log.in_progress = log.in_progress.max(index);
            log.applying = log.applying.max(index);
        }
        let entries = log.unpersisted_entries().to_vec();
        log.in_progress = log.last_index();
        let committed_entries = log.next_committed_entries();
        log.applying = log.applying.max(log.committed);
        let hard_state = self.hard_state();
        let term_or_vote_changed = hard_state.term != self.prev_hard_state.term
            || hard_state.vote != self.prev_hard_state.vote;
        let ready = Ready {
            soft_state: Some(self.soft_state()).filter(|s| *s != self.prev_soft_state),
            hard_state: Some(hard_state).filter(|h| *h != self.prev_hard_state),
            must_sync: !entries.is_empty() || snapshot.is_some() || term_or_vote_changed,
            entries,
            snapshot,
            messages: std::mem::take(&mut self.raft.msgs),
            persisted_messages: std::mem::take(&mut self.raft.msgs_after_persist),
            committed_entries,
            read_states: std::mem::take(&mut self.raft.read_states),
        };
        self.prev_hard_state = hard_state;
        self.prev_soft_state = self.soft_state();
        self.outstanding = true;
        ready
    }

    /// The last `Ready` was fully handled: its entries and snapshot are durable and its
    /// committed entries applied. The leader may now count its own copy toward commit.
    pub fn advance(&mut self) {
        if !self.outstanding {
            return;
        }
        self.outstanding = false;
        let log = &mut self.raft.log;
        // `ready` moved both marks past the snapshot it handed out, if any.
        log.snapshot_in_progress = None;
        log.persisted = log.in_progress;
        log.applied = log.applying;
        if self.raft.role == Role::Leader {
            let persisted = self.raft.log.persisted;
            if let Some(pr) = self.raft.tracker.progress.get_mut(&self.raft.id) {
                pr.maybe_update(persisted);
            }
            if self.raft.maybe_commit() {
                self.raft.bcast_append();
            }
        }
    }

    /// A snapshot of this node's state for monitoring and tests.
    pub fn status(&self) -> Status {
        self.raft.status()
    }

    /// Asserts the node's invariants (a failure is a bug in the core): snapshot <= applied
    /// <= committed <= last index, persisted <= last index, membership and progress
    /// consistent, a leader leads its own term as a voter.
    pub fn check_invariants(&self) {
        self.raft.check_invariants();
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.raft.id
    }

    /// This node's role.
    pub fn role(&self) -> Role {
        self.raft.role
    }

    /// The leader this node knows of in its current term.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.leader
    }

    /// The current term.
    pub fn term(&self) -> Term {
        self.raft.term
    }

    /// The vote cast in the current term.
    pub fn vote(&self) -> Option<NodeId> {
        self.raft.vote
    }

    /// The commit index.
    pub fn commit(&self) -> Index {
        self.raft.log.committed
    }

    /// The index the application has applied (as of the last `advance`).
    pub fn applied(&self) -> Index {
        self.raft.log.applied
    }

    /// The index of the last log entry.
    pub fn last_index(&self) -> Index {
        self.raft.log.last_index()
    }

    /// The index of the first entry still in the log (one past the compaction point).
    pub fn first_index(&self) -> Index {
        self.raft.log.first_index()
    }

    /// The entries in `[lo, hi)` that are still in the log (the range is clipped to
    /// `first_index ..= last_index`).
    pub fn entries(&self, lo: Index, hi: Index) -> Vec<Entry> {
        let lo = lo.max(self.first_index());
        let hi = hi.min(self.last_index().next());
        if lo >= hi {
            return Vec::new();
        }
        self.raft.log.entries(lo, hi, u64::MAX)
    }

    /// The term of the entry at `index`, or `None` if compacted away or beyond the log.
    pub fn term_at(&self, index: Index) -> Option<Term> {
        self.raft.log.term(index)
    }

    /// The current membership.
    pub fn conf_state(&self) -> ConfState {
        self.raft.tracker.conf_state()
    }
}

/// The gateway check on a configuration.
fn validate_config(c: &Config) -> Result<(), Error> {
    let bad = |why: &str| Err(Error::InvalidConfig(why.to_string()));
    if c.id.0 == 0 {
        return bad("id must not be 0");
    }
    if c.heartbeat_interval_ticks == 0 {
        return bad("heartbeat_interval_ticks must be at least 1");
    }
    if c.heartbeat_interval_ticks >= c.election_timeout_ticks {
        return bad("heartbeat_interval_ticks must be below election_timeout_ticks");
    }
    if c.inflight_msgs_max == 0 {
        return bad("inflight_msgs_max must be at least 1");
    }
    if c.msg_bytes_max == 0 {
        return bad("msg_bytes_max must be at least 1");
    }
    Ok(())
}
