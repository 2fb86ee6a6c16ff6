//! The vocabulary of the Raft core: ids, terms, indexes, log entries, messages and the
//! [`Ready`] batch the core hands to its caller.
//!
//! Everything here is plain data. The core (`RawNode`) produces and consumes these values;
//! it never touches a disk, a socket or a clock. The server turns them into WAL records and
//! gRPC messages; the simulator in `tests/` passes them around in memory.

use std::collections::BTreeSet;
use std::fmt;

use bytes::Bytes;

/// Identifies one member of the cluster. `0` is never a valid id: etcd uses it for "none".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

/// A Raft term: a logical clock that rises by one with every election (paper §5.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Term(pub u64);

/// The position of an entry in the replicated log. The first real entry has index 1;
/// index 0 stands for "before the log" and has term 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Index(pub u64);

impl Term {
    /// The term after this one.
    pub fn next(self) -> Term {
        Term(self.0 + 1)
    }
}

impl Index {
    /// The index after this one.
    pub fn next(self) -> Index {
        Index(self.0 + 1)
    }

    /// The index before this one; `Index(0).prev()` is a bug in the caller.
    pub fn prev(self) -> Index {
        assert!(self.0 > 0, "Index(0) has no predecessor");
        Index(self.0 - 1)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What an entry carries. The core only looks inside `ConfChange` entries (to know that a
/// membership change is pending); `Normal` data is opaque to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// Application data (or empty: the no-op a new leader appends, paper §8).
    Normal,
    /// An encoded [`ConfChange`] (see [`ConfChange::encode`]).
    ConfChange,
}

/// One record of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// The entry's position in the log.
    pub index: Index,
    /// How to interpret `data`.
    pub kind: EntryKind,
    /// The payload; opaque to the core for `Normal` entries.
    pub data: Bytes,
}

impl Entry {
    /// Bytes this entry counts for against `Config::msg_bytes_max`: the payload plus a
    /// fixed allowance for the header, so that empty entries are not free.
    pub fn size_bytes(&self) -> u64 {
        self.data.len() as u64 + 24
    }
}

/// The state that must be on stable storage before any message that depends on it leaves
/// the node (paper Figure 2, "Persistent state on all servers"; the log is persisted apart).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// The candidate this node voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// The highest index known to be committed. Persisting it is an optimisation (restart
    /// can re-apply without waiting for a leader), not a safety requirement.
    pub commit: Index,
}

/// Cluster membership: who votes and who only receives the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfState {
    /// Members whose acknowledgements count toward quorum and who may vote.
    pub voters: BTreeSet<NodeId>,
    /// Members that receive the log but never vote or count toward quorum.
    pub learners: BTreeSet<NodeId>,
}

/// A membership change of exactly one server (paper §6, "single-server changes").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfChangeKind {
    /// Add a voter, or promote an existing learner to voter.
    AddVoter,
    /// Remove a voter or a learner.
    RemoveNode,
    /// Add a learner (a non-voting member that catches up before promotion).
    AddLearner,
}

/// A proposed membership change; it takes effect when the application applies the
/// committed entry and calls `RawNode::apply_conf_change`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfChange {
    /// What to do.
    pub kind: ConfChangeKind,
    /// To whom.
    pub node: NodeId,
    /// Opaque application data carried along (the server puts the member's URLs here).
    pub context: Bytes,
}

/// Identifies the state a snapshot captures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMetadata {
    /// The last log index the snapshot covers.
    pub index: Index,
    /// The term of the entry at `index`.
    pub term: Term,
    /// Membership as of `index`.
    pub conf_state: ConfState,
}

/// An application state image plus the log position it stands for (paper §7).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Where in the log the snapshot stands.
    pub metadata: SnapshotMetadata,
    /// The application's image; opaque to the core.
    pub data: Bytes,
}

/// The kinds of message members exchange. Names follow the paper's RPCs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// A follower forwards a client proposal to the leader (`entries` holds it). Forwarded
    /// requests (Propose, ReadIndex, TransferLeader) carry term 0.
    Propose,
    /// AppendEntries RPC (§5.3): `log_term`/`index` name the entry before `entries`.
    Append,
    /// Reply to `Append`: `index` is the highest index now matching, or on `reject` the
    /// rejected index, with `reject_hint`/`log_term` helping the leader back off.
    AppendResponse,
    /// RequestVote RPC (§5.2): `log_term`/`index` describe the candidate's last entry.
    RequestVote,
    /// Reply to `RequestVote`; `reject` means the vote was refused.
    RequestVoteResponse,
    /// Pre-vote (§9.6 of Ongaro's thesis): like `RequestVote` for `term + 1`, but changes
    /// no state on the receiver.
    RequestPreVote,
    /// Reply to `RequestPreVote`.
    RequestPreVoteResponse,
    /// Leader heartbeat: carries `commit` and, for ReadIndex rounds, `context`.
    Heartbeat,
    /// Reply to `Heartbeat`, echoing `context`.
    HeartbeatResponse,
    /// InstallSnapshot RPC (§7): `snapshot` is set.
    InstallSnapshot,
    /// A follower forwards a leadership transfer request to the leader; `context` holds
    /// the transferee's id (8 bytes, big-endian).
    TransferLeader,
    /// The leader tells the transfer target to start an election at once (§3.10 thesis).
    TimeoutNow,
    /// A follower forwards a ReadIndex request (`context`) to the leader.
    ReadIndex,
    /// The leader's answer to `ReadIndex`: `index` is the read index for `context`.
    ReadIndexResponse,
}

