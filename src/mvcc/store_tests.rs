//! Store-level unit tests of what clients see: revision accounting, every Range option,
//! put / delete / txn semantics and history replay, each against etcd's documented
//! behaviour. Durability tests live in `persistence_tests.rs`.

use super::*;

pub(super) fn put_req(k: &str, v: &str) -> PutRequest {
    PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    }
}

pub(super) fn range_req(k: &str, end: &str) -> RangeRequest {
    RangeRequest {
        key: k.into(),
        range_end: end.into(),
        ..Default::default()
    }
}

/// Apply each put in its own request, all in one batch committed at `index`.
pub(super) fn put_all<B: Backend>(
    s: &mut Store<B>,
    kvs: &[(&str, &str)],
    index: u64,
) -> CommitOutcome {
    let mut b = s.begin_apply().unwrap();
    for (k, v) in kvs {
        b.put(&put_req(k, v)).unwrap();
    }
    b.commit(index).unwrap()
}

pub(super) fn keys(resp: &RangeResponse) -> Vec<String> {
    resp.kvs
        .iter()
        .map(|kv| String::from_utf8(kv.key.clone()).unwrap())
        .collect()
}

pub(super) fn del_req(k: &str, end: &str) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: k.into(),
        range_end: end.into(),
        prev_kv: true,
    }
}

#[test]
fn revisions_advance_once_per_write_request() {
    let mut s = Store::open(MemBackend::new()).unwrap();
    assert_eq!(s.current_revision(), 1, "a fresh store is at revision 1");
    let mut b = s.begin_apply().unwrap();
    assert_eq!(b.put(&put_req("a", "1")).unwrap().revision, 2);
    assert_eq!(b.range(&range_req("a", "")).unwrap().revision, 2);
    let none = b.delete_range(&del_req("zzz", "")).unwrap();
    assert_eq!(
        (none.deleted, none.revision),
        (0, 2),
        "deleting nothing does not advance"
    );
    let txn = TxnRequest {
        compare: vec![],
        success: vec![
            RequestOp::Put(put_req("b", "1")),
            RequestOp::Put(put_req("c", "1")),
        ],
        failure: vec![],
    };
    assert_eq!(b.txn(&txn).unwrap().revision, 3, "a txn is one revision");
    let read_only = TxnRequest {
        success: vec![RequestOp::Range(range_req("a", ""))],
        ..txn
    };
    assert_eq!(b.txn(&read_only).unwrap().revision, 3);
    let out = b.commit(7).unwrap();
    assert_eq!((out.current_revision, out.applied_index), (3, 7));
    assert_eq!(out.events.len(), 3);
    let c = s.range(&range_req("c", "")).unwrap();
    assert_eq!(
        (
            c.kvs[0].mod_revision,
            c.kvs[0].create_revision,
            c.kvs[0].version
        ),
        (3, 3, 1)
    );
    s.check_invariants();
}

#[test]
fn range_limits_ends_and_revisions_follow_etcd() {
    let mut s = Store::open(MemBackend::new()).unwrap();
    // a@2 b@3 c@4, then b updated @5 (version 2), d@6
    put_all(
        &mut s,
        &[("a", "3"), ("b", "1"), ("c", "2"), ("b", "9"), ("d", "0")],
        1,
    );
    let all = s.range(&range_req("\0", "\0")).unwrap();
    assert_eq!(
        (keys(&all), all.count, all.more),
        (
            vec!["a", "b", "c", "d"]
                .into_iter()
                .map(String::from)
                .collect(),
            4,
            false
        )
    );
    let limited = s
        .range(&RangeRequest {
            limit: 2,
            ..range_req("a", "\0")
        })
        .unwrap();
    assert_eq!(
        (keys(&limited), limited.count, limited.more),
        (vec!["a".into(), "b".into()], 4, true)
    );
    let exact = s
        .range(&RangeRequest {
            limit: 4,
            ..range_req("a", "\0")
        })
        .unwrap();
    assert!(!exact.more, "limit equal to the count is not truncated");
    let prefix = s.range(&range_req("b", "c")).unwrap();
    assert_eq!(keys(&prefix), vec!["b"]);
}

