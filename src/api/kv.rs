//! The `etcdserverpb.KV` service: Range, Put, DeleteRange, Txn and Compact.
//!
//! Each RPC hands its request to [`EtcdServer`] unchanged and maps the error with
//! `From<ServerError> for Status` (see `error.rs`). Validation, consensus and the store's
//! semantics live in the server; this file must not interpret requests, so that a request
//! arriving by gRPC and one built by a test meet exactly the same rules.

use tonic::{Request, Response, Status};

use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::kv_server::Kv;
use crate::server::EtcdServer;

/// The KV service over one member.
pub struct KvService {
    server: EtcdServer,
}

impl KvService {
    /// Serve KV requests with `server`.
    pub fn new(server: EtcdServer) -> KvService {
        KvService { server }
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        req: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        super::learner::check_range(&self.server, req.get_ref())?;
        Ok(Response::new(self.server.range(req.into_inner()).await?))
    }

    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        Ok(Response::new(self.server.put(req.into_inner()).await?))
    }

    async fn delete_range(
        &self,
        req: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        Ok(Response::new(
            self.server.delete_range(req.into_inner()).await?,
        ))
    }

    async fn txn(&self, req: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        Ok(Response::new(self.server.txn(req.into_inner()).await?))
    }

    async fn compact(
        &self,
        req: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        Ok(Response::new(self.server.compact(req.into_inner()).await?))
    }
}
