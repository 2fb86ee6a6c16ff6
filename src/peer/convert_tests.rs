//! Round-trip and rejection tests for `convert`: every message kind survives
//! `message_to_pb` -> prost encode -> decode -> `message_from_pb` unchanged, and each kind of
//! malformed input is refused with the error that names it.

use bytes::Bytes;
use prost::Message as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::convert::{message_from_pb, message_to_pb, MalformedMessage};
use crate::proto::raftkvpb;
use crate::raft::{
    ConfState, Entry, EntryKind, Index, Message, MessageKind, NodeId, Snapshot, SnapshotMetadata,
    Term,
};

const KINDS: [MessageKind; 14] = [
    MessageKind::Propose,
    MessageKind::Append,
    MessageKind::AppendResponse,
    MessageKind::RequestVote,
    MessageKind::RequestVoteResponse,
    MessageKind::RequestPreVote,
    MessageKind::RequestPreVoteResponse,
    MessageKind::Heartbeat,
    MessageKind::HeartbeatResponse,
    MessageKind::InstallSnapshot,
    MessageKind::TransferLeader,
    MessageKind::TimeoutNow,
    MessageKind::ReadIndex,
    MessageKind::ReadIndexResponse,
];

/// A message of `kind` with every field the kind may carry set to something random.
fn random_message(rng: &mut StdRng, kind: MessageKind) -> Message {
    let mut m = Message::new(
        kind,
        NodeId(rng.gen_range(1..u64::MAX)),
        NodeId(rng.gen_range(1..u64::MAX)),
        Term(rng.gen()),
    );
    m.log_term = Term(rng.gen_range(0..1000));
    m.index = Index(rng.gen_range(0..1_000_000));
    m.commit = Index(rng.gen());
    m.reject = rng.gen();
    m.reject_hint = Index(rng.gen());
    m.context = random_bytes(rng, 16);
    if matches!(kind, MessageKind::Append | MessageKind::Propose) {
        let mut term = m.log_term.0;
        for i in 0..rng.gen_range(0..5u64) {
            term += rng.gen_range(0..2);
            m.entries.push(Entry {
                term: Term(term),
                index: Index(m.index.0 + 1 + i),
                kind: if rng.gen() {
                    EntryKind::Normal
                } else {
                    EntryKind::ConfChange
                },
                data: random_bytes(rng, 64),
            });
        }
    }
    if kind == MessageKind::InstallSnapshot {
        m.snapshot = Some(snapshot(rng.gen_range(1..1000), &[1, 2, 3], &[9]));
    }
    m
}

fn random_bytes(rng: &mut StdRng, len_max: usize) -> Bytes {
    let len = rng.gen_range(0..=len_max);
    (0..len)
        .map(|_| rng.gen::<u8>())
        .collect::<Vec<u8>>()
        .into()
}

fn snapshot(index: u64, voters: &[u64], learners: &[u64]) -> Snapshot {
    Snapshot {
        metadata: SnapshotMetadata {
            index: Index(index),
            term: Term(3),
            conf_state: ConfState {
                voters: voters.iter().copied().map(NodeId).collect(),
                learners: learners.iter().copied().map(NodeId).collect(),
            },
        },
        data: Bytes::new(),
    }
}

fn seed() -> u64 {
    std::env::var("SEED").map_or_else(|_| rand::random(), |s| s.parse().expect("SEED=<u64>"))
}

#[test]
fn every_kind_round_trips_through_the_wire() {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..200 {
        for kind in KINDS {
            let m = random_message(&mut rng, kind);
            let wire = message_to_pb(m.clone()).encode_to_vec();
            let pb = raftkvpb::Message::decode(wire.as_slice()).expect("decode");
            let back = message_from_pb(pb);
            assert_eq!(
                back.as_ref(),
                Ok(&m),
                "seed {seed} (replay with SEED={seed})"
            );
        }
    }
}