#[test]
fn range_sort_and_filters_follow_etcd() {
    let mut s = Store::open(MemBackend::new()).unwrap();
    // a@2 b@3 c@4, then b updated @5 (version 2), d@6
    put_all(
        &mut s,
        &[("a", "3"), ("b", "1"), ("c", "2"), ("b", "9"), ("d", "0")],
        1,
    );
    let by_mod = RangeRequest {
        sort_target: SortTarget::Mod,
        sort_order: SortOrder::Descend,
        ..range_req("a", "\0")
    };
    assert_eq!(keys(&s.range(&by_mod).unwrap()), vec!["d", "b", "c", "a"]);
    let by_value = RangeRequest {
        sort_target: SortTarget::Value,
        ..range_req("a", "\0")
    };
    assert_eq!(
        keys(&s.range(&by_value).unwrap()),
        vec!["d", "c", "a", "b"],
        "NONE on VALUE = ascend"
    );
    let quirk = RangeRequest {
        sort_target: SortTarget::Value,
        limit: 2,
        ..range_req("a", "\0")
    };
    let r = s.range(&quirk).unwrap();
    assert_eq!(
        (keys(&r), r.more),
        (vec!["c".into(), "a".into()], true),
        "etcd sorts limit+1 keys"
    );
    let by_key_desc = RangeRequest {
        sort_order: SortOrder::Descend,
        limit: 1,
        ..range_req("a", "\0")
    };
    let r = s.range(&by_key_desc).unwrap();
    assert_eq!((keys(&r), r.more), (vec!["d".into()], true));
    let filtered = RangeRequest {
        min_mod_revision: 4,
        limit: 1,
        ..range_req("a", "\0")
    };
    let r = s.range(&filtered).unwrap();
    assert_eq!(
        (keys(&r), r.count, r.more),
        (vec!["b".into()], 4, true),
        "count ignores filters"
    );
    let created = RangeRequest {
        max_create_revision: 3,
        ..range_req("a", "\0")
    };
    assert_eq!(keys(&s.range(&created).unwrap()), vec!["a", "b"]);
    let r = s
        .range(&RangeRequest {
            count_only: true,
            ..range_req("a", "\0")
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.count, r.more), (0, 4, false));
    let r = s
        .range(&RangeRequest {
            keys_only: true,
            ..range_req("a", "")
        })
        .unwrap();
    assert!(r.kvs[0].value.is_empty());
    let old = s
        .range(&RangeRequest {
            revision: 3,
            ..range_req("b", "")
        })
        .unwrap();
    assert_eq!(
        (old.kvs[0].value.clone(), old.kvs[0].version, old.revision),
        (b"1".to_vec(), 1, 6)
    );
    let future = s.range(&RangeRequest {
        revision: 7,
        ..range_req("a", "")
    });
    assert!(matches!(future, Err(MvccError::FutureRevision)));
    assert!(matches!(
        s.range(&range_req("", "")),
        Err(MvccError::KeyNotProvided)
    ));
}

#[test]
fn put_options_and_errors() {
    let mut s = Store::open(MemBackend::new()).unwrap();
    let mut b = s.begin_apply().unwrap();
    let ignore = PutRequest {
        key: "k".into(),
        ignore_value: true,
        ..Default::default()
    };
    assert!(matches!(b.put(&ignore), Err(MvccError::KeyNotFound)));
    assert_eq!(b.current_revision(), 1, "a refused put writes nothing");
    b.put(&PutRequest {
        lease: 5,
        ..put_req("k", "v1")
    })
    .unwrap();
    let r = b
        .put(&PutRequest {
            prev_kv: true,
            ..ignore.clone()
        })
        .unwrap();
    assert_eq!(r.prev_kv.unwrap().value, b"v1".to_vec());
    let kv = &b.range(&range_req("k", "")).unwrap().kvs[0];
    assert_eq!(
        (kv.value.as_slice(), kv.lease, kv.version),
        (&b"v1"[..], 0, 2),
        "ignore_value alone detaches the lease"
    );
    b.put(&PutRequest {
        lease: 5,
        ..put_req("k", "v1")
    })
    .unwrap();
    let keep_lease = PutRequest {
        ignore_lease: true,
        ..put_req("k", "v2")
    };
    b.put(&keep_lease).unwrap();
    assert_eq!(b.range(&range_req("k", "")).unwrap().kvs[0].lease, 5);
    let bad = PutRequest {
        ignore_value: true,
        ..put_req("k", "x")
    };
    assert!(matches!(b.put(&bad), Err(MvccError::ValueProvided)));
    b.commit(1).unwrap();
    let leases = |id: i64| id == 5;
    let mut b = s.begin_apply_with_leases(Some(&leases)).unwrap();
    let unknown = PutRequest {
        lease: 6,
        ..put_req("k", "v")
    };
    assert!(matches!(b.put(&unknown), Err(MvccError::LeaseNotFound)));
    b.commit(2).unwrap();
}

