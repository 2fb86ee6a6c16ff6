//! The server side of `Maintenance.Snapshot`, `HashKV` and `Defragment`: a point-in-time
//! export of this member's store, its hash, and rewriting its backend.
//!
//! [`EtcdServer::snapshot`] holds the store lock only to start the export (it captures the
//! revision and the meta bucket); the returned reader then reads the backend on its own,
//! so writes go on while the image streams (see `crate::mvcc::SnapshotReader`). Reading it
//! blocks: the API layer drives it on a blocking thread. No gRPC here.

use super::{EtcdServer, ServerError};

use crate::mvcc::{DefragReport, KvHash, SledBackend, SnapshotReader};

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

    /// Rewrites this member's backend (`Store::defrag`), giving the space of compacted
    /// revisions back to the file system. Blocking: writes to this member wait while it
    /// runs (etcd also stops applying during a defrag); reads of other members go on.
    pub fn defragment(&self) -> Result<DefragReport, ServerError> {
        let mut store = self.shared().store()?;
        let report = store.defrag()?;
        let size = store.db_size()?;
        drop(store);
        self.shared().note_db_size(&size);
        Ok(report)
    }
}
