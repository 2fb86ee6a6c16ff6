//! The naive reference model of the MVCC store that `tests/mvcc_model.rs` checks the real
//! store against.
//!
//! It keeps the whole key space at EVERY revision (`states[r]` is the map of live keys at
//! revision r), so "what did a read at revision R see" is a vector lookup and needs no
//! index, no generations and no compaction logic: compaction only moves the lowest readable
//! revision. Every rule is written from etcd's documented behaviour (see
//! `docs/mvcc.md` and `/work/shared/ETCD-API.md`), not from the store's code. Errors come
//! back as the set of error names the store may answer (when a request is wrong in several
//! ways, the store may name any one of them). It must stay slow and obvious: no shortcuts
//! that could share a bug with the store.

use std::collections::BTreeMap;

use raftkv::mvcc::*;
use std::result::Result;

#[path = "reference_txn.rs"]
mod txn;

/// Live keys at one revision.
pub type State = BTreeMap<Vec<u8>, KeyValue>;

/// The error names a request may be refused with (empty = the request must succeed).
pub type Refusal = Vec<&'static str>;

/// The name of a store error, as the model spells it.
pub fn err_name(e: &MvccError) -> &'static str {
    match e {
        MvccError::Compacted => "Compacted",
        MvccError::FutureRevision => "FutureRevision",
        MvccError::KeyNotProvided => "KeyNotProvided",
        MvccError::KeyNotFound => "KeyNotFound",
        MvccError::ValueProvided => "ValueProvided",
        MvccError::LeaseProvided => "LeaseProvided",
        MvccError::TooManyOps => "TooManyOps",
        MvccError::DuplicateKey => "DuplicateKey",
        MvccError::InvalidSortOption => "InvalidSortOption",
        MvccError::LeaseNotFound => "LeaseNotFound",
        _ => "unexpected error",
    }
}

/// The leases the model's lessor knows; puts naming another one are refused.
pub fn lease_exists(id: i64) -> bool {
    (1..=3).contains(&id)
}

/// etcd's range ends: empty = the key alone, "\0" = every key from it, else `[key, end)`.
pub fn in_range(k: &[u8], key: &[u8], end: &[u8]) -> bool {
    match end {
        [] => k == key,
        [0] => k >= key,
        _ => k >= key && k < end,
    }
}

/// The model: every revision's state, the compacted revision, the applied index and the
/// events of the open batch.
#[derive(Clone, Debug)]
pub struct Model {
    /// `states[r]` = live keys at revision r; `states.len() - 1` is the current revision.
    pub states: Vec<State>,
    /// Reads below this revision are refused.
    pub compacted: i64,
    /// The applied index of the last committed batch.
    pub applied: u64,
    /// Events of the open batch.
    pub events: Vec<Event>,
    /// Every committed event, in revision order.
    pub history: Vec<Event>,
}

/// A history query: `Store::events_in`'s arguments.
#[derive(Clone, Debug)]
pub struct EventsQuery {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    pub from_revision: i64,
    pub to_revision: i64,
    pub with_prev_kv: bool,
    pub events_max: usize,
}

impl Model {
    /// A fresh store: current revision 1, nothing compacted.
    pub fn new() -> Model {
        Model {
            states: vec![State::new(), State::new()],
            compacted: 0,
            applied: 0,
            events: Vec::new(),
            history: Vec::new(),
        }
    }

    /// The current revision.
    pub fn current(&self) -> i64 {
        self.states.len() as i64 - 1
    }

    pub(crate) fn now(&self) -> &State {
        self.states.last().unwrap()
    }

    /// The revision a read asking for `revision` sees, checked against `current`.
    fn read_at(&self, revision: i64, current: i64) -> Result<i64, Refusal> {
        if revision > current {
            return Err(vec!["FutureRevision"]);
        }
        let at = if revision <= 0 { current } else { revision };
        if at < self.compacted {
            return Err(vec!["Compacted"]);
        }
        Ok(at)
    }

    /// A Range outside a txn (also inside a batch: it sees the batch's earlier writes).
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, Refusal> {
        self.range_in(req, self.current(), self.now(), self.current())
    }

    /// A Range whose current state is `live` at header revision `header`; positive
    /// revisions up to `current` read the history.
    pub(crate) fn range_in(
        &self,
        req: &RangeRequest,
        current: i64,
        live: &State,
        header: i64,
    ) -> Result<RangeResponse, Refusal> {
        if req.key.is_empty() {
            return Err(vec!["KeyNotProvided"]);
        }
        let at = self.read_at(req.revision, current)?;
        let state = if req.revision <= 0 {
            live
        } else {
            &self.states[at as usize]
        };
        Ok(range_of(req, state, header))
    }

