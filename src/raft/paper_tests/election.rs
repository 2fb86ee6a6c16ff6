//! Terms (§5.1) and leader election (§5.2): term updates, randomized timeouts,
//! one vote per term, the up-to-date check, and how a candidate wins or steps down.

use super::*;

#[test]
fn follower_updates_term_from_higher_term_message() {
    let mut n = new_node(1, &[1, 2, 3], &[], &|_| {});
    n.step(msg(MessageKind::Heartbeat, 2, 1, 5)).unwrap();
    assert_eq!(n.term(), Term(5));
    assert_eq!(n.role(), Role::Follower);
    assert_eq!(n.leader(), Some(NodeId(2)));
}

#[test]
fn leader_steps_down_on_higher_term_message() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    let term = net.node(1).term();
    let mut m = msg(MessageKind::AppendResponse, 2, 1, term.0 + 1);
    m.index = Index(1);
    net.node(1).step(m).unwrap();
    assert_eq!(net.node(1).role(), Role::Follower);
    assert_eq!(net.node(1).term(), term.next());
}

#[test]
fn stale_term_message_is_ignored() {
    let mut n = new_node(1, &[1, 2, 3], &[], &|_| {});
    n.step(msg(MessageKind::Heartbeat, 2, 1, 5)).unwrap();
    drain(&mut n);
    let mut stale = msg(MessageKind::Append, 3, 1, 4);
    stale.entries = vec![entry(4, 1)];
    n.step(stale).unwrap();
    assert_eq!(n.leader(), Some(NodeId(2)));
    assert_eq!(n.last_index(), Index(0));
    assert!(
        drain(&mut n).is_empty(),
        "no answer to a stale append without pre-vote/check-quorum"
    );
}

// ---------------------------------------------------------------- §5.2 election

#[test]
fn follower_starts_election_after_randomized_election_timeout() {
    let mut n = new_node(1, &[1, 2, 3], &[], &|_| {});
    let mut ticks = 0;
    while n.role() == Role::Follower {
        n.tick();
        ticks += 1;
        assert!(ticks < 20, "no election within 2 * election timeout");
    }
    assert!(
        ticks >= 10,
        "election after {ticks} ticks, before the election timeout"
    );
    assert_eq!(n.role(), Role::Candidate);
}

#[test]
fn election_timeouts_are_randomized_by_seed() {
    let timeout_for = |seed: u64| {
        let mut n = new_node(1, &[1, 2, 3], &[], &|c| c.seed = seed);
        let mut ticks = 0;
        while n.role() == Role::Follower {
            n.tick();
            ticks += 1;
        }
        ticks
    };
    let timeouts: BTreeSet<u32> = (0..30).map(timeout_for).collect();
    assert!(timeouts.len() > 3, "timeouts not randomized: {timeouts:?}");
    assert!(
        timeouts.iter().all(|&t| (10..20).contains(&t)),
        "out of range: {timeouts:?}"
    );
    assert_eq!(timeout_for(7), timeout_for(7), "same seed, same timeout");
}

#[test]
fn candidate_increments_term_votes_for_itself_and_requests_votes() {
    let mut n = node_with_log(1, &[1, 2, 3], &[1, 1], 1);
    n.campaign();
    assert_eq!(n.role(), Role::Candidate);
    assert_eq!(n.term(), Term(2));
    assert_eq!(n.vote(), Some(NodeId(1)));
    let rd = n.ready();
    assert_eq!(rd.hard_state.unwrap().vote, Some(NodeId(1)));
    assert!(rd.must_sync);
    assert!(
        rd.messages.is_empty(),
        "vote requests must wait for the term to be persisted"
    );
    let to: BTreeSet<NodeId> = rd.persisted_messages.iter().map(|m| m.to).collect();
    assert_eq!(to, ids(&[2, 3]));
    for m in &rd.persisted_messages {
        assert_eq!(m.kind, MessageKind::RequestVote);
        assert_eq!((m.term, m.index, m.log_term), (Term(2), Index(2), Term(1)));
    }
}

