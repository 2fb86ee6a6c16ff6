//! `hash_kv`: a CRC32C (Castagnoli) over the key bucket up to a revision, which members
//! compare to detect divergence (etcd's `HashKV`).
//!
//! The hash covers, in revision order, the raw backend key and value of every entry with
//! main revision <= the hash revision, starting from the bucket name `"key"`. Entries at or
//! below the compacted revision count only if compaction keeps them (the newest version <=
//! compacted of each key alive there). This is etcd's rule, applied even when nothing is
//! kept (etcd then hashes everything), so the hash does not depend on how far the physical
//! deletion has got: two members in the same logical state always agree. Read-only; the
//! scan runs outside the store lock ([`KvHasher`]), so hashing a large store stalls no write.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use super::backend::{scan_pages, Backend, Bucket};
use super::error::{MvccError, Result};
use super::revision::{decode_key_bytes, Revision};
use super::snapshot::ExportGuard;
use super::store::{Store, SCAN_PAGE_ENTRIES};

/// The answer to HashKV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvHash {
    /// CRC32C of the MVCC state up to `hash_revision`.
    pub hash: u32,
    /// The store's compacted revision when hashed.
    pub compact_revision: i64,
    /// The revision the hash covers.
    pub hash_revision: i64,
}

/// A HashKV whose inputs were captured under the store lock and whose scan runs without
/// it ([`Store::hash_kv_start`], then [`KvHasher::finish`]). Holds the backend, not the
/// store, and pauses physical compaction while alive (as a snapshot export does), so the
/// entries it must read stay put while writes go on above its revision.
pub struct KvHasher<B: Backend> {
    backend: Arc<B>,
    keep: HashSet<Revision>,
    compacted: i64,
    hash_revision: i64,
    _guard: ExportGuard,
}

impl<B: Backend> Store<B> {
    /// Hash the state up to `revision` (0 = the current revision). Errors, as etcd:
    /// `Compacted` if 0 < `revision` <= the compacted revision, `FutureRevision` if above
    /// the current revision.
    pub fn hash_kv(&self, revision: i64) -> Result<KvHash> {
        self.hash_kv_start(revision)?.finish()
    }

    /// The cheap half of [`Store::hash_kv`]: checks `revision` (same errors) and captures
    /// what the scan needs. Call it with the store locked, then drop the lock and call
    /// [`KvHasher::finish`], which reads the backend on its own.
    pub fn hash_kv_start(&self, revision: i64) -> Result<KvHasher<B>> {
        self.check_usable()?;
        if revision > self.current_revision {
            return Err(MvccError::FutureRevision);
        }
        if revision > 0 && revision <= self.compact_revision {
            return Err(MvccError::Compacted);
        }
        let hash_revision = if revision <= 0 {
            self.current_revision
        } else {
            revision
        };
        Ok(KvHasher {
            backend: self.backend.clone(),
            keep: self.index.keep(self.compact_revision),
            compacted: self.compact_revision,
            hash_revision,
            _guard: ExportGuard::new(&self.exports_active),
        })
    }
}

impl<B: Backend> KvHasher<B> {
    /// Scans the key bucket up to the captured revision and returns the hash.
    pub fn finish(self) -> Result<KvHash> {
        let end = Revision::new(self.hash_revision + 1, 0).to_bytes();
        let mut crc = crc32c::crc32c(b"key");
        scan_pages(
            self.backend.as_ref(),
            Bucket::Key,
            b"",
            Some(&end),
            SCAN_PAGE_ENTRIES,
            |page| {
                for (k, v) in &page {
                    let rev = decode_key_bytes(k)?.revision;
                    if rev.main <= self.compacted && !self.keep.contains(&rev) {
                        continue;
                    }
                    crc = crc32c::crc32c_append(crc, k);
                    crc = crc32c::crc32c_append(crc, v);
                }
                Ok(ControlFlow::Continue(()))
            },
        )?;
        Ok(KvHash {
            hash: crc,
            compact_revision: self.compacted,
            hash_revision: self.hash_revision,
        })
    }
}
