//! The catch-up half of the watchable store: moving watchers between groups, delivering
//! with victim fallback, and [`WatchHub::sync_step`] (victim retries, unsynced watchers
//! replaying history from [`Store::events_in`] in bounded batches, compaction cancels).
//!
//! `sync_step` reads the store and must run with the store locked by the caller (the
//! server's watch sync thread); it never blocks on a client.

use std::sync::Condvar;

use super::backend::Backend;
use super::error::MvccError;
use super::store::Store;
use super::watch::{Inner, SinkError, WatchBatch, WatchHub, WatcherId};

/// Events read from history per unsynced watcher per step (a revision is never split).
pub const SYNC_EVENTS_MAX: usize = 1000;

/// Unsynced watchers served per step, so one step holds the store lock briefly.
pub const SYNC_WATCHERS_MAX: usize = 256;

impl Inner {
    pub(super) fn add_synced(&mut self, id: WatcherId) {
        let w = &self.watchers[&id];
        if w.spec.range_end.is_empty() {
            let key = w.spec.key.clone();
            self.synced_keys.entry(key).or_default().insert(id);
        } else {
            self.synced_ranges.insert(id);
        }
    }

    fn remove_synced(&mut self, id: WatcherId) {
        let Some(w) = self.watchers.get(&id) else {
            return;
        };
        if let Some(set) = self.synced_keys.get_mut(&w.spec.key) {
            set.remove(&id);
            if set.is_empty() {
                self.synced_keys.remove(&w.spec.key);
            }
        }
        self.synced_ranges.remove(&id);
    }

    pub(super) fn remove(&mut self, id: WatcherId) -> bool {
        self.remove_synced(id);
        self.unsynced.remove(&id);
        self.victims.remove(&id);
        self.watchers.remove(&id).is_some()
    }

    pub(super) fn is_synced(&self, id: WatcherId) -> bool {
        self.watchers.contains_key(&id)
            && !self.unsynced.contains(&id)
            && !self.victims.contains(&id)
    }

    /// Offers `batch` to watcher `id`, which afterwards needs `next` onwards. A full sink
    /// parks it as a victim holding the batch; a closed one drops it; a compaction batch
    /// ends it.
    pub(super) fn deliver(&mut self, id: WatcherId, batch: WatchBatch, next: i64, work: &Condvar) {
        let compacted = batch.compact_revision != 0;
        let w = self
            .watchers
            .get_mut(&id)
            .expect("delivering to a known watcher");
        w.min_revision = next;
        match w.sink.try_send(batch) {
            Ok(()) if compacted => {
                self.remove(id);
            }
            Ok(()) => {}
            Err(SinkError::Full(batch)) => {
                w.pending = Some(batch);
                self.remove_synced(id);
                self.unsynced.remove(&id);
                self.victims.insert(id);
                work.notify_all();
            }
            Err(SinkError::Closed) => {
                self.remove(id);
            }
        }
    }

    /// Retries every victim once; a delivered one goes back to synced or unsynced.
    fn retry_victims(&mut self, work: &Condvar) {
        let victims: Vec<WatcherId> = self.victims.iter().copied().collect();
        for id in victims {
            let w = self
                .watchers
                .get_mut(&id)
                .expect("victims are known watchers");
            let batch = w.pending.take().expect("a victim holds a batch");
            let next = w.min_revision;
            self.victims.remove(&id);
            self.deliver(id, batch, next, work);
            if !self.watchers.contains_key(&id) || self.victims.contains(&id) {
                continue;
            }
            if next > self.current_revision {
                self.add_synced(id);
            } else {
                self.unsynced.insert(id);
            }
        }
    }

    /// (A synced watcher's `min_revision` may lag the hub: it only moves when events are
    /// delivered, and every commit after the hub's revision reaches it anyway.)
    pub(super) fn check_invariants(&self) {
        for (id, w) in &self.watchers {
            let synced = self.synced_ranges.contains(id)
                || self
                    .synced_keys
                    .get(&w.spec.key)
                    .is_some_and(|s| s.contains(id));
            let groups = [
                synced,
                self.unsynced.contains(id),
                self.victims.contains(id),
            ];
            assert_eq!(
                groups.iter().filter(|g| **g).count(),
                1,
                "watcher {id} is in groups {groups:?}"
            );
            assert_eq!(
                self.victims.contains(id),
                w.pending.is_some(),
                "watcher {id}"
            );
        }
        let known = self
            .unsynced
            .iter()
            .chain(&self.victims)
            .chain(&self.synced_ranges);
        assert!(known.into_iter().all(|id| self.watchers.contains_key(id)));
    }
}

impl WatchHub {
    /// One round of catch-up work; the caller holds the store lock (see the module docs).
    /// Also notices a store that moved on without commits (an installed snapshot) and
    /// sends every synced watcher back to catch up from history.
    pub fn sync_step<B: Backend>(&self, store: &Store<B>) {
        let mut inner = self.lock();
        let store_revision = store.current_revision();
        if store_revision > inner.current_revision {
            let synced: Vec<WatcherId> = inner
                .watchers
                .keys()
                .copied()
                .filter(|id| inner.is_synced(*id))
                .collect();
            for id in synced {
                inner.remove_synced(id);
                inner.unsynced.insert(id);
            }
            inner.current_revision = store_revision;
        }
        inner.retry_victims(&self.work);
        let ids: Vec<WatcherId> = inner
            .unsynced
            .iter()
            .take(SYNC_WATCHERS_MAX)
            .copied()
            .collect();
        for id in ids {
            sync_one(&mut inner, id, store, &self.work);
        }
    }
}

/// Replays one bounded batch of history to unsynced watcher `id`.
fn sync_one<B: Backend>(inner: &mut Inner, id: WatcherId, store: &Store<B>, work: &Condvar) {
    let current = inner.current_revision;
    let w = &inner.watchers[&id];
    let (key, end, from) = (w.spec.key.clone(), w.spec.range_end.clone(), w.min_revision);
    let tag = Some(w.spec.tag);
    let read = store.events_in(&key, &end, from, current, w.spec.prev_kv, SYNC_EVENTS_MAX);
    inner.unsynced.remove(&id);
    let events = match read {
        Ok(events) => events,
        Err(MvccError::Compacted) => {
            let batch = WatchBatch {
                tag,
                events: Vec::new(),
                revision: current,
                compact_revision: store.compact_revision(),
            };
            inner.deliver(id, batch, current + 1, work);
            return;
        }
        Err(e) => {
            tracing::warn!(watcher = id, error = %e, "watch catch-up read failed; retrying");
            inner.unsynced.insert(id);
            return;
        }
    };
    let last = events.last().map_or(current, |e| e.kv.mod_revision);
    let done = events.len() < SYNC_EVENTS_MAX || last >= current;
    let next = if done { current + 1 } else { last + 1 };
    let w = &inner.watchers[&id];
    let wanted: Vec<_> = events
        .iter()
        .filter(|e| w.wants(e))
        .map(|e| w.shape(e))
        .collect();
    if !wanted.is_empty() {
        let batch = WatchBatch {
            tag,
            events: wanted,
            revision: current,
            compact_revision: 0,
        };
        inner.deliver(id, batch, next, work);
        if !inner.watchers.contains_key(&id) || inner.victims.contains(&id) {
            return;
        }
    } else {
        inner.watchers.get_mut(&id).expect("known").min_revision = next;
    }
    if done {
        inner.add_synced(id);
    } else {
        inner.unsynced.insert(id);
    }
}
