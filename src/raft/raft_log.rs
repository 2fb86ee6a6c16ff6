//! The in-memory Raft log: etcd's `MemoryStorage` and unstable log merged into one.
//!
//! `RaftLog` holds the entries after the last compaction point plus the marks that say how
//! far each has got:
//!
//! ```text
//!   snapshot_index < first_index ...... persisted ...... last_index
//!                    applied <= committed <= last_index
//! ```
//!
//! - `snapshot_index`/`snapshot_term`: the compaction point; entries up to it are gone.
//! - `persisted`: entries up to here are on the caller's stable storage. Entries after it
//!   are handed out in `Ready.entries`; `in_progress` marks those already handed out.
//! - `committed`: known committed (paper §5.3). `applying`: committed entries handed out in
//!   `Ready.committed_entries`; `applied` becomes `applying` at `advance`.
//!
//! Worked example: a follower holds 1@t1, 2@t1, 3@t1, all persisted, and receives an
//! Append with `index = 1, log_term = 1` and entries 2@t1, 3@t2. Entry 2 is already there
//! and is kept; entry 3 has term 1, conflicts, and is replaced by 3@t2: `persisted` drops to
//! 2 and the next `Ready.entries` is `[3@t2]` (storage truncates from index 3).
//!
//! The log never decides anything: the state machine in `node.rs` tells it what to append,
//! commit and compact, and it asserts that it is told sensible things.

use super::{Entry, Index, Snapshot, Term};

/// The log and its progress marks. See the module docs.
#[derive(Debug)]
pub(crate) struct RaftLog {
    snapshot_index: Index,
    snapshot_term: Term,
    /// Entries `snapshot_index + 1 ..= last_index`, contiguous.
    entries: Vec<Entry>,
    pub(crate) committed: Index,
    pub(crate) applied: Index,
    /// Highest index handed out in `Ready.committed_entries` (>= applied).
    pub(crate) applying: Index,
    pub(crate) persisted: Index,
    /// Highest index handed out in `Ready.entries` (>= persisted).
    pub(crate) in_progress: Index,
    /// A snapshot received from the leader, to hand out in the next `Ready`.
    pub(crate) pending_snapshot: Option<Snapshot>,
    /// Set once `pending_snapshot` was handed out, until `advance`.
    pub(crate) snapshot_in_progress: Option<Index>,
}

