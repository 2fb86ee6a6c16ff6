//! White-box tests, one per rule: the Raft paper's §5 (election, replication, safety),
//! then pre-vote, check-quorum, ReadIndex, leadership transfer, membership and snapshots.
//!
//! Each test builds a few `RawNode`s, drives them through a tiny in-memory network
//! (`Net`: FIFO delivery, cut links, no reordering) or feeds one node hand-made messages,
//! and asserts the rule in its name. The network plays the application too: it persists
//! (by calling `advance`), applies committed `ConfChange` entries, and records applied
//! entries and read states. Randomised fault injection lives in the simulator (`src/sim`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use super::*;

fn ids(list: &[u64]) -> BTreeSet<NodeId> {
    list.iter().map(|&i| NodeId(i)).collect()
}

fn config(id: u64) -> Config {
    let mut c = Config::new(NodeId(id));
    c.pre_vote = false;
    c.check_quorum = false;
    c
}

/// A fresh node in a cluster of `voters` (and `learners`), with `tweak` applied to its config.
fn new_node(id: u64, voters: &[u64], learners: &[u64], tweak: &dyn Fn(&mut Config)) -> RawNode {
    let mut cfg = config(id);
    tweak(&mut cfg);
    let recovered = RecoveredState {
        conf_state: ConfState {
            voters: ids(voters),
            learners: ids(learners),
        },
        ..Default::default()
    };
    RawNode::new(cfg, recovered).unwrap()
}

/// Takes a Ready, "persists" it, and returns every message in it (immediate ones first).
fn drain(node: &mut RawNode) -> Vec<Message> {
    let mut out = Vec::new();
    while node.has_ready() {
        let rd = node.ready();
        out.extend(rd.messages);
        out.extend(rd.persisted_messages);
        node.advance();
    }
    out
}

fn msg(kind: MessageKind, from: u64, to: u64, term: u64) -> Message {
    Message::new(kind, NodeId(from), NodeId(to), Term(term))
}

fn entry(term: u64, index: u64) -> Entry {
    Entry {
        term: Term(term),
        index: Index(index),
        kind: EntryKind::Normal,
        data: Bytes::new(),
    }
}

/// A node recovered with the given log terms (index i+1 has term `terms[i]`).
fn node_with_log(id: u64, voters: &[u64], terms: &[u64], term: u64) -> RawNode {
    let recovered = RecoveredState {
        hard_state: HardState {
            term: Term(term),
            vote: None,
            commit: Index(0),
        },
        entries: terms
            .iter()
            .enumerate()
            .map(|(i, &t)| entry(t, i as u64 + 1))
            .collect(),
        conf_state: ConfState {
            voters: ids(voters),
            learners: BTreeSet::new(),
        },
        ..Default::default()
    };
    RawNode::new(config(id), recovered).unwrap()
}

/// Application data (not a no-op, not a membership change).
fn is_app_data(e: &Entry) -> bool {
    e.kind == EntryKind::Normal && !e.data.is_empty()
}

/// A tiny network: nodes, a FIFO of messages in flight, and cut links.
struct Net {
    nodes: BTreeMap<NodeId, RawNode>,
    queue: VecDeque<Message>,
    cut: BTreeSet<(NodeId, NodeId)>,
    applied: BTreeMap<NodeId, Vec<Entry>>,
    read_states: BTreeMap<NodeId, Vec<ReadState>>,
    /// Every message delivered, for tests that count them.
    delivered: Vec<Message>,
}

impl Net {
    fn new(voters: &[u64]) -> Net {
        Net::build(voters, &[], &|_| {})
    }

    fn build(voters: &[u64], learners: &[u64], tweak: &dyn Fn(&mut Config)) -> Net {
        let nodes = voters
            .iter()
            .chain(learners)
            .map(|&id| (NodeId(id), new_node(id, voters, learners, tweak)))
            .collect();
        Net {
            nodes,
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            applied: BTreeMap::new(),
            read_states: BTreeMap::new(),
            delivered: Vec::new(),
        }
    }

    fn node(&mut self, id: u64) -> &mut RawNode {
        self.nodes.get_mut(&NodeId(id)).unwrap()
    }

