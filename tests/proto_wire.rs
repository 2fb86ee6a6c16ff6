//! Wire-format tests for the etcd v3 API messages in `raftkv::proto`.
//!
//! etcd clients decode our bytes with etcd's own `.proto` files, so a wrong field number,
//! a wrong scalar type (`int64` vs `sint64`) or a missing oneof case breaks them silently.
//! Each test below encodes a message and compares it with bytes derived by hand from the
//! protobuf wire format and etcd 3.5's field numbers; the comment beside each byte group
//! gives the derivation: `tag = field_number << 3 | wire_type`, wire type 0 for varints
//! and 2 for length-delimited fields. Each expected buffer is then decoded back to check
//! the other direction. Service and method names are checked in `proto_services.rs`.

use bytes::Bytes;
use prost::Message;
use raftkv::proto::{authpb, etcdserverpb as pb, mvccpb};

/// Asserts that `msg` encodes to exactly `expected` and that `expected` decodes to `msg`.
fn assert_wire<M: Message + Default + PartialEq + std::fmt::Debug>(msg: &M, expected: &[u8]) {
    assert_eq!(msg.encode_to_vec(), expected, "encoding of {msg:?}");
    let decoded = M::decode(expected).expect("hand-derived bytes must decode");
    assert_eq!(&decoded, msg, "decoding of {expected:02x?}");
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

#[test]
fn put_request_fields_1_to_6() {
    let put = pb::PutRequest {
        key: b("foo"),
        value: b("bar"),
        lease: 7,
        prev_kv: true,
        ..Default::default()
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 3, b'f', b'o', b'o', // 1 key: 1<<3|2
        0x12, 3, b'b', b'a', b'r', // 2 value: 2<<3|2
        0x18, 7,                   // 3 lease: 3<<3|0
        0x20, 1,                   // 4 prev_kv
    ];
    assert_wire(&put, &expected);

    let ignore = pb::PutRequest {
        key: b("k"),
        ignore_value: true,
        ignore_lease: true,
        ..Default::default()
    };
    assert_wire(&ignore, &[0x0a, 1, b'k', 0x28, 1, 0x30, 1]); // 5 ignore_value, 6 ignore_lease
}

#[test]
fn range_request_every_field() {
    let range = pb::RangeRequest {
        key: b("a"),
        range_end: b("b"),
        limit: 10,
        revision: 300,
        sort_order: pb::range_request::SortOrder::Descend as i32,
        sort_target: pb::range_request::SortTarget::Mod as i32,
        serializable: true,
        keys_only: true,
        count_only: true,
        min_mod_revision: 1,
        max_mod_revision: 2,
        min_create_revision: 3,
        max_create_revision: 4,
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 1, b'a',   // 1 key
        0x12, 1, b'b',   // 2 range_end
        0x18, 10,        // 3 limit
        0x20, 0xac, 0x02, // 4 revision: 300 = 0b10_0101100 -> 0x2c|0x80, 0x02
        0x28, 2,         // 5 sort_order DESCEND = 2
        0x30, 3,         // 6 sort_target MOD = 3
        0x38, 1,         // 7 serializable
        0x40, 1,         // 8 keys_only
        0x48, 1,         // 9 count_only
        0x50, 1,         // 10 min_mod_revision: 10<<3 = 0x50
        0x58, 2,         // 11 max_mod_revision
        0x60, 3,         // 12 min_create_revision
        0x68, 4,         // 13 max_create_revision
    ];
    assert_wire(&range, &expected);
}

#[test]
fn response_header_and_range_response() {
    let header = pb::ResponseHeader {
        cluster_id: 1000,
        member_id: 2,
        revision: 5,
        raft_term: 3,
    };
    #[rustfmt::skip]
    let header_bytes = [
        0x08, 0xe8, 0x07, // 1 cluster_id: 1000 = 0b111_1101000 -> 0x68|0x80, 0x07
        0x10, 2,          // 2 member_id
        0x18, 5,          // 3 revision
        0x20, 3,          // 4 raft_term
    ];
    assert_wire(&header, &header_bytes);

    let kv = mvccpb::KeyValue {
        key: b("k"),
        value: b("v"),
        ..Default::default()
    };
    let response = pb::RangeResponse {
        header: Some(pb::ResponseHeader {
            revision: 5,
            ..Default::default()
        }),
        kvs: vec![kv],
        more: true,
        count: 2,
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 2, 0x18, 5,                   // 1 header { 3 revision }
        0x12, 6, 0x0a, 1, b'k', 0x2a, 1, b'v', // 2 kvs { 1 key, 5 value }
        0x18, 1,                            // 3 more
        0x20, 2,                            // 4 count
    ];
    assert_wire(&response, &expected);
}

#[test]
fn key_value_and_event() {
    let kv = mvccpb::KeyValue {
        key: b("k"),
        create_revision: 2,
        mod_revision: 3,
        version: 1,
        value: b("v"),
        lease: 16,
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 1, b'k', // 1 key
        0x10, 2,       // 2 create_revision
        0x18, 3,       // 3 mod_revision
        0x20, 1,       // 4 version
        0x2a, 1, b'v', // 5 value
        0x30, 16,      // 6 lease
    ];
    assert_wire(&kv, &expected);

    let deleted = mvccpb::KeyValue {
        key: b("k"),
        mod_revision: 4,
        ..Default::default()
    };
    let event = mvccpb::Event {
        r#type: mvccpb::event::EventType::Delete as i32,
        kv: Some(deleted),
        prev_kv: None,
    };
    // 1 type DELETE = 1; 2 kv { 1 key, 3 mod_revision }
    assert_wire(&event, &[0x08, 1, 0x12, 5, 0x0a, 1, b'k', 0x18, 4]);
}

#[test]
fn int64_fields_are_plain_varints_not_zigzag() {
    // etcd uses int64 (two's complement, 10 bytes for -1), not sint64 (zigzag: 0x01).
    let ttl = pb::LeaseTimeToLiveResponse {
        ttl: -1,
        granted_ttl: 10,
        keys: vec![b("k")],
        ..Default::default()
    };
    #[rustfmt::skip]
    let expected = [
        0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, // 3 TTL = -1
        0x20, 10,      // 4 grantedTTL
        0x2a, 1, b'k', // 5 keys
    ];
    assert_wire(&ttl, &expected);
}

#[test]
fn watch_requests_and_filters() {
    let create = pb::WatchCreateRequest {
        key: b("a"),
        range_end: b("b"),
        start_revision: 5,
        progress_notify: true,
        filters: vec![
            pb::watch_create_request::FilterType::Nodelete as i32,
            pb::watch_create_request::FilterType::Noput as i32,
        ],
        prev_kv: true,
        watch_id: 9,
        fragment: true,
    };
    let request = pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(create)),
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 20,          // WatchRequest 1 create_request, 20 bytes follow
        0x0a, 1, b'a',     // 1 key
        0x12, 1, b'b',     // 2 range_end
        0x18, 5,           // 3 start_revision
        0x20, 1,           // 4 progress_notify
        0x2a, 2, 1, 0,     // 5 filters, packed: NODELETE = 1, NOPUT = 0
        0x30, 1,           // 6 prev_kv
        0x38, 9,           // 7 watch_id
        0x40, 1,           // 8 fragment
    ];
    assert_wire(&request, &expected);

    let cancel = pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CancelRequest(
            pb::WatchCancelRequest { watch_id: 9 },
        )),
    };
    assert_wire(&cancel, &[0x12, 2, 0x08, 9]); // 2 cancel_request { 1 watch_id }

    let progress = pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::ProgressRequest(
            pb::WatchProgressRequest {},
        )),
    };
    assert_wire(&progress, &[0x1a, 0]); // 3 progress_request, empty but present
}

