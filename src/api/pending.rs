//! The Watch and Lease services, registered so that clients get a clear Unimplemented
//! (never retried) instead of a routing error, until watch and leases exist (issue 5).
//!
//! Delete this file when `src/api/watch.rs` and `src/api/lease.rs` arrive.

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::error::unimplemented;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::lease_server::Lease;
use crate::proto::etcdserverpb::watch_server::Watch;

type Replies<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Watch: every stream fails at once with Unimplemented.
pub struct WatchService;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = Replies<pb::WatchResponse>;

    async fn watch(
        &self,
        _req: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(unimplemented("Watch"))
    }
}

/// Lease: every RPC fails with Unimplemented (so a Put with a lease fails earlier, in the
/// server, with `requested lease not found`).
pub struct LeaseService;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        _req: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        Err(unimplemented("LeaseGrant"))
    }

    async fn lease_revoke(
        &self,
        _req: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        Err(unimplemented("LeaseRevoke"))
    }

    type LeaseKeepAliveStream = Replies<pb::LeaseKeepAliveResponse>;

    async fn lease_keep_alive(
        &self,
        _req: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        Err(unimplemented("LeaseKeepAlive"))
    }

    async fn lease_time_to_live(
        &self,
        _req: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        Err(unimplemented("LeaseTimeToLive"))
    }

    async fn lease_leases(
        &self,
        _req: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        Err(unimplemented("LeaseLeases"))
    }
}
