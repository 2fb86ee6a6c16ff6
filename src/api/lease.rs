//! The `etcdserverpb.Lease` service: Grant, Revoke, KeepAlive (bidi stream), TimeToLive
//! and Leases over [`EtcdServer`].
//!
//! Renewals and TTL lookups need the leader's lessor: when the server answers
//! `NotLeader`, this file forwards the request to the leader's client URL (from the
//! member list) over a [`LeaderChannel`], and relays the answer unchanged.
//! Nothing here interprets leases beyond that relay.

use std::pin::Pin;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::leader::{LeaderChannel, LEADER_POLL, LEADER_WAIT};
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::lease_client::LeaseClient;
use crate::proto::etcdserverpb::lease_server::Lease;
use crate::server::{EtcdServer, ServerError};

type Replies<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Replies a keep-alive stream may have queued before the client reads them.
const KEEPALIVE_REPLIES_QUEUED_MAX: usize = 16;

/// The Lease service over one member.
pub struct LeaseService {
    server: EtcdServer,
    leader: std::sync::Arc<LeaderChannel>,
}

impl LeaseService {
    /// Serve lease requests with `server`.
    pub fn new(server: EtcdServer) -> LeaseService {
        LeaseService {
            server,
            leader: Default::default(),
        }
    }
}

/// Renews `id` here, or at the leader when this member does not lead.
async fn renew(
    server: &EtcdServer,
    leader: &LeaderChannel,
    id: i64,
) -> Result<pb::LeaseKeepAliveResponse, Status> {
    let mut result = server.lease_renew(id);
    let until = tokio::time::Instant::now() + LEADER_WAIT;
    while matches!(result, Err(ServerError::NotLeader))
        && server.leader() == Some(server.member_id())
        && tokio::time::Instant::now() < until
    {
        // Just elected: the lessor is promoted on the driver's next turn.
        tokio::time::sleep(LEADER_POLL).await;
        result = server.lease_renew(id);
    }
    match result {
        Ok(r) => Ok(r),
        Err(ServerError::NotLeader) => {
            let mut client = LeaseClient::new(leader.channel(server).await?);
            let req = pb::LeaseKeepAliveRequest { id };
            let mut replies = client
                .lease_keep_alive(tokio_stream::iter(vec![req]))
                .await?
                .into_inner();
            match replies.message().await? {
                Some(r) => Ok(r),
                None => Err(Status::unavailable("etcdserver: leader closed the stream")),
            }
        }
        Err(e) => Err(e.into()),
    }
}

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        req: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        Ok(Response::new(
            self.server.lease_grant(req.into_inner()).await?,
        ))
    }

    async fn lease_revoke(
        &self,
        req: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        Ok(Response::new(
            self.server.lease_revoke(req.into_inner().id).await?,
        ))
    }

    type LeaseKeepAliveStream = Replies<pb::LeaseKeepAliveResponse>;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(KEEPALIVE_REPLIES_QUEUED_MAX);
        let server = self.server.clone();
        let leader = self.leader.clone();
        tokio::spawn(async move {
            while let Some(next) = inbound.next().await {
                let reply = match next {
                    Ok(r) => renew(&server, &leader, r.id).await,
                    Err(_) => return, // the client went away
                };
                let failed = reply.is_err();
                if tx.send(reply).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let req = req.into_inner();
        match self.server.lease_time_to_live(req) {
            Ok(r) => Ok(Response::new(r)),
            Err(ServerError::NotLeader) => {
                let mut client = LeaseClient::new(self.leader.channel(&self.server).await?);
                client.lease_time_to_live(req).await
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn lease_leases(
        &self,
        _req: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        Ok(Response::new(self.server.lease_leases()?))
    }
}
