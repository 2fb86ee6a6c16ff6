//! `hash_kv`: a CRC32C (Castagnoli) over the key bucket up to a revision, which members
//! compare to detect divergence (etcd's `HashKV`).
//!
//! The hash covers, in revision order, the raw backend key and value of every entry with
//! main revision <= the hash revision, starting from the bucket name `"key"`. Entries at or
//! below the compacted revision count only if compaction keeps them (the newest version <=
//! compacted of each key alive there). This is etcd's rule, applied even when nothing is
//! kept (etcd then hashes everything), so the hash does not depend on how far the physical
//! deletion has got: two members in the same logical state always agree. Read-only.

use std::ops::ControlFlow;

use super::backend::{scan_pages, Backend, Bucket};
use super::error::{MvccError, Result};
use super::revision::{decode_key_bytes, Revision};
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

impl<B: Backend> Store<B> {
    /// Hash the state up to `revision` (0 = the current revision). Errors, as etcd:
    /// `Compacted` if 0 < `revision` <= the compacted revision, `FutureRevision` if above
    /// the current revision.
    pub fn hash_kv(&self, revision: i64) -> Result<KvHash> {
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
        let compacted = self.compact_revision;
        let keep = self.index.keep(compacted);
        let end = Revision::new(hash_revision + 1, 0).to_bytes();
        let mut crc = crc32c::crc32c(b"key");
        let backend = self.backend.as_ref();
        scan_pages(
            backend,
            Bucket::Key,
            b"",
            Some(&end),
            SCAN_PAGE_ENTRIES,
            |page| {
                for (k, v) in &page {
                    let rev = decode_key_bytes(k)?.revision;
                    if rev.main <= compacted && !keep.contains(&rev) {
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
            compact_revision: compacted,
            hash_revision,
        })
    }
}
