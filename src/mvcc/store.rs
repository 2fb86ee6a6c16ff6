//! The MVCC store: the index, the backend and the revision counters, opened from disk and
//! read at any revision. Writes go through [`Store::begin_apply`] (see `txn.rs`),
//! compaction through `compaction.rs`, hashing through `hash.rs`, snapshots through
//! `snapshot.rs`, defragmentation through `defrag.rs`, history replay through
//! `history.rs`; this file holds the state they share and the plain read path.
//!
//! Concurrency: reads take `&self`, writes `&mut self`; the server wraps the store in its
//! own lock (a `RwLock` lets ranges run in parallel). The store knows nothing of Raft:
//! the applied index is an opaque number the server hands to each commit.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::backend::{scan_pages, Backend, Bucket};
use super::compaction::CompactionJob;
use super::error::{MvccError, Result};
use super::index::Index;
use super::kv::{decode_key_value, RangeRequest, RangeResponse};
use super::range::View;
use super::revision::{decode_key_bytes, Revision};

/// Meta-bucket key of the applied Raft index (etcd's `consistent_index`).
pub(crate) const META_CONSISTENT_INDEX: &[u8] = b"consistent_index";
/// Meta-bucket key of the current revision.
pub(crate) const META_CURRENT_REV: &[u8] = b"current_rev";
/// Meta-bucket key of the last requested (logical) compaction revision.
pub(crate) const META_SCHEDULED_COMPACT_REV: &[u8] = b"scheduled_compact_rev";
/// Meta-bucket key of the last compaction whose physical deletion finished.
pub(crate) const META_FINISHED_COMPACT_REV: &[u8] = b"finished_compact_rev";
/// Meta-bucket key present while a snapshot import is incomplete.
pub(crate) const META_IMPORT_INCOMPLETE: &[u8] = b"import_incomplete";
/// Prefix of the server's own records in the meta bucket.
pub(crate) const META_APP_PREFIX: &[u8] = b"app/";
/// Entries read per backend scan while rebuilding or hashing.
pub(crate) const SCAN_PAGE_ENTRIES: usize = 1000;

/// Sizes for the quota check and `Status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DbSize {
    /// Bytes the backend occupies on disk (etcd's `dbSize`).
    pub db_size_bytes: u64,
    /// Bytes of live records: every key-bucket entry plus the meta bucket as of open,
    /// capped at `db_size_bytes` (etcd's `dbSizeInUse`; an estimate).
    pub db_size_in_use_bytes: u64,
}

/// An applied index waiting to be made durable; see [`Store::durable_sync_point`].
#[derive(Debug)]
pub struct DurableSyncPoint<B: Backend> {
    backend: Arc<B>,
    applied_index: u64,
}

impl<B: Backend> DurableSyncPoint<B> {
    /// fsync the backend; returns the applied index that is now durable (the WAL may be
    /// released up to it).
    pub fn sync(self) -> Result<u64> {
        self.backend.sync_durable()?;
        Ok(self.applied_index)
    }
}

/// The revisioned key-value store over a [`Backend`]. See the module doc.
#[derive(Debug)]
pub struct Store<B: Backend> {
    pub(crate) backend: Arc<B>,
    pub(crate) index: Index,
    /// Revision of the last write; 1 on a fresh store.
    pub(crate) current_revision: i64,
    /// Reads below this revision fail; 0 before the first compaction.
    pub(crate) compact_revision: i64,
    /// The applied Raft index stored with the last commit.
    pub(crate) applied_index: u64,
    /// The physical deletion still to do, if any.
    pub(crate) compaction: Option<CompactionJob>,
    /// Bytes of key-bucket entries (keys + values) now stored.
    pub(crate) key_bucket_bytes: u64,
    /// Number of key-bucket entries now stored.
    pub(crate) key_bucket_entries: u64,
    /// Snapshot exports in progress; physical compaction pauses while > 0.
    pub(crate) exports_active: Arc<AtomicUsize>,
    /// Set when a commit failed: memory may be ahead of disk.
    pub(crate) poisoned: bool,
    /// Backends a defrag or a snapshot install switched away from while a reader (a hash,
    /// an export) still held them; destroyed by [`Store::reap_retired`] once free.
    pub(crate) retired: Vec<Arc<B>>,
}

