//! Opening a member's data dir: the layout, bootstrap of a new member, and recovery of
//! the Raft node from the WAL on top of the store's applied index.
//!
//! Layout: `<data-dir>/member/wal/` (the [`Wal`] over [`FsDisk`]) and
//! `<data-dir>/member/snap/db/` (the sled-backed MVCC store). Membership comes from the
//! store once bootstrapped: `--initial-cluster` is read only for a fresh data dir (as etcd).
//! Called once by `EtcdServer::start`; never touches the network.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::members::{self, ClusterMeta, ExistingCluster};
use super::shared::KvStore;
use super::ClusterState;
use super::{ServerConfig, ServerError};
use crate::mvcc::{SledBackend, SledConfig, Store};
use crate::raft::{Config, Index, NodeId, RawNode, Snapshot};
use crate::wal::{FsDisk, Wal, WalOptions};

/// Everything recovered from the data dir, ready for the driver.
pub struct Opened {
    /// The WAL, positioned to append.
    pub wal: Wal<FsDisk>,
    /// The store.
    pub store: KvStore,
    /// The Raft node, restarted from the WAL.
    pub raw: RawNode,
    /// Cluster id and membership.
    pub meta: ClusterMeta,
    /// This member's id.
    pub member_id: u64,
}

/// The WAL directory of `data_dir`.
pub fn wal_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("member").join("wal")
}

/// The store directory of `data_dir`.
pub fn db_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("member").join("snap").join("db")
}

fn io_err(what: &str, e: impl std::fmt::Display) -> ServerError {
    ServerError::Storage(format!("{what}: {e}"))
}

/// The file that says the store of `data_dir` holds its cluster records: written once they
/// are durable, so a start that crashed before (the store directory exists, the records do
/// not) still counts as fresh and a joining member fetches the member list again.
fn bootstrapped_marker(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("member").join("snap").join("bootstrapped")
}

/// Records that the store of `data_dir` now holds its cluster records (see
/// [`bootstrapped_marker`]); call after `members::bootstrap`.
pub fn mark_bootstrapped(data_dir: &Path) -> Result<(), ServerError> {
    let marker = bootstrapped_marker(data_dir);
    std::fs::write(&marker, b"raftkv\n").map_err(|e| io_err("writing the bootstrap marker", e))?;
    let dir = marker.parent().expect("the marker has a parent");
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("syncing the bootstrap marker", e))
}

/// Whether `data_dir` holds no member yet (a join must first learn the cluster).
pub fn is_fresh(data_dir: &Path) -> bool {
    !bootstrapped_marker(data_dir).exists()
}

/// The records a data dir without any starts from: `--initial-cluster` for a new
/// cluster, the running members' for a join (`existing`, fetched by the caller).
fn first_meta(
    cfg: &ServerConfig,
    existing: Option<&ExistingCluster>,
) -> Result<ClusterMeta, ServerError> {
    match (cfg.initial_cluster_state, existing) {
        (ClusterState::New, _) => members::initial(cfg),
        (ClusterState::Existing, Some(existing)) => Ok(members::joined(existing)),
        (ClusterState::Existing, None) => Err(ServerError::Config(
            "--initial-cluster-state existing with an empty data dir needs the member \
             list of a running member (none was fetched)"
                .into(),
        )),
    }
}

/// Opens (or creates) the data dir of `cfg` and restarts the Raft node. `existing` is
/// the cluster to join when the data dir is empty and `--initial-cluster-state` is
/// `existing`.
pub fn open(cfg: &ServerConfig, existing: Option<&ExistingCluster>) -> Result<Opened, ServerError> {
    if let Some(existing) = existing {
        // Refuse before anything is created, so a corrected start finds the dir empty.
        if members::joining_id(cfg, existing).is_none() {
            return Err(ServerError::Config(format!(
                "member {:?} (peer URLs {:?}) is not in the existing cluster {:x}: add it \
                 first with `etcdctl member add`",
                cfg.name, cfg.advertise_peer_urls, existing.cluster_id
            )));
        }
    }
    let backend = SledBackend::open(&db_dir(&cfg.data_dir), SledConfig::default())
        .map_err(|e| io_err("opening the store", e))?;
    let mut store = Store::open(backend)?;
    let (wal, recovered) = Wal::open(FsDisk, wal_dir(&cfg.data_dir), WalOptions::default())?;
    let meta = match members::load(&store)? {
        Some(meta) => {
            if is_fresh(&cfg.data_dir) {
                // Records written, marker not (a crash in between): finish the job.
                mark_bootstrapped(&cfg.data_dir)?;
            }
            meta
        }
        None => {
            let meta = first_meta(cfg, existing)?;
            members::bootstrap(&mut store, &meta)?;
            mark_bootstrapped(&cfg.data_dir)?;
            meta
        }
    };
    let member_id = members::local_id(cfg, &meta)?;
    let snapshot = recovered.snapshot.clone();
    let store_applied = store.applied_index();
    if store_applied < snapshot.index.0 {
        return Err(ServerError::Storage(format!(
            "store applied index {store_applied} is below the WAL snapshot at {}",
            snapshot.index
        )));
    }
    // The store may be ahead of what the WAL says is committed (an installed snapshot, an
    // unsynced hard state): Raft restarts from what the log can back, and the apply loop
    // skips entries the store already holds.
    let log_commit = recovered.hard_state.commit.max(snapshot.index);
    let applied = Index(store_applied.min(log_commit.0));
    let state = recovered.into_raft_state(meta.conf_state.clone(), applied);
    let mut raw = RawNode::new(raft_config(cfg, member_id)?, state)
        .map_err(|e| ServerError::Storage(format!("recovering raft state: {e}")))?;
    if snapshot.index.0 > 0 {
        // The core keeps only metadata across a restart; a leader needs the snapshot
        // itself to catch followers up (the image is the store, read when sending).
        raw.compact(Snapshot {
            metadata: snapshot,
            data: Default::default(),
        });
    }
    Ok(Opened {
        wal,
        store,
        raw,
        meta,
        member_id,
    })
}

/// The Raft core's configuration: one tick per heartbeat interval.
fn raft_config(cfg: &ServerConfig, member_id: u64) -> Result<Config, ServerError> {
    let hb = cfg.heartbeat_interval.as_millis().max(1);
    let election_ticks = (cfg.election_timeout.as_millis() / hb) as u32;
    if election_ticks < 2 {
        return Err(ServerError::Config(format!(
            "--election-timeout ({} ms) must be at least twice --heartbeat-interval ({hb} ms)",
            cfg.election_timeout.as_millis()
        )));
    }
    let mut c = Config::new(NodeId(member_id));
    c.election_timeout_ticks = election_ticks;
    c.heartbeat_interval_ticks = 1;
    // Different timeouts after every restart, so two members never keep colliding.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    c.seed = member_id ^ nanos;
    Ok(c)
}
