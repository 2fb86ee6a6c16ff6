//! Defragmentation: rewrite the backend into a fresh one so the space of deleted
//! (compacted) entries goes back to the file system, then switch to it atomically.
//!
//! The copy runs in passes so that writes wait only for the last, small one:
//! [`Store::defrag_begin`] (store locked, brief) creates the fresh backend and pauses
//! physical compaction; [`DefragCopy::copy_up_to`] (store NOT locked) copies the key-bucket
//! entries up to a revision, as often as the caller likes while writes go on; then
//! [`Store::defrag_finish`] (store locked) copies the entries written since, the whole meta
//! bucket, and switches. This is sound because a key-bucket entry never changes once
//! written (a revision is immutable) and only physical compaction deletes entries, which
//! waits while the copy lives. If the store's backend was replaced meanwhile (a Raft
//! snapshot was installed), `defrag_finish` throws the copy away and defragments the new
//! backend in one locked pass. [`Store::defrag`] does all three under one `&mut self`.
//!
//! Snapshot exports in progress keep reading the old backend. Called by the server's
//! Maintenance.Defragment.

use std::ops::ControlFlow;
use std::sync::Arc;

use super::backend::{scan_pages, Backend, Bucket, WriteBatch};
use super::error::Result;
use super::revision::Revision;
use super::snapshot::ExportGuard;
use super::store::Store;

/// Entries copied per backend write.
const COPY_BATCH_ENTRIES: usize = 10_000;

/// Sizes around a [`Store::defrag`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefragReport {
    /// Backend size before.
    pub size_before_bytes: u64,
    /// Backend size after.
    pub size_after_bytes: u64,
}

/// A defragmentation in progress (see the module doc): the backend being copied, the
/// fresh one, and how far the key bucket has been copied.
pub struct DefragCopy<B: Backend> {
    source: Arc<B>,
    fresh: Option<B>,
    /// Key-bucket entries of revisions up to this one (main) are in `fresh`.
    copied_through: i64,
    _guard: ExportGuard,
}

/// Copies the `bucket` entries of `from` in `[start, end)` into `to`; returns how many.
fn copy_range<B: Backend>(
    from: &B,
    to: &B,
    bucket: Bucket,
    start: &[u8],
    end: Option<&[u8]>,
) -> Result<u64> {
    let mut copied = 0;
    scan_pages(from, bucket, start, end, COPY_BATCH_ENTRIES, |page| {
        copied += page.len() as u64;
        let mut batch = WriteBatch::default();
        for (k, v) in page {
            batch.put(bucket, k, v);
        }
        to.write(batch)?;
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(copied)
}

impl<B: Backend> DefragCopy<B> {
    /// Copies the key-bucket entries of revisions in `(copied so far, revision]`; returns
    /// how many. Does not need the store: call it without the store lock.
    pub fn copy_up_to(&mut self, revision: i64) -> Result<u64> {
        if revision <= self.copied_through {
            return Ok(0);
        }
        let fresh = self.fresh.as_ref().expect("copy used after finish");
        let start = Revision::new(self.copied_through + 1, 0).to_bytes();
        let end = Revision::new(revision + 1, 0).to_bytes();
        let copied = copy_range(&*self.source, fresh, Bucket::Key, &start, Some(&end))?;
        self.copied_through = revision;
        Ok(copied)
    }

    /// The revision the key bucket has been copied through.
    pub fn copied_through(&self) -> i64 {
        self.copied_through
    }
}

impl<B: Backend> Drop for DefragCopy<B> {
    fn drop(&mut self) {
        if let Some(fresh) = self.fresh.take() {
            // Abandoned (an error, or a replaced source): the half-built copy goes.
            if let Err(e) = fresh.destroy() {
                tracing::warn!(error = %e, "could not remove an abandoned defrag copy");
            }
        }
    }
}

impl<B: Backend> Store<B> {
    /// Rewrite the backend into a fresh sibling, fsync it, and switch to it atomically (a
    /// crash leaves the old or the new one, both complete). The old one's files are
    /// removed at once if no export holds it, else by the next open.
    pub fn defrag(&mut self) -> Result<DefragReport> {
        let copy = self.defrag_begin()?;
        self.defrag_finish(copy)
    }

    /// Starts a defragmentation: a fresh sibling backend, physical compaction paused until
    /// the copy is finished or dropped. Brief; the copying is [`DefragCopy::copy_up_to`].
    pub fn defrag_begin(&self) -> Result<DefragCopy<B>> {
        self.check_usable()?;
        Ok(DefragCopy {
            source: self.backend.clone(),
            fresh: Some(self.backend.fresh_sibling()?),
            copied_through: 0,
            _guard: ExportGuard::new(&self.exports_active),
        })
    }

    /// Completes `copy`: the key entries written since it was last brought up to date, the
    /// meta bucket, an fsync, the switch. Runs under `&mut self`, so no write interleaves.
    pub fn defrag_finish(&mut self, mut copy: DefragCopy<B>) -> Result<DefragReport> {
        self.check_usable()?;
        if !Arc::ptr_eq(&copy.source, &self.backend) {
            tracing::info!("backend replaced during the defrag copy; copying again");
            drop(copy);
            copy = self.defrag_begin()?;
        }
        let size_before_bytes = self.backend.size_bytes()?;
        let delta = copy.copy_up_to(self.current_revision)?;
        let fresh = copy.fresh.take().expect("copy finished twice");
        drop(copy);
        let prepared = copy_range(self.backend.as_ref(), &fresh, Bucket::Meta, b"", None)
            .and_then(|_| fresh.sync_durable());
        if let Err(e) = prepared {
            // Out of space, most likely: give the half-built copy's space back at once.
            if let Err(destroy) = fresh.destroy() {
                tracing::warn!(error = %destroy, "could not remove a failed defrag copy");
            }
            return Err(e);
        }
        // A failed switch may have renamed CURRENT already (only its directory fsync
        // failed): which backend the next open loads is unknown, so this store takes no
        // more writes (poisoned, as after a failed commit) and a restart sorts it out.
        let active = self
            .backend
            .replace_with(fresh)
            .inspect_err(|_| self.poisoned = true)?;
        let old = std::mem::replace(&mut self.backend, Arc::new(active));
        self.retire(old)?;
        let size_after_bytes = self.backend.size_bytes()?;
        tracing::info!(
            size_before_bytes,
            size_after_bytes,
            entries_copied_last = delta,
            "defragmented backend"
        );
        Ok(DefragReport {
            size_before_bytes,
            size_after_bytes,
        })
    }
}
