//! The history of one key: its generations of revisions, answering "which revision of this
//! key was visible at revision R" and deciding what compaction keeps.
//!
//! Only [`super::index::Index`] uses this type; it does no IO and holds no values (the
//! values live in the backend under the revisions listed here).
//!
//! # Generations, by example
//!
//! A generation is one life of the key: from the put that creates it to the delete (the
//! tombstone) that ends it. A key's index is a list of generations; the last one is the
//! current life and is empty while the key is deleted.
//!
//! ```text
//! put(foo) at 1.0      put(foo) at 2.0      delete(foo) at 3.0
//! put(foo) at 4.0      put(foo) at 5.0
//!
//! generations:
//!   {created 1.0, version 3, revs [1.0, 2.0, 3.0(tombstone)]}
//!   {created 4.0, version 2, revs [4.0, 5.0]}              <- current
//! ```
//!
//! `get(2)` finds the generation alive at 2 (the first) and the newest revision <= 2 in
//! it: 2.0, version 2. `get(3)` lands on the first generation's tombstone: the key was
//! deleted, nothing is visible. `get(5)` answers 5.0, version 2.
//!
//! Compacting at 4 drops the first generation (it ended at 3 <= 4) and, in the second,
//! every revision older than the newest one <= 4, which is kept so that a read at 4 still
//! sees it: `[{created 4.0, version 2, revs [4.0, 5.0]}]`. Had the key been deleted at 3
//! and never recreated, compacting at 3 or later would leave no generation, and the index
//! would drop the key entirely.

use std::collections::HashSet;

use super::revision::Revision;

/// One life of a key: the revisions from its creation to its tombstone (inclusive).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Generation {
    /// Number of changes in this generation, counting ones compacted away; the version of
    /// the newest revision in `revs`.
    pub version: i64,
    /// The revision that created this life of the key.
    pub created: Revision,
    /// The revisions still indexed, ascending. In a closed generation the last one is the
    /// tombstone.
    pub revs: Vec<Revision>,
}

/// What a key looked like at some revision: enough to fetch and fill its [`super::kv::KeyValue`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Visible {
    /// The revision whose value is visible (its mod revision).
    pub modified: Revision,
    /// The revision that created the key's generation.
    pub created: Revision,
    /// The key's version at `modified`.
    pub version: i64,
}

/// The generations of one key. See the module doc for a worked example.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyIndex {
    /// Newest revision of any change (put or tombstone) to the key.
    pub modified: Revision,
    /// Oldest first; never empty; only the last may be open (without tombstone).
    pub generations: Vec<Generation>,
}

impl Default for KeyIndex {
    fn default() -> Self {
        KeyIndex {
            modified: Revision::default(),
            generations: vec![Generation::default()],
        }
    }
}

impl KeyIndex {
    /// Record a put at `rev`, opening a new life if the key is deleted.
    pub fn put(&mut self, rev: Revision) {
        assert!(
            rev > self.modified,
            "put at {rev:?} not after {:?}",
            self.modified
        );
        let g = self.generations.last_mut().expect("never empty");
        if g.revs.is_empty() {
            g.created = rev;
        }
        g.revs.push(rev);
        g.version += 1;
        self.modified = rev;
    }

    /// Record the first revision seen for this key while rebuilding from the backend, where
    /// older revisions may already be compacted away: `created` and `version` come from the
    /// stored kv.
    pub fn restore(&mut self, created: Revision, modified: Revision, version: i64) {
        let g = self.generations.last_mut().expect("never empty");
        assert!(
            g.revs.is_empty(),
            "restore into a live generation at {modified:?}"
        );
        *g = Generation {
            version,
            created,
            revs: vec![modified],
        };
        self.modified = modified;
    }

    /// Record a delete at `rev`: the tombstone closes the current life.
    pub fn tombstone(&mut self, rev: Revision) {
        let live = !self
            .generations
            .last()
            .expect("never empty")
            .revs
            .is_empty();
        assert!(live, "tombstone at {rev:?} of a deleted key");
        self.put(rev);
        self.generations.push(Generation::default());
    }

    /// True when the key has no revisions at all (fully compacted away).
    pub fn is_empty(&self) -> bool {
        self.generations.len() == 1 && self.generations[0].revs.is_empty()
    }

