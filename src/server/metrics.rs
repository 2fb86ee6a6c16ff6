//! [`Metrics`]: the server's Prometheus metrics under etcd 3.5's names, types, help texts,
//! labels and buckets (etcd's `etcdserver/metrics.go`, `wal/metrics.go`,
//! `mvcc/backend/metrics.go`, `mvcc/metrics.go`, `snap/metrics.go`; peer traffic in
//! `peer_metrics.rs`), in one `prometheus-client` registry the API layer encodes for
//! `/metrics`.
//!
//! Who updates what: the driver thread (`driver.rs`, `ready.rs`, `slow_ops.rs`) the leader,
//! proposal, WAL, slow-operation and size metrics; the apply loop the backend commit and
//! lease metrics; the inbox the snapshot-install ones; the peer transport the network ones.
//! Everything here is lock-free atomics except encoding; nothing here does IO.
//!
//! The exposition is OpenMetrics text: a counter's `# TYPE` line names it without the
//! `_total` its samples carry, and help texts end with a `.` prometheus-client adds.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::peer_metrics::{id_hex, IdLabel, PeerMetrics};
use super::{CLUSTER_VERSION, SERVER_VERSION};

/// The server's metrics and the registry that names them.
pub struct Metrics {
    registry: Registry,
    /// 1 when this member knows a leader, else 0 (`etcd_server_has_leader`).
    pub has_leader: Gauge,
    /// 1 when this member is the leader, else 0 (`etcd_server_is_leader`).
    pub is_leader: Gauge,
    /// 1 when this member is a learner, else 0 (`etcd_server_is_learner`).
    pub is_learner: Gauge,
    /// Leader changes seen by this member, counted on every member when it learns of a new
    /// leader (`etcd_server_leader_changes_seen_total`).
    pub leader_changes_seen: Counter,
    /// Heartbeats the leader sent late (`etcd_server_heartbeat_send_failures_total`).
    pub heartbeat_send_failures: Counter,
    /// Applies over `--experimental-warning-apply-duration` (`etcd_server_slow_apply_total`).
    pub slow_apply: Counter,
    /// The commit index (`etcd_server_proposals_committed_total`, a gauge as in etcd).
    pub proposals_committed: Gauge,
    /// The applied index (`etcd_server_proposals_applied_total`, a gauge as in etcd).
    pub proposals_applied: Gauge,
    /// This member's proposals waiting to be applied (`etcd_server_proposals_pending`).
    pub proposals_pending: Gauge,
    /// This member's proposals given up before they were applied: the client timed out or
    /// went away (`etcd_server_proposals_failed_total`).
    pub proposals_failed: Counter,
    /// `--quota-backend-bytes` in force (`etcd_server_quota_backend_bytes`).
    pub quota_backend_bytes: Gauge,
    /// 1 while a snapshot from the leader is being installed
    /// (`etcd_server_snapshot_apply_in_progress_total`).
    pub snapshot_apply_in_progress: Gauge,
    /// `etcd_server_id{server_id}`, `etcd_server_version{server_version}` and
    /// `etcd_cluster_version{cluster_version}`: 1 for the current value.
    info: [Family<IdLabel, Gauge>; 3],
    /// WAL fdatasync latency, one sample per sync (`etcd_disk_wal_fsync_duration_seconds`).
    pub wal_fsync_duration: Histogram,
    /// Bytes written to the WAL since start (`etcd_disk_wal_write_bytes_total`, a gauge as
    /// in etcd).
    pub wal_write_bytes: Gauge,
    /// Backend batch commit latency (`etcd_disk_backend_commit_duration_seconds`).
    pub backend_commit_duration: Histogram,
    /// Backend size (`etcd_mvcc_db_total_size_in_bytes`, and etcd 3.4's
    /// `etcd_debugging_mvcc_db_total_size_in_bytes`).
    pub db_total_size: Gauge,
    /// Backend size in use (`etcd_mvcc_db_total_size_in_use_in_bytes`).
    pub db_total_size_in_use: Gauge,
    /// Time to install a snapshot image received from the leader
    /// (`etcd_snap_db_save_total_duration_seconds`).
    pub snap_db_save_duration: Histogram,
    /// Watchers (`etcd_debugging_mvcc_watcher_total`).
    pub watcher_total: Gauge,
    /// Unsynced or parked watchers (`etcd_debugging_mvcc_slow_watcher_total`).
    pub slow_watcher_total: Gauge,
    /// Open watch streams (`etcd_debugging_mvcc_watch_stream_total`).
    pub watch_stream_total: Gauge,
    /// Leases granted, counted as each member applies them
    /// (`etcd_debugging_lease_granted_total`).
    pub lease_granted: Counter,
    /// Leases revoked (by request or expiry), as applied
    /// (`etcd_debugging_lease_revoked_total`).
    pub lease_revoked: Counter,
    /// Renewals served by the leader (`etcd_debugging_lease_renewed_total`).
    pub lease_renewed: Counter,
    /// Granted TTLs in seconds (`etcd_debugging_lease_ttl_total`).
    pub lease_ttl: Histogram,
    /// Peer traffic (`etcd_network_*`).
    pub peer: PeerMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Fresh metrics, all zero, registered under etcd's names.
    pub fn new() -> Metrics {
        // etcd's disk latency buckets: 1 ms doubling to 8.192 s.
        let disk = || Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let mut m = Metrics {
            registry: Registry::default(),
            has_leader: Gauge::default(),
            is_leader: Gauge::default(),
            is_learner: Gauge::default(),
            leader_changes_seen: Counter::default(),
            heartbeat_send_failures: Counter::default(),
            slow_apply: Counter::default(),
            proposals_committed: Gauge::default(),
            proposals_applied: Gauge::default(),
            proposals_pending: Gauge::default(),
            proposals_failed: Counter::default(),
            quota_backend_bytes: Gauge::default(),
            snapshot_apply_in_progress: Gauge::default(),
            info: Default::default(),
            wal_fsync_duration: disk(),
            wal_write_bytes: Gauge::default(),
            backend_commit_duration: disk(),
            db_total_size: Gauge::default(),
            db_total_size_in_use: Gauge::default(),
            // 100 ms doubling to 51.2 s.
            snap_db_save_duration: Histogram::new(exponential_buckets(0.1, 2.0, 10)),
            watcher_total: Gauge::default(),
            slow_watcher_total: Gauge::default(),
            watch_stream_total: Gauge::default(),
            lease_granted: Counter::default(),
            lease_revoked: Counter::default(),
            lease_renewed: Counter::default(),
            lease_ttl: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            peer: PeerMetrics::default(),
        };
        m.register_server();
        m.register_disk_and_mvcc();
        m.register_lease_and_watch();
        m.peer.register(&mut m.registry);
        m
    }

