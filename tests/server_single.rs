//! One in-process member (see `server_support`): the KV API with etcd's headers and
//! errors, restart from the data dir, and the backend quota.

use std::sync::Arc;

use bytes::Bytes;
use raftkv::proto::etcdserverpb as pb;

mod server_support;
use server_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_member_serves_kv_with_headers() {
    let dir = tempfile::tempdir().unwrap();
    let net = Arc::new(Net::default());
    let s = start(&net, config("solo", dir.path(), &["solo"], 10_000));
    wait_leader(&[&s]).await;

    eprintln!("phase: put answers with etcd's header");
    let r = put_retrying(&s, "foo", "bar").await;
    let h = r.header.unwrap();
    assert_eq!(h.revision, 2, "first write of a fresh store is revision 2");
    assert_eq!(h.member_id, s.member_id());
    assert_eq!(h.cluster_id, s.cluster_id());
    assert!(h.raft_term >= 1);

    eprintln!("phase: linearizable range sees it");
    let got = s.range(get_req("foo", false)).await.unwrap();
    assert_eq!(got.kvs.len(), 1);
    assert_eq!(&got.kvs[0].value[..], b"bar");
    assert_eq!(got.header.unwrap().revision, 2);

    eprintln!("phase: txn compares and writes");
    let txn = pb::TxnRequest {
        compare: vec![pb::Compare {
            result: pb::compare::CompareResult::Equal as i32,
            target: pb::compare::CompareTarget::Value as i32,
            key: Bytes::from_static(b"foo"),
            range_end: Bytes::new(),
            target_union: Some(pb::compare::TargetUnion::Value(Bytes::from_static(b"bar"))),
        }],
        success: vec![pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(put_req("baz", "1"))),
        }],
        failure: vec![],
    };
    let t = s.txn(txn).await.unwrap();
    assert!(t.succeeded);
    assert_eq!(t.header.unwrap().revision, 3);
    let nested = match &t.responses[0].response {
        Some(pb::response_op::Response::ResponsePut(p)) => p.header.unwrap(),
        other => panic!("expected a put response, got {other:?}"),
    };
    assert_eq!(
        (nested.revision, nested.member_id, nested.cluster_id),
        (3, 0, 0),
        "nested headers carry only the revision, as etcd's"
    );
    assert_eq!(value_of(&s, "baz").await.as_deref(), Some(&b"1"[..]));

    eprintln!("phase: delete, then compact, then old revisions are gone");
    let d = s
        .delete_range(pb::DeleteRangeRequest {
            key: Bytes::from_static(b"baz"),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(d.deleted, 1);
    assert_eq!(d.header.unwrap().revision, 4);
    let c = s
        .compact(pb::CompactionRequest {
            revision: 3,
            physical: false,
        })
        .await
        .unwrap();
    assert_eq!(c.header.unwrap().revision, 4);
    let mut old = get_req("foo", false);
    old.revision = 2;
    let err = s.range(old).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange);
    assert_eq!(
        err.message(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    let physical = s
        .compact(pb::CompactionRequest {
            revision: 4,
            physical: true,
        })
        .await
        .unwrap();
    assert_eq!(physical.header.unwrap().revision, 4);
    let err = s
        .compact(pb::CompactionRequest {
            revision: 9,
            physical: false,
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        "etcdserver: mvcc: required revision is a future revision"
    );

    eprintln!("phase: refused requests keep etcd's errors");
    let err = s.put(put_req("", "x")).await.unwrap_err();
    assert_eq!(err.message(), "etcdserver: key is not provided");
    let mut leased = put_req("k", "v");
    leased.lease = 42;
    let err = s.put(leased).await.unwrap_err();
    assert_eq!(err.message(), "etcdserver: requested lease not found");

    eprintln!("phase: status and member list");
    let st = s.status().await.unwrap();
    assert_eq!(st.leader, s.member_id());
    assert_eq!(st.version, "3.5.17");
    assert!(st.raft_applied_index >= 5 && st.raft_index >= st.raft_applied_index);
    assert!(st.db_size > 0);
    let published = wait_for("client URLs published", || async {
        let ml = s.member_list();
        let m = ml.members.first().cloned()?;
        (!m.client_ur_ls.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(published.name, "solo");
    assert_eq!(
        published.client_ur_ls,
        vec!["http://solo.test:2379".to_string()]
    );

    eprintln!("phase: a read-only txn is served without a log entry");
    let index_before = s.status().await.unwrap().raft_index;
    let read_txn = pb::TxnRequest {
        compare: vec![],
        success: vec![pb::RequestOp {
            request: Some(pb::request_op::Request::RequestRange(get_req("foo", false))),
        }],
        failure: vec![],
    };
    let t = s.txn(read_txn).await.unwrap();
    assert!(t.succeeded);
    match &t.responses[0].response {
        Some(pb::response_op::Response::ResponseRange(r)) => {
            assert_eq!(&r.kvs[0].value[..], b"bar")
        }
        other => panic!("expected a range response, got {other:?}"),
    }
    assert_eq!(t.header.unwrap().revision, 4);
    assert_eq!(
        s.status().await.unwrap().raft_index,
        index_before,
        "no entry was proposed"
    );

    let ml_header = s.member_list().header.unwrap();
    assert_eq!(ml_header.member_id, s.member_id());
    assert_eq!(
        ml_header.revision, 0,
        "etcd's member list header has no revision"
    );
    s.stop();
    let err = s.put(put_req("after", "stop")).await.unwrap_err();
    assert_eq!(err.message(), "etcdserver: server stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_data_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let net = Arc::new(Net::default());
    let cfg = config("solo", dir.path(), &["solo"], 5);
    let s = start(&net, cfg.clone());
    wait_leader(&[&s]).await;
    eprintln!("phase: 20 writes with snapshots every 5 entries");
    let mut last = 0;
    for i in 0..20 {
        last = put_retrying(&s, &format!("k{i}"), &format!("v{i}"))
            .await
            .header
            .unwrap()
            .revision;
    }
    s.stop();
    drop(s);

    eprintln!("phase: restart from the data dir");
    let s = start(&net, cfg);
    wait_leader(&[&s]).await;
    for i in 0..20 {
        assert_eq!(
            value_of(&s, &format!("k{i}")).await,
            Some(format!("v{i}").into_bytes()),
            "k{i} survives the restart"
        );
    }
    assert_eq!(s.header().revision, last);
    let r = put_retrying(&s, "after", "restart").await;
    assert_eq!(r.header.unwrap().revision, last + 1);
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_beyond_the_backend_quota_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let net = Arc::new(Net::default());
    let mut cfg = config("solo", dir.path(), &["solo"], 10_000);
    cfg.quota_backend_bytes = 1;
    let s = start(&net, cfg);
    wait_leader(&[&s]).await;
    let err = wait_for("the quota to be enforced", || async {
        s.put(put_req("k", "v")).await.err()
    })
    .await;
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    assert_eq!(err.message(), "etcdserver: mvcc: database space exceeded");
    let d = s
        .delete_range(pb::DeleteRangeRequest {
            key: Bytes::from_static(b"k"),
            ..Default::default()
        })
        .await;
    assert!(d.is_ok(), "deletes stay allowed over the quota");
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_over_a_torn_wal_tail_with_a_newer_term() {
    use raftkv::raft::{Entry, EntryKind, Index, Term};
    use raftkv::wal::{FsDisk, Wal, WalOptions};

    let dir = tempfile::tempdir().unwrap();
    let net = Arc::new(Net::default());
    let cfg = config("solo", dir.path(), &["solo"], 10_000);
    let s = start(&net, cfg.clone());
    wait_leader(&[&s]).await;
    let rev = put_retrying(&s, "k", "v").await.header.unwrap().revision;
    s.stop();
    drop(s);

    eprintln!("phase: the WAL keeps an entry of a newer term but not the hard state after it");
    let wal_dir = cfg.data_dir.join("member").join("wal");
    let (mut wal, rec) = Wal::open(FsDisk, &wal_dir, WalOptions::default()).unwrap();
    let last = rec.entries.last().map_or(rec.snapshot.index, |e| e.index);
    wal.append(&[Entry {
        term: Term(rec.hard_state.term.0 + 1),
        index: Index(last.0 + 1),
        kind: EntryKind::Normal,
        data: Bytes::new(),
    }])
    .unwrap();
    wal.sync().unwrap();
    drop(wal);

    eprintln!("phase: the member restarts, keeps its data and takes writes");
    let s = start(&net, cfg);
    wait_leader(&[&s]).await;
    assert_eq!(value_of(&s, "k").await.as_deref(), Some(&b"v"[..]));
    let r = put_retrying(&s, "k2", "v2").await;
    assert_eq!(r.header.unwrap().revision, rev + 1);
    s.stop();
}