#[test]
fn delete_range_events_and_version_restart() {
    let mut s = Store::open(MemBackend::new()).unwrap();
    put_all(
        &mut s,
        &[("a", "1"), ("a", "2"), ("ab", "1"), ("b", "1")],
        1,
    );
    let mut b = s.begin_apply().unwrap();
    let r = b.delete_range(&del_req("a", "b")).unwrap();
    assert_eq!((r.deleted, r.revision, r.prev_kvs.len()), (2, 6, 2));
    b.put(&put_req("a", "new")).unwrap();
    let out = b.commit(2).unwrap();
    let kinds: Vec<_> = out
        .events
        .iter()
        .map(|e| (e.kind, e.kv.mod_revision))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (EventType::Delete, 6),
            (EventType::Delete, 6),
            (EventType::Put, 7)
        ]
    );
    assert_eq!(out.events[0].prev_kv.as_ref().unwrap().value, b"2".to_vec());
    let a = &s.range(&range_req("a", "")).unwrap().kvs[0];
    assert_eq!(
        (a.version, a.create_revision),
        (1, 7),
        "version restarts after delete"
    );
    assert!(s
        .range(&RangeRequest {
            revision: 6,
            ..range_req("a", "")
        })
        .unwrap()
        .kvs
        .is_empty());
}

fn cmp(key: &str, end: &str, result: CompareResult, target: CompareTarget) -> Compare {
    Compare {
        result,
        target,
        key: key.into(),
        range_end: end.into(),
    }
}

#[test]
fn txn_compares_branches_and_own_writes() {
    let mut s = Store::open(MemBackend::new()).unwrap();
    put_all(&mut s, &[("a", "1"), ("b", "1")], 1);
    let mut b = s.begin_apply().unwrap();
    let missing_mod_zero = cmp("zz", "", CompareResult::Equal, CompareTarget::Mod(0));
    let missing_value = cmp(
        "zz",
        "",
        CompareResult::NotEqual,
        CompareTarget::Value(b"x".to_vec()),
    );
    let all_version_1 = cmp("a", "c", CompareResult::Equal, CompareTarget::Version(1));
    let run = |b: &mut ApplyBatch<'_, '_, MemBackend>, c: Compare| {
        let t = TxnRequest {
            compare: vec![c],
            success: vec![],
            failure: vec![],
        };
        b.txn(&t).unwrap().succeeded
    };
    assert!(run(&mut b, missing_mod_zero));
    assert!(
        !run(&mut b, missing_value),
        "VALUE compare on a missing key is false"
    );
    assert!(run(&mut b, all_version_1.clone()));
    assert!(!run(
        &mut b,
        cmp("a", "c", CompareResult::Greater, CompareTarget::Create(2))
    ));
    // Nested compares see the state before the txn; ranges see the txn's writes.
    let nested = TxnRequest {
        compare: vec![cmp(
            "a",
            "",
            CompareResult::Equal,
            CompareTarget::Value(b"1".to_vec()),
        )],
        success: vec![RequestOp::Put(put_req("n", "saw-old"))],
        failure: vec![RequestOp::Put(put_req("n", "saw-new"))],
    };
    let t = TxnRequest {
        compare: vec![all_version_1],
        success: vec![
            RequestOp::Put(put_req("a", "2")),
            RequestOp::Range(range_req("a", "")),
            RequestOp::Txn(nested),
        ],
        failure: vec![],
    };
    let r = b.txn(&t).unwrap();
    assert!(r.succeeded);
    assert_eq!(r.revision, 4);
    let ResponseOp::Range(read) = &r.responses[1] else {
        panic!("range response")
    };
    assert_eq!(read.kvs[0].value, b"2".to_vec());
    let ResponseOp::Txn(inner) = &r.responses[2] else {
        panic!("txn response")
    };
    assert!(
        inner.succeeded,
        "nested compare saw the value before the txn"
    );
    b.commit(2).unwrap();
    let n = s.range(&range_req("n", "")).unwrap();
    assert_eq!(
        (n.kvs[0].value.as_slice(), n.kvs[0].mod_revision),
        (&b"saw-old"[..], 4)
    );
    let a = s.range(&range_req("a", "")).unwrap();
    assert_eq!(a.kvs[0].mod_revision, 4);
}