#[test]
fn watch_response_events_at_field_11() {
    let deleted = mvccpb::KeyValue {
        key: b("k"),
        mod_revision: 4,
        ..Default::default()
    };
    let event = mvccpb::Event {
        r#type: 1,
        kv: Some(deleted),
        prev_kv: None,
    };
    let response = pb::WatchResponse {
        header: Some(pb::ResponseHeader {
            revision: 4,
            ..Default::default()
        }),
        watch_id: 1,
        created: true,
        canceled: true,
        compact_revision: 2,
        cancel_reason: "x".to_string(),
        fragment: true,
        events: vec![event],
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 2, 0x18, 4, // 1 header { 3 revision }
        0x10, 1,          // 2 watch_id
        0x18, 1,          // 3 created
        0x20, 1,          // 4 canceled
        0x28, 2,          // 5 compact_revision
        0x32, 1, b'x',    // 6 cancel_reason
        0x38, 1,          // 7 fragment
        0x5a, 9,          // 11 events: 11<<3|2 = 0x5a
        0x08, 1, 0x12, 5, 0x0a, 1, b'k', 0x18, 4,
    ];
    assert_wire(&response, &expected);
}

#[test]
fn compare_target_union_and_range_end_at_64() {
    use pb::compare::{CompareResult, CompareTarget, TargetUnion};
    let by_mod = pb::Compare {
        result: CompareResult::NotEqual as i32,
        target: CompareTarget::Mod as i32,
        key: b("k"),
        range_end: b("l"),
        target_union: Some(TargetUnion::ModRevision(42)),
    };
    #[rustfmt::skip]
    let expected = [
        0x08, 3,             // 1 result NOT_EQUAL = 3
        0x10, 2,             // 2 target MOD = 2
        0x1a, 1, b'k',       // 3 key
        0x30, 42,            // 6 mod_revision (oneof)
        0x82, 0x04, 1, b'l', // 64 range_end: 64<<3|2 = 514 -> 0x02|0x80, 0x04
    ];
    assert_wire(&by_mod, &expected);

    // A oneof case is encoded even at its default value: "version == 0" (key absent)
    // must differ on the wire from "no target".
    let absent = pb::Compare {
        target: CompareTarget::Version as i32,
        key: b("k"),
        target_union: Some(TargetUnion::Version(0)),
        ..Default::default()
    };
    assert_wire(&absent, &[0x1a, 1, b'k', 0x20, 0]); // 4 version = 0

    let cases = [
        (TargetUnion::CreateRevision(1), [0x28, 1]), // 5
        (TargetUnion::Lease(1), [0x40, 1]),          // 8
    ];
    for (target, tail) in cases {
        let compare = pb::Compare {
            target_union: Some(target),
            ..Default::default()
        };
        assert_wire(&compare, &tail);
    }
    let by_value = pb::Compare {
        target_union: Some(TargetUnion::Value(b("v"))),
        ..Default::default()
    };
    assert_wire(&by_value, &[0x3a, 1, b'v']); // 7 value: 7<<3|2
}

