//! The server side of `Maintenance.Snapshot`, `HashKV` and `Defragment`: a point-in-time
//! export of this member's store, its hash, and rewriting its backend, each holding the
//! store lock only briefly.
//!
//! [`EtcdServer::snapshot`] holds the store lock only to start the export (it captures the
//! revision and the meta bucket); the returned reader then reads the backend on its own,
//! so writes go on while the image streams (see `crate::mvcc::SnapshotReader`). Reading it
//! blocks: the API layer drives it on a blocking thread. No gRPC here.

use super::{EtcdServer, ServerError};

use crate::mvcc::{DefragReport, KvHash, SledBackend, SnapshotReader};

/// Unlocked copy passes a defrag makes at most before its locked last pass.
const DEFRAG_PASSES_MAX: usize = 4;

/// A pass that copied at most this many entries was the last unlocked one: the writes made
/// meanwhile are few enough to copy with writes waiting.
const DEFRAG_LOCKED_ENTRIES_MAX: u64 = 5_000;

impl EtcdServer {
    /// Starts streaming a consistent image of this member's store as of now. The image is
    /// self-verifying (trailing SHA-256) and is what `snapshot restore` reads.
    pub fn snapshot(&self) -> Result<SnapshotReader<SledBackend>, ServerError> {
        let store = self.shared().store()?;
        Ok(store.snapshot()?)
    }

    /// HashKV of this member's store at `revision` (0 = current), as etcd's RPC: errors
    /// `Compacted` / `FutureRevision` verbatim. The store lock is held only to capture the
    /// revision; the scan (seconds at a million revisions) runs while writes go on.
    pub fn hash_kv(&self, revision: i64) -> Result<KvHash, ServerError> {
        let hasher = self.shared().store()?.hash_kv_start(revision)?;
        Ok(hasher.finish()?)
    }

    /// Rewrites this member's backend, giving the space of compacted revisions back to
    /// the file system. The bulk of the copy runs while this member keeps applying writes
    /// (`DefragCopy::copy_up_to`, in passes until what is left is small); writes wait only
    /// for the last pass and the switch (`Store::defrag_finish`). Blocking: call it on a
    /// blocking thread.
    pub fn defragment(&self) -> Result<DefragReport, ServerError> {
        let _one_at_a_time = self
            .shared()
            .defrag
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut copy = self.shared().store()?.defrag_begin()?;
        for _ in 0..DEFRAG_PASSES_MAX {
            let head = self.shared().store()?.current_revision();
            if copy.copy_up_to(head)? <= DEFRAG_LOCKED_ENTRIES_MAX {
                break;
            }
        }
        let mut store = self.shared().store()?;
        let report = store.defrag_finish(copy)?;
        let size = store.db_size()?;
        drop(store);
        self.shared().note_db_size(&size);
        Ok(report)
    }
}