    /// Fills in what is known once the member id is: `etcd_server_id`, the version info
    /// gauges, the quota gauge and the peer metrics' `Local` label. Called by the driver as
    /// it starts.
    pub fn note_member(&self, member_id: u64, quota_backend_bytes: u64) {
        let [server_id, server_version, cluster_version] = &self.info;
        server_id
            .get_or_create(&[("server_id", id_hex(member_id))])
            .set(1);
        server_version
            .get_or_create(&[("server_version", SERVER_VERSION.to_string())])
            .set(1);
        // etcd labels the cluster version with major.minor only.
        let major_minor = CLUSTER_VERSION.rsplitn(2, '.').last().unwrap_or_default();
        cluster_version
            .get_or_create(&[("cluster_version", major_minor.to_string())])
            .set(1);
        self.quota_backend_bytes.set(quota_backend_bytes as i64);
        self.peer.set_local(member_id);
    }

    fn register_server(&mut self) {
        // prometheus-client appends `_total` to counters and `.` to help texts.
        let r = &mut self.registry;
        let gauges = [
            (
                "etcd_server_has_leader",
                "Whether or not a leader exists. 1 is existence, 0 is not",
                &self.has_leader,
            ),
            (
                "etcd_server_is_leader",
                "Whether or not this member is a leader. 1 if is, 0 otherwise",
                &self.is_leader,
            ),
            (
                "etcd_server_is_learner",
                "Whether or not this member is a learner. 1 if is, 0 otherwise",
                &self.is_learner,
            ),
            (
                "etcd_server_proposals_committed_total",
                "The total number of consensus proposals committed",
                &self.proposals_committed,
            ),
            (
                "etcd_server_proposals_applied_total",
                "The total number of consensus proposals applied",
                &self.proposals_applied,
            ),
            (
                "etcd_server_proposals_pending",
                "The current number of pending proposals to commit",
                &self.proposals_pending,
            ),
            (
                "etcd_server_quota_backend_bytes",
                "Current backend storage quota size in bytes",
                &self.quota_backend_bytes,
            ),
            (
                "etcd_server_snapshot_apply_in_progress_total",
                "1 if the server is applying the incoming snapshot. 0 if none",
                &self.snapshot_apply_in_progress,
            ),
        ];
        for (name, help, gauge) in gauges {
            r.register(name, help, gauge.clone());
        }
        let counters = [
            (
                "etcd_server_leader_changes_seen",
                "The number of leader changes seen",
                &self.leader_changes_seen,
            ),
            (
                "etcd_server_heartbeat_send_failures",
                "The total number of leader heartbeat send failures \
                 (likely overloaded from slow disk)",
                &self.heartbeat_send_failures,
            ),
            (
                "etcd_server_slow_apply",
                "The total number of slow apply requests (likely overloaded from slow disk)",
                &self.slow_apply,
            ),
            (
                "etcd_server_proposals_failed",
                "The total number of failed proposals seen",
                &self.proposals_failed,
            ),
        ];
        for (name, help, counter) in counters {
            r.register(name, help, counter.clone());
        }
        let [server_id, server_version, cluster_version] = &self.info;
        r.register(
            "etcd_server_id",
            "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID",
            server_id.clone(),
        );
        r.register(
            "etcd_server_version",
            "Which version is running. 1 for 'server_version' label with current version",
            server_version.clone(),
        );
        r.register(
            "etcd_cluster_version",
            "Which version is running. 1 for 'cluster_version' label with current cluster version",
            cluster_version.clone(),
        );
    }