#[test]
fn txn_request_and_request_ops() {
    use pb::request_op::Request;
    let compare = pb::Compare {
        target: pb::compare::CompareTarget::Value as i32,
        key: b("k"),
        target_union: Some(pb::compare::TargetUnion::Value(b("v"))),
        ..Default::default()
    };
    let put = pb::PutRequest {
        key: b("k"),
        value: b("v"),
        ..Default::default()
    };
    let range = pb::RangeRequest {
        key: b("k"),
        ..Default::default()
    };
    let delete = pb::DeleteRangeRequest {
        key: b("a"),
        range_end: b("b"),
        prev_kv: true,
    };
    let txn = pb::TxnRequest {
        compare: vec![compare],
        success: vec![
            pb::RequestOp {
                request: Some(Request::RequestPut(put)),
            },
            pb::RequestOp {
                request: Some(Request::RequestDeleteRange(delete)),
            },
        ],
        failure: vec![pb::RequestOp {
            request: Some(Request::RequestRange(range)),
        }],
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 8, 0x10, 3, 0x1a, 1, b'k', 0x3a, 1, b'v',   // 1 compare { target VALUE, key, value }
        0x12, 8, 0x12, 6, 0x0a, 1, b'k', 0x12, 1, b'v',   // 2 success { 2 request_put }
        0x12, 10, 0x1a, 8,                                // 2 success { 3 request_delete_range
        0x0a, 1, b'a', 0x12, 1, b'b', 0x18, 1,            //   { key, range_end, 3 prev_kv } }
        0x1a, 5, 0x0a, 3, 0x0a, 1, b'k',                  // 3 failure { 1 request_range }
    ];
    assert_wire(&txn, &expected);

    let nested = pb::RequestOp {
        request: Some(Request::RequestTxn(pb::TxnRequest::default())),
    };
    assert_wire(&nested, &[0x22, 0]); // 4 request_txn
}

