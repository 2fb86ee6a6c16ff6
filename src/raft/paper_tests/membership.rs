//! Single-server membership changes (§6): learners, promotion, one pending change
//! at a time, a leader removing itself, quorum changes on removal.

use super::*;

fn conf_change(kind: ConfChangeKind, node: u64) -> ConfChange {
    ConfChange {
        kind,
        node: NodeId(node),
        context: Bytes::new(),
    }
}

#[test]
fn learner_never_campaigns() {
    let mut n = new_node(3, &[1, 2], &[3], &|_| {});
    for _ in 0..100 {
        n.tick();
    }
    n.campaign();
    assert_eq!(n.role(), Role::Follower);
    assert_eq!(n.term(), Term(0));
}

#[test]
fn learner_does_not_count_for_commit() {
    let mut net = Net::build(&[1, 2], &[3], &|_| {});
    net.elect(1);
    net.isolate(2);
    net.propose(1, b"a");
    assert_eq!(
        net.node(3).last_index(),
        Index(2),
        "the learner receives the log"
    );
    assert_eq!(
        net.node(1).commit(),
        Index(1),
        "but its ack does not make a quorum"
    );
}

#[test]
fn learner_vote_does_not_count() {
    let mut n = new_node(1, &[1, 2, 3], &[4], &|_| {});
    n.campaign();
    let rd = n.ready();
    assert!(
        rd.persisted_messages.iter().all(|m| m.to != NodeId(4)),
        "learners are not asked"
    );
    n.advance();
    n.step(msg(MessageKind::RequestVoteResponse, 4, 1, 1))
        .unwrap();
    assert_eq!(n.role(), Role::Candidate, "a learner's grant is not a vote");
}

#[test]
fn add_learner_then_promote_to_voter() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.nodes.insert(NodeId(4), new_node(4, &[], &[], &|_| {}));
    net.node(1)
        .propose_conf_change(conf_change(ConfChangeKind::AddLearner, 4))
        .unwrap();
    net.settle();
    assert_eq!(net.node(1).conf_state().learners, ids(&[4]));
    net.tick_all(2);
    assert_eq!(
        net.node(4).last_index(),
        net.node(1).last_index(),
        "learner caught up"
    );
    net.node(1)
        .propose_conf_change(conf_change(ConfChangeKind::AddVoter, 4))
        .unwrap();
    net.settle();
    let cs = net.node(1).conf_state();
    assert_eq!((cs.voters, cs.learners), (ids(&[1, 2, 3, 4]), ids(&[])));
    net.isolate(2);
    net.isolate(3);
    net.propose(1, b"x");
    assert!(
        !net.applied_data(1).contains(&Bytes::from_static(b"x")),
        "quorum of 4 is 3"
    );
}

#[test]
fn second_pending_conf_change_is_refused() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(2);
    net.isolate(3);
    net.node(1)
        .propose_conf_change(conf_change(ConfChangeKind::AddLearner, 4))
        .unwrap();
    let second = net
        .node(1)
        .propose_conf_change(conf_change(ConfChangeKind::AddLearner, 5));
    assert_eq!(second, Err(Error::ConfChangePending));
    net.heal();
    net.tick_all(2);
    net.node(1)
        .propose_conf_change(conf_change(ConfChangeKind::AddLearner, 5))
        .unwrap();
}

#[test]
fn new_leader_refuses_conf_change_until_earlier_entries_applied() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.node(1)
        .propose_conf_change(conf_change(ConfChangeKind::AddLearner, 4))
        .unwrap();
    let mut leader = net.nodes.remove(&NodeId(1)).unwrap();
    // Before the no-op and the change are applied, a second change is refused.
    drain(&mut leader);
    assert!(leader
        .propose_conf_change(conf_change(ConfChangeKind::AddLearner, 5))
        .is_err());
}

#[test]
fn leader_removing_itself_steps_down() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.node(1)
        .propose_conf_change(conf_change(ConfChangeKind::RemoveNode, 1))
        .unwrap();
    net.settle();
    assert_eq!(net.node(1).role(), Role::Follower);
    assert_eq!(net.node(2).conf_state().voters, ids(&[2, 3]));
    net.tick_all(40);
    let leader = net.node(2).leader().expect("2 and 3 elect a leader");
    assert_ne!(leader, NodeId(1));
    assert_ne!(net.node(1).role(), Role::Leader);
}