    /// Plays the application for one node: persist, send, apply, collect reads.
    fn handle_ready(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        if !node.has_ready() {
            return;
        }
        let rd = node.ready();
        self.queue.extend(rd.messages);
        self.queue.extend(rd.persisted_messages);
        for e in &rd.committed_entries {
            if e.kind == EntryKind::ConfChange {
                node.apply_conf_change(&ConfChange::decode(&e.data).unwrap());
            }
        }
        self.applied
            .entry(id)
            .or_default()
            .extend(rd.committed_entries);
        self.read_states
            .entry(id)
            .or_default()
            .extend(rd.read_states);
        node.advance();
        node.check_invariants();
    }

    /// Runs Ready handling and delivery until nothing moves.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                self.handle_ready(id);
            }
            let Some(m) = self.queue.pop_front() else {
                if self.nodes.values().all(|n| !n.has_ready()) {
                    return;
                }
                continue;
            };
            if self.cut.contains(&(m.from, m.to)) || !self.nodes.contains_key(&m.to) {
                continue;
            }
            self.delivered.push(m.clone());
            let to = m.to;
            self.nodes.get_mut(&to).unwrap().step(m).unwrap();
        }
        panic!("network did not settle");
    }

    fn tick_all(&mut self, ticks: u32) {
        for _ in 0..ticks {
            for n in self.nodes.values_mut() {
                n.tick();
            }
            self.settle();
        }
    }

    fn campaign(&mut self, id: u64) {
        self.node(id).campaign();
        self.settle();
    }

    /// Elects `id` and lets its first entry commit everywhere reachable.
    fn elect(&mut self, id: u64) {
        self.campaign(id);
        assert_eq!(self.node(id).role(), Role::Leader, "node {id} did not win");
    }

    fn propose(&mut self, id: u64, data: &'static [u8]) {
        self.node(id).propose(Bytes::from_static(data)).unwrap();
        self.settle();
    }

    fn isolate(&mut self, id: u64) {
        let others: Vec<NodeId> = self.nodes.keys().copied().filter(|&n| n.0 != id).collect();
        for o in others {
            self.cut.insert((NodeId(id), o));
            self.cut.insert((o, NodeId(id)));
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    fn applied_data(&self, id: u64) -> Vec<Bytes> {
        self.applied
            .get(&NodeId(id))
            .map(|es| {
                es.iter()
                    .filter(|e| is_app_data(e))
                    .map(|e| e.data.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

// ---------------------------------------------------------------- §5.1 terms

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

// ---------------------------------------------------------------- §5.3 replication

#[test]
fn leader_replicates_and_commits_on_majority() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(3);
    net.propose(1, b"a");
    assert_eq!(net.node(1).commit(), Index(2), "1 and 2 are a majority");
    assert_eq!(net.applied_data(1), vec![Bytes::from_static(b"a")]);
    assert_eq!(net.node(3).last_index(), Index(1));
}

#[test]
fn leader_sends_append_before_its_own_persist() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.node(1).propose(Bytes::from_static(b"a")).unwrap();
    let rd = net.node(1).ready();
    assert_eq!(rd.entries.len(), 1);
    let appends: Vec<&Message> = rd
        .messages
        .iter()
        .filter(|m| m.kind == MessageKind::Append)
        .collect();
    assert_eq!(
        appends.len(),
        2,
        "Appends go out with the leader's write in flight"
    );
    assert!(rd.persisted_messages.is_empty());
}

#[test]
fn follower_acknowledges_append_only_after_persisting() {
    let mut n = new_node(1, &[1, 2, 3], &[], &|_| {});
    let mut m = msg(MessageKind::Append, 2, 1, 1);
    m.entries = vec![entry(1, 1)];
    n.step(m).unwrap();
    let rd = n.ready();
    assert_eq!(rd.entries, vec![entry(1, 1)]);
    assert!(rd.messages.is_empty());
    assert_eq!(rd.persisted_messages[0].kind, MessageKind::AppendResponse);
    assert_eq!(rd.persisted_messages[0].index, Index(1));
}

#[test]
fn follower_commit_follows_leader_commit_capped_at_its_log() {
    let mut n = new_node(1, &[1, 2, 3], &[], &|_| {});
    let mut m = msg(MessageKind::Append, 2, 1, 1);
    m.entries = vec![entry(1, 1), entry(1, 2)];
    m.commit = Index(5);
    n.step(m).unwrap();
    assert_eq!(
        n.commit(),
        Index(2),
        "cannot commit past the entries it holds"
    );
    let rd = n.ready();
    assert_eq!(
        rd.committed_entries.len(),
        2,
        "committed entries may overlap Ready.entries"
    );
    assert_eq!(rd.entries.len(), 2);
}

#[test]
fn follower_rejects_append_whose_previous_entry_does_not_match() {
    let mut n = node_with_log(1, &[1, 2, 3], &[1, 1], 2);
    let mut m = msg(MessageKind::Append, 2, 1, 2);
    m.index = Index(2);
    m.log_term = Term(2);
    m.entries = vec![entry(2, 3)];
    n.step(m).unwrap();
    let resp = drain(&mut n).pop().unwrap();
    assert!(resp.reject);
    assert_eq!(resp.index, Index(2));
    assert_eq!(n.last_index(), Index(2), "nothing appended");
}

#[test]
fn follower_deletes_conflicting_entries_and_appends_new_ones() {
    let mut n = node_with_log(1, &[1, 2, 3], &[1, 1, 1], 2);
    let mut m = msg(MessageKind::Append, 2, 1, 2);
    m.index = Index(1);
    m.log_term = Term(1);
    m.entries = vec![entry(1, 2), entry(2, 3), entry(2, 4)];
    n.step(m).unwrap();
    let terms: Vec<u64> = n
        .entries(Index(1), Index(5))
        .iter()
        .map(|e| e.term.0)
        .collect();
    assert_eq!(terms, vec![1, 1, 2, 2]);
    let rd = n.ready();
    assert_eq!(
        rd.entries.first().map(|e| e.index),
        Some(Index(3)),
        "storage truncates at 3"
    );
}

#[test]
fn append_rejection_skips_whole_conflicting_term() {
    // The leader's log (terms by index 1..=10) and a follower's divergent log: the paper's
    // one-entry-at-a-time back-off would take 8 probes; skipping terms takes 2.
    let leader_terms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let follower_terms = [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3];
    let mut leader = node_with_log(1, &[1, 2], &leader_terms, 6);
    let mut follower = node_with_log(2, &[1, 2], &follower_terms, 6);
    leader.campaign();
    let mut probes = 0;
    let mut queue: VecDeque<Message> = drain(&mut leader).into();
    while let Some(m) = queue.pop_front() {
        if m.kind == MessageKind::Append && m.to == NodeId(2) {
            probes += 1;
        }
        let target = if m.to == NodeId(1) {
            &mut leader
        } else {
            &mut follower
        };
        target.step(m).unwrap();
        queue.extend(drain(&mut leader));
        queue.extend(drain(&mut follower));
    }
    assert_eq!(leader.role(), Role::Leader);
    assert!(
        probes <= 4,
        "{probes} Appends needed: back-off did not skip terms"
    );
    assert_eq!(
        follower.entries(Index(1), Index(12)),
        leader.entries(Index(1), Index(12))
    );
}

#[test]
fn leader_brings_divergent_follower_logs_in_line() {
    // A follower with extra uncommitted entries of an old term gets them replaced.
    let mut net = Net::new(&[1, 2, 3]);
    net.nodes
        .insert(NodeId(3), node_with_log(3, &[1, 2, 3], &[1, 1, 1, 1], 1));
    net.nodes
        .insert(NodeId(1), node_with_log(1, &[1, 2, 3], &[1, 2], 2));
    net.nodes
        .insert(NodeId(2), node_with_log(2, &[1, 2, 3], &[1, 2], 2));
    net.elect(1);
    net.propose(1, b"z");
    let want = net.node(1).entries(Index(1), Index(100));
    assert_eq!(want.len(), 4);
    for id in [2, 3] {
        assert_eq!(
            net.node(id).entries(Index(1), Index(100)),
            want,
            "node {id} log differs"
        );
    }
}

#[test]
fn leader_only_commits_entries_of_its_own_term_by_counting_replicas() {
    // Figure 8: leader 1 of term 3 holds an entry of term 2 replicated on a majority. It
    // must not commit it by counting replicas until an entry of term 3 is on a majority.
    let mut leader = node_with_log(1, &[1, 2, 3], &[1, 2], 2);
    leader.campaign();
    drain(&mut leader);
    leader
        .step(msg(MessageKind::RequestVoteResponse, 2, 1, 3))
        .unwrap();
    assert_eq!(leader.role(), Role::Leader);
    drain(&mut leader);
    let mut ack = msg(MessageKind::AppendResponse, 2, 1, 3);
    ack.index = Index(2);
    leader.step(ack.clone()).unwrap();
    assert_eq!(
        leader.commit(),
        Index(0),
        "entry 2 is from term 2: replicas do not count"
    );
    ack.index = Index(3);
    leader.step(ack).unwrap();
    assert_eq!(
        leader.commit(),
        Index(3),
        "the term-3 no-op commits, and 2 with it"
    );
}

#[test]
fn probe_state_sends_one_append_at_a_time() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(2);
    net.node(1).report_unreachable(NodeId(2));
    for _ in 0..3 {
        net.node(1).propose(Bytes::from_static(b"p")).unwrap();
    }
    let msgs = drain(net.node(1));
    let to2 = msgs
        .iter()
        .filter(|m| m.to == NodeId(2) && m.kind == MessageKind::Append)
        .count();
    assert_eq!(
        to2, 1,
        "a probing follower gets one Append until it answers"
    );
    assert_eq!(
        net.node(1).status().progress[&NodeId(2)].state,
        ProgressState::Probe
    );
}

/// A leader of {1, 2} whose follower 2 has acknowledged the no-op (so is in Replicate).
fn leader_with_replicating_follower(tweak: &dyn Fn(&mut Config)) -> RawNode {
    let mut leader = new_node(1, &[1, 2], &[], tweak);
    leader.campaign();
    leader
        .step(msg(MessageKind::RequestVoteResponse, 2, 1, 1))
        .unwrap();
    drain(&mut leader);
    let mut ack = msg(MessageKind::AppendResponse, 2, 1, 1);
    ack.index = Index(1);
    leader.step(ack).unwrap();
    drain(&mut leader);
    assert_eq!(
        leader.status().progress[&NodeId(2)].state,
        ProgressState::Replicate
    );
    leader
}

fn appends_to(msgs: &[Message], to: u64) -> Vec<&Message> {
    msgs.iter()
        .filter(|m| m.kind == MessageKind::Append && m.to == NodeId(to))
        .collect()
}

#[test]
fn replicate_state_is_bounded_by_inflight_msgs_max() {
    let mut leader = leader_with_replicating_follower(&|c| c.inflight_msgs_max = 2);
    let mut sent = Vec::new();
    for _ in 0..5 {
        leader.propose(Bytes::from_static(b"p")).unwrap();
        sent.extend(drain(&mut leader));
    }
    assert_eq!(
        appends_to(&sent, 2).len(),
        2,
        "only 2 Appends may be unacknowledged"
    );
    let mut ack = msg(MessageKind::AppendResponse, 2, 1, 1);
    ack.index = Index(2);
    leader.step(ack).unwrap();
    let more = drain(&mut leader);
    let appends = appends_to(&more, 2);
    assert_eq!(appends.len(), 1, "one slot freed, one Append sent");
    assert_eq!(
        appends[0].entries.len(),
        3,
        "the freed slot carries all remaining entries"
    );
}

#[test]
fn append_messages_respect_msg_bytes_max_but_carry_at_least_one_entry() {
    let mut leader = leader_with_replicating_follower(&|c| c.msg_bytes_max = 60);
    // Pause 2 in Probe with one Append outstanding, then queue entries 3..=6 behind it.
    leader.report_unreachable(NodeId(2));
    leader.propose(Bytes::from_static(b"x")).unwrap();
    drain(&mut leader);
    for data in [&b"0123456789"[..], &[7u8; 100][..], b"a", b"b"] {
        leader.propose(Bytes::copy_from_slice(data)).unwrap();
    }
    assert!(
        appends_to(&drain(&mut leader), 2).is_empty(),
        "probe is paused"
    );
    let mut ack = msg(MessageKind::AppendResponse, 2, 1, 1);
    ack.index = Index(2);
    leader.step(ack).unwrap();
    let sent = drain(&mut leader);
    let sizes: Vec<usize> = appends_to(&sent, 2)
        .iter()
        .map(|m| m.entries.len())
        .collect();
    // Sizes are data + 24: 34, 124, 25, 25. 34 + 124 > 60; 124 alone > 60 but is sent
    // anyway (an entry must get through); 25 + 25 <= 60 share a message.
    assert_eq!(sizes, vec![1, 1, 2]);
}

#[test]
fn heartbeat_commit_is_capped_at_follower_match() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(3);
    net.propose(1, b"a");
    net.heal();
    net.node(1).tick();
    let hb: Vec<Message> = drain(net.node(1))
        .into_iter()
        .filter(|m| m.kind == MessageKind::Heartbeat)
        .collect();
    let commit_to = |id: u64| hb.iter().find(|m| m.to == NodeId(id)).unwrap().commit;
    assert_eq!(commit_to(2), Index(2));
    assert_eq!(commit_to(3), Index(1), "3 only has entry 1");
}

#[test]
fn follower_forwards_proposal_to_leader() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.propose(2, b"fwd");
    for id in 1..=3 {
        assert_eq!(
            net.applied_data(id),
            vec![Bytes::from_static(b"fwd")],
            "node {id}"
        );
    }
}

#[test]
fn proposal_without_known_leader_is_dropped() {
    let mut n = new_node(1, &[1, 2, 3], &[], &|_| {});
    assert_eq!(
        n.propose(Bytes::from_static(b"x")),
        Err(Error::ProposalDropped)
    );
}

#[test]
fn committed_entries_are_applied_once_in_log_order() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    for d in [&b"a"[..], b"b", b"c"] {
        net.node(1).propose(Bytes::from_static(d)).unwrap();
    }
    net.settle();
    net.tick_all(3);
    for id in 1..=3 {
        let idx: Vec<u64> = net.applied[&NodeId(id)].iter().map(|e| e.index.0).collect();
        assert_eq!(
            idx,
            vec![1, 2, 3, 4],
            "node {id} applied out of order or twice"
        );
    }
}

