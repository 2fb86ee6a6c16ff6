//! The persistent ordered byte store under the MVCC store, and the rule that ties its
//! durability to the Raft WAL.
//!
//! A [`Backend`] holds two buckets: [`Bucket::Key`] (encoded revision -> encoded
//! [`super::kv::KeyValue`]) and [`Bucket::Meta`] (the applied Raft index, the current and
//! compaction revisions, and the server's own records such as leases and membership). All
//! changes of one apply batch go in ONE [`WriteBatch`] that [`Backend::write`] applies
//! atomically: after a crash the backend holds either all of it or none of it, so the
//! applied index stored in it always matches the data.
//!
//! # Durability rule
//!
//! [`Backend::write`] need not be durable: sled's `flush` uses `sync_file_range`, which is
//! not a real fsync. Durability comes from the Raft WAL, which replays entries above the
//! backend's applied index after a crash. Hence: **the WAL may only be released (truncated)
//! below an index after [`Backend::sync_durable`] returned with the backend's applied index
//! at or beyond it.** [`super::store::Store::sync_durable`] does this and returns that index.
//!
//! Implementations: [`sled::SledBackend`] (production) and [`mem::MemBackend`] (tests and
//! simulation, with crash simulation). This module knows nothing of revisions or keys.

pub mod mem;
pub mod sled;

use std::ops::ControlFlow;

use super::error::Result;

/// The two namespaces of a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bucket {
    /// Revision bytes -> encoded key value: the whole history not yet compacted.
    Key,
    /// Store metadata and the server's records, by name.
    Meta,
}

impl Bucket {
    /// Every bucket, in the order snapshots list them.
    pub const ALL: [Bucket; 2] = [Bucket::Key, Bucket::Meta];

    /// The one-byte tag of the bucket in a shared keyspace and in snapshots.
    pub fn tag(self) -> u8 {
        match self {
            Bucket::Key => b'k',
            Bucket::Meta => b'm',
        }
    }

    /// The bucket with this tag, if any.
    pub fn from_tag(tag: u8) -> Option<Bucket> {
        Bucket::ALL.into_iter().find(|b| b.tag() == tag)
    }

    /// `key` prefixed with this bucket's tag.
    pub(crate) fn prefixed(self, key: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(key.len() + 1);
        out.push(self.tag());
        out.extend_from_slice(key);
        out
    }
}

/// One change in a [`WriteBatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOp {
    /// Set `key` in `bucket` to `value`.
    Put {
        /// The bucket.
        bucket: Bucket,
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Remove `key` from `bucket` (no error if absent).
    Delete {
        /// The bucket.
        bucket: Bucket,
        /// The key.
        key: Vec<u8>,
    },
}

/// Changes applied all together or not at all, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// The changes, applied in order (a later op on the same key wins).
    pub ops: Vec<BatchOp>,
}

impl WriteBatch {
    /// Queue a put.
    pub fn put(&mut self, bucket: Bucket, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push(BatchOp::Put { bucket, key, value });
    }

    /// Queue a delete.
    pub fn delete(&mut self, bucket: Bucket, key: Vec<u8>) {
        self.ops.push(BatchOp::Delete { bucket, key });
    }

    /// True if nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A key-value pair read from a backend.
pub type Entry = (Vec<u8>, Vec<u8>);

/// An ordered, atomically batched byte store. Shared between threads (`&self` methods);
/// the store serialises writers itself.
pub trait Backend: Send + Sync + 'static {
    /// The value of `key` in `bucket`. Errors are IO failures.
    fn get(&self, bucket: Bucket, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Up to `limit` entries of `bucket` with `start <= key < end` (`end` None = to the
    /// end of the bucket), key-ascending. `limit` must be >= 1. Callers page through large
    /// buckets by calling again from the last key + `"\0"`.
    fn scan(
        &self,
        bucket: Bucket,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>>;

    /// Apply `batch` atomically (all or nothing, also across a crash). Not necessarily
    /// durable: see the module's durability rule.
    fn write(&self, batch: WriteBatch) -> Result<()>;

    /// Make every completed [`Backend::write`] durable (a real fsync of the files and
    /// their directory). Slow: call it when the WAL wants to release entries, not per write.
    fn sync_durable(&self) -> Result<()>;

    /// Bytes the backend occupies on disk (or in memory for [`mem::MemBackend`]).
    fn size_bytes(&self) -> Result<u64>;

    /// A new, empty backend of the same kind and settings beside this one, which the next
    /// open does NOT find until [`Backend::replace_with`] promotes it (the next open
    /// removes a sibling never promoted). Defragmentation and snapshot installation fill
    /// one and then promote it.
    fn fresh_sibling(&self) -> Result<Self>
    where
        Self: Sized;

    /// Atomically make `fresh` (a complete, [`Backend::sync_durable`]d sibling) the backend
    /// the next open finds, and return the handle to use from now on. A crash leaves
    /// either this backend or `fresh` in place, never a mix. `self` stays readable for
    /// whoever still holds it ([`mem::MemBackend`] excepted: its clones see the new data).
    fn replace_with(&self, fresh: Self) -> Result<Self>
    where
        Self: Sized;

    /// Release a backend that [`Backend::replace_with`] replaced and nobody else holds:
    /// remove its files. The default does nothing.
    fn destroy(self) -> Result<()>
    where
        Self: Sized,
    {
        Ok(())
    }
}

/// The smallest key strictly after `key`: `key` + `"\0"` (for paging with [`Backend::scan`]).
pub fn key_after(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

/// Visit the entries of `bucket` in `[start, end)` page by page (`page_entries` per
/// [`Backend::scan`]), in key order, until `visit` breaks or the range ends.
pub fn scan_pages<B: Backend + ?Sized>(
    backend: &B,
    bucket: Bucket,
    start: &[u8],
    end: Option<&[u8]>,
    page_entries: usize,
    mut visit: impl FnMut(Vec<Entry>) -> Result<ControlFlow<()>>,
) -> Result<()> {
    let mut from = start.to_vec();
    loop {
        let page = backend.scan(bucket, &from, end, page_entries)?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        from = key_after(last);
        if visit(page)?.is_break() {
            return Ok(());
        }
    }
}
