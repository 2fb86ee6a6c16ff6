//! [`Metrics`]: the server's Prometheus metrics, with etcd's names where the meaning is the
//! same, in one `prometheus-client` registry the API layer encodes for `/metrics`.
//!
//! The driver thread updates them; everything here is lock-free atomics except encoding.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The server's metrics and the registry that names them.
pub struct Metrics {
    registry: Registry,
    /// 1 when this member knows a leader, else 0 (`etcd_server_has_leader`).
    pub has_leader: Gauge,
    /// 1 when this member is the leader, else 0 (`etcd_server_is_leader`).
    pub is_leader: Gauge,
    /// Leader changes seen by this member (`etcd_server_leader_changes_seen_total`).
    pub leader_changes_seen: Counter,
    /// Entries committed (`etcd_server_proposals_committed_total`; etcd's is a gauge of
    /// the commit index, ours counts the same thing).
    pub proposals_committed: Gauge,
    /// Entries applied (`etcd_server_proposals_applied_total`).
    pub proposals_applied: Gauge,
    /// Proposals waiting to be applied (`etcd_server_proposals_pending`).
    pub proposals_pending: Gauge,
    /// Proposals that failed (`etcd_server_proposals_failed_total`).
    pub proposals_failed: Counter,
    /// WAL fsync latency (`etcd_disk_wal_fsync_duration_seconds`).
    pub wal_fsync_duration: Histogram,
    /// Backend commit latency (`etcd_disk_backend_commit_duration_seconds`).
    pub backend_commit_duration: Histogram,
    /// Backend size (`etcd_mvcc_db_total_size_in_bytes`).
    pub db_total_size: Gauge,
    /// Backend size in use (`etcd_mvcc_db_total_size_in_use_in_bytes`).
    pub db_total_size_in_use: Gauge,
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
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Fresh metrics, all zero, registered under etcd's names.
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            has_leader: Gauge::default(),
            is_leader: Gauge::default(),
            leader_changes_seen: Counter::default(),
            proposals_committed: Gauge::default(),
            proposals_applied: Gauge::default(),
            proposals_pending: Gauge::default(),
            proposals_failed: Counter::default(),
            wal_fsync_duration: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            backend_commit_duration: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            db_total_size: Gauge::default(),
            db_total_size_in_use: Gauge::default(),
            watcher_total: Gauge::default(),
            slow_watcher_total: Gauge::default(),
            watch_stream_total: Gauge::default(),
            lease_granted: Counter::default(),
            lease_revoked: Counter::default(),
            lease_renewed: Counter::default(),
            lease_ttl: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
        };
        m.register_all()
    }

    fn register_all(mut self) -> Metrics {
        let r = &mut self.registry;
        r.register(
            "etcd_server_has_leader",
            "Whether a leader exists",
            self.has_leader.clone(),
        );
        r.register(
            "etcd_server_is_leader",
            "Whether this member is the leader",
            self.is_leader.clone(),
        );
        r.register(
            "etcd_server_leader_changes_seen",
            "The number of leader changes seen",
            self.leader_changes_seen.clone(),
        );
        r.register(
            "etcd_server_proposals_committed_total",
            "The total number of consensus proposals committed",
            self.proposals_committed.clone(),
        );
        r.register(
            "etcd_server_proposals_applied_total",
            "The total number of consensus proposals applied",
            self.proposals_applied.clone(),
        );
        r.register(
            "etcd_server_proposals_pending",
            "The current number of pending proposals to commit",
            self.proposals_pending.clone(),
        );
        r.register(
            "etcd_server_proposals_failed",
            "The total number of failed proposals seen",
            self.proposals_failed.clone(),
        );
        r.register(
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL",
            self.wal_fsync_duration.clone(),
        );
        r.register(
            "etcd_disk_backend_commit_duration_seconds",
            "The latency distributions of commit called by backend",
            self.backend_commit_duration.clone(),
        );
        r.register(
            "etcd_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database physically allocated in bytes",
            self.db_total_size.clone(),
        );
        r.register(
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "Total size of the underlying database logically in use in bytes",
            self.db_total_size_in_use.clone(),
        );
        r.register(
            "etcd_debugging_mvcc_watcher_total",
            "Total number of watchers.",
            self.watcher_total.clone(),
        );
        r.register(
            "etcd_debugging_mvcc_slow_watcher_total",
            "Total number of unsynced slow watchers.",
            self.slow_watcher_total.clone(),
        );
        r.register(
            "etcd_debugging_mvcc_watch_stream_total",
            "Total number of watch streams.",
            self.watch_stream_total.clone(),
        );
        self.register_lease();
        self
    }

    fn register_lease(&mut self) {
        let r = &mut self.registry;
        // prometheus-client appends `_total` to counters.
        r.register(
            "etcd_debugging_lease_granted",
            "The total number of granted leases",
            self.lease_granted.clone(),
        );
        r.register(
            "etcd_debugging_lease_revoked",
            "The total number of revoked leases",
            self.lease_revoked.clone(),
        );
        r.register(
            "etcd_debugging_lease_renewed",
            "The number of renewed leases seen by the leader",
            self.lease_renewed.clone(),
        );
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
