//! Pre-vote (thesis §9.6) and check-quorum (thesis §6.2): elections that cannot win
//! do not raise terms, leaders without a quorum step down, and leases protect a working
//! leader from a rejoining node.

use super::*;

#[test]
fn pre_vote_does_not_raise_term() {
    let mut n = new_node(1, &[1, 2, 3], &[], &pre_vote_and_check_quorum);
    n.campaign();
    assert_eq!(n.role(), Role::PreCandidate);
    assert_eq!(n.term(), Term(0));
    assert_eq!(n.vote(), None);
    let rd = n.ready();
    assert!(rd.hard_state.is_none(), "a pre-vote persists nothing");
    for m in &rd.messages {
        assert_eq!((m.kind, m.term), (MessageKind::RequestPreVote, Term(1)));
    }
    assert_eq!(rd.messages.len(), 2);
}

#[test]
fn pre_vote_grant_does_not_record_a_vote_or_change_term() {
    let mut n = new_node(2, &[1, 2, 3], &[], &pre_vote_and_check_quorum);
    n.step(msg(MessageKind::RequestPreVote, 1, 2, 1)).unwrap();
    let resp = drain(&mut n).pop().unwrap();
    assert_eq!(resp.kind, MessageKind::RequestPreVoteResponse);
    assert!(!resp.reject);
    assert_eq!(resp.term, Term(1), "the grant names the term asked about");
    assert_eq!((n.term(), n.vote()), (Term(0), None));
}

#[test]
fn pre_vote_success_starts_real_election() {
    let mut net = Net::build(&[1, 2, 3], &[], &pre_vote_and_check_quorum);
    net.campaign(1);
    assert_eq!(net.node(1).role(), Role::Leader);
    assert_eq!(net.node(1).term(), Term(1));
}

#[test]
fn pre_candidate_learns_higher_term_from_rejection() {
    let mut n = new_node(1, &[1, 2, 3], &[], &pre_vote_and_check_quorum);
    n.campaign();
    let mut no = msg(MessageKind::RequestPreVoteResponse, 2, 1, 7);
    no.reject = true;
    n.step(no).unwrap();
    assert_eq!((n.role(), n.term()), (Role::Follower, Term(7)));
}

#[test]
fn leader_steps_down_without_quorum_contact() {
    let mut net = Net::build(&[1, 2, 3], &[], &pre_vote_and_check_quorum);
    net.elect(1);
    net.isolate(1);
    for _ in 0..9 {
        net.node(1).tick();
    }
    assert_eq!(
        net.node(1).role(),
        Role::Leader,
        "still within the first window"
    );
    for _ in 0..11 {
        net.node(1).tick();
    }
    assert_eq!(
        net.node(1).role(),
        Role::Follower,
        "no quorum heard for a whole window"
    );
}

#[test]
fn leader_with_quorum_contact_stays_leader() {
    let mut net = Net::build(&[1, 2, 3], &[], &pre_vote_and_check_quorum);
    net.elect(1);
    net.isolate(3);
    for _ in 0..50 {
        net.node(1).tick();
        net.settle();
    }
    assert_eq!(net.node(1).role(), Role::Leader);
}

#[test]
fn follower_in_lease_ignores_vote_requests() {
    let mut net = Net::build(&[1, 2, 3], &[], &pre_vote_and_check_quorum);
    net.elect(1);
    let term = net.node(2).term();
    let mut m = msg(MessageKind::RequestVote, 3, 2, term.0 + 1);
    m.index = Index(10);
    m.log_term = Term(term.0 + 1);
    net.node(2).step(m).unwrap();
    assert_eq!(net.node(2).term(), term, "the lease keeps the old term");
    assert!(drain(net.node(2)).is_empty(), "no answer at all");
    assert_eq!(net.node(2).leader(), Some(NodeId(1)));
}

#[test]
fn rejoining_partitioned_node_does_not_disrupt_leader() {
    let mut net = Net::build(&[1, 2, 3], &[], &pre_vote_and_check_quorum);
    net.elect(1);
    let term = net.node(1).term();
    net.isolate(3);
    for _ in 0..100 {
        net.node(3).tick();
        net.settle();
    }
    assert_eq!(
        net.node(3).term(),
        term,
        "pre-vote kept the isolated node's term"
    );
    net.heal();
    net.tick_all(30);
    assert_eq!(net.node(1).role(), Role::Leader);
    assert_eq!(net.node(1).term(), term);
    assert_eq!(net.node(3).leader(), Some(NodeId(1)));
}

#[test]
fn node_with_higher_term_is_brought_back_by_stale_leader_stepping_down() {
    // Without pre-vote, an isolated node keeps raising its term. With check-quorum, it
    // answers the leader's lower-term heartbeats with its own term; the leader steps down
    // and a new election (in a higher term) includes the rejoined node again.
    let mut net = Net::build(&[1, 2, 3], &[], &|c| c.check_quorum = true);
    net.elect(1);
    net.isolate(3);
    for _ in 0..50 {
        net.node(3).tick();
    }
    let high = net.node(3).term();
    assert!(high > net.node(1).term());
    net.heal();
    net.tick_all(60);
    let leader = net.node(1).leader().expect("a leader after healing");
    assert!(net.node(1).term() >= high);
    for id in 1..=3 {
        assert_eq!(net.node(id).leader(), Some(leader), "node {id}");
    }
}

#[test]
fn pre_vote_is_rejected_when_log_is_behind() {
    let mut n = node_with_log(2, &[1, 2, 3], &[1, 2], 2);
    let mut m = msg(MessageKind::RequestPreVote, 1, 2, 3);
    m.index = Index(5);
    m.log_term = Term(1);
    n.step(m).unwrap();
    let resp = drain(&mut n).pop().unwrap();
    assert!(resp.reject);
    assert_eq!(
        resp.term,
        Term(2),
        "the rejection carries the voter's own term"
    );
}

#[test]
fn pre_candidate_that_loses_stays_in_its_term() {
    let mut net = Net::build(&[1, 2, 3], &[], &pre_vote_and_check_quorum);
    net.elect(1);
    net.propose(1, b"a");
    // Node 3 missed entry 2 and asks for pre-votes: its log is behind, so it loses.
    let mut cfg = config(3);
    pre_vote_and_check_quorum(&mut cfg);
    let lagging = RawNode::new(cfg, recovered_log(&[1, 2, 3], &[1], 1)).unwrap();
    net.nodes.insert(NodeId(3), lagging);
    for id in [1, 2] {
        for _ in 0..20 {
            net.node(id).tick();
        }
        drain(net.node(id));
    }
    net.campaign(3);
    assert_ne!(net.node(3).role(), Role::Leader);
    assert_eq!(net.node(3).term(), Term(1));
}
