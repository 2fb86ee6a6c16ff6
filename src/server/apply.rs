//! Applying committed log entries to the store: one MVCC batch per `Ready`, entries at or
//! below the store's applied index skipped (they are already in the store: an installed
//! snapshot or a restart), membership changes always handed to Raft.
//!
//! Called only by the driver thread, with the store locked. Returns the per-proposal
//! results; waking the waiting clients is the driver's job.

use std::collections::BTreeMap;
use std::time::Instant;

use prost::Message as _;

use super::alarms::AlarmSet;
use super::convert;
use super::lease_apply::{self, PendingAttachments};
use super::members;
use super::reconfig::conf_change_applies;
use super::shared::Applied;
use super::transport::Transport;
use super::{Metrics, ServerError};
use crate::lease::Lessor;
use crate::mvcc::{ApplyBatch, Backend, Store};
use crate::proto::etcdserverpb as pb;
use crate::proto::raftkvpb::{self, internal_request::Request};
use crate::raft::{ConfChange, ConfChangeKind, Entry, EntryKind, NodeId, RawNode};

/// What applying one group of entries produced.
#[derive(Default)]
pub struct ApplyOutcome {
    /// (request id, entry data, result) for every applied proposal, in log order. The data
    /// lets the driver check that a waiter's id really names this entry (ids of two
    /// members could collide; the same bytes would get the same answer anyway).
    pub results: Vec<(u64, bytes::Bytes, Result<Applied, ServerError>)>,
    /// Whether member records changed (the shared view must be refreshed).
    pub members_changed: bool,
    /// Whether a removal of this very member was applied (it must stop).
    pub removed_self: bool,
    /// Members removed by this batch.
    pub removed: Vec<u64>,
    /// Request ids of compactions with `physical` set: answered once the old revisions
    /// are gone from the backend, not at the logical compaction.
    pub physical_compactions: Vec<u64>,
    /// The events of the committed batch, in revision order (for the watch hub).
    pub events: Vec<crate::mvcc::Event>,
    /// The store revision after the batch.
    pub revision: i64,
}

/// Everything `apply_entries` works on besides the entries.
pub struct ApplyContext<'a, B: Backend> {
    /// The Raft node (for `apply_conf_change`).
    pub raw: &'a mut RawNode,
    /// The store, locked.
    pub store: &'a mut Store<B>,
    /// The driver's copy of the member records.
    pub members: &'a mut BTreeMap<u64, pb::Member>,
    /// Peer URL changes go here.
    pub transport: &'a dyn Transport,
    /// Backend commit latency goes here.
    pub metrics: &'a Metrics,
    /// The alarm set, changed by logged AlarmRequests.
    pub alarms: &'a std::sync::RwLock<AlarmSet>,
    /// The leases (locked briefly per request; see `lease_apply.rs`).
    pub lessor: &'a std::sync::Mutex<Lessor>,
}

