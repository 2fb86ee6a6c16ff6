//! Compaction: forgetting history below a revision.
//!
//! Logical compaction ([`ApplyBatch::compact`]) happens at once, inside an apply batch:
//! the index drops every revision a read at or above the compaction revision cannot see,
//! reads below it fail with `Compacted`, and the revision is persisted as the *scheduled*
//! compaction with the batch. Physical compaction then deletes the dead revisions from the
//! backend in bounded steps ([`Store::compact_step`], [`COMPACTION_BATCH_KEYS`] entries
//! each) that the server interleaves with applies, so a big compaction never stalls
//! writes. When done it persists the *finished* compaction revision. If the node crashes
//! in between, [`Store::open`] sees scheduled > finished and redoes the compaction.
//!
//! What survives a compaction at R: for every key alive at R, the newest revision <= R
//! (so a read at R still works), plus everything above R. Keys whose last generation ended
//! (tombstone) at or before R disappear completely. See `key_index.rs` for an example.

use std::collections::HashSet;

use super::backend::{key_after, Backend, Bucket, WriteBatch};
use super::error::{MvccError, Result};
use super::revision::{decode_key_bytes, Revision};
use super::store::{Store, META_FINISHED_COMPACT_REV, META_SCHEDULED_COMPACT_REV};
use super::txn::ApplyBatch;

/// Key-bucket entries examined per physical compaction step.
pub const COMPACTION_BATCH_KEYS: usize = 1000;

/// The physical half of a compaction: which old revisions to keep, and how far the
/// deletion got.
#[derive(Clone, Debug)]
pub struct CompactionJob {
    /// The compaction revision.
    pub revision: i64,
    /// Revisions <= `revision` that must stay (what reads at `revision` see).
    keep: HashSet<Revision>,
    /// The next key-bucket key to examine.
    cursor: Vec<u8>,
}

impl CompactionJob {
    /// A job deleting every revision <= `revision` not in `keep`, from the start.
    pub fn new(revision: i64, keep: HashSet<Revision>) -> CompactionJob {
        CompactionJob {
            revision,
            keep,
            cursor: Vec::new(),
        }
    }
}

/// Result of one [`Store::compact_step`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompactionProgress {
    /// No compaction is pending.
    Idle,
    /// A step ran and deleted this many entries; call again.
    Running {
        /// Entries deleted by this step.
        deleted: usize,
    },
    /// A snapshot export is reading the backend; nothing was deleted. Try later.
    Paused,
    /// The compaction at this revision just finished.
    Finished {
        /// The compaction revision now fully applied.
        revision: i64,
    },
}

impl<B: Backend> ApplyBatch<'_, '_, B> {
    /// Compact at `revision` (the Compact request). Errors: `Compacted` if `revision` <=
    /// the compacted revision, `FutureRevision` if above the current revision. Takes effect
    /// for reads at once; the deletion on disk runs later through [`Store::compact_step`]
    /// (it replaces any unfinished one: the newer compaction deletes a superset).
    pub fn compact(&mut self, revision: i64) -> Result<()> {
        if revision <= self.store.compact_revision {
            return Err(MvccError::Compacted);
        }
        if revision > self.store.current_revision {
            return Err(MvccError::FutureRevision);
        }
        let keep = self.store.index.compact(revision);
        self.store.compact_revision = revision;
        let bytes = revision.to_be_bytes().to_vec();
        self.batch
            .put(Bucket::Meta, META_SCHEDULED_COMPACT_REV.to_vec(), bytes);
        self.store.compaction = Some(CompactionJob::new(revision, keep));
        tracing::info!(revision, "scheduled compaction");
        Ok(())
    }
}

impl<B: Backend> Store<B> {
    /// True while a physical compaction is unfinished.
    pub fn compaction_pending(&self) -> bool {
        self.compaction.is_some()
    }

    /// Run one bounded step of the pending physical compaction: examine up to
    /// [`COMPACTION_BATCH_KEYS`] key-bucket entries at or below the compaction revision
    /// and delete the dead ones in one backend write. Call it between apply batches until
    /// it answers `Finished` or `Idle`. Must not be called inside an open batch (the
    /// borrow checker sees to it).
    pub fn compact_step(&mut self) -> Result<CompactionProgress> {
        self.check_usable()?;
        let Some(job) = &self.compaction else {
            return Ok(CompactionProgress::Idle);
        };
        if self.exports_in_progress() > 0 {
            return Ok(CompactionProgress::Paused);
        }
        let end = Revision::new(job.revision + 1, 0).to_bytes();
        let page =
            self.backend
                .scan(Bucket::Key, &job.cursor, Some(&end), COMPACTION_BATCH_KEYS)?;
        let mut batch = WriteBatch::default();
        let mut freed = 0u64;
        for (k, v) in &page {
            if !job.keep.contains(&decode_key_bytes(k)?.revision) {
                freed += (k.len() + v.len()) as u64;
                batch.delete(Bucket::Key, k.clone());
            }
        }
        let deleted = batch.ops.len();
        let revision = job.revision;
        let finished = page.len() < COMPACTION_BATCH_KEYS;
        if finished {
            let bytes = revision.to_be_bytes().to_vec();
            batch.put(Bucket::Meta, META_FINISHED_COMPACT_REV.to_vec(), bytes);
        }
        self.backend.write(batch)?;
        self.key_bucket_bytes = self.key_bucket_bytes.saturating_sub(freed);
        self.key_bucket_entries = self.key_bucket_entries.saturating_sub(deleted as u64);
        if finished {
            self.compaction = None;
            tracing::info!(revision, "finished compaction");
            return Ok(CompactionProgress::Finished { revision });
        }
        let last = &page.last().expect("a full page").0;
        self.compaction.as_mut().expect("job present").cursor = key_after(last);
        Ok(CompactionProgress::Running { deleted })
    }

    /// Run physical compaction steps until none is pending or an export pauses it
    /// (etcd's `physical = true` wait). Returns the last progress.
    pub fn compact_physical_all(&mut self) -> Result<CompactionProgress> {
        loop {
            match self.compact_step()? {
                CompactionProgress::Running { .. } => continue,
                other => return Ok(other),
            }
        }
    }
}
