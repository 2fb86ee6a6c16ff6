//! [`EtcdServer`]: the handle the API layer holds; cheap to clone.
//!
//! (Skeleton: the bodies arrive with the driver.)

use std::sync::Arc;

use super::transport::{RaftInbox, Transport};
use super::{Metrics, ServerConfig, ServerError};
use crate::proto::etcdserverpb as pb;

/// One running member. Cheap to clone (an `Arc` inside). All async methods are
/// cancel-safe from the caller's side: dropping the future abandons the wait, never the
/// proposal.
#[derive(Clone)]
pub struct EtcdServer {
    inner: Arc<Inner>,
}

struct Inner {
    metrics: Metrics,
}

impl EtcdServer {
    /// Open (or create) the data dir, recover, and start the driver thread.
    pub fn start(cfg: ServerConfig, transport: Arc<dyn Transport>) -> Result<EtcdServer, ServerError> {
        let _ = (cfg, transport);
        todo!()
    }

    /// The inbox to hand to the peer transport and the peer gRPC service.
    pub fn inbox(&self) -> Arc<dyn RaftInbox> {
        todo!()
    }

    /// Range: linearizable (ReadIndex) unless `req.serializable`.
    pub async fn range(&self, req: pb::RangeRequest) -> Result<pb::RangeResponse, ServerError> {
        let _ = req;
        todo!()
    }

    /// Put through the log.
    pub async fn put(&self, req: pb::PutRequest) -> Result<pb::PutResponse, ServerError> {
        let _ = req;
        todo!()
    }

    /// DeleteRange through the log.
    pub async fn delete_range(
        &self,
        req: pb::DeleteRangeRequest,
    ) -> Result<pb::DeleteRangeResponse, ServerError> {
        let _ = req;
        todo!()
    }

    /// Txn through the log.
    pub async fn txn(&self, req: pb::TxnRequest) -> Result<pb::TxnResponse, ServerError> {
        let _ = req;
        todo!()
    }

    /// Compact through the log.
    pub async fn compact(
        &self,
        req: pb::CompactionRequest,
    ) -> Result<pb::CompactionResponse, ServerError> {
        let _ = req;
        todo!()
    }

    /// The members this server knows.
    pub fn member_list(&self) -> pb::MemberListResponse {
        todo!()
    }

    /// Maintenance.Status.
    pub async fn status(&self) -> Result<pb::StatusResponse, ServerError> {
        todo!()
    }

    /// A response header: cluster id, member id, current revision, raft term.
    pub fn header(&self) -> pb::ResponseHeader {
        todo!()
    }

    /// The leader this member knows, if any.
    pub fn leader(&self) -> Option<u64> {
        todo!()
    }

    /// One ReadIndex round: Ok once this member has applied everything committed before
    /// the call (used by `/health`).
    pub async fn linearizable_barrier(&self) -> Result<(), ServerError> {
        todo!()
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Stop the driver and sync the storage; later requests fail with `Stopped`.
    pub fn stop(&self) {
        todo!()
    }
}
