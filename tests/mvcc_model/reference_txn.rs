//! The reference model's transactions: validation (keys, put options, etcd's duplicate-key
//! rule), compare evaluation against the state before the txn, and running the chosen
//! branch on a copy of the state so a refused txn leaves no trace. Part of the naive
//! model in `reference.rs`; written from etcd's documented rules, not the store's code.

use std::collections::HashSet;
use std::result::Result;

use raftkv::mvcc::*;

use super::{delete_from, in_range, put_into, put_validation, Model, Refusal, State};

/// A Txn: validate, choose the branches against the state before it, run the chosen
/// operations on a copy (refusing if any would fail), then keep the copy.
pub fn txn(model: &mut Model, req: &TxnRequest) -> Result<TxnResponse, Refusal> {
    let mut refusal = Vec::new();
    txn_validation(req, &mut refusal);
    if !refusal.is_empty() {
        return Err(refusal);
    }
    let before = model.now().clone();
    let main = model.current() + 1;
    let mut run = TxnRun {
        model: &*model,
        before: &before,
        live: before.clone(),
        main,
        wrote: false,
        events: Vec::new(),
    };
    let mut resp = run.txn(req)?;
    let (live, wrote, events) = (run.live, run.wrote, run.events);
    if wrote {
        model.states.push(live);
    }
    set_txn_revisions(&mut resp, model.current());
    model.events.extend(events);
    Ok(resp)
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
                    revision: if self.wrote { self.main } else { current },
                    deleted: doomed.len() as i64,
                    prev_kvs: if d.prev_kv { doomed } else { vec![] },
                })
            }
            RequestOp::Txn(t) => ResponseOp::Txn(self.txn(t)?),
        })
    }
}

/// Puts inside a txn report the txn's revision; ranges and deletes keep the header they got
/// when they ran (etcd: the revision before the txn until something in it has written).
fn set_txn_revisions(resp: &mut TxnResponse, revision: i64) {
    resp.revision = revision;
    for r in &mut resp.responses {
        match r {
            ResponseOp::Range(_) | ResponseOp::DeleteRange(_) => {}
            ResponseOp::Put(p) => p.revision = revision,
            ResponseOp::Txn(t) => set_txn_revisions(t, revision),
        }
    }
}