/// A message between two members. Fields not used by a kind stay at their defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// What the message is.
    pub kind: MessageKind,
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// The sender's term (for pre-votes: the term the candidate would campaign in).
    pub term: Term,
    /// A term that qualifies `index`; meaning depends on `kind`.
    pub log_term: Term,
    /// An index; meaning depends on `kind`.
    pub index: Index,
    /// Entries to append (Append) or to propose (Propose).
    pub entries: Vec<Entry>,
    /// The sender's commit index (Append, Heartbeat).
    pub commit: Index,
    /// For responses: whether the request was refused.
    pub reject: bool,
    /// For rejected appends: the receiver's best guess of where logs may match.
    pub reject_hint: Index,
    /// The snapshot to install (InstallSnapshot).
    pub snapshot: Option<Snapshot>,
    /// Opaque request context (ReadIndex rounds, campaign reasons).
    pub context: Bytes,
}

impl Message {
    /// A message of `kind` with every other field at its default; builders fill the rest.
    pub fn new(kind: MessageKind, from: NodeId, to: NodeId, term: Term) -> Message {
        Message {
            kind,
            from,
            to,
            term,
            log_term: Term(0),
            index: Index(0),
            entries: Vec::new(),
            commit: Index(0),
            reject: false,
            reject_hint: Index(0),
            snapshot: None,
            context: Bytes::new(),
        }
    }
}

/// The role a node plays (paper Figure 4, plus pre-candidate for pre-vote).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Running a pre-vote: asking whether an election could win before bumping the term.
    PreCandidate,
    /// Running an election in its own term.
    Candidate,
    /// Leads its term.
    Leader,
}

/// Volatile state the application may want to observe (who leads, our role).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftState {
    /// The known leader of the current term, if any.
    pub leader: Option<NodeId>,
    /// This node's role.
    pub role: Role,
}

/// A linearizable read that may now be served: once the application has applied up to
/// `index`, reading local state answers the request identified by `context`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The commit index at the time the leader confirmed its leadership.
    pub index: Index,
    /// The context given to `RawNode::read_index`.
    pub context: Bytes,
}

/// Everything the core needs its caller to do, returned by `RawNode::ready`.
///
/// The caller handles a `Ready` in this order, then calls `RawNode::advance`:
/// 1. send `messages` (they do not depend on anything unpersisted; the leader sends
///    AppendEntries here while its own write is in flight);
/// 2. persist `snapshot`, `entries` and `hard_state` (one fsync if `must_sync`);
/// 3. send `persisted_messages` (votes and acknowledgements that promise durability);
/// 4. apply `snapshot` then `committed_entries` to the state machine (entries here may
///    also be in `entries`: step 2 has made them durable first);
/// 5. serve `read_states` once applied up to their index.
#[derive(Clone, Debug, Default)]
pub struct Ready {
    /// Set when the leader or our role changed since the last `Ready`.
    pub soft_state: Option<SoftState>,
    /// Set when the hard state changed and must be persisted.
    pub hard_state: Option<HardState>,
    /// Entries to append to stable storage. An entry here may replace a conflicting suffix:
    /// storage must truncate everything at or after `entries[0].index` first.
    pub entries: Vec<Entry>,
    /// A snapshot to persist and install (replaces the log prefix and the membership).
    pub snapshot: Option<Snapshot>,
    /// Messages that may be sent at once.
    pub messages: Vec<Message>,
    /// Messages that may be sent only after step 2 above is durable.
    pub persisted_messages: Vec<Message>,
    /// Committed entries to apply, in log order.
    pub committed_entries: Vec<Entry>,
    /// Reads that may be served once applied up to their index.
    pub read_states: Vec<ReadState>,
    /// Whether step 2 must fsync (false when only the commit index changed).
    pub must_sync: bool,
}

/// What a recovering node read back from stable storage; `RawNode::new` starts from it.
/// A brand-new member passes a default value with only `conf_state` filled in.
#[derive(Clone, Debug, Default)]
pub struct RecoveredState {
    /// The last persisted hard state.
    pub hard_state: HardState,
    /// The latest persisted snapshot's metadata (index 0 when there is none).
    pub snapshot: SnapshotMetadata,
    /// Persisted entries after the snapshot, contiguous from `snapshot.index + 1`.
    pub entries: Vec<Entry>,
    /// Membership as of `applied` (the application stores it with its applied index); for
    /// a brand-new cluster, the initial members.
    pub conf_state: ConfState,
    /// The last index the application has applied; `committed_entries` resume after it.
    pub applied: Index,
}