    /// True when the key currently exists (its last generation is open and non-empty).
    pub fn is_live(&self) -> bool {
        !self
            .generations
            .last()
            .expect("never empty")
            .revs
            .is_empty()
    }

    /// The version of the key visible at main revision `at`, if it existed then.
    pub fn get(&self, at: i64) -> Option<Visible> {
        let g = &self.generations[self.find_generation(at)?];
        let n = g.revs.iter().rposition(|r| r.main <= at)?;
        let version = g.version - (g.revs.len() - n - 1) as i64;
        Some(Visible {
            modified: g.revs[n],
            created: g.created,
            version,
        })
    }

    /// The index of the generation alive at `at`, None if the key was deleted or not yet
    /// created then.
    fn find_generation(&self, at: i64) -> Option<usize> {
        let last = self.generations.len() - 1;
        for (i, g) in self.generations.iter().enumerate().rev() {
            let Some(first) = g.revs.first() else {
                continue;
            };
            if i != last && g.revs.last().expect("non-empty").main <= at {
                return None; // deleted at or before `at`
            }
            if first.main <= at {
                return Some(i);
            }
        }
        None
    }

    /// The generation compaction at `at` stops at, and the index in it of the newest
    /// revision <= `at` (None if the generation starts after `at`). Generations before it
    /// ended at or before `at` and disappear.
    fn compaction_point(&self, at: i64) -> (usize, Option<usize>) {
        let last = self.generations.len() - 1;
        let mut gi = 0;
        while gi < last && self.generations[gi].revs.last().expect("closed").main <= at {
            gi += 1;
        }
        let n = self.generations[gi].revs.iter().rposition(|r| r.main <= at);
        (gi, n)
    }

    /// Compact at `at`: drop generations that ended at or before `at` and every revision
    /// older than the newest one <= `at`. The kept revision (the one a read at `at` sees)
    /// goes into `keep`. Afterwards [`KeyIndex::is_empty`] tells if the key is gone.
    pub fn compact(&mut self, at: i64, keep: &mut HashSet<Revision>) {
        let (gi, n) = self.compaction_point(at);
        self.generations.drain(..gi);
        if let Some(n) = n {
            let g = &mut self.generations[0];
            g.revs.drain(..n);
            keep.insert(g.revs[0]);
        }
    }

    /// Add to `keep` the revision [`KeyIndex::compact`] would keep, without changing
    /// anything (used by hash_kv).
    pub fn keep(&self, at: i64, keep: &mut HashSet<Revision>) {
        let (gi, n) = self.compaction_point(at);
        if let Some(n) = n {
            keep.insert(self.generations[gi].revs[n]);
        }
    }