// ---------------------------------------------------------------- pre-vote, check-quorum

fn pre_vote_and_check_quorum(c: &mut Config) {
    c.pre_vote = true;
    c.check_quorum = true;
}

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

// ---------------------------------------------------------------- ReadIndex

#[test]
fn read_index_waits_for_commit_in_current_term() {
    let mut leader = new_node(1, &[1, 2, 3], &[], &|_| {});
    leader.campaign();
    leader
        .step(msg(MessageKind::RequestVoteResponse, 2, 1, 1))
        .unwrap();
    drain(&mut leader);
    leader.read_index(Bytes::from_static(b"r"));
    let sent = drain(&mut leader);
    assert!(
        sent.iter().all(|m| m.context.is_empty()),
        "no read round before the no-op of this term commits"
    );
    assert_eq!(leader.status().pending_read_count, 1);
    let mut ack = msg(MessageKind::AppendResponse, 2, 1, 1);
    ack.index = Index(1);
    leader.step(ack).unwrap();
    let sent = drain(&mut leader);
    let round: Vec<&Message> = sent
        .iter()
        .filter(|m| m.kind == MessageKind::Heartbeat && !m.context.is_empty())
        .collect();
    assert_eq!(
        round.len(),
        2,
        "the commit releases the read into a heartbeat round"
    );
    let mut hb_ack = msg(MessageKind::HeartbeatResponse, 2, 1, 1);
    hb_ack.context = round[0].context.clone();
    leader.step(hb_ack).unwrap();
    let rd = leader.ready();
    assert_eq!(
        rd.read_states,
        vec![ReadState {
            index: Index(1),
            context: Bytes::from_static(b"r")
        }]
    );
}

