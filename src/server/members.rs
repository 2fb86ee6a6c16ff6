//! The cluster's identity and membership records, kept as MVCC app meta so that they are
//! written atomically with the applied index, survive restarts, and ship inside snapshots.
//!
//! Records (all under the `cluster/` prefix of the store's app meta):
//! - `cluster/id`: the cluster id, 8 bytes big-endian;
//! - `cluster/conf_state`: the Raft membership as of the applied index (`raftkvpb::ConfState`);
//! - `cluster/member/<id, 8 bytes BE>`: one `etcdserverpb::Member` per member;
//! - `cluster/removed/<id, 8 bytes BE>`: an empty record per member removed at runtime
//!   (their messages are refused, which is how a removed member that missed its own
//!   removal learns of it).
//!
//! Bootstrap writes them once from `--initial-cluster`; the apply loop updates them from
//! ConfChange and ClusterMemberAttrSet entries. Nothing here talks to Raft or the network.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message as _;

use super::{cluster_id, member_id, ServerConfig, ServerError};
use crate::mvcc::{ApplyBatch, Backend, Store};
use crate::proto::etcdserverpb as pb;
use crate::proto::raftkvpb;
use crate::raft::{ConfState, NodeId};

const CLUSTER_ID_KEY: &[u8] = b"cluster/id";
const CONF_STATE_KEY: &[u8] = b"cluster/conf_state";
const MEMBER_PREFIX: &[u8] = b"cluster/member/";
const REMOVED_PREFIX: &[u8] = b"cluster/removed/";

/// What the store says about the cluster.
#[derive(Clone, Debug)]
pub struct ClusterMeta {
    /// The cluster id.
    pub cluster_id: u64,
    /// Raft membership as of the store's applied index.
    pub conf_state: ConfState,
    /// Member records by id.
    pub members: BTreeMap<u64, pb::Member>,
    /// Ids of members removed at runtime.
    pub removed: BTreeSet<u64>,
}

fn corrupt(what: &str) -> ServerError {
    ServerError::Storage(format!("corrupt cluster record {what}"))
}

/// Reads the cluster records; `None` for a store that was never bootstrapped.
pub fn load<B: Backend>(store: &Store<B>) -> Result<Option<ClusterMeta>, ServerError> {
    let Some(raw_id) = store.app_meta(CLUSTER_ID_KEY)? else {
        return Ok(None);
    };
    let id_bytes: [u8; 8] = raw_id.as_slice().try_into().map_err(|_| corrupt("id"))?;
    let cs_bytes = store.app_meta(CONF_STATE_KEY)?.unwrap_or_default();
    let cs = raftkvpb::ConfState::decode(cs_bytes.as_slice()).map_err(|_| corrupt("conf"))?;
    let mut members = BTreeMap::new();
    for (_, value) in store.app_meta_scan(MEMBER_PREFIX)? {
        let m = pb::Member::decode(value.as_slice()).map_err(|_| corrupt("member"))?;
        members.insert(m.id, m);
    }
    let mut removed = BTreeSet::new();
    for (key, _) in store.app_meta_scan(REMOVED_PREFIX)? {
        let id = key
            .get(REMOVED_PREFIX.len()..)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .ok_or_else(|| corrupt("removed"))?;
        removed.insert(u64::from_be_bytes(id));
    }
    Ok(Some(ClusterMeta {
        cluster_id: u64::from_be_bytes(id_bytes),
        conf_state: ConfState {
            voters: cs.voters.into_iter().map(NodeId).collect(),
            learners: cs.learners.into_iter().map(NodeId).collect(),
        },
        members,
        removed,
    }))
}

/// Writes one member record into `batch`.
pub fn put_member<B: Backend>(batch: &mut ApplyBatch<'_, '_, B>, m: &pb::Member) {
    let mut key = MEMBER_PREFIX.to_vec();
    key.extend_from_slice(&m.id.to_be_bytes());
    batch.put_app_meta(&key, m.encode_to_vec());
}

/// Deletes one member record in `batch`.
pub fn delete_member<B: Backend>(batch: &mut ApplyBatch<'_, '_, B>, id: u64) {
    let mut key = MEMBER_PREFIX.to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    batch.delete_app_meta(&key);
}