pub(crate) fn decode_meta_i64(raw: Option<Vec<u8>>, name: &[u8]) -> Result<Option<i64>> {
    let Some(raw) = raw else { return Ok(None) };
    let bytes: [u8; 8] = raw.as_slice().try_into().map_err(|_| {
        MvccError::Corrupt(format!(
            "meta {} is {} bytes",
            String::from_utf8_lossy(name),
            raw.len()
        ))
    })?;
    Ok(Some(i64::from_be_bytes(bytes)))
}

impl<B: Backend> Store<B> {
    /// Open the store on `backend` (empty or previously written): read the meta bucket,
    /// rebuild the index from the key bucket, and resume an interrupted compaction (the
    /// logical part at once; the physical part waits for [`Store::compact_step`]).
    pub fn open(backend: B) -> Result<Store<B>> {
        let meta = |name: &[u8]| decode_meta_i64(backend.get(Bucket::Meta, name)?, name);
        if backend.get(Bucket::Meta, META_IMPORT_INCOMPLETE)?.is_some() {
            return Err(MvccError::InvalidSnapshot(
                "backend holds an incomplete import".into(),
            ));
        }
        let applied_index = meta(META_CONSISTENT_INDEX)?.unwrap_or(0) as u64;
        let scheduled = meta(META_SCHEDULED_COMPACT_REV)?.unwrap_or(0);
        let finished = meta(META_FINISHED_COMPACT_REV)?.unwrap_or(0);
        let stored_current = meta(META_CURRENT_REV)?.unwrap_or(1);
        let mut store = Store {
            backend: Arc::new(backend),
            index: Index::default(),
            current_revision: stored_current.max(1),
            compact_revision: scheduled,
            applied_index,
            compaction: None,
            key_bucket_bytes: 0,
            key_bucket_entries: 0,
            exports_active: Arc::new(AtomicUsize::new(0)),
            poisoned: false,
            retired: Vec::new(),
        };
        store.rebuild_index()?;
        if scheduled > finished {
            tracing::info!(scheduled, finished, "resuming interrupted compaction");
            let keep = store.index.compact(scheduled);
            store.compaction = Some(CompactionJob::new(scheduled, keep));
        }
        store.check_invariants();
        Ok(store)
    }

    /// Replay the key bucket into the index, page by page.
    fn rebuild_index(&mut self) -> Result<()> {
        let backend = self.backend.clone();
        scan_pages(
            backend.as_ref(),
            Bucket::Key,
            b"",
            None,
            SCAN_PAGE_ENTRIES,
            |page| {
                for (k, v) in &page {
                    self.restore_entry(k, v)?;
                }
                Ok(ControlFlow::Continue(()))
            },
        )
    }

    fn restore_entry(&mut self, k: &[u8], v: &[u8]) -> Result<()> {
        let bk = decode_key_bytes(k)?;
        let kv = decode_key_value(v)?;
        let rev = bk.revision;
        self.key_bucket_bytes += (k.len() + v.len()) as u64;
        self.key_bucket_entries += 1;
        self.current_revision = self.current_revision.max(rev.main);
        if !bk.tombstone {
            let created = Revision::new(kv.create_revision, 0);
            self.index.restore_put(&kv.key, created, rev, kv.version);
        } else if !self.index.restore_tombstone(&kv.key, rev) && rev.main > self.compact_revision {
            // Only an interrupted compaction can leave a tombstone without its puts.
            return Err(MvccError::Corrupt(format!("orphan tombstone at {rev:?}")));
        }
        Ok(())
    }

    /// The revision of the last write; 1 on a fresh store.
    pub fn current_revision(&self) -> i64 {
        self.current_revision
    }

    /// The compacted revision: reads below it fail; 0 before any compaction.
    pub fn compact_revision(&self) -> i64 {
        self.compact_revision
    }

