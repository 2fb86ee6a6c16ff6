//! Conversions between the Raft core's messages ([`crate::raft::Message`]) and their wire
//! form ([`raftkvpb::Message`]).
//!
//! This is the gateway for peer bytes (STYLE rule 3): [`message_from_pb`] checks everything
//! the Raft core would otherwise `assert!` on (ids, enum values, contiguous entries, a
//! snapshot exactly where one belongs) and returns a [`MalformedMessage`] instead of letting
//! a bad or hostile peer crash the node. The opposite direction, [`message_to_pb`], cannot
//! fail: our own messages are well formed by construction.
//!
//! It does no IO and knows nothing of gRPC streams; the transport (`super::transport`) and
//! the service (`super::service`) call it once per message.

use std::collections::BTreeSet;

use thiserror::Error;

use crate::proto::raftkvpb;
use crate::raft::{
    ConfState, Entry, EntryKind, Index, Message, MessageKind, NodeId, Snapshot, SnapshotMetadata,
    Term,
};

/// Why a message received from a peer was refused. The text names the offending field so
/// that an operator can tell a version mismatch from corruption.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MalformedMessage {
    /// The `kind` field holds a value this version does not know.
    #[error("malformed peer message: unknown message kind {0}")]
    UnknownKind(i32),
    /// An entry's `kind` field holds a value this version does not know.
    #[error("malformed peer message: entry {index} has unknown kind {kind}")]
    UnknownEntryKind {
        /// The entry's index.
        index: u64,
        /// The unknown value.
        kind: i32,
    },
    /// `from` or `to` is 0, which names no member.
    #[error("malformed peer message: {field} is 0 (no member)")]
    ZeroId {
        /// `from` or `to`.
        field: &'static str,
    },
    /// An Append's entries do not follow `index` one by one, or their terms go down.
    #[error("malformed peer message: append entries not contiguous: {0}")]
    EntriesNotContiguous(String),
    /// An InstallSnapshot without a snapshot, or its metadata is unusable.
    #[error("malformed peer message: bad snapshot: {0}")]
    BadSnapshot(String),
    /// A snapshot on a message of a kind that never carries one.
    #[error("malformed peer message: {0:?} carries a snapshot")]
    UnexpectedSnapshot(MessageKind),
}

/// The wire form of `m`. A snapshot's `data` is copied as is: the snapshot transfer sends
/// metadata only (empty data) and streams the image beside it.
pub fn message_to_pb(m: Message) -> raftkvpb::Message {
    raftkvpb::Message {
        kind: kind_to_pb(m.kind) as i32,
        from: m.from.0,
        to: m.to.0,
        term: m.term.0,
        log_term: m.log_term.0,
        index: m.index.0,
        entries: m.entries.into_iter().map(entry_to_pb).collect(),
        commit: m.commit.0,
        reject: m.reject,
        reject_hint: m.reject_hint.0,
        snapshot: m.snapshot.map(snapshot_to_pb),
        context: m.context,
    }
}

/// Decodes and validates a message received from a peer.
///
/// Errors: see [`MalformedMessage`]; nothing that passes here makes the Raft core panic.
pub fn message_from_pb(pb: raftkvpb::Message) -> Result<Message, MalformedMessage> {
    let kind = kind_from_pb(pb.kind)?;
    if pb.from == 0 {
        return Err(MalformedMessage::ZeroId { field: "from" });
    }
    if pb.to == 0 {
        return Err(MalformedMessage::ZeroId { field: "to" });
    }
    let entries = pb
        .entries
        .into_iter()
        .map(entry_from_pb)
        .collect::<Result<Vec<_>, _>>()?;
    if kind == MessageKind::Append {
        check_contiguous(Index(pb.index), Term(pb.log_term), &entries)?;
    }
    let snapshot = match (kind, pb.snapshot) {
        (MessageKind::InstallSnapshot, Some(s)) => Some(snapshot_from_pb(s)?),
        (MessageKind::InstallSnapshot, None) => {
            return Err(MalformedMessage::BadSnapshot("missing".to_string()))
        }
        (_, Some(_)) => return Err(MalformedMessage::UnexpectedSnapshot(kind)),
        (_, None) => None,
    };
    Ok(Message {
        kind,
        from: NodeId(pb.from),
        to: NodeId(pb.to),
        term: Term(pb.term),
        log_term: Term(pb.log_term),
        index: Index(pb.index),
        entries,
        commit: Index(pb.commit),
        reject: pb.reject,
        reject_hint: Index(pb.reject_hint),
        snapshot,
        context: pb.context,
    })
}

/// An Append's entries must be `index + 1, index + 2, ...` with terms that never go down
/// and never below `log_term` (the log invariant the follower's log relies on, §5.3).
fn check_contiguous(
    index: Index,
    log_term: Term,
    entries: &[Entry],
) -> Result<(), MalformedMessage> {
    let mut expect = index.0.checked_add(1);
    let mut term = log_term;
    for e in entries {
        if Some(e.index.0) != expect {
            let expected = expect.map_or("none (index overflow)".to_string(), |i| i.to_string());
            return Err(MalformedMessage::EntriesNotContiguous(format!(
                "entry {} where {expected} expected",
                e.index
            )));
        }
        if e.term < term {
            return Err(MalformedMessage::EntriesNotContiguous(format!(
                "entry {} has term {} after term {}",
                e.index, e.term, term
            )));
        }
        term = e.term;
        expect = e.index.0.checked_add(1);
    }
    Ok(())
}

