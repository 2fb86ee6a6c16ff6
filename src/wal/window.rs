//! The replay rules: how a sequence of entry records and snapshot markers becomes a log.
//!
//! Recovery replays every record through a `LogWindow<Entry>`; the writer keeps a
//! `LogWindow<Term>` updated by the same rules as it writes, so that `last_index()` always
//! says what a recovery at that moment would find. One implementation, two users: they cannot
//! drift apart. Pure logic, no IO.
//!
//! The rules, for a window holding contiguous indexes `first..=last`:
//! - entry at `i <= snapshot index`: ignored (the snapshot covers it);
//! - entry at `i` with `first <= i <= last + 1`: replaces `i..` (a conflicting suffix is cut);
//! - entry at `i < first`, or into an empty window: the window restarts at `i` (the records
//!   before it were released);
//! - entry at `i > last + 1`: a gap, which the caller reports as corruption;
//! - snapshot marker `(s, t)`: if the window holds `s` with term `t`, entries `..=s` go
//!   (local compaction keeps the rest of the log); if it holds `s` with another term, or
//!   ends before `s`, everything goes (an installed snapshot replaces the log, paper §7);
//!   a window starting after `s` is left alone.
//!
//! Worked example: entries 1..=5 (term 1); entry 4 (term 2) => 1..=4, 4 has term 2;
//! marker (2, 1) => 3..=4; marker (9, 3) => empty.

use std::collections::VecDeque;

use crate::raft::{Entry, Index, Term};

/// Something kept per index: its term is all the rules look at.
pub(crate) trait HasTerm {
    /// The term of the entry this stands for.
    fn term(&self) -> Term;
}

impl HasTerm for Entry {
    fn term(&self) -> Term {
        self.term
    }
}

impl HasTerm for Term {
    fn term(&self) -> Term {
        *self
    }
}

/// A contiguous run of log positions, `first..first + items.len()`.
#[derive(Clone, Debug)]
pub(crate) struct LogWindow<T> {
    first: Index,
    items: VecDeque<T>,
}

impl<T> Default for LogWindow<T> {
    fn default() -> LogWindow<T> {
        LogWindow {
            first: Index(0),
            items: VecDeque::new(),
        }
    }
}

impl<T: HasTerm> LogWindow<T> {
    /// The first index held, if any.
    pub(crate) fn first_index(&self) -> Option<Index> {
        (!self.items.is_empty()).then_some(self.first)
    }

    /// The last index held, if any.
    pub(crate) fn last_index(&self) -> Option<Index> {
        (!self.items.is_empty()).then(|| Index(self.first.0 + self.items.len() as u64 - 1))
    }

    /// The term at `index`, if held.
    pub(crate) fn term(&self, index: Index) -> Option<Term> {
        let offset = index.0.checked_sub(self.first.0)?;
        self.items.get(offset as usize).map(HasTerm::term)
    }

    /// Applies an entry record at `index`; `Err` names the gap it would leave.
    pub(crate) fn push(
        &mut self,
        index: Index,
        item: T,
        snapshot_index: Index,
    ) -> Result<(), String> {
        if index <= snapshot_index {
            return Ok(());
        }
        match self.last_index() {
            Some(last) if index > last.next() => {
                return Err(format!(
                    "entry {index} follows entry {last}: entries are missing"
                ));
            }
            Some(_) if index >= self.first => {
                self.items.truncate((index.0 - self.first.0) as usize);
            }
            _ => {
                self.items.clear();
                self.first = index;
            }
        }
        self.items.push_back(item);
        Ok(())
    }

    /// Applies a snapshot marker at `(index, term)`.
    pub(crate) fn apply_snapshot(&mut self, index: Index, term: Term) {
        let Some(last) = self.last_index() else {
            return;
        };
        if self.first > index {
            return;
        }
        if last >= index && self.term(index) == Some(term) {
            self.items.drain(..=(index.0 - self.first.0) as usize);
            self.first = index.next();
        } else {
            self.items.clear();
        }
    }

    /// The items held, oldest first.
    pub(crate) fn into_items(self) -> Vec<T> {
        self.items.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(terms: &[u64]) -> LogWindow<Term> {
        let mut window = LogWindow::default();
        for (i, term) in terms.iter().enumerate() {
            window
                .push(Index(i as u64 + 1), Term(*term), Index(0))
                .unwrap();
        }
        window
    }

    fn terms(window: &LogWindow<Term>) -> Vec<u64> {
        window.clone().into_items().iter().map(|t| t.0).collect()
    }

    #[test]
    fn worked_example_from_the_module_docs() {
        let mut w = window(&[1, 1, 1, 1, 1]);
        w.push(Index(4), Term(2), Index(0)).unwrap();
        assert_eq!(
            (w.first_index(), terms(&w)),
            (Some(Index(1)), vec![1, 1, 1, 2])
        );
        w.apply_snapshot(Index(2), Term(1));
        assert_eq!((w.first_index(), terms(&w)), (Some(Index(3)), vec![1, 2]));
        w.apply_snapshot(Index(9), Term(3));
        assert_eq!(w.last_index(), None);
    }

    #[test]
    fn a_gap_is_refused_and_a_lower_index_restarts() {
        let mut w = window(&[1, 1]);
        assert!(w.push(Index(4), Term(1), Index(0)).is_err());
        let mut w = LogWindow::default();
        w.push(Index(10), Term(2), Index(0)).unwrap();
        w.push(Index(7), Term(3), Index(0)).unwrap();
        assert_eq!((w.first_index(), terms(&w)), (Some(Index(7)), vec![3]));
    }

    #[test]
    fn snapshot_with_another_term_replaces_the_log() {
        let mut w = window(&[1, 1, 1]);
        w.apply_snapshot(Index(2), Term(5));
        assert_eq!(w.last_index(), None);
        let mut w = window(&[1, 1, 1]);
        w.push(Index(2), Term(1), Index(2)).unwrap();
        assert_eq!(
            terms(&w),
            vec![1, 1, 1],
            "entries at or below the snapshot are ignored"
        );
    }
}
