//! Tests of raftkv's own wire formats (`raftkv::proto::raftkvpb`): Raft peer messages and
//! log payloads.
//!
//! These bytes are written to the WAL and to snapshots and exchanged between members, so
//! their field numbers are as fixed as etcd's. The tests pin a few encodings by hand
//! (tag = field_number << 3 | wire_type), check that the enums' numbers line up with the
//! Raft core's names, and round-trip randomly generated messages through encode and
//! decode. The random test is seeded: it prints its seed on failure and replays it from
//! `SEED=n`.

use bytes::Bytes;
use prost::Message;
use raftkv::proto::etcdserverpb as etcd;
use raftkv::proto::raftkvpb as pb;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn assert_wire<M: Message + Default + PartialEq + std::fmt::Debug>(msg: &M, expected: &[u8]) {
    assert_eq!(msg.encode_to_vec(), expected, "encoding of {msg:?}");
    let decoded = M::decode(expected).expect("hand-derived bytes must decode");
    assert_eq!(&decoded, msg, "decoding of {expected:02x?}");
}

#[test]
fn hard_state_and_entry_bytes() {
    let hard_state = pb::HardState {
        term: 1,
        vote: 2,
        commit: 3,
    };
    assert_wire(&hard_state, &[0x08, 1, 0x10, 2, 0x18, 3]);

    let entry = pb::Entry {
        term: 2,
        index: 300,
        kind: pb::EntryKind::ConfChange as i32,
        data: Bytes::from_static(b"x"),
    };
    // 1 term, 2 index (300 -> 0xac 0x02), 3 kind CONF_CHANGE = 1, 4 data
    assert_wire(&entry, &[0x08, 2, 0x10, 0xac, 0x02, 0x18, 1, 0x22, 1, b'x']);

    let conf_state = pb::ConfState {
        voters: vec![1, 2],
        learners: vec![3],
    };
    // repeated uint64 are packed in proto3: 1 voters [1, 2], 2 learners [3]
    assert_wire(&conf_state, &[0x0a, 2, 1, 2, 0x12, 1, 3]);
}

#[test]
fn message_kind_numbers_follow_the_raft_core_names() {
    use pb::MessageKind as K;
    let kinds = [
        (K::Propose, 0),
        (K::Append, 1),
        (K::AppendResponse, 2),
        (K::RequestVote, 3),
        (K::RequestVoteResponse, 4),
        (K::RequestPreVote, 5),
        (K::RequestPreVoteResponse, 6),
        (K::Heartbeat, 7),
        (K::HeartbeatResponse, 8),
        (K::InstallSnapshot, 9),
        (K::TransferLeader, 10),
        (K::TimeoutNow, 11),
        (K::ReadIndex, 12),
        (K::ReadIndexResponse, 13),
    ];
    for (kind, number) in kinds {
        assert_eq!(kind as i32, number, "{kind:?}");
        assert_eq!(K::try_from(number), Ok(kind));
    }
    assert!(
        K::try_from(14).is_err(),
        "a new kind must be added to this table"
    );
}

#[test]
fn internal_request_bytes() {
    let put = etcd::PutRequest {
        key: Bytes::from_static(b"k"),
        ..Default::default()
    };
    let request = pb::InternalRequest {
        header: Some(pb::RequestHeader {
            id: 1,
            ..Default::default()
        }),
        request: Some(pb::internal_request::Request::Put(put)),
    };
    // 1 header { 1 id }, 11 put { 1 key }: 11<<3|2 = 0x5a
    assert_wire(&request, &[0x0a, 2, 0x08, 1, 0x5a, 3, 0x0a, 1, b'k']);
}

/// Returns the seed from `SEED` if set, else a fresh one; printed so a failure replays.
fn seed() -> u64 {
    let seed = match std::env::var("SEED") {
        Ok(text) => text.parse().expect("SEED must be a u64"),
        Err(_) => rand::random(),
    };
    println!("seed {seed} (replay with SEED={seed})");
    seed
}

fn random_bytes(rng: &mut StdRng) -> Bytes {
    let len = rng.gen_range(0..8);
    (0..len)
        .map(|_| rng.gen::<u8>())
        .collect::<Vec<u8>>()
        .into()
}

/// Small or huge, so both one-byte and ten-byte varints appear.
fn random_u64(rng: &mut StdRng) -> u64 {
    if rng.gen_bool(0.5) {
        rng.gen_range(0..4)
    } else {
        rng.gen()
    }
}

fn random_entry(rng: &mut StdRng) -> pb::Entry {
    pb::Entry {
        term: random_u64(rng),
        index: random_u64(rng),
        kind: rng.gen_range(0..2),
        data: random_bytes(rng),
    }
}

