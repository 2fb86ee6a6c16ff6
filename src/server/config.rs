//! The settings of one member ([`ServerConfig`]), filled by the binary from etcd's flags.
//!
//! Plain data with etcd's defaults; nothing here touches the disk or the network.

use std::path::PathBuf;
use std::time::Duration;

/// Whether this member bootstraps a new cluster or joins/restarts an existing one
/// (`--initial-cluster-state`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClusterState {
    /// Bootstrap a brand-new cluster from `initial_cluster`.
    #[default]
    New,
    /// Join a cluster that already exists: with an empty data dir the binary first asks
    /// the members of `initial_cluster` for the cluster id and member list (this member
    /// must have been added with MemberAdd), see `EtcdServer::start_joining`; with a data
    /// dir both states are ignored (as etcd).
    Existing,
}

/// Everything [`super::EtcdServer::start`] needs to know about this member.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// This member's name (`--name`); must appear in `initial_cluster` for a new cluster.
    pub name: String,
    /// Where the WAL and the store live (`--data-dir`).
    pub data_dir: PathBuf,
    /// Every initial member: (name, peer URLs) (`--initial-cluster`). Ignored on restart.
    pub initial_cluster: Vec<(String, Vec<String>)>,
    /// New or existing cluster (`--initial-cluster-state`).
    pub initial_cluster_state: ClusterState,
    /// Mixed into member and cluster ids so that two clusters never share ids.
    pub initial_cluster_token: String,
    /// Client URLs this member publishes to the cluster (`--advertise-client-urls`).
    pub advertise_client_urls: Vec<String>,
    /// Peer URLs this member is reached at (`--initial-advertise-peer-urls`).
    pub advertise_peer_urls: Vec<String>,
    /// One Raft tick (`--heartbeat-interval`, 100 ms).
    pub heartbeat_interval: Duration,
    /// Election timeout (`--election-timeout`, 1000 ms); a whole number of heartbeats.
    pub election_timeout: Duration,
    /// Applied entries between two snapshots (`--snapshot-count`, 10000).
    pub snapshot_count: u64,
    /// Largest client request accepted (`--max-request-bytes`, 1.5 MiB).
    pub max_request_bytes: usize,
    /// Most operations in one txn (`--max-txn-ops`, 128).
    pub max_txn_ops: usize,
    /// Backend size quota (`--quota-backend-bytes`, 0 = the 2 GiB default).
    pub quota_backend_bytes: u64,
    /// An apply batch slower than this logs "apply request took too long" and counts in
    /// `etcd_server_slow_apply_total` (`--experimental-warning-apply-duration`, 100 ms).
    pub warning_apply_duration: Duration,
    /// FAULT INJECTION, for the jepsen harness's self-test only (hidden flag
    /// `--unsafe-test-stale-reads`, default false): serve linearizable reads from local state
    /// without a ReadIndex round, exactly like serializable reads. Breaks linearizability on
    /// purpose; never set it outside that test.
    pub unsafe_test_stale_reads: bool,
}

impl ServerConfig {
    /// A single-member configuration with etcd's defaults, named `name`, in `data_dir`,
    /// with peer URL `http://localhost:2380` and client URL `http://localhost:2379`.
    pub fn new(name: &str, data_dir: PathBuf) -> ServerConfig {
        let peer = "http://localhost:2380".to_string();
        ServerConfig {
            name: name.to_string(),
            data_dir,
            initial_cluster: vec![(name.to_string(), vec![peer.clone()])],
            initial_cluster_state: ClusterState::New,
            initial_cluster_token: "etcd-cluster".to_string(),
            advertise_client_urls: vec!["http://localhost:2379".to_string()],
            advertise_peer_urls: vec![peer],
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: Duration::from_millis(1000),
            snapshot_count: 10_000,
            max_request_bytes: 1536 * 1024,
            max_txn_ops: 128,
            quota_backend_bytes: 0,
            warning_apply_duration: Duration::from_millis(100),
            unsafe_test_stale_reads: false,
        }
    }
}