    /// Check the structure: revisions ascending across generations, closed generations
    /// non-empty, versions at least the number of indexed revisions.
    pub fn check_invariants(&self) {
        assert!(
            !self.generations.is_empty(),
            "key index without generations"
        );
        let last = self.generations.len() - 1;
        let mut prev = Revision::new(-1, 0);
        for (i, g) in self.generations.iter().enumerate() {
            assert!(
                i == last || !g.revs.is_empty(),
                "empty closed generation {i}: {self:?}"
            );
            assert!(
                g.version >= g.revs.len() as i64,
                "version below revs count: {self:?}"
            );
            for r in &g.revs {
                assert!(*r > prev, "revisions not ascending: {self:?}");
                prev = *r;
            }
        }
        if !self.is_empty() {
            assert_eq!(
                self.modified, prev,
                "modified is not the newest revision: {self:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    /// The module doc's example: 1, 2 put, 3 delete, 4, 5 put.
    fn example() -> KeyIndex {
        let mut ki = KeyIndex::default();
        ki.put(r(1));
        ki.put(r(2));
        ki.tombstone(r(3));
        ki.put(r(4));
        ki.put(r(5));
        ki.check_invariants();
        ki
    }

    #[test]
    fn get_sees_the_right_generation() {
        let ki = example();
        assert_eq!(ki.get(0), None);
        let v = ki.get(2).unwrap();
        assert_eq!((v.modified, v.created, v.version), (r(2), r(1), 2));
        assert_eq!(ki.get(3), None, "deleted at 3");
        let v = ki.get(4).unwrap();
        assert_eq!((v.modified, v.created, v.version), (r(4), r(4), 1));
        let v = ki.get(100).unwrap();
        assert_eq!((v.modified, v.version), (r(5), 2));
    }

    #[test]
    fn compact_keeps_the_newest_revision_at_or_below() {
        let mut keep = HashSet::new();
        let mut ki = example();
        ki.compact(1, &mut keep);
        assert_eq!(keep, HashSet::from([r(1)]));
        assert_eq!(ki.get(1).unwrap().modified, r(1));
        keep.clear();
        ki.compact(2, &mut keep);
        assert_eq!(keep, HashSet::from([r(2)]));
        assert_eq!(ki.generations[0].revs, vec![r(2), r(3)]);
        assert_eq!(ki.get(2).unwrap().version, 2, "version survives compaction");
        keep.clear();
        ki.compact(3, &mut keep);
        assert!(
            keep.is_empty(),
            "a tombstone at the compaction revision is not kept"
        );
        assert_eq!(ki.generations.len(), 1);
        assert_eq!(ki.generations[0].revs, vec![r(4), r(5)]);
        ki.check_invariants();
        keep.clear();
        ki.compact(4, &mut keep);
        assert_eq!(keep, HashSet::from([r(4)]));
        assert_eq!(ki.get(5).unwrap().version, 2);
    }

    #[test]
    fn keep_matches_compact() {
        for at in 0..7 {
            let mut via_keep = HashSet::new();
            example().keep(at, &mut via_keep);
            let mut via_compact = HashSet::new();
            example().compact(at, &mut via_compact);
            assert_eq!(via_keep, via_compact, "at {at}");
        }
    }

    #[test]
    fn deleted_key_compacts_to_empty() {
        let mut ki = KeyIndex::default();
        ki.put(r(1));
        ki.tombstone(r(2));
        let mut keep = HashSet::new();
        ki.compact(1, &mut keep);
        assert!(!ki.is_empty());
        ki.compact(2, &mut keep);
        assert!(ki.is_empty());
        assert!(!ki.is_live());
    }

    #[test]
    fn restore_then_continue() {
        let mut ki = KeyIndex::default();
        ki.restore(r(2), r(7), 4);
        ki.put(r(9));
        let v = ki.get(8).unwrap();
        assert_eq!((v.modified, v.created, v.version), (r(7), r(2), 4));
        assert_eq!(ki.get(9).unwrap().version, 5);
        assert_eq!(
            ki.get(6),
            None,
            "history before the restored revision is gone"
        );
        ki.check_invariants();
    }

    /// The naive model: replay the history up to `at`.
    fn model_get(history: &[(i64, bool)], at: i64) -> Option<(i64, i64, i64)> {
        let mut state: Option<(i64, i64, i64)> = None; // (modified, created, version)
        for &(rev, delete) in history.iter().filter(|(r, _)| *r <= at) {
            state = match (delete, state) {
                (true, _) => None,
                (false, Some((_, created, version))) => Some((rev, created, version + 1)),
                (false, None) => Some((rev, rev, 1)),
            };
        }
        state
    }

    proptest::proptest! {
        /// Random put/delete histories, compacted at a random revision: every read at or
        /// above the compaction revision matches the naive replay, and compaction keeps
        /// exactly the revision visible at the compaction revision.
        #[test]
        fn matches_naive_history(ops in proptest::collection::vec(proptest::bool::ANY, 1..30),
                                 compact_at in 0i64..40) {
            let mut ki = KeyIndex::default();
            let mut history = Vec::new();
            for (i, delete) in ops.into_iter().enumerate() {
                let rev = i as i64 + 2;
                if delete && ki.is_live() {
                    ki.tombstone(r(rev));
                    history.push((rev, true));
                } else if !delete {
                    ki.put(r(rev));
                    history.push((rev, false));
                }
            }
            ki.check_invariants();
            let mut keep = HashSet::new();
            ki.compact(compact_at, &mut keep);
            let expected_keep: HashSet<_> =
                model_get(&history, compact_at).map(|(m, _, _)| r(m)).into_iter().collect();
            proptest::prop_assert_eq!(&keep, &expected_keep);
            if !ki.is_empty() {
                ki.check_invariants();
            }
            for at in compact_at..45 {
                let got = ki.get(at).map(|v| (v.modified.main, v.created.main, v.version));
                proptest::prop_assert_eq!(got, model_get(&history, at), "at {}", at);
            }
        }
    }
}
