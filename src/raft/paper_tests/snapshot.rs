//! Log compaction and snapshots (§7), restart from persisted state, and the
//! gateway checks on configuration and messages.

use super::*;

/// Every node applies and compacts up to its applied index, keeping the image `data`.
fn compact_all(net: &mut Net) {
    for n in net.nodes.values_mut() {
        let index = n.applied();
        let snapshot = Snapshot {
            metadata: SnapshotMetadata {
                index,
                term: n.term_at(index).unwrap(),
                conf_state: n.conf_state(),
            },
            data: Bytes::from(format!("image@{}", index.0)),
        };
        n.compact(snapshot);
    }
}

#[test]
fn compaction_drops_applied_prefix() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.propose(1, b"a");
    net.propose(1, b"b");
    net.tick_all(1);
    compact_all(&mut net);
    let n = net.node(1);
    assert_eq!(n.first_index(), Index(4));
    assert!(n.entries(Index(1), Index(4)).is_empty());
    assert_eq!(
        n.term_at(Index(3)),
        Some(n.term()),
        "the compaction point keeps its term"
    );
    n.check_invariants();
}

#[test]
fn leader_sends_snapshot_to_follower_behind_compaction() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(3);
    net.propose(1, b"a");
    net.propose(1, b"b");
    compact_all(&mut net);
    net.heal();
    net.tick_all(1);
    let snaps: Vec<&Message> = net
        .delivered
        .iter()
        .filter(|m| m.kind == MessageKind::InstallSnapshot)
        .collect();
    assert_eq!(snaps.len(), 1);
    assert_eq!(
        snaps[0].snapshot.as_ref().unwrap().data,
        Bytes::from_static(b"image@3")
    );
    let n3 = net.node(3);
    assert_eq!(
        (n3.first_index(), n3.commit(), n3.applied()),
        (Index(4), Index(3), Index(3))
    );
    // Replication resumes after the snapshot.
    net.node(1).report_snapshot(NodeId(3), true);
    net.propose(1, b"c");
    assert_eq!(net.node(3).commit(), Index(4));
    assert_eq!(net.applied_data(3), vec![Bytes::from_static(b"c")]);
}

#[test]
fn follower_installs_snapshot_through_ready() {
    let mut n = node_with_log(2, &[1, 2], &[1, 1], 1);
    let mut m = msg(MessageKind::InstallSnapshot, 1, 2, 2);
    let conf_state = ConfState {
        voters: ids(&[1, 2, 3]),
        learners: ids(&[]),
    };
    let meta = SnapshotMetadata {
        index: Index(10),
        term: Term(2),
        conf_state: conf_state.clone(),
    };
    m.snapshot = Some(Snapshot {
        metadata: meta,
        data: Bytes::from_static(b"img"),
    });
    n.step(m).unwrap();
    assert_eq!(
        n.conf_state(),
        conf_state,
        "membership comes from the snapshot"
    );
    let rd = n.ready();
    assert_eq!(rd.snapshot.as_ref().unwrap().metadata.index, Index(10));
    assert!(rd.entries.is_empty() && rd.committed_entries.is_empty());
    assert!(rd.must_sync);
    assert_eq!(rd.persisted_messages[0].index, Index(10));
    n.advance();
    assert_eq!(
        (n.applied(), n.last_index(), n.first_index()),
        (Index(10), Index(10), Index(11))
    );
    n.check_invariants();
}

#[test]
fn follower_ignores_stale_snapshot() {
    let mut n = node_with_log(2, &[1, 2], &[1, 1, 1], 1);
    let mut append = msg(MessageKind::Append, 1, 2, 1);
    append.index = Index(3);
    append.log_term = Term(1);
    append.commit = Index(3);
    n.step(append).unwrap();
    drain(&mut n);
    let mut m = msg(MessageKind::InstallSnapshot, 1, 2, 1);
    m.snapshot = Some(Snapshot {
        metadata: SnapshotMetadata {
            index: Index(2),
            term: Term(1),
            conf_state: n.conf_state(),
        },
        data: Bytes::new(),
    });
    n.step(m).unwrap();
    let rd = n.ready();
    assert!(rd.snapshot.is_none());
    assert_eq!(
        rd.persisted_messages[0].index,
        Index(3),
        "answers with its commit index"
    );
    assert_eq!(n.last_index(), Index(3));
}