    /// The checks of a put that need the state `live` (key existence, lease).
    pub(crate) fn put_refusal(req: &PutRequest, live: &State) -> Refusal {
        let mut refusal = Vec::new();
        if (req.ignore_value || req.ignore_lease) && !live.contains_key(&req.key) {
            refusal.push("KeyNotFound");
        }
        if req.lease != 0 && !lease_exists(req.lease) {
            refusal.push("LeaseNotFound");
        }
        refusal
    }

    /// A Put: a new revision holding the new version of the key.
    pub fn put(&mut self, req: &PutRequest) -> Result<PutResponse, Refusal> {
        let mut refusal = put_validation(req);
        if refusal.is_empty() {
            refusal = Model::put_refusal(req, self.now());
        }
        if !refusal.is_empty() {
            return Err(refusal);
        }
        let mut state = self.now().clone();
        let revision = self.current() + 1;
        let prev = put_into(&mut state, req, revision, &mut self.events);
        self.states.push(state);
        Ok(PutResponse {
            revision,
            prev_kv: if req.prev_kv { prev } else { None },
        })
    }

    /// A DeleteRange: a new revision only if something was deleted.
    pub fn delete_range(
        &mut self,
        req: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, Refusal> {
        if req.key.is_empty() {
            return Err(vec!["KeyNotProvided"]);
        }
        let mut state = self.now().clone();
        let doomed = delete_from(&mut state, req, self.current() + 1, &mut self.events);
        if !doomed.is_empty() {
            self.states.push(state);
        }
        Ok(DeleteRangeResponse {
            revision: self.current(),
            deleted: doomed.len() as i64,
            prev_kvs: if req.prev_kv { doomed } else { vec![] },
        })
    }

    /// A Txn: validate, choose the branches against the state before it, run the chosen
    /// operations on a copy (refusing if any would fail), then keep the copy.
    pub fn txn(&mut self, req: &TxnRequest) -> Result<TxnResponse, Refusal> {
        txn::txn(self, req)
    }

    /// Logical compaction at `revision`.
    pub fn compact(&mut self, revision: i64) -> Result<(), Refusal> {
        if revision <= self.compacted {
            return Err(vec!["Compacted"]);
        }
        if revision > self.current() {
            return Err(vec!["FutureRevision"]);
        }
        self.compacted = revision;
        Ok(())
    }

    /// Close the batch: the events it produced, in order.
    pub fn commit(&mut self, applied: u64) -> Vec<Event> {
        self.applied = applied;
        self.history.extend(self.events.iter().cloned());
        std::mem::take(&mut self.events)
    }

    /// The committed events on keys in the query's range with revisions in
    /// `[from, to]`, at most `events_max` unless the last revision taken has more; with
    /// `prev_kv` = the key at the revision before (None if that is compacted).
    pub fn events_in(&self, q: &EventsQuery) -> Result<Vec<Event>, Refusal> {
        let mut refusal = Vec::new();
        if q.from_revision < self.compacted {
            refusal.push("Compacted");
        }
        if q.to_revision > self.current() {
            refusal.push("FutureRevision");
        }
        if !refusal.is_empty() {
            return Err(refusal);
        }
        let mut out: Vec<Event> = Vec::new();
        for e in &self.history {
            let revision = e.kv.mod_revision;
            let wanted = (q.from_revision..=q.to_revision).contains(&revision)
                && in_range(&e.kv.key, &q.key, &q.range_end);
            if !wanted {
                continue;
            }
            let last = out.last().map(|l| l.kv.mod_revision);
            if out.len() >= q.events_max && last != Some(revision) {
                break;
            }
            let before = revision - 1;
            let prev_kv = match q.with_prev_kv && before >= self.compacted {
                true => self.states[before as usize].get(&e.kv.key).cloned(),
                false => None,
            };
            out.push(Event {
                prev_kv,
                ..e.clone()
            });
        }
        Ok(out)
    }

    /// Keys with a lease at the current revision.
    pub fn leased_keys(&self) -> Vec<(Vec<u8>, i64)> {
        let leased = self.now().values().filter(|kv| kv.lease != 0);
        leased.map(|kv| (kv.key.clone(), kv.lease)).collect()
    }
}

/// The state-free checks of a put.
pub(crate) fn put_validation(req: &PutRequest) -> Refusal {
    let mut refusal = Vec::new();
    if req.key.is_empty() {
        refusal.push("KeyNotProvided");
    }
    if req.ignore_value && !req.value.is_empty() {
        refusal.push("ValueProvided");
    }
    if req.ignore_lease && req.lease != 0 {
        refusal.push("LeaseProvided");
    }
    refusal
}

/// Write `req` into `state` at main revision `revision`; returns the previous kv.
pub(crate) fn put_into(
    state: &mut State,
    req: &PutRequest,
    revision: i64,
    events: &mut Vec<Event>,
) -> Option<KeyValue> {
    let prev = state.get(&req.key).cloned();
    let kv = KeyValue {
        key: req.key.clone(),
        create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
        mod_revision: revision,
        version: prev.as_ref().map_or(1, |p| p.version + 1),
        value: match (&prev, req.ignore_value) {
            (Some(p), true) => p.value.clone(),
            _ => req.value.clone(),
        },
        lease: match (&prev, req.ignore_lease) {
            (Some(p), true) => p.lease,
            _ => req.lease,
        },
    };
    state.insert(req.key.clone(), kv.clone());
    events.push(Event {
        kind: EventType::Put,
        kv,
        prev_kv: prev.clone(),
    });
    prev
}

/// Delete the keys of `req` from `state` at `revision`; returns them, key-ascending.
pub(crate) fn delete_from(
    state: &mut State,
    req: &DeleteRangeRequest,
    revision: i64,
    events: &mut Vec<Event>,
) -> Vec<KeyValue> {
    let doomed: Vec<KeyValue> = state
        .values()
        .filter(|kv| in_range(&kv.key, &req.key, &req.range_end))
        .cloned()
        .collect();
    for kv in &doomed {
        state.remove(&kv.key);
        events.push(Event {
            kind: EventType::Delete,
            kv: KeyValue {
                key: kv.key.clone(),
                mod_revision: revision,
                ..Default::default()
            },
            prev_kv: Some(kv.clone()),
        });
    }
    doomed
}

/// etcd's Range over one state, with every option, in the documented order: count all
/// keys in range; fetch limit+1 in key order when no explicit sort and no filter is asked,
/// else all; filter; sort (stable); cut at limit.
pub fn range_of(req: &RangeRequest, state: &State, header: i64) -> RangeResponse {
    let all: Vec<&KeyValue> = state
        .values()
        .filter(|kv| in_range(&kv.key, &req.key, &req.range_end))
        .collect();
    let mut resp = RangeResponse {
        revision: header,
        count: all.len() as i64,
        ..Default::default()
    };
    if req.count_only {
        return resp;
    }
    let filtered = req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    let fetched = if req.limit > 0 && req.sort_order == SortOrder::None && !filtered {
        &all[..all.len().min(req.limit as usize + 1)]
    } else {
        &all[..]
    };
    let bound = |bound: i64, ok: bool| bound == 0 || ok;
    let mut kvs: Vec<KeyValue> = fetched
        .iter()
        .filter(|kv| {
            bound(
                req.min_mod_revision,
                kv.mod_revision >= req.min_mod_revision,
            ) && bound(
                req.max_mod_revision,
                kv.mod_revision <= req.max_mod_revision,
            ) && bound(
                req.min_create_revision,
                kv.create_revision >= req.min_create_revision,
            ) && bound(
                req.max_create_revision,
                kv.create_revision <= req.max_create_revision,
            )
        })
        .map(|kv| (*kv).clone())
        .collect();
    sort_by_request(&mut kvs, req);
    if req.limit > 0 && kvs.len() > req.limit as usize {
        kvs.truncate(req.limit as usize);
        resp.more = true;
    }
    if req.keys_only {
        kvs.iter_mut().for_each(|kv| kv.value.clear());
    }
    resp.kvs = kvs;
    resp
}

/// Sort key-ascending `kvs` as the request says; ties keep key order. Order NONE means
/// key-ascending for the KEY target and ascending for the others.
fn sort_by_request(kvs: &mut [KeyValue], req: &RangeRequest) {
    let field = |kv: &KeyValue| -> (Vec<u8>, i64) {
        match req.sort_target {
            SortTarget::Key => (kv.key.clone(), 0),
            SortTarget::Value => (kv.value.clone(), 0),
            SortTarget::Version => (vec![], kv.version),
            SortTarget::Create => (vec![], kv.create_revision),
            SortTarget::Mod => (vec![], kv.mod_revision),
        }
    };
    match req.sort_order {
        SortOrder::Descend => kvs.sort_by_key(|kv| std::cmp::Reverse(field(kv))),
        _ => kvs.sort_by_key(field),
    }
}
