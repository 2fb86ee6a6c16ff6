//! The watchable store: etcd's watcher groups over a [`Store`] (see `watch_sync.rs` for the
//! catch-up half).
//!
//! A watcher is *synced* (it has every event up to the hub's current revision and is handed
//! each commit's events by [`WatchHub::notify`]), *unsynced* (it starts in the past and
//! catches up from history in bounded batches, [`WatchHub::sync_step`]) or a *victim* (its
//! sink was full: it holds one undelivered batch that `sync_step` retries). Delivery never
//! blocks: a sink only offers `try_send`, so the apply path never waits for a client.
//!
//! Consistency rule: the driver calls `notify` while it still holds the store lock of the
//! commit, and `sync_step` runs with the store locked, so a watcher moves from unsynced to
//! synced at a revision no commit can slip past.
//!
//! This file must not know of gRPC, tokio or Raft. Called by the server (notify, sync) and
//! by the API's watch streams (watch, cancel, progress).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::index::KeyRange;
use super::kv::{Event, EventType};

/// The hub's id of a watcher (unique across streams).
pub type WatcherId = u64;

/// What a watcher watches (the fields of etcd's `WatchCreateRequest` that the store needs).
#[derive(Clone, Debug, Default)]
pub struct WatchSpec {
    /// First key.
    pub key: Vec<u8>,
    /// Range end (etcd's conventions: empty = single key, `\0` = every key >= `key`).
    pub range_end: Vec<u8>,
    /// First revision to deliver; 0 = the next commit.
    pub start_revision: i64,
    /// Fill `prev_kv` in events.
    pub prev_kv: bool,
    /// Drop PUT events.
    pub no_put: bool,
    /// Drop DELETE events.
    pub no_delete: bool,
    /// The caller's own tag (the stream's watch id), echoed in every batch.
    pub tag: i64,
}

/// One delivery to a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchBatch {
    /// The watcher's tag; `None` for a stream-wide progress notification (watch id -1).
    pub tag: Option<i64>,
    /// Events, in revision order; empty for a progress notification.
    pub events: Vec<Event>,
    /// The store revision the batch is current to (the response header's revision).
    pub revision: i64,
    /// Non-zero: the watcher was canceled because history it needs is compacted.
    pub compact_revision: i64,
}

/// Why a sink refused a batch.
#[derive(Debug)]
pub enum SinkError {
    /// The stream is slow; the batch comes back to be retried.
    Full(WatchBatch),
    /// The stream is gone: drop its watchers.
    Closed,
}

/// Where a stream's batches go. Must never block.
pub trait WatchSink: Send + Sync {
    /// Offers `batch` to the stream.
    fn try_send(&self, batch: WatchBatch) -> Result<(), SinkError>;
}

/// One watcher.
pub(super) struct Watcher {
    pub(super) spec: WatchSpec,
    pub(super) range: KeyRange,
    /// The next revision this watcher needs.
    pub(super) min_revision: i64,
    pub(super) sink: Arc<dyn WatchSink>,
    /// A victim's undelivered batch.
    pub(super) pending: Option<WatchBatch>,
}

impl Watcher {
    /// Whether `e` passes this watcher's filters (range, revision, NOPUT/NODELETE).
    pub(super) fn wants(&self, e: &Event) -> bool {
        let filtered = match e.kind {
            EventType::Put => self.spec.no_put,
            EventType::Delete => self.spec.no_delete,
        };
        !filtered && e.kv.mod_revision >= self.min_revision && self.range.contains(&e.kv.key)
    }

    /// `e` as this watcher delivers it.
    pub(super) fn shape(&self, e: &Event) -> Event {
        let mut e = e.clone();
        if !self.spec.prev_kv {
            e.prev_kv = None;
        }
        e
    }
}

/// Watcher counts, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchCounts {
    /// Every watcher (`etcd_debugging_mvcc_watcher_total`).
    pub watchers: usize,
    /// Unsynced plus victims (`etcd_debugging_mvcc_slow_watcher_total`).
    pub slow: usize,
}

#[derive(Default)]
pub(super) struct Inner {
    pub(super) next_id: WatcherId,
    pub(super) watchers: HashMap<WatcherId, Watcher>,
    /// Synced single-key watchers by key.
    pub(super) synced_keys: HashMap<Vec<u8>, HashSet<WatcherId>>,
    /// Synced range watchers.
    pub(super) synced_ranges: HashSet<WatcherId>,
    pub(super) unsynced: BTreeSet<WatcherId>,
    pub(super) victims: BTreeSet<WatcherId>,
    /// The revision of the last commit the hub was told about.
    pub(super) current_revision: i64,
}

/// The watchable store's watcher registry. Share it behind an `Arc`.
pub struct WatchHub {
    pub(super) inner: Mutex<Inner>,
    /// Signalled when there is catch-up work (new unsynced watchers, victims).
    pub(super) work: Condvar,
}