fn kind_to_pb(kind: MessageKind) -> raftkvpb::MessageKind {
    use raftkvpb::MessageKind as Pb;
    match kind {
        MessageKind::Propose => Pb::Propose,
        MessageKind::Append => Pb::Append,
        MessageKind::AppendResponse => Pb::AppendResponse,
        MessageKind::RequestVote => Pb::RequestVote,
        MessageKind::RequestVoteResponse => Pb::RequestVoteResponse,
        MessageKind::RequestPreVote => Pb::RequestPreVote,
        MessageKind::RequestPreVoteResponse => Pb::RequestPreVoteResponse,
        MessageKind::Heartbeat => Pb::Heartbeat,
        MessageKind::HeartbeatResponse => Pb::HeartbeatResponse,
        MessageKind::InstallSnapshot => Pb::InstallSnapshot,
        MessageKind::TransferLeader => Pb::TransferLeader,
        MessageKind::TimeoutNow => Pb::TimeoutNow,
        MessageKind::ReadIndex => Pb::ReadIndex,
        MessageKind::ReadIndexResponse => Pb::ReadIndexResponse,
    }
}

fn kind_from_pb(value: i32) -> Result<MessageKind, MalformedMessage> {
    use raftkvpb::MessageKind as Pb;
    let pb = Pb::try_from(value).map_err(|_| MalformedMessage::UnknownKind(value))?;
    Ok(match pb {
        Pb::Propose => MessageKind::Propose,
        Pb::Append => MessageKind::Append,
        Pb::AppendResponse => MessageKind::AppendResponse,
        Pb::RequestVote => MessageKind::RequestVote,
        Pb::RequestVoteResponse => MessageKind::RequestVoteResponse,
        Pb::RequestPreVote => MessageKind::RequestPreVote,
        Pb::RequestPreVoteResponse => MessageKind::RequestPreVoteResponse,
        Pb::Heartbeat => MessageKind::Heartbeat,
        Pb::HeartbeatResponse => MessageKind::HeartbeatResponse,
        Pb::InstallSnapshot => MessageKind::InstallSnapshot,
        Pb::TransferLeader => MessageKind::TransferLeader,
        Pb::TimeoutNow => MessageKind::TimeoutNow,
        Pb::ReadIndex => MessageKind::ReadIndex,
        Pb::ReadIndexResponse => MessageKind::ReadIndexResponse,
    })
}

fn entry_to_pb(e: Entry) -> raftkvpb::Entry {
    let kind = match e.kind {
        EntryKind::Normal => raftkvpb::EntryKind::Normal,
        EntryKind::ConfChange => raftkvpb::EntryKind::ConfChange,
    };
    raftkvpb::Entry {
        term: e.term.0,
        index: e.index.0,
        kind: kind as i32,
        data: e.data,
    }
}

fn entry_from_pb(pb: raftkvpb::Entry) -> Result<Entry, MalformedMessage> {
    let kind = match raftkvpb::EntryKind::try_from(pb.kind) {
        Ok(raftkvpb::EntryKind::Normal) => EntryKind::Normal,
        Ok(raftkvpb::EntryKind::ConfChange) => EntryKind::ConfChange,
        Err(_) => {
            return Err(MalformedMessage::UnknownEntryKind {
                index: pb.index,
                kind: pb.kind,
            })
        }
    };
    Ok(Entry {
        term: Term(pb.term),
        index: Index(pb.index),
        kind,
        data: pb.data,
    })
}

fn snapshot_to_pb(s: Snapshot) -> raftkvpb::Snapshot {
    let conf = s.metadata.conf_state;
    raftkvpb::Snapshot {
        metadata: Some(raftkvpb::SnapshotMetadata {
            index: s.metadata.index.0,
            term: s.metadata.term.0,
            conf_state: Some(raftkvpb::ConfState {
                voters: conf.voters.iter().map(|id| id.0).collect(),
                learners: conf.learners.iter().map(|id| id.0).collect(),
            }),
        }),
        data: s.data,
    }
}

/// A received snapshot must name a real log position (index and term above 0) and a
/// membership with at least one voter, no id 0, and nobody both voter and learner.
fn snapshot_from_pb(pb: raftkvpb::Snapshot) -> Result<Snapshot, MalformedMessage> {
    let bad = |why: &str| MalformedMessage::BadSnapshot(why.to_string());
    let meta = pb.metadata.ok_or_else(|| bad("no metadata"))?;
    if meta.index == 0 || meta.term == 0 {
        return Err(bad("index or term is 0"));
    }
    let conf = meta.conf_state.ok_or_else(|| bad("no conf state"))?;
    let voters: BTreeSet<NodeId> = conf.voters.into_iter().map(NodeId).collect();
    let learners: BTreeSet<NodeId> = conf.learners.into_iter().map(NodeId).collect();
    if voters.is_empty() {
        return Err(bad("conf state has no voters"));
    }
    if voters.contains(&NodeId(0)) || learners.contains(&NodeId(0)) {
        return Err(bad("conf state names member 0"));
    }
    if !voters.is_disjoint(&learners) {
        return Err(bad("a member is both voter and learner"));
    }
    Ok(Snapshot {
        metadata: SnapshotMetadata {
            index: Index(meta.index),
            term: Term(meta.term),
            conf_state: ConfState { voters, learners },
        },
        data: pb.data,
    })
}