#[test]
fn candidate_wins_election_with_majority_of_votes() {
    let mut n = new_node(1, &[1, 2, 3, 4, 5], &[], &|_| {});
    n.campaign();
    n.step(msg(MessageKind::RequestVoteResponse, 2, 1, 1))
        .unwrap();
    assert_eq!(n.role(), Role::Candidate, "2 of 5 is not a majority");
    n.step(msg(MessageKind::RequestVoteResponse, 3, 1, 1))
        .unwrap();
    assert_eq!(n.role(), Role::Leader);
}

#[test]
fn candidate_becomes_follower_on_majority_of_rejections() {
    let mut n = new_node(1, &[1, 2, 3], &[], &|_| {});
    n.campaign();
    let mut no = msg(MessageKind::RequestVoteResponse, 2, 1, 1);
    no.reject = true;
    n.step(no.clone()).unwrap();
    assert_eq!(n.role(), Role::Candidate);
    no.from = NodeId(3);
    n.step(no).unwrap();
    assert_eq!(n.role(), Role::Follower);
    assert_eq!(n.term(), Term(1));
}

#[test]
fn candidate_steps_down_on_append_from_current_term_leader() {
    let mut n = new_node(1, &[1, 2, 3], &[], &|_| {});
    n.campaign();
    assert_eq!(n.term(), Term(1));
    n.step(msg(MessageKind::Append, 2, 1, 1)).unwrap();
    assert_eq!(n.role(), Role::Follower);
    assert_eq!(n.leader(), Some(NodeId(2)));
    assert_eq!(n.term(), Term(1));
}

#[test]
fn candidate_starts_new_election_on_split_vote_timeout() {
    let mut n = new_node(1, &[1, 2, 3], &[], &|_| {});
    n.campaign();
    assert_eq!(n.term(), Term(1));
    for _ in 0..20 {
        n.tick();
    }
    assert_eq!(n.role(), Role::Candidate);
    assert!(
        n.term() >= Term(2),
        "no new election after a timeout without a winner"
    );
}

#[test]
fn at_most_one_vote_per_term() {
    let mut n = new_node(1, &[1, 2, 3], &[], &|_| {});
    n.step(msg(MessageKind::RequestVote, 2, 1, 1)).unwrap();
    n.step(msg(MessageKind::RequestVote, 3, 1, 1)).unwrap();
    n.step(msg(MessageKind::RequestVote, 2, 1, 1)).unwrap();
    let replies = drain(&mut n);
    let grants: Vec<(NodeId, bool)> = replies.iter().map(|m| (m.to, !m.reject)).collect();
    assert_eq!(
        grants,
        vec![(NodeId(2), true), (NodeId(3), false), (NodeId(2), true)],
        "one vote per term; a retransmitted request from the same candidate is granted again"
    );
    assert_eq!(n.vote(), Some(NodeId(2)));
}

#[test]
fn vote_denied_to_candidate_with_less_up_to_date_log() {
    // Our log ends at 2@term 2. Candidates with a lower last term, or the same last term
    // and a shorter log, are refused; a higher last term wins even with a shorter log.
    let cases = [
        (1, 3, false),
        (2, 1, false),
        (2, 2, true),
        (2, 3, true),
        (3, 1, true),
    ];
    for (log_term, index, granted) in cases {
        let mut n = node_with_log(1, &[1, 2, 3], &[1, 2], 2);
        let mut m = msg(MessageKind::RequestVote, 2, 1, 3);
        m.log_term = Term(log_term);
        m.index = Index(index);
        n.step(m).unwrap();
        let rd = n.ready();
        let resp = &rd.persisted_messages[0];
        assert_eq!(!resp.reject, granted, "candidate log {index}@{log_term}");
    }
}