#[test]
fn read_index_needs_heartbeat_quorum() {
    let mut net = Net::new(&[1, 2, 3, 4, 5]);
    net.elect(1);
    net.isolate(3);
    net.isolate(4);
    net.isolate(5);
    net.node(1).read_index(Bytes::from_static(b"r"));
    net.settle();
    assert!(
        net.read_states[&NodeId(1)].is_empty(),
        "2 of 5 acks cannot confirm leadership"
    );
    net.cut.retain(|&(a, b)| a != NodeId(3) && b != NodeId(3));
    net.node(1).tick();
    net.settle();
    net.node(1).read_index(Bytes::from_static(b"s"));
    net.settle();
    let got: Vec<Bytes> = net.read_states[&NodeId(1)]
        .iter()
        .map(|r| r.context.clone())
        .collect();
    assert_eq!(
        got,
        vec![Bytes::from_static(b"r"), Bytes::from_static(b"s")]
    );
}

#[test]
fn reads_arriving_together_share_one_heartbeat_round() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.delivered.clear();
    for ctx in [&b"a"[..], b"b", b"c"] {
        net.node(1).read_index(Bytes::from_static(ctx));
    }
    net.settle();
    let heartbeats = net
        .delivered
        .iter()
        .filter(|m| m.kind == MessageKind::Heartbeat)
        .count();
    assert_eq!(heartbeats, 2, "one round: one heartbeat per follower");
    let states = &net.read_states[&NodeId(1)];
    assert_eq!(states.len(), 3);
    assert!(states.iter().all(|r| r.index == Index(1)));
}