    /// The Raft index of the last committed apply batch (0 on a fresh store).
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    pub(crate) fn view<'a>(
        &'a self,
        pending: &'a HashMap<Revision, super::kv::KeyValue>,
        current: i64,
    ) -> View<'a, B> {
        View {
            index: &self.index,
            backend: self.backend.as_ref(),
            pending,
            current,
            compacted: self.compact_revision,
        }
    }

    /// Execute a Range outside any write: errors are `Compacted`, `FutureRevision`,
    /// `KeyNotProvided`, or backend failures.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        self.check_usable()?;
        let empty = HashMap::new();
        self.view(&empty, self.current_revision).range(req)
    }

    /// A record the server stored with [`super::txn::ApplyBatch::put_app_meta`].
    pub fn app_meta(&self, name: &[u8]) -> Result<Option<Vec<u8>>> {
        let key = [META_APP_PREFIX, name].concat();
        self.backend.get(Bucket::Meta, &key)
    }

    /// Every server record whose name starts with `prefix`, name-ascending, as
    /// `(name, value)` (for example all leases on restart).
    pub fn app_meta_scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let start = [META_APP_PREFIX, prefix].concat();
        let mut out = Vec::new();
        let backend = self.backend.as_ref();
        scan_pages(
            backend,
            Bucket::Meta,
            &start,
            None,
            SCAN_PAGE_ENTRIES,
            |page| {
                for (k, v) in page {
                    if !k.starts_with(&start) {
                        return Ok(ControlFlow::Break(()));
                    }
                    out.push((k[META_APP_PREFIX.len()..].to_vec(), v));
                }
                Ok(ControlFlow::Continue(()))
            },
        )?;
        Ok(out)
    }

    /// Backend size on disk and an estimate of the bytes in use: the live key-bucket bytes
    /// plus the meta bucket, measured now (it is small: counters, members, leases).
    pub fn db_size(&self) -> Result<DbSize> {
        let db_size_bytes = self.backend.size_bytes()?;
        let meta_bytes = bucket_bytes(self.backend.as_ref(), Bucket::Meta)?;
        let in_use = self.key_bucket_bytes + meta_bytes;
        Ok(DbSize {
            db_size_bytes,
            db_size_in_use_bytes: in_use.min(db_size_bytes),
        })
    }

    /// Make everything committed so far durable and return the applied index that is now
    /// durable: the WAL may release entries at or below it, and only those.
    pub fn sync_durable(&self) -> Result<u64> {
        self.durable_sync_point().sync()
    }

    /// Capture the applied index now, to make it durable later without holding the store
    /// (the fsync takes milliseconds; applies can go on meanwhile). Everything committed
    /// before this call is covered by [`DurableSyncPoint::sync`].
    pub fn durable_sync_point(&self) -> DurableSyncPoint<B> {
        DurableSyncPoint {
            backend: self.backend.clone(),
            applied_index: self.applied_index,
        }
    }

    /// The backend (for tests and tools that inspect it).
    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub(crate) fn check_usable(&self) -> Result<()> {
        if self.poisoned {
            return Err(MvccError::Poisoned);
        }
        Ok(())
    }

    /// Assert the store's invariants: 0 <= compacted <= current, current >= 1, and every
    /// key index well formed. Costs a walk of the index: for tests and the simulator.
    pub fn check_invariants(&self) {
        assert!(
            self.current_revision >= 1,
            "current revision {} < 1",
            self.current_revision
        );
        assert!(
            0 <= self.compact_revision && self.compact_revision <= self.current_revision,
            "compacted {} not in [0, current {}]",
            self.compact_revision,
            self.current_revision
        );
        if let Some(job) = &self.compaction {
            assert!(
                job.revision <= self.compact_revision,
                "pending compaction above compacted"
            );
        }
        self.index.check_invariants();
    }

    /// Destroys `old` (a backend this store switched away from) now if nothing else holds
    /// it, else keeps it for [`Store::reap_retired`].
    pub(crate) fn retire(&mut self, old: Arc<B>) -> Result<()> {
        match Arc::try_unwrap(old) {
            Ok(old) => old.destroy(),
            Err(held) => {
                self.retired.push(held);
                Ok(())
            }
        }
    }

    /// Destroys the retired backends no reader holds any more, giving their space back;
    /// returns how many remain. Cheap: the server calls it about once a second.
    pub fn reap_retired(&mut self) -> Result<usize> {
        for old in std::mem::take(&mut self.retired) {
            self.retire(old)?;
        }
        Ok(self.retired.len())
    }

    /// Number of snapshot exports in progress.
    pub(crate) fn exports_in_progress(&self) -> usize {
        self.exports_active.load(Ordering::SeqCst)
    }
}

/// Bytes (keys + values) in one bucket, by a full scan.
pub(crate) fn bucket_bytes<B: Backend>(backend: &B, bucket: Bucket) -> Result<u64> {
    let mut total = 0;
    scan_pages(backend, bucket, b"", None, SCAN_PAGE_ENTRIES, |page| {
        total += page
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum::<u64>();
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(total)
}