#[test]
fn report_snapshot_failure_moves_progress_back_to_probe() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(3);
    net.propose(1, b"a");
    compact_all(&mut net);
    // 3 is unreachable: the leader falls back to probing from 3's match index, which is
    // compacted away, so the next send is a snapshot.
    net.node(1).report_unreachable(NodeId(3));
    net.propose(1, b"b");
    assert_eq!(
        net.node(1).status().progress[&NodeId(3)].state,
        ProgressState::Snapshot
    );
    net.node(1).report_snapshot(NodeId(3), false);
    assert_eq!(
        net.node(1).status().progress[&NodeId(3)].state,
        ProgressState::Probe
    );
    net.heal();
    net.tick_all(2);
    assert_eq!(
        net.node(3).commit(),
        net.node(1).commit(),
        "a retry got through"
    );
}

#[test]
fn restarted_node_recovers_from_its_persisted_state() {
    let recovered = RecoveredState {
        hard_state: HardState {
            term: Term(3),
            vote: Some(NodeId(2)),
            commit: Index(5),
        },
        snapshot: SnapshotMetadata {
            index: Index(3),
            term: Term(2),
            conf_state: ConfState::default(),
        },
        entries: vec![entry(2, 4), entry(3, 5), entry(3, 6)],
        conf_state: ConfState {
            voters: ids(&[1, 2, 3]),
            learners: ids(&[]),
        },
        applied: Index(4),
    };
    let mut n = RawNode::new(config(1), recovered).unwrap();
    assert_eq!(
        (n.term(), n.vote(), n.commit()),
        (Term(3), Some(NodeId(2)), Index(5))
    );
    assert_eq!((n.first_index(), n.last_index()), (Index(4), Index(6)));
    let rd = n.ready();
    assert!(
        rd.hard_state.is_none() && rd.entries.is_empty(),
        "nothing new to persist"
    );
    let applied: Vec<u64> = rd.committed_entries.iter().map(|e| e.index.0).collect();
    assert_eq!(applied, vec![5], "resumes applying after `applied`");
    n.advance();
    // The recovered vote still binds: no second vote in term 3.
    n.step(msg(MessageKind::RequestVote, 3, 1, 3)).unwrap();
    assert!(drain(&mut n)[0].reject);
}

#[test]
fn invalid_config_and_recovered_state_are_rejected() {
    let ok = RecoveredState::default();
    let bad_configs: [&dyn Fn(&mut Config); 4] = [
        &|c| c.id = NodeId(0),
        &|c| c.heartbeat_interval_ticks = 10,
        &|c| c.heartbeat_interval_ticks = 0,
        &|c| c.inflight_msgs_max = 0,
    ];
    for tweak in bad_configs {
        let mut c = config(1);
        tweak(&mut c);
        assert!(matches!(
            RawNode::new(c, ok.clone()),
            Err(Error::InvalidConfig(_))
        ));
    }
    let gap = RecoveredState {
        entries: vec![entry(1, 2)],
        ..Default::default()
    };
    assert!(matches!(
        RawNode::new(config(1), gap),
        Err(Error::InvalidRecoveredState(_))
    ));
}

#[test]
fn torn_tail_with_entries_above_the_hard_state_term_raises_the_term_without_a_vote() {
    // The WAL kept entry 2 of term 3 but lost the hard state (term 3, vote 2) written after
    // it: the node restarts in term 3 with no vote, so it may still vote in term 3 once.
    let torn = RecoveredState {
        hard_state: HardState {
            term: Term(2),
            vote: Some(NodeId(1)),
            commit: Index(1),
        },
        entries: vec![entry(2, 1), entry(3, 2)],
        conf_state: ConfState {
            voters: [NodeId(1), NodeId(2), NodeId(3)].into_iter().collect(),
            learners: Default::default(),
        },
        ..Default::default()
    };
    let n = RawNode::new(config(1), torn).unwrap();
    assert_eq!(n.term(), Term(3));
    assert_eq!(n.vote(), None);
    assert_eq!(n.last_index(), Index(2));
}

#[test]
fn message_to_another_node_is_an_error() {
    let mut n = new_node(1, &[1, 2], &[], &|_| {});
    let err = n.step(msg(MessageKind::Heartbeat, 2, 3, 1)).unwrap_err();
    assert_eq!(err, Error::WrongRecipient { to: 3, me: 1 });
}