#[test]
fn vote_grant_is_sent_only_after_persisting() {
    let mut n = new_node(1, &[1, 2, 3], &[], &|_| {});
    n.step(msg(MessageKind::RequestVote, 2, 1, 1)).unwrap();
    let rd = n.ready();
    assert!(rd.messages.is_empty());
    assert_eq!(rd.persisted_messages.len(), 1);
    assert_eq!(rd.hard_state.unwrap().vote, Some(NodeId(2)));
    assert!(rd.must_sync);
}

#[test]
fn single_node_becomes_leader_and_commits_on_its_own_persist() {
    let mut n = new_node(1, &[1], &[], &|_| {});
    n.campaign();
    assert_eq!(n.role(), Role::Leader);
    n.propose(Bytes::from_static(b"x")).unwrap();
    let rd = n.ready();
    assert_eq!(rd.entries.len(), 2, "the no-op and the proposal");
    assert!(
        rd.committed_entries.is_empty(),
        "nothing commits before the leader's own persist"
    );
    n.advance();
    assert_eq!(n.commit(), Index(2));
    let rd = n.ready();
    assert_eq!(rd.committed_entries.len(), 2);
    n.advance();
    assert_eq!(n.applied(), Index(2));
    n.check_invariants();
}

#[test]
fn new_leader_appends_an_empty_entry_of_its_term() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    let last = net.node(1).last_index();
    let e = &net.node(1).entries(last, last.next())[0];
    assert_eq!((e.term, e.data.len()), (net.node(1).term(), 0));
    for id in 1..=3 {
        assert_eq!(
            net.node(id).commit(),
            last,
            "node {id} did not commit the no-op"
        );
    }
}

#[test]
fn follower_does_not_campaign_while_hearing_from_leader() {
    let mut n = new_node(1, &[1, 2, 3], &[], &|_| {});
    for _ in 0..100 {
        n.tick();
        n.step(msg(MessageKind::Heartbeat, 2, 1, 1)).unwrap();
    }
    assert_eq!(n.role(), Role::Follower);
    assert_eq!(n.term(), Term(1));
}

#[test]
fn leader_sends_heartbeats_every_heartbeat_interval() {
    let mut net = Net::build(&[1, 2, 3], &[], &|c| c.heartbeat_interval_ticks = 3);
    net.elect(1);
    let mut counts = Vec::new();
    for _ in 0..6 {
        net.node(1).tick();
        let hb = drain(net.node(1))
            .iter()
            .filter(|m| m.kind == MessageKind::Heartbeat)
            .count();
        counts.push(hb);
    }
    assert_eq!(counts, vec![0, 0, 2, 0, 0, 2]);
}

#[test]
fn campaign_is_ignored_by_leader() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    let term = net.node(1).term();
    net.node(1).campaign();
    assert_eq!(
        (net.node(1).role(), net.node(1).term()),
        (Role::Leader, term)
    );
}

#[test]
fn candidate_ignores_vote_responses_from_earlier_terms() {
    let mut n = new_node(1, &[1, 2, 3], &[], &|_| {});
    n.campaign();
    n.campaign();
    assert_eq!(n.term(), Term(2));
    n.step(msg(MessageKind::RequestVoteResponse, 2, 1, 1))
        .unwrap();
    assert_eq!(
        n.role(),
        Role::Candidate,
        "a term-1 vote does not count in term 2"
    );
    n.step(msg(MessageKind::RequestVoteResponse, 2, 1, 2))
        .unwrap();
    assert_eq!(n.role(), Role::Leader);
}

#[test]
fn voter_resets_election_timer_when_granting_vote() {
    let mut n = new_node(1, &[1, 2, 3], &[], &|c| c.seed = 1);
    for _ in 0..9 {
        n.tick();
    }
    n.step(msg(MessageKind::RequestVote, 2, 1, 1)).unwrap();
    for _ in 0..9 {
        n.tick();
    }
    assert_eq!(
        n.role(),
        Role::Follower,
        "granting a vote restarts the election timeout"
    );
}
