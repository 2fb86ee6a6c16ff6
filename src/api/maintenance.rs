//! The `etcdserverpb.Maintenance` service: Status now; Alarm, Defragment, Hash, HashKV,
//! Snapshot, MoveLeader and Downgrade answer Unimplemented until issue 7.
//!
//! `etcdctl endpoint status` and kube-apiserver's version gate read Status; the numbers in it
//! come from the server ([`EtcdServer::status`]).

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::error::unimplemented;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::maintenance_server::Maintenance;
use crate::server::EtcdServer;

/// The Maintenance service over one member.
pub struct MaintenanceService {
    server: EtcdServer,
}

impl MaintenanceService {
    /// Serve Maintenance requests with `server`.
    pub fn new(server: EtcdServer) -> MaintenanceService {
        MaintenanceService { server }
    }
}

type SnapshotChunks = Pin<Box<dyn Stream<Item = Result<pb::SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        _req: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        Err(unimplemented("Alarm"))
    }

    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        Ok(Response::new(self.server.status().await?))
    }

    async fn defragment(
        &self,
        _req: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        Err(unimplemented("Defragment"))
    }

    async fn hash(
        &self,
        _req: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        Err(unimplemented("Hash"))
    }

    async fn hash_kv(
        &self,
        _req: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        Err(unimplemented("HashKV"))
    }

    type SnapshotStream = SnapshotChunks;

    async fn snapshot(
        &self,
        _req: Request<pb::SnapshotRequest>,
    ) -> Result<Response<SnapshotChunks>, Status> {
        Err(unimplemented("Snapshot"))
    }

    async fn move_leader(
        &self,
        _req: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        Err(unimplemented("MoveLeader"))
    }

    async fn downgrade(
        &self,
        _req: Request<pb::DowngradeRequest>,
    ) -> Result<Response<pb::DowngradeResponse>, Status> {
        Err(unimplemented("Downgrade"))
    }
}
