//! Applying committed log entries to the store: one MVCC batch per `Ready`, entries at or
//! below the store's applied index skipped (they are already in the store: an installed
//! snapshot or a restart), membership changes always handed to Raft.
//!
//! Called only by the driver thread, with the store locked. Returns the per-proposal
//! results; waking the waiting clients is the driver's job.

use std::collections::BTreeMap;
use std::time::Instant;

use prost::Message as _;

use super::convert;
use super::members;
use super::shared::{Applied, KvStore};
use super::transport::Transport;
use super::{Metrics, ServerError};
use crate::mvcc::{ApplyBatch, SledBackend};
use crate::proto::etcdserverpb as pb;
use crate::proto::raftkvpb::{self, internal_request::Request};
use crate::raft::{ConfChange, ConfChangeKind, Entry, EntryKind, NodeId, RawNode};

/// What applying one group of entries produced.
#[derive(Default)]
pub struct ApplyOutcome {
    /// (request id, result) for every applied proposal, in log order.
    pub results: Vec<(u64, Result<Applied, ServerError>)>,
    /// Whether member records changed (the shared view must be refreshed).
    pub members_changed: bool,
    /// Request ids of compactions with `physical` set: answered once the old revisions
    /// are gone from the backend, not at the logical compaction.
    pub physical_compactions: Vec<u64>,
}

/// Everything `apply_entries` works on besides the entries.
pub struct ApplyContext<'a> {
    /// The Raft node (for `apply_conf_change`).
    pub raw: &'a mut RawNode,
    /// The store, locked.
    pub store: &'a mut KvStore,
    /// The driver's copy of the member records.
    pub members: &'a mut BTreeMap<u64, pb::Member>,
    /// Peer URL changes go here.
    pub transport: &'a dyn Transport,
    /// Backend commit latency goes here.
    pub metrics: &'a Metrics,
}

/// Applies `entries` (committed, in log order) in one store batch.
pub fn apply_entries(cx: ApplyContext<'_>, entries: &[Entry]) -> Result<ApplyOutcome, ServerError> {
    let mut out = ApplyOutcome::default();
    let applied_before = cx.store.applied_index();
    let Some(last) = entries.last().map(|e| e.index.0) else {
        return Ok(out);
    };
    if last <= applied_before {
        for e in entries.iter().filter(|e| e.kind == EntryKind::ConfChange) {
            // Already in the store; Raft still needs to hear about it.
            if let Some(cc) = decode_conf_change(e) {
                cx.raw.apply_conf_change(&cc);
            }
        }
        return Ok(out);
    }
    // No lease service yet: every lease is unknown.
    let no_leases = |_: i64| false;
    let mut batch = cx.store.begin_apply_with_leases(Some(&no_leases))?;
    for e in entries {
        let fresh = e.index.0 > applied_before;
        match e.kind {
            EntryKind::ConfChange => {
                let Some(cc) = decode_conf_change(e) else {
                    continue;
                };
                let cs = cx.raw.apply_conf_change(&cc);
                if fresh {
                    members::put_conf_state(&mut batch, &cs);
                    apply_member_change(&mut batch, cx.members, cx.transport, &cc);
                    out.members_changed = true;
                }
            }
            EntryKind::Normal if fresh && !e.data.is_empty() => {
                apply_normal(&mut batch, cx.members, e, &mut out);
            }
            EntryKind::Normal => {}
        }
    }
    let started = Instant::now();
    batch.commit(last)?;
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

fn apply_member_change(
    batch: &mut ApplyBatch<'_, '_, SledBackend>,
    members: &mut BTreeMap<u64, pb::Member>,
    transport: &dyn Transport,
    cc: &ConfChange,
) {
    let id = cc.node.0;
    match cc.kind {
        ConfChangeKind::AddVoter | ConfChangeKind::AddLearner => {
            let ctx = raftkvpb::MemberContext::decode(cc.context.as_ref()).unwrap_or_default();
            let m = members.entry(id).or_insert_with(|| pb::Member {
                id,
                ..Default::default()
            });
            if !ctx.peer_urls.is_empty() {
                m.peer_ur_ls = ctx.peer_urls;
            }
            m.is_learner = cc.kind == ConfChangeKind::AddLearner;
            members::put_member(batch, m);
            transport.set_peer(NodeId(id), m.peer_ur_ls.clone());
        }
        ConfChangeKind::RemoveNode => {
            members.remove(&id);
            members::delete_member(batch, id);
            transport.remove_peer(NodeId(id));
        }
    }
}

fn apply_normal(
    batch: &mut ApplyBatch<'_, '_, SledBackend>,
    members: &mut BTreeMap<u64, pb::Member>,
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
        other => {
            tracing::warn!(
                index = e.index.0,
                ?other,
                "ignoring a request kind not served yet"
            );
            return;
        }
    };
    out.results.push((id, result.map_err(ServerError::from)));
}