    fn register_disk_and_mvcc(&mut self) {
        let r = &mut self.registry;
        r.register(
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL",
            self.wal_fsync_duration.clone(),
        );
        r.register(
            "etcd_disk_wal_write_bytes_total",
            "Total number of bytes written in WAL",
            self.wal_write_bytes.clone(),
        );
        r.register(
            "etcd_disk_backend_commit_duration_seconds",
            "The latency distributions of commit called by backend",
            self.backend_commit_duration.clone(),
        );
        let physical = "Total size of the underlying database physically allocated in bytes";
        r.register(
            "etcd_mvcc_db_total_size_in_bytes",
            physical,
            self.db_total_size.clone(),
        );
        // etcd 3.4's name, which older dashboards and alerts still read.
        r.register(
            "etcd_debugging_mvcc_db_total_size_in_bytes",
            physical,
            self.db_total_size.clone(),
        );
        r.register(
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "Total size of the underlying database logically in use in bytes",
            self.db_total_size_in_use.clone(),
        );
        r.register(
            "etcd_snap_db_save_total_duration_seconds",
            "The total latency distributions of v3 snapshot save",
            self.snap_db_save_duration.clone(),
        );
    }

    fn register_lease_and_watch(&mut self) {
        let r = &mut self.registry;
        let gauges = [
            (
                "etcd_debugging_mvcc_watcher_total",
                "Total number of watchers",
                &self.watcher_total,
            ),
            (
                "etcd_debugging_mvcc_slow_watcher_total",
                "Total number of unsynced slow watchers",
                &self.slow_watcher_total,
            ),
            (
                "etcd_debugging_mvcc_watch_stream_total",
                "Total number of watch streams",
                &self.watch_stream_total,
            ),
        ];
        for (name, help, gauge) in gauges {
            r.register(name, help, gauge.clone());
        }
        let counters = [
            (
                "etcd_debugging_lease_granted",
                "The total number of granted leases",
                &self.lease_granted,
            ),
            (
                "etcd_debugging_lease_revoked",
                "The total number of revoked leases",
                &self.lease_revoked,
            ),
            (
                "etcd_debugging_lease_renewed",
                "The number of renewed leases seen by the leader",
                &self.lease_renewed,
            ),
        ];
        for (name, help, counter) in counters {
            r.register(name, help, counter.clone());
        }
        r.register(
            "etcd_debugging_lease_ttl_total",
            "Bucketed histogram of lease TTLs",
            self.lease_ttl.clone(),
        );
    }

    /// The registry, for callers that add their own metrics to the same `/metrics` page.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric (the body of `/metrics`).
    pub fn encode_text(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_info_uses_etcd_labels() {
        let m = Metrics::new();
        m.note_member(0xbdae, 1 << 30);
        let text = m.encode_text();
        for line in [
            "etcd_server_id{server_id=\"bdae\"} 1",
            &format!("etcd_server_version{{server_version=\"{SERVER_VERSION}\"}} 1"),
            "etcd_cluster_version{cluster_version=\"3.5\"} 1",
            "etcd_server_quota_backend_bytes 1073741824",
            "# TYPE etcd_server_leader_changes_seen counter",
            "# TYPE etcd_disk_wal_write_bytes_total gauge",
            "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"8.192\"} 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
    }
}