#[test]
fn txn_failure_in_chosen_branch_writes_nothing() {
    let mut s = Store::open(MemBackend::new()).unwrap();
    let mut b = s.begin_apply().unwrap();
    let t = TxnRequest {
        compare: vec![],
        success: vec![
            RequestOp::Put(put_req("a", "1")),
            RequestOp::Put(PutRequest {
                key: "missing".into(),
                ignore_value: true,
                ..Default::default()
            }),
        ],
        failure: vec![],
    };
    assert!(matches!(b.txn(&t), Err(MvccError::KeyNotFound)));
    assert!(b.range(&range_req("a", "")).unwrap().kvs.is_empty());
    let out = b.commit(1).unwrap();
    assert_eq!((out.current_revision, out.events.len()), (1, 0));
}

#[test]
fn history_events_and_leased_keys() {
    let mut s = Store::open(MemBackend::new()).unwrap();
    let mut b = s.begin_apply().unwrap();
    b.put(&PutRequest {
        lease: 9,
        ..put_req("a", "1")
    })
    .unwrap(); // 2
    b.put(&put_req("b", "1")).unwrap(); // 3
    b.put(&put_req("a", "2")).unwrap(); // 4
    b.delete_range(&del_req("a", "")).unwrap(); // 5
    let live = b.commit(1).unwrap().events;
    let replay = s.events_in(b"\0", b"\0", 2, 5, true, 100).unwrap();
    assert_eq!(replay, live, "history replays exactly the committed events");
    let only_a = s.events_in(b"a", b"", 3, 5, false, 1).unwrap();
    assert_eq!(only_a.len(), 1);
    assert_eq!(
        (only_a[0].kind, only_a[0].kv.mod_revision),
        (EventType::Put, 4)
    );
    assert!(matches!(
        s.events_in(b"a", b"", 3, 6, false, 9),
        Err(MvccError::FutureRevision)
    ));
    let mut b = s.begin_apply().unwrap();
    b.put(&PutRequest {
        lease: 7,
        ..put_req("c", "1")
    })
    .unwrap();
    b.compact(4).unwrap();
    b.commit(2).unwrap();
    assert!(matches!(
        s.events_in(b"a", b"", 3, 6, false, 9),
        Err(MvccError::Compacted)
    ));
    assert_eq!(s.leased_keys().unwrap(), vec![(b"c".to_vec(), 7)]);
}

#[test]
fn txn_refuses_duplicate_keys_even_unvalidated() {
    let mut s = Store::open(MemBackend::new()).unwrap();
    let mut b = s.begin_apply().unwrap();
    let dup = TxnRequest {
        compare: vec![],
        success: vec![
            RequestOp::Put(put_req("a", "1")),
            RequestOp::Put(put_req("a", "2")),
        ],
        failure: vec![],
    };
    assert!(matches!(b.txn(&dup), Err(MvccError::DuplicateKey)));
    assert_eq!(b.commit(1).unwrap().current_revision, 1);
}