#[test]
fn single_voter_read_index_answers_immediately() {
    let mut n = new_node(1, &[1], &[2], &|_| {});
    n.campaign();
    drain(&mut n);
    n.read_index(Bytes::from_static(b"r"));
    let rd = n.ready();
    assert_eq!(rd.read_states.len(), 1);
    assert!(
        rd.messages.is_empty(),
        "no heartbeat round with a single voter"
    );
}

#[test]
fn follower_read_index_is_forwarded_and_answered_by_leader() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.propose(1, b"a");
    net.node(3).read_index(Bytes::from_static(b"f"));
    net.settle();
    let states = &net.read_states[&NodeId(3)];
    assert_eq!(
        states,
        &vec![ReadState {
            index: Index(2),
            context: Bytes::from_static(b"f")
        }]
    );
}

#[test]
fn deposed_leader_cannot_serve_reads() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(1);
    net.elect(2);
    net.node(1).read_index(Bytes::from_static(b"stale"));
    net.settle();
    net.tick_all(5);
    assert!(
        net.read_states[&NodeId(1)].is_empty(),
        "old leader confirmed a stale read"
    );
}

// ---------------------------------------------------------------- leadership transfer

#[test]
fn leader_transfer_to_up_to_date_follower() {
    let mut net = Net::build(&[1, 2, 3], &[], &pre_vote_and_check_quorum);
    net.elect(1);
    let term = net.node(1).term();
    net.node(1).transfer_leader(NodeId(2));
    net.settle();
    assert_eq!(
        net.node(2).role(),
        Role::Leader,
        "the lease must not block a transfer"
    );
    assert_eq!(net.node(2).term(), term.next(), "transfer skips pre-vote");
    assert_eq!(net.node(1).leader(), Some(NodeId(2)));
}

