//! The `etcdserverpb.Maintenance` service: Status, Snapshot (streamed by
//! `snapshot_stream.rs`), Hash, HashKV, Defragment, Alarm and MoveLeader
//! (`src/server/move_leader.rs`); Downgrade answers Unimplemented.
//!
//! `etcdctl endpoint status` and kube-apiserver's version gate read Status; the numbers in it
//! come from the server ([`EtcdServer::status`]).

use tonic::{Request, Response, Status};

use super::error::unimplemented;
use super::snapshot_stream::{snapshot_stream, SnapshotChunks};
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

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        req: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        Ok(Response::new(self.server.alarm(req.into_inner()).await?))
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
        let server = self.server.clone();
        tokio::task::spawn_blocking(move || server.defragment())
            .await
            .map_err(|e| Status::internal(format!("defragment task failed: {e}")))??;
        Ok(Response::new(pb::DefragmentResponse {
            header: Some(self.server.header()),
        }))
    }

    async fn hash(
        &self,
        _req: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        // etcd hashes its whole bolt file here ("for testing only"); only equality between
        // members means anything, so the HashKV hash at the current revision serves.
        let kv = hash_kv_blocking(&self.server, 0).await?;
        Ok(Response::new(pb::HashResponse {
            header: Some(self.server.header()),
            hash: kv.hash,
        }))
    }

    async fn hash_kv(
        &self,
        req: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        let kv = hash_kv_blocking(&self.server, req.get_ref().revision).await?;
        Ok(Response::new(pb::HashKvResponse {
            header: Some(self.server.header()),
            hash: kv.hash,
            // etcd 3.4 answers -1 while nothing was ever compacted.
            compact_revision: if kv.compact_revision == 0 {
                -1
            } else {
                kv.compact_revision
            },
            hash_revision: kv.hash_revision,
        }))
    }

    type SnapshotStream = SnapshotChunks;

    async fn snapshot(
        &self,
        _req: Request<pb::SnapshotRequest>,
    ) -> Result<Response<SnapshotChunks>, Status> {
        Ok(Response::new(snapshot_stream(&self.server)?))
    }

    async fn move_leader(
        &self,
        req: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        let target = req.get_ref().target_id;
        Ok(Response::new(self.server.move_leader(target).await?))
    }

    async fn downgrade(
        &self,
        _req: Request<pb::DowngradeRequest>,
    ) -> Result<Response<pb::DowngradeResponse>, Status> {
        Err(unimplemented("Downgrade"))
    }
}

/// Hashes on a blocking thread (it reads the whole key bucket).
async fn hash_kv_blocking(
    server: &EtcdServer,
    revision: i64,
) -> Result<crate::mvcc::KvHash, Status> {
    let server = server.clone();
    tokio::task::spawn_blocking(move || server.hash_kv(revision))
        .await
        .map_err(|e| Status::internal(format!("hash task failed: {e}")))?
        .map_err(Status::from)
}