/// Applies `entries` (committed, in log order) in one store batch.
pub fn apply_entries<B: Backend>(
    cx: ApplyContext<'_, B>,
    entries: &[Entry],
) -> Result<ApplyOutcome, ServerError> {
    let mut out = ApplyOutcome::default();
    let applied_before = cx.store.applied_index();
    let Some(last) = entries.last().map(|e| e.index.0) else {
        return Ok(out);
    };
    if last <= applied_before {
        for e in entries.iter().filter(|e| e.kind == EntryKind::ConfChange) {
            // Already in the store; Raft still needs to hear about it (unless it already
            // reflects it, or the change was refused when first applied).
            if let Some(cc) = decode_conf_change(e) {
                let promote = is_promote(&cc);
                if conf_change_applies(&cx.raw.conf_state(), &cc, promote).is_ok() {
                    cx.raw.apply_conf_change(&cc);
                }
            }
        }
        return Ok(out);
    }
    let lessor = cx.lessor;
    let lease_exists = |id: i64| lessor.lock().expect("lessor lock poisoned").contains(id);
    let mut batch = cx.store.begin_apply_with_leases(Some(&lease_exists))?;
    let mut pending = PendingAttachments::default();
    for e in entries {
        let fresh = e.index.0 > applied_before;
        match e.kind {
            EntryKind::ConfChange => {
                let Some(cc) = decode_conf_change(e) else {
                    continue;
                };
                if let Err(refused) =
                    conf_change_applies(&cx.raw.conf_state(), &cc, is_promote(&cc))
                {
                    // Info, not a warning: a member that joined replays the changes that
                    // led to its own membership, which its configuration already holds.
                    tracing::info!(
                        index = e.index.0,
                        node = %cc.node,
                        %refused,
                        "conf change not applied: the configuration already reflects it or it lost a race"
                    );
                    if fresh {
                        let request_id = member_context(&cc).request_id;
                        out.results.push((request_id, e.data.clone(), Err(refused)));
                    }
                    continue;
                }
                let cs = cx.raw.apply_conf_change(&cc);
                if fresh {
                    members::put_conf_state(&mut batch, &cs);
                    let peers = Peers {
                        transport: cx.transport,
                        local: cx.raw.id().0,
                    };
                    apply_member_change(&mut batch, cx.members, peers, &cc);
                    out.members_changed = true;
                    if cc.kind == ConfChangeKind::RemoveNode {
                        out.removed.push(cc.node.0);
                        out.removed_self |= cc.node == cx.raw.id();
                    }
                    super::reconfig::warn_if_even_voters(cs.voters.len());
                    let request_id = member_context(&cc).request_id;
                    let list = cx.members.values().cloned().collect();
                    out.results
                        .push((request_id, e.data.clone(), Ok(Applied::Members(list))));
                }
            }
            EntryKind::Normal if fresh && !e.data.is_empty() => {
                let leases = Leases {
                    lessor,
                    pending: &mut pending,
                    metrics: cx.metrics,
                };
                let peers = Peers {
                    transport: cx.transport,
                    local: cx.raw.id().0,
                };
                let members = (&mut *cx.members, peers);
                apply_normal(&mut batch, members, cx.alarms, leases, e, &mut out);
            }
            EntryKind::Normal => {}
        }
    }
    let started = Instant::now();
    let committed = batch.commit(last)?;
    lessor
        .lock()
        .expect("lessor lock poisoned")
        .apply_events(&committed.events);
    out.revision = committed.current_revision;
    out.events = committed.events;
    cx.metrics
        .backend_commit_duration
        .observe(started.elapsed().as_secs_f64());
    Ok(out)
}

fn decode_conf_change(e: &Entry) -> Option<ConfChange> {
    match ConfChange::decode(&e.data) {
        Ok(cc) => Some(cc),
        Err(err) => {
            tracing::error!(index = e.index.0, %err, "skipping undecodable conf change entry");
            None
        }
    }
}

/// The peer transport, and this member's id (never a peer of itself).
#[derive(Clone, Copy)]
struct Peers<'a> {
    transport: &'a dyn Transport,
    local: u64,
}

impl Peers<'_> {
    fn set(&self, id: u64, urls: &[String]) {
        if id != self.local {
            self.transport.set_peer(NodeId(id), urls.to_vec());
        }
    }
}

/// A promotion is an `AddVoter` without peer URLs (an add carries the new member's).
fn is_promote(cc: &ConfChange) -> bool {
    cc.kind == ConfChangeKind::AddVoter && member_context(cc).peer_urls.is_empty()
}

/// The context of a logged conf change (empty for one written before contexts existed).
fn member_context(cc: &ConfChange) -> raftkvpb::MemberContext {
    raftkvpb::MemberContext::decode(cc.context.as_ref()).unwrap_or_default()
}

