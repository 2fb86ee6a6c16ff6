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

mod election;
mod membership;
mod pre_vote;
mod read_index;
mod replication;
mod snapshot;
mod transfer;

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
    RawNode::new(config(id), recovered_log(voters, terms, term)).unwrap()
}

/// What a node with the given log terms (and no vote, nothing committed) recovers.
fn recovered_log(voters: &[u64], terms: &[u64], term: u64) -> RecoveredState {
    RecoveredState {
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
    }
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

/// Pre-vote and check-quorum on (etcd's production setting).
fn pre_vote_and_check_quorum(c: &mut Config) {
    c.pre_vote = true;
    c.check_quorum = true;
}
