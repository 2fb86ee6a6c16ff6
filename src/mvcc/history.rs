//! Reading history back as events: what a watcher that starts in the past (or fell
//! behind) must replay before it can follow live commits, and the lease attachments a
//! lessor must rebuild on restart.
//!
//! Read-only scans of the key bucket; called by the server's watch and lease code. It does
//! not track watchers itself.

use std::collections::HashMap;
use std::ops::ControlFlow;

use super::backend::{scan_pages, Backend, Bucket};
use super::error::{MvccError, Result};
use super::index::KeyRange;
use super::kv::{decode_key_value, Event, EventType, KeyValue};
use super::revision::{decode_key_bytes, Revision};
use super::store::{Store, SCAN_PAGE_ENTRIES};

impl<B: Backend> Store<B> {
    /// The events on keys in `key`..`range_end` (etcd's range ends) with main revision in
    /// `[from_revision, to_revision]`, in revision order, at most `events_max` (>= 1) of
    /// them (a whole revision is never split: the last one may overshoot the cap). `prev_kv`
    /// is filled when `with_prev_kv`. Errors: `Compacted` if `from_revision` is below the
    /// compacted revision (as in etcd, a start exactly at the compacted revision is allowed,
    /// though deletes at that revision may already be gone), `FutureRevision` if
    /// `to_revision` is above the current revision.
    pub fn events_in(
        &self,
        key: &[u8],
        range_end: &[u8],
        from_revision: i64,
        to_revision: i64,
        with_prev_kv: bool,
        events_max: usize,
    ) -> Result<Vec<Event>> {
        self.check_usable()?;
        assert!(events_max >= 1, "events_max must be at least 1");
        if from_revision < self.compact_revision {
            return Err(MvccError::Compacted);
        }
        if to_revision > self.current_revision {
            return Err(MvccError::FutureRevision);
        }
        let range = KeyRange::new(key, range_end);
        let end = Revision::new(to_revision + 1, 0).to_bytes();
        let start = Revision::new(from_revision.max(0), 0).to_bytes();
        let mut events: Vec<Event> = Vec::new();
        let backend = self.backend.as_ref();
        scan_pages(
            backend,
            Bucket::Key,
            &start,
            Some(&end),
            SCAN_PAGE_ENTRIES,
            |page| {
                for (k, v) in &page {
                    let bk = decode_key_bytes(k)?;
                    let next_revision = events
                        .last()
                        .is_some_and(|e| e.kv.mod_revision != bk.revision.main);
                    if events.len() >= events_max && next_revision {
                        return Ok(ControlFlow::Break(()));
                    }
                    let kv = decode_key_value(v)?;
                    if range.contains(&kv.key) {
                        events.push(self.event_of(bk.revision, bk.tombstone, kv, with_prev_kv)?);
                    }
                }
                Ok(ControlFlow::Continue(()))
            },
        )?;
        Ok(events)
    }

    fn event_of(
        &self,
        rev: Revision,
        tombstone: bool,
        kv: KeyValue,
        with_prev: bool,
    ) -> Result<Event> {
        let prev_kv = match with_prev {
            true => self.kv_at(&kv.key, rev.main - 1)?,
            false => None,
        };
        if tombstone {
            let kv = KeyValue {
                key: kv.key,
                mod_revision: rev.main,
                ..Default::default()
            };
            return Ok(Event {
                kind: EventType::Delete,
                kv,
                prev_kv,
            });
        }
        Ok(Event {
            kind: EventType::Put,
            kv,
            prev_kv,
        })
    }

    /// `key` as of main revision `at`, if it existed then and that history is kept.
    fn kv_at(&self, key: &[u8], at: i64) -> Result<Option<KeyValue>> {
        if at < self.compact_revision {
            return Ok(None);
        }
        let empty = HashMap::new();
        let view = self.view(&empty, self.current_revision);
        self.index
            .get(key, at)
            .map(|v| view.fetch(key, &v))
            .transpose()
    }

    /// Every live key attached to a lease, as `(key, lease)`: what the lessor rebuilds its
    /// attachments from after a restart. Reads every live key.
    pub fn leased_keys(&self) -> Result<Vec<(Vec<u8>, i64)>> {
        self.check_usable()?;
        let empty = HashMap::new();
        let view = self.view(&empty, self.current_revision);
        let all = view.get_range(&KeyRange::new(b"\0", b"\0"))?;
        Ok(all
            .into_iter()
            .filter(|kv| kv.lease != 0)
            .map(|kv| (kv.key, kv.lease))
            .collect())
    }
}
