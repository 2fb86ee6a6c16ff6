//! The `etcdserverpb.Cluster` service: MemberList now; MemberAdd/Remove/Update/Promote answer
//! Unimplemented until runtime reconfiguration exists (issue 7).
//!
//! Membership lives in the server ([`EtcdServer::member_list`]); this file only adapts it.

use tonic::{Request, Response, Status};

use super::error::unimplemented;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::cluster_server::Cluster;
use crate::server::EtcdServer;

/// The Cluster service over one member.
pub struct ClusterService {
    server: EtcdServer,
}

impl ClusterService {
    /// Serve Cluster requests with `server`.
    pub fn new(server: EtcdServer) -> ClusterService {
        ClusterService { server }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        _req: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        Err(unimplemented("MemberAdd"))
    }

    async fn member_remove(
        &self,
        _req: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        Err(unimplemented("MemberRemove"))
    }

    async fn member_update(
        &self,
        _req: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        Err(unimplemented("MemberUpdate"))
    }

    /// Every member (voters and learners) with its peer and client URLs. etcd answers this
    /// from the member's local view, without a consensus round, unless the client asks
    /// for `linearizable` (served the same way here until reconfiguration exists).
    async fn member_list(
        &self,
        _req: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        Ok(Response::new(self.server.member_list()))
    }

    async fn member_promote(
        &self,
        _req: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        Err(unimplemented("MemberPromote"))
    }
}