impl RaftLog {
    /// A log restored from storage: everything given is persisted.
    pub(crate) fn new(
        snapshot_index: Index,
        snapshot_term: Term,
        entries: Vec<Entry>,
        committed: Index,
        applied: Index,
    ) -> RaftLog {
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(
                e.index.0,
                snapshot_index.0 + 1 + i as u64,
                "recovered entries not contiguous"
            );
        }
        let last = Index(snapshot_index.0 + entries.len() as u64);
        let log = RaftLog {
            snapshot_index,
            snapshot_term,
            entries,
            // The application applied only committed entries, so commit is at least applied.
            committed: committed.max(applied).max(snapshot_index).min(last),
            applied: applied.max(snapshot_index),
            applying: applied.max(snapshot_index),
            persisted: last,
            in_progress: last,
            pending_snapshot: None,
            snapshot_in_progress: None,
        };
        log.check_invariants();
        log
    }

    pub(crate) fn first_index(&self) -> Index {
        self.snapshot_index.next()
    }

    pub(crate) fn last_index(&self) -> Index {
        Index(self.snapshot_index.0 + self.entries.len() as u64)
    }

    pub(crate) fn snapshot_index(&self) -> Index {
        self.snapshot_index
    }

    pub(crate) fn last_term(&self) -> Term {
        self.term(self.last_index())
            .expect("last entry always has a term")
    }

    /// The term of the entry at `index`, or `None` if compacted away or not yet written.
    pub(crate) fn term(&self, index: Index) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        if index < self.snapshot_index || index > self.last_index() {
            return None;
        }
        Some(self.entries[self.offset(index)].term)
    }

    pub(crate) fn match_term(&self, index: Index, term: Term) -> bool {
        self.term(index) == Some(term)
    }

    /// Whether a log ending at (`index`, `term`) is at least as up to date as ours (§5.4.1).
    pub(crate) fn is_up_to_date(&self, index: Index, term: Term) -> bool {
        term > self.last_term() || (term == self.last_term() && index >= self.last_index())
    }

    /// The highest index at or below `index` whose term is at most `term`, with that term;
    /// `(i, Term(0))` if the term at `i` is unknown (compacted). Both sides of a rejected
    /// Append use it to skip a whole conflicting term at once instead of one entry at a time.
    pub(crate) fn find_conflict_by_term(&self, index: Index, term: Term) -> (Index, Term) {
        let mut i = index.min(self.last_index());
        while i.0 > 0 {
            match self.term(i) {
                None => return (i, Term(0)),
                Some(t) if t <= term => return (i, t),
                Some(_) => i = i.prev(),
            }
        }
        (Index(0), Term(0))
    }

    fn offset(&self, index: Index) -> usize {
        (index.0 - self.snapshot_index.0 - 1) as usize
    }

    /// Entries in `[lo, hi)`, at most `bytes_max` of them by `Entry::size_bytes` but always
    /// at least one if the range is not empty. The range must be inside the log.
    pub(crate) fn entries(&self, lo: Index, hi: Index, bytes_max: u64) -> Vec<Entry> {
        assert!(
            lo > self.snapshot_index,
            "entries({lo}..) below first index {}",
            self.first_index()
        );
        assert!(
            hi <= self.last_index().next(),
            "entries(..{hi}) past last {}",
            self.last_index()
        );
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for e in &self.entries[self.offset(lo)..self.offset(lo) + (hi.0 - lo.0) as usize] {
            bytes += e.size_bytes();
            if !out.is_empty() && bytes > bytes_max {
                break;
            }
            out.push(e.clone());
        }
        out
    }

    /// Appends the leader's entries (already known to follow a matching entry), skipping
    /// those already present and truncating at the first conflicting one (§5.3).
    pub(crate) fn append_from_leader(&mut self, entries: &[Entry]) {
        let conflict = entries.iter().find(|e| !self.match_term(e.index, e.term));
        let Some(first_new) = conflict else { return };
        let start = entries
            .iter()
            .position(|e| e.index == first_new.index)
            .unwrap();
        assert!(
            first_new.index > self.committed,
            "conflict at {} would truncate committed entries (commit {})",
            first_new.index,
            self.committed
        );
        self.truncate_and_append(&entries[start..]);
    }

    /// Appends entries that start at most one past the last index, truncating whatever
    /// follows their first index.
    pub(crate) fn truncate_and_append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        assert!(
            first.index > self.snapshot_index && first.index <= self.last_index().next(),
            "append at {} outside ({}, {}]",
            first.index,
            self.snapshot_index,
            self.last_index().next()
        );
        let keep = self.offset(first.index);
        self.entries.truncate(keep);
        let before = first.index.prev();
        self.persisted = self.persisted.min(before);
        self.in_progress = self.in_progress.min(before);
        self.entries.extend_from_slice(entries);
    }

    pub(crate) fn commit_to(&mut self, index: Index) -> bool {
        if index <= self.committed {
            return false;
        }
        assert!(
            index <= self.last_index(),
            "commit {index} past last index {}",
            self.last_index()
        );
        self.committed = index;
        true
    }

    /// Replaces the whole log by a snapshot received from the leader.
    pub(crate) fn restore(&mut self, snapshot: Snapshot) {
        self.snapshot_index = snapshot.metadata.index;
        self.snapshot_term = snapshot.metadata.term;
        self.entries.clear();
        self.committed = snapshot.metadata.index;
        self.persisted = self.persisted.min(snapshot.metadata.index);
        self.in_progress = self.in_progress.min(snapshot.metadata.index);
        self.pending_snapshot = Some(snapshot);
    }

    /// Drops entries up to `index`, which the application has applied and snapshotted.
    pub(crate) fn compact(&mut self, index: Index) {
        if index <= self.snapshot_index {
            return;
        }
        assert!(
            index <= self.applied,
            "compact to {index} past applied {}",
            self.applied
        );
        let term = self.term(index).expect("applied entry in log");
        let drop = self.offset(index) + 1;
        self.entries.drain(..drop);
        self.snapshot_index = index;
        self.snapshot_term = term;
    }

    /// Entries not yet handed out for persisting.
    pub(crate) fn unpersisted_entries(&self) -> &[Entry] {
        let from = self.in_progress.max(self.snapshot_index);
        &self.entries[(from.0 - self.snapshot_index.0) as usize..]
    }

    /// Committed entries not yet handed out for applying.
    pub(crate) fn next_committed_entries(&self) -> Vec<Entry> {
        let from = self.applying.max(self.snapshot_index).next();
        if self.committed < from {
            return Vec::new();
        }
        self.entries(from, self.committed.next(), u64::MAX)
    }

    pub(crate) fn check_invariants(&self) {
        let last = self.last_index();
        assert!(
            self.applied <= self.applying,
            "applied {} > applying {}",
            self.applied,
            self.applying
        );
        assert!(
            self.applying <= self.committed,
            "applying {} > commit {}",
            self.applying,
            self.committed
        );
        assert!(
            self.committed <= last,
            "commit {} > last {last}",
            self.committed
        );
        assert!(
            self.persisted <= self.in_progress,
            "persisted > in progress"
        );
        assert!(
            self.in_progress <= last,
            "in progress {} > last {last}",
            self.in_progress
        );
        if self.pending_snapshot.is_none() && self.snapshot_in_progress.is_none() {
            assert!(
                self.snapshot_index <= self.applied,
                "snapshot {} > applied {} with no snapshot being installed",
                self.snapshot_index,
                self.applied
            );
            assert!(
                self.snapshot_index <= self.persisted,
                "snapshot > persisted"
            );
        }
        for (i, e) in self.entries.iter().enumerate() {
            assert_eq!(
                e.index.0,
                self.snapshot_index.0 + 1 + i as u64,
                "log not contiguous"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::raft::EntryKind;

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            term: Term(term),
            index: Index(index),
            kind: EntryKind::Normal,
            data: Bytes::new(),
        }
    }

    fn log_with_terms(terms: &[u64]) -> RaftLog {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(i, &t)| entry(t, i as u64 + 1))
            .collect();
        RaftLog::new(Index(0), Term(0), entries, Index(0), Index(0))
    }

    #[test]
    fn find_conflict_by_term_returns_last_index_with_term_at_most_given() {
        let log = log_with_terms(&[1, 1, 1, 4, 4, 5, 5, 6, 6, 6]);
        assert_eq!(
            log.find_conflict_by_term(Index(10), Term(3)),
            (Index(3), Term(1))
        );
        assert_eq!(
            log.find_conflict_by_term(Index(10), Term(5)),
            (Index(7), Term(5))
        );
        assert_eq!(
            log.find_conflict_by_term(Index(10), Term(6)),
            (Index(10), Term(6))
        );
        assert_eq!(
            log.find_conflict_by_term(Index(20), Term(6)),
            (Index(10), Term(6))
        );
        assert_eq!(
            log.find_conflict_by_term(Index(10), Term(0)),
            (Index(0), Term(0))
        );
    }

    #[test]
    fn truncation_pulls_persisted_mark_back() {
        let mut log = log_with_terms(&[1, 1, 1]);
        assert_eq!(log.persisted, Index(3));
        log.append_from_leader(&[entry(1, 2), entry(2, 3), entry(2, 4)]);
        assert_eq!(
            log.persisted,
            Index(2),
            "entry 3 was replaced, so it is not persisted"
        );
        assert_eq!(log.unpersisted_entries(), &[entry(2, 3), entry(2, 4)]);
        log.check_invariants();
    }

    #[test]
    fn append_from_leader_ignores_entries_already_present() {
        let mut log = log_with_terms(&[1, 1, 2]);
        log.append_from_leader(&[entry(1, 1), entry(1, 2)]);
        assert_eq!(
            log.last_index(),
            Index(3),
            "a stale, shorter Append must not truncate"
        );
        assert_eq!(log.persisted, Index(3));
    }

    #[test]
    fn compaction_keeps_term_of_compaction_point() {
        let mut log = log_with_terms(&[1, 2, 3, 3]);
        log.commit_to(Index(3));
        log.applying = Index(3);
        log.applied = Index(3);
        log.compact(Index(2));
        assert_eq!(
            (log.first_index(), log.term(Index(2)), log.term(Index(1))),
            (Index(3), Some(Term(2)), None)
        );
        assert_eq!(
            log.entries(Index(3), Index(5), u64::MAX),
            vec![entry(3, 3), entry(3, 4)]
        );
        log.check_invariants();
    }

    #[test]
    fn entries_respects_bytes_max_but_returns_at_least_one() {
        let log = log_with_terms(&[1, 1, 1]);
        assert_eq!(log.entries(Index(1), Index(4), 0).len(), 1);
        assert_eq!(
            log.entries(Index(1), Index(4), 48).len(),
            2,
            "24 bytes each"
        );
        assert_eq!(log.entries(Index(1), Index(4), 47).len(), 1);
    }

    #[test]
    fn up_to_date_compares_last_term_then_length() {
        let log = log_with_terms(&[1, 2, 2]);
        assert!(log.is_up_to_date(Index(3), Term(2)));
        assert!(log.is_up_to_date(Index(1), Term(3)));
        assert!(!log.is_up_to_date(Index(2), Term(2)));
        assert!(!log.is_up_to_date(Index(9), Term(1)));
    }
}