#[test]
fn lease_cluster_maintenance_auth_samples() {
    let grant = pb::LeaseGrantRequest { ttl: 60, id: 7 };
    assert_wire(&grant, &[0x08, 60, 0x10, 7]); // 1 TTL, 2 ID

    let member = pb::Member {
        id: 1,
        name: "n".to_string(),
        peer_ur_ls: vec!["p".to_string()],
        client_ur_ls: vec!["c".to_string()],
        is_learner: true,
    };
    // 1 ID, 2 name, 3 peerURLs, 4 clientURLs, 5 isLearner
    assert_wire(
        &member,
        &[
            0x08, 1, 0x12, 1, b'n', 0x1a, 1, b'p', 0x22, 1, b'c', 0x28, 1,
        ],
    );

    let alarm = pb::AlarmRequest {
        action: pb::alarm_request::AlarmAction::Activate as i32,
        member_id: 5,
        alarm: pb::AlarmType::Nospace as i32,
    };
    assert_wire(&alarm, &[0x08, 1, 0x10, 5, 0x18, 1]); // ACTIVATE = 1, memberID, NOSPACE = 1

    let status = pb::StatusResponse {
        version: "3.5.0".to_string(),
        db_size: 1,
        leader: 2,
        raft_index: 3,
        raft_term: 4,
        raft_applied_index: 5,
        errors: vec!["e".to_string()],
        db_size_in_use: 6,
        is_learner: true,
        ..Default::default()
    };
    #[rustfmt::skip]
    let expected = [
        0x12, 5, b'3', b'.', b'5', b'.', b'0', // 2 version
        0x18, 1, 0x20, 2, 0x28, 3, 0x30, 4, 0x38, 5, // 3 dbSize .. 7 raftAppliedIndex
        0x42, 1, b'e',                         // 8 errors
        0x48, 6,                               // 9 dbSizeInUse
        0x50, 1,                               // 10 isLearner
    ];
    assert_wire(&status, &expected);

    let perm = authpb::Permission {
        perm_type: authpb::permission::Type::Readwrite as i32,
        key: b("a"),
        range_end: b("b"),
    };
    let grant_perm = pb::AuthRoleGrantPermissionRequest {
        name: "r".to_string(),
        perm: Some(perm),
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 1, b'r',                                   // 1 name
        0x12, 8, 0x08, 2, 0x12, 1, b'a', 0x1a, 1, b'b',  // 2 perm { READWRITE = 2, key, range_end }
    ];
    assert_wire(&grant_perm, &expected);

    let snapshot = pb::SnapshotResponse {
        remaining_bytes: 3,
        blob: b("xyz"),
        ..Default::default()
    };
    assert_wire(&snapshot, &[0x10, 3, 0x1a, 3, b'x', b'y', b'z']); // 2 remaining_bytes, 3 blob
}
