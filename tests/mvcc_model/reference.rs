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

use std::collections::{BTreeMap, HashSet};

use raftkv::mvcc::*;
use std::result::Result;

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

    fn now(&self) -> &State {
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
    fn range_in(
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
    fn put_refusal(req: &PutRequest, live: &State) -> Refusal {
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
        let mut refusal = Vec::new();
        txn_validation(req, &mut refusal);
        if !refusal.is_empty() {
            return Err(refusal);
        }
        let before = self.now().clone();
        let mut run = TxnRun {
            model: self,
            before: &before,
            live: before.clone(),
            main: self.current() + 1,
            wrote: false,
            events: Vec::new(),
        };
        let mut resp = run.txn(req)?;
        let (live, wrote, events) = (run.live, run.wrote, run.events);
        if wrote {
            self.states.push(live);
        }
        set_txn_revisions(&mut resp, self.current());
        self.events.extend(events);
        Ok(resp)
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
fn put_validation(req: &PutRequest) -> Refusal {
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
fn put_into(
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
fn delete_from(
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

/// Every state-free check of a txn, recursively: keys given, put options, duplicate keys.
fn txn_validation(req: &TxnRequest, refusal: &mut Refusal) {
    if req.compare.iter().any(|c| c.key.is_empty()) {
        refusal.push("KeyNotProvided");
    }
    for branch in [&req.success, &req.failure] {
        for op in branch {
            match op {
                RequestOp::Range(r) if r.key.is_empty() => refusal.push("KeyNotProvided"),
                RequestOp::DeleteRange(d) if d.key.is_empty() => refusal.push("KeyNotProvided"),
                RequestOp::Put(p) => refusal.extend(put_validation(p)),
                RequestOp::Txn(t) => txn_validation(t, refusal),
                _ => {}
            }
        }
        if branch_writes(branch).is_none() {
            refusal.push("DuplicateKey");
        }
    }
}

/// The keys a branch puts and the ranges it deletes, or None if it writes a key twice
/// (etcd's `checkIntervals`: a put may not repeat a put of the branch or of an earlier
/// nested txn, nor fall in a delete of this level or of an earlier nested txn; the two
/// branches of one nested txn may put the same key).
#[allow(clippy::type_complexity)]
fn branch_writes(ops: &[RequestOp]) -> Option<(HashSet<Vec<u8>>, Vec<(Vec<u8>, Vec<u8>)>)> {
    let mut dels = Vec::new();
    for op in ops {
        if let RequestOp::DeleteRange(d) = op {
            dels.push((d.key.clone(), d.range_end.clone()));
        }
    }
    let covered =
        |dels: &[(Vec<u8>, Vec<u8>)], k: &[u8]| dels.iter().any(|(s, e)| in_range(k, s, e));
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    for op in ops {
        let RequestOp::Txn(t) = op else { continue };
        let (then_puts, then_dels) = branch_writes(&t.success)?;
        let (else_puts, else_dels) = branch_writes(&t.failure)?;
        let mut nested = then_puts.clone();
        for k in &else_puts {
            if puts.contains(k) && !then_puts.contains(k) {
                return None;
            }
            nested.insert(k.clone());
        }
        for k in &then_puts {
            if puts.contains(k) {
                return None;
            }
        }
        if nested.iter().any(|k| covered(&dels, k)) {
            return None;
        }
        puts.extend(nested);
        dels.extend(then_dels);
        dels.extend(else_dels);
    }
    for op in ops {
        if let RequestOp::Put(p) = op {
            if covered(&dels, &p.key) || !puts.insert(p.key.clone()) {
                return None;
            }
        }
    }
    Some((puts, dels))
}

/// True if every existing key the compare names satisfies it; no key compares as the
/// all-zero kv, except that a VALUE compare on no key is false.
fn compare_holds(state: &State, c: &Compare) -> bool {
    let kvs: Vec<&KeyValue> = state
        .values()
        .filter(|kv| in_range(&kv.key, &c.key, &c.range_end))
        .collect();
    let zero = KeyValue::default();
    if kvs.is_empty() && matches!(c.target, CompareTarget::Value(_)) {
        return false;
    }
    let kvs = if kvs.is_empty() { vec![&zero] } else { kvs };
    kvs.iter().all(|kv| {
        let ord = match &c.target {
            CompareTarget::Version(v) => kv.version.cmp(v),
            CompareTarget::Create(v) => kv.create_revision.cmp(v),
            CompareTarget::Mod(v) => kv.mod_revision.cmp(v),
            CompareTarget::Value(v) => kv.value.cmp(v),
            CompareTarget::Lease(v) => kv.lease.cmp(v),
        };
        match c.result {
            CompareResult::Equal => ord.is_eq(),
            CompareResult::Greater => ord.is_gt(),
            CompareResult::Less => ord.is_lt(),
            CompareResult::NotEqual => ord.is_ne(),
        }
    })
}

/// One txn being run on a copy of the state.
struct TxnRun<'m> {
    model: &'m Model,
    /// The state before the txn: every compare, nested ones too, reads it.
    before: &'m State,
    /// The state with the txn's writes so far.
    live: State,
    /// The revision the txn writes at.
    main: i64,
    wrote: bool,
    events: Vec<Event>,
}

impl TxnRun<'_> {
    fn txn(&mut self, req: &TxnRequest) -> Result<TxnResponse, Refusal> {
        let succeeded = req.compare.iter().all(|c| compare_holds(self.before, c));
        let ops = if succeeded {
            &req.success
        } else {
            &req.failure
        };
        let mut responses = Vec::new();
        for op in ops {
            responses.push(self.op(op)?);
        }
        Ok(TxnResponse {
            revision: 0,
            succeeded,
            responses,
        })
    }

    fn op(&mut self, op: &RequestOp) -> Result<ResponseOp, Refusal> {
        let current = self.main - 1;
        Ok(match op {
            RequestOp::Range(r) => {
                let header = if self.wrote { self.main } else { current };
                ResponseOp::Range(self.model.range_in(r, current, &self.live, header)?)
            }
            RequestOp::Put(p) => {
                let refusal = Model::put_refusal(p, &self.live);
                if !refusal.is_empty() {
                    return Err(refusal);
                }
                let prev = put_into(&mut self.live, p, self.main, &mut self.events);
                self.wrote = true;
                ResponseOp::Put(PutResponse {
                    revision: 0,
                    prev_kv: if p.prev_kv { prev } else { None },
                })
            }
            RequestOp::DeleteRange(d) => {
                let doomed = delete_from(&mut self.live, d, self.main, &mut self.events);
                self.wrote |= !doomed.is_empty();
                ResponseOp::DeleteRange(DeleteRangeResponse {
                    revision: 0,
                    deleted: doomed.len() as i64,
                    prev_kvs: if d.prev_kv { doomed } else { vec![] },
                })
            }
            RequestOp::Txn(t) => ResponseOp::Txn(self.txn(t)?),
        })
    }
}

/// Writes inside a txn report the txn's revision; reads keep their own header.
fn set_txn_revisions(resp: &mut TxnResponse, revision: i64) {
    resp.revision = revision;
    for r in &mut resp.responses {
        match r {
            ResponseOp::Range(_) => {}
            ResponseOp::Put(p) => p.revision = revision,
            ResponseOp::DeleteRange(d) => d.revision = revision,
            ResponseOp::Txn(t) => set_txn_revisions(t, revision),
        }
    }
}
