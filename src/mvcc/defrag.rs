//! Defragmentation: rewrite the backend into a fresh one so the space of deleted
//! (compacted) entries goes back to the file system, then switch to it atomically.
//!
//! Runs under `&mut self`, so no write interleaves; snapshot exports in progress keep
//! reading the old backend. Called by the server's Maintenance.Defragment.

use std::ops::ControlFlow;
use std::sync::Arc;

use super::backend::{scan_pages, Backend, Bucket, WriteBatch};
use super::error::Result;
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

/// Copy every entry of `from` into `to`, page by page.
fn copy_all<B: Backend>(from: &B, to: &B) -> Result<()> {
    for bucket in Bucket::ALL {
        scan_pages(from, bucket, b"", None, COPY_BATCH_ENTRIES, |page| {
            let mut batch = WriteBatch::default();
            for (k, v) in page {
                batch.put(bucket, k, v);
            }
            to.write(batch)?;
            Ok(ControlFlow::Continue(()))
        })?;
    }
    Ok(())
}

impl<B: Backend> Store<B> {
    /// Rewrite the backend into a fresh sibling, fsync it, and switch to it atomically (a
    /// crash leaves the old or the new one, both complete). The old one's files are
    /// removed at once if no export holds it, else by the next open.
    pub fn defrag(&mut self) -> Result<DefragReport> {
        self.check_usable()?;
        let size_before_bytes = self.backend.size_bytes()?;
        let fresh = self.backend.fresh_sibling()?;
        copy_all(self.backend.as_ref(), &fresh)?;
        fresh.sync_durable()?;
        let active = self.backend.replace_with(fresh)?;
        let old = std::mem::replace(&mut self.backend, Arc::new(active));
        if let Ok(old) = Arc::try_unwrap(old) {
            old.destroy()?;
        }
        let size_after_bytes = self.backend.size_bytes()?;
        tracing::info!(size_before_bytes, size_after_bytes, "defragmented backend");
        Ok(DefragReport {
            size_before_bytes,
            size_after_bytes,
        })
    }
}
