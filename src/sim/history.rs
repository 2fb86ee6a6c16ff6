//! The invariant checker: everything the cluster has ever done, and the safety properties
//! of Raft (paper Figure 3) checked against it after every simulator step.
//!
//! - Election safety: at most one leader per term, over all history.
//! - Log matching: an (index, term) pair names one entry everywhere and forever, with one
//!   predecessor term; by induction equal (index, term) means equal prefixes.
//! - Leader completeness: a node that becomes leader holds every entry known committed.
//! - State machine safety: every node applies the same entry at an index, and its applied
//!   history hashes to the same value there (snapshots included).
//! - No acknowledged write lost: a proposal applied anywhere is acknowledged; it must keep
//!   its index in every applied history (it is applied once, at one index) and a ReadIndex
//!   issued after the acknowledgement must return an index at or above it.
//!
//! The checker only observes; it never changes the cluster. Violations panic with the
//! evidence. Called by `sim::node` and `sim::cluster`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;

use super::disk::DiskImage;
use crate::raft::{Entry, EntryKind, Index, NodeId, ReadState, RecoveredState, Role, Term};

/// What the whole log of history says about one (index, term) entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint {
    prev_term: Term,
    kind: EntryKind,
    data_hash: u64,
}

/// Everything observed so far.
#[derive(Debug, Default)]
pub struct History {
    /// The leader of each term (election safety).
    leaders: BTreeMap<Term, NodeId>,
    /// (node, term) pairs already checked for leader completeness.
    leaders_checked: BTreeSet<(NodeId, Term)>,
    /// Every entry ever written to any log (log matching).
    entries: HashMap<(Index, Term), Fingerprint>,
    /// Entries known committed because some node applied them: term and history hash.
    committed: BTreeMap<Index, (Term, u64)>,
    /// The index at which each client payload was applied (no duplicates, no moves).
    payloads: HashMap<Bytes, Index>,
    /// ReadIndex requests: context -> highest acknowledged index when issued.
    reads: HashMap<Bytes, Index>,
    /// How many reads were served and checked.
    pub reads_served: u64,
    /// Record and check nothing (benchmarks, where history would grow without bound).
    pub off: bool,
}

impl History {
    /// The highest index known committed (acknowledged), 0 when none.
    pub fn committed_index(&self) -> Index {
        self.committed
            .keys()
            .next_back()
            .copied()
            .unwrap_or_default()
    }

    /// Where `payload` was applied, if it was.
    pub fn payload_index(&self, payload: &[u8]) -> Option<Index> {
        self.payloads.get(payload).copied()
    }

    /// How many distinct client payloads were acknowledged.
    pub fn acknowledged_count(&self) -> usize {
        self.payloads.len()
    }

    /// Election safety: `node` is leader in `term`; no other node may ever be.
    pub fn observe_leader(&mut self, node: NodeId, term: Term) -> bool {
        if self.off {
            return false;
        }
        let leader = *self.leaders.entry(term).or_insert(node);
        assert_eq!(
            leader, node,
            "election safety: nodes {leader} and {node} are both leaders of term {term}"
        );
        self.leaders_checked.insert((node, term))
    }

    /// Leader completeness, checked once when `node` is first seen leading `term`: every
    /// entry known committed and still in its log (at or after `first_index`) must be
    /// there with the same term. `term_at` reads the new leader's log.
    pub fn check_leader_completeness(
        &self,
        node: NodeId,
        term: Term,
        first_index: Index,
        term_at: impl Fn(Index) -> Option<Term>,
    ) {
        for (&index, &(committed_term, _)) in self.committed.range(first_index..) {
            let has = term_at(index);
            assert_eq!(
                has,
                Some(committed_term),
                "leader completeness: node {node}, leader of term {term}, has term {has:?} at \
                 index {index} where term {committed_term} was committed"
            );
        }
    }

