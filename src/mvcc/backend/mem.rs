//! An in-memory [`Backend`] for tests and the deterministic simulator, able to simulate a
//! crash that loses the writes not yet made durable.
//!
//! Clones share the same data, so "restart" is: drop the store, open a new one on a clone.
//! With crash tracking on ([`MemBackend::with_crash_tracking`]), it remembers the state at
//! the last [`Backend::sync_durable`] and the batches written since, and
//! [`MemBackend::crash`] builds the state a real disk could show after a power loss: the
//! durable image plus some prefix of the later batches (each batch all or nothing).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use super::{Backend, BatchOp, Bucket, Entry, WriteBatch};
use crate::mvcc::error::Result;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, Default)]
struct Inner {
    /// Bucket tag + key -> value.
    data: Map,
    /// Some(image at the last sync) when crash tracking is on.
    durable: Option<Map>,
    /// Batches written since the last sync (only with crash tracking).
    unsynced: Vec<WriteBatch>,
}

/// A backend in a shared `BTreeMap`. Lock order: only its own mutex, never held across
/// calls out.
#[derive(Clone, Debug, Default)]
pub struct MemBackend {
    inner: Arc<Mutex<Inner>>,
}

fn apply(map: &mut Map, batch: &WriteBatch) {
    for op in &batch.ops {
        match op {
            BatchOp::Put { bucket, key, value } => {
                map.insert(bucket.prefixed(key), value.clone());
            }
            BatchOp::Delete { bucket, key } => {
                map.remove(&bucket.prefixed(key));
            }
        }
    }
}

impl MemBackend {
    /// An empty backend without crash tracking.
    pub fn new() -> MemBackend {
        MemBackend::default()
    }

    /// An empty backend that records what is durable, for [`MemBackend::crash`].
    pub fn with_crash_tracking() -> MemBackend {
        let inner = Inner {
            durable: Some(Map::new()),
            ..Inner::default()
        };
        MemBackend {
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    /// Number of batches written since the last durable sync (0 without crash tracking).
    pub fn unsynced_batches(&self) -> usize {
        self.inner.lock().expect("poisoned").unsynced.len()
    }

    /// A new, independent backend holding what survives a crash now if the disk kept the
    /// first `kept_unsynced` batches written since the last sync (capped at their number).
    /// Panics without crash tracking.
    pub fn crash(&self, kept_unsynced: usize) -> MemBackend {
        let inner = self.inner.lock().expect("poisoned");
        let mut data = inner
            .durable
            .clone()
            .expect("crash() needs with_crash_tracking()");
        for batch in inner.unsynced.iter().take(kept_unsynced) {
            apply(&mut data, batch);
        }
        let durable = Some(data.clone());
        MemBackend {
            inner: Arc::new(Mutex::new(Inner {
                data,
                durable,
                unsynced: vec![],
            })),
        }
    }
}

impl Backend for MemBackend {
    fn get(&self, bucket: Bucket, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .inner
            .lock()
            .expect("poisoned")
            .data
            .get(&bucket.prefixed(key))
            .cloned())
    }

    fn scan(
        &self,
        bucket: Bucket,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        assert!(limit >= 1, "scan limit must be >= 1");
        let lo = Bound::Included(bucket.prefixed(start));
        let hi = match end {
            Some(end) => Bound::Excluded(bucket.prefixed(end)),
            None => Bound::Excluded(vec![bucket.tag() + 1]),
        };
        let inner = self.inner.lock().expect("poisoned");
        if let (Bound::Included(l), Bound::Excluded(h)) = (&lo, &hi) {
            if l >= h {
                return Ok(vec![]);
            }
        }
        let found = inner.data.range((lo, hi)).take(limit);
        Ok(found.map(|(k, v)| (k[1..].to_vec(), v.clone())).collect())
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        let mut inner = self.inner.lock().expect("poisoned");
        apply(&mut inner.data, &batch);
        if inner.durable.is_some() {
            inner.unsynced.push(batch);
        }
        Ok(())
    }

    fn sync_durable(&self) -> Result<()> {
        let mut inner = self.inner.lock().expect("poisoned");
        if inner.durable.is_some() {
            inner.durable = Some(inner.data.clone());
            inner.unsynced.clear();
        }
        Ok(())
    }

    fn size_bytes(&self) -> Result<u64> {
        let inner = self.inner.lock().expect("poisoned");
        Ok(inner
            .data
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum())
    }

    fn fresh_sibling(&self) -> Result<MemBackend> {
        let tracking = self.inner.lock().expect("poisoned").durable.is_some();
        Ok(if tracking {
            MemBackend::with_crash_tracking()
        } else {
            MemBackend::new()
        })
    }

    /// Copies `fresh`'s data into this backend's shared state (so every clone, and the
    /// next open on any of them, sees it) as a durable change, and returns a clone.
    fn replace_with(&self, fresh: MemBackend) -> Result<MemBackend> {
        let data = fresh.inner.lock().expect("poisoned").data.clone();
        let mut inner = self.inner.lock().expect("poisoned");
        if inner.durable.is_some() {
            inner.durable = Some(data.clone());
            inner.unsynced.clear();
        }
        inner.data = data;
        Ok(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_keeps_durable_image_plus_prefix() {
        let b = MemBackend::with_crash_tracking();
        let put = |k: &[u8]| {
            let mut w = WriteBatch::default();
            w.put(Bucket::Meta, k.to_vec(), b"v".to_vec());
            w
        };
        b.write(put(b"a")).unwrap();
        b.sync_durable().unwrap();
        b.write(put(b"b")).unwrap();
        b.write(put(b"c")).unwrap();
        assert_eq!(b.unsynced_batches(), 2);
        let c = b.crash(1);
        assert!(c.get(Bucket::Meta, b"a").unwrap().is_some());
        assert!(c.get(Bucket::Meta, b"b").unwrap().is_some());
        assert!(c.get(Bucket::Meta, b"c").unwrap().is_none());
        assert_eq!(b.scan(Bucket::Meta, b"", None, 10).unwrap().len(), 3);
        assert_eq!(b.scan(Bucket::Meta, b"b", Some(b"c"), 10).unwrap().len(), 1);
        assert!(b.scan(Bucket::Key, b"", None, 10).unwrap().is_empty());
    }
}