#[test]
fn leader_transfer_catches_up_lagging_target_first() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(3);
    net.propose(1, b"a");
    net.propose(1, b"b");
    net.node(1).transfer_leader(NodeId(3));
    assert!(net.node(1).propose(Bytes::from_static(b"c")).is_err());
    net.heal();
    net.tick_all(1);
    assert_eq!(net.node(3).role(), Role::Leader);
    assert_eq!(
        net.applied_data(3)[..2],
        [Bytes::from_static(b"a"), Bytes::from_static(b"b")]
    );
}

#[test]
fn proposals_are_dropped_during_transfer() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(2);
    net.node(1).transfer_leader(NodeId(2));
    assert_eq!(
        net.node(1).propose(Bytes::from_static(b"x")),
        Err(Error::ProposalDropped)
    );
}

#[test]
fn transfer_is_aborted_after_an_election_timeout() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(2);
    net.node(1).transfer_leader(NodeId(2));
    for _ in 0..10 {
        net.node(1).tick();
    }
    assert_eq!(net.node(1).role(), Role::Leader);
    assert!(
        net.node(1).propose(Bytes::from_static(b"x")).is_ok(),
        "transfer still blocks"
    );
}

#[test]
fn follower_forwards_transfer_request_to_leader() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.node(3).transfer_leader(NodeId(3));
    net.settle();
    assert_eq!(net.node(3).role(), Role::Leader);
}

// ---------------------------------------------------------------- membership

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

// ---------------------------------------------------------------- snapshots, restart

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
fn message_to_another_node_is_an_error() {
    let mut n = new_node(1, &[1, 2], &[], &|_| {});
    let err = n.step(msg(MessageKind::Heartbeat, 2, 3, 1)).unwrap_err();
    assert_eq!(err, Error::WrongRecipient { to: 3, me: 1 });
}