fn removed_key(id: u64) -> Vec<u8> {
    let mut key = REMOVED_PREFIX.to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// Remembers `id` as removed from the cluster (MemberRemove applied).
pub fn mark_removed<B: Backend>(batch: &mut ApplyBatch<'_, '_, B>, id: u64) {
    batch.put_app_meta(&removed_key(id), Vec::new());
}

/// Forgets that `id` was removed (a restore starts a new cluster, whose members may
/// reuse the ids of the old one's).
pub fn forget_removed<B: Backend>(batch: &mut ApplyBatch<'_, '_, B>, id: u64) {
    batch.delete_app_meta(&removed_key(id));
}

/// Writes the Raft membership into `batch`.
pub fn put_conf_state<B: Backend>(batch: &mut ApplyBatch<'_, '_, B>, cs: &ConfState) {
    let pb_cs = raftkvpb::ConfState {
        voters: cs.voters.iter().map(|n| n.0).collect(),
        learners: cs.learners.iter().map(|n| n.0).collect(),
    };
    batch.put_app_meta(CONF_STATE_KEY, pb_cs.encode_to_vec());
}

/// The cluster `cfg.initial_cluster` describes (ids derived from URLs and token).
pub fn initial(cfg: &ServerConfig) -> Result<ClusterMeta, ServerError> {
    if !cfg
        .initial_cluster
        .iter()
        .any(|(name, _)| *name == cfg.name)
    {
        return Err(ServerError::Config(format!(
            "member {:?} is not in --initial-cluster",
            cfg.name
        )));
    }
    let mut members = BTreeMap::new();
    for (name, urls) in &cfg.initial_cluster {
        let id = member_id(urls, &cfg.initial_cluster_token);
        let m = pb::Member {
            id,
            name: name.clone(),
            peer_ur_ls: urls.clone(),
            client_ur_ls: Vec::new(),
            is_learner: false,
        };
        if members.insert(id, m).is_some() {
            return Err(ServerError::Config(format!(
                "duplicate peer URLs for {name:?}"
            )));
        }
    }
    let ids: Vec<u64> = members.keys().copied().collect();
    Ok(ClusterMeta {
        cluster_id: cluster_id(&ids),
        conf_state: ConfState {
            voters: ids.iter().copied().map(NodeId).collect(),
            learners: BTreeSet::new(),
        },
        members,
        removed: BTreeSet::new(),
    })
}

/// Writes `meta` into a store (a fresh one, or a restored image whose old member records
/// are gone) at its applied index and makes it durable.
pub fn bootstrap<B: Backend>(store: &mut Store<B>, meta: &ClusterMeta) -> Result<(), ServerError> {
    let applied = store.applied_index();
    let mut batch = store.begin_apply()?;
    batch.put_app_meta(CLUSTER_ID_KEY, meta.cluster_id.to_be_bytes().to_vec());
    put_conf_state(&mut batch, &meta.conf_state);
    for m in meta.members.values() {
        put_member(&mut batch, m);
    }
    batch.commit(applied)?;
    store.sync_durable()?;
    Ok(())
}

/// The cluster a member joins (`--initial-cluster-state existing` with an empty data
/// dir), as a running member described it over the peer port.
#[derive(Clone, Debug)]
pub struct ExistingCluster {
    /// The cluster id.
    pub cluster_id: u64,
    /// Every member, the joining one included (added by MemberAdd beforehand).
    pub members: Vec<pb::Member>,
}

/// The records a joining member starts from: the existing cluster's, with voters and
/// learners as its member records say. Raft replays the log (or installs a snapshot) on
/// top of them.
pub fn joined(existing: &ExistingCluster) -> ClusterMeta {
    let members: BTreeMap<u64, pb::Member> =
        existing.members.iter().map(|m| (m.id, m.clone())).collect();
    let ids = |learner: bool| {
        members
            .values()
            .filter(|m| m.is_learner == learner)
            .map(|m| NodeId(m.id))
            .collect()
    };
    ClusterMeta {
        cluster_id: existing.cluster_id,
        conf_state: ConfState {
            voters: ids(false),
            learners: ids(true),
        },
        members,
        removed: BTreeSet::new(),
    }
}

/// The id MemberAdd gave a joining member: the one whose peer URLs are its
/// `--initial-advertise-peer-urls` (a name is not enough: the member was added unnamed).
pub fn joining_id(cfg: &ServerConfig, existing: &ExistingCluster) -> Option<u64> {
    existing
        .members
        .iter()
        .find(|m| same_urls(&m.peer_ur_ls, &cfg.advertise_peer_urls))
        .map(|m| m.id)
}

fn same_urls(a: &[String], b: &[String]) -> bool {
    let sorted = |u: &[String]| {
        let mut v = u.to_vec();
        v.sort_unstable();
        v
    };
    sorted(a) == sorted(b)
}

/// Finds this member's id: by its configured peer URLs (no two members share one; this
/// is how a member added at runtime, still unnamed, finds itself, and why a newcomer
/// never takes the id of a same-named member that was not removed), else by name, else
/// by the id those URLs give.
pub fn local_id(cfg: &ServerConfig, meta: &ClusterMeta) -> Result<u64, ServerError> {
    if let Some(m) = meta
        .members
        .values()
        .find(|m| same_urls(&m.peer_ur_ls, &cfg.advertise_peer_urls))
    {
        return Ok(m.id);
    }
    if let Some(m) = meta.members.values().find(|m| m.name == cfg.name) {
        return Ok(m.id);
    }
    let id = member_id(&cfg.advertise_peer_urls, &cfg.initial_cluster_token);
    if meta.members.contains_key(&id) {
        return Ok(id);
    }
    Err(ServerError::Config(format!(
        "member {:?} is not a member of the cluster in {}",
        cfg.name,
        cfg.data_dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, name: &str, url: &str, is_learner: bool) -> pb::Member {
        pb::Member {
            id,
            name: name.to_string(),
            peer_ur_ls: vec![url.to_string()],
            client_ur_ls: Vec::new(),
            is_learner,
        }
    }

    #[test]
    fn removed_ids_are_kept_until_forgotten() {
        let mut store = Store::open(crate::mvcc::MemBackend::new()).unwrap();
        let cfg = ServerConfig::new("m1", "/nonexistent".into());
        bootstrap(&mut store, &initial(&cfg).unwrap()).unwrap();
        let mut batch = store.begin_apply().unwrap();
        mark_removed(&mut batch, 9);
        mark_removed(&mut batch, 10);
        batch.commit(1).unwrap();
        let meta = load(&store).unwrap().unwrap();
        assert_eq!(meta.removed, BTreeSet::from([9, 10]));
        let mut batch = store.begin_apply().unwrap();
        forget_removed(&mut batch, 9);
        batch.commit(2).unwrap();
        assert_eq!(load(&store).unwrap().unwrap().removed, BTreeSet::from([10]));
    }

    #[test]
    fn a_joining_member_finds_itself_by_peer_urls_not_by_name() {
        // m2's old record (never removed) and the newcomer added as a learner under the
        // same name with other URLs: the newcomer must take the new id.
        let existing = ExistingCluster {
            cluster_id: 7,
            members: vec![
                member(1, "m1", "http://a:1", false),
                member(2, "m2", "http://b:1", false),
                member(3, "", "http://c:1", true),
            ],
        };
        let mut cfg = ServerConfig::new("m2", "/nonexistent".into());
        cfg.advertise_peer_urls = vec!["http://c:1".to_string()];
        assert_eq!(joining_id(&cfg, &existing), Some(3));
        let meta = joined(&existing);
        assert_eq!(local_id(&cfg, &meta).unwrap(), 3);
        assert_eq!(meta.cluster_id, 7);
        assert!(meta.conf_state.learners.contains(&NodeId(3)));
        assert_eq!(meta.conf_state.voters.len(), 2);
        cfg.advertise_peer_urls = vec!["http://d:1".to_string()];
        assert_eq!(joining_id(&cfg, &existing), None, "never added");
    }
}
