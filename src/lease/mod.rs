//! Leases: time-bound handles that keys attach to (etcd's `lease` package).
//!
//! [`Lessor`] holds every lease of a member: its granted TTL, the keys attached to it, and
//! (on the leader only) its expiry instant. It is pure bookkeeping: it never proposes,
//! never touches the store and never reads a clock itself (callers pass `now`). The server
//! (`src/server/`) drives it: grants, revokes and checkpoints are applied from the Raft log
//! on every member; attachments follow the store's commit events; the leader's driver asks
//! [`Lessor::expired`] which leases to revoke through the log. Persistence: each lease is
//! one mvcc app meta record ([`record`]); attachments are rebuilt from
//! `Store::leased_keys` after a restart or an installed snapshot.

mod lessor;
pub mod record;

pub use lessor::{Lease, LeaseError, Lessor, TimeToLive};

/// etcd's largest TTL (`MaxLeaseTTL`, 9,000,000,000 s); larger grants fail.
pub const TTL_MAX_SECS: i64 = 9_000_000_000;

/// The smallest TTL a member grants: ceil(1.5 x election timeout) in seconds, as etcd's
/// `minTTL` (a lease must outlive one leader election).
pub fn min_ttl_secs(election_timeout: std::time::Duration) -> i64 {
    let ms = election_timeout.as_millis() as i64 * 3 / 2;
    ((ms + 999) / 1000).max(1)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn min_ttl_is_one_and_a_half_election_timeouts_rounded_up() {
        assert_eq!(super::min_ttl_secs(Duration::from_millis(1000)), 2);
        assert_eq!(super::min_ttl_secs(Duration::from_millis(500)), 1);
        assert_eq!(super::min_ttl_secs(Duration::from_millis(2000)), 3);
        assert_eq!(super::min_ttl_secs(Duration::from_millis(100)), 1);
    }
}
