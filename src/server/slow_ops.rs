//! [`SlowOps`]: etcd's "took too long" warnings for the three waits that betray a slow
//! disk or an overloaded member, with etcd's log wording and fields, and the counters
//! etcd bumps with them:
//!
//! - **Applying a batch** of committed entries slower than
//!   `--experimental-warning-apply-duration` (100 ms): `apply request took too long`,
//!   counted in `etcd_server_slow_apply_total`.
//! - **One WAL fdatasync** slower than 1 s (etcd's fixed `warnSyncDuration`):
//!   `slow fdatasync` (every sync is also observed in `etcd_disk_wal_fsync_duration_seconds`).
//! - **A heartbeat from the leader** to one peer more than two heartbeat intervals after the
//!   previous one (etcd's timeout detector): `leader failed to send out heartbeat on time;
//!   took too long, leader is overloaded likely from slow disk`, counted in
//!   `etcd_server_heartbeat_send_failures_total`.
//!
//! etcd warns per applied request; the driver applies committed entries in one MVCC batch
//! per `Ready`, so raftkv measures and warns per batch (with the entry count and index
//! range), and counts one slow apply per slow batch.
//!
//! The caller measures and passes durations and instants in, so this file never reads the
//! clock and its decisions are unit-tested with made-up times. Owned by the driver thread
//! (`ready.rs` calls it around the WAL sync, the apply and each heartbeat sent).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Metrics;
use crate::raft::NodeId;

/// A WAL sync slower than this is logged (etcd's `warnSyncDuration`).
pub const WARN_SYNC_DURATION: Duration = Duration::from_secs(1);

/// The thresholds and the per-peer heartbeat clock.
#[derive(Debug)]
pub struct SlowOps {
    /// An apply batch slower than this is logged and counted.
    apply_expected: Duration,
    /// `--heartbeat-interval`; a gap over twice this between heartbeats is a failure.
    heartbeat_interval: Duration,
    /// When this member, as leader, last sent a heartbeat to each peer.
    heartbeat_sent: HashMap<NodeId, Instant>,
}

impl SlowOps {
    /// Thresholds from the member's configuration.
    pub fn new(apply_expected: Duration, heartbeat_interval: Duration) -> SlowOps {
        SlowOps {
            apply_expected,
            heartbeat_interval,
            heartbeat_sent: HashMap::new(),
        }
    }

    /// An apply of `entries` entries (indexes `first..=last`) took `took`. Returns whether
    /// it was slow (then it was logged and counted).
    pub fn apply_took(&self, took: Duration, (first, last): (u64, u64), m: &Metrics) -> bool {
        if took <= self.apply_expected {
            return false;
        }
        m.slow_apply.inc();
        tracing::warn!(
            took = ?took,
            "expected-duration" = ?self.apply_expected,
            entries = last + 1 - first,
            first_index = first,
            last_index = last,
            "apply request took too long"
        );
        true
    }

    /// One WAL fdatasync took `took`: observed in the fsync histogram, logged when slow.
    /// Returns whether it was slow.
    pub fn fsync_took(&self, took: Duration, m: &Metrics) -> bool {
        m.wal_fsync_duration.observe(took.as_secs_f64());
        if took <= WARN_SYNC_DURATION {
            return false;
        }
        tracing::warn!(
            took = ?took,
            "expected-duration" = ?WARN_SYNC_DURATION,
            "slow fdatasync"
        );
        true
    }

    /// The leader sends a heartbeat to `to` at `now`. Returns whether it was late: more
    /// than two heartbeat intervals after the previous one to the same peer (etcd's
    /// timeout detector); then it was logged and counted.
    pub fn heartbeat_sent(&mut self, to: NodeId, now: Instant, m: &Metrics) -> bool {
        let expected = 2 * self.heartbeat_interval;
        let previous = self.heartbeat_sent.insert(to, now);
        let Some(gap) = previous.map(|t| now.saturating_duration_since(t)) else {
            return false;
        };
        if gap <= expected {
            return false;
        }
        m.heartbeat_send_failures.inc();
        tracing::warn!(
            to = %format!("{:x}", to.0),
            "heartbeat-interval" = ?self.heartbeat_interval,
            "expected-duration" = ?expected,
            "exceeded-duration" = ?(gap - expected),
            "leader failed to send out heartbeat on time; took too long, leader is \
             overloaded likely from slow disk"
        );
        true
    }

    /// Forgets the heartbeat clock: called when leadership changes, so that a member that
    /// leads again is not blamed for the time it did not lead.
    pub fn reset_heartbeats(&mut self) {
        self.heartbeat_sent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(m: &Metrics, name: &str) -> String {
        let text = m.encode_text();
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing in:\n{text}"));
        line.rsplit(' ').next().unwrap().to_string()
    }

    #[test]
    fn slow_apply_is_counted_past_the_expected_duration() {
        let m = Metrics::new();
        let slow = SlowOps::new(Duration::from_millis(100), Duration::from_millis(100));
        assert!(!slow.apply_took(Duration::from_millis(100), (1, 1), &m));
        assert_eq!(count(&m, "etcd_server_slow_apply_total"), "0");
        assert!(slow.apply_took(Duration::from_millis(101), (5, 7), &m));
        assert_eq!(count(&m, "etcd_server_slow_apply_total"), "1");
        let zero = SlowOps::new(Duration::ZERO, Duration::from_millis(100));
        assert!(zero.apply_took(Duration::from_nanos(1), (8, 8), &m));
        assert_eq!(count(&m, "etcd_server_slow_apply_total"), "2");
    }

    #[test]
    fn slow_fsync_is_observed_and_flagged_past_one_second() {
        let m = Metrics::new();
        let slow = SlowOps::new(Duration::from_millis(100), Duration::from_millis(100));
        assert!(!slow.fsync_took(Duration::from_millis(3), &m));
        assert!(slow.fsync_took(Duration::from_millis(1500), &m));
        assert_eq!(count(&m, "etcd_disk_wal_fsync_duration_seconds_count"), "2");
        let text = m.encode_text();
        assert!(
            text.contains("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"1.024\"} 1"),
            "the slow sync lands above the 1.024 s bucket:\n{text}"
        );
    }

    #[test]
    fn late_heartbeats_are_counted_per_peer_and_reset_with_leadership() {
        let m = Metrics::new();
        let mut slow = SlowOps::new(Duration::from_millis(100), Duration::from_millis(100));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert!(
            !slow.heartbeat_sent(NodeId(2), at(0), &m),
            "first one: no gap"
        );
        assert!(
            !slow.heartbeat_sent(NodeId(2), at(200), &m),
            "exactly 2 intervals"
        );
        assert!(
            !slow.heartbeat_sent(NodeId(3), at(300), &m),
            "another peer's clock"
        );
        assert!(
            slow.heartbeat_sent(NodeId(2), at(450), &m),
            "250 ms > 200 ms"
        );
        assert_eq!(count(&m, "etcd_server_heartbeat_send_failures_total"), "1");
        slow.reset_heartbeats();
        assert!(!slow.heartbeat_sent(NodeId(2), at(5000), &m), "clock reset");
        assert_eq!(count(&m, "etcd_server_heartbeat_send_failures_total"), "1");
    }
}