#[test]
fn removing_a_voter_lets_the_remaining_quorum_commit() {
    let mut net = Net::new(&[1, 2, 3, 4]);
    net.elect(1);
    net.isolate(4);
    net.propose(1, b"a");
    net.isolate(3);
    net.node(1).propose(Bytes::from_static(b"b")).unwrap();
    net.settle();
    assert_eq!(net.applied_data(1).len(), 1, "b needs 3 of 4");
    // Remove 4 (3 of {1,2,3,4} is needed to commit the removal: bring 3 back first).
    net.cut.retain(|&(a, b)| a != NodeId(3) && b != NodeId(3));
    net.node(1)
        .propose_conf_change(conf_change(ConfChangeKind::RemoveNode, 4))
        .unwrap();
    net.settle();
    assert_eq!(net.node(1).conf_state().voters, ids(&[1, 2, 3]));
    net.isolate(3);
    net.propose(1, b"c");
    assert_eq!(
        net.applied_data(1).len(),
        3,
        "with 4 gone, 1 and 2 are a majority"
    );
}

#[test]
fn follower_forwards_conf_change_to_leader() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.node(2)
        .propose_conf_change(conf_change(ConfChangeKind::AddLearner, 4))
        .unwrap();
    net.settle();
    for id in 1..=3 {
        assert_eq!(net.node(id).conf_state().learners, ids(&[4]), "node {id}");
    }
}

#[test]
fn removed_node_does_not_campaign() {
    let mut n = new_node(1, &[1, 2, 3], &[], &|_| {});
    n.apply_conf_change(&conf_change(ConfChangeKind::RemoveNode, 1));
    for _ in 0..100 {
        n.tick();
    }
    assert_eq!((n.role(), n.term()), (Role::Follower, Term(0)));
}

#[test]
fn promoted_learner_can_campaign() {
    let mut n = new_node(3, &[1, 2], &[3], &|_| {});
    n.apply_conf_change(&conf_change(ConfChangeKind::AddVoter, 3));
    n.campaign();
    assert_eq!(n.role(), Role::Candidate);
}

#[test]
fn no_campaign_while_a_committed_conf_change_is_unapplied() {
    let mut n = new_node(1, &[1, 2, 3], &[], &|_| {});
    let mut m = msg(MessageKind::Append, 2, 1, 1);
    let cc = conf_change(ConfChangeKind::RemoveNode, 3);
    m.entries = vec![Entry {
        term: Term(1),
        index: Index(1),
        kind: EntryKind::ConfChange,
        data: cc.encode(),
    }];
    m.commit = Index(1);
    n.step(m).unwrap();
    n.campaign();
    assert_eq!(
        n.role(),
        Role::Follower,
        "the configuration to campaign in is not known yet"
    );
    let rd = n.ready();
    assert_eq!(rd.committed_entries.len(), 1);
    n.apply_conf_change(&cc);
    n.advance();
    n.campaign();
    assert_eq!(n.role(), Role::Candidate);
}

#[test]
fn transfer_to_learner_is_ignored() {
    let mut net = Net::build(&[1, 2], &[3], &|_| {});
    net.elect(1);
    net.node(1).transfer_leader(NodeId(3));
    assert!(
        net.node(1).propose(Bytes::from_static(b"x")).is_ok(),
        "no transfer started"
    );
    net.settle();
    assert_eq!(net.node(1).role(), Role::Leader);
}

#[test]
fn learner_contact_does_not_satisfy_check_quorum() {
    let mut net = Net::build(&[1, 2, 3], &[4], &pre_vote_and_check_quorum);
    net.elect(1);
    net.isolate(2);
    net.isolate(3);
    // Only 1 <-> 4 stays up: the learner answers every heartbeat, but it is no quorum.
    for _ in 0..20 {
        net.node(1).tick();
        net.settle();
    }
    assert_eq!(net.node(1).role(), Role::Follower);
}

#[test]
fn status_reports_progress_only_on_the_leader() {
    let mut net = Net::build(&[1, 2], &[3], &|_| {});
    net.elect(1);
    let status = net.node(1).status();
    assert_eq!(status.progress.len(), 3);
    assert!(status.progress[&NodeId(3)].is_learner);
    assert_eq!(status.progress[&NodeId(2)].match_index, status.last_index);
    assert!(net.node(2).status().progress.is_empty());
}
