//! The lease requests of [`EtcdServer`]: Grant and Revoke go through the log; renewals and
//! TTL lookups are answered by the leader's lessor (the only one that knows expiry), so a
//! follower answers [`ServerError::NotLeader`] and the API layer forwards to the leader.
//! Leases lists this member's applied leases.
//!
//! Called by `src/api/lease.rs`. Must not decide expiry: that is the driver's
//! (`lease_expiry.rs`).

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::shared::Applied;
use super::{EtcdServer, ServerError};
use crate::lease::TTL_MAX_SECS;
use crate::proto::etcdserverpb as pb;
use crate::proto::raftkvpb::internal_request::Request;

impl EtcdServer {
    /// LeaseGrant through the log: the server picks the id when `req.id` is 0.
    /// Errors: `LeaseTtlTooLarge` (before proposing), `LeaseExists` (at apply).
    pub async fn lease_grant(
        &self,
        mut req: pb::LeaseGrantRequest,
    ) -> Result<pb::LeaseGrantResponse, ServerError> {
        if req.ttl > TTL_MAX_SECS {
            return Err(ServerError::LeaseTtlTooLarge);
        }
        while req.id == 0 {
            let next = self.shared().next_request_id.fetch_add(1, Ordering::SeqCst);
            req.id = (next & (i64::MAX as u64)) as i64;
        }
        match self.propose(Request::LeaseGrant(req)).await? {
            Applied::LeaseGrant { id, ttl } => Ok(pb::LeaseGrantResponse {
                header: Some(self.header()),
                id,
                ttl,
                error: String::new(),
            }),
            other => unreachable!("a lease grant applied as {other:?}"),
        }
    }

    /// LeaseRevoke through the log: deletes the attached keys in one revision.
    /// Errors: `LeaseNotFound` (at apply).
    pub async fn lease_revoke(&self, id: i64) -> Result<pb::LeaseRevokeResponse, ServerError> {
        match self
            .propose(Request::LeaseRevoke(pb::LeaseRevokeRequest { id }))
            .await?
        {
            Applied::LeaseRevoke(revision) => Ok(pb::LeaseRevokeResponse {
                header: Some(self.shared().header(revision)),
            }),
            other => unreachable!("a lease revoke applied as {other:?}"),
        }
    }

    /// Renews lease `id` on the leader: TTL = granted TTL, or 0 for an unknown or expired
    /// lease (etcd's keep-alive answer, not an error). `NotLeader` on other members.
    pub fn lease_renew(&self, id: i64) -> Result<pb::LeaseKeepAliveResponse, ServerError> {
        let s = self.shared();
        s.check_accepting()?;
        let renewed = {
            let mut lessor = s.lessor.lock().expect("lessor lock poisoned");
            if !lessor.is_primary() {
                return Err(ServerError::NotLeader);
            }
            lessor.renew(id, Instant::now())
        };
        if renewed.is_some() {
            s.metrics.lease_renewed.inc();
        }
        Ok(pb::LeaseKeepAliveResponse {
            header: Some(self.header()),
            id,
            ttl: renewed.unwrap_or(0),
        })
    }

    /// LeaseTimeToLive on the leader (TTL -1 for an unknown lease, not an error);
    /// `NotLeader` on other members.
    pub fn lease_time_to_live(
        &self,
        req: pb::LeaseTimeToLiveRequest,
    ) -> Result<pb::LeaseTimeToLiveResponse, ServerError> {
        let s = self.shared();
        s.check_accepting()?;
        let found = {
            let lessor = s.lessor.lock().expect("lessor lock poisoned");
            if !lessor.is_primary() {
                return Err(ServerError::NotLeader);
            }
            lessor.time_to_live(req.id, Instant::now())
        };
        let mut resp = pb::LeaseTimeToLiveResponse {
            header: Some(self.header()),
            id: req.id,
            ttl: -1,
            granted_ttl: 0,
            keys: Vec::new(),
        };
        if let Some(t) = found {
            resp.ttl = t.remaining_secs;
            resp.granted_ttl = t.granted_secs;
            if req.keys {
                resp.keys = t.keys.into_iter().map(Into::into).collect();
            }
        }
        Ok(resp)
    }

    /// LeaseLeases: every lease this member has applied.
    pub fn lease_leases(&self) -> Result<pb::LeaseLeasesResponse, ServerError> {
        let s = self.shared();
        let ids = s.lessor.lock().expect("lessor lock poisoned").ids();
        Ok(pb::LeaseLeasesResponse {
            header: Some(self.header()),
            leases: ids.into_iter().map(|id| pb::LeaseStatus { id }).collect(),
        })
    }

    /// The client URLs of the leader as this member knows them (for forwarding lease
    /// renewals and lookups); `None` without a leader or when this member leads.
    pub fn leader_client_urls(&self) -> Option<Vec<String>> {
        let s = self.shared();
        let leader = s.leader().filter(|&l| l != s.member_id)?;
        let members = s.members.read().expect("members lock poisoned");
        members
            .get(&leader)
            .map(|m| m.client_ur_ls.clone())
            .filter(|u| !u.is_empty())
    }
}
