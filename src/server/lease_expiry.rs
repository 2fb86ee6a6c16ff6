//! The leader's side of leases, run by the driver thread between `Ready`s: follow
//! leadership (promote the lessor on becoming leader, so every lease gets its remaining
//! TTL from now and a failover never expires everything at once; demote on losing it) and
//! propose a LeaseRevoke through the log for each expired lease. Expiry needs no client:
//! the driver's loop runs on its own clock.
//!
//! Only this file decides expiry. A revoke proposed but lost (leadership changed) is
//! proposed again after a retry delay while the lease is still expired here.

use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message as _;

use super::driver::Driver;
use crate::proto::etcdserverpb as pb;
use crate::proto::raftkvpb::{self, internal_request::Request};

/// How often the driver looks for expired leases.
pub const EXPIRY_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Revokes proposed per check at most (etcd revokes in bounded batches too).
const REVOKES_PER_CHECK_MAX: usize = 500;

impl Driver {
    fn corrupt(&self) -> bool {
        let alarms = self.shared.alarms.read().unwrap_or_else(|e| e.into_inner());
        alarms.has(pb::AlarmType::Corrupt)
    }

    /// Promotes/demotes the lessor with leadership and proposes revokes of expired leases.
    pub(super) fn lease_housekeeping(&mut self, now: Instant) {
        let leading = self.raw.leader() == Some(self.raw.id());
        // Read before the lessor is locked: the two locks are never held together.
        let corrupt = self.corrupt();
        let expired = {
            let mut lessor = self.shared.lessor.lock().expect("lessor lock poisoned");
            match (leading, lessor.is_primary()) {
                (true, false) => {
                    lessor.promote(now);
                    tracing::info!("leading: lease expiry starts, remaining TTLs from now");
                }
                (false, true) => lessor.demote(),
                _ => {}
            }
            if !leading || corrupt {
                // Under CORRUPT nothing may change the store: etcd's corrupt applier
                // refuses lease revokes too, so expired leases keep their keys.
                return;
            }
            let retry = 3 * self.shared.cfg.election_timeout;
            lessor.expired(now, retry, REVOKES_PER_CHECK_MAX)
        };
        for id in expired {
            tracing::debug!(lease = id, "lease expired: proposing its revoke");
            let req = raftkvpb::InternalRequest {
                header: Some(raftkvpb::RequestHeader::default()),
                request: Some(Request::LeaseRevoke(pb::LeaseRevokeRequest { id })),
            };
            if self.raw.propose(Bytes::from(req.encode_to_vec())).is_err() {
                // Leadership is gone; the next leader expires it.
                break;
            }
        }
    }
}