fn valid_append() -> raftkvpb::Message {
    let mut m = Message::new(MessageKind::Append, NodeId(1), NodeId(2), Term(5));
    m.index = Index(10);
    m.log_term = Term(4);
    for (i, term) in [(11, 4), (12, 5)] {
        m.entries.push(Entry {
            term: Term(term),
            index: Index(i),
            kind: EntryKind::Normal,
            data: Bytes::from_static(b"x"),
        });
    }
    message_to_pb(m)
}

#[test]
fn the_base_append_is_accepted() {
    assert!(message_from_pb(valid_append()).is_ok());
}

#[test]
fn unknown_kinds_and_zero_ids_are_refused() {
    let mut pb = valid_append();
    pb.kind = 99;
    assert_eq!(message_from_pb(pb), Err(MalformedMessage::UnknownKind(99)));

    let mut pb = valid_append();
    pb.entries[1].kind = 7;
    assert_eq!(
        message_from_pb(pb),
        Err(MalformedMessage::UnknownEntryKind { index: 12, kind: 7 })
    );

    let mut pb = valid_append();
    pb.from = 0;
    assert_eq!(
        message_from_pb(pb),
        Err(MalformedMessage::ZeroId { field: "from" })
    );
    let mut pb = valid_append();
    pb.to = 0;
    assert_eq!(
        message_from_pb(pb),
        Err(MalformedMessage::ZeroId { field: "to" })
    );
}

#[test]
fn append_entries_must_follow_index_with_rising_terms() {
    let mut gap = valid_append();
    gap.entries[1].index = 13;
    let err = message_from_pb(gap).unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed peer message: append entries not contiguous: entry 13 where 12 expected"
    );

    let mut wrong_start = valid_append();
    wrong_start.index = 9;
    assert!(matches!(
        message_from_pb(wrong_start),
        Err(MalformedMessage::EntriesNotContiguous(_))
    ));

    let mut falling = valid_append();
    falling.entries[1].term = 3;
    assert!(matches!(
        message_from_pb(falling),
        Err(MalformedMessage::EntriesNotContiguous(_))
    ));

    let mut overflow = valid_append();
    overflow.index = u64::MAX;
    assert!(matches!(
        message_from_pb(overflow),
        Err(MalformedMessage::EntriesNotContiguous(_))
    ));
}

fn install_snapshot(s: Option<Snapshot>) -> raftkvpb::Message {
    let mut m = Message::new(MessageKind::InstallSnapshot, NodeId(1), NodeId(2), Term(5));
    m.snapshot = s;
    message_to_pb(m)
}

#[test]
fn snapshots_only_where_they_belong_and_only_sane_ones() {
    let bad = |pb| match message_from_pb(pb) {
        Err(MalformedMessage::BadSnapshot(why)) => why,
        other => panic!("expected BadSnapshot, got {other:?}"),
    };
    assert!(message_from_pb(install_snapshot(Some(snapshot(7, &[1, 2], &[3])))).is_ok());
    assert_eq!(bad(install_snapshot(None)), "missing");
    assert_eq!(
        bad(install_snapshot(Some(snapshot(0, &[1], &[])))),
        "index or term is 0"
    );
    assert_eq!(
        bad(install_snapshot(Some(snapshot(7, &[], &[3])))),
        "conf state has no voters"
    );
    assert_eq!(
        bad(install_snapshot(Some(snapshot(7, &[1, 0], &[])))),
        "conf state names member 0"
    );
    assert_eq!(
        bad(install_snapshot(Some(snapshot(7, &[1, 2], &[2])))),
        "a member is both voter and learner"
    );
    let mut no_meta = install_snapshot(Some(snapshot(7, &[1], &[])));
    no_meta.snapshot.as_mut().unwrap().metadata = None;
    assert_eq!(bad(no_meta), "no metadata");

    let mut heartbeat = install_snapshot(Some(snapshot(7, &[1], &[])));
    heartbeat.kind = raftkvpb::MessageKind::Heartbeat as i32;
    assert_eq!(
        message_from_pb(heartbeat),
        Err(MalformedMessage::UnexpectedSnapshot(MessageKind::Heartbeat))
    );
}