fn random_snapshot(rng: &mut StdRng) -> pb::Snapshot {
    let conf_state = pb::ConfState {
        voters: (0..rng.gen_range(0..4)).map(|_| random_u64(rng)).collect(),
        learners: (0..rng.gen_range(0..3)).map(|_| random_u64(rng)).collect(),
    };
    let metadata = pb::SnapshotMetadata {
        index: random_u64(rng),
        term: random_u64(rng),
        conf_state: Some(conf_state),
    };
    pb::Snapshot {
        metadata: Some(metadata),
        data: random_bytes(rng),
    }
}

fn random_message(rng: &mut StdRng) -> pb::Message {
    pb::Message {
        kind: rng.gen_range(0..14),
        from: random_u64(rng),
        to: random_u64(rng),
        term: random_u64(rng),
        log_term: random_u64(rng),
        index: random_u64(rng),
        entries: (0..rng.gen_range(0..4))
            .map(|_| random_entry(rng))
            .collect(),
        commit: random_u64(rng),
        reject: rng.gen(),
        reject_hint: random_u64(rng),
        snapshot: rng.gen_bool(0.3).then(|| random_snapshot(rng)),
        context: random_bytes(rng),
    }
}

fn round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(msg: &M, seed: u64) {
    let bytes = msg.encode_to_vec();
    assert_eq!(bytes.len(), msg.encoded_len(), "seed {seed}");
    let decoded = M::decode(bytes.as_slice()).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    assert_eq!(&decoded, msg, "seed {seed}: round trip changed the message");
}

#[test]
fn random_peer_messages_round_trip() {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..500 {
        let batch = pb::MessageBatch {
            cluster_id: random_u64(&mut rng),
            messages: (0..rng.gen_range(0..4))
                .map(|_| random_message(&mut rng))
                .collect(),
        };
        round_trip(&batch, seed);
        let chunk = pb::SnapshotChunk {
            cluster_id: random_u64(&mut rng),
            message: rng.gen_bool(0.5).then(|| random_message(&mut rng)),
            offset: random_u64(&mut rng),
            data: random_bytes(&mut rng),
            last: rng.gen(),
            sha256: random_bytes(&mut rng),
        };
        round_trip(&chunk, seed);
    }
}

#[test]
fn log_payloads_round_trip() {
    use pb::internal_request::Request;
    let txn = etcd::TxnRequest {
        compare: vec![etcd::Compare {
            key: Bytes::from_static(b"k"),
            target_union: Some(etcd::compare::TargetUnion::Version(0)),
            ..Default::default()
        }],
        success: vec![etcd::RequestOp {
            request: Some(etcd::request_op::Request::RequestPut(
                etcd::PutRequest::default(),
            )),
        }],
        failure: Vec::new(),
    };
    let checkpoint = etcd::LeaseCheckpointRequest {
        checkpoints: vec![etcd::LeaseCheckpoint {
            id: 7,
            remaining_ttl: 30,
        }],
    };
    let attrs = pb::ClusterMemberAttrSetRequest {
        member_id: 1,
        name: "m1".to_string(),
        client_urls: vec!["http://127.0.0.1:2379".to_string()],
    };
    let requests = [
        Request::Txn(txn),
        Request::Compaction(etcd::CompactionRequest {
            revision: 5,
            physical: true,
        }),
        Request::LeaseGrant(etcd::LeaseGrantRequest { ttl: 10, id: 7 }),
        Request::LeaseRevoke(etcd::LeaseRevokeRequest { id: 7 }),
        Request::LeaseCheckpoint(checkpoint),
        Request::Alarm(etcd::AlarmRequest {
            action: 1,
            member_id: 1,
            alarm: 1,
        }),
        Request::ClusterMemberAttrSet(attrs),
        Request::AuthEnable(etcd::AuthEnableRequest {}),
    ];
    for (id, request) in requests.into_iter().enumerate() {
        let header = pb::RequestHeader {
            id: id as u64 + 1,
            ..Default::default()
        };
        let internal = pb::InternalRequest {
            header: Some(header),
            request: Some(request),
        };
        round_trip(&internal, 0);
    }
    let member = pb::MemberContext {
        id: 9,
        peer_urls: vec!["http://a:2380".into()],
        is_learner: true,
        request_id: 7,
    };
    let change = pb::ConfChange {
        kind: pb::ConfChangeKind::AddLearner as i32,
        node: 9,
        context: member.encode_to_vec().into(),
    };
    round_trip(&change, 0);
    let decoded = pb::MemberContext::decode(change.context.clone()).expect("context decodes");
    assert_eq!(decoded, member);
}