    /// Log matching: `written` was just appended to `node`'s log, now `image`.
    pub fn on_log_write(&mut self, node: NodeId, image: &DiskImage, written: &[Entry]) {
        if self.off {
            return;
        }
        for entry in written {
            let prev_term = image
                .term(entry.index.prev())
                .unwrap_or_else(|| panic!("node {node} wrote {} with no predecessor", entry.index));
            let print = Fingerprint {
                prev_term,
                kind: entry.kind,
                data_hash: data_hash(&entry.data),
            };
            let seen = *self
                .entries
                .entry((entry.index, entry.term))
                .or_insert(print);
            assert_eq!(
                seen, print,
                "log matching: node {node} wrote entry {}/{} unlike an earlier entry with the same \
                 index and term (earlier {seen:?}, now {print:?})",
                entry.index, entry.term
            );
        }
    }

    /// State machine safety: `node` applied `entry` and its history now hashes to `chain`.
    pub fn on_apply(&mut self, node: NodeId, entry: &Entry, chain: u64) {
        if self.off {
            return;
        }
        let seen = *self
            .committed
            .entry(entry.index)
            .or_insert((entry.term, chain));
        assert_eq!(
            seen,
            (entry.term, chain),
            "state machine safety: node {node} applied {}/{} with history hash {chain:#x}, but \
             {}/{} with hash {:#x} was applied there before",
            entry.index,
            entry.term,
            entry.index,
            seen.0,
            seen.1
        );
        if entry.kind == EntryKind::Normal && !entry.data.is_empty() {
            let at = *self
                .payloads
                .entry(entry.data.clone())
                .or_insert(entry.index);
            assert_eq!(
                at, entry.index,
                "acknowledged write moved: node {node} applied payload {:?} at {} but it was \
                 applied at {at} before",
                entry.data, entry.index
            );
        }
    }

    /// State machine safety for snapshots: `node` restored an image standing at
    /// `index`/`term` with history hash `chain`; someone must have applied exactly that.
    pub fn on_restore(&self, node: NodeId, index: Index, term: Term, chain: u64) {
        if self.off {
            return;
        }
        if index == Index(0) {
            return;
        }
        let seen = self.committed.get(&index).copied();
        assert_eq!(
            seen,
            Some((term, chain)),
            "snapshot safety: node {node} restored {index}/{term} hash {chain:#x}, which no node \
             applied"
        );
    }

    /// A node restarts from `recovered`: its durable commit must not claim more than its
    /// durable log holds, and whatever it holds at or below that commit must be committed.
    pub fn on_recover(&self, node: NodeId, recovered: &RecoveredState) {
        if self.off {
            return;
        }
        for entry in &recovered.entries {
            if entry.index > recovered.hard_state.commit {
                break;
            }
            if let Some((term, _)) = self.committed.get(&entry.index) {
                assert_eq!(
                    *term, entry.term,
                    "durability: node {node} recovered {}/{} at or below its commit {} but {}/{} \
                     was committed",
                    entry.index, entry.term, recovered.hard_state.commit, entry.index, term
                );
            }
        }
    }

    /// ReadIndex: remember which writes were acknowledged when `context` was issued.
    pub fn on_read_request(&mut self, context: Bytes) {
        if self.off {
            return;
        }
        let acked = self.committed_index();
        self.reads.insert(context, acked);
    }

    /// ReadIndex: `node` serves `state` after applying `applied`; the read must see every
    /// write acknowledged before it was issued.
    pub fn on_read_served(&mut self, node: NodeId, state: &ReadState, applied: Index) {
        if self.off {
            return;
        }
        assert!(
            applied >= state.index,
            "node {node} served a read at {} before applying it",
            state.index
        );
        if let Some(&acked) = self.reads.get(&state.context) {
            assert!(
                state.index >= acked,
                "linearizable read: node {node} answered read {:?} at index {} but index {acked} \
                 was acknowledged before the read was issued",
                state.context,
                state.index
            );
        }
        self.reads_served += 1;
    }

    /// The role of `node` in `term` as observed after a step; leaders are checked.
    pub fn is_new_leader(&mut self, node: NodeId, role: Role, term: Term) -> bool {
        role == Role::Leader && self.observe_leader(node, term)
    }
}

fn data_hash(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h
}
