//! The in-memory index of the whole store: a sorted tree of keys to their [`KeyIndex`].
//!
//! Reads ask it which revision of each key in a range was visible at revision R, then fetch
//! those revisions' values from the backend; writes record their new revisions here.
//! Compaction prunes it and reports which old revisions must stay on disk. It holds no
//! values and does no IO; [`super::store::Store`] owns it and rebuilds it on open.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

use super::key_index::{KeyIndex, Visible};
use super::revision::Revision;

/// The keys a request names, decoded from etcd's `key` + `range_end` convention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRange {
    /// `range_end` empty: exactly this key.
    Single(Vec<u8>),
    /// `range_end == "\0"`: every key >= the start.
    From(Vec<u8>),
    /// `[start, end)`.
    Between(Vec<u8>, Vec<u8>),
}

impl KeyRange {
    /// Decode etcd's `(key, range_end)`: empty end = one key, `"\0"` = from `key` on,
    /// otherwise half-open. (Key `"\0"` with end `"\0"` is every key.)
    pub fn new(key: &[u8], range_end: &[u8]) -> KeyRange {
        match range_end {
            [] => KeyRange::Single(key.to_vec()),
            [0] => KeyRange::From(key.to_vec()),
            end => KeyRange::Between(key.to_vec(), end.to_vec()),
        }
    }

    /// True if `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeyRange::Single(k) => k.as_slice() == key,
            KeyRange::From(start) => key >= start.as_slice(),
            KeyRange::Between(start, end) => key >= start.as_slice() && key < end.as_slice(),
        }
    }
}

/// Sorted keys -> their generations.
#[derive(Clone, Debug, Default)]
pub struct Index {
    tree: BTreeMap<Vec<u8>, KeyIndex>,
}

impl Index {
    /// The key indexes in `range`, key-ascending.
    fn iter_range<'a>(
        &'a self,
        range: &'a KeyRange,
    ) -> Box<dyn Iterator<Item = (&'a Vec<u8>, &'a KeyIndex)> + 'a> {
        match range {
            KeyRange::Single(k) => Box::new(self.tree.get_key_value(k).into_iter()),
            KeyRange::From(s) => Box::new(
                self.tree
                    .range::<[u8], _>((Bound::Included(s.as_slice()), Bound::Unbounded)),
            ),
            KeyRange::Between(s, e) if s >= e => Box::new(std::iter::empty()),
            KeyRange::Between(s, e) => {
                Box::new(self.tree.range::<[u8], _>((
                    Bound::Included(s.as_slice()),
                    Bound::Excluded(e.as_slice()),
                )))
            }
        }
    }

    /// What `key` looked like at main revision `at`.
    pub fn get(&self, key: &[u8], at: i64) -> Option<Visible> {
        self.tree.get(key)?.get(at)
    }

    /// The keys in `range` visible at `at`, key-ascending, at most `limit` of them
    /// (0 = all), and the number of visible keys in the whole range.
    pub fn range(
        &self,
        range: &KeyRange,
        at: i64,
        limit: usize,
    ) -> (Vec<(Vec<u8>, Visible)>, usize) {
        let mut found = Vec::new();
        let mut count = 0;
        for (key, ki) in self.iter_range(range) {
            if let Some(v) = ki.get(at) {
                count += 1;
                if limit == 0 || found.len() < limit {
                    found.push((key.clone(), v));
                }
            }
        }
        (found, count)
    }

    /// Record a put of `key` at `rev`.
    pub fn put(&mut self, key: &[u8], rev: Revision) {
        match self.tree.get_mut(key) {
            Some(ki) => ki.put(rev),
            None => {
                let mut ki = KeyIndex::default();
                ki.put(rev);
                self.tree.insert(key.to_vec(), ki);
            }
        }
    }

    /// Record a delete of the live `key` at `rev`.
    pub fn tombstone(&mut self, key: &[u8], rev: Revision) {
        let ki = self.tree.get_mut(key);
        ki.unwrap_or_else(|| panic!("tombstone of unknown key {key:?}"))
            .tombstone(rev);
    }

    /// Rebuild step: record the kv stored at `rev` (see [`KeyIndex::restore`]).
    pub fn restore_put(&mut self, key: &[u8], created: Revision, rev: Revision, version: i64) {
        let ki = self.tree.entry(key.to_vec()).or_default();
        if ki.is_live() {
            ki.put(rev);
        } else {
            ki.restore(created, rev, version);
        }
    }

    /// Rebuild step: record a tombstone; returns false (and records nothing) if the key is
    /// not live, which happens only when a crash interrupted a physical compaction.
    pub fn restore_tombstone(&mut self, key: &[u8], rev: Revision) -> bool {
        match self.tree.get_mut(key) {
            Some(ki) if ki.is_live() => {
                ki.tombstone(rev);
                true
            }
            _ => false,
        }
    }

    /// Compact every key at `at` (see [`KeyIndex::compact`]), dropping keys left without
    /// revisions. Returns the revisions <= `at` that must stay in the backend.
    pub fn compact(&mut self, at: i64) -> HashSet<Revision> {
        let mut keep = HashSet::new();
        self.tree.retain(|_, ki| {
            ki.compact(at, &mut keep);
            !ki.is_empty()
        });
        keep
    }

    /// The revisions a compaction at `at` would keep, without compacting.
    pub fn keep(&self, at: i64) -> HashSet<Revision> {
        let mut keep = HashSet::new();
        for ki in self.tree.values() {
            ki.keep(at, &mut keep);
        }
        keep
    }

    /// Number of keys with any indexed revision (live or not).
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// True if no key has any revision indexed.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Check every key index, and that none is empty.
    pub fn check_invariants(&self) {
        for (key, ki) in &self.tree {
            assert!(
                !ki.is_empty(),
                "empty key index left in the tree for {key:?}"
            );
            ki.check_invariants();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_etcds_conventions() {
        let mut idx = Index::default();
        for (i, k) in [&b"a"[..], b"ab", b"b", b"c"].iter().enumerate() {
            idx.put(k, Revision::new(i as i64 + 2, 0));
        }
        let keys = |r: KeyRange, limit| {
            let (found, count) = idx.range(&r, 10, limit);
            (found.into_iter().map(|(k, _)| k).collect::<Vec<_>>(), count)
        };
        assert_eq!(keys(KeyRange::new(b"a", b""), 0), (vec![b"a".to_vec()], 1));
        assert_eq!(keys(KeyRange::new(b"a", b"b"), 0).1, 2);
        assert_eq!(keys(KeyRange::new(b"ab", b"\0"), 0).1, 3);
        assert_eq!(
            keys(KeyRange::new(b"\0", b"\0"), 2),
            (vec![b"a".to_vec(), b"ab".to_vec()], 4)
        );
        assert_eq!(
            keys(KeyRange::new(b"c", b"a"), 0).1,
            0,
            "inverted range is empty"
        );
        let (_, at_3) = idx.range(&KeyRange::new(b"\0", b"\0"), 3, 0);
        assert_eq!(at_3, 2, "only keys created by revision 3");
    }

    #[test]
    fn compact_drops_dead_keys() {
        let mut idx = Index::default();
        idx.put(b"a", Revision::new(2, 0));
        idx.tombstone(b"a", Revision::new(3, 0));
        idx.put(b"b", Revision::new(4, 0));
        let keep = idx.compact(3);
        assert!(keep.is_empty());
        assert_eq!(idx.len(), 1);
        let keep = idx.compact(4);
        assert_eq!(keep, HashSet::from([Revision::new(4, 0)]));
        idx.check_invariants();
    }
}