impl WatchHub {
    /// A hub whose store is at `current_revision`.
    pub fn new(current_revision: i64) -> WatchHub {
        let inner = Inner {
            current_revision,
            ..Inner::default()
        };
        WatchHub {
            inner: Mutex::new(inner),
            work: Condvar::new(),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The revision of the last commit notified.
    pub fn current_revision(&self) -> i64 {
        self.lock().current_revision
    }

    /// Registers a watcher; returns its id and the hub's current revision (the `created`
    /// reply's header revision). A start at or below the current revision makes it unsynced.
    pub fn watch(&self, spec: WatchSpec, sink: Arc<dyn WatchSink>) -> (WatcherId, i64) {
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        let current = inner.current_revision;
        let min_revision = match spec.start_revision {
            r if r <= 0 => current + 1,
            r => r,
        };
        let w = Watcher {
            range: KeyRange::new(&spec.key, &spec.range_end),
            spec,
            min_revision,
            sink,
            pending: None,
        };
        inner.watchers.insert(id, w);
        if min_revision > current {
            inner.add_synced(id);
        } else {
            inner.unsynced.insert(id);
            self.work.notify_all();
        }
        (id, current)
    }

    /// Removes a watcher; false if it was not there (already canceled or compacted away).
    pub fn cancel(&self, id: WatcherId) -> bool {
        self.lock().remove(id)
    }

    /// Whether every watcher in `ids` is synced (the condition for answering a progress
    /// request); if so, offers a stream-wide progress notification at the current revision
    /// to `sink` and returns true.
    pub fn request_progress(&self, ids: &[WatcherId], sink: &dyn WatchSink) -> bool {
        let inner = self.lock();
        if !ids.iter().all(|id| inner.is_synced(*id)) {
            return false;
        }
        let batch = WatchBatch {
            tag: None,
            events: Vec::new(),
            revision: inner.current_revision,
            compact_revision: 0,
        };
        sink.try_send(batch).is_ok()
    }

    /// Offers an empty (progress) batch to each synced watcher of `ids`.
    pub fn progress_notify(&self, ids: &[WatcherId]) {
        let inner = self.lock();
        for id in ids {
            if !inner.is_synced(*id) {
                continue;
            }
            let w = &inner.watchers[id];
            let _ = w.sink.try_send(WatchBatch {
                tag: Some(w.spec.tag),
                events: Vec::new(),
                revision: inner.current_revision,
                compact_revision: 0,
            });
        }
    }

    /// Hands the events of one commit (in revision order) to the synced watchers; the
    /// store is now at `current_revision`. Called by the apply path with the store locked.
    /// Never blocks: a full sink makes its watcher a victim.
    pub fn notify(&self, events: &[Event], current_revision: i64) {
        let mut inner = self.lock();
        let mut per_watcher: HashMap<WatcherId, Vec<Event>> = HashMap::new();
        for e in events {
            let mut hit = |id: WatcherId, inner: &Inner| {
                let w = &inner.watchers[&id];
                if w.wants(e) {
                    per_watcher.entry(id).or_default().push(w.shape(e));
                }
            };
            if let Some(ids) = inner.synced_keys.get(&e.kv.key) {
                ids.iter().for_each(|id| hit(*id, &inner));
            }
            inner.synced_ranges.iter().for_each(|id| hit(*id, &inner));
        }
        inner.current_revision = inner.current_revision.max(current_revision);
        let mut ids: Vec<WatcherId> = per_watcher.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let events = per_watcher.remove(&id).expect("collected above");
            let batch = WatchBatch {
                tag: Some(inner.watchers[&id].spec.tag),
                events,
                revision: current_revision,
                compact_revision: 0,
            };
            inner.deliver(id, batch, current_revision + 1, &self.work);
        }
    }

    /// Waits up to `timeout` for catch-up work (the sync thread's idle wait).
    pub fn wait_for_work(&self, timeout: Duration) {
        let inner = self.lock();
        if inner.unsynced.is_empty() && inner.victims.is_empty() {
            let _ = self.work.wait_timeout(inner, timeout);
        }
    }

    /// Whether some watcher is parked waiting for a slow stream.
    pub fn has_victims(&self) -> bool {
        !self.lock().victims.is_empty()
    }

    /// Watcher counts for metrics.
    pub fn counts(&self) -> WatchCounts {
        let inner = self.lock();
        WatchCounts {
            watchers: inner.watchers.len(),
            slow: inner.unsynced.len() + inner.victims.len(),
        }
    }

    /// Asserts the group invariants: every watcher in exactly one group, exactly the
    /// victims hold a batch.
    pub fn check_invariants(&self) {
        self.lock().check_invariants();
    }
}