fn apply_member_change<B: Backend>(
    batch: &mut ApplyBatch<'_, '_, B>,
    members: &mut BTreeMap<u64, pb::Member>,
    peers: Peers<'_>,
    cc: &ConfChange,
) {
    let id = cc.node.0;
    match cc.kind {
        ConfChangeKind::AddVoter | ConfChangeKind::AddLearner => {
            let ctx = member_context(cc);
            let m = members.entry(id).or_insert_with(|| pb::Member {
                id,
                ..Default::default()
            });
            if !ctx.peer_urls.is_empty() {
                m.peer_ur_ls = ctx.peer_urls;
            }
            m.is_learner = cc.kind == ConfChangeKind::AddLearner;
            members::put_member(batch, m);
            peers.set(id, &m.peer_ur_ls);
        }
        ConfChangeKind::RemoveNode => {
            members.remove(&id);
            members::delete_member(batch, id);
            members::mark_removed(batch, id);
            if id != peers.local {
                peers.transport.remove_peer(NodeId(id));
            }
        }
    }
}

/// What the lease entries of a batch work with.
struct Leases<'a> {
    lessor: &'a std::sync::Mutex<Lessor>,
    pending: &'a mut PendingAttachments,
    metrics: &'a Metrics,
}

fn apply_normal<B: Backend>(
    batch: &mut ApplyBatch<'_, '_, B>,
    (members, peers): (&mut BTreeMap<u64, pb::Member>, Peers<'_>),
    alarms: &std::sync::RwLock<AlarmSet>,
    leases: Leases<'_>,
    e: &Entry,
    out: &mut ApplyOutcome,
) {
    let req = match raftkvpb::InternalRequest::decode(e.data.as_ref()) {
        Ok(req) => req,
        Err(err) => {
            tracing::error!(index = e.index.0, %err, "skipping undecodable log entry");
            return;
        }
    };
    let id = req.header.map_or(0, |h| h.id);
    if let Some(r) = &req.request {
        let (lessor, metrics) = (leases.lessor, leases.metrics);
        if let Some(result) = lease_apply::apply_lease(batch, lessor, leases.pending, metrics, r) {
            out.results.push((id, e.data.clone(), result));
            return;
        }
        leases.pending.note(r);
    }
    let result = match req.request {
        Some(Request::Put(r)) => batch.put(&convert::put_request(&r)).map(Applied::Put),
        Some(Request::DeleteRange(r)) => batch
            .delete_range(&convert::delete_range_request(&r))
            .map(Applied::DeleteRange),
        Some(Request::Txn(r)) => convert::txn_request(&r)
            .and_then(|t| batch.txn(&t))
            .map(Applied::Txn),
        Some(Request::Compaction(r)) => {
            if r.physical {
                out.physical_compactions.push(id);
            }
            batch
                .compact(r.revision)
                .map(|()| Applied::Compact(batch.current_revision()))
        }
        Some(Request::ClusterMemberAttrSet(a)) => {
            if let Some(m) = members.get_mut(&a.member_id) {
                m.name = a.name;
                m.client_ur_ls = a.client_urls;
                members::put_member(batch, m);
                out.members_changed = true;
            }
            Ok(Applied::MemberAttr)
        }
        Some(Request::ClusterMemberPeerUrlsSet(r)) => {
            if let Some(m) = members.get_mut(&r.member_id) {
                m.peer_ur_ls = r.peer_urls;
                members::put_member(batch, m);
                peers.set(m.id, &m.peer_ur_ls);
                out.members_changed = true;
            }
            Ok(Applied::Members(members.values().cloned().collect()))
        }
        Some(Request::Alarm(r)) => {
            let mut set = alarms.write().unwrap_or_else(|e| e.into_inner());
            Ok(Applied::Alarm(set.apply(batch, &r)))
        }
        other => {
            tracing::warn!(
                index = e.index.0,
                ?other,
                "ignoring a request kind not served yet"
            );
            return;
        }
    };
    out.results
        .push((id, e.data.clone(), result.map_err(ServerError::from)));
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::mvcc::MemBackend;
    use crate::proto::raftkvpb::RequestHeader;
    use crate::raft::{ConfState, Config, HardState, Index, Message, RecoveredState, Term};

    struct NoTransport;

    impl Transport for NoTransport {
        fn send(&self, _: Vec<Message>) {}
        fn send_snapshot(&self, _: Message, _: Box<dyn std::io::Read + Send>) {}
        fn set_peer(&self, _: NodeId, _: Vec<String>) {}
        fn remove_peer(&self, _: NodeId) {}
    }

    fn put_entry(index: u64, id: u64, key: &str) -> Entry {
        let req = raftkvpb::InternalRequest {
            header: Some(RequestHeader {
                id,
                ..Default::default()
            }),
            request: Some(Request::Put(pb::PutRequest {
                key: Bytes::from(key.to_string()),
                value: Bytes::from_static(b"v"),
                ..Default::default()
            })),
        };
        Entry {
            term: Term(1),
            index: Index(index),
            kind: EntryKind::Normal,
            data: Bytes::from(req.encode_to_vec()),
        }
    }

    fn add_voter_entry(index: u64, node: u64) -> Entry {
        let cc = ConfChange {
            kind: ConfChangeKind::AddVoter,
            node: NodeId(node),
            context: Bytes::from(
                raftkvpb::MemberContext {
                    id: node,
                    peer_urls: vec!["http://n2:2380".into()],
                    is_learner: false,
                    request_id: 0,
                }
                .encode_to_vec(),
            ),
        };
        Entry {
            term: Term(1),
            index: Index(index),
            kind: EntryKind::ConfChange,
            data: cc.encode(),
        }
    }

    #[test]
    fn entries_the_store_holds_are_not_applied_again_but_conf_changes_reach_raft() {
        // The log holds 1..=4; the store already applied 1..=3 (say from an image). Entry 3
        // adds member 2. Re-delivering 2..=4 must write only entry 4 to the store, yet Raft
        // must learn about member 2.
        let entries = vec![
            put_entry(1, 11, "a"),
            put_entry(2, 12, "b"),
            add_voter_entry(3, 2),
            put_entry(4, 14, "c"),
        ];
        let mut store = Store::open(MemBackend::new()).unwrap();
        let mut b = store.begin_apply().unwrap();
        for key in ["a", "b"] {
            b.put(&crate::mvcc::PutRequest {
                key: key.into(),
                value: b"v".to_vec(),
                ..Default::default()
            })
            .unwrap();
        }
        b.commit(3).unwrap();
        let revision_before = store.current_revision();
        let mut raw = RawNode::new(
            Config::new(NodeId(1)),
            RecoveredState {
                hard_state: HardState {
                    term: Term(1),
                    vote: None,
                    commit: Index(4),
                },
                entries: entries.clone(),
                conf_state: ConfState {
                    voters: [NodeId(1)].into_iter().collect(),
                    learners: Default::default(),
                },
                applied: Index(1),
                ..Default::default()
            },
        )
        .unwrap();
        let mut members = BTreeMap::new();
        let metrics = Metrics::new();
        let alarms = std::sync::RwLock::new(AlarmSet::default());
        let out = apply_entries(
            ApplyContext {
                raw: &mut raw,
                store: &mut store,
                members: &mut members,
                transport: &NoTransport,
                metrics: &metrics,
                alarms: &alarms,
                lessor: &std::sync::Mutex::new(Lessor::new(1)),
            },
            &entries[1..],
        )
        .unwrap();
        assert_eq!(
            store.current_revision(),
            revision_before + 1,
            "only entry 4 was written"
        );
        assert_eq!(store.applied_index(), 4);
        let ids: Vec<u64> = out.results.iter().map(|(id, _, _)| *id).collect();
        assert_eq!(ids, vec![14], "only entry 4 produced a result");
        assert!(
            raw.conf_state().voters.contains(&NodeId(2)),
            "raft saw the conf change"
        );
        assert!(
            members.is_empty(),
            "the store already had the member records of entry 3"
        );
    }
}
