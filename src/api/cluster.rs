//! The `etcdserverpb.Cluster` service: MemberList, MemberAdd, MemberRemove, MemberUpdate
//! and MemberPromote over [`EtcdServer`] (the checks and the log round live in
//! `src/server/reconfig.rs`).
//!
//! MemberAdd, MemberRemove and MemberPromote need the leader's view (how connected the
//! voters are, how far the learner's log is): a follower answers `NotLeader` and this file
//! relays the request, once, to the leader's client URL over a [`LeaderChannel`] (as
//! `lease.rs` does for renewals), returning the leader's answer unchanged. Nothing else
//! here interprets membership.

use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::leader::LeaderChannel;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::cluster_client::ClusterClient;
use crate::proto::etcdserverpb::cluster_server::Cluster;
use crate::server::{EtcdServer, ServerError};

/// Metadata key marking a membership request relayed by a follower to the leader.
const FORWARDED: &str = "raftkv-forwarded";

/// The Cluster service over one member.
pub struct ClusterService {
    server: EtcdServer,
    leader: LeaderChannel,
}

impl ClusterService {
    /// Serve Cluster requests with `server`.
    pub fn new(server: EtcdServer) -> ClusterService {
        ClusterService {
            server,
            leader: LeaderChannel::default(),
        }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    /// A voter or a learner at the given peer URLs; answered once the change is applied
    /// here, with the new member (no name yet) and every member.
    async fn member_add(
        &self,
        req: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        let forwarded = req.metadata().contains_key(FORWARDED);
        let req = req.into_inner();
        let result = self
            .server
            .member_add(req.peer_ur_ls.clone(), req.is_learner)
            .await;
        match self.relay(result, forwarded, req).await? {
            Relayed::Here(resp) => Ok(Response::new(resp)),
            Relayed::ToLeader(mut client, req) => client.member_add(*req).await,
        }
    }

    async fn member_remove(
        &self,
        req: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        let forwarded = req.metadata().contains_key(FORWARDED);
        let req = req.into_inner();
        let result = self.server.member_remove(req.id).await;
        match self.relay(result, forwarded, req).await? {
            Relayed::Here(resp) => Ok(Response::new(resp)),
            Relayed::ToLeader(mut client, req) => client.member_remove(*req).await,
        }
    }

    async fn member_update(
        &self,
        req: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        let req = req.into_inner();
        Ok(Response::new(
            self.server.member_update(req.id, req.peer_ur_ls).await?,
        ))
    }

    /// Every member (voters and learners) with its peer and client URLs. etcd answers this
    /// from the member's local view, without a consensus round, unless the client asks
    /// for `linearizable` (served from the local view here too).
    async fn member_list(
        &self,
        _req: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        Ok(Response::new(self.server.member_list()))
    }

    async fn member_promote(
        &self,
        req: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        let forwarded = req.metadata().contains_key(FORWARDED);
        let req = req.into_inner();
        let result = self.server.member_promote(req.id).await;
        match self.relay(result, forwarded, req).await? {
            Relayed::Here(resp) => Ok(Response::new(resp)),
            Relayed::ToLeader(mut client, req) => client.member_promote(*req).await,
        }
    }
}

/// Where a membership request is answered.
enum Relayed<R, T> {
    /// By this member.
    Here(R),
    /// By the leader: send it `T` (marked as relayed, with the request timeout).
    ToLeader(Box<ClusterClient<Channel>>, Box<Request<T>>),
}

impl ClusterService {
    /// One hop only: a member that was sent the request as the leader and is not (any
    /// more) answers `not leader` rather than passing it on again.
    async fn relay<R, T>(
        &self,
        result: Result<R, ServerError>,
        forwarded: bool,
        req: T,
    ) -> Result<Relayed<R, T>, Status> {
        match result {
            Ok(resp) => Ok(Relayed::Here(resp)),
            Err(ServerError::NotLeader) if !forwarded => {
                let client = ClusterClient::new(self.leader.channel(&self.server).await?);
                let mut relayed = Request::new(req);
                relayed
                    .metadata_mut()
                    .insert(FORWARDED, "1".parse().expect("ascii"));
                relayed.set_timeout(self.server.request_timeout());
                Ok(Relayed::ToLeader(Box::new(client), Box::new(relayed)))
            }
            Err(e) => Err(e.into()),
        }
    }
}
